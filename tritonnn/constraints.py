"""Keras 3 weight constraints: ``MaxNorm``, ``MinMaxNorm``, ``NonNeg``, ``UnitNorm`` and their lowercase aliases.

A constraint is a projection ``w -> constraint(w)``. A layer hands it to ``add_weight(constraint=...)`` (Dense's
``kernel_constraint``/``bias_constraint``, the normalization layers' ``beta_constraint``/``gamma_constraint``,
Embedding's ``embeddings_constraint``), which keeps it on the weight as ``weight.constraint`` (Keras'
``variable.constraint``); the optimizer applies it to the weight after every update, as Keras' ``apply`` does.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

import torch

from . import _serialization, config
from ._registry import known_objects


def _norms(w: torch.Tensor, axis: Any) -> torch.Tensor:
    dims = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return torch.sqrt(torch.sum(torch.square(w), dim=dims, keepdim=True))


def _check_axis(axis: Any) -> Any:
    ok = isinstance(axis, int) and not isinstance(axis, bool)
    if isinstance(axis, (list, tuple)):
        ok = all(isinstance(a, int) and not isinstance(a, bool) for a in axis)
    if not ok:
        raise ValueError(f"Expected `axis` to be an integer or a list of integers. Received: axis={axis!r}")
    return list(axis) if isinstance(axis, tuple) else axis


def _check_number(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Expected `{name}` to be a number. Received: {name}={value!r}")
    return value


class Constraint:
    """Base class: ``__call__(w)`` returns the projected weight (the identity here); subclass it as in Keras."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        return cls(**config)


class MaxNorm(Constraint):
    """Rescale the weights incident to each unit (norms along ``axis``) to a norm of at most ``max_value``:
    ``w * clip(norm, 0, max_value) / (epsilon + norm)``, Keras' formula (so a norm below the bound is scaled by
    ``norm / (epsilon + norm)``, as in Keras)."""

    def __init__(self, max_value: float = 2, axis: int | list[int] = 0):
        self.max_value = _check_number("max_value", max_value)
        self.axis = _check_axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = torch.clamp(norms, 0, self.max_value)
        return w * (desired / (config.epsilon() + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Clamp the weights to be non-negative."""

    def __call__(self, w):
        return torch.clamp(w, min=0)


class UnitNorm(Constraint):
    """Rescale the weights incident to each unit to unit norm along ``axis``: ``w / (epsilon + norm)``."""

    def __init__(self, axis: int | list[int] = 0):
        self.axis = _check_axis(axis)

    def __call__(self, w):
        return w / (config.epsilon() + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move the norm of the weights incident to each unit into ``[min_value, max_value]`` at ``rate``:
    ``desired = rate * clip(norm, min_value, max_value) + (1 - rate) * norm``; ``w * desired / (epsilon + norm)``."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: int | list[int] = 0):
        self.min_value = _check_number("min_value", min_value)
        self.max_value = _check_number("max_value", max_value)
        self.rate = _check_number("rate", rate)
        self.axis = _check_axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * torch.clamp(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (config.epsilon() + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


# Keras 3's lowercase aliases are the classes themselves.
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_CLASSES = (Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm)
# Keras' names: each class name and its snake_case.
ALL_OBJECTS: dict[str, type] = {
    **{cls.__name__: cls for cls in _CLASSES},
    "constraint": Constraint,
    "max_norm": MaxNorm,
    "min_max_norm": MinMaxNorm,
    "non_neg": NonNeg,
    "unit_norm": UnitNorm,
}


def serialize(constraint: Any) -> dict[str, Any] | None:
    """Keras' layout: ``{"module": "keras.constraints", "class_name", "config", "registered_name": None}`` for a
    built-in class (a registered or user class: its module and registered name); a function as Keras' function
    record (a lambda as its bytecode, which is never read back); None stays None."""
    return _serialization.serialize_keras_object(constraint)


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Constraint:
    """A constraint from :func:`serialize`'s dict (Keras' layout or tritonnn's earlier ``{"class_name",
    "config"}``) or a name; ``custom_objects`` maps class names to classes. A registered class is found by its
    registered name, as in Keras."""
    if isinstance(config, dict) and config.get("class_name") in ("function", "__lambda__"):
        return _serialization.deserialize_value(config, custom_objects)  # a function (a lambda is refused)
    user = known_objects(custom_objects)
    known = {**ALL_OBJECTS, **user}
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(
            f'Expected a constraint config: a dict with a string "class_name". Received: config={config!r}'
        )
    name = config["class_name"]
    registered = config.get("registered_name")
    cls = user.get(registered) if isinstance(registered, str) else None
    cls = cls or known.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown constraint: {name!r}.{hint} Valid names: {sorted(ALL_OBJECTS)}")
    return cls.from_config(config.get("config") or {})


def get(identifier: Any) -> Any:
    """A constraint from None, a name (``"max_norm"``, ``"MaxNorm"``), a config dict, a class or a callable."""
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if inspect.isclass(identifier):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")


__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "deserialize", "get", "serialize"]
__all__ += ["max_norm", "min_max_norm", "non_neg", "unit_norm"]
