"""Keras 3 losses. Cross-entropies run on the fused ``tritonnn.kernels`` ops.

Reductions follow Keras: ``"sum_over_batch_size"`` (default: the sum of the weighted per-sample losses divided by
the number of samples), ``"sum"``, ``"mean"`` (alias), ``"mean_with_sample_weight"`` (divided by the sum of the
sample weights) and ``"none"``/None.

Shapes follow one rule, Keras' ``squeeze_or_expand_to_same_rank`` (:func:`same_rank`): before a loss or a metric
compares a target with a prediction, and before a sample weight meets the per-sample losses, a rank that differs by
one with a trailing 1 is matched (a rank-1 side expanded, otherwise the trailing 1 squeezed). So targets of shape
``(n,)`` against predictions ``(n, 1)`` never broadcast to ``(n, n)``. Every function form here applies it too, also
where Keras' own function form does not (``hinge``, ``kl_divergence``, ``poisson``, ``binary_crossentropy``...:
there Keras' classes match ranks but the functions broadcast or refuse).
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Callable
from typing import Any

import torch

from . import _serialization, config, kernels
from ._registry import known_objects

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# ---- shapes, tensors and reductions ----------------------------------------------------------------------------------


def same_rank(x1: torch.Tensor, x2: torch.Tensor, expand_rank_1: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras' ``squeeze_or_expand_to_same_rank``: when the ranks differ by one and the higher-rank side ends in 1,
    that trailing 1 is squeezed, except that a rank-1 other side is expanded instead (``expand_rank_1``)."""
    r1, r2 = x1.dim(), x2.dim()
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def _tensor(x: Any, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if device is None or x.device == device else x.to(device)
    return torch.as_tensor(x, device=device)


def _prediction(y_pred: Any) -> torch.Tensor:
    """``y_pred`` as a floating tensor in which losses are computed: float32 (Keras' loss dtype) unless float64."""
    y_pred = y_pred if isinstance(y_pred, torch.Tensor) else torch.as_tensor(y_pred)
    return y_pred if y_pred.dtype == torch.float64 else y_pred.to(torch.float32)


def _pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensors on y_pred's device, both in the loss dtype (float32, or float64), ranks matched as Keras does."""
    y_pred = _prediction(y_pred)
    y_true = _tensor(y_true, y_pred.device).to(y_pred.dtype)
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


def check_reduction(reduction: Any) -> Any:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`. Expected one of {REDUCTIONS}. Received: reduction={reduction!r}"
        )
    return reduction


def reduce_values(values: torch.Tensor, sample_weight: torch.Tensor | None, reduction: str | None) -> torch.Tensor:
    """Keras' ``reduce_values``: no reduction for "none"/None, a scalar or an empty vector; else the sum, divided by
    the number of entries (or by the sum of the weights, ``"mean_with_sample_weight"``), 0 for a zero divisor."""
    if reduction in ("none", None) or values.dim() == 0 or tuple(values.shape) == (0,):
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = sample_weight.sum().to(total.dtype)
        return torch.where(divisor == 0, torch.zeros_like(total), total / torch.where(divisor == 0, 1.0, divisor))
    n = values.numel()
    return total / n if n else total * 0.0


def reduce_weighted(values: torch.Tensor, sample_weight: Any, reduction: str | None) -> torch.Tensor:
    """Per-sample (or per-element) losses weighted and reduced as Keras' ``reduce_weighted_values``: the weights are
    matched to the losses' rank (:func:`same_rank`), and a weight per sample also covers per-element losses."""
    check_reduction(reduction)
    values = values if values.dtype == torch.float64 else values.float()
    w = None
    if sample_weight is not None:
        w = _tensor(sample_weight, values.device).to(values.dtype)
        values, w = same_rank(values, w)
        if 0 < w.dim() < values.dim():
            w = w.reshape(*w.shape, *([1] * (values.dim() - w.dim())))
        values = values * w
    return reduce_values(values, w, reduction)


def _logits_of(y_pred: torch.Tensor) -> torch.Tensor | None:
    """The logits behind a softmax output made by tritonnn (Keras' ``_keras_logits``), if any."""
    return getattr(y_pred, "_tritonnn_logits", None)


def _check_axis(axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis!r} of type {type(axis)}")
    return axis


def _unit_float(name: str, value: Any, low_open: bool = False, high_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        v = float(value)
        ok = (v > 0.0 if low_open else v >= 0.0) and (v < 1.0 if high_open else v <= 1.0)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"`{name}` must be a float in {lo}0, 1{hi}. Received: {name}={value!r}")
    return float(value)


# ---- the base classes ------------------------------------------------------------------------------------------------


class Loss:
    """Base class: ``call(y_true, y_pred)`` gives per-sample losses; ``__call__`` weights and reduces them.

    As in Keras, ``__call__`` hands ``call`` both tensors in the loss dtype (float32 unless ``dtype`` says
    otherwise); the built-in cross-entropies keep integer labels and the prediction's own dtype for their kernels.
    """

    _native_inputs = False  # the built-in cross-entropies: labels and predictions go to the kernels as they are

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size", dtype: Any = None):
        self.name = name or _snake(type(self).__name__)
        self.reduction = check_reduction(reduction)
        self._dtype = config.standardize_dtype(dtype or "float32")

    @property
    def dtype(self) -> str:
        return str(self._dtype).replace("torch.", "")

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _inputs(self, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y_pred = y_pred if isinstance(y_pred, torch.Tensor) else torch.as_tensor(y_pred, dtype=self._dtype)
        if self._native_inputs:
            if not y_pred.dtype.is_floating_point:
                y_pred = y_pred.to(self._dtype)
            return _tensor(y_true, y_pred.device), y_pred
        y_pred = y_pred.to(self._dtype)
        return _tensor(y_true, y_pred.device).to(self._dtype), y_pred

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        y_true, y_pred = self._inputs(y_true, y_pred)
        per_sample = self.call(y_true, y_pred)
        return reduce_weighted(per_sample, sample_weight, self.reduction)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class LossFunctionWrapper(Loss):
    """A loss from a function ``fn(y_true, y_pred, **kwargs)`` of per-sample losses (what ``compile`` makes of a
    plain function): the ranks of ``y_true`` and ``y_pred`` are matched first (:func:`same_rank`)."""

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        y_true, y_pred = same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**Loss.get_config(self), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        if cls is LossFunctionWrapper:
            raise ValueError("A LossFunctionWrapper of a custom function cannot be rebuilt from its config alone")
        return cls(**config)

    def __repr__(self) -> str:
        return f"<LossFunctionWrapper({getattr(self.fn, '__name__', self.fn)}, kwargs={self._fn_kwargs})>"


# ---- per-sample loss functions ---------------------------------------------------------------------------------------


def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean((y_pred - y_true) ** 2, axis=-1)``."""
    y_true, y_pred = _checked_pair("mean_squared_error", y_true, y_pred)
    return (y_true - y_pred).square().mean(-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean(abs(y_pred - y_true), axis=-1)``."""
    y_true, y_pred = _checked_pair("mean_absolute_error", y_true, y_pred)
    return (y_true - y_pred).abs().mean(-1)


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``100 * mean(abs((y_true - y_pred) / max(abs(y_true), epsilon)), axis=-1)``."""
    y_true, y_pred = _checked_pair("mean_absolute_percentage_error", y_true, y_pred)
    diff = ((y_true - y_pred) / y_true.abs().clamp_min(config.epsilon())).abs()
    return 100.0 * diff.mean(-1)


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1)) ** 2, axis=-1)``."""
    y_true, y_pred = _checked_pair("mean_squared_logarithmic_error", y_true, y_pred)
    eps = config.epsilon()
    first = torch.log(y_pred.clamp_min(eps) + 1.0)
    second = torch.log(y_true.clamp_min(eps) + 1.0)
    return (first - second).square().mean(-1)


def l2_normalize(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Keras' ``normalize(x, order=2)``: ``x * min(rsqrt(sum(x ** 2)), 1 / epsilon)`` along ``axis``."""
    inv = torch.rsqrt(x.square().sum(axis, keepdim=True)).clamp_max(1.0 / config.epsilon())
    return x * inv


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Per-sample negative cosine similarity ``-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)``: -1 for
    the same direction, 0 for orthogonal vectors (a loss to minimise)."""
    y_true, y_pred = _checked_pair("cosine_similarity", y_true, y_pred)
    return -(l2_normalize(y_true, axis) * l2_normalize(y_pred, axis)).sum(axis)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> torch.Tensor:
    """Per-sample Huber loss: ``0.5 * e**2`` where ``|e| <= delta``, else ``delta * |e| - 0.5 * delta**2``,
    averaged over the last axis (``e = y_pred - y_true``)."""
    y_true, y_pred = _checked_pair("huber", y_true, y_pred)
    error = y_pred - y_true
    abs_error = error.abs()
    quadratic = 0.5 * error.square()
    linear = delta * abs_error - 0.5 * delta * delta
    return torch.where(abs_error <= delta, quadratic, linear).mean(-1)


def log_cosh(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean(log(cosh(y_pred - y_true)), axis=-1)``, computed as ``x + softplus(-2x) - log(2)``."""
    y_true, y_pred = _checked_pair("log_cosh", y_true, y_pred)
    x = y_pred - y_true
    return (x + torch.nn.functional.softplus(x * -2.0) - math.log(2.0)).mean(-1)


def _hinge_labels(y_true: torch.Tensor) -> torch.Tensor:
    """Keras' ``convert_binary_labels_to_hinge``: labels that are all 0 or 1 become -1 or 1 (on the device)."""
    is_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean(max(1 - y_true * y_pred, 0), axis=-1)``; labels of 0/1 are taken as -1/1."""
    y_true, y_pred = _checked_pair("hinge", y_true, y_pred)
    return (1.0 - _hinge_labels(y_true) * y_pred).clamp_min(0.0).mean(-1)


def squared_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean(max(1 - y_true * y_pred, 0) ** 2, axis=-1)``; labels of 0/1 are taken as -1/1."""
    y_true, y_pred = _checked_pair("squared_hinge", y_true, y_pred)
    return (1.0 - _hinge_labels(y_true) * y_pred).clamp_min(0.0).square().mean(-1)


def categorical_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`` over the last axis."""
    y_true, y_pred = _checked_pair("categorical_hinge", y_true, y_pred)
    pos = (y_true * y_pred).sum(-1)
    neg = ((1.0 - y_true) * y_pred).amax(-1)
    return (neg - pos + 1.0).clamp_min(0.0)


def kl_divergence(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``sum(y_true * log(y_true / y_pred), axis=-1)``, both clipped to ``[epsilon, 1]``."""
    y_true, y_pred = _checked_pair("kl_divergence", y_true, y_pred)
    eps = config.epsilon()
    y_true, y_pred = y_true.clamp(eps, 1.0), y_pred.clamp(eps, 1.0)
    return (y_true * torch.log(y_true / y_pred)).sum(-1)


def poisson(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Per-sample ``mean(y_pred - y_true * log(y_pred + epsilon), axis=-1)``."""
    y_true, y_pred = _checked_pair("poisson", y_true, y_pred)
    return (y_pred - y_true * torch.log(y_pred + config.epsilon())).mean(-1)


def _same_shape(y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"Arguments `target` and `output` must have the same shape. Received: "
            f"target.shape={tuple(y_true.shape)}, output.shape={tuple(y_pred.shape)}"
        )


def binary_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> torch.Tensor:
    """Per-sample binary cross-entropy: the element-wise loss averaged over ``axis``.

    With ``from_logits=False`` probabilities are clipped to ``[1e-7, 1 - 1e-7]`` (Keras' epsilon); labels are
    smoothed towards 0.5 by ``label_smoothing``. The element-wise loss is ``tritonnn.kernels.binary_cross_entropy``.
    """
    # In float32 (float64 stays), as Keras computes losses: under mixed precision the (n, outputs) predictions are
    # cast up, and soft labels keep their precision.
    y_true, y_pred = _pair(y_true, y_pred)
    _same_shape(y_true, y_pred)
    elementwise = kernels.binary_cross_entropy(
        y_pred, y_true, reduction="none", label_smoothing=float(label_smoothing), from_logits=bool(from_logits)
    )
    return elementwise.mean(dim=_check_axis(axis))


def binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Per-sample binary focal cross-entropy (Lin et al., 2017): ``(1 - p_t) ** gamma * bce``, with
    ``p_t = y * p + (1 - y) * (1 - p)``, weighted by ``alpha`` / ``1 - alpha`` with ``apply_class_balancing``;
    averaged over ``axis``."""
    y_true, y_pred = _pair(y_true, y_pred)
    _same_shape(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = torch.sigmoid(y_pred)
    bce = kernels.binary_cross_entropy(y_pred, y_true, reduction="none", from_logits=False).to(y_pred.dtype)
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = (1.0 - p_t).pow(gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return focal.mean(dim=_check_axis(axis))


def categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> torch.Tensor:
    """Per-sample cross-entropy between one-hot (or probability) labels and predictions."""
    y_pred = y_pred if isinstance(y_pred, torch.Tensor) else torch.as_tensor(y_pred, dtype=torch.float32)
    loss = CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing, axis=axis, reduction=None)
    y_true, y_pred = loss._inputs(y_true, y_pred)
    return loss.call(y_true, y_pred)


def categorical_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Per-sample categorical focal cross-entropy: ``sum(alpha * (1 - p) ** gamma * -y * log(p), axis)`` with
    ``p`` the predictions renormalised to sum to 1 and clipped to ``[eps, 1 - eps]``."""
    axis = _check_axis(axis)
    y_true, y_pred = _pair(y_true, y_pred)
    _same_shape(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    if from_logits:
        y_pred = kernels.softmax(y_pred, axis=axis)
    eps = config.epsilon()
    output = (y_pred / y_pred.sum(axis, keepdim=True)).clamp(eps, 1.0 - eps)
    cce = -y_true * torch.log(output)
    return (alpha * (1.0 - output).pow(gamma) * cce).sum(axis)


def sparse_categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, ignore_class: int | None = None, axis: int = -1
) -> torch.Tensor:
    """Per-sample cross-entropy between integer labels (or floats holding whole numbers) and predictions (0 for
    ``ignore_class`` samples)."""
    y_pred = y_pred if isinstance(y_pred, torch.Tensor) else torch.as_tensor(y_pred, dtype=torch.float32)
    loss = SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=ignore_class, axis=axis, reduction=None)
    y_true, y_pred = loss._inputs(y_true, y_pred)
    return loss.call(y_true, y_pred)


def categorical_generalized_cross_entropy(y_true: Any, y_pred: Any, q: float) -> torch.Tensor:
    """Per-sample generalized cross-entropy (Zhang & Sabuncu, 2018): ``(1 - p ** q) / q`` with ``p`` the predicted
    probability of the true class; ``y_true`` holds class labels of shape ``(n,)`` or ``(n, 1)``."""
    y_pred = _prediction(y_pred)
    y_true = _tensor(y_true, y_pred.device)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    labels = kernels.sparse_labels(y_true, y_pred.shape[-1], op="categorical_generalized_cross_entropy")
    p = y_pred.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (1.0 - p.pow(q)) / q


# ---- the loss classes ------------------------------------------------------------------------------------------------


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy between class labels (integers, or floats holding whole numbers, of shape ``(n,)`` or
    ``(n, 1)``) and predictions (probabilities, or logits with ``from_logits``)."""

    _native_inputs = True

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "sparse_categorical_crossentropy",
        dtype: Any = None,
        axis: int = -1,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore_class
        self.axis = _check_axis(axis)

    def _logits_and_labels(self, y_true, y_pred) -> tuple[torch.Tensor, torch.Tensor, bool]:
        y_true = _tensor(y_true, y_pred.device)
        y_true, y_pred = same_rank(y_true, y_pred)
        if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        if self.axis not in (-1, y_pred.dim() - 1):
            y_pred = y_pred.movedim(self.axis, -1)
        if y_true.dtype == torch.bool or y_true.dtype.is_complex:
            raise ValueError(
                f"{self.name}: expected `y_true` to hold integer class labels in [0, {y_pred.shape[-1]}) (a sparse "
                f"loss; for one-hot or probability targets use categorical_crossentropy). Received: "
                f"y_true.dtype={y_true.dtype}"
            )
        if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
            raise ValueError(
                f"{self.name}: expected `y_true` of shape {tuple(y_pred.shape[:-1])} (one class label per row of "
                f"predictions of shape {tuple(y_pred.shape)}). Received: y_true.shape={tuple(y_true.shape)}"
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
            y_true, y_pred = self._inputs(y_true, y_pred)
            logits, labels, from_logits = self._logits_and_labels(y_true, y_pred)
            if labels.numel():
                return kernels.softmax_cross_entropy(
                    logits, labels.reshape(-1), reduction="mean", from_logits=from_logits
                ).float()
        return super().__call__(y_true, y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class}


class CategoricalCrossentropy(Loss):
    """Cross-entropy between one-hot (or probability) labels and predictions."""

    _native_inputs = True

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_crossentropy",
        dtype: Any = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = _check_axis(axis)

    def call(self, y_true, y_pred):
        y_true, y_pred = same_rank(y_true, y_pred)
        logits, from_logits = y_pred, self.from_logits
        if not from_logits and _logits_of(y_pred) is not None:
            logits, from_logits = _logits_of(y_pred), True
        if tuple(y_true.shape) != tuple(logits.shape):
            raise ValueError(
                f"Arguments `target` and `output` must have the same shape (one-hot or probability targets of width "
                f"{logits.shape[-1]}, one column per class). Received: target.shape={tuple(y_true.shape)}, "
                f"output.shape={tuple(logits.shape)}"
            )
        if self.axis not in (-1, logits.dim() - 1):
            logits, y_true = logits.movedim(self.axis, -1), y_true.movedim(self.axis, -1)
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


class BinaryCrossentropy(Loss):
    """Cross-entropy between binary labels (0/1, or soft labels) and predicted probabilities or logits.

    Args:
        from_logits: whether ``y_pred`` holds logits (the sigmoid is fused into the loss kernel) rather than
            probabilities (clipped to ``[1e-7, 1 - 1e-7]``, as Keras does).
        label_smoothing: in [0, 1]; labels become ``y * (1 - label_smoothing) + 0.5 * label_smoothing``.
        axis: the axis the element-wise losses are averaged over per sample.
        reduction: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"`` or
            ``"none"``/None.
    """

    _native_inputs = True

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_crossentropy",
        dtype: Any = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _unit_float("label_smoothing", label_smoothing)
        self.axis = _check_axis(axis)

    def call(self, y_true, y_pred):
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


def _wrapper_loss(
    cls_name: str, fn: Callable[..., torch.Tensor], default_name: str, doc: str, **defaults: Any
) -> type[LossFunctionWrapper]:
    """A Keras loss class over a function, with Keras' parameters in Keras' order: the function's keyword arguments
    (``defaults``), then ``reduction``, ``name`` and ``dtype``."""
    params = [*defaults, "reduction", "name", "dtype"]
    base = {**defaults, "reduction": "sum_over_batch_size", "name": default_name, "dtype": None}

    def __init__(self, *args: Any, **kwargs: Any):
        if len(args) > len(params):
            raise TypeError(f"{cls_name}() takes at most {len(params)} positional arguments ({len(args)} given)")
        given = dict(zip(params, args, strict=False))
        wrong = sorted((set(kwargs) - set(params)) | (set(given) & set(kwargs)))
        if wrong:
            raise TypeError(f"{cls_name}() got unexpected or repeated arguments {wrong}. Its arguments: {params}")
        a = {**base, **given, **kwargs}
        LossFunctionWrapper.__init__(
            self, fn, reduction=a["reduction"], name=a["name"], dtype=a["dtype"], **{k: a[k] for k in defaults}
        )

    return type(cls_name, (LossFunctionWrapper,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


MeanSquaredError = _wrapper_loss(
    "MeanSquaredError", mean_squared_error, "mean_squared_error", "Keras' mean of squared errors (per sample)."
)
MeanAbsoluteError = _wrapper_loss(
    "MeanAbsoluteError", mean_absolute_error, "mean_absolute_error", "Keras' mean of absolute errors (per sample)."
)
MeanAbsolutePercentageError = _wrapper_loss(
    "MeanAbsolutePercentageError",
    mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
    "Keras' ``100 * mean(abs((y_true - y_pred) / y_true))`` (per sample).",
)
MeanSquaredLogarithmicError = _wrapper_loss(
    "MeanSquaredLogarithmicError",
    mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error",
    "Keras' ``mean((log(y_pred + 1) - log(y_true + 1)) ** 2)`` (per sample).",
)
CosineSimilarity = _wrapper_loss(
    "CosineSimilarity",
    cosine_similarity,
    "cosine_similarity",
    "Keras' negative cosine similarity along ``axis`` (default -1).",
    axis=-1,
)
LogCosh = _wrapper_loss("LogCosh", log_cosh, "log_cosh", "Keras' ``mean(log(cosh(y_pred - y_true)))`` (per sample).")
Hinge = _wrapper_loss("Hinge", hinge, "hinge", "Keras' hinge loss; 0/1 labels are taken as -1/1.")
SquaredHinge = _wrapper_loss("SquaredHinge", squared_hinge, "squared_hinge", "Keras' squared hinge loss.")
CategoricalHinge = _wrapper_loss(
    "CategoricalHinge", categorical_hinge, "categorical_hinge", "Keras' categorical hinge loss (one-hot targets)."
)
KLDivergence = _wrapper_loss(
    "KLDivergence", kl_divergence, "kl_divergence", "Keras' Kullback-Leibler divergence ``sum(y log(y / p))``."
)
Poisson = _wrapper_loss("Poisson", poisson, "poisson", "Keras' Poisson loss ``mean(y_pred - y_true * log(y_pred))``.")


class Huber(LossFunctionWrapper):
    """The Huber loss: quadratic for errors up to ``delta``, linear beyond (per sample, averaged over the last axis).

    Args:
        delta: the error at which the loss turns from quadratic to linear (positive).
        reduction: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"`` or
            ``"none"``/None.
    """

    def __init__(
        self, delta: float = 1.0, reduction: str | None = "sum_over_batch_size", name: str = "huber_loss", dtype=None
    ):
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not float(delta) > 0.0:
            raise ValueError(f"`delta` must be a positive float. Received: delta={delta!r}")
        super().__init__(huber, reduction=reduction, name=name, dtype=dtype, delta=float(delta))
        self.delta = float(delta)


class BinaryFocalCrossentropy(LossFunctionWrapper):
    """Keras' binary focal cross-entropy: binary cross-entropy down-weighting easy examples by ``(1 - p_t)**gamma``.

    Args:
        apply_class_balancing: weight positives by ``alpha`` and negatives by ``1 - alpha``.
        alpha: the class-balancing weight (with ``apply_class_balancing``). Defaults to 0.25.
        gamma: the focusing parameter. Defaults to 2.0.
        from_logits, label_smoothing, axis: as :class:`BinaryCrossentropy`.
    """

    def __init__(
        self,
        apply_class_balancing: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_focal_crossentropy",
        dtype: Any = None,
    ):
        super().__init__(
            binary_focal_crossentropy,
            reduction=reduction,
            name=name,
            dtype=dtype,
            from_logits=bool(from_logits),  # the config's order is Keras'
            label_smoothing=_unit_float("label_smoothing", label_smoothing),
            axis=_check_axis(axis),
            apply_class_balancing=bool(apply_class_balancing),
            alpha=alpha,
            gamma=gamma,
        )
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), float(label_smoothing), axis
        self.apply_class_balancing, self.alpha, self.gamma = bool(apply_class_balancing), alpha, gamma


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    """Keras' categorical focal cross-entropy: ``alpha * (1 - p)**gamma`` times the cross-entropy of each class.

    Args:
        alpha: the weighting factor. Defaults to 0.25.
        gamma: the focusing parameter. Defaults to 2.0.
        from_logits, label_smoothing, axis: as :class:`CategoricalCrossentropy`.
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_focal_crossentropy",
        dtype: Any = None,
    ):
        super().__init__(
            categorical_focal_crossentropy,
            reduction=reduction,
            name=name,
            dtype=dtype,
            from_logits=bool(from_logits),  # the config's order is Keras'
            label_smoothing=_unit_float("label_smoothing", label_smoothing),
            axis=_check_axis(axis),
            alpha=alpha,
            gamma=gamma,
        )
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), float(label_smoothing), axis
        self.alpha, self.gamma = alpha, gamma


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    """Keras' generalized cross-entropy ``(1 - p**q) / q`` (robust to noisy labels), ``p`` the probability of the
    true class; ``y_true`` holds class labels.

    Args:
        q: in (0, 1): towards 0 it behaves like cross-entropy, towards 1 like the mean absolute error. Defaults to 0.5.
    """

    _native_inputs = True  # class labels stay integers

    def __init__(
        self,
        q: float = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_generalized_cross_entropy",
        dtype: Any = None,
    ):
        q = _unit_float("q", q, low_open=True, high_open=True)
        super().__init__(categorical_generalized_cross_entropy, reduction=reduction, name=name, dtype=dtype, q=q)
        self.q = q

    def call(self, y_true, y_pred):
        return categorical_generalized_cross_entropy(y_true, y_pred, self.q)


# ---- names -----------------------------------------------------------------------------------------------------------

_CLASSES: tuple[type[Loss], ...] = (
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    CategoricalFocalCrossentropy,
    CategoricalGeneralizedCrossEntropy,
    SparseCategoricalCrossentropy,
    MeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    CosineSimilarity,
    LogCosh,
    Huber,
    Hinge,
    SquaredHinge,
    CategoricalHinge,
    KLDivergence,
    Poisson,
)
# The built-in per-sample functions and the class that computes each with its defaults (compile() uses the class:
# the same values as Keras' LossFunctionWrapper of the function, through the fused kernels' paths).
FUNCTION_CLASSES: dict[Callable[..., torch.Tensor], type[Loss]] = {
    binary_crossentropy: BinaryCrossentropy,
    binary_focal_crossentropy: BinaryFocalCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    categorical_focal_crossentropy: CategoricalFocalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError,
    cosine_similarity: CosineSimilarity,
    log_cosh: LogCosh,
    huber: Huber,
    hinge: Hinge,
    squared_hinge: SquaredHinge,
    categorical_hinge: CategoricalHinge,
    kl_divergence: KLDivergence,
    poisson: Poisson,
}
# What a string in compile(loss=...) or losses.get() names, as Keras' table: a class by its name, a function by its
# name or Keras' short aliases (get() returns the function itself, as Keras does); "huber_loss" (Huber's name) too.
ALL_OBJECTS: dict[str, Any] = {
    **{cls.__name__: cls for cls in _CLASSES},
    **{fn.__name__: fn for fn in FUNCTION_CLASSES},
    "categorical_generalized_cross_entropy": categorical_generalized_cross_entropy,
    "huber_loss": Huber,
    "bce": binary_crossentropy,
    "BCE": binary_crossentropy,
    "kld": kl_divergence,
    "KLD": kl_divergence,
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "mape": mean_absolute_percentage_error,
    "MAPE": mean_absolute_percentage_error,
    "msle": mean_squared_logarithmic_error,
    "MSLE": mean_squared_logarithmic_error,
}
_BY_CLASS_NAME: dict[str, type[Loss]] = {cls.__name__: cls for cls in _CLASSES}


def serialize(loss: Any) -> Any:
    """A loss for a JSON config, in Keras 3's layout: ``{"module", "class_name", "config", "registered_name"}``
    for a ``Loss`` (``"keras.losses"`` and None for a built-in class; a registered class, its module and
    ``"package>name"``), Keras' function record for a function, a string as it is."""
    return _serialization.serialize_keras_object(loss)


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Any:
    """:func:`serialize`'s inverse: Keras' layout, tritonnn's earlier ``{"class_name", "config"}``, a function
    record or a name (``custom_objects`` names user classes and functions; the registry and an active
    ``custom_object_scope`` are consulted too, a registered class by its registered name)."""
    custom = known_objects(custom_objects)
    if isinstance(config, dict):
        name = config.get("class_name")
        if name == "function":
            return _serialization.resolve_function(
                config.get("config"), config.get("module"), custom_objects, (sys.modules[__name__],)
            )
        cls = next(
            (custom[k] for k in (config.get("registered_name"), name) if isinstance(k, str) and k in custom),
            (_BY_CLASS_NAME.get(name) or (Loss if name == "Loss" else None)) if isinstance(name, str) else None,
        )
        if not isinstance(cls, type):
            raise ValueError(f"Unknown loss class: {name!r}. Valid names: {sorted(_BY_CLASS_NAME)}")
        return cls.from_config(config.get("config") or {})
    if isinstance(config, str):
        return custom[config] if config in custom else get(config)
    raise ValueError(f"Could not interpret serialized loss: {config!r}")


def get(identifier: Any) -> Any:
    """A loss as Keras' ``losses.get`` gives it: a class name gives an instance (``"MeanSquaredError"``), a function
    name or alias the function (``"mse"`` is ``mean_squared_error``); a config dict, a ``Loss`` instance or class,
    or a callable ``fn(y_true, y_pred)`` (returned as it is) are accepted too."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        obj = ALL_OBJECTS.get(identifier)
        if obj is None:
            names = sorted(ALL_OBJECTS)
            close = difflib.get_close_matches(identifier, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown loss: {identifier!r}.{hint} Valid names: {names}")
        return obj() if isinstance(obj, type) else obj
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")
