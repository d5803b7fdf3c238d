"""The Dense+Dropout fusion rule (tritonnn/layers/fusion.py), used by Sequential and Functional alike: which pairs
fuse, and that a fused pair equals the layers run one by one, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn.layers import fusion

X = torch.tensor(np.random.default_rng(3).standard_normal((9, 4)).astype("float32"))


@pytest.fixture
def fused_calls(monkeypatch):
    """Count the fused launches: every call of Dense.call_with_dropout. The whole-stack fused MLP (which takes these
    chains first, on either backend) is off: the pair rule is what runs where a stack cannot be fused."""
    monkeypatch.setenv("TRITONNN_FUSED_MLP", "0")
    calls = []
    original = keras.layers.Dense.call_with_dropout

    def spy(self, inputs, rate, seed):
        calls.append((self.name, rate))
        return original(self, inputs, rate, seed)

    monkeypatch.setattr(keras.layers.Dense, "call_with_dropout", spy)
    return calls


def _unfused(dense, x, rate, seed_of_dropout):
    seed = keras.layers.Dropout(rate, seed=seed_of_dropout).next_seed()  # the same seed stream: its first draw
    return keras.kernels.dropout(dense(x), rate, seed, True)


def test_functional_fuses_a_dense_whose_only_reader_is_a_dropout(fused_calls):
    keras.utils.set_random_seed(5)
    inp = keras.Input((4,))
    dense = keras.layers.Dense(6, activation="relu", name="d")
    out = keras.layers.Dense(2, name="head")(keras.layers.Dropout(0.5, seed=11)(dense(inp)))
    model = keras.Model(inp, out)
    y = model(X, training=True)
    assert fused_calls == [("d", 0.5)]
    hidden = _unfused(dense, X, 0.5, 11)
    torch.testing.assert_close(y, model.get_layer("head")(hidden), rtol=0, atol=0)
    fused_calls.clear()
    model(X, training=False)
    assert fused_calls == []  # inference runs every layer on its own


def test_functional_does_not_fuse_a_dense_output_that_is_read_elsewhere(fused_calls):
    inp = keras.Input((4,))
    h = keras.layers.Dense(6, activation="relu")(inp)
    dropped = keras.layers.Dropout(0.5, seed=1)(h)
    model = keras.Model(inp, keras.layers.Concatenate()([h, dropped]))  # h is read twice
    model(X, training=True)
    as_output = keras.Model(inp, [h, dropped])  # h is a model output
    as_output(X, training=True)
    assert fused_calls == []


def test_sequential_fuses_through_the_same_rule(fused_calls):
    keras.utils.set_random_seed(5)
    dense = keras.layers.Dense(6, activation="relu")
    model = keras.Sequential([keras.Input((4,)), dense, keras.layers.Dropout(0.25, seed=2), keras.layers.Dense(3)])
    model(X, training=True)
    assert fused_calls == [(dense.name, 0.25)]


def test_the_layers_say_whether_they_fuse():
    dense = keras.layers.Dense(3)
    assert fusion.fuses(dense, keras.layers.Dropout(0.3))
    assert not fusion.fuses(dense, keras.layers.Dropout(0.0))  # nothing to fuse
    assert not fusion.fuses(dense, keras.layers.Dropout(0.3, noise_shape=(None, 1)))  # a broadcast mask
    assert not fusion.fuses(dense, None)
    assert not fusion.fuses(keras.layers.Activation("relu"), keras.layers.Dropout(0.3))

    class Noisy(keras.layers.Dropout):  # a dropout with its own call is run as written
        def call(self, inputs, training=None):
            return inputs * 2

    assert not fusion.fuses(dense, Noisy(0.3))
    plan = fusion.sequential_plan([dense, keras.layers.Dropout(0.3), keras.layers.Dense(2)], training=True)
    assert [(a.name, b is not None) for a, b in plan] == [(dense.name, True), (plan[1][0].name, False)]
    assert all(b is None for _, b in fusion.sequential_plan([dense, keras.layers.Dropout(0.3)], training=False))
