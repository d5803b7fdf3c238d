"""Softmax cross-entropy, softmax and log-softmax."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def softmax_cross_entropy_reference(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Per row ``logsumexp(z) - sum(t * z)``; ``t`` one-hot from indices or given as probabilities."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    c = logits.shape[-1]
    if target.dtype.is_floating_point:
        t = target.float()
        keep = torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
    else:
        keep = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
        t = torch.nn.functional.one_hot(torch.where(keep, target, 0).long(), c).float()
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / c
    loss = -(t * logp).sum(-1) * keep
    if reduction == "none":
        return loss.to(logits.dtype)
    if reduction == "sum":
        return loss.sum().to(logits.dtype)
    return (loss.sum() / keep.sum().clamp_min(1)).to(logits.dtype)


def softmax_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    from_logits: bool = True,
) -> torch.Tensor:
    """Cross-entropy of ``softmax(logits)`` (or of probabilities, ``from_logits=False``) against ``target``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"Expected reduction in {REDUCTIONS}. Received: reduction={reduction!r}")
    if logits.dim() != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (N, C). Received: {tuple(logits.shape)}")
    n, c = logits.shape
    if target.dtype.is_floating_point:
        if tuple(target.shape) != (n, c):
            raise ValueError(
                f"softmax_cross_entropy: probability targets must have the logits' shape {(n, c)}. "
                f"Received: target.shape={tuple(target.shape)}"
            )
    else:
        if tuple(target.shape) != (n,):
            raise ValueError(
                f"softmax_cross_entropy: integer targets must have shape ({n},). Received: {tuple(target.shape)}"
            )
        valid = target if ignore_index is None else target[target != ignore_index]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= c):
            raise ValueError(
                f"softmax_cross_entropy: labels must lie in [0, {c}). Received labels from "
                f"{int(valid.min())} to {int(valid.max())}"
            )
    if not from_logits:
        logits = torch.log(logits.clamp_min(torch.finfo(logits.dtype).tiny))
    return softmax_cross_entropy_reference(
        logits, target, reduction=reduction, label_smoothing=label_smoothing, ignore_index=ignore_index
    )


def softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    return torch.softmax(x, dim=axis)


def log_softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    return torch.log_softmax(x, dim=axis)
