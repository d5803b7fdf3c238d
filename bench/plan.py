"""Kernel launches of one train step, counted, with the bytes and FLOPs each must move and do, and the H100 time
that implies: tritonnn next to PyTorch eager. Runs anywhere (no GPU).

    python bench/plan.py                                   # the seed model (64-32-10, batch 32), fp32
    python bench/plan.py --model classic --dtype bf16      # 784-512-512-10, 2 x Dropout(0.2), batch 128
    python bench/plan.py --layers 784,512,512,10 --batch 128 --dropout 0.2 --launch-us 3
    python bench/plan.py --model classic --ranks 2         # one rank's step of a 2-process data-parallel fit

How the launches are counted (nothing is guessed from the code):
- tritonnn: one real train step (``Model.train_step``: forward, loss, backward, optimizer, metric update) with
  ``TRITONNN_BACKEND=triton`` under ``TRITON_INTERPRET=1``, after one warm-up step (optimizer state, autotune
  caches). Every Triton launch passes through ``InterpretedFunction.run``, which is wrapped to record the kernel and
  its arguments. The torch ops the step runs besides (allocations excluded, see below) are launches too and are
  counted with the same rule as eager's.
- PyTorch eager: the same model as ``nn.Sequential`` (bench/models.py), ``F.cross_entropy``, ``Adam(fused=True)``
  (the CUDA configuration of bench/train.py), ``torch.autocast(bfloat16)`` for bf16, one step after a warm-up step.
  ``nn.Dropout`` is replaced by ATen's ``native_dropout``, the fused kernel CUDA uses (a CPU takes a three-op path).
- Rule for torch ops: every ATen op that reaches the backend (a ``TorchDispatchMode`` below autograd, where
  composite ops such as ``linear`` have already been split into ``t`` + ``addmm``) is one launch, except ops that
  launch nothing on a GPU: views (``func.is_view``), ``empty*`` allocations, ``detach``/``alias``/``lift_fresh``,
  and scalar reads (``_local_scalar_dense``, counted as host-device syncs instead: an upper bound, since on a CPU a
  host-side tensor, e.g. a seed drawn with ``torch.randint(...).item()``, cannot be told from a device one). A fused
  multi-tensor op (``_fused_adam_``, ``_foreach_*``) counts as one launch: CUDA splits it into one launch per ~110
  tensors or 65536-element chunk group, which is one for these models. Why not ``torch.profiler``: on a CPU its
  innermost ``aten::`` events are the CPU kernels' own internals (addmm's bias ``copy_``, mm's ``resolve_conj``, the
  CPU fused Adam's ``item()`` calls), not the ops a CUDA run would launch; the dispatch mode sees each op once, at
  the boundary where the CUDA backend would launch it, with its tensors (which the byte count needs).

Bytes: each distinct tensor argument (by storage) that holds data is read once; each one the launch changes (Triton:
compared before/after; ATen: written per the op's schema) is written once; freshly allocated, not yet written
outputs are not read. For the dense backward GEMMs the operand a part never loads is left out (dx = dz @ kernel^T
does not read x; dkernel = x^T @ dz does not read kernel). FLOPs: 2MNK for each GEMM (the Triton kernels that call
``tl.dot``, with their M, N, K arguments; ``mm``/``addmm``/``bmm`` for eager); element-wise work is left at 0
(bandwidth-bound). Implied time per launch: ``launch_us + max(bytes / 3.0 TB/s, flops / peak)``, with H100 SXM
peaks bf16 800, tf32 400, fp32 (IEEE, no tensor cores) 60 TFLOP/s; ``--tf32`` lets fp32 GEMMs use tf32 on both sides.
Large batches are counted at two small batches and the bytes and FLOPs extrapolated (both are affine in the batch
for an MLP; the launch sequence must be identical at both, which is checked).

The fused MLP (kernels/fused_mlp.py): where the model is within its bounds (the seed model is), fit() runs it as one
forward launch (with the loss) and one backward launch, and the "tritonnn" table is that step; the "per-layer" table
and row count the same step with ``TRITONNN_FUSED_MLP=0`` (one kernels.dense per layer and pass, the loss apart), and
a last line gives per-layer / fused ratios of launches, bytes and implied time. The fused kernels' FLOPs are their
GEMMs' (the backward recomputes the forward); the weight-gradient partials the backward's last program reads back
count as read.

Data parallel (``--ranks N``): the script runs itself under torchrun, N CPU processes over gloo, and each counts
one step of its own share of the global batch (``--batch``) as a data-parallel fit runs it: the body, then the
optimizer's ``step``, which ``DataParallel`` routes through the gradient all-reduce (``c10d.allreduce_``, one
launch: NCCL's kernel on a GPU). Rank 0 prints the table (no eager peer: PyTorch's would be DDP).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import inspect
import os
import sys
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import MODELS, Spec, build_torch, build_tritonnn, parse_layers  # noqa: E402

PEAK_TBPS = 3.0
PEAK_TFLOPS = {"bf16": 800.0, "tf32": 400.0, "fp32": 60.0}
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
NO_LAUNCH = {"detach", "alias", "lift_fresh", "_record_function_enter_new", "_record_function_exit"}
SYNCS = {"_local_scalar_dense", "nonzero", "equal", "is_nonzero"}
WRITE_ONLY = {"fill_", "zero_", "copy_", "normal_", "uniform_", "random_", "bernoulli_", "exponential_"}
GEMMS = {"mm", "addmm", "bmm", "baddbmm"}


@dataclasses.dataclass
class Launch:
    source: str  # "triton" or "aten"
    name: str
    shapes: str
    dtype: str
    read: int = 0
    written: int = 0
    flops: int = 0

    @property
    def bytes(self) -> int:
        return self.read + self.written


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)


def _key(t: torch.Tensor):
    return (t.untyped_storage().data_ptr(), t.storage_offset(), t.dtype, tuple(t.shape))


def _dtype_name(ts) -> str:
    for t in ts:
        if t.is_floating_point():
            return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(t.dtype, "fp32")
    return "-"


class Recorder(TorchDispatchMode):
    """Records ATen launches (and Triton launches, via :meth:`triton_run`) in order."""

    def __init__(self):
        super().__init__()
        self.launches: list[Launch] = []
        self.syncs: collections.Counter = collections.Counter()
        self.fresh: set = set()  # storages allocated uninitialised and not yet written
        self.host: set = set()  # storages of host-side scalars (see __torch_dispatch__)
        self.host_ops: collections.Counter = collections.Counter()
        self.alive: list = []  # keeps the tensors behind `fresh` and `host` alive, so no address is reused
        self.paused = 0
        self.on = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.paused or not self.on:
            return out
        name = func.overloadpacket.__name__
        ins = list(_tensors(list(args) + list(kwargs.values())))
        outs = list(_tensors(out))
        # Host-side scalars: a one-element float64 factory result (no tensor of these models' train step lives on
        # the device in float64), and whatever is computed from host tensors only. On a GPU these ops run on the
        # CPU: no launch, and reading them back is no device sync. Counted apart as host ops.
        root = not ins and kwargs.get("dtype") == torch.float64 and all(t.numel() == 1 for t in outs)
        if root or (ins and all(t.untyped_storage().data_ptr() in self.host for t in ins)):
            self.host.update(t.untyped_storage().data_ptr() for t in outs)
            self.alive += outs
            self.host_ops[name] += 1
            return out
        if name in ("empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"):
            for t in _tensors(out):
                self.fresh.add(t.untyped_storage().data_ptr())
                self.alive.append(t)
            return out
        if name in SYNCS:
            self.syncs[name] += 1
            if name in ("_local_scalar_dense", "is_nonzero"):
                return out
        if func.is_view or name in NO_LAUNCH:
            return out
        schema = func._schema.arguments
        written = {}
        for arg, val in zip(schema, args, strict=False):
            if arg.alias_info is not None and arg.alias_info.is_write:
                for t in _tensors(val):
                    written[_key(t)] = t
        for arg in schema:
            if arg.name in kwargs and arg.alias_info is not None and arg.alias_info.is_write:
                for t in _tensors(kwargs[arg.name]):
                    written[_key(t)] = t
        for t in _tensors(out):
            written.setdefault(_key(t), t)
        read = {}
        for i, t in enumerate(ins):
            if t.untyped_storage().data_ptr() in self.fresh:
                continue
            if i == 0 and name in WRITE_ONLY:
                continue
            read[_key(t)] = t
        rec = Launch("aten", name, _shapes(ins), _dtype_name(ins))
        rec.read = sum(t.numel() * t.element_size() for t in read.values())
        rec.written = sum(t.numel() * t.element_size() for t in written.values())
        if name in GEMMS:
            a, b = (args[1], args[2]) if name in ("addmm", "baddbmm") else (args[0], args[1])
            rec.flops = 2 * a.numel() * b.shape[-1]
        for t in written.values():
            self.fresh.discard(t.untyped_storage().data_ptr())
        self.launches.append(rec)
        return out

    def triton_run(self, fn, args, kwargs, launch):  # fn: an InterpretedFunction (.fn is the Python function)
        """Run one Triton launch, recording its tensors' traffic (interpreter ops inside it are not counted)."""
        if not self.on:
            return launch()
        self.paused += 1
        try:
            names = fn.arg_names
            bound = dict(zip(names, args, strict=False)) | kwargs
            tensors: dict = {}
            for arg_name, val in bound.items():
                if isinstance(val, torch.Tensor):
                    tensors.setdefault(_key(val), (arg_name, val))
            skip = set()
            name = fn.fn.__name__
            if name == "_dense_bwd_kernel":  # the operand a part never loads (module docstring)
                skip = {"x_ptr"} if bound.get("PART") == 0 else {"w_ptr"}
            before = {k: v.clone() for k, (_, v) in tensors.items()}
            out = launch()
            rec = Launch("triton", name, _shapes([v for _, v in tensors.values()]), "")
            rec.dtype = _dtype_name([v for _, v in tensors.values()])
            for k, (arg_name, t) in tensors.items():
                nbytes = t.numel() * t.element_size()
                changed = not torch.equal(before[k], t)
                fresh = t.untyped_storage().data_ptr() in self.fresh
                if not fresh and arg_name not in skip:
                    rec.read += nbytes
                if changed:
                    rec.written += nbytes
                    self.fresh.discard(t.untyped_storage().data_ptr())
            if "tl.dot" in inspect.getsource(fn.fn) and {"M", "N", "K"} <= bound.keys():
                rec.flops = 2 * int(bound["M"]) * int(bound["N"]) * int(bound["K"])
            if name in ("_fused_mlp_fwd_kernel", "_fused_mlp_bwd_kernel"):
                rec.flops = _fused_mlp_flops(name, bound)
            if name == "_fused_mlp_bwd_kernel" and bound.get("REDUCE_HERE"):
                part = bound["part_ptr"]  # written by every program, read back by the last (the weight gradients)
                rec.read += part.numel() * part.element_size()
            self.launches.append(rec)
            return out
        finally:
            self.paused -= 1


