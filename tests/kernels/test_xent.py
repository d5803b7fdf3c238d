"""Softmax cross-entropy, softmax/log-softmax and binary cross-entropy against float64 references.

The references below are written from the definitions (Keras' losses, log-sum-exp), independently of
kernels/xent.py's torch path. Each test runs on the torch backend and on the Triton kernels (the interpreter on
CPU). ``blocks="chunked"`` shrinks the kernels' column block so that rows take several chunks, one ragged,
exercising the online log-sum-exp and the second (gradient) sweep.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import TOLERANCES, assert_close_verbose, sum_error_bound
from tritonnn import kernels
from tritonnn.kernels import xent

# ------------------------------------------------------------------------------------------------------------------
# float64 references, from the definitions
# ------------------------------------------------------------------------------------------------------------------


def _lse(z):
    m = z.max(dim=-1, keepdim=True).values
    return (m + (z - m).exp().sum(-1, keepdim=True).log()).squeeze(-1)


def xent_f64(logits, target, *, reduction="mean", label_smoothing=0.0, ignore_index=None, from_logits=True):
    """(loss, d loss / d logits) in float64: loss_i = -sum_j t'_ij log p_ij, t' = (1 - ls) t + ls / C."""
    z = logits.detach().double().cpu().requires_grad_(True)
    n, c = z.shape
    tgt = target.cpu()
    if tgt.dtype.is_floating_point:
        t = tgt.double()
        keep = torch.ones(n, dtype=torch.bool)
    else:
        keep = torch.ones(n, dtype=torch.bool) if ignore_index is None else tgt != ignore_index
        t = torch.zeros(n, c, dtype=torch.float64)
        rows = keep.nonzero().squeeze(1)
        t[rows, tgt[rows].long()] = 1.0
    t = t * (1.0 - label_smoothing) + label_smoothing / c
    if from_logits:
        logp = z - _lse(z)[:, None]
    else:
        q = z / z.sum(-1, keepdim=True)
        logp = q.clamp(1e-7, 1 - 1e-7).log()
    rows = -(t * logp).sum(-1) * keep
    if reduction == "none":
        loss = rows
    elif reduction == "sum":
        loss = rows.sum()
    else:
        loss = rows.sum() / max(int(keep.sum()), 1)
    loss.backward(torch.ones_like(loss) if reduction == "none" else None)
    return loss.detach(), z.grad


def bce_f64(z, t, *, reduction="mean", label_smoothing=0.0, from_logits=True):
    x = z.detach().double().cpu().requires_grad_(True)
    tt = t.double().cpu() * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        p = 1.0 / (1.0 + torch.exp(-x))
        # log p and log(1 - p) from the logits directly, so the reference itself never rounds to log(0)
        log_p = -torch.nn.functional.softplus(-x)
        log_1mp = -torch.nn.functional.softplus(x)
        del p
    else:
        pc = x.clamp(1e-7, 1 - 1e-7)
        log_p, log_1mp = pc.log(), (1 - pc).log()
    el = -(tt * log_p + (1 - tt) * log_1mp)
    loss = el if reduction == "none" else el.sum() if reduction == "sum" else el.mean()
    loss.backward(torch.ones_like(loss) if reduction == "none" else None)
    return loss.detach(), x.grad


@pytest.fixture(params=["one", "chunked"])
def blocks(request, monkeypatch, backend):
    """Whole rows in one block, or rows cut into 256-column chunks (so C=1000 takes 4, the last ragged)."""
    if request.param == "chunked":
        if backend == "torch":
            pytest.skip("the chunk size only exists in the Triton kernel")
        monkeypatch.setattr(xent, "_ONE_CHUNK_MAX", 32)
        monkeypatch.setattr(xent, "_BLOCK_C", 256)
    return request.param


def _labels(n, c, gen, ignore_index=None):
    t = torch.randint(0, c, (n,), generator=gen)
    if ignore_index is not None:
        t[1::4] = ignore_index
    return t


def _probs(n, c, gen):
    return torch.softmax(torch.randn(n, c, generator=gen, dtype=torch.float64) * 2, -1).float()


# ------------------------------------------------------------------------------------------------------------------
# softmax_cross_entropy
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", [2, 37, 1000])
@pytest.mark.parametrize("kind", ["labels", "probs"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_xent_matches_float64(backend, blocks, device, c, kind, reduction):
    gen = torch.Generator().manual_seed(c * 7 + len(reduction))
    n = 9
    z = torch.randn(n, c, generator=gen) * 3
    target = _labels(n, c, gen) if kind == "labels" else _probs(n, c, gen)
    ls = 0.1 if reduction != "sum" else 0.0
    ref_loss, ref_grad = xent_f64(z, target, reduction=reduction, label_smoothing=ls)
    x = z.to(device).requires_grad_(True)
    loss = kernels.softmax_cross_entropy(x, target.to(device), reduction=reduction, label_smoothing=ls)
    assert loss.dtype == torch.float32
    loss.backward(torch.ones_like(loss) if reduction == "none" else None)
    atol, rtol = TOLERANCES[torch.float32]
    assert_close_verbose(loss, ref_loss, atol=atol * c, rtol=rtol * 10, name="loss")
    assert_close_verbose(x.grad, ref_grad, atol=atol, rtol=rtol * 10, name="d logits")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_xent_ignore_index(backend, blocks, device, reduction):
    gen = torch.Generator().manual_seed(3)
    n, c = 13, 300
    z = torch.randn(n, c, generator=gen)
    target = _labels(n, c, gen, ignore_index=-100)
    ref_loss, ref_grad = xent_f64(z, target, reduction=reduction, ignore_index=-100, label_smoothing=0.2)
    x = z.to(device).requires_grad_(True)
    loss = kernels.softmax_cross_entropy(
        x, target.to(device), reduction=reduction, ignore_index=-100, label_smoothing=0.2
    )
    loss.backward(torch.ones_like(loss) if reduction == "none" else None)
    assert_close_verbose(loss, ref_loss, atol=2e-5, rtol=2e-5, name="loss")
    assert_close_verbose(x.grad, ref_grad, atol=1e-6, rtol=2e-5, name="d logits")
    # Ignored rows: zero loss and zero gradient, exactly.
    ignored = (target == -100).to(device)
    assert (x.grad[ignored] == 0).all()
    if reduction == "none":
        assert (loss[ignored] == 0).all()


def test_xent_ignore_index_inside_class_range(backend, device):
    """ignore_index may be a real class id (e.g. 0, a padding token): those rows drop out."""
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(6, 5, generator=gen)
    target = torch.tensor([0, 1, 0, 4, 2, 0])
    ref_loss, ref_grad = xent_f64(z, target, ignore_index=0)
    x = z.to(device).requires_grad_(True)
    loss = kernels.softmax_cross_entropy(x, target.to(device), ignore_index=0)
    loss.backward()
    assert_close_verbose(loss, ref_loss, atol=1e-6, rtol=1e-5, name="loss")
    assert_close_verbose(x.grad, ref_grad, atol=1e-7, rtol=1e-5, name="d logits")


def test_xent_all_rows_ignored_and_one_row(backend, device):
    z = torch.randn(4, 7).to(device).requires_grad_(True)
    loss = kernels.softmax_cross_entropy(z, torch.full((4,), -1, device=device), ignore_index=-1)
    loss.backward()
    assert loss.item() == 0.0 and (z.grad == 0).all()
    one = torch.tensor([[1.0, 2.0, 3.0]], device=device)
    got = kernels.softmax_cross_entropy(one, torch.tensor([2], device=device))
    expected = torch.log(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).exp().sum()) - 3.0
    assert abs(got.item() - expected.item()) < 1e-6


def test_xent_large_c_chunked(backend, device, monkeypatch):
    """C = 3000 with 1024-column chunks (3 chunks, one ragged) under the interpreter; 131072 on a GPU below."""
    monkeypatch.setattr(xent, "_ONE_CHUNK_MAX", 1024)
    monkeypatch.setattr(xent, "_BLOCK_C", 1024)
    gen = torch.Generator().manual_seed(5)
    n, c = 5, 3000
    z = torch.randn(n, c, generator=gen) * 4
    z[0, 2999] = 40.0  # the row max in the ragged chunk: the online rescaling must carry it
    z[1, 0] = 40.0  # the row max in the first chunk
    target = torch.tensor([2999, 0, 17, 1500, 2048])
    ref_loss, ref_grad = xent_f64(z, target, label_smoothing=0.05)
    x = z.to(device).requires_grad_(True)
    loss = kernels.softmax_cross_entropy(x, target.to(device), label_smoothing=0.05)
    loss.backward()
    assert_close_verbose(loss, ref_loss, atol=1e-4, rtol=1e-5, name="loss")
    # fp32 log-sum-exp at |z| = 40 carries a few ulp(40) ~ 4e-6 of absolute error; the gradient divides it by n.
    assert_close_verbose(x.grad, ref_grad, atol=4 * 3.8e-6 / n, rtol=1e-4, name="d logits")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="C = 131072 needs a real GPU (the interpreter is too slow)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_xent_c131072_on_gpu(dtype):
    gen = torch.Generator().manual_seed(6)
    n, c = 64, 131072
    z = torch.randn(n, c, generator=gen) * 2
    target = torch.randint(0, c, (n,), generator=gen)
    ref_loss, ref_grad = xent_f64(z.to(dtype).float(), target)
    x = z.to("cuda", dtype).requires_grad_(True)
    with kernels.backend_scope("triton"):
        loss = kernels.softmax_cross_entropy(x, target.cuda())
    loss.backward()
    atol, rtol = TOLERANCES[dtype]
    assert_close_verbose(loss, ref_loss, atol=1e-4, rtol=1e-5, name="loss")
    assert_close_verbose(x.grad.float(), ref_grad, atol=atol / n, rtol=rtol, name="d logits")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_xent_low_precision_logits(backend, device, dtype):
    """bf16/fp16 logits: computed in fp32 inside, the loss fp32, the gradient in the logits' dtype."""
    gen = torch.Generator().manual_seed(7)
    z = (torch.randn(8, 200, generator=gen) * 3).to(dtype)
    target = torch.randint(0, 200, (8,), generator=gen)
    ref_loss, ref_grad = xent_f64(z.float(), target)
    x = z.to(device).requires_grad_(True)
    loss = kernels.softmax_cross_entropy(x, target.to(device))
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == dtype
    atol, rtol = TOLERANCES[dtype]
    assert_close_verbose(loss, ref_loss, atol=1e-5, rtol=1e-5, name="loss")
    assert_close_verbose(x.grad, ref_grad, atol=atol / 8, rtol=rtol, name="d logits")


