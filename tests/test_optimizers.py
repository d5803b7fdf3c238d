"""tritonnn.optimizers: 20-step trajectories against float64 references of Keras' rules and against torch.optim
where the rules coincide, schedules, clipping, configs, state round trips and the flat-buffer contract.

Every trajectory test runs on both backends (``backend`` fixture): the Triton kernel under the interpreter on CPU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tritonnn as K
from tests.helpers import assert_close_verbose
from tritonnn import optimizers
from tritonnn.optimizers import schedules

SHAPES = [(23, 37), (37,), (5, 7, 9)]  # 1203 parameters in three variables
STEPS = 20


def _params(device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen).to(device)) for s in SHAPES]


def _grads(seed=1, steps=STEPS):
    """Per-step gradients with norms well above and below the clip values used below."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen, dtype=torch.float64) * (3.0 if t % 3 else 0.2) for s in SHAPES]
            for t in range(steps)]  # fmt: skip


# ------------------------------------------------------------------------------------------------------------------
# float64 reference of Keras 3's rules, per variable, from the Keras source
# ------------------------------------------------------------------------------------------------------------------
class KerasF64:
    def __init__(self, kind, params, **cfg):
        self.kind, self.cfg = kind, cfg
        self.p = [p.detach().double().cpu().clone() for p in params]
        self.state: dict = {}
        self.iterations = 0

    def lr(self):
        lr = self.cfg.get("learning_rate", {"sgd": 0.01}.get(self.kind, 0.001))
        return float(lr(self.iterations)) if callable(lr) else lr

    def step(self, grads):
        c = self.cfg
        lr = self.lr()
        if c.get("clipnorm"):
            grads = [g * c["clipnorm"] / max(float(g.norm()), c["clipnorm"]) for g in grads]
        elif c.get("global_clipnorm"):
            norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
            grads = [g * c["global_clipnorm"] * min(1 / norm, 1 / c["global_clipnorm"]) for g in grads]
        elif c.get("clipvalue"):
            grads = [g.clamp(-c["clipvalue"], c["clipvalue"]) for g in grads]
        wd = c.get("weight_decay", 0.004 if self.kind == "adamw" else None)
        t = self.iterations + 1
        if self.kind == "nadam":  # Keras' u_product, once per step before the variables
            b1 = c.get("beta_1", 0.9)
            self.state["u_product"] = self.state.get("u_product", 1.0) * b1 * (1 - 0.5 * 0.96**t)
        for i, (p, g) in enumerate(zip(self.p, grads, strict=True)):
            if wd:
                p -= p * wd * lr
            if self.kind == "sgd":
                mu = c.get("momentum", 0.0)
                if mu:
                    m = self.state.setdefault(("m", i), torch.zeros_like(p))
                    m.copy_(mu * m - lr * g)
                    p += mu * m - lr * g if c.get("nesterov") else m
                else:
                    p -= lr * g
            elif self.kind in ("adam", "adamw"):
                b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-7)
                m = self.state.setdefault(("m", i), torch.zeros_like(p))
                v = self.state.setdefault(("v", i), torch.zeros_like(p))
                m += (g - m) * (1 - b1)
                v += (g * g - v) * (1 - b2)
                if c.get("amsgrad"):
                    vh = self.state.setdefault(("vh", i), torch.zeros_like(p))
                    vh.copy_(torch.maximum(vh, v))
                    v = vh
                p -= m * (lr * math.sqrt(1 - b2**t) / (1 - b1**t)) / (v.sqrt() + eps)
            elif self.kind == "adagrad":
                eps = c.get("epsilon", 1e-7)
                acc = self.state.setdefault(("acc", i), torch.full_like(p, c.get("initial_accumulator_value", 0.1)))
                acc += g * g
                p -= lr * g / (acc + eps).sqrt()
            elif self.kind == "adamax":
                b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-7)
                m = self.state.setdefault(("m", i), torch.zeros_like(p))
                u = self.state.setdefault(("u", i), torch.zeros_like(p))
                m += (g - m) * (1 - b1)
                u.copy_(torch.maximum(b2 * u, g.abs()))
                p -= lr * m / ((1 - b1**t) * (u + eps))
            elif self.kind == "nadam":
                b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-7)
                m = self.state.setdefault(("m", i), torch.zeros_like(p))
                v = self.state.setdefault(("v", i), torch.zeros_like(p))
                u_t, u_t_1 = b1 * (1 - 0.5 * 0.96**t), b1 * (1 - 0.5 * 0.96 ** (t + 1))
                u_product_t = self.state["u_product"]
                m += (g - m) * (1 - b1)
                v += (g * g - v) * (1 - b2)
                m_hat = u_t_1 * m / (1 - u_product_t * u_t_1) + (1 - u_t) * g / (1 - u_product_t)
                p -= m_hat * lr / ((v / (1 - b2**t)).sqrt() + eps)
            elif self.kind == "lion":
                b1, b2 = c.get("beta_1", 0.9), c.get("beta_2", 0.99)
                m = self.state.setdefault(("m", i), torch.zeros_like(p))
                p -= lr * torch.sign(m * b1 + g * (1 - b1))
                m.copy_(m * b2 + g * (1 - b2))
            elif self.kind == "adadelta":
                rho, eps = c.get("rho", 0.95), c.get("epsilon", 1e-7)
                ag = self.state.setdefault(("ag", i), torch.zeros_like(p))
                ad = self.state.setdefault(("ad", i), torch.zeros_like(p))
                ag.copy_(rho * ag + (1 - rho) * g * g)
                delta = -((ad + eps).sqrt() * g / (ag + eps).sqrt())
                ad.copy_(rho * ad + (1 - rho) * delta * delta)
                p += lr * delta
            elif self.kind == "ftrl":
                power = c.get("learning_rate_power", -0.5)
                acc = self.state.setdefault(("acc", i), torch.full_like(p, c.get("initial_accumulator_value", 0.1)))
                lin = self.state.setdefault(("lin", i), torch.zeros_like(p))
                l1 = c.get("l1_regularization_strength", 0.0)
                l2 = c.get("l2_regularization_strength", 0.0) + c.get("beta", 0.0) / (2 * lr)
                grad_to_use = g + 2 * c.get("l2_shrinkage_regularization_strength", 0.0) * p
                new_acc = acc + g * g
                lin += grad_to_use - (new_acc ** (-power) - acc ** (-power)) / lr * p
                p.copy_((lin.clamp(-l1, l1) - lin) / (new_acc ** (-power) / lr + 2 * l2))
                acc.copy_(new_acc)
            else:
                rho, mu, eps = c.get("rho", 0.9), c.get("momentum", 0.0), c.get("epsilon", 1e-7)
                v = self.state.setdefault(("v", i), torch.zeros_like(p))
                v.copy_(rho * v + (1 - rho) * g * g)
                if c.get("centered"):
                    a = self.state.setdefault(("a", i), torch.zeros_like(p))
                    a.copy_(rho * a + (1 - rho) * g)
                    inc = lr * g / (v - a * a + eps).sqrt()
                else:
                    inc = lr * g / (v + eps).sqrt()
                if mu > 0:
                    mo = self.state.setdefault(("mo", i), torch.zeros_like(p))
                    mo.copy_(mu * mo + inc)
                    p -= mo
                else:
                    p -= inc
        self.iterations += 1


