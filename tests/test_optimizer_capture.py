"""A capturable ``optimizer.step()`` (issue #16): the learning rate, the step count and Adam's bias corrections live
on the device, so one recorded step, replayed, updates correctly every time.

The torch path is recorded with ``EmulatedGraph`` (tritonnn/trainers/step_runner.py: the ATen ops of one call, host
syncs refused, replayed with every Python scalar frozen, as a CUDA graph freezes them). The Triton path under the
interpreter launches kernels that no dispatch mode sees, so ``LaunchGraph`` below records both: the ATen ops and
each Triton launch with its arguments, replayed in order with the same tensors and scalars. On a GPU both are
captured in a real ``torch.cuda.CUDAGraph`` instead. In all, N replays of one recorded step must equal N eager
steps bit for bit, and the float64 Keras reference within fp32 rounding.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tritonnn as keras
from tests.helpers import assert_close_verbose
from tests.test_optimizers import SCHEDULES, SHAPES, KerasF64
from tritonnn import optimizers
from tritonnn.optimizers import schedules
from tritonnn.trainers.step_runner import EmulatedGraph

try:
    from triton.runtime.interpreter import InterpretedFunction
except ImportError:  # no Triton: the triton backend's cases are skipped (tests/conftest.py)
    InterpretedFunction = None

CLASSES = {name.lower(): cls for name, cls in optimizers.ALL_OBJECTS.items() if name != "LossScaleOptimizer"}


def _params(device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen).to(device)) for s in SHAPES]


def _grads(steps, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen) * (3.0 if t % 3 else 0.2) for s in SHAPES] for t in range(steps)]


def _feed(opt, params, grads, scale=1.0):
    """What a captured forward/backward leaves behind: the step's gradients in the flat buffer, in place."""
    opt.zero_grad()
    for p, g in zip(params, grads, strict=True):
        p.grad.add_(g.to(p.device) * scale)


def _assign(out, result):
    if isinstance(out, torch.Tensor) and isinstance(result, torch.Tensor):
        if out.untyped_storage().data_ptr() != result.untyped_storage().data_ptr():
            out.copy_(result)
    elif isinstance(out, (tuple, list)) and isinstance(result, (tuple, list)):
        for o, r in zip(out, result, strict=True):
            _assign(o, r)


class LaunchGraph(TorchDispatchMode):
    """EmulatedGraph for the Triton path under the interpreter: records the ATen ops of ``fn()`` and its Triton
    launches (kernel, tensors, scalars, grid) in order, refuses host syncs outside the launches, and replays
    exactly those, with the same tensors and the same Python values."""

    def __init__(self, fn, monkeypatch):
        super().__init__()
        self.ops: list = []
        self.paused = 0
        run = InterpretedFunction.run
        graph = self

        def recording_run(kernel, *args, grid, warmup, **kwargs):
            graph.ops.append(("triton", run, kernel, args, dict(kwargs, grid=grid, warmup=warmup)))
            graph.paused += 1  # the interpreter's own tensor traffic belongs to the launch
            try:
                return run(kernel, *args, grid=grid, warmup=warmup, **kwargs)
            finally:
                graph.paused -= 1

        monkeypatch.setattr(InterpretedFunction, "run", recording_run)
        with self:
            fn()
        monkeypatch.setattr(InterpretedFunction, "run", run)
        self.launches = sum(1 for op in self.ops if op[0] == "triton")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        if func is torch.ops.aten._local_scalar_dense.default:
            raise RuntimeError("a host sync during capture")
        out = func(*args, **kwargs)
        self.ops.append(("aten", func, args, kwargs, out))
        return out

    def replay(self):
        with torch.no_grad():
            for op in self.ops:
                if op[0] == "aten":
                    _, func, args, kwargs, out = op
                    _assign(out, func(*args, **kwargs))
                else:
                    _, run, kernel, args, kwargs = op
                    run(kernel, *args, **kwargs)


def _record(opt, backend, monkeypatch):
    """Record ``opt.step()``, running it once (this step); the result's ``replay()`` runs the later ones."""
    if opt.flat_param.is_cuda:  # a real CUDA graph, after this step ran eagerly on a side stream (compiles kernels)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            opt.step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            opt.step()
        return graph
    if backend == "triton":
        graph = LaunchGraph(opt.step, monkeypatch)
        assert graph.launches >= 1
        return graph
    return EmulatedGraph(opt.step, ())


