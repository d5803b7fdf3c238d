"""``Lamb``, ``Adafactor`` and EMA (``use_ema``) against float64 references of Keras' rules, and their steps
recorded once and replayed (the capture contract of tests/test_optimizer_capture.py).

The references are written here from Keras' update rules (keras/src/optimizers/lamb.py, adafactor.py and
base_optimizer.py's EMA) in float64, per variable: the fp32 flat-buffer implementation must follow them within
fp32 rounding over many steps, which a comparison with Keras' own fp32 (tests/compat/) could not tell apart from a
shared rounding bias. The variables are the suite's three (a 2-D, a 1-D and a 3-D one: Adafactor's factored moments
over the last two axes) and the gradients alternate large and small steps.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import assert_close_verbose
from tests.test_optimizer_capture import _assert_same, _eager_vs_replayed, _feed, _grads, _params, _record
from tritonnn import optimizers
from tritonnn.optimizers import schedules


def _clip(grads, cfg):
    if cfg.get("clipnorm"):
        return [g * cfg["clipnorm"] / max(float(g.norm()), cfg["clipnorm"]) for g in grads]
    if cfg.get("global_clipnorm"):
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
        return [g * cfg["global_clipnorm"] / max(norm, cfg["global_clipnorm"]) for g in grads]
    if cfg.get("clipvalue"):
        return [g.clamp(-cfg["clipvalue"], cfg["clipvalue"]) for g in grads]
    return grads


def _ema_step(average, params, cfg, iterations):
    """Keras' EMA after a step: ``iterations`` counts the steps before this one."""
    if not cfg.get("use_ema"):
        return
    momentum = cfg.get("ema_momentum", 0.99) if iterations else 0.0
    for a, p in zip(average, params, strict=True):
        a.copy_(momentum * a + (1 - momentum) * p)
    frequency = cfg.get("ema_overwrite_frequency")
    if frequency and (iterations + 1) % frequency == 0:
        for a, p in zip(average, params, strict=True):
            p.copy_(a)


class Reference:
    """Keras' Lamb / Adafactor (and EMA) in float64, one variable at a time."""

    def __init__(self, kind, params, **cfg):
        self.kind, self.cfg = kind, cfg
        self.p = [p.detach().double().cpu().clone() for p in params]
        self.state: dict = {}
        self.average = [torch.zeros_like(p) for p in self.p]
        self.iterations = 0

    def lr(self):
        lr = self.cfg.get("learning_rate", 0.001)
        return float(lr(self.iterations)) if callable(lr) else lr

    def step(self, grads):
        c, lr, t = self.cfg, self.lr(), self.iterations + 1
        grads = _clip([g.double() for g in grads], c)
        for i, (p, g) in enumerate(zip(self.p, grads, strict=True)):
            if c.get("weight_decay"):
                p *= 1 - c["weight_decay"] * lr
            if self.kind == "lamb":
                b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-7)
                m = self.state.setdefault(("m", i), torch.zeros_like(p))
                v = self.state.setdefault(("v", i), torch.zeros_like(p))
                m += (g - m) * (1 - b1)
                v += (g * g - v) * (1 - b2)
                u = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
                w_norm, u_norm = float(p.norm()), float(u.norm())
                ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
                p -= ratio * lr * u
            else:
                decay, eps1 = c.get("beta_2_decay", -0.8), c.get("epsilon_1", 1e-30)
                eps2, threshold = c.get("epsilon_2", 1e-3), c.get("clip_threshold", 1.0)
                rho = min(lr, 1 / math.sqrt(t))
                alpha = max(eps2, float(p.square().mean().sqrt())) * rho
                beta_2_t = 1 - t**decay
                sq = g * g + eps1
                if p.dim() >= 2:
                    r = self.state.setdefault(("r", i), torch.zeros(p.shape[:-1], dtype=p.dtype))
                    col = self.state.setdefault(("c", i), torch.zeros(p.shape[:-2] + p.shape[-1:], dtype=p.dtype))
                    r.copy_(beta_2_t * r + (1 - beta_2_t) * sq.mean(-1))
                    col.copy_(beta_2_t * col + (1 - beta_2_t) * sq.mean(-2))
                    v = (r / r.mean(-1, keepdim=True))[..., None] * col[..., None, :]
                else:
                    v = self.state.setdefault(("v", i), torch.zeros_like(p))
                    v.copy_(beta_2_t * v + (1 - beta_2_t) * sq)
                u = g / v.sqrt()
                u = u / max(1.0, float(u.square().mean().sqrt()) / threshold)
                p -= alpha * u
        _ema_step(self.average, self.p, c, self.iterations)
        self.iterations += 1


