"""The symbolic graph, model configs and eager calls on arrays, against real Keras 3 in this process (issue #14).

The same program runs under ``keras`` (the ``keras_ref`` fixture: Keras on its torch backend) and under
``tritonnn``. Compared: ``get_config()``'s layout (top-level keys; each layer's ``class_name``, ``name`` and
``inbound_nodes``; ``input_layers`` and ``output_layers``; an InputLayer's config), ``model.layers``' order, configs
rebuilt by ``from_config``, ``clone_model`` and ``to_json``, layers and models called on NumPy arrays (same weights,
same outputs), the feature-extraction idiom, the errors where the graph is not defined, and Keras' LogisticEndpoint
example (a layer taking two positional tensors and adding its own loss, trained with ``compile`` without a loss on a
dict of inputs without ``y``) from the same initial weights.

Where tritonnn differs on purpose, the comparison names the difference's id in ``docs/keras_differences.md``:
Keras' layer entries also carry ``module``, ``registered_name``, ``build_config`` and ``compile_config``
(``config.layer-entry-keys``), its dtypes are ``DTypePolicy`` dicts (``config.dtype-name``), a Sequential model's
``model.input``/``model.output`` raise ``AttributeError`` in Keras 3.15 (``graph.sequential-input``), Keras refuses
lists of numbers as inputs (``call.number-lists``) and loses a nested model's ``trainable=False`` on a round trip
(``config.nested-trainable``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tritonnn

from .differences import deliberate

KERAS_ONLY_ENTRY_KEYS = {"module", "registered_name", "build_config", "compile_config"}
RNG = np.random.default_rng(7)
X = RNG.normal(size=(6, 4))  # float64, as a user's NumPy data


def as_json(cfg: Any) -> Any:
    return json.loads(json.dumps(cfg))


def numpy_of(K: Any, x: Any) -> Any:
    if isinstance(x, dict):
        return {k: numpy_of(K, v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [numpy_of(K, v) for v in x]
    return np.asarray(K.ops.convert_to_numpy(x))


def copy_weights(src: Any, dst: Any) -> None:
    """Keras' initial weights into the tritonnn model, layer by layer by name (same shapes)."""
    for layer in src.layers:
        weights = layer.get_weights()
        if weights:
            dst.get_layer(layer.name).set_weights(weights)


# ---- models, built the same way under both modules -----------------------------------------------------------------


def seq_input(K):
    return K.Sequential(
        [K.Input((4,), name="x"), K.layers.Dense(5, "relu", name="h1"), K.layers.Dense(3, name="out")], name="s"
    )


def seq_input_shape(K):
    return K.Sequential([K.layers.Dense(5, input_shape=(4,), name="h1"), K.layers.Dense(3, name="out")], name="s")


def seq_unbuilt(K):
    return K.Sequential([K.layers.Dense(5, name="h1"), K.layers.Dropout(0.2, name="drop")], name="s")


def shared_list(K):
    a, b = K.Input((4,), name="a"), K.Input((3,), name="b")
    shared = K.layers.Dense(3, name="shared")
    merged = K.layers.Concatenate(name="cat")([shared(a), shared(K.layers.Dense(4, name="widen")(b))])
    reg, cls = K.layers.Dense(1, name="reg")(merged), K.layers.Dense(3, "softmax", name="cls")(merged)
    return K.Model([a, b], [reg, cls], name="two")


def shared_dict(K):
    a, b = K.Input((4,), name="a"), K.Input((3,), name="b")
    shared = K.layers.Dense(3, name="shared")
    merged = K.layers.Add(name="add")([shared(a), shared(K.layers.Dense(4, name="widen")(b))])
    outputs = {"z": K.layers.Dense(1, name="z")(merged), "y": K.layers.Dense(2, name="y")(merged)}
    return K.Model({"b": b, "a": a}, outputs, name="two")


def node_kwargs(K):
    x = K.Input((4,), name="x")
    dropped = K.layers.Dropout(0.5, name="always")(x, training=True)
    return K.Model(x, K.layers.Dense(2, name="d")(dropped), name="kw")


def twice_shared(K):
    x = K.Input((4,), name="x")
    a, b = K.layers.Dense(4, name="A"), K.layers.Dense(4, name="B")
    return K.Model(x, a(b(a(b(x)))), name="deep")  # A and B each called at two depths


