"""``keras.utils.PyDataset`` (and its Keras 3 alias ``keras.utils.Sequence``): a dataset of batches by index.

``fit``, ``evaluate`` and ``predict`` take one as ``x`` (``tritonnn/trainers/data.py``'s ``IterableSource`` reads
it): each step draws ``dataset[i]``, a batch ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, in index
order (``fit(shuffle=True)``, the default, draws each epoch's indices in a random order, as Keras does), and the
dataset's ``on_epoch_begin()`` / ``on_epoch_end()`` are called around each pass, at the points Keras calls them.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from typing import Any


class PyDataset:
    """Base class for a dataset of batches written in Python: implement ``__getitem__(index)`` (the batch at
    ``index``) and ``__len__()`` (the number of batches; or the ``num_batches`` property, ``None`` for an endless
    dataset), and optionally ``on_epoch_end()`` (called at the end of every epoch, e.g. to reshuffle) and
    ``on_epoch_begin()``.

    Subclasses should call ``super().__init__(**kwargs)``. ``workers``, ``use_multiprocessing`` and
    ``max_queue_size`` are accepted and kept, as Keras' are, but tritonnn always draws the batches in the training
    process, one after the other, in order (Keras runs ``workers > 1``, or ``use_multiprocessing``, in a thread or
    process pool): a slow ``__getitem__`` is not overlapped with training. Give a ``torch.utils.data.DataLoader``
    with ``num_workers`` for parallel loading.

    Args:
        workers: number of workers to use in multithreading or multiprocessing (accepted; see above).
        use_multiprocessing: whether to use Python multiprocessing for parallelism (accepted; see above).
        max_queue_size: maximum number of batches to keep in the queue when iterating over the dataset in a
            multithreaded or multiprocessed setting (accepted; see above).
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10) -> None:
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self) -> None:
        missing = False
        for attr, default in (("_workers", 1), ("_use_multiprocessing", False), ("_max_queue_size", 10)):
            if not hasattr(self, attr):
                setattr(self, attr, default)
                missing = True
        if missing:
            warnings.warn(
                "Your `PyDataset` class should call `super().__init__(**kwargs)` in its constructor. `**kwargs` can "
                "include `workers`, `use_multiprocessing`, `max_queue_size`. Do not pass these arguments to `fit()`, "
                "as they will be ignored.",
                stacklevel=2,
            )

    @property
    def workers(self) -> int:
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = value

    @property
    def max_queue_size(self) -> int:
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = value

    def __getitem__(self, index: int) -> Any:
        """The batch at position ``index``."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        """The batches in index order (endlessly when ``num_batches`` is None or not implemented)."""
        try:
            n = self.num_batches
        except NotImplementedError:
            n = None
        for index in itertools.count() if n is None else range(n):
            yield self[index]

    @property
    def num_batches(self) -> int | None:
        """The number of batches, or None for an endless dataset: ``len(self)`` where ``__len__`` is defined."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(
            "You need to implement the `num_batches` property:\n\n@property\ndef num_batches(self):\n  return ..."
        )

    def on_epoch_begin(self) -> None:
        """Called at the beginning of every epoch."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch."""


Sequence = PyDataset

__all__ = ["PyDataset", "Sequence"]
