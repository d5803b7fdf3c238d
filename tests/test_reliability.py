"""Reliability, second round (issue #15): concurrent fit on one model, plain Python lists as data, step counts."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch

import tritonnn as keras

RNG = np.random.RandomState(1)
X = RNG.normal(size=(64, 4)).astype("float32")
Y = RNG.randint(0, 3, size=64)


def _model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _raises(exc, *fragments):
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


# ---- two threads, one model ----------------------------------------------------------------------------------------


def test_fit_from_two_threads_runs_one_after_the_other_and_leaves_the_model_working():
    """The second fit waits for the first (as in Keras) instead of building and stepping the optimizer beside it,
    which used to raise inside the optimizer and leave every later fit/evaluate failing."""
    model = _model()
    inside, second_started = threading.Event(), threading.Event()
    events: list[str] = []
    errors: list[BaseException] = []

    class Log(keras.callbacks.Callback):
        def __init__(self, who):
            super().__init__()
            self.who = who

        def on_train_begin(self, logs=None):
            events.append(f"{self.who} begin")

        def on_train_end(self, logs=None):
            events.append(f"{self.who} end")

        def on_train_batch_end(self, batch, logs=None):
            if self.who == "first" and not inside.is_set():  # hold the first fit until the second has called fit
                inside.set()
                second_started.wait(5)
                for _ in range(50):  # and give the second fit time to run into the first (it must wait instead)
                    threading.Event().wait(0.002)

    def run(who, batch_size):
        if who == "second":
            inside.wait(5)
            second_started.set()
        try:
            model.fit(X, Y, epochs=2, batch_size=batch_size, verbose=0, callbacks=[Log(who)])
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=run, args=("first", 8)), threading.Thread(target=run, args=("second", 16))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert events == ["first begin", "first end", "second begin", "second end"]
    assert int(model.optimizer.iterations) == 2 * 8 + 2 * 4  # every step of both fits, none lost
    model.fit(X, Y, epochs=1, verbose=0)
    assert np.isfinite(model.evaluate(X, Y, verbose=0))


def test_predict_from_several_threads_still_runs_concurrently():
    model = _model()
    model.fit(X, Y, epochs=1, verbose=0)
    expected = model.predict(X, verbose=0)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(model.predict(X, verbose=0))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4 and all(np.array_equal(r, expected) for r in results)


def test_a_model_with_its_training_lock_still_copies():
    """The lock is kept beside the model, not on it: a copy trains under a lock of its own."""
    import copy

    model = _model()
    model.fit(X, Y, epochs=1, verbose=0)
    fresh = _model()
    clone = copy.deepcopy(fresh)
    clone.fit(X, Y, epochs=1, shuffle=False, verbose=0)
    fresh.fit(X, Y, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(clone.get_weights()[0], fresh.get_weights()[0])


# ---- plain Python lists ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["fit", "evaluate", "train_on_batch", "test_on_batch", "predict"])
def test_rectangular_python_lists_train_like_arrays(entry):
    keras.utils.set_random_seed(3)
    a = _model()
    keras.utils.set_random_seed(3)
    b = _model()
    x_list, y_list = X.tolist(), Y.tolist()
    run = {
        "fit": lambda m, x, y: m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0).history["loss"],
        "evaluate": lambda m, x, y: m.evaluate(x, y, verbose=0),
        "train_on_batch": lambda m, x, y: m.train_on_batch(x, y),
        "test_on_batch": lambda m, x, y: m.test_on_batch(x, y),
        "predict": lambda m, x, y: m.predict(x, verbose=0),
    }[entry]
    np.testing.assert_array_equal(np.asarray(run(a, x_list, y_list)), np.asarray(run(b, X, Y)))
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])


def test_a_list_of_arrays_is_still_several_inputs():
    a, b = keras.Input((4,)), keras.Input((2,))
    model = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Concatenate()([a, b])))
    model.compile(optimizer="sgd", loss="mse")
    model.fit([X, X[:, :2]], Y.astype("float32"), epochs=1, verbose=0)
    assert model.predict([X, X[:, :2]], verbose=0).shape == (64, 1)


@pytest.mark.parametrize(
    "x, fragment",
    [([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]], "lengths (2, 4)"), ([[1.0, 2.0, 3.0, 4.0], 5.0], "a number")],
)
def test_a_ragged_list_says_it_is_ragged(x, fragment):
    with _raises(ValueError, "`x` is a ragged list", fragment, "rectangular"):
        _model().fit(x, [0, 1], verbose=0)
    with _raises(ValueError, "`y` is a ragged list"):
        _model().fit(X[:2], [[0], [1, 2]], verbose=0)


# ---- step counts ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, -1, 1.5, True])
def test_steps_per_epoch_not_positive_names_the_argument(steps):
    with _raises(ValueError, "Expected `steps_per_epoch` to be a positive integer", f"steps_per_epoch={steps!r}"):
        _model().fit(X, Y, steps_per_epoch=steps, verbose=0)
    with _raises(ValueError, "Expected `validation_steps` to be a positive integer"):
        _model().fit(X, Y, validation_data=(X, Y), validation_steps=steps, verbose=0)
    with _raises(ValueError, "Expected `steps` to be a positive integer"):
        _model().evaluate(X, Y, steps=steps, verbose=0)
    with _raises(ValueError, "Expected `steps` to be a positive integer"):
        _model().predict(X, steps=steps, verbose=0)


def test_steps_per_epoch_still_limits_an_epoch():
    model = _model()
    model.fit(X, Y, batch_size=8, steps_per_epoch=3, epochs=2, verbose=0)
    assert int(model.optimizer.iterations) == 6
    assert torch.is_tensor(model.layers[0].kernel)
