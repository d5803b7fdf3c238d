"""fused_mlp: a whole stack of Dense layers (and its loss) in one kernel per pass, against float64 references written
with torch.nn.functional, on both backends (torch: the kernels.dense chain; triton: the fused kernels, under the
interpreter on CPU; run() records that the fused kernels ran where they should).

Covered: forward and every gradient (dX, each dW, each db); ragged batches (1, 7, 33, 257: one partial tile, nine
tiles); every activation of the table; biases on some layers only; strided inputs read only inside their views;
bf16, TF32 and IEEE fp32 (two-layer stacks; deeper ones take the per-layer path); the fused dropout (its mask equals
kernels.dropout's; device seeds give the Philox masks of their values); the fused losses (softmax cross-entropy,
mean squared error) against the unfused composition; equality with the per-layer path on the same weights; the
backward's two reductions (in its last program, or a second launch) giving the same bits, repeatably, and a batch
split into several launches; gradients added straight into the optimizer's flat buffer; the bounds and bad inputs
(ValueError before any launch)."""

from __future__ import annotations

import sys
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import TOLERANCES, assert_close_verbose
from tritonnn import kernels, optimizers
from tritonnn.kernels import HAS_TRITON
from tritonnn.kernels.dropout import backend_dropout_mask, dropout_mask

FUSED = sys.modules["tritonnn.kernels.fused_mlp"]
HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def tf32():
    """Deeper and wider float32 stacks fuse under TF32 ("high"); IEEE fp32 ("highest") fuses two-layer stacks only
    (kernels/fused_mlp.py: IEEE_MAX_LAYERS). Tests run under "high" unless they ask for "highest" (the interpreter
    computes both exactly; on a GPU float32 results get TF32's tolerance)."""
    kernels.set_float32_matmul_precision("high")
    yield
    kernels.set_float32_matmul_precision("highest")


FUSED_CALLS = []  # one entry per fused_mlp call in run(): whether it launched the fused kernels


def fused_ran(backend, x):
    """What run() should have taken: the fused kernels on the Triton backend for float32 / bfloat16 batches."""
    return backend == "triton" and x.dtype in (torch.float32, torch.bfloat16) and x.shape[0] > 0


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


def make(widths, m, dtype, device, *, bias=True, seed=0):
    """x (m, widths[0]), kernels, biases (None where ``bias`` says so), and a dy for the last layer's output."""
    gen = torch.Generator().manual_seed(seed)
    bias = [bias] * (len(widths) - 1) if isinstance(bias, bool) else bias
    x = torch.randn(m, widths[0], generator=gen)
    ws = [torch.randn(k, n, generator=gen) / k**0.5 for k, n in zip(widths[:-1], widths[1:], strict=True)]
    bs = [torch.randn(n, generator=gen) * 0.5 if has else None for n, has in zip(widths[1:], bias, strict=True)]
    dy = torch.randn(m, widths[-1], generator=gen)
    cast = lambda t: None if t is None else t.to(dtype).to(device)  # noqa: E731
    return cast(x), [cast(w) for w in ws], [cast(b) for b in bs], cast(dy)


def leaves(x, ws, bs):
    """Fresh leaves requiring grad, and the flat list autograd.grad is asked for: x, W_0, b_0, W_1, b_1, ..."""
    x = x.detach().requires_grad_()
    ws = [w.detach().requires_grad_() for w in ws]
    bs = [b.detach().requires_grad_() if b is not None else None for b in bs]
    flat = [x] + [t for w, b in zip(ws, bs, strict=True) for t in (w, b) if t is not None]
    return x, ws, bs, flat


