"""The layers an MLP reaches beyond Dense/Dropout/normalization, against real Keras on the same inputs and weights:
the activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax), Identity, Lambda, Rescaling, Normalization (given
statistics and adapt), UnitNormalization, RMSNormalization, the noise layers (GaussianNoise, GaussianDropout,
AlphaDropout), ActivityRegularization, RepeatVector, Permute, Dot, CategoryEncoding and Discretization.

Each case compares the outputs, the layer's own config entries (the base entries name/trainable/dtype are the Layer
base class's, compared elsewhere), and that tritonnn rebuilds the layer from its JSON config with the same outputs;
a Sequential holding the weighted ones round-trips through a saved file. Bad arguments raise Keras' exception
classes."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import tritonnn as tk
from tritonnn import saving

from .compare import assert_same, observe, summary_counts, to_numpy
from .differences import deliberate

RNG = np.random.default_rng(0)
X3 = RNG.normal(size=(4, 3, 5)).astype("float32")
X2 = np.ascontiguousarray(X3[:, 0])
Y3 = RNG.normal(size=(4, 5, 3)).astype("float32")
MASK = RNG.random((4, 1, 5)) > 0.3
INTS = np.array([[0, 1, 4], [3, 3, 2]])
BASE = ("name", "trainable", "dtype")

# (id, layer name, kwargs, inputs, call kwargs)
CASES = [
    ("relu", "ReLU", {}, X3, {}),
    ("relu-all", "ReLU", {"max_value": 1.0, "negative_slope": 0.1, "threshold": 0.3}, X3, {}),
    ("relu-cap", "ReLU", {"max_value": 0.5}, X2, {}),
    ("leaky", "LeakyReLU", {}, X3, {}),
    ("leaky-slope", "LeakyReLU", {"negative_slope": 0.05}, X2, {}),
    ("prelu", "PReLU", {}, X3, {}),
    ("prelu-shared", "PReLU", {"shared_axes": [1]}, X3, {}),
    ("prelu-options", "PReLU", {"alpha_initializer": "ones", "alpha_regularizer": "l2", "shared_axes": 2}, X3, {}),
    ("elu", "ELU", {}, X3, {}),
    ("elu-alpha", "ELU", {"alpha": 0.5}, X2, {}),
    ("softmax", "Softmax", {}, X3, {}),
    ("softmax-axis", "Softmax", {"axis": 1}, X3, {}),
    ("softmax-axes", "Softmax", {"axis": [1, 2]}, X3, {}),
    ("softmax-mask", "Softmax", {}, X3, {"mask": MASK}),
    ("softmax-float-mask", "Softmax", {}, X3, {"mask": MASK.astype("float32")}),
    ("identity", "Identity", {}, X3, {}),
    ("rescaling", "Rescaling", {"scale": 1 / 255}, X3, {}),
    ("rescaling-offset", "Rescaling", {"scale": 2.0, "offset": -1.0}, X2, {}),
    ("rescaling-array", "Rescaling", {"scale": np.arange(1, 6, dtype="float32"), "offset": 0.5}, X3, {}),
    ("normalization", "Normalization", {"mean": [1.0, 2.0, 3.0, 4.0, 5.0], "variance": [1.0, 4, 9, 1, 0.25]}, X3, {}),
    ("normalization-scalar", "Normalization", {"axis": None, "mean": 1.0, "variance": 4.0}, X3, {}),
    ("normalization-invert", "Normalization", {"mean": [0.5] * 5, "variance": [2.0] * 5, "invert": True}, X2, {}),
    ("normalization-axes", "Normalization", {"axis": (1, 2), "mean": [1.0, 2, 3, 4, 5], "variance": [1.0] * 5}, X3, {}),
    ("unit-norm", "UnitNormalization", {}, X3, {}),
    ("unit-norm-axes", "UnitNormalization", {"axis": [1, 2]}, X3, {}),
    ("rms-norm", "RMSNormalization", {}, X3, {}),
    ("rms-norm-axes", "RMSNormalization", {"axis": [2, 1], "epsilon": 1e-3}, X3, {}),
    ("gaussian-noise", "GaussianNoise", {"stddev": 0.1, "seed": 3}, X3, {}),
    ("gaussian-dropout", "GaussianDropout", {"rate": 0.2}, X3, {}),
    ("alpha-dropout", "AlphaDropout", {"rate": 0.3, "noise_shape": (None, 1, 5)}, X3, {}),
    ("activity-reg", "ActivityRegularization", {"l1": 0.1, "l2": 0.01}, X3, {}),
    ("repeat", "RepeatVector", {"n": 3}, X2, {}),
    ("permute", "Permute", {"dims": (2, 1)}, X3, {}),
    ("dot", "Dot", {"axes": 1}, [X2, X2[::-1].copy()], {}),
    ("dot-pair", "Dot", {"axes": (1, 2)}, [X3, Y3], {}),
    ("dot-negative", "Dot", {"axes": -1, "normalize": True}, [X3, X3[:, ::-1].copy()], {}),
    ("category-multi", "CategoryEncoding", {"num_tokens": 5}, INTS, {}),
    ("category-one-hot", "CategoryEncoding", {"num_tokens": 5, "output_mode": "one_hot"}, INTS, {}),
    ("category-one-hot-col", "CategoryEncoding", {"num_tokens": 5, "output_mode": "one_hot"}, INTS[:, :1], {}),
    ("category-count", "CategoryEncoding", {"num_tokens": 5, "output_mode": "count"}, INTS, {}),
    (
        "category-count-weights",
        "CategoryEncoding",
        {"num_tokens": 5, "output_mode": "count"},
        INTS,
        {"count_weights": np.array([[1.0, 2, 3], [0.5, 0.5, 4]], "float32")},
    ),
    ("category-rank1", "CategoryEncoding", {"num_tokens": 5, "output_mode": "multi_hot"}, INTS[0], {}),
    ("discretization", "Discretization", {"bin_boundaries": [-0.5, 0.0, 0.5]}, X3, {}),
    ("discretization-one-hot", "Discretization", {"bin_boundaries": [0.0, 1.0], "output_mode": "one_hot"}, X2, {}),
    ("discretization-count", "Discretization", {"bin_boundaries": [0.0], "output_mode": "count"}, X2, {}),
]
WEIGHTED = {"PReLU", "RMSNormalization"}


def _make(K, name, kwargs):
    return getattr(K.layers, name)(**kwargs)


def _own_config(layer):
    return {k: v for k, v in layer.get_config().items() if k not in BASE}


def _inputs_torch(x):
    return [torch.tensor(v) for v in x] if isinstance(x, list) else torch.tensor(x)


def _random_weights(ref, seed=1):
    """Keras' layer gets random weights (PReLU's alpha starts at zero, which would hide a wrong sign)."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=tuple(w.shape)).astype("float32") for w in ref.weights]
    ref.set_weights(weights)
    return weights


