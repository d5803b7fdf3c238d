"""Conversion of array-likes to torch tensors with Keras' dtype rules: ``convert_to_tensor`` (``keras.ops``'), in a
module of its own so that both ``tritonnn.ops`` and ``tritonnn.activations`` (which ``ops`` builds on) can use it."""

from __future__ import annotations

import builtins
import numbers
from typing import Any

import numpy as np
import torch

from . import config


def py_dtype(x: Any) -> torch.dtype | None:
    """Keras' default dtype for a Python value (or nested list of them): bool, int32 or floatx."""
    if isinstance(x, bool):
        return torch.bool
    if isinstance(x, numbers.Integral):
        return torch.int32
    if isinstance(x, numbers.Real):
        return config.standardize_dtype(None)
    if isinstance(x, (list, tuple)) and x:
        kinds = {py_dtype(v) for v in x}
        if kinds <= {torch.bool}:
            return torch.bool
        if builtins.any(k is not None and k.is_floating_point for k in kinds):
            return config.standardize_dtype(None)
        if kinds <= {torch.int32, torch.bool}:
            return torch.int32
    return None


def convert_to_tensor(
    x: Any, dtype: str | torch.dtype | None = None, sparse: bool | None = None, ragged: bool | None = None
) -> torch.Tensor:
    """A torch tensor from a tensor, numpy array, Python scalar or nested list (Keras' dtype rules)."""
    if sparse:
        raise ValueError("`sparse=True` is not supported with the torch backend")
    if ragged:
        raise ValueError("`ragged=True` is not supported with the torch backend")
    target = None if dtype is None else config.standardize_dtype(dtype)
    if isinstance(x, torch.Tensor):
        return x if target is None or x.dtype == target else x.to(target)
    if isinstance(x, (np.ndarray, np.generic)):
        # (ascontiguousarray makes a 0-d array or a numpy scalar 1-d: the shape is put back)
        t = torch.from_numpy(np.ascontiguousarray(x).reshape(np.shape(x))).to(config.default_device())
        return t if target is None else t.to(target)
    if isinstance(x, (list, tuple)) and builtins.any(isinstance(v, torch.Tensor) for v in x):
        return torch.stack([convert_to_tensor(v, dtype) for v in x])
    return torch.as_tensor(x, dtype=target or py_dtype(x), device=config.default_device())
