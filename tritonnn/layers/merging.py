"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot, and their functional forms.

Each takes a list of tensors. ``compute_output_shape`` takes the list of their shapes (batch dimension first,
``None`` where unknown) and raises Keras' errors for shapes that cannot merge, so the Functional API can check a
graph of symbolic shapes before any data flows.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import config, ops
from .layer import Layer

Shape = tuple[int | None, ...]


def _is_shape_list(input_shape: Any) -> bool:
    return isinstance(input_shape, (list, tuple)) and all(isinstance(s, (list, tuple)) for s in input_shape)


def elementwise_output_shape(shape1: Shape | None, shape2: Shape | None) -> Shape | None:
    """The broadcast of two shapes (without batch): ``None`` matches anything, 1 stretches, else sizes must match."""
    if shape1 is None or shape2 is None:
        return None
    if len(shape1) < len(shape2):
        return elementwise_output_shape(shape2, shape1)
    if not shape2:
        return tuple(shape1)
    out = list(shape1[: -len(shape2)])
    for i, j in zip(shape1[-len(shape2) :], shape2, strict=True):
        if i is None or j is None:
            out.append(None)
        elif i == 1:
            out.append(j)
        elif j == 1:
            out.append(i)
        elif i != j:
            raise ValueError(f"Inputs have incompatible shapes. Received shapes {tuple(shape1)} and {tuple(shape2)}")
        else:
            out.append(i)
    return tuple(out)