def reference(x, ws, bs, acts, dy=None, *, rates=None, seeds=None, loss=None, targets=None, philox=False):
    """float64 output (or loss) and gradients (dx, dW_0, db_0, ...) by autograd through torch.nn.functional; the
    dropout masks are the ones the current backend applies (Philox in the Triton kernels, PCG64 on the CPU torch
    path)."""
    f64 = lambda t: None if t is None else t.detach().cpu().double()  # noqa: E731
    x64, w64, b64, flat = leaves(f64(x), [f64(w) for w in ws], [f64(b) for b in bs])
    h = x64
    for i, (w, b, act) in enumerate(zip(w64, b64, acts, strict=True)):
        h = h @ w + (b if b is not None else 0.0)
        h = REFERENCE[act or "linear"](h)
        if rates and rates[i]:
            if philox:  # a device seed: Philox on every path (kernels/dropout.py)
                keep = dropout_mask(int(seeds[i]), rates[i], tuple(h.shape))
            else:
                keep = backend_dropout_mask(seeds[i], rates[i], tuple(h.shape), x.device, x.dtype).cpu()
            h = torch.where(keep, h / (1 - rates[i]), 0.0)
    if loss == "softmax_cross_entropy":
        out = F.cross_entropy(h, targets.cpu().long())
        grads = torch.autograd.grad(out, flat)
    elif loss == "mean_squared_error":
        out = (h - targets.cpu().double()).square().mean()
        grads = torch.autograd.grad(out, flat)
    else:
        out = h
        grads = torch.autograd.grad(h, flat, dy.detach().cpu().double())
    return out.detach(), grads


def run(x, ws, bs, acts, dy=None, **kwargs):
    """fused_mlp's output (or loss) and its gradients, in the order of :func:`reference`; records in FUSED_CALLS
    whether the fused kernels ran (both passes)."""
    x, ws, bs, flat = leaves(x, ws, bs)
    with mock.patch.object(FUSED, "fused_mlp_fwd", wraps=FUSED.fused_mlp_fwd) as fwd:
        with mock.patch.object(FUSED, "fused_mlp_bwd", wraps=FUSED.fused_mlp_bwd) as bwd:
            out = kernels.fused_mlp(x, ws, bs, acts, **kwargs)
            grads = torch.autograd.grad(out, flat, dy if kwargs.get("loss") is None else None)
    FUSED_CALLS.append(fwd.call_count == 1 and bwd.call_count == 1)
    return out, grads


GRAD_NAMES = ("dx", "dW", "db")


TF32 = {**TOLERANCES, torch.float32: (1e-3, 1e-3)}


def check(got, expected, dtype, name, tolerances=None):
    """Tolerance from the dtype (float32 on a GPU: TF32's, unless at "highest"), atol relative to the tensor's
    scale; a NaN never passes."""
    if tolerances is None and HAS_CUDA and kernels.get_float32_matmul_precision() == "high":
        tolerances = TF32
    atol, rtol = (tolerances or TOLERANCES)[dtype]
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    assert_close_verbose(got, expected, atol=atol * scale, rtol=rtol, name=name)


def assert_matches(got, ref, dtype, bs, tolerances=None, loss=None):
    out, grads = got
    ref_out, ref_grads = ref
    if loss is None:
        assert out.dtype == dtype, f"output dtype {out.dtype}, expected {dtype}"
    else:
        assert out.dtype == torch.float32 and out.dim() == 0
    check(out, ref_out, dtype, "output", tolerances)  # a loss of bf16 logits: their rounding sets the error
    names = ["dx"] + [f"{n}{i}" for i, b in enumerate(bs) for n in ("dW", "db") if n == "dW" or b is not None]
    assert len(grads) == len(ref_grads) == len(names)
    for name, g, r in zip(names, grads, ref_grads, strict=True):
        assert g.dtype == dtype, f"{name}: dtype {g.dtype}, expected {dtype}"
        check(g, r, dtype, name, tolerances)


# ---- forward and every gradient ----------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 7, 33, 257])
def test_ragged_batches_match_float64(backend, device, m):
    """257 rows: nine 32-row tiles over the interpreter's two backward programs (each program adds several tiles
    into its slot before the reduction)."""
    widths, acts = (20, 24, 10), ["tanh", "linear"]
    x, ws, bs, dy = make(widths, m, torch.float32, device, seed=m)
    assert_matches(run(x, ws, bs, acts, dy), reference(x, ws, bs, acts, dy), torch.float32, bs)
    assert FUSED_CALLS[-1] == fused_ran(backend, x)


