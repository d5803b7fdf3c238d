"""Bucketed gradient all-reduce: the flat gradient buffers cut into ~25 MB pieces, each all-reduced as soon as the
backward pass has produced it (overlapping the rest of the backward), as PyTorch's DDP does."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

# Gradient buffers larger than this (all of them together) are all-reduced in buckets of about this size, each
# launched (asynchronously) as soon as the backward pass has produced all of its gradients; smaller ones in one
# all-reduce per buffer after the backward.
BUCKET_BYTES = 25 * 2**20


class GradientBuckets:
    """The flat gradient buffers cut into contiguous buckets of about ``BUCKET_BYTES``, all-reduced asynchronously
    while the backward pass runs.

    ``parts`` are the optimizers that own the flat buffers: one, or a ``MultiOptimizer``'s sub-optimizers, one
    buffer each; ``params`` is every parameter in the model's order (the optimizer's ``params``). Each buffer is
    cut on its own (a bucket never spans two buffers): from its end, where its last parameters lie, the padding
    going with its last bucket. The buckets of all the buffers are then put in one order, by the last of their
    parameters in ``params``, latest first: the backward pass produces the last layers' gradients first, whatever
    buffer they are in. A post-accumulate-grad hook on each parameter counts down its bucket; buckets are launched
    strictly in that order 0, 1, 2, ... as soon as each is complete, and whatever is left is launched when the
    optimizer steps. Every rank therefore issues the same all-reduces in the same order (collectives pair up by
    their order), also a rank whose slice was empty (it launches them all at the step), and also when the
    backward reaches the buffers' parameters interleaved.
    """

    def __init__(self, dp: Any, parts: list[Any], params: list[torch.Tensor]) -> None:
        self.dp = dp
        position = {id(p): i for i, p in enumerate(params)}
        cap = max(1, BUCKET_BYTES // 4)
        self.views: dict[int, torch.Tensor] = {}
        found: list[tuple[int, int, int, int, list[int]]] = []  # (last position, buffer, start, stop, members)
        for b, part in enumerate(parts):
            own = list(part.params)
            self.views.update({id(p): v for p, v in zip(own, part._grad_views, strict=True)})
            offsets, offset = [], 0
            for p in own:
                offsets.append(offset)
                offset += p.numel()
            stop, members = part.flat_grad.numel(), []  # the padding at the end goes with the buffer's last bucket
            for i in reversed(range(len(own))):
                members.append(id(own[i]))
                if stop - offsets[i] >= cap or i == 0:
                    found.append((max(position[m] for m in members), b, offsets[i], stop, members))
                    stop, members = offsets[i], []
        found.sort(key=lambda bucket: -bucket[0])
        grads = [part.flat_grad for part in parts]
        self.ranges: list[tuple[int, int, int]] = [(b, start, stop) for _, b, start, stop, _ in found]  # buffer, slice
        self._views = [grads[b][start:stop] for b, start, stop in self.ranges]
        self.members: list[int] = [len(members) for *_, members in found]  # parameters per bucket
        self.bucket_of: dict[int, int] = {m: k for k, (*_, members) in enumerate(found) for m in members}
        self.hooks = [p.register_post_accumulate_grad_hook(self._ready) for part in parts for p in part.params]
        self.launched_early = 0  # buckets launched during a backward pass (for the tests)
        self.begin_step()

    def begin_step(self) -> None:
        self.remaining = list(self.members)
        self.next = 0
        self.handles: list[Any] = []

    def _ready(self, p: torch.Tensor) -> None:
        view = self.views[id(p)]
        if p.grad is not view:  # replaced rather than accumulated in place: back into the flat buffer
            view.copy_(p.grad) if p.grad is not None else view.zero_()
            p.grad = view
        b = self.bucket_of[id(p)]
        if b < self.next:
            raise RuntimeError(
                "Under DataParallel a gradient changed after its bucket was all-reduced: more than one backward "
                "pass per train step is not supported with bucketed gradients."
            )
        self.remaining[b] -= 1
        while self.next < len(self.ranges) and self.remaining[self.next] == 0:
            self._launch()
            self.launched_early += 1

    def _launch(self) -> None:
        view = self._views[self.next]
        if self.dp.batch_weight != 1.0:
            view.mul_(self.dp.batch_weight)
        self.handles.append(dist.all_reduce(view, async_op=True))
        self.next += 1

    def finish(self) -> None:
        while self.next < len(self.ranges):
            self._launch()
        for handle in self.handles:
            handle.wait()
        self.handles = []
