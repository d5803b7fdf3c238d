import math

import pytest
import torch

from tests.helpers import assert_close_verbose
from tritonnn import kernels


def adam_float64(p, g_seq, lr, b1, b2, eps):
    """Keras' Adam, in float64, written from the Keras docs independently of kernels/optim.py."""
    p = p.double().clone()
    m = torch.zeros_like(p)
    v = torch.zeros_like(p)
    for t, g in enumerate(g_seq, start=1):
        g = g.double()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        p = p - alpha * m / (v.sqrt() + eps)
    return p, m, v


@pytest.mark.parametrize("n", [1, 1000, 3001])
def test_adam_matches_float64_keras_rule(backend, device, n):
    gen = torch.Generator().manual_seed(n)
    p0 = torch.randn(n, generator=gen)
    grads = [torch.randn(n, generator=gen) for _ in range(5)]
    p, m, v = p0.clone().to(device), torch.zeros(n, device=device), torch.zeros(n, device=device)
    for t, g in enumerate(grads, start=1):
        kernels.adam_(p, g.to(device), m, v, step=t, lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    rp, rm, rv = adam_float64(p0, grads, 0.01, 0.9, 0.999, 1e-7)
    assert_close_verbose(p, rp, atol=1e-6, rtol=1e-5, name="param")
    assert_close_verbose(m, rm, atol=1e-6, rtol=1e-5, name="m")
    assert_close_verbose(v, rv, atol=1e-6, rtol=1e-5, name="v")


def test_adam_rejects_non_flat_buffers(backend, device):
    p = torch.zeros(4, 4, device=device)
    with pytest.raises(ValueError, match="contiguous 1-D float32"):
        kernels.adam_(p, p, p, p, step=1, lr=0.1)