@pytest.mark.parametrize("widths", [(64, 32, 10), (30, 64, 16)])
def test_ieee_float32_two_layer_stacks_match_float64(backend, device, widths):
    """At precision "highest" two-layer stacks (the seed model) fuse in IEEE fp32, with fp32's tolerance; a third
    layer takes the per-layer path (IEEE_MAX_LAYERS), with the same results."""
    kernels.set_float32_matmul_precision("highest")
    acts = ["relu", "linear"]
    x, ws, bs, dy = make(widths, 70, torch.float32, device, seed=sum(widths))
    assert_matches(run(x, ws, bs, acts, dy), reference(x, ws, bs, acts, dy), torch.float32, bs, TOLERANCES)
    assert FUSED_CALLS[-1] == fused_ran(backend, x)
    deeper = (widths[0], 16, 16, 8)
    x, ws, bs, dy = make(deeper, 20, torch.float32, device, seed=1)
    assert_matches(run(x, ws, bs, ["relu"] * 3, dy), reference(x, ws, bs, ["relu"] * 3, dy), torch.float32, bs)
    assert FUSED_CALLS[-1] is False


@pytest.mark.parametrize("activation", NAMES)
def test_every_activation_matches_float64(backend, device, activation):
    """Each activation on a hidden layer and on the output layer; the third layer has no bias."""
    widths = (12, 20, 17, 9)
    acts = [activation, "linear", activation]
    x, ws, bs, dy = make(widths, 19, torch.float32, device, bias=[True, True, False], seed=NAMES.index(activation))
    assert_matches(run(x, ws, bs, acts, dy), reference(x, ws, bs, acts, dy), torch.float32, bs)
    assert FUSED_CALLS[-1] == fused_ran(backend, x)


@pytest.mark.parametrize(
    "widths, acts, bias",
    [
        ((70, 16, 8), ["relu", "sigmoid"], [False, True]),  # a K loop of three 32-wide chunks, the last ragged
        ((33, 40, 33, 50, 5), ["gelu", "relu", "elu", "linear"], [True, False, True, False]),  # four layers
        ((5, 3), ["softplus"], [False]),  # one layer, every width under tl.dot's 16
    ],
)
def test_shapes_and_biases_match_float64(backend, device, widths, acts, bias):
    x, ws, bs, dy = make(widths, 45, torch.float32, device, bias=bias, seed=len(widths))
    assert_matches(run(x, ws, bs, acts, dy), reference(x, ws, bs, acts, dy), torch.float32, bs)
    assert FUSED_CALLS[-1] == fused_ran(backend, x)


def test_bfloat16_matches_float64(backend, device):
    widths, acts = (48, 64, 32, 10), ["relu", "silu", "linear"]
    x, ws, bs, dy = make(widths, 40, torch.bfloat16, device, seed=3)
    assert_matches(run(x, ws, bs, acts, dy), reference(x, ws, bs, acts, dy), torch.bfloat16, bs)
    assert FUSED_CALLS[-1] == fused_ran(backend, x)


def test_tf32_tolerance(backend, device):
    """Under "high" float32 products may be TF32 on a GPU: within TF32's tolerance of float64."""
    widths, acts = (40, 33, 12), ["gelu", "linear"]
    x, ws, bs, dy = make(widths, 29, torch.float32, device, seed=4)
    assert_matches(run(x, ws, bs, acts, dy), reference(x, ws, bs, acts, dy), torch.float32, bs, TF32)
    assert FUSED_CALLS[-1] == fused_ran(backend, x)


def test_strided_inputs_read_nothing_outside_their_views(backend, device):
    """x is a strided view into a NaN-filled buffer and dy an expanded (stride 0) gradient; dX lands in its own
    tensor: a NaN anywhere in the results means a read outside the views."""
    widths, acts = (45, 24, 7), ["gelu", "linear"]
    m = 37
    _, ws, bs, _ = make(widths, m, torch.float32, device, seed=15)
    buf = torch.full((m + 3, 2 * widths[0] + 5), float("nan"), device=device)
    x = buf[1 : m + 1, 2 : 2 * widths[0] + 2 : 2]
    x.copy_(torch.randn(m, widths[0], generator=torch.Generator().manual_seed(16)))
    assert not x.is_contiguous()
    dy = torch.ones(1, widths[-1], device=device).expand(m, widths[-1])
    assert_matches(run(x, ws, bs, acts, dy), reference(x, ws, bs, acts, dy), torch.float32, bs)
    assert FUSED_CALLS[-1] == fused_ran(backend, x)


