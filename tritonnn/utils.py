"""Utilities: ``to_categorical``, ``set_random_seed``, ``PyDataset``, ``Progbar``, ``get_source_inputs``,
``split_dataset``, and the model summary table."""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import torch
from torch.utils import data as torch_data

from . import config, ops
from .backend import clear_session, is_keras_tensor, standardize_dtype
from .callbacks.progbar_logger import Progbar
from .config import disable_interactive_logging, enable_interactive_logging, is_interactive_logging_enabled
from .config_dict import Config
from .file_utils import get_file
from .layers.symbolic import KerasTensor
from .plotting import model_to_dot, plot_history, plot_model
from .random import reset_global_seed_generator
from .saving import (
    CustomObjectScope,
    custom_object_scope,
    deserialize_keras_object,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    serialize_keras_object,
)
from .trainers.data import pack_x_y_sample_weight, unpack_x_y_sample_weight
from .trainers.py_dataset import PyDataset, Sequence

__all__ = [
    "Config",
    "CustomObjectScope",
    "Progbar",
    "PyDataset",
    "Sequence",
    "clear_session",
    "custom_object_scope",
    "deserialize_keras_object",
    "get_file",
    "disable_interactive_logging",
    "enable_interactive_logging",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "get_source_inputs",
    "is_interactive_logging_enabled",
    "is_keras_tensor",
    "model_to_dot",
    "normalize",
    "pack_x_y_sample_weight",
    "plot_history",
    "plot_model",
    "register_keras_serializable",
    "serialize_keras_object",
    "set_random_seed",
    "split_dataset",
    "standardize_dtype",
    "summary_text",
    "to_categorical",
    "unpack_x_y_sample_weight",
]


