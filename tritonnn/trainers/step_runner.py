"""The per-batch callable of fit(), evaluate() and predict(), and its CUDA-graph capture.

A small MLP step on a GPU is bound by launch overhead: dozens of kernels of a few microseconds each, every one paid
for by the host. Captured into a CUDA graph, the whole step (forward, loss, backward, metric updates) is one
``replay()``. ``StepGraph`` runs a step function eagerly for its first batches (autotuning, the allocator and any
lazily created state settle; on CUDA these warm-up steps run on a side stream, as CUDA graphs require), then
captures it once on static input tensors and from then on copies each batch into those tensors and replays.

Only one batch signature (shapes, dtypes, structure) is captured: the first, i.e. the full batch. Any other batch
(the last, partial one) runs eagerly, and so does everything after a capture that failed: the failure is reported
once with a warning and the step goes on eagerly, with the same result. A train step is captured whole, the
optimizer's update included (its learning rate, step count and loss scale are device tensors: one replay per
step); dropout draws its seeds on the device (``Dropout.device_seeds``), so each replay draws new masks. What a
graph cannot hold is kept out of it by the caller: an update whose learning rate the host computes runs after the
replay, eagerly (``after``), and a step that needs host syncs or host-drawn seeds is never captured (the trainer's
``_graph_blocker`` names the reason). ``step_runner`` picks, per fit/evaluate/predict, between a ``StepGraph`` and
the eager step.

The graph factory is injectable (``make_graph``) so that the bookkeeping here (warm-up, static buffers, fallback)
is tested on machines without a GPU; ``cuda_graph_factory`` is the real one.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

try:
    from torch._C._distributed_c10d import Work
except ImportError:  # a torch built without torch.distributed: no collective is ever recorded
    Work = None  # type: ignore[assignment,misc]

from .. import kernels
from ..layers.symbolic import flatten, map_structure
from .data import ArraySource

WARMUP_STEPS = 2


def _signature(args: Any) -> tuple:
    """What a captured graph is specialised on: the structure, and every tensor's shape, dtype and device."""
    leaves = flatten(args)
    return tuple(
        (tuple(t.shape), t.dtype, t.device) if isinstance(t, torch.Tensor) else ("const", type(t).__name__, t)
        for t in leaves
    ) + (_structure(args),)


def _structure(args: Any) -> Any:
    if isinstance(args, dict):
        return ("dict", tuple((k, _structure(v)) for k, v in sorted(args.items())))
    if isinstance(args, (list, tuple)):
        return (type(args).__name__, tuple(_structure(v) for v in args))
    return "leaf"


def _clone(tree: Any) -> Any:
    return map_structure(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, tree)


def _copy_into(static: Any, args: Any) -> None:
    for dst, src in zip(flatten(static), flatten(args), strict=True):
        if isinstance(dst, torch.Tensor):
            dst.copy_(src)


class CudaGraph:
    """One captured CUDA graph (``torch.cuda.CUDAGraph``) of ``fn(*static_args)``."""

    def __init__(self, fn: Callable[..., Any], static_args: tuple, pool: Any = None):
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.outputs = fn(*static_args)

    def replay(self) -> Any:
        self.graph.replay()
        return self.outputs


def cuda_graph_factory(fn: Callable[..., Any], static_args: tuple) -> CudaGraph:
    return CudaGraph(fn, static_args)


