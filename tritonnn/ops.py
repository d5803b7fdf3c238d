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
import functools
import numbers
import re
import sys
import types
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import _op_dispatch, activations, config, kernels
from ._convert import convert_to_tensor, py_dtype
from .kernels.activations import activation_reference

Tensor = torch.Tensor
Axis = int | Sequence[int] | None

# ---- conversion -----------------------------------------------------------------------------------------------


def _device_of(*xs: Any) -> torch.device:
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
    return config.default_device()


_UNSET: Any = object()
_ML_BFLOAT16: Any = _UNSET  # ml_dtypes.bfloat16 (a Keras dependency, not tritonnn's), None without it


def _numpy_bfloat16() -> Any:
    global _ML_BFLOAT16
    if _ML_BFLOAT16 is _UNSET:
        try:
            import ml_dtypes  # noqa: PLC0415 - optional, imported on the first bfloat16 conversion

            _ML_BFLOAT16 = ml_dtypes.bfloat16
        except ImportError:
            _ML_BFLOAT16 = None
    return _ML_BFLOAT16


def convert_to_numpy(x: Any) -> np.ndarray:
    """A numpy array of ``x``, always a copy on the host (later in-place updates of a tensor or variable do not
    change it), as Keras gives: bfloat16 becomes ``ml_dtypes.bfloat16`` where ml_dtypes is installed (Keras'
    dependency; numpy has no bfloat16 of its own), float32 otherwise; a list or tuple is converted item by item."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        bf16 = x.dtype == torch.bfloat16
        if bf16:
            x = x.to(torch.float32)
        on_host = x.device.type == "cpu"
        out = x.cpu().numpy()
        if bf16 and _numpy_bfloat16() is not None:
            return out.astype(_numpy_bfloat16())  # a new array
        return out.copy() if on_host and not bf16 else out  # .cpu() of a device tensor is a copy already
    if isinstance(x, (list, tuple)):
        return np.array([convert_to_numpy(v) for v in x])
    return np.array(x)


def _t(x: Any, like: Any = None) -> Tensor:
    """A tensor for an operand; a Python scalar beside a tensor stays weak (takes the tensor's dtype if it fits)."""
    if isinstance(x, torch.Tensor):
        return x
    weak = isinstance(x, numbers.Number) and not isinstance(x, bool)
    if weak and isinstance(like, torch.Tensor) and like.dtype != torch.bool:
        if like.dtype.is_floating_point or isinstance(x, numbers.Integral):
            return torch.as_tensor(x, dtype=like.dtype, device=like.device)
        return torch.as_tensor(x, dtype=config.standardize_dtype(None), device=like.device)
    t = convert_to_tensor(x)
    dev = _device_of(like)
    return t if t.device == dev else t.to(dev)


def _pair(x1: Any, x2: Any) -> tuple[Tensor, Tensor]:
    """Both operands as tensors; a Python scalar beside an array or tensor takes its dtype when it fits (weak)."""
    if isinstance(x1, numbers.Number) and not isinstance(x2, numbers.Number):
        b = _t(x2)
        return _t(x1, b), b
    a = _t(x1)
    return a, _t(x2, a)


def _strong_pair(x1: Any, x2: Any) -> tuple[Tensor, Tensor]:
    """Both operands as tensors, a Python scalar with its own Keras dtype (int32, floatx): the ops whose Keras
    implementation converts each operand on its own before promoting."""
    dev = _device_of(x1, x2)
    a, b = convert_to_tensor(x1), convert_to_tensor(x2)
    return (a if a.device == dev else a.to(dev)), (b if b.device == dev else b.to(dev))


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
    """A tensor of ``shape`` filled with ``fill_value`` (broadcast when it is an array), floatx unless ``dtype``."""
    dt = config.standardize_dtype(dtype)
    if isinstance(fill_value, numbers.Number):
        return torch.full(_shape_arg(shape), fill_value, dtype=dt, device=config.default_device())
    return torch.broadcast_to(convert_to_tensor(fill_value, dt), _shape_arg(shape)).clone()


def zeros_like(x: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    x = _t(x)
    return torch.zeros_like(x, dtype=None if dtype is None else config.standardize_dtype(dtype))


def ones_like(x: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    x = _t(x)
    return torch.ones_like(x, dtype=None if dtype is None else config.standardize_dtype(dtype))


def full_like(x: Any, fill_value: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    x = _t(x)
    return torch.full_like(x, fill_value, dtype=None if dtype is None else config.standardize_dtype(dtype))


def arange(start: Any, stop: Any = None, step: Any = None, dtype: str | torch.dtype | None = None) -> Tensor:
    if stop is None:
        start, stop = 0, start
    if step is None:
        step = 1
    dt = config.standardize_dtype(dtype) if dtype is not None else py_dtype([start, stop, step])
    return torch.arange(start, stop, step, dtype=dt, device=config.default_device())


def eye(N: int, M: int | None = None, k: int = 0, dtype: str | torch.dtype | None = None) -> Tensor:  # noqa: N803
    """An ``N`` x ``M`` matrix with ones on the ``k``-th diagonal."""
    out = torch.eye(N, N if M is None else M, dtype=config.standardize_dtype(dtype), device=config.default_device())
    return out if k == 0 else _shift_diagonal(out, N, M, k)


def _shift_diagonal(out: Tensor, n: int, m: int | None, k: int) -> Tensor:
    m = n if m is None else m
    rows = torch.arange(n, device=out.device).unsqueeze(1)
    cols = torch.arange(m, device=out.device).unsqueeze(0)
    return (cols - rows == k).to(out.dtype)


def one_hot(
    x: Any, num_classes: int, axis: int = -1, dtype: str | torch.dtype | None = None, sparse: bool = False
) -> Tensor:
    """One-hot vectors of integer ``x`` on a new ``axis``; out-of-range and negative labels give all-zero rows."""
    if sparse:
        raise ValueError("Unsupported value `sparse=True` with torch backend")
    x = _t(x).to(torch.int64)
    valid = (x >= 0) & (x < num_classes)
    out = torch.nn.functional.one_hot(torch.where(valid, x, 0), num_classes) * valid.unsqueeze(-1)
    out = out.to(config.standardize_dtype(dtype))
    return out if axis == -1 else torch.movedim(out, -1, axis)


# ---- element-wise arithmetic ----------------------------------------------------------------------------------


def add(x1: Any, x2: Any) -> Tensor:
    return torch.add(*_pair(x1, x2))


def subtract(x1: Any, x2: Any) -> Tensor:
    """``x1 - x2``; a bool operand takes the other's dtype (torch refuses to subtract bools), as in Keras."""
    a, b = _pair(x1, x2)
    if a.dtype == torch.bool:
        a = a.to(b.dtype)
    if b.dtype == torch.bool:
        b = b.to(a.dtype)
    return torch.subtract(a, b)


def multiply(x1: Any, x2: Any) -> Tensor:
    return torch.multiply(*_pair(x1, x2))


def divide(x1: Any, x2: Any) -> Tensor:
    a, b = _pair(x1, x2)
    if not (a.dtype.is_floating_point or b.dtype.is_floating_point):
        a = _float(a)
    return torch.divide(a, b)


def true_divide(x1: Any, x2: Any) -> Tensor:
    return divide(x1, x2)


def divide_no_nan(x1: Any, x2: Any) -> Tensor:
    """``x1 / x2``, with 0 where ``x2`` is 0."""
    a, b = _pair(x1, x2)
    dt = _keras_result(a.dtype, b.dtype, floating=True)
    a, b = a.to(dt), b.to(dt)
    safe = torch.where(b == 0, torch.ones_like(b), b)
    return torch.where(b == 0, torch.zeros((), dtype=a.dtype, device=a.device), a / safe)


def floor_divide(x1: Any, x2: Any) -> Tensor:
    a, b = _pair(x1, x2)
    return torch.floor_divide(a, b).to(_keras_result(a.dtype, b.dtype))


def mod(x1: Any, x2: Any) -> Tensor:
    a, b = _pair(x1, x2)
    if a.dtype == torch.bool and b.dtype == torch.bool:
        a, b = a.to(torch.int32), b.to(torch.int32)
    return torch.remainder(a, b)


def power(x1: Any, x2: Any) -> Tensor:
    return torch.pow(*_pair(x1, x2))


def negative(x: Any) -> Tensor:
    return torch.negative(_t(x))


def abs(x: Any) -> Tensor:  # noqa: A001 - Keras' name
    x = _t(x)
    return x if x.dtype == torch.bool else torch.abs(x)


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


def _rounding_dtype(x: Tensor) -> torch.dtype:
    """Keras' output dtype of floor and ceil: floatx for an integer or bool, 32 bits for a 64-bit float."""
    return _keras_result(x.dtype, floating=True)


def floor(x: Any) -> Tensor:
    x = _t(x)
    return torch.floor(x.to(_rounding_dtype(x)))


def ceil(x: Any) -> Tensor:
    x = _t(x)
    return torch.ceil(x.to(_rounding_dtype(x)))


def round(x: Any, decimals: int = 0) -> Tensor:  # noqa: A001 - Keras' name
    """Round half to even to ``decimals`` places; an integer input rounds (negative ``decimals``) in floatx and
    keeps its dtype."""
    x = _t(x)
    if x.dtype.is_floating_point or x.dtype == torch.bool:
        return torch.round(x, decimals=decimals)
    return torch.round(_float(x), decimals=decimals).to(x.dtype)


def clip(x: Any, x_min: Any, x_max: Any) -> Tensor:
    x = _t(x)
    return torch.clamp(x, min=x_min, max=x_max)


def maximum(x1: Any, x2: Any) -> Tensor:
    a, b = _pair(x1, x2)
    dt = _keras_result(a.dtype, b.dtype)
    return torch.maximum(a.to(dt), b.to(dt))


def minimum(x1: Any, x2: Any) -> Tensor:
    a, b = _pair(x1, x2)
    dt = _keras_result(a.dtype, b.dtype)
    return torch.minimum(a.to(dt), b.to(dt))


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
    """``fn`` over ``axis``; ``axis=()`` reduces nothing, as in numpy and Keras."""
    x = _t(x)
    if _all_axes(axis):
        return x
    dims = _dims(axis)
    if dims is None:
        out = fn(x)
        return out.reshape([1] * x.dim()) if keepdims else out
    return fn(x, dim=dims, keepdim=keepdims)


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The mean along ``axis`` (an integer or bool input in floatx; ``axis=()`` returns ``x`` as it is)."""
    x = _t(x)
    return x if _all_axes(axis) else _reduce(torch.mean, _float(x), axis, keepdims)


def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001 - Keras' name
    x = _t(x)
    if _all_axes(axis):
        return x
    dt = torch.int32 if x.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16) else x.dtype
    return _reduce(torch.sum, x, axis, keepdims).to(dt)


def prod(x: Any, axis: Axis = None, keepdims: bool = False, dtype: str | torch.dtype | None = None) -> Tensor:
    """The product along ``axis``, in ``dtype`` (default: ``x``'s; bools and narrow integers in int32, 64-bit
    types in 32 bits, as Keras)."""
    x = _t(x)
    if dtype is not None:
        dt = config.standardize_dtype(dtype)
    else:
        dt = _keras_result(x.dtype)
        if dt in (torch.bool, torch.uint8, torch.int8, torch.int16):
            dt = torch.int32
    x = x.to(dt)
    dims = _dims(axis)
    if dims is None:
        out = torch.prod(x, dtype=dt)
        return out.reshape([1] * x.dim()) if keepdims else out
    for d in dims:
        if not -x.dim() <= d < builtins.max(x.dim(), 1):
            raise ValueError(f"axis {d} is out of bounds for an array with dimension {x.dim()}.")
    for d in sorted((d % builtins.max(x.dim(), 1) for d in dims), reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdims, dtype=dt)
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
    """The biased variance (numpy's and Keras' ``ddof=0``), computed in at least float32."""
    x = _t(x)
    result = _keras_result(x.dtype, floating=True)
    if _all_axes(axis):
        return torch.zeros_like(x, dtype=result)
    x = x.to(_keras_result(x.dtype, torch.float32))
    return torch.var(x, dim=_dims(axis), unbiased=False, keepdim=keepdims).to(result)


def std(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The biased standard deviation; an integer or bool input in float32, a float one in its own dtype (Keras)."""
    x = _t(x)
    if not x.dtype.is_floating_point:
        x = x.to(torch.float32)
    return torch.std(x, dim=_dims(axis), unbiased=False, keepdim=keepdims)


def moments(
    x: Any, axes: int | Sequence[int], keepdims: bool = False, synchronized: bool = False
) -> tuple[Tensor, Tensor]:
    """Mean and biased variance over ``axes`` (``synchronized``, across replicas in Keras' distributed training,
    changes nothing on one device), in ``x``'s dtype: a 16-bit input is reduced in float32 and the results cast
    back (a float16 one clipped to its range first), as in Keras. An integer or bool tensor is a ``RuntimeError``,
    as in Keras on torch (whose ``mean`` has no integer result type)."""
    x = _t(x)
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        raise RuntimeError(
            "moments: could not infer the output dtype. The input must be a floating point or complex tensor. "
            f"Got: {str(x.dtype).replace('torch.', '')}. Cast it first, e.g. `ops.cast(x, 'float32')`."
        )
    mean, variance = kernels.moments(x, _dims(axes), keepdims=keepdims)
    if x.dtype == torch.float16:
        limit = torch.finfo(torch.float16).max
        mean, variance = mean.clamp(-limit, limit), variance.clamp(-limit, limit)
    return mean.to(x.dtype), variance.to(x.dtype)


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
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
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
    """The cumulative sum; in ``x``'s dtype unless ``dtype`` is given (a bool in int32), as in Keras."""
    x = _t(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    dt = _keras_result(x.dtype if dtype is None else config.standardize_dtype(dtype))
    return torch.cumsum(x, dim=axis, dtype=torch.int32 if dt == torch.bool else dt)


def sort(x: Any, axis: int = -1) -> Tensor:
    return torch.sort(_t(x), dim=axis).values


def argsort(x: Any, axis: int = -1) -> Tensor:
    return torch.argsort(_t(x), dim=axis, stable=True).to(torch.int32)


def top_k(x: Any, k: int, sorted: bool = True) -> tuple[Tensor, Tensor]:  # noqa: A002 - Keras' name
    """The ``k`` largest values along the last axis and their indices (int64, as Keras on torch gives them)."""
    values, indices = torch.topk(_t(x), k, dim=-1, sorted=sorted)
    return values, indices


def in_top_k(targets: Any, predictions: Any, k: int) -> Tensor:
    """Whether each target's score is among the ``k`` largest of its row (ties with the k-th count as in)."""
    predictions = _t(predictions)
    targets = _t(targets, predictions).to(torch.int64).to(predictions.device)
    kth = torch.topk(predictions, builtins.min(k, predictions.shape[-1]), dim=-1).values[..., -1]
    return torch.gather(predictions, -1, targets.unsqueeze(-1)).squeeze(-1) >= kth


# ---- linear algebra -------------------------------------------------------------------------------------------


def _matmul_dtypes(a: Tensor, b: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """Keras' (result, compute) dtypes of a matrix product: int8 x int8 gives int32, otherwise ``result_type``; bools
    and (on a GPU) integers multiply in floatx, float16 on the CPU in float32."""
    if a.dtype == b.dtype == torch.int8:
        result = torch.int32
    else:
        result = _keras_result(a.dtype, b.dtype)
    compute = result
    if result == torch.bool or (a.device.type != "cpu" and not result.is_floating_point):
        compute = config.standardize_dtype(None)
    elif result == torch.float16 and a.device.type == "cpu":
        compute = torch.float32
    return result, compute


def matmul(x1: Any, x2: Any) -> Tensor:
    a, b = _pair(x1, x2)
    if (
        a.dtype == b.dtype
        and a.dtype in (torch.float32, torch.bfloat16)
        or a.dtype == b.dtype == torch.float16
        and a.is_cuda
    ):
        return torch.matmul(a, b)
    result, compute = _matmul_dtypes(a, b)
    return torch.matmul(a.to(compute), b.to(compute)).to(result)


def dot(x1: Any, x2: Any) -> Tensor:
    """numpy's ``dot``: the product of scalars, the inner product of vectors, else a matmul over the last axis of
    ``x1`` and the second-to-last of ``x2``."""
    a, b = _pair(x1, x2)
    result = _keras_result(a.dtype, b.dtype)
    compute = _keras_result(result, floating=True)
    if compute == torch.float16 and a.device.type == "cpu":
        compute = torch.float32
    a, b = a.to(compute), b.to(compute)
    if a.dim() == 0 or b.dim() == 0:
        out = a * b
    elif b.dim() == 1 or a.dim() <= 2 and b.dim() <= 2:
        out = torch.matmul(a, b)
    else:
        out = torch.tensordot(a, b, dims=([-1], [b.dim() - 2]))
    return out.to(result)


def tensordot(x1: Any, x2: Any, axes: Any = 2) -> Tensor:
    return torch.tensordot(*_pair(x1, x2), dims=axes)


def einsum(subscripts: str, *operands: Any, **kwargs: Any) -> Tensor:
    """torch's einsum; Keras' backend-specific keyword arguments (JAX's ``optimize``...) are accepted and unused."""
    return torch.einsum(subscripts, *[_t(o) for o in operands])


def norm(x: Any, ord: Any = None, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A002
    x = _t(x)
    x = x.to(_keras_result(x.dtype, floating=True))
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


def repeat(x: Any, repeats: int | Sequence[int], axis: int | None = None) -> Tensor:
    """Each element repeated ``repeats`` times (one count, or one per element along ``axis``)."""
    x = _t(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    if not isinstance(repeats, numbers.Integral):
        repeats = convert_to_tensor(repeats).to(torch.int64).to(x.device)
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
    """``max(x, 0)``; an integer input keeps its dtype, as in Keras."""
    x = _t(x)
    if not x.dtype.is_floating_point and x.dtype != torch.bool:
        return torch.relu(x)
    return activation_reference("relu", _float(x))


def relu6(x: Any) -> Tensor:
    x = _t(x)
    if not x.dtype.is_floating_point and x.dtype != torch.bool:
        return torch.clamp(x, 0, 6)
    return activation_reference("relu6", _float(x))


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


def stop_gradient(variable: Any) -> Tensor:
    return _t(variable).detach()


# ---- more of Keras' numpy-style ops (issue #14) ---------------------------------------------------------------
# Each follows Keras 3 on its torch backend: its arguments and defaults, its output dtypes (an integer input of a
# floating op gives floatx; a few ops compute int64 in float64, as Keras does), its errors.


def _promote(ts: Sequence[Tensor]) -> torch.dtype:
    dt = ts[0].dtype
    for v in ts[1:]:
        dt = torch.promote_types(dt, v.dtype)
    return dt


_TO_32_BITS = {torch.int64: torch.int32, torch.float64: torch.float32, torch.complex128: torch.complex64}


def _keras_result(*dts: torch.dtype, floating: bool = False) -> torch.dtype:
    """Keras' ``result_type(*dts)`` (with ``float`` among them when ``floating``) on its torch backend: torch's
    promotion, an integer or bool made floatx when ``floating``, and a 64-bit result made 32-bit (Keras follows
    JAX's default there)."""
    dt = dts[0]
    for d in dts[1:]:
        dt = torch.promote_types(dt, d)
    if floating and not (dt.is_floating_point or dt.is_complex):
        dt = config.standardize_dtype(None)
    return _TO_32_BITS.get(dt, dt)


def _float_of(dt: torch.dtype) -> torch.dtype:
    """Keras' ``result_type(dt, float)``: a float dtype stays, an integer or bool becomes floatx."""
    return dt if dt.is_floating_point or dt.is_complex else config.standardize_dtype(None)


def _float64_for_int64(dt: torch.dtype) -> torch.dtype:
    """The float dtype a few Keras ops (cbrt, deg2rad, heaviside, hypot, i0, corrcoef) compute an integer in: float64
    for int64, floatx for the other integers and bool."""
    return torch.float64 if dt == torch.int64 else _float_of(dt)


def _all_axes(axis: Axis) -> bool:
    return axis is not None and not isinstance(axis, numbers.Integral) and len(axis) == 0


def array(x: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    return convert_to_tensor(x, dtype=dtype)


def copy(x: Any) -> Tensor:
    return torch.clone(_t(x))


def empty(shape: int | Sequence[int], dtype: str | torch.dtype | None = None) -> Tensor:
    return torch.empty(_shape_arg(shape), dtype=config.standardize_dtype(dtype), device=config.default_device())


def empty_like(x: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    x = _t(x)
    return torch.empty_like(x, dtype=None if dtype is None else config.standardize_dtype(dtype))


def identity(n: int, dtype: str | torch.dtype | None = None) -> Tensor:
    return eye(n, dtype=dtype)


def tri(N: int, M: int | None = None, k: int = 0, dtype: str | torch.dtype | None = None) -> Tensor:  # noqa: N803
    full_ = torch.ones((N, M or N), dtype=config.standardize_dtype(dtype), device=config.default_device())
    return torch.tril(full_, diagonal=k)


def tril(x: Any, k: int = 0) -> Tensor:
    return torch.tril(_t(x), diagonal=k)


def triu(x: Any, k: int = 0) -> Tensor:
    return torch.triu(_t(x), diagonal=k)


def _space_dtype(start: Any, stop: Any, dtype: Any) -> torch.dtype:
    """Keras' default dtype of linspace/logspace/geomspace: ``result_type(start, stop, float)``."""
    if dtype is not None:
        return config.standardize_dtype(dtype)
    ts = [convert_to_tensor(v) for v in (start, stop) if not isinstance(v, numbers.Number)]
    return _keras_result(*[t.dtype for t in ts], floating=True) if ts else config.standardize_dtype(None)


def _steps(start: Tensor, stop: Tensor, num: int, endpoint: bool, dtype: torch.dtype) -> Tensor:
    """``num`` points from ``start`` to ``stop`` (both broadcast) on a new leading axis, computed in ``dtype``'s
    float (float64 for an integer ``dtype``)."""
    compute = dtype if dtype.is_floating_point else torch.float64
    a, b = start.to(compute), stop.to(compute)
    if not endpoint and num > 1:
        b = b - (b - a) / num
    if a.dim() == 0 and b.dim() == 0:
        return torch.linspace(float(a), float(b), num, dtype=compute, device=a.device)
    a, b = torch.broadcast_tensors(a, b)
    frac = torch.arange(num, dtype=compute, device=a.device) / builtins.max(num - 1, 1)
    return a[None] + frac.reshape(-1, *[1] * a.dim()) * (b - a)[None]


def linspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: str | torch.dtype | None = None,
    axis: int = 0,
) -> Tensor | tuple[Tensor, Any]:
    """``num`` evenly spaced values from ``start`` to ``stop`` (``stop`` left out unless ``endpoint``); array
    ``start``/``stop`` give one such sequence per element, along ``axis``."""
    dt = _space_dtype(start, stop, dtype)
    out = _steps(convert_to_tensor(start), convert_to_tensor(stop), num, endpoint, dt)
    out = out.to(dt) if dt.is_floating_point else torch.floor(out).to(dt)
    if axis != 0:
        out = torch.movedim(out, 0, axis)
    if not retstep:
        return out
    div = num - 1 if endpoint else num
    step = (stop - start) / div if div > 0 else float("nan")
    return out, step


def logspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    base: float = 10,
    dtype: str | torch.dtype | None = None,
    axis: int = 0,
) -> Tensor:
    """``base ** linspace(start, stop, num)``."""
    dt = _space_dtype(start, stop, dtype)
    exps = _steps(convert_to_tensor(start), convert_to_tensor(stop), num, endpoint, dt)
    out = torch.pow(torch.as_tensor(base, dtype=exps.dtype, device=exps.device), exps).to(dt)
    return out if axis == 0 else torch.movedim(out, 0, axis)


def geomspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    dtype: str | torch.dtype | None = None,
    axis: int = 0,
) -> Tensor:
    """Numbers evenly spaced on a log scale from ``start`` to ``stop`` (a geometric progression)."""
    dt = _space_dtype(start, stop, dtype)
    compute = dt if dt.is_floating_point else torch.float64
    a, b = convert_to_tensor(start).to(compute), convert_to_tensor(stop).to(compute)
    exps = _steps(torch.log10(torch.abs(a)), torch.log10(torch.abs(b)), num, endpoint, compute)
    out = (torch.pow(torch.as_tensor(10.0, dtype=compute, device=exps.device), exps) * torch.sign(a)).to(dt)
    return out if axis == 0 else torch.movedim(out, 0, axis)


def meshgrid(*x: Any, indexing: str = "xy") -> tuple[Tensor, ...]:
    return tuple(torch.meshgrid([_t(v) for v in x], indexing=indexing))


def vander(x: Any, N: int | None = None, increasing: bool = False) -> Tensor:  # noqa: N803
    return torch.vander(_t(x), N=N, increasing=increasing)


# element-wise math


def _unary_float(fn: Any) -> Any:
    def op(x: Any) -> Tensor:
        return fn(_float(_t(x)))

    return op


sin = _unary_float(torch.sin)
cos = _unary_float(torch.cos)
tan = _unary_float(torch.tan)
arcsin = _unary_float(torch.arcsin)
arccos = _unary_float(torch.arccos)
arctan = _unary_float(torch.arctan)
sinh = _unary_float(torch.sinh)
cosh = _unary_float(torch.cosh)
arcsinh = _unary_float(torch.arcsinh)
arccosh = _unary_float(torch.arccosh)
arctanh = _unary_float(torch.arctanh)
log2 = _unary_float(torch.log2)
log10 = _unary_float(torch.log10)
exp2 = _unary_float(torch.exp2)
erfc = _unary_float(torch.erfc)
erfinv = _unary_float(torch.erfinv)
reciprocal = _unary_float(torch.reciprocal)
sinc = _unary_float(torch.sinc)
for _f, _n in ((sin, "sin"), (cos, "cos"), (tan, "tan"), (arcsin, "arcsin"), (arccos, "arccos"),
               (arctan, "arctan"), (sinh, "sinh"), (cosh, "cosh"), (arcsinh, "arcsinh"), (arccosh, "arccosh"),
               (arctanh, "arctanh"), (log2, "log2"), (log10, "log10"), (exp2, "exp2"), (erfc, "erfc"),
               (erfinv, "erfinv"), (reciprocal, "reciprocal"), (sinc, "sinc")):  # fmt: skip
    _f.__name__ = _f.__qualname__ = _n


def fabs(x: Any) -> Tensor:
    return torch.abs(_float(_t(x)))


def trunc(x: Any) -> Tensor:
    x = _t(x)
    return x if x.dtype == torch.bool else torch.trunc(x)


def cbrt(x: Any) -> Tensor:
    """The real cube root (negative for a negative ``x``)."""
    x = _t(x)
    x = x.to(_float64_for_int64(x.dtype))
    return torch.sign(x) * torch.abs(x) ** (1.0 / 3.0)


def deg2rad(x: Any) -> Tensor:
    x = _t(x)
    return torch.deg2rad(x.to(_float64_for_int64(x.dtype)))


def rad2deg(x: Any) -> Tensor:
    x = _t(x)
    return torch.rad2deg(x.to(_float64_for_int64(x.dtype)))


def i0(x: Any) -> Tensor:
    """The modified Bessel function of the first kind, order 0."""
    x = _t(x)
    return torch.i0(x.to(_float64_for_int64(x.dtype)))


def signbit(x: Any) -> Tensor:
    return torch.signbit(_t(x))


def isneginf(x: Any) -> Tensor:
    return torch.isneginf(_t(x))


def isposinf(x: Any) -> Tensor:
    return torch.isposinf(_t(x))


def nan_to_num(x: Any, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
    return torch.nan_to_num(_t(x), nan=nan, posinf=posinf, neginf=neginf)


def _binary_float(fn: Any, keep_bool: bool = False) -> Any:
    def op(x1: Any, x2: Any) -> Tensor:
        a, b = _strong_pair(x1, x2)
        dt = _keras_result(a.dtype, b.dtype, floating=not keep_bool)
        if keep_bool and dt != torch.bool and not dt.is_floating_point:
            dt = config.standardize_dtype(None)
        return fn(a.to(dt), b.to(dt))

    return op


arctan2 = _binary_float(torch.arctan2)
logaddexp = _binary_float(torch.logaddexp)
logaddexp2 = _binary_float(torch.logaddexp2)
hypot = _binary_float(torch.hypot, keep_bool=True)
heaviside = _binary_float(torch.heaviside, keep_bool=True)
for _f, _n in ((arctan2, "arctan2"), (logaddexp, "logaddexp"), (logaddexp2, "logaddexp2"), (hypot, "hypot"),
               (heaviside, "heaviside")):  # fmt: skip
    _f.__name__ = _f.__qualname__ = _n


def nextafter(x1: Any, x2: Any) -> Tensor:
    """The next float after ``x1`` towards ``x2`` (in float64, as Keras, then in the result dtype)."""
    a, b = _strong_pair(x1, x2)
    dt = _keras_result(a.dtype, b.dtype, floating=True)
    return torch.nextafter(a.to(torch.float64), b.to(torch.float64)).to(dt)


def ldexp(x1: Any, x2: Any) -> Tensor:
    """``x1 * 2 ** x2`` for an integer exponent ``x2``."""
    a, b = _pair(x1, x2)
    if b.dtype.is_floating_point or b.dtype.is_complex or b.dtype == torch.bool:
        raise TypeError(f"ldexp exponent must be an integer type. Received: x2 dtype={dtype(b)}")
    return torch.ldexp(a, b).to(_keras_result(a.dtype, b.dtype, floating=True))


def fmod(x1: Any, x2: Any) -> Tensor:
    """The remainder of C's ``fmod`` (the sign of ``x1``; ``mod`` takes the sign of ``x2``)."""
    a, b = _pair(x1, x2)
    if a.dtype == torch.bool and b.dtype == torch.bool:
        a, b = a.to(torch.int32), b.to(torch.int32)
    return torch.fmod(a, b)


def fmax(x1: Any, x2: Any) -> Tensor:
    """The element-wise maximum, ignoring NaNs (NaN only where both are)."""
    a, b = _pair(x1, x2)
    dt = _keras_result(a.dtype, b.dtype)
    return torch.fmax(a.to(dt), b.to(dt))


def fmin(x1: Any, x2: Any) -> Tensor:
    a, b = _pair(x1, x2)
    dt = _keras_result(a.dtype, b.dtype)
    return torch.fmin(a.to(dt), b.to(dt))


def gcd(x1: Any, x2: Any) -> Tensor:
    return torch.gcd(*_pair(x1, x2))


def lcm(x1: Any, x2: Any) -> Tensor:
    return torch.lcm(*_pair(x1, x2))


def _bitwise(fn: Any, name: str) -> Any:
    def op(x: Any, y: Any) -> Tensor:
        return fn(*_pair(x, y))

    op.__name__ = op.__qualname__ = name
    return op


bitwise_and = _bitwise(torch.bitwise_and, "bitwise_and")
bitwise_or = _bitwise(torch.bitwise_or, "bitwise_or")
bitwise_xor = _bitwise(torch.bitwise_xor, "bitwise_xor")
bitwise_left_shift = _bitwise(torch.bitwise_left_shift, "bitwise_left_shift")
bitwise_right_shift = _bitwise(torch.bitwise_right_shift, "bitwise_right_shift")
left_shift = bitwise_left_shift
right_shift = bitwise_right_shift


def bitwise_invert(x: Any) -> Tensor:
    return torch.bitwise_not(_t(x))


bitwise_not = bitwise_invert


def isclose(x1: Any, x2: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """``|x1 - x2| <= atol + rtol * |x2|`` element-wise (exact equality for integers)."""
    a, b = _pair(x1, x2)
    dt = _keras_result(a.dtype, b.dtype)
    a, b = a.to(dt), b.to(dt)
    if dt.is_floating_point or dt.is_complex:
        return torch.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    return torch.eq(a, b)


def allclose(x1: Any, x2: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    return torch.all(isclose(x1, x2, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isin(x1: Any, x2: Any, assume_unique: bool = False, invert: bool = False) -> Tensor:
    """Whether each element of ``x1`` is in ``x2``."""
    a, b = _pair(x1, x2)
    dt = _promote([a, b])
    if dt == torch.bool:
        dt = torch.int32
    return torch.isin(a.to(dt), b.to(dt), assume_unique=assume_unique, invert=invert)


def select(condlist: Sequence[Any], choicelist: Sequence[Any], default: Any = 0) -> Tensor:
    """The element of the first ``choicelist`` entry whose condition holds, else ``default``."""
    if len(condlist) != len(choicelist):
        raise ValueError(
            "condlist and choicelist must have the same length. "
            f"Received: len(condlist)={len(condlist)}, len(choicelist)={len(choicelist)}"
        )
    if not condlist:
        raise ValueError("select with an empty condition list is not possible")
    choices = [_t(c) for c in choicelist]
    out = _t(default, choices[0])
    for cond, choice in reversed(list(zip(condlist, choices, strict=True))):
        out = torch.where(_t(cond).to(torch.bool), choice, out)
    return out


# reductions and statistics


def _over(x: Tensor, fn: Any, axis: Axis, keepdims: bool) -> Tensor:
    """``fn(x, dim=..., keepdim=...)`` over ``axis`` (every axis for None)."""
    dims = _dims(axis)
    if dims is None:
        dims = tuple(range(x.dim()))
    return fn(x, dim=dims, keepdim=keepdims) if dims else x


def count_nonzero(x: Any, axis: Axis = None) -> Tensor:
    x = _t(x)
    if _all_axes(axis):
        return torch.ne(x, 0).to(torch.int32)
    return torch.count_nonzero(x, dim=_dims(axis)).to(torch.int32)


def ptp(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The range ``max - min`` along ``axis``."""
    x = _t(x)
    if _all_axes(axis):
        return torch.zeros_like(x)
    return max(x, axis, keepdims) - min(x, axis, keepdims)


def average(x: Any, axis: int | None = None, weights: Any = None) -> Tensor:
    """The mean of ``x`` along ``axis``, weighted by ``weights`` (of ``x``'s shape, or 1-D along ``axis``)."""
    x = _t(x)
    ts = [x] if weights is None else [x, _t(weights, x)]
    dt = _keras_result(*[t.dtype for t in ts], floating=True)
    x = x.to(dt)
    if _all_axes(axis):
        return x
    if weights is None:
        return mean(x, axis)
    w = ts[1].to(dt)
    if w.shape != x.shape:
        if axis is None:
            raise ValueError("Axis must be specified when shapes of x and weights differ.")
        if w.dim() != 1 or w.shape[0] != x.shape[axis]:
            raise ValueError("Length of weights not compatible with specified axis.")
        w = w.reshape([-1 if d == axis % x.dim() else 1 for d in range(x.dim())])
        w = torch.broadcast_to(w, x.shape)
    dims = _dims(axis)
    if dims is None:
        return torch.sum(x * w) / torch.sum(w)
    return torch.sum(x * w, dim=dims) / torch.sum(w, dim=dims)


def cumprod(x: Any, axis: int | None = None, dtype: str | torch.dtype | None = None) -> Tensor:
    x = _t(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    dt = _keras_result(x.dtype if dtype is None else config.standardize_dtype(dtype))
    return torch.cumprod(x, dim=axis, dtype=torch.int32 if dt == torch.bool else dt)


def diff(a: Any, n: int = 1, axis: int = -1) -> Tensor:
    return torch.diff(_t(a), n=n, dim=axis)


def trace(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    x = _t(x)
    dt = torch.int32 if x.dtype in (torch.bool, torch.int8, torch.int16, torch.uint8) else x.dtype
    return torch.sum(torch.diagonal(x, offset, axis1, axis2), dim=-1, dtype=dt)


def trapezoid(y: Any, x: Any = None, dx: float = 1.0, axis: int = -1) -> Tensor:
    """The integral of ``y`` along ``axis`` by the trapezoidal rule (at points ``x``, or spaced ``dx``)."""
    y = _t(y)
    if y.dtype == torch.bool:
        y = _float(y)
    if x is not None:
        return torch.trapezoid(y, x=_t(x, y), dim=axis)
    return torch.trapezoid(y, dx=dx, dim=axis)


def _quantile(fn: Any, x: Any, q: Any, axis: Axis, method: str, keepdims: bool) -> Tensor:
    x = _t(x)
    result_dt = _keras_result(x.dtype, floating=True)
    x = x.to(_keras_result(x.dtype, torch.float32))
    q = convert_to_tensor(q).to(x.dtype).to(x.device)
    dims = _dims(axis)
    if dims is None:
        y = x.reshape(-1)
    else:
        dims = tuple(d % x.dim() for d in dims)
        rest = [d for d in range(x.dim()) if d not in dims]
        y = x.permute(*rest, *dims).reshape(*[x.shape[d] for d in rest], -1)
    y = fn(y, q, dim=-1, interpolation=method)
    if keepdims:
        lead = 1 if q.dim() > 0 else 0
        for d in range(x.dim()) if dims is None else sorted(dims):
            y = y.unsqueeze(lead + d if dims is not None else -1)
    return y.to(result_dt)


def quantile(x: Any, q: Any, axis: Axis = None, method: str = "linear", keepdims: bool = False) -> Tensor:
    """The ``q``-th quantiles (``q`` in [0, 1]) along ``axis``; an array ``q`` adds a leading axis."""
    return _quantile(torch.quantile, x, q, axis, method, keepdims)


def percentile(x: Any, q: Any, axis: Axis = None, method: str = "linear", keepdims: bool = False) -> Tensor:
    return quantile(x, convert_to_tensor(q, dtype=config.floatx()) / 100.0, axis, method, keepdims)


def median(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return quantile(x, 0.5, axis=axis, keepdims=keepdims)


def nanquantile(x: Any, q: Any, axis: Axis = None, method: str = "linear", keepdims: bool = False) -> Tensor:
    return _quantile(torch.nanquantile, x, q, axis, method, keepdims)


def nanpercentile(x: Any, q: Any, axis: Axis = None, method: str = "linear", keepdims: bool = False) -> Tensor:
    return nanquantile(x, convert_to_tensor(q, dtype=config.floatx()) / 100.0, axis, method, keepdims)


def nanmedian(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = _t(x)
    if _all_axes(axis):
        return x
    return nanquantile(x, 0.5, axis=axis, keepdims=keepdims)


def nansum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = _t(x)
    dt = torch.int32 if x.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16) else x.dtype
    if _all_axes(axis):
        return torch.nan_to_num(x, nan=0).to(dt)
    if not x.dtype.is_floating_point:
        return sum(x, axis, keepdims).to(dt)
    return _over(x, torch.nansum, axis, keepdims).to(dt)


def nanprod(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = _t(x)
    if _all_axes(axis):
        return torch.nan_to_num(x, nan=1)
    if x.dtype.is_floating_point:
        x = torch.where(torch.isnan(x), torch.ones((), dtype=x.dtype, device=x.device), x)
    return prod(x, axis, keepdims)


def nanmean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = _t(x)
    if _all_axes(axis):
        return x
    return _over(x.to(_keras_result(x.dtype, floating=True)), torch.nanmean, axis, keepdims)


def nanvar(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The biased variance of the non-NaN elements."""
    x = _t(x)
    x = x.to(_keras_result(x.dtype, floating=True))
    if _all_axes(axis):
        return torch.where(torch.isnan(x), x, torch.zeros((), dtype=x.dtype, device=x.device))
    valid = ~torch.isnan(x)
    centered = torch.where(valid, x - nanmean(x, axis, keepdims=True), torch.zeros((), dtype=x.dtype, device=x.device))
    dims = _dims(axis)
    if dims is None:
        dims = tuple(range(x.dim()))
    return (centered * centered).sum(dim=dims, keepdim=keepdims) / valid.sum(dim=dims, keepdim=keepdims)


def nanstd(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return torch.sqrt(nanvar(x, axis, keepdims))


def _nan_extreme(x: Any, axis: Axis, keepdims: bool, fill: float, reduce: Any) -> Tensor:
    x = _t(x)
    if not x.dtype.is_floating_point:
        return reduce(x, axis, keepdims)
    if _all_axes(axis):
        return x
    nans = torch.isnan(x)
    out = reduce(torch.where(nans, torch.full((), fill, dtype=x.dtype, device=x.device), x), axis, keepdims)
    all_nan = _over(nans, torch.all, axis, keepdims) if axis is not None else torch.all(nans).reshape(out.shape)
    return torch.where(all_nan, torch.full((), float("nan"), dtype=x.dtype, device=x.device), out)


def nanmax(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The maximum ignoring NaNs (NaN where a slice is all NaN)."""
    return _nan_extreme(x, axis, keepdims, float("-inf"), max)


def nanmin(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return _nan_extreme(x, axis, keepdims, float("inf"), min)


def _nan_arg(x: Any, axis: int | None, keepdims: bool, fill: float, arg: Any) -> Tensor:
    x = _t(x)
    if not x.dtype.is_floating_point:
        return arg(x, axis, keepdims)
    nans = torch.isnan(x)
    out = arg(torch.where(nans, torch.full((), fill, dtype=x.dtype, device=x.device), x), axis, keepdims)
    all_nan = _reduce(torch.all, nans, axis, keepdims)
    return torch.where(all_nan, torch.full((), -1, dtype=torch.int32, device=x.device), out)


def nanargmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """The index of the maximum ignoring NaNs (-1 where a slice is all NaN)."""
    return _nan_arg(x, axis, keepdims, float("-inf"), argmax)


def nanargmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    return _nan_arg(x, axis, keepdims, float("inf"), argmin)


def nancumsum(x: Any, axis: int | None = None, dtype: str | torch.dtype | None = None) -> Tensor:
    return cumsum(nan_to_num(x), axis=axis, dtype=dtype)


def nancumprod(x: Any, axis: int | None = None, dtype: str | torch.dtype | None = None) -> Tensor:
    return cumprod(nan_to_num(x, nan=1.0), axis=axis, dtype=dtype)


def bincount(x: Any, weights: Any = None, minlength: int = 0, sparse: bool = False) -> Tensor:
    """The count of each non-negative integer of ``x`` (weighted by ``weights``); a 2-D ``x`` counts per row."""
    if sparse:
        raise ValueError("Unsupported value `sparse=True` with torch backend")
    x = _t(x)
    w = None if weights is None else _t(weights, x)
    dt = torch.int32 if w is None else _keras_result(x.dtype, w.dtype)
    if x.dim() == 2:
        size_ = builtins.max(int(x.max()) + 1 if x.numel() else 0, minlength)
        ws = [None] * x.shape[0] if w is None else list(w)
        rows = [torch.bincount(r, wr, size_) for r, wr in zip(x, ws, strict=True)]
        return torch.stack(rows).to(dt)
    return torch.bincount(x, w, minlength).to(dt)


def digitize(x: Any, bins: Any) -> Tensor:
    """The index of the bin of each element (``bins`` increasing; ``bins[i-1] <= x < bins[i]`` gives ``i``)."""
    x = _t(x)
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    return torch.bucketize(x, _t(bins, x), right=True).to(torch.int32)


def searchsorted(sorted_sequence: Any, values: Any, side: str = "left") -> Tensor:
    """Where each of ``values`` would be inserted into the 1-D ``sorted_sequence`` to keep it sorted (int32)."""
    seq = _t(sorted_sequence)
    if seq.dim() != 1:
        raise ValueError(
            "`searchsorted` only supports 1-D sorted sequences. You can use `keras.ops.vectorized_map` to extend it "
            f"to N-D sequences. Received: sorted_sequence.shape={tuple(seq.shape)}"
        )
    vals = _t(values, seq)
    out_int32 = seq.shape[0] <= np.iinfo(np.int32).max
    return torch.searchsorted(seq, vals, side=side, out_int32=out_int32)


def histogram(x: Any, bins: int = 10, range: tuple[float, float] | None = None) -> tuple[Tensor, Tensor]:  # noqa: A002
    """numpy's histogram of the flattened ``x``: the counts in ``bins`` equal bins over ``range`` (default: the
    data's min and max; the last bin includes its right edge) and the ``bins + 1`` edges."""
    x = _t(x)
    if x.dim() != 1:
        raise ValueError(f"Input tensor must be 1-dimensional. Received: input.shape={tuple(x.shape)}")
    hist = torch.histogram(x.cpu(), bins=bins, range=range)
    return hist.hist.to(x.device), hist.bin_edges.to(x.device)


def unique(
    x: Any,
    sorted: bool = True,  # noqa: A002 - Keras' name
    return_index: bool = False,
    return_inverse: bool = False,
    return_counts: bool = False,
    axis: int | None = None,
    size: int | None = None,
    fill_value: Any = None,
) -> Tensor | tuple[Tensor, ...]:
    """The sorted unique elements (or slices along ``axis``), with the first index, the inverse and the counts on
    request; ``size`` pads (with ``fill_value``, default 0) or cuts the result to that many."""
    x = _t(x)
    values, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True, dim=axis)
    dim = 0 if axis is None else axis % x.dim()
    first = None
    if return_index:
        n = inverse.numel() if axis is None else x.shape[dim]
        flat_inv = inverse.reshape(-1)
        pos = torch.arange(n, dtype=flat_inv.dtype, device=x.device)
        first = torch.full((values.shape[dim],), n, dtype=flat_inv.dtype, device=x.device)
        first = first.scatter_reduce(0, flat_inv, pos, reduce="amin", include_self=True)
    if size is not None:
        have = values.shape[dim]
        if have > size:
            values = values.narrow(dim, 0, size)
            counts, first = counts[:size], None if first is None else first[:size]
        elif have < size:
            widths = [0, 0] * values.dim()
            widths[(values.dim() - 1 - dim) * 2 + 1] = size - have
            values = torch.nn.functional.pad(values, widths, value=0 if fill_value is None else fill_value)
            counts = torch.nn.functional.pad(counts, (0, size - have), value=0)
            first = None if first is None else torch.nn.functional.pad(first, (0, size - have), value=1)
    out: list[Tensor] = [values]
    if return_index:
        out.append(first)
    if return_inverse:
        out.append(inverse)
    if return_counts:
        out.append(counts)
    return out[0] if len(out) == 1 else tuple(out)


def unravel_index(indices: Any, shape: Sequence[int]) -> tuple[Tensor, ...]:
    idx = _t(indices)
    return tuple(v.to(idx.dtype) for v in torch.unravel_index(idx, tuple(shape)))


def argpartition(x: Any, kth: int, axis: int | None = -1) -> Tensor:
    """Indices that partition ``x`` along ``axis``: the ``kth`` element in its sorted place, the smaller before it
    and the larger after it (int32). The order within each side is unspecified (here, sorted)."""
    x = _t(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    if not -x.shape[axis] <= kth < x.shape[axis]:
        raise ValueError(f"kth(={kth}) out of bounds ({x.shape[axis]})")
    return torch.argsort(x, dim=axis, stable=True).to(torch.int32)


# linear algebra


def outer(x1: Any, x2: Any) -> Tensor:
    a, b = _strong_pair(x1, x2)
    dt = _promote([a, b])
    return torch.outer(a.reshape(-1).to(dt), b.reshape(-1).to(dt))


def inner(x1: Any, x2: Any) -> Tensor:
    a, b = _strong_pair(x1, x2)
    dt = _keras_result(a.dtype, b.dtype)
    compute = _keras_result(dt, floating=True)
    return torch.inner(a.to(compute), b.to(compute)).to(dt)


def vdot(x1: Any, x2: Any) -> Tensor:
    """The dot product of the flattened inputs (the first conjugated)."""
    a, b = _strong_pair(x1, x2)
    dt = _keras_result(a.dtype, b.dtype)
    compute = _keras_result(dt, floating=True)
    return torch.vdot(a.reshape(-1).to(compute), b.reshape(-1).to(compute)).to(dt)


def kron(x1: Any, x2: Any) -> Tensor:
    return torch.kron(*_strong_pair(x1, x2))


def cross(x1: Any, x2: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: int | None = None) -> Tensor:
    """The cross product of 3-vectors along the given axes (``axis`` sets all three)."""
    a, b = _pair(x1, x2)
    if axis is not None:
        axisa = axisb = axisc = axis
    dt = _keras_result(a.dtype, b.dtype)
    a, b = torch.movedim(a.to(dt), axisa, -1), torch.movedim(b.to(dt), axisb, -1)
    if a.shape[-1] != 3 or b.shape[-1] != 3:
        raise ValueError(
            f"incompatible dimensions for cross product (dimension must be 3). Received: x1.shape={tuple(a.shape)}, "
            f"x2.shape={tuple(b.shape)}"
        )
    compute = torch.float32 if dt in (torch.float16, torch.bfloat16) and a.device.type == "cpu" else dt
    out = torch.linalg.cross(a.to(compute), b.to(compute), dim=-1).to(dt)
    return torch.movedim(out, -1, axisc)


def cdist(x: Any, y: Any) -> Tensor:
    """The Euclidean distances between the rows of ``x`` (..., n, d) and of ``y`` (..., m, d): (..., n, m)."""
    a, b = _pair(x, y)
    if a.dim() < 2 or b.dim() < 2:
        raise ValueError("`cdist` inputs must have rank >= 2")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError("Last dimension of inputs to `cdist` must match")
    d = a.unsqueeze(-2) - b.unsqueeze(-3)
    return torch.sqrt(torch.sum(d * d, dim=-1))


def corrcoef(x: Any) -> Tensor:
    """Pearson correlation coefficients of the rows of ``x`` (variables in rows, observations in columns)."""
    x = _t(x)
    return torch.corrcoef(x.to(_float64_for_int64(x.dtype)) if x.dtype in (torch.bool, torch.int64) else x)


def diag(x: Any, k: int = 0) -> Tensor:
    """The ``k``-th diagonal of a matrix, or the matrix with vector ``x`` on its ``k``-th diagonal."""
    return torch.diag(_t(x), diagonal=k)


def diagflat(x: Any, k: int = 0) -> Tensor:
    return torch.diagflat(_t(x), offset=k)


def diagonal(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    return torch.diagonal(_t(x), offset=offset, dim1=axis1, dim2=axis2)


# shapes


def ravel(x: Any) -> Tensor:
    return torch.ravel(_t(x))


def moveaxis(x: Any, source: int | Sequence[int], destination: int | Sequence[int]) -> Tensor:
    return torch.moveaxis(_t(x), source, destination)


def swapaxes(x: Any, axis1: int, axis2: int) -> Tensor:
    return torch.swapaxes(_t(x), axis1, axis2)


def roll(x: Any, shift: int | Sequence[int], axis: Axis = None) -> Tensor:
    """Elements shifted by ``shift`` along ``axis`` (the flattened array for None), wrapping around."""
    return torch.roll(_t(x), shift, dims=_dims(axis) if axis is not None else None)


def rot90(array: Any, k: int = 1, axes: Sequence[int] = (0, 1)) -> Tensor:  # noqa: A002 - Keras' name
    """``array`` rotated by 90 degrees ``k`` times in the plane of ``axes`` (from the first towards the second)."""
    x = _t(array)
    if x.dim() < 2:
        raise ValueError(f"Input array must have at least 2 dimensions. Received: array.ndim={x.dim()}")
    if len(axes) != 2 or axes[0] == axes[1]:
        raise ValueError(f"Invalid axes: {axes}. Axes must be a tuple of two different dimensions.")
    dims = tuple(a % x.dim() if -x.dim() <= a < x.dim() else a for a in axes)
    if not builtins.all(0 <= a < x.dim() for a in dims) or dims[0] == dims[1]:
        raise ValueError(f"Invalid axes {axes} for tensor with {x.dim()} dimensions")
    return torch.rot90(x, k=k, dims=dims)


def fliplr(x: Any) -> Tensor:
    return torch.fliplr(_t(x))


def flipud(x: Any) -> Tensor:
    return torch.flipud(_t(x))


def _joined(xs: Sequence[Any]) -> list[Tensor]:
    ts = [_t(v) for v in xs]
    dt = _promote(ts)
    return [v.to(dt) for v in ts]


def hstack(xs: Sequence[Any]) -> Tensor:
    return torch.hstack(_joined(xs))


def vstack(xs: Sequence[Any]) -> Tensor:
    return torch.vstack(_joined(xs))


def dstack(xs: Sequence[Any]) -> Tensor:
    return torch.dstack(_joined(xs))


def append(x1: Any, x2: Any, axis: int | None = None) -> Tensor:
    """``x2`` appended to ``x1`` along ``axis`` (both flattened for None)."""
    a, b = _joined([x1, x2])
    if axis is None:
        return torch.cat((a.reshape(-1), b.reshape(-1)))
    return torch.cat((a, b), dim=axis)


def _sections(indices_or_sections: Any) -> Any:
    if isinstance(indices_or_sections, numbers.Integral):
        return int(indices_or_sections)
    return [int(i) for i in convert_to_tensor(indices_or_sections).reshape(-1).tolist()]


def array_split(x: Any, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """``n`` nearly equal sections along ``axis`` (the first ones one longer); Keras takes only an int ``n``."""
    if isinstance(indices_or_sections, bool) or not isinstance(indices_or_sections, numbers.Integral):
        raise TypeError(
            f"Argument `indices_or_sections` must be of type `int`. Received: indices_or_sections={indices_or_sections}"
        )
    return list(torch.tensor_split(_t(x), int(indices_or_sections), dim=axis))


def hsplit(x: Any, indices_or_sections: int | Sequence[int]) -> list[Tensor]:
    return list(torch.hsplit(_t(x), _sections(indices_or_sections)))


def vsplit(x: Any, indices_or_sections: int | Sequence[int]) -> list[Tensor]:
    return list(torch.vsplit(_t(x), _sections(indices_or_sections)))


def dsplit(x: Any, indices_or_sections: int | Sequence[int]) -> list[Tensor]:
    return list(torch.dsplit(_t(x), _sections(indices_or_sections)))


def unstack(x: Any, num: int | None = None, axis: int = 0) -> list[Tensor]:
    """The slices of ``x`` along ``axis``."""
    x = _t(x)
    if num is not None and num != x.shape[axis]:
        raise ValueError(f"`num` ({num}) does not match the size of axis {axis} ({x.shape[axis]})")
    return list(torch.unbind(x, dim=axis))


def _pad_widths(pad_width: Any, rank: int) -> list[tuple[int, int]]:
    if isinstance(pad_width, numbers.Integral):
        widths = [(int(pad_width), int(pad_width))]
    else:
        widths = np.asarray(convert_to_numpy(pad_width) if isinstance(pad_width, torch.Tensor) else pad_width)
        widths = [tuple(int(v) for v in np.broadcast_to(w, (2,))) for w in np.atleast_2d(widths)]
    if len(widths) == 1:
        widths = widths * rank
    if len(widths) != rank:
        raise ValueError(
            f"`pad_width` must have the same length as `x.shape`. Received: pad_width={pad_width} "
            f"(of length {len(widths)}) and x.shape={rank} dimensions"
        )
    if builtins.any(w < 0 for pair in widths for w in pair):
        raise ValueError(f"index can't contain negative values. Received: pad_width={pad_width}")
    return widths


def _pad_index(n: int, before: int, after: int, mode: str, device: torch.device) -> Tensor:
    """For each position of the padded axis, the position of the input it copies."""
    i = torch.arange(-before, n + after, device=device)
    if mode == "edge":
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return i % n
    if mode == "reflect":
        if n == 1:
            return torch.zeros_like(i)
        period = 2 * (n - 1)
        i = i % period
        return torch.where(i < n, i, period - i)
    period = 2 * n  # symmetric: the edge repeated
    i = i % period
    return torch.where(i < n, i, period - 1 - i)


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = None) -> Tensor:
    """numpy's pad: ``pad_width`` is ``((before, after), ...)`` per axis, one pair for every axis, or one int;
    ``mode`` one of constant, edge, reflect, symmetric, wrap."""
    x = _t(x)
    if mode not in _PAD_MODES:
        raise ValueError(f"Unsupported padding mode: {mode!r}. Expected one of {_PAD_MODES}")
    if constant_values is not None and mode != "constant":
        raise ValueError(
            f"Argument `constant_values` can only be provided when `mode == 'constant'`. Received: mode={mode}"
        )
    widths = _pad_widths(pad_width, x.dim())
    if mode == "constant":
        flat = [w for pair in reversed(widths) for w in pair]
        return torch.nn.functional.pad(x, flat, value=0 if constant_values is None else constant_values)
    for d, (before, after) in enumerate(widths):
        if before or after:
            if x.shape[d] == 0:
                raise ValueError(f"can't extend empty axis {d} using modes other than 'constant'")
            x = torch.index_select(x, d, _pad_index(x.shape[d], before, after, mode, x.device))
    return x


def _rearrange_groups(side: str) -> list[list[str]]:
    rest = re.sub(r"\(([^()]*)\)|\w+|\s+", "", side)
    if rest:
        raise ValueError(f"Invalid rearrange pattern side {side!r}: only names and (grouped names) are supported")
    found = re.finditer(r"\(([^()]*)\)|\w+", side)
    return [m.group(1).split() if m.group(1) is not None else [m.group(0)] for m in found]


def rearrange(tensor: Any, pattern: str, **axes_lengths: int) -> Tensor:
    """einops' rearrange: ``"b (h w) c -> b h w c"`` splits, merges and reorders axes by name (the sizes of split
    axes from ``axes_lengths``, at most one per group inferred)."""
    x = _t(tensor)
    sides = re.split(r"\s*->\s*", pattern.strip())
    if len(sides) != 2:
        raise ValueError(f"The pattern must have exactly one '->'. Received: pattern={pattern!r}")
    left, right = _rearrange_groups(sides[0]), _rearrange_groups(sides[1])
    if len(left) != x.dim():
        raise ValueError(f"The pattern {sides[0]!r} names {len(left)} axes; the input has {x.dim()}: {tuple(x.shape)}")
    names_left = [a for g in left for a in g]
    names_right = [a for g in right for a in g]
    if len(set(names_left)) != len(names_left) or sorted(names_left) != sorted(names_right):
        raise ValueError(f"Each axis must be named once on both sides of the pattern. Received: pattern={pattern!r}")
    sizes = {k: int(v) for k, v in axes_lengths.items()}
    for group, dim in zip(left, x.shape, strict=True):
        unknown = [a for a in group if a not in sizes]
        known = int(np.prod([sizes[a] for a in group if a in sizes], dtype=np.int64))
        if len(unknown) > 1:
            raise ValueError(f"Could not infer the sizes of {unknown}: give all but one in `axes_lengths`")
        if unknown:
            if known == 0 or dim % known:
                raise ValueError(f"Axis of size {dim} cannot be split into {group} with sizes {axes_lengths}")
            sizes[unknown[0]] = dim // known
        elif known != dim:
            raise ValueError(f"Axis {group} has size {dim}, not {known}")
    x = x.reshape([sizes[a] for a in names_left]).permute([names_left.index(a) for a in names_right])
    return x.reshape([int(np.prod([sizes[a] for a in g], dtype=np.int64)) for g in right])


def nonzero(x: Any) -> Tensor:
    """The indices of the non-zero elements, one row per axis (int32, shape ``(ndim, count)``, as Keras on torch)."""
    return torch.nonzero(_t(x)).T.to(torch.int32)


def view(x: Any, dtype: str | torch.dtype | None = None) -> Tensor:
    """The same bytes read as ``dtype``."""
    return _t(x).view(config.standardize_dtype(dtype))


# indexing, scatter and slices


def get_item(x: Any, key: Any) -> Tensor:
    return _t(x)[key]


def slice(inputs: Any, start_indices: Any, shape: Any) -> Tensor:  # noqa: A001 - Keras' name
    """The block of ``shape`` starting at ``start_indices``."""
    x = _t(inputs)
    starts = [int(s) for s in (start_indices.tolist() if isinstance(start_indices, torch.Tensor) else start_indices)]
    sizes = [int(s) for s in (shape.tolist() if isinstance(shape, torch.Tensor) else shape)]
    for d, (s, n) in enumerate(zip(starts, sizes, strict=True)):
        x = torch.narrow(x, d, s, n)
    return x


def slice_update(inputs: Any, start_indices: Any, updates: Any) -> Tensor:
    """A copy of ``inputs`` with the block at ``start_indices`` replaced by ``updates``."""
    x = _t(inputs)
    u = _t(updates, x)
    starts = [int(s) for s in (start_indices.tolist() if isinstance(start_indices, torch.Tensor) else start_indices)]
    out = torch.clone(x)
    out[tuple(builtins.slice(s, s + n) for s, n in zip(starts, u.shape, strict=True))] = u
    return out


def scatter(indices: Any, values: Any, shape: Sequence[int]) -> Tensor:
    """A zero tensor of ``shape`` with ``values`` added at ``indices`` (N, k): duplicate indices add up."""
    values = _t(values)
    idx = _t(indices).to(torch.int64).to(values.device)
    shape = _shape_arg(shape)
    k = idx.shape[-1]
    idx = idx.reshape(-1, k)
    out = torch.zeros(shape, dtype=values.dtype, device=values.device)
    return out.index_put_(tuple(idx.T), values.reshape(-1, *shape[k:]), accumulate=True)


def scatter_update(inputs: Any, indices: Any, updates: Any, reduction: str | None = None) -> Tensor:
    """A copy of ``inputs`` with ``updates`` written at ``indices`` (N, k), or combined with what is there
    (``reduction``: "add", "max", "min" or "mul")."""
    x = _t(inputs)
    idx = _t(indices).to(torch.int64).to(x.device)
    u = _t(updates, x).to(x.dtype)
    out = torch.clone(x)
    if reduction is None:
        out[tuple(idx.T)] = u
        return out
    if reduction == "add":
        return out.index_put_(tuple(idx.T), u, accumulate=True)
    how = {"max": "amax", "min": "amin", "mul": "prod"}.get(reduction)
    if how is None:
        raise ValueError(f"Unsupported reduction: {reduction}")
    k = idx.shape[-1]
    flat = out.reshape(-1, *x.shape[k:])
    strides = torch.tensor([int(np.prod(x.shape[d + 1 : k])) for d in builtins.range(k)], device=x.device)
    lin = (idx * strides).sum(-1)
    src = u.reshape(-1, *x.shape[k:])
    index = lin.reshape(-1, *[1] * (src.dim() - 1)).expand(src.shape)
    return flat.scatter_reduce(0, index, src, how, include_self=True).reshape(x.shape)


def _segment(data: Any, segment_ids: Any, num_segments: int | None, how: str) -> Tensor:
    data = _t(data)
    ids = _t(segment_ids).to(torch.int64).to(data.device)
    if ids.dim() > 1:
        raise ValueError(
            f"Argument `segment_ids` should be an 1-D vector, got shape: {ids.dim()}. Consider either flatten "
            "input with segment_ids.reshape((-1)) and data.reshape((-1, ) + data.shape[len(segment_ids.shape):]) "
            "or vectorize with vmap."
        )
    if ids.shape[0] != data.shape[0]:
        raise ValueError(
            "Argument `segment_ids` and `data` should have same leading dimension. "
            f"Got {tuple(ids.shape)} v.s. {tuple(data.shape)}."
        )
    n = int(num_segments) if num_segments is not None else (int(ids.max()) + 1 if ids.numel() else 0)
    ids = torch.where((ids >= 0) & (ids < n), ids, n)  # out-of-range ids go to a dropped extra segment
    start = {"amax": float("-inf"), "amin": float("inf"), "prod": 1.0, "sum": 0.0}[how]
    compute = data.dtype if data.dtype.is_floating_point else torch.float32
    out = torch.full((n + 1, *data.shape[1:]), start, dtype=compute, device=data.device)
    index = ids.reshape(-1, *[1] * (data.dim() - 1)).expand(data.shape)
    out = out.scatter_reduce(0, index, data.to(compute), how)
    return out[:-1].to(data.dtype)


def segment_sum(data: Any, segment_ids: Any, num_segments: int | None = None, sorted: bool = False) -> Tensor:  # noqa: A002
    """The sum of ``data``'s rows per segment id (0 for an empty segment; out-of-range ids are dropped)."""
    return _segment(data, segment_ids, num_segments, "sum")


def segment_max(data: Any, segment_ids: Any, num_segments: int | None = None, sorted: bool = False) -> Tensor:  # noqa: A002
    """The maximum of ``data``'s rows per segment id (-inf for an empty float segment)."""
    return _segment(data, segment_ids, num_segments, "amax")


def segment_min(data: Any, segment_ids: Any, num_segments: int | None = None, sorted: bool = False) -> Tensor:  # noqa: A002
    return _segment(data, segment_ids, num_segments, "amin")


def segment_prod(data: Any, segment_ids: Any, num_segments: int | None = None, sorted: bool = False) -> Tensor:  # noqa: A002
    return _segment(data, segment_ids, num_segments, "prod")


def map(f: Any, xs: Any) -> Any:  # noqa: A001 - Keras' name
    """``f`` applied to each slice of ``xs`` (a tensor or a nest of them) along the first axis, the results
    stacked (a nest of results stacked leaf by leaf)."""

    def leaves(nest: Any) -> list[Tensor]:
        if isinstance(nest, dict):
            return [leaf for k in nest for leaf in leaves(nest[k])]
        if isinstance(nest, (list, tuple)):
            return [leaf for v in nest for leaf in leaves(v)]
        return [_t(nest)]

    def index(nest: Any, i: int) -> Any:
        if isinstance(nest, dict):
            return {k: index(v, i) for k, v in nest.items()}
        if isinstance(nest, (list, tuple)):
            return type(nest)(index(v, i) for v in nest)
        return _t(nest)[i]

    def stack_(results: list[Any]) -> Any:
        first = results[0]
        if isinstance(first, dict):
            return {k: stack_([r[k] for r in results]) for k in first}
        if isinstance(first, (list, tuple)):
            return type(first)(stack_([r[j] for r in results]) for j in builtins.range(len(first)))
        return torch.stack([_t(r) for r in results])

    n = leaves(xs)[0].shape[0]
    return stack_([f(index(xs, i)) for i in builtins.range(n)])


def saturate_cast(x: Any, dtype: str | torch.dtype) -> Tensor:
    """``x`` cast to ``dtype``, first clipped to the range ``dtype`` can hold (no wrap-around)."""
    x = _t(x)
    out_dt = config.standardize_dtype(dtype)

    def bounds(dt: torch.dtype) -> tuple[Any, Any]:
        if dt == torch.bool:
            return 0, 1
        info = torch.iinfo(dt) if not dt.is_floating_point else torch.finfo(dt)
        return info.min, info.max

    (in_min, in_max), (out_min, out_max) = bounds(x.dtype), bounds(out_dt)
    lo = torch.tensor(builtins.max(in_min, out_min), device=x.device).to(x.dtype)
    hi = torch.tensor(builtins.min(in_max, out_max), device=x.device).to(x.dtype)
    if x.dtype.is_floating_point:
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        if lo.item() < out_min:
            lo = torch.nextafter(lo, zero)
        if hi.item() > out_max:
            hi = torch.nextafter(hi, zero)
    return torch.clamp(x, lo, hi).to(out_dt)


# ---- more neural-network ops (issue #14) ----------------------------------------------------------------------


def selu(x: Any) -> Tensor:
    return activations.selu(x)


def celu(x: Any, alpha: float = 1.0) -> Tensor:
    return activations.celu(x, alpha)


def glu(x: Any, axis: int = -1) -> Tensor:
    """The first half of ``axis`` times the sigmoid of the second half."""
    return activations.glu(x, axis)


def softsign(x: Any) -> Tensor:
    return activations.softsign(x)


def soft_shrink(x: Any, threshold: float = 0.5) -> Tensor:
    return activations.soft_shrink(x, threshold)


def hard_shrink(x: Any, threshold: float = 0.5) -> Tensor:
    return activations.hard_shrink(x, threshold)


def tanh_shrink(x: Any) -> Tensor:
    return activations.tanh_shrink(x)


def hard_tanh(x: Any) -> Tensor:
    return activations.hard_tanh(x)


def hard_sigmoid(x: Any) -> Tensor:
    """``relu6(x + 3) / 6``."""
    return activations.hard_sigmoid(x)


def hard_silu(x: Any) -> Tensor:
    """``x * hard_sigmoid(x)`` (also ``hard_swish``)."""
    return activations.hard_silu(x)


hard_swish = hard_silu


def log_sigmoid(x: Any) -> Tensor:
    return activations.log_sigmoid(x)


def sparse_plus(x: Any) -> Tensor:
    return activations.sparse_plus(x)


def sparse_sigmoid(x: Any) -> Tensor:
    return activations.sparse_sigmoid(x)


def squareplus(x: Any, b: float = 4) -> Tensor:
    return activations.squareplus(x, b)


def threshold(x: Any, threshold: float, default_value: float) -> Tensor:
    """``x`` where ``x > threshold``, else ``default_value``."""
    return activations.threshold(x, threshold, default_value)


def sparsemax(x: Any, axis: int = -1) -> Tensor:
    """The Euclidean projection of ``x`` onto the probability simplex along ``axis`` (see the listed difference
    ``activations.sparsemax-on-keras-torch``)."""
    return activations.sparsemax(x, axis)


def multi_hot(
    inputs: Any,
    num_classes: int | None = None,
    axis: int = -1,
    dtype: str | torch.dtype | None = None,
    sparse: bool = False,
    **kwargs: Any,
) -> Tensor:
    """One vector per row of integer ``inputs`` (per input for a 1-D one), with 1 at each class the row holds."""
    if num_classes is None and "num_tokens" in kwargs:
        num_classes = kwargs.pop("num_tokens")
    if num_classes is None:
        raise ValueError("Argument `num_classes` must be specified.")
    if sparse:
        raise ValueError("Unsupported value `sparse=True` with torch backend")
    x = _t(inputs)
    hot = one_hot(x.to(torch.int32), num_classes, axis=axis, dtype=dtype)
    return torch.amax(hot, dim=1 if x.dim() > 1 else 0)


def normalize(x: Any, axis: int = -1, order: int = 2, epsilon: float | None = None) -> Tensor:
    """``x`` divided by its ``order``-norm along ``axis`` (at least ``epsilon``, default ``keras.config.epsilon()``)."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"Argument `order` must be an int >= 1. Received: order={order}")
    x = _t(x)
    if x.dim() == 0:
        x = x.reshape(1)
    eps = config.epsilon() if epsilon is None else epsilon
    if order == 2:
        inv = torch.rsqrt(torch.sum(torch.square(_float(x)), dim=axis, keepdim=True))
        return x * torch.minimum(inv, torch.tensor(1.0 / eps, device=inv.device).to(inv.dtype))
    n = torch.linalg.vector_norm(_float(x), ord=order, dim=axis, keepdim=True)
    return x / torch.clamp(n, min=eps)


def batch_normalization(
    x: Any, mean: Any, variance: Any, axis: int, offset: Any = None, scale: Any = None, epsilon: float = 1e-3
) -> Tensor:
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset``, the statistics (1-D) along ``axis``."""
    x = _t(x)
    shape_ = [1] * x.dim()
    m = _t(mean, x)
    shape_[axis] = m.shape[0]
    m, v = m.reshape(shape_), _t(variance, x).reshape(shape_)
    inv = torch.rsqrt(v + epsilon)
    if scale is not None:
        inv = inv * _t(scale, x).reshape(shape_)
    out = (x - m) * inv
    return out if offset is None else out + _t(offset, x).reshape(shape_)


def _axes_list(axis: Axis, rank: int) -> list[int]:
    return sorted(d % rank for d in _dims(axis))


def _contiguous_last(axes: list[int], rank: int) -> bool:
    return axes == list(builtins.range(rank - len(axes), rank))


def layer_normalization(
    x: Any, gamma: Any = None, beta: Any = None, axis: Axis = -1, epsilon: float | None = None, **kwargs: Any
) -> Tensor:
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` over ``axis``, computed in at least float32."""
    if kwargs.pop("rms_scaling", False):
        raise ValueError("`rms_scaling=True` is deprecated in Keras: use `ops.rms_normalization`")
    if kwargs:
        raise TypeError(f"layer_normalization() got unexpected keyword arguments {sorted(kwargs)}")
    x0 = x = _t(x)
    eps = config.epsilon() if epsilon is None else epsilon
    original = x.dtype
    x = x.to(_keras_result(x.dtype, torch.float32))
    axes = _axes_list(axis, x.dim())
    g = None if gamma is None else convert_to_tensor(gamma).to(x.dtype).to(x.device)
    b = None if beta is None else convert_to_tensor(beta).to(x.dtype).to(x.device)
    if _contiguous_last(axes, x.dim()):
        normalized = tuple(x.shape[d] for d in axes)
        g = None if g is None else g.reshape(normalized)
        b = None if b is None else b.reshape(normalized)
        # tritonnn's layer-norm kernels (16-bit inputs normalized in fp32 and cast back, as here)
        return kernels.layer_norm(x0 if x0.is_floating_point() else x, g, b, axes, eps).to(original)
    bshape = [x.shape[d] if d in axes else 1 for d in builtins.range(x.dim())]
    m, v = kernels.moments(x, tuple(axes), keepdims=True)
    inv = torch.rsqrt(v + eps)
    if g is not None:
        inv = inv * g.reshape(bshape)
    out = (x - m) * inv
    if b is not None:
        out = out + b.reshape(bshape)
    return out.to(original)


def rms_normalization(x: Any, scale: Any = None, axis: Axis = -1, epsilon: float | None = None) -> Tensor:
    """``x / sqrt(mean(x**2) + epsilon) * scale`` over ``axis``, computed in at least float32."""
    x0 = x = _t(x)
    eps = config.epsilon() if epsilon is None else epsilon
    original = x.dtype
    x = x.to(_keras_result(x.dtype, torch.float32))
    s = None if scale is None else convert_to_tensor(scale).to(x.dtype).to(x.device)
    if x.dim() == 0:
        x = x.reshape(1)
    axes = _axes_list(axis, x.dim())
    normalized = tuple(x.shape[d] for d in axes)
    if _contiguous_last(axes, x.dim()) and (s is None or tuple(s.shape) == normalized) and x0.dim() > 0:
        # tritonnn's RMS-norm kernels (16-bit inputs normalized in fp32 and cast back, as here)
        return kernels.rms_norm(x0 if x0.is_floating_point() else x, s, axes, eps).to(original)
    out = x * torch.rsqrt(torch.mean(x * x, dim=axes, keepdim=True) + eps)
    if s is not None:
        out = out * s
    return out.to(original)


def _clip_probs(p: Tensor) -> Tensor:
    eps = config.epsilon()
    return torch.clamp(p, eps, 1.0 - eps)


def binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> Tensor:
    """Element-wise binary cross-entropy of probabilities (clipped to [eps, 1 - eps]) or logits."""
    output = _float(_t(output))
    target = _t(target, output).to(output.dtype)
    if target.shape != output.shape:
        raise ValueError(
            "Arguments `target` and `output` must have the same shape. "
            f"Received: target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}"
        )
    if from_logits:
        return torch.nn.functional.binary_cross_entropy_with_logits(output, target, reduction="none")
    return torch.nn.functional.binary_cross_entropy(_clip_probs(output), target, reduction="none")


def categorical_crossentropy(target: Any, output: Any, from_logits: bool = False, axis: int = -1) -> Tensor:
    """``-sum(target * log(p))`` along ``axis``: ``p`` the softmax of logits, or the probabilities rescaled to sum
    to 1 and clipped to [eps, 1 - eps]."""
    output = _float(_t(output))
    target = _t(target, output).to(output.dtype)
    if target.shape != output.shape:
        raise ValueError(
            "Arguments `target` and `output` must have the same shape. "
            f"Received: target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}"
        )
    if output.dim() < 1:
        raise ValueError(
            "Arguments `target` and `output` must be at least rank 1. "
            f"Received: target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}"
        )
    if from_logits:
        log_prob = torch.log_softmax(output, dim=axis)
    else:
        log_prob = torch.log(_clip_probs(output / torch.sum(output, dim=axis, keepdim=True)))
    return -torch.sum(target * log_prob, dim=axis)


def sparse_categorical_crossentropy(target: Any, output: Any, from_logits: bool = False, axis: int = -1) -> Tensor:
    """The categorical cross-entropy of integer class ``target`` (one rank fewer than ``output``, or a size-1
    ``axis``)."""
    output = _float(_t(output))
    target = _t(target, output).to(torch.int64).to(output.device)
    if target.dim() == output.dim() and target.shape[axis] == 1:
        target = target.squeeze(axis)
    if output.dim() < 1:
        raise ValueError(f"Argument `output` must be at least rank 1. Received: output.shape={tuple(output.shape)}")
    rest = list(output.shape)
    del rest[axis]
    if list(target.shape) != rest:
        raise ValueError(
            "Arguments `target` and `output` must have the same shape up until the last dimension: "
            f"target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}"
        )
    if from_logits:
        log_prob = torch.log_softmax(output, dim=axis)
    else:
        log_prob = torch.log(_clip_probs(output / torch.sum(output, dim=axis, keepdim=True)))
    log_prob = torch.movedim(log_prob, axis, -1)
    return -torch.gather(log_prob, -1, target.unsqueeze(-1)).squeeze(-1)


# ---- symbolic tensors: an op called on a KerasTensor (keras.Input) records a node of the Functional graph ---------


def _symbolic_aware(name: str, fn: Any) -> Any:
    """``fn`` that hands a call holding a symbolic tensor to the Functional API (``tritonnn.layers.op_node``)."""

    plain = (torch.Tensor, int, float, str, type(None))  # never symbolic

    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        for a in args:  # the common case first: tensors and numbers only, checked inline
            if not isinstance(a, plain):
                break
        else:
            if not kwargs:
                return fn(*args)
        if _op_dispatch.has_symbolic(args, kwargs):
            return _op_dispatch.dispatch(name, fn, args, kwargs)
        return fn(*args, **kwargs)

    return op


def _wrap_ops() -> dict[str, str]:
    """Make every op of this module take symbolic tensors; {global name: the op's own name} (an alias, such as
    ``absolute = abs``, keeps the name of the function it is)."""
    wrapped: dict[int, Any] = {}
    names: dict[str, str] = {}
    module = globals()
    original = dict(module)
    for n, v in original.items():
        if n.startswith("_") or not isinstance(v, types.FunctionType) or v.__module__ != __name__:
            continue
        own = v.__name__ if original.get(v.__name__) is v else n
        names[n] = own
        if id(v) not in wrapped:
            wrapped[id(v)] = _symbolic_aware(own, v)
        module[n] = wrapped[id(v)]
    return names


_op_dispatch.OP_NAMES.update(_wrap_ops())  # what tritonnn.layers.op_node names each op's nodes by


# ---- Keras' sub-namespaces: keras.ops.nn.relu, keras.ops.numpy.mean ------------------------------------------

_NN = (
    "batch_normalization", "binary_crossentropy", "categorical_crossentropy", "celu", "elu", "gelu", "glu",
    "hard_shrink", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "layer_normalization", "leaky_relu",
    "log_sigmoid", "log_softmax", "moments", "multi_hot", "normalize", "one_hot", "relu", "relu6",
    "rms_normalization", "selu", "sigmoid", "silu", "soft_shrink", "softmax", "softplus", "softsign",
    "sparse_categorical_crossentropy", "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus", "swish",
    "tanh_shrink", "threshold",
)  # fmt: skip
# keras.ops' core and math functions, which keras.ops.numpy does not hold.
_NOT_NUMPY = frozenset(
    (
        "cast", "cdist", "convert_to_numpy", "convert_to_tensor", "dtype", "erf", "erfc", "erfinv", "in_top_k",
        "is_tensor", "logsumexp", "map", "norm", "rsqrt", "saturate_cast", "scatter", "scatter_update",
        "segment_max", "segment_min", "segment_prod", "segment_sum", "shape", "slice", "slice_update",
        "stop_gradient", "top_k", "unstack", "rearrange",
    )
)  # fmt: skip


def _namespace(name: str, doc: str, names: Sequence[str]) -> types.ModuleType:
    """A module of some of this module's functions, importable as ``tritonnn.ops.<name>`` (as ``keras.ops.nn``)."""
    module = types.ModuleType(f"{__name__}.{name}", doc)
    for n in names:
        setattr(module, n, globals()[n])
    module.__all__ = sorted(names)
    sys.modules[module.__name__] = module
    return module


nn = _namespace("nn", "Keras' ``keras.ops.nn``: the neural-network ops of :mod:`tritonnn.ops`.", _NN)
numpy = _namespace(
    "numpy",
    "Keras' ``keras.ops.numpy``: the numpy-style ops of :mod:`tritonnn.ops`.",
    [
        n
        for n, v in list(globals().items())
        if not n.startswith("_")
        and callable(v)
        and getattr(v, "__module__", None) == __name__
        and n not in _NN
        and n not in _NOT_NUMPY
    ],
)
