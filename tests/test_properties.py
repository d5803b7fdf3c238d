"""Property-based tests: every kernel op over hypothesis-drawn shapes and values, against float64 references written
here from the formulas (not the kernel modules' own references), on both backends.

Values come from a seeded torch generator (the seed is drawn by hypothesis) rather than hypothesis' float
strategies: continuous values never land exactly on an activation's kink, and drawing a 40x40 array element by
element would dominate the run time. Under Triton's interpreter each example costs tens of milliseconds per launch,
so the triton backend runs fewer examples (TRITON_NOTES.md); ``derandomize`` keeps CI reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonnn import kernels
from tritonnn.kernels.activations import ACTIVATIONS

from .helpers import assert_close_verbose

F64 = torch.float64


def _settings(backend: str, torch_examples: int = 25, triton_examples: int = 12):
    return settings(
        max_examples=triton_examples if backend == "triton" else torch_examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=gen, dtype=F64) * scale


def _close(got: torch.Tensor, want: torch.Tensor, name: str, atol: float = 2e-5, rtol: float = 2e-5) -> None:
    """fp32 results against float64: atol relative to the reference's scale."""
    scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
    assert_close_verbose(got, want, atol=atol * scale, rtol=rtol, name=name)


seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 40)

# ---- dense: every activation, with and without the fused dropout -------------------------------------------------

_SQRT2 = math.sqrt(2.0)


def _hard_sigmoid(z):
    return ((z + 3.0) / 6.0).clamp(0.0, 1.0)


ACT_REF = {
    "linear": lambda z: z,
    "relu": lambda z: torch.where(z > 0, z, 0.0 * z),
    "relu6": lambda z: torch.minimum(torch.where(z > 0, z, 0.0 * z), torch.full_like(z, 6.0)),
    "leaky_relu": lambda z: torch.where(z > 0, z, 0.2 * z),
    "elu": lambda z: torch.where(z > 0, z, torch.expm1(z)),
    "selu": lambda z: (
        1.0507009873554804934193349852946 * torch.where(z > 0, z, 1.6732632423543772848170429916717 * torch.expm1(z))
    ),
    "gelu": lambda z: 0.5 * z * (1.0 + torch.special.erf(z / _SQRT2)),
    "gelu_tanh": lambda z: 0.5 * z * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3))),
    "silu": lambda z: z / (1.0 + torch.exp(-z)),
    "sigmoid": lambda z: 1.0 / (1.0 + torch.exp(-z)),
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": lambda z: z * _hard_sigmoid(z),
    "tanh": torch.tanh,
    "softplus": lambda z: torch.logaddexp(torch.zeros_like(z), z),
    "softsign": lambda z: z / (1.0 + z.abs()),
    "mish": lambda z: z * torch.tanh(torch.logaddexp(torch.zeros_like(z), z)),
    "exponential": torch.exp,
}


def test_every_activation_has_a_reference():
    assert set(ACT_REF) == set(ACTIVATIONS)


def _philox_first_word(seed: int, offset: int) -> int:
    """Philox4x32-10 (Salmon et al., SC'11) on counter (offset, 0, 0, 0) and key (seed lo, seed hi): word 0."""
    m = 0xFFFFFFFF
    c0, c1, c2, c3 = offset & m, offset >> 32, 0, 0
    k0, k1 = seed & m, (seed >> 32) & m
    for _ in range(10):
        p0, p2 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p2 >> 32) ^ c1 ^ k0) & m, p2 & m, ((p0 >> 32) ^ c3 ^ k1) & m, p0 & m
        k0, k1 = (k0 + 0x9E3779B9) & m, (k1 + 0xBB67AE85) & m
    return c0