def test_xent_reads_nothing_outside_the_rows(backend, device):
    """Logits as a strided view into a NaN-filled buffer: any read outside the (N, C) window poisons the result."""
    gen = torch.Generator().manual_seed(8)
    n, c, pad = 6, 45, 19
    big = torch.full((n + 2, c + pad), float("nan"))
    z = torch.randn(n, c, generator=gen)
    big[1 : n + 1, 3 : c + 3] = z
    view = big.to(device)[1 : n + 1, 3 : c + 3]
    assert view.stride(0) == c + pad
    target = torch.randint(0, c, (n,), generator=gen)
    ref_loss, ref_grad = xent_f64(z, target, reduction="none")
    x = view.detach().requires_grad_(True)
    loss = kernels.softmax_cross_entropy(x, target.to(device), reduction="none")
    loss.backward(torch.ones_like(loss))
    assert_close_verbose(loss, ref_loss, atol=1e-5, rtol=1e-5, name="loss")
    assert_close_verbose(x.grad, ref_grad, atol=1e-7, rtol=1e-5, name="d logits")


def test_xent_none_reduction_weights_rows(backend, blocks, device):
    """The backward scales the saved gradient by a per-row incoming gradient (sample weights)."""
    gen = torch.Generator().manual_seed(9)
    z = torch.randn(7, 90, generator=gen)
    target = _probs(7, 90, gen)
    w = torch.rand(7, generator=gen, dtype=torch.float64)
    zr = z.double().requires_grad_(True)
    lse = _lse(zr)
    (((lse - (target.double() * zr).sum(-1)) * w).sum()).backward()
    x = z.to(device).requires_grad_(True)
    loss = kernels.softmax_cross_entropy(x, target.to(device), reduction="none")
    (loss * w.float().to(device)).sum().backward()
    assert_close_verbose(x.grad, zr.grad, atol=1e-7, rtol=1e-5, name="d logits")


