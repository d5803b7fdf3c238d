"""fit(), evaluate() and predict() on the fused MLP (issue #17): a Sequential of Dense layers (+ dropouts) within the
fused kernels' bounds runs as one forward launch and one backward launch (kernels/fused_mlp.py), chosen by
``layers/fusion.py`` (``mlp_path``); ``Sequential.fused_mlp_path()`` and a line of ``summary()`` say which path a model
takes and why, and ``TRITONNN_FUSED_MLP=0`` turns it off. On the Triton backend (the interpreter on a CPU) a model
trained on the fused path equals the same model, from the same weights, on the per-layer path."""

from __future__ import annotations

import importlib
from unittest import mock

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn import kernels
from tritonnn.kernels._triton import HAS_TRITON

from .helpers import TOLERANCES, assert_close_verbose

FUSED = importlib.import_module("tritonnn.kernels.fused_mlp")
pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")


@pytest.fixture(autouse=True)
def triton_backend():
    with kernels.backend_scope("triton"):
        yield


def _model(widths=(64, 32, 10), dropout=0.25, seed=3) -> keras.Sequential:
    layers = [keras.layers.Input((widths[0],))]
    for i, n in enumerate(widths[1:-1]):
        layers.append(keras.layers.Dense(n, activation="relu"))
        if dropout and i == 0:
            layers.append(keras.layers.Dropout(dropout, seed=seed))
    layers.append(keras.layers.Dense(widths[-1], activation="softmax"))
    return keras.Sequential(layers)


def _data(n=40, k=64, classes=10):
    g = np.random.default_rng(0)
    return g.standard_normal((n, k)).astype(np.float32), g.integers(0, classes, n)


def _twin(model: keras.Sequential, **kwargs) -> keras.Sequential:
    twin = _model(**kwargs)
    for a, b in zip(twin.weights, model.weights, strict=True):
        with torch.no_grad():
            a.copy_(b)
    return twin


def _train(model, x, y, epochs=2):
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    return history.history


def _counting():
    """Patches counting the fused forward and backward launches (the launchers in kernels/fused_mlp.py)."""
    fwd = mock.patch.object(FUSED, "fused_mlp_fwd", wraps=FUSED.fused_mlp_fwd)
    bwd = mock.patch.object(FUSED, "fused_mlp_bwd", wraps=FUSED.fused_mlp_bwd)
    return fwd, bwd


def test_fit_evaluate_predict_on_the_fused_path_equal_the_per_layer_path(monkeypatch):
    """The seed model with a dropout, trained two epochs of three batches (the last ragged) by SGD: the losses,
    metrics, trained weights, evaluate() and predict() of the fused path equal the per-layer path's from the same
    weights and the same dropout seed stream (the masks are Philox on (seed, index) either way)."""
    x, y = _data()
    fused = _model()
    per_layer = _twin(fused)
    assert fused.fused_mlp_path()[0] and fused.fused_mlp_path(training=False)[0]
    fwd, bwd = _counting()
    with (
        fwd as f,
        bwd as b,
        mock.patch.object(kernels, "softmax_cross_entropy", wraps=kernels.softmax_cross_entropy) as xent,
    ):
        got = _train(fused, x, y)
        assert f.call_count == 6 and b.call_count == 6, "every train step: one fused forward and one backward"
        # the first step resolves the compiled loss (per-layer loss); the others have the cross-entropy fused in
        assert [c.args[3].loss for c in f.call_args_list] == [None] + ["softmax_cross_entropy"] * 5
        assert xent.call_count == 1
        got_eval = fused.evaluate(x, y, batch_size=16, verbose=0)
        got_pred = fused.predict(x, batch_size=16, verbose=0)
        assert f.call_count == 12 and b.call_count == 6, "evaluate and predict: the fused forward (3 batches each)"
        assert [c.args[3].loss for c in f.call_args_list[6:]] == ["softmax_cross_entropy"] * 3 + [None] * 3
        assert xent.call_count == 1
    monkeypatch.setenv("TRITONNN_FUSED_MLP", "0")
    with fwd as f, bwd as b:
        expected = _train(per_layer, x, y)
        want_eval = per_layer.evaluate(x, y, batch_size=16, verbose=0)
        want_pred = per_layer.predict(x, batch_size=16, verbose=0)
        assert f.call_count == 0 and b.call_count == 0, "TRITONNN_FUSED_MLP=0: the per-layer path"
    atol, rtol = TOLERANCES[torch.float32]
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(fused.weights, per_layer.weights, strict=True):
        assert_close_verbose(a, b, atol=atol, rtol=rtol, name=a.name if hasattr(a, "name") else "weight")
    np.testing.assert_allclose(got_eval, want_eval, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_pred, want_pred, rtol=1e-5, atol=1e-6)


