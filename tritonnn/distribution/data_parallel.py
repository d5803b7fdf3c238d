"""``DataParallel``: the model replicated on every process, each global batch split across them, gradients and
metric states summed over ``torch.distributed`` (the package docstring says how a run goes)."""

from __future__ import annotations

import atexit
import os
from typing import Any

import torch
import torch.distributed as dist

from .. import losses as losses_mod
from .._process import env_int
from ..callbacks.callback import Callback, overrides
from ..layers.symbolic import flatten
from ..trainers.data import ArraySource, IterableSource
from . import buckets, sharded_data

_UNSET: Any = object()
_DISTRIBUTION: Any = _UNSET

# Under torchrun each process drives the GPU of its LOCAL_RANK; make it the current device before any weight is
# made (weights go to "cuda", which is the current device, and Triton launches on the current device).
if (env_int("WORLD_SIZE") or 1) > 1 and env_int("LOCAL_RANK") is not None and torch.cuda.is_available():
    torch.cuda.set_device(env_int("LOCAL_RANK") % torch.cuda.device_count())


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
        world = env_int("WORLD_SIZE")
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
    local_rank = env_int("LOCAL_RANK")
    if torch.cuda.is_available():
        if local_rank is not None:
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)
    atexit.register(_destroy_process_group)  # the group this process joined here, torn down before exit