def logistic_endpoint_class(K: Any) -> type:
    class LogisticEndpoint(K.layers.Layer):
        def __init__(self, name=None, **kwargs):  # **kwargs: trainable and dtype, so that from_config rebuilds it
            super().__init__(name=name, **kwargs)
            self.loss_fn = K.losses.BinaryCrossentropy(from_logits=True)

        def call(self, logits, targets=None, sample_weights=None):
            if targets is not None:
                self.add_loss(self.loss_fn(targets, logits, sample_weights))
            return K.ops.softmax(logits)

    return LogisticEndpoint


def logistic(K):
    inputs = K.Input(shape=(3,), name="inputs")
    targets = K.Input(shape=(10,), name="targets")
    logits = K.layers.Dense(10, name="logits")(inputs)
    predictions = logistic_endpoint_class(K)(name="predictions")(logits, targets)
    return K.Model(inputs=[inputs, targets], outputs=predictions, name="logistic")


def seq_of_model(K):  # a model with an input as the first layer: the stack knows its input shape (built)
    base = K.Sequential([K.Input((4,), name="x"), K.layers.Dense(5, "relu", name="h1")], name="base")
    base.trainable = False
    return K.Sequential([base, K.layers.Dense(3, name="out")], name="s")


SEQUENTIAL = [seq_input, seq_input_shape, seq_unbuilt, seq_of_model]
FUNCTIONAL = [shared_list, shared_dict, node_kwargs, twice_shared, logistic]


def both(keras_ref: Any, build: Callable[[Any], Any]) -> tuple[Any, Any]:
    keras_ref.utils.set_random_seed(0)
    tritonnn.utils.set_random_seed(0)
    return build(keras_ref), build(tritonnn)


# ---- configs -------------------------------------------------------------------------------------------------------


def check_entry(ref: dict, got: dict, functional: bool) -> None:
    deliberate("config.layer-entry-keys")  # the keys tritonnn does not write
    assert set(got) == set(ref) - KERAS_ONLY_ENTRY_KEYS, (sorted(ref), sorted(got))
    assert got["class_name"] == ref["class_name"]
    if functional:
        assert got["name"] == ref["name"]
        assert got["inbound_nodes"] == ref["inbound_nodes"], got["name"]
    if ref["class_name"] == "InputLayer":
        assert got["config"] == ref["config"]
    else:
        assert got["config"]["name"] == ref["config"]["name"]
        deliberate("config.dtype-name")  # Keras: a DTypePolicy dict; tritonnn: the policy's name
        assert got["config"]["dtype"] == ref["config"]["dtype"]["config"]["name"]


@pytest.mark.parametrize("build", SEQUENTIAL, ids=lambda f: f.__name__)
def test_sequential_config_layout_matches_keras(keras_ref, build):
    ref_model, got_model = both(keras_ref, build)
    ref, got = as_json(ref_model.get_config()), as_json(got_model.get_config())
    assert list(got) == list(ref)
    assert got["name"] == ref["name"] and got["trainable"] == ref["trainable"]
    deliberate("config.dtype-name")
    assert got["dtype"] == ref["dtype"]["config"]["name"]
    assert got.get("build_input_shape") == ref.get("build_input_shape")
    assert got_model.built == ref_model.built and len(got_model.weights) == len(ref_model.weights)
    assert len(got_model.trainable_weights) == len(ref_model.trainable_weights)
    assert len(got["layers"]) == len(ref["layers"])
    for r, g in zip(ref["layers"], got["layers"], strict=True):
        if r["class_name"] == "InputLayer":  # the automatic name's counter differs between the two modules
            r["config"]["name"] = g["config"]["name"] = None
        check_entry(r, g, functional=False)


@pytest.mark.parametrize("build", FUNCTIONAL, ids=lambda f: f.__name__)
def test_functional_config_layout_and_layer_order_match_keras(keras_ref, build):
    ref_model, got_model = both(keras_ref, build)
    assert [layer.name for layer in got_model.layers] == [layer.name for layer in ref_model.layers]
    ref, got = as_json(ref_model.get_config()), as_json(got_model.get_config())
    assert list(got) == list(ref) == ["name", "trainable", "layers", "input_layers", "output_layers"]
    assert got["name"] == ref["name"] and got["trainable"] == ref["trainable"]
    assert got["input_layers"] == ref["input_layers"] and got["output_layers"] == ref["output_layers"]
    assert [e["name"] for e in got["layers"]] == [e["name"] for e in ref["layers"]]
    for r, g in zip(ref["layers"], got["layers"], strict=True):
        check_entry(r, g, functional=True)


