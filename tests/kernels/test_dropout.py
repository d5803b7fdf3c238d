"""Dropout: a mask that is a function of (seed, element index), Keras' inverted scaling. The Triton kernels use
Philox (bit for bit the torch reference ``dropout_mask``), the torch path on a CPU numpy's PCG64 stream."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import assert_close_verbose
from tritonnn import kernels
from tritonnn.kernels import HAS_TRITON, INTERPRETING
from tritonnn.kernels.dropout import backend_dropout_mask, dropout_mask, pcg64_dropout_mask, philox_randint


def _x(shape, dtype, device, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype).to(device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape, rate, seed", [((1000,), 0.3, 0), ((7, 129), 0.5, 12345), ((3, 5, 33), 0.1, 2**40 + 7)])
def test_dropout_is_inverted_dropout_with_the_backends_mask(backend, device, dtype, shape, rate, seed):
    x = _x(shape, dtype, device).requires_grad_()
    y = kernels.dropout(x, rate, seed)
    keep = backend_dropout_mask(seed, rate, shape, device, dtype)
    if backend == "triton":  # the kernels' mask is Philox, bit for bit
        assert torch.equal(keep, dropout_mask(seed, rate, shape, device))
    expected = torch.where(keep, x.detach().double() / (1 - rate), 0.0)
    atol, rtol = {torch.float32: (0, 1e-6), torch.bfloat16: (0, 8e-3), torch.float16: (0, 1e-3)}[dtype]
    assert_close_verbose(y, expected, atol=atol, rtol=rtol, name="y")
    assert torch.equal(y != 0, keep & (x != 0)), "the dropped elements differ from the backend's mask"
    (dx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert_close_verbose(dx, keep.double() / (1 - rate), atol=0, rtol=rtol, name="dx")


def test_each_backend_is_deterministic_per_seed(backend, device):
    x = _x((17, 301), torch.float32, device, seed=3)
    y = kernels.dropout(x, 0.4, 99)
    assert torch.equal(y, kernels.dropout(x.clone(), 0.4, 99)), "the same seed must give the same mask"
    assert not torch.equal(y, kernels.dropout(x, 0.4, 100)), "another seed must give another mask"


def test_the_backends_streams_on_cuda_and_cpu(device):
    """The torch path's mask is Philox (the kernels') on a GPU and PCG64 on a CPU, where they differ."""
    shape, rate, seed = (17, 301), 0.4, 99
    x = _x(shape, torch.float32, device, seed=3)
    with kernels.backend_scope("torch"):
        y_torch = kernels.dropout(x, rate, seed)
    expected = dropout_mask(seed, rate, shape, device) if device != "cpu" else pcg64_dropout_mask(seed, rate, shape)
    assert torch.equal(y_torch != 0, expected.to(device) & (x != 0))
    if HAS_TRITON and (device != "cpu" or INTERPRETING):
        with kernels.backend_scope("triton"):
            y_triton = kernels.dropout(x, rate, seed)
        assert torch.equal(y_triton != 0, dropout_mask(seed, rate, shape, device) & (x != 0))
        assert torch.equal(y_torch, y_triton) == (device != "cpu")


def test_the_pcg64_mask_is_a_prefix_of_one_stream_of_32_bit_halves():
    """Word i is the i-th 32-bit half (low first) of PCG64(seed)'s raw stream, whatever the shape."""
    import numpy as np

    seed, rate = 2**62 + 5, 0.3
    raw = [int(r) for r in np.random.PCG64(seed).random_raw(8)]
    words = [h for r in raw for h in (r & 0xFFFFFFFF, r >> 32)]
    threshold = round(rate * 2**31)
    expected = torch.tensor([(w >> 1) >= threshold for w in words[:15]])
    assert torch.equal(pcg64_dropout_mask(seed, rate, (15,)), expected)
    assert torch.equal(pcg64_dropout_mask(seed, rate, (3, 5)).flatten(), expected)
    assert torch.equal(pcg64_dropout_mask(seed, rate, (4, 4)).flatten()[:15], expected)


