"""Normalization layers: LayerNormalization, RMSNormalization, BatchNormalization, UnitNormalization."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from .. import constraints, initializers, kernels, regularizers
from .layer import Layer


def _serialize_reg(reg: Any) -> Any:
    return None if reg is None else regularizers.serialize(reg)


def _check_epsilon(epsilon: float) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not float(epsilon) >= 0.0:
        raise ValueError(f"Expected `epsilon` to be a non-negative float. Received: epsilon={epsilon!r}")
    return float(epsilon)


def _axis_argument(axis: Any) -> int | list[int]:
    """A normalization layer's ``axis`` argument as given: an int, or a list of ints."""
    if isinstance(axis, (list, tuple)):
        return [int(a) for a in axis]
    if isinstance(axis, numbers.Integral):
        return int(axis)
    raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis!r}")


def _norm_axes(axis: Any, rank: int, input_shape: Any, layer: str) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, numbers.Integral) or not -rank <= int(a) < rank:
            raise ValueError(
                f"Invalid axis for {layer} on an input of shape {tuple(input_shape)}. Received: axis={axis}"
            )
        out.append(int(a) % rank)
    return tuple(out)


class RMSNormalization(Layer):
    """Root-mean-square normalization (Zhang & Sennrich, 2019), Keras 3's ``RMSNormalization``.

    ``y = x * rsqrt(mean(x**2) + epsilon) * scale`` over ``axis``, with a learned ``scale`` (initialized to ones);
    no centring and no offset. Computed by ``tritonnn.kernels.rms_norm`` (the layer-norm kernel pair with
    ``RMS=True`` for the trailing axes on the triton backend), in fp32 for 16-bit inputs.

    Args:
        axis: the axis or list of axes to normalize. Defaults to -1. As in Keras, ``build`` turns it into a
            (sorted) list, which ``get_config`` then reports.
        epsilon: added to the mean square. Defaults to 1e-6.

    Input shape: arbitrary. Output shape: the input's.
    """

    def __init__(self, axis: int | list[int] | tuple[int, ...] = -1, epsilon: float = 1e-6, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis: int | list[int] = _axis_argument(axis)
        self.epsilon = _check_epsilon(epsilon)
        self.scale: torch.nn.Parameter | None = None

    def build(self, input_shape: Any) -> None:
        axes = _norm_axes(self.axis, len(input_shape), input_shape, "RMSNormalization")
        shape = tuple(input_shape[a] for a in sorted(axes))
        if any(d is None for d in shape):
            raise ValueError(
                f"The normalized axes of RMSNormalization must have a defined size. Received: "
                f"input_shape={tuple(input_shape)}, axis={self.axis}"
            )
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        self.scale = self.add_weight(shape, "ones", name="scale")
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        axes = tuple(sorted(_norm_axes(self.axis, inputs.dim(), inputs.shape, "RMSNormalization")))
        got = tuple(inputs.shape[a] for a in axes)
        if self.scale is not None and got != tuple(self.scale.shape):
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected the normalized axes "
                f"{self.axis} of input shape to have sizes {tuple(self.scale.shape)}, but received input with "
                f"shape {tuple(inputs.shape)}"
            )
        return kernels.rms_norm(inputs, self.scale, axis=axes, epsilon=self.epsilon)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


class LayerNormalization(Layer):
    """Normalizes each sample over ``axis`` to zero mean and unit variance, then scales and shifts.

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta`` with the mean and the biased variance of each sample
    taken over ``axis``. Computed by ``tritonnn.kernels.layer_norm`` (a Triton kernel for the last axis on GPU).

    Args:
        axis: the axis or list of axes to normalize (typically the features axis, -1).
        epsilon: small float added to the variance to avoid dividing by zero. Defaults to 1e-3.
        center: if True, add the learned offset ``beta``.
        scale: if True, multiply by the learned ``gamma``.
        beta_initializer, gamma_initializer: initializers of beta (``"zeros"``) and gamma (``"ones"``).
        beta_regularizer, gamma_regularizer: optional regularizers.
        beta_constraint, gamma_constraint: optional constraints, applied after every optimizer update.

    Input shape: arbitrary. Output shape: the input's.
    """

    def __init__(
        self,
        axis: int | list[int] | tuple[int, ...] = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        rms_scaling: bool = False,
        **kwargs: Any,
    ):
        if rms_scaling:
            raise ValueError(
                "LayerNormalization: `rms_scaling=True` is deprecated in Keras (it scales by the variance, not the "
                "root mean square): use `layers.RMSNormalization`"
            )
        super().__init__(**kwargs)
        self.rms_scaling = False
        self.axis: int | list[int] = _axis_argument(axis)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.epsilon = _check_epsilon(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma: torch.nn.Parameter | None = None
        self.beta: torch.nn.Parameter | None = None

    def build(self, input_shape: Any) -> None:
        axes = _norm_axes(self.axis, len(input_shape), input_shape, "LayerNormalization")
        shape = tuple(input_shape[a] for a in axes)
        if any(d is None for d in shape):
            raise ValueError(
                f"The normalized axes of LayerNormalization must have a defined size. Received: "
                f"input_shape={tuple(input_shape)}, axis={self.axis}"
            )
        if self.scale:
            self.gamma = self.add_weight(
                shape,
                self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                name="gamma",
                constraint=self.gamma_constraint,
            )
        if self.center:
            self.beta = self.add_weight(
                shape,
                self.beta_initializer,
                regularizer=self.beta_regularizer,
                name="beta",
                constraint=self.beta_constraint,
            )
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        axes = _norm_axes(self.axis, inputs.dim(), inputs.shape, "LayerNormalization")
        built = self.gamma if self.gamma is not None else self.beta
        got = tuple(inputs.shape[a] for a in axes)
        if built is not None and got != tuple(built.shape):
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected the normalized axes "
                f"{self.axis} of input shape to have sizes {tuple(built.shape)}, but received input with shape "
                f"{tuple(inputs.shape)}"
            )
        return kernels.layer_norm(inputs, self.gamma, self.beta, axis=axes, epsilon=self.epsilon)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "rms_scaling": self.rms_scaling,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": _serialize_reg(self.beta_regularizer),
            "gamma_regularizer": _serialize_reg(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }


