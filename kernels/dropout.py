"""Dropout with a counter-based mask: a pure function of (seed, row-major element index).

``y = x * keep / (1 - rate)`` with ``keep = word(seed, i) >> 1 >= round(rate * 2**31)`` for the logical (row-major)
element index ``i``: Keras' inverted dropout, with a mask that is a pure function of the seed and the index. So the
backward regenerates the mask instead of storing it, the mask does not depend on block sizes, and the dense kernel
fuses the very same mask into its epilogue (kernels/dense.py): fused and unfused paths drop bit-identical elements
for the same seed, on each backend.

The seed comes in one of two forms (:func:`check_seed`):

- **an int seed**: a Python int in [0, 2**63), passed to the Triton kernels as a scalar argument;
- **a device seed**: a 0-dim ``torch.int64`` tensor on x's device, which nothing reads on the host. The Triton
  kernels load it through a pointer (``tl.load(seed_ptr)``, once per program) and the torch path computes the mask
  from it with ATen ops only, so a CUDA graph (or tritonnn's ``EmulatedGraph``) can capture a dropout whose seed
  changes every step: whoever advances the seed does so in device memory (``Dropout.next_seed_tensor``). The
  backward keeps the seed tensor itself (saved for backward, never ``.item()``-ed). Its value is not checked (that
  would be a host sync): a negative one keys Philox with its two's-complement bits, like the kernels' ``uint64``.

The two forms share one kernel per op: a constexpr ``DEVICE_SEED`` picks the scalar or the load, so an int seed
costs what it did before (no tensor made, no host-to-device copy, one launch; the unused ``seed_ptr`` is a dummy
pointer to x), and a device seed one 8-byte load per program.

Two streams of 32-bit words, one per kind of path (see :func:`torch_dropout_mask`):

- **Philox4x32-10** (``word = tl.randint(seed, i)``): the Triton kernels, on a GPU or under the interpreter, and the
  torch path on CUDA tensors; and the torch path with a device seed on *any* device, CPU included.
  :func:`dropout_mask` / :func:`philox_randint` are its torch reference, which the Triton kernels are tested against
  bit for bit. For the same seed value an int seed and a device seed give the same Philox mask.
- **PCG64** (numpy's default bit generator, seeded with the seed; word ``i`` is the ``i``-th 32-bit half of its raw
  64-bit stream, low half first): the torch path on CPU tensors with an int seed. Philox costs ~80 integer
  operations per element, which a GPU hides and a CPU does not (3.5 ms for a 128x512 mask in numpy on a 2-core
  EPYC, more than the GEMM in front of it); PCG64 draws the same mask in ~0.25 ms. So on a CPU the torch path with
  an int seed and the Triton kernels (under ``TRITON_INTERPRET=1``) drop *different* elements for the same seed:
  each is deterministic per seed, fused == unfused holds within each, and both keep a fraction ``1 - rate`` of the
  elements. A device seed on a CPU takes Philox in torch ops (numpy cannot be recorded as ATen ops), which is slower
  still (~10x numpy's Philox): device seeds are for steps that are captured, i.e. on a GPU.

The comparison is done on the 31 high bits of the integer draw, not on a float from ``tl.rand``, so that the torch
implementation below reproduces it exactly without depending on how a Triton version turns bits into floats.

Forward: read N, write N elements. Backward: read N (dy), write N (dx). Nothing is saved but the seed.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from . import _backend
from ._aot import AotCase, register_aot
from ._triton import INTERPRETING, tl, triton

# Philox4x32-10 constants (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), as tl.randint.
_PHILOX_ROUND_A = 0xD2511F53
_PHILOX_ROUND_B = 0xCD9E8D57
_PHILOX_KEY_A = 0x9E3779B9
_PHILOX_KEY_B = 0xBB67AE85
_M32 = 0xFFFFFFFF
_PHILOX_ROUNDS = 10
_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def is_device_seed(seed: object) -> bool:
    """Whether ``seed`` is a device seed (a tensor) rather than an int seed."""
    return isinstance(seed, torch.Tensor)


def _mul_hi_lo(a: int, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32 bits of ``a * c`` for a 32-bit constant and int64 tensors holding uint32, without overflow."""
    c_hi, c_lo = c >> 16, c & 0xFFFF
    t_lo = a * c_lo  # < 2**48
    t = a * c_hi + (t_lo >> 16)  # a * c == t * 2**16 + (t_lo & 0xffff), t < 2**49
    return t >> 16, ((t & 0xFFFF) << 16) | (t_lo & 0xFFFF)


