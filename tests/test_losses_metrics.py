"""The added losses and metrics against hand-worked values and independent numpy references."""

from __future__ import annotations

import copy
import math
import pickle
import types

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn import losses, metrics
from tritonnn.distribution import DataParallel
from tritonnn.trainers import data


def _f(x) -> float:
    return float(x.detach().cpu()) if isinstance(x, torch.Tensor) else float(x)


# ---- losses -------------------------------------------------------------------------------------------------------


def test_binary_crossentropy_probabilities_by_hand():
    y_true = np.array([[0.0, 1.0], [0.0, 0.0]])
    y_pred = torch.tensor([[0.6, 0.4], [0.4, 0.6]])
    per_sample = losses.binary_crossentropy(y_true, y_pred)
    expected = [-(math.log(0.4) + math.log(0.4)) / 2, -(math.log(0.6) + math.log(0.4)) / 2]
    np.testing.assert_allclose(per_sample.numpy(), expected, rtol=1e-6)
    assert _f(losses.BinaryCrossentropy()(y_true, y_pred)) == pytest.approx(sum(expected) / 2, rel=1e-6)
    assert losses.get("binary_crossentropy") is losses.binary_crossentropy  # a function name: the function (Keras)
    assert _f(losses.get("BinaryCrossentropy")(y_true, y_pred)) == pytest.approx(sum(expected) / 2, rel=1e-6)


def test_binary_crossentropy_clips_probabilities_like_keras():
    # p = 0 for a positive label: -log(1e-7), not inf.
    loss = losses.binary_crossentropy(np.array([[1.0]]), torch.tensor([[0.0]]))
    assert _f(loss[0]) == pytest.approx(-math.log(1e-7), rel=1e-4)


def test_binary_crossentropy_from_logits_and_label_smoothing():
    z = torch.tensor([[2.0, -1.0, 0.0]])
    y = np.array([[1.0, 0.0, 1.0]])
    ls = 0.2
    ts = y * (1 - ls) + 0.5 * ls
    p = 1 / (1 + np.exp(-z.numpy().astype(np.float64)))
    expected = -(ts * np.log(p) + (1 - ts) * np.log(1 - p)).mean()
    loss = losses.BinaryCrossentropy(from_logits=True, label_smoothing=ls)
    assert _f(loss(y, z)) == pytest.approx(expected, rel=1e-5)


def test_binary_crossentropy_matches_rank_of_labels_and_weights():
    y_pred = torch.tensor([[0.9], [0.2], [0.7]])
    y_true = np.array([1, 0, 0])  # rank 1 against (N, 1) predictions, as Keras expands it
    per = -np.log(np.array([0.9, 0.8, 0.3]))
    assert _f(losses.BinaryCrossentropy()(y_true, y_pred)) == pytest.approx(per.mean(), rel=1e-6)
    w = np.array([1.0, 0.0, 2.0])
    assert _f(losses.BinaryCrossentropy()(y_true, y_pred, sample_weight=w)) == pytest.approx(
        (per * w).sum() / 3, rel=1e-6
    )
    assert _f(losses.BinaryCrossentropy(reduction="sum")(y_true, y_pred)) == pytest.approx(per.sum(), rel=1e-6)


def test_binary_crossentropy_gradient_flows():
    z = torch.tensor([[0.5, -0.5]], requires_grad=True)
    losses.BinaryCrossentropy(from_logits=True)(np.array([[1.0, 0.0]]), z).backward()
    sig = 1 / (1 + np.exp(-np.array([0.5, -0.5])))
    np.testing.assert_allclose(z.grad.numpy()[0], (sig - [1.0, 0.0]) / 2, rtol=1e-5)


def test_huber_by_hand():
    y_true = np.array([[0.0, 1.0, 2.0, 3.0]])
    y_pred = torch.tensor([[0.5, 3.0, 2.0, 0.0]])
    # errors 0.5, 2, 0, -3 with delta 1: 0.125, 2 - 0.5, 0, 3 - 0.5
    assert _f(losses.Huber()(y_true, y_pred)) == pytest.approx((0.125 + 1.5 + 0.0 + 2.5) / 4, rel=1e-6)
    # delta 2.5: 0.125, 2 (quadratic), 0, 2.5*3 - 3.125
    assert _f(losses.Huber(delta=2.5)(y_true, y_pred)) == pytest.approx((0.125 + 2.0 + 0 + 4.375) / 4, rel=1e-6)
    assert _f(losses.huber(y_true, y_pred)[0]) == pytest.approx(4.125 / 4, rel=1e-6)
    for name in ("huber", "huber_loss"):
        assert isinstance(losses.get({"huber": "Huber", "huber_loss": "huber_loss"}[name]), losses.Huber)
    assert losses.get("huber") is losses.huber
    assert losses.Huber().name == "huber_loss"
    with pytest.raises(ValueError, match="Received: delta=-1"):
        losses.Huber(delta=-1)


