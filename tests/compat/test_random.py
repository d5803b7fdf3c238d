"""``keras.random`` against real Keras: the same names, signatures and defaults, the same dtypes and shapes for the
same calls, the same ``SeedGenerator`` config and state sequence, and the same meaning of ``seed`` (an int repeats,
a generator advances). The values themselves come from another generator (docs/keras_differences.md); their
statistics are tested in tests/test_random.py."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import tritonnn as tk

from .compare import to_numpy
from .differences import deliberate

NAMES = ["SeedGenerator", "beta", "binomial", "categorical", "dropout", "gamma", "normal", "randint", "shuffle"]
NAMES += ["truncated_normal", "uniform"]


def test_every_keras_random_name_is_there(keras_ref):
    keras_names = sorted(n for n in dir(keras_ref.random) if not n.startswith("_"))
    assert keras_names == sorted(NAMES)
    assert [n for n in keras_names if not hasattr(tk.random, n)] == []


@pytest.mark.parametrize("name", NAMES)
def test_signatures_and_defaults_are_keras(keras_ref, name):
    ref, got = inspect.signature(getattr(keras_ref.random, name)), inspect.signature(getattr(tk.random, name))
    assert [(p.name, p.default, p.kind) for p in got.parameters.values()] == [
        (p.name, p.default, p.kind) for p in ref.parameters.values()
    ]


CALLS = [
    ("normal", lambda R: R.normal((3, 4), seed=1)),
    ("normal", lambda R: R.normal((2,), mean=3.0, stddev=0.5, dtype="float64", seed=1)),
    ("uniform", lambda R: R.uniform((5,), seed=2)),
    ("uniform", lambda R: R.uniform((2, 2), minval=-1.0, maxval=1.0, dtype="float16", seed=2)),
    ("truncated_normal", lambda R: R.truncated_normal((4, 3), seed=3)),
    ("randint", lambda R: R.randint((7,), 0, 5, seed=4)),
    ("randint", lambda R: R.randint((2, 3), -4, 4, dtype="int64", seed=4)),
    ("categorical", lambda R: R.categorical(np.zeros((2, 3), "float32"), 5, seed=5)),
    ("gamma", lambda R: R.gamma((6,), 2.0, seed=6)),
    ("beta", lambda R: R.beta((3, 2), 2.0, 5.0, seed=7)),
    ("binomial", lambda R: R.binomial((4,), 10, 0.5, seed=8)),
    ("shuffle", lambda R: R.shuffle(np.arange(12).reshape(4, 3), seed=9)),
]


@pytest.mark.parametrize("name, call", CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CALLS)])
def test_the_same_call_gives_the_same_shape_dtype_and_range_as_keras(keras_ref, name, call):
    deliberate("random.values")  # the values differ; what a program sees of their layout does not
    ref, got = to_numpy(keras_ref, call(keras_ref.random)), call(tk.random).detach().cpu().numpy()
    assert got.shape == ref.shape and got.dtype == ref.dtype
    if name == "uniform":
        assert got.min() >= ref.dtype.type(-1.0 if got.dtype == np.float16 else 0.0) and got.max() < 1.0
    if name == "truncated_normal":
        assert np.abs(got).max() <= 2.0 and np.abs(ref).max() <= 2.0
    if name in ("randint", "categorical", "binomial"):
        assert got.min() >= ref.min() - 10 and np.all(got == np.round(got))
    if name == "shuffle":
        assert sorted(got.ravel().tolist()) == sorted(ref.ravel().tolist())  # a permutation of the same rows


def test_dropout_of_a_tensor_matches_keras_layout(keras_ref):
    deliberate("random.values")
    x = np.ones((8, 10), "float32")
    ref = to_numpy(keras_ref, keras_ref.random.dropout(keras_ref.ops.convert_to_tensor(x), 0.5, seed=1))
    got = tk.random.dropout(torch.tensor(x), 0.5, seed=1).cpu().numpy()
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert set(np.unique(got).tolist()) <= {0.0, 2.0} and set(np.unique(ref).tolist()) <= {0.0, 2.0}


def test_an_int_seed_repeats_and_a_seed_generator_advances_as_in_keras(keras_ref):
    for R in (keras_ref.random, tk.random):
        a, b = to_numpy(keras_ref, R.normal((5,), seed=42)), to_numpy(keras_ref, R.normal((5,), seed=42))
        assert np.array_equal(a, b)
        gen = R.SeedGenerator(42)
        c, d = to_numpy(keras_ref, R.normal((5,), seed=gen)), to_numpy(keras_ref, R.normal((5,), seed=gen))
        assert not np.array_equal(c, d)


def test_seed_generator_config_and_state_sequence_match_keras(keras_ref):
    deliberate("random.seed-state-int64")
    ref, got = keras_ref.random.SeedGenerator(17, name="sg"), tk.random.SeedGenerator(17, name="sg")
    assert got.get_config() == ref.get_config()
    for _ in range(3):
        assert to_numpy(keras_ref, got.next()).tolist() == to_numpy(keras_ref, ref.next()).tolist()
    assert to_numpy(keras_ref, got.state).tolist() == to_numpy(keras_ref, ref.state.value).tolist()
    got.next(ordered=False)
    ref.next(ordered=False)
    assert to_numpy(keras_ref, got.state).tolist() == to_numpy(keras_ref, ref.state.value).tolist()
    assert str(ref.state.dtype) == "int32" and got.state.dtype == torch.int64
    for R in (keras_ref.random, tk.random):
        with pytest.raises(ValueError):
            R.SeedGenerator("seed")
        with pytest.raises(ValueError):
            R.normal((2,), seed=1.5)


@pytest.mark.parametrize(
    "call",
    [
        lambda R: R.uniform((2,), dtype="int32"),
        lambda R: R.randint((2,), 0, 3, dtype="float32"),
        lambda R: R.categorical(np.zeros(3, "float32"), 2),
    ],
)
def test_bad_arguments_are_refused_as_in_keras(keras_ref, call):
    with pytest.raises(ValueError):
        call(keras_ref.random)
    with pytest.raises(ValueError):
        call(tk.random)
