"""``MultiOptimizer`` and ``OptimizerMap`` against Keras: which sub-optimizer each variable gets (path patterns, a
callable), several ``apply`` steps (weights, every sub-optimizer's states and iterations), ``fit`` of a small model
with two layers on two optimizers (histories, weights, counts; EMA in a sub-optimizer; loss scaling around it),
configs both ways, saving and resuming a compiled model, summary counts and the errors of bad arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tritonnn

from .compare import assert_same, observe, split_flat, summary_counts, to_numpy
from .differences import deliberate

RNG = np.random.default_rng(1416)
# (name scope, name, shape): paths "encoder/dense/kernel"...
VARIABLES = [
    ("encoder/dense", "kernel", (4, 5)),
    ("encoder/dense", "bias", (5,)),
    ("decoder", "kernel", (5, 3)),
    ("decoder", "bias", (3,)),
    ("head", "kernel", (3, 2)),
]
SHAPES = [s for _, _, s in VARIABLES]
W0 = [RNG.normal(scale=0.5, size=s).astype("float32") for s in SHAPES]
STEPS = 4
GRADS = [[RNG.normal(scale=1.0 if t % 2 else 0.2, size=s).astype("float32") for s in SHAPES] for t in range(STEPS)]


def make_variables(K: Any) -> list[Any]:
    out = []
    for (scope, name, _), w in zip(VARIABLES, W0, strict=True):
        with K.name_scope(scope.split("/")[0]):
            if "/" in scope:
                with K.name_scope(scope.split("/")[1]):
                    out.append(K.Variable(w, name=name))
            else:
                out.append(K.Variable(w, name=name))
    return out


def by_map(K: Any) -> Any:
    """Everything under ``encoder`` on SGD with momentum, ``head/kernel`` (an exact key) on RMSprop, a key that
    matches nothing on Adagrad (never built), the rest on Adam."""
    O = K.optimizers
    return O.MultiOptimizer(
        O.OptimizerMap(
            O.Adam(learning_rate=0.05),
            {
                "encoder/.*": O.SGD(learning_rate=0.1, momentum=0.9),
                "head/kernel": O.RMSprop(learning_rate=0.01),
                "nothing/.*": O.Adagrad(),
            },
        )
    )


def by_callable(K: Any) -> Any:
    """Biases on Lion, the other variables on Adam with EMA: a selector function."""
    O = K.optimizers
    lion, adam = O.Lion(learning_rate=0.01), O.Adam(learning_rate=0.05, use_ema=True, ema_momentum=0.5)
    return O.MultiOptimizer(lambda v: lion if v.path.endswith("bias") else adam)


def by_map_with_rules(K: Any) -> Any:
    """Per-variable rules as sub-optimizers: the decoder on Lamb, the rest on ScheduleFreeAdamW."""
    O = K.optimizers
    return O.MultiOptimizer(
        O.OptimizerMap(O.ScheduleFreeAdamW(learning_rate=0.05), {"decoder/.*": O.Lamb(learning_rate=0.02)})
    )


_STATES = {  # tritonnn's flat buffer of each state, and Keras' attribute (its variables, one per model variable)
    "SGD": {"momentum_buffer": "momentums"},
    "Adam": {"momentums": "_momentums", "velocities": "_velocities"},
    "RMSprop": {"velocities": "_velocities"},
    "Lion": {"momentums": "_momentums"},
    "Lamb": {"momentums": "_momentums", "velocities": "_velocities"},
    "ScheduleFreeAdamW": {"momentums": "_momentums", "velocities": "_velocities"},
}


def sub_states(K: Any, multi: Any) -> list[dict[str, Any]]:
    """Per sub-optimizer, in ``optimizers``' order: class, built, iterations and every state per variable."""
    out = []
    for opt in multi.optimizers:
        cls = type(opt).__name__
        entry: dict[str, Any] = {"class": cls, "built": bool(opt.built), "iterations": int(to_numpy(K, opt.iterations))}
        if opt.built:
            if K is tritonnn:
                state, shapes = opt.state_dict(), [tuple(p.shape) for p in opt.params]
                for name in _STATES[cls]:
                    entry[name] = split_flat(state[name], shapes)
                if opt.use_ema:
                    entry["average"] = split_flat(state["average"], shapes)
            else:
                for name, attr in _STATES[cls].items():
                    entry[name] = [np.array(to_numpy(K, v), copy=True) for v in getattr(opt, attr)]
                if opt.use_ema:
                    entry["average"] = [
                        np.array(to_numpy(K, v), copy=True) for v in opt._model_variables_moving_average
                    ]
        out.append(entry)
    return out


