"""Each rank's share of the global batches: array and iterable sources sharded for a data-parallel run, built
on the trainer's sources (``tritonnn.trainers.data``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..layers.symbolic import flatten, map_structure
from ..trainers.data import ArraySource, IterableSource, gather, index, num_samples


class ShardedArraySource:
    """This rank's contiguous slice of each global batch of an array source (the same order on every rank).

    Training yields ``(None, None, None)`` for an empty slice (the rank still joins the step's all-reduce);
    evaluation skips it. Not an ``ArraySource`` (whose batches all hold samples), but like one its labels are
    range-checked once (``label_bounds``: the whole arrays' ranges, which bound every slice) and its steps may be
    captured (``slices_arrays``): a rank's full-batch share is the same every step, and a step with another share
    or an empty slice differs in its signature (``DataParallel.step_key``) and runs eagerly.
    """

    slices_arrays = True

    def __init__(self, source: ArraySource, dp: Any, training: bool):
        self.x, self.y, self.sw, self.n = source.x, source.y, source.sw, source.n
        self.batch_size, self.shuffle, self.steps = source.batch_size, source.shuffle, source.steps
        self.target = getattr(source, "target", None)  # the model's device when the arrays stay on the host
        self.dp, self.training = dp, training
        self._source = source
        self.global_steps = self.steps  # global batches in an epoch, whether or not this rank's slice is empty

    def label_bounds(self) -> list[tuple[int, int] | None] | None:
        return self._source.label_bounds()

    def _slice(self, count: int) -> tuple[int, int]:
        base, extra = divmod(count, self.dp.world_size)
        rank = self.dp.rank
        lo = rank * base + min(rank, extra)
        return lo, lo + base + (1 if rank < extra else 0)

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[tuple[Any, Any, Any]]:
        device = flatten(self.x)[0].device
        order = torch.randperm(self.n, generator=generator).to(device) if self.shuffle else None
        for step in range(self.steps):
            start = (step * self.batch_size) % self.n
            stop = min(start + self.batch_size, self.n)
            lo, hi = self._slice(stop - start)
            self.dp.batch_weight = (hi - lo) / (stop - start)
            if hi == lo:
                if self.training:
                    yield None, None, None
                continue
            idx = slice(start + lo, start + hi) if order is None else order[start + lo : start + hi]
            yield gather(self, idx, device)


class ShardedIterableSource:
    """This rank's contiguous slice of each global batch that a generator or DataLoader yields.

    Every process iterates the same data (the same batches in the same order) and keeps its slice, so a batch of
    any size is split as an array batch is. Before each step the ranks agree, with one small all-gather on the host,
    that every one of them has a batch of the same size (an iterator that runs out on one process alone, or yields
    other sizes, raises the same error everywhere instead of leaving the others waiting).
    """

    def __init__(self, source: IterableSource, dp: Any, model: Any, training: bool):
        self.base, self.dp, self.model, self.training = source, dp, model, training
        self.steps = source.steps
        self.global_steps = 0  # global batches of the last epoch, counted as they come

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[tuple[Any, Any, Any]]:
        dp = self.dp
        batches = self.base.epoch(generator)
        mine = torch.zeros(2, dtype=torch.int64)
        every = [torch.zeros(2, dtype=torch.int64) for _ in range(dp.world_size)]
        self.global_steps = 0
        while True:
            batch = next(batches, None)
            mine[0], mine[1] = (0, 0) if batch is None else (1, num_samples(batch[0]))
            dp.all_gather(every, mine)
            seen = [(int(t[0]), int(t[1])) for t in every]
            if all(have == 0 for have, _ in seen):
                return
            if any(s != seen[0] for s in seen):
                raise ValueError(
                    "Under DataParallel every process must read the same batches (the global batches, which are "
                    f"split across the processes), but at step {self.global_steps} the processes had (has a batch, "
                    f"its size) = {seen}. Give each process the same generator or DataLoader (same data, same order)."
                )
            x, y, sw = batch
            if self.model._output_metrics is None and y is not None:
                resolve_metrics_from(self.model, x, y)
            count = seen[0][1]
            base, extra = divmod(count, dp.world_size)
            lo = dp.rank * base + min(dp.rank, extra)
            hi = lo + base + (1 if dp.rank < extra else 0)
            dp.batch_weight = (hi - lo) / count
            self.global_steps += 1
            if hi == lo:
                if self.training:
                    yield None, None, None
                continue
            idx = slice(lo, hi)
            yield index(x, idx), None if y is None else index(y, idx), None if sw is None else sw[idx]


def describe(source: Any) -> dict[str, Any]:
    """What must match across ranks: the sizes of an array source, the kind and length of an iterable one."""
    if isinstance(source, ShardedIterableSource):
        return {"kind": "iterable", "steps": source.steps}
    return {"kind": "arrays", "samples": source.n, "steps": source.steps, "batch_size": source.batch_size}


def resolve_metrics_from(model: Any, x: Any, y: Any) -> None:
    device = model.device
    x, y = (map_structure(lambda t: t[0:1].to(device), data) for data in (x, y))
    with torch.no_grad():
        preds = model._outputs_list(model(x, training=False))
    model._clear_losses()
    model._resolve_compiled(model._targets_list(y, len(preds)), preds)
