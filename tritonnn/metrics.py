"""Keras 3 metrics, stateful (``update_state``, ``result``, ``reset_state``).

State lives in device tensors (:class:`Variable`, made by ``add_variable``), so updating a metric never waits for
the GPU; only ``result()`` read as a Python number (``float(m.result())``) does. A custom metric written for Keras
(``self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")``, ``self.tp.assign_add(...)`` in
``update_state``, ``return self.tp`` from ``result``) runs unchanged: its variables are reset by ``reset_state`` and
summed over the ranks of a data-parallel run like the built-in metrics' states.

Targets meet predictions under one rule, :func:`tritonnn.losses.same_rank` (Keras' ``squeeze_or_expand_to_same_rank``),
in every metric, and sample weights meet per-sample values under it too; sparse labels may be integers or floats that
hold whole numbers (``tritonnn.kernels.sparse_labels``).
"""

from __future__ import annotations

import difflib
import re
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import _serialization, config, initializers, kernels, losses, ops
from ._registry import known_objects
from .layers.layer import unique_name
from .losses import same_rank

AGGREGATIONS = ("none", "mean", "sum", "only_first_replica")


def _to_snake_case(name: str) -> str:
    """Keras' ``to_snake_case`` (``"AUC"`` -> ``"auc"``, ``"FBetaScore"`` -> ``"f_beta_score"``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _detached(x: Any) -> torch.Tensor:
    """A tensor outside autograd: a tensor as it is when it needs no gradient (fit hands over detached ones; no
    extra op per step), else detached; anything else converted."""
    if isinstance(x, torch.Tensor):
        return x.detach() if x.requires_grad else x
    return torch.as_tensor(np.asarray(x))


def _as_tensor(x: Any, device: torch.device) -> torch.Tensor:
    x = _detached(x)
    return x if x.device == device else x.to(device)


def _prediction(y_pred: Any) -> torch.Tensor:
    """Predictions as a detached floating tensor (float32 unless already floating)."""
    y_pred = _detached(y_pred)
    return y_pred if y_pred.dtype.is_floating_point else y_pred.to(torch.float32)


def _divide_no_nan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))


# ---- state variables -------------------------------------------------------------------------------------------------


class Variable(torch.Tensor):
    """A metric's state, as Keras' metric variables: a tensor (every torch op and ``tritonnn.ops`` function takes
    it, arithmetic gives plain tensors) with ``assign``, ``assign_add``, ``assign_sub``, ``numpy()``, ``value``,
    ``name`` and ``aggregation`` (how a data-parallel run combines the ranks' values: ``"sum"``, ``"mean"``,
    ``"only_first_replica"`` or ``"none"``).

    Updates are in place (a captured CUDA graph keeps updating the same memory); a value on another device moves a
    variable that is still on the host to that device.
    """

    __torch_function__ = torch._C._disabled_torch_function_impl  # ops on a Variable return plain tensors

    def __new__(cls, value: torch.Tensor, name: str | None = None, aggregation: str = "sum") -> Variable:
        v = torch.Tensor._make_subclass(cls, value.detach(), False)
        v._var_name = name or "variable"
        v._aggregation = aggregation
        return v

    @property
    def name(self) -> str:  # noqa: D102 - Keras' attribute (torch.Tensor's own `name` is unused for these)
        return self._var_name

    @property
    def path(self) -> str:
        return self._var_name

    @property
    def aggregation(self) -> str:
        return self._aggregation

    trainable = False

    @property
    def value(self) -> torch.Tensor:
        """The current value as a plain tensor (the same memory)."""
        return self.as_subclass(torch.Tensor)

    def numpy(self) -> np.ndarray:  # type: ignore[override]
        """A copy of the value, on the host (later updates do not change it)."""
        value = self.detach()
        return np.array((value.float() if value.dtype == torch.bfloat16 else value).cpu().numpy())

    def _coerce(self, value: Any) -> torch.Tensor | float:
        """A tensor in this variable's dtype on its device, or a Python number (used as a scalar operand: no host
        tensor, nothing copied to the device, so a captured step stays free of transfers)."""
        if isinstance(value, (bool, int, float, np.number)) and not isinstance(value, np.ndarray):
            return value.item() if isinstance(value, np.number) else value
        if isinstance(value, torch.Tensor):
            value = value.detach() if value.requires_grad else value
            if value.device != self.device:
                if self.device.type == "cpu":
                    self.data = self.data.to(value.device)
                else:
                    value = value.to(self.device)
            return value if value.dtype == self.dtype else value.to(self.dtype)
        return torch.as_tensor(np.asarray(value), device=self.device).to(self.dtype)

    def _check(self, what: str, value: torch.Tensor | float, exact: bool) -> None:
        shape = () if not isinstance(value, torch.Tensor) else tuple(value.shape)
        ok = shape == tuple(self.shape) or (not exact and not shape)
        if not ok and not exact:
            try:
                ok = tuple(torch.broadcast_shapes(self.shape, shape)) == tuple(self.shape)
            except RuntimeError:
                ok = False
        if not ok:
            raise ValueError(
                f"The shape of the target variable and the shape of the target value in `variable.{what}(value)` "
                f"must match. variable.shape={tuple(self.shape)}, Received: value.shape={shape}. "
                f"Target variable: {self.name}"
            )

    def assign(self, value: Any) -> torch.Tensor:
        value = self._coerce(value)
        if not isinstance(value, torch.Tensor) and self.dim() == 0:
            with torch.no_grad():
                self.fill_(value)
            return self.value
        self._check("assign", value, exact=True)
        with torch.no_grad():
            self.copy_(value)
        return self.value

    def assign_add(self, value: Any) -> torch.Tensor:
        value = self._coerce(value)
        self._check("assign_add", value, exact=False)
        with torch.no_grad():
            self.add_(value)
        return self.value

    def assign_sub(self, value: Any) -> torch.Tensor:
        value = self._coerce(value)
        self._check("assign_sub", value, exact=False)
        with torch.no_grad():
            self.sub_(value)
        return self.value

    def __repr__(self) -> str:  # type: ignore[override]
        dtype = str(self.dtype).replace("torch.", "")
        return f"<Variable path={self.name}, shape={tuple(self.shape)}, dtype={dtype}, value={self.numpy()}>"

    def __deepcopy__(self, memo: dict) -> Variable:
        return Variable(self.value.clone(), self._var_name, self._aggregation)

    def __reduce_ex__(self, protocol: int) -> tuple:
        return (_rebuild_variable, (self.value.detach(), self._var_name, self._aggregation))


def _rebuild_variable(value: torch.Tensor, name: str, aggregation: str) -> Variable:
    return Variable(value, name, aggregation)


# ---- the base class --------------------------------------------------------------------------------------------------


class Metric:
    """Base class of stateful metrics (Keras' ``keras.metrics.Metric``).

    A subclass makes its state with :meth:`add_variable` in ``__init__`` (after ``super().__init__()``), updates it
    in ``update_state`` and reads it in ``result``; the default ``reset_state`` zeroes every variable, those of
    metrics held as attributes included.
    """

    def __init__(self, dtype: Any = None, name: str | None = None):
        object.__setattr__(self, "_metrics", [])
        self._state: dict[str, Variable] = {}
        # Keras' automatic names: "auc", then "auc_1"... (the counter of automatic layer names, reset by
        # keras.backend.clear_session()); a name given is kept as it is.
        self.name = name or unique_name(_to_snake_case(type(self).__name__))
        self._dtype = config.standardize_dtype(dtype or "float32")

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Metric) and value is not self and "_metrics" in self.__dict__:
            if all(value is not m for m in self._metrics):
                self._metrics.append(value)
        object.__setattr__(self, name, value)

    @property
    def dtype(self) -> str:
        return str(self._dtype).replace("torch.", "")

    def _check_super_called(self) -> None:
        if "_state" not in self.__dict__:
            raise RuntimeError("You forgot to call `super().__init__()` in the `__init__()` method. Go add it!")

    def add_variable(
        self,
        shape: Any,
        initializer: Any,
        dtype: Any = None,
        aggregation: str = "sum",
        name: str | None = None,
    ) -> Variable:
        """A state variable (Keras' signature): ``shape``, an ``initializer`` (a name such as ``"zeros"``, an
        initializer object or a callable ``(shape, dtype)``; None means zeros), ``dtype`` (default float32),
        ``aggregation`` over data-parallel ranks and ``name``. Made on ``tritonnn.config.default_device()``."""
        self._check_super_called()
        if aggregation not in AGGREGATIONS:
            raise ValueError(
                f"Invalid value for argument `aggregation`. Expected one of {AGGREGATIONS}. "
                f"Received: aggregation={aggregation!r}"
            )
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
        torch_dtype = config.standardize_dtype(dtype)
        init = initializers.get(initializer) if isinstance(initializer, (str, dict)) else initializer
        if init is None:
            value = torch.zeros(shape, dtype=torch_dtype)
        elif callable(init):
            value = init(shape, dtype=torch_dtype)
        else:
            raise ValueError(f"Could not interpret initializer: {initializer!r}")
        value = torch.as_tensor(value).to(device=config.default_device(), dtype=torch_dtype)
        if tuple(value.shape) != shape:
            raise ValueError(f"The initializer of {name!r} made shape {tuple(value.shape)}, expected {shape}")
        key, i = name or "variable", 1
        while key in self._state:
            key, i = f"{name or 'variable'}_{i}", i + 1
        variable = Variable(value, name=name or "variable", aggregation=aggregation)
        self._state[key] = variable
        return variable

    def add_weight(self, shape: Any = (), initializer: Any = None, dtype: Any = None, name: str | None = None):
        """Keras' backwards-compatible alias of :meth:`add_variable`."""
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    @property
    def variables(self) -> list[Variable]:
        out = list(self._state.values())
        for m in self._metrics:
            out.extend(m.variables)
        return out

    def _to(self, device: torch.device) -> None:
        """Move every variable to ``device``, in place (the Variable objects a subclass holds stay valid)."""
        for v in self.variables:
            if v.device != device:
                v.data = v.data.to(device)

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def result(self) -> Any:
        raise NotImplementedError

    def reset_state(self) -> None:
        with torch.no_grad():
            for v in self.variables:
                v.zero_()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._check_super_called()
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"

    __str__ = __repr__


# ---- reductions ------------------------------------------------------------------------------------------------------


def _samplewise(
    values: torch.Tensor, sample_weight: Any, reduce: Callable[..., torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Keras' ``reduce_to_samplewise_values`` in float64: weights matched to the values' rank, values reduced to
    the weights' rank and weighted, then both reduced to one value per sample."""
    values = values.to(torch.float64)
    w = None
    if sample_weight is not None:
        w = _as_tensor(sample_weight, values.device).to(torch.float64)
        values, w = same_rank(values, w)
        w_dim, v_dim = w.dim(), values.dim()
        if v_dim > w_dim:
            values = reduce(values, dim=tuple(range(w_dim, v_dim)))
        try:
            w = torch.broadcast_to(w, values.shape)
        except RuntimeError:
            raise ValueError(
                f"`sample_weight` of shape {tuple(w.shape)} does not match values of shape {tuple(values.shape)}"
            ) from None
        values = values * w
        if w_dim > 1:
            w = reduce(w, dim=tuple(range(1, w_dim)))
    if values.dim() > 1:
        values = reduce(values, dim=tuple(range(1, values.dim())))
    return values, w


class Sum(Metric):
    """The (weighted) sum of the values given to ``update_state``."""

    def __init__(self, name: str = "sum", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), "zeros", dtype="float64", name="total")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values = _as_tensor(values, self.total.device)
        self._to(values.device)
        values, _ = _samplewise(values, sample_weight, torch.sum)
        self.total.add_(values.sum())

    def result(self) -> torch.Tensor:
        return self.total.value.to(self._dtype)


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state``."""

    def __init__(self, name: str = "mean", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), "zeros", dtype="float64", name="total")
        self.count = self.add_variable((), "zeros", dtype="float64", name="count")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        values = _detached(values)
        self._to(values.device)
        if values.dim() == 0 and type(sample_weight) in (int, float):
            # fit()'s loss trackers: a scalar weighted by the batch size, two in-place launches and no host tensor.
            self.total.add_(values, alpha=sample_weight)
            self.count.add_(sample_weight)
            return
        values, w = _samplewise(values, sample_weight, torch.mean)
        self.total.add_(values.sum())
        if w is not None:
            self.count.add_(w.sum())
        else:
            self.count.add_(values.shape[0] if values.dim() >= 1 else 1)

    def result(self) -> torch.Tensor:
        return _divide_no_nan(self.total.value, self.count.value).to(self._dtype)


class MeanMetricWrapper(Mean):
    """The mean over samples of ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn: Callable[..., torch.Tensor], name: str | None = None, dtype: Any = None, **kwargs: Any):
        super().__init__(name=name, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs
        if getattr(fn, "__module__", None) == losses.__name__:
            self._direction = "down"  # a Keras loss: to be minimised

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = _prediction(y_pred)
        y_true = _as_tensor(y_true, y_pred.device)
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self) -> dict[str, Any]:
        """``name``, ``dtype`` and the function's keyword arguments; a ``MeanMetricWrapper`` itself (not a metric
        class made from it) adds ``fn``, serialized as Keras writes a function."""
        config = {"name": self.name, "dtype": self.dtype, **self._fn_kwargs}
        if type(self) is MeanMetricWrapper:
            config["fn"] = _serialization.serialize_keras_object(self._fn)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MeanMetricWrapper:
        if cls is not MeanMetricWrapper or "fn" not in config:
            return super().from_config(config)
        config = dict(config)
        fn = config.pop("fn")
        return cls(deserialize(fn) if isinstance(fn, (dict, str)) else fn, **config)


def _wrapper_class(
    cls_name: str,
    fn: Callable[..., torch.Tensor],
    default_name: str,
    direction: str,
    doc: str,
    order: tuple[str, ...] | None = None,
    **defaults: Any,
) -> type[MeanMetricWrapper]:
    """A Keras metric class over a per-sample function, with Keras' parameters in Keras' order (``name``, ``dtype``,
    then the function's keyword arguments, unless ``order`` says otherwise)."""
    params = list(order or ("name", "dtype", *defaults))
    base = {**defaults, "name": default_name, "dtype": None}

    def __init__(self, *args: Any, **kwargs: Any):
        if len(args) > len(params):
            raise TypeError(f"{cls_name}() takes at most {len(params)} positional arguments ({len(args)} given)")
        given = dict(zip(params, args, strict=False))
        wrong = sorted((set(kwargs) - set(params)) | (set(given) & set(kwargs)))
        if wrong:
            raise TypeError(f"{cls_name}() got unexpected or repeated arguments {wrong}. Its arguments: {params}")
        a = {**base, **given, **kwargs}
        MeanMetricWrapper.__init__(self, fn, name=a["name"], dtype=a["dtype"], **{k: a[k] for k in defaults})
        for k in defaults:
            setattr(self, k, a[k])

    return type(
        cls_name,
        (MeanMetricWrapper,),
        {"__init__": __init__, "__doc__": doc, "__module__": __name__, "_direction": direction},
    )


# ---- accuracy --------------------------------------------------------------------------------------------------------


def accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where ``y_true == y_pred`` (ranks matched), else 0.0."""
    y_pred = _prediction(y_pred)
    y_true = _as_tensor(y_true, y_pred.device).to(y_pred.dtype)
    y_true, y_pred = same_rank(y_true, y_pred)
    return (y_true == y_pred).to(torch.float32)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> torch.Tensor:
    """1.0 where ``y_pred > threshold`` agrees with the label (per element; ranks matched)."""
    y_pred = _prediction(y_pred)
    y_true = _as_tensor(y_true, y_pred.device)
    y_true, y_pred = same_rank(y_true, y_pred)
    y_pred = (y_pred > threshold).to(y_true.dtype)
    return (y_true == y_pred).to(torch.float32)


def categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where the arg-max of the one-hot target equals the arg-max of the prediction."""
    y_pred = _prediction(y_pred)
    y_true = _as_tensor(y_true, y_pred.device).argmax(-1)
    shape, reshape = y_true.shape, False
    if y_true.dim() == y_pred.dim():
        y_true, reshape = y_true.squeeze(-1), True
    matches = (y_pred.argmax(-1) == y_true).to(torch.float32)
    return matches.reshape(shape) if reshape else matches


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """1.0 where the class label (an integer, or a float holding one) is the arg-max of the prediction."""
    y_pred = _prediction(y_pred)
    labels = kernels.sparse_labels(_as_tensor(y_true, y_pred.device), op="sparse_categorical_accuracy")
    shape, reshape = labels.shape, False
    if labels.dim() == y_pred.dim() and labels.shape[-1] == 1:
        labels, reshape = labels.squeeze(-1), True
    matches = (y_pred.argmax(-1) == labels).to(torch.float32)
    if reshape:
        matches = matches.reshape(shape)
    if matches.dim() > 1 and matches.shape[-1] == 1:
        matches = matches.squeeze(-1)
    return matches


def _check_k(k: Any) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"Argument `k` must be a positive integer. Received: k={k!r}")
    return k


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> torch.Tensor:
    """1.0 where the true class (arg-max of one-hot ``y_true``) is among the ``k`` highest scores (ties count)."""
    y_pred = _prediction(y_pred)
    labels = _as_tensor(y_true, y_pred.device).argmax(-1)
    shape = labels.shape
    matches = ops.in_top_k(labels.reshape(-1), y_pred.reshape(-1, y_pred.shape[-1]), k).to(torch.float32)
    return matches.reshape(shape)