def test_dx_is_skipped_when_x_needs_no_gradient(backend, device):
    widths, acts = (20, 16, 6), ["relu", "linear"]
    x, ws, bs, dy = make(widths, 13, torch.float32, device, seed=5)
    _, ws_l, bs_l, _ = leaves(x, ws, bs)
    y = kernels.fused_mlp(x, ws_l, bs_l, acts)
    y.backward(dy)
    ref = reference(x, ws, bs, acts, dy)
    assert x.grad is None
    check(ws_l[0].grad, ref[1][1], torch.float32, "dW0")
    check(bs_l[1].grad, ref[1][4], torch.float32, "db1")


# ---- fused dropout --------------------------------------------------------------------------------------------------


@pytest.fixture
def two_fp32_dropouts(monkeypatch):
    """Two fused dropouts in a float32 stack: TF32_MAX_DROPOUTS (1) is a register bound of the GPU compile (the AOT
    gate), not of the arithmetic, which the interpreter proves the same for any number of dropouts."""
    monkeypatch.setattr(FUSED, "TF32_MAX_DROPOUTS", FUSED.MAX_DROPOUTS)


def test_dropout_matches_float64(backend, device, two_fp32_dropouts):
    widths, acts = (24, 30, 20, 7), ["tanh", "relu", "linear"]
    rates, seeds = [0.3, 0.5, 0.0], [11, 12, None]
    x, ws, bs, dy = make(widths, 37, torch.float32, device, seed=6)
    got = run(x, ws, bs, acts, dy, dropout_rates=rates, dropout_seeds=seeds)
    assert_matches(got, reference(x, ws, bs, acts, dy, rates=rates, seeds=seeds), torch.float32, bs)


def test_dropout_mask_equals_the_standalone_dropouts(backend, device, two_fp32_dropouts):
    """sigmoid and exponential outputs are never 0, so the zeros are exactly the dropped elements; each layer's mask
    is kernels.dropout's for its own (M, N_l) output and seed."""
    widths, acts = (16, 40, 25), ["sigmoid", "exponential"]
    x, ws, bs, _ = make(widths, 33, torch.float32, device, seed=7)
    one = kernels.fused_mlp(x, ws[:1], bs[:1], acts[:1], dropout_rates=[0.4], dropout_seeds=[5])
    alone = kernels.dropout(kernels.dense(x, ws[0], bs[0], "sigmoid"), 0.4, 5)
    assert torch.equal(one == 0, alone == 0)
    assert_close_verbose(one, alone, atol=1e-6, rtol=1e-6, name="one layer")
    assert 0.3 < (one == 0).double().mean().item() < 0.5
    two = kernels.fused_mlp(x, ws, bs, acts, dropout_rates=[0.4, 0.25], dropout_seeds=[5, 9])
    chain = kernels.dropout(kernels.dense(alone, ws[1], bs[1], "exponential"), 0.25, 9)
    assert torch.equal(two == 0, chain == 0)
    assert_close_verbose(two, chain, atol=1e-5, rtol=1e-5, name="two layers")


def test_device_seeds_give_the_philox_masks_of_their_values(backend, device, two_fp32_dropouts):
    """Dropout seeds held on the device (0-dim int64 tensors, for CUDA-graph capture) are read by the kernels through
    pointers: the masks are Philox on the seeds' values, as an int seed's on the Triton backend (bit for bit)."""
    widths, acts = (24, 30, 20, 7), ["tanh", "relu", "linear"]
    rates = [0.4, 0.3, 0.0]
    x, ws, bs, dy = make(widths, 37, torch.float32, device, seed=17)
    seeds = [torch.tensor(v, dtype=torch.int64, device=device) for v in (77, 5)] + [None]
    got = run(x, ws, bs, acts, dy, dropout_rates=rates, dropout_seeds=seeds)
    assert FUSED_CALLS[-1] == fused_ran(backend, x)
    ref = reference(x, ws, bs, acts, dy, rates=rates, seeds=[77, 5, 0], philox=True)
    assert_matches(got, ref, torch.float32, bs)
    if backend == "triton":
        ints = run(x, ws, bs, acts, dy, dropout_rates=rates, dropout_seeds=[77, 5, None])
        for a, b in zip([ints[0], *ints[1]], [got[0], *got[1]], strict=True):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match="all ints or all device seeds"):
        kernels.fused_mlp(x, ws, bs, acts, dropout_rates=rates, dropout_seeds=[seeds[0], 5, None])


