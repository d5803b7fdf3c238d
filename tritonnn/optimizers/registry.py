"""The optimizer name table (``ALL_OBJECTS`` and the Keras string identifiers), ``get``, ``serialize`` and
``deserialize``."""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

from .._registry import GLOBAL_CUSTOM_NAMES, get_registered_name, known_objects
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .ftrl import Ftrl
from .lamb import Lamb
from .lion import Lion
from .muon import Muon
from .nadam import Nadam
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .schedule_free_adamw import ScheduleFreeAdamW
from .sgd import SGD

# Keras' class-name table for deserialize. LossScaleOptimizer, which itself resolves its inner optimizer through
# get() / deserialize() here, adds itself with @register when its module loads (the package imports it), so this
# module never imports it and the two do not import each other; MultiOptimizer, which rebuilds its sub-optimizers
# through deserialize(), does the same. The table then reads, in order, Adam, AdamW, SGD, RMSprop, Adagrad, Adamax,
# Nadam, Lion, Adadelta, Ftrl, Adafactor, Lamb, Muon, ScheduleFreeAdamW, LossScaleOptimizer, MultiOptimizer
# (get() knows the classes of _CLASSES by name: "muon", "schedulefreeadamw", as Keras; a MultiOptimizer needs its
# map, so it is no string identifier).
# Lamb is in the table (and so are "lamb" for get() and {"class_name": "Lamb"} for deserialize()), where Keras 3.15
# leaves it out of its ALL_OBJECTS: there get("lamb") raises and deserialize() returns the string "Lamb"
# (docs/keras_differences.md, optimizers.lamb-by-name); load_model finds it in both.
_CLASSES = (
    Adam,
    AdamW,
    SGD,
    RMSprop,
    Adagrad,
    Adamax,
    Nadam,
    Lion,
    Adadelta,
    Ftrl,
    Adafactor,
    Lamb,
    Muon,
    ScheduleFreeAdamW,
)
ALL_OBJECTS: dict[str, type[Optimizer]] = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME = {cls.__name__.lower(): cls for cls in _CLASSES}  # Keras' string identifiers: "adam", "adagrad", ...


_T = TypeVar("_T", bound=type[Optimizer])


def register(cls: _T) -> _T:
    """Add an optimizer class to ``ALL_OBJECTS`` under its class name, for ``deserialize``; returns it (a decorator)."""
    ALL_OBJECTS[cls.__name__] = cls
    return cls


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """Keras' layout: ``{"module", "class_name", "config", "registered_name"}``; a built-in class under
    ``"keras.optimizers"`` with ``registered_name`` None (Keras' torch backend names its private module and the
    class, docs/keras_differences.md ``saving.optimizer-module``), a registered class its module and
    ``"package>name"``."""
    cls = type(optimizer)
    if cls not in GLOBAL_CUSTOM_NAMES and cls.__module__.startswith("tritonnn.optimizers."):
        module, registered = "keras.optimizers", None
    else:
        module = None if cls.__module__ == "__main__" else cls.__module__
        registered = get_registered_name(cls)
    return {
        "module": module,
        "class_name": cls.__name__,
        "config": optimizer.get_config(),
        "registered_name": registered,
    }


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Optimizer:
    """:func:`serialize`'s inverse (tritonnn's earlier layout, without ``registered_name``, too): a registered class
    by its registered name (the registry, an active ``custom_object_scope``, ``custom_objects``), else by class
    name."""
    user = known_objects(custom_objects)
    known = dict(ALL_OBJECTS, **user)
    name = config.get("class_name")
    registered = config.get("registered_name")
    cls = (user.get(registered) if isinstance(registered, str) else None) or known.get(name)
    cls = cls or _BY_NAME.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer class: {name!r}. Expected one of {sorted(known)}")
    return cls.from_config(config.get("config", {}), custom_objects)


def get(identifier: Any) -> Optimizer:
    """An optimizer from a Keras string identifier (``"adam"``, case-insensitive), a config dict, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    valid = sorted(_BY_NAME)
    close = difflib.get_close_matches(str(identifier).lower(), valid, n=1) if isinstance(identifier, str) else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}.{hint} Valid names: {valid}")