def _round_keys(seed: int | torch.Tensor) -> list[tuple]:
    """Philox's key ``(k0, k1)`` of each round: Python ints for an int seed; for a device seed, 0-dim views of two
    10-element tensors computed at once (six small ops instead of four per round; every op is a launch on CUDA)."""
    if not is_device_seed(seed):
        k0, k1 = seed & _M32, (seed >> 32) & _M32
        keys = []
        for _ in range(_PHILOX_ROUNDS):
            keys.append((k0, k1))
            k0, k1 = (k0 + _PHILOX_KEY_A) & _M32, (k1 + _PHILOX_KEY_B) & _M32
        return keys
    # The seed's low and high 32-bit words (>> on int64 is arithmetic: the mask keeps the two's-complement bits,
    # as the kernels' cast to uint64 does), plus r times the Weyl increments, mod 2**32 (sums stay below 2**36).
    r = torch.arange(_PHILOX_ROUNDS, dtype=torch.int64, device=seed.device)
    k0 = ((seed & _M32) + r * _PHILOX_KEY_A) & _M32
    k1 = (((seed >> 32) & _M32) + r * _PHILOX_KEY_B) & _M32
    return [(k0[i], k1[i]) for i in range(_PHILOX_ROUNDS)]


def philox_randint(seed: int | torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``tl.randint(seed, offsets)`` in torch: the first 32-bit word of Philox4x32-10, as int64 in [0, 2**32).

    ``seed`` is an int, or a device seed (a 0-dim int64 tensor on ``offsets``' device), which is never read on the
    host: the word is then computed with ATen ops only, on any device. An int seed on a CPU takes numpy (faster)."""
    offsets = offsets.to(torch.int64)
    if offsets.device.type == "cpu" and not is_device_seed(seed):
        return torch.from_numpy(_philox_numpy(seed, offsets.numpy()).astype(np.int64))
    c0, c1 = offsets & _M32, (offsets >> 32) & _M32
    c2 = torch.zeros_like(c0)
    c3 = torch.zeros_like(c0)
    for k0, k1 in _round_keys(seed):
        hi_b, lo_b = _mul_hi_lo(_PHILOX_ROUND_B, c2)
        hi_a, lo_a = _mul_hi_lo(_PHILOX_ROUND_A, c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
    return c0


def _philox_numpy(seed: int, offsets: np.ndarray) -> np.ndarray:
    """The same rounds on CPU in numpy uint64, whose products wrap modulo 2**64 by definition: one multiply per
    32x32-bit product instead of four (3.5 ms vs 13 ms for a 128x512 mask on this 2-core CPU)."""
    m32, shift = np.uint64(_M32), np.uint64(32)
    off = offsets.astype(np.uint64)
    c0, c1 = off & m32, off >> shift
    c2 = np.zeros_like(c0)
    c3 = np.zeros_like(c0)
    k0, k1 = seed & _M32, (seed >> 32) & _M32
    a, b = np.uint64(_PHILOX_ROUND_A), np.uint64(_PHILOX_ROUND_B)
    for _ in range(_PHILOX_ROUNDS):
        pb, pa = b * c2, a * c0
        c0, c1, c2, c3 = (pb >> shift) ^ c1 ^ np.uint64(k0), pb & m32, (pa >> shift) ^ c3 ^ np.uint64(k1), pa & m32
        k0, k1 = (k0 + _PHILOX_KEY_A) & _M32, (k1 + _PHILOX_KEY_B) & _M32
    return c0


def keep_threshold(rate: float) -> int:
    """The 31-bit threshold: an element is kept when ``randint >> 1 >= keep_threshold(rate)``."""
    return min(int(round(rate * 2**31)), 2**31 - 1)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _mask_device(seed: int | torch.Tensor, device: torch.device | str | None) -> torch.device:
    """Where a mask for ``seed`` is made: ``device``, which a device seed must be on; None: the seed's (or the
    CPU for an int seed)."""
    if device is None:
        return seed.device if is_device_seed(seed) else torch.device("cpu")
    device = torch.device(device)
    if is_device_seed(seed):
        check_seed(seed, device)
        return seed.device
    return device


def dropout_mask(
    seed: int | torch.Tensor, rate: float, shape: tuple[int, ...], device: torch.device | str | None = None
) -> torch.Tensor:
    """The Philox boolean keep-mask of ``shape`` (row-major element indices), identical to the Triton kernels'.
    ``seed``: an int, or a device seed (on ``device``; None: the seed's device, or the CPU for an int)."""
    device = _mask_device(seed, device)
    offsets = torch.arange(_numel(shape), dtype=torch.int64, device=device)
    return ((philox_randint(seed, offsets) >> 1) >= keep_threshold(rate)).reshape(shape)


def pcg64_dropout_mask(seed: int, rate: float, shape: tuple[int, ...]) -> torch.Tensor:
    """The CPU torch path's boolean keep-mask of ``shape``: word ``i`` is the ``i``-th 32-bit half (low half first)
    of ``numpy.random.PCG64(seed)``'s raw 64-bit stream, kept when ``word >> 1 >= keep_threshold(rate)``.

    A prefix of one stream, so element ``i`` gets the same word whatever the shape: like Philox, a pure function of
    (seed, element index). numpy documents its bit generators' streams as stable across versions; ``random_raw``
    is the bit generator itself (no ``Generator`` method whose algorithm could change). The halves are read as
    native uint32, so the stream assumes a little-endian host (every platform torch ships CPU wheels for).
    """
    n = _numel(shape)
    words = np.random.PCG64(seed).random_raw((n + 1) // 2).view(np.uint32)[:n]
    keep = words >= np.uint32(2 * keep_threshold(rate))  # == (words >> 1) >= threshold, without the shift pass
    return torch.from_numpy(keep).reshape(shape)


def torch_dropout_mask(
    seed: int | torch.Tensor, rate: float, shape: tuple[int, ...], device: torch.device | str | None = None
) -> torch.Tensor:
    """The keep-mask the *torch path* applies on ``device``: for an int seed PCG64 (:func:`pcg64_dropout_mask`) on
    a CPU, where it is ~14x cheaper than Philox, and Philox (:func:`dropout_mask`, the Triton kernels' mask)
    elsewhere; for a device seed Philox on every device (ATen ops only: nothing is read on the host)."""
    device = _mask_device(seed, device)
    if device.type == "cpu" and not is_device_seed(seed):
        return pcg64_dropout_mask(seed, rate, shape)
    return dropout_mask(seed, rate, shape, device)


def backend_dropout_mask(
    seed: int | torch.Tensor,
    rate: float,
    shape: tuple[int, ...],
    device: torch.device | str | None = None,
    dtype=torch.float32,
) -> torch.Tensor:
    """The keep-mask ``dropout`` and ``dense``'s fused dropout apply to a ``dtype`` tensor on ``device`` under the
    current backend setting: the Triton kernels' Philox where they run, else the torch path's."""
    device = _mask_device(seed, device)
    probe = torch.empty(0, dtype=dtype, device=device)
    if _backend.use_triton(probe) and dtype in _TRITON_DTYPES:
        return dropout_mask(seed, rate, shape, device)
    return torch_dropout_mask(seed, rate, shape, device)


def dropout_reference(x: torch.Tensor, rate: float, seed: int | torch.Tensor) -> torch.Tensor:
    """Plain torch: ``x * keep / (1 - rate)`` with the torch path's mask (:func:`torch_dropout_mask`: PCG64 on a
    CPU with an int seed, Philox otherwise); differentiable by autograd."""
    keep = torch_dropout_mask(seed, rate, tuple(x.shape), x.device)
    scale = 1.0 / (1.0 - rate)
    return torch.where(keep, x * scale, torch.zeros((), dtype=x.dtype, device=x.device))


@triton.jit(do_not_specialize=["seed", "threshold"])
def _dropout_fwd_kernel(
    x_ptr,  # *[n] input (dy in the backward), contiguous
    y_ptr,  # *[n] output (dx in the backward), contiguous
    n,  # number of elements
    seed,  # Philox key (an int seed; unused with DEVICE_SEED)
    seed_ptr,  # *i64 [] the Philox key in device memory (DEVICE_SEED; else a dummy pointer, never read)
    threshold,  # i32: keep when randint >> 1 >= threshold
    scale,  # fp32: 1 / (1 - rate)
    BLOCK: tl.constexpr,
    DEVICE_SEED: tl.constexpr,  # the key is the int64 at seed_ptr, not the scalar seed
):
    # One program handles BLOCK consecutive elements; the mask depends only on (seed, element index).
    if DEVICE_SEED:
        key = tl.load(seed_ptr)
    else:
        key = seed
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    valid = offs < n
    x = tl.load(x_ptr + offs, mask=valid, other=0.0).to(tl.float32)
    keep = (tl.randint(key, offs) >> 1).to(tl.int32) >= threshold
    y = tl.where(keep, x * scale, 0.0)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=valid)


_DROPOUT_BLOCK = 256 if INTERPRETING else 1024

register_aot(
    *(
        AotCase(
            name=f"dropout_fwd[{dt[1:]}{',device-seed' if device_seed else ''}]",
            kernel=_dropout_fwd_kernel,
            signature={
                "x_ptr": dt,
                "y_ptr": dt,
                "n": "i64",
                "seed": "i64",
                "seed_ptr": "*i64" if device_seed else dt,  # the launcher's dummy for an int seed is x
                "threshold": "i32",
                "scale": "fp32",
                "BLOCK": "constexpr",
                "DEVICE_SEED": "constexpr",
            },
            constexprs={"BLOCK": 1024, "DEVICE_SEED": device_seed},
            num_warps=4,
            num_stages=1,
        )
        for dt in ("*fp32", "*bf16", "*fp16")
        for device_seed in (False, True)
    )
)


def seed_args(seed: int | torch.Tensor, dummy: torch.Tensor) -> tuple[int, torch.Tensor, bool]:
    """A kernel's ``(seed, seed_ptr, DEVICE_SEED)`` arguments: an int seed as the scalar (``seed_ptr`` the dummy
    pointer ``dummy``, never read), a device seed through its pointer (the scalar 0, unused)."""
    if is_device_seed(seed):
        return 0, seed, True
    return seed, dummy, False


def _dropout_launch(x: torch.Tensor, rate: float, seed: int | torch.Tensor) -> torch.Tensor:
    x = x.contiguous()
    y = torch.empty_like(x)
    n = x.numel()
    if n:
        grid = (triton.cdiv(n, _DROPOUT_BLOCK),)
        key, key_ptr, device_seed = seed_args(seed, x)
        _dropout_fwd_kernel[grid](
            x, y, n, key, key_ptr, keep_threshold(rate), 1.0 / (1.0 - rate), BLOCK=_DROPOUT_BLOCK,
            DEVICE_SEED=device_seed,
        )  # fmt: skip
    return y


class DropoutFunction(torch.autograd.Function):
    """Saves nothing but (rate, seed): the backward regenerates the mask and applies it to dy. A device seed is
    saved as a tensor (``save_for_backward``: an in-place change to it before the backward is an error)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rate: float, seed: int | torch.Tensor) -> torch.Tensor:
        ctx.rate = rate
        if is_device_seed(seed):
            ctx.save_for_backward(seed)
            ctx.seed = None
        else:
            ctx.seed = seed
        return _dropout_launch(x, rate, seed)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        seed = ctx.saved_tensors[0] if ctx.seed is None else ctx.seed
        return _dropout_launch(dy, ctx.rate, seed), None, None


# ---- the seed stream of a Dropout layer, advanced on the device ----
# Seed i of a stream (base, counter) is splitmix64((base + splitmix64(i)) mod 2**64) >> 1, i = 1, 2, ... (the layer
# keeps the host form of the same formula: ``tritonnn.layers.Dropout.next_seed``). On the device it is one launch:
# the counter is incremented in place and the seed written to a fresh 0-dim tensor, so a CUDA graph that captured
# the launch draws the next seed on every replay. The torch path is ~25 ATen ops on 0-dim tensors (each a launch
# on a GPU); the kernel is one.
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's Weyl increment
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB
_M64 = (1 << 64) - 1


def _as_int64(x: int) -> int:
    x &= _M64
    return x - (1 << 64) if x >> 63 else x


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 tensors read as uint64 (``>>`` is arithmetic: clear the copied sign bits)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _splitmix64_tensor(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64 (increment, then the finalizer) on int64 tensors holding uint64 bits: sums and products wrap
    modulo 2**64 in two's complement, which is uint64 arithmetic on the bits."""
    x = x + _as_int64(_GOLDEN)
    x = (x ^ _shr(x, 30)) * _as_int64(_MIX_1)
    x = (x ^ _shr(x, 27)) * _as_int64(_MIX_2)
    return x ^ _shr(x, 31)


@triton.jit
def _splitmix64(x):
    # x: uint64. Triton's uint64 products and sums wrap, and >> on an unsigned value is logical.
    x = x + 0x9E3779B97F4A7C15
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB
    return x ^ (x >> 31)


@triton.jit
def _seed_next_kernel(
    base_ptr,  # *i64 [] the stream's base (uint64 bits)
    counter_ptr,  # *i64 [] seeds drawn so far, incremented in place
    seed_ptr,  # *i64 [] out: the next seed, in [0, 2**63)
):
    counter = tl.load(counter_ptr) + 1
    tl.store(counter_ptr, counter)
    mixed = _splitmix64(
        tl.load(base_ptr).to(tl.uint64, bitcast=True) + _splitmix64(counter.to(tl.uint64, bitcast=True))
    )
    tl.store(seed_ptr, (mixed >> 1).to(tl.int64, bitcast=True))


register_aot(
    AotCase(
        name="dropout_seed_next",
        kernel=_seed_next_kernel,
        signature={"base_ptr": "*i64", "counter_ptr": "*i64", "seed_ptr": "*i64"},
        constexprs={},
        num_warps=1,
        num_stages=1,
    )
)


def seed_stream_next(base: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
    """Advance a seed stream held on the device: ``counter += 1`` in place and return the seed at the new position,
    ``splitmix64(base + splitmix64(counter)) >> 1``, as a fresh 0-dim int64 tensor on their device (a device seed
    for :func:`dropout` and the dense kernels). No host sync; one launch on the triton backend."""
    for name, t in (("base", base), ("counter", counter)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or t.dim() != 0:
            raise ValueError(f"seed_stream_next expects `{name}` a 0-dim torch.int64 tensor. Received: {t!r}")
    if base.device != counter.device:
        raise ValueError(f"seed_stream_next: base on {base.device} but counter on {counter.device}")
    if _backend.use_triton(counter):
        seed = torch.empty((), dtype=torch.int64, device=counter.device)
        _seed_next_kernel[(1,)](base, counter, seed, num_warps=1)
        return seed
    counter.add_(1)
    return _shr(_splitmix64_tensor(base + _splitmix64_tensor(counter)), 1)


def check_rate(rate: float) -> float:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(
            f"Invalid value received for argument `rate`. Expected a float value between 0 and 1 (1 excluded). "
            f"Received: rate={rate!r}"
        )
    return float(rate)


def check_seed(seed: int | torch.Tensor | None, device: torch.device | str | None = None) -> int | torch.Tensor:
    """A dropout seed (Philox key, PCG64 seed): a Python int in [0, 2**63); None draws one from torch's default
    generator; or a device seed, a 0-dim ``torch.int64`` tensor on ``device`` (x's), returned as it is (its value
    is not read: that would be a host sync)."""
    if isinstance(seed, torch.Tensor):
        if seed.dtype != torch.int64 or seed.dim() != 0:
            raise ValueError(
                "Expected a device dropout seed to be a 0-dim torch.int64 tensor. Received: seed of "
                f"dtype={seed.dtype}, shape={tuple(seed.shape)}"
            )
        if device is not None and seed.device != torch.device(device):
            raise ValueError(
                f"Expected a device dropout seed on the input's device {torch.device(device)}. Received: seed on "
                f"device={seed.device}"
            )
        return seed
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**63:
        raise ValueError(f"Expected the dropout seed to be an int in [0, 2**63). Received: seed={seed!r}")
    return int(seed)


def dropout(
    x: torch.Tensor, rate: float, seed: int | torch.Tensor | None = None, training: bool = True
) -> torch.Tensor:
    """Keras' inverted dropout: zero each element with probability ``rate``, scale the rest by ``1 / (1 - rate)``.

    The mask is a function of (``seed``, row-major element index), bit-identical to the one ``dense(...,
    dropout_rate=rate, dropout_seed=seed)`` fuses into its epilogue on the same backend: Philox in the Triton
    kernels (and the torch path on a GPU, or with a device seed), PCG64 on the torch path on a CPU with an int seed
    (module docstring; :func:`backend_dropout_mask` gives the mask). ``seed`` is an int, None (one is drawn), or a
    device seed: a 0-dim int64 tensor on x's device, never read on the host (graph-capturable). ``rate == 0`` or
    ``training=False`` returns ``x`` itself: no launch, no copy.
    """
    rate = check_rate(rate)
    if not training or rate == 0.0:
        return x
    seed = check_seed(seed, x.device)
    if not x.dtype.is_floating_point:
        raise ValueError(f"dropout expects a floating-point tensor. Received: x.dtype={x.dtype}")
    if _backend.use_triton(x) and x.dtype in _TRITON_DTYPES:
        return DropoutFunction.apply(x, rate, seed)
    return dropout_reference(x, rate, seed)