# ---- fused losses ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mean_squared_error"])
def test_fused_loss_matches_float64_and_the_unfused_composition(backend, device, loss, dtype):
    widths, acts = (30, 32, 10), ["relu", "linear"]
    rates, seeds = [0.2, 0.0], [3, None]
    x, ws, bs, _ = make(widths, 41, dtype, device, seed=8)
    gen = torch.Generator().manual_seed(9)
    if loss == "softmax_cross_entropy":
        targets = torch.randint(0, widths[-1], (41,), generator=gen).to(device)
    else:
        targets = torch.randn(41, widths[-1], generator=gen).to(dtype).to(device)
    kw = dict(dropout_rates=rates, dropout_seeds=seeds, loss=loss, targets=targets)
    got = run(x, ws, bs, acts, **kw)
    ref = reference(x, ws, bs, acts, rates=rates, seeds=seeds, loss=loss, targets=targets)
    assert_matches(got, ref, dtype, bs, loss=loss)
    # The unfused composition on the same backend: the kernels.dense chain, then the loss on its output.
    xl, wl, bl, flat = leaves(x, ws, bs)
    h = xl
    for w, b, a, r, s in zip(wl, bl, acts, rates, seeds, strict=True):
        h = kernels.dense(h, w, b, a, dropout_rate=r, dropout_seed=s)
    if loss == "softmax_cross_entropy":
        value = kernels.softmax_cross_entropy(h, targets)
    else:
        value = (h.float() - targets.float()).square().mean()
    unfused = (value, torch.autograd.grad(value, flat))
    assert_matches(got, unfused, dtype, bs, loss=loss)


def test_return_logits_with_a_fused_loss(backend, device):
    widths, acts = (20, 16, 5), ["relu", "linear"]
    x, ws, bs, _ = make(widths, 9, torch.float32, device, seed=10)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3], device=device)
    kw = dict(loss="sparse_categorical_crossentropy", targets=labels, return_logits=True)
    loss, logits = kernels.fused_mlp(x, ws, bs, acts, **kw)
    assert not logits.requires_grad
    check(logits, reference(x, ws, bs, acts, torch.zeros(9, 5))[0], torch.float32, "logits")
    check(loss, F.cross_entropy(logits.double(), labels.long()), torch.float32, "loss")


# ---- the per-layer path ------------------------------------------------------------------------------------------


def test_equal_to_the_per_layer_path_on_the_same_weights(backend, device):
    """The fused stack and the kernels.dense chain (the reference, on the same backend) agree on the same
    weights."""
    widths, acts = (36, 48, 40, 10), ["gelu", "tanh", "linear"]
    x, ws, bs, dy = make(widths, 50, torch.float32, device, seed=11)
    got = run(x, ws, bs, acts, dy, dropout_rates=[0.1, 0.0, 0.0], dropout_seeds=[4, None, None])
    xl, wl, bl, flat = leaves(x, ws, bs)
    h = FUSED.fused_mlp_reference(xl, wl, bl, acts, dropout_rates=[0.1, 0.0, 0.0], dropout_seeds=[4, 0, 0])
    per_layer = (h, torch.autograd.grad(h, flat, dy))
    assert_matches(got, per_layer, torch.float32, bs)


def test_float64_and_empty_batches_take_the_per_layer_path(backend, device):
    widths, acts = (8, 6, 4), ["tanh", "linear"]
    x, ws, bs, dy = make(widths, 5, torch.float64, device, seed=12)
    assert_matches(run(x, ws, bs, acts, dy), reference(x, ws, bs, acts, dy), torch.float64, bs)
    x0, ws0, bs0, _ = make(widths, 0, torch.float32, device)
    x0.requires_grad_()
    y0 = kernels.fused_mlp(x0, ws0, bs0, acts)
    assert y0.shape == (0, 4)
    y0.sum().backward()
    assert x0.grad.shape == (0, 8)


