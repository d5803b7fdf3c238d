"""Layer norm and batch norm against float64 formulas written here, on both backends."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import assert_close_verbose
from tritonnn import kernels


def _t(shape, dtype, device, seed=0, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale + shift).to(dtype).to(device)


def _layer_norm_f64(x, gamma, beta, axes, eps):
    """Independent float64 formula: sum-based moments, explicit broadcast of gamma/beta."""
    x = x.double()
    n = 1
    for a in axes:
        n *= x.shape[a]
    mean = x.sum(dim=axes, keepdim=True) / n
    var = ((x - mean) ** 2).sum(dim=axes, keepdim=True) / n
    y = (x - mean) / torch.sqrt(var + eps)
    shape = [x.shape[a] if a in axes else 1 for a in range(x.dim())]
    if gamma is not None:
        y = y * gamma.double().reshape(shape)
    if beta is not None:
        y = y + beta.double().reshape(shape)
    return y


# Tolerances: fp32 rows of up to a few hundred elements (sums in fp32), 16-bit outputs rounded once.
DTYPES = [(torch.float32, 2e-5, 2e-5), (torch.bfloat16, 2e-2, 2e-2), (torch.float16, 4e-3, 4e-3)]


# Every dtype on every shape with gamma/beta; without them once (the HAS_GAMMA/HAS_BETA=False kernel branches).
# (37, 91): more rows than the interpreter's 8 backward programs, so the last slab has dead rows; 91 and 129 are
# not powers of two, so the padded lanes are masked.
CASES = [(*d, shape, True) for d in DTYPES for shape in [(8, 64), (37, 91), (3, 5, 129)]]
CASES += [(*DTYPES[0], (37, 91), False)]


def _rms_norm_f64(x, scale, axes, eps):
    """Independent float64 formula: the root of the mean square, explicit broadcast of the scale."""
    x = x.double()
    n = 1
    for a in axes:
        n *= x.shape[a]
    y = x / torch.sqrt((x * x).sum(dim=axes, keepdim=True) / n + eps)
    if scale is not None:
        y = y * scale.double().reshape([x.shape[a] if a in axes else 1 for a in range(x.dim())])
    return y


@pytest.mark.parametrize("dtype, atol, rtol, shape, affine", CASES)
def test_rms_norm_forward_and_gradients(backend, device, dtype, atol, rtol, shape, affine):
    # The layer-norm kernels with RMS=True: no centring (the shift makes a mean far from 0 that must not be taken
    # out), no offset, and a backward without the mean(g) term.
    x = _t(shape, dtype, device, scale=3.0, shift=2.0).requires_grad_()
    n = shape[-1]
    scale = _t((n,), torch.float32, device, seed=1).requires_grad_() if affine else None
    y = kernels.rms_norm(x, scale, axis=-1, epsilon=1e-6)
    assert y.dtype == dtype and y.shape == x.shape
    ref_in = [t.detach().double().requires_grad_() for t in (x, scale) if t is not None]
    ref = _rms_norm_f64(ref_in[0], ref_in[1] if affine else None, (len(shape) - 1,), 1e-6)
    assert_close_verbose(y, ref, atol=atol, rtol=rtol, name="y")
    dy = _t(shape, dtype, device, seed=5)
    inputs = [t for t in (x, scale) if t is not None]
    grads = torch.autograd.grad(y, inputs, dy)
    ref_grads = torch.autograd.grad(ref, ref_in, dy.double())
    assert [g.dtype for g in grads] == [t.dtype for t in inputs]
    for name, g, r in zip(("dx", "dscale"), grads, ref_grads, strict=False):
        rows = x.numel() // n
        s = 1.0 if name == "dx" else max(rows / 8, 1.0)
        assert_close_verbose(g, r, atol=atol * s * 4, rtol=rtol * 4, name=name)


def test_rms_norm_over_several_axes_and_its_checks(backend, device):
    x = _t((4, 6, 5), torch.float32, device, shift=1.0)
    scale = _t((6, 5), torch.float32, device, seed=3)
    y = kernels.rms_norm(x, scale, axis=[1, 2], epsilon=1e-6)
    assert_close_verbose(y, _rms_norm_f64(x, scale, (1, 2), 1e-6), atol=2e-5, rtol=2e-5, name="y")
    middle = kernels.rms_norm(x, None, axis=1)  # not trailing: the torch path
    assert_close_verbose(middle, _rms_norm_f64(x, None, (1,), 1e-6), atol=2e-5, rtol=2e-5, name="y")
    with pytest.raises(ValueError, match=r"rms_norm: expected scale of shape \(5,\)"):
        kernels.rms_norm(x, torch.ones(4, device=device))
    with pytest.raises(ValueError, match="epsilon"):
        kernels.rms_norm(x, epsilon=-1.0)
    with pytest.raises(ValueError, match="rms_norm: expected x a floating-point tensor"):
        kernels.rms_norm(torch.ones(3, 4, dtype=torch.int64, device=device))


@pytest.mark.parametrize("dtype, atol, rtol, shape, affine", CASES)
def test_layer_norm_forward_and_gradients(backend, device, dtype, atol, rtol, shape, affine):
    x = _t(shape, dtype, device, scale=3.0, shift=2.0).requires_grad_()
    n = shape[-1]
    gamma = _t((n,), torch.float32, device, seed=1).requires_grad_() if affine else None
    beta = _t((n,), torch.float32, device, seed=2).requires_grad_() if affine else None
    y = kernels.layer_norm(x, gamma, beta, axis=-1, epsilon=1e-3)
    assert y.dtype == dtype and y.shape == x.shape
    ref_in = [t.detach().double().requires_grad_() for t in (x, gamma, beta) if t is not None]
    xr, gr, br = (ref_in + [None, None])[:3]
    ref = _layer_norm_f64(xr, gr, br, (len(shape) - 1,), 1e-3)
    assert_close_verbose(y, ref, atol=atol, rtol=rtol, name="y")
    dy = _t(shape, dtype, device, seed=5)
    inputs = [t for t in (x, gamma, beta) if t is not None]
    grads = torch.autograd.grad(y, inputs, dy)
    ref_grads = torch.autograd.grad(ref, ref_in, dy.double())
    assert [g.dtype for g in grads] == [t.dtype for t in inputs], "each gradient in its input's dtype"
    for name, g, r in zip(("dx", "dgamma", "dbeta"), grads, ref_grads, strict=False):
        # dgamma/dbeta sum over rows: the tolerance grows with the number of rows summed.
        rows = x.numel() // n
        scale = 1.0 if name == "dx" else max(rows / 8, 1.0)
        assert_close_verbose(g, r, atol=atol * scale * 4, rtol=rtol * 4, name=name)


def test_layer_norm_over_several_axes_and_a_middle_axis(backend, device):
    x = _t((4, 6, 10), torch.float32, device, scale=2.0)
    gamma, beta = _t((6, 10), torch.float32, device, seed=1), _t((6, 10), torch.float32, device, seed=2)
    y = kernels.layer_norm(x, gamma, beta, axis=(-2, -1), epsilon=1e-5)
    assert_close_verbose(y, _layer_norm_f64(x, gamma, beta, (1, 2), 1e-5), atol=2e-5, rtol=2e-5, name="trailing")
    g1, b1 = _t((6,), torch.float32, device, seed=3), _t((6,), torch.float32, device, seed=4)
    y = kernels.layer_norm(x, g1, b1, axis=1, epsilon=1e-3)
    assert_close_verbose(y, _layer_norm_f64(x, g1, b1, (1,), 1e-3), atol=2e-5, rtol=2e-5, name="middle")


def test_layer_norm_constant_row_is_beta(backend, device):
    """A constant row has zero variance: xhat = 0 exactly, so the output is beta (epsilon keeps it finite)."""
    x = torch.full((3, 33), 7.0, device=device)
    beta = torch.arange(33, dtype=torch.float32, device=device)
    y = kernels.layer_norm(x, torch.ones(33, device=device), beta)
    assert torch.equal(y, beta.expand(3, 33))


def test_layer_norm_past_the_register_budget_takes_the_torch_path(backend, device):
    from tritonnn.kernels.norm import _MAX_TRITON_N

    x = _t((2, _MAX_TRITON_N + 3), torch.float32, device, scale=2.0)
    y = kernels.layer_norm(x, None, None)
    assert_close_verbose(y, _layer_norm_f64(x, None, None, (1,), 1e-3), atol=2e-5, rtol=2e-5, name="y")


def test_layer_norm_bad_arguments(backend, device):
    x = torch.ones(2, 4, device=device)
    with pytest.raises(ValueError, match="Received: axis=2"):
        kernels.layer_norm(x, axis=2)
    with pytest.raises(ValueError, match="Received: gamma.shape=\\(5,\\)"):
        kernels.layer_norm(x, torch.ones(5, device=device))
    with pytest.raises(ValueError, match="Received: epsilon=-1"):
        kernels.layer_norm(x, epsilon=-1)


def _batch_norm_f64(x, gamma, beta, mean, var, eps):
    return (x.double() - mean.double()) / torch.sqrt(var.double() + eps) * gamma.double() + beta.double()


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
def test_batch_norm_training_uses_batch_statistics_and_updates_moving_ones(device, dtype, atol, rtol):
    x = _t((16, 5), dtype, device, scale=2.0, shift=1.0)
    gamma, beta = _t((5,), torch.float32, device, seed=1), _t((5,), torch.float32, device, seed=2)
    moving_mean = torch.zeros(5, device=device)
    moving_var = torch.ones(5, device=device)
    y = kernels.batch_norm(x, gamma, beta, moving_mean, moving_var, momentum=0.9, epsilon=1e-3, training=True)
    xd = x.double()
    mu = xd.mean(0)
    var_biased = ((xd - mu) ** 2).sum(0) / xd.shape[0]
    assert_close_verbose(y, _batch_norm_f64(x, gamma, beta, mu, var_biased, 1e-3), atol=atol, rtol=rtol, name="y")
    assert_close_verbose(moving_mean, 0.1 * mu, atol=1e-6, rtol=1e-5, name="moving_mean")
    assert_close_verbose(moving_var, 0.9 + 0.1 * var_biased, atol=1e-6, rtol=1e-5, name="moving_variance")


def test_batch_norm_inference_uses_moving_statistics_on_channels_first(device):
    x = _t((4, 3, 7), torch.float32, device)
    gamma, beta = _t((3,), torch.float32, device, seed=1), _t((3,), torch.float32, device, seed=2)
    mm, mv = _t((3,), torch.float32, device, seed=3), _t((3,), torch.float32, device, seed=4).abs() + 0.5
    before = (mm.clone(), mv.clone())
    y = kernels.batch_norm(x, gamma, beta, mm, mv, axis=1, epsilon=1e-3, training=False)
    ref = _batch_norm_f64(x, gamma.view(3, 1), beta.view(3, 1), mm.view(3, 1), mv.view(3, 1), 1e-3)
    assert_close_verbose(y, ref, atol=1e-5, rtol=1e-5, name="y")
    assert torch.equal(mm, before[0]) and torch.equal(mv, before[1]), "inference must not move the statistics"
