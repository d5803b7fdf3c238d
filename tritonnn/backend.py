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
__all__ += ["result_type", "standardize_dtype"]


# ---- result_type: Keras' (JAX's) type promotion -----------------------------------------------------------------

# The promotion lattice Keras uses (JAX's): each dtype to those directly above it. "int" and "float" are the weak
# types of Python's int and float, which take the other operand's width.
_ABOVE_NEXT: dict[str, tuple[str, ...]] = {
    "bool": ("int",),
    "int": ("uint8", "int8", "complex64"),
    "uint8": ("int16", "uint16"),
    "uint16": ("int32", "uint32"),
    "uint32": ("int64", "uint64"),
    "uint64": ("float",),
    "int8": ("int16",),
    "int16": ("int32",),
    "int32": ("int64",),
    "int64": ("float",),
    "float": ("bfloat16", "float16"),
    "bfloat16": ("float32",),
    "float16": ("float32",),
    "float32": ("float64", "complex64"),
    "float64": ("complex128",),
    "complex64": ("complex128",),
    "complex128": (),
}


def _at_or_above(dtype: str) -> frozenset[str]:
    seen, todo = {dtype}, [dtype]
    while todo:
        for up in _ABOVE_NEXT[todo.pop()]:
            if up not in seen:
                seen.add(up)
                todo.append(up)
    return frozenset(seen)


_AT_OR_ABOVE = {d: _at_or_above(d) for d in _ABOVE_NEXT}
# Keras on torch keeps results in 32 bits (JAX's default): a 64-bit result is its 32-bit kind
_TO_32 = {"int64": "int32", "uint64": "uint32", "float64": "float32", "complex128": "complex64"}


def _least_upper_bound(nodes: set[str]) -> str:
    unknown = [n for n in nodes if n not in _AT_OR_ABOVE]
    if unknown:
        raise ValueError(f"dtype={unknown[0]!r} is not a valid dtype for Keras type promotion.")
    common = frozenset.intersection(*(_AT_OR_ABOVE[n] for n in nodes))
    least = (common & nodes) or {c for c in common if common <= _AT_OR_ABOVE[c]}
    if len(least) != 1:
        raise ValueError(
            f"Input dtypes {tuple(sorted(nodes))} have no available implicit dtype promotion path. Try explicitly "
            "casting inputs to the desired output type."
        )
    return next(iter(least))


def _weak_kind(dtype: str) -> str:
    """The weak type a Python int's or float's dtype stands for."""
    if dtype == "bool":
        return dtype
    for kind in ("float", "int", "complex"):
        if kind in dtype:
            return kind
    raise ValueError(f"Invalid value for argument `dtype`. Received: dtype={dtype}")


def result_type(*dtypes: Any) -> str:
    """The dtype Keras' type promotion gives ``dtypes`` (``keras.backend.result_type``): JAX's lattice, Python's
    ``int`` and ``float`` weak (they take the other operand's kind and width, floatx's width alone), a 64-bit result
    made 32-bit as on Keras' torch backend, floatx for no dtypes (and for None).

    >>> result_type("int32", "float32"), result_type("int8", int), result_type("float16", float)
    ('float32', 'int8', 'float16')
    """
    if not dtypes:
        return floatx()
    if any(d in ("float8_e4m3fn", "float8_e5m2") for d in dtypes if isinstance(d, str)):
        raise ValueError(
            f"There is no implicit conversions from float8 dtypes to others. You must cast it internally. "
            f"Received: {dtypes}"
        )
    names = [standardize_dtype(floatx() if d is None else "int32" if d == "int" else d) for d in dtypes]
    weak = [d is int or d is float for d in dtypes]
    if len(names) == 1:
        out, out_weak = names[0], weak[0]
    elif len(set(names)) == 1 and not all(weak):
        out, out_weak = names[0], False
    elif all(weak):
        out, out_weak = _least_upper_bound(set(names)), True
    else:
        out = _least_upper_bound({_weak_kind(n) if w else n for n, w in zip(names, weak, strict=True)})
        out_weak = out in ("int", "float")
    if out_weak and out != "bool":
        bits = floatx()[-2:]
        kind = "f" if out == "bfloat16" else out[0]
        out = (
            "bool" if kind == "b" else f"int{bits}" if kind == "i" else f"uint{bits}" if kind == "u" else f"float{bits}"
        )
    return _TO_32.get(out, out)