def _eager_vs_replayed(make, backend, device, monkeypatch, steps=8, set_lr=None):
    """Two optimizers on equal parameters: one steps eagerly, the other's first step is recorded and then
    replayed. ``set_lr``: {step index: new rate}, set on both between steps. Returns both and the parameters."""
    grads = _grads(steps)
    eager, graphed = make(), make()
    pe, pg = _params(device), _params(device)
    eager.build(pe)
    graphed.build(pg)
    graph = None
    for t, gs in enumerate(grads):
        if set_lr and t in set_lr:
            eager.learning_rate = graphed.learning_rate = set_lr[t]
        _feed(eager, pe, gs)
        _feed(graphed, pg, gs)
        eager.step()
        if graph is None:
            graph = _record(graphed, backend, monkeypatch)  # the recording runs the first step
        else:
            graph.replay()
    return eager, graphed, pe, pg, grads


def _assert_same(eager, graphed, pe, pg):
    for i, (a, b) in enumerate(zip(pe, pg, strict=True)):
        assert torch.equal(a.detach(), b.detach()), f"param {i}: replayed != eager"
    for a, b in zip(eager.variables, graphed.variables, strict=True):
        assert torch.equal(a, b), "state: replayed != eager"
    assert graphed.iterations == eager.iterations
    se, sg = eager.state_dict(), graphed.state_dict()
    assert se.keys() == sg.keys() and all(se[k].dtype == sg[k].dtype and torch.equal(se[k], sg[k]) for k in se)


CONFIGS = [
    ("sgd", {"learning_rate": 0.05}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "clipvalue": 0.5}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01, "clipnorm": 1.0}),
    ("adam", {"learning_rate": 0.01}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True, "beta_1": 0.8, "clipnorm": 1.0}),
    ("adamw", {"learning_rate": 0.01, "weight_decay": 0.1, "global_clipnorm": 2.0}),
    ("rmsprop", {"learning_rate": 0.01}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True, "rho": 0.8, "clipvalue": 0.7}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.9, "weight_decay": 0.02, "global_clipnorm": 1.5}),
    ("adagrad", {"learning_rate": 0.05, "clipvalue": 0.5}),
    ("adamax", {"learning_rate": 0.01, "weight_decay": 0.02, "clipnorm": 1.0}),
    ("nadam", {"learning_rate": 0.01}),  # u_product advanced on the device by each replay
    ("nadam", {"learning_rate": 0.01, "beta_1": 0.8, "weight_decay": 0.02, "global_clipnorm": 2.0}),
    ("lion", {"learning_rate": 0.001, "clipnorm": 1.0}),
    ("adadelta", {"learning_rate": 1.0, "global_clipnorm": 1.5}),
    ("ftrl", {"learning_rate": 0.05, "l1_regularization_strength": 0.01, "beta": 0.1}),
]
SCHEDULED = [(kind, name) for name in sorted(SCHEDULES) for kind in ("adam", "sgd", "rmsprop")]


@pytest.mark.parametrize("kind,cfg", CONFIGS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CONFIGS)])
def test_a_recorded_step_replays_like_eager_steps(backend, device, monkeypatch, kind, cfg):
    make = lambda: CLASSES[kind](**cfg)  # noqa: E731
    assert make().capturable and make().capture_blocker is None
    eager, graphed, pe, pg, grads = _eager_vs_replayed(make, backend, device, monkeypatch, set_lr={5: 0.002})
    _assert_same(eager, graphed, pe, pg)
    assert graphed.iterations == len(grads) and graphed.learning_rate == 0.002
    # and the replays did update correctly (not merely as wrongly as the eager steps): Keras' rule in float64,
    # with the rate changed before step 5 as a callback would
    ref = KerasF64(kind, _params(device), **dict(cfg, learning_rate=cfg["learning_rate"]))
    for t, gs in enumerate(grads):
        if t == 5:
            ref.cfg["learning_rate"] = 0.002
        ref.step([g.double() for g in gs])
    for i, (p, r) in enumerate(zip(pg, ref.p, strict=True)):
        assert_close_verbose(p, r, atol=2e-5, rtol=1e-5, name=f"{kind} param {i} after replays")


