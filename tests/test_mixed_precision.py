"""Dtype policies (Keras 3 names) and fp32 master weights under bf16/fp16 compute."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import assert_close_verbose
from tritonnn import kernels, mixed_precision, optimizers


@pytest.fixture(autouse=True)
def _restore_policy():
    before = mixed_precision.global_policy()
    yield
    mixed_precision.set_global_policy(before)


@pytest.mark.parametrize(
    "name,variable,compute",
    [
        ("float32", "float32", "float32"),
        ("mixed_bfloat16", "float32", "bfloat16"),
        ("mixed_float16", "float32", "float16"),
        ("bfloat16", "bfloat16", "bfloat16"),
        ("float16", "float16", "float16"),
    ],
)
def test_policy_dtypes(name, variable, compute):
    p = mixed_precision.Policy(name)
    assert (p.name, p.variable_dtype, p.compute_dtype) == (name, variable, compute)
    assert p.torch_compute_dtype == getattr(torch, compute) and p.torch_variable_dtype == getattr(torch, variable)
    assert mixed_precision.Policy.from_config(p.get_config()) == p


def test_global_policy_set_and_reset():
    assert mixed_precision.global_policy().name == "float32"
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert mixed_precision.global_policy().compute_dtype == "bfloat16"
    mixed_precision.set_global_policy(mixed_precision.Policy("mixed_float16"))
    assert mixed_precision.global_policy().name == "mixed_float16"
    mixed_precision.set_global_policy(None)
    assert mixed_precision.global_policy().name == "float32"


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'mixed_bf16'.*'mixed_bfloat16'"):
        mixed_precision.set_global_policy("mixed_bf16")
    with pytest.raises(ValueError, match="Received: name=3"):
        mixed_precision.Policy(3)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_optimizer_updates_fp32_masters_under_mixed_compute(backend, device, policy):
    """Layers cast fp32 variables to the compute dtype; autograd brings fp32 gradients into the flat buffer."""
    mixed_precision.set_global_policy(policy)
    pol = mixed_precision.global_policy()
    gen = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter((torch.randn(33, 10, generator=gen) * 0.1).to(device))
    b = torch.nn.Parameter(torch.zeros(10, device=device))
    x = torch.randn(16, 33, generator=gen).to(device)
    y = torch.randint(0, 10, (16,), generator=gen).to(device)
    opt = optimizers.Adam(learning_rate=0.01)
    opt.build([w, b])
    w0 = w.detach().double().cpu().clone()
    seen_grads = []
    for _ in range(3):
        opt.zero_grad()
        # A Dense layer under the policy: cast the fp32 variables to the compute dtype in the forward.
        logits = x.to(pol.torch_compute_dtype) @ w.to(pol.torch_compute_dtype) + b.to(pol.torch_compute_dtype)
        loss = kernels.softmax_cross_entropy(logits, y)
        loss.backward()
        assert w.grad.dtype == torch.float32 and w.grad.data_ptr() == opt.flat_grad.data_ptr()
        seen_grads.append(w.grad.detach().double().cpu().clone())
        opt.step()
    assert w.dtype == torch.float32 and w.data_ptr() == opt.flat_param.data_ptr()
    assert opt.flat_param.dtype == torch.float32 and all(s.dtype == torch.float32 for s in opt.variables)
    # The update itself ran in fp32: replaying Keras' Adam in float64 on the same gradients lands within fp32
    # rounding (steps of ~1e-2 on weights of ~0.1, which a bf16/fp16 master, spacing ~5e-4, would visibly round).
    m = torch.zeros_like(w0)
    v = torch.zeros_like(w0)
    ref = w0.clone()
    for t, g in enumerate(seen_grads, start=1):
        m += (g - m) * 0.1
        v += (g * g - v) * 0.001
        ref -= m * (0.01 * (1 - 0.999**t) ** 0.5 / (1 - 0.9**t)) / (v.sqrt() + 1e-7)
    assert (ref - w0).abs().max() > 1e-3
    assert_close_verbose(w, ref, atol=1e-6, rtol=1e-6, name="fp32 master after 3 steps")


def test_low_precision_variables_are_refused_with_a_hint():
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    with pytest.raises(ValueError, match="float32 master weights"):
        optimizers.SGD().build([p])


def test_compute_dtype_logits_give_fp32_loss(backend, device):
    """bf16 logits (a mixed policy's Dense output): the loss comes back fp32, computed in fp32 inside."""
    logits = (torch.randn(4, 6) * 3).to(torch.bfloat16)
    y = torch.tensor([0, 5, 2, 1])
    z = logits.double()
    ref = (z.logsumexp(-1) - z[torch.arange(4), y]).mean()
    got = kernels.softmax_cross_entropy(logits.to(device), y.to(device))
    assert got.dtype == torch.float32
    assert_close_verbose(got, ref, atol=1e-5, rtol=1e-5, name="loss from bf16 logits")
