"""``keras.activations`` against real Keras: every name, every function's values (defaults and Keras' extra
arguments), get/serialize/deserialize, and Dense taking the functions (the built-in ones on the fused kernel path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonnn as tk
from tritonnn import activations

X = np.linspace(-4.0, 4.0, 48, dtype="float32").reshape(6, 8)

# (name, kwargs) beyond the defaults: Keras' extra arguments.
EXTRA = [
    ("relu", {"negative_slope": 0.1}),
    ("relu", {"max_value": 2.0}),
    ("relu", {"threshold": 1.0}),
    ("relu", {"negative_slope": 0.3, "max_value": 3.0, "threshold": 0.5}),
    ("relu", {"max_value": 6}),
    ("leaky_relu", {"negative_slope": 0.05}),
    ("elu", {"alpha": 0.5}),
    ("gelu", {"approximate": True}),
    ("celu", {"alpha": 2.0}),
    ("softmax", {"axis": 0}),
    ("log_softmax", {"axis": 0}),
    ("glu", {"axis": 0}),
    ("soft_shrink", {"threshold": 1.0}),
    ("hard_shrink", {"threshold": 1.5}),
    ("squareplus", {"b": 1}),
    ("threshold", {"threshold": 0.5, "default_value": -1.0}),
]


def _names(keras_ref) -> list[str]:
    return [
        n for n in dir(keras_ref.activations) if not n.startswith("_") and n not in ("get", "serialize", "deserialize")
    ]


def test_every_keras_activation_name_is_there(keras_ref):
    missing = [n for n in [*_names(keras_ref), "get", "serialize", "deserialize"] if not hasattr(activations, n)]
    assert not missing
    assert activations.swish is activations.silu and activations.hard_swish is activations.hard_silu


def test_every_function_matches_keras_with_its_defaults(keras_ref):
    for name in _names(keras_ref):
        if name in ("threshold", "sparsemax"):  # threshold: Keras gives it no defaults; sparsemax: see below
            continue
        ref = keras_ref.ops.convert_to_numpy(getattr(keras_ref.activations, name)(keras_ref.ops.array(X)))
        got = getattr(activations, name)(torch.tensor(X))
        np.testing.assert_allclose(got.numpy(), ref, rtol=2e-6, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("name, kwargs", EXTRA)
def test_keras_extra_arguments_match(keras_ref, name, kwargs):
    ref = keras_ref.ops.convert_to_numpy(getattr(keras_ref.activations, name)(keras_ref.ops.array(X), **kwargs))
    got = getattr(activations, name)(torch.tensor(X), **kwargs)
    np.testing.assert_allclose(got.numpy(), ref, rtol=2e-6, atol=2e-6)


def test_sparsemax_is_the_projection_onto_the_simplex():
    """Keras 3.15's sparsemax (every backend) takes tau = (sum of the cumulative sums over the support - 1) / k
    instead of (the k-th cumulative sum - 1) / k, so its rows do not sum to 1 once the support has two or more
    elements ([0.5, 0.4] gives [0.3, 0.2]). tritonnn computes the definition (Martins & Astudillo, 2016):
    [0.5, 0.4] -> [0.55, 0.45]."""
    np.testing.assert_allclose(
        activations.sparsemax(torch.tensor([[0.5, 0.4], [1.0, 0.0]])).numpy(), [[0.55, 0.45], [1, 0]]
    )
    out = activations.sparsemax(torch.tensor(X)).numpy()
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)
    assert (out >= 0).all() and (out == 0).any()
    out0 = activations.sparsemax(torch.tensor(X), axis=0).numpy()
    np.testing.assert_allclose(out0.sum(0), 1.0, rtol=1e-6)


def test_functions_take_arrays_and_lists():
    np.testing.assert_allclose(activations.relu([-1.0, 2.0]).cpu().numpy(), [0.0, 2.0])
    assert activations.sigmoid(np.zeros(3, "float32")).cpu().numpy().tolist() == [0.5, 0.5, 0.5]
    assert activations.relu(torch.tensor([-1, 3])).is_floating_point()  # integers compute in floatx
    with pytest.raises(ValueError, match="even size"):
        activations.glu(torch.ones(2, 3))


def test_get_serialize_deserialize_follow_keras(keras_ref):
    for name in [*_names(keras_ref), "swish", "hard_swish"]:
        ref_fn, fn = keras_ref.activations.get(name), activations.get(name)
        assert fn.__name__ == ref_fn.__name__, name
        assert activations.serialize(fn) == keras_ref.activations.serialize(ref_fn), name
        assert activations.deserialize(activations.serialize(fn)) is fn
    assert activations.get(None) is activations.linear
    assert activations.get(activations.tanh) is activations.tanh
    with pytest.raises(ValueError, match="Unknown activation: 'rleu'.*Did you mean 'relu'"):
        activations.get("rleu")
    with pytest.raises(ValueError, match="Could not interpret"):
        activations.get(42)


def test_custom_function_serializes_by_name_and_comes_back_through_custom_objects():
    def scaled(x):
        return 2 * x

    config = activations.serialize(scaled)
    assert config["class_name"] == "function" and config["config"] == "scaled"
    assert activations.deserialize(config, custom_objects={"scaled": scaled}) is scaled
    with pytest.raises(ValueError, match="custom_objects"):
        activations.deserialize(config)
    with pytest.raises(ValueError, match="cannot be serialized"):
        activations.serialize(lambda x: x)


def _dense_pair(keras_ref, activation_name):
    w, b = np.random.default_rng(0).normal(size=(8, 5)).astype("float32"), np.linspace(-1, 1, 5).astype("float32")
    ref = keras_ref.layers.Dense(5, activation=getattr(keras_ref.activations, activation_name))
    got = tk.layers.Dense(5, activation=getattr(activations, activation_name))
    ref.build((None, 8))
    got.build((None, 8))
    ref.set_weights([w, b])
    got.set_weights([w, b])
    return ref, got


@pytest.mark.parametrize("name", sorted({fn.__name__ for fn in activations.FUSED}))
def test_dense_with_a_builtin_function_runs_fused_and_matches_keras(keras_ref, monkeypatch, name):
    ref, got = _dense_pair(keras_ref, name)
    seen = []
    dense = tk.kernels.dense

    def spy(x, kernel, bias, activation, **kwargs):
        seen.append(activation)
        return dense(x, kernel, bias, activation, **kwargs)

    monkeypatch.setattr(tk.kernels, "dense", spy)
    out = got(torch.tensor(X)).detach().cpu().numpy()
    expected = keras_ref.ops.convert_to_numpy(ref(keras_ref.ops.array(X)))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # The element-wise ones go into the kernel's epilogue; the row softmaxes after a linear dense, as by name.
    assert seen == [None if name in ("softmax", "log_softmax") else name]
    assert got.activation == name and got.get_config()["activation"] == name
    by_name = tk.layers.Dense(5, activation=name)
    by_name.build((None, 8))
    by_name.set_weights(got.get_weights())
    assert torch.equal(by_name(torch.tensor(X)), got(torch.tensor(X)))


@pytest.mark.parametrize("name", ["celu", "hard_tanh", "log_sigmoid", "sparse_plus", "tanh_shrink", "hard_shrink"])
def test_dense_with_an_unfused_keras_activation_matches_keras(keras_ref, name):
    ref, got = _dense_pair(keras_ref, name)
    out = got(torch.tensor(X)).detach().cpu().numpy()
    np.testing.assert_allclose(out, keras_ref.ops.convert_to_numpy(ref(keras_ref.ops.array(X))), rtol=1e-5, atol=1e-5)
    by_string = tk.layers.Dense(5, activation=name)  # Keras takes every activations name as a string
    by_string.build((None, 8))
    by_string.set_weights(got.get_weights())
    assert torch.equal(by_string(torch.tensor(X)), got(torch.tensor(X)))
    assert got.get_config()["activation"] == name == ref.get_config()["activation"]


def test_a_users_function_is_called_as_written_even_when_named_like_a_builtin():
    def relu(x):  # not keras.activations.relu: a clipped variant
        return torch.clamp(x, 0.0, 0.5)

    layer = tk.layers.Dense(3, activation=relu)
    layer.build((None, 4))
    out = layer(torch.ones(2, 4) * 5)
    linear = torch.ones(2, 4) * 5 @ layer.kernel + layer.bias
    torch.testing.assert_close(out, relu(linear))
    assert layer.activation is relu


def test_activation_layer_and_fit_with_callables():
    model = tk.Sequential(
        [
            tk.Input((4,)),
            tk.layers.Dense(8, activation=tk.activations.gelu),
            tk.layers.Activation(tk.activations.hard_tanh),
            tk.layers.Dense(3, activation=tk.activations.softmax),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, 32), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.layers[1].get_config()["activation"] == "hard_tanh"
    with pytest.raises(ValueError, match="Expected `activation`"):
        tk.layers.Dense(3, activation=3)