def _run(opt, params, grads):
    opt.build(params)
    for gs in grads:
        opt.zero_grad()
        for p, g in zip(params, gs, strict=True):
            p.grad.add_(g.to(p.device, torch.float32))  # as autograd accumulates: in place into the flat buffer
        opt.step()


FTRL_REGULARIZED = {"l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02, "beta": 0.1}
TRAJECTORIES = [
    ("adam", {}),
    ("adam", {"amsgrad": True, "beta_1": 0.8, "learning_rate": 0.01}),
    ("adam", {"clipnorm": 1.0, "learning_rate": 0.01}),
    ("adamw", {"global_clipnorm": 2.0, "learning_rate": 0.01, "weight_decay": 0.1}),
    ("sgd", {}),
    ("sgd", {"momentum": 0.9, "clipvalue": 0.5}),
    ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("rmsprop", {}),
    ("rmsprop", {"momentum": 0.5, "centered": True, "rho": 0.8, "global_clipnorm": 1.5}),
    ("rmsprop", {"momentum": 0.9, "clipnorm": 0.7, "weight_decay": 0.02}),
    ("adagrad", {"learning_rate": 0.05}),
    ("adagrad", {"learning_rate": 0.05, "initial_accumulator_value": 0.0, "clipnorm": 0.7, "weight_decay": 0.02}),
    ("adamax", {"learning_rate": 0.01}),
    ("adamax", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "global_clipnorm": 1.5}),
    ("nadam", {"learning_rate": 0.01}),
    ("nadam", {"learning_rate": 0.01, "beta_1": 0.8, "clipvalue": 0.5, "weight_decay": 0.02}),
    ("lion", {"learning_rate": 0.001}),
    ("lion", {"learning_rate": 0.001, "beta_1": 0.8, "beta_2": 0.95, "clipnorm": 0.7, "weight_decay": 0.1}),
    ("adadelta", {"learning_rate": 1.0}),
    ("adadelta", {"learning_rate": 1.0, "rho": 0.8, "epsilon": 1e-6, "global_clipnorm": 1.5, "weight_decay": 0.02}),
    ("ftrl", {"learning_rate": 0.05}),
    ("ftrl", {"learning_rate": 0.05, "learning_rate_power": -0.3, "clipvalue": 0.5, **FTRL_REGULARIZED}),
]
SCHEDULES = {
    "exponential": lambda: schedules.ExponentialDecay(0.05, decay_steps=4, decay_rate=0.5, staircase=True),
    "cosine_warmup": lambda: schedules.CosineDecay(0.0, decay_steps=12, alpha=0.1, warmup_target=0.05, warmup_steps=5),
    "piecewise": lambda: schedules.PiecewiseConstantDecay([3, 10], [0.05, 0.01, 0.002]),
    "cosine_restarts": lambda: schedules.CosineDecayRestarts(0.05, first_decay_steps=4, m_mul=0.5, alpha=0.1),
}
_CLASSES = {name.lower(): cls for name, cls in optimizers.ALL_OBJECTS.items() if name != "LossScaleOptimizer"}