def test_xent_from_probabilities_follows_keras(backend, device):
    """from_logits=False: renormalise, clip to [1e-7, 1 - 1e-7], -sum t log p (Keras' categorical path)."""
    gen = torch.Generator().manual_seed(10)
    p = torch.softmax(torch.randn(6, 11, generator=gen), -1)  # all well above the 1e-7 clip, but row 0
    p[0] = 0.0
    p[0, 3] = 2.0  # un-normalised and with exact zeros: the clip matters
    for target in (torch.tensor([3, 0, 5, 10, 2, 2]), _probs(6, 11, gen)):
        ref_loss, ref_grad = xent_f64(p, target, from_logits=False)
        x = p.clone().to(device).requires_grad_(True)
        loss = kernels.softmax_cross_entropy(x, target.to(device), from_logits=False)
        loss.backward()
        assert_close_verbose(loss, ref_loss, atol=1e-5, rtol=1e-5, name="loss")
        assert_close_verbose(x.grad, ref_grad, atol=1e-5, rtol=1e-4, name="d probs")


def test_xent_no_grad_path(backend, device):
    z = torch.randn(5, 33).to(device)
    target = torch.randint(0, 33, (5,)).to(device)
    with torch.no_grad():
        loss = kernels.softmax_cross_entropy(z, target, reduction="sum")
    ref, _ = xent_f64(z, target, reduction="sum")
    assert_close_verbose(loss, ref, atol=1e-5, rtol=1e-6, name="loss")