def sparse_top_k_categorical_accuracy(
    y_true: Any, y_pred: Any, k: int = 5, from_sorted_ids: bool = False
) -> torch.Tensor:
    """1.0 where the class label is among the ``k`` highest scores of its row (ties with the k-th count); with
    ``from_sorted_ids``, ``y_pred`` holds class ids sorted by score and the first ``k`` are looked at."""
    y_pred = _detached(y_pred)
    if not (from_sorted_ids or y_pred.dtype.is_floating_point):
        y_pred = y_pred.to(torch.float32)
    labels = kernels.sparse_labels(_as_tensor(y_true, y_pred.device), op="sparse_top_k_categorical_accuracy")
    shape = labels.shape
    flat_pred = y_pred.reshape(-1, y_pred.shape[-1])
    flat = labels.reshape(-1)
    if from_sorted_ids:
        matches = (flat.unsqueeze(1) == flat_pred[:, :k]).any(1)
    else:
        matches = ops.in_top_k(flat, flat_pred, k)
    return matches.to(torch.float32).reshape(shape)


Accuracy = _wrapper_class("Accuracy", accuracy, "accuracy", "up", "How often predictions equal labels.")
BinaryAccuracy = _wrapper_class(
    "BinaryAccuracy",
    binary_accuracy,
    "binary_accuracy",
    "up",
    "How often ``y_pred > threshold`` matches binary labels. Args: threshold (default 0.5).",
    threshold=0.5,
)
CategoricalAccuracy = _wrapper_class(
    "CategoricalAccuracy", categorical_accuracy, "categorical_accuracy", "up", "Accuracy against one-hot targets."
)
SparseCategoricalAccuracy = _wrapper_class(
    "SparseCategoricalAccuracy",
    sparse_categorical_accuracy,
    "sparse_categorical_accuracy",
    "up",
    "Accuracy against class labels (integers, or floats holding whole numbers).",
)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target's class is in the top ``k`` predictions.

    Args:
        k: the number of top elements to look at. Defaults to 5.
    """

    _direction = "up"

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: Any = None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=_check_k(k))
        self.k = k


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the class label is in the top ``k`` predictions.

    Args:
        k: the number of top elements to look at. Defaults to 5.
        from_sorted_ids: whether ``y_pred`` holds class ids sorted by score rather than scores.
    """

    _direction = "up"

    def __init__(
        self,
        k: int = 5,
        name: str = "sparse_top_k_categorical_accuracy",
        dtype: Any = None,
        from_sorted_ids: bool = False,
    ):
        super().__init__(
            sparse_top_k_categorical_accuracy,
            name=name,
            dtype=dtype,
            k=_check_k(k),
            from_sorted_ids=bool(from_sorted_ids),
        )
        self.k, self.from_sorted_ids = k, bool(from_sorted_ids)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if not self.from_sorted_ids:  # Keras writes it only when it is set
            config.pop("from_sorted_ids")
        return config


