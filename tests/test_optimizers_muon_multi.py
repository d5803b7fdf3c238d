"""``Muon``, ``ScheduleFreeAdamW`` and ``MultiOptimizer`` against float64 references of Keras' rules, and their steps
recorded once and replayed (the capture contract of tests/test_optimizer_capture.py).

The references are written here from Keras' update rules (keras/src/optimizers/muon.py, schedule_free_adamw.py and
multi_optimizer.py) in float64, one variable at a time; the fp32 implementation over the flat buffers must follow
them within fp32 rounding over many steps. The variables (plain parameters: Muon chooses by shape alone) are two
2-D ones of one shape (orthogonalized as one batch), a tall 2-D one (transposed), and 1-D, 3-D and scalar ones
(AdamW's), with gradients that alternate large and small steps.
"""

from __future__ import annotations

import math

import pytest
import torch

import tritonnn
from tests.helpers import assert_close_verbose
from tests.test_optimizer_capture import _feed
from tritonnn import optimizers
from tritonnn.optimizers import schedules
from tritonnn.trainers.step_runner import EmulatedGraph

SHAPES = [(12, 20), (20,), (16, 6), (12, 20), (3, 4, 5), ()]
MUON = [len(s) == 2 for s in SHAPES]


def _params(device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter((torch.randn(s, generator=gen) * 0.5).to(device)) for s in SHAPES]


def _grads(steps, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen) * (2.0 if t % 3 else 0.1) for s in SHAPES] for t in range(steps)]


class Reference:
    """Keras' Muon / ScheduleFreeAdamW in float64, one variable at a time (``cfg``: the optimizer's arguments)."""

    def __init__(self, kind, params, **cfg):
        self.kind, self.cfg = kind, cfg
        self.p = [p.detach().double().cpu().clone() for p in params]
        self.m = [torch.zeros_like(p) for p in self.p] if kind == "muon" else [p.clone() for p in self.p]
        self.v = [torch.zeros_like(p) for p in self.p]
        self.iterations = 0

    def lr(self):
        lr = self.cfg.get("learning_rate", 0.001 if self.kind == "muon" else 0.0025)
        return float(lr(self.iterations)) if callable(lr) else lr

    def step(self, grads):
        (self._muon if self.kind == "muon" else self._schedule_free)([g.double() for g in grads])
        self.iterations += 1

    def _muon(self, grads):
        c, lr, t = self.cfg, self.lr(), self.iterations + 1
        b1, b2, eps = c.get("adam_beta_1", 0.9), c.get("adam_beta_2", 0.999), c.get("epsilon", 1e-7)
        mu, rms = c.get("momentum", 0.95), c.get("rms_rate", 0.2)
        a_, b_, c_ = c.get("muon_a", 3.4445), c.get("muon_b", -4.7750), c.get("muon_c", 2.0315)
        for i, (p, g, m, v) in enumerate(zip(self.p, grads, self.m, self.v, strict=True)):
            decay = c.get("weight_decay", 0.004) if MUON[i] else c.get("adam_weight_decay", 0.004)
            if decay:
                p -= p * decay * lr
            if MUON[i]:
                m += g + m * (mu - 1)
                x = g + mu * m if c.get("nesterov", True) else m.clone()
                tall = x.shape[0] > x.shape[1]
                x = x.T if tall else x
                x = x / (torch.linalg.norm(x) + 1e-7)
                for _ in range(c.get("ns_steps", 5)):
                    gram = x @ x.T
                    x = a_ * x + (b_ * gram + c_ * gram @ gram) @ x
                x = x.T if tall else x
                update = lr * x * (math.sqrt(max(p.shape)) * rms if rms is not None else 1.0)
                p -= update
            else:
                alpha = lr * c.get("adam_lr_ratio", 1) * math.sqrt(1 - b2**t) / (1 - b1**t)
                m += (g - m) * (1 - b1)
                v += (g * g - v) * (1 - b2)
                p -= m * alpha / (v.sqrt() + eps)

    def _schedule_free(self, grads):
        c, lr, t = self.cfg, self.lr(), self.iterations + 1
        b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-8)
        warmup, decay = c.get("warmup_steps", 0), c.get("weight_decay")
        for y, g, z, v in zip(self.p, grads, self.m, self.v, strict=True):
            if decay:
                y *= 1 - decay * lr
            rate = lr * min(t / warmup, 1.0) if warmup > 0 else lr
            v += (g * g - v) * (1 - b2)
            z -= rate * g / ((v / (1 - b2**t)).sqrt() + eps)
            x = (y - (1 - b1) * z) / b1  # from the updated z, as Keras computes it on torch
            x = (1 - 1 / t) * x + z / t
            y.copy_((1 - b1) * z + b1 * x)