@pytest.mark.parametrize("bad", [-1, 7, 100])
def test_xent_rejects_out_of_range_labels(backend, device, bad):
    z = torch.randn(4, 7, device=device)
    target = torch.tensor([0, bad, 3, 6], device=device)
    with pytest.raises(ValueError, match=r"labels in \[0, 7\).*Received.*out of range, e\.g\. " + str(bad)):
        kernels.softmax_cross_entropy(z, target)
    # The ignore label itself is allowed, nothing else.
    kernels.softmax_cross_entropy(z, torch.tensor([0, -100, 3, 6], device=device), ignore_index=-100)
    with pytest.raises(ValueError, match="ignore_index=-100"):
        kernels.softmax_cross_entropy(z, torch.tensor([0, -100, 3, 7], device=device), ignore_index=-100)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_xent_takes_float_labels_that_hold_whole_numbers(backend, device, reduction):
    # Keras' guides pass y.astype("float32"): (N,) floats of whole numbers are labels, as their integers are.
    z = torch.randn(5, 4, device=device, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 2, 3], device=device)
    ref = kernels.softmax_cross_entropy(z, labels, reduction=reduction)
    (ref_grad,) = torch.autograd.grad(ref.sum(), z)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        got = kernels.softmax_cross_entropy(z, labels.to(dtype), reduction=reduction)
        (grad,) = torch.autograd.grad(got.sum(), z)
        torch.testing.assert_close(got, ref, rtol=0, atol=0)
        torch.testing.assert_close(grad, ref_grad, rtol=0, atol=0)
    ignored = torch.tensor([0.0, -1.0, 1.0, 2.0, 3.0], device=device)
    torch.testing.assert_close(
        kernels.softmax_cross_entropy(z, ignored, ignore_index=-1),
        kernels.softmax_cross_entropy(z, ignored.long(), ignore_index=-1),
    )


@pytest.mark.parametrize(("bad", "shown"), [(1.7, "1.7"), (2.5, "2.5"), (float("nan"), "nan"), (-0.25, "-0.25")])
def test_xent_refuses_float_labels_that_are_not_whole(backend, device, bad, shown):
    z = torch.randn(4, 4, device=device)
    target = torch.tensor([0.0, bad, 3.0, 1.0], device=device)
    with pytest.raises(ValueError, match=r"integer class labels.*1 non-integer value\(s\), e\.g\. " + shown):
        kernels.softmax_cross_entropy(z, target)
    with pytest.raises(ValueError, match=r"labels in \[0, 4\).*e\.g\. 4"):  # whole but out of range
        kernels.softmax_cross_entropy(z, torch.tensor([0.0, 4.0, 3.0, 1.0], device=device))