def run_apply(K: Any, make: Any) -> list[dict[str, Any]]:
    variables = make_variables(K)
    multi = make(K)
    out = []
    for grads in GRADS:
        multi.apply([K.ops.convert_to_tensor(g) for g in grads], variables)
        out.append(
            {
                "weights": [np.array(to_numpy(K, v), copy=True) for v in variables],
                "iterations": int(to_numpy(K, multi.iterations)),
                "optimizers": sub_states(K, multi),
            }
        )
    return out


@pytest.mark.parametrize("make", [by_map, by_callable, by_map_with_rules], ids=["map", "callable", "rules"])
def test_apply_steps_match_keras(keras_ref, make):
    ref, got = run_apply(keras_ref, make), run_apply(tritonnn, make)
    assert_same(ref[0], got[0], what=f"{make.__name__} after one step")
    # Adam's and Lamb's normalisation by sqrt(v) grows the rounding of the smallest gradients from step to step
    assert_same(ref[1:], got[1:], rtol=1e-4, atol=1e-5, what=f"{make.__name__} after steps 2 to {STEPS}")


def test_the_map_resolves_as_keras(keras_ref):
    """Keras' docstring example: an exact key first, else the one pattern that matches the whole path, else the
    default; two matching patterns are a ValueError."""

    def program(K):
        O = K.optimizers
        om = O.OptimizerMap(default_optimizer=O.RMSprop(name="rmsprop"))
        om["encoder/layer_0/dense"] = O.Adam(name="adam")
        om["encoder/.*"] = O.SGD(name="sgd")
        om["decoder"] = O.Adam(name="adam_decoder")
        om[".*/dense"] = O.Adagrad(name="adagrad")
        keys = ["decoder", "encoder/layer_0/dense", "encoder/layer_0/attention/query", "decoder/layer_0/dense", "x"]
        out = {key: observe(lambda key=key: om[key].name) for key in keys}
        out["encoder/x/dense"] = observe(lambda: om["encoder/x/dense"].name)  # two patterns
        out["len"], out["keys"] = len(om), list(om)
        del om["decoder"]
        out["after_del"] = om["decoder"].name
        out["default"] = om.default_optimizer.name
        return out

    assert_same(program(keras_ref), program(tritonnn))


def test_optimizers_iterations_and_learning_rate_are_keras(keras_ref):
    """``optimizers`` in Keras' order (the map's values, then the default); the rate raises on the MultiOptimizer
    (read and set) and reads on each sub-optimizer; iterations count the MultiOptimizer's steps."""

    def program(K):
        multi = by_map(K)
        variables = make_variables(K)
        out: dict[str, Any] = {"classes": [type(o).__name__ for o in multi.optimizers], "name": multi.name}
        out["read"] = observe(lambda: multi.learning_rate)
        out["set"] = observe(lambda: setattr(multi, "learning_rate", 0.1))
        multi.apply([K.ops.convert_to_tensor(g) for g in GRADS[0]], variables)
        multi.apply([K.ops.convert_to_tensor(g) for g in GRADS[1]], variables)
        out["iterations"] = int(to_numpy(K, multi.iterations))
        out["rates"] = [float(to_numpy(K, o.learning_rate)) for o in multi.optimizers]
        out["built"] = [bool(o.built) for o in multi.optimizers]
        out["isinstance"] = isinstance(multi, K.optimizers.Optimizer)
        return out

    for K in (keras_ref, tritonnn):
        K.backend.clear_session()
    assert_same(program(keras_ref), program(tritonnn))


# ---- fit ------------------------------------------------------------------------------------------------------

X = RNG.normal(size=(48, 6)).astype("float32")
Y = RNG.integers(0, 4, size=(48,))
MODEL_W0 = [
    RNG.normal(scale=0.5, size=(6, 8)).astype("float32"),
    RNG.normal(scale=0.1, size=(8,)).astype("float32"),
    RNG.normal(scale=0.5, size=(8, 4)).astype("float32"),
    RNG.normal(scale=0.1, size=(4,)).astype("float32"),
]


