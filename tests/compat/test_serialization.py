"""``keras.saving``'s object API against real Keras: ``serialize_keras_object`` writes Keras' dict layout (module,
class_name, config, registered_name) for losses, metrics, optimizers, schedules, initializers, regularizers,
constraints, functions, arrays and layers; ``deserialize_keras_object`` reads what either library wrote;
``custom_object_scope`` / ``CustomObjectScope`` / ``get_registered_object`` resolve names with Keras' precedence; and
``save_model`` / ``load_model`` / ``save_weights`` / ``load_weights`` take Keras' arguments."""

from __future__ import annotations

import inspect
import json
import warnings

import numpy as np
import pytest
import torch

import tritonnn as tk

from .compare import Raised, assert_same, observe, to_numpy
from .differences import deliberate

# (what, make(K)) for objects whose serialization must be Keras' exactly, config included.
OBJECTS = [
    ("MeanSquaredError loss", lambda K: K.losses.MeanSquaredError()),
    ("CategoricalCrossentropy", lambda K: K.losses.CategoricalCrossentropy(label_smoothing=0.2)),
    ("BinaryCrossentropy", lambda K: K.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1)),
    ("SparseCategoricalCrossentropy", lambda K: K.losses.SparseCategoricalCrossentropy(from_logits=True)),
    ("Accuracy metric", lambda K: K.metrics.Accuracy()),
    ("MeanSquaredError metric", lambda K: K.metrics.MeanSquaredError()),
    ("AUC", lambda K: K.metrics.AUC(num_thresholds=50)),
    ("RandomNormal", lambda K: K.initializers.RandomNormal(stddev=0.1, seed=3)),
    ("Constant", lambda K: K.initializers.Constant(0.5)),
    ("L2", lambda K: K.regularizers.L2(0.1)),
    ("L1L2", lambda K: K.regularizers.L1L2(l1=0.01, l2=0.02)),
    ("MaxNorm", lambda K: K.constraints.MaxNorm(1.5)),
    ("NonNeg", lambda K: K.constraints.NonNeg()),
    ("ExponentialDecay", lambda K: K.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)),
    ("mse function", lambda K: K.losses.mean_squared_error),
    ("relu function", lambda K: K.activations.relu),
    ("plain values", lambda K: {"a": [1, 2.5, "x", None, True], "b": (3, 4)}),
    ("numpy array", lambda K: np.arange(6, dtype="float32").reshape(2, 3)),
    ("numpy scalar", lambda K: np.float32(2.5)),
    ("bytes and slices", lambda K: [b"abc", slice(1, 5, 2), Ellipsis]),
]


def _json(x):
    return json.loads(json.dumps(x))


def _same_config(got, ref):
    """Equal keys, equal values (floats to fp32 precision: Keras stores learning rates as float32)."""
    assert sorted(got) == sorted(ref)
    for key, value in ref.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-6), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("what, make", OBJECTS, ids=[w for w, _ in OBJECTS])
def test_serialize_keras_object_writes_keras_layout(keras_ref, what, make):
    ref = keras_ref.saving.serialize_keras_object(make(keras_ref))
    got = tk.saving.serialize_keras_object(make(tk))
    assert _json(got) == _json(ref)
    assert tk.utils.serialize_keras_object is tk.saving.serialize_keras_object