def test_mean_squared_error_fused_equals_the_per_layer_path(monkeypatch):
    """A linear output trained on the mean squared error (the loss fused into the MLP's two launches from the second
    step) equals the per-layer path from the same weights."""
    x, _ = _data(n=24)
    t = np.random.default_rng(1).standard_normal((24, 10)).astype(np.float32)
    stack = [keras.layers.Input((64,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(10)]
    fused = keras.Sequential(stack)
    per_layer = keras.Sequential([keras.layers.Input((64,)), keras.layers.Dense(32, activation="tanh"),
                                  keras.layers.Dense(10)])  # fmt: skip
    for a, b in zip(per_layer.weights, fused.weights, strict=True):
        with torch.no_grad():
            a.copy_(b)
    results = []
    for model, switch in ((fused, "1"), (per_layer, "0")):
        monkeypatch.setenv("TRITONNN_FUSED_MLP", switch)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
        fwd, _ = _counting()
        with fwd as f:
            history = model.fit(x, t, batch_size=8, epochs=2, shuffle=False, verbose=0).history
        losses = [c.args[3].loss for c in f.call_args_list]
        assert losses == ([None] + ["mean_squared_error"] * 5 if switch == "1" else []), losses
        results.append((history, [w.detach().clone() for w in model.weights]))
    (h1, w1), (h2, w2) = results
    for key in ("loss", "mae"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5, atol=1e-6, err_msg=key)
    atol, rtol = TOLERANCES[torch.float32]
    for a, b in zip(w1, w2, strict=True):
        assert_close_verbose(a, b, atol=atol, rtol=rtol, name="weight")


def test_the_switch_and_the_query(monkeypatch, capsys):
    model = _model()
    fused, why = model.fused_mlp_path()
    assert fused and why.startswith("fused: 64-32-10 in 1 forward launch and 1 backward launch")
    model.summary()
    assert " Training path: fused MLP (fused: 64-32-10" in capsys.readouterr().out
    monkeypatch.setenv("TRITONNN_FUSED_MLP", "0")
    assert model.fused_mlp_path() == (False, "TRITONNN_FUSED_MLP=0 turns the fused MLP off")
    model.summary()
    assert " Training path: per-layer (TRITONNN_FUSED_MLP=0 turns the fused MLP off)" in capsys.readouterr().out
    monkeypatch.setenv("TRITONNN_FUSED_MLP", "1")
    assert model.fused_mlp_path()[0]
    with kernels.backend_scope("torch"):  # the same stack as one autograd node of torch ops (fused_mlp_torch.py)
        fused, why = model.fused_mlp_path()
        assert fused and why.startswith("fused (torch backend): 64-32-10 as one autograd node"), why


def test_a_model_out_of_bounds_takes_the_per_layer_path_and_says_why():
    """A 128-wide hidden layer is beyond MAX_WIDTH (64): fit runs the per-layer path, and the query says why."""
    x, y = _data(n=20)
    model = _model(widths=(64, 128, 10), dropout=0.0)
    fused, why = model.fused_mlp_path()
    assert not fused and "expected every layer's width in [1, 64]. Received: width 128" in why
    fwd, bwd = _counting()
    with fwd as f, bwd as b:
        _train(model, x, y, epochs=1)
        assert f.call_count == 0 and b.call_count == 0
    # other reasons, each in words
    two = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(8), keras.layers.LayerNormalization()])
    fused, why = two.fused_mlp_path()
    assert not fused and why.endswith("(LayerNormalization) is not a Dense or a fusable Dropout"), why
    act = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(8, activation=torch.sin)])
    assert not act.fused_mlp_path()[0] and "is not an element-wise kernel activation" in act.fused_mlp_path()[1]