def make_model(K: Any) -> Any:
    model = K.Sequential(
        [
            K.Input((6,)),
            K.layers.Dense(8, activation="tanh", name="hidden"),
            K.layers.Dense(4, activation="softmax", name="out"),
        ]
    )
    model.set_weights(MODEL_W0)
    return model


def two_layers(K: Any, ema: bool = False) -> Any:
    """The hidden layer on SGD with momentum, the rest (the output layer) on Adam."""
    O = K.optimizers
    return O.MultiOptimizer(
        O.OptimizerMap(
            O.Adam(learning_rate=0.01, use_ema=ema, ema_momentum=0.8),
            {".*/hidden/.*": O.SGD(learning_rate=0.1, momentum=0.9)},
        )
    )


def run_fit(K: Any, optimizer: Any, epochs: int = 3) -> dict[str, Any]:
    model = make_model(K)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    history = model.fit(X, Y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    multi = model.optimizer
    inner = getattr(multi, "inner_optimizer", multi)
    return {
        "loss": [float(v) for v in history.history["loss"]],
        "weights": [np.asarray(w) for w in model.get_weights()],
        "iterations": int(to_numpy(K, inner.iterations)),
        "optimizers": sub_states(K, inner),
        "summary": summary_counts(model),
    }


@pytest.mark.parametrize("ema", [False, True], ids=["plain", "ema"])
def test_fit_two_layers_on_two_optimizers_matches_keras(keras_ref, ema):
    """Three epochs of three batches; with ``use_ema`` on the output layer's Adam, ``fit`` ends by writing its
    averages into that layer only (Keras' ``finalize_variable_values`` through the MultiOptimizer)."""
    ref, got = run_fit(keras_ref, two_layers(keras_ref, ema)), run_fit(tritonnn, two_layers(tritonnn, ema))
    assert_same(ref, got, rtol=1e-4, atol=1e-5)  # nine steps: rounding of the gradients grows through Adam


def test_loss_scaling_around_a_multi_optimizer_matches_keras(keras_ref):
    """A ``LossScaleOptimizer`` may wrap a ``MultiOptimizer``: the loss scaled, every sub-optimizer's gradients
    unscaled before their steps."""

    def make(K):
        return K.optimizers.LossScaleOptimizer(two_layers(K))

    ref, got = run_fit(keras_ref, make(keras_ref), epochs=1), run_fit(tritonnn, make(tritonnn), epochs=1)
    assert_same({k: v for k, v in ref.items() if k != "summary"}, {k: v for k, v in got.items() if k != "summary"})


@torch.no_grad()
def test_loss_scaling_skips_every_sub_optimizer_on_overflow():
    """An overflowed step is skipped by all the sub-optimizers and the MultiOptimizer's count alike."""
    variables = make_variables(tritonnn)
    opt = tritonnn.optimizers.LossScaleOptimizer(by_map(tritonnn), initial_scale=4.0)
    opt.build(variables)
    before = [v.detach().clone() for v in variables]
    opt.zero_grad()
    for v, g in zip(variables, GRADS[0], strict=True):
        v.grad.add_(torch.tensor(g))
    variables[-1].grad[0, 0] = float("inf")
    opt.step()
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, variables, strict=True))
    assert opt.iterations == 0 and [o.iterations for o in opt.inner_optimizer.optimizers] == [0, 0, 0, 0]
    assert opt.loss_scale == 2.0 and opt.skipped_steps == 1
    opt.zero_grad()
    for v, g in zip(variables, GRADS[0], strict=True):
        v.grad.add_(torch.tensor(g) * 2.0)
    opt.step()
    assert opt.iterations == 1 and [o.iterations for o in opt.inner_optimizer.optimizers] == [1, 1, 0, 1]
    multi = by_map(tritonnn)
    again = make_variables(tritonnn)
    multi.apply([torch.tensor(g) for g in GRADS[0]], again)
    assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(again, variables, strict=True))


