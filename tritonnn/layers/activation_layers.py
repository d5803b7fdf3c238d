"""Keras' activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax.

Each computes through ``tritonnn.activations`` (the kernels' reference activations where they have the function),
with Keras' arguments, defaults, validation and configs. Input shape: arbitrary; output shape: the input's.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import torch

from .. import _serialization, activations, constraints, initializers, kernels, regularizers
from .layer import Layer


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _shape_preserving(layer: Layer, input_shape: Any) -> Any:
    return input_shape


class ReLU(Layer):
    """Rectified linear unit: ``max_value`` caps the output, below ``threshold`` the output is
    ``negative_slope * (x - threshold)`` (Keras' ``keras.layers.ReLU``)::

        f(x) = max_value                           if x >= max_value
        f(x) = x                                   if threshold <= x < max_value
        f(x) = negative_slope * (x - threshold)    otherwise

    Args:
        max_value: a non-negative float, the largest output (None: no cap).
        negative_slope: a non-negative float, the slope below ``threshold``.
        threshold: a non-negative float, where the activation starts.
    """

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and (not _number(max_value) or max_value < 0.0):
            raise ValueError(f"max_value of a ReLU layer cannot be a negative value. Received: max_value={max_value}")
        if not _number(negative_slope) or negative_slope < 0.0:
            raise ValueError(
                "negative_slope of a ReLU layer cannot be None or a negative value. "
                f"Received: negative_slope={negative_slope}"
            )
        if not _number(threshold) or threshold < 0.0:
            raise ValueError(
                f"threshold of a ReLU layer cannot be None or a negative value. Received: threshold={threshold}"
            )
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return activations.relu(
            inputs, negative_slope=self.negative_slope, max_value=self.max_value, threshold=self.threshold
        )

    compute_output_shape = _shape_preserving

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


class LeakyReLU(Layer):
    """Leaky rectified linear unit: ``x`` for ``x >= 0``, ``negative_slope * x`` below (Keras' default slope 0.3).

    Args:
        negative_slope: a non-negative float (Keras 2's ``alpha=`` is accepted with a warning, as in Keras 3).
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        if not _number(negative_slope) or negative_slope < 0:
            raise ValueError(
                "The negative_slope value of a Leaky ReLU layer cannot be None or negative value. Expected a float. "
                f"Received: negative_slope={negative_slope}"
            )
        self.negative_slope = negative_slope
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return activations.leaky_relu(inputs, negative_slope=self.negative_slope)

    compute_output_shape = _shape_preserving

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "negative_slope": self.negative_slope}


class PReLU(Layer):
    """Parametric ReLU: ``x`` for ``x >= 0``, ``alpha * x`` below, with ``alpha`` a trainable weight of the shape
    of one sample (dimensions in ``shared_axes`` share one value).

    Args:
        alpha_initializer: initializer of ``alpha`` (default ``"Zeros"``).
        alpha_regularizer: optional regularizer of ``alpha``.
        alpha_constraint: optional constraint of ``alpha``, applied after every optimizer update.
        shared_axes: the axes (1 = the first after the batch) along which ``alpha`` is shared, e.g. ``[1, 2]`` for
            one slope per channel of ``(batch, height, width, channels)`` inputs.
    """

    def __init__(
        self,
        alpha_initializer: Any = "Zeros",
        alpha_regularizer: Any = None,
        alpha_constraint: Any = None,
        shared_axes: int | list[int] | tuple[int, ...] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        elif isinstance(shared_axes, (list, tuple)):
            self.shared_axes = list(shared_axes)
        else:
            self.shared_axes = [shared_axes]
        if self.shared_axes is not None and not all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in self.shared_axes
        ):
            raise ValueError(f"Expected `shared_axes` to be integers. Received: shared_axes={shared_axes!r}")
        self.alpha: torch.nn.Parameter | None = None

    def build(self, input_shape: Any) -> None:
        param_shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            if not 1 <= axis <= len(param_shape):
                raise ValueError(
                    f"Invalid `shared_axes` {self.shared_axes} for inputs of rank {len(input_shape)}: an axis must be "
                    f"between 1 and {len(param_shape)} (0 is the batch axis)"
                )
            param_shape[axis - 1] = 1
        if any(d is None for d in param_shape):
            raise ValueError(
                f"PReLU needs the size of every axis it does not share; received input_shape={tuple(input_shape)} "
                f"with shared_axes={self.shared_axes}"
            )
        self.alpha = self.add_weight(
            tuple(param_shape),
            self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            name="alpha",
            constraint=self.alpha_constraint,
        )
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.to(inputs.dtype) if self.alpha.dtype != inputs.dtype else self.alpha
        return torch.relu(inputs) - alpha * torch.relu(-inputs)

    compute_output_shape = _shape_preserving

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "alpha_initializer": _serialization.serialize_keras_object(self.alpha_initializer),
            "alpha_regularizer": _serialization.serialize_keras_object(self.alpha_regularizer),
            "alpha_constraint": _serialization.serialize_keras_object(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        }


class ELU(Layer):
    """Exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below.

    Args:
        alpha: the scale of the negative part (default 1.0).
    """

    def __init__(self, alpha: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        if not _number(alpha):
            raise ValueError(f"Expected `alpha` to be a float. Received: alpha={alpha!r}")
        self.alpha = alpha
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return activations.elu(inputs, alpha=self.alpha)

    compute_output_shape = _shape_preserving

    def get_config(self) -> dict[str, Any]:
        base = super().get_config()  # Keras' order: name, alpha, then the base entries
        return {"name": base.pop("name"), "alpha": self.alpha, **base}


def _large_negative(dtype: torch.dtype) -> float:
    """What a masked logit is replaced with (Keras' value: -3e4 in float16, where -1e9 overflows)."""
    return -3e4 if dtype == torch.float16 else -1e9


class Softmax(Layer):
    """Softmax over ``axis`` (an int, or a list of ints normalized together), with an optional ``mask``.

    Call arguments:
        inputs: the logits.
        mask: optional, broadcastable to ``inputs`` (each dimension 1 or the input's, no more dimensions): True
            (or a value > 0.5) keeps an entry, others get probability 0; an all-masked row is all zeros.

    Args:
        axis: the axis, or list of axes, of the normalization (default -1).
    """

    def __init__(self, axis: int | list[int] | tuple[int, ...] = -1, **kwargs: Any):
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes):
            raise ValueError(f"Expected `axis` to be an int or a list of ints. Received: axis={axis!r}")
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self.built = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -inputs.dim() <= a < inputs.dim():
                raise ValueError(f"Invalid `axis` {self.axis} for a Softmax of inputs of shape {tuple(inputs.shape)}")
        if mask is not None:
            mask = self._check_mask(inputs, mask)
            inputs = torch.where(mask, inputs, _large_negative(inputs.dtype))
        if len(axes) > 1:
            dims = tuple(a % inputs.dim() for a in axes)
            out = torch.exp(inputs - torch.logsumexp(inputs, dim=dims, keepdim=True))
        elif mask is None:
            out = activations.softmax(inputs, axis=axes[0])  # keeps its logits for a cross-entropy, as Dense's
        else:
            out = kernels.softmax(inputs, axis=axes[0])
        if mask is not None:
            out = torch.where(mask, out, 0.0)
        return out

    def _check_mask(self, inputs: torch.Tensor, mask: Any) -> torch.Tensor:
        mask = torch.as_tensor(mask, device=inputs.device)
        if mask.dim() > inputs.dim() or any(
            m != 1 and m != i for m, i in zip(reversed(mask.shape), reversed(inputs.shape), strict=False)
        ):
            raise ValueError(
                "The `mask` must be broadcastable to `inputs` and must not have more dimensions: each mask dimension "
                f"must be 1 or match the input's. Received: inputs.shape={tuple(inputs.shape)}, "
                f"mask.shape={tuple(mask.shape)}"
            )
        return mask if mask.dtype == torch.bool else mask > 0.5

    compute_output_shape = _shape_preserving

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"]