def test_function_forms_return_per_sample_losses():
    probs = torch.tensor([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    labels = np.array([1, 2])
    expected = -np.log([0.95, 0.1])
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, probs).numpy(), expected, rtol=1e-5)
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(losses.categorical_crossentropy(onehot, probs).numpy(), expected, rtol=1e-5)
    logits = torch.log(torch.tensor([[0.2, 0.8]]))
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy([1], logits, from_logits=True).numpy(), -np.log([0.8]), rtol=1e-5
    )
    a, b = np.array([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 4.0], [1.0, -1.0]])
    np.testing.assert_allclose(losses.mean_squared_error(a, b).numpy(), [2.5, 1.0])
    np.testing.assert_allclose(losses.mean_absolute_error(a, b).numpy(), [1.5, 1.0])


def test_loss_config_round_trip():
    for loss in (losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), losses.Huber(delta=0.5)):
        clone = type(loss).from_config(loss.get_config())
        assert clone.get_config() == loss.get_config()


def test_binary_crossentropy_in_fit():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.layers.Dense(1, activation="sigmoid", input_shape=(4,))])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


# ---- metrics ------------------------------------------------------------------------------------------------------


def test_top_k_accuracies():
    preds = torch.tensor([[0.1, 0.9, 0.8], [0.05, 0.95, 0.0]])
    m = metrics.SparseTopKCategoricalAccuracy(k=1)
    m.update_state(np.array([[2], [1]]), preds)
    assert _f(m.result()) == pytest.approx(0.5)
    m = metrics.TopKCategoricalAccuracy(k=2)
    m.update_state(np.array([[1, 0, 0], [1, 0, 0]]), preds)  # 0.1 is third in row 0; 0.05 second in row 1
    assert _f(m.result()) == pytest.approx(0.5)
    m = metrics.get("top_k_categorical_accuracy")
    assert isinstance(m, metrics.TopKCategoricalAccuracy) and m.name == "top_k_categorical_accuracy"
    with pytest.raises(ValueError, match="Received: k=0"):
        metrics.TopKCategoricalAccuracy(k=0)


def test_top_k_matches_numpy_rank_count():
    rng = np.random.default_rng(3)
    preds = rng.normal(size=(50, 10)).astype("float32")
    labels = rng.integers(0, 10, size=50)
    m = metrics.SparseTopKCategoricalAccuracy(k=3)
    m.update_state(labels, torch.as_tensor(preds))
    rank = (preds > preds[np.arange(50), labels][:, None]).sum(1)  # how many scores beat the label's
    assert _f(m.result()) == pytest.approx(float((rank < 3).mean()), abs=1e-7)


def _counts(y_true, y_pred, thr):
    pos = y_pred > thr
    return (pos & y_true).sum(), (pos & ~y_true).sum(), (~pos & ~y_true).sum(), (~pos & y_true).sum()


def test_precision_recall_counts():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, size=200).astype(bool)
    y_pred = rng.uniform(size=200).astype("float32")
    p, r = metrics.Precision(), metrics.Recall()
    for lo in range(0, 200, 50):  # four batches accumulate
        p.update_state(y_true[lo : lo + 50], torch.as_tensor(y_pred[lo : lo + 50]))
        r.update_state(y_true[lo : lo + 50], torch.as_tensor(y_pred[lo : lo + 50]))
    tp, fp, _, fn = _counts(y_true, y_pred, 0.5)
    assert _f(p.result()) == pytest.approx(tp / (tp + fp), rel=1e-6)
    assert _f(r.result()) == pytest.approx(tp / (tp + fn), rel=1e-6)
    p.reset_state()
    assert _f(p.result()) == 0.0  # no predictions: 0, not NaN


