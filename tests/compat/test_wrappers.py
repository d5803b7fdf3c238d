"""keras.layers.Wrapper and keras.layers.TorchModuleWrapper against real Keras: what they build, their weights and
trainable flags, their configs (nested layer; pickled module) and rebuilding from them, training one wrapped layer
or module in a model (SGD steps compared weight by weight), summary counts, saving, and Keras' errors."""

from __future__ import annotations

import base64
import copy
import io
import json

import numpy as np
import pytest
import torch

import tritonnn as tk

from .compare import assert_same, observe, summary_counts, to_numpy
from .differences import deliberate

RNG = np.random.default_rng(0)
BASE = ("name", "trainable", "dtype")
X = RNG.normal(size=(6, 4)).astype("float32")
Y = RNG.normal(size=(6, 2)).astype("float32")


def _json(x):
    return json.loads(json.dumps(x))


def _layer_entry(config):
    """A nested layer's serialized form without Keras' build_config and the dtype policy (listed differences
    ``saving.layer-build-config`` and ``config.dtype-name``)."""
    out = {k: v for k, v in config.items() if k != "build_config"}
    out["config"] = {k: v for k, v in config["config"].items() if k != "dtype"}
    return out


# ---- Wrapper -------------------------------------------------------------------------------------------------------


def _doubling(K):
    class Doubling(K.layers.Wrapper):
        """A minimal concrete wrapper: twice the wrapped layer's output."""

        def call(self, inputs):
            return self.layer(inputs) * 2.0

    return Doubling


def test_wrapper_builds_the_wrapped_layer_and_owns_its_weights(keras_ref):
    for trainable in (True, False):
        ref = keras_ref.layers.Wrapper(keras_ref.layers.Dense(3), trainable=trainable)
        got = tk.layers.Wrapper(tk.layers.Dense(3), trainable=trainable)
        for w in (ref, got):
            w.build((None, 4))
        assert got.built and got.layer.built and ref.layer.built
        assert [tuple(p.shape) for p in got.weights] == [tuple(w.shape) for w in ref.weights]
        assert len(got.trainable_weights) == len(ref.trainable_weights)
        assert len(got.non_trainable_weights) == len(ref.non_trainable_weights)
        assert got.trainable == ref.trainable and got.layer.trainable == ref.layer.trainable
        assert got.count_params() == ref.count_params() == 15


def test_wrapper_config_nests_the_layer_and_rebuilds_it(keras_ref):
    ref = keras_ref.layers.Wrapper(keras_ref.layers.Dropout(0.3, seed=2, name="inner"), name="wrapped")
    got = tk.layers.Wrapper(tk.layers.Dropout(0.3, seed=2, name="inner"), name="wrapped")
    ref_cfg, got_cfg = _json(ref.get_config()), _json(got.get_config())
    assert sorted(got_cfg) == sorted(ref_cfg)
    assert _layer_entry(got_cfg["layer"]) == _layer_entry(ref_cfg["layer"])
    assert _json(tk.saving.serialize_keras_object(got))["class_name"] == "Wrapper"
    for cfg in (got_cfg, ref_cfg):  # tritonnn reads its own config and Keras'
        again = tk.layers.Wrapper.from_config(cfg)
        assert type(again.layer) is tk.layers.Dropout and again.layer.name == "inner" and again.name == "wrapped"
        assert again.layer.get_config() == got.layer.get_config()
    keras_again = keras_ref.layers.Wrapper.from_config(got_cfg)  # and Keras reads tritonnn's
    assert keras_again.layer.rate == 0.3 and keras_again.layer.name == "inner"
    dense = tk.layers.Wrapper(tk.layers.Dense(3, activation="relu"))
    rebuilt = tk.saving.deserialize_keras_object(_json(tk.saving.serialize_keras_object(dense)))
    assert type(rebuilt) is tk.layers.Wrapper and rebuilt.layer.get_config() == dense.layer.get_config()