def _fused_mlp_flops(name: str, bound: dict) -> int:
    """2 M K N per layer GEMM of the fused MLP: the forward's; the backward's recomputed forward, dW for every
    layer, d(input) for every layer but the first, and dX with NEED_DX (the recomputes of gelu-like middle layers'
    pre-activations left out)."""
    widths = [int(bound["K"])] + [int(bound[f"N{i}"]) for i in range(int(bound["NUM_LAYERS"]))]
    per_row = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    m = int(bound["M"])
    if name == "_fused_mlp_fwd_kernel":
        return 2 * m * per_row
    first = widths[0] * widths[1]
    return 2 * m * (3 * per_row - first + (first if bound.get("NEED_DX") else 0))


def _shapes(ts) -> str:
    return " ".join("x".join(map(str, t.shape)) or "()" for t in ts if t.numel() > 1)[:60]


def _install(recorder: Recorder) -> None:
    from triton.runtime.interpreter import InterpretedFunction

    original = InterpretedFunction.run
    if getattr(original, "_bench_plan", False):
        InterpretedFunction._bench_recorder = recorder
        return

    def run(self, *args, grid, warmup, **kwargs):
        rec = InterpretedFunction._bench_recorder
        return rec.triton_run(self, args, kwargs, lambda: original(self, *args, grid=grid, warmup=warmup, **kwargs))

    run._bench_plan = True
    InterpretedFunction.run = run
    InterpretedFunction._bench_recorder = recorder


