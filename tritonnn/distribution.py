"""Data-parallel training over ``torch.distributed`` (Keras 3's ``keras.distribution`` spelling).

Launch the same script once per device with ``torchrun --nproc_per_node=8 train.py``; ``fit`` and ``evaluate``
then train and evaluate data-parallel. The distribution is set explicitly::

    tritonnn.distribution.set_distribution(tritonnn.distribution.DataParallel())

or automatically, when ``WORLD_SIZE > 1`` is in the environment (torchrun sets it) and no distribution was set.
The process group is created from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) with NCCL for CUDA tensors and gloo for CPU tensors, or an already initialized one is used.

How ``fit`` runs under ``DataParallel``:

* Every process holds the whole data set (the same arrays). At the start of ``fit`` the weights, the optimizer
  state, fit's shuffle generator and torch's global generator are broadcast from rank 0, so every rank starts from
  rank 0's model and draws the same order each epoch (``tritonnn.utils.set_random_seed`` on rank 0 makes a run
  reproducible).
* ``batch_size`` is the global batch. Each global batch is cut into contiguous slices, one per rank, as evenly as
  possible: the first ``batch_size % world_size`` ranks take one sample more. The last, smaller batch of an epoch
  is split the same way, so some ranks may get no sample; they still take part in every collective.
* Each rank scales its gradient by ``local_samples / global_samples`` and the flat gradient buffer is summed over
  the ranks before the optimizer's single fused step: in one all-reduce after the backward pass, or, for buffers
  over 25 MB, in buckets of about 25 MB, each all-reduced asynchronously as soon as the backward pass has produced
  it (overlapping the rest of the backward). For losses reduced with ``"sum_over_batch_size"`` (Keras' default)
  this is exactly the gradient of the single-process loss on the global batch, sample weights and regularization
  losses included. Losses with another reduction are refused.
* Metric and loss states are summed over the ranks at the end of each epoch and of each evaluation, so the epoch
  logs (and ``History``, ``EarlyStopping``, ``ReduceLROnPlateau``...) are those of the whole data set, the same on
  every rank. The logs passed to per-batch hooks mid-epoch are the rank's own.
* Only rank 0 draws the progress bar and writes files: ``ModelCheckpoint``, ``CSVLogger`` and
  ``BackupAndRestore`` write from rank 0 alone, and ``model.save`` / ``save_weights`` do nothing on other ranks
  (they do not wait: to read the file from every rank right after, call :func:`barrier` first).
* ``stop_training`` is agreed at the end of each epoch (and after each batch when a callback has a per-batch
  hook): training stops on every rank when it stops on one.

Validation data and ``evaluate`` are split across the ranks the same way (no shuffle). ``predict`` runs the whole
input on each rank. A generator or a ``DataLoader`` must yield the same global batches on every process (same
data, same order, e.g. the same seed); each process reads the whole batch and keeps its slice, and before each step
the processes check, with one small all-gather, that all of them have a batch of the same size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from .callbacks import Callback, _overrides
from .layers.symbolic import flatten, map_structure
from .models import _ArraySource, _gather, _index, _IterableSource, _num_samples

__all__ = ["DataParallel", "barrier", "distribution", "initialize", "list_devices", "set_distribution"]

_UNSET: Any = object()
_DISTRIBUTION: Any = _UNSET
# Gradient buffers larger than this are all-reduced in buckets of about this size, each launched (asynchronously)
# as soon as the backward pass has produced all of its gradients; smaller ones in one all-reduce after the backward.
_BUCKET_BYTES = 25 * 2**20


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Expected the environment variable {name} to be an integer. Received: {value!r}") from None


# Under torchrun each process drives the GPU of its LOCAL_RANK; make it the current device before any weight is
# made (weights go to "cuda", which is the current device, and Triton launches on the current device).
if (_env_int("WORLD_SIZE") or 1) > 1 and _env_int("LOCAL_RANK") is not None and torch.cuda.is_available():
    torch.cuda.set_device(_env_int("LOCAL_RANK") % torch.cuda.device_count())


def list_devices(device_type: str | None = None) -> list[str]:
    """The devices this process can use, as strings: ``["cuda:0", "cuda:1", ...]``, or ``["cpu:0"]``.

    Args:
        device_type: ``"gpu"``/``"cuda"`` or ``"cpu"``; defaults to the GPUs when there are any, else the CPU.
    """
    if device_type is not None and device_type.lower() not in ("gpu", "cuda", "cpu"):
        raise ValueError(f"Expected `device_type` to be 'cpu', 'gpu' or 'cuda'. Received: device_type={device_type!r}")
    kind = (device_type or ("cuda" if torch.cuda.is_available() else "cpu")).lower()
    if kind in ("gpu", "cuda"):
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu:0"]


def initialize(
    job_addresses: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Join the process group of a multi-process run (or keep the one already initialized).

    With torchrun nothing needs to be given: the rank, the world size and the rendezvous address come from the
    environment. Otherwise give them here, as for Keras' ``keras.distribution.initialize``.

    Args:
        job_addresses: ``"host:port"`` of the rank-0 process (several comma-separated addresses: the first is used).
        num_processes: the number of processes in the run (the world size).
        process_id: this process's rank, in ``[0, num_processes)``.

    The backend is NCCL for CUDA tensors and gloo for CPU tensors (``"cpu:gloo,cuda:nccl"`` when CUDA is
    available, ``"gloo"`` otherwise). Raises ``ValueError`` when the run was not launched by torchrun (or a
    similar launcher) and the arguments do not say how to reach the other processes.
    """
    if not dist.is_available():
        raise RuntimeError("This build of torch has no torch.distributed: data-parallel training is unavailable.")
    if dist.is_initialized():
        return
    if job_addresses is not None:
        host, _, port = job_addresses.split(",")[0].strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"Expected `job_addresses` as 'host:port'. Received: job_addresses={job_addresses!r}")
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = host, port
    if num_processes is not None:
        if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
            raise ValueError(f"Expected `num_processes` a positive integer. Received: num_processes={num_processes!r}")
        os.environ["WORLD_SIZE"] = str(num_processes)
    if process_id is not None:
        world = _env_int("WORLD_SIZE")
        if isinstance(process_id, bool) or not isinstance(process_id, int) or not 0 <= process_id < (world or 1):
            raise ValueError(f"Expected `process_id` in [0, {world}). Received: process_id={process_id!r}")
        os.environ["RANK"] = str(process_id)
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise ValueError(
            f"Data-parallel training needs a multi-process launch, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set. Launch the script with "
            "`torchrun --nproc_per_node=N script.py` (one process per device), or call "
            "`tritonnn.distribution.initialize(job_addresses, num_processes, process_id)`."
        )
    local_rank = _env_int("LOCAL_RANK")
    if torch.cuda.is_available():
        if local_rank is not None:
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)


