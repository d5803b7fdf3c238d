"""Core layers: Input, InputLayer, Dense, Activation, Flatten, Reshape."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from .. import activations, config, constraints, initializers, kernels, regularizers
from ..kernels.activations import ACTIVATIONS, ALIASES, activation_reference, canonical
from . import symbolic
from .layer import Layer, check_unquantized, unique_name

# Activations that are not element-wise: computed after the dense op by a row kernel.
ROW_ACTIVATIONS = ("softmax", "log_softmax")


def _resolve_activation(activation: Any) -> Any:
    """A layer's activation: a name the kernels run (fused in the dense epilogue, or a row softmax), or a callable
    that runs after the linear dense op.

    Names: Keras' (every ``keras.activations`` name) and the kernel table's extra spellings (``gelu_tanh``).
    Callables: one of ``tritonnn.activations``' built-in functions becomes its kernel name (so
    ``activation=keras.activations.relu`` is ``activation="relu"``); any other callable is kept as it is. A
    function is matched by identity, never by its ``__name__``: a user's own ``def relu`` runs as written.
    """
    if activation is None:
        return "linear"
    if isinstance(activation, dict):  # a custom function's serialized form, found only through custom_objects
        activation = activations.deserialize(activation)
    if isinstance(activation, str):
        if activation in ROW_ACTIVATIONS or activation in ACTIVATIONS or activation in ALIASES:
            return canonical(activation) if activation not in ROW_ACTIVATIONS else activation
        if activation in activations.ALL_OBJECTS:  # a Keras name the kernels do not fuse (celu, glu, ...)
            return activations.ALL_OBJECTS[activation]
        canonical(activation)  # raises, naming the closest valid name
    if callable(activation):
        return activations.fused_name(activation) or activation
    raise ValueError(
        "Expected `activation` to be None, an activation name or a callable. "
        f"Received: activation={activation!r} ({type(activation).__name__})"
    )


def _serialize_activation(activation: Any) -> Any:
    return activation if isinstance(activation, str) else activations.serialize(activation)


def apply_activation(name: Any, z: torch.Tensor) -> torch.Tensor:
    """Apply a resolved activation: row softmaxes by their kernels, element-wise names through the table, a
    callable by calling it.

    A softmax output keeps its logits (``_tritonnn_logits``) so that a cross-entropy loss can take the fused
    logits path instead of ``log(probabilities)``, as Keras does.
    """
    if name == "softmax":
        y = kernels.softmax(z, axis=-1)
        y._tritonnn_logits = z
        return y
    if name == "log_softmax":
        return kernels.log_softmax(z, axis=-1)
    if not isinstance(name, str):
        return name(z)
    return activation_reference(name, z)


class InputLayer(Layer):
    """The entry of a model: declares the shape (without batch) and dtype of one input.

    ``layer.output`` is the symbolic tensor that ``Input(...)`` returns. The shape is given as ``shape`` (one
    sample) with an optional ``batch_size``, or as ``batch_shape`` (batch dimension first), as in Keras; the config
    is Keras' (``batch_shape``, ``dtype``, ``sparse``, ``ragged``, ``name``, ``optional``). Sparse, ragged and
    optional inputs are not supported: those flags must be false.
    """

    _autocast_inputs = False

    def __init__(
        self,
        shape: tuple[int | None, ...] | None = None,
        batch_size: int | None = None,
        dtype: str | torch.dtype | None = None,
        sparse: bool | None = None,
        ragged: bool | None = None,
        batch_shape: tuple[int | None, ...] | None = None,
        optional: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ):
        if "input_shape" in kwargs:  # Keras' deprecated spelling, with its warning
            warnings.warn("Argument `input_shape` is deprecated. Use `shape` instead.", stacklevel=2)
            input_shape = kwargs.pop("input_shape")
            shape = input_shape if shape is None else shape
        if batch_shape is None and "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        for flag, value in (("sparse", sparse), ("ragged", ragged), ("optional", optional)):
            if value:
                raise ValueError(f"tritonnn does not support `{flag}=True` inputs. Received: {flag}={value!r}")
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
            if batch_size is not None:
                raise ValueError("You cannot pass both `batch_size` and `batch_shape` at the same time.")
            if isinstance(batch_shape, (str, bytes)) or not isinstance(batch_shape, (list, tuple)) or not batch_shape:
                raise ValueError(
                    "Expected `batch_shape` to be a non-empty tuple (batch dimension first). "
                    f"Received: batch_shape={batch_shape!r}"
                )
            batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
        if shape is None:
            raise ValueError("You must pass a `shape` argument to InputLayer/Input.")
        if isinstance(shape, int):
            shape = (shape,)
        shape = tuple(shape)
        if any(d is not None and (not isinstance(d, int) or isinstance(d, bool) or d < 0) for d in shape):
            raise ValueError(f"Input shape must be a tuple of non-negative integers or None. Received: shape={shape}")
        if batch_size is not None and (
            not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
        ):
            raise ValueError(
                f"Expected `batch_size` to be a positive integer or None. Received: batch_size={batch_size!r}"
            )
        super().__init__(name=name or unique_name("input_layer"), dtype=dtype, **kwargs)
        self.shape = shape
        self.batch_size = batch_size
        self.built = True
        example = torch.zeros((1, *[1 if d is None else d for d in shape]), dtype=self._dtype)
        node = symbolic.Node(self, None, {}, None)
        # self.output, the node's output: Keras' shape, with the batch size when one is fixed
        node.outputs = symbolic.KerasTensor(example, node, 0, name=self.name, shape=(batch_size, *shape))
        self._output_shape = (None, *shape)

    @property
    def batch_shape(self) -> tuple[int | None, ...]:
        """The input's shape with the batch dimension first (``batch_size``, None when not fixed)."""
        return (self.batch_size, *self.shape)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs

    def get_config(self) -> dict[str, Any]:
        return {
            "batch_shape": list(self.batch_shape),
            "dtype": str(self._dtype)[6:],
            "sparse": False,
            "ragged": False,
            "name": self.name,
            "optional": False,
        }


