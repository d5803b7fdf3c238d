"""Saving and loading models and weights: one safetensors file, never pickle.

File format (``format_version`` 1). A file is a plain `safetensors <https://github.com/huggingface/safetensors>`_
file: an 8-byte little-endian header length, a JSON header, then the raw tensor bytes. The header's
``__metadata__`` (strings only) holds:

- ``format``: ``"tritonnn"``; ``format_version``: ``"1"``; ``tritonnn_version``: the writer's version.
- ``kind``: ``"model"`` (from :func:`save_model`) or ``"weights"`` (from :func:`save_weights`).
- ``model_config`` (models only): JSON of :func:`serialize_layer` of the model, i.e. its class name, its
  ``get_config()`` and, for a class registered with :func:`register_keras_serializable`, its registered name.
  Sequential and Functional configs are in Keras' layout (``layers`` with the InputLayer and, for Functional,
  each layer's ``inbound_nodes``, ``input_layers``, ``output_layers``); files written before tritonnn followed it
  (a Sequential's ``input_shape``/``input_dtype``, a Functional's ``nodes``/``inputs``/``outputs``) still load.
- ``build_config``: JSON ``{"input_shape": [...]}`` for a built model (``null`` when it was never built).
- ``compile_config``: JSON of the compile arguments (``null`` for an uncompiled model).
- ``extra``: JSON that a caller attached (``BackupAndRestore`` records the epoch there).
- ``structure``: JSON ``{state_dict key: structural key}`` (:func:`structural_keys`: each layer name replaced by its
  position), with which :func:`load_weights` loads into another build of the same architecture, whose automatic
  layer names differ, as Keras loads by structure. Files written before it load by key only.

The tensors are the model's ``state_dict()`` under its own keys (``_layers.0.kernel``...), stored as they are,
plus the optimizer's ``state_dict()`` under the prefix ``optimizer/`` (``optimizer/iterations``,
``optimizer/learning_rate``, ``optimizer/m``...) when the model is compiled and its optimizer is built.

Loading reads the header as data. Classes resolve only from a registry (tritonnn's layers, ``Sequential``,
``Model``, ``Functional``, what was registered with :func:`register_keras_serializable`, and ``custom_objects``):
a name in a file is never imported and nothing in a file is executed. Writes go to a temporary file in the same
directory, are flushed and fsynced, then moved over the target with ``os.replace``: a crash mid-save leaves the
previous file intact. The file gets the permissions of any newly created file, ``0o666`` less the process's umask
(``0o644`` under the usual umask ``022``), as Keras' files do.

What a file may ask of the loader is checked before it is acted on, so that a damaged or forged file is a clear
``ValueError``, never wrong weights nor exhausted memory:

- Dtypes. Every stored tensor (the model's weights and the ``optimizer/`` state) is checked against the dtype of
  the weight or state it fills before anything is copied. Allowed: the same dtype, or a lossless widening of the
  same kind: ``float16`` or ``bfloat16`` to ``float32`` or ``float64``, ``float32`` to ``float64``, and a
  narrower integer to a wider signed one (``int8``/``uint8`` to ``int16``/``int32``/``int64``, ``int16`` to
  ``int32``/``int64``, ``int32`` to ``int64``). Refused: any conversion between integers, floats and ``bool``,
  any narrowing (``float32`` to ``float16``, ``float64`` to ``float32``...), and ``float16`` <-> ``bfloat16``.
- Memory. While :func:`load_model` (or :func:`load_weights`, for an unbuilt model) rebuilds the model from the
  file's config and build config, :meth:`Layer.add_weight` may create no more elements in all than the file
  stores for the model (its non-``optimizer/`` tensors; ``tritonnn.layers.layer.weight_budget``): a 3 KB file whose
  config asks for ``Dense(10**11)`` is refused before that weight is allocated. Every tritonnn layer creates its
  weights (BatchNormalization's moving statistics and Embedding's table included) through ``add_weight``; a custom
  layer that makes tensors by other means is not bounded this way, only checked against the file afterwards. The
  input shapes the config and the build config declare (``shape``, ``input_shape``, ``batch_shape`` entries) are
  bounded too: the model is built by calling it on one sample of zeros, so one sample may hold at most
  :data:`MAX_INPUT_ELEMENTS` elements (raise it to load a model with larger inputs).

File names follow Keras 3: a full model is saved to ``*.keras``; weights to ``*.weights.h5`` (Keras' name, so
Keras scripts run unchanged; the content is the format above, not HDF5) or ``*.weights.safetensors``.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import warnings
from typing import Any

import torch
from safetensors.torch import save as st_save

from . import (
    _file_format,
    _registry,
    _serialization,
    constraints,
    initializers,
    losses,
    metrics,
    optimizers,
    regularizers,
)
from ._process import is_chief
from ._registry import (
    GLOBAL_CUSTOM_NAMES,
    GLOBAL_CUSTOM_OBJECTS,
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)
from ._serialization import serialize_keras_object
from .file_editor import KerasFileEditor
from .layers.layer import Layer, weight_budget
from .optimizers import schedules
from .version import __version__

FORMAT_NAME, FORMAT_VERSION, OPTIMIZER_PREFIX = (
    _file_format.FORMAT_NAME,
    _file_format.FORMAT_VERSION,
    _file_format.OPTIMIZER_PREFIX,
)
MODEL_SUFFIXES = (".keras",)
WEIGHTS_SUFFIXES = (".weights.h5", ".weights.safetensors")
# The most elements one sample of a loaded model's declared input shapes may hold (256 MiB of float32): loading
# builds the model on one sample of zeros, whose size comes from the file.
MAX_INPUT_ELEMENTS = 2**26

# (stored dtype, dtype of the weight it fills) pairs that load besides equal dtypes: lossless widenings.
_LOSSLESS_WIDENING = frozenset(
    {
        (torch.float16, torch.float32),
        (torch.float16, torch.float64),
        (torch.bfloat16, torch.float32),
        (torch.bfloat16, torch.float64),
        (torch.float32, torch.float64),
        *((small, big) for small in (torch.int8, torch.uint8) for big in (torch.int16, torch.int32, torch.int64)),
        (torch.int16, torch.int32),
        (torch.int16, torch.int64),
        (torch.int32, torch.int64),
    }
)

# Custom classes registered by `register_keras_serializable` (keyed by "package>name"): tritonnn/_registry.py.
_GLOBAL_CUSTOM_OBJECTS = GLOBAL_CUSTOM_OBJECTS
_GLOBAL_CUSTOM_NAMES = GLOBAL_CUSTOM_NAMES


# ---- registry --------------------------------------------------------------------------------------------------


def _builtin_objects() -> dict[str, Any]:
    """tritonnn's own serializable classes by class name: every public ``Layer`` subclass defined in tritonnn (the
    layers and the model classes ``Model``, ``Sequential``, ``Functional``).

    Found by walking ``Layer``'s subclasses rather than by importing ``tritonnn.layers`` and ``tritonnn.models``
    here: the models import this module (to save themselves), and every such class is defined once ``tritonnn``
    is imported. Classes defined outside tritonnn (a user's, a test's) resolve only through the registry or
    ``custom_objects``.
    """
    out: dict[str, Any] = {}
    pending = [Layer]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".", 1)[0] == "tritonnn" and not cls.__name__.startswith("_"):
            out.setdefault(cls.__name__, cls)
    return out


def _resolve_class(class_name: str, registered_name: str | None, custom_objects: dict[str, Any] | None) -> Any:
    custom = {**(custom_objects or {}), **_registry.scope_objects()}  # an active custom_object_scope counts
    for key in (registered_name, class_name):
        if key is not None and key in custom:
            return custom[key]
    if registered_name is not None and registered_name in _GLOBAL_CUSTOM_OBJECTS:
        return _GLOBAL_CUSTOM_OBJECTS[registered_name]
    builtins = _builtin_objects()
    if class_name in builtins:
        return builtins[class_name]
    # A nested config without a registered name: a registered class matches on its short name.
    matches = [obj for key, obj in _GLOBAL_CUSTOM_OBJECTS.items() if key.split(">", 1)[1] == class_name]
    if len(matches) == 1:
        return matches[0]
    known = sorted({*builtins, *_GLOBAL_CUSTOM_OBJECTS, *custom})
    what = class_name if registered_name in (None, class_name) else f"{class_name} (registered as {registered_name})"
    raise ValueError(
        f"Could not locate class {what!r}. Make sure custom classes are decorated with "
        "`@tritonnn.saving.register_keras_serializable()` or passed in `custom_objects`. "
        f"Known classes: {known}"
    )


# ---- layers and models to and from configs ----------------------------------------------------------------------


def serialize_layer(layer: Any) -> dict[str, Any]:
    """A layer (or model) as ``{"class_name", "config"[, "registered_name"]}``, JSON-ready.

    ``registered_name`` is present when the class was registered with :func:`register_keras_serializable`.
    """
    if not isinstance(layer, Layer):
        raise ValueError(f"Expected `layer` to be a tritonnn Layer. Received: layer={layer!r}")
    cls = type(layer)
    out: dict[str, Any] = {"class_name": cls.__name__, "config": _jsonable(layer.get_config(), cls.__name__)}
    if cls in _GLOBAL_CUSTOM_NAMES:
        out["registered_name"] = _GLOBAL_CUSTOM_NAMES[cls]
    return out


def _jsonable(value: Any, where: str) -> Any:
    """Tuples become lists; anything JSON cannot hold is an error naming where it came from."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy/torch scalars
        return value.item()
    raise ValueError(
        f"The config of {where} holds a value that cannot be serialized to JSON: {value!r} ({type(value).__name__})"
    )


