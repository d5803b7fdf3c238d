"""Config layouts against real Keras: ``metrics.serialize`` / ``losses.serialize`` and a compiled model's
``get_compile_config()`` in Keras 3's ``{"module", "class_name", "config", "registered_name"}`` layout (earlier
``{"class_name", "config"}`` configs still read); a Functional model's ``output_names`` for one output; the warning
for ``input_shape=`` / ``input_dim=`` given to a layer; functions given as a layer's constraint, regularizer or
initializer in ``get_config``; and the key order of every layer's ``get_config``."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import tritonnn as tk

from .differences import deliberate


def _json(x):
    return json.loads(json.dumps(x))


def _define(K, package):
    """The same custom objects, registered in ``K`` under ``package``: a metric, a loss and a function."""

    class LayoutMetric(K.metrics.MeanSquaredError):
        pass

    class LayoutLoss(K.losses.MeanSquaredError):
        pass

    def layout_fn(y_true, y_pred):
        return K.ops.mean(K.ops.abs(y_true - y_pred))

    def plain_fn(y_true, y_pred):
        return K.ops.mean(K.ops.square(y_true - y_pred))

    register = K.saving.register_keras_serializable(package=package)
    return register(LayoutMetric), register(LayoutLoss), register(layout_fn), plain_fn


def _strip_module(config):
    """``config`` with a custom class's ``module`` dropped (this file's module path differs between the two
    definitions only by where the class was defined: both are in this test module, under a function)."""
    if isinstance(config, dict):
        return {k: _strip_module(v) for k, v in config.items() if not (k == "module" and v not in (None, "builtins"))}
    if isinstance(config, list):
        return [_strip_module(v) for v in config]
    return config


SERIALIZED = [
    ("AUC metric", "metrics", lambda K, c: K.metrics.AUC(num_thresholds=20)),
    ("Mean metric", "metrics", lambda K, c: K.metrics.Mean(name="m")),
    ("metric name", "metrics", lambda K, c: "mse"),
    ("metric function", "metrics", lambda K, c: K.metrics.mean_squared_error),
    ("registered metric", "metrics", lambda K, c: c[0]()),
    ("registered function as metric", "metrics", lambda K, c: c[2]),
    ("plain function as metric", "metrics", lambda K, c: c[3]),
    ("MeanSquaredError loss", "losses", lambda K, c: K.losses.MeanSquaredError()),
    ("BinaryCrossentropy loss", "losses", lambda K, c: K.losses.BinaryCrossentropy(label_smoothing=0.1)),
    ("loss name", "losses", lambda K, c: "mse"),
    ("loss function", "losses", lambda K, c: K.losses.mean_squared_error),
    ("registered loss", "losses", lambda K, c: c[1]()),
    ("registered function as loss", "losses", lambda K, c: c[2]),
    ("plain function as loss", "losses", lambda K, c: c[3]),
]


@pytest.fixture(scope="module")
def customs(keras_ref):
    return _define(keras_ref, "compat_layouts"), _define(tk, "compat_layouts")


@pytest.mark.parametrize("what, module, make", SERIALIZED, ids=[s[0] for s in SERIALIZED])
def test_serialize_writes_keras_layout(keras_ref, customs, what, module, make):
    ref_customs, our_customs = customs
    ref = getattr(keras_ref, module).serialize(make(keras_ref, ref_customs))
    got = getattr(tk, module).serialize(make(tk, our_customs))
    assert _strip_module(_json(got)) == _strip_module(_json(ref))
    if isinstance(ref, dict) and ref.get("module") not in (None, "builtins") and ref["registered_name"] is not None:
        assert got["module"] is not None  # a registered class names its module, as in Keras
    # and it reads back, to an equal config (a function to itself)
    back = getattr(tk, module).deserialize(_json(got), custom_objects={"plain_fn": our_customs[3]})
    original = make(tk, our_customs)
    if hasattr(original, "get_config"):
        drop = {"name"}  # an automatic name (auc, auc_1) is drawn anew
        assert type(back) is type(original)
        assert {k: v for k, v in back.get_config().items() if k not in drop} == {
            k: v for k, v in original.get_config().items() if k not in drop
        }
    elif callable(original):
        assert back is original
    else:
        assert back is not None


@pytest.mark.parametrize("module", ["metrics", "losses"])
def test_deserialize_reads_the_earlier_layout(module):
    obj = tk.metrics.AUC(num_thresholds=7) if module == "metrics" else tk.losses.Huber(delta=0.25)
    old = {"class_name": type(obj).__name__, "config": obj.get_config()}
    back = getattr(tk, module).deserialize(old)
    assert type(back) is type(obj) and back.get_config() == obj.get_config()


def _compiles(K, customs):
    metric_cls, loss_cls, registered_fn, plain_fn = customs
    return [
        dict(
            optimizer="adam",
            loss="mse",
            loss_weights=[1.0],
            metrics=["mae", K.metrics.AUC(num_thresholds=10), registered_fn, plain_fn, metric_cls()],
            weighted_metrics=[K.metrics.mean_squared_error],
        ),
        dict(optimizer="sgd", loss=loss_cls(), metrics={"out": ["mae"]}),
        dict(optimizer="sgd", loss=plain_fn),
        dict(optimizer="sgd", loss=[K.losses.mean_squared_error]),
        dict(optimizer="sgd", loss={"out": registered_fn}),
    ]


COMPILE_KEYS = ("loss", "loss_weights", "metrics", "weighted_metrics")


@pytest.mark.parametrize("case", range(5))
def test_compile_config_writes_keras_layout_and_compiles_again(keras_ref, customs, case):
    def model(K):
        inputs = K.Input((3,))
        return K.Model(inputs, K.layers.Dense(1, name="out")(inputs))

    ref_model, our_model = model(keras_ref), model(tk)
    ref_model.compile(**_compiles(keras_ref, customs[0])[case])
    our_model.compile(**_compiles(tk, customs[1])[case])
    ref, got = _json(ref_model.get_compile_config()), _json(our_model.get_compile_config())
    assert {k: _strip_module(got[k]) for k in COMPILE_KEYS} == {k: _strip_module(ref[k]) for k in COMPILE_KEYS}
    # compile_from_config reads it back (names of the metrics included), and so does load_model
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
    history = our_model.fit(x, y, epochs=1, verbose=0).history
    again = model(tk)
    with tk.saving.custom_object_scope({"plain_fn": customs[1][3]}):
        again.compile_from_config(got)
    assert sorted(again.fit(x, y, epochs=1, verbose=0).history) == sorted(history)
    assert _json(again.get_compile_config())["metrics"] == got["metrics"] or case == 0  # AUC's name: auc_1 -> auc_2


def test_compile_from_config_reads_the_earlier_layout():
    model = tk.Sequential([tk.Input((3,)), tk.layers.Dense(1)])
    model.compile_from_config(
        {
            "optimizer": {"module": "keras.optimizers", "class_name": "SGD", "config": {"learning_rate": 0.1}},
            "loss": {"class_name": "Huber", "config": {"delta": 0.5}},
            "loss_weights": None,
            "metrics": [{"class_name": "MeanAbsoluteError", "config": {"name": "mae_old"}}, "mse"],
            "weighted_metrics": None,
        }
    )
    history = model.fit(np.ones((4, 3), "float32"), np.zeros((4, 1), "float32"), verbose=0).history
    assert sorted(history) == ["loss", "mae_old", "mse"]
    assert isinstance(model.loss, tk.losses.Huber) and model.loss.get_config()["delta"] == 0.5


def test_an_unregistered_function_loads_from_custom_objects(tmp_path):
    def halved(y_true, y_pred):
        return 0.5 * tk.ops.mean(tk.ops.square(y_true - y_pred))

    model = tk.Sequential([tk.Input((3,)), tk.layers.Dense(1)])
    model.compile("sgd", loss=halved, metrics=[halved])
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="custom_objects"):
        tk.saving.load_model(tmp_path / "m.keras")
    loaded = tk.saving.load_model(tmp_path / "m.keras", custom_objects={"halved": halved})
    assert loaded.get_compile_config()["loss"] == model.get_compile_config()["loss"]


# ---- output_names ------------------------------------------------------------------------------------------------

OUTPUTS = [
    ("one output", lambda K, i: K.layers.Dense(1)(i)),
    ("one named output", lambda K, i: K.layers.Dense(1, name="out")(i)),
    ("a list of one", lambda K, i: [K.layers.Dense(1, name="a")(i)]),
    ("two outputs", lambda K, i: [K.layers.Dense(1, name="a")(i), K.layers.Dense(2, name="b")(i)]),
    ("a dict of outputs", lambda K, i: {"y": K.layers.Dense(1, name="b")(i), "x": K.layers.Dense(2, name="a")(i)}),
]


@pytest.mark.parametrize("what, make", OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_functional_output_names(keras_ref, what, make):
    def names(K):
        K.utils.clear_session() if hasattr(K.utils, "clear_session") else K.backend.clear_session()
        inputs = K.Input((3,))
        return K.Model(inputs, make(K, inputs)).output_names

    assert names(tk) == names(keras_ref)


@pytest.mark.parametrize(
    "loss, metrics",
    [({"out": "mse"}, {"out": ["mae"]}), (["mse"], [["mae"]]), ("mse", ["mae"])],
    ids=["dicts by output name", "lists of one", "plain"],
)
def test_one_output_takes_its_name_in_compile_as_keras(keras_ref, loss, metrics):
    def history(K):
        inputs = K.Input((3,))
        model = K.Model(inputs, K.layers.Dense(1, name="out")(inputs))
        model.compile("sgd", loss, metrics=metrics)
        return sorted(model.fit(np.ones((4, 3), "float32"), np.zeros((4, 1), "float32"), verbose=0).history)

    assert history(tk) == history(keras_ref) == ["loss", "mae"]


def test_dict_outputs_key_training_by_the_dict_keys_as_keras(keras_ref):
    def history(K):
        inputs = K.Input((3,))
        model = K.Model(inputs, {"x": K.layers.Dense(1, name="a")(inputs), "y": K.layers.Dense(2, name="b")(inputs)})
        model.compile("sgd", {"x": "mse", "y": "mse"}, metrics={"x": ["mae"]})
        y = {"x": np.zeros((4, 1), "float32"), "y": np.zeros((4, 2), "float32")}
        return model.output_names, sorted(model.fit(np.ones((4, 3), "float32"), y, verbose=0).history)

    assert history(tk) == history(keras_ref) == (["a", "b"], ["loss", "x_loss", "x_mae", "y_loss"])


def test_sequential_and_subclassed_output_names():
    deliberate("models.output-names-none")  # Keras' Sequential and subclassed models have no such attribute
    assert tk.Sequential([tk.Input((3,)), tk.layers.Dense(1)]).output_names is None


def test_compile_config_ends_with_kerass_three_keys(keras_ref):
    def config(K, **kwargs):
        model = K.Sequential([K.Input((3,)), K.layers.Dense(1)])
        model.compile("sgd", "mse", **kwargs)
        return model.get_compile_config()

    for kwargs in ({"run_eagerly": True, "steps_per_execution": 3, "jit_compile": False}, {"jit_compile": True}):
        ref, got = config(keras_ref, **kwargs), config(tk, **kwargs)
        assert list(got) == list(ref)
        assert {k: got[k] for k in list(got)[-3:]} == {k: ref[k] for k in list(ref)[-3:]}
    deliberate("compile-config.jit-compile-auto")
    assert config(keras_ref)["jit_compile"] is False and config(tk)["jit_compile"] == "auto"
    again = tk.Sequential([tk.Input((3,)), tk.layers.Dense(1)])
    again.compile_from_config(config(tk, steps_per_execution=2))
    assert again.get_compile_config()["steps_per_execution"] == 2


# ---- input_shape= given to a layer -------------------------------------------------------------------------------


def _warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [(w.category, str(w.message)) for w in caught]


WARNED = [
    ("Dense input_shape", lambda K: K.layers.Dense(2, input_shape=(3,))),
    ("Dense input_dim", lambda K: K.layers.Dense(2, input_dim=3)),
    ("Dense input_shape=None", lambda K: K.layers.Dense(2, input_shape=None)),
    ("in a Sequential", lambda K: K.Sequential([K.layers.Dense(2, input_shape=(3,)), K.layers.Dense(1)])),
    ("Sequential.add", lambda K: K.Sequential().add(K.layers.Dropout(0.5, input_shape=(3,)))),
    ("Input", lambda K: K.Sequential([K.Input((3,)), K.layers.Dense(2)])),
    ("InputLayer shape", lambda K: K.layers.InputLayer(shape=(3,))),
    ("InputLayer input_shape", lambda K: K.layers.InputLayer(input_shape=(3,))),
]


@pytest.mark.parametrize("what, make", WARNED, ids=[w[0] for w in WARNED])
def test_input_shape_warning_as_keras(keras_ref, what, make):
    ref = _warnings(lambda: make(keras_ref))
    got = _warnings(lambda: make(tk))
    assert got == ref


def test_the_warning_points_at_the_layer_and_sequential_still_builds():
    with pytest.warns(UserWarning, match=r"Do not pass an `input_shape`/`input_dim` argument to a layer"):
        model = tk.Sequential([tk.layers.Dense(2, input_shape=(3,))])
    assert model.built and model.input_shape == (None, 3)


# ---- functions as constraints, regularizers, initializers ---------------------------------------------------------


def clip_weights(w):
    return tk.ops.clip(w, -0.1, 0.1)


def square_penalty(w):
    return 0.01 * tk.ops.sum(w * w)


def ones_init(shape, dtype=None):
    return tk.ops.ones(shape, dtype=dtype)


FUNCTION_ARGS = [
    ("kernel_constraint", clip_weights),
    ("bias_constraint", clip_weights),
    ("kernel_regularizer", square_penalty),
    ("activity_regularizer", square_penalty),
    ("kernel_initializer", ones_init),
]


@pytest.mark.parametrize("key, fn", FUNCTION_ARGS, ids=[k for k, _ in FUNCTION_ARGS])
def test_a_function_argument_is_written_as_keras_writes_it(keras_ref, key, fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = keras_ref.layers.Dense(2, **{key: fn}).get_config()[key]
        lam = keras_ref.layers.Dense(2, **{key: lambda *a, **k: fn(*a, **k)}).get_config()[key]
        ours_lam = tk.layers.Dense(2, **{key: lambda *a, **k: fn(*a, **k)}).get_config()[key]
    got = tk.layers.Dense(2, **{key: fn}).get_config()[key]
    assert _json(got) == _json(ref)
    assert (ours_lam["class_name"], sorted(ours_lam["config"])) == (lam["class_name"], sorted(lam["config"]))
    # read back through the custom objects (a lambda is refused: tritonnn never runs stored bytecode)
    model = tk.Sequential([tk.Input((3,)), tk.layers.Dense(2, **{key: fn})])
    with pytest.raises(ValueError, match=fn.__name__):
        tk.models.model_from_json(model.to_json())
    clone = tk.models.model_from_json(model.to_json(), custom_objects={fn.__name__: fn})
    assert getattr(clone.layers[-1], key) is fn


def test_a_function_initializer_and_constraint_are_used():
    layer = tk.layers.Dense(2, kernel_initializer=ones_init, kernel_constraint=clip_weights)
    model = tk.Sequential([tk.Input((3,)), layer])
    np.testing.assert_array_equal(tk.ops.convert_to_numpy(layer.kernel), np.ones((3, 2), "float32"))
    model.compile("sgd", "mse")
    model.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), verbose=0)
    assert float(tk.ops.max(tk.ops.abs(layer.kernel))) <= 0.1 + 1e-7


# ---- get_config key order ------------------------------------------------------------------------------------------

# The base class itself is compared below (a listed difference). IntegerLookup needs TensorFlow in Keras; Wrapper is
# abstract.
_SKIP = {"Layer", "IntegerLookup", "Wrapper"}
_TRIES = [(), (2,), (3, 2), ((2,),), (0.5,), (2, 3), ([2],), ("relu",), ((2, 1),)]
_KWARGS = {"InputLayer": {"shape": (3,)}, "Lambda": {"function": clip_weights}}


def _layer_classes(keras_ref):
    return sorted(n for n in dir(tk.layers) if isinstance(getattr(tk.layers, n), type) and hasattr(keras_ref.layers, n))


def _first_build(K, name):
    cls = getattr(K.layers, name)
    if name in _KWARGS:
        return cls(**_KWARGS[name]), None
    if name == "TorchModuleWrapper":
        import torch

        return cls(torch.nn.Linear(2, 2)), None
    for args in _TRIES:
        try:
            return cls(*args), args
        except Exception:  # noqa: BLE001 - the first argument list the class takes
            continue
    raise AssertionError(f"tritonnn.layers.{name} is built by none of {_TRIES}")


def test_every_layers_config_keys_in_keras_order(keras_ref):
    names = [n for n in _layer_classes(keras_ref) if n not in _SKIP]
    assert len(names) > 30
    wrong = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            ours, args = _first_build(tk, name)
            if args is None:
                theirs, _ = _first_build(keras_ref, name)
            else:
                theirs = getattr(keras_ref.layers, name)(*args)
            if list(ours.get_config()) != list(theirs.get_config()):
                wrong.append(f"{name}: {list(ours.get_config())} != Keras' {list(theirs.get_config())}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name, args", [("Dropout", (0.5,)), ("ELU", ()), ("GaussianDropout", (0.5,))])
def test_config_keys_of_dropout_and_elu(keras_ref, name, args):
    kwargs = {"alpha": 0.5} if name == "ELU" else {"seed": 3}
    ours = getattr(tk.layers, name)(*args, **kwargs).get_config()
    theirs = getattr(keras_ref.layers, name)(*args, **kwargs).get_config()
    assert list(ours) == list(theirs)
    assert {k: ours[k] for k in ours if k != "dtype"} == {k: theirs[k] for k in theirs if k != "dtype"}


# ---- optimizers in the compile config ------------------------------------------------------------------------------


def _optimizer_model(K, optimizer):
    model = K.Sequential([K.Input((3,)), K.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return _json(model.get_compile_config())["optimizer"]


def test_a_builtin_optimizer_in_the_compile_config(keras_ref):
    ref = _optimizer_model(keras_ref, keras_ref.optimizers.SGD(momentum=0.5))
    got = _optimizer_model(tk, tk.optimizers.SGD(momentum=0.5))
    assert list(got) == list(ref) == ["module", "class_name", "config", "registered_name"]
    deliberate("saving.optimizer-module")  # Keras' torch backend names its private module and the class
    assert ref["module"].startswith("keras.src.backend.torch.optimizers") and ref["registered_name"] == "SGD"
    assert (got["module"], got["class_name"], got["registered_name"]) == ("keras.optimizers", "SGD", None)
    assert sorted(got["config"]) == sorted(ref["config"])


def test_a_registered_optimizer_in_the_compile_config_and_through_saving(keras_ref, tmp_path):
    def define(K):
        @K.saving.register_keras_serializable(package="compat_layouts")
        class LayoutSGD(K.optimizers.SGD):
            pass

        return LayoutSGD

    ref_cls, our_cls = define(keras_ref), define(tk)
    ref = _optimizer_model(keras_ref, ref_cls(learning_rate=0.25, name="opt"))
    got = _optimizer_model(tk, our_cls(learning_rate=0.25, name="opt"))
    assert {k: v for k, v in got.items() if k not in ("module", "config")} == {
        k: v for k, v in ref.items() if k not in ("module", "config")
    }
    assert got["registered_name"] == "compat_layouts>LayoutSGD" and got["module"] is not None
    model = tk.Sequential([tk.Input((3,)), tk.layers.Dense(1)])
    model.compile(optimizer=our_cls(learning_rate=0.25), loss="mse")
    model.save(tmp_path / "m.keras")
    loaded = tk.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is our_cls and float(loaded.optimizer.learning_rate) == 0.25
    assert type(tk.optimizers.deserialize(got)) is our_cls


# ---- get_config key order of losses, metrics, optimizers, initializers, regularizers, constraints ---------------

_OBJECT_MODULES = ("losses", "metrics", "optimizers", "initializers", "regularizers", "constraints")
_OBJECT_TRIES = [(), (0.5,), (3,), ([0.5],), (2, 1)]
# Keras' get_config leaves out an argument the object takes (so that its own round trip loses it); tritonnn writes
# it: Huber's delta, CosineSimilarity's axis (the loss and the metric), Identity's gain.
_KERAS_DROPS = {"Huber": ["delta"], "CosineSimilarity": ["axis"], "Identity": ["gain"], "IdentityInitializer": ["gain"]}
_KERAS_DROPS["identity"] = ["gain"]


def _object_classes(keras_ref, module):
    ours, theirs = getattr(tk, module), getattr(keras_ref, module)
    names = []
    for name in sorted(dir(ours)):
        cls = getattr(ours, name)
        if isinstance(cls, type) and hasattr(theirs, name) and callable(getattr(cls, "get_config", None)):
            names.append(name)
    return names


@pytest.mark.parametrize("module", _OBJECT_MODULES)
def test_every_objects_config_keys_in_keras_order(keras_ref, module):
    wrong, compared = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in _object_classes(keras_ref, module):
            for args in _OBJECT_TRIES:
                try:
                    ours, theirs = getattr(tk, module).__dict__[name](*args), getattr(keras_ref, module).__dict__[name]
                    theirs = theirs(*args)
                    ref = list(theirs.get_config())
                except Exception:  # noqa: BLE001 - the first argument list both take (an abstract base: none)
                    continue
                got = list(ours.get_config())
                if name in _KERAS_DROPS:
                    deliberate("configs.arguments-keras-drops")
                    got = [k for k in got if k not in _KERAS_DROPS[name]]
                compared += 1
                if got != ref:
                    wrong.append(f"{module}.{name}{args}: {got} != Keras' {ref}")
                break
    assert compared >= 5
    assert not wrong, "\n".join(wrong)


def test_mean_metric_wrapper_writes_its_function_as_keras(keras_ref):
    def make(K):
        return K.metrics.MeanMetricWrapper(fn=K.losses.mean_squared_error, name="wrapped")

    ref, got = _json(make(keras_ref).get_config()), _json(make(tk).get_config())
    assert got == ref
    back = tk.metrics.deserialize(tk.metrics.serialize(make(tk)))
    assert back._fn is tk.losses.mean_squared_error and back.name == "wrapped"
    sparse = {"k": 3, "from_sorted_ids": False}, {"k": 3, "from_sorted_ids": True}
    for kwargs in sparse:
        ref = keras_ref.metrics.SparseTopKCategoricalAccuracy(**kwargs).get_config()
        got = tk.metrics.SparseTopKCategoricalAccuracy(**kwargs).get_config()
        assert {k: v for k, v in got.items() if k != "dtype"} == {k: v for k, v in ref.items() if k != "dtype"}


def test_the_base_layers_config(keras_ref):
    deliberate("layers.base-layer-auto-config")
    assert list(keras_ref.layers.Layer().get_config()) == [
        "name",
        "activity_regularizer",
        "trainable",
        "dtype",
        "autocast",
    ]
    assert list(tk.layers.Layer().get_config()) == ["name", "trainable", "dtype"]
    assert list(tk.layers.Layer(activity_regularizer="l2").get_config()) == [
        "name",
        "trainable",
        "dtype",
        "activity_regularizer",
    ]
