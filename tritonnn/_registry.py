"""Keras' registry of custom objects: ``register_keras_serializable``, ``get_registered_object`` and
``custom_object_scope``, with no first-party import, so that every module that resolves names from a config
(``tritonnn.saving``, ``tritonnn.activations``, the layers) can consult it. ``tritonnn.saving`` and
``tritonnn.utils`` export it.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

# Custom objects registered by `register_keras_serializable`, keyed by "package>name", and the reverse map.
GLOBAL_CUSTOM_OBJECTS: dict[str, Any] = {}
GLOBAL_CUSTOM_NAMES: dict[Any, str] = {}

# ---- the registry -----------------------------------------------------------------------------------------------


def register_keras_serializable(package: str = "Custom", name: str | None = None) -> Callable[[Any], Any]:
    """Register a class or function so that saved models that use it can be loaded (Keras' decorator).

    The object is known as ``"package>name"`` (``name`` defaults to its ``__name__``).

    Example::

        @tritonnn.saving.register_keras_serializable(package="my_package")
        class Scale(tritonnn.layers.Layer):
            ...
    """
    if not isinstance(package, str) or not package or ">" in package:
        raise ValueError(f"Expected `package` to be a non-empty string without '>'. Received: package={package!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"Expected `name` to be a non-empty string or None. Received: name={name!r}")

    def decorator(obj: Any) -> Any:
        class_name = name if name is not None else getattr(obj, "__name__", None)
        if not class_name:
            raise ValueError(f"Cannot register {obj!r}: it has no __name__; pass `name=`")
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError(f"Cannot register {obj.__name__}: the class must implement get_config()")
        registered_name = f"{package}>{class_name}"
        GLOBAL_CUSTOM_OBJECTS[registered_name] = obj
        GLOBAL_CUSTOM_NAMES[obj] = registered_name
        return obj

    return decorator


def get_custom_objects() -> dict[str, Any]:
    """The live registry of custom objects, keyed by registered name (``"package>name"``), as in Keras. Objects
    made known by :class:`custom_object_scope` are not in it."""
    return GLOBAL_CUSTOM_OBJECTS


def get_registered_name(obj: Any) -> str:
    """The name ``obj`` is registered under, or its ``__name__`` when it is not registered."""
    try:
        if obj in GLOBAL_CUSTOM_NAMES:
            return GLOBAL_CUSTOM_NAMES[obj]
    except TypeError:  # an unhashable object is never registered
        pass
    return getattr(obj, "__name__", type(obj).__name__)


_SCOPE = threading.local()


def scope_objects() -> dict[str, Any]:
    """The objects of the innermost active :class:`CustomObjectScope` of this thread (empty outside any)."""
    return getattr(_SCOPE, "objects", {})


class CustomObjectScope:
    """Make custom classes and functions known to deserialization inside a ``with`` block (Keras' scope).

    Inside ``with custom_object_scope({"my_fn": my_fn}):``, :func:`tritonnn.saving.load_model`,
    :func:`tritonnn.saving.deserialize_keras_object` and ``from_config`` find ``my_fn`` by name. As in Keras, the
    scope's dict replaces any outer scope's for the block (scopes do not merge), is per thread, and is not added to
    :func:`get_custom_objects`.

    Args:
        custom_objects: a dict mapping names to classes or functions (or None).
    """

    def __init__(self, custom_objects: dict[str, Any] | None):
        if custom_objects is not None and not isinstance(custom_objects, dict):
            raise ValueError(
                f"Expected `custom_objects` to be a dict or None. Received: custom_objects={custom_objects!r}"
            )
        self.custom_objects = dict(custom_objects or {})
        self.backup: dict[str, Any] | None = None

    def __enter__(self) -> CustomObjectScope:
        self.backup = dict(scope_objects())
        _SCOPE.objects = dict(self.custom_objects)
        return self

    def __exit__(self, *exc: Any) -> None:
        _SCOPE.objects = dict(self.backup or {})


custom_object_scope = CustomObjectScope


def get_registered_object(
    name: str, custom_objects: dict[str, Any] | None = None, module_objects: dict[str, Any] | None = None
) -> Any:
    """The object registered (or made known) under ``name``, looked up as Keras does: the active
    :class:`custom_object_scope`, then the global registry, then ``custom_objects``, then ``module_objects``;
    ``None`` when none has it."""
    for table in (scope_objects(), GLOBAL_CUSTOM_OBJECTS, custom_objects, module_objects):
        if table and name in table:
            return table[name]
    return None


def known_objects(custom_objects: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every name deserialization can resolve from the user's side, with Keras' precedence: ``custom_objects``,
    overridden by the active scope, overridden by the global registry."""
    return {**(custom_objects or {}), **scope_objects(), **GLOBAL_CUSTOM_OBJECTS}


# ``tritonnn.saving`` sets this when it loads (it imports the layers, so the layers cannot import it):
# ``keras.layers.deserialize`` reaches ``deserialize_keras_object`` through :func:`deserialize_object`.
_OBJECT_DESERIALIZER: list[Callable[..., Any]] = []


def set_object_deserializer(fn: Callable[..., Any]) -> None:
    """Register ``tritonnn.saving.deserialize_keras_object`` for :func:`deserialize_object`."""
    _OBJECT_DESERIALIZER[:] = [fn]


def deserialize_object(config: Any, custom_objects: dict[str, Any] | None = None) -> Any:
    """``tritonnn.saving.deserialize_keras_object(config, custom_objects)``, for modules below ``saving``."""
    if not _OBJECT_DESERIALIZER:
        raise RuntimeError("tritonnn.saving is not loaded: import tritonnn first")
    return _OBJECT_DESERIALIZER[0](config, custom_objects=custom_objects)
