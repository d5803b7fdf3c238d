"""The fused MLP on the torch backend: the whole stack and its loss as one autograd node (issue #16's CPU path).

On a CPU a small MLP's step is bound by per-op overhead, not arithmetic: the seed model 64-32-10 at batch 32 spends
most of a hand-written PyTorch step in Python and in the autograd engine (one node per addmm, activation, cast and
loss op, each with its own bookkeeping). :class:`TorchMLPFunction` is the same computation as the per-layer torch
path (kernels/dense.py's ``torch_dense_fwd`` / ``torch_dense_bwd`` for each layer: addmm with the bias, the activation
in place, the torch path's dropout mask; ATen's log-softmax + NLL for the cross-entropy) run as one node: one Python
forward and one Python backward per step, the weight gradients added straight into the optimizer's flat buffer
(kernels/flat_grad.py), nothing else in the engine. Measured on the 2-core EPYC (torch 2.13, bench/train.py seed
fp32): see bench/RESULTS.md.

What it computes, per layer ``l`` (the same ops as the per-layer path, so the same values up to the order of a few
fp32 additions): ``h_{l+1} = dropout_l(act_l(h_l @ W_l + b_l))``; the loss: ``softmax_cross_entropy`` (integer
labels, the mean over rows: ``aten.nll_loss_forward`` of ``log_softmax``, and in the backward their own ATen
backward ops, those ``F.cross_entropy`` runs) or ``mean_squared_error`` (the mean over all elements, ``2 (h - t) /
numel`` in the backward); in fp32 for 16-bit inputs, as the per-layer path and the Triton kernels compute. Unlike
the per-layer path, the logits' gradient stays fp32 under bfloat16 (the fused Triton kernels keep it in fp32 too).
:func:`kernels.fused_mlp` runs it for the torch backend's float32 and bfloat16 batches; :func:`fused_mlp_reference`
(the kernels.dense chain) stays the spec it is tested against.
"""

from __future__ import annotations

from typing import Any

import torch

from .activations import ACTIVATIONS
from .dense import torch_dense_bwd, torch_dense_fwd
from .flat_grad import flat_grad_target

_MEAN = 1  # ATen's reduction enum: Reduction::Mean
_NO_IGNORE = -100  # nll_loss's ignore_index default; the labels were range-checked ([0, C)), so none is ignored


def stack_forward(
    x: torch.Tensor, targets: torch.Tensor | None, spec: Any, params: list[torch.Tensor | None]
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """``(result, h, saved)``: the loss (or, without a fused loss, the output), the last layer's output, and what
    :func:`stack_backward` needs. No autograd graph is recorded by the ops here that the backward would need."""
    h = x
    keep: list[torch.Tensor] = []
    for i in range(spec.num_layers):
        keep.append(h)
        h, saved = torch_dense_fwd(h, params[2 * i], params[2 * i + 1], ACTIVATIONS[spec.activations[i]],
                              spec.rates[i], spec.seeds[i])  # fmt: skip
        keep.append(saved)
    if spec.loss is None:
        return h, h, keep
    z = h if h.dtype == torch.float32 else h.to(torch.float32)
    if spec.loss == "softmax_cross_entropy":
        if targets.dtype != torch.int64:  # int32 / uint8 labels: nll_loss takes int64 (a copy of the batch's labels)
            targets = targets.long()
        logp = torch.log_softmax(z, 1)
        loss, total_weight = torch.ops.aten.nll_loss_forward(logp, targets, None, _MEAN, _NO_IGNORE)
        keep += [logp, targets, total_weight]
    else:
        diff = z - targets.to(torch.float32)
        loss = diff.square().mean()
        keep.append(diff)
    return loss, h, keep


def stack_backward(
    spec: Any,
    params: list[torch.Tensor | None],
    keep: list[torch.Tensor],
    grad: torch.Tensor,
    need_dx: bool,
    need: list[bool],
    into: list[torch.Tensor | None],
) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """``(dx, grads)`` from :func:`stack_forward`'s ``keep`` and the result's gradient ``grad``: ``need[j]`` says
    whether ``params[j]`` needs its gradient; where ``into[j]`` is a tensor (a flat-gradient ``.grad``) the gradient
    is added into it and None returned for it."""
    n = spec.num_layers
    if spec.loss == "softmax_cross_entropy":
        logp, targets, total_weight = keep[2 * n :]
        dlogp = torch.ops.aten.nll_loss_backward(grad, logp, targets, None, _MEAN, _NO_IGNORE, total_weight)
        dy = torch.ops.aten._log_softmax_backward_data(dlogp, logp, 1, torch.float32)
    elif spec.loss == "mean_squared_error":
        diff = keep[2 * n]
        dy = diff * (grad * (2.0 / max(1, diff.numel())))
    else:
        dy = grad
    grads: list[torch.Tensor | None] = [None] * (2 * n)
    dx = None
    for i in reversed(range(n)):
        w, b = params[2 * i], params[2 * i + 1]
        need_w, need_b = need[2 * i], b is not None and need[2 * i + 1]
        w_into, b_into = into[2 * i], into[2 * i + 1]
        dx, dw, db = torch_dense_bwd(
            dy, keep[2 * i + 1], keep[2 * i], w, ACTIVATIONS[spec.activations[i]], spec.rates[i],
            i > 0 or need_dx, need_w and w_into is None, need_b, dw_into=w_into if need_w else None,
            db_into=b_into if need_b else None,
        )  # fmt: skip
        grads[2 * i], grads[2 * i + 1] = dw, db
        dy = dx
    return (dx if need_dx else None), grads


class TorchMLPFunction(torch.autograd.Function):
    """The stack (and its fused loss) on the torch backend: inputs ``(x, targets, spec, W_0, b_0, W_1, b_1, ...)``,
    ``spec`` a ``kernels.fused_mlp.MLPSpec``; outputs as :class:`kernels.fused_mlp.FusedMLPFunction`'s.

    Saved: each layer's input and what ``torch_dense_bwd`` needs of its output (relu: the output itself), the
    log-probabilities (cross-entropy) or the difference ``h - t`` (squared error). A parameter that is an
    optimizer-managed flat-gradient leaf gets its gradient added into its ``.grad`` by the backward (and None
    returned), as the per-layer torch backward does.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, targets: torch.Tensor | None, spec: Any, *params: torch.Tensor) -> Any:
        result, h, keep = stack_forward(x, targets, spec, list(params))
        ctx.spec, ctx.has_targets = spec, targets is not None
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*params, *keep)
        if spec.loss is not None and spec.return_logits:
            ctx.mark_non_differentiable(h)
            return result, h
        return result

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor | None, *_: Any) -> tuple:
        spec = ctx.spec
        n = spec.num_layers
        if grad is None:
            return (None,) * (3 + 2 * n)
        saved = ctx.saved_tensors
        params, keep = list(saved[: 2 * n]), list(saved[2 * n :])
        needs = ctx.needs_input_grad
        need = list(needs[3:])
        # ctx.next_functions: one entry per tensor input (x, the targets when given, the parameters present).
        into: list[torch.Tensor | None] = []
        index = 1 + ctx.has_targets
        for j, p in enumerate(params):
            into.append(flat_grad_target(ctx, index, p) if p is not None and need[j] else None)
            index += p is not None
        dx, grads = stack_backward(spec, params, keep, grad, needs[0], need, into)
        return (dx, None, None, *grads)