def deserialize_layer(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Any:
    """Rebuild a layer (or model) from what :func:`serialize_layer` returned.

    Args:
        config: a dict with ``class_name``, ``config`` and optionally ``registered_name``.
        custom_objects: optional dict mapping class names (or registered names) to classes.

    The class comes only from the registry; nothing named in ``config`` is imported.
    """
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(
            'Expected `config` to be a dict with a string "class_name" and a dict "config". '
            f"Received: config={config!r}"
        )
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise ValueError(f"Expected `custom_objects` to be a dict or None. Received: custom_objects={custom_objects!r}")
    inner = config.get("config", {})
    if not isinstance(inner, dict):
        raise ValueError(f'Expected config["config"] to be a dict. Received: {inner!r}')
    registered_name = config.get("registered_name")
    if registered_name is not None and not isinstance(registered_name, str):
        raise ValueError(f'Expected config["registered_name"] to be a string. Received: {registered_name!r}')
    cls = _resolve_class(config["class_name"], registered_name, custom_objects)
    if not (inspect.isclass(cls) and issubclass(cls, Layer)):
        raise ValueError(f"Expected {config['class_name']!r} to resolve to a Layer class. Received: {cls!r}")
    # The custom objects are known to the nested configs (a custom function as a Dense's constraint...), as in Keras.
    scope = CustomObjectScope({**_registry.scope_objects(), **(custom_objects or {})})
    try:
        with scope:
            if "custom_objects" in inspect.signature(cls.from_config).parameters:
                return cls.from_config(inner, custom_objects=custom_objects)
            return cls.from_config(inner)
    except TypeError as e:  # e.g. an argument the class's from_config does not take
        raise ValueError(f"Could not rebuild a {config['class_name']!r} from its config: {e}") from e
    except ValueError as e:
        if "Unrecognized keyword arguments" not in str(e):  # the class's own checks say what is wrong
            raise
        raise ValueError(f"Could not rebuild a {config['class_name']!r} from its config: {e}") from e


# ---- Keras objects of every kind to and from configs -------------------------------------------------------------

# The kinds of objects deserialize_keras_object rebuilds, by the module segment a config names ("keras.losses",
# "keras.src.backend.torch.optimizers.torch_adam", "tritonnn.layers.core"...): the tritonnn module that holds them.
_KIND_MODULES: dict[str, Any] = {
    "losses": losses,
    "metrics": metrics,
    "schedules": schedules,
    "optimizers": optimizers,
    "initializers": initializers,
    "regularizers": regularizers,
    "constraints": constraints,
}
_SERIALIZABLE_BASES = (
    Layer,
    losses.Loss,
    metrics.Metric,
    optimizers.Optimizer,
    initializers.Initializer,
    regularizers.Regularizer,
    constraints.Constraint,
    schedules.LearningRateSchedule,
)
# Where a function saved under "builtins" is found beside keras.activations (Keras' built-in function modules).
_FUNCTIONS = (losses, metrics)
# Keras' top-level classes (module "keras") that configs name.
_TOP_LEVEL = {
    "Loss": losses.Loss,
    "Metric": metrics.Metric,
    "Optimizer": optimizers.Optimizer,
    "Initializer": initializers.Initializer,
    "Regularizer": regularizers.Regularizer,
}


def _kind(module: Any) -> str | None:
    """Which kind of object a config's ``module`` names: "top" for ``keras``, a key of _KIND_MODULES, "layers"
    (layers and models), or None for a module of neither Keras nor tritonnn (a user's, never imported)."""
    if not isinstance(module, str):
        return None
    parts = module.split(".")
    if parts[0] not in ("keras", "tritonnn"):
        return None
    if len(parts) == 1:
        return "top"
    if "schedules" in parts:
        return "schedules"
    for part in parts[1:]:
        if part in _KIND_MODULES:
            return part
        if part in ("layers", "models"):
            return "layers"
    return None


def _retrieve_class(config: dict[str, Any], custom_objects: dict[str, Any] | None) -> Any:
    """The class a config names, found as Keras finds it: by its registered name in the active scope, the registry
    and ``custom_objects``; else, for a Keras or tritonnn module, tritonnn's class of that name and kind. A module
    is never imported."""
    class_name = config["class_name"]
    registered_name = config.get("registered_name", class_name)
    if isinstance(registered_name, str):
        found = get_registered_object(registered_name, custom_objects)
        if found is not None:
            return found
    module = config.get("module")
    kind = _kind(module)
    found = None
    if kind == "top":
        found = _TOP_LEVEL.get(class_name) or _builtin_objects().get(class_name)
    elif kind == "layers":
        found = _builtin_objects().get(class_name)
    elif kind is not None:
        found = getattr(_KIND_MODULES[kind], class_name, None)
    if inspect.isclass(found) and issubclass(found, _SERIALIZABLE_BASES):
        return found
    where = f" (module {module!r})" if module else ""
    raise TypeError(
        f"Could not locate class {class_name!r}{where}. Make sure custom classes are decorated with "
        "`@tritonnn.saving.register_keras_serializable()` or passed in `custom_objects` (or a "
        "`custom_object_scope`); a module named in a config is never imported."
    )


def _rebuild(config: dict[str, Any], custom_objects: dict[str, Any] | None, safe_mode: bool) -> Any:
    """An object rebuilt from its ``{"module", "class_name", "config", "registered_name"}`` config."""
    cls = _retrieve_class(config, custom_objects)
    if not inspect.isclass(cls):
        return cls  # a function registered under the class name
    if not callable(getattr(cls, "from_config", None)):
        raise TypeError(
            f"Unable to reconstruct an instance of {config['class_name']!r} because the class is missing a "
            f"`from_config()` method. Full object config: {config}"
        )
    inner = config["config"] if config["config"] is not None else {}
    if not isinstance(inner, dict):
        raise TypeError(f"Expected 'config' to be a dict for {config['class_name']}, instead got {type(inner)}")
    known = {**(custom_objects or {}), **_registry.scope_objects()}
    with CustomObjectScope(known):  # the nested configs' custom objects are found while from_config runs
        try:
            if "custom_objects" in inspect.signature(cls.from_config).parameters:
                instance = cls.from_config(dict(inner), custom_objects=known)
            else:
                instance = cls.from_config(dict(inner))
        except TypeError as e:
            raise TypeError(f"{cls} could not be deserialized properly: {e}. Full object config: {config}") from e
        build_config = config.get("build_config")
        builder = getattr(instance, "build_from_config", None)
        if build_config and not getattr(instance, "built", True) and callable(builder):
            builder(build_config)
        compile_config = config.get("compile_config")
        if compile_config and callable(getattr(instance, "compile_from_config", None)):
            instance.compile_from_config(compile_config)
    return instance


def deserialize_keras_object(
    config: Any, custom_objects: dict[str, Any] | None = None, safe_mode: bool = True, **kwargs: Any
) -> Any:
    """The object a :func:`serialize_keras_object` config describes (Keras' ``deserialize_keras_object``).

    Args:
        config: what ``serialize_keras_object`` returned: a ``{"module", "class_name", "config",
            "registered_name"}`` dict for a layer, model, loss, metric, optimizer, initializer, regularizer,
            constraint or schedule (built-in, registered, or in ``custom_objects``), a function record, a
            serialized array or tensor, or plain values, lists and dicts of them.
        custom_objects: optional dict mapping names to custom classes and functions.
        safe_mode: accepted as in Keras. Deserialization is always safe here: a Python lambda is refused whatever
            its value, and no module a config names is imported.
        module_objects: optional dict of more names (Keras' keyword for library authors).

    Raises:
        TypeError: a class or function the config names cannot be found (as in Keras).
        ValueError: the config holds a Python lambda.
    """
    module_objects = kwargs.pop("module_objects", None)
    if kwargs:
        raise TypeError(f"deserialize_keras_object() got unexpected keyword arguments: {sorted(kwargs)}")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise ValueError(f"Expected `custom_objects` to be a dict or None. Received: custom_objects={custom_objects!r}")
    if not isinstance(safe_mode, bool):
        raise ValueError(f"Expected `safe_mode` to be a bool. Received: safe_mode={safe_mode!r}")
    custom = {**(module_objects or {}), **(custom_objects or {})}
    return _serialization.deserialize_value(
        config, custom, safe_mode, rebuild=lambda cfg: _rebuild(cfg, custom, safe_mode), function_modules=_FUNCTIONS
    )


_registry.set_object_deserializer(deserialize_keras_object)  # for keras.layers.deserialize (layers sit below here)


# ---- build and compile configs ----------------------------------------------------------------------------------


def _build_config(model: Any) -> dict[str, Any] | None:
    """The input shape a built model was built with (``None`` when it was never built)."""
    if not model.built:
        return None
    if hasattr(model, "get_build_config"):
        cfg = model.get_build_config()
        if cfg is not None:
            return _jsonable(cfg, type(model).__name__)
    input_layer = getattr(model, "_input_layer", None)
    if input_layer is not None:
        return {"input_shape": [None, *input_layer.shape]}
    shape = getattr(model, "_build_input_shape", None)
    if shape is not None:
        return {"input_shape": _jsonable(shape, type(model).__name__)}
    return None


def _builds_itself(model: Any) -> bool:
    """A Functional model is built by ``from_config`` itself: its inputs are part of its config."""
    return bool(getattr(model, "builds_from_config", False))


def _build_from_config(model: Any, build_config: dict[str, Any] | None) -> None:
    if model.built or build_config is None:
        return
    shape = build_config.get("input_shape") if isinstance(build_config, dict) else None
    if not isinstance(shape, list) or not all(d is None or (isinstance(d, int) and d >= 0) for d in shape):
        raise ValueError(
            'Expected the build_config to be {"input_shape": [None, 4, ...]}. '
            f"Received: build_config={build_config!r}"
        )
    if hasattr(model, "build_from_config"):
        model.build_from_config(build_config)
    else:
        model.build(tuple(build_config["input_shape"]))
        model.built = True


def _compile_config(model: Any) -> dict[str, Any] | None:
    """The model's compile arguments (``Model.get_compile_config()``) as JSON; ``None`` for an uncompiled model."""
    get = getattr(model, "get_compile_config", None)
    cfg = get() if get is not None else None
    return None if cfg is None else _jsonable(cfg, f"{type(model).__name__}.get_compile_config()")


def _compile_from_config(model: Any, config: dict[str, Any], custom_objects: dict[str, Any] | None, path: str) -> None:
    """``model.compile_from_config``, with losses and metrics saved by name looked up in ``custom_objects`` and
    the registry first (a custom function is saved as its name, as in Keras)."""
    known = {
        **{k.split(">", 1)[1]: v for k, v in _GLOBAL_CUSTOM_OBJECTS.items()},
        **_registry.scope_objects(),
        **(custom_objects or {}),
    }

    def resolve(value: Any) -> Any:
        if isinstance(value, str):
            return known.get(value, value)
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, dict) and "class_name" not in value:
            return {k: resolve(v) for k, v in value.items()}
        return value

    config = dict(config)
    for key in ("loss", "metrics", "weighted_metrics"):
        if key in config:
            config[key] = resolve(config[key])
    try:
        # Objects saved in Keras' layout (a function record, a custom class) are rebuilt by compile_from_config,
        # which finds them in the scope, as Keras' load_model does.
        with CustomObjectScope({**_registry.scope_objects(), **(custom_objects or {})}):
            model.compile_from_config(config)
    except ValueError as e:
        raise ValueError(
            f"Could not compile the model loaded from {path}: {e}. Pass the custom losses and metrics it was "
            "compiled with in `custom_objects`, or load it with `compile=False`."
        ) from e