@pytest.mark.parametrize("kind,cfg", TRAJECTORIES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(TRAJECTORIES)])
def test_trajectory_matches_float64_keras_rule(backend, device, kind, cfg):
    params = _params(device)
    ref = KerasF64(kind, params, **cfg)
    grads = _grads()
    _run(_CLASSES[kind](**cfg), params, grads)
    for g in grads:
        ref.step(g)
    for i, (p, r) in enumerate(zip(params, ref.p, strict=True)):
        assert p.dtype == torch.float32
        assert_close_verbose(p, r, atol=2e-5, rtol=1e-5, name=f"{kind} param {i}")


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("kind", ["adam", "sgd", "rmsprop", "nadam"])
def test_trajectory_with_schedule(backend, device, kind, schedule):
    params = _params(device, seed=2)
    cfg = {"learning_rate": SCHEDULES[schedule]()}
    if kind == "sgd":
        cfg["momentum"] = 0.9
    ref = KerasF64(kind, params, **cfg)
    grads = _grads(seed=3)
    opt = _CLASSES[kind](**cfg)
    lrs = []
    opt.build(params)
    for gs in grads:
        lrs.append(opt.learning_rate)
        opt.zero_grad()
        for p, g in zip(params, gs, strict=True):
            p.grad.add_(g.to(p.device, torch.float32))
        opt.step()
        ref.step(gs)
    assert len(set(lrs)) > 2, "the schedule must actually change the rate over 20 steps"
    for i, (p, r) in enumerate(zip(params, ref.p, strict=True)):
        assert_close_verbose(p, r, atol=2e-5, rtol=1e-5, name=f"{kind}+{schedule} param {i}")


# ------------------------------------------------------------------------------------------------------------------
# against torch.optim where the rules coincide (epsilon 0, constant lr; see kernels/optim.py for why)
# ------------------------------------------------------------------------------------------------------------------
TORCH_TWINS = [
    ("adam", {"learning_rate": 0.01, "epsilon": 0.0}, torch.optim.Adam, {"lr": 0.01, "eps": 0.0}),
    (
        "adamw",
        {"learning_rate": 0.01, "epsilon": 0.0, "weight_decay": 0.1},
        torch.optim.AdamW,
        {"lr": 0.01, "eps": 0.0, "weight_decay": 0.1},
    ),
    (
        "sgd",
        {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    ),
    (
        "rmsprop",
        {"learning_rate": 0.01, "rho": 0.9, "momentum": 0.5, "centered": True, "epsilon": 0.0},
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True, "eps": 0.0},
    ),
    (
        "adagrad",
        {"learning_rate": 0.05, "initial_accumulator_value": 0.0, "epsilon": 0.0},
        torch.optim.Adagrad,
        {"lr": 0.05, "eps": 0.0},
    ),
    ("adamax", {"learning_rate": 0.01, "epsilon": 0.0}, torch.optim.Adamax, {"lr": 0.01, "eps": 0.0}),
    ("adadelta", {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6}, torch.optim.Adadelta, {}),  # the same rule
]


