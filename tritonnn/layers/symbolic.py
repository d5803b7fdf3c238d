"""Symbolic tensors for the Functional API: ``Input`` returns a ``KerasTensor``; calling a layer on one records a
``Node`` and returns new ``KerasTensor``s.

Shapes are found by running the layer on a concrete example (batch of 1, ``training=False``, no gradient), so
every layer, built-in or custom, gets correct output shapes without a shape function of its own. A dimension that
is unknown (``None``: ``keras.Input((None, 4))``) has size 1 in the example; a layer called on such a tensor is
run a second time with size 2 there, and each output dimension that differs between the runs is unknown too. The
layer builds from the symbolic shapes, ``None`` included, as in Keras: a weight whose shape would need an unknown
dimension is Keras' ``ValueError``, not a weight of size 1.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable
from typing import Any

import torch

from .. import ops
from .._op_dispatch import SymbolicValue

# (layer, inputs, args) of the symbolic call in progress: that layer's build reads the shapes of these symbolic
# tensors (None for an unknown dimension) instead of its example tensors' (1 there).
_BUILDING: contextvars.ContextVar[tuple[Any, Any, tuple[Any, ...]] | None] = contextvars.ContextVar(
    "tritonnn_symbolic_build", default=None
)


class KerasTensor(SymbolicValue):
    """A symbolic tensor: a shape (``None`` for the batch dimension unless an ``Input`` fixed its ``batch_size``,
    and for every other dimension not known), a dtype, and where it came from.

    ``tritonnn.ops`` functions and Python's operators (``+ - * / // % ** @``, unary ``-``, ``abs``, comparisons
    other than ``==``, ``& | ^ ~``, indexing) take it as Keras' do: each call records a node of the Functional
    graph (``tritonnn.layers.op_node``) and returns its symbolic output.
    """

    def __init__(
        self,
        example: torch.Tensor,
        node: Node | None,
        index: int,
        name: str | None = None,
        shape: tuple[int | None, ...] | None = None,
    ):
        self._example = example
        self._shape = None if shape is None else tuple(shape)
        self.node = node
        self.index = index  # position among the node's flattened outputs (Node.output_tensors)
        self.name = name

    @property
    def shape(self) -> tuple[int | None, ...]:
        if self._shape is not None:
            return self._shape
        return (None, *tuple(self._example.shape[1:]))

    @property
    def _has_unknown(self) -> bool:
        return any(d is None for d in self.shape[1:])

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

    def __iter__(self) -> Any:
        # without it Python would iterate by indexing, making a get_item node per step
        raise NotImplementedError("Iterating over a symbolic KerasTensor is not supported")

    def __int__(self) -> int:
        raise ValueError("A symbolic KerasTensor has a shape and a dtype but no value: it cannot be an int")

    def __float__(self) -> float:
        raise ValueError("A symbolic KerasTensor has a shape and a dtype but no value: it cannot be a float")

    # ---- operators: graph nodes of tritonnn.ops, as Keras' KerasTensor's -------------------------------------
    def __add__(self, other: Any) -> KerasTensor:
        return ops.add(self, other)

    def __radd__(self, other: Any) -> KerasTensor:
        return ops.add(other, self)

    def __sub__(self, other: Any) -> KerasTensor:
        return ops.subtract(self, other)

    def __rsub__(self, other: Any) -> KerasTensor:
        return ops.subtract(other, self)

    def __mul__(self, other: Any) -> KerasTensor:
        return ops.multiply(self, other)

    def __rmul__(self, other: Any) -> KerasTensor:
        return ops.multiply(other, self)

    def __matmul__(self, other: Any) -> KerasTensor:
        return ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> KerasTensor:
        return ops.matmul(other, self)

    def __truediv__(self, other: Any) -> KerasTensor:
        return ops.true_divide(self, other)

    def __rtruediv__(self, other: Any) -> KerasTensor:
        return ops.true_divide(other, self)

    def __floordiv__(self, other: Any) -> KerasTensor:
        return ops.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> KerasTensor:
        return ops.floor_divide(other, self)

    def __mod__(self, other: Any) -> KerasTensor:
        return ops.mod(self, other)

    def __rmod__(self, other: Any) -> KerasTensor:
        return ops.mod(other, self)

    def __pow__(self, other: Any) -> KerasTensor:
        return ops.power(self, other)

    def __rpow__(self, other: Any) -> KerasTensor:
        return ops.power(other, self)

    def __neg__(self) -> KerasTensor:
        return ops.negative(self)

    def __abs__(self) -> KerasTensor:
        return ops.absolute(self)

    def __lt__(self, other: Any) -> KerasTensor:
        return ops.less(self, other)

    def __le__(self, other: Any) -> KerasTensor:
        return ops.less_equal(self, other)

    def __gt__(self, other: Any) -> KerasTensor:
        return ops.greater(self, other)

    def __ge__(self, other: Any) -> KerasTensor:
        return ops.greater_equal(self, other)

    def __ne__(self, other: Any) -> KerasTensor:  # type: ignore[override]  (Keras' too; == stays identity)
        return ops.not_equal(self, other)

    def __and__(self, other: Any) -> KerasTensor:
        return ops.logical_and(self, other)

    def __rand__(self, other: Any) -> KerasTensor:
        return ops.logical_and(other, self)

    def __or__(self, other: Any) -> KerasTensor:
        return ops.logical_or(self, other)

    def __ror__(self, other: Any) -> KerasTensor:
        return ops.logical_or(other, self)

    def __xor__(self, other: Any) -> KerasTensor:
        return ops.logical_xor(self, other)

    def __rxor__(self, other: Any) -> KerasTensor:
        return ops.logical_xor(other, self)

    def __invert__(self) -> KerasTensor:
        return ops.logical_not(self)

    def __getitem__(self, key: Any) -> KerasTensor:
        return ops.get_item(self, key)

    def __round__(self, ndigits: int | None = None) -> KerasTensor:
        return ops.round(self, decimals=ndigits or 0)

    def reshape(self, newshape: Any) -> KerasTensor:
        return ops.reshape(self, newshape)

    def squeeze(self, axis: Any = None) -> KerasTensor:
        return ops.squeeze(self, axis=axis)


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


def build_tensors(layer: Any) -> tuple[Any, tuple[Any, ...]] | None:
    """``(inputs, args)``, the symbolic arguments whose shapes ``layer``'s build takes, while a symbolic call of
    ``layer`` runs (None otherwise: a sublayer called inside it builds from its concrete inputs)."""
    building = _BUILDING.get()
    return None if building is None or building[0] is not layer else (building[1], building[2])


def _resized(t: KerasTensor, size: int) -> torch.Tensor:
    """An example of ``t`` with ``size`` in its unknown dimensions (zeros: only its shape and dtype matter)."""
    e = t._example
    dims = [e.shape[0], *[size if d is None else d for d in t.shape[1:]]]
    return torch.zeros(dims, dtype=e.dtype, device=e.device)


def _batch_size(tensors: list[KerasTensor]) -> int | None:
    """The batch size of the outputs: the inputs' when all of them fix the same one (``Input(batch_size=...)``)."""
    sizes = {t.shape[0] for t in tensors}
    return sizes.pop() if len(sizes) == 1 and tensors else None


