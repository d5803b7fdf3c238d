"""tritonnn.saving: round trips, the registry, hostile and broken files, atomic writes."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

import tritonnn as keras
from tritonnn import saving


def mlp(seed: int = 0, units: int = 8, optimizer: object = "adam", compile: bool = True) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.layers.InputLayer(shape=(4,)),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    if compile:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(24, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 2] > 0).astype("int64")
    return x, y


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb, strict=True):
        np.testing.assert_array_equal(u, v)


def assert_same_optimizer_state(a, b):
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert torch.equal(sa[k].cpu(), sb[k].cpu()), k


@pytest.fixture
def trained(data):
    x, y = data
    model = mlp()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return model


# ---- round trips --------------------------------------------------------------------------------------------------


def test_model_round_trip_predicts_and_resumes_identically(tmp_path, data, trained):
    x, y = data
    path = tmp_path / "model.keras"
    saving.save_model(trained, path)
    loaded = saving.load_model(path)
    assert type(loaded) is keras.Sequential and loaded.name == trained.name
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in trained.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), trained.predict(x, verbose=0))
    assert loaded.compiled and type(loaded.optimizer) is type(trained.optimizer)
    assert_same_optimizer_state(loaded, trained)
    assert loaded.optimizer.iterations == 6
    # One more epoch on each: the same updates from the same moments.
    trained.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert_same_weights(loaded, trained)
    assert_same_optimizer_state(loaded, trained)


def test_file_layout(tmp_path, trained):
    path = tmp_path / "model.keras"
    saving.save_model(trained, path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["format"] == "tritonnn" and meta["format_version"] == "1" and meta["kind"] == "model"
    assert meta["tritonnn_version"] == keras.__version__
    assert json.loads(meta["model_config"]) == json.loads(json.dumps(saving.serialize_layer(trained)))
    assert json.loads(meta["build_config"]) == {"input_shape": [None, 4]}
    assert json.loads(meta["compile_config"])["loss"] == "sparse_categorical_crossentropy"
    opt_keys = {"optimizer/" + k for k in trained.optimizer.state_dict()}
    assert keys == set(trained.state_dict()) | opt_keys
    assert {"optimizer/iterations", "optimizer/learning_rate"} <= opt_keys


def test_load_without_compiling(tmp_path, data, trained):
    x, _ = data
    saving.save_model(trained, tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras", compile=False)
    assert not loaded.compiled
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), trained.predict(x, verbose=0))


def test_functional_round_trip(tmp_path, data):
    x, y = data
    keras.utils.set_random_seed(2)
    inputs = keras.Input(shape=(4,))
    h = keras.layers.Dense(6, activation="tanh")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    saving.save_model(model, tmp_path / "f.keras")
    loaded = saving.load_model(tmp_path / "f.keras")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert_same_optimizer_state(loaded, model)


@pytest.mark.parametrize("name", ["w.weights.h5", "w.weights.safetensors"])
def test_weights_round_trip_with_optimizer_state(tmp_path, data, trained, name):
    x, _ = data
    saving.save_weights(trained, tmp_path / name)
    with safe_open(str(tmp_path / name), "pt") as f:
        assert f.metadata()["kind"] == "weights" and "model_config" not in f.metadata()
    fresh = mlp(seed=9)
    saving.load_weights(fresh, tmp_path / name)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), trained.predict(x, verbose=0))
    assert_same_optimizer_state(fresh, trained)
    uncompiled = mlp(seed=9, compile=False)
    saving.load_weights(uncompiled, tmp_path / name)  # weights only; the optimizer state is not needed
    assert_same_weights(uncompiled, trained)


def test_unbuilt_model_saves_its_config_only(tmp_path):
    model = keras.Sequential([keras.layers.Dense(5), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    saving.save_model(model, tmp_path / "u.keras")
    with safe_open(str(tmp_path / "u.keras"), "pt") as f:
        assert list(f.keys()) == [] and json.loads(f.metadata()["build_config"]) is None
    loaded = saving.load_model(tmp_path / "u.keras")
    assert not loaded.built and [layer.units for layer in loaded.layers] == [5, 2]
    loaded.build((None, 3))
    assert loaded.layers[0].kernel.shape == (3, 5)
    with pytest.raises(ValueError, match="not been built"):
        saving.save_weights(model, tmp_path / "u.weights.h5")


def test_load_weights_builds_an_unbuilt_model_from_the_recorded_shape(tmp_path, data, trained):
    x, _ = data
    saving.save_weights(trained, tmp_path / "w.weights.h5")
    keras.utils.set_random_seed(4)
    fresh = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")])
    saving.load_weights(fresh, tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), trained.predict(x, verbose=0))


# ---- registry -----------------------------------------------------------------------------------------------------


@saving.register_keras_serializable(package="TestSaving")
class Scale(keras.layers.Layer):
    """A custom layer with a weight and a config argument."""

    def __init__(self, factor: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight((input_shape[-1],), "ones", name="w")

    def call(self, inputs):
        return inputs * self.w * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Unregistered(Scale):
    pass


def test_custom_registered_layer_round_trip(tmp_path, data):
    x, _ = data
    assert saving.get_custom_objects()["TestSaving>Scale"] is Scale
    assert saving.serialize_layer(Scale(2.0))["registered_name"] == "TestSaving>Scale"
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.InputLayer(shape=(4,)), Scale(0.5, name="scale"), keras.layers.Dense(2)])
    with torch.no_grad():
        model.layers[0].w.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    saving.save_model(model, tmp_path / "c.keras")
    loaded = saving.load_model(tmp_path / "c.keras")
    assert isinstance(loaded.layers[0], Scale) and loaded.layers[0].factor == 0.5
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_unknown_class_is_a_clear_error_and_custom_objects_resolve_it(tmp_path, data):
    x, _ = data
    model = keras.Sequential([keras.layers.InputLayer(shape=(4,)), Unregistered(3.0, name="u")])
    saving.save_model(model, tmp_path / "u.keras")
    with pytest.raises(ValueError, match=r"Could not locate class 'Unregistered'.*Known classes: \[.*'Dense'"):
        saving.load_model(tmp_path / "u.keras")
    loaded = saving.load_model(tmp_path / "u.keras", custom_objects={"Unregistered": Unregistered})
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def halved_mse(y_true, y_pred):
    return 0.5 * ((y_pred - y_true) ** 2).mean(-1)


def test_custom_loss_function_resolves_from_custom_objects(tmp_path, data):
    x, _ = data
    model = mlp(compile=False)
    model.compile(optimizer="sgd", loss=halved_mse)
    model.fit(x, np.zeros((len(x), 3), "float32"), epochs=1, batch_size=8, verbose=0)
    saving.save_model(model, tmp_path / "m.keras")
    with pytest.raises(ValueError, match="custom_objects.*compile=False"):
        saving.load_model(tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras", custom_objects={"halved_mse": halved_mse})
    y0 = np.zeros((len(x), 3), "float32")
    want = float(halved_mse(torch.from_numpy(y0), torch.from_numpy(model.predict(x, verbose=0))).mean())
    assert loaded.evaluate(x, y0, verbose=0) == pytest.approx(want, rel=1e-6)
    assert_same_optimizer_state(loaded, model)
    assert not saving.load_model(tmp_path / "m.keras", compile=False).compiled


def test_serialize_and_deserialize_layer():
    dense = keras.layers.Dense(7, activation="tanh", use_bias=False, name="d7")
    cfg = saving.serialize_layer(dense)
    assert cfg["class_name"] == "Dense" and "registered_name" not in cfg
    again = saving.deserialize_layer(json.loads(json.dumps(cfg)))
    assert type(again) is keras.layers.Dense and again.get_config() == dense.get_config()
    with pytest.raises(ValueError, match="class_name"):
        saving.deserialize_layer({"config": {}})
    with pytest.raises(ValueError, match="layer"):
        saving.serialize_layer("dense")
    with pytest.raises(ValueError, match="custom_objects"):
        saving.deserialize_layer(cfg, custom_objects=[Scale])
    with pytest.raises(ValueError, match="package"):
        saving.register_keras_serializable(package="a>b")


def forge(path, model_config: dict, **overrides) -> None:
    """Write a file in the format's layout with a hand-made header (a stranger's file)."""
    meta = {
        "format": "tritonnn",
        "format_version": "1",
        "tritonnn_version": "0.1.0",
        "kind": "model",
        "build_config": "null",
        "compile_config": "null",
        "extra": "{}",
        "model_config": json.dumps(model_config),
        **overrides,
    }
    with open(path, "wb") as f:
        f.write(st_save({}, metadata=meta))


@pytest.mark.parametrize(
    "model_config",
    [
        {"class_name": "os.system", "config": {"command": "touch {marker}"}},
        {
            "module": "os",
            "class_name": "system",
            "config": {"command": "touch {marker}"},
            "registered_name": "os>system",
        },
        {"class_name": "builtins.eval", "config": {"source": "open('{marker}', 'w')"}},
        {"module": "builtins", "class_name": "eval", "config": {}, "registered_name": "eval"},
        {
            "class_name": "Sequential",
            "config": {"name": "s", "layers": [{"module": "subprocess", "class_name": "Popen", "config": {}}]},
        },
    ],
)
def test_a_file_naming_dangerous_classes_is_rejected_and_runs_nothing(tmp_path, model_config):
    marker = tmp_path / "pwned"
    text = json.dumps(model_config).replace("{marker}", str(marker))
    forge(tmp_path / "evil.keras", json.loads(text))
    with pytest.raises(ValueError, match="Could not locate class"):
        saving.load_model(tmp_path / "evil.keras")
    assert not marker.exists()


def test_forged_nested_configs_are_clear_errors(tmp_path):
    dense = saving.serialize_layer(keras.layers.Dense(2, name="d"))
    evil_init = json.loads(json.dumps(dense))
    evil_init["config"]["kernel_initializer"] = {"module": "os", "class_name": "system", "config": {"command": "x"}}
    forge(tmp_path / "a.keras", evil_init)
    with pytest.raises(ValueError, match="system"):
        saving.load_model(tmp_path / "a.keras")
    extra_arg = json.loads(json.dumps(dense))
    extra_arg["config"]["__class__"] = "os.system"
    forge(tmp_path / "b.keras", extra_arg)
    with pytest.raises(ValueError, match="Could not rebuild a 'Dense'"):
        saving.load_model(tmp_path / "b.keras")
    forge(tmp_path / "c.keras", {"class_name": "Sequential", "config": {"name": "s", "layers": [dense]}})
    with safe_open(str(tmp_path / "c.keras"), "pt") as f:
        meta = dict(f.metadata())
    meta["build_config"] = json.dumps({"input_shape": "rm -rf"})
    with open(tmp_path / "c.keras", "wb") as f:
        f.write(st_save({"_layers.0.kernel": torch.zeros(4, 2), "_layers.0.bias": torch.zeros(2)}, metadata=meta))
    with pytest.raises(ValueError, match="build_config"):
        saving.load_model(tmp_path / "c.keras")


def test_a_registered_non_layer_is_not_built(tmp_path):
    forge(tmp_path / "odd.keras", {"class_name": "x", "config": {}, "registered_name": "Odd>thing"})
    saving.register_keras_serializable(package="Odd", name="thing")(print)
    try:
        with pytest.raises(ValueError, match="resolve to a Layer class"):
            saving.load_model(tmp_path / "odd.keras")
    finally:
        saving.get_custom_objects().pop("Odd>thing")


# ---- broken files -------------------------------------------------------------------------------------------------


def test_truncated_files_are_clear_errors(tmp_path, trained):
    path = tmp_path / "m.keras"
    saving.save_model(trained, path)
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    cases = {
        "a.keras": (raw[:5], "too short"),
        "b.keras": (raw[: 8 + header_len // 2], "truncated"),
        "c.keras": (raw[:-10], "truncated or corrupt"),
        "d.keras": (b"", "too short"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=message):
            saving.load_model(tmp_path / name)


def test_other_formats_are_clear_errors(tmp_path, trained):
    (tmp_path / "zip.keras").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(ValueError, match="zip archive"):
        saving.load_model(tmp_path / "zip.keras")
    (tmp_path / "h5.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ValueError, match="HDF5"):
        saving.load_weights(trained, tmp_path / "h5.weights.h5")
    (tmp_path / "plain.keras").write_bytes(st_save({"a": torch.zeros(2)}))
    with pytest.raises(ValueError, match="not a tritonnn file"):
        saving.load_model(tmp_path / "plain.keras")
    forge(tmp_path / "future.keras", {}, format_version="99")
    with pytest.raises(ValueError, match="format_version='99'"):
        saving.load_model(tmp_path / "future.keras")
    saving.save_weights(trained, tmp_path / "w.weights.h5")
    os.replace(tmp_path / "w.weights.h5", tmp_path / "w.keras")
    with pytest.raises(ValueError, match="load_weights"):
        saving.load_model(tmp_path / "w.keras")
    with pytest.raises(FileNotFoundError):
        saving.load_model(tmp_path / "missing.keras")


def test_mismatched_weights_are_clear_errors(tmp_path, trained):
    saving.save_weights(trained, tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match=r"'_layers.0.kernel'.*shape \(4, 8\).*expects \(4, 9\)"):
        saving.load_weights(mlp(units=9), tmp_path / "w.weights.h5")
    deeper = keras.Sequential([keras.layers.InputLayer(shape=(4,)), *[keras.layers.Dense(8) for _ in range(2)]])
    deeper.add(keras.layers.Dense(3))
    with pytest.raises(ValueError, match=r"missing from the file: \['_layers.2.bias', '_layers.2.kernel'\]"):
        saving.load_weights(deeper, tmp_path / "w.weights.h5")
    shallower = keras.Sequential([keras.layers.InputLayer(shape=(4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"in the file but not in the model: \['_layers.1.bias'"):
        saving.load_weights(shallower, tmp_path / "w.weights.h5")
    before = [w.copy() for w in shallower.get_weights()]
    for got, want in zip(shallower.get_weights(), before, strict=True):  # nothing was half-loaded
        np.testing.assert_array_equal(got, want)


def test_bad_arguments(tmp_path, trained):
    with pytest.raises(ValueError, match=r"must end in '\.keras'.*filepath=.*m\.h5"):
        saving.save_model(trained, tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        saving.save_weights(trained, tmp_path / "m.keras")
    with pytest.raises(ValueError, match="model"):
        saving.save_model(keras.layers.Dense(2), tmp_path / "m.keras")
    with pytest.raises(ValueError, match="filepath"):
        saving.save_model(trained, 3)
    with pytest.raises(ValueError, match="compile"):
        saving.load_model(tmp_path / "m.keras", compile="yes")


def test_sequential_without_input_trained_by_fit_round_trips(tmp_path, data):
    x, y = data
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    saving.save_model(model, tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert_same_optimizer_state(loaded, model)


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)


def test_subclassed_model_round_trips_with_its_recorded_input_shape(tmp_path, data):
    x, _ = data
    model = Subclassed()
    model.predict(x, verbose=0)
    assert saving._build_config(model) == {"input_shape": [None, x.shape[1]]}
    saving.save_weights(model, tmp_path / "m.weights.h5")
    other = Subclassed()
    other.build((None, x.shape[1]))
    assert other.count_params() == model.count_params()
    saving.load_weights(other, tmp_path / "m.weights.h5")
    assert_same_weights(other, model)


def test_a_built_model_without_a_build_config_is_refused_before_writing(tmp_path, data, monkeypatch):
    x, _ = data
    model = Subclassed()
    model.predict(x, verbose=0)
    monkeypatch.setattr(model, "_build_input_shape", None)
    with pytest.raises(ValueError, match="input shape it was built with"):
        saving.save_model(model, tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


# ---- atomic writes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, data, trained, failing):
    x, y = data
    path = tmp_path / "m.keras"
    saving.save_model(trained, path)
    before = path.read_bytes()
    trained.fit(x, y, epochs=1, batch_size=8, verbose=0)  # new weights that must not land

    def boom(*args, **kwargs):
        raise OSError("disk failed mid-save")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="disk failed"):
        saving.save_model(trained, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.keras"]  # no temporary file left behind
    saving.load_model(path)


def test_overwrite_false_refuses_to_replace(tmp_path, trained):
    path = tmp_path / "m.keras"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        saving.save_model(trained, path, overwrite=False)
    assert path.read_bytes() == b"keep me"
    saving.save_model(trained, path)
    assert path.read_bytes() != b"keep me"
