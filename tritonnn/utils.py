"""Utilities: ``to_categorical``, ``set_random_seed``, and the model summary table."""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import torch

from . import config, ops
from .backend import clear_session, is_keras_tensor, standardize_dtype
from .plotting import plot_history, plot_model
from .saving import get_custom_objects, get_registered_name, register_keras_serializable

__all__ = [
    "clear_session",
    "get_custom_objects",
    "get_registered_name",
    "is_keras_tensor",
    "normalize",
    "pack_x_y_sample_weight",
    "plot_history",
    "plot_model",
    "register_keras_serializable",
    "set_random_seed",
    "standardize_dtype",
    "summary_text",
    "to_categorical",
    "unpack_x_y_sample_weight",
]


def set_random_seed(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (Keras' ``keras.utils.set_random_seed``)."""
    if not isinstance(seed, int):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray:
    """One-hot encode integer class labels: shape ``(..., num_classes)``, float32 (a trailing 1 is dropped)."""
    x = np.asarray(x)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    if x.size and (x.min() < 0 or (not np.issubdtype(x.dtype, np.integer) and not np.all(x == np.floor(x)))):
        raise ValueError("to_categorical expects non-negative integer class labels")
    x = x.astype("int64")
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    if x.size and x.max() >= num_classes:
        raise ValueError(f"to_categorical: label {int(x.max())} is out of range for num_classes={num_classes}")
    out = np.zeros((*x.shape, num_classes), dtype="float32")
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out


def normalize(x: Any, axis: int = -1, order: int = 2) -> Any:
    """``x`` divided by its ``order``-norm along ``axis`` (Keras' ``keras.utils.normalize``): a numpy array gives a
    numpy array (a zero norm is taken as 1), a tensor a tensor (``x / max(norm, epsilon)``)."""
    if isinstance(x, np.ndarray):
        norm = np.atleast_1d(np.linalg.norm(x, order, axis))
        norm[norm == 0] = 1
        return x / np.expand_dims(norm, axis or -1)
    t = ops.convert_to_tensor(x)
    if t.dim() == 0:
        t = t.reshape(1)
    norm = torch.linalg.vector_norm(t, ord=order, dim=axis, keepdim=True)
    return t / torch.clamp(norm, min=config.epsilon())


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> tuple[Any, ...]:
    """``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, dropping trailing Nones, as Keras packs a batch (a tuple
    or list ``x`` alone is wrapped so that it is not taken for ``(x, y)``)."""
    if y is None:
        return x if not isinstance(x, (tuple, list)) else (x,)
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` from a batch as ``fit`` receives it (``x``, ``(x,)``, ``(x, y)`` or
    ``(x, y, sample_weight)``); the missing parts are None. A longer tuple is an error naming its length."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return (data, None, None)
    if len(data) == 1:
        return (data[0], None, None)
    if len(data) == 2:
        return (data[0], data[1], None)
    if len(data) == 3:
        return (data[0], data[1], data[2])
    raise ValueError(
        "Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, found: " + str(data)
    )


def _format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def summary_text(model: Any, line_length: int | None = None) -> str:
    """Keras' summary table of a built model, drawn with rich."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if not model.built:
        raise ValueError(
            "This model has not yet been built. Build the model first by calling `build()` or by calling the model "
            "on a batch of data."
        )
    table = Table(box=box.HEAVY_HEAD, show_lines=False)
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    for layer in model.layers:
        shape = getattr(layer, "_output_shape", None)
        shape_text = "?" if shape is None else str(tuple(shape)).replace(",)", ")")
        table.add_row(
            f"{layer.name} ({type(layer).__name__})", shape_text, f"{sum(p.numel() for p in layer.weights):,}"
        )
    weights = model.weights
    total = sum(p.numel() for p in weights)
    trainable = sum(p.numel() for p in weights if p.requires_grad)
    size = lambda ps: sum(p.numel() * p.element_size() for p in ps)  # noqa: E731
    buf = io.StringIO()
    console = Console(file=buf, width=line_length or 100, force_terminal=False, color_system=None)
    console.print(f'Model: "{model.name}"')
    console.print(table)
    console.print(f" Total params: {total:,} ({_format_bytes(size(weights))})")
    frozen = [p for p in weights if not p.requires_grad]
    console.print(f" Trainable params: {trainable:,} ({_format_bytes(size([p for p in weights if p.requires_grad]))})")
    console.print(f" Non-trainable params: {total - trainable:,} ({_format_bytes(size(frozen))})")
    return buf.getvalue().rstrip("\n")
