"""Keras 3 weight regularizers: ``L1``, ``L2``, ``L1L2``, ``OrthogonalRegularizer`` and their lowercase aliases
(``l1``, ``l2``, ``l1_l2``, ``orthogonal_regularizer``: in Keras 3 these are the classes themselves, so
``l1_l2()`` has the class's defaults, 0.0 and 0.0), by string or object. Penalties land in ``losses``."""

from __future__ import annotations

import difflib
import math
from typing import Any

import torch

from . import _serialization, config
from ._registry import known_objects


class Regularizer:
    """Base class: ``__call__(weight)`` returns the penalty (0 here, as Keras' base class); subclass it as in Keras."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((), dtype=torch.float32)

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)


def _check(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"Value for argument {name} should be a non-negative number. Received: {name}={value!r}")
    return float(value)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``; Keras' class defaults to 0.0 for both."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = _check("l1", l1), _check("l2", l2)

    def __call__(self, x):
        out = x.new_zeros((), dtype=torch.float32)
        if self.l1:
            out = out + self.l1 * x.float().abs().sum()
        if self.l2:
            out = out + self.l2 * x.float().square().sum()
        return out

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    def __init__(self, l1: float = 0.01):
        self.l1 = _check("l1", l1)

    def __call__(self, x):
        return self.l1 * x.float().abs().sum()

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2: float = 0.01):
        self.l2 = _check("l2", l2)

    def __call__(self, x):
        return self.l2 * x.float().square().sum()

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Keras' penalty on non-orthogonal rows (``mode="rows"``) or columns of a rank-2 weight: ``factor * 0.5 *
    sum(|P - diag(P)|) / (n * (n - 1) / 2)``, ``P`` the Gram matrix of the L2-normalized rows (or columns)."""

    def __init__(self, factor: float = 0.01, mode: str = "rows"):
        self.factor = _check("factor", factor)
        if mode not in ("rows", "columns"):
            raise ValueError(
                f'Invalid value for argument `mode`. Expected one of {{"rows", "columns"}}. Received: mode={mode}'
            )
        self.mode = mode

    def __call__(self, x):
        if x.dim() != 2:
            raise ValueError(
                f"Inputs to OrthogonalRegularizer must have rank 2. Received: inputs.shape={tuple(x.shape)}"
            )
        x = x.float()
        if self.mode == "columns":
            x = x.t()
        # Keras' normalize: x * min(rsqrt(sum(x**2)), 1 / epsilon).
        inv_norm = torch.clamp(torch.rsqrt(x.square().sum(dim=1, keepdim=True)), max=1.0 / config.epsilon())
        x = x * inv_norm
        product = x @ x.t()
        size = x.shape[0]
        off_diagonal = product * (1.0 - torch.eye(size, dtype=x.dtype, device=x.device))
        return self.factor * 0.5 * off_diagonal.abs().sum() / (size * (size - 1.0) / 2.0)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


# Keras 3's lowercase aliases are the classes (``l1_l2()`` is ``L1L2()``, penalties 0.0 and 0.0).
l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer

# Keras' string names: each class name and its snake_case (Keras' to_snake_case makes "L1L2" "l1l2").
ALL_OBJECTS: dict[str, Any] = {
    "Regularizer": Regularizer,
    "L1": L1,
    "L2": L2,
    "L1L2": L1L2,
    "OrthogonalRegularizer": OrthogonalRegularizer,
    "regularizer": Regularizer,
    "l1": L1,
    "l2": L2,
    "l1l2": L1L2,
    "orthogonal_regularizer": OrthogonalRegularizer,
}


def serialize(reg: Regularizer | None) -> dict[str, Any] | None:
    """Keras' layout: ``{"module": "keras.regularizers", "class_name", "config", "registered_name": None}`` for a
    built-in class (a registered or user class: its module and registered name), a function as Keras' function
    record (a lambda as its bytecode, which is never read back), None for None."""
    return _serialization.serialize_keras_object(reg)


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Regularizer:
    """A regularizer from :func:`serialize`'s dict (Keras' layout or tritonnn's earlier ``{"class_name",
    "config"}``) or a name; ``custom_objects`` maps class names to classes. A registered class is found by its
    registered name, as in Keras."""
    if isinstance(config, dict) and config.get("class_name") in ("function", "__lambda__"):
        return _serialization.deserialize_value(config, custom_objects)  # a function (a lambda is refused)
    user = known_objects(custom_objects)
    if isinstance(config, str):
        return user[config]() if config in user else get(config)
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f'Expected a regularizer config: a dict with a string "class_name". Received: {config!r}')
    cls = next(
        (user[k] for k in (config.get("registered_name"), config["class_name"]) if isinstance(k, str) and k in user),
        ALL_OBJECTS.get(config["class_name"]),
    )
    if cls is None:
        raise ValueError(f"Unknown regularizer class: {config['class_name']!r}. Valid names: {sorted(ALL_OBJECTS)}")
    return cls.from_config(config.get("config") or {})


def get(identifier: Any) -> Regularizer | None:
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if callable(identifier) and not isinstance(identifier, (str, dict, type)):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier in ALL_OBJECTS:
        return ALL_OBJECTS[identifier]()
    names = sorted(ALL_OBJECTS)
    hint = ""
    if isinstance(identifier, str):
        close = difflib.get_close_matches(identifier, names, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown regularizer: {identifier!r}.{hint} Valid names: {names}")


__all__ = ["L1", "L1L2", "L2", "OrthogonalRegularizer", "Regularizer", "deserialize", "get", "serialize"]
__all__ += ["l1", "l1_l2", "l2", "orthogonal_regularizer"]
