"""``keras.backend``: the session, dtype and settings helpers an MLP script calls (``clear_session``, ``floatx``,
``epsilon``, ``standardize_dtype``...). tritonnn has one backend, torch, so ``backend()`` is ``"torch"``."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import torch

from .config import backend, epsilon, floatx, image_data_format, set_epsilon, set_floatx, set_image_data_format
from .layers.layer import clear_session as _reset_names
from .layers.layer import get_uid
from .layers.symbolic import KerasTensor

# Keras' dtype names (``keras.backend.standardize_dtype`` accepts these, and Python's and numpy's types).
_DTYPES = frozenset(
    {"bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"}
    | {"bfloat16", "float16", "float32", "float64", "complex64", "complex128", "float8_e4m3fn", "float8_e5m2"}
)
_PYTHON_TYPES = {bool: "bool", int: "int32", float: "float32", complex: "complex64"}  # Keras' mapping


def clear_session(free_memory: bool = True) -> None:
    """Reset the global state: automatic layer names start again at ``dense``, ``dense_1``... (and ``get_uid``
    counts from 1); with ``free_memory`` Python's garbage collector runs, as in Keras."""
    _reset_names()
    if free_memory:
        gc.collect()


def standardize_dtype(dtype: Any) -> str:
    """Keras' dtype name (``"float32"``) for a name, a torch or numpy dtype, or a Python type; None is floatx."""
    if dtype is None:
        return floatx()
    if isinstance(dtype, type) and dtype in _PYTHON_TYPES:
        return _PYTHON_TYPES[dtype]
    if isinstance(dtype, torch.dtype):
        name = str(dtype).split(".", 1)[1]
    elif isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = getattr(dtype, "name", None) or str(dtype)
    if name not in _DTYPES:
        raise ValueError(f"Invalid dtype: {dtype!r}")
    return name


def is_float_dtype(dtype: Any) -> bool:
    name = standardize_dtype(dtype)
    return name.startswith("float") or name.startswith("bfloat")


def is_int_dtype(dtype: Any) -> bool:
    name = standardize_dtype(dtype)
    return name.startswith("int") or name.startswith("uint")


def is_keras_tensor(x: Any) -> bool:
    """Whether ``x`` is a symbolic tensor (what ``keras.Input`` returns and layers return on one)."""
    return isinstance(x, KerasTensor)


__all__ = ["backend", "clear_session", "epsilon", "floatx", "get_uid", "image_data_format"]
__all__ += ["is_float_dtype", "is_int_dtype", "is_keras_tensor", "set_epsilon", "set_floatx", "set_image_data_format"]
__all__ += ["standardize_dtype"]