CASES = [
    ("lamb", {"learning_rate": 0.01}),
    (
        "lamb",
        {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-5, "weight_decay": 0.1, "clipnorm": 1.0},
    ),
    (
        "lamb",
        {
            "learning_rate": 0.02,
            "global_clipnorm": 2.0,
            "use_ema": True,
            "ema_momentum": 0.8,
            "ema_overwrite_frequency": 4,
        },
    ),
    ("adafactor", {}),
    ("adafactor", {"learning_rate": 0.5, "clip_threshold": 0.3, "beta_2_decay": -0.6, "weight_decay": 0.05}),
    ("adafactor", {"learning_rate": 0.05, "epsilon_2": 0.5, "clipvalue": 0.5, "use_ema": True}),
    ("adafactor", {"learning_rate": 0.2, "relative_step": False, "epsilon_1": 1e-3, "clipnorm": 1.0}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "use_ema": True, "ema_momentum": 0.7}),
    ("adam", {"learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 3}),
]
CLASSES = {"lamb": optimizers.Lamb, "adafactor": optimizers.Adafactor, "sgd": optimizers.SGD, "adam": optimizers.Adam}


class WithEMA:
    """The suite's float64 Keras rules (tests/test_optimizers.py) followed by Keras' EMA."""

    def __init__(self, kind, params, **cfg):
        from tests.test_optimizers import KerasF64

        self.cfg = cfg
        self.rule = KerasF64(kind, params, **{k: v for k, v in cfg.items() if "ema" not in k})
        self.p = self.rule.p
        self.average = [torch.zeros_like(p) for p in self.p]

    def step(self, grads):
        before = self.rule.iterations
        self.rule.step(grads)
        _ema_step(self.average, self.p, self.cfg, before)


@pytest.mark.parametrize("kind,cfg", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_matches_the_float64_reference(device, kind, cfg):
    steps = 12
    params = _params(device)
    ref = (Reference if kind in ("lamb", "adafactor") else WithEMA)(kind, params, **cfg)
    opt = CLASSES[kind](**cfg)
    opt.build(params)
    for gs in _grads(steps, seed=3):
        _feed(opt, params, gs)
        opt.step()
        ref.step([g.double() for g in gs])
    for i, (p, r) in enumerate(zip(params, ref.p, strict=True)):
        assert_close_verbose(p.detach().cpu(), r.float(), atol=2e-5, rtol=1e-5, name=f"{kind} param {i}")
    if cfg.get("use_ema"):
        for i, (a, r) in enumerate(zip(opt._model_variables_moving_average, ref.average, strict=True)):
            assert_close_verbose(a.cpu(), r.float(), atol=2e-5, rtol=1e-5, name=f"{kind} average {i}")
    assert opt.iterations == steps


def test_the_reference_sees_what_it_should():
    """The cases reach the branches they are there for: Adafactor's relative step (1 / sqrt(t) below the rate),
    its RMS clipping, and an EMA overwrite."""
    params = _params("cpu")
    grads = _grads(4, seed=3)
    opt = optimizers.Adafactor(learning_rate=0.5, clip_threshold=0.3)
    opt.build(params)
    for gs in grads:
        _feed(opt, params, gs)
        opt.step()
    plain = optimizers.Adafactor(learning_rate=0.25, clip_threshold=0.3)  # = 1 / sqrt(4) at the 4th step only
    other = _params("cpu")
    plain.build(other)
    for gs in grads:
        _feed(plain, other, gs)
        plain.step()
    assert not torch.equal(params[0], other[0])  # steps 1-3 differ: min(lr, 1 / sqrt(t)) is the rate
    ema = optimizers.SGD(0.1, use_ema=True, ema_overwrite_frequency=2)
    ps = _params("cpu")
    ema.build(ps)
    for t, gs in enumerate(grads):
        _feed(ema, ps, gs)
        ema.step()
        same = all(torch.equal(p, a) for p, a in zip(ps, ema._model_variables_moving_average, strict=True))
        assert same == (t % 2 == 1 or t == 0)  # the first average is the weights; then every second step


PER_VARIABLE = [
    ("lamb", {"learning_rate": 0.01}),
    (
        "lamb",
        {"learning_rate": 0.01, "weight_decay": 0.1, "clipnorm": 1.0, "use_ema": True, "ema_overwrite_frequency": 3},
    ),
    ("adafactor", {"learning_rate": 0.3}),
    ("adafactor", {"learning_rate": 0.3, "global_clipnorm": 2.0, "weight_decay": 0.05, "use_ema": True}),
]


@pytest.mark.parametrize("kind,cfg", PER_VARIABLE, ids=[f"{k}-{i}" for i, (k, _) in enumerate(PER_VARIABLE)])
def test_a_recorded_per_variable_step_replays_like_eager_steps(device, monkeypatch, kind, cfg):
    """Lamb's and Adafactor's steps are torch ops on the device scalars: recorded once (host syncs refused), the
    replays equal eager steps bit for bit, the rate changed between steps included."""
    make = lambda: CLASSES[kind](**cfg)  # noqa: E731
    assert make().capturable and make().capture_blocker is None
    eager, graphed, pe, pg, grads = _eager_vs_replayed(make, "torch", device, monkeypatch, set_lr={5: 0.002})
    _assert_same(eager, graphed, pe, pg)
    assert graphed.iterations == len(grads) and graphed.learning_rate == 0.002


@pytest.mark.parametrize("kind", ["lamb", "adafactor"])
def test_a_recorded_step_follows_a_schedule(device, monkeypatch, kind):
    sched = lambda: schedules.CosineDecay(0.0, decay_steps=12, alpha=0.1, warmup_target=0.05, warmup_steps=5)  # noqa: E731
    make = lambda: CLASSES[kind](learning_rate=sched())  # noqa: E731
    eager, graphed, pe, pg, grads = _eager_vs_replayed(make, "torch", device, monkeypatch, steps=10)
    _assert_same(eager, graphed, pe, pg)
    ref = Reference(kind, _params(device), learning_rate=sched())
    for gs in grads:
        ref.step([g.double() for g in gs])
    for i, (p, r) in enumerate(zip(pg, ref.p, strict=True)):
        assert_close_verbose(p.detach().cpu(), r.float(), atol=2e-5, rtol=1e-5, name=f"{kind} scheduled param {i}")


EMA = [
    ("adam", {"learning_rate": 0.01, "use_ema": True}),
    (
        "sgd",
        {"learning_rate": 0.05, "momentum": 0.9, "use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 3},
    ),
]


@pytest.mark.parametrize("kind,cfg", EMA, ids=[k for k, _ in EMA])
def test_a_recorded_step_with_ema_replays_like_eager_steps(backend, device, monkeypatch, kind, cfg):
    """The average's update and overwrite read the device count: replayed steps average and overwrite at the
    right steps, on the fused kernels' paths (torch, and Triton under the interpreter) alike."""
    make = lambda: CLASSES[kind](**cfg)  # noqa: E731
    assert make().capturable
    eager, graphed, pe, pg, _ = _eager_vs_replayed(make, backend, device, monkeypatch)
    _assert_same(eager, graphed, pe, pg)


@pytest.mark.parametrize("kind,cfg", [("lamb", {"learning_rate": 0.01, "use_ema": True}),
                                      ("adafactor", {"learning_rate": 0.3, "clipnorm": 1.0}),
                                      ("adam", {"learning_rate": 0.01, "use_ema": True,
                                                "ema_overwrite_frequency": 2})],
                         ids=["lamb", "adafactor", "adam-ema"])  # fmt: skip
def test_loss_scaling_skips_whole_steps(device, monkeypatch, kind, cfg):
    """Around a LossScaleOptimizer, a step whose gradients overflowed changes nothing (weights, states, the
    average, the factored moments, the count); the others are the inner rule's on the unscaled gradients. Recorded
    once, the replays match the eager steps bit for bit."""
    steps, bad = 7, {1: "inf", 4: "nan"}
    make = lambda: optimizers.LossScaleOptimizer(CLASSES[kind](**cfg), initial_scale=16.0, dynamic_growth_steps=100)  # noqa: E731
    eager, graphed, ref = make(), make(), CLASSES[kind](**cfg)
    pe, pg, pr = _params(device), _params(device), _params(device)
    for opt, params in ((eager, pe), (graphed, pg), (ref, pr)):
        opt.build(params)
    graph = None
    for t, gs in enumerate(_grads(steps, seed=6)):
        scale = eager.loss_scale
        for opt, params in ((eager, pe), (graphed, pg)):
            _feed(opt, params, gs, scale)
            if t in bad:
                params[0].grad[0, 0] = float(bad[t])
        before = graphed.state_dict()
        eager.step()
        if graph is None:
            graph = _record(graphed, "torch", monkeypatch)
        else:
            graph.replay()
        if t in bad:
            after = graphed.state_dict()
            assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("loss_scale")), t
        else:
            _feed(ref, pr, [g * scale / scale for g in gs])
            ref.step()
    _assert_same(eager, graphed, pe, pg)
    assert graphed.iterations == ref.iterations == steps - len(bad) and graphed.skipped_steps == len(bad)
    for a, b in zip(pr, pg, strict=True):
        assert torch.equal(a.detach(), b.detach())


def test_state_dict_holds_the_factored_moments_and_resumes_exactly(device):
    grads = _grads(8, seed=4)
    straight = _params(device, seed=2)
    opt = optimizers.Adafactor(learning_rate=0.3, use_ema=True)
    opt.build(straight)
    for gs in grads:
        _feed(opt, straight, gs)
        opt.step()
    first = _params(device, seed=2)
    half = optimizers.Adafactor(learning_rate=0.3, use_ema=True)
    half.build(first)
    for gs in grads[:5]:
        _feed(half, first, gs)
        half.step()
    state = half.state_dict()
    # r and c of the (23, 37) and (5, 7, 9) variables: 23 + 37 + 35 + 45
    assert state["factored_moments"].shape == (23 + 37 + 35 + 45,) and {"velocities", "average"} <= set(state)
    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in first]
    resumed = optimizers.Adafactor(learning_rate=0.3, use_ema=True)
    resumed.load_state_dict(state)  # before build: applied when built
    resumed.build(resumed_params)
    for gs in grads[5:]:
        _feed(resumed, resumed_params, gs)
        resumed.step()
    for a, b in zip(straight, resumed_params, strict=True):
        assert torch.equal(a.detach(), b.detach())
    for a, b in zip(opt.variables, resumed.variables, strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="factored_moments"):
        resumed.load_state_dict({k: v for k, v in state.items() if k != "factored_moments"})
    with pytest.raises(ValueError, match="Missing.*average"):
        resumed.load_state_dict({k: v for k, v in state.items() if k != "average"})


def test_a_host_rate_is_reported():
    for cls in (optimizers.Lamb, optimizers.Adafactor):
        opt = cls(learning_rate=lambda: 0.01)
        assert opt.capture_blocker == "a callable learning_rate is evaluated on the host"