@pytest.mark.parametrize("kind,cfg,torch_cls,torch_cfg", TORCH_TWINS, ids=[t[0] for t in TORCH_TWINS])
def test_trajectory_matches_torch_optim_where_rules_coincide(backend, device, kind, cfg, torch_cls, torch_cfg):
    params = _params(device, seed=4)
    twins = [torch.nn.Parameter(p.detach().double().cpu().clone()) for p in params]
    grads = _grads(seed=5)
    _run(_CLASSES[kind](**cfg), params, grads)
    topt = torch_cls(twins, foreach=False, **torch_cfg)
    for gs in grads:
        for t, g in zip(twins, gs, strict=True):
            t.grad = g.clone()
        topt.step()
    for i, (p, t) in enumerate(zip(params, twins, strict=True)):
        assert_close_verbose(p, t.detach(), atol=2e-5, rtol=1e-5, name=f"{kind} vs torch param {i}")


def test_keras_and_torch_adam_differ_with_default_epsilon(device):
    """The documented difference: Keras' eps after the bias correction (and 1e-7) is not torch's."""
    params = _params(device, seed=6)
    twins = [torch.nn.Parameter(p.detach().double().cpu().clone()) for p in params]
    tiny = [[g * 1e-6 for g in gs] for gs in _grads(seed=7, steps=3)]  # sqrt(v) ~ eps: the placement shows
    _run(optimizers.Adam(learning_rate=0.01), params, tiny)
    topt = torch.optim.Adam(twins, lr=0.01, eps=1e-7)
    for gs in tiny:
        for t, g in zip(twins, gs, strict=True):
            t.grad = g.clone()
        topt.step()
    diff = max(float((p.detach().cpu().double() - t.detach()).abs().max()) for p, t in zip(params, twins, strict=True))
    assert diff > 1e-4


# ------------------------------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------------------------------
def test_schedules_follow_keras_formulas():
    e = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert e(0) == pytest.approx(0.1) and e(10) == pytest.approx(0.05) and e(5) == pytest.approx(0.1 * 0.5**0.5)
    es = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert es(9) == pytest.approx(0.1) and es(10) == pytest.approx(0.05)
    c = schedules.CosineDecay(1.0, decay_steps=100, alpha=0.2)
    assert c(0) == pytest.approx(1.0) and c(100) == pytest.approx(0.2) and c(1000) == pytest.approx(0.2)
    assert c(50) == pytest.approx(0.8 * 0.5 + 0.2)
    cw = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=4)
    assert cw(0) == 0.0 and cw(2) == pytest.approx(0.5) and cw(4) == pytest.approx(1.0) and cw(14) == pytest.approx(0)
    pw = schedules.PiecewiseConstantDecay([5, 10], [1.0, 0.5, 0.1])
    assert [pw(s) for s in (0, 5, 6, 10, 11)] == [1.0, 1.0, 0.5, 0.5, 0.1]  # step == boundary keeps the earlier one


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_on_device_tensors_match_host_values(name, device):
    s = SCHEDULES[name]()
    for step in (0, 1, 3, 4, 5, 9, 10, 11, 17, 40):
        got = s(torch.tensor(step, device=device))
        assert isinstance(got, torch.Tensor) and got.device.type == torch.device(device).type
        assert float(got) == pytest.approx(s(step), rel=1e-6, abs=1e-9)


def test_schedule_validation_and_serialization():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.9)
    with pytest.raises(ValueError, match="1 less than the length of values"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0])
    for make in SCHEDULES.values():
        s = make()
        back = schedules.deserialize(schedules.serialize(s))
        assert type(back) is type(s) and back.get_config() == s.get_config()


# ------------------------------------------------------------------------------------------------------------------
# the optimizer object: get, learning_rate, configs, state, flat buffers
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,cls", [("adam", "Adam"), ("ADAMW", "AdamW"), ("SGD", "SGD"), ("RMSprop", "RMSprop"),
                                      ("adagrad", "Adagrad"), ("Adamax", "Adamax"), ("nadam", "Nadam"),
                                      ("lion", "Lion"), ("adadelta", "Adadelta"), ("FTRL", "Ftrl"),
                                      ("lamb", "Lamb"), ("Adafactor", "Adafactor"), ("muon", "Muon"),
                                      ("ScheduleFreeAdamW", "ScheduleFreeAdamW")])  # fmt: skip
