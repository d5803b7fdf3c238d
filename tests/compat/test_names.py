"""Keras 3's names an MLP script reaches, against real Keras: the regularizers' and initializers' lowercase aliases
(the classes themselves in Keras 3), OrthogonalRegularizer, Identity/Orthogonal, ``keras.backend``, the new
``keras.config`` settings, ``keras.utils`` helpers, the top-level classes and ``keras.device``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonnn as tk

W = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")


# ---- regularizers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alias, cls", [("l1", "L1"), ("l2", "L2"), ("l1_l2", "L1L2"), ("orthogonal_regularizer", "OrthogonalRegularizer")]
)
def test_regularizer_aliases_are_the_classes_as_in_keras(keras_ref, alias, cls):
    assert getattr(keras_ref.regularizers, alias) is getattr(keras_ref.regularizers, cls)
    assert getattr(tk.regularizers, alias) is getattr(tk.regularizers, cls)
    assert getattr(tk.regularizers, alias)().get_config() == pytest.approx(
        getattr(keras_ref.regularizers, alias)().get_config()
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda R: R.l1(0.3),
        lambda R: R.l2(),
        lambda R: R.l1_l2(l1=0.01, l2=0.02),
        lambda R: R.l1_l2(),
        lambda R: R.OrthogonalRegularizer(),
        lambda R: R.orthogonal_regularizer(factor=0.5, mode="columns"),
    ],
)
def test_regularizer_penalties_match_keras(keras_ref, make):
    ref = float(keras_ref.ops.convert_to_numpy(make(keras_ref.regularizers)(keras_ref.ops.array(W))))
    got = make(tk.regularizers)(torch.tensor(W)).item()
    assert got == pytest.approx(ref, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", ["l1", "l2", "l1l2", "L1L2", "L1", "orthogonal_regularizer", "OrthogonalRegularizer"])
def test_regularizer_names_resolve_as_in_keras(keras_ref, name):
    ref, got = keras_ref.regularizers.get(name), tk.regularizers.get(name)
    assert type(got).__name__ == type(ref).__name__
    assert got.get_config() == pytest.approx(ref.get_config())


def test_l1_l2_string_is_refused_as_in_keras(keras_ref):
    with pytest.raises(ValueError):
        keras_ref.regularizers.get("l1_l2")
    with pytest.raises(ValueError, match="Did you mean 'l1l2'"):
        tk.regularizers.get("l1_l2")


def test_orthogonal_regularizer_checks_and_round_trips():
    with pytest.raises(ValueError, match="rank 2"):
        tk.regularizers.OrthogonalRegularizer()(torch.ones(3))
    with pytest.raises(ValueError, match="mode"):
        tk.regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="factor"):
        tk.regularizers.OrthogonalRegularizer(factor=-1)
    reg = tk.regularizers.deserialize(tk.regularizers.serialize(tk.regularizers.OrthogonalRegularizer(0.2, "columns")))
    assert reg.get_config() == {"factor": 0.2, "mode": "columns"}
    model = tk.Sequential([tk.Input((6,)), tk.layers.Dense(4, kernel_regularizer="orthogonal_regularizer")])
    model(torch.ones(2, 6))
    assert len(model.losses) == 1 and model.losses[0].item() > 0


# ---- initializers ---------------------------------------------------------------------------------------------------

INIT_ALIASES = [
    ("zeros", "Zeros"), ("ones", "Ones"), ("constant", "Constant"), ("identity", "Identity"),
    ("orthogonal", "Orthogonal"), ("random_normal", "RandomNormal"), ("random_uniform", "RandomUniform"),
    ("truncated_normal", "TruncatedNormal"), ("variance_scaling", "VarianceScaling"),
    ("glorot_uniform", "GlorotUniform"), ("glorot_normal", "GlorotNormal"), ("he_uniform", "HeUniform"),
    ("he_normal", "HeNormal"), ("lecun_uniform", "LecunUniform"), ("lecun_normal", "LecunNormal"),
    ("IdentityInitializer", "Identity"), ("OrthogonalInitializer", "Orthogonal"),
]  # fmt: skip


@pytest.mark.parametrize("alias, cls", INIT_ALIASES)
def test_initializer_aliases_are_the_classes_as_in_keras(keras_ref, alias, cls):
    assert getattr(keras_ref.initializers, alias) is getattr(keras_ref.initializers, cls)
    assert getattr(tk.initializers, alias) is getattr(tk.initializers, cls)


def test_identity_matches_keras_and_orthogonal_is_orthogonal(keras_ref):
    ref = keras_ref.ops.convert_to_numpy(keras_ref.initializers.Identity(gain=2.0)((3, 5)))
    np.testing.assert_array_equal(tk.initializers.identity(gain=2.0)((3, 5)).numpy(), ref)
    with pytest.raises(ValueError, match="2D"):
        tk.initializers.Identity()((2, 2, 2))
    for shape in [(6, 4), (4, 6), (2, 3, 5)]:
        q = tk.initializers.Orthogonal(gain=1.5, seed=3)(shape).reshape(-1, shape[-1]).double()
        small = min(q.shape)
        gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
        torch.testing.assert_close(gram, 2.25 * torch.eye(small, dtype=torch.float64), atol=1e-5, rtol=1e-5)
    a, b = tk.initializers.Orthogonal(seed=1)((4, 4)), tk.initializers.Orthogonal(seed=1)((4, 4))
    assert torch.equal(a, b)
    assert tk.initializers.Orthogonal(seed=1).get_config() == keras_ref.initializers.Orthogonal(seed=1).get_config()
    with pytest.raises(ValueError, match="two-dimensional"):
        tk.initializers.Orthogonal()((3,))
    layer = tk.layers.Dense(4, kernel_initializer="orthogonal")
    layer.build((None, 4))
    torch.testing.assert_close(layer.kernel.detach().T @ layer.kernel.detach(), torch.eye(4), atol=1e-5, rtol=1e-5)


def test_initializers_deserialize():
    init = tk.initializers.deserialize(tk.initializers.serialize(tk.initializers.HeNormal(seed=4)))
    assert isinstance(init, tk.initializers.HeNormal) and init.seed == 4
    assert isinstance(tk.initializers.deserialize("identity"), tk.initializers.Identity)
    with pytest.raises(ValueError, match="Unknown initializer"):
        tk.initializers.deserialize("idenity")


# ---- backend, config -------------------------------------------------------------------------------------------------

DTYPES = [
    None,
    "float32",
    "bfloat16",
    "int8",
    "uint8",
    "bool",
    int,
    float,
    bool,
    np.float16,
    np.dtype("int64"),
    torch.float64,
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_backend_dtype_helpers_match_keras(keras_ref, dtype):
    B = keras_ref.backend
    assert tk.backend.standardize_dtype(dtype) == B.standardize_dtype(dtype)
    assert tk.backend.is_float_dtype(dtype) == B.is_float_dtype(dtype)
    assert tk.backend.is_int_dtype(dtype) == B.is_int_dtype(dtype)
    assert tk.utils.standardize_dtype(dtype) == keras_ref.utils.standardize_dtype(dtype)


def test_backend_settings_and_session(keras_ref):
    B = keras_ref.backend
    assert tk.backend.backend() == B.backend() == tk.config.backend() == "torch"
    assert tk.backend.floatx() == B.floatx() and tk.backend.epsilon() == B.epsilon() == tk.config.epsilon()
    assert tk.backend.image_data_format() == B.image_data_format() == tk.config.image_data_format()
    with pytest.raises(ValueError, match="Invalid dtype"):
        tk.backend.standardize_dtype("float")
    tk.backend.clear_session()
    assert tk.layers.Dense(2).name == "dense" and tk.layers.Dense(2).name == "dense_1"
    assert tk.backend.get_uid("dense") == 3  # the counter automatic names use, as in Keras
    assert tk.backend.get_uid("thing") == 1 and tk.backend.get_uid("thing") == 2
    tk.utils.clear_session()
    assert tk.layers.Dense(2).name == "dense"
    x = tk.Input((3,))
    assert tk.backend.is_keras_tensor(x) and tk.utils.is_keras_tensor(x) and not tk.backend.is_keras_tensor(W)
    assert B.is_keras_tensor(keras_ref.Input((3,)))


def test_config_epsilon_and_image_data_format_setters():
    try:
        tk.config.set_epsilon(1e-5)
        assert tk.backend.epsilon() == 1e-5
        w = torch.zeros(3, 2)
        assert torch.equal(tk.constraints.UnitNorm()(w), w)  # divides by norm + epsilon
        with pytest.raises(ValueError, match="epsilon"):
            tk.config.set_epsilon("small")
        tk.backend.set_image_data_format("channels_first")
        assert tk.config.image_data_format() == "channels_first"
        with pytest.raises(ValueError, match="data_format"):
            tk.config.set_image_data_format("nhwc")
    finally:
        tk.config.set_epsilon(1e-7)
        tk.config.set_image_data_format("channels_last")
    assert tk.config.dtype_policy().name == "float32"
    try:
        tk.config.set_dtype_policy("mixed_bfloat16")
        assert tk.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        tk.config.set_dtype_policy(None)


def test_device_scope_puts_weights_there_and_restores_the_default():
    before = tk.config.default_device()
    with tk.device("cpu"):
        layer = tk.layers.Dense(2)
        layer.build((None, 3))
        assert layer.kernel.device.type == "cpu"
    assert tk.config.default_device() == before
    with pytest.raises(ValueError, match="Invalid device name"):
        with tk.device("abacus"):
            pass


# ---- utils ---------------------------------------------------------------------------------------------------------


def test_utils_normalize_and_packing_match_keras(keras_ref):
    a = np.array([[3.0, 4.0], [0.0, 0.0]], "float32")
    np.testing.assert_allclose(tk.utils.normalize(a), keras_ref.utils.normalize(a))
    np.testing.assert_allclose(tk.utils.normalize(a, axis=0, order=1), keras_ref.utils.normalize(a, axis=0, order=1))
    got = tk.utils.normalize(torch.tensor(a)).cpu().numpy()
    ref = keras_ref.ops.convert_to_numpy(keras_ref.utils.normalize(keras_ref.ops.array(a)))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    for args in [(1,), (1, 2), (1, 2, 3), ((1, 2),), (1, None, 3)]:
        assert tk.utils.pack_x_y_sample_weight(*args) == keras_ref.utils.pack_x_y_sample_weight(*args)
    for data in [1, (1,), (1, 2), [1, 2, 3]]:
        assert tk.utils.unpack_x_y_sample_weight(data) == keras_ref.utils.unpack_x_y_sample_weight(data)
    with pytest.raises(ValueError, match="format"):
        tk.utils.unpack_x_y_sample_weight((1, 2, 3, 4))


# ---- the top level --------------------------------------------------------------------------------------------------


def test_top_level_classes_are_the_framework_bases():
    assert isinstance(tk.Input((2,)), tk.KerasTensor)
    assert issubclass(tk.layers.Dense, tk.Layer) and tk.Layer is tk.layers.Layer
    assert issubclass(tk.optimizers.Adam, tk.Optimizer)
    assert isinstance(tk.losses.MeanSquaredError(), tk.Loss) and isinstance(tk.metrics.Mean(), tk.Metric)
    assert isinstance(tk.initializers.Zeros(), tk.Initializer) and isinstance(tk.regularizers.L2(), tk.Regularizer)
    assert tk.DTypePolicy("mixed_float16").compute_dtype == "float16"
    assert tk.mixed_precision.LossScaleOptimizer is tk.optimizers.LossScaleOptimizer
    for module in ("activations", "backend", "constraints", "config", "ops", "utils"):
        assert getattr(tk, module).__name__ == f"tritonnn.{module}"
