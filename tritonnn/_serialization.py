"""The parts of Keras' serialization protocol that need no layer registry.

``tritonnn.saving`` re-exports ``serialize_keras_object`` and adds the rebuilding of classes
(``deserialize_keras_object``), which needs the layer registry. This module sits below the layers, so that layers
whose configs hold functions or arrays (``Lambda``, ``Rescaling``) can (de)serialize them as Keras does.

The dict layout is Keras 3's: ``{"module", "class_name", "config", "registered_name"}`` (plus ``build_config`` and
``compile_config`` where the object has them). A tritonnn class is written under the Keras module that exports the
class of that name (``keras.layers``, ``keras.losses``...), so a config reads like Keras'. A function is written as
Keras writes one: ``{"module": "builtins", "class_name": "function", "config": <its registered name or __name__>,
"registered_name": "function"}``, and found again by that name in the custom objects, the registry, and Keras'
built-in functions (``keras.activations``, ``keras.losses``, ``keras.metrics``). Nothing is ever imported from a
module a config names, and nothing in a config is run: a Python lambda is written as Keras writes one (its
bytecode), but reading it back is always refused.
"""

from __future__ import annotations

import base64
import marshal
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import activations
from ._registry import GLOBAL_CUSTOM_NAMES, get_registered_name, known_objects

# The Keras module a tritonnn class is written under, by the tritonnn module that defines it. Read from the class's
# ``__module__`` (this module sits below the layers and the metrics, so it imports neither).
MODULE_OF_PACKAGE: dict[str, str] = {
    "tritonnn.losses": "keras.losses",
    "tritonnn.metrics": "keras.metrics",
    "tritonnn.initializers": "keras.initializers",
    "tritonnn.regularizers": "keras.regularizers",
    "tritonnn.constraints": "keras.constraints",
    "tritonnn.optimizers.schedules": "keras.optimizers.schedules",
}
# The classes Keras exports at its top level first (``keras.Loss``, ``keras.Layer``...): (tritonnn module, name).
TOP_LEVEL_CLASSES = frozenset(
    {
        ("tritonnn.losses", "Loss"),
        ("tritonnn.metrics", "Metric"),
        ("tritonnn.optimizers.optimizer", "Optimizer"),
        ("tritonnn.initializers", "Initializer"),
        ("tritonnn.regularizers", "Regularizer"),
        ("tritonnn.layers.layer", "Layer"),
        ("tritonnn.models.model", "Model"),
        ("tritonnn.models.sequential", "Sequential"),
    }
)

LAMBDA_REFUSED = (
    "Requested the deserialization of a Python lambda. Rebuilding it would run Python bytecode stored in the "
    "config, which tritonnn never does (Keras refuses it in safe mode, its default; tritonnn refuses it with "
    "safe_mode=False as well). Define the function with `def`, and pass it in `custom_objects` (or register it with "
    "`@tritonnn.saving.register_keras_serializable()`)."
)


# ---- serialization ----------------------------------------------------------------------------------------------


def public_module(cls: type) -> str | None:
    """The Keras module a tritonnn class is written under (``"keras.layers"``...), None for other classes (a
    user's, or tritonnn's ``Functional``, which Keras does not export either)."""
    if not isinstance(cls, type) or cls.__name__.startswith("_"):
        return None
    module = cls.__module__
    if (module, cls.__name__) in TOP_LEVEL_CLASSES:
        return "keras"
    if module in MODULE_OF_PACKAGE:
        return MODULE_OF_PACKAGE[module]
    if module.startswith("tritonnn.optimizers."):
        return "keras.optimizers"
    if module.startswith("tritonnn.layers."):
        return "keras.layers"
    return None


def _func_dump(fn: types.FunctionType) -> tuple[str, Any, Any]:
    """A lambda as Keras writes it: its code (marshalled, base64), its defaults and its closure's values."""
    code = base64.b64encode(marshal.dumps(fn.__code__)).decode("ascii")
    closure = None if fn.__closure__ is None else tuple(c.cell_contents for c in fn.__closure__)
    return code, fn.__defaults__, closure


def serialize_lambda(fn: types.FunctionType) -> dict[str, Any]:
    """``{"class_name": "__lambda__", "config": {"code", "defaults", "closure"}}``: how ``Lambda`` writes a lambda
    (it is never read back)."""
    code, defaults, closure = _func_dump(fn)
    return {"class_name": "__lambda__", "config": {"code": code, "defaults": defaults, "closure": closure}}


