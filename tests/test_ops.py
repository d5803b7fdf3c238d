"""tritonnn.ops against numpy: values, Keras' argument names, and Keras' dtype rules for numpy and Python inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tritonnn import ops

RNG = np.random.default_rng(0)
A = RNG.normal(size=(3, 4)).astype("float32")
B = RNG.normal(size=(3, 4)).astype("float32")
POS = np.abs(A) + 0.5


def _np(x):
    return ops.convert_to_numpy(x)


def _has_ml_dtypes() -> bool:
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return False
    return True


BINARY = [
    ("add", np.add),
    ("subtract", np.subtract),
    ("multiply", np.multiply),
    ("divide", np.divide),
    ("maximum", np.maximum),
    ("minimum", np.minimum),
    ("equal", np.equal),
    ("not_equal", np.not_equal),
    ("greater", np.greater),
    ("greater_equal", np.greater_equal),
    ("less", np.less),
    ("less_equal", np.less_equal),
]


@pytest.mark.parametrize("name, ref", BINARY)
def test_binary_ops_on_numpy_and_tensors(name, ref):
    fn = getattr(ops, name)
    expected = ref(A, B)
    np.testing.assert_allclose(_np(fn(A, B)), expected, rtol=1e-6)
    np.testing.assert_allclose(_np(fn(torch.as_tensor(A), B)), expected, rtol=1e-6)
    np.testing.assert_allclose(_np(fn(A, 0.5)), ref(A, np.float32(0.5)), rtol=1e-6)


UNARY = [
    ("abs", np.abs, A),
    ("square", np.square, A),
    ("sqrt", np.sqrt, POS),
    ("exp", np.exp, A),
    ("log", np.log, POS),
    ("negative", np.negative, A),
    ("sign", np.sign, A),
    ("floor", np.floor, A),
    ("ceil", np.ceil, A),
    ("tanh", np.tanh, A),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), A),
    ("relu", lambda x: np.maximum(x, 0), A),
]


@pytest.mark.parametrize("name, ref, x", UNARY)
def test_unary_ops(name, ref, x):
    np.testing.assert_allclose(_np(getattr(ops, name)(x)), ref(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mean", "sum", "max", "min"])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1), -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(name, axis, keepdims):
    ref = getattr(np, name)(A.astype(np.float64), axis=axis, keepdims=keepdims)
    out = getattr(ops, name)(A, axis=axis, keepdims=keepdims)
    assert tuple(out.shape) == np.shape(ref)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-5)


@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_argmax_argmin_are_int32_first_occurrence(axis, keepdims):
    x = np.array([[1, 5, 5], [7, 0, 7]], dtype="float32")
    for name in ("argmax", "argmin"):
        out = getattr(ops, name)(x, axis=axis, keepdims=keepdims)
        assert out.dtype == torch.int32
        np.testing.assert_array_equal(_np(out), getattr(np, name)(x, axis=axis, keepdims=keepdims))


def test_keras_dtype_rules_for_python_and_numpy_inputs():
    assert ops.convert_to_tensor(3).dtype == torch.int32
    assert ops.convert_to_tensor(3.0).dtype == torch.float32
    assert ops.convert_to_tensor([1, 2.5]).dtype == torch.float32
    assert ops.convert_to_tensor(True).dtype == torch.bool
    assert ops.convert_to_tensor(np.zeros(2, "float64")).dtype == torch.float64
    assert ops.convert_to_tensor(np.zeros(2, "int64")).dtype == torch.int64
    assert ops.convert_to_tensor([1, 2], dtype="float16").dtype == torch.float16
    # A Python scalar is weak: it takes the tensor's dtype when it fits.
    assert ops.add(np.ones(2, "float16"), 1.5).dtype == torch.float16
    assert ops.multiply(np.ones(2, "int32"), 2).dtype == torch.int32
    assert ops.add(np.ones(2, "int32"), 1.5).dtype == torch.float32
    assert ops.mean(np.array([1, 2, 4], "int32")).dtype == torch.float32
    assert ops.sum(np.array([True, False, True])).dtype == torch.int32
    assert int(ops.sum(np.array([True, False, True]))) == 2
    assert ops.cast(A, "bfloat16").dtype == torch.bfloat16
    # bfloat16 as ml_dtypes' (Keras' dependency) where installed, as Keras gives; float32 otherwise
    assert str(ops.convert_to_numpy(ops.cast(A, "bfloat16")).dtype) == ("bfloat16" if _has_ml_dtypes() else "float32")
    assert ops.dtype(A) == "float32"
    assert ops.shape(A) == (3, 4) and ops.ndim(A) == 2 and ops.size(A) == 12


def test_linear_algebra():
    np.testing.assert_allclose(_np(ops.matmul(A, B.T)), A @ B.T, rtol=1e-5)
    x3 = RNG.normal(size=(2, 3, 4)).astype("float32")
    w = RNG.normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(_np(ops.dot(x3, w)), np.dot(x3, w), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(ops.dot(A[0], B[0])), np.dot(A[0], B[0]), rtol=1e-5)
    np.testing.assert_allclose(_np(ops.einsum("ij,kj->ik", A, B)), A @ B.T, rtol=1e-5)


def test_shape_ops():
    x = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(_np(ops.reshape(x, (4, -1))), x.reshape(4, -1))
    np.testing.assert_array_equal(_np(ops.transpose(x)), x.transpose())
    np.testing.assert_array_equal(_np(ops.transpose(x, (1, 0, 2))), x.transpose(1, 0, 2))
    assert ops.expand_dims(x, 1).shape == (2, 1, 3, 4)
    assert ops.expand_dims(x, -1).shape == (2, 3, 4, 1)
    assert ops.squeeze(np.ones((1, 3, 1))).shape == (3,)
    assert ops.squeeze(np.ones((1, 3, 1)), axis=0).shape == (3, 1)
    with pytest.raises(ValueError, match="Cannot squeeze axis 1"):
        ops.squeeze(np.ones((1, 3)), axis=1)
    np.testing.assert_array_equal(_np(ops.concatenate([A, B], axis=1)), np.concatenate([A, B], axis=1))
    np.testing.assert_array_equal(_np(ops.stack([A, B], axis=1)), np.stack([A, B], axis=1))
    assert ops.concatenate([np.ones(2, "int32"), np.ones(2, "float32")]).dtype == torch.float32
    np.testing.assert_array_equal(_np(ops.take(x, [2, -1], axis=2)), np.take(x, [2, -1], axis=2))
    np.testing.assert_array_equal(_np(ops.take(x, [[0, 5]])), np.take(x, [[0, 5]]))
    parts = ops.split(np.arange(6), 3)
    assert [list(_np(p)) for p in parts] == [[0, 1], [2, 3], [4, 5]]


def test_where_clip_one_hot_and_logic():
    np.testing.assert_array_equal(_np(ops.where(A > 0, A, 0.0)), np.where(A > 0, A, 0.0))
    rows, cols = ops.where(np.array([[True, False], [False, True]]))
    assert list(_np(rows)) == [0, 1] and list(_np(cols)) == [0, 1]
    with pytest.raises(ValueError, match="both should be `None`"):
        ops.where(A > 0, A)
    np.testing.assert_array_equal(_np(ops.clip(A, -0.5, 0.5)), np.clip(A, -0.5, 0.5))
    oh = ops.one_hot(np.array([0, 2, -1, 3]), 3)
    np.testing.assert_array_equal(_np(oh), [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    assert oh.dtype == torch.float32
    assert ops.one_hot(np.array([1, 0]), 2, axis=0).shape == (2, 2)
    t, f = np.array([True, True, False]), np.array([True, False, False])
    np.testing.assert_array_equal(_np(ops.logical_and(t, f)), t & f)
    np.testing.assert_array_equal(_np(ops.logical_or(t, f)), t | f)
    np.testing.assert_array_equal(_np(ops.logical_not(t)), ~t)


def test_creation():
    assert ops.zeros((2, 3)).dtype == torch.float32 and float(ops.zeros((2, 3)).sum()) == 0
    assert ops.ones(4, dtype="int32").dtype == torch.int32
    assert ops.zeros_like(np.ones((2, 2), "int64")).dtype == torch.int64
    assert ops.ones_like(A, dtype="float16").dtype == torch.float16
    np.testing.assert_array_equal(_np(ops.arange(5)), np.arange(5))
    assert ops.arange(5).dtype == torch.int32 and ops.arange(0.0, 1.0, 0.25).dtype == torch.float32
    np.testing.assert_array_equal(_np(ops.full((2,), 7)), [7, 7])


def test_softmax_family_matches_numpy():
    e = np.exp(A - A.max(-1, keepdims=True))
    np.testing.assert_allclose(_np(ops.softmax(A)), e / e.sum(-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(_np(ops.log_softmax(A)), np.log(e / e.sum(-1, keepdims=True)), rtol=1e-5, atol=1e-6)
    e0 = np.exp(A - A.max(0, keepdims=True))
    np.testing.assert_allclose(_np(ops.softmax(A, axis=0)), e0 / e0.sum(0, keepdims=True), rtol=1e-5)
    ref = np.log(np.exp(A.astype(np.float64)).sum(1))
    np.testing.assert_allclose(_np(ops.logsumexp(A, axis=1)), ref, rtol=1e-5)


def test_top_k_in_top_k_and_moments():
    values, idx = ops.top_k(np.array([[1.0, 4.0, 3.0, 2.0]]), 2)
    assert _np(values).tolist() == [[4.0, 3.0]] and _np(idx).tolist() == [[1, 2]]
    preds = np.array([[0.1, 0.5, 0.5], [0.3, 0.2, 0.1]], dtype="float32")
    assert _np(ops.in_top_k(np.array([2, 1]), preds, 1)).tolist() == [True, False]  # a tie with the top is in
    mean, var = ops.moments(A, axes=[0])
    np.testing.assert_allclose(_np(mean), A.mean(0), rtol=1e-5)
    np.testing.assert_allclose(_np(var), A.var(0), rtol=1e-5)
    np.testing.assert_allclose(_np(ops.var(A, axis=1)), A.var(1), rtol=1e-5)
    np.testing.assert_allclose(_np(ops.std(A)), A.std(), rtol=1e-5)


def test_divide_no_nan_and_ops_are_differentiable():
    np.testing.assert_array_equal(_np(ops.divide_no_nan(np.array([1.0, 2.0]), np.array([0.0, 4.0]))), [0.0, 0.5])
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    y = ops.sum(ops.square(ops.relu(x)), axis=1)
    ops.mean(y).backward()
    np.testing.assert_allclose(_np(x.grad), np.where(_np(x) > 0, _np(x), 0.0))


# The ops added for issue #14 against numpy (tests/compat/test_ops_extra.py compares them with Keras itself).
NP_CASES = [
    ("cumprod", np.cumprod, (A,), {"axis": 1}),
    ("logaddexp", np.logaddexp, (A, B), {}),
    ("arctan2", np.arctan2, (A, B), {}),
    ("hypot", np.hypot, (A, B), {}),
    ("ptp", np.ptp, (A,), {"axis": 0}),
    ("median", np.median, (A,), {"axis": 1}),
    ("quantile", np.quantile, (A, 0.3), {"axis": 0}),
    ("nanmean", np.nanmean, (np.where(A > 1, np.nan, A),), {"axis": 1}),
    ("nanvar", np.nanvar, (np.where(A > 1, np.nan, A),), {}),
    ("nansum", np.nansum, (np.where(A > 1, np.nan, A),), {"axis": 0, "keepdims": True}),
    ("diff", np.diff, (A,), {"n": 2}),
    ("trace", np.trace, (A,), {"offset": 1}),
    ("outer", np.outer, (A[0], B[1]), {}),
    ("kron", np.kron, (A[:2, :2], B[:2, :2]), {}),
    ("cross", np.cross, (A[:, :3], B[:, :3]), {}),
    ("tril", np.tril, (A,), {"k": -1}),
    ("roll", np.roll, (A,), {"shift": 2, "axis": 1}),
    ("pad", np.pad, (A, ((1, 0), (2, 1))), {"mode": "symmetric"}),
    ("pad", np.pad, (A, 1), {"mode": "wrap"}),
    ("linspace", np.linspace, (0.0, 1.0, 7), {"endpoint": False}),
    ("geomspace", np.geomspace, (1.0, 100.0, 5), {}),
    ("moveaxis", np.moveaxis, (A[None], 0, -1), {}),
    ("isclose", np.isclose, (A, A + 1e-7), {}),
    ("searchsorted", np.searchsorted, (np.sort(A[0]), A[1]), {"side": "right"}),
    ("digitize", np.digitize, (A, np.array([-1.0, 0.0, 1.0], "float32")), {}),
    ("bincount", np.bincount, (np.array([0, 2, 2, 5]),), {"minlength": 7}),
    ("trapezoid", np.trapezoid, (A,), {"dx": 0.5}),
    ("corrcoef", np.corrcoef, (A,), {}),
]


@pytest.mark.parametrize("name, ref, args, kwargs", NP_CASES, ids=[c[0] for c in NP_CASES])
def test_added_ops_match_numpy(name, ref, args, kwargs):
    out = getattr(ops, name)(*args, **kwargs)
    expected = ref(*args, **kwargs)
    assert tuple(out.shape) == np.shape(expected)
    np.testing.assert_allclose(_np(out), expected, rtol=1e-5, atol=1e-6)


def test_added_ops_keep_keras_dtypes_and_namespaces():
    i = np.array([[1, -2], [3, 4]], "int32")
    assert ops.sin(i).dtype == torch.float32 and ops.cbrt(i.astype("int64")).dtype == torch.float64
    assert ops.cumprod(i > 0).dtype == torch.int32 and ops.prod(i > 0).dtype == torch.int32
    assert ops.nanmean(i).dtype == torch.float32 and ops.median(i.astype("float64")).dtype == torch.float32
    assert ops.maximum(np.ones(2, "float16"), 2.5).dtype == torch.float16  # a weak scalar beside a numpy array
    assert ops.add(np.array([True, False]), 2).dtype == torch.int32
    assert ops.matmul(np.ones((2, 2), "int8"), np.ones((2, 2), "int8")).dtype == torch.int32
    assert ops.nn.relu is ops.relu and ops.numpy.mean is ops.mean and "relu" not in ops.numpy.__all__
    np.testing.assert_array_equal(_np(ops.rearrange(A, "h (w c) -> c h w", c=2)), A.reshape(3, 2, 2).transpose(2, 0, 1))
    np.testing.assert_array_equal(_np(ops.segment_sum(i, np.array([1, 1]), num_segments=3)), [[0, 0], [4, 2], [0, 0]])
    np.testing.assert_array_equal(_np(ops.saturate_cast(np.array([300.0, -5.0]), "uint8")), [255, 0])
    with pytest.raises(TypeError):
        ops.ldexp(A, A)
    with pytest.raises(ValueError):
        ops.normalize(A, order=0)
