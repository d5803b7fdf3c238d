"""dense: forward and all three gradients against float64 references written with torch.nn.functional, for every
activation and dtype, on ragged shapes, with and without bias, with leading dims, fused dropout, non-contiguous
inputs, on both backends (torch, and triton under the interpreter on CPU)."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import TOLERANCES, assert_close_verbose
from tritonnn import kernels
from tritonnn.kernels import ACTIVATIONS, HAS_TRITON
from tritonnn.kernels.dropout import backend_dropout_mask, dropout_mask

DENSE = sys.modules["tritonnn.kernels.dense"]

# Independent float64 definitions (torch.nn.functional; Keras' leaky_relu slope 0.2, hard_sigmoid relu6(x+3)/6).
REFERENCE = {
    "linear": lambda z: z,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.2),
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "gelu_tanh": lambda z: F.gelu(z, approximate="tanh"),
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": F.hardsigmoid,
    "hard_silu": F.hardswish,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "mish": F.mish,
    "exponential": torch.exp,
}
NAMES = sorted(REFERENCE)
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (M, K, N): none a multiple of the 32-wide interpreter blocks (or of any GPU block), 1 and 7 included.
SHAPES = [(1, 33, 7), (7, 70, 33), (33, 17, 65), (100, 7, 1), (37, 45, 29), (65, 40, 18)]


def make(shape, dtype, device, *, lead=(), bias=True, seed=0):
    m, k, n = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, m, k, generator=gen)
    w = torch.randn(k, n, generator=gen) / k**0.5
    b = torch.randn(n, generator=gen) if bias else None
    dy = torch.randn(*lead, m, n, generator=gen)
    cast = lambda t: None if t is None else t.to(dtype).to(device)  # noqa: E731
    return cast(x), cast(w), cast(b), cast(dy)


def reference(x, w, b, activation, dy, rate=0.0, seed=0):
    """float64 forward and (dx, dkernel, dbias) by autograd through torch.nn.functional; the dropout mask is the one
    the current backend applies to x (Philox in the Triton kernels, PCG64 on the CPU torch path)."""
    xd = x.detach().cpu().double().requires_grad_()
    wd = w.detach().cpu().double().requires_grad_()
    bd = b.detach().cpu().double().requires_grad_() if b is not None else None
    z = F.linear(xd, wd.t(), bd)
    y = REFERENCE[activation](z)
    if rate:
        keep = backend_dropout_mask(seed, rate, tuple(y.shape), x.device, x.dtype).cpu()
        y = torch.where(keep, y / (1 - rate), 0.0)
    grads = torch.autograd.grad(y, [t for t in (xd, wd, bd) if t is not None], dy.detach().cpu().double())
    return y.detach(), grads


# Kinks where act' jumps. In 16 bits an element within half an output ulp of one may fall on either side (the
# Triton backward decides relu6/hard_sigmoid saturation on the stored output): there dy is zeroed, since the decision
# is ill-conditioned; test_gradient_at_kinks_follows_torch tests the kinks themselves, exactly.
KINKS = {"relu6": [0.0, 6.0], "hard_sigmoid": [-3.0, 3.0], "hard_silu": [-3.0, 3.0], "relu": [0.0], "leaky_relu": [0.0]}


def away_from_kinks(x, w, b, activation, dy):
    if x.dtype == torch.float32 or activation not in KINKS:
        return dy
    z = F.linear(x.double(), w.double().t(), None if b is None else b.double())
    near = torch.zeros_like(z, dtype=torch.bool)
    for k in KINKS[activation]:
        near |= (z - k).abs() < 0.05
    return torch.where(near, torch.zeros_like(dy), dy)


def check(got, expected, dtype, name, tolerances=None):
    """Tolerance from the dtype, with atol relative to the tensor's scale; a NaN never passes."""
    atol, rtol = (tolerances or TOLERANCES)[dtype]
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    assert got.dtype == dtype, f"{name}: dtype {got.dtype}, expected {dtype}"
    assert_close_verbose(got, expected, atol=atol * scale, rtol=rtol, name=name)


