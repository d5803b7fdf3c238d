"""The fused MLP on the torch backend (kernels/fused_mlp_torch.py, trainers/fused_step.py: issue #16's CPU path).

A stack within the fused MLP's bounds runs on the torch backend as one autograd node, and fit()'s train step calls
its forward and backward directly, without an autograd graph, adding the weight gradients into the optimizer's
flat buffer. Checked here: one SGD step against a float64 computation written out by hand; whole fits against the
per-layer path (``TRITONNN_FUSED_MLP=0``, autograd through kernels.dense) from the same weights, with dropout, a
squared-error loss and a loss weight; and that each step that needs autograd (a weight regularizer, a gradient
hook, sample weights, mixed precision) gets it, with the same result as the per-layer path.
"""

from __future__ import annotations

import sys
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tritonnn as keras
from tritonnn import kernels

from .helpers import TOLERANCES, assert_close_verbose

FUSED_STEP = sys.modules["tritonnn.trainers.fused_step"]
TORCH_MLP = sys.modules["tritonnn.kernels.fused_mlp_torch"]


@pytest.fixture(autouse=True)
def torch_backend():
    with kernels.backend_scope("torch"):
        yield


def _model(widths=(16, 12, 5), dropout=0.0, activation="relu", out="linear", regularizer=None, seed=1):
    keras.utils.set_random_seed(seed)
    layers = [keras.layers.Input((widths[0],))]
    for n in widths[1:-1]:
        layers.append(keras.layers.Dense(n, activation=activation, kernel_regularizer=regularizer))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, seed=7))
    layers.append(keras.layers.Dense(widths[-1], activation=out))
    return keras.Sequential(layers)


def _twin(model, **kwargs):
    twin = _model(**kwargs)
    for a, b in zip(twin.weights, model.weights, strict=True):
        with torch.no_grad():
            a.copy_(b)
    return twin


def _data(n=40, k=16, classes=5, seed=0):
    g = np.random.default_rng(seed)
    return g.standard_normal((n, k)).astype(np.float32), g.integers(0, classes, n)