def test_precision_recall_keras_examples_and_options():
    p = metrics.Precision()
    p.update_state([0, 1, 1, 1], torch.tensor([1.0, 0.0, 1.0, 1.0]))
    assert _f(p.result()) == pytest.approx(2 / 3)
    p = metrics.Precision()
    p.update_state([0, 1, 1, 1], torch.tensor([1.0, 0.0, 1.0, 1.0]), sample_weight=[0, 0, 1, 0])
    assert _f(p.result()) == pytest.approx(1.0)
    p = metrics.Precision(top_k=2)  # only the two highest scores count; ties go to the lower index, as Keras'
    p.update_state([0, 0, 1, 1], torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert _f(p.result()) == pytest.approx(0.0)
    p = metrics.Precision(top_k=2)
    p.update_state(np.array([[0, 0, 1, 1]]), torch.tensor([[0.1, 0.2, 0.9, 0.4]]))
    assert _f(p.result()) == pytest.approx(1.0)
    r = metrics.Recall(class_id=1)
    r.update_state(np.array([[0, 1], [0, 1], [1, 0]]), torch.tensor([[0.2, 0.7], [0.9, 0.1], [0.1, 0.9]]))
    assert _f(r.result()) == pytest.approx(0.5)
    r = metrics.Recall(thresholds=[0.0, 0.5, 0.95])
    r.update_state([1, 1, 0, 1], torch.tensor([0.3, 0.6, 0.9, 0.99]))
    np.testing.assert_allclose(r.result().numpy(), [1.0, 2 / 3, 1 / 3], rtol=1e-6)
    with pytest.raises(ValueError, match="Threshold values must be in \\[0, 1\\]"):
        metrics.Precision(thresholds=1.5)
    clone = metrics.Recall.from_config(metrics.Recall(thresholds=[0.2, 0.4], class_id=2).get_config())
    assert clone.thresholds == [0.2, 0.4] and clone.class_id == 2


def _auc_numpy(y_true, y_pred, num_thresholds=200, curve="ROC", w=None):
    """Keras' thresholds, strict comparisons, trapezoids (ROC) or Davis-Goadrich (PR), all in float64 numpy."""
    w = np.ones_like(y_pred, dtype=np.float64) if w is None else w
    thr = [-1e-7] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1 + 1e-7]
    tp, fp, tn, fn = [], [], [], []
    for t in thr:
        pos = y_pred > t
        tp.append((w * (pos & y_true)).sum())
        fp.append((w * (pos & ~y_true)).sum())
        tn.append((w * (~pos & ~y_true)).sum())
        fn.append((w * (~pos & y_true)).sum())
    tp, fp, tn, fn = map(np.array, (tp, fp, tn, fn))

    def div(a, b):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))

    if curve == "ROC":
        x, y = div(fp, fp + tn), div(tp, tp + fn)
        return float(np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2))
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    slope = div(dtp, np.maximum(dp, 0))
    intercept = tp[1:] - slope * p[1:]
    ratio = np.where((p[:-1] > 0) & (p[1:] > 0), div(p[:-1], np.maximum(p[1:], 0)), 1.0)
    return float(np.sum(div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))))


@pytest.mark.parametrize("curve", ["ROC", "PR"])
@pytest.mark.parametrize("num_thresholds", [200, 9])
def test_auc_against_numpy_over_the_same_thresholds(curve, num_thresholds):
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 2, size=300).astype(bool)
    y_pred = rng.uniform(size=300)
    if num_thresholds == 9:
        # Predictions on the threshold grid itself exercise the strict ">" at every bucket edge. With T - 1 = 8 the
        # grid k/8 is exact in binary, so p * (T - 1) is an exact integer; on a grid like k/199 it is not, and the
        # bucket rounding (Keras' too) may put an on-grid prediction one threshold up.
        y_pred[150:] = np.round(y_pred[150:] * 8) / 8
    y_pred = np.where(y_true, np.clip(y_pred + 0.2, 0, 1), y_pred)
    w = rng.uniform(0.5, 2.0, size=300)
    m = metrics.AUC(num_thresholds=num_thresholds, curve=curve)
    for lo in (0, 100, 200):
        m.update_state(y_true[lo : lo + 100], torch.as_tensor(y_pred[lo : lo + 100]), sample_weight=w[lo : lo + 100])
    expected = _auc_numpy(y_true, y_pred, num_thresholds, curve, w)
    assert _f(m.result()) == pytest.approx(expected, rel=1e-5)


