"""Keras 3 ops (``keras.ops``): the tensor functions a user reaches for in custom layers and to read results.

Thin over torch, with Keras' names and arguments (``axis``, ``keepdims``, ``x1``/``x2``). Every op accepts torch
tensors, numpy arrays and Python scalars. New tensors follow Keras' dtype rules for Python values: a Python float
becomes ``floatx()`` (float32), a Python int int32, a bool bool; a scalar combined with a tensor takes the tensor's
dtype when it fits (torch's "weak" scalars, as Keras'). Numpy arrays keep their dtype. Tensors are made on
``tritonnn.config.default_device()`` unless another operand already lives somewhere.

The activations and softmaxes route through ``tritonnn.kernels`` (the same table and kernels the layers use).
"""

from __future__ import annotations

import builtins
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import config, kernels
from .kernels.activations import activation_reference

Tensor = torch.Tensor
Axis = int | Sequence[int] | None

# ---- conversion -----------------------------------------------------------------------------------------------


def _py_dtype(x: Any) -> torch.dtype | None:
    """Keras' default dtype for a Python value (or nested list of them): bool, int32 or floatx."""
    if isinstance(x, bool):
        return torch.bool
    if isinstance(x, numbers.Integral):
        return torch.int32
    if isinstance(x, numbers.Real):
        return config.standardize_dtype(None)
    if isinstance(x, (list, tuple)) and x:
        kinds = {_py_dtype(v) for v in x}
        if kinds <= {torch.bool}:
            return torch.bool
        if builtins.any(k is not None and k.is_floating_point for k in kinds):
            return config.standardize_dtype(None)
        if kinds <= {torch.int32, torch.bool}:
            return torch.int32
    return None


def _device_of(*xs: Any) -> torch.device:
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
    return config.default_device()


def convert_to_tensor(x: Any, dtype: str | torch.dtype | None = None, sparse: bool | None = None) -> Tensor:
    """A torch tensor from a tensor, numpy array, Python scalar or nested list (Keras' dtype rules)."""
    target = None if dtype is None else config.standardize_dtype(dtype)
    if isinstance(x, torch.Tensor):
        return x if target is None or x.dtype == target else x.to(target)
    if isinstance(x, (np.ndarray, np.generic)):
        t = torch.from_numpy(np.ascontiguousarray(x)).to(config.default_device())
        return t if target is None else t.to(target)
    if isinstance(x, (list, tuple)) and builtins.any(isinstance(v, torch.Tensor) for v in x):
        return torch.stack([convert_to_tensor(v, dtype) for v in x])
    return torch.as_tensor(x, dtype=target or _py_dtype(x), device=config.default_device())