def set_random_seed(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators, and start ``tritonnn.random``'s global ``SeedGenerator`` over
    (Keras' ``keras.utils.set_random_seed``)."""
    if not isinstance(seed, int):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed!r}")
    reset_global_seed_generator()
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


def _format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def _optimizer_variables(optimizer: Any) -> tuple[int, int]:
    """The count and bytes of what Keras calls an optimizer's variables (``optimizer.variables`` in Keras).

    Keras makes ``iterations`` (int32), the learning rate (a float32 variable, unless it is a schedule) and one
    float32 slot per trainable weight element per state (SGD's momentums, Adam's momentums and velocities...),
    plus a rule's own scalar variables (Nadam's ``u_product``: ``Optimizer._scalar_variables``); tritonnn keeps
    the states in padded flat buffers, so they are counted from the parameters they shadow. A
    ``LossScaleOptimizer`` adds its own four scalars (iterations, learning rate, step counter, dynamic scale).
    """
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        count, size = _optimizer_variables(inner)
        return count + 4, size + 16
    per_state = sum(p.numel() for p in optimizer.params)
    lr_is_variable = not isinstance(optimizer.get_config().get("learning_rate"), dict)  # a schedule serializes
    count = 1 + int(lr_is_variable) + per_state * len(optimizer.variables) + optimizer._scalar_variables
    return count, 4 * count


def summary_text(model: Any, line_length: int | None = None) -> str:
    """Keras 3's summary table of a model, drawn with rich.

    As in Keras, a model not built yet lists its layers with ``?`` shapes and ``0 (unbuilt)`` parameters, and once
    the optimizer is built (the first training step) its variables are counted in "Optimizer params" and in the
    total.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.HEAVY_HEAD, show_lines=False)
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    for layer in model.layers:
        shape = getattr(layer, "_output_shape", None) if layer.built else None
        shape_text = "?" if shape is None else str(tuple(shape)).replace(",)", ")")
        params = f"{sum(p.numel() for p in layer.weights):,}" if layer.built else "0 (unbuilt)"
        table.add_row(f"{layer.name} ({type(layer).__name__})", shape_text, params)
    weights = model.weights
    trainable_weights = [p for p in weights if p.requires_grad]
    frozen = [p for p in weights if not p.requires_grad]
    size = lambda ps: sum(p.numel() * p.element_size() for p in ps)  # noqa: E731
    trainable, non_trainable = sum(p.numel() for p in trainable_weights), sum(p.numel() for p in frozen)
    optimizer = getattr(model, "optimizer", None) if getattr(model, "compiled", False) else None
    opt_count, opt_size = _optimizer_variables(optimizer) if optimizer is not None and optimizer.built else (0, 0)
    buf = io.StringIO()
    console = Console(file=buf, width=line_length or 100, force_terminal=False, color_system=None)
    console.print(f'Model: "{model.name}"')
    console.print(table)
    total, total_size = trainable + non_trainable + opt_count, size(weights) + opt_size
    console.print(f" Total params: {total:,} ({_format_bytes(total_size)})")
    console.print(f" Trainable params: {trainable:,} ({_format_bytes(size(trainable_weights))})")
    console.print(f" Non-trainable params: {non_trainable:,} ({_format_bytes(size(frozen))})")
    if optimizer is not None and optimizer.built:
        console.print(f" Optimizer params: {opt_count:,} ({_format_bytes(opt_size)})")
    chain = getattr(model, "_fused_mlp_layers", None)
    if callable(chain) and model.built and chain() is not None:  # which path fit() takes (layers/fusion.py)
        fused, why = model.fused_mlp_path(training=True)
        console.print(f" Training path: {'fused MLP' if fused else 'per-layer'} ({why})")
    return buf.getvalue().rstrip("\n")


def get_source_inputs(tensor: Any) -> Any:
    """The input tensors (``keras.Input``'s) that ``tensor`` is computed from, in the order a depth-first walk of
    its graph meets them, each once: a list (one element for an input itself). Anything but a symbolic tensor is
    returned as it is, as in Keras."""
    if not isinstance(tensor, KerasTensor):
        return tensor
    node = tensor.node
    if node is None:
        return [tensor]
    if not node.parents:  # an Input's node
        return node.output_tensors
    found: list[Any] = []
    for parent in node.parents:
        for source in get_source_inputs(parent):
            if all(source is not t for t in found):
                found.append(source)
    return found


def split_dataset(
    dataset: Any,
    left_size: int | float | None = None,
    right_size: int | float | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    preferred_backend: str | None = None,
) -> tuple[torch_data.Subset, torch_data.Subset]:
    """Split a dataset in two (e.g. train / test), as Keras does on its torch backend: two
    ``torch.utils.data.Subset`` of the dataset (of a ``TensorDataset`` of an array, or of a list or tuple of arrays
    with the same length, whose items are then tuples of tensors).

    Args:
        dataset: a ``torch.utils.data.Dataset``, an array, or a list or tuple of arrays with the same length.
        left_size: an int, the number of samples of the left part, or a float in ``(0, 1)``, its fraction (rounded);
            None: the complement of ``right_size``.
        right_size: the same for the right part; None: the complement of ``left_size``. The two must cover the
            dataset exactly (Keras' torch path refuses a remainder too).
        shuffle: split a random permutation of the samples (``torch.randperm``, ``seed``'s ``torch.Generator``:
            the same split as Keras' for the same seed); without it, the left part is the first samples, in order.
        seed: the shuffle's seed (None: a fresh one).
        preferred_backend: accepted; only ``"torch"``'s datasets are made (Keras makes ``tf.data`` ones for
            ``"tensorflow"``).
    """
    data = torch_data
    if isinstance(dataset, data.Dataset):
        base = dataset
    elif isinstance(dataset, (np.ndarray, torch.Tensor)):
        base = data.TensorDataset(torch.as_tensor(dataset))
    elif isinstance(dataset, (list, tuple)):
        base = data.TensorDataset(*(torch.as_tensor(np.asarray(a)) for a in dataset))
    else:
        raise TypeError(
            "The `dataset` argument must be a `torch.utils.data.Dataset` object, or a list/tuple of arrays. "
            f"Received: dataset={dataset} of type {type(dataset)}"
        )
    if left_size is None and right_size is None:
        raise ValueError(
            "At least one of the `left_size` or `right_size` must be specified. "
            "Received: left_size=None and right_size=None"
        )
    total = len(base)
    left, right = _split_sizes(left_size, right_size, total)
    if left + right != total:
        raise ValueError(
            f"The sum of `left_size` and `right_size` must be the length of the dataset: "
            f"left_size + right_size = {left + right}, length = {total}"
        )
    if shuffle:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        order = torch.randperm(total, generator=generator).tolist()
    else:
        order = list(range(total))
    return data.Subset(base, order[:left]), data.Subset(base, order[left:])


def _split_sizes(left_size: Any, right_size: Any, total: int) -> tuple[int, int]:
    """Keras' checks and rounding of split_dataset's sizes: ints are counts, floats fractions."""
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if size is not None and type(size) not in (int, float):
            raise TypeError(
                f"Invalid `{name}` Type. Expected: int or float or None, Received: type({name})={type(size)}."
            )
    if left_size == 0 and right_size == 0:
        raise ValueError(
            "Both `left_size` and `right_size` are zero. At least one of the split sizes must be non-zero."
        )
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if (type(size) is int and not 0 < size < total) or (type(size) is float and not 0 < size < 1):
            raise ValueError(
                f"`{name}` should be either a positive integer smaller than {total}, or a float within the range "
                f"`[0, 1]`. Received: {name}={size}"
            )
    if type(left_size) is float and type(right_size) is float and left_size + right_size > 1:
        raise ValueError(
            "The sum of `left_size` and `right_size` is greater than 1. It must be less than or equal to 1."
        )
    left = round(left_size * total) if type(left_size) is float else left_size
    right = round(right_size * total) if type(right_size) is float else right_size
    left = total - right if left is None else left
    right = total - left if right is None else right
    if left + right > total:
        raise ValueError(
            f"The sum of `left_size` and `right_size` should be smaller than the {total}. "
            f"Received: left_size + right_size = {left + right} and total_length = {total}"
        )
    for side, size in (("left", left), ("right", right)):
        if size == 0:
            raise ValueError(
                f"With `dataset` of length={total}, `left_size`={left_size} and `right_size`={right_size}. "
                f"Resulting {side} side dataset split will be empty. Adjust any of the aforementioned parameters"
            )
    return int(left), int(right)