# ---- probabilistic, regression and hinge metrics: means of the losses' per-sample functions --------------------------

binary_crossentropy = losses.binary_crossentropy
binary_focal_crossentropy = losses.binary_focal_crossentropy
categorical_crossentropy = losses.categorical_crossentropy
categorical_focal_crossentropy = losses.categorical_focal_crossentropy
sparse_categorical_crossentropy = losses.sparse_categorical_crossentropy
kl_divergence = losses.kl_divergence
poisson = losses.poisson
mean_squared_error = losses.mean_squared_error
mean_absolute_error = losses.mean_absolute_error
mean_absolute_percentage_error = losses.mean_absolute_percentage_error
mean_squared_logarithmic_error = losses.mean_squared_logarithmic_error
log_cosh = losses.log_cosh
huber = losses.huber
hinge = losses.hinge
squared_hinge = losses.squared_hinge
categorical_hinge = losses.categorical_hinge


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Per-sample cosine similarity along ``axis`` (the metric's sign: 1 for the same direction)."""
    return -losses.cosine_similarity(y_true, y_pred, axis=axis)


def pearson_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Per-sample Pearson correlation along ``axis`` (population standard deviations, as Keras)."""
    y_true, y_pred = losses.same_rank(_as_tensor(y_true, _prediction(y_pred).device).float(), _prediction(y_pred))
    t = y_true - y_true.mean(axis, keepdim=True)
    p = y_pred - y_pred.mean(axis, keepdim=True)
    t = t / t.std(axis, correction=0, keepdim=True)
    p = p / p.std(axis, correction=0, keepdim=True)
    return (t * p).mean(axis)


def concordance_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Per-sample concordance correlation along ``axis``, Keras' formula term for term."""
    y_true, y_pred = losses.same_rank(_as_tensor(y_true, _prediction(y_pred).device).float(), _prediction(y_pred))
    t_mean = y_true.mean(axis, keepdim=True)
    p_mean = y_pred.mean(axis, keepdim=True)
    t_var = (y_true - t_mean).var(axis, correction=0, keepdim=True)
    p_var = (y_pred - p_mean).var(axis, correction=0, keepdim=True)
    covar = (y_true - p_mean) * (y_pred - p_mean)
    norm = t_var + p_var + (t_mean - p_mean).square()
    return (2 * covar / (norm + config.epsilon())).mean(axis)


BinaryCrossentropy = _wrapper_class(
    "BinaryCrossentropy",
    binary_crossentropy,
    "binary_crossentropy",
    "down",
    "The mean binary cross-entropy. Args: from_logits, label_smoothing.",
    from_logits=False,
    label_smoothing=0.0,
)
CategoricalCrossentropy = _wrapper_class(
    "CategoricalCrossentropy",
    categorical_crossentropy,
    "categorical_crossentropy",
    "down",
    "The mean categorical cross-entropy. Args: from_logits, label_smoothing, axis.",
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
)
SparseCategoricalCrossentropy = _wrapper_class(
    "SparseCategoricalCrossentropy",
    sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy",
    "down",
    "The mean sparse categorical cross-entropy. Args: from_logits, ignore_class, axis.",
    from_logits=False,
    ignore_class=None,
    axis=-1,
)
KLDivergence = _wrapper_class("KLDivergence", kl_divergence, "kl_divergence", "down", "The mean KL divergence.")
Poisson = _wrapper_class("Poisson", poisson, "poisson", "down", "The mean Poisson loss.")
MeanSquaredError = _wrapper_class(
    "MeanSquaredError", mean_squared_error, "mean_squared_error", "down", "The mean squared error."
)
MeanAbsoluteError = _wrapper_class(
    "MeanAbsoluteError", mean_absolute_error, "mean_absolute_error", "down", "The mean absolute error."
)
MeanAbsolutePercentageError = _wrapper_class(
    "MeanAbsolutePercentageError",
    mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
    "down",
    "The mean absolute percentage error.",
)
MeanSquaredLogarithmicError = _wrapper_class(
    "MeanSquaredLogarithmicError",
    mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error",
    "down",
    "The mean squared logarithmic error.",
)
LogCoshError = _wrapper_class("LogCoshError", log_cosh, "logcosh", "down", "The mean of log(cosh(error)).")
CosineSimilarity = _wrapper_class(
    "CosineSimilarity",
    cosine_similarity,
    "cosine_similarity",
    "up",
    "The mean cosine similarity. Args: axis (default -1).",
    axis=-1,
)
Hinge = _wrapper_class("Hinge", hinge, "hinge", "down", "The mean hinge loss.")
SquaredHinge = _wrapper_class("SquaredHinge", squared_hinge, "squared_hinge", "down", "The mean squared hinge loss.")
CategoricalHinge = _wrapper_class(
    "CategoricalHinge", categorical_hinge, "categorical_hinge", "down", "The mean categorical hinge loss."
)
PearsonCorrelation = _wrapper_class(
    "PearsonCorrelation",
    pearson_correlation,
    "pearson_correlation",
    "up",
    "The mean per-sample Pearson correlation. Args: axis.",
    axis=-1,
)
ConcordanceCorrelation = _wrapper_class(
    "ConcordanceCorrelation",
    concordance_correlation,
    "concordance_correlation",
    "up",
    "The mean per-sample concordance correlation. Args: axis.",
    axis=-1,
)


class RootMeanSquaredError(Mean):
    """The square root of the (weighted) mean squared error."""

    _direction = "down"

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = _prediction(y_pred).to(self._dtype)
        y_true = _as_tensor(y_true, y_pred.device).to(self._dtype)
        y_true, y_pred = same_rank(y_true, y_pred)
        super().update_state((y_pred - y_true).square(), sample_weight=sample_weight)

    def result(self) -> torch.Tensor:
        return torch.sqrt(super().result())


class R2Score(Metric):
    """The coefficient of determination, per output column and aggregated (Keras' ``R2Score``).

    Args:
        class_aggregation: ``"uniform_average"`` (default), ``"variance_weighted_average"`` or None (one score per
            output).
        num_regressors: the number of independent regressors, for the adjusted R2 (0: plain R2).
    """

    _direction = "up"

    def __init__(
        self,
        class_aggregation: str | None = "uniform_average",
        num_regressors: int = 0,
        name: str = "r2_score",
        dtype: Any = None,
    ):
        super().__init__(name=name, dtype=dtype)
        valid = (None, "uniform_average", "variance_weighted_average")
        if class_aggregation not in valid:
            raise ValueError(
                f"Invalid value for argument `class_aggregation`. Expected one of {valid}. "
                f"Received: class_aggregation={class_aggregation}"
            )
        if num_regressors < 0:
            raise ValueError(
                "Invalid value for argument `num_regressors`. Expected a value >= 0. "
                f"Received: num_regressors={num_regressors}"
            )
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        self.num_samples = self.add_variable((), "zeros", dtype="float64", name="num_samples")
        self._built = False

    def _build(self, y_true_shape: tuple, y_pred_shape: tuple) -> None:
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError(
                "R2Score expects 2D inputs with shape (batch_size, output_dim). Received input shapes: "
                f"y_pred.shape={tuple(y_pred_shape)} and y_true.shape={tuple(y_true_shape)}."
            )
        n = y_pred_shape[-1]
        self.squared_sum = self.add_variable((n,), "zeros", dtype="float64", name="squared_sum")
        self.sum = self.add_variable((n,), "zeros", dtype="float64", name="sum")
        self.total_mse = self.add_variable((n,), "zeros", dtype="float64", name="residual")
        self.count = self.add_variable((n,), "zeros", dtype="float64", name="count")
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = _prediction(y_pred).to(torch.float64)
        y_true = _as_tensor(y_true, y_pred.device).to(torch.float64)
        y_true, y_pred = same_rank(y_true, y_pred)
        if not self._built:
            self._build(tuple(y_true.shape), tuple(y_pred.shape))
        self._to(y_pred.device)
        w = torch.ones((), dtype=torch.float64, device=y_pred.device)
        if sample_weight is not None:
            w = _as_tensor(sample_weight, y_pred.device).to(torch.float64)
            if w.dim() == 1:
                w = w.unsqueeze(1)
        w = torch.broadcast_to(w, y_true.shape)
        weighted = y_true * w
        self.sum.add_(weighted.sum(0))
        self.squared_sum.add_((y_true * weighted).sum(0))
        self.total_mse.add_(((y_true - y_pred).square() * w).sum(0))
        self.count.add_(w.sum(0))
        self.num_samples.add_(y_true.numel())

    def result(self) -> torch.Tensor:
        if not self._built:
            return torch.zeros((), dtype=self._dtype)
        mean = self.sum.value / self.count.value
        total = self.squared_sum.value - self.sum.value * mean
        raw = 1 - self.total_mse.value / total
        raw = torch.where(torch.isinf(raw), torch.zeros_like(raw), raw)
        if self.class_aggregation == "uniform_average":
            score = raw.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = (total * raw).sum() / total.sum()
        else:
            score = raw
        if self.num_regressors != 0:
            n = float(self.num_samples)
            if self.num_regressors > n - 1:
                warnings.warn(
                    "More independent predictors than datapoints in adjusted R2 score. Falling back to standard R2 "
                    "score.",
                    stacklevel=2,
                )
            elif self.num_regressors == n - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to standard R2 score.", stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - self.num_regressors - 1.0)
        return score.to(self._dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "class_aggregation": self.class_aggregation,
            "num_regressors": self.num_regressors,
        }


# ---- confusion-matrix metrics ----------------------------------------------------------------------------------------

NEG_INF = -1e10  # Keras' stand-in for -inf: what top_k filtering writes over the predictions it drops
_CONDITIONS = ("true_positives", "false_positives", "true_negatives", "false_negatives")


def _parse_thresholds(thresholds: Any, default: float) -> list[float]:
    """Keras' ``parse_init_thresholds``: a float or a list of floats in [0, 1] (``default`` when None)."""
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]
    bad = [t for t in values if t is None or not isinstance(t, (int, float, np.number)) or not 0 <= t <= 1]
    if bad or not values:
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad or values}")
    return [float(t) for t in values]


