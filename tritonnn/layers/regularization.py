"""Regularization layers: Dropout.

A ``Dropout`` layer owns a seed stream: a base seed and a counter, the ``n``-th mask seed being
``splitmix64((base + splitmix64(n)) mod 2**64) >> 1``. The stream lives on the host (``next_seed()``: Python ints,
the seed passed to the kernels as a scalar) or on a device (``next_seed_tensor(device)``: the base and the counter
are int64 tensors there, the counter advances with an in-place add and the seed is computed with torch int64 ops,
so a CUDA graph that captures the call advances the stream on every replay and nothing syncs with the host). Both
forms give the same seed values at the same stream positions and continue each other; ``device_seeds`` says which
form the layer's training calls (and the fused Dense+Dropout, ``layers/fusion.py``) use.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import kernels, ops
from ..kernels.dropout import check_rate, check_seed, seed_stream_next
from . import fusion
from .layer import Layer

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's Weyl increment
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB


def _splitmix64(x: int) -> int:
    """SplitMix64's finalizer (Steele et al., OOPSLA'14): a bijective 64-bit mix, so consecutive counters give
    unrelated seeds."""
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * _MIX_1) & _M64
    x = ((x ^ (x >> 27)) * _MIX_2) & _M64
    return x ^ (x >> 31)


def _as_int64(x: int) -> int:
    """The int64 whose two's-complement bits are ``x mod 2**64`` (what a torch.int64 tensor stores for it)."""
    x &= _M64
    return x - (1 << 64) if x >> 63 else x


class Dropout(Layer):
    """Applies dropout to the input.

    During training (``training=True``, as in ``fit``) each element is set to 0 with probability ``rate`` and the
    others are scaled by ``1 / (1 - rate)``, so the expected sum is unchanged. In ``evaluate``, ``predict`` and any
    call without ``training=True`` the layer returns its input unchanged.

    Each training call draws a fresh mask seed from the layer's own seed stream (:meth:`next_seed`), which
    starts from ``seed``; without ``seed`` the stream's start is drawn from torch's global generator when the layer
    is made, so ``tritonnn.utils.set_random_seed`` makes the masks reproducible.

    ``device_seeds`` (an attribute, False by default; not part of the config): when True, training calls draw the
    seed with :meth:`next_seed_tensor` instead, a tensor on the input's device that is never read on the host, so
    the call can be captured in a CUDA graph (``trainers/step_runner.py``). The seed values are the same; the mask
    differs only on the CPU torch path, which takes Philox for a device seed (PCG64 for an int one:
    ``kernels/dropout.py``).

    Args:
        rate: float in [0, 1), the fraction of the input units to drop.
        noise_shape: optional shape (with the batch dimension) of the binary mask, broadcast against the input;
            ``None`` entries take the input's size. E.g. ``(batch, 1, features)`` drops the same features at
            every timestep.
        seed: optional integer seed of the layer's seed stream.

    Input shape: arbitrary. Output shape: the input's.
    """

    device_seeds: bool = False

    def __init__(
        self, rate: float, noise_shape: tuple[int | None, ...] | None = None, seed: int | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.rate = check_rate(rate)
        if seed is not None:
            check_seed(seed)
        self.seed = seed
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.device_seeds = False
        # The stream: host ints, and, once next_seed_tensor has run, a (base, counter) pair of int64 tensors on one
        # device; _on_device says which holds the counter's current value (the base is the same in both).
        self._device_stream: tuple[torch.Tensor, torch.Tensor] | None = None
        self._on_device = False
        self._host_counter = 0
        self._base_seed = check_seed(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        self.built = True

    # The stream's position as two int attributes, read and written by BackupAndRestore and DataParallel (once per
    # fit, never per step). Writing one also rewrites the device tensors in place, so that a graph that captured
    # them continues from the new position.
    @property
    def _base_seed(self) -> int:
        return self._host_base

    @_base_seed.setter
    def _base_seed(self, value: int) -> None:
        self._host_base = int(value)
        if self._device_stream is not None:
            self._device_stream[0].fill_(_as_int64(self._host_base))

    @property
    def _counter(self) -> int:
        """The number of seeds drawn; where the device form drew last, one host sync reads it."""
        if self._on_device:
            return int(self._device_stream[1].item()) & _M64
        return self._host_counter

    @_counter.setter
    def _counter(self, value: int) -> None:
        self._host_counter = int(value)
        if self._device_stream is not None:
            self._device_stream[1].fill_(_as_int64(self._host_counter))

    def next_seed(self) -> int:
        """The next mask seed of this layer's stream, an int in [0, 2**63); advances the stream on the host (after
        device draws, it first reads the device counter back: one sync)."""
        if self._on_device:
            self._host_counter = self._counter
            self._on_device = False
        self._host_counter += 1
        return _splitmix64((self._host_base + _splitmix64(self._host_counter)) & _M64) >> 1

    def next_seed_tensor(self, device: torch.device | str) -> torch.Tensor:
        """The next mask seed of this layer's stream as a fresh 0-dim int64 tensor on ``device``, equal to what
        :meth:`next_seed` would return at this position; advances the stream in device memory.

        Per call: one launch on the triton backend (``kernels.dropout.seed_stream_next``: the counter incremented in
        place, the seed computed; the torch path takes about 25 int64 ops on 0-dim tensors), no host sync, no
        host-to-device copy, so a CUDA graph capture of the call advances the stream on every replay. The first
        call on a device (or the first after host draws) moves the stream there: two small host-to-device copies,
        which a graph capture refuses (run a step eagerly first, as fit's warm-up does)."""
        device = torch.device(device)
        stream = self._device_stream
        if not self._on_device or stream is None or not _same_device(stream[1].device, device):
            stream = self._move_stream(device)
        return seed_stream_next(*stream)

    def _move_stream(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(
                f"Dropout layer {self.name!r}: its seed stream moves to {device} with a host-to-device copy, which "
                "a CUDA graph capture cannot hold; draw one seed on that device before the capture"
            )
        counter = self._counter  # from the host, or read back from the device the stream was on
        self._device_stream = (
            torch.tensor(_as_int64(self._host_base), dtype=torch.int64, device=device),
            torch.tensor(_as_int64(counter), dtype=torch.int64, device=device),
        )
        self._host_counter = counter
        self._on_device = True
        return self._device_stream

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
        seed = fusion.dropout_seed(self, inputs.device)  # an int, or a device seed under device_seeds
        if self.noise_shape is None:
            return kernels.dropout(inputs, self.rate, seed, training=True)
        # A mask of noise_shape (kept entries 1 / (1 - rate), dropped 0), broadcast over the input.
        mask = inputs.new_ones(self._concrete_noise_shape(inputs))
        mask = kernels.dropout(mask, self.rate, seed, training=True)
        return ops.multiply(inputs, mask)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}


def _same_device(have: torch.device, want: torch.device) -> bool:
    """Whether a tensor on ``have`` is on ``want`` (``cuda`` without an index: the current CUDA device)."""
    if want.index is None and want.type == "cuda":
        want = torch.device("cuda", torch.cuda.current_device())
    return have.type == want.type and (want.index is None or have.index == want.index)