def test_get_by_keras_string(name, cls):
    opt = optimizers.get(name)
    assert type(opt).__name__ == cls
    assert optimizers.get(opt) is opt


def test_get_unknown_name_lists_valid_names_and_closest():
    valid = (
        r"\['adadelta', 'adafactor', 'adagrad', 'adam', 'adamax', 'adamw', 'ftrl', 'lamb', 'lion', 'muon', 'nadam', "
        r"'rmsprop', 'schedulefreeadamw', 'sgd'\]"
    )
    with pytest.raises(ValueError, match=r"'rmsprp'.*Did you mean 'rmsprop'.*" + valid):
        optimizers.get("rmsprp")
    with pytest.raises(ValueError, match="Valid names"):
        optimizers.get(3)


def test_keras_defaults():
    K.backend.clear_session(free_memory=False)  # automatic names count per session, as in Keras: adagrad, not _3
    a, w, s, r = optimizers.Adam(), optimizers.AdamW(), optimizers.SGD(), optimizers.RMSprop()
    assert (a.learning_rate, a.beta_1, a.beta_2, a.epsilon, a.amsgrad, a.weight_decay) == (
        0.001,
        0.9,
        0.999,
        1e-7,
        False,
        None,
    )
    assert w.weight_decay == 0.004 and w.epsilon == 1e-7
    assert (s.learning_rate, s.momentum, s.nesterov) == (0.01, 0.0, False)
    assert (r.learning_rate, r.rho, r.momentum, r.epsilon, r.centered) == (0.001, 0.9, 0.0, 1e-7, False)
    ag, ax, na, li, ad, ft = (optimizers.Adagrad(), optimizers.Adamax(), optimizers.Nadam(), optimizers.Lion(),
                              optimizers.Adadelta(), optimizers.Ftrl())  # fmt: skip
    assert (ag.name, ag.learning_rate, ag.initial_accumulator_value, ag.epsilon) == ("adagrad", 0.001, 0.1, 1e-7)
    assert (ax.name, ax.learning_rate, ax.beta_1, ax.beta_2, ax.epsilon) == ("adamax", 0.001, 0.9, 0.999, 1e-7)
    assert (na.name, na.learning_rate, na.beta_1, na.beta_2, na.epsilon) == ("nadam", 0.001, 0.9, 0.999, 1e-7)
    assert (li.name, li.learning_rate, li.beta_1, li.beta_2) == ("lion", 0.001, 0.9, 0.99)
    assert (ad.name, ad.learning_rate, ad.rho, ad.epsilon) == ("adadelta", 0.001, 0.95, 1e-7)
    assert (ft.name, ft.learning_rate, ft.learning_rate_power, ft.initial_accumulator_value, ft.beta) == (
        "ftrl", 0.001, -0.5, 0.1, 0.0,
    )  # fmt: skip
    assert (ft.l1_regularization_strength, ft.l2_regularization_strength,
            ft.l2_shrinkage_regularization_strength) == (0.0, 0.0, 0.0)  # fmt: skip


def test_argument_validation():
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="weight_decay=None"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate="fast")
    with pytest.raises(ValueError, match="clipnorm"):
        optimizers.Adam(clipnorm=-1.0)
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.Adam(lr=0.1)
    with pytest.raises(ValueError, match="ema_momentum"):
        optimizers.Adam(use_ema=True, ema_momentum=1.5)
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        optimizers.Adagrad(initial_accumulator_value=-0.1)
    with pytest.raises(ValueError, match="epsilon"):
        optimizers.Adagrad(epsilon=-1.0)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Adamax(beta_1=1.0)
    with pytest.raises(ValueError, match="beta_2"):
        optimizers.Nadam(beta_2=1.5)
    with pytest.raises(ValueError, match="degenerates to SignSGD"):  # Keras' own check
        optimizers.Lion(beta_1=0.0)
    with pytest.raises(ValueError, match="rho"):
        optimizers.Adadelta(rho=-0.5)
    for bad in ({"learning_rate_power": 0.5}, {"initial_accumulator_value": -1.0}, {"beta": "x"},
                {"l1_regularization_strength": -0.1}, {"l2_shrinkage_regularization_strength": -0.1}):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):  # Keras' checks, and a number check
            optimizers.Ftrl(**bad)