def run_dense(x, w, b, activation, dy, **kwargs):
    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    b = b.detach().requires_grad_() if b is not None else None
    y = kernels.dense(x, w, b, activation, **kwargs)
    grads = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], dy)
    return y, grads


def assert_matches(got_y, got_grads, ref_y, ref_grads, dtype, tolerances=None):
    check(got_y, ref_y, dtype, "y", tolerances)
    assert len(got_grads) == len(ref_grads)
    for name, g, r in zip(("dx", "dkernel", "dbias")[: len(ref_grads)], got_grads, ref_grads, strict=True):
        check(g, r, dtype, name, tolerances)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[1])
@pytest.mark.parametrize("activation", NAMES)
def test_dense_matches_float64(backend, device, activation, dtype):
    i = NAMES.index(activation)
    shape = SHAPES[i % len(SHAPES)]
    lead = [(), (2,), (3, 1)][i % 3] if shape[0] < 50 else ()
    x, w, b, dy = make(shape, dtype, device, lead=lead, bias=i % 4 != 1, seed=i)
    dy = away_from_kinks(x, w, b, activation, dy)
    y, grads = run_dense(x, w, b, activation, dy)
    assert y.shape == (*lead, shape[0], shape[2])
    ref = reference(x, w, b, activation, dy)
    assert_matches(y, grads, *ref, dtype)
    if backend == "torch":  # small layers take native autograd ops; larger ones DenseFunction's torch path: both
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(DENSE, "NATIVE_MAX_MACS", -1)
            assert_matches(*run_dense(x, w, b, activation, dy), *ref, dtype)


@pytest.mark.parametrize("activation", NAMES)
def test_dense_with_fused_dropout_matches_float64(backend, device, activation):
    i = NAMES.index(activation)
    x, w, b, dy = make((37, 45, 29), torch.float32, device, lead=(1,), seed=100 + i)
    y, grads = run_dense(x, w, b, activation, dy, dropout_rate=0.3, dropout_seed=1000 + i)
    assert_matches(y, grads, *reference(x, w, b, activation, dy, rate=0.3, seed=1000 + i), torch.float32)