class _Recorder(TorchDispatchMode):
    """Records every ATen op run under it (with its arguments and outputs) and refuses host syncs, as a capture."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, tuple, dict, Any]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            raise RuntimeError(
                "a host sync (.item(), bool(tensor), ...) during graph capture: CUDA refuses it "
                "(cudaErrorStreamCaptureUnsupported)"
            )
        out = func(*args, **kwargs)
        # A collective's Work handle is the caller's to wait for; the record keeps its tensors only.
        self.ops.append((func, args, kwargs, _split_work(out)[0] if func.namespace == "c10d" else out))
        return out


def _assign(out: Any, result: Any) -> None:
    if isinstance(out, torch.Tensor) and isinstance(result, torch.Tensor):
        if out.untyped_storage().data_ptr() != result.untyped_storage().data_ptr():
            out.copy_(result)  # an op that made a new tensor: its captured output keeps its identity
    elif isinstance(out, (tuple, list)) and isinstance(result, (tuple, list)):
        for o, r in zip(out, result, strict=True):
            _assign(o, r)


class EmulatedGraph:
    """A CPU stand-in for a CUDA graph, with a CUDA graph's semantics: capture records the ATen ops of
    ``fn(*static_args)`` (without a host sync, which it refuses), and ``replay()`` reruns exactly those ops on the
    same tensors: shapes, Python scalars and branches taken are frozen at capture; the captured output tensors
    are refilled in place. The graph-capture code paths of fit(), evaluate() and predict() are tested with it on
    machines without a GPU (``tests/test_graphs.py``); it also checks a custom step for graph safety on a CPU.
    """

    ran_on_capture = True  # unlike a CUDA capture, recording runs the ops: the first batch is done by then

    def __init__(self, fn: Callable[..., Any], static_args: tuple):
        recorder = _Recorder()
        with recorder:
            self.outputs = fn(*static_args)
        self.ops = recorder.ops

    def replay(self) -> Any:
        with torch.no_grad():
            for func, args, kwargs, out in self.ops:
                result = func(*args, **kwargs)
                if func.namespace == "c10d":
                    result = _wait_collective(result)
                _assign(out, result)
        return self.outputs


def _wait_collective(result: Any) -> Any:
    """Wait for a replayed collective (``c10d.allreduce_`` and friends return their tensors and a ``Work``).

    Captured on CUDA, a collective is a node of the graph, ordered on its stream; the emulator calls it again at
    its place in the recorded order and waits for it there, so every rank replays its collectives in the order it
    recorded them (the order the eager step issues them in). Returns the collective's tensors."""
    tensors, work = _split_work(result)
    if work is not None:
        Work.unbox(work).wait()
    return tensors


def _split_work(result: Any) -> tuple[Any, Any]:
    """A c10d op's result as (its tensors, its Work handle or None): ``allreduce_`` and the other collectives
    return both, ``barrier`` only the handle."""
    if isinstance(result, torch.ScriptObject):
        return None, result
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], torch.ScriptObject):
        return result
    return result, None


def factory_for(device: torch.device) -> Callable[[Callable[..., Any], tuple], Any] | None:
    """The graph factory for a model on ``device``: CUDA graphs on CUDA, none elsewhere (tests replace this)."""
    return cuda_graph_factory if device.type == "cuda" else None


@contextlib.contextmanager
def _side_stream(device: torch.device):
    """CUDA graphs need their warm-up iterations on a non-default stream; elsewhere this does nothing."""
    if device.type != "cuda":
        yield
        return
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        yield
    torch.cuda.current_stream(device).wait_stream(stream)