@pytest.mark.parametrize("what, make", OBJECTS, ids=[w for w, _ in OBJECTS])
def test_deserialize_keras_object_reads_what_keras_wrote(keras_ref, what, make):
    ref_config = _json(keras_ref.saving.serialize_keras_object(make(keras_ref)))
    got = tk.saving.deserialize_keras_object(ref_config)
    again = keras_ref.saving.deserialize_keras_object(ref_config)
    if hasattr(again, "get_config"):
        assert type(got).__name__ == type(again).__name__
        assert _json(got.get_config()) == _json(again.get_config())
    elif callable(again):
        assert callable(got) and got.__name__ == again.__name__
    elif isinstance(again, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == again.dtype
        np.testing.assert_array_equal(got, again)
    else:
        assert got == again


def test_a_deserialized_function_is_tritonnns_own(keras_ref):
    pairs = [
        (keras_ref.losses.mean_squared_error, tk.losses.mean_squared_error),
        (keras_ref.activations.relu, tk.activations.relu),
    ]
    for keras_fn, ours in pairs:
        assert tk.saving.deserialize_keras_object(_json(keras_ref.saving.serialize_keras_object(keras_fn))) is ours


@pytest.mark.parametrize(
    "make",
    [
        lambda K: K.optimizers.Adam(learning_rate=0.01, name="opt"),
        lambda K: K.optimizers.Adam(beta_1=0.8, amsgrad=True, name="opt"),
    ],
)
def test_optimizers_serialize_under_the_public_module(keras_ref, make):
    ref, got = keras_ref.saving.serialize_keras_object(make(keras_ref)), tk.saving.serialize_keras_object(make(tk))
    deliberate("saving.optimizer-module")
    assert (
        ref["module"].startswith("keras.src.backend.torch.optimizers") and ref["registered_name"] == ref["class_name"]
    )
    assert (got["module"], got["registered_name"]) == ("keras.optimizers", None)
    assert got["class_name"] == ref["class_name"]
    _same_config(_json(got["config"]), _json(ref["config"]))
    # each reads the other's
    _same_config(_json(tk.saving.deserialize_keras_object(_json(ref)).get_config()), _json(ref["config"]))
    back = keras_ref.saving.deserialize_keras_object(_json(got))
    _same_config(_json(back.get_config()), _json(got["config"]))


def _layout(config):
    return {k: v for k, v in config.items() if k != "config"}


def test_layers_and_models_serialize_under_keras_modules(keras_ref):
    for make in (lambda K: K.layers.Dense(3), lambda K: K.layers.Dropout(0.5), lambda K: K.layers.LayerNormalization()):
        ref, got = keras_ref.saving.serialize_keras_object(make(keras_ref)), tk.saving.serialize_keras_object(make(tk))
        assert _layout(got) == _layout(ref)
    for make in (lambda K: K.Sequential([K.Input((3,)), K.layers.Dense(2)]),):
        ref, got = keras_ref.saving.serialize_keras_object(make(keras_ref)), tk.saving.serialize_keras_object(make(tk))
        assert (got["module"], got["class_name"], got["registered_name"]) == (
            ref["module"],
            ref["class_name"],
            ref["registered_name"],
        )
    inputs = {K: K.Input((3,)) for K in (keras_ref, tk)}
    ref = keras_ref.saving.serialize_keras_object(
        keras_ref.Model(inputs[keras_ref], keras_ref.layers.Dense(2)(inputs[keras_ref]))
    )
    got = tk.saving.serialize_keras_object(tk.Model(inputs[tk], tk.layers.Dense(2)(inputs[tk])))
    deliberate("saving.functional-module")
    assert (ref["module"], got["module"]) == ("keras.src.models.functional", "tritonnn.models.functional")
    assert (got["class_name"], got["registered_name"]) == (ref["class_name"], ref["registered_name"])


def test_a_built_layer_has_no_build_config(keras_ref):
    deliberate("saving.layer-build-config")
    ref_layer, got_layer = keras_ref.layers.Dense(2), tk.layers.Dense(2)
    ref_layer.build((None, 3))
    got_layer(torch.zeros(1, 3))
    assert keras_ref.saving.serialize_keras_object(ref_layer)["build_config"] == {"input_shape": (None, 3)}
    assert "build_config" not in tk.saving.serialize_keras_object(got_layer)
    again = tk.saving.deserialize_keras_object(tk.saving.serialize_keras_object(got_layer))
    assert not again.built and again(torch.zeros(2, 3)).shape == (2, 2)


class _Scale:
    """A custom serializable object of neither library's kinds (a class with get_config)."""

    def __init__(self, factor=2.0):
        self.factor = factor

    def get_config(self):
        return {"factor": self.factor}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _double(x):
    return x * 2


def test_custom_classes_and_functions_serialize_and_resolve_as_in_keras(keras_ref):
    for K in (keras_ref, tk):
        cfg = K.saving.serialize_keras_object(_Scale(3.0))
        assert (cfg["module"], cfg["class_name"], cfg["registered_name"]) == (__name__, "_Scale", "_Scale")
        fn_cfg = K.saving.serialize_keras_object(_double)
        assert fn_cfg == {
            "module": "builtins",
            "class_name": "function",
            "config": "_double",
            "registered_name": "function",
        }
    ref_cfg = _json(keras_ref.saving.serialize_keras_object(_Scale(3.0)))
    for K in (keras_ref, tk):
        assert isinstance(observe(lambda K=K: K.saving.deserialize_keras_object(ref_cfg)), Raised)
        obj = K.saving.deserialize_keras_object(ref_cfg, custom_objects={"_Scale": _Scale})
        assert isinstance(obj, _Scale) and obj.factor == 3.0
        with K.saving.custom_object_scope({"_Scale": _Scale, "_double": _double}):
            assert K.saving.deserialize_keras_object(ref_cfg).factor == 3.0
            assert K.saving.deserialize_keras_object(K.saving.serialize_keras_object(_double)) is _double
    # the same exception class for what cannot be found
    ref = observe(lambda: keras_ref.saving.deserialize_keras_object(ref_cfg))
    got = observe(lambda: tk.saving.deserialize_keras_object(ref_cfg))
    assert ref == got and ref.type == "TypeError"
    fn_cfg = _json(keras_ref.saving.serialize_keras_object(_double))
    assert observe(lambda: keras_ref.saving.deserialize_keras_object(fn_cfg)) == observe(
        lambda: tk.saving.deserialize_keras_object(fn_cfg)
    )


def test_registered_objects_and_get_registered_object_as_in_keras(keras_ref):
    def triple(x):
        return x * 3

    for K in (keras_ref, tk):
        registered = K.saving.register_keras_serializable(package="compat_ser")(triple)
        assert registered is triple
        assert K.saving.get_registered_object("compat_ser>triple") is triple
        assert K.saving.get_registered_name(triple) == "compat_ser>triple"
        assert K.saving.get_registered_object("nothing") is None
        assert K.saving.get_registered_object("x", custom_objects={"x": _double}) is _double
        assert K.saving.get_registered_object("y", module_objects={"y": _double}) is _double
        cfg = K.saving.serialize_keras_object(triple)
        assert cfg["config"] == "compat_ser>triple" and cfg["registered_name"] == "function"
        assert K.saving.deserialize_keras_object(cfg) is triple
        K.saving.get_custom_objects().pop("compat_ser>triple")
    assert tk.utils.get_registered_object is tk.saving.get_registered_object


def test_custom_object_scopes_replace_each_other_and_are_not_global_as_in_keras(keras_ref):
    def f(x):
        return x

    def g(x):
        return x

    for K in (keras_ref, tk):
        assert K.saving.CustomObjectScope is K.saving.custom_object_scope is K.utils.custom_object_scope
        assert K.utils.CustomObjectScope is K.saving.CustomObjectScope
        with K.saving.custom_object_scope({"f": f}) as scope:
            assert isinstance(scope, K.saving.CustomObjectScope)
            assert K.saving.get_registered_object("f") is f
            with K.utils.CustomObjectScope({"g": g}):
                assert K.saving.get_registered_object("g") is g
                assert K.saving.get_registered_object("f") is None  # the inner scope replaces the outer one
            assert K.saving.get_registered_object("f") is f
            assert "f" not in K.saving.get_custom_objects()
        assert K.saving.get_registered_object("f") is None


def test_a_lambda_serializes_with_a_warning_and_is_refused_on_reading(keras_ref):
    for K in (keras_ref, tk):
        with pytest.warns(UserWarning, match="lambda"):
            cfg = K.saving.serialize_keras_object(lambda x: x + 1)
        assert cfg["class_name"] == "__lambda__" and list(cfg["config"]) == ["value"]
        with pytest.raises(ValueError, match="lambda"):
            K.saving.deserialize_keras_object(_json(cfg))


def test_tensors_serialize_as_keras_tensors(keras_ref):
    ref = keras_ref.saving.serialize_keras_object(keras_ref.ops.convert_to_tensor(np.array([1.5, 2.0], "float32")))
    got = tk.saving.serialize_keras_object(torch.tensor([1.5, 2.0]))
    assert got == ref
    back = tk.saving.deserialize_keras_object(ref)
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32 and back.tolist() == [1.5, 2.0]


def test_objects_that_cannot_be_serialized_raise_type_error_as_in_keras(keras_ref):
    class Opaque:
        pass

    for K in (keras_ref, tk):
        with pytest.raises(TypeError):
            K.saving.serialize_keras_object(Opaque())


# ---- files: Keras' argument names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["saving.save_model", "saving.load_model", "saving.save_weights", "saving.load_weights", "models.save_model"],
)
def test_saving_functions_take_keras_arguments(keras_ref, path):
    module, name = path.split(".")
    ref = inspect.signature(getattr(getattr(keras_ref, module), name))
    got = inspect.signature(getattr(getattr(tk, module), name))
    assert [(p.name, p.default, p.kind) for p in got.parameters.values()] == [
        (p.name, p.default, p.kind) for p in ref.parameters.values()
    ]
    assert tk.models.save_model is tk.saving.save_model


