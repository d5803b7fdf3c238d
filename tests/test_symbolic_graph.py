"""Layers and models called on NumPy arrays and lists (converted at ``__call__``, as Keras does), the symbolic graph a
user reaches (``layer.output``, ``model.inputs``... and the feature-extraction models built from them), layers whose
``call`` takes several positional tensors, and training a model that adds its own loss on inputs without targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn import ops

L = keras.layers
RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 4))  # float64, as NumPy makes them


def np_(t):
    return t.detach().cpu().numpy()


# ---- 1. eager calls on arrays ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: L.Dense(3),
        lambda: L.Dropout(0.5, seed=1),
        lambda: L.BatchNormalization(),
        lambda: L.LayerNormalization(),
        lambda: L.Activation("relu"),
        lambda: L.Flatten(),
        lambda: L.Reshape((2, 2)),
    ],
)
def test_any_layer_called_on_a_numpy_array_computes_as_on_the_tensor(make):
    layer = make()
    out = layer(X, training=False)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32  # float64 arrives as floatx
    expected = layer(torch.tensor(X, dtype=torch.float32, device=out.device), training=False)
    np.testing.assert_array_equal(np_(out), np_(expected))


def test_dropout_and_batch_norm_in_training_on_arrays():
    out = L.Dropout(0.5, seed=3)(X, training=True)
    kept = np_(out) != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(np_(out)[kept], (X * 2)[kept], rtol=1e-6)
    bn = L.BatchNormalization()
    y = np_(bn(X, training=True))
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(0), 1, rtol=1e-2)


def test_lists_of_numbers_and_nested_inputs_are_converted():
    dense = L.Dense(2)
    ref = np_(dense(X[:2].astype("float32")))
    np.testing.assert_allclose(np_(dense(X[:2].tolist())), ref, rtol=1e-6)  # a list of lists of floats
    cat = L.Concatenate()([X, X[:, :2].tolist()])  # a list of inputs: an array and a list
    assert tuple(cat.shape) == (6, 6) and cat.dtype == torch.float32
    ids = np.array([[1, 2], [3, 0]])
    emb = L.Embedding(5, 3)
    out = emb(ids)  # integer arrays stay integer (ids)
    np.testing.assert_array_equal(np_(out), np_(emb.embeddings)[ids])
    np.testing.assert_array_equal(np_(emb([[1, 2], [3, 0]])), np_(out))


def test_models_called_on_arrays_dicts_and_lists():
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="relu"), L.Dense(2)])
    ref = np_(seq(torch.tensor(X, dtype=torch.float32, device=seq.device)))
    np.testing.assert_array_equal(np_(seq(X)), ref)
    np.testing.assert_array_equal(np_(seq(X.tolist())), ref)
    a, b = keras.Input((4,), name="a"), keras.Input((2,), name="b")
    fun = keras.Model([a, b], L.Concatenate()([L.Dense(2)(a), b]))
    by_list = np_(fun([X, X[:, :2]]))
    np.testing.assert_array_equal(np_(fun({"a": X, "b": X[:, :2].tolist()})), by_list)
    unbuilt = keras.Sequential([L.Dense(2)])
    assert tuple(unbuilt(X).shape) == (6, 2)  # builds from the converted array


class Scaled(L.Layer):
    def call(self, inputs, scale=None):
        return inputs if scale is None else inputs * scale


def test_array_keyword_arguments_are_converted_and_others_pass_through():
    out = Scaled()(X, scale=np.full((6, 4), 2.0))
    np.testing.assert_allclose(np_(out), 2 * X, rtol=1e-6)
    assert Scaled()(X, scale=3.0).dtype == torch.float32  # a Python number by keyword is an option, kept as is


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("abc", r"Layer 'probe' \(Dense\) cannot convert its inputs to a tensor: received a value of type str"),
        (object(), r"'probe' \(Dense\).*type object"),
        (3.0, r"'probe' \(Dense\).*type float.*pass it by keyword"),
        (None, r"Inputs to a layer should be tensors. Got 'None'.*layer 'probe'"),
        ([[1.0, 2.0], [3.0]], r"'probe' \(Dense\) received a ragged list.*depth 1"),
        (np.array(["a", "b"]), r"'probe' \(Dense\) cannot convert its inputs.*ndarray.*non-numeric"),
        ([X, "oops"], r"'probe' \(Dense\).*type str"),
    ],
)
def test_what_cannot_be_a_tensor_is_a_clear_error_naming_the_layer_and_type(value, match):
    with pytest.raises(ValueError, match=match):
        L.Dense(2, name="probe")(value)


# ---- 2. the symbolic graph ------------------------------------------------------------------------------------------


def test_a_layer_never_called_has_no_output_with_keras_message():
    dense = L.Dense(2, name="lonely")
    for attr in ("output", "input"):
        with pytest.raises(
            AttributeError, match=f"The layer lonely has never been called and thus has no defined {attr}"
        ):
            getattr(dense, attr)
        assert not hasattr(dense, attr)
    dense(X)  # an eager call records no graph
    assert not hasattr(dense, "output")


def test_layer_input_and_output_are_the_first_symbolic_call():
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = L.Dense(3, name="shared")
    ya, yb = shared(a), shared(b)
    assert shared.input is a and shared.output is ya and yb is not ya
    assert shared.output.shape == (None, 3)
    cat = L.Concatenate()
    out = cat([ya, yb])
    assert cat.input == [ya, yb] and cat.output is out
    assert a.node.layer.output is a and a.node.layer.input == []


def mlp_with_input(kind: str) -> keras.Sequential:
    keras.utils.set_random_seed(1)
    first = [keras.Input((4,), name="x")] if kind == "input" else []
    dense = L.Dense(5, activation="relu", name="h1", **({"input_shape": (4,)} if kind == "input_shape" else {}))
    return keras.Sequential([*first, dense, L.Dense(4, activation="tanh", name="h2"), L.Dense(3, name="out")])


def manual_activations(model, x):
    acts, h = [], torch.tensor(x, dtype=torch.float32, device=model.device)
    for layer in model.layers:
        h = layer(h)
        acts.append(np_(h))
    return acts


@pytest.mark.parametrize("kind", ["input", "input_shape"])
def test_sequential_graph_and_feature_extraction_share_the_weights(kind):
    model = mlp_with_input(kind)
    assert len(model.inputs) == 1 and model.input is model.inputs[0] and model.input.shape == (None, 4)
    assert model.outputs == [model.output] and model.output is model.get_layer("out").output
    assert model.input_shape == (None, 4) and model.output_shape == (None, 3)
    assert model.get_layer("h2").input is model.get_layer("h1").output
    one = keras.Model(inputs=model.inputs, outputs=model.get_layer("h2").output)
    every = keras.Model(inputs=model.input, outputs=[layer.output for layer in model.layers])
    assert [layer.name for layer in one.layers[1:]] == ["h1", "h2"]
    assert every.count_params() == model.count_params()
    for _ in range(2):  # before and after a training step of the original: the extractors see its weights
        acts = manual_activations(model, X)
        np.testing.assert_allclose(one.predict(X, verbose=0), acts[1], rtol=1e-6, atol=1e-7)
        for got, want in zip(every.predict(X, verbose=0), acts, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        before = one.get_layer("h1").get_weights()[0]
        model.compile(optimizer="sgd", loss="mse")
        model.train_on_batch(X, np.ones((6, 3)))
    assert not np.array_equal(before, one.get_layer("h1").get_weights()[0])


def test_sequential_graph_follows_add_and_pop():
    model = mlp_with_input("input")
    assert all(len(layer._inbound_nodes) == 1 for layer in model.layers)  # one graph, not one per add
    model.add(L.Dense(2, name="extra"))
    assert model.output is model.get_layer("extra").output and model.output_shape == (None, 2)
    assert all(len(layer._inbound_nodes) == 1 for layer in model.layers)
    model.pop()
    assert model.output is model.get_layer("out").output and model.output_shape == (None, 3)
    extractor = keras.Model(model.inputs, [layer.output for layer in model.layers])
    assert [layer.name for layer in extractor.layers] == ["x", "h1", "h2", "out"]


def test_sequential_without_an_input_shape_has_no_graph_until_built():
    model = keras.Sequential([L.Dense(3, name="d")], name="bare")
    for attr, what in [
        ("inputs", "inputs"),
        ("outputs", "outputs"),
        ("input", "input"),
        ("output", "output"),
        ("input_shape", "input shape"),
        ("output_shape", "output shape"),
    ]:
        with pytest.raises(AttributeError, match=f"Sequential model 'bare' has no defined {what} yet."):
            getattr(model, attr)
    with pytest.raises(AttributeError, match="Sequential model 'bare' has no defined inputs yet"):
        keras.Model(inputs=model.inputs, outputs=model.get_layer("d").output)
    assert not hasattr(model.get_layer("d"), "output")
    model(X)  # built from data, as in Keras: now it has an input
    assert model.input_shape == (None, 4) and model.get_layer("d").output.shape == (None, 3)
    extractor = keras.Model(model.inputs, model.get_layer("d").output)
    np.testing.assert_array_equal(extractor.predict(X, verbose=0), model.predict(X, verbose=0))


def test_a_stack_whose_first_layer_is_a_model_with_an_input_knows_its_input():
    base = keras.Sequential([keras.Input((4,), name="x"), L.Dense(5, name="h1")])
    model = keras.Sequential([base, L.Dense(3, name="out")])
    assert model.built and model.input_shape == (None, 4) and len(model.weights) == 4  # as Keras builds it
    ids = keras.Input((5,), dtype="int32")
    embed = keras.Model(ids, L.Embedding(10, 3)(ids))
    stack = keras.Sequential([embed, L.Flatten(), L.Dense(2)])
    assert stack.input.dtype == "int32" and tuple(stack(np.ones((2, 5), "int64")).shape) == (2, 2)
    assert not keras.Sequential([keras.Sequential([L.Dense(3)]), L.Dense(2)]).built  # the inner one has no input


def test_functional_inputs_outputs_and_intermediate_extraction():
    keras.utils.set_random_seed(2)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = L.Dense(5, activation="relu", name="h")(a)
    merged = L.Concatenate(name="cat")([h, b])
    model = keras.Model({"a": a, "b": b}, {"y": L.Dense(2, name="y")(merged), "z": L.Dense(1, name="z")(merged)})
    assert model.input == {"a": a, "b": b} and model.inputs == [a, b]
    assert model.output["y"] is model.get_layer("y").output and model.outputs == [model.output["y"], model.output["z"]]
    assert model.input_shape == [(None, 4), (None, 3)] and model.output_shape == [(None, 2), (None, 1)]
    extractor = keras.Model(inputs=model.inputs, outputs=model.get_layer("cat").output)
    xb = RNG.normal(size=(6, 3))
    got = extractor.predict([X, xb], verbose=0)
    want = np.concatenate([np_(model.get_layer("h")(X)), xb], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch({"a": X, "b": xb}, {"y": np.ones((6, 2)), "z": np.ones((6, 1))})
    want = np.concatenate([np_(model.get_layer("h")(X)), xb], axis=1)  # the trained weights
    np.testing.assert_allclose(extractor.predict([X, xb], verbose=0), want, rtol=1e-6, atol=1e-6)


# ---- 4. several positional tensors; a model that adds its own loss ------------------------------------------------


class LogisticEndpoint(L.Layer):
    """Keras' example (the Functional API guide): the loss is computed inside, from targets given as an input."""

    def __init__(self, name=None):
        super().__init__(name=name)
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    def call(self, logits, targets=None, sample_weights=None):
        if targets is not None:
            self.add_loss(self.loss_fn(targets, logits, sample_weights))
        return ops.softmax(logits)


