"""Model configs in Keras' layout: ``get_config``/``from_config`` round trips (Sequential, Functional with shared
layers, several inputs and outputs as lists and dicts, nested models, keyword arguments), ``clone_model``,
``to_json``/``model_from_json``, clear errors for broken configs, and files saved in tritonnn's earlier config layout
(format_version 1 before Keras' layout), which still load."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn import saving

L = keras.layers
RNG = np.random.default_rng(0)
XA = RNG.normal(size=(5, 4)).astype("float32")
XB = RNG.normal(size=(5, 3)).astype("float32")


def same_weights(a, b):
    keras_a, keras_b = a.get_weights(), b.get_weights()
    assert len(keras_a) == len(keras_b)
    for u, v in zip(keras_a, keras_b, strict=True):
        np.testing.assert_array_equal(u, v)


def assert_same_outputs(a, b, x):
    out_a, out_b = a.predict(x, verbose=0), b.predict(x, verbose=0)
    if isinstance(out_a, dict):
        assert sorted(out_a) == sorted(out_b)
        out_a, out_b = [out_a[k] for k in sorted(out_a)], [out_b[k] for k in sorted(out_b)]
    listed = lambda out: out if isinstance(out, list) else [out]  # noqa: E731
    for u, v in zip(listed(out_a), listed(out_b), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


# ---- models ------------------------------------------------------------------------------------------------------


def sequential(kind: str = "input") -> keras.Sequential:
    keras.utils.set_random_seed(1)
    first = [keras.Input((4,), name="x")] if kind == "input" else []
    extra = {"input_shape": (4,)} if kind == "input_shape" else {}
    return keras.Sequential(
        [*first, L.Dense(5, activation="relu", name="h", **extra), L.Dropout(0.3), L.Dense(2, name="out")], name="s"
    )


def shared_two_io(outputs_as: str = "list") -> keras.Model:
    keras.utils.set_random_seed(2)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    shared = L.Dense(3, name="shared")
    ha = shared(a)
    hb = shared(L.Dense(4, name="widen")(b))  # the shared layer's second call, on another input
    merged = L.Concatenate(name="cat")([ha, hb])
    reg, cls = L.Dense(1, name="reg")(merged), L.Dense(3, activation="softmax", name="cls")(merged)
    if outputs_as == "dict":
        return keras.Model({"a": a, "b": b}, {"reg": reg, "cls": cls}, name="two")
    return keras.Model([a, b], [reg, cls], name="two")


def nested() -> keras.Model:
    keras.utils.set_random_seed(3)
    inner_in = keras.Input((4,), name="inner_in")
    inner = keras.Model(inner_in, L.Dense(3, name="inner_dense")(inner_in), name="inner")
    x = keras.Input((4,), name="x")
    h = L.Dropout(0.5, name="always")(inner(x), training=True)  # an explicit training= stays on the node
    stack = keras.Sequential([L.Dense(2, name="s1")], name="stack")
    return keras.Model(x, stack(L.Add(name="add")([h, inner(x)])), name="outer")


# ---- round trips -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["input", "input_shape"])
def test_sequential_config_has_keras_layout_and_round_trips(kind):
    model = sequential(kind)
    cfg = model.get_config()
    assert list(cfg) == ["name", "trainable", "dtype", "layers", "build_input_shape"]
    assert cfg["build_input_shape"] == [None, 4]
    first = cfg["layers"][0]
    assert first["class_name"] == "InputLayer"
    assert first["config"] == {
        "batch_shape": [None, 4],
        "dtype": "float32",
        "sparse": False,
        "ragged": False,
        "name": model.input.node.layer.name,
        "optional": False,
    }
    assert [c["class_name"] for c in cfg["layers"][1:]] == ["Dense", "Dropout", "Dense"]
    for clone in (keras.Sequential.from_config(cfg), saving.deserialize_layer(saving.serialize_layer(model))):
        assert type(clone) is keras.Sequential and clone.built and clone.get_config() == cfg
        clone.set_weights(model.get_weights())
        assert_same_outputs(model, clone, XA)


def test_unbuilt_and_data_built_sequential_configs():
    bare = keras.Sequential([L.Dense(3, name="d")], name="bare")
    cfg = bare.get_config()
    assert list(cfg) == ["name", "trainable", "dtype", "layers"] and len(cfg["layers"]) == 1
    clone = keras.Sequential.from_config(cfg)
    assert not clone.built and clone.get_config() == cfg
    bare(XA)  # built from data: its input layer is part of the config now, as in Keras
    cfg = bare.get_config()
    assert cfg["layers"][0]["class_name"] == "InputLayer" and cfg["build_input_shape"] == [None, 4]
    assert keras.Sequential.from_config(cfg).built


@pytest.mark.parametrize("outputs_as", ["list", "dict"])
def test_functional_config_has_keras_layout_and_round_trips(outputs_as):
    model = shared_two_io(outputs_as)
    cfg = model.get_config()
    assert list(cfg) == ["name", "trainable", "layers", "input_layers", "output_layers"]
    heads = ["cls", "reg"] if outputs_as == "dict" else ["reg", "cls"]  # a dict's outputs in sorted-key order
    assert [entry["name"] for entry in cfg["layers"]] == ["b", "a", "widen", "shared", "cat", *heads]  # Keras' order
    for entry in cfg["layers"]:
        assert {"class_name", "config", "name", "inbound_nodes"} <= set(entry)
    shared = next(e for e in cfg["layers"] if e["name"] == "shared")
    histories = [node["args"][0]["config"]["keras_history"] for node in shared["inbound_nodes"]]
    assert histories == [["a", 0, 0], ["widen", 0, 0]]  # one entry per call
    cat = next(e for e in cfg["layers"] if e["name"] == "cat")
    assert [t["config"]["keras_history"] for t in cat["inbound_nodes"][0]["args"][0]] == [
        ["shared", 0, 0],
        ["shared", 1, 0],
    ]
    if outputs_as == "dict":
        assert cfg["input_layers"] == {"a": ["a", 0, 0], "b": ["b", 0, 0]}
        assert cfg["output_layers"] == {"reg": ["reg", 0, 0], "cls": ["cls", 0, 0]}
    else:
        assert cfg["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
        assert cfg["output_layers"] == [["reg", 0, 0], ["cls", 0, 0]]
    assert json.loads(json.dumps(cfg)) == cfg  # JSON as it is
    x = {"a": XA, "b": XB} if outputs_as == "dict" else [XA, XB]
    for rebuild in (keras.Model.from_config, keras.models.Functional.from_config):
        clone = rebuild(cfg)
        assert type(clone).__name__ == "Functional" and clone.get_config() == cfg
        assert clone.count_params() == model.count_params()  # the shared layer is still one layer
        clone.set_weights(model.get_weights())
        assert_same_outputs(model, clone, x)


def test_nested_models_and_node_keyword_arguments_round_trip():
    model = nested()
    cfg = model.get_config()
    inner = next(e for e in cfg["layers"] if e["name"] == "inner")
    assert inner["class_name"] == "Functional" and len(inner["inbound_nodes"]) == 2
    always = next(e for e in cfg["layers"] if e["name"] == "always")
    assert always["inbound_nodes"][0]["kwargs"] == {"training": True}
    clone = keras.Model.from_config(json.loads(json.dumps(cfg)))
    assert clone.get_config() == cfg
    assert type(clone.get_layer("stack")) is keras.Sequential
    clone.set_weights(model.get_weights())
    # the Dropout runs in training even in predict (training=True on the node): some units dropped, others doubled
    probe = keras.Model(clone.input, [clone.get_layer("always").output, clone.get_layer("always").input])
    dropped, before = probe.predict(np.ones((64, 4), "float32"), verbose=0)
    assert (dropped == 0).any() and np.allclose(dropped[dropped != 0], 2 * before[dropped != 0], rtol=1e-6)


def test_a_frozen_inner_model_stays_frozen_over_a_round_trip():
    base = keras.Sequential([keras.Input((4,), name="x"), L.Dense(5, name="h1")], name="base")
    base.trainable = False
    model = keras.Sequential([base, L.Dense(3, name="out")])
    clone = keras.Sequential.from_config(model.get_config())
    assert clone.get_config() == model.get_config() and not clone.get_layer("base").trainable
    assert len(clone.trainable_weights) == len(model.trainable_weights) == 2


def test_a_layer_shared_at_two_depths_is_replayed_in_order():
    x = keras.Input((4,), name="x")
    a, b = L.Dense(4, name="A"), L.Dense(4, name="B")
    model = keras.Model(x, a(b(a(b(x)))))  # A(B(A(B(x)))): A's second call waits for B's second
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    assert_same_outputs(model, clone, XA)


def test_broken_functional_configs_are_clear_errors():
    cfg = shared_two_io().get_config()
    with pytest.raises(ValueError, match="no \\['output_layers'\\]"):
        keras.models.Functional.from_config({k: v for k, v in cfg.items() if k != "output_layers"})
    bad = json.loads(json.dumps(cfg))
    bad["layers"][-1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["ghost", 0, 0]
    with pytest.raises(ValueError, match="refers to a layer 'ghost' that it does not define"):
        keras.Model.from_config(bad)
    loop = json.loads(json.dumps(cfg))
    loop["layers"][2]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["cat", 0, 0]
    with pytest.raises(ValueError, match="either has loops or disconnected nodes"):
        keras.Model.from_config(loop)
    bad_index = json.loads(json.dumps(cfg))
    bad_index["output_layers"][0] = ["reg", 0, 7]
    with pytest.raises(ValueError, match="has 1 outputs"):
        keras.Model.from_config(bad_index)
    with pytest.raises(ValueError, match="Unrecognized keys"):
        keras.models.Functional.from_config({**cfg, "weights": []})
    with pytest.raises(ValueError, match="must be a dictionary containing the 'name' and 'layers'"):
        keras.Sequential.from_config({"name": "s"})


# ---- clone_model, to_json ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [sequential, shared_two_io, nested], ids=["sequential", "functional", "nested"])
def test_clone_model_has_the_architecture_and_new_weights(make):
    model = make()
    model.compile(optimizer="adam", loss="mse")
    clone = keras.models.clone_model(model)
    assert type(clone) is type(model) and clone.get_config() == model.get_config()
    assert clone.compiled and clone.get_compile_config() == model.get_compile_config()
    assert not {id(w) for w in clone.weights} & {id(w) for w in model.weights}
    assert any(not np.array_equal(u, v) for u, v in zip(clone.get_weights(), model.get_weights(), strict=True))
    clone.set_weights(model.get_weights())
    x = [XA, XB] if make is shared_two_io else XA
    if make is not nested:  # nested's Dropout draws its own mask in both
        assert_same_outputs(model, clone, x)


def test_clone_model_arguments():
    model = shared_two_io()
    seen = []

    def record(layer):
        seen.append(layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=record)
    assert sorted(seen) == ["cat", "cls", "reg", "shared", "widen"]  # once each, input layers aside
    assert clone.count_params() == model.count_params()
    inputs = [keras.Input((4,), name="p"), keras.Input((3,), name="q")]
    clone = keras.models.clone_model(model, input_tensors=inputs)
    assert clone.inputs == inputs

    def add_relu(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        return L.Activation("relu", name="after_reg")(out) if layer.name == "reg" else out

    reused = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=add_relu)
    assert reused.get_layer("shared") is model.get_layer("shared") and "after_reg" in [x.name for x in reused.layers]
    assert reused.predict([XA, XB], verbose=0)[0].min() >= 0
    seq = sequential()
    cloned_seq = keras.models.clone_model(seq, input_tensors=keras.Input((4,), name="given"))
    assert cloned_seq.input.node.layer.name == "given"
    deep = keras.models.clone_model(nested(), recursive=True)
    assert type(deep.get_layer("stack")) is keras.Sequential
    with pytest.raises(ValueError, match="`call_function` argument is not supported with Sequential"):
        keras.models.clone_model(seq, call_function=add_relu)
    with pytest.raises(ValueError, match="same structure as model.input"):
        keras.models.clone_model(model, input_tensors=inputs[0])
    with pytest.raises(ValueError, match="Unexpected keyword argument"):
        keras.models.clone_model(model, weights=True)
    with pytest.raises(ValueError, match="Expected `model` to be a tritonnn Model"):
        keras.models.clone_model(L.Dense(2))


class Subclassed(keras.Model):
    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = L.Dense(units)

    def call(self, inputs):
        return self.dense(inputs)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_clone_model_of_a_subclassed_model_uses_its_config():
    clone = keras.models.clone_model(Subclassed(units=3, name="sub"))
    assert type(clone) is Subclassed and clone.units == 3 and clone.name == "sub"
    with pytest.raises(ValueError, match="only supported for Sequential models or Functional models"):
        keras.models.clone_model(Subclassed(), clone_function=lambda layer: layer)


@pytest.mark.parametrize("make", [sequential, shared_two_io, nested], ids=["sequential", "functional", "nested"])
def test_to_json_and_model_from_json(make):
    model = make()
    text = model.to_json(indent=1)
    assert json.loads(text) == saving.serialize_layer(model)
    clone = keras.models.model_from_json(text)
    assert type(clone) is type(model) and clone.get_config() == model.get_config() and not clone.compiled
    with pytest.raises(ValueError, match="not valid JSON"):
        keras.models.model_from_json(text[:-3])


def test_model_from_json_resolves_custom_classes_from_custom_objects():
    class Twice(L.Layer):
        def call(self, inputs):
            return inputs * 2

    x = keras.Input((4,))
    model = keras.Model(x, Twice(name="twice")(L.Dense(2)(x)))
    with pytest.raises(ValueError, match="Could not locate class 'Twice'"):
        keras.models.model_from_json(model.to_json())
    clone = keras.models.model_from_json(model.to_json(), custom_objects={"Twice": Twice})
    assert type(clone.get_layer("twice")) is Twice


# ---- files in the earlier layout ------------------------------------------------------------------------------------


def old_dense(name, units, activation="linear"):
    """A Dense layer's entry as tritonnn wrote it before configs followed Keras' layout."""
    return {
        "class_name": "Dense",
        "config": {
            "name": name,
            "trainable": True,
            "dtype": "float32",
            "units": units,
            "activation": activation,
            "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None,
            "bias_regularizer": None,
            "activity_regularizer": None,
            "kernel_constraint": None,
            "bias_constraint": None,
        },
    }


def old_input(name, shape):
    return {
        "class_name": "InputLayer",
        "config": {"shape": shape, "batch_size": None, "dtype": "float32", "name": name},
    }


OLD_SEQUENTIAL = {
    "class_name": "Sequential",
    "config": {
        "name": "seq",
        "trainable": True,
        "layers": [old_dense("a", 3, "relu"), old_dense("b", 2)],
        "input_shape": [4],
        "input_dtype": "float32",
    },
}

OLD_FUNCTIONAL = {
    "class_name": "Functional",
    "config": {
        "name": "fun",
        "trainable": True,
        "layers": [
            old_input("x1", [4]),
            old_dense("shared", 3),
            old_input("x2", [4]),
            {"class_name": "Concatenate", "config": {"name": "cat", "trainable": True, "dtype": "float32", "axis": -1}},
            old_dense("o1", 1),
            {
                "class_name": "Dropout",
                "config": {
                    "name": "dr",
                    "trainable": True,
                    "dtype": "float32",
                    "rate": 0.5,
                    "noise_shape": None,
                    "seed": None,
                },
            },
        ],
        "nodes": [
            {"layer": "x1", "inputs": None, "kwargs": {}},
            {"layer": "shared", "inputs": {"__tensor__": [0, 0]}, "kwargs": {}},
            {"layer": "x2", "inputs": None, "kwargs": {}},
            {"layer": "shared", "inputs": {"__tensor__": [2, 0]}, "kwargs": {}},
            {"layer": "cat", "inputs": [{"__tensor__": [1, 0]}, {"__tensor__": [3, 0]}], "kwargs": {}},
            {"layer": "o1", "inputs": {"__tensor__": [4, 0]}, "kwargs": {}},
            {"layer": "dr", "inputs": {"__tensor__": [4, 0]}, "kwargs": {}},
        ],
        "inputs": {"x1": {"__tensor__": [0, 0]}, "x2": {"__tensor__": [2, 0]}},
        "outputs": [{"__tensor__": [5, 0]}, {"__tensor__": [6, 0]}],
    },
}


def same_architecture_now(kind):
    keras.utils.set_random_seed(5)
    if kind == "sequential":
        return keras.Sequential([keras.Input((4,)), L.Dense(3, "relu", name="a"), L.Dense(2, name="b")], name="seq")
    x1, x2 = keras.Input((4,), name="x1"), keras.Input((4,), name="x2")
    shared = L.Dense(3, name="shared")
    cat = L.Concatenate(name="cat")([shared(x1), shared(x2)])
    return keras.Model({"x1": x1, "x2": x2}, [L.Dense(1, name="o1")(cat), L.Dropout(0.5, name="dr")(cat)], name="fun")


def write_old_layout(path, model_config):
    """Put ``model_config`` in the header of the file at ``path`` (format_version 1), the tensors unchanged."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"]["format_version"] == "1"
    header["__metadata__"]["model_config"] = json.dumps(model_config)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])