class BatchNormalization(Layer):
    """Normalizes its inputs per channel with the statistics of the batch in training, moving ones otherwise.

    In training (``training=True`` and the layer trainable) the output is
    ``gamma * (x - mean(x)) / sqrt(var(x) + epsilon) + beta`` with the batch mean and biased variance over every
    axis but ``axis``, and the moving statistics are updated as Keras does::

        moving_mean = moving_mean * momentum + mean(x) * (1 - momentum)
        moving_var = moving_var * momentum + var(x) * (1 - momentum)

    In inference (``evaluate``, ``predict``, ``training=False``, or a frozen layer) the moving statistics are used.

    Args:
        axis: the channels axis (-1 for ``channels_last``).
        momentum: momentum of the moving average. Defaults to 0.99.
        epsilon: small float added to the variance. Defaults to 1e-3.
        center: if True, add the learned offset ``beta``.
        scale: if True, multiply by the learned ``gamma``.
        beta_initializer, gamma_initializer: ``"zeros"``, ``"ones"``.
        moving_mean_initializer, moving_variance_initializer: ``"zeros"``, ``"ones"``.
        beta_regularizer, gamma_regularizer: optional regularizers.
        beta_constraint, gamma_constraint: optional constraints, applied after every optimizer update.

    Weights: ``gamma``, ``beta`` (trainable), ``moving_mean``, ``moving_variance`` (non-trainable), each of shape
    ``(channels,)``. Input shape: arbitrary. Output shape: the input's.
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        synchronized: bool = False,
        renorm: bool = False,
        renorm_clipping: dict[str, float] | None = None,
        renorm_momentum: float = 0.99,
        **kwargs: Any,
    ):
        if renorm:
            raise ValueError("BatchNormalization: batch renormalization (`renorm=True`) is not supported by tritonnn")
        super().__init__(**kwargs)
        self.renorm, self.renorm_clipping, self.renorm_momentum = False, renorm_clipping, renorm_momentum
        if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
            raise TypeError(f"Expected an integer for the argument 'axis'. Received: axis={axis!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"Expected `momentum` to be a float in [0, 1]. Received: momentum={momentum!r}")
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = _check_epsilon(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.synchronized = bool(synchronized)  # one process, one device: nothing to synchronize
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma: torch.nn.Parameter | None = None
        self.beta: torch.nn.Parameter | None = None

    def build(self, input_shape: Any) -> None:
        (axis,) = _norm_axes(self.axis, len(input_shape), input_shape, "BatchNormalization")
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                f"Axis {self.axis} of input tensor should have a defined dimension but the layer received an input "
                f"with shape {tuple(input_shape)}."
            )
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(
                shape,
                self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                name="gamma",
                constraint=self.gamma_constraint,
            )
        if self.center:
            self.beta = self.add_weight(
                shape,
                self.beta_initializer,
                regularizer=self.beta_regularizer,
                name="beta",
                constraint=self.beta_constraint,
            )
        self.moving_mean = self.add_weight(shape, self.moving_mean_initializer, trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(
            shape, self.moving_variance_initializer, trainable=False, name="moving_variance"
        )
        self.built = True

    def call(self, inputs: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        (axis,) = _norm_axes(self.axis, inputs.dim(), inputs.shape, "BatchNormalization")
        if inputs.shape[axis] != self.moving_mean.shape[0]:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected axis {self.axis} of input "
                f"shape to have value {self.moving_mean.shape[0]}, but received input with shape "
                f"{tuple(inputs.shape)}"
            )
        return kernels.batch_norm(
            inputs,
            self.gamma,
            self.beta,
            self.moving_mean,
            self.moving_variance,
            axis=axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            training=bool(training) and self.trainable,  # a frozen BatchNormalization runs in inference mode
        )

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": _serialize_reg(self.beta_regularizer),
            "gamma_regularizer": _serialize_reg(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        }


class UnitNormalization(Layer):
    """Scales each sample to unit L2 norm over ``axis``: ``x / sqrt(sum(x**2))`` (the inverse norm capped at
    ``1e12``, so that a zero vector stays zero), as Keras.

    Args:
        axis: the axis, or list of axes, the norm is taken over (default -1).
    """

    def __init__(self, axis: int | list[int] | tuple[int, ...] = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis
        ):
            self.axis: int | list[int] = [int(a) for a in axis]
        elif isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
            self.axis = int(axis)
        else:
            raise TypeError(
                f"Invalid value for `axis` argument: expected an int or a list/tuple of ints. Received: axis={axis}"
            )
        self.built = True

    def _dims(self, rank: int, shape: Any) -> tuple[int, ...]:
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -rank <= a < rank:
                raise ValueError(f"Axis {self.axis} is out of bounds for input shape {tuple(shape)}.")
        return tuple(a % rank for a in axes)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        dims = self._dims(inputs.dim(), inputs.shape)
        inv = torch.rsqrt(torch.sum(torch.square(inputs), dim=dims, keepdim=True))
        return inputs * torch.clamp(inv, max=1e12)

    def compute_output_shape(self, input_shape: Any) -> Any:
        self._dims(len(input_shape), input_shape)
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}