def test_a_wrapper_subclass_trains_in_a_model_as_in_keras(keras_ref, tmp_path):
    models = []
    for K in (keras_ref, tk):
        wrapped = _doubling(K)(K.layers.Dense(3, activation="tanh"))
        model = K.Sequential([K.Input((4,)), wrapped, K.layers.Dense(2)])
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="mse")
        models.append(model)
    assert summary_counts(models[1]) == summary_counts(models[0])
    weights = [np.random.default_rng(3).normal(size=tuple(w.shape)).astype("float32") for w in models[0].weights]
    for model in models:
        model.set_weights(weights)
    losses = [
        [float(to_numpy(K, m.train_on_batch(X, Y))) for _ in range(2)]
        for K, m in zip((keras_ref, tk), models, strict=True)
    ]
    assert_same(losses[0], losses[1], what="losses")
    assert_same([to_numpy(keras_ref, w) for w in models[0].weights], models[1].get_weights(), what="weights")
    # the model round-trips through a saved file, the wrapper's class found through custom_objects
    doubling = type(models[1].layers[0])
    tk.saving.save_model(models[1], tmp_path / "m.keras")
    loaded = tk.saving.load_model(tmp_path / "m.keras", custom_objects={"Doubling": doubling})
    assert type(loaded.layers[0]) is doubling and type(loaded.layers[0].layer) is tk.layers.Dense
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), models[1].predict(X, verbose=0))


def test_a_frozen_wrapper_trains_none_of_the_wrapped_weights(keras_ref):
    deliberate("layers.wrapper-made-untrainable")
    counts = []
    for K in (keras_ref, tk):
        wrapped = _doubling(K)(K.layers.Dense(3), trainable=False)
        model = K.Sequential([K.Input((4,)), wrapped, K.layers.Dense(2)])
        assert len(wrapped.trainable_weights) == 0  # in both
        counts.append(summary_counts(model))
        if K is tk:
            model.compile(optimizer="sgd", loss="mse")
            before = wrapped.layer.get_weights()
            model.fit(X, Y, epochs=1, verbose=0)
            for a, b in zip(wrapped.layer.get_weights(), before, strict=True):
                np.testing.assert_array_equal(a, b)
    assert counts[0] == {"Total": "23", "Trainable": "23", "Non-trainable": "0"}  # Keras' model trains them
    assert counts[1] == {"Total": "23", "Trainable": "8", "Non-trainable": "15"}


WRAPPER_BAD = [
    lambda K: K.layers.Wrapper(3),
    lambda K: K.layers.Wrapper(torch.nn.Linear(2, 3)),
    lambda K: K.layers.Wrapper(K.layers.Dense(3), foo=1),
    lambda K: K.layers.Wrapper(K.layers.Dense(3)).build(),  # the Dense cannot build on no shape
    lambda K: K.layers.Wrapper(K.layers.Dense(3))(X),  # the base class has no call
]


@pytest.mark.parametrize("make", WRAPPER_BAD, ids=[f"bad-{i}" for i in range(len(WRAPPER_BAD))])
def test_wrapper_errors_are_keras_exception_classes(keras_ref, make):
    ref, got = observe(lambda: make(keras_ref)), observe(lambda: make(tk))
    assert ref.__class__.__name__ == "Raised", "Keras accepted it: the case is wrong"
    assert got == ref, f"tritonnn: {got!r}; Keras: {ref!r}"


# ---- TorchModuleWrapper ------------------------------------------------------------------------------------------


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def test_torch_module_wrapper_weights_are_the_module_parameters(keras_ref):
    module = _net()
    ref = keras_ref.layers.TorchModuleWrapper(copy.deepcopy(module))
    got = tk.layers.TorchModuleWrapper(copy.deepcopy(module))
    assert got.built and ref.built and got.name == ref.name == "torch_module_wrapper"
    assert [tuple(p.shape) for p in got.weights] == [tuple(w.shape) for w in ref.weights]
    assert [p.requires_grad for p in got.weights] == [w.trainable for w in ref.weights]
    assert got.count_params() == ref.count_params()
    assert got.weights[0] is got.module[0].weight  # the module's own tensors, not copies
    x = torch.tensor(X)
    for training in (False, True, None):
        out_ref, out_got = ref(x, training=training), got(x, training=training)
        assert got.module.training == ref.module.training == (training is not False)
        assert_same(to_numpy(keras_ref, out_ref), out_got.detach().numpy(), what=f"training={training}")


