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

from . import losses, ops


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
        if values.dim() == 0 and type(sample_weight) in (int, float):
            # fit()'s loss trackers: a scalar weighted by the batch size, two in-place launches and no host tensor.
            self._state["total"].add_(values, alpha=sample_weight)
            self._state["count"].add_(sample_weight)
            return
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

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = y_pred.detach() if isinstance(y_pred, torch.Tensor) else torch.as_tensor(y_pred, dtype=torch.float32)
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


# ---- top-k and cross-entropy metrics ----------------------------------------------------------------------------


def top_k_categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor, k: int = 5) -> torch.Tensor:
    """1.0 where the true class (argmax of one-hot ``y_true``) is among the ``k`` highest scores (ties count)."""
    labels = y_true.argmax(-1)
    return ops.in_top_k(labels.reshape(-1), y_pred.reshape(-1, y_pred.shape[-1]), k).to(torch.float32)


def sparse_top_k_categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor, k: int = 5) -> torch.Tensor:
    """1.0 where the integer label is among the ``k`` highest scores of its row (ties with the k-th count)."""
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return ops.in_top_k(y_true.reshape(-1), y_pred.reshape(-1, y_pred.shape[-1]), k).to(torch.float32)


def _check_k(k: Any) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"Argument `k` must be a positive integer. Received: k={k!r}")
    return k


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target's class is in the top ``k`` predictions.

    Args:
        k: the number of top elements to look at. Defaults to 5.
    """

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: Any = None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=_check_k(k))


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer target is in the top ``k`` predictions.

    Args:
        k: the number of top elements to look at. Defaults to 5.
    """

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype: Any = None):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=_check_k(k))


BinaryCrossentropy = _wrapper_class(
    "BinaryCrossentropy", losses.binary_crossentropy, "binary_crossentropy", from_logits=False, label_smoothing=0.0
)
CategoricalCrossentropy = _wrapper_class(
    "CategoricalCrossentropy",
    losses.categorical_crossentropy,
    "categorical_crossentropy",
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
)
SparseCategoricalCrossentropy = _wrapper_class(
    "SparseCategoricalCrossentropy",
    losses.sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy",
    from_logits=False,
    axis=-1,
)


# ---- confusion-matrix metrics: Precision, Recall, AUC --------------------------------------------------------------

NEG_INF = -1e10  # Keras' stand-in for -inf: what top_k filtering writes over the predictions it drops
EPSILON = 1e-7  # keras.config.epsilon(): AUC's outer thresholds are -epsilon and 1 + epsilon


def _parse_thresholds(thresholds: Any, default: float) -> list[float]:
    if thresholds is None:
        return [default]
    values = [thresholds] if isinstance(thresholds, (int, float)) else list(thresholds)
    bad = [t for t in values if t is None or not isinstance(t, (int, float)) or not 0.0 <= float(t) <= 1.0]
    if bad or not values:
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad or values}")
    return [float(t) for t in values]


