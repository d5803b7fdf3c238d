"""The data side of training: the arrays, tensors, generators and DataLoaders that fit/evaluate/predict read.

An *array source* (``ArraySource``) holds whole arrays as tensors (on the model's device when they fit, else pinned
on the host) and gathers each batch by index; an *iterable source* (``IterableSource``) draws batches from a
generator or a DataLoader (or by index from a ``PyDataset``) and moves each to the device as it comes. Both yield
``(x, y, sample_weight)`` per step.
The helpers here (``to_tensor``, ``num_samples``, ``index``, ``gather``...) are public inside the package: the
trainer and the data-parallel sharded sources (``tritonnn.distribution.sharded_data``) are built on them.
"""

from __future__ import annotations

import collections.abc
import itertools
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .. import config, losses
from ..layers.symbolic import flatten, map_structure
from .py_dataset import PyDataset


def to_tensor(x: Any, device: torch.device) -> torch.Tensor:
    """One array to a tensor on ``device``; float64 becomes float32 (Keras' floatx)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(x)
        if arr.dtype == object:
            raise ValueError("Could not convert the data to a tensor: it holds Python objects (dtype=object)")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.float64:
        t = t.to(torch.float32)
    return t.to(device, non_blocking=True)


# fit()'s fast path on CUDA moves the whole data set to the device once, when it takes at most this fraction of the
# free device memory; a larger one stays in host memory (pinned) and each batch is copied asynchronously.
DATA_ON_DEVICE_FRACTION = 0.5


def _nbytes(a: Any) -> int:
    if isinstance(a, torch.Tensor):
        return a.numel() * a.element_size()
    return int(np.asarray(a).nbytes)


def data_device(arrays: list[Any], device: torch.device) -> torch.device:
    """Where fit() keeps its arrays: on ``device`` unless that is a GPU they would crowd (then the host)."""
    if device.type != "cuda":
        return device
    pending = sum(_nbytes(a) for a in arrays if not (isinstance(a, torch.Tensor) and a.device == device))
    free, _ = torch.cuda.mem_get_info(device)
    return device if pending <= DATA_ON_DEVICE_FRACTION * free else torch.device("cpu")


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> tuple[Any, ...]:
    """``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, dropping trailing Nones, as Keras packs a batch (a tuple
    or list ``x`` alone is wrapped so that it is not taken for ``(x, y)``)."""
    if y is None:
        return x if not isinstance(x, (tuple, list)) else (x,)
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` from a batch as ``fit`` receives it (``x``, ``(x,)``, ``(x, y)`` or
    ``(x, y, sample_weight)``); the missing parts are None. A longer tuple is an error naming its length."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return (data, None, None)
    if len(data) == 1:
        return (data[0], None, None)
    if len(data) == 2:
        return (data[0], data[1], None)
    if len(data) == 3:
        return (data[0], data[1], data[2])
    raise ValueError(
        "Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, found: " + str(data)
    )


def first(data: Any) -> torch.Tensor:
    return flatten(data)[0]


def num_samples(data: Any) -> int:
    if isinstance(data, torch.Tensor):  # the common case, per step: no flatten
        return int(data.shape[0])
    sizes = {int(t.shape[0]) for t in flatten(data)}
    if len(sizes) > 1:
        raise ValueError(f"Data cardinality is ambiguous: the arrays have different lengths {sorted(sizes)}")
    return sizes.pop()


def index(data: Any, idx: Any) -> Any:
    if isinstance(data, torch.Tensor):  # the common case, per step: no map_structure
        return data[idx]
    return map_structure(lambda t: t[idx], data)


def check_finite(name: str, data: Any) -> None:
    """With ``tritonnn.config.set_check_numerics(True)``: a clear error for NaN or Inf in the data."""
    for i, t in enumerate(flatten(data) if data is not None else []):
        if isinstance(t, torch.Tensor) and t.dtype.is_floating_point:
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                where = tuple(int(v) for v in bad.nonzero()[0])
                part = f"{name}[{i}]" if len(flatten(data)) > 1 else name
                raise ValueError(
                    f"`{part}` contains non-finite values (NaN or Inf): {int(bad.sum())} of {t.numel()}, the first "
                    f"at index {where} = {t[where].item()}. Clean the data, or call "
                    "tritonnn.config.set_check_numerics(False) to train on it anyway."
                )


def check_batch_size(batch_size: Any) -> int:
    if batch_size is None:
        return 32
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"Expected `batch_size` to be a positive integer. Received: batch_size={batch_size!r}")
    return int(batch_size)


def check_steps(name: str, steps: Any) -> int | None:
    """``steps_per_epoch``, ``steps`` or ``validation_steps``: None (the whole data) or a positive integer."""
    if steps is None:
        return None
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps <= 0:
        raise ValueError(
            f"Expected `{name}` to be a positive integer (batches per epoch) or None (the whole data). "
            f"Received: {name}={steps!r}"
        )
    return int(steps)


def _is_plain_list(value: Any) -> bool:
    """A list/tuple of Python numbers or of such lists: data written out by hand, not a list of arrays (which is
    several inputs or targets)."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    return all(
        isinstance(v, (int, float, bool, np.number)) or (isinstance(v, (list, tuple)) and (not v or _is_plain_list(v)))
        for v in value
    )