def test_save_and_load_resumes_exactly(tmp_path):
    """A compiled model saved mid-training and loaded again has the MultiOptimizer (its map, each sub-optimizer,
    their states and iterations), and its next epoch is the uninterrupted one's, bit for bit."""
    model = make_model(tritonnn)
    model.compile(optimizer=two_layers(tritonnn, ema=True), loss="sparse_categorical_crossentropy")
    model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "multi.keras")
    model.save(path)
    loaded = tritonnn.saving.load_model(path)
    assert type(loaded.optimizer) is tritonnn.optimizers.MultiOptimizer
    assert [type(o).__name__ for o in loaded.optimizer.optimizers] == ["SGD", "Adam"]
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == 3 and [o.iterations for o in loaded.optimizer.optimizers] == [3, 3]
    saved, restored = model.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
    h1 = model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    h2 = loaded.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_dict_before_build_is_applied_when_built():
    variables = make_variables(tritonnn)
    multi = by_map(tritonnn)
    multi.apply([torch.tensor(g) for g in GRADS[0]], variables)
    state = multi.state_dict()
    assert {"iterations", "0/momentum_buffer", "1/velocities", "3/momentums", "3/velocities", "2/iterations"} <= set(
        state
    )
    again = by_map(tritonnn)
    again.load_state_dict(state)
    fresh = make_variables(tritonnn)
    again.build(fresh)
    restored = again.state_dict()
    assert state.keys() == restored.keys() and all(torch.equal(state[k], restored[k]) for k in state)
    broken = {k: v for k, v in state.items() if not k.startswith("3/")}
    with pytest.raises(ValueError, match="sub-optimizer 3"):
        again.load_state_dict(broken)


# ---- configs ----------------------------------------------------------------------------------------------------


def _without_module(config: Any) -> Any:
    """The config with each nested optimizer's ``module``/``registered_name`` dropped: Keras on torch names its
    backend's private class there (saving.optimizer-module)."""
    if isinstance(config, dict):
        drop = config.get("class_name") not in (None, "OptimizerMap", "MultiOptimizer", "function")
        return {k: _without_module(v) for k, v in config.items() if not (drop and k in ("module", "registered_name"))}
    return config


@pytest.mark.parametrize("make", [by_map, by_map_with_rules, two_layers], ids=["map", "rules", "two_layers"])
def test_configs_are_keras_both_ways(keras_ref, make):
    deliberate("saving.optimizer-module")
    for K in (keras_ref, tritonnn):
        K.backend.clear_session()
    ref, got = make(keras_ref), make(tritonnn)
    assert_same(_without_module(ref.get_config()), _without_module(got.get_config()))
    written = keras_ref.optimizers.serialize(ref), tritonnn.optimizers.serialize(got)
    assert [w["class_name"] for w in written] == ["MultiOptimizer", "MultiOptimizer"]
    assert_same(_without_module(written[0]["config"]), _without_module(written[1]["config"]))
    # Keras' config builds the same MultiOptimizer here, ours one in Keras, and ours round-trips
    for source, reader in ((keras_ref, tritonnn), (tritonnn, keras_ref)):
        written = source.optimizers.serialize(ref if source is keras_ref else got)
        back = reader.optimizers.deserialize(written)
        assert type(back).__name__ == "MultiOptimizer"
        assert [type(o).__name__ for o in back.optimizers] == [type(o).__name__ for o in ref.optimizers]
        assert_same(_without_module(ref.get_config()), _without_module(back.get_config()))
    again = tritonnn.optimizers.deserialize(tritonnn.optimizers.serialize(got))
    assert again.get_config() == got.get_config()


def test_a_selector_function_is_saved_by_name(keras_ref):
    """A callable map is written as Keras writes a function (by name) and found again through ``custom_objects``
    (or the registry); unknown, it is Keras' TypeError."""

    def select(variable):
        return select.sgd

    for K in (keras_ref, tritonnn):
        K.backend.clear_session()
    configs = []
    for K in (keras_ref, tritonnn):
        select.sgd = K.optimizers.SGD()
        configs.append(K.optimizers.MultiOptimizer(select).get_config())
    assert_same(configs[0], configs[1])
    for K in (keras_ref, tritonnn):
        restored = K.optimizers.MultiOptimizer.from_config(dict(configs[0]), custom_objects={"select": select})
        assert restored._optimizer_map is select
    ref = observe(lambda: keras_ref.optimizers.MultiOptimizer.from_config(dict(configs[0])))
    got = observe(lambda: tritonnn.optimizers.MultiOptimizer.from_config(dict(configs[0])))
    assert_same(ref, got)
    assert ref.type == "TypeError"