@pytest.mark.parametrize("mask", [dropout_mask, pcg64_dropout_mask], ids=["philox", "pcg64"])
def test_keep_rate_is_one_minus_rate(mask):
    n = 20000
    for rate in (0.1, 0.5, 0.9):
        kept = mask(7, rate, (n,)).double().mean().item()
        sigma = math.sqrt(rate * (1 - rate) / n)
        assert abs(kept - (1 - rate)) < 5 * sigma, (rate, kept)
    # neighbouring elements and rows are independent: the pair (keep[i], keep[i + 1]) is kept with (1 - rate)^2
    keep = mask(11, 0.5, (100, 200)).double()
    for a, b in ((keep[:, :-1], keep[:, 1:]), (keep[:-1], keep[1:])):
        both = (a * b).mean().item()
        assert abs(both - 0.25) < 5 * math.sqrt(0.25 * 0.75 / a.numel()), both


def test_rate_zero_and_inference_cost_nothing(backend, device):
    x = _x((5, 7), torch.float32, device)
    assert kernels.dropout(x, 0.0, 1) is x
    assert kernels.dropout(x, 0.5, 1, training=False) is x


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.5", True])
def test_invalid_rate_is_a_value_error(backend, device, rate):
    with pytest.raises(ValueError, match="Received: rate="):
        kernels.dropout(torch.ones(3, device=device), rate, 0)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "7"])
def test_invalid_seed_is_a_value_error(backend, device, seed):
    with pytest.raises(ValueError, match="Received: seed="):
        kernels.dropout(torch.ones(3, device=device), 0.5, seed)


@pytest.mark.skipif(not (HAS_TRITON and INTERPRETING), reason="checks the torch Philox against tl.randint on CPU")
def test_torch_philox_equals_tl_randint():
    import triton
    import triton.language as tl

    @triton.jit
    def _randint_kernel(out_ptr, seed, base, BLOCK: tl.constexpr):
        offs = base + tl.arange(0, BLOCK).to(tl.int64)
        tl.store(out_ptr + tl.arange(0, BLOCK), tl.randint(seed, offs).to(tl.int64))

    for seed, base in ((0, 0), (2**35 + 3, 2**33 - 100)):  # 64-bit seeds and counters use both key/counter words
        out = torch.empty(256, dtype=torch.int64)
        _randint_kernel[(1,)](out, seed, base, BLOCK=256)
        expected = philox_randint(seed, torch.arange(base, base + 256, dtype=torch.int64))
        assert torch.equal(out & 0xFFFFFFFF, expected)


