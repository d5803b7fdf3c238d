"""EinsumDense against real Keras: the equation forms (plain, ``...`` on the left, ``...`` on the right), the kernel's
and bias's shapes, names and order, outputs after setting the same weights, ``compute_output_shape`` with unknown
dimensions, configs and their round trip, Keras' errors for bad equations, training (SGD steps compared weight by
weight), Sequential and Functional models, ``summary()`` counts, saving, and LoRA (``lora_rank`` and
``enable_lora``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tritonnn as tk
from tritonnn import saving

from .compare import assert_same, observe, summary_counts, to_numpy
from .differences import deliberate

RNG = np.random.default_rng(0)
BASE = ("name", "trainable", "dtype")

# (id, equation, output_shape, bias_axes, input shape without the batch, extra kwargs)
CASES = [
    ("dense", "ab,bc->ac", 4, "c", (3,), {}),
    ("dense-no-bias", "ab,bc->ac", 4, None, (3,), {"activation": "relu"}),
    ("transposed-kernel", "ab,cb->ac", 4, "c", (3,), {}),
    ("sequence", "abc,cd->abd", (None, 4), "d", (5, 3), {"activation": "tanh"}),
    ("sequence-known", "abc,cd->abd", (5, 4), "d", (5, 3), {}),
    ("multi-output-axes", "abc,cde->abde", (None, 4, 2), "de", (5, 3), {}),
    ("bias-skips-an-axis", "abc,cde->abde", (5, 4, 2), "be", (5, 3), {}),
    ("two-kernel-output-axes", "ab,bcd->acd", (4, 2), "c", (3,), {"activation": "softmax"}),
    ("ellipsis-left", "...x,xy->...y", 4, "y", (5, 3), {}),
    ("ellipsis-left-rank2", "...x,xy->...y", 4, "y", (3,), {}),
    ("ellipsis-left-rank4", "...x,xy->...y", 4, "y", (2, 5, 3), {}),
    ("ellipsis-right", "ab...,bc->ac...", 4, "c", (3, 5), {}),
    ("ellipsis-right-two", "ab...,bc->ac...", (4,), "c", (3, 5, 2), {"activation": "gelu"}),
    ("reduce-sequence", "abc,bcd->ad", 4, "d", (5, 3), {}),
    ("output-axis-moved", "abc,cd->adb", (4, None), "d", (5, 3), {}),
]


def _json(x):
    return json.loads(json.dumps(x))


def _own_config(layer):
    return {k: v for k, v in layer.get_config().items() if k not in BASE}


def _make(K, eq, out, bias, kwargs):
    return K.layers.EinsumDense(eq, out, bias_axes=bias, **kwargs)


def _names(layer):
    return [n.rsplit(".", 1)[-1] for n, _ in layer.named_parameters()]


def _same_weights(ref, got, seed=1):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=tuple(w.shape)).astype("float32") for w in ref.weights]
    ref.set_weights(weights)
    got.set_weights(weights)
    return weights


@pytest.mark.parametrize("case, eq, out, bias, shape, kwargs", CASES, ids=[c[0] for c in CASES])
def test_weights_outputs_and_config_match_keras(keras_ref, case, eq, out, bias, shape, kwargs):
    x = RNG.normal(size=(4, *shape)).astype("float32")
    ref, got = _make(keras_ref, eq, out, bias, kwargs), _make(tk, eq, out, bias, kwargs)
    ref.build((None, *shape))
    got.build((None, *shape))
    assert [tuple(w.shape) for w in got.weights] == [tuple(w.shape) for w in ref.weights]
    assert _names(got) == [w.name for w in ref.weights]  # "kernel", then "bias"
    assert [p.requires_grad for p in got.weights] == [w.trainable for w in ref.weights]
    _same_weights(ref, got)
    expected = to_numpy(keras_ref, ref(x))
    y = got(torch.tensor(x))
    assert y.dtype == torch.float32
    assert_same(expected, y.detach().numpy(), what=case)
    assert_same(to_numpy(keras_ref, ref.kernel), got.kernel.detach().numpy())
    assert _json(_own_config(got)) == _json(_own_config(ref))
    assert got.count_params() == ref.count_params()
    # the config rebuilds it (through the registry), with the same outputs once given the same weights
    again = saving.deserialize_layer(_json(saving.serialize_layer(got)))
    assert type(again) is tk.layers.EinsumDense and _json(_own_config(again)) == _json(_own_config(got))
    again.build((None, *shape))
    again.set_weights(got.get_weights())
    np.testing.assert_array_equal(again(torch.tensor(x)).detach().numpy(), y.detach().numpy())
    # and Keras reads tritonnn's config (and the other way round)
    from_keras = tk.layers.EinsumDense.from_config(ref.get_config())
    assert _json(_own_config(from_keras)) == _json(_own_config(got))
    keras_again = keras_ref.layers.EinsumDense.from_config(_json(got.get_config()))
    assert _json(_own_config(keras_again)) == _json(_own_config(ref))


SHAPES = [
    ("ab,bc->ac", 4, "c", (None, 3)),
    ("ab,bc->ac", 4, "c", (7, 3)),
    ("abc,cd->abd", (None, 4), "d", (None, None, 3)),
    ("abc,cd->abd", (None, 4), "d", (2, 5, 3)),
    ("abc,cde->abde", (None, 4, 2), "de", (None, 5, 3)),
    ("abc,cd->adb", (4, None), "d", (None, None, 3)),
    ("...x,xy->...y", 4, "y", (None, 3)),
    ("...x,xy->...y", 4, "y", (None, None, 3)),
    ("ab...,bc->ac...", 4, "c", (None, 3, None)),
    ("ab...,bc->ac...", 4, "c", (None, 3, 5, 2)),
    ("abc,bcd->ad", 4, None, (None, 5, 3)),
]


@pytest.mark.parametrize("eq, out, bias, shape", SHAPES)
def test_compute_output_shape_matches_keras(keras_ref, eq, out, bias, shape):
    ref, got = _make(keras_ref, eq, out, bias, {}), _make(tk, eq, out, bias, {})
    assert tuple(got.compute_output_shape(shape)) == tuple(ref.compute_output_shape(shape))


def test_a_leading_ellipsis_over_two_dimensions_keeps_their_order(keras_ref):
    # Keras 3.15's compute_output_shape reverses the dimensions under a leading "..." (its einsum does not).
    deliberate("layers.einsum-dense-ellipsis-output-shape")
    ref, got = _make(keras_ref, "...x,xy->...y", 4, "y", {}), _make(tk, "...x,xy->...y", 4, "y", {})
    x = RNG.normal(size=(1, 2, 5, 3)).astype("float32")
    assert tuple(ref.compute_output_shape((None, 2, 5, 3))) == (None, 5, 2, 4)
    assert tuple(ref(x).shape) == (1, 2, 5, 4)
    assert tuple(got.compute_output_shape((None, 2, 5, 3))) == (None, 2, 5, 4) == (None, *got(x).shape[1:])


def _twice(K):
    layer = K.layers.EinsumDense("ab,bc->ac", 4)
    layer(np.zeros((2, 3), "float32"))
    return layer(np.zeros((2, 5), "float32"))


BAD = [
    lambda K: K.layers.EinsumDense("a b,bc->ac", 4).build((None, 3)),  # no form matches
    lambda K: K.layers.EinsumDense("ab,bc", 4).build((None, 3)),
    lambda K: K.layers.EinsumDense("a...,bc->ac...", 4).build((None, 3)),  # a right ellipsis needs 2+ letters
    lambda K: K.layers.EinsumDense("ab,bc->ad", 4).build((None, 3)),  # output dim found nowhere
    lambda K: K.layers.EinsumDense("ab,bcx->ac", 4).build((None, 3)),  # weight dim found nowhere
    lambda K: K.layers.EinsumDense("ab,bc->ac", 4, bias_axes="x").build((None, 3)),
    lambda K: K.layers.EinsumDense("abc,cd->abd", (7, 4)).build((None, 5, 3)),  # shared dim 5 vs 7
    lambda K: K.layers.EinsumDense("abc,bd->abd", (None, 4)).build((None, None, 3)),  # kernel dim unknown
    lambda K: K.layers.EinsumDense("abc,cd->abd", (None, 4), bias_axes="bd").build((None, 5, 3)),  # bias unknown
    lambda K: K.layers.EinsumDense(None, 3).build((None, 3)),
    lambda K: K.layers.EinsumDense("ab,bc->ac", None),
    lambda K: K.layers.EinsumDense("ab,bc->ac", 3.0),
    lambda K: K.layers.EinsumDense("ab,bc->ac", 4)(np.zeros((2, 3, 3), "float32")),  # rank differs from build
    lambda K: _twice(K),  # the einsum's size mismatch (torch's RuntimeError in both)
    lambda K: K.layers.EinsumDense("ab,bc->ac", 4, foo=1),
    lambda K: K.layers.EinsumDense("ab,bc->ac", 4).kernel,  # not built
]


@pytest.mark.parametrize("make", BAD, ids=[f"bad-{i}" for i in range(len(BAD))])
def test_bad_equations_and_arguments_raise_keras_exception_classes(keras_ref, make):
    ref, got = observe(lambda: make(keras_ref)), observe(lambda: make(tk))
    assert ref.__class__.__name__ == "Raised", "Keras accepted it: the case is wrong"
    assert got == ref, f"tritonnn: {got!r}; Keras: {ref!r}"
    if ref.type == "ValueError" and ("einsum equation" in ref.message or "dimension '" in ref.message.lower()):
        assert got.message == ref.message  # the equation errors carry Keras' messages


def test_variance_scaling_kernel_uses_the_einsum_fans(keras_ref):
    # "abc,cde->abde": kernel (c, d, e) = (30, 40, 20); fan_in = 30, fan_out = 40 * 20 (Keras' input/output axes)
    shape = (None, 5, 30)
    for init in ("glorot_uniform", "he_normal", tk.initializers.LecunUniform(seed=3)):
        got = tk.layers.EinsumDense("abc,cde->abde", (None, 40, 20), kernel_initializer=init)
        got.build(shape)
        ref_init = init if isinstance(init, str) else keras_ref.initializers.LecunUniform(seed=3)
        ref = keras_ref.layers.EinsumDense("abc,cde->abde", (None, 40, 20), kernel_initializer=ref_init)
        ref.build(shape)
        k_got, k_ref = got.kernel.detach().numpy(), to_numpy(keras_ref, ref.kernel)
        assert k_got.shape == k_ref.shape == (30, 40, 20)
        assert abs(k_got.std() / k_ref.std() - 1) < 0.03, init  # 24000 draws each: the same variance
        # the layer's config keeps the initializer as given (no axes), as Keras'
        assert got.get_config()["kernel_initializer"]["config"]["input_axes"] is None
    deliberate("random.values")  # the values themselves come from another generator


def _models(K, kind, **kwargs):
    if kind == "sequential":
        return K.Sequential(
            [
                K.Input((5, 3)),
                K.layers.EinsumDense("abc,cde->abde", (None, 4, 2), bias_axes="de", activation="relu", **kwargs),
                K.layers.Reshape((20, 2)),
                K.layers.EinsumDense("...x,xy->...y", 1, bias_axes="y"),
                K.layers.Flatten(),
            ]
        )
    inp = K.Input((5, 3))
    h = K.layers.EinsumDense("abc,cd->abd", (5, 6), bias_axes="d", activation="tanh", **kwargs)(inp)
    out = K.layers.EinsumDense("abd,bde->ae", 2, bias_axes="e")(h)
    return K.Model(inp, out)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_models_of_einsum_dense_train_as_in_keras(keras_ref, kind):
    x = RNG.normal(size=(8, 5, 3)).astype("float32")
    models = [_models(K, kind) for K in (keras_ref, tk)]
    y = RNG.normal(size=(8, models[0].output_shape[-1])).astype("float32")
    assert summary_counts(models[1]) == summary_counts(models[0])
    assert models[1].output_shape == models[0].output_shape
    weights = [np.random.default_rng(4).normal(size=tuple(w.shape)).astype("float32") * 0.5 for w in models[0].weights]
    for K, model in zip((keras_ref, tk), models, strict=True):
        model.set_weights(weights)
        model.compile(optimizer=K.optimizers.SGD(0.05), loss="mse")
    losses = [
        [float(to_numpy(K, m.train_on_batch(x, y))) for _ in range(2)]
        for K, m in zip((keras_ref, tk), models, strict=True)
    ]
    assert_same(losses[0], losses[1], what="losses")
    assert_same([to_numpy(keras_ref, w) for w in models[0].weights], models[1].get_weights(), what="weights")
    assert_same(to_numpy(keras_ref, models[0].predict(x, verbose=0)), models[1].predict(x, verbose=0))
    assert summary_counts(models[1]) == summary_counts(models[0])  # the optimizer's variables counted too


def test_a_model_of_einsum_dense_round_trips_through_saving(tmp_path):
    model = _models(tk, "functional", kernel_regularizer="l2")
    x = RNG.normal(size=(4, 5, 3)).astype("float32")
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.zeros((4, 2), "float32"), epochs=1, verbose=0)
    tk.saving.save_model(model, tmp_path / "m.keras")
    loaded = tk.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    assert loaded.layers[1].get_config() == model.layers[1].get_config()


def test_mixed_precision_computes_in_float16_with_float32_weights(keras_ref):
    x = RNG.normal(size=(2, 5, 3)).astype("float32")
    ref = keras_ref.layers.EinsumDense("abc,cd->abd", (None, 4), bias_axes="d", dtype="mixed_float16")
    got = tk.layers.EinsumDense("abc,cd->abd", (None, 4), bias_axes="d", dtype="mixed_float16")
    ref.build((None, 5, 3))
    got.build((None, 5, 3))
    _same_weights(ref, got)
    out_ref, out = to_numpy(keras_ref, ref(x)), got(torch.tensor(x)).detach().numpy()
    assert out.dtype == out_ref.dtype == np.float16 and [w.dtype for w in got.weights] == [torch.float32] * 2
    assert_same(out_ref, out, rtol=2e-3, atol=2e-3)


# ---- LoRA ---------------------------------------------------------------------------------------------------------


def _lora_pair(keras_ref, **kwargs):
    layers = []
    for K in (keras_ref, tk):
        layer = K.layers.EinsumDense("abc,cde->abde", (None, 4, 2), bias_axes="de", **kwargs)
        layer.build((None, 5, 3))
        layers.append(layer)
    return layers


def test_enable_lora_adds_keras_adapters_and_freezes_the_kernel(keras_ref):
    ref, got = _lora_pair(keras_ref)
    ref.enable_lora(2)
    got.enable_lora(2)
    assert _names(got) == [w.name for w in ref.weights]  # kernel, bias, lora_kernel_a, lora_kernel_b
    assert [tuple(w.shape) for w in got.weights] == [tuple(w.shape) for w in ref.weights]
    assert [p.requires_grad for p in got.weights] == [w.trainable for w in ref.weights]
    assert [p.dtype for p in got.weights] == [torch.float32] * 4
    assert got.lora_enabled and got.lora_rank == ref.lora_rank and got.lora_alpha == ref.lora_alpha
    assert _json(_own_config(got)) == _json(_own_config(ref))  # lora_rank and lora_alpha in the config
    _same_weights(ref, got, seed=5)  # lora_kernel_b non-zero: the delta shows
    x = RNG.normal(size=(3, 5, 3)).astype("float32")
    assert_same(to_numpy(keras_ref, ref.kernel), got.kernel.detach().numpy())
    assert_same(to_numpy(keras_ref, ref(x)), got(torch.tensor(x)).detach().numpy())
    for make in (
        lambda K, layer: layer.enable_lora(2),  # already enabled
        lambda K, layer: K.layers.EinsumDense("ab,bc->ac", 3).enable_lora(2),  # not built
        lambda K, layer: (lambda m: (m.build((None, 3)), m.enable_lora(2)))(
            K.layers.EinsumDense("ab,bc->ac", 3, kernel_constraint="non_neg")
        ),
        lambda K, layer: K.layers.EinsumDense("ab,bc->ac", 3, kernel_constraint="non_neg", lora_rank=2).build(
            (None, 3)
        ),
    ):
        r, g = observe(lambda m=make: m(keras_ref, ref)), observe(lambda m=make: m(tk, got))
        assert r.__class__.__name__ == "Raised" and g == r and g.message == r.message


def test_lora_rank_and_alpha_arguments_enable_lora_at_build(keras_ref):
    ref, got = _lora_pair(keras_ref, lora_rank=3, lora_alpha=1.5)
    assert got.lora_enabled and ref.lora_enabled
    assert [tuple(w.shape) for w in got.weights] == [tuple(w.shape) for w in ref.weights]
    assert _json(_own_config(got)) == _json(_own_config(ref))
    _same_weights(ref, got, seed=6)
    x = RNG.normal(size=(3, 5, 3)).astype("float32")
    assert_same(to_numpy(keras_ref, ref(x)), got(torch.tensor(x)).detach().numpy())  # scale 1.5 / 3
    zero_ref, zero_got = _lora_pair(keras_ref, lora_rank=0)  # a zero rank: no LoRA, as in Keras
    assert not zero_got.lora_enabled and not zero_ref.lora_enabled
    assert _json(_own_config(zero_got)) == _json(_own_config(zero_ref))


def test_lora_trains_only_the_adapters_and_the_bias_as_in_keras(keras_ref):
    x, y = RNG.normal(size=(8, 5, 3)).astype("float32"), RNG.normal(size=(8, 8)).astype("float32")
    models = []
    for K in (keras_ref, tk):
        model = K.Sequential(
            [
                K.Input((5, 3)),
                K.layers.EinsumDense("abc,cde->abde", (None, 4, 2), bias_axes="de", lora_rank=2),
                K.layers.Reshape((20, 2)),
                K.layers.EinsumDense("abc,bd->acd", (2, 4), bias_axes="d"),
                K.layers.Flatten(),
            ]
        )
        model.compile(optimizer=K.optimizers.SGD(0.05), loss="mse")
        models.append(model)
    assert summary_counts(models[1]) == summary_counts(models[0])  # the frozen kernel: non-trainable
    weights = [np.random.default_rng(7).normal(size=tuple(w.shape)).astype("float32") * 0.5 for w in models[0].weights]
    for model in models:
        model.set_weights(weights)
    losses = [
        [float(to_numpy(K, m.train_on_batch(x, y))) for _ in range(2)]
        for K, m in zip((keras_ref, tk), models, strict=True)
    ]
    assert_same(losses[0], losses[1], what="losses")
    assert_same([to_numpy(keras_ref, w) for w in models[0].weights], models[1].get_weights(), what="weights")
    np.testing.assert_array_equal(models[1].get_weights()[0], weights[0])  # the kernel did not move


def test_a_lora_layer_round_trips_through_saving_with_its_adapters(keras_ref, tmp_path):
    deliberate("layers.einsum-dense-lora")
    x = RNG.normal(size=(3, 5, 3)).astype("float32")
    outputs = {}
    for K in (keras_ref, tk):
        inp = K.Input((5, 3))
        model = K.Model(inp, K.layers.EinsumDense("abc,cd->abd", (None, 4), bias_axes="d", lora_rank=2)(inp))
        model.set_weights(
            [np.random.default_rng(8).normal(size=tuple(w.shape)).astype("float32") for w in model.weights]
        )
        path = str(tmp_path / f"{K.__name__}.keras")
        K.saving.save_model(model, path)
        loaded = K.saving.load_model(path)
        outputs[K] = (to_numpy(K, model.predict(x, verbose=0)), to_numpy(K, loaded.predict(x, verbose=0)))
        layer, before = loaded.layers[1], model.layers[1]
        assert layer.lora_enabled
        if K is keras_ref:  # Keras saves the merged kernel and zeroes the adapters
            assert not np.any(to_numpy(K, layer.lora_kernel_b))
        else:  # tritonnn keeps the adapters (and the frozen kernel) as they were
            for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)
            assert [p.requires_grad for p in layer.weights] == [p.requires_grad for p in before.weights]
    assert_same(outputs[keras_ref][0], outputs[tk][0])
    assert_same(outputs[keras_ref][1], outputs[tk][1])
    np.testing.assert_array_equal(outputs[tk][1], outputs[tk][0])


def test_the_lora_kernel_stays_frozen_when_the_layer_is_unfrozen(keras_ref):
    deliberate("layers.einsum-dense-lora")
    ref, got = _lora_pair(keras_ref, lora_rank=2)
    for layer in (ref, got):
        layer.trainable = False
        layer.trainable = True
    assert ref.weights[0].trainable  # Keras 3.15 makes the frozen kernel trainable again
    assert [p.requires_grad for p in got.weights] == [False, True, True, True]


def test_regularizer_losses_match_keras(keras_ref):
    x = RNG.normal(size=(4, 5, 3)).astype("float32")
    kwargs = {"kernel_regularizer": "l2", "bias_regularizer": "l1", "activity_regularizer": "l2"}
    ref, got = (K.layers.EinsumDense("abc,cde->abde", (None, 4, 2), bias_axes="de", **kwargs) for K in (keras_ref, tk))
    ref.build((None, 5, 3))
    got.build((None, 5, 3))
    _same_weights(ref, got, seed=9)
    ref(x)
    got(torch.tensor(x))
    assert_same(
        sorted(float(to_numpy(keras_ref, v)) for v in ref.losses), sorted(float(v.detach()) for v in got.losses)
    )
    # Keras' L1 writes its factor rounded to float32 (0.009999999776482582): equal to within fp32
    assert_same(_json(_own_config(ref)), _json(_own_config(got)))