def _data(spec: Spec, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, spec.layers[0], generator=g)
    y = torch.randint(0, spec.layers[-1], (batch,), generator=g)
    return x, y


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def count_tritonnn(spec: Spec, batch: int, dtype: str, fused: bool = True) -> Recorder:
    """One fit() train step of the tritonnn model; ``fused=False`` with the fused MLP switched off
    (``TRITONNN_FUSED_MLP=0``): the per-layer path, one kernels.dense per layer and pass."""
    before = os.environ.get("TRITONNN_FUSED_MLP")
    os.environ["TRITONNN_FUSED_MLP"] = "1" if fused else "0"
    try:
        return _count_tritonnn(spec, batch, dtype)
    finally:
        if before is None:
            os.environ.pop("TRITONNN_FUSED_MLP")
        else:
            os.environ["TRITONNN_FUSED_MLP"] = before


def _count_tritonnn(spec: Spec, batch: int, dtype: str) -> Recorder:
    import tritonnn as keras

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(POLICIES[dtype])
    dp = None
    try:
        model = build_tritonnn(keras, spec)
        x, y = _data(spec, batch)
        # builds; warms up one step (under torchrun: data-parallel, automatically, with WORLD_SIZE > 1)
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        if _world_size() > 1:
            dp = keras.distribution.distribution()
            base, extra = divmod(batch, dp.world_size)  # this rank's contiguous share, as fit splits a batch
            lo = dp.rank * base + min(dp.rank, extra)
            hi = lo + base + (dp.rank < extra)
            x, y = x[lo:hi], y[lo:hi]
            dp._install(model)  # the optimizer's step() is now the all-reduce, then the update, as in fit
            dp.batch_weight = (hi - lo) / batch
            model._distribution = dp
        x, y = x.to(model.device), y.to(model.device)
        recorder = Recorder()
        _install(recorder)
        # As fit() runs it: the labels were range-checked once for the whole array (no per-step check), dropout
        # draws device seeds (as wherever a step may be captured), and the optimizer update is recorded apart: a
        # CUDA graph holds the rest of the step, and the update too when its learning rate is on the device.
        for layer in model._flatten_layers():
            if hasattr(layer, "device_seeds"):
                layer.device_seeds = True
        with recorder, keras.kernels.xent.known_label_range([y], 0, spec.layers[-1] - 1):
            recorder.on = True
            model._train_body(x, y)
            recorder.body_launches = len(recorder.launches)
            model.optimizer.step()
            recorder.on = False
        recorder.graph_blocker = model._graph_blocker("train", torch.device("cuda"))  # as fit() on a GPU
        recorder.path = model.fused_mlp_path()[1] if hasattr(model, "fused_mlp_path") else "per-layer"
        recorder.optimizer_in_graph = model._optimizer_in_graph()
        recorder.ranks = 1 if dp is None else dp.world_size
    finally:
        if dp is not None:
            dp._end_fit(model)
        keras.mixed_precision.set_global_policy("float32")
    return recorder


