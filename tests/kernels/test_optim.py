"""The flat-buffer optimizer kernel against float64 references of Keras' rules, on both backends.

The references are written per variable from the Keras 3 source (keras/src/optimizers/*.py and base_optimizer's
clipping and weight decay), independently of kernels/optim.py. Buffers are slices of a NaN-filled allocation so
that a read or write outside the n elements shows up in the guard bands.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import assert_close_verbose
from tritonnn import kernels
from tritonnn.kernels import optim

SIZES = (1000, 37, 1964)  # 3001 elements: not a multiple of the 1024 block; the clipnorm chunks below are 700
GUARD = 64


def keras_step_f64(rule, params, grads, state, *, lr, step, cfg):
    """One Keras update of a list of float64 variables (in place), written from the Keras source."""
    clip = cfg.get("clip")
    if clip is not None:
        mode, c = clip
        if mode == "value":
            grads = [g.clamp(-c, c) for g in grads]
        elif mode == "norm":
            grads = [g * c / max(math.sqrt(float((g * g).sum())), c) for g in grads]
        else:
            norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
            grads = [g * (c * min(1.0 / norm, 1.0 / c)) for g in grads]
    wd = cfg.get("weight_decay")
    if rule == "nadam":  # Keras' u_product: advanced once per step, before the variables are updated
        state["u_product"] = state.get("u_product", 1.0) * cfg["beta_1"] * (1.0 - 0.5 * 0.96**step)
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        if wd:
            p -= p * wd * lr
        if rule == "sgd":
            mu = cfg.get("momentum", 0.0)
            if mu:
                m = state.setdefault(("m", i), torch.zeros_like(p))
                m.copy_(m * mu - g * lr)
                p += (m * mu - g * lr) if cfg.get("nesterov") else m
            else:
                p -= g * lr
        elif rule == "adam":
            b1, b2, eps = cfg["beta_1"], cfg["beta_2"], cfg["epsilon"]
            m = state.setdefault(("m", i), torch.zeros_like(p))
            v = state.setdefault(("v", i), torch.zeros_like(p))
            alpha = lr * math.sqrt(1 - b2**step) / (1 - b1**step)
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            if cfg.get("amsgrad"):
                vh = state.setdefault(("vh", i), torch.zeros_like(p))
                vh.copy_(torch.maximum(vh, v))
                p -= m * alpha / (vh.sqrt() + eps)
            else:
                p -= m * alpha / (v.sqrt() + eps)
        elif rule == "adagrad":
            eps = cfg["epsilon"]
            acc = state.setdefault(("acc", i), torch.full_like(p, cfg["initial_accumulator_value"]))
            acc += g * g
            p -= lr * g / (acc + eps).sqrt()
        elif rule == "adamax":
            b1, b2, eps = cfg["beta_1"], cfg["beta_2"], cfg["epsilon"]
            m = state.setdefault(("m", i), torch.zeros_like(p))
            u = state.setdefault(("u", i), torch.zeros_like(p))
            m += (g - m) * (1 - b1)
            u.copy_(torch.maximum(b2 * u, g.abs()))
            p -= lr * m / ((1 - b1**step) * (u + eps))
        elif rule == "nadam":
            b1, b2, eps = cfg["beta_1"], cfg["beta_2"], cfg["epsilon"]
            m = state.setdefault(("m", i), torch.zeros_like(p))
            v = state.setdefault(("v", i), torch.zeros_like(p))
            u_t, u_t_1 = b1 * (1 - 0.5 * 0.96**step), b1 * (1 - 0.5 * 0.96 ** (step + 1))
            u_product_t = state["u_product"]
            u_product_t_1 = u_product_t * u_t_1
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            m_hat = u_t_1 * m / (1 - u_product_t_1) + (1 - u_t) * g / (1 - u_product_t)
            v_hat = v / (1 - b2**step)
            p -= m_hat * lr / (v_hat.sqrt() + eps)
        elif rule == "lion":
            b1, b2 = cfg["beta_1"], cfg["beta_2"]
            m = state.setdefault(("m", i), torch.zeros_like(p))
            p -= lr * torch.sign(m * b1 + g * (1 - b1))
            m.copy_(m * b2 + g * (1 - b2))
        elif rule == "adadelta":
            rho, eps = cfg["rho"], cfg["epsilon"]
            ag = state.setdefault(("ag", i), torch.zeros_like(p))
            ad = state.setdefault(("ad", i), torch.zeros_like(p))
            ag.copy_(rho * ag + (1 - rho) * g * g)
            delta = -((ad + eps).sqrt() * g / (ag + eps).sqrt())
            ad.copy_(rho * ad + (1 - rho) * delta * delta)
            p += lr * delta
        elif rule == "ftrl":
            power = cfg["learning_rate_power"]
            acc = state.setdefault(("acc", i), torch.full_like(p, cfg["initial_accumulator_value"]))
            lin = state.setdefault(("lin", i), torch.zeros_like(p))
            l1, l2 = cfg.get("l1", 0.0), cfg.get("l2", 0.0) + cfg.get("beta", 0.0) / (2 * lr)
            grad_to_use = g + 2 * cfg.get("l2_shrinkage", 0.0) * p
            new_acc = acc + g * g
            lin += grad_to_use - (new_acc ** (-power) - acc ** (-power)) / lr * p
            quadratic = new_acc ** (-power) / lr + 2 * l2
            p.copy_((lin.clamp(-l1, l1) - lin) / quadratic)
            acc.copy_(new_acc)
        else:
            rho, mu, eps = cfg["rho"], cfg.get("momentum", 0.0), cfg["epsilon"]
            v = state.setdefault(("v", i), torch.zeros_like(p))
            v.copy_(rho * v + (1 - rho) * g * g)
            if cfg.get("centered"):
                a = state.setdefault(("a", i), torch.zeros_like(p))
                a.copy_(rho * a + (1 - rho) * g)
                denom = v - a * a + eps
            else:
                denom = v + eps
            inc = lr * g / denom.sqrt()
            if mu > 0:
                mo = state.setdefault(("mo", i), torch.zeros_like(p))
                mo.copy_(mu * mo + inc)
                p -= mo
            else:
                p -= inc


_FTRL_REG = {"l1": 0.01, "l2": 0.02, "l2_shrinkage": 0.03, "beta": 0.1}
CONFIGS = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9, "clip": ("value", 0.5)}),
    ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "clip": ("norm", 2.0)}),
    ("adam", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    ("adam", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-7, "amsgrad": True, "clip": ("norm", 3.0)}),
    ("adam", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.05, "clip": ("global", 5.0)}),
    ("rmsprop", {"rho": 0.9, "epsilon": 1e-7}),
    ("rmsprop", {"rho": 0.8, "momentum": 0.5, "centered": True, "epsilon": 1e-7, "clip": ("global", 5.0)}),
    ("adagrad", {"initial_accumulator_value": 0.1, "epsilon": 1e-7}),
    ("adagrad", {"initial_accumulator_value": 0.0, "epsilon": 1e-7, "weight_decay": 0.05, "clip": ("value", 0.5)}),
    ("adamax", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    ("adamax", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-7, "weight_decay": 0.05, "clip": ("norm", 3.0)}),
    ("nadam", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    ("nadam", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-7, "weight_decay": 0.05, "clip": ("global", 5.0)}),
    ("lion", {"beta_1": 0.9, "beta_2": 0.99}),
    ("lion", {"beta_1": 0.8, "beta_2": 0.95, "weight_decay": 0.1, "clip": ("norm", 2.0)}),
    ("adadelta", {"rho": 0.95, "epsilon": 1e-7}),
    ("adadelta", {"rho": 0.8, "epsilon": 1e-6, "weight_decay": 0.05, "clip": ("global", 5.0)}),
    ("ftrl", {"learning_rate_power": -0.5, "initial_accumulator_value": 0.1}),
    ("ftrl", {**_FTRL_REG, "learning_rate_power": -0.5, "initial_accumulator_value": 0.5, "clip": ("value", 0.5)}),
    ("ftrl", {**_FTRL_REG, "learning_rate_power": -0.3, "initial_accumulator_value": 0.2, "weight_decay": 0.05}),
    ("ftrl", {"learning_rate_power": 0.0, "initial_accumulator_value": 0.0, "l2": 0.5, "clip": ("norm", 2.0)}),
]


def _hyper(rule, cfg):
    """optimizer_update_'s h1 ... h5 for a test configuration (kernels/optim.py's table)."""
    if rule == "ftrl":
        keys = ("learning_rate_power", "l1", "l2", "l2_shrinkage", "beta")
    else:
        keys = {
            "sgd": ("momentum",), "rmsprop": ("rho", "momentum"), "adagrad": (), "adadelta": ("rho",),
        }.get(rule, ("beta_1", "beta_2"))  # fmt: skip
    return {f"h{i}": cfg.get(k, 0.0) for i, k in enumerate(keys, start=1)}


def _initial_accumulator(rule, cfg):
    return cfg.get("initial_accumulator_value", 0.0) if rule in ("adagrad", "ftrl") else 0.0


def _guarded(n, device, fill=float("nan")):
    """A zero-filled slice of n elements inside a buffer whose guard bands hold ``fill``."""
    big = torch.full((n + 2 * GUARD,), fill, device=device)
    big[GUARD : GUARD + n] = 0.0
    return big, big[GUARD : GUARD + n]


@pytest.mark.parametrize("rule,cfg", CONFIGS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(CONFIGS)])
def test_update_matches_float64_keras_rule(backend, device, rule, cfg):
    gen = torch.Generator().manual_seed(len(str(cfg)))
    n = sum(SIZES)
    p0 = torch.randn(n, generator=gen)
    grads = [torch.randn(n, generator=gen) * 2 for _ in range(4)]
    big_p, p = _guarded(n, device)
    p.copy_(p0)
    big_g, g = _guarded(n, device)
    bigs, states = zip(*[_guarded(n, device) for _ in range(3)], strict=True)
    momentum = (rule == "sgd" and cfg.get("momentum", 0)) or (rule == "rmsprop" and cfg.get("momentum", 0) > 0)
    need = optim._flags(optim.RULES[rule], momentum=bool(momentum), centered=cfg.get("centered", False),
                        amsgrad=cfg.get("amsgrad", False))  # fmt: skip
    s = [st if needed else None for st, needed in zip(states, need, strict=True)]
    states[0].fill_(_initial_accumulator(rule, cfg))
    clip = None
    if "clip" in cfg:
        mode, value = cfg["clip"]
        segs = optim.make_segments(SIZES, device, by_variable=mode == "norm", chunk=700) if mode != "value" else None
        clip = optim.GradClip(mode, value, segs)
    hyper = _hyper(rule, cfg)
    ref_params = [t.double() for t in p0.split(SIZES)]
    ref_state: dict = {}
    for step, gr in enumerate(grads, start=1):
        lr = 0.05 / step
        g.copy_(gr)
        kernels.optimizer_update_(
            rule, p, g, *s, lr=lr, step=step, **hyper, epsilon=cfg.get("epsilon", 1e-7),
            weight_decay=cfg.get("weight_decay"), nesterov=cfg.get("nesterov", False),
            centered=cfg.get("centered", False), amsgrad=cfg.get("amsgrad", False), clip=clip,
        )  # fmt: skip
        keras_step_f64(rule, ref_params, [t.double() for t in gr.split(SIZES)], ref_state, lr=lr, step=step, cfg=cfg)
    assert_close_verbose(p, torch.cat(ref_params), atol=1e-6, rtol=1e-5, name=f"{rule} params")
    first_state = {"adam": "m", "adamax": "m", "nadam": "m", "lion": "m", "adagrad": "acc", "ftrl": "acc",
                   "adadelta": "ag"}.get(rule)  # fmt: skip
    if first_state is not None:
        want = torch.cat([ref_state[(first_state, i)] for i in range(3)])
        assert_close_verbose(s[0], want, atol=1e-6, rtol=1e-5, name=first_state)
    second_state = {"adamax": "u", "nadam": "v", "adadelta": "ad", "ftrl": "lin"}.get(rule)
    if second_state is not None:
        want = torch.cat([ref_state[(second_state, i)] for i in range(3)])
        # Ftrl's linear adds (new^a - old^a) / lr * p each step: two nearby fp32 powers of the accumulator, their
        # rounding (~1e-7 of acc^a) divided by lr = 0.05 / step, so fp32 itself (Keras' too) is ~1e-4 off there.
        tol = dict(atol=3e-4, rtol=1e-4) if rule == "ftrl" else dict(atol=1e-6, rtol=1e-5)
        assert_close_verbose(s[1], want, **tol, name=second_state)
    # Nothing outside the n elements was read into the result (NaN guards) or written (guards still NaN).
    for big in (big_p, big_g, *bigs):
        assert big[:GUARD].isnan().all() and big[GUARD + n :].isnan().all()
    assert (g.cpu() == grads[-1]).all(), "clipping must not write the gradient back"


def test_global_norm_is_one_reduction_on_the_device(backend, device):
    gen = torch.Generator().manual_seed(1)
    g = torch.randn(sum(SIZES), generator=gen).to(device)
    if backend == "torch":
        pytest.skip("grad_sqnorm is the Triton reduction kernel")
    glob = optim.grad_sqnorm(g, optim.make_segments(SIZES, device, by_variable=False, chunk=700))
    per = optim.grad_sqnorm(g, optim.make_segments(SIZES, device, chunk=700))
    parts = g.double().cpu().split(SIZES)
    assert glob.shape == (1,) and per.shape == (3,)
    assert_close_verbose(glob, (g.double().cpu() ** 2).sum().reshape(1), atol=1e-3, rtol=1e-5, name="global")
    assert_close_verbose(per, torch.stack([(t * t).sum() for t in parts]), atol=1e-3, rtol=1e-5, name="per var")


def test_chunk_table_never_crosses_a_variable():
    segs = optim.make_segments((5, 3, 12), "cpu", chunk=4)
    assert segs.start.tolist() == [0, 4, 5, 8, 12, 16, 20]
    assert segs.seg.tolist() == [0, 0, 1, 2, 2, 2]
    flat = optim.make_segments((5, 3, 12), "cpu", by_variable=False, chunk=8)
    assert flat.start.tolist() == [0, 8, 16, 20] and flat.seg.tolist() == [0, 0, 0] and flat.n_segments == 1


def test_non_finite_global_norm_gives_nan_as_keras(backend, device):
    n = sum(SIZES)
    p = torch.ones(n, device=device)
    g = torch.ones(n, device=device)
    g[5] = float("inf")
    clip = optim.GradClip("global", 1.0, optim.make_segments(SIZES, device, by_variable=False))
    kernels.sgd_(p, g, lr=0.1, clip=clip)
    assert p.isnan().all()


def test_rejects_bad_buffers(backend, device):
    p = torch.zeros(4, 4, device=device)
    with pytest.raises(ValueError, match="contiguous 1-D float32"):
        kernels.adam_(p, p, p, p, step=1, lr=0.1)
    q = torch.zeros(8, device=device)
    with pytest.raises(ValueError, match=r"expected m of param's shape \(8,\)"):
        kernels.adam_(q, q, torch.zeros(7, device=device), q, step=1, lr=0.1)
    with pytest.raises(ValueError, match="needs the state buffer momentum_buffer"):
        kernels.sgd_(q, q, None, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="segments covering"):
        kernels.sgd_(q, q, lr=0.1, clip=optim.GradClip("norm", 1.0, None))
    with pytest.raises(ValueError, match="rule"):
        kernels.optimizer_update_("adafactor", q, q, lr=0.1)


PADDING_HYPER = {
    "adam": {"h1": 0.9, "h2": 0.999, "centered": False},
    "rmsprop": {"h1": 0.9, "h2": 0.5, "centered": True},
    "adagrad": {},
    "adamax": {"h1": 0.9, "h2": 0.999},
    "nadam": {"h1": 0.9, "h2": 0.999},
    "lion": {"h1": 0.9, "h2": 0.99},
    "adadelta": {"h1": 0.9},
    "ftrl": {"h1": -0.5},  # initial accumulator 0 and no l2: the padding's quadratic is 0
}


@pytest.mark.parametrize("rule", sorted(PADDING_HYPER))
def test_aligned_path_and_padding(backend, device, rule):
    """n a multiple of 16 in 16-byte-aligned buffers takes the vectorised path; the zero padding past n_valid
    stays zero even with epsilon = 0 (no 0/0), and the real elements match the unpadded update."""
    gen = torch.Generator().manual_seed(2)
    n_valid, n = 3001, 3008
    p0 = torch.randn(n_valid, generator=gen)
    g0 = torch.randn(n_valid, generator=gen)
    bufs = [torch.zeros(n, device=device) for _ in range(5)]
    p, g, s1, s2, s3 = bufs
    assert all(t.data_ptr() % 16 == 0 for t in bufs)
    p[:n_valid] = p0.to(device)
    g[:n_valid] = g0.to(device)
    ref_p = p0.clone().to(device)
    ref_s = [torch.zeros(n_valid, device=device) for _ in range(3)]
    kw = {"lr": 0.1, "epsilon": 0.0, **PADDING_HYPER[rule]}
    for step in (1, 2):
        kw["step"] = step
        kernels.optimizer_update_(rule, p, g, s1, s2, s3, n_valid=n_valid, **kw)
        kernels.optimizer_update_(rule, ref_p, g0.to(device), *ref_s, **kw)
    assert (p[n_valid:] == 0).all() and all(torch.isfinite(t[n_valid:]).all() for t in (s1, s2, s3))
    assert_close_verbose(p[:n_valid], ref_p, atol=0, rtol=0, name="aligned vs unaligned")


# The CPU torch path: torch's fused CPU Adam where it is exact (kernels/optim.py), in-place ops for SGD.
FUSED_CONFIGS = [
    ("adam", {"h1": 0.9, "h2": 0.999}, True),
    ("adam", {"h1": 0.8, "h2": 0.99, "amsgrad": True}, True),
    ("adam", {"h1": 0.9, "h2": 0.999, "weight_decay": 0.05}, True),
    ("adam", {"h1": 0.9, "h2": 0.999, "amsgrad": True, "weight_decay": 0.05, "clip": "norm"}, True),
    ("adam", {"h1": 0.9, "h2": 0.999, "epsilon": 0.0, "clip": "global"}, True),
    ("sgd", {}, False),
    ("sgd", {"weight_decay": 0.1, "clip": "value"}, False),
    ("sgd", {"h1": 0.9}, False),
    ("sgd", {"h1": 0.9, "nesterov": True, "weight_decay": 0.1, "clip": "global"}, False),
]


@pytest.mark.parametrize("rule,cfg,fused", FUSED_CONFIGS, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(FUSED_CONFIGS)])
def test_cpu_torch_path_matches_the_reference_in_float64(monkeypatch, rule, cfg, fused):
    """fp32 through the fused path, five steps with a changing rate, against optimizer_reference_ in float64; the
    reference is never called on this path (so the fused op is what is tested), and the gradient is not written."""
    if fused and optim._FUSED_ADAM is None:
        pytest.skip("torch._fused_adam_ (tensor lr) is not available in this torch")
    gen = torch.Generator().manual_seed(7)
    n_valid, n = sum(SIZES), sum(SIZES) + 7
    p0 = torch.zeros(n)
    p0[:n_valid] = torch.randn(n_valid, generator=gen)
    cfg = dict(cfg)
    clip = cfg.pop("clip", None)
    cfg.setdefault("epsilon", 1e-7)
    if clip is not None:
        segs = optim.make_segments((*SIZES, 7), "cpu", by_variable=clip == "norm") if clip != "value" else None
        clip = optim.GradClip(clip, {"value": 0.5, "norm": 3.0, "global": 5.0}[clip], segs)
    got = [p0.clone()] + [torch.zeros(n) for _ in range(3)]
    ref = [p0.double()] + [torch.zeros(n, dtype=torch.float64) for _ in range(3)]
    reference = optim.optimizer_reference_

    def refuse(*args, **kwargs):
        raise AssertionError("the CPU torch path fell back to the reference")

    for step in range(1, 6):
        g = torch.zeros(n)
        g[:n_valid] = torch.randn(n_valid, generator=gen) * 2
        g_before = g.clone()
        kw = dict(lr=0.05 / step, step=step, **cfg)
        monkeypatch.setattr(optim, "optimizer_reference_", refuse)
        with kernels.backend_scope("torch"):
            kernels.optimizer_update_(rule, *got[:1], g, *got[1:], clip=clip, n_valid=n_valid, **kw)
        monkeypatch.setattr(optim, "optimizer_reference_", reference)
        reference(rule, ref[0], g.double(), *ref[1:], clip=clip, n_valid=n_valid, **kw)
        assert torch.equal(g, g_before), "the gradient buffer must not be written"
    scale = float(ref[0].abs().max())
    assert_close_verbose(got[0], ref[0], atol=1e-6 * scale, rtol=1e-6, name=f"{rule} params")
    for i, (a, b) in enumerate(zip(got[1:], ref[1:], strict=True)):
        assert_close_verbose(a, b, atol=1e-6 * max(1.0, float(b.abs().max())), rtol=1e-5, name=f"state {i}")
    assert (got[0][n_valid:] == 0).all() and all((t[n_valid:] == 0).all() for t in got[1:]), "padding untouched"


# ---- the step's scalars on the device (a CUDA graph replays one call with this step's values) ----------------------
def _prepared(rule, cfg, device, seed=11):
    """A FlatUpdate over fresh buffers (params random, states zero), and the buffers."""
    n = sum(SIZES)
    gen = torch.Generator().manual_seed(seed)
    bufs = [torch.randn(n, generator=gen).to(device)] + [torch.zeros(n, device=device) for _ in range(4)]
    p, g, s1, s2, s3 = bufs
    momentum = (rule == "sgd" and cfg.get("h1", 0)) or (rule == "rmsprop" and cfg.get("h2", 0) > 0)
    need = optim._flags(optim.RULES[rule], momentum=bool(momentum), centered=cfg.get("centered", False),
                        amsgrad=cfg.get("amsgrad", False))  # fmt: skip
    states = [t if k else None for t, k in zip((s1, s2, s3), need, strict=True)]
    return optim.FlatUpdate(rule, p, g, *states, **cfg), bufs


SCALAR_CONFIGS = [
    ("adam", {"h1": 0.9, "h2": 0.999, "weight_decay": 0.05}),
    ("sgd", {"h1": 0.9, "nesterov": True}),
    ("rmsprop", {"h1": 0.8, "h2": 0.5, "centered": True}),
    ("adagrad", {"weight_decay": 0.05}),
    ("adamax", {"h1": 0.8, "h2": 0.99}),
    ("nadam", {"h1": 0.9, "h2": 0.999, "weight_decay": 0.05}),
    ("lion", {"h1": 0.9, "h2": 0.99}),
    ("adadelta", {"h1": 0.9}),
    ("ftrl", {"h1": -0.5, "h2": 0.01, "h3": 0.02, "h4": 0.01, "h5": 0.1}),
]


@pytest.mark.parametrize("rule,cfg", SCALAR_CONFIGS, ids=[r for r, _ in SCALAR_CONFIGS])
def test_lr_and_step_are_read_from_the_device_at_every_call(backend, device, rule, cfg):
    """The prepared update's rate, written in place between calls (what a graph replay sees), and its count, moved
    by each call on the device, give what fresh host values give: nothing was frozen at preparation."""
    update, bufs = _prepared(rule, cfg, device)
    ref_update, ref = _prepared(rule, cfg, device)
    assert update.step.device == update.lr.device == torch.device(device) and int(update.step) == 0
    gen = torch.Generator().manual_seed(12)
    for t in range(1, 5):
        g = torch.randn(sum(SIZES), generator=gen).to(device)
        bufs[1].copy_(g)
        ref[1].copy_(g)
        update.lr.fill_(0.05 / t)
        update()
        assert int(update.step) == t
        kernels.optimizer_update_(rule, ref[0], ref[1], *ref_update.states, lr=0.05 / t, step=t, **cfg)
    for name, a, b in zip(("param", "grad", "s1", "s2", "s3"), bufs, ref, strict=True):
        assert torch.equal(a, b), name
    if rule == "nadam":  # Keras' u_product, advanced on the device by each call
        assert float(update.u_product) == pytest.approx(optim.nadam_u_product(cfg["h1"], 4), rel=1e-15)
    update.set_step(torch.tensor(9, device=device))  # a count restored on the device (state loading uses an int)
    update.set_step(int(update.step) + 1)
    assert float(update.step) == 10.0 and torch.equal(update.scalars[3:5], torch.full((2,), 10.0).double().to(device))


@pytest.mark.parametrize("rule,cfg", [*SCALAR_CONFIGS, ("adam", {"h1": 0.9, "h2": 0.999, "amsgrad": True})],
                         ids=[r for r, _ in SCALAR_CONFIGS] + ["adam-amsgrad"])  # fmt: skip
def test_found_inf_skips_the_whole_update(backend, device, rule, cfg):
    """found_inf = 1: parameters, states and the count bit for bit as before (NaN gradients and a skip before any
    step included); found_inf = 0: the same update as without the flag."""
    update, bufs = _prepared(rule, cfg, device)
    masked, mbufs = _prepared(rule, cfg, device)
    zero, one = torch.zeros((), device=device), torch.ones((), device=device)
    g = torch.randn(sum(SIZES), generator=torch.Generator().manual_seed(13)).to(device)
    mbufs[1].copy_(g)
    mbufs[1][::7] = float("nan")
    mbufs[1][1::7] = float("inf")
    before = [t.clone() for t in mbufs]
    masked.lr.fill_(0.05)
    masked(one)  # step 0: a skip before any step
    assert int(masked.step) == 0 and float(masked.u_product) == 1.0
    for name, a, b in zip(("param", "s1", "s2", "s3"), (mbufs[0], *mbufs[2:]), (before[0], *before[2:]), strict=True):
        assert torch.equal(a, b), f"{name} changed on a skipped step"
    for u in (update, masked):
        u.lr.fill_(0.05)
    for t in (1, 2):
        g = torch.randn(sum(SIZES), generator=torch.Generator().manual_seed(t)).to(device)
        bufs[1].copy_(g)
        mbufs[1].copy_(g)
        update()
        masked(zero)
    for a, b in zip(bufs, mbufs, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(update.scalars, masked.scalars), "the count and Nadam's u_product"
    before = [t.clone() for t in mbufs]
    scalars_before = masked.scalars.clone()
    mbufs[1][::5] = float("inf")
    masked(one)
    assert int(masked.step) == 2 and torch.equal(masked.scalars, scalars_before)
    for name, a, b in zip(("param", "s1", "s2", "s3"), (mbufs[0], *mbufs[2:]), (before[0], *before[2:]), strict=True):
        assert torch.equal(a, b), f"{name} changed on a skipped step"


@pytest.mark.parametrize("t", [1, 2, 7, 100, 3000, 100000])
@pytest.mark.parametrize("b1", [0.9, 0.0])
def test_adam_bias_correction_is_accurate_at_every_step(backend, device, t, b1):
    """With m = v = 0, g = 1 and epsilon 0 the update is -lr_t (1 - b1) / sqrt(1 - b2): lr_t read back matches
    float64 within fp32 rounding at small t too, where 1 - exp(t log b2) would lose digits (b2 = 0.999); beta_1 = 0
    (log 0 = -inf in the kernel) is no special case."""
    n = 64
    p, g, m, v = (torch.zeros(n, device=device) for _ in range(4))
    g.fill_(1.0)
    b2 = 0.999
    kernels.adam_(p, g, m, v, step=torch.tensor(t, device=device), lr=torch.tensor(1.0, device=device), beta_1=b1,
                  beta_2=b2, epsilon=0.0)  # fmt: skip
    got = -p.double().cpu() * math.sqrt(1 - b2) / (1 - b1)
    want = optim.adam_rate(1.0, t, b1, b2)
    assert_close_verbose(got, torch.full((n,), want, dtype=torch.float64), atol=0, rtol=2e-6, name=f"lr_t at t={t}")


def test_device_scalars_are_checked(backend, device):
    update, bufs = _prepared("sgd", {}, device)
    with pytest.raises(ValueError, match=r"sgd_: expected found_inf a 0-d torch.float32 tensor.*\(1,\)"):
        update(torch.zeros(1, device=device))
    with pytest.raises(ValueError, match=r"found_inf a 0-d torch.float32 tensor.*torch.float64"):
        update(torch.zeros((), dtype=torch.float64, device=device))
    assert int(update.step) == 0, "a refused call counts no step"
    with pytest.raises(ValueError, match="expected lr a float or a 0-d tensor"):
        kernels.sgd_(bufs[0], bufs[1], lr="fast")
    with pytest.raises(ValueError, match=r"expected lr a 0-d real tensor.*\(2,\)"):
        kernels.sgd_(bufs[0], bufs[1], lr=torch.zeros(2, device=device))
    with pytest.raises(ValueError, match=r"expected step a 0-d real tensor.*torch.bool"):
        kernels.adam_(*bufs[:4], lr=0.1, step=torch.tensor(True, device=device))
    with pytest.raises(ValueError, match="needs u_product"):
        kernels.optimizer_update_("nadam", *bufs[:4], lr=0.1, h1=0.9, h2=0.999, step=torch.tensor(2, device=device))


def test_nadam_u_product_and_step_tensors(backend, device):
    """Nadam's one-shot update with the step and u_product as device tensors equals the host-int form."""
    n = sum(SIZES)
    gen = torch.Generator().manual_seed(21)
    p0, g0 = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    a = [p0.clone().to(device), g0.to(device), torch.zeros(n, device=device), torch.zeros(n, device=device)]
    b = [t.clone() for t in a]
    kw = dict(h1=0.9, h2=0.999, lr=0.01)
    kernels.optimizer_update_("nadam", *a, step=7, **kw)
    u_before = torch.tensor(optim.nadam_u_product(0.9, 6), dtype=torch.float64, device=device)
    kernels.optimizer_update_("nadam", *b, step=torch.tensor(7, device=device), u_product=u_before, **kw)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