def _fit(model, x, y, *, loss=None, optimizer=None, epochs=2, **fit_kwargs):
    """compile (by default: sparse cross-entropy on the logits, Adam) and fit, unshuffled, batches of 16."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True) if loss is None else loss
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(0.01),
        loss=loss,
        metrics=["mae"] if loss == "mse" else ["accuracy"],
        loss_weights=fit_kwargs.pop("loss_weights", None),
    )
    return model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, **fit_kwargs).history


def _per_layer(monkeypatch, model, x, y, **kwargs):
    monkeypatch.setenv("TRITONNN_FUSED_MLP", "0")
    try:
        return _fit(model, x, y, **kwargs)
    finally:
        monkeypatch.delenv("TRITONNN_FUSED_MLP")


def _assert_same_training(got, want, model, twin):
    atol, rtol = TOLERANCES[torch.float32]
    assert got.keys() == want.keys()
    for key in got:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(model.weights, twin.weights, strict=True):
        assert_close_verbose(a, b, atol=atol, rtol=rtol, name="weight")


class _Calls:
    """Counts the direct steps (stack_backward outside autograd) and the autograd backward calls of a fit."""

    def __enter__(self):
        self.direct = mock.patch.object(FUSED_STEP, "stack_backward", wraps=TORCH_MLP.stack_backward)
        self.engine = mock.patch.object(torch.Tensor, "backward", autospec=True, side_effect=torch.Tensor.backward)
        self.d, self.e = self.direct.__enter__(), self.engine.__enter__()
        return self

    def __exit__(self, *exc):
        self.engine.__exit__(*exc)
        self.direct.__exit__(*exc)

    @property
    def counts(self):
        return self.d.call_count, self.e.call_count


def test_sgd_steps_equal_float64_steps_written_out():
    """relu hidden layer, logits, sparse cross-entropy (mean over the batch), SGD(0.1), three batches: the weights
    after each step against W - 0.1 * dL/dW computed in float64 by torch.nn.functional (no tritonnn code). The first
    step resolves the compiled loss on the autograd path; the next two are direct."""
    x, y = _data(n=48)
    model = _model()
    w64 = [w.detach().double().clone() for w in model.weights]
    losses = []
    for i in range(3):
        w64 = [w.requires_grad_() for w in w64]
        xb, yb = torch.from_numpy(x[16 * i : 16 * (i + 1)]).double(), torch.from_numpy(y[16 * i : 16 * (i + 1)])
        loss = F.cross_entropy(F.relu(xb @ w64[0] + w64[1]) @ w64[2] + w64[3], yb)
        grads = torch.autograd.grad(loss, w64)
        w64 = [(w - 0.1 * g).detach() for w, g in zip(w64, grads, strict=True)]
        losses.append(loss.item())
    with _Calls() as calls:
        history = _fit(
            model, x, y, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=keras.optimizers.SGD(0.1), epochs=1,
        )  # fmt: skip
        assert calls.counts == (2, 1), "steps 2 and 3 ran the stack's backward directly, never autograd's"
    assert history["loss"][0] == pytest.approx(np.mean(losses), rel=1e-6)
    atol, rtol = TOLERANCES[torch.float32]
    for got, want in zip(model.weights, w64, strict=True):
        assert_close_verbose(got, want, atol=atol, rtol=rtol, name="weight")


def test_fit_equals_the_per_layer_path(monkeypatch):
    """Two epochs of three batches (the last ragged), Adam, a softmax output, accuracy: the direct path's history and
    weights equal the per-layer path's (autograd through kernels.dense) from the same weights; evaluate and predict
    run the fused forward."""
    x, y = _data()
    model = _model(widths=(16, 12, 8, 5), activation="gelu", out="softmax")
    twin = _twin(model, widths=(16, 12, 8, 5), activation="gelu", out="softmax")
    assert model.fused_mlp_path() == (True, "fused (torch backend): 16-12-8-5 as one autograd node, the per-layer "
                                      "torch ops")  # fmt: skip
    with _Calls() as calls:
        got = _fit(model, x, y, loss="sparse_categorical_crossentropy")
        # the first step resolves the compiled loss (the autograd path); the other five are direct
        assert calls.counts == (5, 1)
    want = _per_layer(monkeypatch, twin, x, y, loss="sparse_categorical_crossentropy")
    _assert_same_training(got, want, model, twin)
    with mock.patch.object(TORCH_MLP.TorchMLPFunction, "apply", wraps=TORCH_MLP.TorchMLPFunction.apply) as node:
        got_eval = model.evaluate(x, y, batch_size=16, verbose=0)
        got_pred = model.predict(x, batch_size=16, verbose=0)
        assert node.call_count == 6
    monkeypatch.setenv("TRITONNN_FUSED_MLP", "0")
    np.testing.assert_allclose(got_eval, twin.evaluate(x, y, batch_size=16, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_pred, twin.predict(x, batch_size=16, verbose=0), rtol=1e-5, atol=1e-6)


def test_dropout_draws_the_per_layer_paths_masks(monkeypatch):
    """A Dropout(0.5) after each hidden layer: the direct path draws the same seeds from each layer's stream and the
    same masks (the torch path's, kernels/dropout.py) as the per-layer path, so training is the same."""
    x, y = _data()
    model = _model(widths=(16, 12, 12, 5), dropout=0.5)
    twin = _twin(model, widths=(16, 12, 12, 5), dropout=0.5)
    with _Calls() as calls:
        got = _fit(model, x, y, epochs=3)
        assert calls.counts == (8, 1)
    _assert_same_training(got, _per_layer(monkeypatch, twin, x, y, epochs=3), model, twin)


def test_squared_error_and_a_loss_weight(monkeypatch):
    """The mean squared error fused into the stack, with compile(loss_weights=[0.25]): the gradient seed is the
    weight, the logged loss the weighted one, as on the per-layer path."""
    x, _ = _data(n=24)
    y = np.random.default_rng(1).standard_normal((24, 5)).astype(np.float32)
    model = _model(activation="tanh")
    twin = _twin(model, activation="tanh")
    with _Calls() as calls:
        got = _fit(model, x, y, loss="mse", loss_weights=[0.25], optimizer=keras.optimizers.SGD(0.05))
        assert calls.counts == (3, 1)
    want = _per_layer(monkeypatch, twin, x, y, loss="mse", loss_weights=[0.25], optimizer=keras.optimizers.SGD(0.05))
    _assert_same_training(got, want, model, twin)


def test_steps_that_need_autograd_get_it(monkeypatch):
    """Each of these runs its backward through autograd (the stack as one node, or the per-layer path), never the
    direct path, and trains as the per-layer path does: a weight regularizer (a second loss), a hook on a weight's
    gradient (it must see the gradient), sample weights, and mixed_bfloat16 (bf16 copies of the master weights)."""
    x, y = _data()
    reg = keras.regularizers.L2(0.01)
    model, twin = _model(regularizer=reg), _twin(_model(regularizer=reg), regularizer=reg)
    with torch.no_grad():
        for a, b in zip(twin.weights, model.weights, strict=True):
            a.copy_(b)
    with _Calls() as calls:
        got = _fit(model, x, y)
        assert calls.counts == (0, 6)
    _assert_same_training(got, _per_layer(monkeypatch, twin, x, y), model, twin)

    model = _model()
    seen = []
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0)  # builds the optimizer: the flat buffers
    model.layers[0].kernel.register_hook(lambda g: seen.append(g.clone()))
    with _Calls() as calls:
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        assert calls.counts == (0, 3) and len(seen) == 3

    model = _model()
    with _Calls() as calls:
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        model.fit(x, y, sample_weight=np.linspace(0.5, 1.5, len(x)), batch_size=16, epochs=1, verbose=0)
        assert calls.counts == (0, 3)

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = _model()
        with _Calls() as calls:
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
            assert calls.counts == (0, 3)
        assert np.isfinite(history.history["loss"]).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("dtype", ["int32", "uint8"])
def test_narrow_integer_labels(monkeypatch, dtype):
    """int32 and uint8 labels (what numpy gives on some platforms, and what MNIST is stored as) train on the direct
    path exactly as int64 labels do."""
    x, y = _data()
    model, twin = _model(), _model()
    for a, b in zip(twin.weights, model.weights, strict=True):
        with torch.no_grad():
            a.copy_(b)
    with _Calls() as calls:
        got = _fit(model, x, y.astype(dtype))
        assert calls.counts == (5, 1)
    want = _fit(twin, x, y.astype("int64"))
    _assert_same_training(got, want, model, twin)


def test_bad_labels_are_still_refused():
    """A label out of range reaches the direct path's check (as the per-layer cross-entropy's) as a ValueError."""
    x, y = _data()
    y[20] = 9
    model = _model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="9"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