def test_sparse_labels_converts_checks_and_trusts_a_registered_range(monkeypatch):
    calls = []
    real_any = torch.Tensor.any
    monkeypatch.setattr(torch.Tensor, "any", lambda self, *a, **k: calls.append(1) or real_any(self, *a, **k))
    labels = torch.tensor([0.0, 2.0, 1.0])
    out = kernels.sparse_labels(labels)
    assert out.dtype == torch.int64 and out.tolist() == [0, 2, 1] and calls == [1]
    ints = torch.tensor([0, 5, 1])
    assert kernels.sparse_labels(ints) is ints and calls == [1]  # integers: nothing to check without a class count
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        kernels.sparse_labels(ints, 3, op="my_metric")
    calls.clear()
    with xent.known_label_range([labels], 0, 2):
        assert kernels.sparse_labels(labels.view(3, 1).squeeze(1), 3).tolist() == [0, 2, 1]
        kernels.softmax_cross_entropy(torch.randn(3, 3), labels)
        assert calls == []
    with pytest.raises(ValueError, match=r"my_metric: expected integer class labels.*e\.g\. 0.5"):
        kernels.sparse_labels(torch.tensor([0.5]), op="my_metric")
    with pytest.raises(ValueError, match="my_metric.*torch.bool"):
        kernels.sparse_labels(torch.tensor([True]), op="my_metric")