def Input(
    shape: tuple[int | None, ...] | None = None,
    batch_size: int | None = None,
    dtype: str | torch.dtype | None = None,
    sparse: bool | None = None,
    ragged: bool | None = None,
    batch_shape: tuple[int | None, ...] | None = None,
    name: str | None = None,
    optional: bool = False,
) -> symbolic.KerasTensor:
    """A symbolic model input of ``shape`` (one sample, without the batch dimension; or ``batch_shape``, batch
    first), for the Functional API and as the first entry of a ``Sequential``."""
    return InputLayer(
        shape=shape,
        batch_size=batch_size,
        dtype=dtype,
        sparse=sparse,
        ragged=ragged,
        batch_shape=batch_shape,
        optional=optional,
        name=name,
    ).output


class Dense(Layer):
    """Just your regular densely-connected layer: ``activation(inputs @ kernel + bias)``.

    Args:
        units: positive integer, the output dimension.
        activation: a Keras activation name, a ``keras.activations`` function (both fused into the dense kernel
            when the kernel table has them), any other callable (applied after the dense op), or None (linear).
        use_bias: whether the layer has a bias vector.
        kernel_initializer, bias_initializer: initializers (defaults ``"glorot_uniform"``, ``"zeros"``).
        kernel_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints (``keras.constraints``), applied to the weight
            after every optimizer update.

    Input shape: ``(batch, ..., input_dim)``. Output shape: ``(batch, ..., units)``.
    The whole computation is one fused op, ``tritonnn.kernels.dense``.
    """

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: Any = None,
        **kwargs: Any,
    ):
        check_unquantized("Dense", lora_rank, quantization_config)
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(
                f"Received an invalid value for `units`, expected a positive integer. Received: units={units}"
            )
        self.units = units
        self.activation = _resolve_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel: torch.nn.Parameter | None = None
        self.bias: torch.nn.Parameter | None = None

    def build(self, input_shape: Any) -> None:
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError("The last dimension of the inputs to a Dense layer should be defined. Found None.")
        self.kernel = self.add_weight(
            (in_dim, self.units),
            self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            name="kernel",
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                (self.units,),
                self.bias_initializer,
                regularizer=self.bias_regularizer,
                name="bias",
                constraint=self.bias_constraint,
            )
        self.built = True

    def _weights_for(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        kernel, bias = self.kernel, self.bias
        if kernel.dtype != x.dtype:  # mixed precision: fp32 master weights, computed in the policy's dtype
            kernel = kernel.to(x.dtype)
            bias = None if bias is None else bias.to(x.dtype)
        return kernel, bias

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check_input(inputs)
        kernel, bias = self._weights_for(inputs)
        if not isinstance(self.activation, str) or self.activation in ROW_ACTIVATIONS:
            return apply_activation(self.activation, kernels.dense(inputs, kernel, bias, None))
        return kernels.dense(inputs, kernel, bias, self.activation)

    def call_with_dropout(self, inputs: torch.Tensor, rate: float, seed: int | torch.Tensor) -> torch.Tensor:
        """This layer followed by a ``Dropout(rate)`` in training, as one fused kernel. ``seed`` is an int or a
        device seed (a 0-dim int64 tensor on the input's device: ``layers/fusion.py`` ``dropout_seed``). The mask
        is a function of (seed, element index), bit-identical to the standalone dropout's on the same backend:
        Philox in the Triton kernels, on CUDA and for a device seed, numpy's PCG64 stream on the CPU torch path with
        an int seed (docs/determinism.md)."""
        unfused = not isinstance(self.activation, str) or self.activation in ROW_ACTIVATIONS
        if unfused or self.activity_regularizer is not None:
            return kernels.dropout(self(inputs, training=True), rate, seed, True)
        self._check_input(inputs)
        kernel, bias = self._weights_for(inputs)
        return kernels.dense(inputs, kernel, bias, self.activation, dropout_rate=rate, dropout_seed=seed)

    def fused_mlp_member(self) -> str | None:
        """Why this layer cannot be one of a fused MLP stack's (``layers/fusion.py``: ``mlp_stack``), or None."""
        if type(self).call is not Dense.call:
            return "its call is overridden"
        if not self.built:
            return "it is not built"
        if self.activity_regularizer is not None:
            return "it has an activity regularizer"
        act = self.activation
        if not isinstance(act, str) or (act not in ACTIVATIONS and act != "softmax"):
            return f"its activation {act!r} is not an element-wise kernel activation"
        return None

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """This layer's activation of a pre-activation ``z`` (the fused MLP's last layer: a softmax)."""
        return apply_activation(self.activation, z)

    def _check_input(self, inputs: torch.Tensor) -> None:
        if inputs.shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected axis -1 of input shape "
                f"to have value {self.kernel.shape[0]}, but received input with shape {tuple(inputs.shape)}"
            )

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*tuple(input_shape[:-1]), self.units)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            units=self.units,
            activation=_serialize_activation(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=None
            if self.kernel_regularizer is None
            else regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=None if self.bias_regularizer is None else regularizers.serialize(self.bias_regularizer),
            kernel_constraint=constraints.serialize(self.kernel_constraint),
            bias_constraint=constraints.serialize(self.bias_constraint),
            quantization_config=None,
        )
        return cfg