def _lengths(value: Any, depth: int = 0, found: dict[int, set[int]] | None = None) -> dict[int, set[int]]:
    """The lengths of the lists at each depth of a nested list (a ragged one has more than one at some depth)."""
    found = {} if found is None else found
    if isinstance(value, (list, tuple)):
        found.setdefault(depth, set()).add(len(value))
        for v in value:
            _lengths(v, depth + 1, found)
    else:
        found.setdefault(depth, set()).add(-1)  # a number where another row may hold a list
    return found


def lists_to_arrays(data: Any, name: str) -> Any:
    """A plain Python list of numbers (or of equal-length lists of them) becomes one numpy array, as an array
    would be given; a ragged one is an error that says so. Lists of arrays stay lists (several inputs)."""
    if isinstance(data, dict):
        return {k: lists_to_arrays(v, f"{name}[{k!r}]") for k, v in data.items()}
    if not _is_plain_list(data):
        if isinstance(data, (list, tuple)) and any(_is_plain_list(v) for v in data):
            return type(data)(lists_to_arrays(v, f"{name}[{i}]") for i, v in enumerate(data))
        return data
    for depth, sizes in sorted(_lengths(data).items()):
        if len(sizes) > 1:
            shown = sorted("a number" if n < 0 else str(n) for n in sizes)
            raise ValueError(
                f"`{name}` is a ragged list: its entries at depth {depth} have different lengths ({', '.join(shown)}). "
                "Give a rectangular list (every row the same length), or a numpy array."
            )
    return np.asarray(data)


def is_dataset(x: Any) -> bool:
    """A DataLoader, a generator or another iterable of batches (not an array, tensor, list or dict of them)."""
    if isinstance(x, (np.ndarray, torch.Tensor, list, tuple, dict)) or x is None:
        return False
    return isinstance(x, (collections.abc.Iterator, collections.abc.Iterable))