def _destroy_process_group() -> None:
    """Leave the process group :func:`initialize` joined, at interpreter exit (PyTorch asks for it: a gloo group
    left to its C++ destructors at exit can abort the process, "terminate called without an active exception", when
    a peer has gone first). A script that destroyed it already is left alone."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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
        self.batch_weight = 1.0  # this rank's share of the current global batch (local / global samples)
        self._reduced = False
        self._buckets: buckets.GradientBuckets | None = None
        self._grads: list[torch.Tensor] = []  # the flat gradient buffers of the fit being run

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

    def all_gather(self, out: list[torch.Tensor], t: torch.Tensor) -> None:
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
        spec = model._loss_spec
        for loss in flatten(spec) if spec is not None else []:
            reduction = getattr(loss, "reduction", "sum_over_batch_size")
            if isinstance(loss, losses_mod.Loss) and reduction != "sum_over_batch_size":
                raise ValueError(
                    f"DataParallel averages gradients as Keras' default loss reduction does: expected losses with "
                    f"reduction='sum_over_batch_size'. Received: {type(loss).__name__} with reduction={reduction!r}"
                )

    def _shard(self, model: Any, source: Any, batch_size: int | None, training: bool) -> Any:
        if isinstance(source, IterableSource):
            return sharded_data.ShardedIterableSource(source, self, model, training)
        if not isinstance(source, ArraySource):
            raise TypeError(f"Expected an array or iterable data source. Received: {type(source).__name__}")
        if batch_size is not None and batch_size < self.world_size:
            raise ValueError(
                f"Under DataParallel `batch_size` is the global batch, split across {self.world_size} processes: "
                f"it must be at least {self.world_size} so that every process gets a sample of each full batch. "
                f"Received: batch_size={batch_size}"
            )
        return sharded_data.ShardedArraySource(source, self, training)

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
            "train": sharded_data.describe(source),
            "validation": None if val_source is None else sharded_data.describe(val_source),
        }
        callbacks = list(callbacks or [])
        per_batch = any(overrides(cb, "on_train_batch_end") for cb in callbacks)
        callbacks.append(_StopAgreementPerBatch(self) if per_batch else _StopAgreement(self))
        return source, val_source, (verbose if self.rank == 0 else 0), callbacks

    def _begin_fit(self, model: Any) -> None:
        """Check that every rank has the same model and data, then start every rank from rank 0's state.

        Called after ``on_train_begin`` (when ``BackupAndRestore`` may have restored a backup on rank 0).
        """
        opt = model.optimizer
        parts = flat_parts(opt)
        self._check_same(
            {
                **self._signature,
                "weights": [tuple(t.shape) for t in model.state_dict().values()],
                "optimizer": type(opt).__name__,
                "flat_buffers": [(type(part).__name__, part.flat_param.numel()) for part in parts],
            }
        )
        with torch.no_grad():
            for part in parts:
                self._broadcast_(part.flat_param)
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
        self._check_same({"data": sharded_data.describe(source), "metrics": model.metrics_names})
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
        sharded_data.resolve_metrics_from(model, source.x, source.y)

    def _install(self, model: Any) -> None:
        """For the length of ``fit``: route the model's ``train_step`` and its optimizer's ``step`` through this
        object (instance attributes that shadow the methods, removed by :func:`_uninstall`), so that a single
        process pays nothing per step and a ``train_step`` override is averaged too."""
        opt = model.optimizer
        step = type(opt).step.__get__(opt)
        parts = flat_parts(opt)
        self._grads = [part.flat_grad for part in parts]
        if sum(g.numel() for g in self._grads) * 4 > buckets.BUCKET_BYTES:
            self._buckets = buckets.GradientBuckets(self, parts, list(opt.params))
        else:
            self._buckets = None
        if self._buckets is not None:
            model.__dict__["_tritonnn_dp_hooks"] = self._buckets.hooks

        def synced_step() -> None:
            self._reduce_gradients(model)
            step()

        synced_step._tritonnn_dp = True  # type: ignore[attr-defined]
        opt.step = synced_step
        model.__dict__.pop("train_step", None)  # (set by a previous install, if any: the class's step is wrapped)
        train_step = model._step_function("train")  # the built-in step or the model's own, on (x, y, sample_weight)

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

    def step_key(self) -> float:
        """What a captured train step reads from the host besides its batch: this rank's share of the global batch
        (the gradient's weight before the all-reduce, frozen into a CUDA graph at capture). A step with another
        share runs eagerly (``StepGraph``'s ``key``)."""
        return self.batch_weight

    def _reduce_gradients(self, model: Any) -> None:
        """Sum ``weight * gradient`` over the ranks in each flat gradient buffer (one all-reduce per buffer, or
        the buckets): the global-batch gradient."""
        if self._buckets is not None:
            self._buckets.finish()
        else:
            # A gradient replaced rather than accumulated in place (e.g. module.zero_grad(set_to_none=True) before
            # the backward) is copied back into the flat buffer first, as optimizer.step() would do after us.
            sync = getattr(getattr(model.optimizer, "inner_optimizer", model.optimizer), "_sync_views", None)
            if sync is not None:
                sync()
            for grad in self._grads:
                if self.batch_weight != 1.0:
                    grad.mul_(self.batch_weight)
                self._all_reduce_(grad)
        self._reduced = True

    def _reduce_metrics(self, model: Any) -> None:
        """Combine every metric variable over the ranks by its ``aggregation``, in one all-reduce: ``"sum"`` (the
        built-in states are sums: totals, counts, confusion counts) summed, ``"mean"`` averaged,
        ``"only_first_replica"`` rank 0's value, ``"none"`` left as each rank has it."""
        device = model.device
        scale_of = {"sum": 1.0, "mean": 1.0 / self.world_size, "only_first_replica": float(self.rank == 0)}
        tensors, scales = [], []
        for m in model.metrics:
            m._to(device)
            for v in m.variables:
                if v.aggregation != "none":
                    tensors.append(v)
                    scales.append(scale_of[v.aggregation])
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1).to(torch.float64) * s for t, s in zip(tensors, scales, strict=True)])
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


def flat_parts(opt: Any) -> list[Any]:
    """The optimizers whose flat buffers hold ``opt``'s parameters: ``opt`` itself (a ``LossScaleOptimizer``'s
    inner optimizer), or each sub-optimizer of a ``MultiOptimizer`` that steps (one flat parameter buffer and one
    flat gradient buffer each). ``ValueError`` for an optimizer without such buffers (not built by ``fit``)."""
    base = getattr(opt, "inner_optimizer", opt)
    stepping = getattr(base, "_stepping_optimizers", None)
    parts = [base] if stepping is None else list(stepping)
    missing = [type(part).__name__ for part in parts if part.flat_param is None or part.flat_grad is None]
    if not parts or missing:
        raise ValueError(
            "DataParallel broadcasts the optimizer's flat parameter buffers and all-reduces its flat gradient "
            f"buffers, but {type(opt).__name__} has none built"
            + (f" (sub-optimizers without buffers: {missing})" if missing else "")
            + ": build it on the model's trainable weights (fit does) before a data-parallel fit."
        )
    return parts


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


def for_run(model: Any) -> DataParallel | None:
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
        if (env_int("WORLD_SIZE") or 1) <= 1:
            return None
        _DISTRIBUTION = DataParallel()
    return _DISTRIBUTION
