"""Bucketed gradient all-reduce: the flat gradient buffer cut into ~25 MB pieces, each all-reduced as soon as the
backward pass has produced it (overlapping the rest of the backward), as PyTorch's DDP does."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

# Gradient buffers larger than this are all-reduced in buckets of about this size, each launched (asynchronously)
# as soon as the backward pass has produced all of its gradients; smaller ones in one all-reduce after the backward.
BUCKET_BYTES = 25 * 2**20


class GradientBuckets:
    """The flat gradient buffer cut into contiguous buckets of about ``BUCKET_BYTES``, all-reduced asynchronously
    while the backward pass runs.

    Bucket 0 holds the end of the buffer (the last layers, whose gradients the backward pass produces first). A
    post-accumulate-grad hook on each parameter counts down its bucket; buckets are launched strictly in order
    0, 1, 2, ... as soon as each is complete, and whatever is left is launched when the optimizer steps. Every
    rank therefore issues the same all-reduces in the same order, also a rank whose slice was empty (it launches
    them all at the step).
    """

    def __init__(self, dp: Any, opt: Any) -> None:
        self.dp, self.grad = dp, opt.flat_grad
        params = list(opt.params)
        base = getattr(opt, "inner_optimizer", opt)
        self.views = {id(p): v for p, v in zip(params, base._grad_views, strict=True)}
        offsets, offset = [], 0
        for p in params:
            offsets.append(offset)
            offset += p.numel()
        cap = max(1, BUCKET_BYTES // 4)
        self.ranges: list[tuple[int, int]] = []
        self.members: list[int] = []  # parameters per bucket
        self.bucket_of: dict[int, int] = {}
        stop, count = self.grad.numel(), 0  # the padding at the end goes with bucket 0
        for i in reversed(range(len(params))):
            self.bucket_of[id(params[i])] = len(self.ranges)
            count += 1
            if stop - offsets[i] >= cap or i == 0:
                self.ranges.append((offsets[i], stop))
                self.members.append(count)
                stop, count = offsets[i], 0
        self.hooks = [p.register_post_accumulate_grad_hook(self._ready) for p in params]
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
        start, stop = self.ranges[self.next]
        view = self.grad[start:stop]
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
