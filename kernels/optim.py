"""Optimizer updates over flat fp32 buffers: one launch updates every parameter of a model.

Adam reads param, grad, m, v and writes param, m, v: 7 x 4 bytes per parameter, nothing more.
"""

from __future__ import annotations

import math

import torch

from . import _backend
from ._aot import AotCase, register_aot
from ._triton import tl, triton


@torch.no_grad()
def adam_reference_(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    *,
    step: int,
    lr: float,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
) -> None:
    """Keras 3's Adam, in place: epsilon is added to ``sqrt(v)`` after the bias correction is folded into lr."""
    lr_t = lr * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
    m.add_(grad - m, alpha=1.0 - beta_1)
    v.add_(grad * grad - v, alpha=1.0 - beta_2)
    param.sub_(lr_t * m / (v.sqrt() + epsilon))


@triton.jit
def _adam_fwd_kernel(
    param_ptr,  # *fp32 [n], updated in place
    grad_ptr,  # *fp32 [n]
    m_ptr,  # *fp32 [n], first moment, updated in place
    v_ptr,  # *fp32 [n], second moment, updated in place
    n,  # number of elements
    lr_t,  # fp32: lr * sqrt(1 - beta_2**step) / (1 - beta_1**step), folded on the host
    beta_1,
    beta_2,
    epsilon,
    BLOCK: tl.constexpr,
):
    # One program updates BLOCK consecutive parameters; the tail block is masked.
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    p = tl.load(param_ptr + offs, mask=mask)
    g = tl.load(grad_ptr + offs, mask=mask)
    m = tl.load(m_ptr + offs, mask=mask)
    v = tl.load(v_ptr + offs, mask=mask)
    # Keras' form of the moment updates: m += (g - m) * (1 - beta_1).
    m = m + (g - m) * (1.0 - beta_1)
    v = v + (g * g - v) * (1.0 - beta_2)
    p = p - lr_t * m / (tl.sqrt(v) + epsilon)
    tl.store(param_ptr + offs, p, mask=mask)
    tl.store(m_ptr + offs, m, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)


_ADAM_BLOCK = 1024

register_aot(
    AotCase(
        name="adam_fwd[fp32]",
        kernel=_adam_fwd_kernel,
        signature={
            "param_ptr": "*fp32",
            "grad_ptr": "*fp32",
            "m_ptr": "*fp32",
            "v_ptr": "*fp32",
            "n": "i64",
            "lr_t": "fp32",
            "beta_1": "fp32",
            "beta_2": "fp32",
            "epsilon": "fp32",
            "BLOCK": "constexpr",
        },
        constexprs={"BLOCK": _ADAM_BLOCK},
        num_warps=4,
        num_stages=1,
    )
)


def _check_flat(**buffers: torch.Tensor) -> None:
    ref = buffers["param"]
    for name, t in buffers.items():
        if t.dtype != torch.float32 or t.dim() != 1 or not t.is_contiguous():
            raise ValueError(f"adam_: {name} must be a contiguous 1-D float32 buffer. Received: {t.dtype} {t.shape}")
        if t.shape != ref.shape or t.device != ref.device:
            raise ValueError(f"adam_: {name} has shape {tuple(t.shape)} on {t.device}, param {tuple(ref.shape)}")


def adam_(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    *,
    step: int,
    lr: float,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
) -> None:
    """Adam over flat fp32 buffers, in place (Keras' update rule)."""
    _check_flat(param=param, grad=grad, m=m, v=v)
    if not _backend.use_triton(param):
        return adam_reference_(param, grad, m, v, step=step, lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    n = param.numel()
    lr_t = lr * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
    grid = (triton.cdiv(n, _ADAM_BLOCK),)
    _adam_fwd_kernel[grid](param, grad, m, v, n, lr_t, beta_1, beta_2, epsilon, BLOCK=_ADAM_BLOCK)