def _models(K):
    K.utils.set_random_seed(0)
    model = K.Sequential([K.Input((4,)), K.layers.Dense(3, activation="relu"), K.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"), epochs=1, verbose=0)
    return model


def test_save_model_keyword_checks_match_keras(keras_ref, tmp_path):
    for K in (keras_ref, tk):
        model = _models(K)
        path = str(tmp_path / f"{K.__name__}.keras")
        with pytest.raises(ValueError, match="not supported"):
            K.saving.save_model(model, path, no_such_argument=1)
        with pytest.raises(ValueError, match="save_format"):
            K.saving.save_model(model, str(tmp_path / f"{K.__name__}.other"), save_format="tf")
        K.saving.save_model(model, path, zipped=None)
        assert K.saving.load_model(path).count_params() == model.count_params()
    deliberate("saving.unsupported-layouts")
    with pytest.raises(ValueError, match="zipped=False"):
        tk.saving.save_model(_models(tk), str(tmp_path / "dir.keras"), zipped=False)
    with pytest.raises(ValueError, match="max_shard_size"):
        tk.saving.save_weights(_models(tk), str(tmp_path / "w.weights.h5"), max_shard_size=1)


def test_include_optimizer_false_leaves_the_optimizer_state_out(keras_ref, tmp_path):
    deliberate("saving.include-optimizer")
    ref_model = _models(keras_ref)
    keras_ref.saving.save_model(ref_model, str(tmp_path / "k.keras"), include_optimizer=False)
    ref_loaded = keras_ref.saving.load_model(str(tmp_path / "k.keras"))
    assert int(to_numpy(keras_ref, ref_loaded.optimizer.iterations)) == 1  # Keras ignores the argument
    model = _models(tk)
    tk.saving.save_model(model, str(tmp_path / "t.keras"), include_optimizer=False)
    loaded = tk.saving.load_model(str(tmp_path / "t.keras"))
    assert loaded.compiled and int(loaded.optimizer.iterations) == 0  # compiled anew, its state not restored
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_load_weights_skip_mismatch_skips_mismatched_layers_as_keras(keras_ref, tmp_path):
    results = {}
    for K in (keras_ref, tk):
        K.utils.set_random_seed(1)
        source = K.Sequential([K.Input((4,)), K.layers.Dense(3), K.layers.Dense(2)])
        path = str(tmp_path / f"{K.__name__}.weights.h5")
        source.save_weights(path)
        target = K.Sequential([K.Input((4,)), K.layers.Dense(3), K.layers.Dense(5)])
        before = target.get_weights()
        with pytest.raises(ValueError):
            K.saving.load_weights(target, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            K.saving.load_weights(target, path, skip_mismatch=True)
        after = target.get_weights()
        results[K] = (
            [np.array_equal(a, b) for a, b in zip(after[:2], source.get_weights()[:2], strict=True)],
            [np.array_equal(a, b) for a, b in zip(after[2:], before[2:], strict=True)],
        )
        with pytest.raises(ValueError):
            K.saving.load_weights(target, path, by_name=True)
    assert results[tk] == results[keras_ref] == ([True, True], [True, True])


def test_the_compile_config_is_serialized_when_saved_as_in_keras(keras_ref, tmp_path):
    # A schedule without get_config trains; only get_compile_config() / save fail, with Keras' error type. And the
    # compile config is the optimizer's as it is at save time (a learning rate a callback or the user changed).
    x, y = np.ones((4, 3), "float32"), np.ones((4, 2), "float32")
    for K in (keras_ref, tk):

        class Constant(K.optimizers.schedules.LearningRateSchedule):
            def __call__(self, step):
                return 0.01

        model = K.Sequential([K.Input((3,)), K.layers.Dense(2)])
        model.compile(optimizer=K.optimizers.SGD(Constant()), loss="mse")
        model.fit(x, y, verbose=0)
        with pytest.raises(NotImplementedError, match="must override `get_config\\(\\)`"):
            model.get_compile_config()
        with pytest.raises(NotImplementedError, match="must override `get_config\\(\\)`"):
            model.save(str(tmp_path / f"{K.__name__}.keras"))
        model = K.Sequential([K.Input((3,)), K.layers.Dense(2)])
        model.compile(optimizer=K.optimizers.SGD(0.5), loss="mse")
        model.optimizer.learning_rate = 0.25
        lr = model.get_compile_config()["optimizer"]["config"]["learning_rate"]
        assert float(lr) == 0.25, K.__name__


NEW_OPTIMIZERS = [
    lambda K: K.optimizers.Adagrad(learning_rate=0.02, initial_accumulator_value=0.3, epsilon=1e-6),
    lambda K: K.optimizers.Adamax(beta_1=0.8, beta_2=0.99, clipnorm=1.0),
    lambda K: K.optimizers.Nadam(learning_rate=0.01, weight_decay=0.1),
    lambda K: K.optimizers.Lion(beta_1=0.8, beta_2=0.95, global_clipnorm=2.0),
    lambda K: K.optimizers.Adadelta(learning_rate=1.0, rho=0.9, clipvalue=0.5),
    lambda K: K.optimizers.Ftrl(learning_rate_power=-0.3, l1_regularization_strength=0.1, beta=0.5),
]


@pytest.mark.parametrize("make", NEW_OPTIMIZERS, ids=["adagrad", "adamax", "nadam", "lion", "adadelta", "ftrl"])
def test_new_optimizers_configs_are_keras(keras_ref, make):
    """Adagrad, Adamax, Nadam, Lion, Adadelta, Ftrl: Keras' class name, default name and config, read both ways
    (Keras on torch names its backend's private module for those it has a torch class for: saving.optimizer-module;
    for Ftrl it writes the public module too)."""
    ref, got = keras_ref.saving.serialize_keras_object(make(keras_ref)), tk.saving.serialize_keras_object(make(tk))
    if ref["module"].startswith("keras.src.backend.torch.optimizers"):
        deliberate("saving.optimizer-module")
    else:
        assert (ref["module"], ref["registered_name"]) == ("keras.optimizers", None)
    assert (got["module"], got["registered_name"], got["class_name"]) == ("keras.optimizers", None, ref["class_name"])
    _same_config(_json(got["config"]), _json(ref["config"]))
    _same_config(_json(tk.saving.deserialize_keras_object(_json(ref)).get_config()), _json(ref["config"]))
    back = keras_ref.saving.deserialize_keras_object(_json(got))
    _same_config(_json(back.get_config()), _json(got["config"]))


@pytest.mark.parametrize(
    "make",
    [
        lambda K: K.layers.Dense(3, activation="relu", kernel_regularizer="l2", kernel_initializer="he_normal"),
        lambda K: K.layers.Dense(2, dtype="mixed_float16", use_bias=False),
        lambda K: K.layers.Embedding(7, 3, mask_zero=True),
        lambda K: K.layers.Dropout(0.25, seed=3),
        lambda K: K.layers.LayerNormalization(epsilon=1e-5),
        lambda K: K.layers.BatchNormalization(momentum=0.9),
        lambda K: K.layers.RMSNormalization(epsilon=1e-5),
    ],
    ids=["dense", "dense-mixed", "embedding", "dropout", "layer-norm", "batch-norm", "rms-norm"],
)
def test_layer_configs_written_by_keras_load(keras_ref, make):
    # Keras 3.15 writes a DTypePolicy dict as "dtype", "quantization_config": null for Dense and Embedding, and
    # input_axes/output_axes in the variance-scaling initializers: all read as Keras reads them.
    written = json.loads(json.dumps(keras_ref.layers.serialize(make(keras_ref))))
    got = tk.layers.deserialize(written)
    ref = make(tk)
    assert type(got) is type(ref)
    assert got.get_config() == {**ref.get_config(), "name": got.name}


def test_model_json_written_by_keras_loads_and_predicts_alike(keras_ref):
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    inp = keras_ref.Input((4,))
    h = keras_ref.layers.Dense(8, activation="relu")(inp)
    outs = [keras_ref.layers.Dense(3, activation="softmax")(h), keras_ref.layers.Dense(1)(h)]
    models = [
        keras_ref.Sequential([keras_ref.Input((4,)), keras_ref.layers.Dense(6, activation="tanh"),
                              keras_ref.layers.Dropout(0.1), keras_ref.layers.Dense(2)]),
        keras_ref.Model(inp, outs),
    ]  # fmt: skip
    for ref in models:
        got = tk.models.model_from_json(ref.to_json())
        assert got.count_params() == ref.count_params()
        got.set_weights([to_numpy(keras_ref, w) for w in ref.weights])
        want, have = ref.predict(x, verbose=0), got.predict(x, verbose=0)
        want, have = (want, have) if isinstance(want, list) else ([want], [have])
        assert_same([to_numpy(keras_ref, y) for y in want], [np.asarray(y) for y in have])


def test_lora_and_quantization_are_refused_not_ignored(keras_ref):
    for layer, args in (("Dense", (3,)), ("Embedding", (5, 2))):
        assert getattr(keras_ref.layers, layer)(*args, lora_rank=2) is not None  # Keras makes LoRA adapters
        with pytest.raises(ValueError, match="LoRA"):
            getattr(tk.layers, layer)(*args, lora_rank=2)
        with pytest.raises(ValueError, match="quantized weights"):
            getattr(tk.layers, layer)(*args, quantization_config={"mode": "int8"})
    deliberate("layers.no-lora-no-quantization")


def test_variance_scaling_axes_as_keras(keras_ref):
    # input_axes / output_axes: the fans of an einsum-style kernel, the products of the sizes of those axes
    kwargs = {"scale": 3.0, "mode": "fan_in", "distribution": "uniform", "input_axes": [0, 1], "output_axes": [2]}
    ref, got = keras_ref.initializers.VarianceScaling(**kwargs), tk.initializers.VarianceScaling(**kwargs)
    assert got.get_config() == ref.get_config()
    assert (
        tk.initializers.GlorotUniform(seed=1).get_config() == keras_ref.initializers.GlorotUniform(seed=1).get_config()
    )
    w = got((4, 5, 6)).numpy()
    limit = (3.0 * 3.0 / 20) ** 0.5  # variance scale / fan_in, fan_in = 4 * 5
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit
    assert np.abs(to_numpy(keras_ref, ref((4, 5, 6)))).max() <= limit
