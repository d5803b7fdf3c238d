"""``Muon`` and ``ScheduleFreeAdamW`` against Keras: several ``optimizer.apply`` steps from the same weights and
gradients (the weights and every state after each step), which variables Muon orthogonalizes, their configs,
names, serialization, bad arguments and summary counts.

The variables are ``keras.Variable``s made under name scopes, so that they have Keras' paths, and cover what
Muon's selection branches on: 2-D variables (a wide one, a tall one, which Newton-Schulz transposes, and a second
one of the first's shape, orthogonalized in the same batch), one whose path holds ``embedding`` (AdamW unless
``exclude_embeddings=False``), one that ``exclude_layers`` can match (``out/kernel``), and 1-D, 3-D and scalar
ones (always AdamW; the scalar's gradient is always 0). Muon's step normalises its update (a Frobenius norm, then
an orthogonalization) and ScheduleFreeAdamW's Adam's, so every step is held to fp32's one-step tolerance.
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

RNG = np.random.default_rng(1415)
# (name scope, name, shape)
VARIABLES = [
    ("dense", "kernel", (4, 5)),
    ("dense", "bias", (5,)),
    ("dense_1", "kernel", (6, 3)),
    ("dense_2", "kernel", (4, 5)),
    ("token_embedding", "embeddings", (7, 4)),
    ("conv", "kernel", (2, 3, 4)),
    ("out", "kernel", (5, 2)),
    ("out", "scale", ()),
]
SHAPES = [s for _, _, s in VARIABLES]
W0 = [RNG.normal(scale=0.5, size=s).astype("float32") for s in SHAPES]
STEPS = 5
GRADS = [
    [
        np.zeros(s, "float32") if s == () else RNG.normal(scale=2.0 if t % 2 else 0.1, size=s).astype("float32")
        for s in SHAPES
    ]
    for t in range(STEPS)
]
# What Keras' rule gives each variable by default: AdamW for the bias, the embedding, the 3-D and the scalar.
DEFAULT_ADAMW = [False, True, False, False, True, True, False, True]


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("muon", "Muon", {}),
    ("muon_lr", "Muon", {"learning_rate": 0.02, "adam_beta_1": 0.8, "adam_beta_2": 0.95, "epsilon": 1e-4}),
    ("muon_plain_momentum", "Muon", {"learning_rate": 0.02, "momentum": 0.8, "nesterov": False}),
    ("muon_excluded", "Muon", {"learning_rate": 0.02, "exclude_layers": ["^out/", "dense_2"]}),
    ("muon_embeddings", "Muon", {"learning_rate": 0.02, "exclude_embeddings": False}),
    (
        "muon_newton_schulz",
        "Muon",
        {"learning_rate": 0.02, "ns_steps": 3, "muon_a": 2.0, "muon_b": -1.5, "muon_c": 0.5, "rms_rate": None},
    ),
    ("muon_decays", "Muon", {"learning_rate": 0.05, "weight_decay": 0.3, "adam_weight_decay": None}),
    ("muon_adam_decay", "Muon", {"learning_rate": 0.05, "weight_decay": None, "adam_weight_decay": 0.2}),
    ("muon_adam_lr_ratio", "Muon", {"learning_rate": 0.05, "adam_lr_ratio": 0.1}),
    ("muon_clipnorm", "Muon", {"learning_rate": 0.02, "clipnorm": 0.5}),
    ("muon_global_clipnorm", "Muon", {"learning_rate": 0.02, "global_clipnorm": 0.5}),
    ("muon_clipvalue", "Muon", {"learning_rate": 0.02, "clipvalue": 0.3}),
    ("muon_schedule", "Muon", {"learning_rate": "schedule"}),
    ("muon_ema", "Muon", {"learning_rate": 0.02, "use_ema": True, "ema_momentum": 0.6}),
    ("schedule_free", "ScheduleFreeAdamW", {}),
    ("schedule_free_lr", "ScheduleFreeAdamW", {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-4}),
    ("schedule_free_warmup", "ScheduleFreeAdamW", {"learning_rate": 0.02, "warmup_steps": 3}),
    ("schedule_free_warmup_float", "ScheduleFreeAdamW", {"learning_rate": 0.02, "warmup_steps": 2.5}),
    ("schedule_free_weight_decay", "ScheduleFreeAdamW", {"learning_rate": 0.02, "weight_decay": 0.3}),
    ("schedule_free_clipnorm", "ScheduleFreeAdamW", {"learning_rate": 0.02, "clipnorm": 0.5}),
    ("schedule_free_global_clipnorm", "ScheduleFreeAdamW", {"learning_rate": 0.02, "global_clipnorm": 0.5}),
    ("schedule_free_clipvalue", "ScheduleFreeAdamW", {"learning_rate": 0.02, "clipvalue": 0.3}),
    ("schedule_free_schedule", "ScheduleFreeAdamW", {"learning_rate": "schedule", "warmup_steps": 2}),
    ("schedule_free_ema", "ScheduleFreeAdamW", {"learning_rate": 0.02, "use_ema": True, "ema_overwrite_frequency": 2}),
]


def make_variables(K: Any) -> list[Any]:
    out = []
    for (scope, name, _), w in zip(VARIABLES, W0, strict=True):
        with K.name_scope(scope):
            out.append(K.Variable(w, name=name))
    return out


def _adamw(K: Any, opt: Any, variables: list[Any]) -> list[bool]:
    return [bool(opt._should_use_adamw(v)) for v in variables]


def _states(K: Any, opt: Any, variables: list[Any]) -> dict[str, list[Any]]:
    """Every state of the rule, per variable: Keras' variables, tritonnn's flat buffers split the same way; Muon's
    velocities only where Keras has one (its AdamW variables)."""
    muon = type(opt).__name__ == "Muon"
    if K is not tritonnn:
        grab = lambda vs: [None if v is None else np.array(to_numpy(K, v), copy=True) for v in vs]  # noqa: E731
        if muon:
            return {"m": grab(opt.momentums), "v": grab(opt.adam_velocities)}
        return {"z": grab(opt._momentums), "v": grab(opt._velocities)}
    state = opt.state_dict()
    m, v = split_flat(state["momentums"], SHAPES), split_flat(state["velocities"], SHAPES)
    if muon:
        adamw = _adamw(K, opt, variables)
        for i, a in enumerate(adamw):
            if not a:
                assert not v[i].any(), f"a Muon variable's velocity moved: {VARIABLES[i]}"
        return {"m": m, "v": [x if a else None for x, a in zip(v, adamw, strict=True)]}
    return {"z": m, "v": v}


def run_apply(K: Any, cls: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    variables = make_variables(K)
    opt = make_optimizer(K, cls, kwargs)
    out = []
    for grads in GRADS:
        opt.apply([K.ops.convert_to_tensor(g) for g in grads], variables)
        step = {"weights": [np.array(to_numpy(K, v), copy=True) for v in variables], **_states(K, opt, variables)}
        if kwargs.get("use_ema"):
            step["average"] = [np.array(to_numpy(K, a), copy=True) for a in opt._model_variables_moving_average]
        step["iterations"] = int(to_numpy(K, opt.iterations))
        if cls == "Muon":
            step["adamw"] = _adamw(K, opt, variables)
        out.append(step)
    return out


@pytest.mark.parametrize("cls,kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_apply_steps_match_keras(keras_ref, cls, kwargs):
    ref = run_apply(keras_ref, cls, kwargs)
    got = run_apply(tritonnn, cls, kwargs)
    for t, (r, g) in enumerate(zip(ref, got, strict=True)):
        assert_same(r, g, what=f"{cls} {kwargs} after step {t + 1}")


def test_muon_selection_is_keras():
    """The default selection and what ``exclude_layers``/``exclude_embeddings`` change (the step comparisons above
    also compare each variable's choice with Keras'); a plain tensor, which has no path, matches no pattern."""
    variables = make_variables(tritonnn)
    assert _adamw(tritonnn, tritonnn.optimizers.Muon(), variables) == DEFAULT_ADAMW
    opt = tritonnn.optimizers.Muon(exclude_layers=["^out/"], exclude_embeddings=False)
    assert _adamw(tritonnn, opt, variables) == [False, True, False, False, False, True, True, True]
    plain = torch.nn.Parameter(torch.zeros(3, 4))
    assert not tritonnn.optimizers.Muon(exclude_layers=[".*"])._should_use_adamw(plain)


def test_schedule_free_starts_z_at_the_weights_and_resumes_exactly():
    """``z`` starts at the weights when built; a state_dict taken mid-way and loaded into a fresh optimizer (before
    or after its build, on copies of the weights then) continues bit for bit as the original does."""
    variables = make_variables(tritonnn)
    make = lambda: tritonnn.optimizers.ScheduleFreeAdamW(learning_rate=0.05, warmup_steps=2, weight_decay=0.1)  # noqa: E731
    opt = make()
    opt.build(variables)
    n = sum(w.size for w in W0)
    assert torch.equal(opt.state_dict()["momentums"][:n], torch.cat([torch.tensor(w).reshape(-1) for w in W0]))
    for grads in GRADS[:2]:
        opt.apply([torch.tensor(g) for g in grads], variables)
    saved, weights = opt.state_dict(), [v.detach().clone() for v in variables]
    for grads in GRADS[2:]:
        opt.apply([torch.tensor(g) for g in grads], variables)
    for before_build in (True, False):
        fresh = [torch.nn.Parameter(w.clone()) for w in weights]
        again = make()
        if before_build:
            again.load_state_dict(saved)
            again.build(fresh)
        else:
            again.build(fresh)
            again.load_state_dict(saved)
        assert again.iterations == 2
        for grads in GRADS[2:]:
            again.apply([torch.tensor(g) for g in grads], fresh)
        for a, b in zip(fresh, variables, strict=True):
            assert torch.equal(a.detach(), b.detach())
        assert all(torch.equal(x, y) for x, y in zip(again.variables, opt.variables, strict=True))


CONFIGS = [
    ("Muon", {}),
    (
        "Muon",
        {
            "learning_rate": 0.01,
            "adam_beta_1": 0.8,
            "adam_beta_2": 0.95,
            "adam_weight_decay": None,
            "epsilon": 1e-5,
            "weight_decay": 0.1,
            "exclude_layers": ["out", "^head/"],
            "exclude_embeddings": False,
            "muon_a": 3.0,
            "muon_b": -4.0,
            "muon_c": 2.0,
            "adam_lr_ratio": 0.1,
            "momentum": 0.9,
            "ns_steps": 4,
            "nesterov": False,
            "rms_rate": None,
            "name": "m",
        },
    ),
    ("Muon", {"learning_rate": "schedule", "clipnorm": 1.0, "use_ema": True, "ema_overwrite_frequency": 5}),
    ("ScheduleFreeAdamW", {}),
    ("ScheduleFreeAdamW", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-5, "warmup_steps": 10}),
    ("ScheduleFreeAdamW", {"learning_rate": "schedule", "weight_decay": 0.01, "global_clipnorm": 2.0, "name": "sf"}),
    ("ScheduleFreeAdamW", {"clipvalue": 0.5, "use_ema": True, "ema_momentum": 0.9}),
]


@pytest.mark.parametrize("cls,kwargs", CONFIGS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CONFIGS)])
def test_configs_are_keras(keras_ref, cls, kwargs):
    ref = make_optimizer(keras_ref, cls, kwargs)
    assert_optimizer_config_is_keras(keras_ref, tritonnn, ref, make_optimizer(tritonnn, cls, kwargs))


def test_names_are_keras(keras_ref):
    """Automatic names (Keras' snake case, counted) and ``get`` by Keras' string identifiers."""
    for K in (keras_ref, tritonnn):
        K.backend.clear_session()
    for cls in ("Muon", "ScheduleFreeAdamW"):
        ref = [getattr(keras_ref.optimizers, cls)().name for _ in range(2)]
        got = [getattr(tritonnn.optimizers, cls)().name for _ in range(2)]
        assert ref == got
    for name in ("muon", "Muon", "schedulefreeadamw", "ScheduleFreeAdamW"):
        assert type(keras_ref.optimizers.get(name)).__name__ == type(tritonnn.optimizers.get(name)).__name__
    for name in ("schedule_free_adamw", "schedule_free_adam_w"):
        assert_same(
            observe(lambda n=name: keras_ref.optimizers.get(n)), observe(lambda n=name: tritonnn.optimizers.get(n))
        )
    assert {"Muon", "ScheduleFreeAdamW"} <= set(tritonnn.optimizers.ALL_OBJECTS)


BAD = [
    ("Muon", {"adam_beta_1": "a"}),
    ("Muon", {"adam_beta_2": None}),
    ("Muon", {"epsilon": None}),
    ("Muon", {"adam_lr_ratio": None}),
    ("Muon", {"adam_weight_decay": "x"}),
    ("Muon", {"weight_decay": "x"}),
    ("Muon", {"ns_steps": 2.5}),
    ("Muon", {"ns_steps": "5"}),
    ("Muon", {"momentum": "x"}),
    ("Muon", {"momentum": None}),
    ("Muon", {"muon_a": None}),
    ("Muon", {"muon_b": "x"}),
    ("Muon", {"muon_c": [2.0]}),
    ("Muon", {"rms_rate": "x"}),
    ("Muon", {"exclude_layers": 5}),
    ("Muon", {"exclude_layers": [5]}),
    ("Muon", {"amsgrad": True}),
    ("Muon", {"clipnorm": 1.0, "clipvalue": 1.0}),
    ("Muon", {"use_ema": True, "ema_momentum": 2.0}),
    ("ScheduleFreeAdamW", {"beta_1": "a"}),
    ("ScheduleFreeAdamW", {"beta_2": None}),
    ("ScheduleFreeAdamW", {"epsilon": None}),
    ("ScheduleFreeAdamW", {"warmup_steps": "x"}),
    ("ScheduleFreeAdamW", {"warmup_steps": None}),
    ("ScheduleFreeAdamW", {"momentum": 0.9}),
    ("ScheduleFreeAdamW", {"use_ema": True, "ema_overwrite_frequency": 0.5}),
]


@pytest.mark.parametrize("cls,kwargs", BAD, ids=[f"{c}-{'-'.join(k)}" for c, k in BAD])
def test_bad_arguments_raise_keras_errors(keras_ref, cls, kwargs):
    """The error class Keras raises, building the optimizer and taking one step (Keras checks these arguments only
    as its first step uses them; tritonnn when the optimizer is made)."""

    def program(K):
        variables = make_variables(K)
        opt = getattr(K.optimizers, cls)(**kwargs)
        opt.apply([K.ops.convert_to_tensor(g) for g in GRADS[0]], variables)
        return "trained"

    ref, got = observe(lambda: program(keras_ref)), observe(lambda: program(tritonnn))
    assert_same(ref, got)
    assert getattr(ref, "type", None) in ("ValueError", "TypeError")


def test_odd_but_valid_arguments_train_as_in_keras(keras_ref):
    """What Keras accepts without a check: ``exclude_layers`` as one string (its characters are the patterns),
    ``ns_steps`` 0 (no iteration: the normalised momentum), a negative ``warmup_steps`` (no warmup)."""
    for cls, kwargs in [
        ("Muon", {"learning_rate": 0.02, "exclude_layers": "ut"}),
        ("Muon", {"learning_rate": 0.02, "ns_steps": 0}),
        ("ScheduleFreeAdamW", {"learning_rate": 0.02, "warmup_steps": -2}),
    ]:
        assert_same(run_apply(keras_ref, cls, kwargs), run_apply(tritonnn, cls, kwargs), what=f"{cls} {kwargs}")


@pytest.mark.parametrize("cls", ["Muon", "ScheduleFreeAdamW"])
@pytest.mark.parametrize("use_ema", [False, True], ids=["plain", "ema"])
def test_summary_counts_the_optimizer_variables_as_keras(keras_ref, cls, use_ema):
    """``model.summary()``'s "Optimizer params": Muon has no velocity for the variables it orthogonalizes."""
    counts = []
    for K in (keras_ref, tritonnn):
        model = K.Sequential([K.Input((6,)), K.layers.Dense(8), K.layers.Dense(4)])
        model.compile(optimizer=getattr(K.optimizers, cls)(use_ema=use_ema), loss="mse")
        model.train_on_batch(np.ones((2, 6), "float32"), np.ones((2, 4), "float32"))
        counts.append(summary_counts(model))
    assert counts[0] == counts[1]


def _fit_and_evaluate(K: Any, cls: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A model with an embedding (Muon's exclude_embeddings), a hidden and an output layer: fit with validation
    data, then evaluate and predict with the weights fit left (no swap for ScheduleFreeAdamW's, as in Keras)."""
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, 10, size=(32, 3))
    y = rng.normal(size=(32, 2)).astype("float32")
    model = K.Sequential(
        [
            K.Input((3,), dtype="int32"),
            K.layers.Embedding(10, 4, name="token_embedding"),
            K.layers.Flatten(),
            K.layers.Dense(6, activation="tanh", name="hidden"),
            K.layers.Dense(2, name="head"),
        ]
    )
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()])
    model.compile(optimizer=make_optimizer(K, cls, kwargs), loss="mse")
    history = model.fit(tokens, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(tokens, y))
    return {
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "evaluate": float(model.evaluate(tokens, y, verbose=0)),
        "predict": np.asarray(model.predict(tokens, verbose=0)),
        "weights": [np.asarray(w) for w in model.get_weights()],
    }


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        ("Muon", {"learning_rate": 0.02}),
        ("Muon", {"learning_rate": 0.02, "exclude_layers": ["head"], "exclude_embeddings": False}),
        ("ScheduleFreeAdamW", {"learning_rate": 0.02, "warmup_steps": 3}),
    ],
    ids=["muon", "muon_excluded", "schedule_free"],
)
def test_fit_evaluate_and_predict_match_keras(keras_ref, cls, kwargs):
    ref, got = _fit_and_evaluate(keras_ref, cls, kwargs), _fit_and_evaluate(tritonnn, cls, kwargs)
    assert_same(ref, got, rtol=1e-4, atol=1e-5)  # eight steps