@pytest.mark.parametrize("build", SEQUENTIAL + FUNCTIONAL, ids=lambda f: f.__name__)
def test_from_config_clone_model_and_json_rebuild_as_in_keras(keras_ref, build):
    custom = {"LogisticEndpoint": None}
    for K, model in zip((keras_ref, tritonnn), both(keras_ref, build), strict=True):
        custom["LogisticEndpoint"] = type(model.layers[-1]) if build is logistic else None
        objects = {k: v for k, v in custom.items() if v is not None}
        cfg = as_json(model.get_config())  # a copy: Keras' Functional.from_config empties the dict it is given
        rebuild_from = as_json(cfg)
        rebuilt = type(model).from_config(rebuild_from, custom_objects=objects or None)
        from_json = K.models.model_from_json(model.to_json(), custom_objects=objects or None)
        if build is logistic:  # clone_model's default clone_function is from_config: give it the class
            clone = K.models.clone_model(
                model, clone_function=lambda layer: type(layer).from_config(layer.get_config())
            )
        else:
            clone = K.models.clone_model(model)
        for other in (rebuilt, from_json, clone):
            assert type(other).__name__ == type(model).__name__
            other_cfg = as_json(other.get_config())
            if build is seq_of_model and K is keras_ref:  # Keras unfreezes the inner model
                deliberate("config.nested-trainable")
                assert other_cfg["layers"][1]["config"]["trainable"]
                other_cfg["layers"][1]["config"]["trainable"] = False
            assert other_cfg == cfg, K.__name__
            assert other.built == model.built
            if model.built:
                assert other.count_params() == model.count_params()
                assert not {id(w) for w in other.weights} & {id(w) for w in model.weights}  # new weights


# ---- eager calls on arrays -----------------------------------------------------------------------------------------