class Merge(Layer):
    """Base of the element-wise merge layers: checks the list of inputs, broadcasts shapes, folds ``_merge``."""

    _min_inputs = 1

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)

    def _check_shapes(self, input_shape: Any) -> list[Shape]:
        if not _is_shape_list(input_shape) or isinstance(input_shape, tuple) and not input_shape:
            raise ValueError(
                f"A merge layer should be called on a list of inputs. Received: input_shape={input_shape} "
                "(not a list of shapes)"
            )
        if len(input_shape) < self._min_inputs:
            raise ValueError(
                f"A merge layer should be called on a list of at least {self._min_inputs} input. Got "
                f"{len(input_shape)} inputs. Full input_shape received: {input_shape}"
            )
        shapes = [tuple(s) for s in input_shape]
        batch_sizes = {s[0] for s in shapes if s} - {None}
        if len(batch_sizes) > 1:
            raise ValueError(f"Cannot merge tensors with different batch sizes. Got tensors with shapes {shapes}")
        return shapes

    def build(self, input_shape: Any) -> None:
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = self._check_shapes(input_shape)
        out: Shape | None = shapes[0][1:]
        for s in shapes[1:]:
            out = elementwise_output_shape(out, s[1:])
        batch_sizes = {s[0] for s in shapes if s} - {None}
        batch = next(iter(batch_sizes)) if batch_sizes else None
        return None if out is None else (batch, *out)

    def _merge(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def call(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"A merge layer should be called on a list of inputs. Received: inputs={inputs}")
        self.compute_output_shape([(None, *x.shape[1:]) for x in inputs])
        out = inputs[0]
        for x in inputs[1:]:
            out = self._merge(out, x)
        return out


class Add(Merge):
    """Adds a list of inputs (all of the same shape, or broadcastable), returning one tensor of that shape.

    Example: ``added = tritonnn.layers.Add()([x1, x2])``.
    """

    def _merge(self, a, b):
        return ops.add(a, b)


class Subtract(Merge):
    """Subtracts two inputs: ``inputs[0] - inputs[1]``, of the same (or broadcastable) shape."""

    _min_inputs = 2

    def _check_shapes(self, input_shape: Any) -> list[Shape]:
        shapes = super()._check_shapes(input_shape)
        if len(shapes) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received: input_shape={shapes}")
        return shapes

    def _merge(self, a, b):
        return ops.subtract(a, b)


class Multiply(Merge):
    """Multiplies a list of inputs element-wise."""

    def _merge(self, a, b):
        return ops.multiply(a, b)


class Maximum(Merge):
    """The element-wise maximum of a list of inputs."""

    def _merge(self, a, b):
        return ops.maximum(a, b)


class Minimum(Merge):
    """The element-wise minimum of a list of inputs."""

    def _merge(self, a, b):
        return ops.minimum(a, b)


class Average(Merge):
    """The element-wise mean of a list of inputs."""

    def call(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        total = super().call(inputs)
        return ops.divide(total, len(inputs))

    def _merge(self, a, b):
        return ops.add(a, b)


class Concatenate(Layer):
    """Concatenates a list of inputs along ``axis``; all other axes must match.

    Args:
        axis: the concatenation axis (counted with the batch axis, as in Keras; -1 is the last).

    Output shape: the inputs' shape with the sizes along ``axis`` summed (``None`` if any is unknown).
    """

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"Expected an integer for the argument 'axis'. Received: axis={axis!r}")
        self.axis = axis

    def _check_shapes(self, input_shape: Any) -> list[Shape]:
        if not _is_shape_list(input_shape) or len(input_shape) < 1:
            raise ValueError(
                f"A `Concatenate` layer should be called on a list of at least 1 input. Received: "
                f"input_shape={input_shape}"
            )
        shapes = [tuple(s) for s in input_shape]
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= self.axis < rank:
            raise ValueError(
                "A `Concatenate` layer requires inputs with matching shapes except for the concatenation axis. "
                f"Received: input_shape={shapes}"
            )
        axis = self.axis % rank
        for i in range(rank):
            if i == axis:
                continue
            sizes = {s[i] for s in shapes} - {None}
            if len(sizes) > 1:
                raise ValueError(
                    "A `Concatenate` layer requires inputs with matching shapes except for the concatenation axis. "
                    f"Received: input_shape={shapes}"
                )
        return shapes

    def build(self, input_shape: Any) -> None:
        self._check_shapes(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = self._check_shapes(input_shape)
        rank = len(shapes[0])
        axis = self.axis % rank
        out = []
        for i in range(rank):
            sizes = [s[i] for s in shapes]
            if i == axis:
                out.append(None if any(d is None for d in sizes) else sum(sizes))
            else:
                known = [d for d in sizes if d is not None]
                out.append(known[0] if known else None)
        return tuple(out)

    def call(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"A `Concatenate` layer should be called on a list of inputs. Received: inputs={inputs}")
        self._check_shapes([(None, *x.shape[1:]) for x in inputs])
        return ops.concatenate(list(inputs), axis=self.axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


def _dot_axes(axes: Any, rank1: int, rank2: int) -> tuple[int, int]:
    """Dot's axes as non-negative indices of each input (an int is the same axis of both; negative counts back)."""
    if isinstance(axes, int):
        return (axes % rank1, axes % rank2) if axes < 0 else (axes, axes)
    return (axes[0] % rank1 if axes[0] < 0 else axes[0], axes[1] % rank2 if axes[1] < 0 else axes[1])


def batch_dot(x: torch.Tensor, y: torch.Tensor, axes: tuple[int, int]) -> torch.Tensor:
    """The dot product of each sample of ``x`` with the same sample of ``y`` over ``x``'s axis ``axes[0]`` and
    ``y``'s ``axes[1]``: shape ``x.shape`` without that axis, then ``y.shape`` without the batch axis and that
    axis; a result with no axis beside the batch gets one of size 1 (Keras' ``batch_dot``)."""
    a0, a1 = axes
    if x.dim() < 2 or y.dim() < 2:
        raise ValueError(
            f"Cannot do batch_dot on inputs with rank < 2. Received inputs with shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}."
        )
    if 0 in (a0, a1):
        raise ValueError("Cannot perform batch_dot over axis 0 (the batch axis).")
    if x.shape[0] != y.shape[0] or x.shape[a0] != y.shape[a1]:
        raise ValueError(
            f"Cannot do batch_dot on inputs with shapes {tuple(x.shape)} and {tuple(y.shape)} with axes={list(axes)}. "
            f"x.shape[{a0}] != y.shape[{a1}] ({x.shape[a0]} != {y.shape[a1]}), or the batch sizes differ."
        )
    xm, ym = x.movedim(a0, -1), y.movedim(a1, 1)
    batch, k = x.shape[0], x.shape[a0]
    out = torch.matmul(xm.reshape(batch, -1, k), ym.reshape(batch, k, -1))
    out = out.reshape(batch, *xm.shape[1:-1], *ym.shape[2:])
    return out[:, None] if out.dim() == 1 else out


def _l2_normalize(x: torch.Tensor, axis: int) -> torch.Tensor:
    """``x`` over its L2 norm along ``axis``, the norm floored at ``config.epsilon()`` (Keras' normalize)."""
    inv = torch.rsqrt(torch.sum(torch.square(x), dim=axis, keepdim=True))
    return x * torch.clamp(inv, max=1.0 / config.epsilon())


class Dot(Merge):
    """The dot product of two inputs' samples along ``axes``: for ``(batch, n)`` inputs, ``(batch, 1)`` holding
    ``sum(x1 * x2, axis=1)``; in general, see :func:`batch_dot`.

    Args:
        axes: an int (the same axis of both inputs) or a pair of ints; counted with the batch axis (0), which
            cannot be reduced.
        normalize: L2-normalize both inputs along ``axes`` first, giving the cosine similarity.
    """

    def __init__(self, axes: int | tuple[int, int] | list[int], normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(axes, int) or isinstance(axes, bool):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(
                    f"Invalid type for argument `axes`: it should be a list or an int. Received: axes={axes}"
                )
            if len(axes) != 2:
                raise ValueError(
                    f"Invalid format for argument `axes`: it should contain two elements. Received: axes={axes}"
                )
            if not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
                raise ValueError(
                    f"Invalid format for argument `axes`: list elements should be integers. Received: axes={axes}"
                )
        self.axes = axes
        self.normalize = bool(normalize)

    def _check_shapes(self, input_shape: Any) -> list[Shape]:
        if not _is_shape_list(input_shape) or len(input_shape) != 2:
            raise ValueError(
                f"A `Dot` layer should be called on a list of 2 inputs. Received: input_shape={input_shape}"
            )
        shape1, shape2 = (tuple(s) for s in input_shape)
        a0, a1 = _dot_axes(self.axes, len(shape1), len(shape2))
        if not (0 < a0 < len(shape1) and 0 < a1 < len(shape2)):
            raise ValueError(
                f"Invalid `axes` {self.axes} for a `Dot` of inputs of shapes {shape1} and {shape2}: an axis must be "
                "within the inputs' rank and not the batch axis 0"
            )
        if shape1[a0] is not None and shape2[a1] is not None and shape1[a0] != shape2[a1]:
            raise ValueError(
                f"Incompatible input shapes: axis values {shape1[a0]} (at axis {a0}) != {shape2[a1]} (at axis {a1}). "
                f"Full input shapes: {shape1}, {shape2}"
            )
        return [shape1, shape2]

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape1, shape2 = (list(s) for s in self._check_shapes(input_shape))
        a0, a1 = _dot_axes(self.axes, len(shape1), len(shape2))
        shape1.pop(a0)
        shape2.pop(a1)
        shape2.pop(0)
        out = shape1 + shape2
        return tuple(out + [1] if len(out) == 1 else out)

    def call(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"A `Dot` layer should be called on exactly 2 inputs. Received: inputs={inputs}")
        x1, x2 = inputs
        self._check_shapes([(None, *x1.shape[1:]), (None, *x2.shape[1:])])
        axes = _dot_axes(self.axes, x1.dim(), x2.dim())
        if self.normalize:
            x1, x2 = _l2_normalize(x1, axes[0]), _l2_normalize(x2, axes[1])
        return batch_dot(x1, x2, axes)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def add(inputs: list[Any], **kwargs: Any) -> torch.Tensor:
    """Functional interface to :class:`Add`."""
    return Add(**kwargs)(inputs)


def subtract(inputs: list[Any], **kwargs: Any) -> torch.Tensor:
    """Functional interface to :class:`Subtract`."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: list[Any], **kwargs: Any) -> torch.Tensor:
    """Functional interface to :class:`Multiply`."""
    return Multiply(**kwargs)(inputs)


def average(inputs: list[Any], **kwargs: Any) -> torch.Tensor:
    """Functional interface to :class:`Average`."""
    return Average(**kwargs)(inputs)


def maximum(inputs: list[Any], **kwargs: Any) -> torch.Tensor:
    """Functional interface to :class:`Maximum`."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: list[Any], **kwargs: Any) -> torch.Tensor:
    """Functional interface to :class:`Minimum`."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: list[Any], axis: int = -1, **kwargs: Any) -> torch.Tensor:
    """Functional interface to :class:`Concatenate`."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: list[Any], axes: int | tuple[int, int] | list[int] = -1, **kwargs: Any) -> torch.Tensor:
    """Functional interface to :class:`Dot`."""
    return Dot(axes=axes, **kwargs)(inputs)