# ---- file I/O ---------------------------------------------------------------------------------------------------


def _check_path(filepath: Any, suffixes: tuple[str, ...], what: str) -> str:
    if not isinstance(filepath, (str, os.PathLike)):
        raise ValueError(f"Expected `filepath` to be a str or os.PathLike. Received: filepath={filepath!r}")
    path = os.fspath(filepath)
    if not path.endswith(suffixes):
        raise ValueError(
            f"The filepath for {what} must end in {' or '.join(repr(s) for s in suffixes)}. Received: filepath={path}"
        )
    return path


def _tensors_of(model: Any, include_optimizer: bool) -> dict[str, torch.Tensor]:
    """The model's state (and the optimizer's under ``optimizer/``), as independent contiguous CPU tensors.

    Parameters are views into the optimizer's flat buffer, and safetensors refuses tensors that share memory,
    so each one is copied.
    """
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    optimizer = getattr(model, "optimizer", None)
    if include_optimizer and optimizer is not None and getattr(optimizer, "built", False):
        for k, v in optimizer.state_dict().items():
            tensors[OPTIMIZER_PREFIX + k] = v.detach().to("cpu", copy=True).contiguous()
    return tensors


def _write(
    model: Any, path: str, kind: str, overwrite: bool, extra: dict[str, Any] | None, include_optimizer: bool = True
) -> None:
    if not isinstance(overwrite, bool):
        raise ValueError(f"Expected `overwrite` to be a bool. Received: overwrite={overwrite!r}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "tritonnn_version": __version__,
        "kind": kind,
        "build_config": json.dumps(_build_config(model)),
        "compile_config": json.dumps(_compile_config(model)),
        "extra": json.dumps(_jsonable(extra or {}, "extra")),
    }
    if kind == "model":
        metadata["model_config"] = json.dumps(serialize_layer(model))
    tensors = _tensors_of(model, include_optimizer=include_optimizer) if model.built else {}
    metadata["structure"] = json.dumps(structural_keys(model))
    _file_format.atomic_write(path, st_save(tensors, metadata=metadata))