@pytest.mark.parametrize("case, name, kwargs, x, call", CASES, ids=[c[0] for c in CASES])
def test_outputs_config_and_rebuild_match_keras(keras_ref, case, name, kwargs, x, call):
    ref, got = _make(keras_ref, name, kwargs), _make(tk, name, kwargs)
    ref(x, **call)  # builds Keras' layer
    if name in WEIGHTED:
        weights = _random_weights(ref)
        got(x, **call)
        got.set_weights(weights)
    expected = to_numpy(keras_ref, ref(x, **call))
    out = got(_inputs_torch(x), **call)
    assert_same(expected, out.detach().cpu().numpy(), what=case)
    assert _json(_own_config(got)) == _json(_own_config(ref))
    # tritonnn rebuilds it from its JSON config (through the registry), with the same outputs
    again = saving.deserialize_layer(json.loads(json.dumps(saving.serialize_layer(got))))
    assert type(again) is type(got) and _json(_own_config(again)) == _json(_own_config(got))
    if name in WEIGHTED:
        again(x, **call)
        again.set_weights(got.get_weights())
    np.testing.assert_array_equal(again(_inputs_torch(x), **call).detach().cpu().numpy(), out.detach().cpu().numpy())
    if name == "ActivityRegularization":
        assert_same([to_numpy(keras_ref, v) for v in ref.losses], [v.detach().cpu().numpy() for v in got.losses])


def _json(x):
    return json.loads(json.dumps(x))


@pytest.mark.parametrize("case, name, kwargs, x, call", CASES, ids=[c[0] for c in CASES])
def test_output_shapes_match_keras(keras_ref, case, name, kwargs, x, call):
    ref, got = _make(keras_ref, name, kwargs), _make(tk, name, kwargs)
    shape = [(None, *v.shape[1:]) for v in x] if isinstance(x, list) else (None, *x.shape[1:])
    if not isinstance(x, list) and x.ndim == 1:
        shape = x.shape  # a rank-1 input is one sample
    if name in ("Normalization",) or (name == "PReLU"):
        ref.build(shape)
    assert tuple(got.compute_output_shape(shape)) == tuple(ref.compute_output_shape(shape))


