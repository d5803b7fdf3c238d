"""Keras 3 losses. Cross-entropies run on the fused ``tritonnn.kernels`` ops.

Reductions follow Keras: ``"sum_over_batch_size"`` (default: the sum of the weighted per-sample losses divided by
the number of samples), ``"sum"``, ``"mean"`` (alias), and ``"none"``/None.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch

from . import kernels

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "none", None)


def _logits_of(y_pred: torch.Tensor) -> torch.Tensor | None:
    """The logits behind a softmax output made by tritonnn (Keras' ``_keras_logits``), if any."""
    return getattr(y_pred, "_tritonnn_logits", None)


class Loss:
    """Base class: ``call(y_true, y_pred)`` gives per-sample losses; ``__call__`` weights and reduces them."""

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size", dtype: Any = None):
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"Invalid value for argument `reduction`. Expected one of {REDUCTIONS}. Received: {reduction!r}"
            )
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: torch.Tensor, sample_weight: Any = None) -> torch.Tensor:
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        per_sample = self.call(y_true, y_pred)
        return reduce_weighted(per_sample, sample_weight, self.reduction)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)


def reduce_weighted(values: torch.Tensor, sample_weight: Any, reduction: str | None) -> torch.Tensor:
    values = values.float()
    if sample_weight is not None:
        w = torch.as_tensor(sample_weight, device=values.device, dtype=torch.float32)
        while w.dim() < values.dim():
            w = w.unsqueeze(-1)
        values = values * w
    if reduction in ("none", None):
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    return total / max(values.numel(), 1)


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy between integer labels and predictions (probabilities, or logits with ``from_logits``)."""

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "sparse_categorical_crossentropy",
        **kwargs: Any,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore_class

    def _logits_and_labels(self, y_true, y_pred) -> tuple[torch.Tensor, torch.Tensor, bool]:
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        if y_true.dtype.is_floating_point or y_true.dtype == torch.bool or y_true.dtype.is_complex:
            raise ValueError(
                f"{self.name}: expected `y_true` to hold integer class labels in [0, {y_pred.shape[-1]}) (a sparse "
                f"loss; for one-hot or probability targets use categorical_crossentropy). Received: "
                f"y_true.dtype={y_true.dtype}"
            )
        logits, from_logits = y_pred, self.from_logits
        if not from_logits and _logits_of(y_pred) is not None:
            logits, from_logits = _logits_of(y_pred), True
        return logits.reshape(-1, logits.shape[-1]), y_true, from_logits

    def call(self, y_true, y_pred):
        logits, labels, from_logits = self._logits_and_labels(y_true, y_pred)
        return kernels.softmax_cross_entropy(
            logits, labels.reshape(-1), reduction="none", ignore_index=self.ignore_class, from_logits=from_logits
        ).reshape(labels.shape)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # The common case goes to the kernel's own mean: one pass, no per-sample vector.
        if sample_weight is None and self.reduction in ("sum_over_batch_size", "mean") and self.ignore_class is None:
            logits, labels, from_logits = self._logits_and_labels(y_true, y_pred)
            return kernels.softmax_cross_entropy(
                logits, labels.reshape(-1), reduction="mean", from_logits=from_logits
            ).float()
        return super().__call__(y_true, y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class}


class CategoricalCrossentropy(Loss):
    """Cross-entropy between one-hot (or probability) labels and predictions."""

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_crossentropy",
        **kwargs: Any,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = axis

    def call(self, y_true, y_pred):
        logits, from_logits = y_pred, self.from_logits
        if not from_logits and _logits_of(y_pred) is not None:
            logits, from_logits = _logits_of(y_pred), True
        if tuple(y_true.shape) != tuple(logits.shape):
            raise ValueError(
                f"Arguments `target` and `output` must have the same shape (one-hot or probability targets of width "
                f"{logits.shape[-1]}, one column per class). Received: target.shape={tuple(y_true.shape)}, "
                f"output.shape={tuple(logits.shape)}"
            )
        c = logits.shape[-1]
        return kernels.softmax_cross_entropy(
            logits.reshape(-1, c),
            y_true.reshape(-1, c).to(logits.dtype if logits.dtype.is_floating_point else torch.float32),
            reduction="none",
            label_smoothing=self.label_smoothing,
            from_logits=from_logits,
        ).reshape(y_true.shape[:-1])

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


class MeanSquaredError(Loss):
    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "mean_squared_error", **kw: Any):
        super().__init__(name=name, reduction=reduction, **kw)

    def call(self, y_true, y_pred):
        _check_broadcast(self.name, y_true, y_pred)
        return (y_pred.float() - y_true.float()).square().mean(-1)


class MeanAbsoluteError(Loss):
    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "mean_absolute_error", **kw: Any):
        super().__init__(name=name, reduction=reduction, **kw)

    def call(self, y_true, y_pred):
        _check_broadcast(self.name, y_true, y_pred)
        return (y_pred.float() - y_true.float()).abs().mean(-1)


ALL_OBJECTS: dict[str, Any] = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}
_BY_CLASS_NAME = {cls.__name__: cls for cls in ALL_OBJECTS.values()}


def same_rank(y_true: torch.Tensor, y_pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras' ``squeeze_or_expand_to_same_rank``: a trailing 1 on one side is matched (a rank-1 side expanded)."""
    if y_true.dim() == y_pred.dim() + 1 and y_true.shape[-1] == 1:
        return (y_true, y_pred.unsqueeze(-1)) if y_pred.dim() == 1 else (y_true.squeeze(-1), y_pred)
    if y_pred.dim() == y_true.dim() + 1 and y_pred.shape[-1] == 1:
        return (y_true.unsqueeze(-1), y_pred) if y_true.dim() == 1 else (y_true, y_pred.squeeze(-1))
    return y_true, y_pred