class Activation(Layer):
    """Applies an activation function: a Keras name, a ``keras.activations`` function or any callable."""

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = _resolve_activation(activation)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return apply_activation(self.activation, inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": _serialize_activation(self.activation)}


class Flatten(Layer):
    """Flattens every dimension but the batch one. With ``data_format="channels_first"`` (default: the
    ``image_data_format`` setting, ``"channels_last"``) the channels axis 1 is moved last first, so that the
    order is the channels-last one, as in Keras."""

    def __init__(self, data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if data_format is None:
            data_format = config.image_data_format()
        data_format = str(data_format).lower()
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(
                "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                f"Received: data_format={data_format}"
            )
        self.data_format = data_format
        self.built = True

    _autocast_inputs = False

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_first" and inputs.dim() > 2:
            inputs = inputs.permute(0, *range(2, inputs.dim()), 1)
        return inputs.reshape(inputs.shape[0], -1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one dimension may be -1)."""

    _autocast_inputs = False

    def __init__(self, target_shape: tuple[int, ...], **kwargs: Any):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1:
            raise ValueError(f"There must be at most one unknown dimension in target_shape. Received: {target_shape}")
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        n = math.prod(inputs.shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if (-1 not in self.target_shape and known != n) or (-1 in self.target_shape and n % max(known, 1)):
            raise ValueError(
                f"Cannot reshape samples of shape {tuple(inputs.shape[1:])} to target_shape {self.target_shape}"
            )
        return inputs.reshape(inputs.shape[0], *self.target_shape)

    def compute_output_shape(self, input_shape: Any) -> Any:
        rest = input_shape[1:]
        if -1 in self.target_shape and not any(d is None for d in rest):
            known = math.prod(d for d in self.target_shape if d != -1)
            return (input_shape[0], *[math.prod(rest) // known if d == -1 else d for d in self.target_shape])
        return (input_shape[0], *[None if d == -1 else d for d in self.target_shape])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": self.target_shape}
