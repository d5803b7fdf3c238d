"""Keras 3 weight regularizers: ``l1``, ``l2``, ``l1_l2``, by string or object. Penalties land in ``losses``."""

from __future__ import annotations

import difflib
from typing import Any

import torch


class Regularizer:
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)


def _check(name: str, value: float) -> float:
    value = float(value)
    if value < 0:
        raise ValueError(f"Value for argument {name} should be a non-negative number. Received: {name}={value}")
    return value


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


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """Keras' ``l1_l2`` shortcut, whose defaults (0.01, 0.01) differ from the ``L1L2`` class's."""
    return L1L2(l1=l1, l2=l2)


ALL_OBJECTS: dict[str, Any] = {"l1": L1, "l2": L2, "l1_l2": l1_l2, "L1": L1, "L2": L2, "L1L2": L1L2}


def serialize(reg: Regularizer) -> dict[str, Any]:
    return {"class_name": type(reg).__name__, "config": reg.get_config()}


def get(identifier: Any) -> Regularizer | None:
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if callable(identifier) and not isinstance(identifier, (str, dict, type)):
        return identifier
    if isinstance(identifier, dict):
        cls = ALL_OBJECTS.get(identifier.get("class_name", ""))
        if cls is None:
            raise ValueError(f"Unknown regularizer class: {identifier.get('class_name')!r}")
        return cls(**identifier.get("config", {}))
    if isinstance(identifier, str) and identifier in ALL_OBJECTS:
        return ALL_OBJECTS[identifier]()
    names = ["l1", "l1_l2", "l2"]
    hint = ""
    if isinstance(identifier, str):
        close = difflib.get_close_matches(identifier, names + ["L1", "L1L2", "L2"], n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown regularizer: {identifier!r}.{hint} Valid names: {names}")
