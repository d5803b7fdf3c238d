"""Layers beyond Dense: Keras semantics checked against hand-worked numbers and numpy references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tritonnn as keras
from tritonnn import layers
from tritonnn.kernels.dropout import backend_dropout_mask


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def run_layer_test(
    layer_cls: type,
    init_kwargs: dict[str, Any],
    input_shape: Any = None,
    input_data: Any = None,
    expected_output_shape: Any = None,
    expected_num_trainable_weights: int = 0,
    expected_num_non_trainable_weights: int = 0,
    expected_num_losses: int = 0,
    run_training_check: bool = True,
) -> layers.Layer:
    """Keras' ``run_layer_test`` in small: output shape (and ``compute_output_shape`` agreeing with it), weight
    counts, losses, a ``get_config``/``from_config`` round trip whose copy (given the same weights) computes the
    same output, and a gradient reaching every trainable weight."""

    def make_inputs() -> Any:
        if input_data is not None:
            return input_data
        gen = torch.Generator().manual_seed(0)
        if isinstance(input_shape, list):
            return [torch.randn(s, generator=gen) for s in input_shape]
        return torch.randn(input_shape, generator=gen)

    def sym(shape: Any) -> Any:
        return [(None, *s[1:]) for s in shape] if isinstance(shape, list) else (None, *shape[1:])

    layer = layer_cls(**init_kwargs)
    x = make_inputs()
    out = layer(x)
    assert tuple(out.shape) == tuple(expected_output_shape), (tuple(out.shape), expected_output_shape)
    shape_in = [tuple(v.shape) for v in x] if isinstance(x, list) else tuple(x.shape)
    assert tuple(layer.compute_output_shape(sym(shape_in))) == (None, *tuple(expected_output_shape)[1:])
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    assert len(layer.losses) == expected_num_losses
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, "get_config -> from_config -> get_config must round-trip"
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(clone(x, training=False)), _np(layer(x, training=False)), rtol=1e-6, atol=1e-7)
    if run_training_check and expected_num_trainable_weights:
        y = layer(x, training=True)
        y.float().square().sum().backward()
        for w in layer.trainable_weights:
            assert w.grad is not None and torch.isfinite(w.grad).all(), w._tritonnn_path
    return layer


# ---- Dropout ------------------------------------------------------------------------------------------------------


def test_dropout_layer_test():
    run_layer_test(layers.Dropout, {"rate": 0.5, "seed": 1}, input_shape=(2, 3), expected_output_shape=(2, 3))
    run_layer_test(
        layers.Dropout,
        {"rate": 0.5, "noise_shape": (None, 1, 4), "seed": 1},
        input_shape=(2, 3, 4),
        expected_output_shape=(2, 3, 4),
    )


def test_dropout_inactive_unless_training():
    layer = layers.Dropout(0.5, seed=3)
    x = torch.randn(8, 16)
    assert layer(x) is x
    assert layer(x, training=False) is x


def test_dropout_training_drops_with_the_layer_seed_stream_and_scales():
    layer = layers.Dropout(0.25, seed=11)
    twin = layers.Dropout(0.25, seed=11)
    x = torch.randn(64, 32) + 3.0  # no zeros in the input, so zeros in the output are drops
    y = layer(x, training=True)
    seed = twin.next_seed()  # the twin's stream is the layer's: same first seed
    keep = backend_dropout_mask(seed, 0.25, (64, 32))  # the mask this backend applies to a CPU float32 tensor
    np.testing.assert_allclose(_np(y), np.where(keep.numpy(), _np(x) / 0.75, 0.0), rtol=1e-6)
    kept = float((y != 0).double().mean())
    assert abs(kept - 0.75) < 5 * (0.25 * 0.75 / x.numel()) ** 0.5
    y2 = layer(x, training=True)
    assert not torch.equal(y2 != 0, y != 0), "each training call draws a fresh mask"


def test_dropout_noise_shape_shares_the_mask_across_the_broadcast_axis():
    layer = layers.Dropout(0.5, noise_shape=(None, 1, 6), seed=5)
    y = layer(torch.ones(3, 4, 6), training=True)
    assert torch.equal(y, y[:, :1, :].expand(3, 4, 6))
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0}


def test_dropout_unseeded_layers_are_reproducible_under_set_random_seed():
    keras.utils.set_random_seed(7)
    a = layers.Dropout(0.5)(torch.ones(4, 50), training=True)
    keras.utils.set_random_seed(7)
    b = layers.Dropout(0.5)(torch.ones(4, 50), training=True)
    assert torch.equal(a, b)
    assert layers.Dropout(0.5).next_seed() != layers.Dropout(0.5).next_seed()


def test_dropout_next_seed_is_a_valid_philox_seed_and_advances():
    layer = layers.Dropout(0.1, seed=0)
    seeds = [layer.next_seed() for _ in range(100)]
    assert len(set(seeds)) == 100 and all(0 <= s < 2**63 for s in seeds)


def test_dropout_in_a_model_active_in_fit_inactive_in_predict():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([layers.Dropout(0.5, input_shape=(20,))])
    x = np.ones((4, 20), dtype="float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    y = model(torch.as_tensor(x), training=True)
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}


@pytest.mark.parametrize("rate", [-0.1, 1.5, "a"])
def test_dropout_bad_rate(rate):
    with pytest.raises(ValueError, match="Received: rate="):
        layers.Dropout(rate)


# ---- LayerNormalization -------------------------------------------------------------------------------------------


def _layer_norm_np(x, gamma, beta, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_layer_normalization_layer_test():
    run_layer_test(
        layers.LayerNormalization,
        {"epsilon": 1e-5},
        input_shape=(3, 4, 5),
        expected_output_shape=(3, 4, 5),
        expected_num_trainable_weights=2,
    )
    run_layer_test(
        layers.LayerNormalization,
        {"axis": [-2, -1], "center": False, "gamma_regularizer": "l2"},
        input_shape=(3, 4, 5),
        expected_output_shape=(3, 4, 5),
        expected_num_trainable_weights=1,
        expected_num_losses=1,
    )


def test_layer_normalization_matches_numpy_with_trained_weights():
    layer = layers.LayerNormalization(axis=-1)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(6, 10)).astype("float32")
    layer.build((None, 10))
    gamma = np.linspace(0.5, 2.0, 10).astype("float32")
    beta = np.linspace(-1.0, 1.0, 10).astype("float32")
    layer.set_weights([gamma, beta])
    y = layer(torch.as_tensor(x))
    expected = _layer_norm_np(x.astype(np.float64), gamma, beta, -1, 1e-3)
    np.testing.assert_allclose(_np(y), expected, rtol=1e-5, atol=1e-5)
    assert [p._tritonnn_path.split("/")[-1] for p in layer.weights] == ["gamma", "beta"]


def test_layer_normalization_default_epsilon_is_keras():
    layer = layers.LayerNormalization()
    assert layer.epsilon == 1e-3 and layer.axis == -1 and layer.center and layer.scale
    # A tiny-variance row shows epsilon: var 1e-4 gives 1e-2 / sqrt(1e-4 + 1e-3), not 1.
    x = torch.tensor([[-0.01, 0.01]])
    np.testing.assert_allclose(_np(layer(x))[0, 1], 0.01 / np.sqrt(1e-4 + 1e-3), rtol=1e-5)


def test_layer_normalization_under_mixed_precision_keeps_fp32_weights():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = layers.LayerNormalization()
        y = layer(torch.randn(4, 8))
        assert y.dtype == torch.bfloat16 and layer.gamma.dtype == torch.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ---- BatchNormalization -------------------------------------------------------------------------------------------


def test_batch_normalization_layer_test():
    run_layer_test(
        layers.BatchNormalization,
        {"momentum": 0.9},
        input_shape=(8, 5),
        expected_output_shape=(8, 5),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=2,
    )
    run_layer_test(
        layers.BatchNormalization,
        {"axis": 1, "center": False, "scale": False},
        input_shape=(4, 3, 7),
        expected_output_shape=(4, 3, 7),
        expected_num_non_trainable_weights=2,
    )


def test_batch_normalization_moving_statistics_after_n_steps():
    """Keras' update rule, run by hand in numpy over five batches: moving = moving * m + batch_stat * (1 - m)."""
    rng = np.random.default_rng(1)
    layer = layers.BatchNormalization(momentum=0.8, epsilon=1e-3)
    mm, mv = np.zeros(3), np.ones(3)
    for _ in range(5):
        x = rng.normal(4.0, 2.0, size=(16, 3)).astype("float32")
        y = layer(torch.as_tensor(x), training=True)
        xd = x.astype(np.float64)
        mean, var = xd.mean(0), xd.var(0)  # numpy's var is the biased one, as Keras'
        np.testing.assert_allclose(_np(y), (xd - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)
        mm, mv = mm * 0.8 + mean * 0.2, mv * 0.8 + var * 0.2
    np.testing.assert_allclose(_np(layer.moving_mean), mm, rtol=1e-5)
    np.testing.assert_allclose(_np(layer.moving_variance), mv, rtol=1e-5)
    x = rng.normal(size=(4, 3)).astype("float32")
    y = layer(torch.as_tensor(x), training=False)
    np.testing.assert_allclose(_np(y), (x - mm) / np.sqrt(mv + 1e-3), rtol=1e-4, atol=1e-5)


def test_batch_normalization_frozen_layer_runs_in_inference_mode():
    layer = layers.BatchNormalization()
    layer.trainable = False
    x = torch.randn(8, 4) * 3 + 1
    y = layer(x, training=True)
    np.testing.assert_allclose(_np(y), _np(x) / np.sqrt(1.0 + 1e-3), rtol=1e-5)
    assert torch.equal(layer.moving_mean, torch.zeros(4))


def test_batch_normalization_trains_in_a_model_and_predicts_with_moving_stats():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([layers.Dense(4, input_shape=(3,)), layers.BatchNormalization(), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    model.fit(x, x[:, :1], epochs=1, batch_size=8, verbose=0)
    bn = model.layers[1]
    assert not torch.equal(bn.moving_mean, torch.zeros(4, device=bn.moving_mean.device)), "fit updates the stats"
    assert len(bn.non_trainable_weights) == 2
    a, b = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(a, b)


def test_batch_normalization_bad_arguments():
    with pytest.raises(ValueError, match="Received: momentum=1.5"):
        layers.BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="should have a defined dimension"):
        layers.BatchNormalization().build((None, None))
    with pytest.raises(ValueError, match="Unknown constraint: 'non_negative'"):
        layers.BatchNormalization(gamma_constraint="non_negative")


# ---- Embedding ----------------------------------------------------------------------------------------------------


def test_embedding_layer_test():
    run_layer_test(
        layers.Embedding,
        {"input_dim": 10, "output_dim": 4},
        input_data=torch.tensor([[0, 3, 9], [1, 1, 2]]),
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=1,
    )


def test_embedding_looks_up_rows_and_keeps_integer_inputs():
    layer = layers.Embedding(5, 3, embeddings_initializer="uniform")
    layer.build(None)
    table = layer.get_weights()[0]
    assert table.shape == (5, 3) and np.abs(table).max() <= 0.05  # Keras' RandomUniform(-0.05, 0.05)
    idx = np.array([[4, 0], [2, 2]])
    np.testing.assert_array_equal(_np(layer(idx)), table[idx].astype(np.float64))
    assert layer(torch.tensor([4], dtype=torch.int64)).dtype == torch.float32  # ints in, compute dtype out
    np.testing.assert_array_equal(_np(layer(np.array([1.9, 3.0]))), table[[1, 3]].astype(np.float64))


@pytest.mark.parametrize("bad", [[-1], [5], [[0, 7]]])
def test_embedding_out_of_range_index_is_a_value_error(bad):
    with pytest.raises(ValueError, match="out of range"):
        layers.Embedding(5, 2)(torch.tensor(bad))


def test_embedding_mask_zero_and_validation():
    layer = layers.Embedding(4, 2, mask_zero=True)
    assert torch.equal(layer.compute_mask(torch.tensor([[0, 1, 0]])), torch.tensor([[False, True, False]]))
    assert layers.Embedding(4, 2).compute_mask(torch.tensor([0])) is None
    with pytest.raises(ValueError, match="Received: input_dim=0"):
        layers.Embedding(0, 2)
    with pytest.raises(ValueError, match="Received: output_dim=-2"):
        layers.Embedding(3, -2)


def test_embedding_gradient_accumulates_repeated_indices():
    layer = layers.Embedding(4, 2)
    layer(torch.tensor([1, 1, 3])).sum().backward()
    np.testing.assert_array_equal(_np(layer.embeddings.grad), [[0, 0], [2, 2], [0, 0], [1, 1]])


# ---- Global pooling -----------------------------------------------------------------------------------------------


def test_global_pooling_layer_tests():
    run_layer_test(layers.GlobalAveragePooling1D, {}, input_shape=(2, 5, 3), expected_output_shape=(2, 3))
    run_layer_test(
        layers.GlobalMaxPooling1D, {"keepdims": True}, input_shape=(2, 5, 3), expected_output_shape=(2, 1, 3)
    )
    run_layer_test(
        layers.GlobalAveragePooling1D,
        {"data_format": "channels_first"},
        input_shape=(2, 5, 3),
        expected_output_shape=(2, 5),
    )


def test_global_pooling_values_and_mask():
    x = np.arange(24, dtype="float32").reshape(2, 4, 3)
    np.testing.assert_array_equal(_np(layers.GlobalAveragePooling1D()(x)), x.mean(1))
    np.testing.assert_array_equal(_np(layers.GlobalMaxPooling1D(data_format="channels_first")(x)), x.max(2))
    mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    y = layers.GlobalAveragePooling1D()(torch.as_tensor(x), mask=torch.as_tensor(mask))
    np.testing.assert_allclose(_np(y), np.stack([x[0, :2].mean(0), x[1, :1].mean(0)]))


def test_global_pooling_keras_names():
    keras.layers.layer.clear_session()
    assert layers.GlobalAveragePooling1D().name == "global_average_pooling1d"
    assert layers.GlobalAveragePooling1D().name == "global_average_pooling1d_1"
    assert layers.GlobalMaxPooling1D().name == "global_max_pooling1d"
    assert layers.GlobalMaxPooling1D(name="pool").name == "pool"


def test_global_pooling_bad_input():
    with pytest.raises(ValueError, match="Received: data_format=channels_middle"):
        layers.GlobalMaxPooling1D(data_format="channels_middle")
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        layers.GlobalAveragePooling1D()(torch.ones(2, 3))


# ---- Merging ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, fn",
    [
        (layers.Add, lambda a, b: a + b),
        (layers.Subtract, lambda a, b: a - b),
        (layers.Multiply, lambda a, b: a * b),
        (layers.Average, lambda a, b: (a + b) / 2),
        (layers.Maximum, np.maximum),
        (layers.Minimum, np.minimum),
    ],
)
def test_merge_layers(cls, fn):
    layer = run_layer_test(cls, {}, input_shape=[(2, 3), (2, 3)], expected_output_shape=(2, 3))
    a, b = np.random.default_rng(0).normal(size=(2, 2, 3)).astype("float32")
    np.testing.assert_allclose(_np(layer([torch.as_tensor(a), torch.as_tensor(b)])), fn(a, b), rtol=1e-6)


def test_merge_shapes_broadcast_and_mismatch():
    assert layers.Add().compute_output_shape([(None, 4, 1), (None, 4, 5)]) == (None, 4, 5)
    assert layers.Multiply().compute_output_shape([(None, None, 5), (None, 3, 5), (None, 3, 1)]) == (None, None, 5)
    assert layers.Average().compute_output_shape([(None, 5), (None, 3, 5)]) == (None, 3, 5)
    with pytest.raises(ValueError, match="Inputs have incompatible shapes"):
        layers.Add().compute_output_shape([(None, 4), (None, 5)])
    with pytest.raises(ValueError, match="Inputs have incompatible shapes"):
        layers.Add()([torch.ones(2, 4), torch.ones(2, 5)])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract().compute_output_shape([(None, 4)] * 3)
    with pytest.raises(ValueError, match="should be called on a list of inputs"):
        layers.Add()(torch.ones(2, 3))
    with pytest.raises(ValueError, match="different batch sizes"):
        layers.Add().compute_output_shape([(2, 3), (4, 3)])
    assert float(layers.add([torch.ones(1, 2), torch.ones(1, 2)]).sum()) == 4.0


def test_concatenate():
    layer = run_layer_test(
        layers.Concatenate, {"axis": 1}, input_shape=[(2, 3, 4), (2, 5, 4)], expected_output_shape=(2, 8, 4)
    )
    assert layer.compute_output_shape([(None, 3, 4), (None, None, 4)]) == (None, None, 4)
    assert layers.Concatenate().compute_output_shape([(None, 3, 4), (None, 3, 2)]) == (None, 3, 6)
    a, b = np.ones((2, 1, 2), "float32"), np.zeros((2, 1, 3), "float32")
    np.testing.assert_array_equal(_np(layers.concatenate([a, b])), np.concatenate([a, b], axis=-1))
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate(axis=-1).compute_output_shape([(None, 3, 4), (None, 2, 4)])
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate()([torch.ones(2, 3), torch.ones(2, 3, 1)])
    with pytest.raises(ValueError, match="at least 1 input"):
        layers.Concatenate().compute_output_shape([])


def test_dropout_next_seed_drives_the_fused_dense_dropout_to_the_same_mask():
    """What the API engineer's Dense+Dropout fusion will do: kernels.dense(..., dropout_seed=layer.next_seed())."""
    from tritonnn import kernels

    torch.manual_seed(0)
    dense = layers.Dense(16, activation="relu")
    x = torch.randn(8, 12)
    h = dense(x)
    unfused = layers.Dropout(0.3, seed=42)(h, training=True)
    fused = kernels.dense(
        x, dense.kernel, dense.bias, "relu", dropout_rate=0.3, dropout_seed=layers.Dropout(0.3, seed=42).next_seed()
    )
    assert torch.equal(fused, unfused)


def test_batch_normalization_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = layers.BatchNormalization(momentum=0.5)
        x = torch.randn(16, 4) * 2 + 3
        y = layer(x, training=True)
        assert y.dtype == torch.bfloat16 and layer.moving_mean.dtype == torch.float32
        xb = x.to(torch.bfloat16).double()  # the layer sees the bf16 cast of x, normalized in fp32
        np.testing.assert_allclose(_np(layer.moving_mean), 0.5 * _np(xb.mean(0)), rtol=1e-5)
        np.testing.assert_allclose(_np(y), _np((xb - xb.mean(0)) / torch.sqrt(xb.var(0, unbiased=False) + 1e-3)),
                                   atol=2e-2, rtol=2e-2)  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy("float32")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 3), min_size=1, max_size=3),
    st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=2, max_size=3),
)
def test_merge_compute_output_shape_agrees_with_the_computed_shape(base, ones_masks):
    """Inputs made by replacing some sizes of one shape with 1: they broadcast, and the declared shape must be the
    shape the layer actually returns, for every element-wise merge layer."""
    shapes = [tuple(1 if m[i] else d for i, d in enumerate(base)) for m in ones_masks]
    inputs = [torch.ones((2, *s)) for s in shapes]
    for cls in (layers.Add, layers.Multiply, layers.Average, layers.Maximum):
        declared = cls().compute_output_shape([(None, *s) for s in shapes])
        assert declared == (None, *tuple(cls()(inputs).shape[1:]))
    axis_shapes = [(*base[:-1], k + 1) for k in range(len(shapes))]
    out = layers.Concatenate()([torch.ones((2, *s)) for s in axis_shapes])
    assert layers.Concatenate().compute_output_shape([(None, *s) for s in axis_shapes]) == (None, *out.shape[1:])


def test_layer_normalization_layer_on_the_triton_kernel_matches_the_torch_path():
    from tritonnn.kernels import HAS_TRITON, backend_scope

    if not HAS_TRITON:
        pytest.skip("Triton is not installed")
    layer = layers.LayerNormalization()
    x = torch.randn(5, 24) * 3 + 1
    results = []
    for name in ("torch", "triton"):
        layer.zero_grad()
        with backend_scope(name):
            y = layer(x)
            (y * torch.arange(24.0)).sum().backward()
        results.append((y.detach(), layer.gamma.grad.clone(), layer.beta.grad.clone()))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-5)