def test_serialize_keras_object_of_the_new_layers_is_keras_layout(keras_ref):
    for make in (lambda K: K.layers.PReLU(alpha_constraint="non_neg"), lambda K: K.layers.Softmax(axis=1)):
        ref = keras_ref.saving.serialize_keras_object(make(keras_ref))
        got = tk.saving.serialize_keras_object(make(tk))
        assert {k: v for k, v in got.items() if k != "config"} == {k: v for k, v in ref.items() if k != "config"}
        own = {k: v for k, v in got["config"].items() if k not in BASE}
        assert _json(own) == _json({k: v for k, v in ref["config"].items() if k not in BASE})


# ---- weights: PReLU trains, Normalization adapts ----------------------------------------------------------------


def test_prelu_alpha_is_a_trainable_weight_of_keras_shape_and_name(keras_ref):
    for kwargs, x in (({}, X3), ({"shared_axes": [1, 2]}, X3), ({"shared_axes": 1}, X3)):
        ref, got = keras_ref.layers.PReLU(**kwargs), tk.layers.PReLU(**kwargs)
        ref(x)
        got(x)
        assert [tuple(w.shape) for w in got.weights] == [tuple(w.shape) for w in ref.weights]
        assert len(got.trainable_weights) == 1 and got.count_params() == ref.count_params()
    x = torch.tensor(X2, requires_grad=True)
    layer = tk.layers.PReLU(alpha_initializer="ones")
    layer(x).sum().backward()
    assert layer.alpha.grad is not None and torch.all(layer.alpha.grad <= 0)  # d/dalpha of -alpha*relu(-x)


@pytest.mark.parametrize(
    "kwargs, data",
    [({}, X2), ({"axis": None}, X3), ({"axis": (1, 2)}, X3), ({"axis": 1}, X3), ({"invert": True}, X2)],
)
def test_normalization_adapt_matches_keras(keras_ref, kwargs, data):
    ref, got = keras_ref.layers.Normalization(**kwargs), tk.layers.Normalization(**kwargs)
    ref.adapt(data)
    got.adapt(data)
    assert_same([to_numpy(keras_ref, w) for w in ref.weights], got.get_weights(), rtol=1e-5, atol=1e-6)
    assert [w.dtype for w in got.get_weights()] == [to_numpy(keras_ref, w).dtype for w in ref.weights]
    assert_same(to_numpy(keras_ref, ref(data)), got(torch.tensor(data)).cpu().numpy(), rtol=1e-5, atol=1e-5)
    assert got.get_build_config() == {"input_shape": list(ref.get_build_config()["input_shape"])}
    assert _json(_own_config(got)) == _json(_own_config(ref))
    # an iterable of batches gives the statistics of their concatenation (Keras' iterable path needs TensorFlow)
    batched = tk.layers.Normalization(**kwargs)
    batched.adapt([data[:1], data[1:3], (data[3:], None)])
    assert_same(got.get_weights(), batched.get_weights(), rtol=1e-5, atol=1e-6)


