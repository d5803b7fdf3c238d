"""The Layer base class: Keras semantics on a ``torch.nn.Module``.

A layer creates its weights in ``build(input_shape)`` the first time it is called (or when an input shape is
known), computes in ``call()``, and is a ``torch.nn.Module`` so that ``parameters()``, ``state_dict()`` and
``.to(device)`` work as PyTorch users expect.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import math
import re
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .. import config, constraints, mixed_precision, regularizers
from ..naming import clear_session as clear_session
from ..naming import get_uid as get_uid
from ..naming import unique_name
from ..variable import Variable, check_name, current_path, from_tensor, initial_value, name_scope, scope_stack
from . import symbolic, tracking
from .input_spec import assert_input_compatibility

# Keras' UserWarning for a layer given `input_shape=` or `input_dim=` (Sequential still builds from it).
INPUT_SHAPE_WARNING = (
    "Do not pass an `input_shape`/`input_dim` argument to a layer. When using Sequential models, prefer using an "
    "`Input(shape)` object as the first layer in the model instead."
)


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()  # Keras' to_snake_case: "GlobalMaxPooling1D" -> ..._pooling1d


def shape_of(x: Any) -> Any:
    """The shape of a tensor, array, or a nest of them, with the batch dimension as ``None``."""
    if isinstance(x, (list, tuple)):
        return type(x)(shape_of(v) for v in x)
    if isinstance(x, dict):
        return {k: shape_of(v) for k, v in x.items()}
    if x is None:  # an optional argument left out
        return None
    return (None, *tuple(x.shape[1:]))


_module_getattr = torch.nn.Module.__getattr__


def _is_array(x: Any) -> bool:
    """A NumPy array or scalar, or another library's array (anything with ``__array__``), not a torch tensor."""
    return isinstance(x, (np.ndarray, np.generic)) or (not isinstance(x, torch.Tensor) and hasattr(x, "__array__"))