# ---- the backward's reductions -------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_reductions_agree_and_are_deterministic(device, dtype):
    """The backward's last program and the reduce launch sum the (tiles, P) partials in the same order: the same
    bits; a repeated backward gives the same bits; a batch split into launches of 64 rows (the PARTIAL_BUDGET_BYTES
    path) gives the same values within rounding, dropout masks included (they index the whole batch)."""
    widths, acts = (20, 24, 12), ["tanh", "linear"]
    x, ws, bs, dy = make(widths, 130, dtype, device, seed=13)
    spec = FUSED.MLPSpec(widths, tuple(acts), (True, True), (0.3, 0.0), (21, 0), None)

    def bwd(**kw):
        dx, grads = FUSED.fused_mlp_bwd(x, ws, bs, spec, None, dy, None, need_dx=True, **kw)
        return [dx, *grads]

    with kernels.backend_scope("triton"):
        here, launch, again = bwd(reduce_here=True), bwd(reduce_here=False), bwd(reduce_here=True)
        chunked = bwd(rows_per_launch=64)
        ref = reference(x, ws, bs, acts, dy, rates=[0.3, 0.0], seeds=[21, 0])[1]
    for name, a, b, c, g, r in zip(["dx", "dW0", "db0", "dW1", "db1"], here, launch, again, chunked, ref, strict=True):
        assert torch.equal(a, b), f"{name}: the two reductions must give the same bits"
        assert torch.equal(a, c), f"{name}: a repeated backward must give the same bits"
        check(a, r, dtype, name)
        check(g, r, dtype, f"{name} in 64-row launches")


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
def test_fused_loss_backward_reads_the_loss_gradient_on_the_device(device):
    """loss * 3 backpropagates 3 * d loss: the scale is read from the incoming gradient, not assumed to be 1."""
    widths, acts = (10, 16, 4), ["relu", "linear"]
    x, ws, bs, _ = make(widths, 11, torch.float32, device, seed=14)
    labels = torch.arange(11, device=device) % 4
    with kernels.backend_scope("triton"):
        got = run(x, ws, bs, acts, loss="softmax_cross_entropy", targets=labels)
        x2, w2, b2, flat = leaves(x, ws, bs)
        triple = torch.autograd.grad(3.0 * kernels.fused_mlp(x2, w2, b2, acts, loss="xent", targets=labels), flat)
    for name, g, g3 in zip(["dx", "dW0", "db0", "dW1", "db1"], got[1], triple, strict=True):
        check(g3, 3.0 * g, torch.float32, name)


# ---- gradients into the optimizer's flat buffer ------------------------------------------------------------------


