"""Regularization layers beside Dropout: GaussianNoise, GaussianDropout, AlphaDropout (noise in training only) and
ActivityRegularization.

The noise layers draw from their own ``tritonnn.random.SeedGenerator`` (made from ``seed``; without one, seeded from
Python's ``random``, so ``tritonnn.utils.set_random_seed`` makes them reproducible): each training call advances it,
on the input's device and without a host sync, so a training step that holds them can be captured in a CUDA graph
and draws new noise on every replay. Outside training (``evaluate``, ``predict``, a call without
``training=True``) they return their input unchanged.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from .. import random, regularizers
from .layer import Layer

# SELU's constants (Klambauer et al., 2017), which AlphaDropout keeps the mean and variance of.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _unit_interval(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a float value between 0 and 1. "
            f"Received: {name}={value}"
        )
    return value


def _check_not_one(layer: Layer) -> None:
    """rate=1 is accepted when the layer is made (as in Keras), but training with it has no meaning: the noise's
    scale is 1 / (1 - rate) (Keras fails there with a ZeroDivisionError)."""
    if layer.rate == 1:
        raise ValueError(
            f"{type(layer).__name__} layer {layer.name!r} has rate=1: in training its noise would have an infinite "
            "scale (it divides by 1 - rate). Use a rate below 1."
        )


def _seed(seed: Any) -> Any:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ValueError(f"Expected `seed` to be an integer or None. Received: seed={seed!r}")
    return seed


class _Noise(Layer):
    """A layer that adds noise in training from its own seed generator."""

    def _generator(self, active: bool, seed: Any) -> None:
        self.seed = _seed(seed)
        self.seed_generator = random.SeedGenerator(seed) if active else None
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


class GaussianNoise(_Noise):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` in training (a regularizer, e.g. against
    overfitting small data; also a form of data augmentation for real-valued inputs).

    Args:
        stddev: the noise's standard deviation, in [0, 1].
        seed: optional integer seed of the layer's noise.
    """

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.stddev = _unit_interval("stddev", stddev)
        self._generator(stddev > 0, seed)

    def call(self, inputs: torch.Tensor, training: bool | None = False) -> torch.Tensor:
        if not training or self.stddev == 0:
            return inputs
        key = random.draw_key(self.seed_generator, inputs.device)
        noise = random.standard_normal(key, tuple(inputs.shape), inputs.dtype)
        return inputs + (noise * self.stddev).to(inputs.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(_Noise):
    """Multiplies the inputs by Gaussian noise of mean 1 and standard deviation ``sqrt(rate / (1 - rate))`` in
    training (the multiplicative-noise form of dropout, of the same variance).

    Args:
        rate: the equivalent drop probability, in [0, 1].
        seed: optional integer seed of the layer's noise.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = _unit_interval("rate", rate)
        self._generator(rate > 0, seed)

    def call(self, inputs: torch.Tensor, training: bool | None = False) -> torch.Tensor:
        if not training or self.rate == 0:
            return inputs
        _check_not_one(self)
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        key = random.draw_key(self.seed_generator, inputs.device)
        noise = random.standard_normal(key, tuple(inputs.shape), inputs.dtype)
        return inputs * (noise * stddev + 1.0).to(inputs.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class AlphaDropout(_Noise):
    """Dropout for self-normalizing networks (``selu``): in training each entry is set, with probability
    ``rate``, to SELU's negative saturation value, and an affine map restores the inputs' mean and variance.

    Args:
        rate: the drop probability, in [0, 1].
        noise_shape: optional shape of the mask (batch first; None entries take the input's size), broadcast
            against the inputs.
        seed: optional integer seed of the layer's noise.
    """

    def __init__(
        self, rate: float, noise_shape: tuple[int | None, ...] | None = None, seed: int | None = None, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.rate = _unit_interval("rate", rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self._generator(rate > 0, seed)

    def call(self, inputs: torch.Tensor, training: bool | None = False) -> torch.Tensor:
        if not training or self.rate == 0:
            return inputs
        _check_not_one(self)
        shape = random.noise_shape_of(inputs, self.noise_shape)
        key = random.draw_key(self.seed_generator, inputs.device)
        kept = (random.uniform_bits(key, shape, inputs.dtype) >= self.rate).to(inputs.dtype)
        alpha_p = -SELU_ALPHA * SELU_SCALE
        a = ((1 - self.rate) * (1 + self.rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * self.rate
        return a * (inputs * kept + alpha_p * (1 - kept)) + b

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}


class ActivityRegularization(Layer):
    """Returns its inputs, adding ``l1 * sum(|x|) + l2 * sum(x**2)`` (divided by the batch size, as every activity
    regularizer in Keras 3) to the model's losses.

    Args:
        l1: the L1 factor (non-negative).
        l2: the L2 factor (non-negative).
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.activity_regularizer = regularizers.L1L2(l1=l1, l2=l2)
        self.l1 = l1
        self.l2 = l2
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("activity_regularizer", None)
        return {**cfg, "l1": self.l1, "l2": self.l2}


__all__ = ["ActivityRegularization", "AlphaDropout", "GaussianDropout", "GaussianNoise"]