@pytest.mark.parametrize(("kind", "old"), [("sequential", OLD_SEQUENTIAL), ("functional", OLD_FUNCTIONAL)])
def test_a_file_in_the_earlier_config_layout_still_loads(tmp_path, kind, old):
    model = same_architecture_now(kind)
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path / "old.keras"
    model.save(path)
    write_old_layout(path, old)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.name == model.name

    def unnamed_inputs(cfg):  # the earlier Sequential layout did not record the input layer's name
        for entry in cfg["layers"]:
            if entry["class_name"] == "InputLayer" and kind == "sequential":
                entry["config"]["name"] = None
        return cfg

    # read in the earlier layout, written in Keras'
    assert unnamed_inputs(loaded.get_config()) == unnamed_inputs(model.get_config())
    same_weights(loaded, model)
    x = XA if kind == "sequential" else {"x1": XA, "x2": XA[::-1].copy()}
    out_loaded, out_model = loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_allclose(np.asarray(out_loaded[0]), np.asarray(out_model[0]), rtol=1e-6)
    assert loaded.compiled
    # the old Functional layout's references are checked too
    if kind == "functional":
        broken = json.loads(json.dumps(old))
        broken["config"]["nodes"][4]["inputs"][0] = {"__tensor__": [9, 0]}
        write_old_layout(path, broken)
        with pytest.raises(ValueError, match="refers to node 9 before it is made"):
            keras.models.load_model(path)


def test_saving_round_trips_in_keras_layout(tmp_path):
    model = shared_two_io("dict")
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_config() == model.get_config()
    same_weights(loaded, model)
    assert_same_outputs(model, loaded, {"a": XA, "b": XB})
    assert torch.equal(
        torch.as_tensor(loaded.get_layer("shared").get_weights()[0]),
        torch.as_tensor(model.get_layer("shared").get_weights()[0]),
    )