# ---- device seeds: a 0-dim int64 tensor that nothing reads on the host -------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape, seed", [((1000,), 0), ((7, 129), 2**40 + 7), ((3, 5, 33), 2**63 - 1)])
def test_a_device_seed_draws_the_philox_mask_of_its_value(backend, device, dtype, shape, seed):
    """The Triton kernel loads the seed (the int seed's mask, bit for bit); the torch path computes Philox with ATen
    ops on every device (the int seed's mask on CUDA; on a CPU an int seed takes PCG64 instead)."""
    rate = 0.3
    x = _x(shape, dtype, device).requires_grad_()
    seed_t = torch.tensor(seed, dtype=torch.int64, device=device)
    y = kernels.dropout(x, rate, seed_t)
    keep = dropout_mask(seed, rate, shape, device)
    assert torch.equal(backend_dropout_mask(seed_t, rate, shape, device, dtype), keep)
    assert torch.equal(y != 0, keep & (x != 0)), "the dropped elements differ from Philox(seed value)"
    expected = torch.where(keep, x.detach().double() / (1 - rate), 0.0)
    rtol = {torch.float32: 1e-6, torch.bfloat16: 8e-3, torch.float16: 1e-3}[dtype]
    assert_close_verbose(y, expected, atol=0, rtol=rtol, name="y")
    if backend == "triton" or device != "cpu":
        assert torch.equal(y, kernels.dropout(x, rate, seed)), "an int seed of the same value gives another mask"
    (dx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert_close_verbose(dx, keep.double() / (1 - rate), atol=0, rtol=rtol, name="dx")


def test_the_backward_keeps_the_forwards_device_seed(backend, device):
    """The backward regenerates (Triton) or keeps (torch) the forward's mask: a seed tensor changed in place after
    the forward either gives the forward's gradient or is refused, never a gradient of another mask."""
    x = _x((5, 40), torch.float32, device).requires_grad_()
    seed_t = torch.tensor(123, device=device)
    y = kernels.dropout(x, 0.5, seed_t)
    keep = dropout_mask(123, 0.5, (5, 40), device)
    seed_t.add_(1)
    if backend == "triton":  # saved for backward: autograd's version check catches the change
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            torch.autograd.grad(y, x, torch.ones_like(y))
    else:  # the mask was computed (and saved by torch.where's backward) in the forward
        (dx,) = torch.autograd.grad(y, x, torch.ones_like(y))
        assert torch.equal(dx, keep.float() * 2.0)


@pytest.mark.parametrize(
    "make_seed, match",
    [
        (lambda d: torch.tensor(3, dtype=torch.int32, device=d), r"dtype=torch.int32"),
        (lambda d: torch.tensor(3.0, device=d), r"dtype=torch.float32"),
        (lambda d: torch.tensor([3], device=d), r"shape=\(1,\)"),
        (lambda d: torch.tensor(3, device="meta"), r"Received: seed on device=meta"),
    ],
    ids=["int32", "float", "shape", "device"],
)
def test_a_bad_device_seed_is_a_value_error(backend, device, make_seed, match):
    bad = make_seed(device)
    with pytest.raises(ValueError, match=match):
        kernels.dropout(torch.ones(3, device=device), 0.5, bad)
    with pytest.raises(ValueError, match=match):
        kernels.dense(torch.ones(2, 3, device=device), torch.ones(3, 4, device=device), dropout_rate=0.5,
                      dropout_seed=bad)  # fmt: skip


def test_the_torch_philox_of_a_device_seed_equals_the_int_seeds():
    """philox_randint's tensor branch (ATen ops) against its numpy branch, for seeds that use both key words and the
    sign bit, and counters past 2**32."""
    offsets = torch.arange(2**33 - 300, 2**33 + 300, dtype=torch.int64)
    for seed in (0, 1, 2**32 - 1, 2**32, 2**35 + 3, 2**63 - 1):
        assert torch.equal(philox_randint(torch.tensor(seed), offsets), philox_randint(seed, offsets)), seed
    # a negative tensor keys Philox with its two's-complement bits, as the kernels' cast to uint64 does
    assert torch.equal(philox_randint(torch.tensor(-2), offsets[:50]), philox_randint(2**64 - 2, offsets[:50]))


def _host_stream_seed(base: int, i: int) -> int:
    """Seed ``i`` of a stream, in Python ints: the formula ``Dropout.next_seed`` uses, written out again."""
    m = (1 << 64) - 1

    def mix(x: int) -> int:
        x = (x + 0x9E3779B97F4A7C15) & m
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & m
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & m
        return x ^ (x >> 31)

    return mix((base + mix(i & m)) & m) >> 1


@pytest.mark.parametrize(
    "base, counter", [(0, 0), (1, 7), (2**62 - 1, 2**40), (-(2**63), 2**63 - 2), (-1, -3), (0x5DEECE66D, -1)]
)
def test_the_seed_stream_advances_on_the_device(backend, device, base, counter):
    # one launch on the triton backend, ~25 ATen ops on the torch one: the same 64-bit values, wrap-around included
    b = torch.tensor(base, dtype=torch.int64, device=device)
    c = torch.tensor(counter, dtype=torch.int64, device=device)
    seeds = [kernels.seed_stream_next(b, c) for _ in range(3)]
    want = [_host_stream_seed(base, counter + k) for k in (1, 2, 3)]
    assert [int(s) for s in seeds] == want
    assert all(s.dim() == 0 and s.dtype == torch.int64 and s.device == b.device for s in seeds)
    assert int(c) == ((counter + 3 + 2**63) % 2**64) - 2**63 and int(b) == base  # counter in place, base untouched
    assert all(0 <= v < 2**63 for v in want)


def test_the_seed_stream_refuses_what_is_not_a_0_dim_int64_pair(backend, device):
    good = torch.tensor(1, dtype=torch.int64, device=device)
    with pytest.raises(ValueError, match="0-dim torch.int64"):
        kernels.seed_stream_next(good, torch.tensor([1], dtype=torch.int64, device=device))
    with pytest.raises(ValueError, match="`base` a 0-dim torch.int64"):
        kernels.seed_stream_next(torch.tensor(1.0, device=device), good)