@pytest.mark.parametrize("kind,schedule", SCHEDULED, ids=[f"{k}-{s}" for k, s in SCHEDULED])
def test_a_recorded_step_follows_the_schedule(backend, device, monkeypatch, kind, schedule):
    """The schedule's rate is computed from the device step count inside the step: each replay uses its own."""
    if backend == "triton" and kind != "adam":
        pytest.skip("the interpreter is slow: one rule per schedule on the Triton path")
    cfg = {"learning_rate": SCHEDULES[schedule]()}
    if kind == "sgd":
        cfg["momentum"] = 0.9
    make = lambda: CLASSES[kind](**cfg)  # noqa: E731
    steps = 16
    eager, graphed, pe, pg, grads = _eager_vs_replayed(make, backend, device, monkeypatch, steps=steps)
    _assert_same(eager, graphed, pe, pg)
    ref = KerasF64(kind, _params(device), **cfg)
    for gs in grads:
        ref.step([g.double() for g in gs])
    for i, (p, r) in enumerate(zip(pg, ref.p, strict=True)):
        assert_close_verbose(p, r, atol=2e-5, rtol=1e-5, name=f"{kind}+{schedule} param {i} after replays")
    assert graphed.learning_rate == cfg["learning_rate"](steps)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_device_forms_of_the_schedules(device, name):
    """A built-in schedule on a device step: no host sync (recorded and replayed), float32, within fp32 rounding
    of the host value, and bit for bit what the eager device call gives."""
    s = SCHEDULES[name]()
    assert schedules.has_device_form(s)
    step = torch.zeros((), dtype=torch.int64, device=device)
    graph = EmulatedGraph(s, (step,))
    for t in (0, 1, 3, 4, 5, 9, 10, 11, 12, 17, 40, 10**6):
        step.fill_(t)
        got = graph.replay()
        assert got.dtype == torch.float32 and got.shape == () and got.device == step.device
        assert torch.equal(got, s(step))
        assert float(got) == pytest.approx(s(t), rel=2e-7, abs=1e-9)
    assert float(schedules.PiecewiseConstantDecay([], [0.3])(step)) == pytest.approx(0.3)