def test_auc_keras_example_logits_and_perfect_ranking():
    m = metrics.AUC(num_thresholds=3)
    m.update_state([0, 0, 1, 1], torch.tensor([0.0, 0.5, 0.3, 0.9]))
    assert _f(m.result()) == pytest.approx(0.75)
    z = torch.tensor([0.5, 2.0, 1.5, 3.0])
    m = metrics.get("auc")
    m.update_state([0, 1, 0, 1], z)
    assert _f(m.result()) < 1.0  # without from_logits, 1.5, 2 and 3 all land above the last inner threshold: a tie
    m = metrics.AUC(from_logits=True)
    m.update_state([0, 1, 0, 1], z)
    assert _f(m.result()) == pytest.approx(1.0)  # the sigmoid keeps the order, which separates the classes


def test_auc_multi_label_averages_per_label_aucs():
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 2, size=(80, 3)).astype(bool)
    y_pred = rng.uniform(size=(80, 3))
    m = metrics.AUC(multi_label=True)
    m.update_state(y_true, torch.as_tensor(y_pred))
    per_label = [_auc_numpy(y_true[:, j], y_pred[:, j]) for j in range(3)]
    assert _f(m.result()) == pytest.approx(np.mean(per_label), rel=1e-5)
    m = metrics.AUC(multi_label=True, label_weights=[1.0, 0.0, 3.0])
    m.update_state(y_true, torch.as_tensor(y_pred))
    assert _f(m.result()) == pytest.approx((per_label[0] + 3 * per_label[2]) / 4, rel=1e-5)


def test_auc_bad_arguments_and_config():
    with pytest.raises(ValueError, match="Received: num_thresholds=1"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="Invalid AUC curve value"):
        metrics.AUC(curve="DET")
    with pytest.raises(ValueError, match="Invalid AUC summation method"):
        metrics.AUC(summation_method="simpson")
    m = metrics.AUC(num_thresholds=50, curve="PR", summation_method="minoring")
    clone = metrics.AUC.from_config(m.get_config())
    assert clone.get_config() == m.get_config()


def test_auc_minoring_majoring_bracket_interpolation():
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 2, size=100)
    y_pred = torch.as_tensor(rng.uniform(size=100))
    values = {}
    for method in ("minoring", "interpolation", "majoring"):
        m = metrics.AUC(num_thresholds=10, summation_method=method)
        m.update_state(y_true, y_pred)
        values[method] = _f(m.result())
    assert values["minoring"] <= values["interpolation"] <= values["majoring"]
    assert values["minoring"] < values["majoring"]


def test_crossentropy_metrics_keras_examples():
    m = metrics.BinaryCrossentropy()
    m.update_state(np.array([[0, 1], [0, 0]]), torch.tensor([[0.6, 0.4], [0.4, 0.6]]))
    assert _f(m.result()) == pytest.approx(0.81492424, rel=1e-5)
    m = metrics.get("sparse_categorical_crossentropy")
    m.update_state(np.array([1, 2]), torch.tensor([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]))
    assert _f(m.result()) == pytest.approx(1.1769392, rel=1e-5)
    m = metrics.CategoricalCrossentropy()
    m.update_state(np.array([[0, 1, 0], [0, 0, 1]]), torch.tensor([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]))
    assert _f(m.result()) == pytest.approx(1.1769392, rel=1e-5)
    m = metrics.CategoricalCrossentropy(from_logits=True)
    m.update_state(np.array([[0, 1]]), torch.log(torch.tensor([[0.25, 0.75]])))
    assert _f(m.result()) == pytest.approx(-math.log(0.75), rel=1e-5)


@pytest.mark.parametrize(
    "name, cls",
    [
        ("precision", metrics.Precision),
        ("recall", metrics.Recall),
        ("auc", metrics.AUC),
        ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
        ("sparse_top_k_categorical_accuracy", metrics.SparseTopKCategoricalAccuracy),
        ("binary_crossentropy", metrics.BinaryCrossentropy),
        ("categorical_crossentropy", metrics.CategoricalCrossentropy),
        ("sparse_categorical_crossentropy", metrics.SparseCategoricalCrossentropy),
    ],
)
def test_metric_string_ids(name, cls):
    keras.backend.clear_session()  # Keras' automatic names: "auc" first, then "auc_1"...
    m = metrics.get(name)
    assert isinstance(m, cls) and m.name == name
    assert cls().name in (name, f"{name}_1")  # the classes with explicit default names keep them


