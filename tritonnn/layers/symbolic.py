"""Symbolic tensors for the Functional API: ``Input`` returns a ``KerasTensor``; calling a layer on one records a
``Node`` and returns new ``KerasTensor``s.

Shapes are found by running the layer once on a concrete example (batch of 1, ``training=False``, no gradient),
so every layer, built-in or custom, gets correct output shapes without a shape function of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class KerasTensor:
    """A symbolic tensor: a shape with ``None`` for the batch dimension, a dtype, and where it came from."""

    def __init__(self, example: torch.Tensor, node: Node | None, index: int, name: str | None = None):
        self._example = example
        self.node = node
        self.index = index  # position among the node's flattened outputs
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
    """One call of a layer on symbolic inputs: ``outputs = layer(inputs, **kwargs)``."""

    def __init__(self, layer: Any, inputs: Any, kwargs: dict[str, Any], outputs: Any):
        self.layer = layer
        self.inputs = inputs
        self.kwargs = kwargs
        self.outputs = outputs
        self.index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)

    @property
    def parents(self) -> list[KerasTensor]:
        return flatten(self.inputs)


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


def symbolic_call(layer: Any, inputs: Any, kwargs: dict[str, Any]) -> Any:
    """Call ``layer`` on symbolic inputs: run it on their examples to learn output shapes, and record a Node."""
    examples = map_structure(lambda t: t._example if isinstance(t, KerasTensor) else t, inputs)
    run_kwargs = dict(kwargs)
    if layer._call_takes_training:
        run_kwargs["training"] = False
    with torch.no_grad():
        out = layer._concrete_call(examples, run_kwargs)
    layer._clear_losses()
    node = Node(layer, inputs, kwargs, None)
    counter = iter(range(1 << 30))
    outputs = map_structure(
        lambda t: KerasTensor(t.detach(), node, next(counter), name=layer.name) if isinstance(t, torch.Tensor) else t,
        out,
    )
    node.outputs = outputs
    layer._output_shape = map_structure(lambda t: t.shape if isinstance(t, KerasTensor) else None, outputs)
    return outputs
