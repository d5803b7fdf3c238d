"""Regularization layers: Dropout."""

from __future__ import annotations

from typing import Any

import torch

from .. import kernels, ops
from ..kernels.dropout import check_rate, check_seed
from .layer import Layer

_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """SplitMix64's finalizer (Steele et al., OOPSLA'14): a bijective 64-bit mix, so consecutive counters give
    unrelated seeds."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class Dropout(Layer):
    """Applies dropout to the input.

    During training (``training=True``, as in ``fit``) each element is set to 0 with probability ``rate`` and the
    others are scaled by ``1 / (1 - rate)``, so the expected sum is unchanged. In ``evaluate``, ``predict`` and any
    call without ``training=True`` the layer returns its input unchanged.

    Each training call draws a fresh mask seed from the layer's own seed stream (:meth:`next_seed`), which
    starts from ``seed``; without ``seed`` the stream's start is drawn from torch's global generator when the layer
    is made, so ``tritonnn.utils.set_random_seed`` makes the masks reproducible.

    Args:
        rate: float in [0, 1), the fraction of the input units to drop.
        noise_shape: optional shape (with the batch dimension) of the binary mask, broadcast against the input;
            ``None`` entries take the input's size. E.g. ``(batch, 1, features)`` drops the same features at
            every timestep.
        seed: optional integer seed of the layer's seed stream.

    Input shape: arbitrary. Output shape: the input's.
    """

    def __init__(
        self, rate: float, noise_shape: tuple[int | None, ...] | None = None, seed: int | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.rate = check_rate(rate)
        if seed is not None:
            check_seed(seed)
        self.seed = seed
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self._base_seed = check_seed(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        self._counter = 0
        self.built = True

    def next_seed(self) -> int:
        """The next mask seed of this layer's stream, an int in [0, 2**63); advances the stream (host only)."""
        self._counter += 1
        return _splitmix64((self._base_seed + _splitmix64(self._counter)) & _M64) >> 1

    def fusable_dropout_rate(self) -> float | None:
        """The rate at which this dropout may run inside the kernel of the layer before it (``layers/fusion.py``):
        a plain ``Dropout`` (``call`` not overridden) with no ``noise_shape`` and ``0 < rate < 1``; else None."""
        if type(self).call is not Dropout.call or self.noise_shape is not None or not 0.0 < float(self.rate) < 1.0:
            return None
        return float(self.rate)

    def _concrete_noise_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        if len(self.noise_shape) != x.dim():
            raise ValueError(
                f"`noise_shape` must have the rank of the inputs ({x.dim()}). Received: noise_shape={self.noise_shape}"
            )
        shape = tuple(x.shape[i] if d is None else int(d) for i, d in enumerate(self.noise_shape))
        for i, d in enumerate(shape):
            if d not in (1, x.shape[i]):
                raise ValueError(
                    f"`noise_shape` {self.noise_shape} is not broadcastable to the input shape {tuple(x.shape)}"
                )
        return shape

    def call(self, inputs: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        if not training or self.rate == 0.0:
            return inputs
        if self.noise_shape is None:
            return kernels.dropout(inputs, self.rate, self.next_seed(), training=True)
        # A mask of noise_shape (kept entries 1 / (1 - rate), dropped 0), broadcast over the input.
        mask = inputs.new_ones(self._concrete_noise_shape(inputs))
        mask = kernels.dropout(mask, self.rate, self.next_seed(), training=True)
        return ops.multiply(inputs, mask)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}