def barrier() -> None:
    """Wait until every process of the run reaches this call (nothing to wait for in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _is_chief() -> bool:
    """Whether this process is the one that prints and writes files: rank 0, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return (_env_int("RANK") or 0) == 0


class DataParallel:
    """Data parallelism: the model is replicated on every device and each global batch is split across them.

    One process drives one device; the processes are launched by torchrun (``torchrun --nproc_per_node=8
    train.py``, or across nodes with torchrun's rendezvous). Constructing ``DataParallel`` joins the process group
    (see :func:`initialize`).

    Args:
        devices: one device per process, in rank order, e.g. ``["cuda:0", "cuda:1"]`` (the list may repeat
            names across nodes). Defaults to each process's own device: ``cuda:LOCAL_RANK`` when CUDA is
            available, else the CPU.

    Example::

        tritonnn.distribution.set_distribution(tritonnn.distribution.DataParallel())
        model.fit(x, y, batch_size=256, epochs=10)  # 256 samples per step, split over the processes
    """

    def __init__(self, devices: list[str] | None = None) -> None:
        initialize()
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        if devices is None:
            own = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, own)
            devices = [str(d) for d in gathered]
        else:
            if not isinstance(devices, (list, tuple)) or not all(isinstance(d, (str, torch.device)) for d in devices):
                raise ValueError(f"Expected `devices` a list of device names. Received: devices={devices!r}")
            if len(devices) != self.world_size:
                raise ValueError(
                    f"Expected one device per process: {self.world_size} processes, but {len(devices)} devices "
                    f"were given. Received: devices={list(devices)!r}"
                )
            devices = [str(d) for d in devices]
        self.devices: list[str] = list(devices)
        self.device = torch.device(self.devices[self.rank])
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self._weight = 1.0  # this rank's share of the current global batch (local / global samples)
        self._reduced = False
        self._buckets: _Buckets | None = None

    def __repr__(self) -> str:
        return f"<DataParallel world_size={self.world_size} rank={self.rank} device={self.device}>"

    # ---- collectives ----
    def _nccl_only(self) -> bool:
        return dist.get_backend() == "nccl"

    def _broadcast_(self, t: torch.Tensor) -> None:
        """Overwrite ``t`` with rank 0's ``t`` (in place)."""
        if t.device.type == "cpu" and self._nccl_only():
            tmp = t.to(self.device)
            dist.broadcast(tmp, 0)
            t.copy_(tmp)
        else:
            dist.broadcast(t, 0)

    def _all_reduce_(self, t: torch.Tensor, op: Any = None) -> None:
        op = dist.ReduceOp.SUM if op is None else op
        if t.device.type == "cpu" and self._nccl_only():
            tmp = t.to(self.device)
            dist.all_reduce(tmp, op)
            t.copy_(tmp)
        else:
            dist.all_reduce(t, op)

    def _all_gather(self, out: list[torch.Tensor], t: torch.Tensor) -> None:
        if t.device.type == "cpu" and self._nccl_only():
            tmp = [o.to(self.device) for o in out]
            dist.all_gather(tmp, t.to(self.device))
            for o, g in zip(out, tmp, strict=True):
                o.copy_(g)
        else:
            dist.all_gather(out, t)

    def _broadcast_object(self, obj: Any) -> Any:
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, 0)
        return box[0]

    # ---- fit / evaluate hooks (called by tritonnn.models) ----
    def _check_losses(self, model: Any) -> None:
        from . import losses as losses_mod

        spec = model._loss_spec
        for loss in flatten(spec) if spec is not None else []:
            reduction = getattr(loss, "reduction", "sum_over_batch_size")
            if isinstance(loss, losses_mod.Loss) and reduction != "sum_over_batch_size":
                raise ValueError(
                    f"DataParallel averages gradients as Keras' default loss reduction does: expected losses with "
                    f"reduction='sum_over_batch_size'. Received: {type(loss).__name__} with reduction={reduction!r}"
                )

    def _shard(self, model: Any, source: Any, batch_size: int | None, training: bool) -> Any:
        if isinstance(source, _IterableSource):
            return _ShardedIterableSource(source, self, model, training)
        if not isinstance(source, _ArraySource):
            raise TypeError(f"Expected an array or iterable data source. Received: {type(source).__name__}")
        if batch_size is not None and batch_size < self.world_size:
            raise ValueError(
                f"Under DataParallel `batch_size` is the global batch, split across {self.world_size} processes: "
                f"it must be at least {self.world_size} so that every process gets a sample of each full batch. "
                f"Received: batch_size={batch_size}"
            )
        return _ShardedArraySource(source, self, training)

    def _prepare_fit(
        self, model: Any, source: Any, val_source: Any, verbose: int, callbacks: list[Any] | None, batch_size: int
    ) -> tuple[Any, Any, int, list[Any]]:
        """Shard the sources, silence the progress bar off rank 0, add the ``stop_training`` agreement."""
        self._check_losses(model)
        source = self._shard(model, source, batch_size, True)
        if val_source is not None:
            val_source = self._shard(model, val_source, getattr(val_source, "batch_size", None), False)
        self._resolve_metrics(model, source)
        self._signature = {
            "train": _describe(source),
            "validation": None if val_source is None else _describe(val_source),
        }
        callbacks = list(callbacks or [])
        per_batch = any(_overrides(cb, "on_train_batch_end") for cb in callbacks)
        callbacks.append(_StopAgreementPerBatch(self) if per_batch else _StopAgreement(self))
        return source, val_source, (verbose if self.rank == 0 else 0), callbacks

    def _begin_fit(self, model: Any) -> None:
        """Check that every rank has the same model and data, then start every rank from rank 0's state.

        Called after ``on_train_begin`` (when ``BackupAndRestore`` may have restored a backup on rank 0).
        """
        opt = model.optimizer
        self._check_same(
            {
                **self._signature,
                "weights": [tuple(t.shape) for t in model.state_dict().values()],
                "optimizer": type(opt).__name__,
            }
        )
        with torch.no_grad():
            self._broadcast_(opt.flat_param)
            in_flat = {id(p) for p in opt.params}
            for t in [*model.parameters(), *model.buffers()]:
                if id(t) not in in_flat:
                    self._broadcast_(t.data)
            state = opt.state_dict()
            for key in sorted(state):
                if state[key].dim() > 0:
                    self._broadcast_(state[key])
        scalars = {k: v.item() for k, v in state.items() if v.dim() == 0}
        dropout = _dropout_layers(model)
        gen = model._shuffle_generator
        meta = self._broadcast_object(
            {
                "scalars": scalars,
                "initial_epoch": model._initial_epoch,
                "initial_step": model._initial_step,
                "resume": model._resume_generator_state,
                "generator": gen.get_state(),
                "torch": torch.get_rng_state(),
                "dropout": [(layer._base_seed, layer._counter) for layer in dropout],
            }
        )
        if self.rank != 0:
            for k, v in meta["scalars"].items():
                state[k] = torch.tensor(v, dtype=state[k].dtype)
            opt.load_state_dict(state)
            model._initial_epoch, model._initial_step = meta["initial_epoch"], meta["initial_step"]
            model._resume_generator_state = meta["resume"]
            gen.set_state(meta["generator"])
            # torch's global generator too: a DataLoader(shuffle=True) then draws the same order on every rank.
            torch.set_rng_state(meta["torch"])
        for layer, (base, counter) in zip(dropout, meta["dropout"], strict=True):
            # Each rank draws its own masks: the same stream would give every rank the mask of rank 0's rows.
            layer._base_seed = base if self.rank == 0 else (base + 0x9E3779B97F4A7C15 * self.rank) % 2**62
            layer._counter = counter
        self._install(model)

    def _end_fit(self, model: Any) -> None:
        _uninstall(model)
        model._distribution = None  # predict() after fit runs on each rank's own input, as in one process

    def _prepare_evaluate(self, model: Any, source: Any, verbose: int, batch_size: int) -> tuple[Any, int]:
        """Shard an evaluation source and silence its progress bar off rank 0."""
        self._check_losses(model)
        source = self._shard(model, source, batch_size, False)
        self._resolve_metrics(model, source)
        self._check_same({"data": _describe(source), "metrics": model.metrics_names})
        return source, (verbose if self.rank == 0 else 0)

    def _check_same(self, signature: dict[str, Any]) -> None:
        """Raise the same error on every rank when the ranks' models or data do not match (rather than hang in a
        collective of mismatched sizes later)."""
        signatures: list[Any] = [None] * self.world_size
        dist.all_gather_object(signatures, signature)
        for rank, other in enumerate(signatures):
            if other != signatures[0]:
                diff = {
                    k: (signatures[0].get(k), other.get(k)) for k in signature if signatures[0].get(k) != other.get(k)
                }
                raise ValueError(
                    "DataParallel needs the same model and the same data on every process (each process loads the "
                    f"whole data set), but rank {rank} differs from rank 0 in (rank 0, rank {rank}): {diff}"
                )

    @staticmethod
    def _resolve_metrics(model: Any, source: Any) -> None:
        """Make the compiled metrics now, from the first sample, so that every rank has the same metric states to
        sum (they are otherwise made at the first batch, which a rank with an empty share never sees)."""
        if model._output_metrics is not None or getattr(source, "y", None) is None:
            return
        _resolve_metrics_from(model, source.x, source.y)

    def _install(self, model: Any) -> None:
        """For the length of ``fit``: route the model's ``train_step`` and its optimizer's ``step`` through this
        object (instance attributes that shadow the methods, removed by :func:`_uninstall`), so that a single
        process pays nothing per step and a ``train_step`` override is averaged too."""
        opt = model.optimizer
        step = type(opt).step.__get__(opt)
        self._buckets = _Buckets(self, opt) if opt.flat_grad.numel() * 4 > _BUCKET_BYTES else None
        if self._buckets is not None:
            model.__dict__["_tritonnn_dp_hooks"] = self._buckets.hooks

        def synced_step() -> None:
            self._reduce_gradients(model)
            step()

        synced_step._tritonnn_dp = True  # type: ignore[attr-defined]
        opt.step = synced_step
        train_step = type(model).train_step.__get__(model)

        def sharded_train_step(x: Any, y: Any = None, sample_weight: Any = None) -> Any:
            self._reduced = False
            if self._buckets is not None:
                self._buckets.begin_step()
            if x is None:  # this rank's slice of the batch is empty: a zero gradient still joins the all-reduce
                opt.zero_grad()
                opt.step()
                return None
            result = train_step(x, y, sample_weight)
            if not self._reduced:
                raise RuntimeError(
                    "Under DataParallel the gradients are averaged when `optimizer.step()` (or `apply`) runs; this "
                    "`train_step` returned without calling it."
                )
            return result

        sharded_train_step._tritonnn_dp = True  # type: ignore[attr-defined]
        model.train_step = sharded_train_step

    def _reduce_gradients(self, model: Any) -> None:
        """Sum ``weight * gradient`` over the ranks in the flat gradient buffer: the global-batch gradient."""
        if self._buckets is not None:
            self._buckets.finish()
        else:
            # A gradient replaced rather than accumulated in place (e.g. module.zero_grad(set_to_none=True) before
            # the backward) is copied back into the flat buffer first, as optimizer.step() would do after us.
            sync = getattr(getattr(model.optimizer, "inner_optimizer", model.optimizer), "_sync_views", None)
            if sync is not None:
                sync()
            grad = model.optimizer.flat_grad
            if self._weight != 1.0:
                grad.mul_(self._weight)
            self._all_reduce_(grad)
        self._reduced = True

    def _reduce_metrics(self, model: Any) -> None:
        """Sum every metric's state over the ranks (the states are sums: totals, counts, confusion counts)."""
        metrics = model.metrics
        device = model.device
        tensors = []
        for m in metrics:
            m._to(device)
            tensors.extend(m._state.values())
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
        self._all_reduce_(flat)
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n

    def _end_test(self, model: Any, source: Any) -> None:
        """The end of an evaluation: the empty-data error of a single process (on every rank alike, as the ranks
        agreed on the steps), then the metric states summed over the ranks."""
        if source.global_steps == 0:
            raise ValueError("evaluate() got no batches: the data is empty")
        self._reduce_metrics(model)

    def _agree_stop(self, model: Any) -> None:
        flag = torch.tensor([1.0 if model.stop_training else 0.0], device=self.device)
        self._all_reduce_(flag, dist.ReduceOp.MAX)
        model.stop_training = bool(flag.item())