def logistic_model():
    keras.utils.set_random_seed(4)
    inputs = keras.Input(shape=(3,), name="inputs")
    targets = keras.Input(shape=(10,), name="targets")
    logits = L.Dense(10, name="logits")(inputs)
    predictions = LogisticEndpoint(name="predictions")(logits, targets)
    return keras.Model(inputs=[inputs, targets], outputs=predictions)


DATA = {"inputs": RNG.random((8, 3)), "targets": RNG.random((8, 10))}


def test_a_layer_takes_several_positional_tensors_symbolically_and_eagerly():
    model = logistic_model()
    end = model.get_layer("predictions")
    assert len(end.input) == 2 and end.input[1] is model.get_layer("targets").output
    assert [layer.name for layer in model.layers] == ["inputs", "logits", "targets", "predictions"]  # Keras'
    logits = np_(model.get_layer("logits")(DATA["inputs"]))
    out = end(logits, DATA["targets"])  # eagerly, on two arrays
    assert end.losses and tuple(out.shape) == (8, 10)
    np.testing.assert_allclose(np_(out).sum(-1), 1, rtol=1e-6)
    np.testing.assert_allclose(np_(end(logits)), np_(out), rtol=1e-6)  # targets left out: no loss, same output


def test_fit_evaluate_predict_on_a_dict_of_inputs_without_targets():
    model = logistic_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05))  # no loss: the model adds its own
    history = model.fit(DATA, epochs=5, batch_size=4, verbose=0)
    assert list(history.history) == ["loss"]
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    result = model.evaluate(DATA, verbose=0, return_dict=True)
    assert list(result) == ["loss"] and np.isfinite(result["loss"])
    assert model.evaluate(DATA, verbose=0) == pytest.approx(result["loss"])
    pred = model.predict(DATA, verbose=0)
    assert pred.shape == (8, 10)
    np.testing.assert_allclose(pred.sum(-1), 1, rtol=1e-5)