def _filter_top_k(x: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row; the others become NEG_INF (never above a threshold).

    Ties go to the lower index (a stable sort), as Keras' ``ops.top_k`` picks them."""
    idx = torch.argsort(x, dim=-1, descending=True, stable=True)[..., :k]
    keep = torch.zeros_like(x, dtype=torch.bool).scatter_(-1, idx, True)
    return torch.where(keep, x, torch.full_like(x, NEG_INF))


def _prepare(
    y_true: Any,
    y_pred: Any,
    sample_weight: Any,
    top_k: int | None = None,
    class_id: int | None = None,
    label_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predictions (float64), labels (bool) and weights (float64), all of y_pred's shape after top_k/class_id."""
    y_pred = y_pred.detach() if isinstance(y_pred, torch.Tensor) else torch.as_tensor(y_pred)
    y_pred = y_pred.to(torch.float64)
    y_true = _as_tensor(y_true, y_pred.device).detach()
    y_true, y_pred = losses.same_rank(y_true, y_pred)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"y_true and y_pred must have the same shape. Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    y_true = y_true != 0
    if sample_weight is None:
        w = torch.ones_like(y_pred)
    else:
        w = _as_tensor(sample_weight, y_pred.device).to(torch.float64)
        while w.dim() < y_pred.dim():
            w = w.unsqueeze(-1)
        w = torch.broadcast_to(w, y_pred.shape)
    if label_weights is not None:
        w = w * label_weights.to(y_pred.device, torch.float64)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        y_true, y_pred, w = y_true[..., class_id], y_pred[..., class_id], w[..., class_id]
    return y_pred, y_true, w


def _counts_by_comparison(
    y_pred: torch.Tensor, y_true: torch.Tensor, w: torch.Tensor, thresholds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tp, fp, tn, fn) per threshold, ``prediction > threshold`` counting as positive. O(N * T)."""
    p, t, w = y_pred.reshape(-1), y_true.reshape(-1), w.reshape(-1)
    pos = p.unsqueeze(0) > thresholds.unsqueeze(1)  # (T, N)
    wt, wf = torch.where(t, w, 0.0), torch.where(t, 0.0, w)
    tp = (pos * wt).sum(-1)
    fp = (pos * wf).sum(-1)
    return tp, fp, wf.sum() - fp, wt.sum() - tp


def _counts_by_bucket(
    y_pred: torch.Tensor, y_true: torch.Tensor, w: torch.Tensor, num_thresholds: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tp, fp, tn, fn) per threshold, shape (T, *labels), for Keras' evenly spaced thresholds in O(N + T).

    Thresholds are ``[-eps, 1/(T-1), ..., (T-2)/(T-1), 1 + eps]``. A prediction ``p`` is above threshold ``i``
    exactly when ``i <= ceil(p * (T - 1)) - 1`` (bucket 0 for p = 0, which is above -eps). So each prediction's
    weight lands in its bucket, and a reverse cumulative sum over buckets counts everything above each threshold.
    The leading axes of ``y_pred`` are samples; a trailing labels axis is kept (AUC's ``multi_label``).
    """
    t_count = num_thresholds
    bucket = (torch.ceil(y_pred * (t_count - 1)) - 1).clamp(0, t_count - 1).to(torch.int64)
    wt, wf = torch.where(y_true, w, 0.0), torch.where(y_true, 0.0, w)
    labels = y_pred.shape[1:]
    n_labels = 1
    for d in labels:
        n_labels *= d
    b = bucket.reshape(-1, n_labels)
    flat = (b * n_labels + torch.arange(n_labels, device=b.device)).reshape(-1)
    tp_b = torch.zeros(t_count * n_labels, dtype=torch.float64, device=b.device)
    fp_b = torch.zeros_like(tp_b)
    tp_b.index_add_(0, flat, wt.reshape(-1))
    fp_b.index_add_(0, flat, wf.reshape(-1))
    tp = tp_b.reshape(t_count, n_labels).flip(0).cumsum(0).flip(0)
    fp = fp_b.reshape(t_count, n_labels).flip(0).cumsum(0).flip(0)
    tn = wf.reshape(-1, n_labels).sum(0) - fp
    fn = wt.reshape(-1, n_labels).sum(0) - tp
    return tuple(v.reshape(t_count, *labels) for v in (tp, fp, tn, fn))


def _divide_no_nan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))


class _PrecisionRecall(Metric):
    _kind = "precision"

    def __init__(
        self,
        thresholds: float | list[float] | None = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        super().__init__(name=name, dtype=dtype)
        if top_k is not None:
            _check_k(top_k)
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        self.thresholds = _parse_thresholds(thresholds, 0.5 if top_k is None else NEG_INF)
        self._thr = torch.tensor(self.thresholds, dtype=torch.float64)
        self.add_variable("true_positives", (len(self.thresholds),))
        self.add_variable(
            "false_positives" if self._kind == "precision" else "false_negatives", (len(self.thresholds),)
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        p, t, w = _prepare(y_true, y_pred, sample_weight, self.top_k, self.class_id)
        self._to(p.device)
        if self._thr.device != p.device:
            self._thr = self._thr.to(p.device)
        tp, fp, _, fn = _counts_by_comparison(p, t, w, self._thr)
        self._state["true_positives"] += tp
        if self._kind == "precision":
            self._state["false_positives"] += fp
        else:
            self._state["false_negatives"] += fn

    def result(self) -> torch.Tensor:
        tp = self._state["true_positives"]
        other = self._state["false_positives" if self._kind == "precision" else "false_negatives"]
        out = _divide_no_nan(tp, tp + other).to(torch.float32)
        return out[0] if len(self.thresholds) == 1 else out

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "thresholds": self.init_thresholds,
            "top_k": self.top_k,
            "class_id": self.class_id,
        }


class Precision(_PrecisionRecall):
    """The precision of the predictions: ``true_positives / (true_positives + false_positives)``.

    A prediction counts as positive when it is above the threshold; labels count as positive when non-zero.

    Args:
        thresholds: a float or list of floats in [0, 1] (default 0.5; with ``top_k``, every top-k entry is positive).
            With a list, ``result()`` is one precision per threshold.
        top_k: only the ``k`` highest predictions of each row can count as positive.
        class_id: compute the metric for this class column only.
    """

    _kind = "precision"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name: str = "precision", dtype: Any = None):
        super().__init__(thresholds, top_k, class_id, name=name, dtype=dtype)