class _Buckets:
    """The flat gradient buffer cut into contiguous buckets of about ``_BUCKET_BYTES``, all-reduced asynchronously
    while the backward pass runs.

    Bucket 0 holds the end of the buffer (the last layers, whose gradients the backward pass produces first). A
    post-accumulate-grad hook on each parameter counts down its bucket; buckets are launched strictly in order
    0, 1, 2, ... as soon as each is complete, and whatever is left is launched when the optimizer steps. Every
    rank therefore issues the same all-reduces in the same order, also a rank whose slice was empty (it launches
    them all at the step).
    """

    def __init__(self, dp: DataParallel, opt: Any) -> None:
        self.dp, self.grad = dp, opt.flat_grad
        params = list(opt.params)
        base = getattr(opt, "inner_optimizer", opt)
        self.views = {id(p): v for p, v in zip(params, base._grad_views, strict=True)}
        offsets, offset = [], 0
        for p in params:
            offsets.append(offset)
            offset += p.numel()
        cap = max(1, _BUCKET_BYTES // 4)
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
        if self.dp._weight != 1.0:
            view.mul_(self.dp._weight)
        self.handles.append(dist.all_reduce(view, async_op=True))
        self.next += 1

    def finish(self) -> None:
        while self.next < len(self.ranges):
            self._launch()
        for handle in self.handles:
            handle.wait()
        self.handles = []


class _ShardedArraySource:
    """This rank's contiguous slice of each global batch of an array source (the same order on every rank).

    Training yields ``(None, None, None)`` for an empty slice (the rank still joins the step's all-reduce);
    evaluation skips it. Deliberately not an ``_ArraySource``: fit's per-array shortcuts (CUDA-graph capture of
    the step) assume every batch holds samples.
    """

    def __init__(self, source: _ArraySource, dp: DataParallel, training: bool):
        self.x, self.y, self.sw, self.n = source.x, source.y, source.sw, source.n
        self.batch_size, self.shuffle, self.steps = source.batch_size, source.shuffle, source.steps
        self.target = getattr(source, "target", None)  # the model's device when the arrays stay on the host
        self.dp, self.training = dp, training
        self.global_steps = self.steps  # global batches in an epoch, whether or not this rank's slice is empty

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
            self.dp._weight = (hi - lo) / (stop - start)
            if hi == lo:
                if self.training:
                    yield None, None, None
                continue
            idx = slice(start + lo, start + hi) if order is None else order[start + lo : start + hi]
            yield _gather(self, idx, device)


class _ShardedIterableSource:
    """This rank's contiguous slice of each global batch that a generator or DataLoader yields.

    Every process iterates the same data (the same batches in the same order) and keeps its slice, so a batch of
    any size is split as an array batch is. Before each step the ranks agree, with one small all-gather on the host,
    that every one of them has a batch of the same size (an iterator that runs out on one process alone, or yields
    other sizes, raises the same error everywhere instead of leaving the others waiting).
    """

    def __init__(self, source: _IterableSource, dp: DataParallel, model: Any, training: bool):
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
            mine[0], mine[1] = (0, 0) if batch is None else (1, _num_samples(batch[0]))
            dp._all_gather(every, mine)
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
                _resolve_metrics_from(self.model, x, y)
            count = seen[0][1]
            base, extra = divmod(count, dp.world_size)
            lo = dp.rank * base + min(dp.rank, extra)
            hi = lo + base + (1 if dp.rank < extra else 0)
            dp._weight = (hi - lo) / count
            self.global_steps += 1
            if hi == lo:
                if self.training:
                    yield None, None, None
                continue
            idx = slice(lo, hi)
            yield _index(x, idx), None if y is None else _index(y, idx), None if sw is None else sw[idx]


def _describe(source: Any) -> dict[str, Any]:
    """What must match across ranks: the sizes of an array source, the kind and length of an iterable one."""
    if isinstance(source, _ShardedIterableSource):
        return {"kind": "iterable", "steps": source.steps}
    return {"kind": "arrays", "samples": source.n, "steps": source.steps, "batch_size": source.batch_size}


def _resolve_metrics_from(model: Any, x: Any, y: Any) -> None:
    device = model.device
    x, y = (map_structure(lambda t: t[0:1].to(device), data) for data in (x, y))
    with torch.no_grad():
        preds = model._outputs_list(model(x, training=False))
    model._clear_losses()
    model._resolve_compiled(model._targets_list(y, len(preds)), preds)


def _dropout_layers(model: Any) -> list[Any]:
    layers = model._flatten_layers() if hasattr(model, "_flatten_layers") else []
    return [layer for layer in layers if hasattr(layer, "_base_seed") and hasattr(layer, "_counter")]


class _StopAgreement(Callback):
    """Makes ``stop_training`` the same on every rank at the end of each epoch (true when true on any rank).

    Added as the last of the user's callbacks: after every callback that may set it, before ``fit`` reads it.
    """

    def __init__(self, dp: DataParallel) -> None:
        super().__init__()
        self.dp = dp

    def on_epoch_end(self, epoch, logs=None):
        self.dp._agree_stop(self.model)


class _StopAgreementPerBatch(_StopAgreement):
    """Also after each batch, when a callback with a per-batch hook may stop training mid-epoch."""

    def on_train_batch_end(self, batch, logs=None):
        self.dp._agree_stop(self.model)


def _uninstall(model: Any) -> None:
    """Remove what :meth:`DataParallel._install` put on the model and its optimizer (if anything)."""
    for handle in model.__dict__.pop("_tritonnn_dp_hooks", []):
        handle.remove()
    if getattr(model.__dict__.get("train_step"), "_tritonnn_dp", False):
        del model.__dict__["train_step"]
    opt = getattr(model, "optimizer", None)
    if opt is not None and getattr(opt.__dict__.get("step"), "_tritonnn_dp", False):
        del opt.__dict__["step"]


def _for_run(model: Any) -> DataParallel | None:
    """The distribution a ``fit`` or ``evaluate`` of ``model`` runs under (None: a single process)."""
    _uninstall(model)  # what a data-parallel fit that raised may have left
    value = distribution()
    model._distribution = value
    return value


def set_distribution(value: DataParallel | None) -> None:
    """Set the distribution that ``fit`` and ``evaluate`` use: a ``DataParallel``, or ``None`` for one process.

    ``None`` also turns off the automatic ``DataParallel`` of a torchrun launch.
    """
    global _DISTRIBUTION
    if value is not None and not isinstance(value, DataParallel):
        raise ValueError(f"Expected a tritonnn.distribution.DataParallel or None. Received: {value!r}")
    _DISTRIBUTION = value


def distribution() -> DataParallel | None:
    """The distribution in use: the one set with :func:`set_distribution`, else a ``DataParallel`` made on first
    use when ``WORLD_SIZE > 1`` is in the environment (a torchrun launch), else ``None``."""
    global _DISTRIBUTION
    if _DISTRIBUTION is _UNSET:
        if (_env_int("WORLD_SIZE") or 1) <= 1:
            return None
        _DISTRIBUTION = DataParallel()
    return _DISTRIBUTION
