"""The optimizers' ``use_ema`` (Keras' moving average of the weights) and ``keras.callbacks.SwapEMAWeights``,
against Keras on the same weights and gradients.

``optimizer.apply`` steps give the weights and the averages after each step (the first step's average is the
weights; with ``ema_overwrite_frequency`` the weights take the average after every step whose count is a multiple
of it; a constraint projects the weights after the average was taken, as in Keras), then
``finalize_variable_values``. A short ``fit`` with validation data and ``SwapEMAWeights`` gives the history (the
validation loss is the averaged weights'), the weights a callback after the swap sees at each epoch's end, and the
weights ``fit`` leaves (the averages, written in by ``finalize_variable_values``). Configs, the arguments' checks
and their error classes, the state through a saved file, and the summary's optimizer count are compared too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tritonnn

from .compare import assert_same, observe, summary_counts, to_numpy
from .differences import deliberate

RNG = np.random.default_rng(2718)
W0 = [RNG.normal(scale=0.5, size=(3, 4)).astype("float32"), RNG.normal(scale=0.1, size=(4,)).astype("float32")]
GRADS = [[RNG.normal(size=(3, 4)).astype("float32"), RNG.normal(size=(4,)).astype("float32")] for _ in range(7)]
X = RNG.normal(size=(40, 3)).astype("float32")
Y = RNG.normal(size=(40, 4)).astype("float32")
XV, YV = X[:8] + 0.5, Y[:8]

# (id, class name, kwargs, kernel constraint)
CASES: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("adam", "Adam", {"learning_rate": 0.05, "use_ema": True}, None),
    (
        "adam_overwrite",
        "Adam",
        {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.7, "ema_overwrite_frequency": 2},
        None,
    ),
    (
        "adam_amsgrad_overwrite_every_step",
        "Adam",
        {"learning_rate": 0.05, "amsgrad": True, "use_ema": True, "ema_overwrite_frequency": 1},
        None,
    ),
    ("adamw_momentum_0", "AdamW", {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.0}, None),
    ("sgd", "SGD", {"learning_rate": 0.1, "use_ema": True}, None),
    ("sgd_momentum", "SGD", {"learning_rate": 0.1, "momentum": 0.9, "use_ema": True, "ema_momentum": 0.5}, None),
    (
        "sgd_overwrite",
        "SGD",
        {
            "learning_rate": 0.1,
            "momentum": 0.9,
            "nesterov": True,
            "use_ema": True,
            "ema_momentum": 0.6,
            "ema_overwrite_frequency": 3,
        },
        None,
    ),
    ("sgd_overwrite_0_is_none", "SGD", {"learning_rate": 0.1, "use_ema": True, "ema_overwrite_frequency": 0}, None),
    ("sgd_momentum_1", "SGD", {"learning_rate": 0.1, "use_ema": True, "ema_momentum": 1.0}, None),
    ("sgd_constraint", "SGD", {"learning_rate": 0.3, "use_ema": True, "ema_momentum": 0.5}, "non_neg"),
    (
        "sgd_constraint_overwrite",
        "SGD",
        {"learning_rate": 0.3, "use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 2},
        "non_neg",
    ),
    ("rmsprop_clipnorm", "RMSprop", {"learning_rate": 0.01, "clipnorm": 0.5, "use_ema": True}, None),
    (
        "nadam_weight_decay",
        "Nadam",
        {"learning_rate": 0.01, "weight_decay": 0.1, "use_ema": True, "ema_overwrite_frequency": 4},
        None,
    ),
]


def _model(K: Any, constraint: str | None = None) -> Any:
    model = K.Sequential([K.Input((3,)), K.layers.Dense(4, kernel_constraint=constraint)])
    model.set_weights(W0)
    return model


def _numpy(K: Any, tensors: Any) -> list[np.ndarray]:
    return [np.array(to_numpy(K, t), copy=True) for t in tensors]


def run_apply(K: Any, cls: str, kwargs: dict[str, Any], constraint: str | None) -> dict[str, Any]:
    model = _model(K, constraint)
    opt = getattr(K.optimizers, cls)(**kwargs)
    steps = []
    for grads in GRADS:
        opt.apply([K.ops.convert_to_tensor(g) for g in grads], model.trainable_weights)
        steps.append(
            {
                "weights": _numpy(K, model.trainable_weights),
                "average": _numpy(K, opt._model_variables_moving_average),
                "iterations": int(to_numpy(K, opt.iterations)),
            }
        )
    opt.finalize_variable_values(model.trainable_weights)
    return {"steps": steps, "finalized": _numpy(K, model.trainable_weights)}


@pytest.mark.parametrize("cls,kwargs,constraint", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_apply_steps_and_averages_match_keras(keras_ref, cls, kwargs, constraint):
    ref = run_apply(keras_ref, cls, kwargs, constraint)
    got = run_apply(tritonnn, cls, kwargs, constraint)
    assert_same(ref["steps"][:1], got["steps"][:1], what="after one step")
    # Adam's and RMSprop's normalisation by sqrt(v) can grow rounding for the smallest gradients after the first
    # step (as in tests/compat/test_optimizers.py)
    assert_same(ref, got, rtol=1e-4, atol=1e-5, what=f"{cls} {kwargs}")


def run_fit(K: Any, swap_on_epoch: bool, overwrite: int | None, loss_scale: bool) -> dict[str, Any]:
    model = _model(K)
    opt = K.optimizers.SGD(0.05, momentum=0.5, use_ema=True, ema_momentum=0.8, ema_overwrite_frequency=overwrite)
    if loss_scale:
        opt = K.optimizers.LossScaleOptimizer(opt, initial_scale=4.0)
    model.compile(optimizer=opt, loss="mse")
    seen: list[list[np.ndarray]] = []

    class Record(K.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([np.array(w, copy=True) for w in self.model.get_weights()])

    history = model.fit(
        X, Y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_data=(XV, YV),
        callbacks=[K.callbacks.SwapEMAWeights(swap_on_epoch=swap_on_epoch), Record()],
    )  # fmt: skip
    after_fit = [np.array(w, copy=True) for w in model.get_weights()]
    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    averages = _numpy(K, inner._model_variables_moving_average)
    evaluated = model.evaluate(XV, YV, verbose=0, callbacks=[K.callbacks.SwapEMAWeights()])
    return {
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "seen_at_epoch_end": seen,
        "weights_after_fit": after_fit,
        "averages_after_fit": averages,
        "evaluate": float(evaluated),
        "weights_after_evaluate": [np.array(w, copy=True) for w in model.get_weights()],
    }


@pytest.mark.parametrize("loss_scale", [False, True], ids=["plain", "loss_scale"])
@pytest.mark.parametrize("overwrite", [None, 3], ids=["no_overwrite", "overwrite_3"])
@pytest.mark.parametrize("swap_on_epoch", [False, True], ids=["swap_for_tests", "swap_on_epoch"])
def test_fit_with_swap_ema_weights_matches_keras(keras_ref, swap_on_epoch, overwrite, loss_scale):
    ref = run_fit(keras_ref, swap_on_epoch, overwrite, loss_scale)
    got = run_fit(tritonnn, swap_on_epoch, overwrite, loss_scale)
    assert_same(ref, got, what=f"swap_on_epoch={swap_on_epoch}, ema_overwrite_frequency={overwrite}")
    # what the comparison rests on: fit leaves the averages in the weights (finalize_variable_values)
    for w, a in zip(got["weights_after_fit"], got["averages_after_fit"], strict=True):
        np.testing.assert_array_equal(w, a)


def test_fit_without_ema_leaves_the_weights_and_refuses_the_swap(keras_ref):
    """Without ``use_ema`` fit's end changes nothing, and ``SwapEMAWeights`` raises Keras' ``ValueError`` at its
    first swap (fit's validation). ``evaluate`` with it before any training: Keras builds the optimizer there and
    evaluates the averages it starts with, zeros; tritonnn's ``evaluate`` builds no optimizer, and the swap raises
    the ``ValueError`` Keras gives for an optimizer without averages."""
    deliberate("callbacks.swap-ema-before-training")
    out = []
    for K in (keras_ref, tritonnn):
        model = _model(K)
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="mse")
        model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        trained = [np.array(w, copy=True) for w in model.get_weights()]
        no_ema = observe(
            lambda K=K, model=model: model.fit(
                X, Y, epochs=1, verbose=0, validation_data=(XV, YV), callbacks=[K.callbacks.SwapEMAWeights()]
            )
        )
        fresh = _model(K)
        fresh.compile(optimizer=K.optimizers.SGD(0.1, use_ema=True), loss="mse")
        unbuilt = observe(
            lambda K=K, fresh=fresh: fresh.evaluate(XV, YV, verbose=0, callbacks=[K.callbacks.SwapEMAWeights()])
        )
        out.append({"trained": trained, "no_ema": no_ema, "unbuilt": unbuilt})
    ref, got = out
    assert_same({k: ref[k] for k in ("trained", "no_ema")}, {k: got[k] for k in ("trained", "no_ema")})
    assert got["no_ema"].type == "ValueError" and "use_ema=False" in got["no_ema"].message
    np.testing.assert_allclose(ref["unbuilt"], np.mean(YV**2), rtol=1e-5)  # Keras: the zero weights' loss
    assert got["unbuilt"].type == "ValueError" and "use_ema=True" in got["unbuilt"].message


def test_predict_swaps_back(keras_ref):
    """``predict`` with ``SwapEMAWeights``: both predict with the averaged weights; tritonnn swaps back after it,
    where Keras 3.15 leaves the averages in the model (``on_predict_end``'s test is inverted)."""
    deliberate("callbacks.swap-ema-after-predict")
    out = []
    for K in (keras_ref, tritonnn):
        model = _model(K)
        model.compile(optimizer=K.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), loss="mse")
        for i in range(3):  # train_on_batch: no finalize, so the weights and the averages differ
            model.train_on_batch(X[8 * i : 8 * i + 8], Y[8 * i : 8 * i + 8])
        trained = [np.array(w, copy=True) for w in model.get_weights()]
        averages = _numpy(K, model.optimizer._model_variables_moving_average)
        predicted = np.asarray(model.predict(XV, verbose=0, callbacks=[K.callbacks.SwapEMAWeights()]))
        after = [np.array(w, copy=True) for w in model.get_weights()]
        out.append({"trained": trained, "averages": averages, "predicted": predicted, "after": after})
    ref, got = out
    assert_same({k: ref[k] for k in ("trained", "averages", "predicted")},
                {k: got[k] for k in ("trained", "averages", "predicted")})  # fmt: skip
    assert not np.allclose(ref["trained"][0], ref["averages"][0])
    assert_same(ref["after"], ref["averages"])  # Keras: the averages stayed in the model
    assert_same(got["after"], got["trained"])  # tritonnn: swapped back
    np.testing.assert_allclose(got["predicted"], XV @ got["averages"][0] + got["averages"][1], rtol=1e-5, atol=1e-6)


CONFIGS = [
    ("Adam", {"use_ema": True}),
    ("Adam", {"use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 5}),
    ("SGD", {"use_ema": False, "ema_momentum": 7.0, "ema_overwrite_frequency": -3, "name": "s"}),  # unchecked
    ("RMSprop", {"use_ema": True, "ema_momentum": 1, "ema_overwrite_frequency": 0, "name": "r"}),
    ("Lion", {"use_ema": True, "ema_overwrite_frequency": 1}),
]


@pytest.mark.parametrize("cls,kwargs", CONFIGS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CONFIGS)])
def test_configs_are_keras(keras_ref, cls, kwargs):
    ref = getattr(keras_ref.optimizers, cls)(**kwargs).get_config()
    got_opt = getattr(tritonnn.optimizers, cls)(**kwargs)
    got = got_opt.get_config()
    assert_same(ref, got)
    assert type(got_opt).from_config(got).get_config() == got


BAD = [
    {"use_ema": True, "ema_momentum": 1.5},
    {"use_ema": True, "ema_momentum": -0.1},
    {"use_ema": True, "ema_momentum": "high"},
    {"use_ema": True, "ema_overwrite_frequency": 2.5},
    {"use_ema": True, "ema_overwrite_frequency": -1},
    {"use_ema": True, "ema_overwrite_frequency": "often"},
    {"use_ema": True, "ema_decay": 0.9},
]


@pytest.mark.parametrize("kwargs", BAD, ids=[f"{list(k)[-1]}={list(k.values())[-1]}" for k in BAD])
def test_bad_ema_arguments_raise_keras_errors(keras_ref, kwargs):
    ref = observe(lambda: keras_ref.optimizers.Adam(**kwargs))
    got = observe(lambda: tritonnn.optimizers.Adam(**kwargs))
    assert_same(ref, got)
    assert getattr(got, "type", None) in ("ValueError", "TypeError")


def test_finalize_variable_values_checks_as_keras(keras_ref):
    out = []
    for K in (keras_ref, tritonnn):
        model = _model(K)
        opt = K.optimizers.Adam(use_ema=True)
        unbuilt = observe(lambda opt=opt, model=model: opt.finalize_variable_values(model.trainable_weights))
        opt.build(model.trainable_weights)
        wrong_length = observe(lambda opt=opt, model=model: opt.finalize_variable_values(model.trainable_weights[:1]))
        out.append({"unbuilt": unbuilt, "wrong_length": wrong_length})
    assert_same(out[0], out[1])
    assert out[1]["unbuilt"].type == "AttributeError" and out[1]["wrong_length"].type == "ValueError"


@pytest.mark.parametrize("cls", ["Adam", "SGD"])
def test_summary_counts_the_averages_as_keras(keras_ref, cls):
    counts = []
    for K in (keras_ref, tritonnn):
        model = _model(K)
        model.compile(optimizer=getattr(K.optimizers, cls)(use_ema=True), loss="mse")
        model.train_on_batch(X[:8], Y[:8])
        counts.append(summary_counts(model))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("cls", ["Adam", "Lamb", "Adafactor"])
def test_the_average_is_saved_and_training_resumes_exactly(tmp_path, cls):
    """``save_model``/``load_model`` carry the average (``optimizer/average``) with the other states: a loaded
    model trained on gives the weights, averages included, of the one that was saved."""
    model = _model(tritonnn)
    model.compile(optimizer=getattr(tritonnn.optimizers, cls)(0.05, use_ema=True, ema_momentum=0.7), loss="mse")
    for i in range(3):
        model.train_on_batch(X[8 * i : 8 * i + 8], Y[8 * i : 8 * i + 8])
    assert "average" in model.optimizer.state_dict()
    path = str(tmp_path / "m.keras")
    tritonnn.saving.save_model(model, path)
    loaded = tritonnn.saving.load_model(path)
    assert loaded.optimizer.use_ema and loaded.optimizer.ema_momentum == 0.7
    for m in (model, loaded):
        m.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