class Recall(_PrecisionRecall):
    """The recall of the predictions: ``true_positives / (true_positives + false_negatives)``.

    Args: as :class:`Precision`.
    """

    _kind = "recall"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name: str = "recall", dtype: Any = None):
        super().__init__(thresholds, top_k, class_id, name=name, dtype=dtype)


class AUC(Metric):
    """The area under the ROC or precision-recall curve, from confusion matrices at ``num_thresholds`` thresholds.

    Predictions are bucketed against thresholds ``[-eps, 1/(T-1), ..., (T-2)/(T-1), 1 + eps]`` (Keras' evenly
    spaced thresholds; O(N + T) per update, all on the device). The area is a Riemann sum over the thresholds:
    trapezoids for ``summation_method="interpolation"`` on ROC, the Davis & Goadrich interpolation for PR.

    Args:
        num_thresholds: number of thresholds (> 1). Defaults to 200.
        curve: ``"ROC"`` (default) or ``"PR"``.
        summation_method: ``"interpolation"`` (default), ``"minoring"`` or ``"majoring"``.
        thresholds: optional explicit thresholds in [0, 1]; -eps and 1 + eps are added at the ends.
        multi_label: whether each column of 2-D inputs is its own label (one AUC per label, averaged) rather
            than every entry one binary decision.
        num_labels: the number of label columns with ``multi_label`` (else found at the first update).
        label_weights: optional per-label weights (of the average with ``multi_label``, of the counts otherwise).
        from_logits: whether predictions are logits (a sigmoid is applied first).
    """

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str = "auc",
        dtype: Any = None,
        thresholds: list[float] | None = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Any = None,
        from_logits: bool = False,
    ):
        super().__init__(name=name, dtype=dtype)
        if str(curve).upper() not in ("ROC", "PR"):
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC"]')
        methods = ("interpolation", "majoring", "minoring")
        if str(summation_method).lower() not in methods:
            raise ValueError(
                f'Invalid AUC summation method value: "{summation_method}". Expected values are '
                '["interpolation", "majoring", "minoring"]'
            )
        if thresholds is not None:
            inner = sorted(_parse_thresholds(thresholds, 0.5))
            self._evenly = False
            num_thresholds = len(inner) + 2
        else:
            if not isinstance(num_thresholds, int) or isinstance(num_thresholds, bool) or num_thresholds <= 1:
                raise ValueError(
                    f"Argument `num_thresholds` must be an integer > 1. Received: num_thresholds={num_thresholds}"
                )
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._evenly = True
        self.num_thresholds = num_thresholds
        self.thresholds = [0.0 - EPSILON, *inner, 1.0 + EPSILON]
        self._thr = torch.tensor(self.thresholds, dtype=torch.float64)
        self.curve = str(curve).upper()
        self.summation_method = str(summation_method).lower()
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else torch.as_tensor(label_weights, dtype=torch.float64)
        self._init_thresholds = thresholds
        self._from_logits = bool(from_logits)
        self._built = False
        if not self.multi_label or num_labels is not None:
            self._build(num_labels if self.multi_label else None)

    def _build(self, num_labels: int | None) -> None:
        shape = (self.num_thresholds,) if num_labels is None else (self.num_thresholds, num_labels)
        for name in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            self.add_variable(name, shape)
        self.num_labels = num_labels
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = y_pred.detach() if isinstance(y_pred, torch.Tensor) else torch.as_tensor(y_pred)
        if self._from_logits:
            y_pred = torch.sigmoid(y_pred.to(torch.float64))
        label_weights = None if self.multi_label else self.label_weights
        p, t, w = _prepare(y_true, y_pred, sample_weight, label_weights=label_weights)
        if self.multi_label:
            if p.dim() != 2:
                raise ValueError(f"AUC(multi_label=True) expects 2-D (samples, labels) inputs. Received: {p.shape}")
            if not self._built:
                self._build(p.shape[1])
        else:
            p, t, w = p.reshape(-1), t.reshape(-1), w.reshape(-1)
        self._to(p.device)
        if self._evenly:
            counts = _counts_by_bucket(p, t, w, self.num_thresholds)
        else:
            thr = self._thr.to(p.device)
            if self.multi_label:
                per_label = [_counts_by_comparison(p[:, j], t[:, j], w[:, j], thr) for j in range(p.shape[1])]
                counts = tuple(torch.stack([c[i] for c in per_label], dim=-1) for i in range(4))
            else:
                counts = _counts_by_comparison(p, t, w, thr)
        for name, value in zip(
            ("true_positives", "false_positives", "true_negatives", "false_negatives"), counts, strict=True
        ):
            self._state[name] += value

    def _interpolate_pr_auc(self, tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
        """Davis & Goadrich (2006): precision interpolated linearly in the number of positives between thresholds."""
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        prec_slope = _divide_no_nan(dtp, dp.clamp_min(0))
        intercept = tp[1:] - prec_slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        safe_p_ratio = torch.where(both, _divide_no_nan(p[:-1], p[1:].clamp_min(0)), torch.ones_like(p[1:]))
        increment = _divide_no_nan(
            prec_slope * (dtp + intercept * torch.log(safe_p_ratio)), (tp[1:] + fn[1:]).clamp_min(0)
        )
        return increment.sum(0)

    def result(self) -> torch.Tensor:
        if not self._built:
            return torch.zeros((), dtype=torch.float32)
        s = self._state
        tp, fp, tn, fn = s["true_positives"], s["false_positives"], s["true_negatives"], s["false_negatives"]
        if self.curve == "PR" and self.summation_method == "interpolation":
            by_label = self._interpolate_pr_auc(tp, fp, fn)
        else:
            recall = _divide_no_nan(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _divide_no_nan(fp, fp + tn), recall
            else:
                x, y = recall, _divide_no_nan(tp, tp + fp)
            if self.summation_method == "interpolation":
                heights = (y[:-1] + y[1:]) / 2.0
            elif self.summation_method == "minoring":
                heights = torch.minimum(y[:-1], y[1:])
            else:
                heights = torch.maximum(y[:-1], y[1:])
            by_label = ((x[:-1] - x[1:]) * heights).sum(0)
        if not self.multi_label:
            return by_label.to(torch.float32)
        if self.label_weights is None:
            return by_label.mean().to(torch.float32)
        lw = self.label_weights.to(by_label.device)
        return _divide_no_nan((by_label * lw).sum(), lw.sum()).to(torch.float32)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "thresholds": self._init_thresholds,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
            "from_logits": self._from_logits,
        }


ALL_OBJECTS.update(
    {
        "top_k_categorical_accuracy": TopKCategoricalAccuracy,
        "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
        "precision": Precision,
        "recall": Recall,
        "auc": AUC,
        "binary_crossentropy": BinaryCrossentropy,
        "categorical_crossentropy": CategoricalCrossentropy,
        "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    }
)
_BY_CLASS_NAME.update({cls.__name__: cls for cls in ALL_OBJECTS.values()})


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


# Which way is better, as Keras metrics declare it (EarlyStopping/ModelCheckpoint use it for mode="auto").
for _cls, _direction in (
    (Accuracy, "up"),
    (SparseCategoricalAccuracy, "up"),
    (CategoricalAccuracy, "up"),
    (BinaryAccuracy, "up"),
    (TopKCategoricalAccuracy, "up"),
    (SparseTopKCategoricalAccuracy, "up"),
    (_PrecisionRecall, "up"),
    (AUC, "up"),
    (MeanSquaredError, "down"),
    (MeanAbsoluteError, "down"),
    (BinaryCrossentropy, "down"),
    (CategoricalCrossentropy, "down"),
    (SparseCategoricalCrossentropy, "down"),
):
    _cls._direction = _direction