class StepGraph:
    """Run ``fn(*args)`` eagerly ``warmup`` times for a batch signature, then capture it and replay.

    Args:
        fn: the step (tensors in, tensors or None out); it must not sync with the host or read host values that
            change between calls (the caller keeps such steps away: see the module docstring).
        make_graph: ``(fn, static_args) -> graph`` with ``.replay()`` returning the outputs.
        warmup: eager calls before the capture.
        clone_outputs: return copies of the graph's outputs (which the next replay overwrites), e.g. for predict.
        after: called after every step, eager or replayed (the optimizer update), outside the graph.
        context: ``context(args)``, a context manager around every Python run of ``fn`` (eager or capture).
        key: ``key()``, a host value the step reads besides its arguments (a data-parallel rank's share of the
            global batch); part of the signature, so a step with another value runs eagerly.
        name: for the fallback warning.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        make_graph: Callable[[Callable[..., Any], tuple], Any],
        *,
        warmup: int = WARMUP_STEPS,
        clone_outputs: bool = False,
        after: Callable[[], Any] | None = None,
        context: Callable[[tuple], Any] | None = None,
        key: Callable[[], Any] | None = None,
        name: str = "step",
    ):
        self.fn, self.make_graph, self.warmup = fn, make_graph, int(warmup)
        self.clone_outputs, self.after, self.name = clone_outputs, after, name
        self.context = context or (lambda args: contextlib.nullcontext())
        self.key = key
        self.signature: tuple | None = None  # the one signature this captures
        self.seen = 0
        self.graph: Any = None
        self.static_args: tuple | None = None
        self.disabled: str | None = None
        self.replays = 0
        self.eager_calls = 0

    def _eager(self, args: tuple) -> Any:
        self.eager_calls += 1
        with self.context(args):
            out = self.fn(*args)
        if self.after is not None:
            self.after()
        return out

    def __call__(self, *args: Any) -> Any:
        if self.disabled is not None:
            return self._eager(args)
        sig = _signature(args) if self.key is None else (*_signature(args), ("key", self.key()))
        if self.signature is None:
            self.signature = sig
        if sig != self.signature:  # another shape (the last, partial batch): eager
            return self._eager(args)
        ran_on_capture = False
        if self.graph is None:
            if self.seen < self.warmup:
                self.seen += 1
                device = next((t.device for t in flatten(args) if isinstance(t, torch.Tensor)), torch.device("cpu"))
                with _side_stream(device):
                    return self._eager(args)
            try:
                self.static_args = _clone(args)  # the graph reads its inputs from these
                with self.context(self.static_args):
                    self.graph = self.make_graph(self.fn, self.static_args)
            except Exception as e:  # noqa: BLE001 - any capture failure means: run this step eagerly from now on
                self.disable(f"{type(e).__name__}: {e}")
                return self._eager(args)
            ran_on_capture = getattr(self.graph, "ran_on_capture", False)
        if ran_on_capture:
            out = self.graph.outputs  # the emulated capture ran the step on a copy of this very batch
        else:
            _copy_into(self.static_args, args)
            out = self.graph.replay()
            self.replays += 1
        if self.after is not None:
            self.after()
        return _clone(out) if self.clone_outputs else out

    def disable(self, reason: str) -> None:
        self.disabled, self.graph, self.static_args = reason, None, None
        warnings.warn(
            f"tritonnn: the {self.name} could not be captured in a CUDA graph ({reason}); it runs eagerly "
            "(same results, more launch overhead). compile(jit_compile=False) skips the attempt.",
            RuntimeWarning,
            stacklevel=3,
        )


def step_runner(
    kind: str,
    eager: Callable[..., Any],
    source: Any,
    *,
    blocker: str | None,
    device: torch.device,
    body: Callable[..., Any] | None = None,
    after: Callable[[], Any] | None = None,
    key: Callable[[], Any] | None = None,
) -> Callable[..., Any]:
    """The per-batch callable of fit/evaluate/predict: a StepGraph where capture is possible, else ``eager``.

    Args:
        kind: ``"train"``, ``"test"`` or ``"predict"``.
        eager: the whole step, run as it is when the step is not captured.
        source: the data source; labels of an array source were range-checked once, up front.
        blocker: why the step cannot be captured (None: it can, if the source allows).
        device: the model's device (the graph factory is chosen for it).
        body: what is captured, when that is not all of ``eager`` (train with a host-computed learning rate: all
            but the optimizer update).
        after: run after every step, outside the graph (then: the optimizer update).
        key: a host value the step depends on besides its arguments (``StepGraph``'s ``key``).
    """
    # Labels from an array source were checked once (min/max of each target array, and for a float array that it
    # holds whole numbers): each step's batch of such an array is registered with its range, so cross-entropy and
    # the sparse metrics skip their per-call check, a host sync.
    arrays = isinstance(source, ArraySource) or getattr(source, "slices_arrays", False)
    bounds = source.label_bounds() if arrays and kind != "predict" else None
    labels = None
    if bounds is not None:

        @contextlib.contextmanager
        def all_labels(args: tuple) -> Any:
            with contextlib.ExitStack() as stack:
                for t, b in zip(flatten(args[1]), bounds, strict=True) if args[1] is not None else ():
                    if b is not None:
                        stack.enter_context(kernels.known_label_range([t], *b))
                yield

        def labels(args: tuple) -> Any:
            y = args[1]
            if isinstance(y, torch.Tensor) and len(bounds) == 1:  # one target array: its range, no ExitStack
                return contextlib.nullcontext() if bounds[0] is None else kernels.known_label_range([y], *bounds[0])
            return all_labels(args)

    if blocker is None and not arrays:
        blocker = "batches from a generator (labels not checked up front; shapes may vary)"
    if blocker is None:
        return StepGraph(
            eager if body is None else body,
            factory_for(device),
            after=after,
            clone_outputs=kind == "predict",
            context=labels,
            key=key,
            name=f"{kind} step",
        )
    if labels is None:
        return eager

    def run(*args: Any) -> Any:
        with labels(args):
            return eager(*args)

    return run
