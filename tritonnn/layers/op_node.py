"""``tritonnn.ops`` on symbolic tensors: each call records a node of the Functional graph, as Keras' ops do.

``ops.relu(x)`` of a ``KerasTensor`` ``x`` makes an :class:`OpNode` (Keras' ``Operation``: ``keras.src.ops.nn.Relu``)
and calls it on ``x``; the Functional model runs the op on the real tensors, so gradients flow through it. The
op's arguments are split as Keras splits them: its tensors (``x``, ``x1``/``x2``, ``indices``, ``key``, ...) are the
node's call arguments, the rest (``axis``, ``keepdims``, ``newshape``...) the node's config. The output's shape and
dtype are the op's own: it runs on examples of its arguments (ones) twice, with sizes 2 and 3 in every unknown
dimension, batch included, and each output dimension that differs between the runs is unknown (None).

In a Functional model's config an op node is the layer-like entry Keras writes (``module`` ``keras.src.ops.numpy``,
``class_name`` ``Mean``, ``config`` ``{"name": "mean", "axis": -1, "keepdims": true}``), which
``Functional.from_config`` reads back (Keras' configs too, for the ops tritonnn has, with Keras' argument names).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import _op_dispatch, config, ops
from ..naming import unique_name
from .symbolic import KerasTensor, Node, flatten

# Parameters that are tensors in Keras' ops (the call arguments of their Operation): the rest is the op's config.
_TENSOR_PARAMS = frozenset(
    (
        "x", "x1", "x2", "x3", "y", "xs", "a", "condition", "key", "indices", "values", "updates", "inputs",
        "target", "output", "condlist", "choicelist", "elements", "test_elements", "segment_ids", "start_indices",
        "predictions", "targets", "operands", "arrays", "tensors", "sorted_sequence", "weights", "gamma", "beta",
    )
)  # fmt: skip
# Call arguments of one op beyond those (Keras' Isclose takes its tolerances at the call).
_OP_TENSOR_PARAMS = {
    "isclose": frozenset(("rtol", "atol")),
    "rms_normalization": frozenset(("scale",)),
    "batch_normalization": frozenset(("mean", "variance", "offset", "scale")),
}
# The op an alias is (Keras' Absolute for ops.abs), and Keras' class and node name where they are not the op's
# name in CamelCase and as it is.
_KERAS_OP = {"abs": "absolute", "swish": "silu", "hard_swish": "hard_silu"}
_KERAS_CLASS = {
    "allclose": ("AllClose", "all_close"),
    "cdist": ("CDist", "c_dist"),
    "isin": ("IsIn", "is_in"),
    "layer_normalization": ("LayerNorm", "layer_norm"),
    "rms_normalization": ("RMSNorm", "rms_norm"),
}
# Ops whose output's size depends on the values, not only on the shapes: every dimension is unknown.
_DATA_DEPENDENT = frozenset(("nonzero", "unique"))
_MATH = frozenset(
    (
        "cdist", "erf", "erfc", "erfinv", "in_top_k", "logsumexp", "rsqrt", "segment_max", "segment_min",
        "segment_prod", "segment_sum", "top_k",
    )
)  # fmt: skip
_CORE = frozenset(
    ("cast", "slice", "slice_update", "scatter", "scatter_update", "saturate_cast", "stop_gradient", "unstack", "map")
)
_LINALG = frozenset(("norm",))
_NN_NAMES = frozenset(dir(ops.nn))


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _canonical(op: str) -> str:
    """The op's Keras name: ``abs`` is Keras' ``absolute`` (class ``Absolute``), ``swish`` its ``silu``."""
    own = _op_dispatch.OP_NAMES.get(op, op)
    return _KERAS_OP.get(own, own)


def _module_of(op: str) -> str:
    if op in _NN_NAMES:
        return "keras.src.ops.nn"
    if op in _MATH:
        return "keras.src.ops.math"
    if op in _CORE:
        return "keras.src.ops.core"
    if op in _LINALG:
        return "keras.src.ops.linalg"
    return "keras.src.ops.numpy"


def _class_of(op: str) -> str:
    return _KERAS_CLASS[op][0] if op in _KERAS_CLASS else _camel(op)


def _op_by_class() -> dict[str, str]:
    table = {}
    for public in _op_dispatch.OP_NAMES:
        table.setdefault(_class_of(_canonical(public)), _canonical(public))
    return table


def _is_tensor(value: Any) -> bool:
    return isinstance(value, (KerasTensor, torch.Tensor, np.ndarray)) or (
        type(value) in (list, tuple) and any(isinstance(v, (KerasTensor, torch.Tensor)) for v in flatten(value))
    )


_PLAIN = (type(None), bool, int, float, str)


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return not isinstance(value, float) or math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _config_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_config_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _config_value(v) for k, v in value.items()}
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    return value


def argument_config(value: Any, op: OpNode | None = None) -> Any:
    """A constant argument of a node in a Functional config, as Keras writes it: a tensor as ``__tensor__``, a
    NumPy array as ``__numpy__`` (value and dtype), a slice as ``__slice__``, ``...`` as ``__ellipsis__``. For an
    op node, anything else that is not a plain value (a function, an object) is an error naming the op."""
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": str(value.dtype)}}
    if isinstance(value, torch.Tensor):
        return {
            "class_name": "__tensor__",
            "config": {"value": value.detach().cpu().tolist(), "dtype": str(value.dtype).replace("torch.", "")},
        }
    if isinstance(value, slice):
        return {
            "class_name": "__slice__",
            "config": {"start": value.start, "stop": value.stop, "step": value.step},
        }
    if value is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if op is not None and not isinstance(value, (*_PLAIN, list, tuple, dict)):
        raise ValueError(
            f"Cannot write the config of the op node {op.name!r} (keras.ops.{op.op}): its argument {value!r} (of "
            f"type {type(value).__name__}) has no config form, so a model using it cannot be configured or saved."
        )
    return value


def revive_argument(value: dict[str, Any]) -> Any:
    """The constant a node argument's config (``__tensor__``, ``__numpy__``, ``__slice__``, ``__ellipsis__``) stands
    for; the dict
    itself when it is none of them."""
    kind = value.get("class_name")
    inner = value.get("config")
    if kind == "__tensor__" and isinstance(inner, dict):
        return torch.tensor(inner.get("value"), dtype=config.standardize_dtype(inner.get("dtype")))
    if kind == "__numpy__" and isinstance(inner, dict):
        return np.array(inner.get("value"), dtype=inner.get("dtype"))
    if kind == "__slice__" and isinstance(inner, dict):
        return slice(inner.get("start"), inner.get("stop"), inner.get("step"))
    if kind == "__ellipsis__":
        return Ellipsis
    return value


class OpNode:
    """One call of a ``tritonnn.ops`` function in a Functional graph (Keras' ``Operation``): its config arguments
    (``static``) and a name; calling it on symbolic tensors records a :class:`Node`, on tensors runs the op. It has
    no weights, and is not among the model's ``layers`` (Keras' ``model.layers`` holds no op either). Each op has
    its subclass, named as Keras' class (``Mean``; :func:`op_class`), whose ``op`` is the op's name."""

    op = ""

    def __init__(self, static: dict[str, Any] | None = None, name: str | None = None):
        fn = getattr(ops, self.op, None)
        if fn is None or self.op not in _op_dispatch.OP_NAMES:
            raise ValueError(f"tritonnn.ops has no op {self.op!r}")
        self.fn: Callable[..., Any] = inspect.unwrap(fn)
        self.signature = inspect.signature(self.fn)
        self.static = dict(static or {})
        unknown = sorted(set(self.static) - set(self.signature.parameters))
        if unknown:
            raise ValueError(
                f"The op {self.class_name} (keras.ops.{self.op}) takes no argument(s) {unknown}; it takes "
                f"{list(self.signature.parameters)}"
            )
        self.name = name or unique_name(_KERAS_CLASS[self.op][1] if self.op in _KERAS_CLASS else self.op)
        self._inbound_nodes: list[Node] = []
        self._from_config = False
        self.built = True
        self.trainable = True
        self.weights: list[Any] = []

    @property
    def class_name(self) -> str:
        """Keras' class of the op: ``Mean`` for ``mean``, ``GetItem`` for ``get_item``."""
        return _class_of(self.op)

    def __repr__(self) -> str:
        return f"<OpNode {self.class_name} name={self.name}>"

    # ---- running ---------------------------------------------------------------------------------------------
    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The op's call: the config arguments, then the positional ``args`` in the order of the parameters the
        config and ``kwargs`` leave open (a ``*operands`` taking the rest), then ``kwargs``."""
        values = {**self.static, **kwargs}
        rest = list(args)
        varargs: list[Any] = []
        for p in self.signature.parameters.values():
            if not rest:
                break
            if p.kind is p.VAR_POSITIONAL:
                varargs, rest = rest, []
            elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in values:
                values[p.name] = rest.pop(0)
        if rest:
            raise TypeError(f"ops.{self.op} takes fewer positional tensors than the {len(args)} given")
        if self._from_config and self.op == "get_item" and isinstance(values.get("key"), list):
            values["key"] = tuple(values["key"])  # a config writes the tuple key as a list, as Keras' does
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        open_position = True
        for p in self.signature.parameters.values():
            if p.kind is p.VAR_POSITIONAL:
                if varargs and not open_position:
                    raise TypeError(f"ops.{self.op}: cannot pass its tensors after an argument left to its default")
                positional.extend(varargs)
            elif p.kind is p.VAR_KEYWORD:
                keywords.update({k: v for k, v in values.items() if k not in self.signature.parameters})
            elif p.name not in values:
                open_position = False
            elif p.kind is p.KEYWORD_ONLY or not open_position:
                keywords[p.name] = values[p.name]
            else:
                positional.append(values[p.name])
        return positional, keywords

    def call(self, *args: Any, **kwargs: Any) -> Any:
        positional, keywords = self._arguments(args, kwargs)
        return self.fn(*positional, **keywords)

    def __call__(self, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if _op_dispatch.has_symbolic(args, kwargs):
            return self._symbolic_call(args, kwargs)
        return self.call(*args, **kwargs)

    def _symbolic_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not args:
            raise ValueError(f"The op node {self.name!r} (ops.{self.op}) needs a positional tensor argument")
        struct = (list(args), dict(kwargs))
        symbolic = [t for t in flatten(struct) if isinstance(t, KerasTensor)]
        unknown = any(d is None for t in symbolic for d in t.shape)

        def example(size: int) -> Any:
            def one(v: Any) -> Any:
                if not isinstance(v, KerasTensor):
                    return v
                e = v._example
                return torch.ones([size if d is None else d for d in v.shape], dtype=e.dtype, device=e.device)

            return _map(one, struct)

        def run(size: int) -> Any:
            ex_args, ex_kwargs = example(size)
            with torch.no_grad():
                return self.call(*ex_args, **ex_kwargs)

        try:
            first = run(2)
            second = run(3) if unknown else None
        except (RuntimeError, ValueError, IndexError) as e:
            declared = self._declared_shape(args, kwargs) if unknown else None
            if declared is not None:  # a size the examples cannot have (Keras' shape rule says what it is)
                return self._outputs(args, kwargs, declared)
            shapes = ", ".join(str(t.shape) for t in symbolic)
            raise ValueError(
                f"ops.{self.op} cannot take symbolic tensors of shapes {shapes} (dimensions None are unknown): {e}"
            ) from e
        return self._outputs(args, kwargs, first, second)

    def _data_dependent(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether the output's size depends on the values (``nonzero``, ``unique`` without ``size``, ``where``
        of a condition alone), so that no dimension of it is known."""
        if self.op == "unique":
            return self.static.get("size") is None
        if self.op == "where":
            return len(args) < 2 and "x1" not in kwargs and "x2" not in kwargs
        return self.op in _DATA_DEPENDENT

    def _declared_shape(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Declared | None:
        """Keras' shape rule where the examples' sizes cannot be the op's (``reshape`` of ``(None, 3, 4)`` to
        ``(5, -1)`` is ``(5, None)``): an example of the output with the unknown sizes 1, and its shape; else None."""
        if self.op != "reshape":
            return None
        positional, keywords = self._arguments(args, kwargs)
        x = positional[0] if positional else keywords.get("x")
        newshape = keywords.get("newshape", positional[1] if len(positional) > 1 else None)
        if not isinstance(x, KerasTensor) or not isinstance(newshape, (list, tuple)):
            return None
        if not all(isinstance(d, int) for d in newshape) or sum(d == -1 for d in newshape) > 1:
            return None
        shape = tuple(None if d == -1 else d for d in newshape)
        known = [d for d in x.shape if d is not None]
        if len(known) == len(x.shape) or any(d is not None and d < 0 for d in shape):
            return None
        e = x._example
        example = torch.zeros([1 if d is None else d for d in shape], dtype=e.dtype, device=e.device)
        return _Declared(example, shape)

    def _outputs(self, args: tuple[Any, ...], kwargs: dict[str, Any], first: Any, second: Any = None) -> Any:
        """Record the node and return its symbolic outputs: shaped as ``first``'s tensors, each dimension that
        differs in ``second`` (the run with other sizes) unknown."""
        declared = first if isinstance(first, _Declared) else None
        if declared is not None:
            first, second = declared.example, None
        first_flat = [t for t in flatten(first) if isinstance(t, torch.Tensor)]
        second_flat = None if second is None else [t for t in flatten(second) if isinstance(t, torch.Tensor)]
        if not first_flat:
            raise ValueError(f"ops.{self.op} gives no tensor on symbolic tensors: it cannot be a graph node")
        shapes: dict[int, tuple[int | None, ...]] = {}
        for i, a in enumerate(first_flat):
            shape: tuple[int | None, ...] = tuple(a.shape)
            if second_flat is not None:
                b = second_flat[i]
                if b.dim() != a.dim():
                    shape = (None,) * a.dim()
                else:
                    shape = tuple(x if x == y else None for x, y in zip(a.shape, b.shape, strict=True))
            if self._data_dependent(args, kwargs):  # nonzero's first dimension is the rank of its input
                shape = (
                    (shape[0], *(None,) * (a.dim() - 1)) if self.op != "unique" and a.dim() > 1 else (None,) * a.dim()
                )
            shapes[id(a)] = declared.shape if declared is not None else shape
        node = Node(self, args[0], dict(kwargs), None, tuple(args[1:]))

        def symbolic_output(t: Any) -> Any:
            if not isinstance(t, torch.Tensor):
                return t
            shape = shapes[id(t)]
            example = torch.zeros([1 if d is None else d for d in shape], dtype=t.dtype, device=t.device)
            return KerasTensor(example, node, 0, name=self.name, shape=shape)

        outputs = _map(symbolic_output, first)
        node.outputs = outputs
        for i, t in enumerate(node.output_tensors):
            t.index = i
        return outputs

    # ---- config ----------------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Keras' config of the op: its name and config arguments (``{"name": "mean", "axis": -1, ...}``)."""
        for k, v in self.static.items():
            if not _plain(v) and not isinstance(v, torch.dtype):
                raise ValueError(
                    f"Cannot write the config of the op node {self.name!r} (keras.ops.{self.op}): its argument "
                    f"{k}={v!r} (of type {type(v).__name__}) has no config form, so a model using it cannot be "
                    "configured or saved."
                )
        return {"name": self.name, **{k: _config_value(v) for k, v in self.static.items()}}

    def serialize(self) -> dict[str, Any]:
        """The op's entry in a Functional config's ``layers``, as Keras writes an ``Operation`` (without its
        ``name`` and ``inbound_nodes``, which the model adds)."""
        return {
            "module": _module_of(self.op),
            "class_name": self.class_name,
            "config": self.get_config(),
            "registered_name": self.class_name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OpNode:
        """A new node of the same op from :meth:`get_config`'s output (``clone_model``'s default clone)."""
        node = cls({k: v for k, v in config.items() if k != "name"}, name=config.get("name"))
        node._from_config = True
        return node

    @staticmethod
    def from_entry(entry: dict[str, Any]) -> OpNode:
        """The op node of a Functional config's entry (Keras' or tritonnn's)."""
        class_name = entry.get("class_name")
        cfg = entry.get("config", {})
        if not isinstance(cfg, dict):
            raise ValueError(f"Expected the config of the op {class_name!r} to be a dict. Received: {cfg!r}")
        op = _op_by_class().get(class_name) if isinstance(class_name, str) else None
        if op is None:
            raise ValueError(
                f"The config holds the op {class_name!r} (module {entry.get('module')!r}), which tritonnn.ops does "
                "not have, so the model cannot be rebuilt"
            )
        return op_class(op).from_config({"name": entry.get("name"), **cfg})


class _Declared:
    """An op's output known from its shape rule: an example tensor and the shape, None where unknown."""

    def __init__(self, example: torch.Tensor, shape: tuple[int | None, ...]):
        self.example = example
        self.shape = shape


_CLASSES: dict[str, type[OpNode]] = {}


def op_class(op: str) -> type[OpNode]:
    """The :class:`OpNode` subclass of the op ``op`` (``Mean`` for ``mean``; ``Absolute`` for ``abs``)."""
    name = _canonical(op)
    if name not in _CLASSES:
        _CLASSES[name] = type(_class_of(name), (OpNode,), {"op": name, "__module__": __name__})
    return _CLASSES[name]


def is_op_entry(entry: Any) -> bool:
    """Whether a Functional config's entry is an op node (module ``keras.src.ops.*``), not a layer."""
    module = entry.get("module") if isinstance(entry, dict) else None
    return isinstance(module, str) and (module.startswith("keras.src.ops") or module.startswith("keras.ops"))


def _map(fn: Callable[[Any], Any], struct: Any) -> Any:
    """``fn`` on each leaf; any tuple (torch's named results too) comes back as a tuple."""
    if isinstance(struct, dict):
        return {k: _map(fn, v) for k, v in struct.items()}
    if isinstance(struct, list):
        return [_map(fn, v) for v in struct]
    if isinstance(struct, tuple):
        return tuple(_map(fn, v) for v in struct)
    return fn(struct)


def _split(fn: Callable[..., Any], op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """An op call's arguments as Keras splits them: ``(static, call_args, call_kwargs)``."""
    signature = inspect.signature(fn)
    bound = signature.bind(*args, **kwargs)  # a TypeError for arguments the op does not take, as in an eager call
    static: dict[str, Any] = {}
    call_args: list[Any] = []
    call_kwargs: dict[str, Any] = {}
    gap = False
    for p in signature.parameters.values():
        given = p.name in bound.arguments
        value = bound.arguments.get(p.name, p.default)
        if p.kind is p.VAR_POSITIONAL:
            if p.name in bound.arguments and gap:
                raise TypeError(f"ops.{op}: its tensors follow an argument left to its default")
            call_args.extend(bound.arguments.get(p.name, ()))
        elif p.kind is p.VAR_KEYWORD:
            call_kwargs.update(bound.arguments.get(p.name, {}))
        elif p.name in _TENSOR_PARAMS or p.name in _OP_TENSOR_PARAMS.get(op, ()) or (given and _is_tensor(value)):
            if not given:
                gap = True
            elif gap or p.kind is p.KEYWORD_ONLY:
                call_kwargs[p.name] = value
            else:
                call_args.append(value)
        elif given or (value is not p.empty and (_plain(value) or isinstance(value, torch.dtype))):
            static[p.name] = value
    if op in ("one_hot", "multi_hot") and static.get("dtype") is None:
        static["dtype"] = config.floatx()  # Keras' op resolves its default dtype before it is made
    return static, call_args, call_kwargs


def _op_call(op: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """An op called on symbolic tensors: its symbolic result (the shape, dtype and number of dimensions of a
    ``KerasTensor`` are answered directly, as Keras' ``ops.shape`` does)."""
    first = args[0] if args else next(iter(kwargs.values()), None)
    if op in ("shape", "ndim", "dtype", "size") and isinstance(first, KerasTensor):
        if op == "shape":
            return first.shape
        if op == "ndim":
            return len(first.shape)
        if op == "dtype":
            return first.dtype
        known = [d for d in first.shape if d is not None]
        return None if len(known) < len(first.shape) else math.prod(known)
    if op in ("convert_to_numpy", "is_tensor"):
        if op == "is_tensor":
            return False
        raise ValueError(
            "A symbolic KerasTensor has no value to convert to NumPy: it stands for the tensors a Functional model "
            "will be called on. Call the model on data instead."
        )
    static, call_args, call_kwargs = _split(fn, op, args, kwargs)
    return op_class(op)(static)(*call_args, **call_kwargs)


_op_dispatch.set_handler(_op_call)