@pytest.mark.parametrize("activation", ["relu6", "tanh", "gelu", "hard_sigmoid"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_dense_with_fused_dropout_low_precision(backend, device, activation, dtype):
    """The three backward modes (mask folded into act', implied by a zero output, regenerated) in 16 bits."""
    x, w, b, dy = make((33, 40, 50), dtype, device, seed=7)
    dy = away_from_kinks(x, w, b, activation, dy)
    y, grads = run_dense(x, w, b, activation, dy, dropout_rate=0.5, dropout_seed=77)
    assert_matches(y, grads, *reference(x, w, b, activation, dy, rate=0.5, seed=77), dtype)


@pytest.mark.parametrize("activation", ["sigmoid", "exponential"])
def test_fused_and_unfused_dropout_are_bit_identical(backend, device, activation):
    """The outputs of these activations are never 0, so the zeros are exactly the dropped elements."""
    x, w, b, _ = make((21, 30, 45), torch.float32, device, lead=(2,), seed=3)
    fused = kernels.dense(x, w, b, activation, dropout_rate=0.4, dropout_seed=5)
    unfused = kernels.dropout(kernels.dense(x, w, b, activation), 0.4, 5)
    assert torch.equal(fused == 0, unfused == 0)
    assert torch.equal(fused, unfused)
    assert 0.3 < (fused == 0).double().mean().item() < 0.5


@pytest.mark.parametrize("activation", ["linear", "tanh", "relu", "gelu"])  # regenerated mask, relu, saved act'
def test_dense_with_a_device_seed_matches_float64(backend, device, activation):
    """A device seed (a 0-dim int64 tensor) keys the fused dropout: forward and gradients against float64 with the
    Philox mask of its value; on the Triton kernels bit for bit the int seed's output and gradients."""
    x, w, b, dy = make((37, 45, 29), torch.float32, device, lead=(1,), seed=21)
    seed = 2**62 + 9
    seed_t = torch.tensor(seed, device=device)
    y, grads = run_dense(x, w, b, activation, dy, dropout_rate=0.3, dropout_seed=seed_t)
    assert_matches(y, grads, *reference(x, w, b, activation, dy, rate=0.3, seed=seed_t), torch.float32)
    # what the reference applied: Philox of the seed's value, on every backend and device
    assert torch.equal(
        backend_dropout_mask(seed_t, 0.3, tuple(y.shape), device), dropout_mask(seed, 0.3, y.shape, device)
    )
    if backend == "triton":
        y_int, grads_int = run_dense(x, w, b, activation, dy, dropout_rate=0.3, dropout_seed=seed)
        assert torch.equal(y, y_int)
        assert all(torch.equal(g, h) for g, h in zip(grads, grads_int, strict=True))


@pytest.mark.parametrize("activation", ["sigmoid", "exponential"])
def test_fused_dropout_with_a_device_seed_is_the_standalone_dropouts_and_philox(backend, device, activation):
    """The same device seed in the dense epilogue and in kernels.dropout drops the same elements: Philox of its
    value (these activations are never 0, so the zeros are exactly the drops)."""
    x, w, b, _ = make((21, 30, 45), torch.float32, device, lead=(2,), seed=3)
    seed_t = torch.tensor(5, device=device)
    fused = kernels.dense(x, w, b, activation, dropout_rate=0.4, dropout_seed=seed_t)
    unfused = kernels.dropout(kernels.dense(x, w, b, activation), 0.4, seed_t)
    assert torch.equal(fused, unfused)
    assert torch.equal(fused != 0, dropout_mask(5, 0.4, tuple(fused.shape), device))
    if backend == "triton" or device != "cpu":
        assert torch.equal(fused, kernels.dense(x, w, b, activation, dropout_rate=0.4, dropout_seed=5))


def test_dropout_rate_zero_is_plain_dense(backend, device):
    x, w, b, _ = make((9, 20, 11), torch.float32, device)
    assert torch.equal(kernels.dense(x, w, b, "relu", dropout_rate=0.0, dropout_seed=3), kernels.dense(x, w, b, "relu"))


@pytest.mark.parametrize(
    "activation, kinks",
    [
        ("relu", [0.0]),
        ("relu6", [0.0, 6.0]),
        ("leaky_relu", [0.0]),
        ("hard_sigmoid", [-3.0, 3.0]),
        ("hard_silu", [-3.0, 3.0]),
    ],
)
def test_gradient_at_kinks_follows_torch(backend, device, activation, kinks):
    """z lands exactly on each kink (x = 0, so z = bias): the gradient must follow torch's subgradient choice."""
    n = 2 * len(kinks) + 1
    x = torch.zeros(3, 5, device=device)
    w = torch.randn(5, n, generator=torch.Generator().manual_seed(0)).to(device)
    b = torch.tensor([*kinks, *[k + 0.25 for k in kinks], 1.5], device=device)
    dy = torch.ones(3, n, device=device)
    y, grads = run_dense(x, w, b, activation, dy)
    assert_matches(y, grads, *reference(x, w, b, activation, dy), torch.float32)


def test_non_contiguous_inputs_read_nothing_outside_their_views(backend, device):
    """x and kernel are strided views into NaN-filled buffers; dy is an expanded (stride 0) gradient."""
    m, k, n = 37, 45, 29
    xbuf = torch.full((m + 3, 2 * k + 5), float("nan"), device=device)
    x = xbuf[1 : m + 1, 2 : 2 * k + 2 : 2]
    x.copy_(torch.randn(m, k, generator=torch.Generator().manual_seed(1)))
    wbuf = torch.full((n + 4, k + 6), float("nan"), device=device)
    w = wbuf[2 : n + 2, 3 : k + 3].t()  # (k, n), column-major
    w.copy_(torch.randn(k, n, generator=torch.Generator().manual_seed(2)) / k**0.5)
    b = torch.randn(n, generator=torch.Generator().manual_seed(3)).to(device)
    assert not x.is_contiguous() and not w.is_contiguous()
    xr, wr, br = (t.detach().requires_grad_() for t in (x, w, b))
    y = kernels.dense(xr, wr, br, "gelu")
    grads = torch.autograd.grad(y.sum(), (xr, wr, br))  # dy = ones, expanded
    assert_matches(y, grads, *reference(x, w, b, "gelu", torch.ones(m, n)), torch.float32)


def test_tf32_switch(backend, device):
    x, w, b, dy = make((40, 70, 33), torch.float32, device, seed=4)
    assert kernels.get_float32_matmul_precision() == "highest"
    kernels.set_float32_matmul_precision("high")
    try:
        assert kernels.get_float32_matmul_precision() == "high"
        y, grads = run_dense(x, w, b, "silu", dy)
    finally:
        kernels.set_float32_matmul_precision("highest")
    tf32 = {torch.float32: (1e-3, 1e-3)}
    assert_matches(y, grads, *reference(x, w, b, "silu", dy), torch.float32, tf32)


def test_precision_switch_rejects_unknown_values():
    with pytest.raises(ValueError, match="Received: precision='medium'"):
        kernels.set_float32_matmul_precision("medium")
    assert kernels.get_float32_matmul_precision() == "highest"


def test_gradcheck_float64_torch_backend():
    """The torch path is a DenseFunction built from the table's derivatives: gradcheck verifies every row."""
    gen = torch.Generator().manual_seed(0)
    with kernels.backend_scope("torch"):
        for i, activation in enumerate(NAMES):
            x = torch.randn(2, 2, 4, generator=gen, dtype=torch.float64, requires_grad=True)
            w = (torch.randn(4, 3, generator=gen, dtype=torch.float64) / 2).requires_grad_()
            b = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
            rate = 0.5 if i % 2 else 0.0
            fn = lambda x, w, b: kernels.dense(x, w, b, activation, dropout_rate=rate, dropout_seed=i)  # noqa: B023,E731
            assert torch.autograd.gradcheck(fn, (x, w, b)), activation
            if rate == 0.0:  # that was the native-ops path of a small layer; now DenseFunction's torch path
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(DENSE, "NATIVE_MAX_MACS", -1)
                    assert torch.autograd.gradcheck(fn, (x, w, b)), activation


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
@pytest.mark.parametrize(
    "activation, rate, device_seed", [("gelu", 0.2, False), ("tanh", 0.2, False), ("tanh", 0.2, True)]
)
def test_bigger_blocks_smoke(device, activation, rate, device_seed):
    """64x64x64 blocks, grouped ordering and the two-slice epilogue, which the interpreter's one config skips."""
    x, w, b, dy = make((257, 100, 40), torch.float32, device, seed=9)
    act = ACTIVATIONS[activation]
    fwd = dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=64, GROUP_M=2, num_warps=4, num_stages=2)
    seed = torch.tensor(11, device=device) if device_seed else 11
    with kernels.backend_scope("triton"):
        y, g = DENSE.dense_fwd(x, w, b, act, rate, seed, config={**fwd, "EPILOGUE_SPLIT": 2})
        saved = g if act.needs_preactivation else y
        grads = DENSE.dense_bwd(dy, saved, x, w, act, rate, seed, has_bias=True, config=fwd)
        expected = reference(x, w, b, activation, dy, rate=rate, seed=11)  # the Triton kernels' (Philox) mask
    assert_matches(y, grads, *expected, torch.float32)


def test_float64_and_empty_inputs_take_the_torch_path(backend, device):
    x, w, b, dy = make((5, 6, 7), torch.float64, device)
    y, grads = run_dense(x, w, b, "tanh", dy)
    assert_matches(y, grads, *reference(x, w, b, "tanh", dy), torch.float64)
    x0 = torch.zeros(0, 6, device=device, requires_grad=True)
    y0 = kernels.dense(x0, w.float(), b.float(), "relu")
    assert y0.shape == (0, 7)
    y0.sum().backward()
    assert x0.grad.shape == (0, 6)


def test_bad_inputs_are_value_errors_before_any_launch(backend, device):
    x, w, b, _ = make((4, 6, 3), torch.float32, device)
    with pytest.raises(ValueError, match=r"Unknown activation: 'rellu'\. Did you mean 'relu'"):
        kernels.dense(x, w, b, "rellu")
    with pytest.raises(ValueError, match=r"Received: x.shape=\(4, 5\)"):
        kernels.dense(x[:, :5], w, b)
    with pytest.raises(ValueError, match=r"Received: kernel.shape=\(6,\)"):
        kernels.dense(x, w[:, 0], b)
    with pytest.raises(ValueError, match=r"Received: bias.shape=\(4,\)"):
        kernels.dense(x, w, torch.zeros(4, device=device))
    with pytest.raises(ValueError, match=r"Received: kernel.dtype=torch.float16"):
        kernels.dense(x, w.half(), b)
    with pytest.raises(ValueError, match=r"Received: bias.dtype=torch.float64"):
        kernels.dense(x, w, b.double())
    with pytest.raises(ValueError, match=r"Received: kernel.device=meta"):
        kernels.dense(x, torch.empty(6, 3, device="meta"), b)
    with pytest.raises(ValueError, match=r"Received: rate=1.0"):
        kernels.dense(x, w, b, dropout_rate=1.0, dropout_seed=0)
    with pytest.raises(ValueError, match=r"Received: seed=-3"):
        kernels.dense(x, w, b, dropout_rate=0.5, dropout_seed=-3)
    with pytest.raises(ValueError, match=r"Received: x.dtype=torch.int64"):
        kernels.dense(x.long(), w.long())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("activation, rate", [("relu", 0.0), ("gelu", 0.3), ("tanh", 0.3)])
def test_aligned_fast_path(backend, device, dtype, activation, rate):
    """K and N multiples of 16 on contiguous tensors take the ALIGNED kernels (vector loads, pipelining)."""
    x, w, b, dy = make((37, 48, 64), dtype, device, seed=5)
    assert DENSE._aligned(48, 64, x, w, dy)
    dy = away_from_kinks(x, w, b, activation, dy)
    y, grads = run_dense(x, w, b, activation, dy, dropout_rate=rate, dropout_seed=8)
    assert_matches(y, grads, *reference(x, w, b, activation, dy, rate=rate, seed=8), dtype)


# ---- gradients straight into the optimizer's flat buffer (torch path) -------------------------------------------


class _DirectSpy:
    """Wraps the torch backward and records, per call, whether dkernel / dbias went straight into ``.grad``."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[bool, bool]] = []
        monkeypatch.setattr(DENSE, "NATIVE_MAX_MACS", -1)  # these small layers would take the native-ops path
        original = DENSE.torch_dense_bwd

        def spy(*args, dw_into=None, db_into=None, **kwargs):
            self.calls.append((dw_into is not None, db_into is not None))
            return original(*args, dw_into=dw_into, db_into=db_into, **kwargs)

        monkeypatch.setattr(DENSE, "torch_dense_bwd", spy)


def _flat_params(k=20, n=12, *, built=True, seed=0):
    """A kernel and bias whose .grad are views into one flat buffer, as Optimizer.build leaves them."""
    from tritonnn import optimizers

    gen = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(k, n, generator=gen) / k**0.5)
    b = torch.nn.Parameter(torch.randn(n, generator=gen))
    if built:
        opt = optimizers.SGD()
        opt.build([w, b])
        return w, b, opt
    return w, b, None


def _expected_grads(x, w, b, activation, dy, uses=1, rate=0.0, seed=0):
    """dkernel, dbias (and dx) by autograd through the same op on unmarked copies."""
    w2, b2 = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y = sum(kernels.dense(x2, w2, b2, activation, dropout_rate=rate, dropout_seed=seed + i) for i in range(uses))
    return torch.autograd.grad(y, [x2, w2, b2], dy)


@pytest.mark.parametrize("activation, rate", [("relu", 0.0), ("relu", 0.3), ("gelu", 0.3), ("linear", 0.0)])
def test_flat_grads_are_accumulated_in_place_by_the_torch_backward(monkeypatch, activation, rate):
    spy = _DirectSpy(monkeypatch)
    w, b, opt = _flat_params()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(9, 20, generator=gen).requires_grad_()
    dy = torch.randn(9, 12, generator=gen)
    prior_w, prior_b = torch.randn(20, 12, generator=gen), torch.randn(12, generator=gen)
    with torch.no_grad():  # accumulation onto what is already there, as AccumulateGrad does
        w.grad.copy_(prior_w)
        b.grad.copy_(prior_b)
    grad_w, grad_b = w.grad, b.grad
    with kernels.backend_scope("torch"):
        kernels.dense(x, w, b, activation, dropout_rate=rate, dropout_seed=3).backward(dy)
        dx, dw, db = _expected_grads(x, w, b, activation, dy, rate=rate, seed=3)
    assert spy.calls[0] == (True, True), "the flat .grad views must be written by the backward itself"
    assert w.grad is grad_w and b.grad is grad_b and w.grad.data_ptr() == opt.flat_grad.data_ptr()
    assert_close_verbose(w.grad, prior_w + dw, atol=1e-6, rtol=1e-6, name="dkernel")
    assert_close_verbose(b.grad, prior_b + db, atol=1e-6, rtol=1e-6, name="dbias")
    assert_close_verbose(x.grad, dx, atol=0, rtol=0, name="dx")


def test_flat_grads_with_weight_sharing_and_retain_graph(monkeypatch):
    spy = _DirectSpy(monkeypatch)
    w, b, opt = _flat_params()
    opt.zero_grad()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 20, generator=gen)
    dy = torch.randn(6, 12, generator=gen)
    with kernels.backend_scope("torch"):
        y = kernels.dense(x, w, b, "relu", dropout_rate=0.2, dropout_seed=0)
        y = y + kernels.dense(x, w, b, "relu", dropout_rate=0.2, dropout_seed=1)  # the same Dense, called twice
        y.backward(dy, retain_graph=True)
        y.backward(dy)
        _, dw, db = _expected_grads(x, w, b, "relu", dy, uses=2, rate=0.2)
    assert spy.calls[:4] == [(True, True)] * 4
    assert_close_verbose(w.grad, 2 * dw, atol=1e-6, rtol=1e-6, name="dkernel")
    assert_close_verbose(b.grad, 2 * db, atol=1e-6, rtol=1e-6, name="dbias")


def test_flat_grads_left_alone_where_autograd_must_return_them(monkeypatch):
    """torch.autograd.grad, backward(inputs=...) without the parameters, a tensor hook, create_graph, an optimizer
    that was never built: every one gets the normal return, and .grad changes only where autograd changes it."""
    spy = _DirectSpy(monkeypatch)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 20, generator=gen).requires_grad_()
    dy = torch.randn(5, 12, generator=gen)
    with kernels.backend_scope("torch"):
        w, b, opt = _flat_params()
        opt.zero_grad()
        _, dw, db = _expected_grads(x, w, b, "tanh", dy)
        spy.calls.clear()
        gw, gb = torch.autograd.grad(kernels.dense(x, w, b, "tanh"), [w, b], dy)
        assert_close_verbose(gw, dw, atol=0, rtol=0, name="autograd.grad dkernel")
        assert_close_verbose(gb, db, atol=0, rtol=0, name="autograd.grad dbias")
        (gx,) = torch.autograd.grad(kernels.dense(x, w, b, "tanh"), [x], dy)
        kernels.dense(x, w, b, "tanh").backward(dy, inputs=[x])
        assert (opt.flat_grad == 0).all(), "nothing asked for the parameters' gradients"
        assert spy.calls == [(False, False)] * 3

        seen = []
        w.register_hook(lambda g: seen.append(g.clone()))
        kernels.dense(x, w, b, "tanh").backward(dy)
        assert spy.calls[-1] == (False, True) and len(seen) == 1
        assert_close_verbose(seen[0], dw, atol=0, rtol=0, name="hooked dkernel")
        assert_close_verbose(w.grad, dw, atol=0, rtol=0, name="dkernel after the hook")

        w2, b2, _ = _flat_params(built=False)
        w2.grad, b2.grad = torch.zeros_like(w2), torch.zeros_like(b2)
        kernels.dense(x, w2, b2, "tanh").backward(dy)
        assert spy.calls[-1] == (False, False)

        w3, b3, _ = _flat_params()
        y = kernels.dense(x, w3, b3, "tanh")
        (gw3,) = torch.autograd.grad(y, [w3], dy, create_graph=True)
        assert spy.calls[-1] == (False, False) and (w3.grad == 0).all()
        assert_close_verbose(gw3, dw, atol=0, rtol=0, name="create_graph dkernel")


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
@pytest.mark.parametrize("activation, rate", [("relu", 0.0), ("gelu", 0.3), ("linear", 0.0)])
def test_triton_dkernel_launch_accumulates_into_the_flat_grads(monkeypatch, activation, rate):
    """The Triton backward adds dkernel and dbias into the optimizer's flat .grad views in the dkernel launch itself
    (ACCUMULATE): no separate AccumulateGrad pass, the same values, weight sharing included."""
    calls = []
    original = DENSE.dense_bwd

    def spy(*args, dw_into=None, db_into=None, **kwargs):
        calls.append(dw_into is not None and db_into is not None)
        return original(*args, dw_into=dw_into, db_into=db_into, **kwargs)

    monkeypatch.setattr(DENSE, "dense_bwd", spy)
    w, b, opt = _flat_params()
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(9, 20, generator=gen).requires_grad_()
    dy = torch.randn(9, 12, generator=gen)
    prior_w, prior_b = torch.randn(20, 12, generator=gen), torch.randn(12, generator=gen)
    with torch.no_grad():
        w.grad.copy_(prior_w)
        b.grad.copy_(prior_b)
    grad_w = w.grad
    with kernels.backend_scope("triton"):
        y = kernels.dense(x, w, b, activation, dropout_rate=rate, dropout_seed=3)
        y = y + kernels.dense(x, w, b, activation, dropout_rate=rate, dropout_seed=4)  # weight sharing
        y.backward(dy)
        dx, dw, db = _expected_grads(x, w, b, activation, dy, uses=2, rate=rate, seed=3)
        assert calls[:2] == [True, True]
        # torch.autograd.grad must get its gradients returned, not added to .grad
        before = opt.flat_grad.clone()
        gw, gb = torch.autograd.grad(kernels.dense(x, w, b, activation), [w, b], dy)
        assert calls[-1] is False and torch.equal(opt.flat_grad, before)
    assert w.grad is grad_w and w.grad.data_ptr() == opt.flat_grad.data_ptr()
    assert_close_verbose(w.grad, prior_w + dw, atol=1e-5, rtol=1e-5, name="dkernel")
    assert_close_verbose(b.grad, prior_b + db, atol=1e-5, rtol=1e-5, name="dbias")
    assert_close_verbose(x.grad, dx, atol=1e-5, rtol=1e-5, name="dx")
