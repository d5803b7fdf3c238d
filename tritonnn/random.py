"""Keras 3's ``keras.random``: seeded random tensors (``SeedGenerator``, ``normal``, ``uniform``, ...).

Signatures, defaults, dtypes and the meaning of ``seed`` are Keras': an ``int`` seed gives the same values on every
call, a :class:`SeedGenerator` gives new values on every call (its ``state`` is ``[seed, counter]`` and each draw
advances the counter), and ``seed=None`` draws from a global ``SeedGenerator`` whose seed comes from Python's
``random`` module (``tritonnn.utils.set_random_seed`` seeds it and starts it over, as in Keras).

The values are not Keras': they come from a counter-based generator written in torch integer ops. A draw's
``(seed, counter)`` pair is hashed into a 64-bit key, and element ``i`` of the draw is SplitMix64's ``i``-th output
from that key (Steele, Lea and Flood, OOPSLA 2014), so a draw is a pure function of the seed and the element
index: the same on the CPU and on CUDA, bit for bit, and computed on the device without reading anything on the
host. A ``SeedGenerator`` keeps its state in a tensor on the device where it draws; advancing it is an in-place add
there, so a layer that draws from one (``GaussianNoise``, ``GaussianDropout``, ``AlphaDropout``) can be captured in
a CUDA graph and gets new noise on every replay. ``binomial`` is the exception: it reads its seed on the host and
draws with ``torch.binomial``.

Uniform floats carry as many random bits as the dtype's significand (24 for float32, 53 for float64), so they lie
in ``[minval, maxval)``; normals use the Box-Muller transform, truncated normals the inverse CDF (within two
standard deviations, as Keras), gammas Marsaglia and Tsang's method (ACM TOMS 2000) with a fixed number of rounds
(the chance that all rounds reject is below ``1e-20`` per element).
"""

from __future__ import annotations

import itertools
import math
import numbers
import random as python_random
import threading
from typing import Any

import numpy as np
import torch

from . import config

_M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB
_GAMMA_ROUNDS = 16  # Marsaglia-Tsang accepts >= 95% of candidates for alpha >= 1: 0.05**16 < 1e-20
_SIGNIFICAND_BITS = {torch.float64: 53, torch.float32: 24, torch.float16: 11, torch.bfloat16: 8}


def as_int64(x: int) -> int:
    """The int64 whose two's-complement bits are ``x mod 2**64``."""
    x &= _M64
    return x - (1 << 64) if x >> 63 else x


def mix64(x: Any) -> Any:
    """SplitMix64's finalizer, a bijection of 64-bit words: on a Python int (mod 2**64, returns a non-negative int)
    or on an int64 tensor holding the bits (products and sums wrap as uint64 arithmetic does)."""
    if isinstance(x, torch.Tensor):
        x = (x ^ _shr(x, 30)) * as_int64(_MIX_1)
        x = (x ^ _shr(x, 27)) * as_int64(_MIX_2)
        return x ^ _shr(x, 31)
    x &= _M64
    x = ((x ^ (x >> 30)) * _MIX_1) & _M64
    x = ((x ^ (x >> 27)) * _MIX_2) & _M64
    return x ^ (x >> 31)


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 tensors read as uint64 (``>>`` is arithmetic: clear the copied sign bits)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _same_device(have: torch.device, want: torch.device) -> bool:
    if want.type == "cuda" and want.index is None:
        want = torch.device("cuda", torch.cuda.current_device())
    return have.type == want.type and (want.index is None or have.index == want.index)


def _check_int_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"Argument `seed` must be an integer. Received: seed={seed!r} (of type {type(seed)})")
    seed = int(seed)
    if not -(2**63) <= seed < 2**63:
        raise ValueError(f"Argument `seed` must fit in 64 bits (an int64). Received: seed={seed}")
    return seed


_NAMES = itertools.count()