def structural_keys(model: Any) -> dict[str, str]:
    """``{state_dict key: the same key with each layer name replaced by its position}``.

    A Functional model keys its layers by name (``_layer_modules.dense_3.kernel``), and names are numbered per
    session: the same architecture built twice has other keys. Keras loads weights by structure, not by name; so
    does :func:`load_weights` when the keys differ: the file records this mapping (its ``structure`` entry) and a
    model whose structural keys are the file's, shapes and dtypes checked as ever, takes the weights by position.
    Each component that names an entry of a ``torch.nn.ModuleDict`` becomes ``#<index>``; the rest stay."""
    out: dict[str, str] = {}
    for key in model.state_dict():
        module, parts = model, []
        for part in key.split("."):
            children = getattr(module, "_modules", {})
            if isinstance(module, torch.nn.ModuleDict) and part in children:
                parts.append(f"#{list(children).index(part)}")
            else:
                parts.append(part)
            module = children.get(part) if part in children else None
            if module is None:
                module = _NO_MODULE
        out[key] = ".".join(parts)
    return out


class _NoModule:
    _modules: dict[str, Any] = {}


_NO_MODULE = _NoModule()


def _by_structure(model: Any, contents: _Contents, path: str) -> dict[str, str] | None:
    """``{file key: model key}`` when the file's keys are not the model's but its recorded structure is (see
    :func:`structural_keys`), else None."""
    raw = contents.metadata.get("structure")
    if raw is None:
        return None
    recorded = contents.json("structure", path)
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        raise ValueError(f"{path} is not a valid tritonnn file: its 'structure' entry is not a mapping of keys")
    ours = structural_keys(model)
    by_skey = {v: k for k, v in ours.items()}
    if len(by_skey) != len(ours) or len(set(recorded.values())) != len(recorded):
        return None  # two keys of one structure (a shared layer under two names): positions are ambiguous
    file_keys = {k for k in contents.tensors if not k.startswith(OPTIMIZER_PREFIX)}
    if set(recorded) != file_keys or set(recorded.values()) != set(by_skey):
        return None
    return {k: by_skey[skey] for k, skey in recorded.items()}