def _is_lambda(obj: Any) -> bool:
    return isinstance(obj, types.FunctionType) and obj.__name__ == "<lambda>"


def serialize_keras_object(obj: Any) -> Any:
    """A Keras object as a JSON-ready config, in Keras 3's layout (the inverse of ``deserialize_keras_object``).

    Plain values (None, str, int, float, bool) are returned as they are; lists, tuples and dicts are serialized
    item by item; a NumPy array or a tensor becomes ``{"class_name": "__numpy__"/"__tensor__", "config": {"value",
    "dtype"}}`` (a NumPy scalar, its Python value); a function becomes Keras' function record; an object with
    ``get_config()`` (a layer, model, loss, metric, optimizer, initializer, regularizer, constraint, schedule, or a
    custom class) becomes ``{"module", "class_name", "config", "registered_name"}``, with ``build_config`` and
    ``compile_config`` when it has them (a model).
    """
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, (list, tuple)):
        items = [serialize_keras_object(x) for x in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        return serialize_dict(obj)
    if isinstance(obj, bytes):
        return {"class_name": "__bytes__", "config": {"value": obj.decode("utf-8")}}
    if isinstance(obj, slice):
        return {
            "class_name": "__slice__",
            "config": {k: serialize_keras_object(getattr(obj, k)) for k in ("start", "stop", "step")},
        }
    if obj is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if isinstance(obj, torch.Tensor):
        value = obj.detach().cpu()
        return {
            "class_name": "__tensor__",
            "config": {"value": value.tolist(), "dtype": str(value.dtype).replace("torch.", "")},
        }
    if isinstance(obj, torch.dtype):
        return str(obj).replace("torch.", "")
    if isinstance(obj, (np.ndarray, np.generic)):
        if isinstance(obj, np.ndarray) and obj.ndim > 0:
            return {"class_name": "__numpy__", "config": {"value": obj.tolist(), "dtype": obj.dtype.name}}
        return obj.item()
    if _is_lambda(obj):
        warnings.warn(
            "The object being serialized includes a `lambda`. It can be written but never read back: tritonnn does "
            "not rebuild Python bytecode from a config. Use a named function (def) instead.",
            stacklevel=2,
        )
        return {"class_name": "__lambda__", "config": {"value": _func_dump(obj)}}
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        return {
            "module": "builtins",
            "class_name": "function",
            "config": get_registered_name(obj),
            "registered_name": "function",
        }
    if isinstance(obj, type):
        if hasattr(obj, "get_config"):
            raise TypeError(
                f"Cannot serialize the class {obj.__name__} itself: serialize an instance of it "
                "(its get_config() needs one)."
            )
        return {
            "module": "builtins",
            "class_name": "type",
            "config": get_registered_name(obj),
            "registered_name": "type",
        }
    if not callable(getattr(obj, "get_config", None)):
        raise TypeError(
            f"Cannot serialize object {obj!r} of type {type(obj)}. To be serializable, a class must implement the "
            "`get_config()` method."
        )
    inner = obj.get_config()
    if not isinstance(inner, dict):
        raise TypeError(f"The `get_config()` method of {obj!r} should return a dict. It returned: {inner!r}")
    cls = type(obj)
    module = public_module(cls)
    if module is not None and cls not in GLOBAL_CUSTOM_NAMES:  # a built-in class, unless registered anew
        config: dict[str, Any] = {
            "module": module,
            "class_name": cls.__name__,
            "config": serialize_dict(inner),
            "registered_name": None,
        }
    else:
        config = {
            "module": None if cls.__module__ == "__main__" else cls.__module__,
            "class_name": cls.__name__,
            "config": serialize_dict(inner),
            "registered_name": get_registered_name(cls),
        }
    build = obj.get_build_config() if callable(getattr(obj, "get_build_config", None)) else None
    if build is not None:
        config["build_config"] = serialize_dict(build)
    compiled = obj.get_compile_config() if callable(getattr(obj, "get_compile_config", None)) else None
    if compiled is not None:
        config["compile_config"] = serialize_dict(compiled)
    return config


def serialize_dict(obj: dict[Any, Any]) -> dict[Any, Any]:
    return {key: serialize_keras_object(value) for key, value in obj.items()}


# ---- deserialization of values and functions ----------------------------------------------------------------------


def is_class_config(config: Any) -> bool:
    """Whether ``config`` is the serialized form of an object (a dict with ``class_name`` and ``config``)."""
    return isinstance(config, dict) and "class_name" in config and "config" in config


def resolve_function(
    name: Any, module: Any, custom_objects: dict[str, Any] | None = None, function_modules: tuple[Any, ...] = ()
) -> Callable[..., Any]:
    """The function a Keras function record names, found as Keras finds it: the custom objects, the active scope
    and the registry by that name; then, for ``module`` ``"builtins"`` or a Keras module, tritonnn's built-in
    function of that name in ``keras.activations`` and ``function_modules`` (``tritonnn.saving`` adds the losses and
    the metrics); then a registered ``"package>name"`` (Keras <= 3.6 saved custom functions by name)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"Expected the name of a function (a non-empty string). Received: {name!r}")
    known = known_objects(custom_objects)
    if name in known:
        return known[name]
    candidates: list[Any] = [activations, *function_modules]
    if isinstance(module, str) and module.startswith("keras."):
        wanted = module.split(".")[-1]
        candidates = [m for m in candidates if m.__name__.rsplit(".", 1)[-1] == wanted] + candidates
    if (module in (None, "builtins") or (isinstance(module, str) and module.startswith("keras."))) and not (
        name.startswith("_")
    ):
        for candidate in candidates:
            fn = getattr(candidate, name, None)
            if isinstance(fn, types.FunctionType):
                return fn
    if ">" not in name:
        matches = [obj for key, obj in known.items() if key.endswith(">" + name)]
        if len(matches) == 1:
            return matches[0]
    raise TypeError(
        f"Could not locate function {name!r}. Make sure custom classes and functions are decorated with "
        "`@tritonnn.saving.register_keras_serializable()`, or pass them in `custom_objects` (or a "
        "`custom_object_scope`)."
    )


def deserialize_value(
    config: Any,
    custom_objects: dict[str, Any] | None = None,
    safe_mode: bool = True,
    rebuild: Callable[[dict[str, Any]], Any] | None = None,
    function_modules: tuple[Any, ...] = (),
) -> Any:
    """What :func:`serialize_keras_object` wrote, rebuilt: plain values, lists (as lists), dicts, arrays, tensors,
    bytes, slices, functions (see :func:`resolve_function`). An object's config is passed to ``rebuild``
    (``tritonnn.saving`` passes the class rebuilder); without one it is refused with a ``ValueError``. A lambda is
    always refused (``ValueError``)."""
    if config is None or isinstance(config, (str, bool, int, float)):
        if isinstance(config, str):
            known = known_objects(custom_objects)
            if known.get(config) is not None:  # a function saved by name alone (older formats)
                return known[config]
        return config
    if isinstance(config, (list, tuple)):
        return [deserialize_value(x, custom_objects, safe_mode, rebuild, function_modules) for x in config]
    if not isinstance(config, dict):
        raise TypeError(f"Could not parse config: {config!r}")
    if not is_class_config(config):
        return {
            k: deserialize_value(v, custom_objects, safe_mode, rebuild, function_modules) for k, v in config.items()
        }
    class_name, inner = config["class_name"], config["config"] if config["config"] is not None else {}
    if class_name == "__tensor__":
        return torch.tensor(inner["value"], dtype=_torch_dtype(inner["dtype"]))
    if class_name == "__numpy__":
        return np.array(inner["value"], dtype=inner["dtype"])
    if class_name == "__bytes__":
        return inner["value"].encode("utf-8")
    if class_name == "__ellipsis__":
        return Ellipsis
    if class_name == "__slice__":
        return slice(
            *(deserialize_value(inner.get(k), custom_objects, safe_mode, rebuild, function_modules) for k in _SLICE)
        )
    if class_name == "__lambda__":
        raise ValueError(LAMBDA_REFUSED)
    if class_name == "function":
        return resolve_function(inner, config.get("module"), custom_objects, function_modules)
    if rebuild is None:
        raise ValueError(
            f"The config of a {class_name!r} object cannot be rebuilt here: use "
            "tritonnn.saving.deserialize_keras_object."
        )
    return rebuild(config)


_SLICE = ("start", "stop", "step")


def _torch_dtype(name: Any) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"Unknown dtype in a serialized tensor: {name!r}")
    return dtype
