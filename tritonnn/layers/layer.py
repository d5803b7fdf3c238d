"""The Layer base class: Keras semantics on a ``torch.nn.Module``.

A layer creates its weights in ``build(input_shape)`` the first time it is called (or when an input shape is
known), computes in ``call()``, and is a ``torch.nn.Module`` so that ``parameters()``, ``state_dict()`` and
``.to(device)`` work as PyTorch users expect.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import torch

from .. import config, constraints, initializers, mixed_precision, regularizers
from . import symbolic

_NAME_COUNTS: defaultdict[str, int] = defaultdict(int)


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()  # Keras' to_snake_case: "GlobalMaxPooling1D" -> ..._pooling1d


def unique_name(base: str) -> str:
    """Keras' automatic names: ``dense``, ``dense_1``, ``dense_2``..."""
    count = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if count == 0 else f"{base}_{count}"


def get_uid(prefix: str = "") -> int:
    """Keras' ``keras.backend.get_uid``: 1, 2, 3... per prefix, on the counter that automatic layer names use (after
    one ``Dense``, ``get_uid("dense")`` is 2)."""
    _NAME_COUNTS[prefix] += 1
    return _NAME_COUNTS[prefix]


def clear_session() -> None:
    """Reset automatic layer names (Keras' ``keras.backend.clear_session``)."""
    _NAME_COUNTS.clear()


def shape_of(x: Any) -> Any:
    """The shape of a tensor, array, or a nest of them, with the batch dimension as ``None``."""
    if isinstance(x, (list, tuple)):
        return type(x)(shape_of(v) for v in x)
    if isinstance(x, dict):
        return {k: shape_of(v) for k, v in x.items()}
    return (None, *tuple(x.shape[1:]))


def _dtypes_for(dtype: Any) -> tuple[torch.dtype, torch.dtype]:
    """(variable dtype, compute dtype) for a layer's ``dtype`` argument: None is the global policy; a policy name
    or ``Policy`` gives its two dtypes; a plain dtype is both."""
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


class Layer(torch.nn.Module):
    """Base class of every layer; subclass it as in Keras (``build``, ``call``, ``add_weight``, ``get_config``).

    Args:
        name: the layer's name; unique automatic names otherwise.
        trainable: whether the layer's weights are updated by training.
        dtype: the dtype of the layer's weights (default: ``tritonnn.config.floatx()``).
        input_shape: optional shape of one sample (without the batch dimension); lets a model build eagerly.
    """

    _autocast_inputs = True  # float and integer inputs are cast to the layer's compute dtype

    def __init__(
        self,
        *,
        name: str | None = None,
        trainable: bool = True,
        dtype: str | torch.dtype | None = None,
        input_shape: tuple[int | None, ...] | None = None,
        **kwargs: Any,
    ):
        super().__init__()
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        self.name = name or unique_name(_snake(type(self).__name__))
        self.built = False
        self._trainable = bool(trainable)
        self._dtype, self._compute_dtype = _dtypes_for(dtype)
        self._inbound_nodes: list[symbolic.Node] = []
        self._input_shape_arg = None if input_shape is None else tuple(input_shape)
        self._layer_losses: list[torch.Tensor] = []
        self._regularizers: list[tuple[torch.nn.Parameter, Any]] = []
        self.activity_regularizer = None
        self._call_takes_training = "training" in inspect.signature(self.call).parameters

    # ---- weights -------------------------------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        """Create the layer's weights; called once with the input shape (batch dimension ``None``)."""
        self.built = True

    def add_weight(
        self,
        shape: tuple[int, ...] | None = None,
        initializer: Any = "glorot_uniform",
        dtype: str | torch.dtype | None = None,
        trainable: bool = True,
        regularizer: Any = None,
        name: str | None = None,
        constraint: Any = None,
    ) -> torch.nn.Parameter:
        """Create a weight of this layer (a ``torch.nn.Parameter`` on the default device) and register it.

        Inside :func:`weight_budget` the weight's size is checked against the budget before anything is allocated.
        """
        shape = tuple(int(s) for s in (shape or ()))
        if any(s < 0 for s in shape):
            raise ValueError(f"Weight shapes must be non-negative. Received: shape={shape}")
        base = name or f"weight_{len(self._parameters)}"
        budget = _WEIGHT_BUDGET.get()
        if budget is not None:
            budget.take(self.name, base, shape)
        init = initializers.get(initializer)
        value = init(shape, config.standardize_dtype(dtype or self._dtype))
        param = torch.nn.Parameter(value.to(config.default_device()), requires_grad=trainable and self._trainable)
        param._tritonnn_trainable = bool(trainable)  # the weight's own flag; the layer's is applied on top
        if self.__dict__.get(base, 0) is None:  # a placeholder such as `self.bias = None` set in __init__
            del self.__dict__[base]
        attr = base
        i = 1
        while attr in self._parameters or hasattr(type(self), attr):
            attr, i = f"{base}_{i}", i + 1
        self.register_parameter(attr, param)
        param._tritonnn_path = f"{self.name}/{attr}"
        reg = regularizers.get(regularizer)
        if reg is not None:
            self._regularizers.append((param, reg))
        # Keras' ``variable.constraint``: the optimizer projects the weight with it after each update.
        param.constraint = constraints.get(constraint)
        return param

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
        return [p for p in self.weights if p.requires_grad]

    @property
    def non_trainable_weights(self) -> list[torch.nn.Parameter]:
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

    def _maybe_build(self, inputs: Any) -> None:
        if not self.built:
            self.build(shape_of(inputs))
            self.built = True

    def _autocast(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor) and self._autocast_inputs and x.dtype != self.compute_dtype:
            if x.dtype.is_floating_point or not x.dtype.is_complex:
                return x.to(self.compute_dtype)
        return x

    def __call__(self, inputs: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if args:
            raise TypeError(
                f"Layer {self.name!r} takes its inputs as one argument (a tensor, or a list or dict of tensors); "
                f"pass other arguments by keyword. Received {1 + len(args)} positional arguments."
            )
        if symbolic.is_symbolic(inputs):
            return symbolic.symbolic_call(self, inputs, kwargs)
        if self._call_takes_training:
            kwargs["training"] = training
        return self._concrete_call(inputs, kwargs)

    def _concrete_call(self, inputs: Any, kwargs: dict[str, Any]) -> Any:
        if isinstance(inputs, (list, tuple)):
            inputs = type(inputs)(self._autocast(v) for v in inputs)
        elif isinstance(inputs, dict):
            inputs = {k: self._autocast(v) for k, v in inputs.items()}
        else:
            inputs = self._autocast(inputs)
        self._maybe_build(inputs)
        outputs = super().__call__(inputs, **kwargs)
        if self.activity_regularizer is not None:
            self.add_loss(self.activity_regularizer(outputs) / outputs.shape[0])
        return outputs

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
        cfg: dict[str, Any] = {"name": self.name, "trainable": self.trainable, "dtype": dtype}
        if self._input_shape_arg is not None:
            cfg["input_shape"] = self._input_shape_arg
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