def _flat_net(widths, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ws = [
        torch.nn.Parameter(torch.randn(k, n, generator=gen) / k**0.5)
        for k, n in zip(widths[:-1], widths[1:], strict=True)
    ]
    bs = [torch.nn.Parameter(torch.randn(n, generator=gen)) for n in widths[1:]]
    opt = optimizers.SGD()
    opt.build([t for pair in zip(ws, bs, strict=True) for t in pair])
    return ws, bs, opt


def test_flat_grads_are_accumulated_in_place(backend, device, monkeypatch):
    """With an optimizer's flat buffer behind every parameter, the fused backward adds dW / db into the .grad views
    itself (no AccumulateGrad pass): the same values onto what was there, the same tensors, weight sharing
    included; torch.autograd.grad still gets its gradients returned."""
    calls = []
    original = FUSED.fused_mlp_bwd

    def spy(*args, grads_into=None, **kwargs):
        calls.append(grads_into is not None)
        return original(*args, grads_into=grads_into, **kwargs)

    monkeypatch.setattr(FUSED, "fused_mlp_bwd", spy)
    widths, acts = (12, 16, 6), ["relu", "linear"]
    ws, bs, opt = _flat_net(widths)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(21, 12, generator=gen)
    dy = torch.randn(21, 6, generator=gen)
    prior = torch.randn(opt.flat_grad.shape, generator=gen)
    with torch.no_grad():
        opt.flat_grad.copy_(prior)
    views = [t.grad for pair in zip(ws, bs, strict=True) for t in pair]
    drop = dict(dropout_rates=[0.5, 0], dropout_seeds=[2, 0])
    y = kernels.fused_mlp(x, ws, bs, acts) + kernels.fused_mlp(x, ws, bs, acts, **drop)  # the same stack twice
    y.backward(dy)
    w2 = [w.detach().clone().requires_grad_() for w in ws]
    b2 = [b.detach().clone().requires_grad_() for b in bs]
    y2 = kernels.fused_mlp(x, w2, b2, acts) + kernels.fused_mlp(x, w2, b2, acts, **drop)
    expected = torch.autograd.grad(y2, [t for pair in zip(w2, b2, strict=True) for t in pair], dy)
    if backend == "triton":
        # the two stacks on flat leaves write into .grad; the two on plain copies return their gradients
        assert calls == [True, True, False, False], "both backward launches must write into the flat .grad views"
    got = [t.grad for pair in zip(ws, bs, strict=True) for t in pair]
    assert all(g is v for g, v in zip(got, views, strict=True)) and ws[0].grad.data_ptr() == opt.flat_grad.data_ptr()
    offset = 0
    for name, g, e in zip(["dW0", "db0", "dW1", "db1"], got, expected, strict=True):
        assert_close_verbose(g, prior[offset : offset + g.numel()].view_as(g) + e, atol=1e-5, rtol=1e-5, name=name)
        offset += g.numel()
    before = opt.flat_grad.clone()
    gw = torch.autograd.grad(kernels.fused_mlp(x, ws, bs, acts), [ws[0]], dy)[0]
    assert torch.equal(opt.flat_grad, before), "torch.autograd.grad must not touch .grad"
    check(gw, torch.autograd.grad(kernels.fused_mlp(x, w2, b2, acts), [w2[0]], dy)[0], torch.float32, "returned dW0")


# ---- bounds and bad input ------------------------------------------------------------------------------------------


def test_supported_query_states_the_bounds():
    ok, why = kernels.fused_mlp_supported([64, 32, 10], ["relu", None])
    assert ok and "64-32-10" in why
    assert kernels.fused_mlp_supported([784, 64, 64, 10], ["relu", "relu", None], torch.bfloat16, loss="xent")[0]
    assert kernels.fused_mlp_supported([1024, 64, 64, 64, 16], None)[0]  # 64 + 64 + 64 + 16 = WIDTH_BUDGET
    assert not kernels.fused_mlp_supported([784, 512, 512, 10], None)[0]  # the classic model: per-layer path
    two = [0.2, 0.2, 0.0]
    assert kernels.fused_mlp_supported([64, 64, 64, 10], None, torch.bfloat16, dropout_rates=two)[0]
    ok, why = kernels.fused_mlp_supported([64, 64, 64, 10], None, dropout_rates=two)  # float32 at "high": TF32
    assert not ok and "float32 fuses at most 1 dropout" in why, why
    assert kernels.fused_mlp_supported([64, 64, 64, 10], None, dropout_rates=[0.0, 0.2, 0.0])[0]
    ok, why = kernels.fused_mlp_supported([64] * 4 + [10], None, torch.bfloat16, dropout_rates=[0.1] * 3 + [0.0])
    assert not ok and "at most 2 layers with a fused dropout. Received: 3" in why, why
    cases = [
        (([64, 64, 64, 64, 32], None), "to sum to at most 208. Received: 64 + 64 + 64 + 32 = 224"),
        (([64, 65, 10], None), "every layer's width in [1, 64]"),
        (([64, 128, 10], None), "every layer's width in [1, 64]"),
        (([1025, 32], None), "input width in [1, 1024]"),
        (([8] * 6, None), "1 to 4 layers"),
        (([64, 32, 10], ["relu", "softmax"]), "'softmax' is not an element-wise activation"),
        (([64, 32, 10], ["relu"]), "one activation per layer"),
    ]
    for (widths, acts), message in cases:
        ok, why = kernels.fused_mlp_supported(widths, acts)
        assert not ok and message in why, why
    ok, why = kernels.fused_mlp_supported([64, 32, 10], None, torch.float16)
    assert not ok and "float32 and bfloat16" in why
    ok, why = kernels.fused_mlp_supported([64, 32, 10], None, loss="hinge")
    assert not ok and "hinge" in why
    with kernels.backend_scope("torch"):
        ok, why = kernels.fused_mlp_supported([64, 32, 10], None, device="cpu")  # kernels/fused_mlp_torch.py
        assert ok and why == "fused (torch backend): 64-32-10 as one autograd node, the per-layer torch ops", why
        ok, why = kernels.fused_mlp_supported([64, 128, 10], None, device="cpu")  # the same bounds on both backends
        assert not ok and "every layer's width in [1, 64]" in why, why
    kernels.set_float32_matmul_precision("highest")
    assert kernels.fused_mlp_supported([64, 32, 10], None)[0]
    ok, why = kernels.fused_mlp_supported([64, 64, 64, 64, 10], None)
    assert not ok and "IEEE float32" in why and "set_float32_matmul_precision('high')" in why
    assert kernels.fused_mlp_supported([64, 64, 64, 64, 10], None, torch.bfloat16)[0]


def test_bad_inputs_are_value_errors(backend, device):
    x, ws, bs, _ = make((10, 12, 4), 6, torch.float32, device)
    acts = ["relu", "linear"]
    big = torch.zeros(12, 65, device=device)
    wide = [torch.zeros(k, n, device=device) for k, n in [(10, 64), (64, 64), (64, 64), (64, 32)]]
    bad = [
        (dict(kernels=[ws[0], big], biases=None), r"every layer's width in \[1, 64\]\. Received: width 65"),
        (dict(kernels=wide, biases=None, activations=None), r"sum to at most 208\. Received: 64 \+ 64 \+ 64 \+ 32"),
        (
            dict(
                x=torch.zeros(6, 1025, device=device),
                kernels=[torch.zeros(1025, 4, device=device)],
                biases=None,
                activations=None,
            ),
            r"input width in \[1, 1024\]",
        ),  # fmt: skip
        (dict(kernels=[ws[0], ws[0]]), r"kernels\[1\]\.shape\[0\] must equal kernels\[0\]\.shape\[1\]=12"),
        (dict(kernels=[ws[0][:9], ws[1]]), r"kernels\[0\]\.shape\[0\] must equal x\.shape\[1\]=10"),
        (dict(biases=[bs[0], bs[0]]), r"biases\[1\] must have shape \(4,\)"),
        (dict(kernels=[ws[0].double(), ws[1]]), r"kernels\[0\] must have x's dtype torch\.float32"),
        (dict(x=x.long()), r"2-D \(batch, features\) floating-point"),
        (dict(x=x[0]), r"2-D \(batch, features\)"),
        (dict(activations=["relu"]), r"one entry of activations per kernel \(2\)"),
        (dict(activations=["rellu", None]), r"Unknown activation: 'rellu'"),
        (dict(dropout_rates=[1.0, 0.0]), r"rate=1\.0"),
        (dict(loss="hinge", targets=torch.zeros(6, device=device)), r"loss='hinge'"),
        (dict(loss="xent"), r"targets go with a fused loss"),
        (
            dict(loss="xent", targets=torch.zeros(6, device=device)),
            r"integer labels\. Received: targets\.dtype=torch\.float32",
        ),  # fmt: skip
        (dict(loss="xent", targets=torch.full((6,), 4, device=device)), r"in \[0, 4\)\. Received: target with 6 label"),
        (dict(loss="xent", targets=torch.zeros(5, dtype=torch.long, device=device)), r"labels of shape \(6,\)"),
        (dict(loss="mse", targets=torch.zeros(6, 3, device=device)), r"output's shape \(6, 4\)"),
        (dict(return_logits=True), r"return_logits applies to a fused loss"),
    ]
    for overrides, message in bad:
        args = dict(x=x, kernels=ws, biases=bs, activations=acts) | overrides
        with pytest.raises(ValueError, match=message):
            kernels.fused_mlp(args.pop("x"), args.pop("kernels"), args.pop("biases"), args.pop("activations"), **args)