def _evenly_spaced(thresholds: list[float]) -> bool:
    """Keras' ``is_evenly_distributed_thresholds``: ``i / (n - 1)`` for n >= 3 (within epsilon)."""
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=config.epsilon()))


def _filter_top_k(x: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row; the others become NEG_INF (never above a threshold).

    Ties go to the lower index (a stable sort), as in Keras' documented example (``Precision(top_k=2)`` on four
    equal scores keeps the first two); Keras on torch leaves ties to ``torch.topk``, whose choice differs by device.
    """
    idx = torch.argsort(x, dim=-1, descending=True, stable=True)[..., :k]
    mask = torch.zeros_like(x).scatter_(-1, idx, 1.0)
    return x * mask + NEG_INF * (1 - mask)


def update_confusion_matrix_variables(
    variables: dict[str, torch.Tensor],
    y_true: Any,
    y_pred: Any,
    thresholds: list[float],
    top_k: int | None = None,
    class_id: int | None = None,
    sample_weight: Any = None,
    multi_label: bool = False,
    label_weights: Any = None,
    thresholds_distributed_evenly: bool = False,
) -> None:
    """Add the (weighted) confusion counts of a batch at each threshold to ``variables`` (keys among
    ``true_positives``, ``false_positives``, ``true_negatives``, ``false_negatives``), as Keras' function of the
    same name: a prediction above a threshold is positive, a non-zero label is positive.

    Predictions and thresholds are compared in float32, as Keras compares them. Evenly spaced thresholds
    (``thresholds_distributed_evenly``) take Keras' bucketed path: predictions clipped to [0, 1] and counted in
    ``ceil(p * (T - 1)) - 1``, one pass over the batch whatever T; other thresholds are compared one by one.
    """
    unknown = set(variables) - set(_CONDITIONS)
    if unknown or not variables:
        raise ValueError(f"Invalid confusion matrix keys: {sorted(unknown)}. Valid keys: {list(_CONDITIONS)}")
    y_pred = _prediction(y_pred).to(torch.float32)
    y_true = _as_tensor(y_true, y_pred.device).to(torch.float32)
    y_pred, y_true = same_rank(y_pred, y_true)
    w = None
    if sample_weight is not None:
        w = _as_tensor(sample_weight, y_pred.device).to(torch.float32).unsqueeze(-1)
        _, w = same_rank(y_true, w, expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.dim() == 1:
            raise ValueError(
                "When class_id is provided, y_pred must be a 2D array with shape (num_samples, num_classes), "
                f"found shape: {tuple(y_pred.shape)}"
            )
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"y_true and y_pred must have the same shape. Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    weights = torch.ones(y_pred.shape, dtype=torch.float64, device=y_pred.device)
    try:
        if w is not None:
            weights = weights * torch.broadcast_to(w.to(torch.float64), y_pred.shape)
        if label_weights is not None and not multi_label:
            lw = _as_tensor(label_weights, y_pred.device).to(torch.float64)
            weights = weights * torch.broadcast_to(lw.unsqueeze(0), y_pred.shape)
    except RuntimeError:
        raise ValueError(
            f"sample_weight (shape {None if w is None else tuple(w.shape)}) and label_weights do not broadcast to "
            f"the predictions' shape {tuple(y_pred.shape)}"
        ) from None
    labels = y_true != 0
    if not multi_label:
        y_pred, labels, weights = y_pred.reshape(-1), labels.reshape(-1), weights.reshape(-1)
    pos_w = torch.where(labels, weights, torch.zeros_like(weights))
    neg_w = weights - pos_w
    n_thr = len(thresholds)
    if thresholds_distributed_evenly:
        with_eps = thresholds[0] < 0.0 or thresholds[-1] > 1.0
        bucket = torch.ceil(y_pred.clamp(0.0, 1.0) * (n_thr - 1)) - 1
        if with_eps:
            bucket = bucket.clamp_min(0.0)
        bucket = bucket.to(torch.int64)
        bucket = torch.where((bucket >= 0) & (bucket < n_thr), bucket, n_thr)  # out of range: an extra, dropped slot
        cols = 1 if bucket.dim() == 1 else bucket.shape[1]
        flat = (bucket * cols + torch.arange(cols, device=bucket.device)).reshape(-1)
        tp_b = torch.zeros((n_thr + 1) * cols, dtype=torch.float64, device=bucket.device)
        fp_b = torch.zeros_like(tp_b)
        tp_b.index_add_(0, flat, pos_w.reshape(-1))
        fp_b.index_add_(0, flat, neg_w.reshape(-1))
        shape = (n_thr + 1, cols)
        tp = tp_b.reshape(shape)[:-1].flip(0).cumsum(0).flip(0)
        fp = fp_b.reshape(shape)[:-1].flip(0).cumsum(0).flip(0)
        if bucket.dim() == 1:
            tp, fp = tp[:, 0], fp[:, 0]
        counts = {"true_positives": tp, "false_positives": fp}
        if "true_negatives" in variables or "false_negatives" in variables:
            counts["true_negatives"] = neg_w.sum(0) - fp
            counts["false_negatives"] = pos_w.sum(0) - tp
    else:
        thr = torch.tensor(thresholds, dtype=torch.float32, device=y_pred.device)
        above = y_pred.unsqueeze(0) > thr.reshape(n_thr, *([1] * y_pred.dim()))
        counts = {
            "true_positives": torch.where(above, pos_w, 0.0).sum(1),
            "false_positives": torch.where(above, neg_w, 0.0).sum(1),
            "true_negatives": torch.where(above, 0.0, neg_w).sum(1),
            "false_negatives": torch.where(above, 0.0, pos_w).sum(1),
        }
    for key, var in variables.items():
        if var.device != y_pred.device:
            var.data = var.data.to(y_pred.device)
        var.add_(counts[key].to(var.dtype))


class _ConfusionMatrixConditionCount(Metric):
    _condition = "true_positives"  # no _direction, as in Keras: a count is neither better up nor down

    def __init__(self, thresholds: float | list[float] | None = None, name: str | None = None, dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = _parse_thresholds(thresholds, 0.5)
        self._thresholds_distributed_evenly = _evenly_spaced(self.thresholds)
        self.accumulator = self.add_variable((len(self.thresholds),), "zeros", dtype="float64", name="accumulator")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        update_confusion_matrix_variables(
            {self._condition: self.accumulator},
            y_true,
            y_pred,
            self.thresholds,
            sample_weight=sample_weight,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly,
        )

    def result(self) -> torch.Tensor:
        out = self.accumulator.value.to(self._dtype)
        return out[0] if len(self.thresholds) == 1 else out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of true positives: label non-zero, prediction above the threshold.

    Args:
        thresholds: a float or a list of floats in [0, 1] (default 0.5); with a list, ``result()`` has one count
            per threshold.
    """

    _condition = "true_positives"


class FalsePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of false positives: label zero, prediction above the threshold. Args: as
    :class:`TruePositives`."""

    _condition = "false_positives"


class TrueNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of true negatives: label zero, prediction at or below the threshold. Args: as
    :class:`TruePositives`."""

    _condition = "true_negatives"


class FalseNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of false negatives: label non-zero, prediction at or below the threshold. Args: as
    :class:`TruePositives`."""

    _condition = "false_negatives"


class _PrecisionRecall(Metric):
    _other = "false_positives"
    _direction = "up"

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
        self._thresholds_distributed_evenly = _evenly_spaced(self.thresholds)
        n = len(self.thresholds)
        self.true_positives = self.add_variable((n,), "zeros", dtype="float64", name="true_positives")
        setattr(self, self._other, self.add_variable((n,), "zeros", dtype="float64", name=self._other))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        update_confusion_matrix_variables(
            {"true_positives": self.true_positives, self._other: getattr(self, self._other)},
            y_true,
            y_pred,
            self.thresholds,
            top_k=self.top_k,
            class_id=self.class_id,
            sample_weight=sample_weight,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly,
        )

    def result(self) -> torch.Tensor:
        tp = self.true_positives.value
        out = _divide_no_nan(tp, tp + getattr(self, self._other).value).to(self._dtype)
        return out[0] if len(self.thresholds) == 1 else out

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
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

    _other = "false_positives"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name: str | None = None, dtype: Any = None):
        super().__init__(thresholds, top_k, class_id, name=name, dtype=dtype)


class Recall(_PrecisionRecall):
    """The recall of the predictions: ``true_positives / (true_positives + false_negatives)``.

    Args: as :class:`Precision`.
    """

    _other = "false_negatives"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name: str | None = None, dtype: Any = None):
        super().__init__(thresholds, top_k, class_id, name=name, dtype=dtype)


class _SensitivitySpecificityBase(Metric):
    """Confusion counts at ``num_thresholds`` evenly spaced thresholds ``[0, 1/(T-1), ..., 1]`` (``[0.5]`` for 1);
    the result is the best of one rate where another meets ``value``."""

    _direction = "up"
    _value_name = "value"

    def __init__(
        self, value: float, num_thresholds: int = 200, class_id: int | None = None, name=None, dtype: Any = None
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(
                f"Argument `{self._value_name}` must be in the range [0, 1]. Received: {self._value_name}={value}"
            )
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or num_thresholds <= 0:
            raise ValueError(
                f"Argument `num_thresholds` must be an integer > 0. Received: num_thresholds={num_thresholds}"
            )
        super().__init__(name=name, dtype=dtype)
        self.value, self.num_thresholds, self.class_id = value, num_thresholds, class_id
        setattr(self, self._value_name, value)
        if num_thresholds == 1:
            self.thresholds, self._thresholds_distributed_evenly = [0.5], False
        else:
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self.thresholds, self._thresholds_distributed_evenly = [0.0, *inner, 1.0], True
        n = len(self.thresholds)
        for cond in _CONDITIONS:
            setattr(self, cond, self.add_variable((n,), "zeros", dtype="float64", name=cond))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        update_confusion_matrix_variables(
            {cond: getattr(self, cond) for cond in _CONDITIONS},
            y_true,
            y_pred,
            self.thresholds,
            class_id=self.class_id,
            sample_weight=sample_weight,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly,
        )

    def _rates(self) -> dict[str, torch.Tensor]:
        tp, fp = self.true_positives.value, self.false_positives.value
        tn, fn = self.true_negatives.value, self.false_negatives.value
        return {
            "sensitivity": _divide_no_nan(tp, tp + fn),  # = recall
            "specificity": _divide_no_nan(tn, tn + fp),
            "precision": _divide_no_nan(tp, tp + fp),
        }

    def _max_where(self, constrained: torch.Tensor, dependent: torch.Tensor) -> torch.Tensor:
        """Keras' ``_find_max_under_constraint``: the largest ``dependent`` where ``constrained >= value`` (0 if
        none)."""
        feasible = constrained >= self.value
        return torch.where(feasible, dependent, torch.zeros_like(dependent)).amax().clamp_min(0.0).to(self._dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "class_id": self.class_id,
            "num_thresholds": self.num_thresholds,
            self._value_name: self.value,
        }


class SensitivityAtSpecificity(_SensitivitySpecificityBase):
    """The best sensitivity (recall) among thresholds whose specificity is at least ``specificity``.

    Args:
        specificity: in [0, 1].
        num_thresholds: evenly spaced thresholds in [0, 1]. Defaults to 200.
        class_id: compute the metric for this class column only.
    """

    _value_name = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name=name, dtype=dtype)

    def result(self) -> torch.Tensor:
        r = self._rates()
        return self._max_where(r["specificity"], r["sensitivity"])


class SpecificityAtSensitivity(_SensitivitySpecificityBase):
    """The best specificity among thresholds whose sensitivity is at least ``sensitivity``. Args: as
    :class:`SensitivityAtSpecificity`, with ``sensitivity``."""

    _value_name = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name=name, dtype=dtype)

    def result(self) -> torch.Tensor:
        r = self._rates()
        return self._max_where(r["sensitivity"], r["specificity"])


class PrecisionAtRecall(_SensitivitySpecificityBase):
    """The best precision among thresholds whose recall is at least ``recall``. Args: as
    :class:`SensitivityAtSpecificity`, with ``recall``."""

    _value_name = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name=name, dtype=dtype)

    def result(self) -> torch.Tensor:
        r = self._rates()
        return self._max_where(r["sensitivity"], r["precision"])


class RecallAtPrecision(_SensitivitySpecificityBase):
    """The best recall among thresholds whose precision is at least ``precision``. Args: as
    :class:`SensitivityAtSpecificity`, with ``precision``."""

    _value_name = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name=name, dtype=dtype)

    def result(self) -> torch.Tensor:
        r = self._rates()
        return self._max_where(r["precision"], r["sensitivity"])


_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = ("interpolation", "majoring", "minoring")


class AUC(Metric):
    """The area under the ROC, precision-recall or PR-gain curve, from confusion counts at ``num_thresholds``.

    Predictions are counted against thresholds ``[-eps, 1/(T-1), ..., (T-2)/(T-1), 1 + eps]`` (Keras' evenly spaced
    thresholds: one bucketed pass per update, whatever T). The area is a Riemann sum over the thresholds: trapezoids
    for ``summation_method="interpolation"`` on ROC, the Davis & Goadrich interpolation for PR.

    Args:
        num_thresholds: number of thresholds (> 1). Defaults to 200.
        curve: ``"ROC"`` (default), ``"PR"`` or ``"PRGAIN"``.
        summation_method: ``"interpolation"`` (default), ``"minoring"`` or ``"majoring"``.
        thresholds: optional explicit thresholds in [0, 1]; -eps and 1 + eps are added at the ends.
        multi_label: whether each column of 2-D inputs is its own label (one AUC per label, averaged) rather
            than every entry one binary decision.
        num_labels: the number of label columns with ``multi_label`` (else found at the first update).
        label_weights: optional per-label weights (of the average with ``multi_label``, of the counts otherwise).
        from_logits: whether predictions are logits (a sigmoid is applied first).
    """

    _direction = "up"

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        dtype: Any = None,
        thresholds: list[float] | None = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Any = None,
        from_logits: bool = False,
    ):
        curve_key = str(curve).lower()
        if curve_key not in _CURVES:
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        if str(summation_method).lower() not in _SUMMATIONS:
            raise ValueError(
                f'Invalid AUC summation method value: "{summation_method}". Expected values are '
                '["interpolation", "majoring", "minoring"]'
            )
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_parse_thresholds(thresholds, 0.5))
            num_thresholds = len(inner) + 2
            evenly = _evenly_spaced([0.0, *inner, 1.0])
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or num_thresholds <= 1:
                raise ValueError(
                    f"Argument `num_thresholds` must be an integer > 1. Received: num_thresholds={num_thresholds}"
                )
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            evenly = True
        super().__init__(name=name, dtype=dtype)
        eps = config.epsilon()
        self.num_thresholds = num_thresholds
        self._thresholds = [0.0 - eps, *inner, 1.0 + eps]
        self._thresholds_distributed_evenly = evenly
        self.curve = _CURVES[curve_key]
        self.summation_method = str(summation_method).lower()
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else torch.as_tensor(label_weights, dtype=torch.float64)
        self._from_logits = bool(from_logits)
        self._built = False
        if self.multi_label:
            if num_labels:
                self._build((None, num_labels))
        else:
            if num_labels:
                raise ValueError("`num_labels` is needed only when `multi_label` is True.")
            self._build(None)

    @property
    def thresholds(self) -> list[float]:
        return list(self._thresholds)

    def _build(self, shape: tuple | None) -> None:
        if self.multi_label:
            if len(shape) != 2:
                raise ValueError(
                    f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {len(shape)}. Full shape "
                    f"received for `y_pred`: {tuple(shape)}"
                )
            self._num_labels = int(shape[1])
            var_shape = (self.num_thresholds, self._num_labels)
        else:
            var_shape = (self.num_thresholds,)
        for cond in _CONDITIONS:
            setattr(self, cond, self.add_variable(var_shape, "zeros", dtype="float64", name=cond))
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = _prediction(y_pred)
        if not self._built:
            self._build(tuple(y_pred.shape))
        if self._from_logits:
            y_pred = torch.sigmoid(y_pred)
        update_confusion_matrix_variables(
            {cond: getattr(self, cond) for cond in _CONDITIONS},
            y_true,
            y_pred,
            self._thresholds,
            sample_weight=sample_weight,
            multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly,
        )

    def _by_label(self, values: torch.Tensor) -> torch.Tensor:
        if not self.multi_label:
            return values.sum()
        by_label = values.sum(0)
        if self.label_weights is None:
            return by_label.mean()
        lw = self.label_weights.to(by_label.device)
        return _divide_no_nan((by_label * lw).sum(), lw.sum())

    def interpolate_pr_auc(self) -> torch.Tensor:
        """Davis & Goadrich (2006): precision interpolated linearly in the number of positives between thresholds."""
        tp, fp, fn = self.true_positives.value, self.false_positives.value, self.false_negatives.value
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
        return self._by_label(increment)

    def result(self) -> torch.Tensor:
        if not self._built:
            return torch.zeros((), dtype=self._dtype)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self.interpolate_pr_auc().to(self._dtype)
        tp, fp = self.true_positives.value, self.false_positives.value
        tn, fn = self.true_negatives.value, self.false_negatives.value
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:  # PRGAIN, Keras' formula and its fixes for undefined gains
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scale * _divide_no_nan(fn, tp)
            precision_gain = 1.0 - scale * _divide_no_nan(fp, tp)
            recall_gain = torch.where(tp == 0, torch.zeros_like(recall_gain), recall_gain).clamp_min(0.0)
            precision_gain = torch.where(tp == 0, torch.ones_like(precision_gain), precision_gain)
            x, y = recall_gain, precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return self._by_label((x[:-1] - x[1:]) * heights).to(self._dtype)

    def reset_state(self) -> None:
        if self._built:
            super().reset_state()

    def get_config(self) -> dict[str, Any]:
        config_ = {
            **super().get_config(),
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
            "from_logits": self._from_logits,
        }
        if self._init_from_thresholds:
            config_["thresholds"] = self.thresholds[1:-1]
        return config_


# ---- F-scores --------------------------------------------------------------------------------------------------------


class FBetaScore(Metric):
    """The F-beta score, ``(1 + beta**2) * precision * recall / (beta**2 * precision + recall)``, per class of 2-D
    (samples, classes) inputs, or averaged.

    Args:
        average: None (one score per class), ``"micro"`` (over all entries), ``"macro"`` (mean over classes) or
            ``"weighted"`` (mean weighted by each class' true count).
        beta: a positive Python float. Defaults to 1.0.
        threshold: a float in (0, 1]: predictions above it are positive; None (default): each row's maximum is.
    """

    _direction = "up"

    def __init__(
        self,
        average: str | None = None,
        beta: float = 1.0,
        threshold: float | None = None,
        name: str = "fbeta_score",
        dtype: Any = None,
    ):
        super().__init__(name=name, dtype=dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(
                "Invalid `average` argument value. Expected one of: {None, 'micro', 'macro', 'weighted'}. "
                f"Received: average={average}"
            )
        if not isinstance(beta, float):
            raise ValueError(
                f"Invalid `beta` argument value. It should be a Python float. Received: beta={beta} of type "
                f"'{type(beta)}'"
            )
        if beta <= 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}")
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError(
                    "Invalid `threshold` argument value. It should be a Python float. "
                    f"Received: threshold={threshold} of type '{type(threshold)}'"
                )
            if threshold > 1.0 or threshold <= 0.0:
                raise ValueError(
                    "Invalid `threshold` argument value. It should verify 0 < threshold <= 1. "
                    f"Received: threshold={threshold}"
                )
        self.average, self.beta, self.threshold = average, beta, threshold
        self.axis = None if average == "micro" else 0
        self._built = False

    def _build(self, y_true_shape: tuple, y_pred_shape: tuple) -> None:
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError(
                "FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received input shapes: "
                f"y_pred.shape={tuple(y_pred_shape)} and y_true.shape={tuple(y_true_shape)}."
            )
        shape = () if self.average == "micro" else (y_pred_shape[-1],)
        for var in ("true_positives", "false_positives", "false_negatives", "intermediate_weights"):
            setattr(self, var, self.add_variable(shape, "zeros", dtype="float64", name=var))
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = _prediction(y_pred).to(self._dtype)
        y_true = _as_tensor(y_true, y_pred.device).to(self._dtype)
        y_true, y_pred = same_rank(y_true, y_pred)
        if not self._built:
            self._build(tuple(y_true.shape), tuple(y_pred.shape))
        self._to(y_pred.device)
        if self.threshold is None:
            top = y_pred.amax(-1, keepdim=True)
            y_pred = (y_pred >= top) & (y_pred.abs() > 1e-9)
        else:
            y_pred = y_pred > self.threshold
        y_pred = y_pred.to(torch.float64)
        y_true = y_true.to(torch.float64)
        w = None if sample_weight is None else _as_tensor(sample_weight, y_pred.device).to(torch.float64)

        def weighted_sum(val: torch.Tensor) -> torch.Tensor:
            if w is not None:
                val = val * w.unsqueeze(1)
            return val.sum() if self.axis is None else val.sum(self.axis)

        self.true_positives.add_(weighted_sum(y_pred * y_true))
        self.false_positives.add_(weighted_sum(y_pred * (1 - y_true)))
        self.false_negatives.add_(weighted_sum((1 - y_pred) * y_true))
        self.intermediate_weights.add_(weighted_sum(y_true))

    def result(self) -> torch.Tensor:
        if not self._built:
            return torch.zeros((), dtype=self._dtype)
        eps = config.epsilon()
        tp, fp, fn = self.true_positives.value, self.false_positives.value, self.false_negatives.value
        precision = (tp / (tp + fp + eps)).to(self._dtype)
        recall = (tp / (tp + fn + eps)).to(self._dtype)
        b2 = self.beta**2
        f = precision * recall / (b2 * precision + recall + eps) * (1 + b2)
        if self.average == "weighted":
            iw = self.intermediate_weights.value.to(self._dtype)
            f = (f * (iw / (iw.sum() + eps))).sum()
        elif self.average is not None:
            f = f.mean()
        return f

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """The F1 score: the harmonic mean of precision and recall. Args: as :class:`FBetaScore` without ``beta``."""

    def __init__(
        self, average: str | None = None, threshold: float | None = None, name: str = "f1_score", dtype: Any = None
    ):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        config_ = super().get_config()
        del config_["beta"]
        return config_


# ---- names -----------------------------------------------------------------------------------------------------------

_CLASSES: tuple[type[Metric], ...] = (
    Mean,
    Sum,
    MeanSquaredError,
    RootMeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    CosineSimilarity,
    LogCoshError,
    R2Score,
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    PrecisionAtRecall,
    Recall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    TrueNegatives,
    TruePositives,
    ConcordanceCorrelation,
    PearsonCorrelation,
    Hinge,
    SquaredHinge,
    CategoricalHinge,
    KLDivergence,
    Poisson,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    F1Score,
    FBetaScore,
)
# Keras' names: each class by its name and its snake-case name, and the short aliases. "accuracy"/"acc" in compile()
# pick binary, sparse or categorical accuracy from the first batch's shapes (tritonnn.trainers.compile_utils).
ALL_OBJECTS: dict[str, type[Metric]] = {
    **{cls.__name__: cls for cls in _CLASSES},
    **{_to_snake_case(cls.__name__): cls for cls in _CLASSES},
    "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError,
    "MAPE": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "MSLE": MeanSquaredLogarithmicError,
}


def serialize(metric: Any) -> Any:
    """A metric for a JSON config, in Keras 3's layout: ``{"module", "class_name", "config", "registered_name"}``
    for a ``Metric`` (``"keras.metrics"`` and None for a built-in class; a registered class, its module and
    ``"package>name"``), Keras' function record for a function, a string as it is."""
    return _serialization.serialize_keras_object(metric)


def _metric_class(name: str) -> type[Metric] | None:
    """A public metric class of this module by name (``Metric``, ``MeanMetricWrapper``... are in no name table)."""
    obj = globals().get(name)
    return obj if isinstance(obj, type) and issubclass(obj, Metric) and not name.startswith("_") else None


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Any:
    """:func:`serialize`'s inverse: Keras' layout, tritonnn's earlier ``{"class_name", "config"}``, a function
    record or a name (``custom_objects`` names user classes and functions; the registry and an active
    ``custom_object_scope`` are consulted too, a registered class by its registered name)."""
    custom = known_objects(custom_objects)
    if isinstance(config, dict):
        name = config.get("class_name")
        if name == "function":
            return _serialization.resolve_function(
                config.get("config"), config.get("module"), custom_objects, (sys.modules[__name__], losses)
            )
        cls = next(
            (custom[k] for k in (config.get("registered_name"), name) if isinstance(k, str) and k in custom),
            (ALL_OBJECTS.get(name) or _metric_class(name)) if isinstance(name, str) else None,
        )
        if not isinstance(cls, type):
            raise ValueError(f"Unknown metric class: {name!r}")
        return cls.from_config(config.get("config") or {})
    if isinstance(config, str):
        if config in custom:
            return custom[config]
        fn = globals().get(config)
        return fn if callable(fn) and not isinstance(fn, type) and config not in ALL_OBJECTS else get(config)
    raise ValueError(f"Could not interpret serialized metric: {config!r}")


def get(identifier: Any, y_true: torch.Tensor | None = None, y_pred: torch.Tensor | None = None) -> Any:
    """A metric from a Keras identifier: a name (an instance of its class), a config dict, a ``Metric`` class or
    instance, or a function (returned as it is). With the first batch's ``y_true`` and ``y_pred``, ``"accuracy"``
    and ``"acc"`` resolve as in ``compile()`` (see ``tritonnn.trainers.compile_utils.get_metric``)."""
    if identifier is None or isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc") and y_true is not None and y_pred is not None:
            return resolve_accuracy(identifier, y_true, y_pred)
        cls = ALL_OBJECTS.get(identifier)
        if cls is None:
            names = sorted({*ALL_OBJECTS, "accuracy", "acc"})
            close = difflib.get_close_matches(identifier, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown metric: {identifier!r}.{hint} Valid names: {names}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


def resolve_accuracy(name: str, y_true: Any, y_pred: Any) -> Metric:
    """Keras' ``"accuracy"`` in compile(): binary when predictions have one column, sparse categorical when labels
    have one dimension fewer (or a trailing 1 against several columns), categorical otherwise; named ``name``."""
    t_rank, p_rank = len(y_true.shape), len(y_pred.shape)
    if y_pred.shape[-1] == 1:
        return BinaryAccuracy(name=name)
    if t_rank < p_rank or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)