class NativeDropout(torch.nn.Module):
    """``nn.Dropout`` as CUDA runs it: ATen's fused ``native_dropout`` (one kernel writing the output and the mask;
    ``native_dropout_backward`` in the backward). On a CPU ``F.dropout`` takes ATen's composite path instead
    (``bernoulli_`` + ``div_`` + ``mul``: three launches), which would overcount eager's CUDA launches."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        return torch.native_dropout(x, self.p, True)[0]


def _eager_step(spec: Spec, batch: int, dtype: str):
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = build_torch(spec, "cpu")
    for i, mod in enumerate(model):
        if isinstance(mod, torch.nn.Dropout):
            model[i] = NativeDropout(mod.p)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as bench/train.py on CUDA
    x, y = _data(spec, batch)

    def step():
        opt.zero_grad(set_to_none=True)
        # fp16: autocast only (a GradScaler's unscale and inf check would add launches the count leaves out)
        half = torch.float16 if dtype == "fp16" else torch.bfloat16
        with torch.autocast("cpu", dtype=half, enabled=dtype != "fp32"):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    step()  # warm-up: Adam's state
    return step


def count_eager(spec: Spec, batch: int, dtype: str) -> Recorder:
    step = _eager_step(spec, batch, dtype)
    recorder = Recorder()
    with recorder:
        recorder.on = True
        step()
        recorder.on = False
    return recorder


def _peak(launch: Launch, tf32: bool) -> float:
    if launch.dtype in ("bf16", "fp16"):
        return PEAK_TFLOPS["bf16"]
    return PEAK_TFLOPS["tf32" if tf32 else "fp32"]


def implied_us(launch: Launch, launch_us: float, tf32: bool) -> float:
    mem = launch.bytes / (PEAK_TBPS * 1e12)
    compute = launch.flops / (_peak(launch, tf32) * 1e12)
    return launch_us + max(mem, compute) * 1e6


def extrapolate(small: list[Launch], large: list[Launch], b1: int, b2: int, batch: int) -> list[Launch]:
    """Bytes and FLOPs at ``batch`` from counts at b1 < b2 (affine in the batch), launch by launch."""
    if [(a.source, a.name) for a in small] != [(b.source, b.name) for b in large]:
        raise RuntimeError(f"the launch sequence differs between batch {b1} and {b2}: cannot extrapolate")
    out = []
    for a, b in zip(small, large, strict=True):

        def at(va: int, vb: int) -> int:
            return max(0, round(va + (vb - va) * (batch - b1) / (b2 - b1)))

        out.append(dataclasses.replace(b, shapes=f"{b.shapes} @B={b2}", read=at(a.read, b.read)))
        out[-1].written = at(a.written, b.written)
        out[-1].flops = at(a.flops, b.flops)
    return out


def plan(spec: Spec, batch: int, dtype: str, count_batch: int, who: str) -> tuple[list[Launch], dict, dict, Any]:
    """The step's launches, syncs and host ops, and the recorder (for tritonnn's graph_note). ``who``: "tritonnn"
    (as fit() runs it: the fused MLP where the model is within its bounds), "per-layer" (tritonnn with the fused
    MLP off) or "eager"."""
    counter = {
        "tritonnn": count_tritonnn,
        "per-layer": lambda *a: count_tritonnn(*a, fused=False),
        "eager": count_eager,
    }[who]
    if batch <= count_batch:
        rec = counter(spec, batch, dtype)
        return rec.launches, dict(rec.syncs), dict(rec.host_ops), rec
    b1, b2 = max(1, count_batch // 2), count_batch
    r1, r2 = counter(spec, b1, dtype), counter(spec, b2, dtype)
    return extrapolate(r1.launches, r2.launches, b1, b2, batch), dict(r2.syncs), dict(r2.host_ops), r2


def graph_note(rec: Any, launches: list[Launch], launch_us: float, tf32: bool) -> str:
    """What fit()'s CUDA graph does to the count: the body's launches become one replay; the optimizer stays."""
    blocker = getattr(rec, "graph_blocker", "not counted")
    if blocker is not None:
        return f"CUDA graph: not captured ({blocker}): every launch above is paid on a GPU"
    body, rest = launches[: rec.body_launches], launches[rec.body_launches :]
    work = sum(implied_us(x, 0.0, tf32) for x in launches)
    update = "optimizer's" if getattr(rec, "ranks", 1) == 1 else "all-reduce's and optimizer's"
    if getattr(rec, "optimizer_in_graph", False):
        return (
            f"CUDA graph: captured on a GPU: all {len(launches)} launches (forward, loss, backward, metrics and the "
            f"{update} {len(rest)}) are one replay: 1 host launch per step, implied "
            f"{work + launch_us:.1f} us if the graph's kernels ran back to back"
        )
    return (
        f"CUDA graph: captured on a GPU: the {len(body)} launches of forward, loss, backward and metrics are one "
        f"replay, the {update} {len(rest)} stay eager: {1 + len(rest)} host launches per step, implied "
        f"{work + (1 + len(rest)) * launch_us:.1f} us if the graph's kernels ran back to back"
    )


def totals(launches: list[Launch], launch_us: float, tf32: bool) -> dict:
    return {
        "launches": len(launches),
        "triton": sum(1 for x in launches if x.source == "triton"),
        "aten": sum(1 for x in launches if x.source == "aten"),
        "bytes": sum(x.bytes for x in launches),
        "flops": sum(x.flops for x in launches),
        "us": sum(implied_us(x, launch_us, tf32) for x in launches),
        "us_no_launch": sum(implied_us(x, 0.0, tf32) for x in launches),
    }


def print_table(title: str, launches: list[Launch], launch_us: float, tf32: bool) -> None:
    print(f"\n{title}")
    print(f"{'#':>3} {'src':<6} {'kernel / op':<26} {'dtype':<5} {'read B':>11} {'write B':>11} {'FLOPs':>12} "
          f"{'us':>7}  tensors")  # fmt: skip
    for i, x in enumerate(launches):
        print(
            f"{i:>3} {x.source:<6} {x.name[:26]:<26} {x.dtype:<5} {x.read:>11,} {x.written:>11,} {x.flops:>12,} "
            f"{implied_us(x, launch_us, tf32):>7.2f}  {x.shapes}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="seed")
    parser.add_argument("--layers", default=None, help="widths input,hidden...,classes (overrides --model)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the model's)")
    parser.add_argument("--dropout", type=float, default=None, help="Dropout rate after each hidden Dense")
    parser.add_argument(
        "--dtype", choices=sorted(POLICIES), default="fp32", help="bf16/fp16: mixed_bfloat16/mixed_float16, autocast"
    )
    parser.add_argument("--tf32", action="store_true", help="fp32 GEMMs at the tf32 peak (both sides)")
    parser.add_argument("--launch-us", type=float, default=3.0, help="assumed cost of one launch, microseconds")
    parser.add_argument("--count-batch", type=int, default=128, help="largest batch run under the interpreter")
    parser.add_argument("--summary", action="store_true", help="totals only, no per-launch tables")
    parser.add_argument("--ranks", type=int, default=1, help="count one rank of an N-process data-parallel fit")
    args = parser.parse_args(argv)
    if args.ranks < 1:
        parser.error(f"--ranks takes a number of processes >= 1. Received: {args.ranks}")
    if args.ranks > 1 and _world_size() == 1:
        return _launch_ranks(args.ranks, sys.argv[1:] if argv is None else argv)
    if _world_size() > 1 and int(os.environ.get("RANK", "0")) != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - rank 0 prints the table

    base = MODELS[args.model]
    spec = Spec(
        "custom" if args.layers else base.name,
        parse_layers(args.layers) if args.layers else base.layers,
        args.batch or base.batch,
        base.dropout if args.dropout is None else args.dropout,
    )
    if "tritonnn" in sys.modules and not os.environ.get("TRITON_INTERPRET"):
        raise SystemExit("bench/plan.py must set TRITON_INTERPRET=1 before tritonnn is imported: run it as a script")
    os.environ["TRITON_INTERPRET"] = "1"
    os.environ["TRITONNN_BACKEND"] = "triton"
    import triton

    print(
        f"plan: {'-'.join(map(str, spec.layers))} batch {spec.batch} dropout {spec.dropout} {args.dtype}  "
        f"torch {torch.__version__} triton {triton.__version__}  launch cost {args.launch_us} us  H100 roofline "
        f"{PEAK_TBPS} TB/s, {PEAK_TFLOPS['bf16']:.0f}/{PEAK_TFLOPS['tf32']:.0f}/{PEAK_TFLOPS['fp32']:.0f} TFLOP/s "
        f"bf16/tf32/fp32 (fp32 GEMMs at {'tf32' if args.tf32 else 'fp32'})"
    )
    if spec.batch > args.count_batch:
        print(f"counted at batch {args.count_batch // 2} and {args.count_batch}, bytes and FLOPs extrapolated to "
              f"{spec.batch}")  # fmt: skip
    ours, our_syncs, our_host, our_rec = plan(spec, spec.batch, args.dtype, args.count_batch, "tritonnn")
    if _world_size() > 1:
        return _print_rank(args, spec, ours, our_syncs, our_rec)
    fused = getattr(our_rec, "path", "").startswith("fused")
    print(f"fit() path: {'fused MLP' if fused else 'per-layer'} ({our_rec.path})")
    if fused and spec.batch > args.count_batch:
        print("  (extrapolated: the launches are those counted; above the batch named there the fused backward adds")
        print("  one reduce launch, which these counts leave out, and its partials are in the bytes)")
    layered, layered_syncs, layered_host, layered_rec = (
        plan(spec, spec.batch, args.dtype, args.count_batch, "per-layer")
        if fused
        else (ours, our_syncs, our_host, our_rec)
    )
    eager, eager_syncs, eager_host, _ = plan(spec, spec.batch, args.dtype, args.count_batch, "eager")
    if not args.summary:
        if fused:
            title = "per-layer path (TRITONNN_FUSED_MLP=0: one kernels.dense per layer and pass, one fit() step)"
            print_table(title, layered, args.launch_us, args.tf32)
        path = "fused MLP" if fused else "per-layer"
        print_table(
            f"tritonnn (TRITONNN_BACKEND=triton, one fit() train step, {path})", ours, args.launch_us, args.tf32
        )
        print_table("PyTorch eager (nn.Sequential, F.cross_entropy, Adam fused)", eager, args.launch_us, args.tf32)
    t_ours, t_eager = totals(ours, args.launch_us, args.tf32), totals(eager, args.launch_us, args.tf32)
    t_layered = totals(layered, args.launch_us, args.tf32)
    print()
    print(f"{'':<9} {'launches':>8} {'triton':>6} {'aten':>5} {'MB moved':>10} {'GFLOP':>9} {'implied us':>10} "
          f"{'w/o launch':>10}  syncs")  # fmt: skip
    rows = [("tritonnn", t_ours, our_syncs)]
    if fused:
        rows.append(("per-layer", t_layered, layered_syncs))
    rows.append(("eager", t_eager, eager_syncs))
    for name, t, syncs in rows:
        print(
            f"{name:<9} {t['launches']:>8} {t['triton']:>6} {t['aten']:>5} {t['bytes'] / 1e6:>10.3f} "
            f"{t['flops'] / 1e9:>9.3f} {t['us']:>10.1f} {t['us_no_launch']:>10.2f}  {sum(syncs.values())} "
            f"{dict(syncs) or ''}"
        )
    for name, host in (("tritonnn", our_host), ("eager", eager_host)):
        if host:
            print(f"{name}: host-side scalar ops, not counted as launches: {host}")
    print(graph_note(our_rec, ours, args.launch_us, args.tf32))
    if fused:
        print(f"per-layer: {graph_note(layered_rec, layered, args.launch_us, args.tf32)}")
        print(
            f"per-layer / fused MLP: {t_layered['launches'] / t_ours['launches']:.2f}x launches "
            f"({t_layered['triton']} vs {t_ours['triton']} Triton), "
            f"{t_layered['bytes'] / max(1, t_ours['bytes']):.2f}x bytes, "
            f"{t_layered['us'] / t_ours['us']:.2f}x implied time "
            f"({t_layered['us']:.1f} vs {t_ours['us']:.1f} us; w/o launch cost {t_layered['us_no_launch']:.2f} vs "
            f"{t_ours['us_no_launch']:.2f} us)"
        )
    print("data-parallel: `--ranks N` counts one rank's step of an N-process fit (the all-reduce included)")
    print(
        f"eager / tritonnn: {t_eager['launches'] / t_ours['launches']:.2f}x launches, "
        f"{t_eager['bytes'] / max(1, t_ours['bytes']):.2f}x bytes, {t_eager['us'] / t_ours['us']:.2f}x implied time"
    )
    return 0


def _launch_ranks(ranks: int, argv: list[str]) -> int:
    """Run this script under torchrun on ``ranks`` CPU processes (gloo); rank 0's output is the table."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", __file__]
    return subprocess.run([*cmd, *argv], env=env).returncode


def _print_rank(args: Any, spec: Spec, ours: list[Launch], syncs: dict, rec: Any) -> int:
    share = "-".join(str(spec.batch // rec.ranks + (r < spec.batch % rec.ranks)) for r in range(rec.ranks))
    if not args.summary:
        title = f"tritonnn, rank 0 of {rec.ranks} (data-parallel fit, global batch {spec.batch} split {share})"
        print_table(title, ours, args.launch_us, args.tf32)
    t = totals(ours, args.launch_us, args.tf32)
    collectives = [x.name for x in ours if x.name.startswith("allreduce")]
    print(
        f"\nrank 0: {t['launches']} launches ({t['triton']} triton, {t['aten']} aten, collectives {collectives}), "
        f"{t['bytes'] / 1e6:.3f} MB moved, implied {t['us']:.1f} us, syncs {sum(syncs.values())} {syncs or ''}"
    )
    print(graph_note(rec, ours, args.launch_us, args.tf32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