class SeedGenerator:
    """A stateful seed for the random functions: pass it as ``seed=`` and every call draws new values.

    ``state`` is an int64 tensor ``[seed, counter]`` (Keras' ``seed_generator_state``); :meth:`next` returns a copy
    and advances the counter. Two generators made with the same ``seed`` give the same sequence of draws. Without
    ``seed``, one is drawn from Python's ``random`` module (so ``tritonnn.utils.set_random_seed`` makes it
    reproducible), as in Keras.

    Args:
        seed: an integer (``None``: drawn from Python's ``random``).
        name: the generator's name (default ``seed_generator``, ``seed_generator_1``...).
    """

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs: Any):
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"Expected `name` to be a string or None. Received: name={name!r}")
        count = next(_NAMES)
        self.name = name or ("seed_generator" if count == 0 else f"seed_generator_{count}")
        self._initial_seed = None if seed is None else _check_int_seed(seed)
        start = python_random.randint(1, 10**9) if seed is None else self._initial_seed
        self.state = torch.tensor([start, 0], dtype=torch.int64, device=config.default_device())

    def next(self, ordered: bool = True) -> torch.Tensor:
        """The current ``[seed, counter]`` (a copy), then advance: the counter by one (``ordered``), or Keras'
        unordered step ``state = (state + 1) * 5387 % 933199``. Runs on the state's device, without a host sync."""
        value = self.state.clone()
        if ordered:
            self.state[1:].add_(1)
        else:
            self.state.copy_((self.state + 1) * 5387 % 933199)
        return value

    def to(self, device: torch.device | str) -> SeedGenerator:
        """Move the state to ``device`` (a copy: do it before a CUDA-graph capture, not during one)."""
        self.state = self.state.to(device)
        return self

    def get_config(self) -> dict[str, Any]:
        return {"seed": self._initial_seed, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SeedGenerator:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<SeedGenerator name={self.name}, seed={self._initial_seed}>"


_GLOBAL = threading.local()


def global_seed_generator() -> SeedGenerator:
    """The generator ``seed=None`` draws from, made on first use (seeded from Python's ``random``)."""
    gen = getattr(_GLOBAL, "generator", None)
    if gen is None:
        gen = _GLOBAL.generator = SeedGenerator(name="global_seed_generator")
    return gen


def reset_global_seed_generator() -> None:
    """Forget the global generator: the next ``seed=None`` draw makes a new one (``utils.set_random_seed``)."""
    _GLOBAL.generator = None


def draw_key(seed: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """The 64-bit key (a 0-dim int64 tensor on ``device``) of one draw with Keras' ``seed`` argument: an int (the
    same key every time), a :class:`SeedGenerator` (advanced by one; its state moves to ``device`` first when it is
    elsewhere) or None (the global generator)."""
    device = config.default_device() if device is None else torch.device(device)
    if seed is None:
        seed = global_seed_generator()
    if isinstance(seed, SeedGenerator):
        if not _same_device(seed.state.device, device):
            seed.to(device)
        pair = seed.next()
        return mix64(mix64(pair[0]) + pair[1])
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(
            "Argument `seed` must be either an integer or an instance of `SeedGenerator`. "
            f"Received: seed={seed!r} (of type {type(seed)})"
        )
    key = mix64(mix64(_check_int_seed(seed)))  # the key of the pair [seed, 0]
    return torch.full((), as_int64(key), dtype=torch.int64, device=device)


def subkey(key: torch.Tensor, i: int) -> torch.Tensor:
    """An independent key derived from ``key`` (the ``i``-th stream of a draw that needs several)."""
    return mix64(key + as_int64((i + 1) * _MIX_2))


def random_bits(key: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """64 random bits per element (int64), SplitMix64's outputs 1, 2, ... from ``key``, on ``key``'s device."""
    n = math.prod(shape)
    index = torch.arange(1, n + 1, dtype=torch.int64, device=key.device)
    return mix64(key + index * as_int64(GOLDEN)).reshape(shape)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def uniform_bits(key: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Uniform floats in ``[0, 1)`` with ``dtype``'s significand of random bits, computed in float32 (float64 for
    float64) so that they convert exactly to ``dtype``."""
    bits = _SIGNIFICAND_BITS.get(dtype, 24)
    work = _work_dtype(dtype)
    return _shr(random_bits(key, shape), 64 - bits).to(work) * (2.0**-bits)


def open_uniform(key: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Uniform floats in the open interval ``(0, 1)``: the midpoints of ``2**bits`` equal cells, with ``bits`` one
    less than the working dtype's significand so that every midpoint is exact (never 0, never 1)."""
    bits = 52 if _work_dtype(dtype) == torch.float64 else 23
    return (_shr(random_bits(key, shape), 64 - bits).to(_work_dtype(dtype)) + 0.5) * (2.0**-bits)


def standard_normal(key: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Standard normal floats (Box-Muller on two open uniforms), in float32 (float64 for float64)."""
    u = open_uniform(key, (2, *shape), dtype)
    return torch.sqrt(-2.0 * torch.log(u[0])) * torch.cos((2.0 * math.pi) * u[1])


def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(f"Expected `shape` to be a tuple of non-negative integers. Received: shape={shape!r}")
    return tuple(int(d) for d in shape)


def _float_dtype(dtype: Any, what: str) -> torch.dtype:
    d = config.standardize_dtype(dtype)
    if not d.is_floating_point:
        raise ValueError(f"`keras.random.{what}` requires a floating point `dtype`. Received: dtype={dtype}")
    return d


def _param(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """A distribution parameter: a Python number stays one, anything else becomes a tensor on ``device``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(value), dtype=dtype, device=device)


def normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = None, seed: Any = None) -> torch.Tensor:
    """Samples of a normal distribution of ``mean`` and ``stddev`` (default dtype: floatx)."""
    shape, dtype = _shape(shape), _float_dtype(dtype, "normal")
    device = config.default_device()
    key = draw_key(seed, device)
    work = _work_dtype(dtype)
    z = standard_normal(key, shape, dtype)
    return (z * _param(stddev, device, work) + _param(mean, device, work)).to(dtype)


def uniform(shape: Any, minval: Any = 0.0, maxval: Any = 1.0, dtype: Any = None, seed: Any = None) -> torch.Tensor:
    """Samples of the uniform distribution on ``[minval, maxval)`` (a float ``dtype``, default floatx)."""
    shape, dtype = _shape(shape), _float_dtype(dtype, "uniform")
    device = config.default_device()
    work = _work_dtype(dtype)
    low, high = _param(minval, device, work), _param(maxval, device, work)
    u = uniform_bits(draw_key(seed, device), shape, dtype)
    return (u * (high - low) + low).to(dtype)


def truncated_normal(
    shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = None, seed: Any = None
) -> torch.Tensor:
    """Samples of a normal distribution of ``mean`` and ``stddev`` conditioned to lie within two standard deviations
    of the mean (Keras' truncation), drawn by the inverse CDF (no rejection loop)."""
    shape, dtype = _shape(shape), _float_dtype(dtype, "truncated_normal")
    device = config.default_device()
    u = open_uniform(draw_key(seed, device), shape, torch.float64)
    lo = 0.5 * math.erfc(2.0 / math.sqrt(2.0))  # Phi(-2)
    p = lo + (1.0 - 2.0 * lo) * u  # in (Phi(-2), Phi(2))
    z = (math.sqrt(2.0) * torch.erfinv(2.0 * p - 1.0)).clamp(-2.0, 2.0)
    work = _work_dtype(dtype)
    return (z.to(work) * _param(stddev, device, work) + _param(mean, device, work)).to(dtype)


def randint(shape: Any, minval: Any, maxval: Any, dtype: Any = "int32", seed: Any = None) -> torch.Tensor:
    """Random integers in ``[minval, maxval)`` (an integer ``dtype``, default int32)."""
    d = config.standardize_dtype(dtype)
    if d.is_floating_point or d.is_complex or d == torch.bool:
        raise ValueError(f"`keras.random.randint` requires an integer `dtype`. Received: dtype={dtype} ")
    shape = _shape(shape)
    for name, value in (("minval", minval), ("maxval", maxval)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"Expected `{name}` to be an integer. Received: {name}={value!r}")
    if not int(minval) < int(maxval):
        raise ValueError(f"Expected `minval < maxval`. Received: minval={minval}, maxval={maxval}")
    span = int(maxval) - int(minval)
    if span >= 2**63:
        raise ValueError(f"The range [minval, maxval) holds more than 2**63 values: {span}")
    device = config.default_device()
    bits = _shr(random_bits(draw_key(seed, device), shape), 1)  # 63 random bits, non-negative
    return (bits % span + int(minval)).to(d)


def noise_shape_of(inputs: torch.Tensor, noise_shape: Any) -> tuple[int, ...]:
    """A dropout mask's concrete shape: ``noise_shape`` with its None entries taken from ``inputs`` (the input's
    shape when None), checked to broadcast against ``inputs``."""
    if noise_shape is None:
        return tuple(inputs.shape)
    noise_shape = tuple(noise_shape)
    if len(noise_shape) != inputs.dim():
        raise ValueError(
            f"`noise_shape` must have the rank of the inputs ({inputs.dim()}). Received: noise_shape={noise_shape}"
        )
    shape = tuple(inputs.shape[i] if d is None else int(d) for i, d in enumerate(noise_shape))
    if any(d not in (1, inputs.shape[i]) for i, d in enumerate(shape)):
        raise ValueError(f"`noise_shape` {noise_shape} is not broadcastable to the input shape {tuple(inputs.shape)}")
    return shape


def _tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    t = torch.as_tensor(np.asarray(x), device=config.default_device())
    return t.to(config.standardize_dtype(None)) if t.dtype == torch.float64 else t


def dropout(inputs: Any, rate: float, noise_shape: Any = None, seed: Any = None) -> torch.Tensor:
    """``inputs`` with each entry (or each entry of a ``noise_shape`` mask, broadcast) set to 0 with probability
    ``rate`` and the others scaled by ``1 / (1 - rate)``."""
    x = _tensor(inputs)
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"Invalid value received for argument `rate`. Expected a float in [0, 1]. Received: {rate!r}")
    rate = float(rate)
    shape = noise_shape_of(x, noise_shape)
    if rate == 1.0:
        return torch.zeros_like(x)
    if rate == 0.0:
        return x
    dtype = x.dtype if x.is_floating_point() else config.standardize_dtype(None)
    keep = uniform_bits(draw_key(seed, x.device), shape, dtype) >= rate
    return torch.where(keep, x / (1.0 - rate), torch.zeros((), dtype=x.dtype, device=x.device))


def shuffle(x: Any, axis: int = 0, seed: Any = None) -> torch.Tensor:
    """``x`` with its entries along ``axis`` randomly permuted: one permutation per index of the axes before
    ``axis``, the same for every index of the axes after it (Keras' layout)."""
    x = _tensor(x)
    if x.dim() == 0:
        raise ValueError("Cannot shuffle a scalar (a tensor of rank 0)")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -x.dim() <= axis < x.dim():
        raise ValueError(f"Invalid `axis` for a tensor of rank {x.dim()}. Received: axis={axis!r}")
    axis = int(axis) % x.dim()
    head = tuple(x.shape[: axis + 1])
    perm = torch.argsort(random_bits(draw_key(seed, x.device), head), dim=axis)
    perm = perm.reshape(*head, *([1] * (x.dim() - axis - 1))).expand(x.shape)
    return torch.gather(x, axis, perm)


def categorical(logits: Any, num_samples: int, dtype: Any = "int32", seed: Any = None) -> torch.Tensor:
    """``num_samples`` class indices per row of 2-D ``logits`` (unnormalized log-probabilities), with replacement:
    shape ``(batch, num_samples)``. Drawn with the Gumbel-max trick."""
    z = _tensor(logits)
    if z.dim() != 2:
        raise ValueError(
            f"`logits` should be a 2-D tensor with shape [batch_size, num_classes]. Received: logits={logits}"
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples < 0:
        raise ValueError(f"Expected `num_samples` to be a non-negative integer. Received: num_samples={num_samples!r}")
    d = config.standardize_dtype(dtype)
    if d.is_floating_point or d == torch.bool:
        raise ValueError(f"`keras.random.categorical` requires an integer `dtype`. Received: dtype={dtype}")
    work = torch.float64 if z.dtype == torch.float64 else torch.float32
    batch, classes = z.shape
    u = open_uniform(draw_key(seed, z.device), (batch, int(num_samples), classes), work)
    gumbel = -torch.log(-torch.log(u))
    return torch.argmax(z.to(work)[:, None, :] + gumbel, dim=-1).to(d)


def _standard_gamma(key: torch.Tensor, alpha: torch.Tensor, work: torch.dtype) -> torch.Tensor:
    """Gamma(alpha, 1) samples, one per element of ``alpha`` (Marsaglia-Tsang; alpha < 1 boosted by ``U**(1/a)``)."""
    shape = tuple(alpha.shape)
    a = torch.where(alpha < 1.0, alpha + 1.0, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    x = standard_normal(subkey(key, 0), (_GAMMA_ROUNDS, *shape), work)
    u = open_uniform(subkey(key, 1), (_GAMMA_ROUNDS, *shape), work)
    v = (1.0 + c * x) ** 3
    safe_v = torch.where(v > 0, v, torch.ones_like(v))
    accept = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * safe_v + d * torch.log(safe_v))
    first = torch.argmax(accept.to(torch.int8), dim=0, keepdim=True)  # the first accepted round
    sample = d * torch.gather(safe_v, 0, first)[0]
    sample = torch.where(accept.any(dim=0), sample, d)
    boost = open_uniform(subkey(key, 2), shape, work) ** (1.0 / alpha)
    return torch.where(alpha < 1.0, sample * boost, sample)


def _positive(value: torch.Tensor, name: str) -> None:
    if not bool(torch.all(value > 0)):  # a user-level draw: reading the check on the host is fine here
        raise ValueError(f"Expected `{name}` to be positive everywhere. Received: {name}={value}")


def gamma(shape: Any, alpha: Any, dtype: Any = None, seed: Any = None) -> torch.Tensor:
    """Samples of the gamma distribution of shape ``alpha`` (a positive number or a tensor broadcast to ``shape``)
    and scale 1."""
    shape, dtype = _shape(shape), _float_dtype(dtype, "gamma")
    device, work = config.default_device(), _work_dtype(dtype)
    a = torch.broadcast_to(torch.as_tensor(_param(alpha, device, work), dtype=work, device=device), shape)
    _positive(a, "alpha")
    return _standard_gamma(draw_key(seed, device), a, work).to(dtype)


def beta(shape: Any, alpha: Any, beta: Any, dtype: Any = None, seed: Any = None) -> torch.Tensor:
    """Samples of the beta distribution of parameters ``alpha`` and ``beta`` (positive numbers or tensors broadcast
    to ``shape``): ``X / (X + Y)`` with ``X ~ Gamma(alpha)`` and ``Y ~ Gamma(beta)``."""
    shape, dtype = _shape(shape), _float_dtype(dtype, "beta")
    device, work = config.default_device(), _work_dtype(dtype)
    a = torch.broadcast_to(torch.as_tensor(_param(alpha, device, work), dtype=work, device=device), shape)
    b = torch.broadcast_to(torch.as_tensor(_param(beta, device, work), dtype=work, device=device), shape)
    _positive(a, "alpha")
    _positive(b, "beta")
    key = draw_key(seed, device)
    x, y = _standard_gamma(subkey(key, 10), a, work), _standard_gamma(subkey(key, 11), b, work)
    return (x / (x + y)).to(dtype)


def binomial(shape: Any, counts: Any, probabilities: Any, dtype: Any = None, seed: Any = None) -> torch.Tensor:
    """Samples of the binomial distribution: successes in ``counts`` trials of probability ``probabilities`` (numbers
    or tensors broadcast to ``shape``), as floats (default dtype: floatx), as in Keras.

    Drawn by ``torch.binomial`` with a generator seeded from the draw's key, which is read on the host (one sync):
    unlike the other draws, this one cannot be captured in a CUDA graph.
    """
    shape, dtype = _shape(shape), _float_dtype(dtype, "binomial")
    device = config.default_device()
    n = torch.broadcast_to(torch.as_tensor(_param(counts, device, torch.float32), device=device), shape)
    p = torch.broadcast_to(torch.as_tensor(_param(probabilities, device, torch.float32), device=device), shape)
    if not bool(torch.all((n >= 0) & (n == torch.floor(n)))):
        raise ValueError(f"Expected `counts` to be non-negative whole numbers. Received: counts={counts}")
    if not bool(torch.all((p >= 0) & (p <= 1))):
        raise ValueError(f"Expected `probabilities` to lie in [0, 1]. Received: probabilities={probabilities}")
    generator = torch.Generator(device=device)
    generator.manual_seed(int(draw_key(seed, device).item()) & (2**63 - 1))
    return torch.binomial(n.contiguous(), p.contiguous(), generator=generator).to(dtype)


__all__ = [
    "SeedGenerator",
    "beta",
    "binomial",
    "categorical",
    "dropout",
    "gamma",
    "normal",
    "randint",
    "shuffle",
    "truncated_normal",
    "uniform",
]
