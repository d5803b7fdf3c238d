"""Keras' "Customizing what happens in fit() with PyTorch" guide, under both modules from identical weights: a
``keras.Model`` subclass made from ``(inputs, outputs)`` (a Functional subclass), whose ``train_step(self, data)`` /
``test_step`` / ``predict_step`` receive the batch as Keras packs it and return the logs ``fit`` and ``evaluate``
report; ``compute_loss(..., training=True)``, ``optimizer.apply``, ``v.value.grad``, ``self.metrics`` with the loss
tracker first, metrics of its own, sample weights, and ``super().train_step(data)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tritonnn

from .compare import assert_same, observe

RNG = np.random.default_rng(11)
X = RNG.random((96, 8)).astype("float32")
Y = RNG.random((96, 1)).astype("float32")
SW = RNG.random((96,)).astype("float32")


def _apply_gradients(model: Any, loss: Any) -> None:
    loss.backward()
    weights = list(model.trainable_weights)
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in weights], weights)


def guide_models(K: Any) -> dict[str, Any]:
    class Compiled(K.Model):  # the guide's first model: the compiled loss and metrics
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            _apply_gradients(self, loss)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    class OwnMetrics(K.Model):  # its second: metrics of its own, compile() without a loss
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = K.metrics.Mean(name="loss")
            self.mae_metric = K.metrics.MeanAbsoluteError(name="mae")
            self.loss_fn = K.losses.MeanSquaredError()

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred)
            _apply_gradients(self, loss)
            self.loss_tracker.update_state(loss)
            self.mae_metric.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            self.loss_tracker.update_state(self.loss_fn(y, y_pred))
            self.mae_metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae_metric]

    class Weighted(K.Model):  # its third: sample weights
        def train_step(self, data):
            if len(data) == 3:
                x, y, sample_weight = data
            else:
                sample_weight = None
                x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            _apply_gradients(self, loss)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

    class Extended(K.Model):  # the built-in step through super(), its logs extended; a predict_step of its own
        def train_step(self, data):
            logs = super().train_step(data)
            return {**logs, "steps": self.optimizer.iterations}

        def predict_step(self, data):
            x, _, _ = K.utils.unpack_x_y_sample_weight(data)
            return self(x, training=False) * 2.0

    return {"compiled": Compiled, "own_metrics": OwnMetrics, "weighted": Weighted, "extended": Extended}


def run(K: Any, name: str) -> dict[str, Any]:
    inputs = K.Input(shape=(8,))
    hidden = K.layers.Dense(4, activation="tanh")(inputs)
    model = guide_models(K)[name](inputs, K.layers.Dense(1)(hidden))
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(scale=0.5, size=tuple(w.shape)).astype("float32") for w in model.weights])
    if name == "own_metrics":
        model.compile(optimizer=K.optimizers.SGD(0.05))
    else:
        model.compile(optimizer=K.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    fit_kwargs = {"sample_weight": SW} if name == "weighted" else {}
    history = observe(lambda: model.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0, **fit_kwargs))
    return {
        "is_functional": isinstance(model, K.Model) and len(model.layers) == 3,
        "history": history if not hasattr(history, "history") else {
            k: [float(v) for v in vals] for k, vals in sorted(history.history.items())
        },
        "evaluate": observe(lambda: model.evaluate(X, Y, batch_size=32, verbose=0, return_dict=True)),
        "predict": observe(lambda: model.predict(X[:5], verbose=0)),
        "weights": model.get_weights(),
    }  # fmt: skip


@pytest.mark.parametrize("name", ["compiled", "own_metrics", "weighted", "extended"])
def test_the_custom_fit_guide(keras_ref, name):
    assert_same(run(keras_ref, name), run(tritonnn, name), rtol=1e-5, atol=1e-6)


def test_the_earlier_tritonnn_signature_still_runs():
    """An override written as ``train_step(self, x, y, sample_weight=None)`` (tritonnn before it followed Keras) gets
    the batch's parts, and fit reports the compiled metrics."""

    class Parts(tritonnn.Sequential):
        def train_step(self, x, y, sample_weight=None):
            self.calls = getattr(self, "calls", 0) + 1
            return super().train_step((x, y))

    model = Parts([tritonnn.Input((8,)), tritonnn.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(X, Y, batch_size=32, epochs=1, verbose=0)
    assert model.calls == 3 and list(history.history) == ["loss"]
