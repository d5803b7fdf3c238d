"""``tritonnn.saving``'s object API on its own: custom objects reach nested configs (a Dense's custom activation
through ``custom_objects`` or a ``custom_object_scope``), a config never imports the module it names nor runs code,
bad arguments are clear errors, and ``load_weights(skip_mismatch=True)`` / ``save_model(include_optimizer=False)``.
The comparisons with real Keras are in tests/compat/test_serialization.py."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open

import tritonnn as keras
from tritonnn import saving


def doubled(x):
    return x * 2


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation=doubled), keras.layers.Dense(2)])


def test_a_custom_activation_loads_through_custom_objects_or_a_scope(tmp_path):
    model = _model()
    path = tmp_path / "m.keras"
    model.save(path)
    x = np.ones((2, 3), "float32")
    with pytest.raises(ValueError, match="doubled"):
        saving.load_model(path)
    loaded = saving.load_model(path, custom_objects={"doubled": doubled})
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with saving.custom_object_scope({"doubled": doubled}):
        again = saving.load_model(path)
    assert again.layers[0].activation is doubled
    config = saving.serialize_keras_object(model)
    with keras.utils.custom_object_scope({"doubled": doubled}):
        rebuilt = saving.deserialize_keras_object(config)
    assert rebuilt.layers[0].activation is doubled


def test_a_registered_activation_is_saved_under_its_registered_name(tmp_path):
    @saving.register_keras_serializable(package="test_serialization")
    def tripled(x):
        return x * 3

    try:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation=tripled)])
        assert model.layers[0].get_config()["activation"]["registered_name"] == "test_serialization>tripled"
        model.save(tmp_path / "m.keras")
        assert saving.load_model(tmp_path / "m.keras").layers[0].activation is tripled
    finally:
        saving.get_custom_objects().pop("test_serialization>tripled")


def test_a_config_never_imports_the_module_it_names():
    name = "tritonnn_test_module_that_must_not_be_imported"
    config = {"module": name, "class_name": "Anything", "config": {}, "registered_name": None}
    with pytest.raises(TypeError, match="never imported"):
        saving.deserialize_keras_object(config)
    assert name not in sys.modules
    # a Keras module path resolves only to tritonnn's own serializable classes, never to another attribute
    for module, class_name in (("keras.saving", "load_model"), ("keras.layers", "Layer_does_not_exist")):
        with pytest.raises(TypeError, match="Could not locate"):
            saving.deserialize_keras_object({"module": module, "class_name": class_name, "config": {}})
    with pytest.raises(TypeError, match="Could not locate"):
        saving.deserialize_keras_object({"module": "os", "class_name": "function", "config": "system"})


def test_deserialize_keras_object_rebuilds_models_with_their_build_and_compile_configs():
    model = _model()
    model.compile(optimizer="adam", loss="mse")
    config = saving.serialize_keras_object(model)
    assert config["compile_config"]["loss"] == "mse"
    rebuilt = saving.deserialize_keras_object(config, custom_objects={"doubled": doubled})
    assert rebuilt.built and rebuilt.compiled and rebuilt.count_params() == model.count_params()


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="custom_objects"):
        saving.deserialize_keras_object({"a": 1}, custom_objects=[doubled])
    with pytest.raises(ValueError, match="safe_mode"):
        saving.deserialize_keras_object({"a": 1}, safe_mode="no")
    with pytest.raises(TypeError, match="unexpected keyword"):
        saving.deserialize_keras_object({"a": 1}, whatever=1)
    with pytest.raises(ValueError, match="custom_objects"):
        saving.custom_object_scope(["doubled"])
    with pytest.raises(TypeError, match="Could not parse"):
        saving.deserialize_keras_object(object())
    model = _model()
    with pytest.raises(ValueError, match="include_optimizer"):
        saving.save_model(model, tmp_path / "m.keras", include_optimizer="yes")
    with pytest.raises(ValueError, match="zipped"):
        saving.save_model(model, tmp_path / "m.keras", zipped="no")
    model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="objects_to_skip"):
        saving.load_weights(model, tmp_path / "w.weights.h5", objects_to_skip=["x"])
    with pytest.raises(ValueError, match="Invalid keyword"):
        saving.load_weights(model, tmp_path / "w.weights.h5", strict=True)
    with pytest.raises(ValueError, match="skip_mismatch"):
        saving.load_weights(model, tmp_path / "w.weights.h5", skip_mismatch="yes")


def test_skip_mismatch_skips_whole_layers_with_a_warning_and_not_the_optimizer(tmp_path):
    keras.utils.set_random_seed(0)
    source = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    source.compile(optimizer="adam", loss="mse")
    source.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), epochs=1, verbose=0)
    source.save_weights(tmp_path / "w.weights.h5")
    target = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(5)])
    target.compile(optimizer="adam", loss="mse")
    before = target.get_weights()
    with pytest.warns(UserWarning, match="skip_mismatch"):
        saving.load_weights(target, tmp_path / "w.weights.h5", skip_mismatch=True)
    after = target.get_weights()
    np.testing.assert_array_equal(after[0], source.get_weights()[0])
    np.testing.assert_array_equal(after[1], source.get_weights()[1])
    np.testing.assert_array_equal(after[2], before[2])  # the mismatched layer keeps its kernel and its bias
    np.testing.assert_array_equal(after[3], before[3])
    assert int(target.optimizer.iterations) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        saving.load_weights(source, tmp_path / "w.weights.h5", skip_mismatch=True)  # nothing to skip: no warning


def test_include_optimizer_false_saves_no_optimizer_tensors(tmp_path):
    model = _model()
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), epochs=1, verbose=0)
    saving.save_model(model, tmp_path / "with.keras")
    saving.save_model(model, tmp_path / "without.keras", include_optimizer=False)
    with safe_open(tmp_path / "with.keras", "pt") as f:
        assert any(k.startswith("optimizer/") for k in f.keys())
    with safe_open(tmp_path / "without.keras", "pt") as f:
        assert not any(k.startswith("optimizer/") for k in f.keys())
    loaded = saving.load_model(tmp_path / "without.keras", custom_objects={"doubled": doubled})
    assert loaded.compiled and int(loaded.optimizer.iterations) == 0
    torch.testing.assert_close(loaded.layers[0].kernel, model.layers[0].kernel)