def _pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensors on y_pred's device, y_pred floating, y_true in y_pred's dtype, ranks matched as Keras does."""
    if not isinstance(y_pred, torch.Tensor):
        y_pred = torch.as_tensor(y_pred)
    if not y_pred.dtype.is_floating_point:
        y_pred = y_pred.to(torch.float32)
    y_true = torch.as_tensor(y_true, device=y_pred.device).to(y_pred.dtype)
    return same_rank(y_true, y_pred)


def _check_broadcast(name: str, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
    """A clear error, naming the loss and both shapes, when ``y_true`` does not broadcast to ``y_pred``."""
    try:
        torch.broadcast_shapes(y_true.shape, y_pred.shape)
    except RuntimeError:
        raise ValueError(
            f"{name}: expected `y_true` of a shape that broadcasts to y_pred's {tuple(y_pred.shape)}. "
            f"Received: y_true.shape={tuple(y_true.shape)}"
        ) from None


def _checked_pair(name: str, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_true, y_pred = _pair(y_true, y_pred)
    _check_broadcast(name, y_true, y_pred)
    return y_true, y_pred


def binary_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> torch.Tensor:
    """Per-sample binary cross-entropy: the element-wise loss averaged over ``axis``.

    With ``from_logits=False`` probabilities are clipped to ``[1e-7, 1 - 1e-7]`` (Keras' epsilon); labels are
    smoothed towards 0.5 by ``label_smoothing``. The element-wise loss is ``tritonnn.kernels.binary_cross_entropy``.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"Arguments `target` and `output` must have the same shape. Received: "
            f"target.shape={tuple(y_true.shape)}, output.shape={tuple(y_pred.shape)}"
        )
    elementwise = kernels.binary_cross_entropy(
        y_pred, y_true, reduction="none", label_smoothing=float(label_smoothing), from_logits=bool(from_logits)
    )
    return elementwise.mean(dim=axis)


def categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> torch.Tensor:
    """Per-sample cross-entropy between one-hot (or probability) labels and predictions."""
    y_pred = y_pred if isinstance(y_pred, torch.Tensor) else torch.as_tensor(y_pred, dtype=torch.float32)
    loss = CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing, axis=axis, reduction=None)
    return loss.call(torch.as_tensor(y_true, device=y_pred.device), y_pred)


def sparse_categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, ignore_class: int | None = None, axis: int = -1
) -> torch.Tensor:
    """Per-sample cross-entropy between integer labels and predictions (0 for ``ignore_class`` samples)."""
    y_pred = y_pred if isinstance(y_pred, torch.Tensor) else torch.as_tensor(y_pred, dtype=torch.float32)
    loss = SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=ignore_class, reduction=None)
    return loss.call(torch.as_tensor(y_true, device=y_pred.device), y_pred)


def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean((y_pred - y_true) ** 2, axis=-1)``."""
    y_true, y_pred = _checked_pair("mean_squared_error", y_true, y_pred)
    return (y_pred.float() - y_true.float()).square().mean(-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean(abs(y_pred - y_true), axis=-1)``."""
    y_true, y_pred = _checked_pair("mean_absolute_error", y_true, y_pred)
    return (y_pred.float() - y_true.float()).abs().mean(-1)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> torch.Tensor:
    """Per-sample Huber loss: ``0.5 * e**2`` where ``|e| <= delta``, else ``delta * |e| - 0.5 * delta**2``,
    averaged over the last axis (``e = y_pred - y_true``)."""
    y_true, y_pred = _checked_pair("huber", y_true, y_pred)
    error = y_pred.float() - y_true.float()
    abs_error = error.abs()
    quadratic = 0.5 * error.square()
    linear = delta * abs_error - 0.5 * delta * delta
    return torch.where(abs_error <= delta, quadratic, linear).mean(-1)


class BinaryCrossentropy(Loss):
    """Cross-entropy between binary labels (0/1, or soft labels) and predicted probabilities or logits.

    Args:
        from_logits: whether ``y_pred`` holds logits (the sigmoid is fused into the loss kernel) rather than
            probabilities (clipped to ``[1e-7, 1 - 1e-7]``, as Keras does).
        label_smoothing: in [0, 1]; labels become ``y * (1 - label_smoothing) + 0.5 * label_smoothing``.
        axis: the axis the element-wise losses are averaged over per sample.
        reduction: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"`` or ``"none"``/None.
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_crossentropy",
        **kwargs: Any,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        ls = label_smoothing
        if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not 0.0 <= float(ls) <= 1.0:
            raise ValueError(
                f"`label_smoothing` must be a float between 0 and 1. Received: label_smoothing={label_smoothing!r}"
            )
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = axis

    def call(self, y_true, y_pred):
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


class Huber(Loss):
    """The Huber loss: quadratic for errors up to ``delta``, linear beyond (per sample, averaged over the last axis).

    Args:
        delta: the error at which the loss turns from quadratic to linear (positive).
        reduction: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"`` or ``"none"``/None.
    """

    def __init__(
        self,
        delta: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str = "huber_loss",
        **kwargs: Any,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not float(delta) > 0.0:
            raise ValueError(f"`delta` must be a positive float. Received: delta={delta!r}")
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        return huber(y_true, y_pred, self.delta)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


ALL_OBJECTS["binary_crossentropy"] = BinaryCrossentropy
ALL_OBJECTS["huber"] = Huber
ALL_OBJECTS["huber_loss"] = Huber
_BY_CLASS_NAME.update(BinaryCrossentropy=BinaryCrossentropy, Huber=Huber)


def get(identifier: Any) -> Any:
    """A loss from a Keras string, a class name, a ``Loss`` instance or a callable ``fn(y_true, y_pred)``."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = ALL_OBJECTS.get(identifier) or _BY_CLASS_NAME.get(identifier)
        if cls is None:
            names = sorted(ALL_OBJECTS)
            close = difflib.get_close_matches(identifier, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown loss: {identifier!r}.{hint} Valid names: {names}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")
