"""``keras.constraints`` against real Keras: the names, the projections' values, and their effect in training (a
constrained layer after one SGD step has Keras' weights), plus get/serialize and the layers that take them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonnn as tk
from tritonnn import constraints


def _w(seed: int = 0, shape=(5, 4)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_every_keras_constraint_name_is_there_and_aliases_are_the_classes(keras_ref):
    names = [n for n in dir(keras_ref.constraints) if not n.startswith("_")]
    missing = [n for n in names if not hasattr(constraints, n)]
    assert not missing
    for alias, cls in (("max_norm", "MaxNorm"), ("non_neg", "NonNeg"), ("unit_norm", "UnitNorm")):
        assert getattr(keras_ref.constraints, alias) is getattr(keras_ref.constraints, cls)  # Keras' own layout
        assert getattr(constraints, alias) is getattr(constraints, cls)
    assert constraints.min_max_norm is constraints.MinMaxNorm


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("MaxNorm", {}),
        ("MaxNorm", {"max_value": 0.5}),
        ("MaxNorm", {"max_value": 1.0, "axis": 1}),
        ("MaxNorm", {"max_value": 0.7, "axis": [0, 1]}),
        ("NonNeg", {}),
        ("UnitNorm", {}),
        ("UnitNorm", {"axis": 1}),
        ("MinMaxNorm", {}),
        ("MinMaxNorm", {"min_value": 0.5, "max_value": 1.5, "rate": 0.3}),
        ("MinMaxNorm", {"min_value": 2.0, "max_value": 3.0, "axis": 1}),
        ("Constraint", {}),
    ],
)
def test_projection_values_match_keras(keras_ref, name, kwargs):
    w = _w() * 0.6
    ref = keras_ref.ops.convert_to_numpy(getattr(keras_ref.constraints, name)(**kwargs)(keras_ref.ops.array(w)))
    got = getattr(constraints, name)(**kwargs)(torch.tensor(w))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6, atol=1e-7)
    ref_config = getattr(keras_ref.constraints, name)(**kwargs).get_config()
    assert getattr(constraints, name)(**kwargs).get_config() == ref_config


@pytest.mark.parametrize("identifier", ["max_norm", "MaxNorm", "non_neg", "NonNeg", "unit_norm", "min_max_norm"])
def test_get_by_name_gives_keras_class_and_defaults(keras_ref, identifier):
    ref, got = keras_ref.constraints.get(identifier), constraints.get(identifier)
    assert type(got).__name__ == type(ref).__name__
    assert got.get_config() == ref.get_config()


def test_get_passes_objects_and_callables_and_refuses_the_rest():
    c = constraints.MaxNorm(3)
    assert constraints.get(c) is c and constraints.get(None) is None
    assert isinstance(constraints.get(constraints.NonNeg), constraints.NonNeg)  # a class is instantiated, as in Keras
    fn = lambda w: w * 0  # noqa: E731
    assert constraints.get(fn) is fn
    with pytest.raises(ValueError, match="Unknown constraint: 'max_nrom'.*Did you mean 'max_norm'"):
        constraints.get("max_nrom")
    with pytest.raises(ValueError, match="Could not interpret constraint identifier"):
        constraints.get(3)
    with pytest.raises(ValueError, match="axis"):
        constraints.MaxNorm(axis="rows")


def test_serialize_round_trip():
    c = constraints.MinMaxNorm(0.1, 2.0, rate=0.5, axis=1)
    back = constraints.deserialize(constraints.serialize(c))
    assert type(back) is constraints.MinMaxNorm and back.get_config() == c.get_config()
    assert constraints.serialize(None) is None


def _pair(keras_ref, layer_kwargs, tk_kwargs=None):
    """The same Dense(3) on 4 features in both, from the same weights, compiled with SGD(0.5) and MSE."""
    w0, b0 = _w(1, (4, 3)), np.linspace(-0.3, 0.3, 3).astype("float32")
    ref = keras_ref.Sequential([keras_ref.Input((4,)), keras_ref.layers.Dense(3, **layer_kwargs)])
    got = tk.Sequential([tk.Input((4,)), tk.layers.Dense(3, **(tk_kwargs or layer_kwargs))])
    for m, opt in ((ref, keras_ref.optimizers.SGD(0.5)), (got, tk.optimizers.SGD(0.5))):
        m.set_weights([w0, b0])
        m.compile(optimizer=opt, loss="mse")
    return ref, got


def test_dense_constraints_take_effect_after_each_update_as_in_keras(keras_ref):
    ref, got = _pair(
        keras_ref,
        {"kernel_constraint": keras_ref.constraints.MaxNorm(0.6), "bias_constraint": keras_ref.constraints.NonNeg()},
        {"kernel_constraint": tk.constraints.MaxNorm(0.6), "bias_constraint": tk.constraints.NonNeg()},
    )
    x, y = _w(2, (16, 4)), _w(3, (16, 3))
    for _ in range(3):
        ref.train_on_batch(x, y)
        got.train_on_batch(x, y)
    (rk, rb), (gk, gb) = ref.get_weights(), got.get_weights()
    np.testing.assert_allclose(gk, rk, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gb, rb, rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(gk, axis=0).max() <= 0.6 + 1e-6 and gb.min() >= 0.0


def test_constraints_by_string_in_fit(keras_ref):
    ref, got = _pair(keras_ref, {"kernel_constraint": "unit_norm", "bias_constraint": "non_neg"})
    x, y = _w(4, (32, 4)), _w(5, (32, 3))
    ref.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    got.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for r, g in zip(ref.get_weights(), got.get_weights(), strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got.get_weights()[0], axis=0), 1.0, rtol=1e-5)


def test_a_weight_without_constraint_is_left_alone_and_the_config_says_so():
    layer = tk.layers.Dense(2, kernel_constraint="max_norm")
    layer.build((None, 3))
    assert isinstance(layer.kernel.constraint, constraints.MaxNorm) and layer.bias.constraint is None
    cfg = layer.get_config()
    assert cfg["kernel_constraint"] == {
        "module": "keras.constraints",
        "class_name": "MaxNorm",
        "config": {"max_value": 2, "axis": 0},
        "registered_name": None,
    }
    assert cfg["bias_constraint"] is None
    again = tk.layers.Dense.from_config(cfg)
    assert isinstance(again.kernel_constraint, constraints.MaxNorm) and again.bias_constraint is None


def test_constraints_survive_save_and_load(tmp_path):
    model = tk.Sequential([tk.Input((3,)), tk.layers.Dense(2, kernel_constraint=tk.constraints.MaxNorm(0.25))])
    model.compile(optimizer="sgd", loss="mse")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = tk.models.load_model(path)
    c = loaded.layers[-1].kernel_constraint
    assert isinstance(c, constraints.MaxNorm) and c.max_value == 0.25
    loaded.fit(np.ones((8, 3), "float32") * 10, np.ones((8, 2), "float32") * 10, epochs=1, verbose=0)
    assert np.linalg.norm(loaded.get_weights()[0], axis=0).max() <= 0.25 + 1e-6


def test_normalization_and_embedding_layers_apply_their_constraints():
    model = tk.Sequential(
        [
            tk.Input((2,), dtype="int32"),
            tk.layers.Embedding(5, 4, embeddings_constraint="non_neg"),
            tk.layers.LayerNormalization(gamma_constraint=tk.constraints.MaxNorm(0.1)),
            tk.layers.BatchNormalization(beta_constraint="non_neg"),
            tk.layers.Flatten(),
            tk.layers.Dense(1),
        ]
    )
    model.compile(optimizer=tk.optimizers.SGD(1.0), loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.integers(0, 5, (16, 2)), rng.normal(size=(16, 1)) * 10, epochs=2, verbose=0)
    emb, ln, bn = model.layers[0], model.layers[1], model.layers[2]
    assert emb.embeddings.detach().min().item() >= 0.0
    assert ln.gamma.detach().norm().item() <= 0.1 + 1e-6
    assert bn.beta.detach().min().item() >= 0.0
    assert ln.get_config()["gamma_constraint"]["class_name"] == "MaxNorm"
    assert emb.get_config()["embeddings_constraint"] == {
        "module": "keras.constraints",
        "class_name": "NonNeg",
        "config": {},
        "registered_name": None,
    }


def test_custom_constraint_subclass_and_shape_check():
    class Half(tk.constraints.Constraint):
        def __call__(self, w):
            return w * 0.5

    model = tk.Sequential([tk.Input((2,)), tk.layers.Dense(2, kernel_constraint=Half(), use_bias=False)])
    model.compile(optimizer=tk.optimizers.SGD(0.0), loss="mse")  # lr 0: the update changes nothing
    before = model.get_weights()[0]
    model.train_on_batch(np.ones((4, 2), "float32"), np.ones((4, 2), "float32"))
    np.testing.assert_allclose(model.get_weights()[0], before * 0.5, rtol=1e-6)

    bad = tk.Sequential([tk.Input((2,)), tk.layers.Dense(2, kernel_constraint=lambda w: w.sum(), use_bias=False)])
    bad.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="must keep the weight's shape"):
        bad.train_on_batch(np.ones((4, 2), "float32"), np.ones((4, 2), "float32"))