LAYERS = {
    "dense": (lambda K: K.layers.Dense(3), {}),
    "batch_norm_inference": (lambda K: K.layers.BatchNormalization(), {}),
    "batch_norm_training": (lambda K: K.layers.BatchNormalization(), {"training": True}),
    "layer_norm": (lambda K: K.layers.LayerNormalization(), {}),
    "dropout_inference": (lambda K: K.layers.Dropout(0.5), {"training": False}),
    "activation": (lambda K: K.layers.Activation("tanh"), {}),
    "reshape": (lambda K: K.layers.Reshape((2, 2)), {}),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layers_called_on_numpy_arrays_match_keras(keras_ref, name):
    make, kwargs = LAYERS[name]
    ref_layer, got_layer = make(keras_ref), make(tritonnn)
    ref_layer(X[:1])  # build, then give both the same weights
    got_layer(X[:1])
    got_layer.set_weights(ref_layer.get_weights())
    ref, got = ref_layer(X, **kwargs), got_layer(X, **kwargs)
    assert str(got.dtype).replace("torch.", "") == keras_ref.backend.standardize_dtype(ref.dtype) == "float32"
    np.testing.assert_allclose(numpy_of(tritonnn, got), numpy_of(keras_ref, ref), rtol=1e-5, atol=1e-6)


def test_merging_embedding_and_models_on_arrays_match_keras(keras_ref):
    for K in (keras_ref, tritonnn):
        assert tuple(K.layers.Concatenate()([X, X[:, :2]]).shape) == (6, 6)
    ids = np.array([[1, 4], [0, 2]])
    ref_emb, got_emb = keras_ref.layers.Embedding(5, 3), tritonnn.layers.Embedding(5, 3)
    ref_emb(ids)
    got_emb(ids)
    got_emb.set_weights(ref_emb.get_weights())
    np.testing.assert_allclose(numpy_of(tritonnn, got_emb(ids)), numpy_of(keras_ref, ref_emb(ids)), rtol=1e-6)
    for build in (seq_input, shared_dict):
        ref_model, got_model = both(keras_ref, build)
        copy_weights(ref_model, got_model)
        x = X if build is seq_input else {"a": X, "b": X[:, :3]}
        ref, got = numpy_of(keras_ref, ref_model(x)), numpy_of(tritonnn, got_model(x))
        if isinstance(ref, dict):
            assert sorted(got) == sorted(ref)
            for k in ref:
                np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_lists_of_numbers_are_arrays_in_tritonnn(keras_ref):
    rows = X.tolist()
    with pytest.raises(ValueError, match="Only input tensors may be passed as positional arguments"):
        keras_ref.layers.Dense(2)(rows)
    deliberate("call.number-lists")
    dense = tritonnn.layers.Dense(2)
    np.testing.assert_array_equal(numpy_of(tritonnn, dense(rows)), numpy_of(tritonnn, dense(X)))


def test_what_keras_cannot_convert_is_an_error_in_both(keras_ref):
    for value in ("abc", object(), 3.0):
        for K in (keras_ref, tritonnn):
            with pytest.raises(ValueError):
                K.layers.Dense(2)(value)


# ---- the symbolic graph ----------------------------------------------------------------------------------------------


def test_undefined_graph_errors_are_attribute_errors_as_in_keras(keras_ref):
    for K in (keras_ref, tritonnn):
        lonely = K.layers.Dense(2)
        assert not hasattr(lonely, "output") and not hasattr(lonely, "input")
        bare = K.Sequential([K.layers.Dense(2)])
        for attr in ("inputs", "outputs", "input_shape", "output_shape"):
            with pytest.raises(AttributeError):
                getattr(bare, attr)
    with pytest.raises(AttributeError, match="The layer lonely has never been called and thus has no defined output"):
        tritonnn.layers.Dense(2, name="lonely").output  # noqa: B018 (Keras' words; its torch backend loses them)


def test_feature_extraction_matches_keras_and_shares_the_weights(keras_ref):
    ref_model, got_model = both(keras_ref, seq_input)
    copy_weights(ref_model, got_model)
    assert got_model.input_shape == ref_model.input_shape and got_model.output_shape == ref_model.output_shape
    assert got_model.get_layer("h1").output.shape == tuple(ref_model.get_layer("h1").output.shape)
    extract = lambda K, m: K.Model(inputs=m.inputs, outputs=m.get_layer("h1").output)  # noqa: E731
    ref_x, got_x = extract(keras_ref, ref_model), extract(tritonnn, got_model)
    np.testing.assert_allclose(got_x.predict(X, verbose=0), ref_x.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
    every = tritonnn.Model(inputs=got_model.input, outputs=[layer.output for layer in got_model.layers])
    with pytest.raises(AttributeError):  # deliberate: Keras 3.15's Sequential has no `input`
        keras_ref.Model(inputs=ref_model.input, outputs=[layer.output for layer in ref_model.layers])
    deliberate("graph.sequential-input")
    ref_every = keras_ref.Model(inputs=ref_model.inputs, outputs=[layer.output for layer in ref_model.layers])
    for got, ref in zip(every.predict(X, verbose=0), ref_every.predict(X, verbose=0), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    y = RNG.normal(size=(6, 3))
    for K, model in ((keras_ref, ref_model), (tritonnn, got_model)):  # one step of the original...
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(X, y)
    # ...and both extractors see the new weights, the same in both
    np.testing.assert_allclose(got_x.predict(X, verbose=0), ref_x.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
    ref_fun, got_fun = both(keras_ref, shared_list)
    copy_weights(ref_fun, got_fun)
    xs = [X, X[:, :3]]
    outs = lambda K, m: K.Model(m.input, [m.get_layer(n).output for n in ("widen", "cat")]).predict(xs, verbose=0)  # noqa: E731
    for got, ref in zip(outs(tritonnn, got_fun), outs(keras_ref, ref_fun), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


# ---- a layer with two positional tensors that adds its own loss --------------------------------------------------


def test_logistic_endpoint_trains_as_in_keras(keras_ref):
    ref_model, got_model = both(keras_ref, logistic)
    copy_weights(ref_model, got_model)
    data = {"inputs": RNG.random((8, 3)), "targets": RNG.random((8, 10))}
    histories = []
    for K, model in ((keras_ref, ref_model), (tritonnn, got_model)):
        model.compile(optimizer=K.optimizers.Adam(learning_rate=0.05))  # no loss argument
        histories.append(model.fit(data, epochs=6, batch_size=4, shuffle=False, verbose=0).history)
    ref_h, got_h = histories
    assert list(got_h) == list(ref_h) == ["loss"]
    assert got_h["loss"][-1] < got_h["loss"][0]
    np.testing.assert_allclose(got_h["loss"], ref_h["loss"], rtol=1e-4)
    ref_eval = ref_model.evaluate(data, verbose=0, return_dict=True)
    got_eval = got_model.evaluate(data, verbose=0, return_dict=True)
    assert list(got_eval) == list(ref_eval)
    np.testing.assert_allclose(got_eval["loss"], ref_eval["loss"], rtol=1e-4)
    np.testing.assert_allclose(
        got_model.predict(data, verbose=0), ref_model.predict(data, verbose=0), rtol=1e-4, atol=1e-6
    )
    assert got_model.metrics_names == ref_model.metrics_names == ["loss"]


def test_a_compiled_loss_without_targets_is_a_value_error_in_both(keras_ref):
    for K in (keras_ref, tritonnn):
        model = K.Sequential([K.Input((4,)), K.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        with pytest.raises(ValueError):  # Keras: "Invalid dtype: object"; tritonnn says what is missing
            model.fit(X, verbose=0)