def _output_shape(first: torch.Tensor, second: Any, batch: int | None) -> tuple[int | None, ...]:
    rest = tuple(first.shape[1:])
    if isinstance(second, torch.Tensor) and second.dim() == first.dim():
        rest = tuple(None if a != b else a for a, b in zip(rest, second.shape[1:], strict=True))
    elif second is not None:  # the second run gave another rank or no tensor there: nothing is known past the rank
        rest = (None,) * len(rest)
    return (batch, *rest)


class _ShapeFunctionOutput:
    """A layer's output known only from its shape function: an example of that shape, and the shape itself."""

    def __init__(self, tensor: torch.Tensor, declared: tuple[int | None, ...]):
        self.tensor = tensor
        self.declared = declared


def _declared_shape(layer: Any, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What ``layer.compute_output_shape`` says for one symbolic input (or a list of them) when the layer defines
    one of its own; None when it does not, takes other arguments, or fails."""
    if args or any(isinstance(v, KerasTensor) for v in flatten(kwargs)):
        return None
    own = type(layer).compute_output_shape
    if (own.__module__, own.__qualname__) == (__name__.rsplit(".", 1)[0] + ".layer", "Layer.compute_output_shape"):
        return None  # the base class's, which runs the layer itself
    if not (
        isinstance(inputs, KerasTensor)
        or (isinstance(inputs, list) and all(isinstance(t, KerasTensor) for t in inputs))
    ):
        return None
    try:
        shape = layer.compute_output_shape(map_structure(lambda t: t.shape, inputs))
    except Exception:  # noqa: BLE001  (no shape function for these shapes: the run's own error is the one to raise)
        return None
    if not isinstance(shape, tuple) or not all(d is None or isinstance(d, int) for d in shape):
        return None
    return shape


def _from_shape_function(
    layer: Any, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any], batch: int | None
) -> _ShapeFunctionOutput | None:
    declared = _declared_shape(layer, inputs, args, kwargs)
    if declared is None or not declared:
        return None
    first = inputs if isinstance(inputs, KerasTensor) else inputs[0]
    dtype = first._example.dtype if not layer._autocast_inputs else layer.compute_dtype
    example = torch.zeros(
        [1, *[1 if d is None else d for d in declared[1:]]], dtype=dtype, device=first._example.device
    )
    return _ShapeFunctionOutput(example, (batch, *declared[1:]))


def symbolic_call(layer: Any, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``layer`` on symbolic arguments: run it on their examples to learn output shapes, and record a Node."""

    def run(example: Callable[[Any], Any]) -> Any:
        examples = map_structure(example, inputs)
        example_args = map_structure(example, tuple(args))
        run_kwargs = map_structure(example, dict(kwargs))
        if layer._call_takes_training:
            run_kwargs["training"] = False
        with torch.no_grad():
            out = layer._concrete_call(examples, example_args, run_kwargs)
        layer._clear_losses()
        return out

    symbolic = [t for t in flatten((inputs, list(args), kwargs)) if isinstance(t, KerasTensor)]
    unknown = any(t._has_unknown for t in symbolic)
    batch = _batch_size(symbolic)
    token = _BUILDING.set((layer, inputs, tuple(args)))
    try:
        out = run(lambda t: t._example if isinstance(t, KerasTensor) else t)
    except Exception:
        # An example with 1 in an unknown dimension may be one the layer cannot take (Reshape((8,)) of (None, 4)):
        # Keras' shape function then says what the output is, as Keras' symbolic call does.
        # (Only for a built layer: an error of its build, such as a weight needing an unknown size, is raised.)
        out = _from_shape_function(layer, inputs, args, kwargs, batch) if unknown and layer.built else None
        if out is None:
            raise
    finally:
        _BUILDING.reset(token)
    first = flatten(out)
    shapes: dict[int, tuple[int | None, ...]] = {}
    if unknown and not isinstance(out, _ShapeFunctionOutput):
        try:
            second = flatten(
                run(lambda t: (_resized(t, 2) if t._has_unknown else t._example) if isinstance(t, KerasTensor) else t)
            )
        except Exception:  # noqa: BLE001  (a size the layer cannot take: its shape function, or the first run, says)
            second = None
            declared = _declared_shape(layer, inputs, args, kwargs)
            if isinstance(out, torch.Tensor) and declared is not None and len(declared) == out.dim():
                # the dimensions it leaves unknown (the run's example had 1 there; Add of (None, 4) and (3, 4))
                shapes[id(out)] = (
                    batch,
                    *[None if d is None else e for d, e in zip(declared[1:], out.shape[1:], strict=True)],
                )
        if second is not None and len(second) == len(first):
            shapes = {
                id(a): _output_shape(a, b, batch)
                for a, b in zip(first, second, strict=True)
                if isinstance(a, torch.Tensor)
            }
    if isinstance(out, _ShapeFunctionOutput):
        shapes[id(out)] = out.declared
        out = out.tensor
    for a in flatten(out):
        if isinstance(a, torch.Tensor) and id(a) not in shapes:
            shapes[id(a)] = _output_shape(a, None, batch)
    node = Node(layer, inputs, kwargs, None, args)

    def symbolic_output(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        return KerasTensor(t.detach(), node, 0, name=layer.name, shape=shapes[id(t)])

    outputs = map_structure(symbolic_output, out)
    node.outputs = outputs
    for i, t in enumerate(node.output_tensors):  # a tensor's index is its position in the flattened outputs
        t.index = i
    layer._output_shape = map_structure(lambda t: t.shape if isinstance(t, KerasTensor) else None, outputs)
    return outputs