def save_model(
    model: Any, filepath: str | os.PathLike, overwrite: bool = True, zipped: bool | None = None, **kwargs: Any
) -> None:
    """Save a model (config, compile config, weights and optimizer state) to one ``.keras`` file (Keras'
    ``keras.saving.save_model`` / ``keras.models.save_model``).

    Args:
        model: a tritonnn ``Model``.
        filepath: where to write; must end in ``.keras``.
        overwrite: whether to replace an existing file (otherwise ``FileExistsError``).
        zipped: Keras' choice between a zip archive (None or True, the default) and a directory (False). tritonnn
            writes one safetensors file either way, so ``zipped=False`` is refused with a ``ValueError``.
        include_optimizer: keyword; False leaves the optimizer's state out of the file (the compile config stays).
        save_format: Keras' deprecated keyword, accepted only as ``"keras"`` (or False), like the file's suffix.

    A model that was never built is saved as its config only (it has no weights yet). In a data-parallel run
    (``tritonnn.distribution``) rank 0 alone writes the file; on the other ranks the call checks its arguments and
    returns without waiting (call ``tritonnn.distribution.barrier()`` before reading the file from them).
    """
    include_optimizer = kwargs.pop("include_optimizer", True)
    save_format = kwargs.pop("save_format", False)
    if kwargs:
        raise ValueError(f"The following argument(s) are not supported: {list(kwargs.keys())}")
    if not isinstance(include_optimizer, bool):
        raise ValueError(
            f"Expected `include_optimizer` to be a bool. Received: include_optimizer={include_optimizer!r}"
        )
    if save_format not in (False, None, "keras"):
        raise ValueError(
            "The `save_format` argument is deprecated in Keras 3 and tritonnn writes only `.keras` files. Remove it "
            f"and pass a file path ending in `.keras`. Received: save_format={save_format!r}"
        )
    if zipped is not None and not isinstance(zipped, bool):
        raise ValueError(f"Expected `zipped` to be a bool or None. Received: zipped={zipped!r}")
    if zipped is False:
        raise ValueError(
            "zipped=False (Keras' unzipped directory layout) is not supported: tritonnn saves a model as one "
            "safetensors file. Leave `zipped` at None."
        )
    # A Model is a Layer that compiles (the models import this module, so it does not import them).
    if not (isinstance(model, Layer) and callable(getattr(model, "get_compile_config", None))):
        raise ValueError(f"Expected `model` to be a tritonnn Model. Received: model={model!r}")
    path = _check_path(filepath, MODEL_SUFFIXES, "a saved model")
    if model.built and _build_config(model) is None and not _builds_itself(model):
        raise ValueError(
            f"Cannot save the model {model.name!r}: it is built, but the input shape it was built with is not "
            "recorded, so it could not be rebuilt when loaded. Start the model with `tritonnn.Input(shape=...)`."
        )
    if is_chief():  # one writer in a data-parallel run
        _write(model, path, "model", overwrite, None, include_optimizer=include_optimizer)


