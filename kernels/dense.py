"""Dense: ``act(x @ kernel + bias)``."""

from __future__ import annotations

import torch

from .activations import activation_reference, canonical


def dense_reference(
    x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None = None, activation: str | None = None
) -> torch.Tensor:
    """Plain torch: the written-down spec and the CPU path."""
    z = torch.matmul(x, kernel)
    if bias is not None:
        z = z + bias
    return activation_reference(activation, z)


def _validate(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> None:
    if kernel.dim() != 2:
        raise ValueError(f"dense: kernel must be 2-D (in, out). Received: kernel.shape={tuple(kernel.shape)}")
    if x.dim() < 1 or x.shape[-1] != kernel.shape[0]:
        raise ValueError(
            f"dense: the last dimension of x must equal kernel.shape[0]={kernel.shape[0]}. "
            f"Received: x.shape={tuple(x.shape)}"
        )
    for name, t in (("kernel", kernel), ("bias", bias)):
        if t is None:
            continue
        if t.device != x.device:
            raise ValueError(f"dense: {name} is on {t.device} but x is on {x.device}")
        if t.dtype != x.dtype:
            raise ValueError(f"dense: {name} has dtype {t.dtype} but x has dtype {x.dtype}")
    if bias is not None and tuple(bias.shape) != (kernel.shape[1],):
        raise ValueError(f"dense: bias must have shape ({kernel.shape[1]},). Received: {tuple(bias.shape)}")


def dense(
    x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None = None, activation: str | None = None
) -> torch.Tensor:
    """``act(x @ kernel + bias)`` for ``x`` of shape ``(..., in)``, ``kernel`` ``(in, out)``, ``bias`` ``(out,)``."""
    activation = canonical(activation)
    _validate(x, kernel, bias)
    return dense_reference(x, kernel, bias, activation)