# ---- summary and errors -------------------------------------------------------------------------------------------


def test_summary_counts_the_optimizer_variables_as_keras(keras_ref):
    """The MultiOptimizer's own iterations and rate, each sub-optimizer's (an unbuilt one's too) and their states."""
    counts = []
    for K in (keras_ref, tritonnn):
        O = K.optimizers
        multi = O.MultiOptimizer(
            O.OptimizerMap(
                O.Adam(use_ema=True),
                {".*/hidden/.*": O.SGD(momentum=0.9), "none": O.Adagrad(), "x": O.Muon(), ".*/out/bias": O.Muon()},
            )
        )
        model = make_model(K)
        model.compile(optimizer=multi, loss="sparse_categorical_crossentropy")
        model.train_on_batch(X[:4], Y[:4])
        counts.append(summary_counts(model))
    assert counts[0] == counts[1]


def always(optimizer: Any) -> Any:
    return lambda variable: optimizer


def _bad_programs(K: Any) -> dict[str, Any]:
    O = K.optimizers
    OM = O.OptimizerMap

    def set_key(key, value):
        om = OM(O.Adam())
        om["taken"] = O.SGD()
        om[key] = value

    def build_with(selector):
        O.MultiOptimizer(selector).build(make_variables(K))

    def apply(grads, variables, built=False):
        multi = by_map(K)
        if built:
            multi.build(make_variables(K))
        multi.apply(grads, variables)

    def finalize(variable):
        multi = by_map(K)
        multi.build(make_variables(K))
        multi.finalize_variable_values([variable])

    grads = [K.ops.convert_to_tensor(g) for g in GRADS[0]]
    return {
        "default not an optimizer": lambda: OM("adam"),
        "map not a dict": lambda: OM(O.Adam(), [("a", O.SGD())]),
        "value not an optimizer": lambda: set_key("x", "sgd"),
        "key not a string": lambda: set_key(1, O.SGD()),
        "key taken": lambda: set_key("taken", O.SGD()),
        "loss scale optimizer value": lambda: set_key("y", O.LossScaleOptimizer(O.SGD())),
        "multi optimizer value": lambda: set_key("z", O.MultiOptimizer(OM(O.SGD()))),
        "two patterns": lambda: OM(O.Adam(), {"a.*": O.SGD(), ".*b": O.SGD()})["ab"],
        "set the default": lambda: setattr(OM(O.Adam()), "default_optimizer", O.SGD()),
        "delete a missing key": lambda: OM(O.Adam()).__delitem__("missing"),
        "not callable": lambda: build_with("adam"),
        "selector gives a string": lambda: build_with(lambda v: "sgd"),
        "selector gives a loss scale optimizer": lambda: build_with(always(O.LossScaleOptimizer(O.SGD()))),
        "selector gives a multi optimizer": lambda: build_with(always(O.MultiOptimizer(OM(O.SGD())))),
        "learning_rate argument": lambda: O.MultiOptimizer(OM(O.SGD()), learning_rate=0.1),
        "apply without variables, unbuilt": lambda: apply(grads, None),
        "apply too many gradients": lambda: apply(grads + grads[:1], None, built=True),
        "apply too few gradients": lambda: apply(grads[:2], make_variables(K)),
        "apply a None gradient": lambda: apply([None] * len(grads), make_variables(K)),
        "apply an unknown variable": lambda: apply(grads, make_variables(K)[:-1] + [K.Variable(W0[-1])], built=True),
        "a map value not an optimizer": lambda: O.MultiOptimizer(OM(O.Adam(), {"a": "sgd"})),
        "finalize an unknown variable": lambda: finalize(K.Variable(W0[0])),
    }


@pytest.mark.parametrize("case", list(_bad_programs(tritonnn)))
def test_bad_arguments_raise_keras_errors(keras_ref, case):
    ref = observe(_bad_programs(keras_ref)[case])
    got = observe(_bad_programs(tritonnn)[case])
    assert_same(ref, got)
    assert getattr(ref, "type", None) in ("ValueError", "TypeError", "AttributeError", "KeyError"), ref
