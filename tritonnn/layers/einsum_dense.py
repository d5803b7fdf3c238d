"""EinsumDense: a dense layer whose product is any einsum of the inputs with one kernel (Keras'
``keras.layers.EinsumDense``), with Keras' equation forms, weight shapes, LoRA adapters and config."""

from __future__ import annotations

import re
from typing import Any

import torch

from .. import _serialization, activations, constraints, initializers, regularizers
from .input_spec import InputSpec
from .layer import Layer

_EQUATION_FORMS = (
    # (pattern on the equation with "..." replaced by "0", whether the ellipsis is on the left)
    (re.compile(r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)"), False),
    (re.compile(r"0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)"), True),
    (re.compile(r"([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0"), False),
)


class EinsumShapes:
    """What an equation, ``bias_axes``, an input shape and the partial output shape give: the kernel's and the
    bias's shapes, the full output shape, and the kernel axes that are fan-in (``input_axes``) and fan-out
    (``output_axes``) axes for the variance-scaling initializers."""

    def __init__(
        self,
        kernel_shape: list[int | None],
        bias_shape: list[int | None] | None,
        output_shape: list[int | None],
        input_axes: list[int],
        output_axes: list[int],
    ):
        self.kernel_shape, self.bias_shape, self.output_shape = kernel_shape, bias_shape, output_shape
        self.input_axes, self.output_axes = input_axes, output_axes


def analyze_einsum(equation: Any, bias_axes: str | None, input_shape: Any, output_shape: Any) -> EinsumShapes:
    """Keras' reading of an EinsumDense equation (``ab,bc->ac``, ``...ab,bc->...ac`` or ``ab...,bc->ac...``).

    The equation is matched from its start (as Keras' ``re.match``: text after a valid prefix is not read here;
    the einsum itself reads the whole equation when the layer is called). Output dimensions given as ``None`` are
    taken from the input where the equation shares them, and the dimensions under the ellipsis are the input's, in
    order.

    Raises:
        ValueError: with Keras' messages, for an equation in none of the three forms, an output size that
            contradicts the input's at a shared dimension, an output or weight dimension found nowhere else, or a
            bias dimension that is not an output dimension.
    """
    replaced = re.sub(r"\.\.\.", "0", equation)
    found = next(((m, left) for pattern, left in _EQUATION_FORMS if (m := pattern.match(replaced))), None)
    if found is None:
        raise ValueError(
            f"Invalid einsum equation '{equation}'. Equations must be in the form "
            "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]...."
        )
    match, left_elided = found
    input_spec, weight_spec, output_spec = match.group(1), match.group(2), match.group(3)
    input_shape = list(input_shape)
    elided = len(input_shape) - len(input_spec)
    full = [output_shape] if isinstance(output_shape, int) else list(output_shape)
    if elided > 0 and left_elided:  # the batch dimension, the elided ones in order, then the given ones
        full = [input_shape[0], *input_shape[1:elided], *full]
    else:
        full = [input_shape[0], *full]
        if elided > 0:
            full += input_shape[len(input_shape) - elided :]
    if left_elided:
        input_index = {dim: i + elided - len(input_shape) for i, dim in enumerate(input_spec)}
        output_index = {dim: i + elided for i, dim in enumerate(output_spec)}
    else:
        input_index = {dim: i for i, dim in enumerate(input_spec)}
        output_index = {dim: i for i, dim in enumerate(output_spec)}
    for dim in input_spec:
        if dim in output_index:
            size_in, size_out = input_shape[input_index[dim]], full[output_index[dim]]
            if size_out is not None and size_out != size_in:
                raise ValueError(
                    f"Input shape and output shape do not match at shared dimension '{dim}'. Input shape is "
                    f"{size_in}, and output shape is {size_out}."
                )
    for dim in output_spec:
        if dim not in input_spec and dim not in weight_spec:
            raise ValueError(
                f"Dimension '{dim}' was specified in the output '{output_spec}' but has no corresponding dim in the "
                f"input spec '{input_spec}' or weight spec '{output_spec}'"
            )
    kernel_shape: list[int | None] = []
    input_axes: list[int] = []
    output_axes: list[int] = []
    for i, dim in enumerate(weight_spec):
        if dim in output_index:
            kernel_shape.append(full[output_index[dim]])
            output_axes.append(i)
        elif dim in input_index:
            kernel_shape.append(input_shape[input_index[dim]])
            input_axes.append(i)
        else:
            raise ValueError(
                f"Weight dimension '{dim}' did not have a match in either the input spec '{input_spec}' or the "
                f"output spec '{output_spec}'. For this layer, the weight must be fully specified."
            )
    bias_shape: list[int | None] | None = None
    if bias_axes is not None:
        offset = elided if left_elided else 0
        sizes = {char: full[i + offset] for i, char in enumerate(output_spec)}
        for char in bias_axes:
            if char not in output_spec:
                raise ValueError(
                    f"Bias dimension '{char}' was requested, but is not part of the output spec '{output_spec}'"
                )
        first = min(output_spec.find(char) for char in bias_axes)
        bias_shape = [sizes[char] if char in bias_axes else 1 for char in output_spec[first:]]
        if not left_elided:
            bias_shape += [1] * max(elided, 0)
    return EinsumShapes(kernel_shape, bias_shape, full, input_axes, output_axes)


def _check_defined(shape: list[int | None], path: str) -> tuple[int, ...]:
    if any(d is None for d in shape):
        raise ValueError(
            "Shapes used to initialize variables must be fully-defined (no `None` dimensions). "
            f"Received: shape={tuple(shape)} for variable path='{path}'"
        )
    return tuple(shape)


class EinsumDense(Layer):
    """A dense layer computed as ``activation(einsum(equation, inputs, kernel) + bias)``.

    Args:
        equation: the einsum, in one of Keras' forms ``ab,bc->ac``, ``...ab,bc->...ac`` or ``ab...,bc->ac...``:
            the inputs' axes, the kernel's, the output's.
        output_shape: the output's shape without the batch dimension and the ellipsis' dimensions (an int for one
            dimension); ``None`` for a dimension taken from the input.
        activation: a ``keras.activations`` name or function, any other callable, or None (linear).
        bias_axes: the output axes (letters of the output spec) that the bias spans; None for no bias. The bias
            spans the output axes from the first of them to the last, with size 1 on those not named.
        kernel_initializer, bias_initializer: initializers (defaults ``"glorot_uniform"``, ``"zeros"``). A
            variance-scaling initializer without ``input_axes``/``output_axes`` gets the kernel's input and output
            axes (a copy with the same seed), so its fans are those of the einsum, as in Keras.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints, applied after every optimizer update.
        lora_rank: if set (and non-zero), :meth:`enable_lora` runs when the layer is built.
        lora_alpha: the scale of the LoRA delta is ``lora_alpha / lora_rank`` (default ``lora_rank``).

    The equation is read when the layer is built (its first call), where Keras reads it; then the layer checks
    the inputs' rank. Quantization is not supported: ``quantization_config`` must be None.
    """

    def __init__(
        self,
        equation: str,
        output_shape: Any,
        activation: Any = None,
        bias_axes: str | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        gptq_unpacked_column_size: int | None = None,
        quantization_config: Any = None,
        **kwargs: Any,
    ):
        if quantization_config is not None or gptq_unpacked_column_size:
            raise ValueError("EinsumDense: quantized weights (`quantization_config`) are not supported by tritonnn")
        super().__init__(**kwargs)
        self.equation = equation
        self.partial_output_shape = (output_shape,) if isinstance(output_shape, int) else tuple(output_shape)
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.lora_enabled = False
        self.bias: torch.nn.Parameter | None = None

    def __getattr__(self, name: str) -> Any:
        # ``kernel`` is Keras' property: the kernel weight, plus the scaled LoRA delta once LoRA is enabled. The
        # weight itself is the parameter "kernel" (so its path and state_dict key are Keras' names).
        if name == "kernel":
            params = self.__dict__.get("_parameters", {})
            if "kernel" not in params:
                raise AttributeError(f"'{type(self).__name__}' object has no attribute 'kernel'")
            kernel = params["kernel"]
            if self.__dict__.get("lora_enabled"):
                delta = torch.matmul(params["lora_kernel_a"], params["lora_kernel_b"])
                return (kernel + (self.lora_alpha / self.lora_rank) * delta).to(self.compute_dtype)
            return kernel
        return super().__getattr__(name)

    def _initializer_for_kernel(self, shapes: EinsumShapes) -> Any:
        init = self.kernel_initializer
        if isinstance(init, initializers.VarianceScaling) and (init.input_axes is None or init.output_axes is None):
            config = init.get_config()
            config.update(seed=init.seed, input_axes=shapes.input_axes, output_axes=shapes.output_axes)
            return type(init).from_config(config)
        return init

    def build(self, input_shape: Any) -> None:
        shapes = analyze_einsum(self.equation, self.bias_axes, input_shape, self.partial_output_shape)
        self.input_spec = InputSpec(ndim=len(input_shape))
        self.add_weight(
            _check_defined(shapes.kernel_shape, f"{self.name}/kernel"),
            self._initializer_for_kernel(shapes),
            regularizer=self.kernel_regularizer,
            name="kernel",
            constraint=self.kernel_constraint,
        )
        if shapes.bias_shape is not None:
            self.bias = self.add_weight(
                _check_defined(shapes.bias_shape, f"{self.name}/bias"),
                self.bias_initializer,
                regularizer=self.bias_regularizer,
                name="bias",
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.built = True
        if self.lora_rank:
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha)

    def enable_lora(
        self,
        rank: int,
        lora_alpha: float | None = None,
        a_initializer: Any = "he_uniform",
        b_initializer: Any = "zeros",
    ) -> None:
        """Freeze the kernel and train a low-rank delta instead: the kernel the layer computes with becomes
        ``kernel + (lora_alpha / rank) * lora_kernel_a @ lora_kernel_b``, where ``lora_kernel_a`` has the kernel's
        shape with its last axis replaced by ``rank`` and ``lora_kernel_b`` is ``(rank, kernel.shape[-1])`` (both
        float32, trainable, with the kernel's regularizer). ``lora_alpha`` defaults to ``rank``.

        Raises:
            ValueError: (Keras' messages) with a kernel constraint, on a layer not built, or when LoRA is
                already enabled.
        """
        if self.kernel_constraint:
            raise ValueError(
                "Lora is incompatible with kernel constraints. In order to enable lora on this layer, remove the "
                "`kernel_constraint` argument."
            )
        if not self.built:
            raise ValueError("Cannot enable lora on a layer that isn't yet built.")
        if self.lora_enabled:
            raise ValueError("lora is already enabled. This can only be done once per layer.")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"Expected `rank` to be a positive integer. Received: rank={rank!r}")
        kernel = self._parameters["kernel"]
        self.add_weight(
            (*kernel.shape[:-1], rank),
            initializers.get(a_initializer),
            dtype="float32",
            regularizer=self.kernel_regularizer,
            name="lora_kernel_a",
        )
        self.add_weight(
            (rank, kernel.shape[-1]),
            initializers.get(b_initializer),
            dtype="float32",
            regularizer=self.kernel_regularizer,
            name="lora_kernel_b",
        )
        kernel._tritonnn_trainable = False
        kernel.requires_grad_(False)
        self.lora_enabled = True
        self.lora_rank = rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else rank

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel
        if kernel.dtype != inputs.dtype:  # mixed precision: fp32 weights, computed in the policy's dtype
            kernel = kernel.to(inputs.dtype)
        x = torch.einsum(self.equation, inputs, kernel)
        if self.bias is not None:
            x = x + (self.bias if self.bias.dtype == x.dtype else self.bias.to(x.dtype))
        return self.activation(x)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape, ``None`` where unknown (the ellipsis' dimensions in the input's order; Keras 3.15
        reverses two or more dimensions of a leading ellipsis here, though its einsum keeps their order)."""
        shapes = analyze_einsum(self.equation, self.bias_axes, input_shape, self.partial_output_shape)
        return tuple(shapes.output_shape)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        ser = _serialization.serialize_keras_object
        cfg.update(
            output_shape=self.partial_output_shape,
            equation=self.equation,
            activation=activations.serialize(self.activation),
            bias_axes=self.bias_axes,
            kernel_initializer=ser(self.kernel_initializer),
            bias_initializer=ser(self.bias_initializer),
            kernel_regularizer=ser(self.kernel_regularizer),
            bias_regularizer=ser(self.bias_regularizer),
            activity_regularizer=ser(self.activity_regularizer),
            kernel_constraint=ser(self.kernel_constraint),
            bias_constraint=ser(self.bias_constraint),
            quantization_config=None,
        )
        if self.lora_rank:
            cfg.update(lora_rank=self.lora_rank, lora_alpha=self.lora_alpha)
        return cfg


__all__ = ["EinsumDense"]