def test_an_adapted_normalization_round_trips_in_a_saved_model(tmp_path):
    layer = tk.layers.Normalization()
    layer.adapt(X2 * 3 + 1)
    model = tk.Sequential([tk.Input((5,)), layer, tk.layers.PReLU(), tk.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X2, np.zeros((4, 2), "float32"), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = tk.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(X2, verbose=0), model.predict(X2, verbose=0))
    assert loaded.count_params() == model.count_params()
    assert len(loaded.non_trainable_weights) == 3  # mean, variance, count


# ---- Lambda ------------------------------------------------------------------------------------------------------


def scaled(x, factor=1.0):
    return x * factor + 1.0


def with_training(x, training=None):
    return x * (2.0 if training else 1.0)


def test_lambda_with_a_named_function_matches_keras_and_round_trips(keras_ref, tmp_path):
    ref = keras_ref.layers.Lambda(scaled, arguments={"factor": 3.0}, output_shape=(5,))
    got = tk.layers.Lambda(scaled, arguments={"factor": 3.0}, output_shape=(5,))
    assert_same(to_numpy(keras_ref, ref(X2)), got(X2).cpu().numpy())
    assert _json(_own_config(got)) == _json(_own_config(ref))
    assert got.get_config()["function"] == {
        "module": "builtins",
        "class_name": "function",
        "config": "scaled",
        "registered_name": "function",
    }
    assert tuple(got.compute_output_shape((None, 5))) == tuple(ref.compute_output_shape((None, 5)))
    config = _json(got.get_config())
    for K in (keras_ref, tk):
        missing = observe(lambda K=K: K.layers.Lambda.from_config(dict(config)))
        assert missing.type == "TypeError"  # the function cannot be located: Keras' exception class
        rebuilt = K.layers.Lambda.from_config(dict(config), custom_objects={"scaled": scaled})
        assert rebuilt.function is scaled and rebuilt.arguments == {"factor": 3.0}
        with K.saving.custom_object_scope({"scaled": scaled}):
            assert K.layers.Lambda.from_config(dict(config)).function is scaled
    model = tk.Sequential([tk.Input((5,)), tk.layers.Lambda(scaled, arguments={"factor": 2.0}), tk.layers.Dense(1)])
    model.save(tmp_path / "m.keras")
    loaded = tk.saving.load_model(tmp_path / "m.keras", custom_objects={"scaled": scaled})
    np.testing.assert_array_equal(loaded.predict(X2, verbose=0), model.predict(X2, verbose=0))


def test_lambda_passes_training_to_a_function_that_takes_it(keras_ref):
    for K in (keras_ref, tk):
        layer = K.layers.Lambda(with_training)
        assert np.allclose(to_numpy(keras_ref, layer(X2, training=True)), X2 * 2)
        assert np.allclose(to_numpy(keras_ref, layer(X2)), X2)


def test_a_python_lambda_is_saved_but_never_loaded(keras_ref, tmp_path):
    ref, got = keras_ref.layers.Lambda(lambda x: x + 1), tk.layers.Lambda(lambda x: x + 1)
    assert sorted(got.get_config()["function"]) == sorted(ref.get_config()["function"])
    assert got.get_config()["function"]["class_name"] == "__lambda__"
    assert sorted(got.get_config()["function"]["config"]) == ["closure", "code", "defaults"]
    for K, layer in ((keras_ref, ref), (tk, got)):
        config = _json(layer.get_config())
        with pytest.raises(ValueError, match="lambda"):
            K.layers.Lambda.from_config(dict(config))
        model = K.Sequential([K.Input((5,)), K.layers.Lambda(lambda x: x * 2), K.layers.Dense(1)])
        path = str(tmp_path / f"{K.__name__}.keras")
        model.save(path)
        with pytest.raises(ValueError, match="lambda"):
            K.saving.load_model(path)
    deliberate("layers.lambda-never-deserialized")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unsafe = keras_ref.saving.load_model(str(tmp_path / "keras.keras"), safe_mode=False)
    assert unsafe.layers[0](np.ones((1, 5), "float32")) is not None  # Keras runs the stored bytecode
    with pytest.raises(ValueError, match="whatever safe_mode is"):
        tk.saving.load_model(str(tmp_path / "tritonnn.keras"), safe_mode=False)
    with pytest.raises(ValueError, match="lambda"):
        tk.layers.Lambda.from_config(_json(got.get_config()), safe_mode=False)


def test_lambda_mask_is_refused(keras_ref):
    deliberate("layers.lambda-mask")
    keras_ref.layers.Lambda(scaled, mask=lambda inputs, mask: mask)  # Keras keeps it for compute_mask
    with pytest.raises(ValueError, match="mask propagation"):
        tk.layers.Lambda(scaled, mask=lambda inputs, mask: mask)


# ---- the noise layers -------------------------------------------------------------------------------------------

NOISE = [
    ("GaussianNoise", {"stddev": 0.5}),
    ("GaussianDropout", {"rate": 0.3}),
    ("AlphaDropout", {"rate": 0.3}),
]


@pytest.mark.parametrize("name, kwargs", NOISE)
def test_noise_layers_in_training_have_keras_statistics(keras_ref, name, kwargs):
    deliberate("random.values")  # the noise itself comes from another generator
    x = np.full((400, 500), 0.7, "float32")
    ref = to_numpy(keras_ref, _make(keras_ref, name, {**kwargs, "seed": 1})(x, training=True))
    got = _make(tk, name, {**kwargs, "seed": 1})(torch.tensor(x), training=True).cpu().numpy()
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert abs(got.mean() - ref.mean()) < 0.01 and abs(got.std() - ref.std()) < 0.01
    if name == "AlphaDropout":  # two values: the kept affine image of 0.7 and the dropped one
        assert np.allclose(np.unique(got), np.unique(ref), atol=1e-6)


@pytest.mark.parametrize("name, kwargs", NOISE)
def test_noise_layers_are_the_identity_outside_training_and_seeded(keras_ref, name, kwargs):
    for K in (keras_ref, tk):
        layer = _make(K, name, {**kwargs, "seed": 4})
        np.testing.assert_array_equal(to_numpy(keras_ref, layer(X3)), X3)
        np.testing.assert_array_equal(to_numpy(keras_ref, layer(X3, training=False)), X3)
        first, second = (to_numpy(keras_ref, layer(X3, training=True)) for _ in range(2))
        assert not np.array_equal(first, second)  # the generator advances
        twin = _make(K, name, {**kwargs, "seed": 4})
        np.testing.assert_array_equal(to_numpy(keras_ref, twin(X3, training=True)), first)  # same seed, same noise


@pytest.mark.parametrize("name", ["GaussianDropout", "AlphaDropout"])
def test_rate_one_in_training_is_refused(keras_ref, name):
    deliberate("layers.noise-rate-one")
    assert observe(lambda: _make(keras_ref, name, {"rate": 1.0})(X2, training=True)).type == "ZeroDivisionError"
    with pytest.raises(ValueError, match="rate=1"):
        _make(tk, name, {"rate": 1.0})(torch.tensor(X2), training=True)
    np.testing.assert_array_equal(_make(tk, name, {"rate": 1.0})(torch.tensor(X2)).numpy(), X2)


# ---- categorical layers -----------------------------------------------------------------------------------------


def test_category_encoding_out_of_range_is_a_value_error(keras_ref):
    deliberate("layers.category-encoding-out-of-range")
    for mode in ("one_hot", "multi_hot", "count"):
        assert observe(lambda m=mode: keras_ref.layers.CategoryEncoding(3, output_mode=m)(np.array([[5, 1]]))).type == (
            "RuntimeError"
        )
        for bad in ([[5, 1]], [[-1, 1]]):
            with pytest.raises(ValueError, match=r"out of range \[0, 3\)"):
                tk.layers.CategoryEncoding(3, output_mode=mode)(np.array(bad))


def test_discretization_adapt_gives_exact_quantiles(keras_ref):
    deliberate("layers.discretization-exact-quantiles")
    data = RNG.normal(size=(1000, 1)).astype("float32")
    keras_adapt = observe(lambda: keras_ref.layers.Discretization(num_bins=4).adapt(data))
    assert keras_adapt is None or keras_adapt.type == "ImportError"  # Keras on torch needs TensorFlow to adapt
    layer = tk.layers.Discretization(num_bins=4)
    layer.adapt(data)
    np.testing.assert_allclose(layer.bin_boundaries, np.quantile(data, [0.25, 0.5, 0.75]), rtol=1e-6)
    counts = np.bincount(layer(data).numpy().ravel(), minlength=4)
    assert counts.tolist() == [250, 250, 250, 250]
    again = tk.layers.Discretization.from_config(_json(layer.get_config()))
    assert again.bin_boundaries == layer.bin_boundaries and again.num_bins == 4
    # Keras reads the adapted config too (both entries set)
    ref = keras_ref.layers.Discretization.from_config(_json(layer.get_config()))
    assert_same(to_numpy(keras_ref, ref(data)), layer(data).numpy())


def test_softmax_layer_output_keeps_its_logits_for_cross_entropy(keras_ref):
    deliberate("layers.softmax-layer-logits")
    logits = np.array([[0.0, 40.0, -40.0]], "float32")
    label = np.array([2])
    ref_loss = keras_ref.losses.sparse_categorical_crossentropy(label, keras_ref.layers.Softmax()(logits))
    got_loss = tk.losses.sparse_categorical_crossentropy(torch.tensor(label), tk.layers.Softmax()(logits))
    assert float(to_numpy(keras_ref, ref_loss)[0]) == pytest.approx(-np.log(1e-7), rel=1e-4)  # Keras clips
    assert float(got_loss[0]) == pytest.approx(80.0, rel=1e-5)  # logsumexp(z) - z_y


# ---- bad arguments: Keras' exception classes --------------------------------------------------------------------

BAD = [
    lambda K: K.layers.ReLU(max_value=-1.0),
    lambda K: K.layers.ReLU(negative_slope=-0.1),
    lambda K: K.layers.ReLU(threshold=-1.0),
    lambda K: K.layers.LeakyReLU(negative_slope=-0.3),
    lambda K: K.layers.RepeatVector(0),
    lambda K: K.layers.RepeatVector(2.5),
    lambda K: K.layers.RepeatVector(3)(X3),
    lambda K: K.layers.Permute((1, 3)),
    lambda K: K.layers.Permute((2, 1))(X2),
    lambda K: K.layers.Dot(axes=[1]),
    lambda K: K.layers.Dot(axes="last"),
    lambda K: K.layers.Dot(axes=[1, 1.5]),
    lambda K: K.layers.Dot(axes=1)([X2, X3[:, :, :4]]),
    lambda K: K.layers.UnitNormalization(axis="last"),
    lambda K: K.layers.GaussianNoise(stddev=1.5),
    lambda K: K.layers.GaussianDropout(rate=-0.1),
    lambda K: K.layers.AlphaDropout(rate=2.0),
    lambda K: K.layers.Normalization(mean=[1.0]),
    lambda K: K.layers.Normalization(mean=[1.0, 2.0], variance=[1.0]),
    lambda K: K.layers.Normalization(axis=-1, mean=[[1.0]], variance=[[1.0]]),
    lambda K: K.layers.CategoryEncoding(),
    lambda K: K.layers.CategoryEncoding(0),
    lambda K: K.layers.CategoryEncoding(3, output_mode="tf_idf"),
    lambda K: K.layers.CategoryEncoding(3, output_mode="one_hot")(INTS, count_weights=np.ones((2, 3))),
    lambda K: K.layers.Discretization(),
    lambda K: K.layers.Discretization(bin_boundaries=[0.0], num_bins=2),
    lambda K: K.layers.Discretization(num_bins=-1),
    lambda K: K.layers.Discretization(bin_boundaries=[0.0], output_mode="binary"),
    lambda K: K.layers.Discretization(bin_boundaries=[0.0], sparse=True),
    lambda K: K.layers.Discretization(bin_boundaries=[0.0]).adapt(X2),
    lambda K: K.layers.Softmax()(X3, mask=np.ones((4, 2, 5), bool)),
]


@pytest.mark.parametrize("make", BAD, ids=[f"bad-{i}" for i in range(len(BAD))])
def test_bad_arguments_raise_keras_exception_classes(keras_ref, make):
    ref, got = observe(lambda: make(keras_ref)), observe(lambda: make(tk))
    assert ref.__class__.__name__ == "Raised", "Keras accepted it: the case is wrong"
    assert got == ref, f"tritonnn: {got!r}; Keras: {ref!r}"


def test_a_model_of_the_new_layers_counts_parameters_as_keras(keras_ref):
    models = {}
    for K in (keras_ref, tk):
        norm = K.layers.Normalization()
        norm.adapt(X2)
        models[K] = K.Sequential(
            [K.Input((5,)), norm, K.layers.PReLU(), K.layers.GaussianNoise(0.1), K.layers.Dense(3), K.layers.Softmax()]
        )
    assert summary_counts(models[tk]) == summary_counts(models[keras_ref])
    assert [tuple(w.shape) for w in models[tk].non_trainable_weights] == [
        tuple(w.shape) for w in models[keras_ref].non_trainable_weights
    ]


def test_rms_normalization_trains_as_in_keras(keras_ref):
    # Dense -> RMSNormalization -> Dense, the same weights, two SGD steps: the gradients through the normalization
    # (the RMS kernel pair's backward on the triton backend) move the weights, the scale included, as Keras'.
    x, y = RNG.normal(size=(8, 5)).astype("float32"), RNG.normal(size=(8, 2)).astype("float32")
    models = []
    for K in (keras_ref, tk):
        model = K.Sequential([K.Input((5,)), K.layers.Dense(6), K.layers.RMSNormalization(), K.layers.Dense(2)])
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="mse")
        models.append(model)
    weights = [np.random.default_rng(4).normal(size=tuple(w.shape)).astype("float32") for w in models[0].weights]
    for model in models:
        model.set_weights(weights)
    losses = [
        [float(to_numpy(K, m.train_on_batch(x, y))) for _ in range(2)]
        for K, m in zip((keras_ref, tk), models, strict=True)
    ]
    assert_same(losses[1], losses[0], what="losses")
    for a, b in zip(models[1].get_weights(), [to_numpy(keras_ref, w) for w in models[0].weights], strict=True):
        assert_same(b, a, what="weights")