def test_a_functional_chain_takes_the_fused_path_and_a_branched_graph_does_not(monkeypatch):
    """keras.Model(inputs, outputs) over a chain Dense -> Dropout -> Dense fuses as the Sequential does (the same
    training from the same weights as its per-layer path); a graph with a branch (a residual add) runs node by node
    and says why."""
    x, y = _data(n=24)

    def chain():
        inputs = keras.Input((64,))
        h = keras.layers.Dense(32, activation="relu")(inputs)
        h = keras.layers.Dropout(0.25, seed=3)(h)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))

    fused, per_layer = chain(), chain()
    for a, b in zip(per_layer.weights, fused.weights, strict=True):
        with torch.no_grad():
            a.copy_(b)
    ok, why = fused.fused_mlp_path()
    assert ok and why.startswith("fused: 64-32-10"), why
    fwd, bwd = _counting()
    with fwd as f, bwd as b:
        got = _train(fused, x, y)
        assert f.call_count == 4 and b.call_count == 4
    monkeypatch.setenv("TRITONNN_FUSED_MLP", "0")
    with fwd as f:
        expected = _train(per_layer, x, y)
        assert f.call_count == 0
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5, atol=1e-6)
    atol, rtol = TOLERANCES[torch.float32]
    for a, b in zip(fused.weights, per_layer.weights, strict=True):
        assert_close_verbose(a, b, atol=atol, rtol=rtol, name="weight")
    monkeypatch.setenv("TRITONNN_FUSED_MLP", "1")
    inputs = keras.Input((16,))
    h = keras.layers.Dense(16, activation="relu")(inputs)
    branched = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Add()([inputs, h])))
    ok, why = branched.fused_mlp_path()
    assert not ok and why.startswith("not a Sequential or a Functional chain"), why


def test_mixed_bfloat16_with_two_dropouts_is_fused_and_matches_the_per_layer_path(monkeypatch):
    """Under mixed_bfloat16 (bf16 compute, fp32 master weights) a 64-64-64-10 stack with two dropouts (the 16-bit
    bound) takes the fused path, and trains as the per-layer path within bfloat16's tolerance (the fused loss reads
    the fp32 logits, the per-layer one their bf16 rounding)."""
    x, y = _data()
    results = []
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        for switch in ("1", "0"):
            monkeypatch.setenv("TRITONNN_FUSED_MLP", switch)
            keras.utils.set_random_seed(1)
            model = keras.Sequential(
                [
                    keras.layers.Input((64,)),
                    keras.layers.Dense(64, activation="gelu"),
                    keras.layers.Dropout(0.2, seed=2),
                    keras.layers.Dense(64, activation="relu"),
                    keras.layers.Dropout(0.1, seed=4),
                    keras.layers.Dense(10),
                ]
            )
            assert model.fused_mlp_path()[0] == (switch == "1")
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
            fwd, _ = _counting()
            with fwd as f:
                history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
            assert f.call_count == (6 if switch == "1" else 0)
            results.append((history["loss"], [w.detach().float().clone() for w in model.weights]))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    (l1, w1), (l2, w2) = results
    atol, rtol = TOLERANCES[torch.bfloat16]
    np.testing.assert_allclose(l1, l2, rtol=rtol, atol=atol)
    for a, b in zip(w1, w2, strict=True):
        assert_close_verbose(a, b, atol=atol, rtol=rtol, name="weight")


def test_a_model_with_its_own_compute_loss_keeps_it():
    """A Sequential whose compute_loss is overridden still runs its layers fused, but its loss is its own: never
    taken into the fused kernels."""
    calls = []

    class Own(keras.Sequential):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
            calls.append(1)
            return super().compute_loss(x, y, y_pred, sample_weight)

    x, y = _data(n=20)
    model = Own([keras.layers.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fwd, _ = _counting()
    with fwd as f:
        model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    assert len(calls) == 2 and [c.args[3].loss for c in f.call_args_list] == [None, None]