def test_learning_rate_is_settable_as_in_keras(device):
    opt = optimizers.SGD(learning_rate=0.1)
    opt.learning_rate = 0.05  # a callback such as ReduceLROnPlateau
    assert opt.learning_rate == 0.05
    sched = optimizers.SGD(learning_rate=schedules.PiecewiseConstantDecay([1], [0.1, 0.01]))
    assert sched.learning_rate == 0.1
    with pytest.raises(TypeError, match="not settable"):
        sched.learning_rate = 0.5
    # A float-lr optimizer takes a new float mid-training and uses it on the next step.
    p = [torch.nn.Parameter(torch.ones(3, device=device))]
    opt.build(p)
    p[0].grad.fill_(1.0)
    opt.step()
    opt.learning_rate = 0.5
    opt.step()
    assert torch.allclose(p[0].detach().cpu(), torch.full((3,), 1 - 0.05 - 0.5))


def test_get_config_round_trip():
    for opt in (
        optimizers.Adam(learning_rate=0.02, amsgrad=True, clipnorm=1.0),
        optimizers.AdamW(weight_decay=0.1, global_clipnorm=2.0),
        optimizers.SGD(learning_rate=schedules.CosineDecay(0.1, 100, warmup_target=0.2, warmup_steps=5), momentum=0.9),
        optimizers.RMSprop(centered=True, momentum=0.3, clipvalue=0.1),
        optimizers.Adagrad(initial_accumulator_value=0.2, clipnorm=1.0),
        optimizers.Adamax(beta_1=0.8, weight_decay=0.01),
        optimizers.Nadam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5), epsilon=1e-5),
        optimizers.Lion(beta_2=0.9, global_clipnorm=2.0, name="lion_1"),
        optimizers.Adadelta(learning_rate=1.0, rho=0.9),
        optimizers.Ftrl(learning_rate_power=-0.3, l1_regularization_strength=0.1, beta=0.5),
    ):
        config = opt.get_config()
        back = type(opt).from_config(config)
        assert back.get_config() == config
        assert optimizers.deserialize(optimizers.serialize(opt)).get_config() == config


def test_state_dict_resumes_exactly(backend, device):
    grads = _grads(seed=8, steps=8)
    straight = _params(device, seed=9)
    _run(optimizers.Adam(learning_rate=0.01, amsgrad=True), straight, grads)

    first = _params(device, seed=9)
    opt = optimizers.Adam(learning_rate=0.01, amsgrad=True)
    _run(opt, first, grads[:5])
    state = opt.state_dict()
    assert int(state["iterations"]) == 5 and {"momentums", "velocities", "velocity_hats"} <= set(state)
    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in first]
    resumed = optimizers.Adam(learning_rate=0.01, amsgrad=True)
    resumed.load_state_dict(state)  # before build: applied when built
    resumed.build(resumed_params)
    assert resumed.iterations == 5
    for gs in grads[5:]:
        resumed.zero_grad()
        for p, g in zip(resumed_params, gs, strict=True):
            p.grad.add_(g.to(p.device, torch.float32))
        resumed.step()
    for a, b in zip(straight, resumed_params, strict=True):
        assert torch.equal(a.detach(), b.detach())
    with pytest.raises(ValueError, match="Missing"):
        resumed.load_state_dict({"iterations": torch.tensor(1)})


@pytest.mark.parametrize("kind", ["nadam", "ftrl", "adagrad"])
def test_state_dict_resumes_exactly_new_rules(backend, device, kind):
    """A resumed Nadam continues its u_product (a device scalar, in state_dict); Adagrad's and Ftrl's accumulators
    start at initial_accumulator_value and come back with the state."""
    make = lambda: _CLASSES[kind](learning_rate=0.01, **({"initial_accumulator_value": 0.3} if kind != "nadam" else {}))  # noqa: E731
    grads = _grads(seed=8, steps=6)
    straight = _params(device, seed=9)
    _run(make(), straight, grads)
    first = _params(device, seed=9)
    opt = make()
    opt.build(first)
    if kind != "nadam":
        assert (opt.accumulators == 0.3).all()
    _run(opt, first, grads[:4])
    state = opt.state_dict()
    if kind == "nadam":
        assert state["u_product"].dtype == torch.float64 and state["u_product"].device.type == "cpu"
        u = 1.0
        for t in range(1, 5):
            u *= 0.9 * (1 - 0.5 * 0.96**t)
        assert float(state["u_product"]) == pytest.approx(u, rel=1e-12) and opt.u_product == float(state["u_product"])
    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in first]
    resumed = make()
    resumed.load_state_dict(state)
    resumed.build(resumed_params)
    for gs in grads[4:]:
        resumed.zero_grad()
        for p, g in zip(resumed_params, gs, strict=True):
            p.grad.add_(g.to(p.device, torch.float32))
        resumed.step()
    for a, b in zip(straight, resumed_params, strict=True):
        assert torch.equal(a.detach(), b.detach())