def test_metrics_in_compile_and_evaluate():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(48, 4)).astype("float32")
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype("float32")
    model = keras.Sequential([keras.layers.Dense(1, activation="sigmoid", input_shape=(4,))])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["precision", "recall", "auc"])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    probs = model.predict(x, verbose=0)[:, 0]
    tp, fp, _, fn = _counts(y.astype(bool), probs, 0.5)
    assert logs["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0, abs=1e-6)
    assert logs["recall"] == pytest.approx(tp / (tp + fn) if tp + fn else 0.0, abs=1e-6)
    assert logs["auc"] == pytest.approx(_auc_numpy(y.astype(bool), probs.astype(np.float64)), abs=1e-5)


# ---- one rank rule, custom metric variables, their data-parallel reduction -----------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ((5,), (5, 1), ((5, 1), (5, 1))),  # a rank-1 side is expanded
        ((5, 1), (5,), ((5, 1), (5, 1))),
        ((5, 3, 1), (5, 3), ((5, 3), (5, 3))),  # otherwise the trailing 1 is squeezed
        ((5, 3), (5, 3, 1), ((5, 3), (5, 3))),
        ((5,), (5, 3), ((5,), (5, 3))),  # no trailing 1: left as it is
        ((5, 2), (5,), ((5, 2), (5,))),
    ],
)
def test_same_rank_is_keras_squeeze_or_expand(a, b, want):
    x, y = losses.same_rank(torch.zeros(a), torch.zeros(b))
    assert (tuple(x.shape), tuple(y.shape)) == want
    x, y = losses.same_rank(torch.zeros((5,)), torch.zeros((5, 1)), expand_rank_1=False)
    assert (tuple(x.shape), tuple(y.shape)) == ((5,), (5,))


def test_sample_weights_of_shape_n1_weigh_samples_everywhere():
    y, p = np.array([0.0, 1.0, 2.0, 3.0]), torch.tensor([[0.5], [1.0], [1.0], [5.0]])
    w = np.array([1.0, 0.0, 2.0, 0.5], "float32")
    per = np.array([0.25, 0.0, 1.0, 4.0])
    for weights in (w, w[:, None]):
        assert _f(losses.MeanSquaredError()(y, p, sample_weight=weights)) == pytest.approx((per * w).sum() / 4)
        loss = losses.MeanSquaredError(reduction="mean_with_sample_weight")
        assert _f(loss(y, p, sample_weight=weights)) == pytest.approx((per * w).sum() / w.sum())
        m = metrics.MeanSquaredError()
        m.update_state(y, p, sample_weight=weights)
        assert _f(m.result()) == pytest.approx((per * w).sum() / w.sum())
    labels = torch.tensor([0.0, 1.0, 0.6, 1.0])  # Keras rounds float labels to find their class
    cw = data.apply_class_weight({0: 1.0, 1: 3.0}, labels, torch.tensor(w[:, None]))
    assert tuple(cw.shape) == (4, 1) and cw.reshape(-1).tolist() == [1.0, 0.0, 6.0, 1.5]