def _is_number_list(value: Any) -> bool:
    """A non-empty list/tuple of Python numbers or of such lists: one array written out by hand, not a list of
    arrays (several inputs)."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    return all(
        isinstance(v, (bool, int, float, np.number)) or (isinstance(v, (list, tuple)) and (not v or _is_number_list(v)))
        for v in value
    )


def _ragged_depth(value: Any) -> int | None:
    """The first depth at which a nested list's entries have different lengths (None when it is rectangular)."""
    level: list[Any] = [value]
    depth = 0
    while level:
        lengths = {len(v) if isinstance(v, (list, tuple)) else -1 for v in level}
        if len(lengths) > 1:
            return depth
        level = [x for v in level if isinstance(v, (list, tuple)) for x in v]
        depth += 1
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def array_to_tensor(x: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """An array-like (a NumPy array or scalar, anything with ``__array__``, a nested list of numbers) as a tensor on
    ``device`` (default: ``config.default_device()``); float64 becomes floatx (float32), as Keras converts inputs.

    Raises ``ValueError`` for data NumPy holds only as objects or text (``dtype=object``, strings).
    """
    arr = np.asarray(x)
    if arr.dtype.kind in "OUSV":
        raise ValueError(f"it holds non-numeric data, dtype {arr.dtype.str!r}")
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.float64:
        t = t.to(config.standardize_dtype(config.floatx()))
    return t.to(config.default_device() if device is None else device)


def _dtypes_for(dtype: Any) -> tuple[torch.dtype, torch.dtype]:
    """(variable dtype, compute dtype) for a layer's ``dtype`` argument: None is the global policy; a policy name
    or ``Policy`` gives its two dtypes; a plain dtype is both. A serialized policy (Keras 3 writes a layer's
    ``"dtype"`` as ``{"class_name": "DTypePolicy", "config": {"name": ...}}``) is read as its name."""
    if isinstance(dtype, dict) and dtype.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
        name = (dtype.get("config") or {}).get("name")
        if not isinstance(name, str):
            raise ValueError(f"Unknown dtype policy config. Received: dtype={dtype!r}")
        dtype = name
    if dtype is None:
        policy = mixed_precision.global_policy()
    elif isinstance(dtype, mixed_precision.Policy):
        policy = dtype
    elif isinstance(dtype, str) and dtype.startswith("mixed_"):
        policy = mixed_precision.Policy(dtype)
    else:
        d = config.standardize_dtype(dtype)
        return d, d
    return config.standardize_dtype(policy.variable_dtype), config.standardize_dtype(policy.compute_dtype)


class _WeightBudget:
    """What :func:`weight_budget` allows: ``limit`` elements in all, ``used`` of them created so far."""

    def __init__(self, limit: int, source: str):
        self.limit, self.source, self.used = limit, source, 0

    def take(self, layer: str, weight: str, shape: tuple[int, ...]) -> None:
        n = math.prod(shape)  # Python ints: no overflow, whatever the config asks for
        if self.used + n > self.limit:
            raise ValueError(
                f"Layer {layer!r} would create the weight {weight!r} of shape {shape} ({n} elements), but "
                f"{self.source} holds {self.limit} elements of model weights in all ({self.used} already created): "
                "the model being built does not match the weights it is built for (a corrupt or forged file, or "
                "another architecture). Nothing was allocated for this weight."
            )
        self.used += n


_WEIGHT_BUDGET: contextvars.ContextVar[_WeightBudget | None] = contextvars.ContextVar(
    "tritonnn_weight_budget", default=None
)


@contextlib.contextmanager
def weight_budget(n_elements: int, source: str = "the file being loaded") -> Iterator[None]:
    """Bound the elements that :meth:`Layer.add_weight` may create inside the block, in all.

    A weight that would take the total beyond ``n_elements`` raises a ``ValueError`` naming the layer, the weight,
    its shape and ``source`` before its value is allocated. ``tritonnn.saving`` wraps the rebuilding of a model from
    a file's config in it, with the number of elements the file stores: a small file whose config asks for a huge
    layer is refused instead of exhausting memory. A block inside another replaces it until it ends.

    Args:
        n_elements: the most elements (not bytes) the weights created in the block may hold together.
        source: what the limit comes from, for the error message.
    """
    if isinstance(n_elements, bool) or not isinstance(n_elements, int) or n_elements < 0:
        raise ValueError(f"Expected `n_elements` to be a non-negative integer. Received: n_elements={n_elements!r}")
    token = _WEIGHT_BUDGET.set(_WeightBudget(n_elements, str(source)))
    try:
        yield
    finally:
        _WEIGHT_BUDGET.reset(token)


def check_unquantized(layer: str, lora_rank: Any = None, quantization_config: Any = None) -> None:
    """Keras 3's ``lora_rank`` / ``quantization_config`` arguments of ``Dense`` and ``Embedding``: ``None`` (what
    every Keras config of an unquantized layer holds) is accepted; anything else is refused by name, since
    tritonnn implements neither LoRA adapters nor quantized weights (it would otherwise train something else)."""
    if lora_rank is not None:
        raise ValueError(f"{layer}: LoRA (`lora_rank={lora_rank!r}`) is not supported by tritonnn")
    if quantization_config is not None:
        raise ValueError(f"{layer}: quantized weights (`quantization_config`) are not supported by tritonnn")


def _scoped_build(build: Any) -> Any:
    """``build`` run inside the layer's name scope, as Keras wraps every layer's ``build``: the weights it creates,
    and the sublayers it builds, get paths under the layer's name (``sequential/dense/kernel``), also when ``build``
    is called directly (``layer.build(shape)``) rather than by the first call."""

    @functools.wraps(build)
    def scoped(self: Layer, *args: Any, **kwargs: Any) -> Any:
        with self._open_name_scope():
            return build(self, *args, **kwargs)

    scoped._tritonnn_scoped = True
    return scoped


class Layer(torch.nn.Module):
    """Base class of every layer; subclass it as in Keras (``build``, ``call``, ``add_weight``, ``get_config``).

    Args:
        name: the layer's name; unique automatic names otherwise.
        trainable: whether the layer's weights are updated by training.
        dtype: the dtype of the layer's weights (default: ``tritonnn.config.floatx()``).
        input_shape: optional shape of one sample (without the batch dimension); lets a model build eagerly.
    """

    _autocast_inputs = True  # float and integer inputs are cast to the layer's compute dtype
    input_spec: Any = None  # an InputSpec (or a structure of them) that a subclass sets: checked at every call

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if inspect.isfunction(build) and not getattr(build, "_tritonnn_scoped", False):
            cls.build = _scoped_build(build)  # Keras' build wrapper: a build runs in the layer's name scope

    def __init__(
        self,
        *,
        name: str | None = None,
        trainable: bool = True,
        dtype: str | torch.dtype | None = None,
        input_shape: tuple[int | None, ...] | None = None,
        activity_regularizer: Any = None,
        **kwargs: Any,
    ):
        super().__init__()
        if "input_dim" in kwargs:  # Keras' older spelling of a one-axis input_shape: input_dim=4 is (4,)
            input_dim = kwargs.pop("input_dim")
            if input_dim is not None:
                input_shape = (input_dim,)
        if input_shape is not None:  # Keras' warning, at the layer's construction (stacklevel: the subclass' file)
            warnings.warn(INPUT_SHAPE_WARNING, stacklevel=2)
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if name is not None and (not isinstance(name, str) or "/" in name):  # it names the layer's variable paths
            raise ValueError(
                "Argument `name` must be a string and cannot contain character `/`. "
                f"Received: name={name} (of type {type(name)})"
            )
        self.name = name or unique_name(_snake(type(self).__name__))
        self.built = False
        self._trainable = bool(trainable)
        self._dtype, self._compute_dtype = _dtypes_for(dtype)
        self._inbound_nodes: list[symbolic.Node] = []
        self._input_shape_arg = None if input_shape is None else tuple(input_shape)
        self._layer_losses: list[torch.Tensor] = []
        self._regularizers: list[tuple[torch.nn.Parameter, Any]] = []
        # Keras' base-layer argument: a penalty on the layer's outputs, added as a loss at every call
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._call_takes_training = "training" in inspect.signature(self.call).parameters

    # ---- weights -------------------------------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        """Create the layer's weights; called once with the input shape (batch dimension ``None``)."""
        self.built = True

    def add_weight(
        self,
        shape: tuple[int, ...] | None = None,
        initializer: Any = None,
        dtype: str | torch.dtype | None = None,
        trainable: bool = True,
        regularizer: Any = None,
        name: str | None = None,
        constraint: Any = None,
        autocast: bool = True,
        aggregation: str | None = "none",
        overwrite_with_gradient: bool = False,
    ) -> Variable:
        """Create a weight of this layer (a :class:`tritonnn.Variable` on the default device) and register it.

        As in Keras: ``initializer`` defaults to ``"glorot_uniform"`` for a float dtype and ``"zeros"`` otherwise
        (a callable ``f(shape, dtype)`` is taken too), ``dtype`` to the layer's variable dtype; the variable's
        ``name`` is ``name`` (``variable``, ``variable_1``... when None) and its ``path`` the open name scopes, the
        layer's name and ``name`` (``sequential/dense/kernel``). The layer holds it as the attribute ``name`` (a
        suffix ``_1``... when the layer has one of that name; ``weight_<n>`` when None): the ``state_dict`` key.

        Inside :func:`weight_budget` the weight's size is checked against the budget before anything is allocated.
        """
        if name is not None:
            check_name(name)
        if any(s is None for s in (shape or ())):
            with name_scope(self.name, caller=self):
                where = f"{current_path()}/{name or 'variable'}"
            raise ValueError(
                "Shapes used to initialize variables must be fully-defined (no `None` dimensions). Received: "
                f"shape={tuple(shape)} for variable path='{where}'"
            )
        shape = tuple(int(s) for s in (shape or ()))
        if any(s < 0 for s in shape):
            raise ValueError(f"Weight shapes must be non-negative. Received: shape={shape}")
        base = name or f"weight_{len(self._parameters)}"
        budget = _WEIGHT_BUDGET.get()
        if budget is not None:
            budget.take(self.name, base, shape)
        dtype = config.standardize_dtype(dtype or self._dtype)
        if initializer is None:
            initializer = "glorot_uniform" if dtype.is_floating_point else "zeros"
        with name_scope(self.name, caller=self):
            if name is None:
                name = unique_name("variable")
            path = f"{current_path()}/{name}"
        value = initial_value(initializer, shape, dtype).to(config.default_device())
        param = from_tensor(
            value, name, path, trainable, autocast, aggregation or "none", requires_grad=trainable and self._trainable
        )
        if self.__dict__.get(base, 0) is None:  # a placeholder such as `self.bias = None` set in __init__
            del self.__dict__[base]
        attr = base
        i = 1
        while attr in self._parameters or hasattr(type(self), attr):
            attr, i = f"{base}_{i}", i + 1
        self.register_parameter(attr, param)
        reg = regularizers.get(regularizer)
        param.regularizer = reg
        if reg is not None:
            self._regularizers.append((param, reg))
        # Keras' ``variable.constraint``: the optimizer projects the weight with it after each update.
        param.constraint = constraints.get(constraint)
        param.overwrite_with_gradient = overwrite_with_gradient
        return param

    # ---- name scopes (Keras' variable paths) ----------------------------------------------------------------------
    _parent_path: str | None = None  # the scope path where the layer was first built or called
    _call_scope: name_scope | None = None  # the scope its calls push (made at the first call that needs one)

    def _open_name_scope(self) -> name_scope:
        """The name scope of this layer's build and calls (Keras' ``_open_name_scope``): the layer's name, under
        the path at which it was first built or called, whatever scopes are open later."""
        if self._parent_path is None:
            self._parent_path = current_path()
        return name_scope(self.name, caller=self)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self._flatten_layers():
            layer._trainable = bool(value)
            for p in layer._parameters.values():
                if p is not None:
                    p.requires_grad_(bool(value) and getattr(p, "_tritonnn_trainable", True))

    def _flatten_layers(self) -> list[Layer]:
        """This layer and every sublayer, each once, in creation order."""
        seen: list[Layer] = []
        for m in self.modules():
            if isinstance(m, Layer) and m not in seen:
                seen.append(m)
        return seen

    @property
    def weights(self) -> list[torch.nn.Parameter]:
        out, ids = [], set()
        for p in self.parameters():
            if id(p) not in ids:
                ids.add(id(p))
                out.append(p)
        return out

    @property
    def trainable_weights(self) -> list[torch.nn.Parameter]:
        """The weights training updates (``requires_grad``, a Variable's ``trainable``); none when the layer is not
        trainable, as in Keras (even one a user made trainable again after freezing the layer)."""
        if not self._trainable:
            return []
        return [p for p in self.weights if p.requires_grad]

    @property
    def non_trainable_weights(self) -> list[torch.nn.Parameter]:
        if not self._trainable:
            return self.weights
        return [p for p in self.weights if not p.requires_grad]

    @property
    def variables(self) -> list[torch.nn.Parameter]:
        return self.weights

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't built. "
                "You can build it manually via: `layer.build(input_shape)`."
            )
        return sum(p.numel() for p in self.weights)

    def get_weights(self) -> list[Any]:
        return [p.detach().cpu().numpy().copy() for p in self.weights]  # copies, as Keras returns

    def set_weights(self, weights: list[Any]) -> None:
        params = self.weights
        if len(weights) != len(params):
            raise ValueError(
                f"Layer {self.name!r} expected {len(params)} weights, but received {len(weights)} weights."
            )
        with torch.no_grad():
            for p, w in zip(params, weights, strict=True):
                value = torch.as_tensor(w)
                if tuple(value.shape) != tuple(p.shape):
                    raise ValueError(
                        f"Layer {self.name!r} weight shape {tuple(p.shape)} is not compatible with provided "
                        f"weight shape {tuple(value.shape)}."
                    )
                p.copy_(value.to(p.device, p.dtype))

    # ---- losses --------------------------------------------------------------------------------------------
    def add_loss(self, loss: torch.Tensor) -> None:
        """Add a loss term (e.g. a regularizer) from ``call()``; collected in ``losses`` and added in training."""
        self._layer_losses.append(loss)

    @property
    def losses(self) -> list[torch.Tensor]:
        """The losses added by the last call and the weight regularization penalties, of this layer and below."""
        out: list[torch.Tensor] = []
        for layer in self._flatten_layers():
            out.extend(layer._layer_losses)
            out.extend(reg(p) for p, reg in layer._regularizers)
        return out

    def _clear_losses(self) -> None:
        for layer in self._flatten_layers():
            if layer._layer_losses:  # emptied in place: no nn.Module.__setattr__ per layer per step
                del layer._layer_losses[:]

    # ---- calling -------------------------------------------------------------------------------------------
    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return inputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(*args, **kwargs)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the layer computes in (the policy's compute dtype under mixed precision)."""
        return self._compute_dtype

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the layer's weights (float32 under the mixed policies)."""
        return self._dtype

    def _maybe_build(self, inputs: Any, args: tuple[Any, ...] = ()) -> None:
        if not self.built:
            tensors = symbolic.build_tensors(self)  # called on symbolic tensors: their shapes, None where unknown
            if tensors is not None:
                inputs, args = tensors
            if args:
                self.build(**self._build_shapes(inputs, args))
            else:
                self.build(shape_of(inputs))
            self.built = True

    def _build_shapes(self, inputs: Any, args: tuple[Any, ...]) -> dict[str, Any]:
        """``build``'s arguments for a call with several positional tensors (Keras' rule): a ``build`` of one
        argument gets the first tensor's shape; one of several gets ``<name>_shape`` for each argument ``<name>``
        of ``call``."""
        params = [
            p
            for p in inspect.signature(self.build).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        if len(params) <= 1:
            return {params[0].name: shape_of(inputs)} if params else {}
        bound = inspect.signature(self.call).bind_partial(inputs, *args).arguments
        shapes = {f"{name}_shape": shape_of(value) for name, value in bound.items()}
        unknown = [p.name for p in params if p.name not in shapes and p.default is p.empty]
        if unknown:
            raise ValueError(
                f"Layer {self.name!r}: for a `build()` method with more than one argument, all arguments should have "
                f"a `_shape` suffix and match an argument from `call()`. Unmatched: {unknown}; the call's tensor "
                f"arguments give {sorted(shapes)}."
            )
        return {p.name: shapes[p.name] for p in params if p.name in shapes}

    def _autocast(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor) and self._autocast_inputs and x.dtype != self.compute_dtype:
            if x.dtype.is_floating_point or not x.dtype.is_complex:
                return x.to(self.compute_dtype)
        return x

    def __call__(self, inputs: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        """Call the layer: on tensors (NumPy arrays and lists of numbers are converted first), or on symbolic
        tensors from ``Input`` (which records the call in the graph and returns symbolic outputs).

        ``inputs`` is the first positional argument (one tensor, or a list or dict of them); further positional
        arguments are more tensors for a ``call(self, a, b)`` that takes several (``None`` for one left out).
        """
        if args or kwargs or not isinstance(inputs, torch.Tensor):
            if symbolic.is_symbolic((inputs, args, kwargs)):
                if training is not None and self._call_takes_training:
                    kwargs["training"] = training  # an explicit training= is part of the graph, as in Keras
                # arrays beside the symbolic tensors are constants of the graph: tensors, as in an eager call
                device = self._input_device()
                inputs, args, kwargs = symbolic.map_structure(
                    lambda v: array_to_tensor(v, device) if _is_array(v) else v, (inputs, args, kwargs)
                )
                if self.input_spec is not None:
                    assert_input_compatibility(self.input_spec, inputs, self.name)
                return symbolic.symbolic_call(self, inputs, args, kwargs)
            inputs, args, kwargs = self._convert_arguments(inputs, args, kwargs)
        if self.input_spec is not None:  # a layer's declared inputs (Keras' InputSpec), checked at every call
            assert_input_compatibility(self.input_spec, inputs, self.name)
        if self._call_takes_training:
            kwargs["training"] = training
        return self._concrete_call(inputs, args, kwargs)

    def _input_device(self) -> torch.device:
        """Where converted inputs go: the device of the layer's weights, else the default device."""
        for p in self.parameters():
            return p.device
        return config.default_device()

    def _convert_arguments(
        self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        """Keras converts array arguments to tensors at ``__call__``: NumPy arrays (anything with
        ``__array__``) and, here, nested lists of numbers become tensors on the layer's device, float64 as floatx
        (float32); keyword arguments are converted only when they are arrays. What cannot be a tensor is a clear
        error naming the layer and the type."""
        if inputs is None:
            raise ValueError(
                f"Inputs to a layer should be tensors. Got 'None' (of type {type(None)}) as input for layer "
                f"'{self.name}'."
            )
        device = self._input_device()
        inputs = self._to_tensors(inputs, device, "its inputs")
        args = tuple(self._to_tensors(a, device, f"its positional argument {i + 2}") for i, a in enumerate(args))
        if kwargs:
            kwargs = {k: array_to_tensor(v, device) if _is_array(v) else v for k, v in kwargs.items()}
        return inputs, args, kwargs

    def _to_tensors(self, value: Any, device: torch.device, what: str) -> Any:
        if value is None or isinstance(value, torch.Tensor):
            return value
        if _is_array(value):
            return self._array(value, device, what)
        if _is_number_list(value):
            rows = _ragged_depth(value)
            if rows is not None:
                raise ValueError(
                    f"Layer '{self.name}' ({type(self).__name__}) received a ragged list as {what}: its entries at "
                    f"depth {rows} have different lengths. Pass a rectangular list or an array."
                )
            return self._array(value, device, what)
        if isinstance(value, (list, tuple)):
            return type(value)(self._to_tensors(v, device, what) for v in value)
        if isinstance(value, dict):
            return {k: self._to_tensors(v, device, what) for k, v in value.items()}
        hint = (
            " A Python number is not a tensor: pass it by keyword (an option of the call), or as an array."
            if isinstance(value, (bool, int, float, complex))
            else ""
        )
        raise ValueError(
            f"Layer '{self.name}' ({type(self).__name__}) cannot convert {what} to a tensor: received a value of type "
            f"{type(value).__name__}: {_short_repr(value)}. Pass tensors, NumPy arrays or (nested) lists of numbers, "
            f"or a list or dict of them.{hint}"
        )

    def _array(self, value: Any, device: torch.device, what: str) -> torch.Tensor:
        try:
            return array_to_tensor(value, device)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) cannot convert {what} to a tensor: received "
                f"{type(value).__name__} {_short_repr(value)} ({e})."
            ) from e

    def _concrete_call(self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.built and not self._modules:  # a built layer without sublayers creates no variable in its call
            return self._build_and_call(inputs, args, kwargs)
        # In the layer's name scope (`with self._open_name_scope():`, pushed by hand: a model's every call passes
        # here), so that what it builds, and its sublayers, get paths under its name.
        stack = scope_stack()
        if stack and stack[-1].caller is self and stack[-1].name == self.name:
            return self._build_and_call(inputs, args, kwargs)  # its build or an outer call of it opened the scope
        scope = self._call_scope
        if scope is None or scope.name != self.name:
            scope = self.__dict__["_call_scope"] = self._open_name_scope()  # made once: the path is fixed by then
        stack.append(scope)
        try:
            return self._build_and_call(inputs, args, kwargs)
        finally:
            stack.pop()

    def _build_and_call(self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if isinstance(inputs, (list, tuple)):
            inputs = type(inputs)(self._autocast(v) for v in inputs)
        elif isinstance(inputs, dict):
            inputs = {k: self._autocast(v) for k, v in inputs.items()}
        else:
            inputs = self._autocast(inputs)
        if args:
            args = tuple(symbolic.map_structure(self._autocast, a) for a in args)
        self._maybe_build(inputs, args)
        outputs = super().__call__(inputs, *args, **kwargs)
        if self.activity_regularizer is not None:
            self.add_loss(self.activity_regularizer(outputs) / outputs.shape[0])
        return outputs

    # ---- the symbolic graph ----------------------------------------------------------------------------------
    @property
    def input(self) -> Any:
        """The symbolic input(s) of the layer's first call on symbolic tensors (one tensor, or a list)."""
        return self._node_attribute("input_tensors", "input")

    @property
    def output(self) -> Any:
        """The symbolic output(s) of the layer's first call on symbolic tensors (one tensor, or a list)."""
        return self._node_attribute("output_tensors", "output")

    def _node_attribute(self, attr: str, what: str) -> Any:
        if not self._inbound_nodes:
            raise AttributeError(f"The layer {self.name} has never been called and thus has no defined {what}.")
        values = getattr(self._inbound_nodes[0], attr)
        return values[0] if len(values) == 1 else values

    def __getattr__(self, name: str) -> Any:
        try:
            return _module_getattr(self, name)
        except AttributeError:
            # A property of the class that raised AttributeError (``output`` of a layer never called): Python
            # then asks __getattr__, and nn.Module's would replace the property's message with "no attribute".
            # Run it again so that its own error, which says why, is the one raised.
            attr = next((k.__dict__[name] for k in type(self).__mro__ if name in k.__dict__), None)
            if isinstance(attr, property) and attr.fget is not None:
                return attr.fget(self)
            raise

    def __setattr__(self, name: str, value: Any) -> None:
        # Lists, dicts and tuples of layers are tracked, as Keras tracks them (layers/tracking.py): their layers
        # are registered as one ModuleList child under the attribute's name.
        d = self.__dict__
        if "_modules" in d:
            modules = d["_modules"]
            if name in modules and name in d:  # a container held here before: its registration goes with it
                del modules[name]
            container = tracking.tracked(self, name, value)
            if container is not None:
                super().__setattr__(name, container)
                tracking.register(self, name, container)
                return
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        if name in d and name in d.get("_modules", ()):  # a tracked container: the attribute and its layers
            del d["_modules"][name]
            object.__delattr__(self, name)
            return
        super().__delattr__(name)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape for an input shape, found by calling the layer on zeros when not overridden."""
        dummy = torch.zeros([1 if d is None else d for d in input_shape], device=config.default_device())
        with torch.no_grad():
            out = self(dummy, training=False)
        self._clear_losses()
        return (None, *tuple(out.shape[1:]))

    # ---- config --------------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        dtype = str(self._dtype).replace("torch.", "")
        if self._compute_dtype != self._dtype:
            dtype = "mixed_" + str(self._compute_dtype).replace("torch.", "")
        # Keras' base entries: the activity regularizer only when there is one; an `input_shape=` argument is not
        # one (a Sequential records it as its InputLayer; configs that hold it, tritonnn's earlier ones, still load)
        cfg: dict[str, Any] = {"name": self.name, "trainable": self.trainable, "dtype": dtype}
        if self.activity_regularizer is not None:
            cfg["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