class Halving(schedules.LearningRateSchedule):
    """A user's schedule: Python math on the host step."""

    def __call__(self, step):
        return 0.05 * 0.5 ** (step // 4)

    def get_config(self):
        return {}


class Exponential(schedules.ExponentialDecay):
    """A subclass of a built-in with its own __call__ is host code too."""

    def __call__(self, step):
        return float(super().__call__(int(step)))


def test_a_host_computed_rate_is_reported_and_still_trains(device):
    for lr, reason in (
        (Halving(), "a custom LearningRateSchedule is evaluated on the host"),
        (Exponential(0.05, 4, 0.5), "a custom LearningRateSchedule is evaluated on the host"),
        (lambda: 0.01, "a callable learning_rate is evaluated on the host"),
    ):
        opt = optimizers.SGD(learning_rate=lr, momentum=0.9)
        assert not opt.capturable and opt.capture_blocker == reason
        assert optimizers.LossScaleOptimizer(opt).capture_blocker == reason
    assert schedules.has_device_form(type("Kept", (schedules.CosineDecay,), {})(0.1, 10))
    # today's behaviour for the host rate: evaluated at the host's count, no sync needed
    params = _params(device)
    grads = _grads(12)
    ref = KerasF64("sgd", params, learning_rate=lambda it: 0.05 * 0.5 ** (it // 4), momentum=0.9)
    opt = optimizers.SGD(learning_rate=Halving(), momentum=0.9)
    opt.build(params)
    for gs in grads:
        _feed(opt, params, gs)
        opt.step()
        ref.step([g.double() for g in gs])
    for i, (p, r) in enumerate(zip(params, ref.p, strict=True)):
        assert_close_verbose(p, r, atol=2e-5, rtol=1e-5, name=f"host schedule param {i}")
    assert opt.learning_rate == Halving()(12)


def test_the_host_side_stays_keras(device):
    """learning_rate and iterations read and write the device values; a set rate reads back as set."""
    opt = optimizers.Adam(learning_rate=0.1)
    opt.iterations = 3  # before build: kept until build resets it, as before
    params = _params(device)
    opt.build(params)
    assert opt.iterations == 0 and isinstance(opt.iterations, int) and opt.learning_rate == 0.1
    opt.learning_rate = 0.05
    assert opt.learning_rate == 0.05
    opt.iterations = 7
    assert opt.iterations == 7
    state = opt.state_dict()
    assert state["iterations"].dtype == torch.int64 and state["iterations"].device.type == "cpu"
    assert state["learning_rate"].dtype == torch.float64 and float(state["learning_rate"]) == 0.05
    other = optimizers.Adam(learning_rate=0.3)
    other.build(_params(device))
    other.load_state_dict(state)
    assert other.iterations == 7 and other.learning_rate == 0.05
    with pytest.raises(ValueError, match="iterations"):
        opt.iterations = -1
    with pytest.raises(ValueError, match=r"found_inf.*0-d float32"):
        opt.step(found_inf=torch.zeros(1, device=device))


# ---- dynamic loss scaling on the device ---------------------------------------------------------------------------
def _keras_loss_scale(finite, initial, growth):
    """Keras' LossScaleOptimizer rule on the host: the scale each step unscales with, and the scale after."""
    scale, counter, used = initial, 0, []
    for ok in finite:
        used.append(scale)
        if ok:
            if counter == growth - 1:
                counter, scale = 0, scale * 2.0
            else:
                counter += 1
        else:
            counter, scale = 0, scale * 0.5
    return used, scale, counter


@pytest.mark.parametrize("initial", [2.0**4, 1000.0], ids=["power-of-two", "other"])
@pytest.mark.parametrize("kind,cfg", [("adam", {"learning_rate": 0.01}), ("sgd", {"momentum": 0.9}),
                                      ("rmsprop", {"centered": True, "clipnorm": 1.0}),
                                      ("nadam", {"learning_rate": 0.01}), ("ftrl", {"learning_rate": 0.05})],
                         ids=["adam", "sgd", "rmsprop", "nadam", "ftrl"])  # fmt: skip
def test_loss_scaling_replays_like_eager_and_keras(backend, device, monkeypatch, kind, cfg, initial):
    """Recorded once, replayed over gradients with infs and NaNs at chosen steps: bit for bit the eager steps;
    the scale history and the skipped steps follow Keras' rule; the parameters are those of the inner optimizer
    stepped only on the finite steps, with the gradients divided by the scale."""
    if backend == "triton" and (kind != "adam" or initial != 16.0):
        pytest.skip("the interpreter is slow: Adam with the power-of-two scale on the Triton path")
    steps, growth = 11, 3
    bad = {1: "inf", 4: "nan", 5: "inf"}  # a skip after one good step, then two in a row; growth at 3 good steps
    finite = [t not in bad for t in range(steps)]
    used, final_scale, final_counter = _keras_loss_scale(finite, initial, growth)
    assert final_scale != initial and any(b > a for a, b in zip(used, used[1:], strict=False))  # grew and shrank
    make = lambda: optimizers.LossScaleOptimizer(CLASSES[kind](**cfg), initial, growth)  # noqa: E731
    eager, graphed = make(), make()
    ref = CLASSES[kind](**cfg)  # the inner rule alone, stepped on the finite steps
    pe, pg, pr = _params(device), _params(device), _params(device)
    for opt, params in ((eager, pe), (graphed, pg), (ref, pr)):
        opt.build(params)
    assert graphed.capturable
    graph = None
    for t, gs in enumerate(_grads(steps, seed=5)):
        scale = used[t]
        assert eager.loss_scale == graphed.loss_scale == scale  # read between steps: syncs are fine here
        for opt, params in ((eager, pe), (graphed, pg)):
            _feed(opt, params, gs, scale)
            if t in bad:
                params[1].grad[3] = float(bad[t])
        before = [p.detach().clone() for p in pg]
        eager.step()
        if graph is None:
            graph = _record(graphed, backend, monkeypatch)
        else:
            graph.replay()
        if finite[t]:
            ref.zero_grad()
            for p, g in zip(pr, gs, strict=True):
                p.grad.copy_((g.to(device) * scale) / torch.tensor(scale, device=device))  # Keras' unscaling
            ref.step()
        else:
            assert all(torch.equal(a, b.detach()) for a, b in zip(before, pg, strict=True)), "skipped step moved"
    assert eager.loss_scale == graphed.loss_scale == final_scale
    assert int(graphed.state_dict()["loss_scale_good_steps"]) == final_counter
    assert eager.skipped_steps == graphed.skipped_steps == len(bad)
    assert graphed.iterations == eager.iterations == ref.iterations == steps - len(bad)
    _assert_same(eager, graphed, pe, pg)
    for i, (a, b) in enumerate(zip(pr, pg, strict=True)):
        assert torch.equal(a.detach(), b.detach()), f"param {i}: loss-scaled != the inner rule on finite steps"
    for a, b in zip(ref.variables, graphed.variables, strict=True):
        assert torch.equal(a, b)


def test_loss_scale_state_and_arguments(device):
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(learning_rate=0.5), initial_scale=8.0)
    assert opt.loss_scale == 8.0 and opt.skipped_steps == 0
    opt.load_state_dict({"loss_scale": torch.tensor(64.0, dtype=torch.float64)})  # before build: kept
    opt.build(_params(device))
    assert opt.loss_scale == 64.0
    state = opt.state_dict()
    assert state["loss_scale"].dtype == torch.float64 and state["loss_scale_good_steps"].dtype == torch.int64
    with pytest.raises(ValueError, match="without found_inf"):
        opt.step(found_inf=torch.zeros((), device=device))
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        optimizers.LossScaleOptimizer("sgd", dynamic_growth_steps=True)
    assert math.isclose(float(opt.scale_loss(torch.tensor(0.5, device=device))), 32.0)


# ---- what the trainer will capture: the whole train step, the optimizer included -------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the Triton launches need a real CUDA graph: "
                    "tests/test_cuda_graphs.py captures fit's steps there")  # fmt: skip
@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_a_whole_train_step_records_once_and_replays_like_eager(policy):
    """Forward, loss, backward, metrics and the optimizer step (under mixed_float16: loss scaling, a skipped step
    after an overflow, the scale's growth), recorded once and replayed: bit for bit what eager steps give."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(10, 32, 12, generator=gen)
    y = torch.randint(0, 4, (10, 32), generator=gen)
    x[6, 0, 0] = 3e38 if policy == "mixed_float16" else 0.0  # float16 overflows at this batch: a skipped step

    def build():
        keras.utils.set_random_seed(3)
        keras.mixed_precision.set_global_policy(policy)
        model = keras.Sequential([keras.Input(shape=(12,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(4)])  # fmt: skip
        sched = schedules.ExponentialDecay(0.01, 3, 0.5)
        inner = optimizers.Adam(learning_rate=sched)
        opt = optimizers.LossScaleOptimizer(inner, 2.0**4, 2) if policy == "mixed_float16" else inner
        model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])  # fmt: skip
        model.fit(x[0].numpy(), y[0].numpy(), batch_size=32, epochs=1, verbose=0)  # builds everything: 1 step
        return model

    try:
        eager, graphed = build(), build()
        assert graphed.optimizer.capturable
        static = (x[1].clone(), y[1].clone())
        graph = None
        with keras.kernels.known_label_range([y[1:].flatten(), static[1]], 0, 3):
            for b in range(1, 10):
                eager.train_step((x[b], y[b]))  # Keras' signature: the packed batch
                static[0].copy_(x[b])
                static[1].copy_(y[b])
                if graph is None:
                    graph = EmulatedGraph(lambda xb, yb: graphed.train_step((xb, yb)), static)
                else:
                    graph.replay()
        for a, b in zip(eager.weights, graphed.weights, strict=True):
            assert torch.equal(a.detach(), b.detach())
        assert graphed.optimizer.iterations == eager.optimizer.iterations
        if policy == "mixed_float16":
            assert graphed.optimizer.skipped_steps == eager.optimizer.skipped_steps == 1
            assert graphed.optimizer.iterations == 9  # 10 steps, one skipped
            assert graphed.optimizer.loss_scale == eager.optimizer.loss_scale
    finally:
        keras.mixed_precision.set_global_policy("float32")