def split_batch(batch: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` from one batch: a tuple or list of 1 to 3 parts (Keras' rule; DataLoaders yield
    lists), otherwise ``x`` alone."""
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 3:
        return (*batch, *([None] * (3 - len(batch))))
    return batch, None, None


class ArraySource:
    """Batches sliced by index from tensors held on the model's device (one copy, no per-step transfer)."""

    def __init__(
        self,
        x: Any,
        y: Any,
        sw: Any,
        batch_size: int,
        shuffle: bool,
        steps: int | None = None,
        target: torch.device | None = None,
        continuing: bool = False,
    ):
        self.x, self.y, self.sw = x, y, sw
        self.target = target  # the model's device when the arrays stay on the host (too big for the GPU)
        self.n = num_samples(x)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.steps = math.ceil(self.n / batch_size) if steps is None else int(steps)
        # Keras' epoch iterator over arrays: without `steps` each epoch is one pass; with it, an epoch takes up to
        # `steps` batches of the current pass and ends early at the pass's end ("ran out of data"), and fit's
        # training source (`continuing`) carries the pass over to the next epoch, which begins a new pass only
        # once this one is used up. Evaluation and prediction begin a new pass at every call.
        self.per_pass = math.ceil(self.n / batch_size)
        self.continuing = continuing
        self._pass_position = self.per_pass  # batches of the current pass already drawn (all: begin a new one)
        self._pass_order: torch.Tensor | None = None

    def label_bounds(self) -> list[tuple[int, int] | None] | None:
        """Per target array (in ``flatten(y)`` order), ``(min, max)`` when it can hold class labels: an integer
        array, or a float array of whole numbers (Keras' guides train on ``y.astype("float32")``); None for the
        others, and None overall when no array qualifies. Read once per fit/evaluate (one sync per array), so
        that no step needs a host sync to check its labels (``step_runner`` registers each batch's range)."""
        leaves = [] if self.y is None or not self.n else flatten(self.y)
        bounds: list[tuple[int, int] | None] = []
        for t in leaves:
            if not isinstance(t, torch.Tensor) or t.dtype == torch.bool or t.dtype.is_complex or not t.numel():
                bounds.append(None)
            elif t.dtype.is_floating_point:
                whole = (torch.isfinite(t) & (t == torch.round(t))).all()
                lo, hi, ok = torch.stack([t.min().double(), t.max().double(), whole.double()]).tolist()
                bounds.append((int(lo), int(hi)) if ok else None)
            else:
                lo, hi = torch.stack([t.min(), t.max()]).tolist()
                bounds.append((int(lo), int(hi)))
        return bounds if any(b is not None for b in bounds) else None

    def predicting(self) -> None:
        """For ``predict`` (a PyDataset's source calls no ``on_epoch_end`` before its pass there)."""

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[tuple[Any, Any, Any]]:
        device = first(self.x).device
        if not self.continuing or self._pass_position >= self.per_pass:
            self._pass_position = 0
            self._pass_order = torch.randperm(self.n, generator=generator).to(device) if self.shuffle else None
        order = self._pass_order
        for _ in range(self.steps):
            if self._pass_position >= self.per_pass:
                warnings.warn(
                    "Your input ran out of data; interrupting training. Make sure that your dataset or generator "
                    "can generate at least `steps_per_epoch * epochs` batches.",
                    UserWarning,
                    stacklevel=2,
                )
                return
            start = self._pass_position * self.batch_size
            stop = min(start + self.batch_size, self.n)
            self._pass_position += 1
            yield gather(self, slice(start, stop) if order is None else order[start:stop], device)


def gather(source: Any, idx: Any, device: torch.device) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` rows ``idx`` of an array source, on its target device (the model's)."""
    batch = (
        index(source.x, idx),
        None if source.y is None else index(source.y, idx),
        None if source.sw is None else source.sw[idx],
    )
    if source.target is not None and source.target != device:
        batch = map_structure(lambda t: None if t is None else t.to(source.target, non_blocking=True), batch)
    return batch


class IterableSource:
    """Batches drawn from a DataLoader or a generator; each is moved to the device as it comes."""

    def __init__(
        self,
        data: Any,
        device: torch.device,
        steps: int | None,
        shuffle: bool = False,
        class_weight: Any = None,
    ):
        self.data, self.device = data, device
        self.reiterable = not isinstance(data, collections.abc.Iterator)
        self._iter: Iterator | None = None
        self.py_dataset = isinstance(data, PyDataset)
        steps = config.capped_steps(steps)  # keras.config.max_steps_per_epoch
        if self.py_dataset:
            _ = data.workers  # Keras' warning when the subclass did not call super().__init__()
            self.num_batches = data.num_batches
            self.shuffle, self.class_weight = shuffle, class_weight
            self._order: Any = range(0)
            self._position = 0  # where the next epoch continues when steps_per_epoch < num_batches, as Keras
            self._reset = "first"  # Keras' epoch iterator calls on_epoch_end once at its start ("reset")
            if steps is None:
                steps = self.num_batches
        elif steps is None and hasattr(data, "__len__"):
            steps = len(data)
        self.steps = steps

    def predicting(self) -> None:
        """For ``predict``: Keras' predict never resets its iterator, so no on_epoch_end before its pass."""
        self._reset = None

    def _dataset_batches(self, generator: torch.Generator | None) -> Iterator[Any]:
        """A PyDataset's epoch, as Keras' epoch iterator draws it: ``on_epoch_end`` first where Keras resets (once
        before fit's first epoch, before every evaluation), ``on_epoch_begin``, the batches by index (a random
        order per pass over the data with ``shuffle``) stopping at the end of the data; ``epoch`` calls
        ``on_epoch_end`` when the epoch completes (not when the trainer stops it early, as in Keras)."""
        ds, n = self.data, self.num_batches
        if self._reset == "first" or (self._reset == "every" and generator is None):
            ds.on_epoch_end()
            self._reset = "every" if generator is None else "done"
        ds.on_epoch_begin()
        if n is None:  # endless: steps_per_epoch bounds each epoch
            yield from (ds[i] for i in itertools.count())
            return
        if self.steps is None or self._position >= n:
            self._position = 0
        if self._position == 0:
            self._order = torch.randperm(n, generator=generator).tolist() if self.shuffle else range(n)
        while self._position < n:
            self._position += 1
            yield ds[self._order[self._position - 1]]

    def _standardize(self, batch: Any) -> Any:
        """A PyDataset batch as Keras reads one: an array alone is ``(x,)``, a list a tuple, a dict the inputs."""
        if isinstance(batch, (dict, np.ndarray, torch.Tensor)):
            return (batch,)
        if isinstance(batch, list):
            batch = tuple(batch)
        if not isinstance(batch, tuple) or len(batch) not in (1, 2, 3):
            raise ValueError(
                "PyDataset.__getitem__() must return a tuple or a dict. If a tuple, it must be ordered either "
                "(input,) or (inputs, targets) or (inputs, targets, sample_weights). "
                f"Received: {str(batch)[:100]}... of type {type(batch)}"
            )
        if self.class_weight is not None and len(batch) > 1:
            if len(batch) == 3:
                raise ValueError("You cannot specify `class_weight` and `sample_weight` at the same time.")
            y = map_structure(lambda a: to_tensor(a, self.device), batch[1])
            batch = (batch[0], y, apply_class_weight(self.class_weight, y, None))
        return batch

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[tuple[Any, Any, Any]]:
        if self.py_dataset:
            self._iter = (self._standardize(b) for b in self._dataset_batches(generator))
            yield from self._draw()
            self.data.on_epoch_end()
            return
        if self.reiterable or self._iter is None:
            self._iter = iter(self.data)
        yield from self._draw()

    def _draw(self) -> Iterator[tuple[Any, Any, Any]]:
        count = 0
        while self.steps is None or count < self.steps:
            try:
                batch = next(self._iter)
            except StopIteration:
                if self.steps is not None and count == 0 and self.reiterable is False:
                    raise ValueError(
                        "The data generator ran out of data: give `steps_per_epoch` (or `steps`) no larger than "
                        "the number of batches it yields, or a generator that loops forever."
                    ) from None
                return
            x, y, sw = split_batch(batch)
            to = lambda a: to_tensor(a, self.device)  # noqa: E731
            x, y = map_structure(to, x), None if y is None else map_structure(to, y)
            if config.check_numerics():
                check_finite("x", x)
                check_finite("y", y)
            yield x, y, None if sw is None else to(sw)
            count += 1


def apply_class_weight(class_weight: dict, y: Any, sample_weight: Any) -> torch.Tensor:
    """Per-sample weights from ``class_weight`` as Keras makes them: the class of a sample is the arg-max of a
    one-hot row, else its label rounded to the nearest integer (float labels included); classes not in the dict
    weigh 1. Multiplied into ``sample_weight`` (ranks matched, so ``(n, 1)`` weights stay per sample)."""
    labels = first(y)
    n = labels.shape[0]
    if labels.dim() > 1 and labels.shape[-1] > 1:
        idx = labels.argmax(-1)
    else:
        idx = torch.round(labels.reshape(n).double()).long() if labels.dtype.is_floating_point else labels.reshape(n)
        idx = idx.long()
    lo, hi = (int(v) for v in torch.stack([idx.min(), idx.max()]).tolist()) if n else (0, 0)
    keys = [int(k) for k in class_weight]
    offset = min(0, lo, *keys)
    table = torch.ones(max(hi, *keys, 0) - offset + 1, device=labels.device)
    for k, w in class_weight.items():
        table[int(k) - offset] = float(w)
    cw = table[idx - offset]
    if sample_weight is None:
        return cw
    sample_weight, cw = losses.same_rank(sample_weight, cw)
    return sample_weight * cw


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.cpu().numpy()


def concat(outs: list[Any]) -> Any:
    first = outs[0]
    if isinstance(first, dict):
        return {k: torch.cat([o[k] for o in outs]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(torch.cat([o[i] for o in outs]) for i in range(len(first)))
    return torch.cat(outs)


def prepare(x: Any, y: Any, sample_weight: Any, class_weight: Any, device: torch.device) -> tuple[Any, Any, Any, int]:
    """Arrays to tensors where fit() keeps them (``data_device``), checked: ``(x, y, sample_weight, n)``.

    Sample counts must agree; class weights become per-sample weights (multiplied into ``sample_weight``).
    """
    if x is None:
        raise ValueError("Expected input data `x`. Received: x=None")
    x, y = lists_to_arrays(x, "x"), lists_to_arrays(y, "y")
    if sample_weight is not None:
        sample_weight = lists_to_arrays(sample_weight, "sample_weight")
    home = data_device(flatten(x) + ([] if y is None else flatten(y)), device)
    x = map_structure(lambda a: to_tensor(a, home), x)
    y = None if y is None else map_structure(lambda a: to_tensor(a, home), y)
    if home != device:  # pinned, so that each batch's copy to the GPU is asynchronous
        x, y = (
            map_structure(lambda t: t.pin_memory(), x),
            None if y is None else map_structure(lambda t: t.pin_memory(), y),
        )
        device = home
    if config.check_numerics():
        check_finite("x", x)
        check_finite("y", y)
    n = num_samples(x)
    if n == 0:
        raise ValueError("Expected input data to be non-empty. Received: 0 samples")
    if y is not None and num_samples(y) != n:
        raise ValueError(
            f"Data cardinality is ambiguous: x has {n} samples but y has {num_samples(y)} samples. "
            "Make sure all arrays contain the same number of samples."
        )
    if sample_weight is not None:
        sample_weight = to_tensor(sample_weight, device).to(torch.float32)
        if sample_weight.shape[0] != n:
            raise ValueError(f"sample_weight has {sample_weight.shape[0]} entries but the data has {n} samples")
    if class_weight is not None:
        sample_weight = apply_class_weight(class_weight, y, sample_weight)
    return x, y, sample_weight, n


def make_source(
    x: Any,
    y: Any,
    sample_weight: Any,
    batch_size: int,
    shuffle: bool,
    steps: int | None,
    device: torch.device,
    class_weight: Any = None,
    continuing: bool = False,
) -> ArraySource | IterableSource:
    """The source fit/evaluate/predict read: an ``IterableSource`` for a generator or DataLoader, else arrays."""
    if is_dataset(x):
        if y is not None:
            raise ValueError("When `x` is a generator or DataLoader, `y` must not be given: yield (x, y) batches")
        if isinstance(x, PyDataset):
            return IterableSource(x, device, steps, shuffle, class_weight)
        return IterableSource(x, device, steps)
    x, y, sample_weight, _ = prepare(x, y, sample_weight, class_weight, device)
    source = ArraySource(x, y, sample_weight, batch_size, shuffle, steps, target=device, continuing=continuing)
    capped = config.capped_steps(steps)  # keras.config.max_steps_per_epoch: Keras stops at the data's end too
    if capped is not None and capped != steps:
        source.steps = min(source.steps, capped)
    return source