CASES = [
    ("muon", {"learning_rate": 0.02}),
    ("muon", {"learning_rate": 0.02, "nesterov": False, "momentum": 0.8, "rms_rate": None, "ns_steps": 3}),
    ("muon", {"learning_rate": 0.05, "weight_decay": 0.2, "adam_weight_decay": None, "adam_lr_ratio": 0.3}),
    ("schedule_free", {"learning_rate": 0.02}),
    ("schedule_free", {"learning_rate": 0.02, "warmup_steps": 4, "weight_decay": 0.1, "beta_1": 0.8}),
]
CLASSES = {"muon": optimizers.Muon, "schedule_free": optimizers.ScheduleFreeAdamW}


@pytest.mark.parametrize("kind,cfg", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_matches_the_float64_reference(device, kind, cfg):
    steps = 12
    params = _params(device)
    ref = Reference(kind, params, **cfg)
    opt = CLASSES[kind](**cfg)
    opt.build(params)
    assert [not opt._should_use_adamw(p) for p in params] == MUON if kind == "muon" else True
    for gs in _grads(steps, seed=3):
        _feed(opt, params, gs)
        opt.step()
        ref.step(gs)
    for i, (p, r) in enumerate(zip(params, ref.p, strict=True)):
        assert_close_verbose(p.detach().cpu(), r.float(), atol=2e-5, rtol=1e-5, name=f"{kind} param {i}")
    assert opt.iterations == steps


def _record(opt):
    """Record ``opt.step()`` (running this step); ``replay()`` runs the later ones: a CUDA graph on a GPU, else
    tritonnn's EmulatedGraph (host syncs refused)."""
    if opt.params[0].is_cuda:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            opt.step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            opt.step()
        return graph
    return EmulatedGraph(opt.step, ())


def _multi():
    """The 2-D variables on Muon, the 1-D one on SGD with momentum and EMA, the others on Adam (a selector)."""
    muon, sgd = optimizers.Muon(learning_rate=0.02), optimizers.SGD(0.05, momentum=0.9, use_ema=True)
    adam = optimizers.Adam(0.01)
    return optimizers.MultiOptimizer(lambda v: muon if v.dim() == 2 else sgd if v.dim() == 1 else adam)


MAKERS = {
    "muon": lambda: optimizers.Muon(learning_rate=0.02, clipnorm=1.0, use_ema=True, ema_overwrite_frequency=3),
    "muon_schedule": lambda: optimizers.Muon(learning_rate=schedules.CosineDecay(0.05, decay_steps=6)),
    "schedule_free": lambda: optimizers.ScheduleFreeAdamW(learning_rate=0.02, warmup_steps=3, global_clipnorm=2.0),
    "multi": _multi,
}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_a_recorded_step_replays_like_eager_steps(device, kind):
    """The steps are device ops only: recorded once (host syncs refused), the replays equal eager steps bit for
    bit, a rate changed between steps included (on every sub-optimizer of a MultiOptimizer)."""
    make = MAKERS[kind]
    assert make().capture_blocker is None
    eager, graphed = make(), make()
    pe, pg = _params(device), _params(device)
    eager.build(pe)
    graphed.build(pg)
    graph = None
    for t, gs in enumerate(_grads(8)):
        if t == 5 and kind != "muon_schedule":
            for opt in (eager, graphed):
                for sub in getattr(opt, "optimizers", [opt]):
                    sub.learning_rate = 0.002
        _feed(eager, pe, gs)
        _feed(graphed, pg, gs)
        eager.step()
        if graph is None:
            graph = _record(graphed)
        else:
            graph.replay()
    for i, (a, b) in enumerate(zip(pe, pg, strict=True)):
        assert torch.equal(a.detach(), b.detach()), f"param {i}: replayed != eager"
    se, sg = eager.state_dict(), graphed.state_dict()
    assert se.keys() == sg.keys() and all(torch.equal(se[k], sg[k]) for k in se)
    assert graphed.iterations == eager.iterations == 8


def test_a_host_rate_is_reported():
    for cls in (optimizers.Muon, optimizers.ScheduleFreeAdamW):
        assert cls(learning_rate=lambda: 0.01).capture_blocker == "a callable learning_rate is evaluated on the host"
    multi = optimizers.MultiOptimizer(optimizers.OptimizerMap(optimizers.SGD(), {"x": optimizers.Adam(lambda: 0.1)}))
    assert multi.capture_blocker is None  # unbuilt: nothing steps yet
    params = [tritonnn.Variable(torch.zeros(2, 2), name="x"), tritonnn.Variable(torch.zeros(2), name="b")]
    multi.build(params)
    assert multi.capture_blocker == f"{multi.optimizers[0].name}: a callable learning_rate is evaluated on the host"


@pytest.mark.parametrize("kind", ["muon", "schedule_free", "multi"])
def test_loss_scaling_skips_whole_steps(device, kind):
    """Around a LossScaleOptimizer, a step whose gradients overflowed changes nothing (weights, every state, the
    counts); the others are the inner rule's on the unscaled gradients."""
    inner = {
        "muon": lambda: optimizers.Muon(learning_rate=0.02, use_ema=True),
        "schedule_free": MAKERS["schedule_free"],
    }
    make_inner = inner.get(kind, _multi)
    steps, bad = 6, {1: "inf", 4: "nan"}
    opt, ref = optimizers.LossScaleOptimizer(make_inner(), initial_scale=16.0), make_inner()
    pg, pr = _params(device), _params(device)
    opt.build(pg)
    ref.build(pr)
    for t, gs in enumerate(_grads(steps, seed=6)):
        scale = opt.loss_scale
        _feed(opt, pg, gs, scale)
        if t in bad:
            pg[0].grad[0, 0] = float(bad[t])
        before = opt.state_dict()
        opt.step()
        if t in bad:
            after = opt.state_dict()
            assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("loss_scale")), t
        else:
            _feed(ref, pr, gs)
            ref.step()
    assert opt.iterations == ref.iterations == steps - len(bad) and opt.skipped_steps == len(bad)
    for a, b in zip(pr, pg, strict=True):
        assert torch.equal(a.detach(), b.detach())


def test_a_rebuild_routes_again_and_steps_only_what_it_routed():
    """fit builds the optimizer again when the trainable weights change (a layer frozen): the MultiOptimizer routes
    the new list, and a sub-optimizer left without variables no longer steps nor counts."""
    params = [tritonnn.Variable(torch.ones(2, 2), name="a"), tritonnn.Variable(torch.ones(2), name="b")]
    sgd, adam = optimizers.SGD(0.1, momentum=0.9), optimizers.Adam(0.1)
    multi = optimizers.MultiOptimizer(optimizers.OptimizerMap(adam, {"a": sgd}))
    multi.build(params)
    multi.apply([torch.ones(2, 2), torch.ones(2)], params)
    assert len(multi.variables) == 3 and (sgd.iterations, adam.iterations) == (1, 1)
    frozen = params[0].detach().clone()
    multi.build(params[1:])
    assert multi.iterations == 0 and len(multi.variables) == 2
    multi.apply([torch.ones(2)], params[1:])
    assert torch.equal(params[0].detach(), frozen) and (sgd.iterations, adam.iterations) == (1, 1)
    state = multi.state_dict()
    multi.load_state_dict({k: v for k, v in state.items() if not k.startswith("0/")})  # sgd's: not needed now
