"""Symbolic tensors for the Functional API: ``Input`` returns a ``KerasTensor``; calling a layer on one records a
``Node`` and returns new ``KerasTensor``s.

Shapes are found by running the layer once on a concrete example (batch of 1, ``training=False``, no gradient),
so every layer, built-in or custom, gets correct output shapes without a shape function of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch


class KerasTensor:
    """A symbolic tensor: a shape with ``None`` for the batch dimension, a dtype, and where it came from."""

    def __init__(self, example: torch.Tensor, node: Node | None, index: int, name: str | None = None):
        self._example = example
        self.node = node
        self.index = index  # position among the node's flattened outputs (Node.output_tensors)
        self.name = name

    @property
    def shape(self) -> tuple[int | None, ...]:
        return (None, *tuple(self._example.shape[1:]))

    @property
    def dtype(self) -> str:
        return str(self._example.dtype).replace("torch.", "")

    @property
    def ndim(self) -> int:
        return self._example.dim()

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __len__(self) -> int:
        raise TypeError("A symbolic KerasTensor has no length: its batch dimension is unknown")

    def __bool__(self) -> bool:
        raise TypeError("A symbolic KerasTensor cannot be used as a Python bool")


class Node:
    """One call of a layer on symbolic arguments: ``outputs = layer(inputs, *args, **kwargs)``.

    ``inputs`` is the first positional argument, ``args`` the further ones (a layer whose ``call(self, a, b)``
    takes several tensors), ``kwargs`` the keyword arguments (``training`` when it was given); symbolic tensors may
    sit anywhere in them. Each node is appended to ``layer._inbound_nodes``; ``serial`` orders nodes by creation.
    """

    _serials = itertools.count()

    def __init__(self, layer: Any, inputs: Any, kwargs: dict[str, Any], outputs: Any, args: tuple[Any, ...] = ()):
        self.layer = layer
        self.inputs = inputs
        self.args = tuple(args)
        self.kwargs = kwargs
        self.outputs = outputs
        self.serial = next(Node._serials)
        layer._inbound_nodes.append(self)

    @property
    def call_args(self) -> tuple[Any, ...]:
        """Every positional argument of the call: ``(inputs, *args)``."""
        return (self.inputs, *self.args)

    @property
    def parents(self) -> list[KerasTensor]:
        """The symbolic tensors the call reads (positional arguments first, then keyword arguments)."""
        if self.inputs is None and not self.args and not self.kwargs:
            return []
        return [t for t in flatten([self.inputs, list(self.args), self.kwargs]) if isinstance(t, KerasTensor)]

    @property
    def input_tensors(self) -> list[KerasTensor]:
        """Keras' name for :attr:`parents`."""
        return self.parents

    @property
    def output_tensors(self) -> list[KerasTensor]:
        """The call's symbolic outputs, flattened (a dict's values in sorted-key order)."""
        return [t for t in flatten(self.outputs) if isinstance(t, KerasTensor)]


def flatten(struct: Any) -> list[Any]:
    if isinstance(struct, dict):
        return [v for k in sorted(struct) for v in flatten(struct[k])]
    if isinstance(struct, (list, tuple)):
        return [v for item in struct for v in flatten(item)]
    return [struct]


def map_structure(fn: Callable[[Any], Any], struct: Any) -> Any:
    if isinstance(struct, dict):
        return {k: map_structure(fn, v) for k, v in struct.items()}
    if isinstance(struct, (list, tuple)):
        return type(struct)(map_structure(fn, v) for v in struct)
    return fn(struct)


def is_symbolic(struct: Any) -> bool:
    return any(isinstance(t, KerasTensor) for t in flatten(struct))


def symbolic_call(layer: Any, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``layer`` on symbolic arguments: run it on their examples to learn output shapes, and record a Node."""

    def example(t: Any) -> Any:
        return t._example if isinstance(t, KerasTensor) else t

    examples = map_structure(example, inputs)
    example_args = map_structure(example, tuple(args))
    run_kwargs = map_structure(example, dict(kwargs))
    if layer._call_takes_training:
        run_kwargs["training"] = False
    with torch.no_grad():
        out = layer._concrete_call(examples, example_args, run_kwargs)
    layer._clear_losses()
    node = Node(layer, inputs, kwargs, None, args)
    outputs = map_structure(
        lambda t: KerasTensor(t.detach(), node, 0, name=layer.name) if isinstance(t, torch.Tensor) else t, out
    )
    node.outputs = outputs
    for i, t in enumerate(node.output_tensors):  # a tensor's index is its position in the flattened outputs
        t.index = i
    layer._output_shape = map_structure(lambda t: t.shape if isinstance(t, KerasTensor) else None, outputs)
    return outputs