class Counts(keras.metrics.Metric):
    """A custom metric as Keras' guides write one (module level, so that it pickles)."""

    def __init__(self, name="counts", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.mean_of_ranks = self.add_variable((2,), "ones", aggregation="mean", name="mean_of_ranks")
        self.first = self.add_weight(name="first")
        self.mine = self.add_variable((), keras.initializers.Constant(7.0), aggregation="none", name="mine")
        self.inner = keras.metrics.Mean()

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(keras.ops.sum(keras.ops.cast(y_true, self.dtype)))
        self.first.assign(self.first + 1.0)
        self.mean_of_ranks.assign_sub(keras.ops.ones((2,)))
        self.inner.update_state(y_pred)

    def result(self):
        return self.total + self.inner.result()


def _counting_metric():
    return Counts()


def test_metric_variables_behave_as_keras_variables():
    m = _counting_metric()
    assert [v.name for v in m.variables] == ["total", "mean_of_ranks", "first", "mine", "total", "count"]
    assert isinstance(m.total, torch.Tensor) and m.total.dtype == torch.float32 and m.mine.numpy() == 7.0
    m.update_state(np.array([1, 2, 3]), np.array([2.0, 4.0]))
    assert float(m.result()) == 9.0 and m.total.numpy() == 6.0 and float(m.first) == 1.0
    snapshot = m.total.numpy()
    m.total.assign_add(1)
    assert snapshot == 6.0 and float(m.total.value) == 7.0  # numpy() is a copy, value the current tensor
    assert float(m.total * 2 - 1) == 13.0 and type(m.total + 1) is torch.Tensor  # arithmetic gives plain tensors
    with pytest.raises(ValueError, match=r"`variable.assign\(value\)` must match.*variable.shape=\(\).*\(2,\)"):
        m.total.assign(np.zeros(2, "float32"))
    with pytest.raises(ValueError, match=r"assign_add.*variable.shape=\(2,\).*\(3,\)"):
        m.mean_of_ranks.assign_add(np.zeros(3, "float32"))
    m.mean_of_ranks.assign_add(2.0)  # a scalar broadcasts over the variable, as Keras' self + value
    assert m.mean_of_ranks.numpy().tolist() == [2.0, 2.0] and "Variable path=total" in repr(m.total)
    copied = copy.deepcopy(m)
    restored = pickle.loads(pickle.dumps(m))
    for other in (copied, restored):
        assert float(other.result()) == float(m.result()) and other.total is other._state["total"]
        other.total.assign(0.0)
        assert float(m.total) == 7.0  # a copy has its own state
    m.reset_state()  # every variable to zero, the inner metric's too (Keras zeroes, whatever the initializer)
    assert all(float(v.abs().sum()) == 0.0 for v in m.variables)


def test_metric_variable_arguments_are_checked():
    class Forgot(keras.metrics.Metric):
        def __init__(self):
            self.v = self.add_variable((), "zeros")

    with pytest.raises(RuntimeError, match=r"forgot to call `super\(\).__init__\(\)`"):
        Forgot()
    m = keras.metrics.Metric(name="m")
    with pytest.raises(ValueError, match="`aggregation`.*Received: aggregation='max'"):
        m.add_variable((), "zeros", aggregation="max")
    with pytest.raises(ValueError, match="Unknown initializer"):
        m.add_variable((), "zeroes")
    v = m.add_variable((2, 3), lambda shape, dtype: torch.full(shape, 2.0, dtype=dtype), dtype="float64", name="v")
    assert v.dtype == torch.float64 and v.numpy().tolist() == [[2.0] * 3] * 2 and v.aggregation == "sum"


def test_data_parallel_reduction_follows_each_variables_aggregation():
    """DataParallel._reduce_metrics on two simulated ranks: sum, mean, rank 0's value, or the rank's own."""
    ranks = []
    for rank in (0, 1):
        m = _counting_metric()
        m.update_state(np.array([1.0 + rank, 2.0]), np.array([float(rank)]))
        m.mine.assign(10.0 + rank)
        m.first.assign(5.0 + rank)
        ranks.append(types.SimpleNamespace(metrics=[m], device=torch.device("cpu")))
    sent = []

    def reducer(rank, all_reduce):
        return types.SimpleNamespace(world_size=2, rank=rank, _all_reduce_=all_reduce)

    DataParallel._reduce_metrics(reducer(1, lambda t: sent.append(t.clone())), ranks[1])
    DataParallel._reduce_metrics(reducer(0, lambda t: t.add_(sent[0])), ranks[0])
    m = ranks[0].metrics[0]
    assert float(m.total) == (3.0 + 4.0)  # sum
    assert m.mean_of_ranks.numpy().tolist() == [0.0, 0.0]  # mean of 0 and 0
    assert float(m.mine) == 10.0  # "none": this rank's own
    assert (float(m.inner.total), float(m.inner.count)) == (1.0, 2.0)  # a metric held by the metric: summed too

    class Aggregated(keras.metrics.Metric):
        def __init__(self):
            super().__init__(name="a")
            self.v = self.add_variable((), "zeros", aggregation="only_first_replica")

    firsts = [Aggregated(), Aggregated()]
    firsts[0].v.assign(3.0)
    firsts[1].v.assign(8.0)
    sent.clear()
    ns = [types.SimpleNamespace(metrics=[f], device=torch.device("cpu")) for f in firsts]
    DataParallel._reduce_metrics(reducer(1, lambda t: sent.append(t.clone())), ns[1])
    DataParallel._reduce_metrics(reducer(0, lambda t: t.add_(sent[0])), ns[0])
    assert float(firsts[0].v) == 3.0  # rank 0's value