def test_torch_module_wrapper_trainable_flags_follow_keras(keras_ref):
    mods = [torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)]
    for m in mods:
        m.bias.requires_grad_(False)  # frozen before wrapping: stays frozen when the layer is unfrozen
    ref, got = keras_ref.layers.TorchModuleWrapper(mods[0]), tk.layers.TorchModuleWrapper(mods[1])
    assert [p.requires_grad for p in got.weights] == [w.trainable for w in ref.weights] == [True, False]
    for value in (False, True):
        ref.trainable = value
        got.trainable = value
        assert [p.requires_grad for p in mods[1].parameters()] == [p.requires_grad for p in mods[0].parameters()]
    model = tk.Sequential([tk.Input((4,)), got])
    model.trainable = False  # a model's flag reaches the module's parameters too
    assert not any(p.requires_grad for p in mods[1].parameters())
    model.trainable = True
    assert [p.requires_grad for p in mods[1].parameters()] == [True, False]
    frozen = tk.layers.TorchModuleWrapper(torch.nn.Linear(4, 3), trainable=False)
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 2


def test_torch_module_wrapper_trains_in_a_model_as_in_keras(keras_ref):
    module = _net()
    models = []
    for K in (keras_ref, tk):
        wrapped = K.layers.TorchModuleWrapper(copy.deepcopy(module), output_shape=(None, 3))
        model = K.Sequential([K.Input((4,)), wrapped, K.layers.Dense(2)])
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="mse")
        models.append(model)
    assert summary_counts(models[1]) == summary_counts(models[0])
    weights = [np.random.default_rng(5).normal(size=tuple(w.shape)).astype("float32") * 0.5 for w in models[0].weights]
    for model in models:
        model.set_weights(weights)
    losses = [
        [float(to_numpy(K, m.train_on_batch(X, Y))) for _ in range(2)]
        for K, m in zip((keras_ref, tk), models, strict=True)
    ]
    assert_same(losses[0], losses[1], what="losses")
    assert_same([to_numpy(keras_ref, w) for w in models[0].weights], models[1].get_weights(), what="weights")
    bn_ref, bn_got = models[0].layers[0].module[1], models[1].layers[0].module[1]
    assert_same(bn_ref.running_mean.numpy(), bn_got.running_mean.numpy(), what="running mean (train mode in fit)")
    assert_same(to_numpy(keras_ref, models[0].predict(X, verbose=0)), models[1].predict(X, verbose=0))


def test_torch_module_wrapper_config_is_keras_and_is_never_unpickled(keras_ref, tmp_path):
    deliberate("layers.torch-module-never-unpickled")
    module = torch.nn.Linear(4, 3)
    ref = keras_ref.layers.TorchModuleWrapper(copy.deepcopy(module), name="tw", output_shape=(None, 3))
    got = tk.layers.TorchModuleWrapper(copy.deepcopy(module), name="tw", output_shape=(None, 3))
    ref_cfg, got_cfg = ref.get_config(), got.get_config()
    assert sorted(got_cfg) == sorted(ref_cfg)
    assert {k: v for k, v in got_cfg.items() if k not in ("module", "dtype")} == {
        k: v for k, v in ref_cfg.items() if k not in ("module", "dtype")
    }
    assert tuple(got.compute_output_shape((None, 4))) == tuple(ref.compute_output_shape((None, 4))) == (None, 3)
    # the module is written as Keras writes it: Keras rebuilds it from tritonnn's config with safe_mode=False
    unpickled = keras_ref.layers.TorchModuleWrapper.from_config(dict(got_cfg), safe_mode=False).module
    np.testing.assert_array_equal(unpickled.weight.detach().cpu().numpy(), module.weight.detach().numpy())
    restored = torch.load(io.BytesIO(base64.b64decode(got_cfg["module"])), weights_only=False)  # the test's own
    assert type(restored) is torch.nn.Linear
    for safe_mode in (None, True, False):  # tritonnn never unpickles it
        with pytest.raises(ValueError, match="torch.load"):
            tk.layers.TorchModuleWrapper.from_config(dict(got_cfg), safe_mode=safe_mode)
    assert observe(lambda: keras_ref.layers.TorchModuleWrapper.from_config(dict(ref_cfg))).type == "ValueError"
    again = tk.layers.TorchModuleWrapper.from_config({**got_cfg, "module": module})  # a module object is taken
    assert again.module is module and again.name == "tw"
    model = tk.Sequential([tk.Input((4,)), got, tk.layers.Dense(2)])
    tk.saving.save_model(model, tmp_path / "m.keras")
    with pytest.raises(ValueError, match="torch.load"):
        tk.saving.load_model(tmp_path / "m.keras", safe_mode=False)