def convert_to_numpy(x: Any) -> np.ndarray:
    """A numpy array of ``x`` (copied to the host; bfloat16 becomes float32, which numpy lacks)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.to(torch.float32)
        return x.cpu().numpy()
    return np.asarray(x)


def _t(x: Any, like: Any = None) -> Tensor:
    """A tensor for an operand; a Python scalar beside a tensor stays weak (takes the tensor's dtype if it fits)."""
    if isinstance(x, torch.Tensor):
        return x
    weak = isinstance(x, numbers.Number) and not isinstance(x, bool)
    if weak and isinstance(like, torch.Tensor):
        if like.dtype.is_floating_point or isinstance(x, numbers.Integral):
            return torch.as_tensor(x, dtype=like.dtype, device=like.device)
        return torch.as_tensor(x, dtype=config.standardize_dtype(None), device=like.device)
    t = convert_to_tensor(x)
    dev = _device_of(like)
    return t if t.device == dev else t.to(dev)


def _pair(x1: Any, x2: Any) -> tuple[Tensor, Tensor]:
    return _t(x1, x2), _t(x2, x1)


def _dims(axis: Axis) -> tuple[int, ...] | None:
    if axis is None:
        return None
    return (int(axis),) if isinstance(axis, numbers.Integral) else tuple(int(a) for a in axis)


def _float(x: Tensor) -> Tensor:
    """Integer and bool tensors promoted to floatx for ops that are floating in Keras (mean, sqrt, exp...)."""
    return x if x.dtype.is_floating_point or x.dtype.is_complex else x.to(config.standardize_dtype(None))


def cast(x: Any, dtype: str | torch.dtype) -> Tensor:
    return convert_to_tensor(x).to(config.standardize_dtype(dtype))


def shape(x: Any) -> tuple[int, ...]:
    return tuple(convert_to_tensor(x).shape) if not isinstance(x, torch.Tensor) else tuple(x.shape)


def ndim(x: Any) -> int:
    return len(shape(x))


def size(x: Any) -> int:
    return int(np.prod(shape(x), dtype=np.int64))


def dtype(x: Any) -> str:
    """The dtype as Keras names it (``"float32"``)."""
    return str(_t(x).dtype).replace("torch.", "")


def is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


# ---- creation -------------------------------------------------------------------------------------------------


def _shape_arg(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(s) for s in shape)


def zeros(shape: int | Sequence[int], dtype: str | torch.dtype | None = None) -> Tensor:
    return torch.zeros(_shape_arg(shape), dtype=config.standardize_dtype(dtype), device=config.default_device())


def ones(shape: int | Sequence[int], dtype: str | torch.dtype | None = None) -> Tensor:
    return torch.ones(_shape_arg(shape), dtype=config.standardize_dtype(dtype), device=config.default_device())


def full(shape: int | Sequence[int], fill_value: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    dt = config.standardize_dtype(dtype) if dtype is not None else _py_dtype(fill_value)
    return torch.full(_shape_arg(shape), fill_value, dtype=dt, device=config.default_device())


def zeros_like(x: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    x = _t(x)
    return torch.zeros_like(x, dtype=None if dtype is None else config.standardize_dtype(dtype))


def ones_like(x: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    x = _t(x)
    return torch.ones_like(x, dtype=None if dtype is None else config.standardize_dtype(dtype))


def full_like(x: Any, fill_value: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    x = _t(x)
    return torch.full_like(x, fill_value, dtype=None if dtype is None else config.standardize_dtype(dtype))


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: str | torch.dtype | None = None) -> Tensor:
    if stop is None:
        start, stop = 0, start
    dt = config.standardize_dtype(dtype) if dtype is not None else _py_dtype([start, stop, step])
    return torch.arange(start, stop, step, dtype=dt, device=config.default_device())


def eye(n: int, m: int | None = None, dtype: str | torch.dtype | None = None) -> Tensor:
    return torch.eye(n, n if m is None else m, dtype=config.standardize_dtype(dtype), device=config.default_device())


def one_hot(x: Any, num_classes: int, axis: int = -1, dtype: str | torch.dtype | None = None) -> Tensor:
    """One-hot vectors of integer ``x`` on a new ``axis``; out-of-range and negative labels give all-zero rows."""
    x = _t(x).to(torch.int64)
    valid = (x >= 0) & (x < num_classes)
    out = torch.nn.functional.one_hot(torch.where(valid, x, 0), num_classes) * valid.unsqueeze(-1)
    out = out.to(config.standardize_dtype(dtype))
    return out if axis == -1 else torch.movedim(out, -1, axis)


# ---- element-wise arithmetic ----------------------------------------------------------------------------------


def add(x1: Any, x2: Any) -> Tensor:
    return torch.add(*_pair(x1, x2))


def subtract(x1: Any, x2: Any) -> Tensor:
    return torch.subtract(*_pair(x1, x2))


def multiply(x1: Any, x2: Any) -> Tensor:
    return torch.multiply(*_pair(x1, x2))


def divide(x1: Any, x2: Any) -> Tensor:
    a, b = _pair(x1, x2)
    return torch.divide(_float(a), b)


def true_divide(x1: Any, x2: Any) -> Tensor:
    return divide(x1, x2)


def divide_no_nan(x1: Any, x2: Any) -> Tensor:
    """``x1 / x2``, with 0 where ``x2`` is 0."""
    a, b = _pair(x1, x2)
    a = _float(a)
    safe = torch.where(b == 0, torch.ones_like(b), b)
    return torch.where(b == 0, torch.zeros((), dtype=a.dtype, device=a.device), a / safe)


def floor_divide(x1: Any, x2: Any) -> Tensor:
    return torch.floor_divide(*_pair(x1, x2))


def mod(x1: Any, x2: Any) -> Tensor:
    return torch.remainder(*_pair(x1, x2))


def power(x1: Any, x2: Any) -> Tensor:
    return torch.pow(*_pair(x1, x2))


def negative(x: Any) -> Tensor:
    return torch.negative(_t(x))


def abs(x: Any) -> Tensor:  # noqa: A001 - Keras' name
    return torch.abs(_t(x))


absolute = abs


def sign(x: Any) -> Tensor:
    return torch.sign(_t(x))


def square(x: Any) -> Tensor:
    x = _t(x)
    return torch.square(x) if x.dtype != torch.bool else x.to(torch.int32)


def sqrt(x: Any) -> Tensor:
    return torch.sqrt(_float(_t(x)))


def rsqrt(x: Any) -> Tensor:
    return torch.rsqrt(_float(_t(x)))


def exp(x: Any) -> Tensor:
    return torch.exp(_float(_t(x)))


def log(x: Any) -> Tensor:
    return torch.log(_float(_t(x)))


def log1p(x: Any) -> Tensor:
    return torch.log1p(_float(_t(x)))


def expm1(x: Any) -> Tensor:
    return torch.expm1(_float(_t(x)))


def floor(x: Any) -> Tensor:
    return torch.floor(_float(_t(x)))


def ceil(x: Any) -> Tensor:
    return torch.ceil(_float(_t(x)))


def round(x: Any, decimals: int = 0) -> Tensor:  # noqa: A001 - Keras' name
    return torch.round(_t(x), decimals=decimals)


def clip(x: Any, x_min: Any, x_max: Any) -> Tensor:
    x = _t(x)
    return torch.clamp(x, min=x_min, max=x_max)


def maximum(x1: Any, x2: Any) -> Tensor:
    return torch.maximum(*_pair(x1, x2))


def minimum(x1: Any, x2: Any) -> Tensor:
    return torch.minimum(*_pair(x1, x2))


def erf(x: Any) -> Tensor:
    return torch.erf(_float(_t(x)))


# ---- comparisons and logic ------------------------------------------------------------------------------------


def equal(x1: Any, x2: Any) -> Tensor:
    return torch.eq(*_pair(x1, x2))


def not_equal(x1: Any, x2: Any) -> Tensor:
    return torch.ne(*_pair(x1, x2))


def greater(x1: Any, x2: Any) -> Tensor:
    return torch.gt(*_pair(x1, x2))


def greater_equal(x1: Any, x2: Any) -> Tensor:
    return torch.ge(*_pair(x1, x2))


def less(x1: Any, x2: Any) -> Tensor:
    return torch.lt(*_pair(x1, x2))


def less_equal(x1: Any, x2: Any) -> Tensor:
    return torch.le(*_pair(x1, x2))


def logical_and(x1: Any, x2: Any) -> Tensor:
    return torch.logical_and(*_pair(x1, x2))


def logical_or(x1: Any, x2: Any) -> Tensor:
    return torch.logical_or(*_pair(x1, x2))


def logical_xor(x1: Any, x2: Any) -> Tensor:
    return torch.logical_xor(*_pair(x1, x2))


def logical_not(x: Any) -> Tensor:
    return torch.logical_not(_t(x))


def isnan(x: Any) -> Tensor:
    return torch.isnan(_t(x))


def isfinite(x: Any) -> Tensor:
    return torch.isfinite(_t(x))


def isinf(x: Any) -> Tensor:
    return torch.isinf(_t(x))


def where(condition: Any, x1: Any = None, x2: Any = None) -> Tensor | tuple[Tensor, ...]:
    """``x1`` where ``condition`` else ``x2``; with only ``condition``, the indices where it holds (per axis)."""
    cond = _t(condition).to(torch.bool)
    if x1 is None and x2 is None:
        return torch.nonzero(cond, as_tuple=True)
    if x1 is None or x2 is None:
        raise ValueError("`x1` and `x2` either both should be `None` or both should have non-None value.")
    a, b = _pair(x1, x2)
    return torch.where(cond, a, b)


# ---- reductions -----------------------------------------------------------------------------------------------


def _reduce(fn: Any, x: Any, axis: Axis, keepdims: bool) -> Tensor:
    x = _t(x)
    dims = _dims(axis)
    if dims is None:
        out = fn(x)
        return out.reshape([1] * x.dim()) if keepdims else out
    return fn(x, dim=dims, keepdim=keepdims)


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return _reduce(torch.mean, _float(_t(x)), axis, keepdims)


def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001 - Keras' name
    x = _t(x)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    out = _reduce(torch.sum, x, axis, keepdims)
    return out.to(x.dtype) if not x.dtype.is_floating_point and x.dtype != torch.int64 else out


def prod(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = _t(x)
    dims = _dims(axis)
    if dims is None:
        out = torch.prod(x)
        return out.reshape([1] * x.dim()) if keepdims else out
    for d in sorted((d % x.dim() for d in dims), reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdims)
    return x


def _amax(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return torch.amax(x) if dim is None else torch.amax(x, dim=dim, keepdim=keepdim)


def _amin(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return torch.amin(x) if dim is None else torch.amin(x, dim=dim, keepdim=keepdim)


def max(x: Any, axis: Axis = None, keepdims: bool = False, initial: Any = None) -> Tensor:  # noqa: A001
    out = _reduce(_amax, x, axis, keepdims)
    return out if initial is None else torch.clamp(out, min=initial)


def min(x: Any, axis: Axis = None, keepdims: bool = False, initial: Any = None) -> Tensor:  # noqa: A001
    out = _reduce(_amin, x, axis, keepdims)
    return out if initial is None else torch.clamp(out, max=initial)


def amax(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return max(x, axis, keepdims)


def amin(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return min(x, axis, keepdims)


def var(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The biased variance (numpy's and Keras' ``ddof=0``)."""
    x = _float(_t(x))
    dims = _dims(axis)
    return torch.var(x, dim=dims, unbiased=False, keepdim=keepdims)


def std(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return torch.sqrt(var(x, axis, keepdims))


def moments(x: Any, axes: int | Sequence[int], keepdims: bool = False) -> tuple[Tensor, Tensor]:
    """Mean and biased variance over ``axes``."""
    x = _t(x)
    return kernels.moments(_float(x), _dims(axes), keepdims=keepdims)


def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = _float(_t(x))
    dims = _dims(axis)
    if dims is None:
        out = torch.logsumexp(x.reshape(-1), dim=0)
        return out.reshape([1] * x.dim()) if keepdims else out
    return torch.logsumexp(x, dim=dims, keepdim=keepdims)


def any(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _reduce(torch.any, _t(x).to(torch.bool), axis, keepdims)


def all(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _reduce(torch.all, _t(x).to(torch.bool), axis, keepdims)


def _arg(fn: Any, x: Any, axis: int | None, keepdims: bool) -> Tensor:
    x = _t(x)
    if axis is None:
        out = fn(x.reshape(-1)).to(torch.int32)
        return out.reshape([1] * x.dim()) if keepdims else out
    return fn(x, dim=axis, keepdim=keepdims).to(torch.int32)


def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the first maximum (int32), along ``axis`` or of the flattened input."""
    return _arg(torch.argmax, x, axis, keepdims)


def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    return _arg(torch.argmin, x, axis, keepdims)


def cumsum(x: Any, axis: int | None = None, dtype: str | torch.dtype | None = None) -> Tensor:
    x = _t(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    return torch.cumsum(x, dim=axis, dtype=None if dtype is None else config.standardize_dtype(dtype))


def sort(x: Any, axis: int = -1) -> Tensor:
    return torch.sort(_t(x), dim=axis).values


def argsort(x: Any, axis: int = -1) -> Tensor:
    return torch.argsort(_t(x), dim=axis, stable=True).to(torch.int32)


def top_k(x: Any, k: int, sorted: bool = True) -> tuple[Tensor, Tensor]:  # noqa: A002 - Keras' name
    """The ``k`` largest values along the last axis and their indices (int32)."""
    values, indices = torch.topk(_t(x), k, dim=-1, sorted=sorted)
    return values, indices.to(torch.int32)


def in_top_k(targets: Any, predictions: Any, k: int) -> Tensor:
    """Whether each target's score is among the ``k`` largest of its row (ties with the k-th count as in)."""
    predictions = _t(predictions)
    targets = _t(targets, predictions).to(torch.int64).to(predictions.device)
    kth = torch.topk(predictions, builtins.min(k, predictions.shape[-1]), dim=-1).values[..., -1]
    return torch.gather(predictions, -1, targets.unsqueeze(-1)).squeeze(-1) >= kth


# ---- linear algebra -------------------------------------------------------------------------------------------


def matmul(x1: Any, x2: Any) -> Tensor:
    a, b = _pair(x1, x2)
    return torch.matmul(a, b)


def dot(x1: Any, x2: Any) -> Tensor:
    """numpy's ``dot``: the product of scalars, the inner product of vectors, else a matmul over the last axis of
    ``x1`` and the second-to-last of ``x2``."""
    a, b = _pair(x1, x2)
    if a.dim() == 0 or b.dim() == 0:
        return a * b
    if b.dim() == 1 or a.dim() <= 2 and b.dim() <= 2:
        return torch.matmul(a, b)
    return torch.tensordot(a, b, dims=([-1], [b.dim() - 2]))


def tensordot(x1: Any, x2: Any, axes: Any = 2) -> Tensor:
    return torch.tensordot(*_pair(x1, x2), dims=axes)


def einsum(subscripts: str, *operands: Any) -> Tensor:
    return torch.einsum(subscripts, *[_t(o) for o in operands])


def norm(x: Any, ord: Any = None, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A002
    x = _float(_t(x))
    return torch.linalg.norm(x, ord=ord, dim=_dims(axis), keepdim=keepdims)


# ---- shapes ---------------------------------------------------------------------------------------------------


def reshape(x: Any, newshape: int | Sequence[int]) -> Tensor:
    return torch.reshape(_t(x), _shape_arg(newshape))


def transpose(x: Any, axes: Sequence[int] | None = None) -> Tensor:
    x = _t(x)
    if axes is None:
        axes = tuple(range(x.dim() - 1, -1, -1))
    return x.permute(*axes)


def expand_dims(x: Any, axis: int | Sequence[int]) -> Tensor:
    x = _t(x)
    dims = _dims(axis)
    rank = x.dim() + len(dims)
    for d in sorted(d % rank for d in dims):
        x = x.unsqueeze(d)
    return x


def squeeze(x: Any, axis: Axis = None) -> Tensor:
    x = _t(x)
    dims = _dims(axis)
    if dims is None:
        return torch.squeeze(x)
    for d in dims:
        if x.shape[d] != 1:
            raise ValueError(
                f"Cannot squeeze axis {d}, because the dimension is not 1. Received: shape={tuple(x.shape)}"
            )
    return torch.squeeze(x, dim=dims)


def concatenate(xs: Sequence[Any], axis: int = 0) -> Tensor:
    ts = [_t(v) for v in xs]
    dt = ts[0].dtype
    for v in ts[1:]:
        dt = torch.promote_types(dt, v.dtype)
    return torch.cat([v.to(dt) for v in ts], dim=axis)


def stack(x: Sequence[Any], axis: int = 0) -> Tensor:
    ts = [_t(v) for v in x]
    dt = ts[0].dtype
    for v in ts[1:]:
        dt = torch.promote_types(dt, v.dtype)
    return torch.stack([v.to(dt) for v in ts], dim=axis)


def split(x: Any, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """numpy's split: ``n`` equal sections, or cut at the given indices."""
    x = _t(x)
    if isinstance(indices_or_sections, numbers.Integral):
        n = int(indices_or_sections)
        if x.shape[axis] % n:
            raise ValueError(f"array split does not result in an equal division: {x.shape[axis]} into {n} sections")
        return list(torch.split(x, x.shape[axis] // n, dim=axis))
    return list(torch.tensor_split(x, list(indices_or_sections), dim=axis))


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    return torch.broadcast_to(_t(x), _shape_arg(shape))


def tile(x: Any, repeats: int | Sequence[int]) -> Tensor:
    return torch.tile(_t(x), _shape_arg(repeats))


def repeat(x: Any, repeats: int, axis: int | None = None) -> Tensor:
    x = _t(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    return torch.repeat_interleave(x, repeats, dim=axis)


def flip(x: Any, axis: Axis = None) -> Tensor:
    x = _t(x)
    dims = _dims(axis)
    return torch.flip(x, dims=tuple(range(x.dim())) if dims is None else dims)


def take(x: Any, indices: Any, axis: int | None = None) -> Tensor:
    """numpy's ``take``: elements of ``x`` (flattened when ``axis`` is None) at ``indices``; negatives wrap."""
    x = _t(x)
    idx = _t(indices, x).to(torch.int64).to(x.device)
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis = axis % x.dim()
    n = x.shape[axis]
    idx = torch.where(idx < 0, idx + n, idx)
    out = torch.index_select(x, axis, idx.reshape(-1))
    return out.reshape(*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :])


def take_along_axis(x: Any, indices: Any, axis: int | None = None) -> Tensor:
    x = _t(x)
    idx = _t(indices, x).to(torch.int64)
    if axis is None:
        x, axis = x.reshape(-1), 0
    return torch.take_along_dim(x, idx, dim=axis)


# ---- neural-network ops (through tritonnn.kernels) ------------------------------------------------------------


def relu(x: Any) -> Tensor:
    return activation_reference("relu", _float(_t(x)))


def relu6(x: Any) -> Tensor:
    return activation_reference("relu6", _float(_t(x)))


def sigmoid(x: Any) -> Tensor:
    return activation_reference("sigmoid", _float(_t(x)))


def tanh(x: Any) -> Tensor:
    return activation_reference("tanh", _float(_t(x)))


def softplus(x: Any) -> Tensor:
    return activation_reference("softplus", _float(_t(x)))


def silu(x: Any) -> Tensor:
    return activation_reference("silu", _float(_t(x)))


swish = silu


def gelu(x: Any, approximate: bool = True) -> Tensor:
    """Keras' gelu (``approximate=True``: the tanh form, Keras' default)."""
    return activation_reference("gelu_tanh" if approximate else "gelu", _float(_t(x)))


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    return torch.nn.functional.elu(_float(_t(x)), alpha=alpha)


def leaky_relu(x: Any, negative_slope: float = 0.2) -> Tensor:
    return torch.nn.functional.leaky_relu(_float(_t(x)), negative_slope=negative_slope)


def softmax(x: Any, axis: int = -1) -> Tensor:
    return kernels.softmax(_float(_t(x)), axis=axis)


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    return kernels.log_softmax(_float(_t(x)), axis=axis)


def stop_gradient(x: Any) -> Tensor:
    return _t(x).detach()