def test_flat_buffers_contract(device):
    params = _params(device)
    opt = optimizers.SGD(learning_rate=0.1, momentum=0.9)
    opt.build(params)
    total = sum(p.numel() for p in params)
    padded = -(-total // 64) * 64  # padded so that the kernel's accesses are 16-byte vectors
    assert opt.flat_param.shape == (padded,) and opt.flat_grad.shape == (padded,)
    assert (opt.flat_param[total:] == 0).all()
    offset = 0
    for p in params:
        assert p.data_ptr() == opt.flat_param[offset:].data_ptr()
        assert p.grad.data_ptr() == opt.flat_grad[offset:].data_ptr()
        offset += p.numel()
    # Autograd accumulates into the views in place, so the flat buffer holds the gradients.
    loss = sum((p * p).sum() for p in params)
    loss.backward()
    assert torch.equal(opt.flat_grad[:total], torch.cat([2 * p.detach().reshape(-1) for p in params]))
    opt.zero_grad()
    assert (opt.flat_grad == 0).all() and all((p.grad == 0).all() for p in params)
    # A parameter's grad replaced behind the optimizer's back (module.zero_grad(set_to_none=True)) is re-attached.
    params[1].grad = None
    params[0].grad = torch.ones_like(params[0])
    before = params[0].detach().clone()
    opt.step()
    assert params[0].grad.data_ptr() == opt.flat_grad.data_ptr()
    assert torch.allclose(params[0].detach(), before - 0.1)
    assert opt.iterations == 1 and isinstance(opt.iterations, int)


def test_build_validation(device):
    with pytest.raises(ValueError, match="no trainable parameters"):
        optimizers.Adam().build([])
    with pytest.raises(ValueError, match="float32 master weights.*bfloat16"):
        optimizers.Adam().build([torch.nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))])
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="once"):
        optimizers.Adam().build([p, p])
    with pytest.raises(RuntimeError, match="build"):
        optimizers.Adam().step()


def test_apply_copies_grads_then_steps(device):
    """Keras' ``optimizer.apply(grads)``: the gradients land in the flat buffer, then one fused step."""
    params = [torch.nn.Parameter(torch.ones(2, 3, device=device)), torch.nn.Parameter(torch.ones(4, device=device))]
    opt = optimizers.SGD(learning_rate=0.5)
    opt.build(params)
    opt.apply([torch.full((2, 3), 2.0, device=device), torch.full((4,), -1.0, device=device)])
    assert torch.equal(params[0].detach().cpu(), torch.zeros(2, 3)) and torch.equal(
        params[1].detach().cpu(), torch.full((4,), 1.5)
    )
    with pytest.raises(ValueError, match="Expected 2 gradients"):
        opt.apply([torch.zeros(6, device=device)])


@pytest.mark.parametrize("name", ["nadam", "adagrad", "ftrl", "adadelta"])
def test_saved_model_resumes_the_new_rules_exactly(tmp_path, name):
    """save_model/load_model carry the states (and Nadam's u_product) through the file: training on is exact."""
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
    model = K.Sequential([K.Input((4,)), K.layers.Dense(2)])
    model.compile(optimizer=name, loss="mse")
    model.fit(x, y, epochs=3, verbose=0, shuffle=False)
    K.saving.save_model(model, str(tmp_path / "m.keras"))
    loaded = K.saving.load_model(str(tmp_path / "m.keras"))
    assert type(loaded.optimizer) is type(model.optimizer) and loaded.optimizer.iterations == 3
    if name == "nadam":
        assert loaded.optimizer.u_product == model.optimizer.u_product != 1.0
    for m in (model, loaded):
        m.fit(x, y, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(a, b)