def _pcg64_word(raw: list[int], i: int) -> int:
    """Word i of the CPU torch path's stream: the i-th 32-bit half of PCG64's raw 64-bit draws, low half first."""
    return (raw[i // 2] >> (32 * (i % 2))) & 0xFFFFFFFF


def _keep_mask(seed: int, rate: float, shape: tuple[int, ...], backend: str) -> torch.Tensor:
    """Keep element i (row-major) when the top 31 bits of word i reach rate * 2**31: Philox(seed, i) in the Triton
    kernels, the PCG64(seed) stream on the CPU torch path (kernels/dropout.py)."""
    threshold = min(round(rate * 2**31), 2**31 - 1)
    n = math.prod(shape)
    if backend == "torch":
        raw = [int(r) for r in np.random.PCG64(seed).random_raw((n + 1) // 2)]
        words = [_pcg64_word(raw, i) for i in range(n)]
    else:
        words = [_philox_first_word(seed, i) for i in range(n)]
    return torch.tensor([(w >> 1) >= threshold for w in words], dtype=torch.bool).reshape(shape)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_matches_float64(backend, activation):
    @_settings(backend, torch_examples=6, triton_examples=2)
    @given(m=dims, k=dims, n=dims, bias=st.booleans(), rate=st.sampled_from([0.0, 0.3]), seed=seeds)
    def check(m, k, n, bias, rate, seed):
        gen = torch.Generator().manual_seed(seed)
        scale = 0.5 if activation == "exponential" else 2.0
        x = _randn(gen, m, k, scale=scale / math.sqrt(k))
        w = _randn(gen, k, n)
        b = _randn(gen, n) if bias else None
        dy = _randn(gen, m, n)
        drop_seed = seed * 7919 % 2**40
        # float64 reference, differentiated by autograd
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        br = b.clone().requires_grad_() if bias else None
        y_ref = ACT_REF[activation](xr @ wr + (br if bias else 0.0))
        if rate:
            y_ref = torch.where(_keep_mask(drop_seed, rate, (m, n), backend), y_ref / (1.0 - rate), 0.0 * y_ref)
        y_ref.backward(dy)
        # the op, in fp32
        xf, wf = x.float().requires_grad_(), w.float().requires_grad_()
        bf = b.float().requires_grad_() if bias else None
        y = kernels.dense(xf, wf, bf, activation, dropout_rate=rate, dropout_seed=drop_seed if rate else None)
        y.backward(dy.float())
        assert y.dtype == torch.float32 and y.shape == (m, n)
        _close(y, y_ref.detach(), "y", atol=5e-5, rtol=5e-5)
        _close(xf.grad, xr.grad, "dx", atol=5e-5, rtol=5e-5)
        _close(wf.grad, wr.grad, "dkernel", atol=5e-5, rtol=5e-5)
        if bias:
            _close(bf.grad, br.grad, "dbias", atol=5e-5, rtol=5e-5)

    check()


# ---- dropout ----------------------------------------------------------------------------------------------------


def test_dropout_matches_an_independent_mask(backend):
    @_settings(backend, triton_examples=10)
    @given(
        shape=st.lists(st.integers(1, 24), min_size=1, max_size=3).map(tuple),
        rate=st.floats(0.0, 0.95),
        seed=st.integers(0, 2**63 - 1),
        vseed=seeds,
    )
    def check(shape, rate, seed, vseed):
        x = _randn(torch.Generator().manual_seed(vseed), *shape)
        xf = x.float().requires_grad_()
        y = kernels.dropout(xf, rate, seed, training=True)
        keep = _keep_mask(seed, rate, shape, backend)
        want = torch.where(keep, x / (1.0 - rate), torch.zeros((), dtype=F64))
        _close(y, want, "y", atol=1e-6, rtol=1e-6)
        assert torch.equal(y == 0, ~keep | (xf == 0))  # dropped exactly where the mask says
        y.backward(torch.ones_like(y))
        _close(xf.grad, torch.where(keep, 1.0 / (1.0 - rate), 0.0).to(F64), "dx", atol=1e-6, rtol=1e-6)
        assert torch.equal(kernels.dropout(xf.detach(), rate, seed, training=False), xf.detach())

    check()


# ---- softmax cross-entropy, both target kinds --------------------------------------------------------------------


def _xent_ref(z: torch.Tensor, t: torch.Tensor, ls: float, keep: torch.Tensor, reduction: str) -> torch.Tensor:
    c = z.shape[1]
    t = (1.0 - ls) * t + ls / c
    rows = -(t * torch.log_softmax(z, dim=1)).sum(1) * keep
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / keep.sum().clamp_min(1.0)


@pytest.mark.parametrize("kind", ["labels", "probabilities"])
def test_softmax_cross_entropy_matches_float64(backend, kind):
    @_settings(backend, triton_examples=8)
    @given(
        n=st.integers(1, 16),
        c=st.integers(2, 300),
        reduction=st.sampled_from(["mean", "sum", "none"]),
        ls=st.sampled_from([0.0, 0.1]),
        ignore=st.booleans(),
        scale=st.sampled_from([0.1, 3.0, 30.0]),
        seed=seeds,
    )
    def check(n, c, reduction, ls, ignore, scale, seed):
        gen = torch.Generator().manual_seed(seed)
        z = _randn(gen, n, c, scale=scale)
        keep = torch.ones(n, dtype=F64)
        ignore_index = None
        if kind == "labels":
            labels = torch.randint(0, c, (n,), generator=gen)
            if ignore:
                ignore_index = -100
                labels[torch.rand(n, generator=gen) < 0.3] = ignore_index
                keep = (labels != ignore_index).to(F64)
            t = torch.nn.functional.one_hot(labels.clamp_min(0), c).to(F64)
            target = labels
        else:
            t = torch.softmax(_randn(gen, n, c, scale=2.0), dim=1)
            target = t.float()
        zr = z.clone().requires_grad_()
        want = _xent_ref(zr, t, ls, keep, reduction)
        go = _randn(gen, *want.shape)
        (want * go).sum().backward()
        zf = z.float().requires_grad_()
        got = kernels.softmax_cross_entropy(
            zf, target, reduction=reduction, label_smoothing=ls, ignore_index=ignore_index
        )
        assert got.dtype == torch.float32 and got.shape == want.shape
        (got * go.float()).sum().backward()
        _close(got, want.detach(), "loss", atol=3e-5, rtol=3e-5)
        _close(zf.grad, zr.grad, "dlogits", atol=3e-5, rtol=3e-5)

    check()


# ---- softmax / log_softmax ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_matches_float64(backend, op):
    @_settings(backend, triton_examples=8)
    @given(
        shape=st.tuples(st.integers(1, 16), st.integers(1, 300)) | st.tuples(dims, st.integers(1, 6), dims),
        axis=st.sampled_from([-1, 0]),
        scale=st.sampled_from([0.1, 3.0, 50.0]),
        seed=seeds,
    )
    def check(shape, axis, scale, seed):
        gen = torch.Generator().manual_seed(seed)
        x = _randn(gen, *shape, scale=scale)
        xr = x.clone().requires_grad_()
        m = xr.amax(dim=axis, keepdim=True).detach()
        e = torch.exp(xr - m)
        s = e.sum(dim=axis, keepdim=True)
        want = e / s if op == "softmax" else (xr - m) - torch.log(s)
        go = _randn(gen, *shape)
        (want * go).sum().backward()
        xf = x.float().requires_grad_()
        got = getattr(kernels, op)(xf, axis=axis)
        (got * go.float()).sum().backward()
        _close(got, want.detach(), op)
        _close(xf.grad, xr.grad, "dx", atol=5e-5, rtol=5e-5)

    check()


# ---- binary cross-entropy ----------------------------------------------------------------------------------------


def test_binary_cross_entropy_matches_float64(backend):
    @_settings(backend, triton_examples=10)
    @given(
        shape=st.lists(st.integers(1, 24), min_size=1, max_size=3).map(tuple),
        reduction=st.sampled_from(["mean", "sum", "none"]),
        ls=st.sampled_from([0.0, 0.2]),
        hard=st.booleans(),
        scale=st.sampled_from([0.1, 3.0, 40.0]),
        seed=seeds,
    )
    def check(shape, reduction, ls, hard, scale, seed):
        gen = torch.Generator().manual_seed(seed)
        z = _randn(gen, *shape, scale=scale)
        t = torch.rand(*shape, generator=gen, dtype=F64)
        if hard:
            t = (t > 0.5).to(F64)
        zr = z.clone().requires_grad_()
        ts = t * (1.0 - ls) + 0.5 * ls
        # -t log(sigmoid z) - (1 - t) log(1 - sigmoid z), in the form that never overflows
        elem = zr.clamp_min(0.0) - zr * ts + torch.log1p(torch.exp(-zr.abs()))
        want = {"none": elem, "sum": elem.sum(), "mean": elem.mean()}[reduction]
        go = _randn(gen, *want.shape)
        (want * go).sum().backward()
        zf = z.float().requires_grad_()
        got = kernels.binary_cross_entropy(zf, t.float(), reduction=reduction, label_smoothing=ls)
        assert got.dtype == torch.float32 and got.shape == want.shape
        (got * go.float()).sum().backward()
        _close(got, want.detach(), "loss", atol=3e-5, rtol=3e-5)
        _close(zf.grad, zr.grad, "dlogits", atol=3e-5, rtol=3e-5)

    check()


# ---- layer norm --------------------------------------------------------------------------------------------------


def test_layer_norm_matches_float64(backend):
    @_settings(backend, triton_examples=10)
    @given(
        lead=st.lists(st.integers(1, 12), min_size=1, max_size=2).map(tuple),
        n=dims,
        affine=st.sampled_from(["both", "gamma", "none"]),
        epsilon=st.sampled_from([1e-3, 1e-5]),
        shift=st.sampled_from([0.0, 20.0]),
        seed=seeds,
    )
    def check(lead, n, affine, epsilon, shift, seed):
        gen = torch.Generator().manual_seed(seed)
        x = _randn(gen, *lead, n, scale=3.0) + shift
        g = _randn(gen, n) if affine != "none" else None
        b = _randn(gen, n) if affine == "both" else None
        go = _randn(gen, *lead, n)
        xr = x.clone().requires_grad_()
        gr = g.clone().requires_grad_() if g is not None else None
        br = b.clone().requires_grad_() if b is not None else None
        mean = xr.mean(-1, keepdim=True)
        var = ((xr - mean) ** 2).mean(-1, keepdim=True)
        want = (xr - mean) / torch.sqrt(var + epsilon)
        if gr is not None:
            want = want * gr
        if br is not None:
            want = want + br
        (want * go).sum().backward()
        xf = x.float().requires_grad_()
        gf = g.float().requires_grad_() if g is not None else None
        bf = b.float().requires_grad_() if b is not None else None
        got = kernels.layer_norm(xf, gf, bf, epsilon=epsilon)
        (got * go.float()).sum().backward()
        # the fp32 input itself is x rounded: |x| up to ~30 carries ~2e-6 absolute error into xhat
        tol = 1e-4 if shift else 3e-5
        _close(got, want.detach(), "y", atol=tol, rtol=tol)
        _close(xf.grad, xr.grad, "dx", atol=tol, rtol=tol)
        for name, a, r in (("dgamma", gf, gr), ("dbeta", bf, br)):
            if a is not None:
                _close(a.grad, r.grad, name, atol=tol, rtol=tol)

    check()


# ---- optimizer updates over flat buffers -------------------------------------------------------------------------


def _update_ref(rule, p, g, s, *, lr, step, h1, h2, eps, wd, nesterov, centered, amsgrad):
    """Keras' update rules in float64 (p, g, and the state list ``s`` updated in place)."""
    if wd:
        p -= p * wd * lr
    if rule == "sgd":
        if h1:
            s[0] = h1 * s[0] - lr * g
            p += h1 * s[0] - lr * g if nesterov else s[0]
        else:
            p -= lr * g
    elif rule == "adam":
        lr_t = lr * math.sqrt(1.0 - h2**step) / (1.0 - h1**step)
        s[0] = s[0] + (g - s[0]) * (1.0 - h1)
        s[1] = s[1] + (g * g - s[1]) * (1.0 - h2)
        v = s[1]
        if amsgrad:
            s[2] = torch.maximum(s[2], s[1])
            v = s[2]
        p -= s[0] * lr_t / (torch.sqrt(v) + eps)
    else:  # rmsprop: h1 = rho, h2 = momentum
        s[0] = h1 * s[0] + (1.0 - h1) * g * g
        if centered:
            s[2] = h1 * s[2] + (1.0 - h1) * g
            den = s[0] - s[2] * s[2] + eps
        else:
            den = s[0] + eps
        inc = lr * g / torch.sqrt(den)
        if h2 > 0:
            s[1] = h2 * s[1] + inc
            p -= s[1]
        else:
            p -= inc


@pytest.mark.parametrize("rule", ["sgd", "adam", "rmsprop"])
def test_optimizer_update_matches_float64(backend, rule):
    @_settings(backend, triton_examples=8)
    @given(
        n=st.integers(1, 3000),
        steps=st.integers(1, 3),
        lr=st.sampled_from([1e-3, 0.1]),
        first_step=st.integers(1, 50),
        variant=st.booleans(),
        extra=st.booleans(),
        wd=st.sampled_from([None, 0.01]),
        seed=seeds,
    )
    def check(n, steps, lr, first_step, variant, extra, wd, seed):
        gen = torch.Generator().manual_seed(seed)
        p = _randn(gen, n)
        states = [_randn(gen, n, scale=0.1), _randn(gen, n).abs() * 0.01, _randn(gen, n).abs() * 0.01]
        kw = dict(lr=lr, eps=1e-7, wd=wd, nesterov=False, centered=False, amsgrad=False)
        if rule == "sgd":
            kw.update(h1=0.9 if variant else 0.0, h2=0.0, nesterov=extra)
        elif rule == "adam":
            kw.update(h1=0.9, h2=0.999, amsgrad=extra)
            states[2] = states[1] + _randn(gen, n).abs() * 0.01 * variant  # v_hat >= v
        else:
            kw.update(h1=0.9, h2=0.9 if variant else 0.0, centered=extra)
            states[0] = states[0].abs() + states[2] ** 2  # a consistent (centered) history: v >= a**2 >= 0
        pf, sf = p.float(), [t.float() for t in states]
        p, states = pf.double(), [t.double() for t in sf]  # the same start, exactly
        for i in range(steps):
            g = _randn(gen, n)
            step = first_step + i
            _update_ref(rule, p, g, states, step=step, **kw)
            args = dict(lr=lr, step=step, h1=kw["h1"], h2=kw["h2"], epsilon=kw["eps"], weight_decay=wd)
            args.update(nesterov=kw["nesterov"], centered=kw["centered"], amsgrad=kw["amsgrad"])
            kernels.optimizer_update_(rule, pf, g.float(), *sf, **args)
        _close(pf, p, "param", atol=2e-5, rtol=2e-5)
        for i, (a, r) in enumerate(zip(sf, states, strict=True)):
            _close(a, r, f"state {i}", atol=2e-5, rtol=2e-5)

    check()
