"""Keras 3 metrics, stateful (``update_state``, ``result``, ``reset_state``).

State lives in device tensors, so updating a metric never waits for the GPU; only ``result()`` read as a Python
number (``float(m.result())``) does.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

import torch


def _as_tensor(x: Any, device: torch.device) -> torch.Tensor:
    return x.to(device) if isinstance(x, torch.Tensor) else torch.as_tensor(x, device=device)


class Metric:
    """Base class of stateful metrics."""

    def __init__(self, name: str | None = None, dtype: Any = None):
        self.name = name or re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()
        self._state: dict[str, torch.Tensor] = {}

    def add_variable(self, name: str, shape: tuple[int, ...] = (), device: Any = None) -> None:
        self._state[name] = torch.zeros(shape, dtype=torch.float64, device=device)

    def _to(self, device: torch.device) -> None:
        for k, v in self._state.items():
            if v.device != device:
                self._state[k] = v.to(device)

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        raise NotImplementedError

    def reset_state(self) -> None:
        for v in self._state.values():
            v.zero_()

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state``."""

    def __init__(self, name: str = "mean", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.add_variable("total")
        self.add_variable("count")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values = values.detach() if isinstance(values, torch.Tensor) else torch.as_tensor(values, dtype=torch.float64)
        self._to(values.device)
        values = values.to(torch.float64)
        if sample_weight is None:
            self._state["total"] += values.sum()
            self._state["count"] += values.numel()
            return
        w = _as_tensor(sample_weight, values.device).to(torch.float64)
        if w.dim() == 0:
            self._state["total"] += values.sum() * w
            self._state["count"] += w * values.numel()
            return
        while w.dim() < values.dim():
            w = w.unsqueeze(-1)
        w = torch.broadcast_to(w, values.shape)
        self._state["total"] += (values * w).sum()
        self._state["count"] += w.sum()

    def result(self) -> torch.Tensor:
        return (self._state["total"] / self._state["count"].clamp_min(1e-300)).to(torch.float32)


class Sum(Metric):
    def __init__(self, name: str = "sum", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.add_variable("total")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values = _as_tensor(values, self._state["total"].device).detach().to(torch.float64)
        if sample_weight is not None:
            values = values * _as_tensor(sample_weight, values.device).to(torch.float64)
        self._state["total"] += values.sum()

    def result(self) -> torch.Tensor:
        return self._state["total"].to(torch.float32)


class MeanMetricWrapper(Mean):
    """The mean over samples of ``fn(y_true, y_pred)``."""

    def __init__(self, fn: Callable[..., torch.Tensor], name: str | None = None, dtype: Any = None, **fn_kwargs: Any):
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = fn_kwargs

    def update_state(self, y_true: Any, y_pred: torch.Tensor, sample_weight: Any = None) -> None:
        y_pred = y_pred.detach()
        y_true = _as_tensor(y_true, y_pred.device)
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self._fn_kwargs}


# ---- per-sample metric functions --------------------------------------------------------------------------------


def sparse_categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return (y_pred.argmax(-1) == y_true.to(torch.int64)).to(torch.float32)


def categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return (y_pred.argmax(-1) == y_true.argmax(-1)).to(torch.float32)


def binary_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    if y_true.dim() == y_pred.dim() - 1:
        y_true = y_true.unsqueeze(-1)
    return ((y_pred > threshold).to(torch.float32) == y_true.to(torch.float32)).to(torch.float32).mean(-1)


def accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return (y_true.to(y_pred.dtype) == y_pred).to(torch.float32)


def mean_squared_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return (y_pred.float() - y_true.float()).square().mean(-1)


def mean_absolute_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return (y_pred.float() - y_true.float()).abs().mean(-1)


def _wrapper_class(cls_name: str, fn: Callable[..., torch.Tensor], default_name: str, **defaults: Any) -> type:
    def __init__(self, name: str = default_name, dtype: Any = None, **kwargs: Any):
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **{**defaults, **kwargs})

    return type(cls_name, (MeanMetricWrapper,), {"__init__": __init__, "__doc__": f"Keras' ``{cls_name}``."})


Accuracy = _wrapper_class("Accuracy", accuracy, "accuracy")
SparseCategoricalAccuracy = _wrapper_class(
    "SparseCategoricalAccuracy", sparse_categorical_accuracy, "sparse_categorical_accuracy"
)
CategoricalAccuracy = _wrapper_class("CategoricalAccuracy", categorical_accuracy, "categorical_accuracy")
BinaryAccuracy = _wrapper_class("BinaryAccuracy", binary_accuracy, "binary_accuracy", threshold=0.5)
MeanSquaredError = _wrapper_class("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _wrapper_class("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error")

ALL_OBJECTS: dict[str, type] = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}
_BY_CLASS_NAME = {cls.__name__: cls for cls in (Mean, Sum, Accuracy, *ALL_OBJECTS.values())}


def get(identifier: Any, y_true: torch.Tensor | None = None, y_pred: torch.Tensor | None = None) -> Metric:
    """A metric from a Keras identifier. ``"accuracy"``/``"acc"`` resolve from the shapes of the first batch,
    as in Keras: binary when predictions have one column, sparse categorical when labels have one dimension fewer
    (or a trailing 1), categorical otherwise."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier in ("accuracy", "acc"):
        if y_true is None or y_pred is None:
            raise ValueError("Resolving 'accuracy' needs the shapes of y_true and y_pred")
        if y_pred.shape[-1] == 1:
            return BinaryAccuracy(name=identifier)
        if y_true.dim() < y_pred.dim() or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
            return SparseCategoricalAccuracy(name=identifier)
        return CategoricalAccuracy(name=identifier)
    if isinstance(identifier, str):
        cls = ALL_OBJECTS.get(identifier) or _BY_CLASS_NAME.get(identifier)
        if cls is None:
            names = sorted([*ALL_OBJECTS, "accuracy"])
            close = difflib.get_close_matches(identifier, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown metric: {identifier!r}.{hint} Valid names: {names}")
        return cls(name=identifier) if identifier in ALL_OBJECTS else cls()
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")
