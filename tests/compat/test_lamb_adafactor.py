"""``Lamb`` and ``Adafactor`` against Keras: several ``optimizer.apply`` steps from the same weights and gradients
(the weights and every state after each step), their configs, names, serialization and bad arguments.

The variables cover what the per-variable parts of the rules branch on: a 2-D and a 3-D variable (Adafactor
factors the last two axes, the first of the 3-D one a batch axis), a 1-D variable starting at zeros (Lamb's
``||w|| = 0`` branch on the first step, Adafactor's ``epsilon_2`` floor on ``rms(w)``) and a scalar whose
gradient is always 0 (Lamb's ``||u|| = 0`` branch; Adafactor's ``epsilon_1`` keeps its second moment above 0).
Both rules normalise their updates (a ratio of norms, an RMS), so rounding does not grow from step to step: every
step is held to fp32's one-step tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tritonnn

from .compare import (
    assert_optimizer_config_is_keras,
    assert_same,
    make_optimizer,
    observe,
    split_flat,
    summary_counts,
    to_numpy,
)
from .differences import deliberate

RNG = np.random.default_rng(1404)
SHAPES = [(4, 5), (5,), (2, 3, 4), ()]
W0 = [
    RNG.normal(scale=0.5, size=SHAPES[0]).astype("float32"),
    np.zeros(SHAPES[1], "float32"),
    RNG.normal(scale=0.5, size=SHAPES[2]).astype("float32"),
    np.array(0.75, "float32"),
]
STEPS = 6
GRADS = [
    [
        RNG.normal(scale=2.0 if t % 2 else 0.1, size=SHAPES[0]).astype("float32"),
        RNG.normal(size=SHAPES[1]).astype("float32"),
        RNG.normal(scale=0.5, size=SHAPES[2]).astype("float32"),
        np.array(0.0, "float32"),
    ]
    for t in range(STEPS)
]


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("lamb", "Lamb", {}),
    ("lamb_lr", "Lamb", {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-4}),
    ("lamb_weight_decay", "Lamb", {"learning_rate": 0.02, "weight_decay": 0.2}),
    ("lamb_clipnorm", "Lamb", {"learning_rate": 0.02, "clipnorm": 0.5}),
    ("lamb_global_clipnorm", "Lamb", {"learning_rate": 0.02, "global_clipnorm": 0.5}),
    ("lamb_clipvalue", "Lamb", {"learning_rate": 0.02, "clipvalue": 0.3}),
    ("lamb_schedule", "Lamb", {"learning_rate": "schedule"}),
    ("lamb_ema", "Lamb", {"learning_rate": 0.02, "use_ema": True, "ema_momentum": 0.6}),
    ("adafactor", "Adafactor", {}),
    # a rate above 1/sqrt(t) from the third step: the relative step size takes over
    ("adafactor_lr", "Adafactor", {"learning_rate": 0.6, "beta_2_decay": -0.5, "epsilon_2": 0.05}),
    ("adafactor_not_relative", "Adafactor", {"learning_rate": 0.6, "relative_step": False}),
    ("adafactor_clip_threshold", "Adafactor", {"learning_rate": 0.1, "clip_threshold": 0.2}),
    ("adafactor_epsilon_1", "Adafactor", {"learning_rate": 0.1, "epsilon_1": 0.01}),
    ("adafactor_weight_decay", "Adafactor", {"learning_rate": 0.1, "weight_decay": 0.3}),
    ("adafactor_clipnorm", "Adafactor", {"learning_rate": 0.1, "clipnorm": 0.5}),
    ("adafactor_global_clipnorm", "Adafactor", {"learning_rate": 0.1, "global_clipnorm": 0.5}),
    ("adafactor_schedule", "Adafactor", {"learning_rate": "schedule"}),
    ("adafactor_ema", "Adafactor", {"learning_rate": 0.1, "use_ema": True, "ema_overwrite_frequency": 2}),
]


def _variables(K: Any) -> list[Any]:
    if K is tritonnn:
        return [torch.nn.Parameter(torch.tensor(w)) for w in W0]
    return [K.Variable(w) for w in W0]


def _states(K: Any, opt: Any) -> dict[str, list[np.ndarray]]:
    """Every state of the rule, per variable: Keras' variables, tritonnn's flat buffers split the same way."""
    name = type(opt).__name__
    if K is not tritonnn:
        grab = lambda vs: [np.array(to_numpy(K, v), copy=True) for v in vs]  # noqa: E731
        if name == "Lamb":
            return {"m": grab(opt._momentums), "v": grab(opt._velocities)}
        factored = [i for i, s in enumerate(SHAPES) if len(s) >= 2]
        return {"v": grab(opt._v), "r": grab([opt._r[i] for i in factored]), "c": grab([opt._c[i] for i in factored])}
    state = opt.state_dict()
    if name == "Lamb":
        return {"m": split_flat(state["momentums"], SHAPES), "v": split_flat(state["velocities"], SHAPES)}
    rc_shapes = [sh for s in SHAPES if len(s) >= 2 for sh in (s[:-1], s[:-2] + s[-1:])]
    rc = split_flat(state["factored_moments"], rc_shapes)
    return {"v": split_flat(state["velocities"], SHAPES), "r": rc[0::2], "c": rc[1::2]}


def run_apply(K: Any, cls: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    variables = _variables(K)
    opt = make_optimizer(K, cls, kwargs)
    out = []
    for grads in GRADS:
        opt.apply([K.ops.convert_to_tensor(g) for g in grads], variables)
        step = {"weights": [np.array(to_numpy(K, v), copy=True) for v in variables], **_states(K, opt)}
        if kwargs.get("use_ema"):
            step["average"] = [np.array(to_numpy(K, a), copy=True) for a in opt._model_variables_moving_average]
        step["iterations"] = int(to_numpy(K, opt.iterations))
        out.append(step)
    return out


@pytest.mark.parametrize("cls,kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_apply_steps_match_keras(keras_ref, cls, kwargs):
    ref = run_apply(keras_ref, cls, kwargs)
    got = run_apply(tritonnn, cls, kwargs)
    for t, (r, g) in enumerate(zip(ref, got, strict=True)):
        assert_same(r, g, what=f"{cls} {kwargs} after step {t + 1}")


CONFIGS = [
    ("Lamb", {}),
    ("Lamb", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-5, "weight_decay": 0.1}),
    ("Lamb", {"clipnorm": 1.0, "use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 10, "name": "l"}),
    ("Lamb", {"learning_rate": "schedule", "global_clipnorm": 2.0}),
    ("Adafactor", {}),
    ("Adafactor", {"beta_2_decay": -0.5, "epsilon_1": 1e-20, "epsilon_2": 1e-2, "clip_threshold": 2.0}),
    ("Adafactor", {"relative_step": False, "clipvalue": 0.5, "use_ema": True, "name": "af"}),
    ("Adafactor", {"learning_rate": "schedule", "weight_decay": 0.01}),
]


@pytest.mark.parametrize("cls,kwargs", CONFIGS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CONFIGS)])
def test_configs_are_keras(keras_ref, cls, kwargs):
    ref = make_optimizer(keras_ref, cls, kwargs)
    got = make_optimizer(tritonnn, cls, kwargs)
    assert_optimizer_config_is_keras(keras_ref, tritonnn, ref, got, keras_reads_ours=cls != "Lamb")


def test_get_by_name(keras_ref):
    """``get("adafactor")`` in both; ``get("lamb")`` and ``deserialize({"class_name": "Lamb"})`` give a Lamb here,
    where Keras 3.15 raises / returns the string (Lamb is missing from its ALL_OBJECTS)."""
    for name in ("adafactor", "Adafactor", "ADAFACTOR"):
        assert type(keras_ref.optimizers.get(name)).__name__ == type(tritonnn.optimizers.get(name)).__name__
    deliberate("optimizers.lamb-by-name")
    assert isinstance(observe(lambda: keras_ref.optimizers.get("lamb")), type(observe(lambda: 1 / 0)))
    assert keras_ref.optimizers.deserialize({"class_name": "Lamb", "config": {}}) == "Lamb"
    for name in ("lamb", "Lamb", "LAMB"):
        assert type(tritonnn.optimizers.get(name)) is tritonnn.optimizers.Lamb
    assert type(tritonnn.optimizers.deserialize({"class_name": "Lamb", "config": {}})) is tritonnn.optimizers.Lamb
    assert {"Lamb", "Adafactor"} <= set(tritonnn.optimizers.ALL_OBJECTS)


BAD = [
    ("Lamb", {"beta_1": "a"}),
    ("Lamb", {"epsilon": None}),
    ("Lamb", {"clipnorm": 1.0, "clipvalue": 1.0}),
    ("Lamb", {"amsgrad": True}),
    ("Lamb", {"use_ema": True, "ema_momentum": 2.0}),
    ("Adafactor", {"clip_threshold": "x"}),
    ("Adafactor", {"beta_2_decay": None}),
    ("Adafactor", {"epsilon_2": [1e-3]}),
    ("Adafactor", {"decay_rate": 0.8}),
    ("Adafactor", {"use_ema": True, "ema_overwrite_frequency": 0.5}),
]


@pytest.mark.parametrize("cls,kwargs", BAD, ids=[f"{c}-{next(iter(k))}" for c, k in BAD])
def test_bad_arguments_raise_keras_errors(keras_ref, cls, kwargs):
    """The error class Keras raises, building the optimizer and taking one step (Keras checks Lamb's and
    Adafactor's own arguments at its first step: "Invalid dtype"; tritonnn when the optimizer is made)."""

    def program(K):
        variables = _variables(K)
        opt = getattr(K.optimizers, cls)(**kwargs)
        opt.apply([K.ops.convert_to_tensor(g) for g in GRADS[0]], variables)
        return "trained"

    ref, got = observe(lambda: program(keras_ref)), observe(lambda: program(tritonnn))
    assert_same(ref, got)
    assert getattr(ref, "type", None) == "ValueError"


@pytest.mark.parametrize("cls", ["Lamb", "Adafactor"])
@pytest.mark.parametrize("use_ema", [False, True], ids=["plain", "ema"])
def test_summary_counts_the_optimizer_variables_as_keras(keras_ref, cls, use_ema):
    """``model.summary()``'s "Optimizer params": Adafactor's factored moments and Keras' two scalar placeholders
    per variable of fewer than two dimensions; EMA's averages."""
    counts = []
    for K in (keras_ref, tritonnn):
        model = K.Sequential([K.Input((6,)), K.layers.Dense(8), K.layers.Dense(4)])
        model.compile(optimizer=getattr(K.optimizers, cls)(use_ema=use_ema), loss="mse")
        model.train_on_batch(np.ones((2, 6), "float32"), np.ones((2, 4), "float32"))
        counts.append(summary_counts(model))
    assert counts[0] == counts[1]