def test_torch_module_weights_and_buffers_round_trip_through_weight_files(tmp_path):
    def build():
        return tk.Sequential([tk.Input((4,)), tk.layers.TorchModuleWrapper(_net()), tk.layers.Dense(2)])

    model = build()
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, epochs=2, verbose=0)
    tk.saving.save_weights(model, tmp_path / "m.weights.h5")
    other = build()
    tk.saving.load_weights(other, tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(other.predict(X, verbose=0), model.predict(X, verbose=0))
    bn, bn_other = model.layers[0].module[1], other.layers[0].module[1]
    np.testing.assert_array_equal(bn_other.running_var.numpy(), bn.running_var.numpy())  # a buffer, not a weight
    assert int(bn_other.num_batches_tracked) == int(bn.num_batches_tracked) > 0


def test_torch_module_wrapper_takes_several_inputs_and_keeps_integer_inputs(keras_ref):
    bilinear = torch.nn.Bilinear(2, 3, 4)
    a, b = torch.randn(5, 2), torch.randn(5, 3)
    ref = keras_ref.layers.TorchModuleWrapper(copy.deepcopy(bilinear))
    got = tk.layers.TorchModuleWrapper(copy.deepcopy(bilinear))
    assert_same(to_numpy(keras_ref, ref(a, b)), got(a, b).detach().numpy())
    emb = torch.nn.Embedding(10, 3)
    idx = torch.tensor([[1, 2], [3, 9]])
    ref_e, got_e = keras_ref.layers.TorchModuleWrapper(copy.deepcopy(emb)), tk.layers.TorchModuleWrapper(emb)
    assert_same(to_numpy(keras_ref, ref_e(idx)), got_e(idx).detach().numpy())
    inp = tk.Input((2,), dtype="int64")
    model = tk.Model(inp, tk.layers.Flatten()(got_e(inp)))
    assert model.output_shape == (None, 6)
    assert_same(got_e(idx).detach().numpy().reshape(2, 6), model.predict(idx.numpy(), verbose=0))


TMW_BAD = [
    lambda K: K.layers.TorchModuleWrapper(torch.nn.LazyLinear(3)),
    lambda K: K.layers.TorchModuleWrapper(3),
    lambda K: K.layers.TorchModuleWrapper(torch.nn.Linear(2, 3), foo=1),
    lambda K: K.layers.TorchModuleWrapper(torch.nn.Linear(2, 3))(torch.ones(1, 5)),  # the module's own error
]


@pytest.mark.parametrize("make", TMW_BAD, ids=[f"bad-{i}" for i in range(len(TMW_BAD))])
def test_torch_module_wrapper_errors_are_keras_exception_classes(keras_ref, make):
    ref, got = observe(lambda: make(keras_ref)), observe(lambda: make(tk))
    assert ref.__class__.__name__ == "Raised", "Keras accepted it: the case is wrong"
    assert got == ref, f"tritonnn: {got!r}; Keras: {ref!r}"


def test_an_initialized_lazy_module_is_wrapped(keras_ref):
    lazy = torch.nn.LazyLinear(3)
    lazy(torch.ones(1, 4))
    ref = keras_ref.layers.TorchModuleWrapper(copy.deepcopy(lazy))
    got = tk.layers.TorchModuleWrapper(lazy)
    assert [tuple(p.shape) for p in got.weights] == [tuple(w.shape) for w in ref.weights] == [(3, 4), (3,)]