def save_weights(
    model: Any, filepath: str | os.PathLike, overwrite: bool = True, max_shard_size: Any = None, **kwargs: Any
) -> None:
    """Save a built model's weights (and its optimizer's state, when compiled and built), Keras' ``save_weights``.

    Args:
        model: a built tritonnn ``Model`` or ``Layer``.
        filepath: must end in ``.weights.h5`` or ``.weights.safetensors`` (both hold the format of this module).
        overwrite: whether to replace an existing file (otherwise ``FileExistsError``).
        max_shard_size: Keras' sharded weights (several files); not supported: must be None (``ValueError``).

    In a data-parallel run rank 0 alone writes the file, as for :func:`save_model`.
    """
    if kwargs:
        raise ValueError(f"The following argument(s) are not supported: {list(kwargs.keys())}")
    if max_shard_size is not None:
        raise ValueError(
            "max_shard_size (Keras' weights sharded over several files) is not supported: tritonnn writes the "
            f"weights as one file. Leave it at None. Received: max_shard_size={max_shard_size!r}"
        )
    if not isinstance(model, Layer):
        raise ValueError(f"Expected `model` to be a tritonnn Model or Layer. Received: model={model!r}")
    path = _check_path(filepath, WEIGHTS_SUFFIXES, "saved weights")
    if not model.built:
        raise ValueError(
            f"Cannot save the weights of {model.name!r}: it has not been built yet, so it has no weights. Build it "
            "by calling it on data, by `build(input_shape)`, or by starting it with `tritonnn.Input(shape=...)`."
        )
    if is_chief():  # one writer in a data-parallel run
        _write(model, path, "weights", overwrite, None)


class _Contents:
    """What a file holds: its metadata strings and its tensors."""

    def __init__(self, metadata: dict[str, str], tensors: dict[str, torch.Tensor]):
        self.metadata = metadata
        self.tensors = tensors

    def json(self, key: str, path: str) -> Any:
        if key not in self.metadata:
            raise ValueError(f"{path} is not a valid tritonnn file: its header has no {key!r} entry")
        try:
            return json.loads(self.metadata[key])
        except (json.JSONDecodeError, RecursionError) as e:
            raise ValueError(f"{path} is not a valid tritonnn file: the header entry {key!r} is not JSON ({e})") from e


def _read(path: str) -> _Contents:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"Expected `filepath` to be a str or os.PathLike. Received: filepath={path!r}")
    return _Contents(*_file_format.read(os.fspath(path)))


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _check_dtype(what: str, key: str, stored: torch.dtype, expected: torch.dtype, path: str) -> None:
    """A stored tensor fills a weight (or optimizer state) only as the same dtype or a lossless widening of it.

    ``what`` is ``"model's weight"`` or ``"optimizer's state"``.
    """
    if stored == expected or (stored, expected) in _LOSSLESS_WIDENING:
        return
    raise ValueError(
        f"The tensor {key!r} in {path} is stored as {_dtype_name(stored)}, but the {what} it fills is "
        f"{_dtype_name(expected)}: a stored tensor loads only into the same dtype or a lossless widening of it "
        "(float16/bfloat16 -> float32/float64, float32 -> float64, a narrower integer -> a wider signed one), "
        "never between integers and floats nor narrowed. The file is corrupt, forged, or from a model with "
        "other dtypes; nothing was loaded."
    )


