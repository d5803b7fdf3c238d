"""``steps_per_epoch`` / ``steps`` over arrays against Keras: which batches each epoch of ``fit`` draws (a pass over
the data carries over to the next epoch, an epoch ends early at the end of the data with Keras' warning), and how
many batches ``evaluate`` and ``predict`` take (a fresh pass per call, never past the end of the data)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import tritonnn

X = np.arange(10, dtype="float32").reshape(10, 1)  # batch 2: five batches, whose first samples are 0, 2, 4, 6, 8
Y = np.zeros((10, 1), "float32")


def _run(K: Any, what: str, steps: int, epochs: int) -> tuple[list[Any], int, int]:
    seen: list[Any] = []

    class Record(K.layers.Layer):
        def call(self, x, training=None):
            seen.append(("train" if training else "test", int(K.ops.convert_to_numpy(x)[0, 0])))
            return x

    class Epochs(K.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(("epoch", epoch))

    model = K.Sequential([K.Input((1,)), Record(), K.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    model.predict(X[:1], verbose=0)  # builds
    if what == "evaluate":
        model.evaluate(X[:2], Y[:2], verbose=0)  # Keras' first evaluate also calls the model to build its metrics
    seen.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if what == "fit":
            history = model.fit(X, Y, batch_size=2, epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=0,
                                callbacks=[Epochs()])  # fmt: skip
            entries = len(history.history["loss"])
            seen = [s for s in seen if s[0] != "test"]  # Keras' first fit also calls the model once to build metrics
        elif what == "evaluate":
            for _ in range(epochs):
                model.evaluate(X, Y, batch_size=2, steps=steps, verbose=0)
            entries = 0
        else:
            entries = len(model.predict(X, batch_size=2, steps=steps, verbose=0))
    ran_out = sum("ran out of data" in str(w.message) for w in caught)
    return seen, entries, ran_out


@pytest.mark.parametrize(
    "what, steps, epochs",
    [("fit", 2, 4), ("fit", 4, 3), ("fit", 5, 3), ("fit", 7, 2), ("evaluate", 2, 2), ("evaluate", 7, 1),
     ("predict", 3, 1), ("predict", 7, 1)],
)  # fmt: skip
def test_the_batches_each_epoch_draws_are_keras(keras_ref, what, steps, epochs):
    ref_seen, ref_entries, ref_out = _run(keras_ref, what, steps, epochs)
    seen, entries, out = _run(tritonnn, what, steps, epochs)
    assert seen == ref_seen
    assert entries == ref_entries
    assert (out > 0) == (ref_out > 0), (out, ref_out)
