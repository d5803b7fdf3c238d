"""Every callback hook gets a dict as ``logs`` (never None), with the keys real Keras passes on the same
fit/evaluate/predict, in Keras' order, and the hooks come in Keras' sequence (fit's validation runs the test hooks,
as Keras' evaluate-with-fit's-callbacks does)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import tritonnn as tk

HOOKS_WITH_INDEX = (
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)
HOOKS_WITHOUT_INDEX = (
    "on_train_begin",
    "on_train_end",
    "on_test_begin",
    "on_test_end",
    "on_predict_begin",
    "on_predict_end",
)


def recorder(K):
    """A Keras-tutorial callback on ``K``'s Callback: every hook reads ``logs.keys()`` (and the values' types)."""

    def with_index(hook):
        def method(self, index, logs=None):
            self.seen.append((hook, index, list(logs.keys()), sorted({type(v).__name__ for v in logs.values()})))

        return method

    def without_index(hook):
        def method(self, logs=None):
            self.seen.append((hook, None, list(logs.keys()), sorted({type(v).__name__ for v in logs.values()})))

        return method

    body = {h: with_index(h) for h in HOOKS_WITH_INDEX} | {h: without_index(h) for h in HOOKS_WITHOUT_INDEX}

    def __init__(self):
        K.callbacks.Callback.__init__(self)
        self.seen = []

    return type("Recorder", (K.callbacks.Callback,), {"__init__": __init__, **body})()


def _run(K, what: str, **fit_kwargs):
    K.utils.set_random_seed(0)
    model = K.Sequential([K.Input((4,)), K.layers.Dense(5, activation="relu"), K.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 4)).astype("float32"), np.arange(12) % 3
    rec = recorder(K)
    if what == "fit":
        history = model.fit(x, y, batch_size=4, verbose=0, callbacks=[rec], shuffle=False, **fit_kwargs)
        return rec.seen, list(history.history)
    if what == "evaluate":
        model.evaluate(x, y, batch_size=5, verbose=0, callbacks=[rec])
    else:
        model.predict(x, batch_size=5, verbose=0, callbacks=[rec])
    return rec.seen, None


@pytest.mark.parametrize(
    "what, kwargs",
    [
        ("fit", {"epochs": 2}),
        ("fit", {"epochs": 2, "validation_split": 0.25}),
        ("fit", {"epochs": 3, "validation_split": 0.25, "validation_freq": 2}),
        ("fit", {"epochs": 0}),
        ("evaluate", {}),
        ("predict", {}),
    ],
)
def test_hooks_get_the_keys_keras_passes(keras_ref, what, kwargs):
    ref, ref_history = _run(keras_ref, what, **kwargs)
    got, history = _run(tk, what, **kwargs)
    assert [s[:3] for s in got] == [s[:3] for s in ref]
    # Values: Python floats, except predict's batch outputs (a tensor in both).
    assert [s[3] for s in got if s[0] != "on_predict_batch_end"] == [
        s[3] for s in ref if s[0] != "on_predict_batch_end"
    ]
    assert history == ref_history  # History's keys come in Keras' (sorted) order too


def test_every_hook_gets_a_dict_and_the_end_hooks_their_values():
    rec = recorder(tk)
    model = tk.Sequential([tk.Input((2,)), tk.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    history = model.fit(x, y, epochs=2, batch_size=4, validation_data=(x, y), verbose=0, callbacks=[rec])
    hooks = {s[0] for s in rec.seen}
    assert hooks == set(HOOKS_WITH_INDEX[:6]) | {"on_train_begin", "on_train_end", "on_test_begin", "on_test_end"}

    class Last(tk.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.logs = logs

        def on_test_end(self, logs=None):
            self.test_logs = logs

    last = Last()
    history = model.fit(x, y, epochs=2, batch_size=4, validation_data=(x, y), verbose=0, callbacks=[last])
    assert last.logs == {k: v[-1] for k, v in history.history.items()}  # on_train_end: the last epoch's logs
    assert last.test_logs == {"loss": history.history["val_loss"][-1], "mae": history.history["val_mae"][-1]}


def test_logs_are_passed_as_keras_passes_them_positionally_or_by_keyword():
    """Keras calls the epoch and begin/end hooks with the logs positionally, so a callback may name the parameter
    as it likes there; the batch hooks get ``logs=``."""
    seen = []

    class OwnNames(tk.callbacks.Callback):
        def on_train_begin(self, the_logs):
            seen.append(("train_begin", the_logs))

        def on_epoch_end(self, epoch, values):
            seen.append(("epoch_end", sorted(values)))

        def on_train_batch_end(self, batch, logs):
            seen.append(("batch_end", sorted(logs)))

    model = tk.Sequential([tk.Input((2,)), tk.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((4, 2), "float32"), np.zeros((4, 1), "float32"), epochs=1, batch_size=4, verbose=0,
              callbacks=[OwnNames()])  # fmt: skip
    assert seen == [("train_begin", {}), ("batch_end", ["loss"]), ("epoch_end", ["loss"])]


def test_pythonify_logs_follows_keras(keras_ref):
    keras_pythonify = importlib.import_module("keras.src.utils.python_utils").pythonify_logs
    logs = {"b": torch.tensor(2.0), "a": np.float32(1.5), "nested": {"z": 3, "c": torch.tensor([1.0, 2.0])}}
    got = tk.callbacks.callback.pythonify_logs(logs)
    ref = keras_pythonify(logs)
    assert list(got) == list(ref) and got["a"] == ref["a"] == 1.5 and got["b"] == 2.0 and got["z"] == 3.0
    assert torch.equal(got["c"], logs["nested"]["c"])
    assert tk.callbacks.callback.pythonify_logs(None) == {}