def _load_state(model: Any, contents: _Contents, path: str, load_optimizer: bool, skip_mismatch: bool = False) -> None:
    """Copy the file's tensors into ``model`` (and its optimizer), checking keys, shapes and dtypes first.

    With ``skip_mismatch`` (Keras' ``load_weights(skip_mismatch=True)``), a layer with a weight the file lacks or
    holds with another shape is skipped whole (all its weights keep their values), and a tensor the model lacks is
    ignored, with a warning instead of an error; the optimizer state is then not restored (it would not fit).
    """
    weights = {k: v for k, v in contents.tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}
    own = model.state_dict()
    if set(weights) != set(own):  # other names, the same structure (another build of the same model)?
        renamed = _by_structure(model, contents, path)
        if renamed is not None:
            weights = {renamed[k]: v for k, v in weights.items()}
    unknown = sorted(set(weights) - set(own))
    missing = sorted(set(own) - set(weights))
    if skip_mismatch:
        reshaped = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
        # As Keras, a layer with any missing or mismatched weight is skipped whole ("_layers.0.kernel" -> "_layers.0").
        bad_layers = {k.rsplit(".", 1)[0] for k in (*missing, *reshaped)}
        skipped = sorted(k for k in own if k.rsplit(".", 1)[0] in bad_layers)
        if unknown or skipped:
            warnings.warn(
                f"Skipping weights of {model.name!r} that do not match {path} (skip_mismatch=True): missing from the "
                f"file: {missing}; in the file but not in the model: {unknown}; of another shape: "
                + ", ".join(f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}" for k in reshaped)
                + f"; not loaded (their layers are skipped whole): {skipped}. The optimizer state is not restored.",
                stacklevel=3,
            )
            own = {k: v for k, v in own.items() if k not in skipped}
            load_optimizer = False
    if (unknown or missing) and not skip_mismatch:
        raise ValueError(
            f"The weights in {path} do not match the model {model.name!r}: "
            f"missing from the file: {missing}; in the file but not in the model: {unknown}"
        )
    for key, target in own.items():
        if tuple(weights[key].shape) != tuple(target.shape):
            raise ValueError(
                f"The weight {key!r} in {path} has shape {tuple(weights[key].shape)}, but the model expects "
                f"{tuple(target.shape)}"
            )
    for key, target in own.items():
        _check_dtype("model's weight", key, weights[key].dtype, target.dtype, path)
    opt_state = {k[len(OPTIMIZER_PREFIX) :]: v for k, v in contents.tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
    optimizer = getattr(model, "optimizer", None)
    restore_optimizer = bool(load_optimizer and opt_state and optimizer is not None)
    if restore_optimizer:
        # Built before anything is copied, so that its state's dtypes can be checked first.
        if hasattr(model, "_ensure_optimizer"):
            model._ensure_optimizer()
        elif not optimizer.built:
            optimizer.build(model.trainable_weights)
        expected = {k: v.dtype for k, v in optimizer.state_dict().items()}
        for key, value in opt_state.items():
            if key in expected:  # a key the optimizer does not hold is not loaded (as load_state_dict does)
                _check_dtype("optimizer's state", OPTIMIZER_PREFIX + key, value.dtype, expected[key], path)
        own = {k: v for k, v in model.state_dict().items() if k in own}  # building moved the parameters
    with torch.no_grad():
        for key, target in own.items():
            target.copy_(weights[key].to(target.device, target.dtype))
    if restore_optimizer:
        device = optimizer.flat_param.device if optimizer.flat_param is not None else "cpu"
        try:
            optimizer.load_state_dict({k: v.to(device) for k, v in opt_state.items()})
        except ValueError as e:
            raise ValueError(f"The optimizer state in {path} does not fit the model's optimizer: {e}") from e


def _model_elements(contents: _Contents) -> int:
    """How many elements the file stores for the model (its tensors but the optimizer's)."""
    return sum(v.numel() for k, v in contents.tensors.items() if not k.startswith(OPTIMIZER_PREFIX))


def _check_input_shapes(config: Any, what: str, path: str) -> None:
    """Refuse a declared input shape whose one sample would exceed MAX_INPUT_ELEMENTS, before it is allocated."""
    for shape in _file_format.declared_shapes(config):
        n = math.prod(1 if d is None else d for d in shape)
        if n > MAX_INPUT_ELEMENTS:
            raise ValueError(
                f"The {what} in {path} declares the input shape {shape}: {n} elements per sample, and loading builds "
                f"the model on one sample; tritonnn loads at most {MAX_INPUT_ELEMENTS} elements per sample "
                "(tritonnn.saving.MAX_INPUT_ELEMENTS: raise it to load a model with larger inputs from a file you "
                "trust)."
            )


def load_model(
    filepath: str | os.PathLike,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> Any:
    """Load a model saved by :func:`save_model`: rebuilt from its config, weights and optimizer state restored.

    Args:
        filepath: a ``.keras`` file written by tritonnn.
        custom_objects: optional dict mapping class names (or registered names) to classes.
        compile: whether to compile the model from the saved compile config (and restore the optimizer state).
        safe_mode: accepted for Keras compatibility. Loading is always safe: the format holds no code and no
            pickles, classes come only from the registry, and a ``Lambda`` layer's Python lambda is refused
            whatever ``safe_mode`` is (Keras runs it with ``safe_mode=False``).
    """
    if not isinstance(compile, bool):
        raise ValueError(f"Expected `compile` to be a bool. Received: compile={compile!r}")
    if not isinstance(safe_mode, bool):
        raise ValueError(f"Expected `safe_mode` to be a bool. Received: safe_mode={safe_mode!r}")
    path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else filepath
    contents = _read(path)
    if contents.metadata.get("kind") != "model":
        raise ValueError(
            f"{path} holds {contents.metadata.get('kind')!r}, not a model; load it with `load_weights(model, path)`"
        )
    model_config = contents.json("model_config", path)
    build_config = contents.json("build_config", path)
    _check_input_shapes(model_config, "model config", path)
    _check_input_shapes(build_config, "build_config", path)
    weights = [k for k in contents.tensors if not k.startswith(OPTIMIZER_PREFIX)]
    # Rebuilding creates no more weight elements than the file stores for the model (see the module docstring).
    # The custom objects are known to every nested from_config (a custom activation of a Dense...), as in Keras.
    scope = CustomObjectScope({**_registry.scope_objects(), **(custom_objects or {})})
    with weight_budget(_model_elements(contents), source=f"the file {path}"), scope:
        model = deserialize_layer(model_config, custom_objects)
        if weights and not model.built:
            if build_config is None:
                raise ValueError(f"{path} holds weights but no build_config: the model cannot be rebuilt to hold them")
            _build_from_config(model, build_config)
    compile_config = contents.json("compile_config", path)
    if compile and compile_config is not None:
        _compile_from_config(model, compile_config, custom_objects, path)
    if weights or model.built:
        _load_state(model, contents, path, load_optimizer=compile)
    return model


def load_weights(model: Any, filepath: str | os.PathLike, skip_mismatch: bool = False, **kwargs: Any) -> None:
    """Load weights (and optimizer state, when the model is compiled) saved by :func:`save_weights` or
    :func:`save_model` into ``model``, which must have the same architecture (Keras' ``load_weights``).

    Args:
        model: a tritonnn ``Model`` or ``Layer``; an unbuilt one is first built with the input shape the file
            records.
        filepath: a file written by :func:`save_weights` or :func:`save_model`.
        skip_mismatch: skip (with a warning) each layer whose weights the file lacks or holds with another shape,
            instead of refusing the file, as Keras; the optimizer state is then not restored.

    Keras' legacy keywords ``by_name`` (HDF5 files only) and ``objects_to_skip`` are refused with a ``ValueError``.
    """
    for legacy in ("by_name", "objects_to_skip"):
        if kwargs.pop(legacy, None) is not None:
            raise ValueError(f"`{legacy}` is not supported: it applies to Keras' HDF5 weight files, not tritonnn's.")
    if kwargs:
        raise ValueError(f"Invalid keyword arguments: {kwargs}")
    if not isinstance(skip_mismatch, bool):
        raise ValueError(f"Expected `skip_mismatch` to be a bool. Received: skip_mismatch={skip_mismatch!r}")
    if not isinstance(model, Layer):
        raise ValueError(f"Expected `model` to be a tritonnn Model or Layer. Received: model={model!r}")
    path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else filepath
    contents = _read(path)
    if not model.built:
        build_config = contents.json("build_config", path)
        if build_config is None:
            raise ValueError(
                f"Cannot load weights into {model.name!r}: it is not built and {path} records no input shape. "
                "Build the model first (call it on data or `build(input_shape)`)."
            )
        _check_input_shapes(build_config, "build_config", path)
        with weight_budget(_model_elements(contents), source=f"the file {path}"):
            _build_from_config(model, build_config)
    _load_state(model, contents, path, load_optimizer=getattr(model, "compiled", False), skip_mismatch=skip_mismatch)


def save_checkpoint(model: Any, filepath: str | os.PathLike, extra: dict[str, Any]) -> None:
    """Write a training checkpoint: the model's weights, its optimizer's state and ``extra`` (JSON) in the header.

    ``BackupAndRestore`` records its epoch, step and shuffle state in ``extra``. The file is a weights file
    (``load_weights`` reads it too); it is replaced atomically. Every process writes: the caller picks the writer.
    """
    _write(model, os.fspath(filepath), "weights", True, extra)


def restore_checkpoint(model: Any, filepath: str | os.PathLike) -> dict[str, Any]:
    """Load a :func:`save_checkpoint` file's weights and optimizer state into ``model`` as it is (built, compiled);
    return the ``extra`` dict it was written with."""
    path = os.fspath(filepath)
    contents = _read(path)
    _load_state(model, contents, path, load_optimizer=True)
    return contents.json("extra", path)


__all__ = [
    "CustomObjectScope",
    "KerasFileEditor",
    "custom_object_scope",
    "deserialize_keras_object",
    "deserialize_layer",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "load_model",
    "load_weights",
    "register_keras_serializable",
    "restore_checkpoint",
    "save_checkpoint",
    "save_model",
    "save_weights",
    "serialize_keras_object",
    "serialize_layer",
]