def test_targets_missing_where_the_compiled_loss_needs_them_is_a_clear_error():
    model = keras.Sequential([keras.Input((4,)), L.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"Expected target data `y` for fit\(\): the model was compiled with a loss"):
        model.fit(X, verbose=0)
    with pytest.raises(ValueError, match=r"for evaluate\(\): the model was compiled with a loss"):
        model.evaluate(X, verbose=0)
    metrics_only = logistic_model()
    metrics_only.compile(optimizer="adam", metrics=["mae"])
    with pytest.raises(ValueError, match="compiled with metrics"):
        metrics_only.fit(DATA, verbose=0)
    no_loss = keras.Sequential([keras.Input((4,)), L.Dense(1)])
    no_loss.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="no loss to optimize"):
        no_loss.fit(X, np.ones((6, 1)), verbose=0)


class TwoShapes(L.Layer):
    """A layer whose ``build`` takes the shapes of both of its call's tensors (Keras' ``<name>_shape`` rule)."""

    def build(self, a_shape, b_shape):
        self.w = self.add_weight(shape=(a_shape[-1], b_shape[-1]), initializer="ones", name="w")

    def call(self, a, b):
        return a @ self.w + b


class Plus(L.Layer):
    def call(self, a, b):
        return a + b


def test_an_array_beside_symbolic_tensors_is_a_constant_of_the_graph():
    x = keras.Input((3,))
    model = keras.Model(x, Plus()(x, np.arange(3.0)[None]))  # float64 constant: converted as in an eager call
    np.testing.assert_allclose(model.predict(np.ones((2, 3)), verbose=0), [[1, 2, 3], [1, 2, 3]])
    with pytest.raises(ValueError, match="cannot be serialized to JSON"):
        model.to_json()  # a tensor constant has no config, as in Keras


def test_build_gets_each_positional_tensors_shape_by_name():
    layer = TwoShapes()
    out = layer(np.ones((2, 3)), np.zeros((2, 5)))
    assert tuple(layer.w.shape) == (3, 5)
    np.testing.assert_allclose(np_(out), 3.0)
    sym = TwoShapes()(keras.Input((3,)), keras.Input((4,)))
    assert sym.shape == (None, 4)