def test_xent_rejects_bad_arguments(backend, device):
    z = torch.randn(4, 7, device=device)
    t = torch.tensor([0, 1, 2, 3], device=device)
    with pytest.raises(ValueError, match="reduction"):
        kernels.softmax_cross_entropy(z, t, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        kernels.softmax_cross_entropy(z, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        kernels.softmax_cross_entropy(z, t[:3])
    with pytest.raises(ValueError, match=r"probability targets of the logits' shape \(4, 7\)"):
        kernels.softmax_cross_entropy(z, torch.rand(4, 6, device=device))
    with pytest.raises(ValueError, match="2-D"):
        kernels.softmax_cross_entropy(z[0], t)


# ------------------------------------------------------------------------------------------------------------------
# softmax / log_softmax
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("c", [10, 1000])
def test_softmax_matches_float64(backend, blocks, device, log, c):
    gen = torch.Generator().manual_seed(c)
    z = torch.randn(11, c, generator=gen) * 4
    zr = z.double().requires_grad_(True)
    lse = _lse(zr)[:, None]
    ref = zr - lse if log else (zr - lse).exp()
    g = torch.randn(11, c, generator=gen)
    ref.backward(g.double())
    x = z.to(device).requires_grad_(True)
    y = (kernels.log_softmax if log else kernels.softmax)(x)
    y.backward(g.to(device))
    assert_close_verbose(y, ref, atol=1e-6, rtol=1e-5, name="y")
    # The backward reduces each row: log_softmax dx_i = g_i - p_i * sum_j g_j, softmax dx_i = p_i * (g_i - sum_j
    # p_j g_j). The row sum's rounding error, scaled by p_i, comes on top of the elementwise tolerance.
    p, gd = (zr - lse).exp().detach(), g.double()
    row = gd.abs().sum(1, keepdim=True) if log else (p * gd).abs().sum(1, keepdim=True)
    atol = 1e-6 + p * sum_error_bound(c, torch.float32, row)
    assert_close_verbose(x.grad, zr.grad, atol=atol, rtol=1e-5, name="dx")


def test_softmax_other_axis_and_bf16(backend, device):
    z = torch.randn(3, 17, 5)
    y = kernels.softmax(z.to(device), axis=1)
    assert_close_verbose(y, torch.softmax(z.double(), 1), atol=1e-6, rtol=1e-5, name="axis=1")
    zb = z.to(torch.bfloat16).to(device)
    yb = kernels.log_softmax(zb)
    assert yb.dtype == torch.bfloat16
    assert_close_verbose(yb, torch.log_softmax(zb.double(), -1), atol=2e-2, rtol=1e-2, name="bf16")


# ------------------------------------------------------------------------------------------------------------------
# binary_cross_entropy
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_bce_with_logits_matches_float64(backend, device, reduction, label_smoothing):
    gen = torch.Generator().manual_seed(11)
    z = torch.randn(7, 301, generator=gen) * 6
    z[0, :4] = torch.tensor([-100.0, 100.0, 0.0, 1e-9])  # no overflow at the extremes, exact at 0
    t = torch.rand(7, 301, generator=gen)
    t[1] = (t[1] > 0.5).float()
    ref_loss, ref_grad = bce_f64(z, t, reduction=reduction, label_smoothing=label_smoothing)
    x = z.to(device).requires_grad_(True)
    loss = kernels.binary_cross_entropy(x, t.to(device), reduction=reduction, label_smoothing=label_smoothing)
    loss.backward(torch.ones_like(loss) if reduction == "none" else None)
    assert loss.dtype == torch.float32
    assert_close_verbose(loss, ref_loss, atol=1e-5 if reduction != "sum" else 1e-3, rtol=1e-5, name="loss")
    # sigmoid(z) - t is at most 1 in magnitude: fp32 rounding leaves ~1 ulp(1) = 1.2e-7 absolute, times the scale.
    scale = 1.0 / z.numel() if reduction == "mean" else 1.0
    assert_close_verbose(x.grad, ref_grad, atol=2.4e-7 * scale, rtol=1e-5, name="d logits")


def test_bce_from_probabilities_follows_keras(backend, device):
    # Both clip ends: p = 0 with t = 1 costs -log(1e-7); p = 1 with t = 1 costs ~0. (1 - 1e-7 is not exact in fp32,
    # so a wrong prediction near 1 would compare fp32 rounding with float64, not the rule.)
    p = torch.tensor([[0.0, 0.3, 1.0, 0.0], [0.5, 1e-9, 0.7, 0.2]])
    t = torch.tensor([[0, 1, 1, 1], [1, 0, 1, 1]])  # integer targets are cast
    ref_loss, _ = bce_f64(p, t.float(), from_logits=False)
    loss = kernels.binary_cross_entropy(p.to(device), t.to(device), from_logits=False)
    assert_close_verbose(loss, ref_loss, atol=1e-5, rtol=1e-5, name="loss")


def test_bce_rejects_bad_arguments(backend, device):
    with pytest.raises(ValueError, match=r"target of the output's shape \(3,\)"):
        kernels.binary_cross_entropy(torch.zeros(3, device=device), torch.zeros(4, device=device))
    with pytest.raises(ValueError, match="reduction"):
        kernels.binary_cross_entropy(torch.zeros(3, device=device), torch.zeros(3, device=device), reduction="x")


def test_kernel_never_addresses_memory_with_a_label(backend, device):
    """Past the host check, a wild label is only compared with column indices: no read outside the row."""
    if backend == "torch":
        pytest.skip("the launcher is the Triton kernel")
    z = torch.randn(3, 7).to(device)
    wild = torch.tensor([10**9, -(10**9), 3], device=device)
    loss, grad = xent.xent_fwd(z, wild, torch.ones(1, device=device), label_smoothing=0.0, ignore_index=None,
                               need_grad=True)  # fmt: skip
    ref_lse = z.double().logsumexp(-1)
    assert_close_verbose(loss[:2], ref_lse[:2], atol=1e-5, rtol=1e-6, name="no-class rows")
    assert_close_verbose(grad[:2], torch.softmax(z.double(), -1)[:2], atol=1e-7, rtol=1e-5, name="no-class grads")


@pytest.mark.parametrize("scale", [1.0, 2.5, 0.0])
def test_backward_scales_by_a_scalar_incoming_gradient(backend, device, scale):
    """The saved gradient times grad_output, whether the in-kernel shortcut for exactly 1 applies or not."""
    gen = torch.Generator().manual_seed(12)
    z = torch.randn(6, 40, generator=gen)
    target = torch.randint(0, 40, (6,), generator=gen)
    _, ref_grad = xent_f64(z, target)
    x = z.clone().to(device).requires_grad_(True)
    (kernels.softmax_cross_entropy(x, target.to(device)) * scale).backward()
    assert_close_verbose(x.grad, ref_grad * scale, atol=1e-7, rtol=1e-5, name=f"d logits x {scale}")
    xb = z.clone().to(device).requires_grad_(True)
    (kernels.binary_cross_entropy(xb, (z > 0).float().to(device), reduction="sum") * scale).backward()
    assert_close_verbose(xb.grad, (torch.sigmoid(z.double()) - (z > 0).double()) * scale, atol=2.4e-7, rtol=1e-5,
                         name=f"d bce x {scale}")  # fmt: skip


def test_xent_masked_classes_with_minus_inf_logits(backend, blocks, device):
    """Logits of -inf (masked vocabulary entries) cost nothing and get zero gradient, for both target kinds."""
    gen = torch.Generator().manual_seed(13)
    n, c = 5, 300
    z = torch.randn(n, c, generator=gen, dtype=torch.float64)
    z[:, 7::5] = float("-inf")
    labels = torch.tensor([0, 1, 2, 3, 299])
    probs = torch.zeros(n, c, dtype=torch.float64)
    probs[torch.arange(n), labels] = 0.75
    probs[torch.arange(n), labels // 2 * 2 % 7] += 0.25  # a second class with mass, never a masked one
    lse = torch.logsumexp(z, -1)
    soft = torch.softmax(z, -1)
    for target, t in ((labels, torch.nn.functional.one_hot(labels, c).double()), (probs.float(), probs)):
        x = z.float().to(device).requires_grad_(True)
        loss = kernels.softmax_cross_entropy(x, target.to(device), reduction="sum")
        loss.backward()
        ref = (lse - torch.where(t > 0, t * z, 0.0).sum(-1)).sum()
        assert_close_verbose(loss, ref, atol=1e-4, rtol=1e-6, name="loss")
        assert_close_verbose(x.grad, soft - t, atol=1e-6, rtol=1e-5, name="d logits")
        assert (x.grad[:, 7::5] == 0).all()


# ------------------------------------------------------------------------------------------------------------------
# property test: random shapes, chunkings, targets and options against the float64 reference
# ------------------------------------------------------------------------------------------------------------------
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 12),
    c=st.integers(2, 600),
    block=st.sampled_from([None, 32, 128]),
    probs=st.booleans(),
    ls=st.sampled_from([0.0, 0.3]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    seed=st.integers(0, 2**16),
)
def test_xent_property(backend, device, n, c, block, probs, ls, reduction, seed):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=gen) * 5
    target = _probs(n, c, gen) if probs else _labels(n, c, gen, ignore_index=None if n < 3 else -1)
    ignore = None if probs or n < 3 else -1
    ref_loss, ref_grad = xent_f64(z, target, reduction=reduction, label_smoothing=ls, ignore_index=ignore)
    if backend == "triton" and device == "cpu":
        loss_rows, grad = xent.xent_fwd(z, target, torch.ones(1), label_smoothing=ls, ignore_index=ignore,
                                        need_grad=True, block_c=block)  # fmt: skip
        ref_rows, _ = xent_f64(z, target, reduction="none", label_smoothing=ls, ignore_index=ignore)
        assert_close_verbose(loss_rows, ref_rows, atol=2e-5 * (1 + c / 100), rtol=1e-5, name="rows")
        keep = torch.ones(n) if ignore is None else (target != ignore).double()
        _, ref_grad_sum = xent_f64(z, target, reduction="sum", label_smoothing=ls, ignore_index=ignore)
        assert_close_verbose(grad, ref_grad_sum * keep[:, None], atol=1e-6, rtol=1e-5, name="grad (scale 1)")
    x = z.to(device).requires_grad_(True)
    loss = kernels.softmax_cross_entropy(
        x, target.to(device), reduction=reduction, label_smoothing=ls, ignore_index=ignore
    )
    loss.backward(torch.ones_like(loss) if reduction == "none" else None)
    assert_close_verbose(loss, ref_loss, atol=2e-5 * (1 + c / 100) * (n if reduction == "sum" else 1), rtol=1e-5,
                         name="loss")  # fmt: skip
    assert_close_verbose(x.grad, ref_grad, atol=1e-6, rtol=1e-5, name="d logits")


def test_known_label_range_skips_only_the_registered_labels(monkeypatch):
    # fit() checks its target array once and registers each batch; the per-call check (a host sync) is skipped for
    # that batch and its views only, and only when the registered range fits the logits.
    calls = []
    real_any = torch.Tensor.any
    monkeypatch.setattr(torch.Tensor, "any", lambda self, *a, **k: calls.append(1) or real_any(self, *a, **k))
    z = torch.randn(6, 5)
    labels = torch.tensor([0, 1, 4, 2, 3, 1])
    with xent.known_label_range([labels], 0, 4):
        kernels.softmax_cross_entropy(z, labels.view(6, 1).squeeze(1))  # a view of the registered batch
        assert calls == []
        kernels.softmax_cross_entropy(z, labels.clone())  # another tensor: checked
        assert calls == [1]
        with pytest.raises(ValueError, match="out of range"):  # the range does not fit 3 classes: checked
            kernels.softmax_cross_entropy(z[:, :3], labels)
    calls.clear()
    kernels.softmax_cross_entropy(z, labels)  # outside the block: checked again
    assert calls == [1]
