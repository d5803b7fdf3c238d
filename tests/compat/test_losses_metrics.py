"""Every built-in loss and metric against real Keras 3 on the same arrays, computed here in-process (issue #14).

Targets come in the shapes an MLP script gives them: ``(n,)`` and ``(n, 1)`` against ``(n, 1)`` predictions,
one-hot ``(n, C)`` and sparse labels (integers, and floats holding whole numbers, as Keras' guides pass
``y.astype("float32")``). Keras matches a target's rank to the prediction's (``squeeze_or_expand_to_same_rank``) in
its loss classes and most of its metrics; tritonnn does it in all of them, so a few Keras metrics that broadcast
``(n,)`` against ``(n, 1)`` to ``(n, n)`` (or refuse it) are compared on ``(n, 1)`` targets, and each such case
checks that Keras still does so (``KERAS_RANK_QUIRKS``). Tolerances: fp32 against Keras' fp32, rtol 1e-5.
"""

from __future__ import annotations

import fnmatch
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import tritonnn as tk

from .differences import deliberate

RTOL, ATOL = 1e-5, 1e-6
N, C = 10, 4


def _np(x) -> np.ndarray:
    """A copy (a Keras result may be a view of a variable that a later reset zeroes)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().copy()
    return np.array(x.numpy() if hasattr(x, "numpy") else x)


def _batch(rng: np.random.RandomState) -> dict[str, np.ndarray]:
    logits = rng.normal(size=(N, C)).astype("float32")
    labels = rng.randint(0, C, N)
    return {
        "y_bin": rng.randint(0, 2, N).astype("float32"),
        "p_bin": rng.uniform(0.02, 0.98, (N, 1)).astype("float32"),
        "z_bin": rng.normal(size=(N, 1)).astype("float32"),
        "y_reg": rng.normal(size=N).astype("float32"),
        "p_reg": rng.normal(size=(N, 1)).astype("float32"),
        "y_pos": rng.uniform(0.1, 3.0, N).astype("float32"),
        "p_pos": rng.uniform(0.1, 3.0, (N, 1)).astype("float32"),
        "labels": labels,
        "one_hot": np.eye(C, dtype="float32")[labels],
        "logits": logits,
        "probs": (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype("float32"),
        "multi": rng.randint(0, 2, (N, C)).astype("float32"),
        "y_reg3": rng.normal(size=(N, C)).astype("float32"),
        "sw": rng.uniform(0.5, 2.0, N).astype("float32"),
    }


BATCHES = [_batch(np.random.RandomState(seed)) for seed in (0, 1)]

# (targets, predictions) per kind of problem; the targets of the first four are (n,) vectors.
KINDS = {
    "binary": ("y_bin", "p_bin"),
    "binary_logits": ("y_bin", "z_bin"),
    "regression": ("y_reg", "p_reg"),
    "positive": ("y_pos", "p_pos"),
    "sparse": ("labels", "probs"),
    "sparse_logits": ("labels", "logits"),
    "categorical": ("one_hot", "probs"),
    "categorical_logits": ("one_hot", "logits"),
    "multilabel": ("multi", "probs"),
    "regression3": ("y_reg3", "logits"),
}
VECTOR_KINDS = ("binary", "binary_logits", "regression", "positive")


def _targets(kind: str, form: str, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The batch's (y_true, y_pred) of ``kind``, the targets in ``form``: ``"n"``, ``"n1"`` (a trailing 1),
    ``"float"`` (sparse labels as float32), or ``"as_is"``."""
    y, p = batch[KINDS[kind][0]], batch[KINDS[kind][1]]
    if form == "n1":
        y = y[:, None]
    elif form == "float":
        y = y.astype("float32")
    return y, p


def _forms(kind: str) -> list[str]:
    if kind in VECTOR_KINDS:
        return ["n", "n1"]
    if kind.startswith("sparse"):
        return ["n", "n1", "float"]
    return ["as_is"]


def _ids(cases: list[tuple]) -> list[str]:
    return [f"{name}-{kind}-{i}" for i, (name, _, kind) in enumerate(cases)]


def _close(what: str, ref, got) -> list[str]:
    ref, got = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        return [f"{what}: shape {got.shape} != Keras' {ref.shape}"]
    if not np.allclose(got, ref, rtol=RTOL, atol=ATOL, equal_nan=True):
        return [f"{what}: tritonnn {got.round(7).tolist()} != Keras {ref.round(7).tolist()}"]
    return []


# ---- losses -------------------------------------------------------------------------------------------------------

LOSSES = [
    ("MeanSquaredError", {}, "regression"),
    ("MeanSquaredError", {}, "regression3"),
    ("MeanAbsoluteError", {}, "regression"),
    ("MeanAbsolutePercentageError", {}, "positive"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("CosineSimilarity", {}, "regression3"),
    ("Huber", {}, "regression"),
    ("Huber", {"delta": 0.4}, "regression3"),
    ("LogCosh", {}, "regression"),
    ("Hinge", {}, "binary_logits"),
    ("SquaredHinge", {}, "binary_logits"),
    ("CategoricalHinge", {}, "categorical_logits"),
    ("KLDivergence", {}, "categorical"),
    ("Poisson", {}, "positive"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "binary_logits"),
    ("BinaryCrossentropy", {}, "multilabel"),
    ("BinaryFocalCrossentropy", {}, "binary"),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5}, "binary"),
    ("BinaryFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "binary_logits"),
    ("CategoricalCrossentropy", {}, "categorical"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "categorical_logits"),
    ("CategoricalFocalCrossentropy", {}, "categorical"),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "alpha": 0.5, "gamma": 1.0}, "categorical_logits"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ("CategoricalGeneralizedCrossEntropy", {"q": 0.3}, "sparse"),
]
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None]


@pytest.mark.parametrize(("name", "kwargs", "kind"), LOSSES, ids=_ids(LOSSES))
def test_loss_classes_match_keras(keras_ref, name, kwargs, kind):
    batch = BATCHES[0]
    failures = []
    for form in _forms(kind):
        y, p = _targets(kind, form, batch)
        ref_y = y
        if name == "CategoricalGeneralizedCrossEntropy" and form == "n1":
            # Keras' function one-hot encodes (n, 1) labels to (n, 1, C): its losses broadcast to (n, n) there.
            deliberate("metrics.rank-matched-targets")
            ref_y = y[:, 0]
            bad = keras_ref.losses.CategoricalGeneralizedCrossEntropy(reduction=None, **kwargs)(y, p)
            assert tuple(bad.shape) == (N, N), "Keras fixed its (n, 1) labels: compare with them directly"
        for reduction in REDUCTIONS:
            for weights in (None, batch["sw"], batch["sw"][:, None]):
                ref = getattr(keras_ref.losses, name)(reduction=reduction, **kwargs)(ref_y, p, sample_weight=weights)
                got = getattr(tk.losses, name)(reduction=reduction, **kwargs)(y, p, sample_weight=weights)
                what = f"{form} targets, reduction={reduction}, weights {None if weights is None else weights.shape}"
                failures += _close(what, _np(ref), _np(got))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("name", "kwargs", "kind"), LOSSES, ids=_ids(LOSSES))
def test_loss_defaults_and_config_match_keras(keras_ref, name, kwargs, kind):
    ref, got = getattr(keras_ref.losses, name)(**kwargs), getattr(tk.losses, name)(**kwargs)
    assert (got.name, got.reduction, got.dtype) == (ref.name, ref.reduction, ref.dtype)
    ref_config, got_config = ref.get_config(), got.get_config()
    for key, value in ref_config.items():  # Keras' config keys, with its values (tritonnn may keep more)
        if key != "fn":
            assert got_config.get(key) == value, (key, got_config.get(key), value)
    again = type(got).from_config(got_config)
    assert again.get_config() == got_config


# Function forms: Keras' functions as they are (its rank-matching lives in its loss classes, not in every function).
FUNCTIONS = [
    ("mean_squared_error", {}, "regression3"),
    ("mean_absolute_error", {}, "regression3"),
    ("mean_absolute_percentage_error", {}, "positive"),
    ("mean_squared_logarithmic_error", {}, "positive"),
    ("cosine_similarity", {}, "regression3"),
    ("huber", {"delta": 0.5}, "regression3"),
    ("log_cosh", {}, "regression3"),
    ("hinge", {}, "binary_logits"),
    ("squared_hinge", {}, "binary_logits"),
    ("categorical_hinge", {}, "categorical_logits"),
    ("kl_divergence", {}, "categorical"),
    ("poisson", {}, "positive"),
    ("binary_crossentropy", {}, "multilabel"),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.3}, "binary_logits"),
    ("binary_focal_crossentropy", {"gamma": 3.0}, "binary"),
    ("categorical_crossentropy", {}, "categorical"),
    ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, "categorical_logits"),
    ("categorical_focal_crossentropy", {}, "categorical"),
    ("sparse_categorical_crossentropy", {}, "sparse"),
    ("sparse_categorical_crossentropy", {"from_logits": True}, "sparse_logits"),
    ("categorical_generalized_cross_entropy", {"q": 0.7}, "sparse"),
]


@pytest.mark.parametrize(("name", "kwargs", "kind"), FUNCTIONS, ids=[f[0] + str(i) for i, f in enumerate(FUNCTIONS)])
def test_loss_functions_match_keras(keras_ref, name, kwargs, kind):
    batch = BATCHES[1]
    y, p = batch[KINDS[kind][0]], batch[KINDS[kind][1]]
    if kind in VECTOR_KINDS:
        y = y[:, None]  # Keras' hinge/poisson/binary_crossentropy functions take equal ranks only
    convert = keras_ref.ops.convert_to_tensor
    ref = getattr(keras_ref.losses, name)(convert(y), convert(p), **kwargs)
    got = getattr(tk.losses, name)(y, p, **kwargs)
    assert not _close(name, _np(ref), _np(got)), _close(name, _np(ref), _np(got))
    if hasattr(keras_ref.metrics, name):  # keras.metrics re-exports the losses' functions
        assert getattr(tk.metrics, name) is getattr(tk.losses, name)
    if kind in VECTOR_KINDS:
        # tritonnn's functions match ranks as its classes do: (n,) targets give the (n, 1) targets' values.
        deliberate("metrics.rank-matched-targets")
        assert not _close(name, _np(ref), _np(getattr(tk.losses, name)(y[:, 0], p, **kwargs)))


def test_mse_with_rank_1_targets_trains_as_in_keras(keras_ref):
    """Issue #14's silent wrong training: Dense(1) + mse on y of shape (n,) must not broadcast (n,1) - (n,)."""
    rng = np.random.RandomState(0)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x @ rng.normal(size=5) + 0.5).astype("float32")
    histories = {}
    for K in (keras_ref, tk):
        for shape in ("n", "n1"):
            K.utils.set_random_seed(1)
            model = K.Sequential([K.Input((5,)), K.layers.Dense(1)])
            if K is tk:
                model.set_weights(histories[("keras", shape, "weights")])
            else:
                histories[("keras", shape, "weights")] = model.get_weights()
            model.compile(optimizer=K.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
            target = y if shape == "n" else y[:, None]
            h = model.fit(x, target, batch_size=16, epochs=8, shuffle=False, verbose=0).history
            h["eval"] = model.evaluate(x, target, batch_size=32, verbose=0)
            h["tob"] = model.train_on_batch(x[:16], target[:16])
            histories[(K.__name__, shape)] = h
    for shape in ("n", "n1"):
        ref, got = histories[("keras", shape)], histories[("tritonnn", shape)]
        assert set(got) == set(ref)
        for key in ref:
            assert not _close(f"{shape} {key}", ref[key], got[key]), _close(f"{shape} {key}", ref[key], got[key])
    assert histories[("tritonnn", "n")]["loss"][-1] < histories[("tritonnn", "n")]["loss"][0] / 10  # it learns


# ---- metrics ------------------------------------------------------------------------------------------------------

METRICS = [
    ("BinaryAccuracy", {}, "binary"),
    ("BinaryAccuracy", {"threshold": 0.7}, "binary"),
    ("BinaryAccuracy", {}, "multilabel"),
    ("CategoricalAccuracy", {}, "categorical"),
    ("SparseCategoricalAccuracy", {}, "sparse"),
    ("TopKCategoricalAccuracy", {"k": 2}, "categorical"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    ("SparseTopKCategoricalAccuracy", {"k": 1}, "sparse_logits"),
    ("Accuracy", {}, "binary"),
    ("Precision", {}, "binary"),
    ("Precision", {"thresholds": [0.3, 0.5, 0.7]}, "binary"),
    ("Precision", {"thresholds": [0.0, 0.5, 1.0]}, "binary"),
    ("Precision", {"top_k": 2}, "multilabel"),
    ("Precision", {"class_id": 2}, "multilabel"),
    ("Precision", {"top_k": 2, "class_id": 1}, "multilabel"),
    ("Recall", {}, "binary"),
    ("Recall", {"thresholds": [0.3, 0.5, 0.7]}, "binary"),
    ("Recall", {"top_k": 3}, "multilabel"),
    ("Recall", {"class_id": 0, "thresholds": 0.2}, "multilabel"),
    ("TruePositives", {}, "binary"),
    ("TruePositives", {"thresholds": [0.3, 0.5, 0.7]}, "binary"),
    ("TruePositives", {}, "multilabel"),
    ("FalsePositives", {"thresholds": 0.7}, "binary"),
    ("FalsePositives", {"thresholds": [0.3, 0.5, 0.7]}, "binary"),
    ("TrueNegatives", {}, "binary"),
    ("TrueNegatives", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, "binary"),
    ("FalseNegatives", {}, "binary"),
    ("FalseNegatives", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, "binary"),
    ("AUC", {}, "binary"),
    ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"curve": "PR", "summation_method": "minoring"}, "binary"),
    ("AUC", {"curve": "ROC", "summation_method": "majoring", "num_thresholds": 7}, "binary"),
    ("AUC", {"curve": "PRGAIN"}, "binary"),
    ("AUC", {"from_logits": True}, "binary_logits"),
    ("AUC", {"thresholds": [0.3, 0.5, 0.8]}, "binary"),
    ("AUC", {"thresholds": [0.25, 0.5, 0.75]}, "binary"),
    ("AUC", {"multi_label": True}, "multilabel"),
    ("AUC", {"multi_label": True, "num_labels": C, "label_weights": [1.0, 2.0, 0.5, 1.0]}, "multilabel"),
    ("AUC", {"multi_label": True, "thresholds": [0.3, 0.6], "curve": "PR"}, "multilabel"),
    ("AUC", {"label_weights": [1.0, 2.0, 0.5, 1.0]}, "multilabel"),
    ("PrecisionAtRecall", {"recall": 0.5}, "binary"),
    ("PrecisionAtRecall", {"recall": 0.8, "num_thresholds": 1}, "binary"),
    ("RecallAtPrecision", {"precision": 0.6}, "binary"),
    ("RecallAtPrecision", {"precision": 0.4, "num_thresholds": 15, "class_id": 3}, "multilabel"),
    ("SensitivityAtSpecificity", {"specificity": 0.5}, "binary"),
    ("SensitivityAtSpecificity", {"specificity": 0.5, "class_id": 1}, "multilabel"),
    ("SpecificityAtSensitivity", {"sensitivity": 0.5, "num_thresholds": 20}, "binary"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "binary_logits"),
    ("CategoricalCrossentropy", {}, "categorical"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "categorical_logits"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ("KLDivergence", {}, "categorical"),
    ("Poisson", {}, "positive"),
    ("MeanSquaredError", {}, "regression"),
    ("MeanAbsoluteError", {}, "regression"),
    ("MeanAbsolutePercentageError", {}, "positive"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("RootMeanSquaredError", {}, "regression"),
    ("LogCoshError", {}, "regression"),
    ("CosineSimilarity", {}, "regression3"),
    ("R2Score", {}, "regression"),
    ("R2Score", {"class_aggregation": None}, "regression3"),
    ("R2Score", {"class_aggregation": "variance_weighted_average", "num_regressors": 2}, "regression3"),
    ("Hinge", {}, "binary_logits"),
    ("SquaredHinge", {}, "binary_logits"),
    ("CategoricalHinge", {}, "categorical_logits"),
    ("F1Score", {}, "categorical"),
    ("F1Score", {"average": "macro", "threshold": 0.3}, "multilabel"),
    ("F1Score", {}, "binary"),
    ("FBetaScore", {"beta": 2.0, "average": "weighted"}, "multilabel"),
    ("FBetaScore", {"beta": 0.5, "average": "micro", "threshold": 0.5}, "multilabel"),
    ("PearsonCorrelation", {}, "regression3"),
    ("ConcordanceCorrelation", {}, "regression3"),
]

# Keras metrics whose function does not match (n,) targets to (n, 1) predictions: they broadcast to (n, n) or
# refuse. tritonnn matches ranks everywhere, so it gives their (n, 1) value; each case checks that Keras still differs.
KERAS_RANK_QUIRKS = {"BinaryCrossentropy", "Hinge", "SquaredHinge", "Poisson", "F1Score"}


def _run_metric(K, name: str, kwargs: dict, kind: str, form: str, weighted: bool):
    """Two updates, the result; then a reset, one update, the result. Raised exceptions are returned."""
    try:
        metric = getattr(K.metrics, name)(**kwargs)
        out = []
        for batches in (BATCHES, BATCHES[1:]):
            for batch in batches:
                y, p = _targets(kind, form, batch)
                metric.update_state(y, p, sample_weight=batch["sw"] if weighted else None)
            out.append(_np(metric.result()))
            metric.reset_state()
        return out
    except Exception as e:  # noqa: BLE001 - what Keras does with these shapes is part of the comparison
        return e


@pytest.mark.parametrize(
    ("name", "kwargs", "kind"), METRICS, ids=[f"{n}-{k}-{i}" for i, (n, _, k) in enumerate(METRICS)]
)
def test_metric_classes_match_keras(keras_ref, name, kwargs, kind):
    failures = []
    for form in _forms(kind):
        for weighted in (False, True):
            ref_form = form
            if form == "n" and name in KERAS_RANK_QUIRKS:
                deliberate("metrics.rank-matched-targets")
                quirk, ref_n1 = (_run_metric(keras_ref, name, kwargs, kind, f, weighted) for f in ("n", "n1"))
                assert isinstance(quirk, Exception) or not all(
                    np.allclose(a, b) for a, b in zip(quirk, ref_n1, strict=True)
                ), f"Keras' {name} now matches (n,) targets: drop it from KERAS_RANK_QUIRKS"
                ref_form = "n1"
            ref = _run_metric(keras_ref, name, kwargs, kind, "n" if ref_form == "float" else ref_form, weighted)
            got = _run_metric(tk, name, kwargs, kind, form, weighted)
            assert not isinstance(ref, Exception), f"Keras raised on a case meant to work: {ref!r}"
            if isinstance(got, Exception):
                failures.append(f"{form} targets, weighted={weighted}: tritonnn raised {got!r}")
                continue
            for i, (r, g) in enumerate(zip(ref, got, strict=True)):
                failures += _close(f"{form} targets, weighted={weighted}, result {i}", r, g)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("name", "kwargs", "kind"), METRICS, ids=[f"{n}-{k}-{i}" for i, (n, _, k) in enumerate(METRICS)]
)
def test_metric_defaults_and_config_match_keras(keras_ref, name, kwargs, kind):
    ref, got = getattr(keras_ref.metrics, name)(**kwargs), getattr(tk.metrics, name)(**kwargs)
    assert (got.name, got.dtype, getattr(got, "_direction", None)) == (
        ref.name,
        ref.dtype,
        getattr(ref, "_direction", None),
    )
    if name in ("TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives", "Precision", "Recall"):
        assert got.thresholds == pytest.approx(ref.thresholds)
    ref_config, got_config = ref.get_config(), got.get_config()
    for key, value in ref_config.items():  # Keras' config keys, with its values (tritonnn may keep more)
        if key in ("fn", "label_weights"):
            continue
        if not isinstance(value, (bool, int, float, str, list, type(None))):
            value = value.value  # AUC's curve and summation_method are enums in Keras, their strings here
        if isinstance(value, (float, list)):
            assert got_config.get(key) == pytest.approx(value), key
        else:
            assert got_config.get(key) == value, key
    assert type(got).from_config(got_config).get_config() == got_config


METRIC_FUNCTIONS = [
    ("binary_accuracy", {}, "binary"),
    ("binary_accuracy", {"threshold": 0.2}, "multilabel"),
    ("categorical_accuracy", {}, "categorical"),
    ("sparse_categorical_accuracy", {}, "sparse"),
    ("top_k_categorical_accuracy", {"k": 3}, "categorical"),
    ("sparse_top_k_categorical_accuracy", {"k": 3}, "sparse"),
    ("pearson_correlation", {}, "regression3"),
    ("concordance_correlation", {}, "regression3"),
]


@pytest.mark.parametrize(("name", "kwargs", "kind"), METRIC_FUNCTIONS, ids=[f[0] for f in METRIC_FUNCTIONS])
def test_metric_functions_match_keras(keras_ref, name, kwargs, kind):
    failures = []
    for form in _forms(kind):
        y, p = _targets(kind, form, BATCHES[0])
        ref = getattr(keras_ref.metrics, name)(y, p, **kwargs)
        got = getattr(tk.metrics, name)(y, p, **kwargs)
        failures += _close(f"{form} targets", _np(ref), _np(got))
    assert not failures, "\n".join(failures)


def test_sparse_labels_as_floats_and_fractional_ones(keras_ref):
    y, p = _targets("sparse", "n", BATCHES[0])
    for name in ("SparseCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "SparseCategoricalCrossentropy"):
        ints, floats = getattr(tk.metrics, name)(), getattr(tk.metrics, name)()
        ints.update_state(y, p)
        floats.update_state(y.astype("float32"), p)
        assert float(ints.result()) == float(floats.result())
        bad = y.astype("float32")
        bad[3] = 1.7
        with pytest.raises(ValueError, match=r"integer class labels.*e\.g\. 1\.7"):
            getattr(tk.metrics, name)().update_state(bad, p)
    # Keras on torch truncates a label of 1.7 to class 1 in its cross-entropy (and counts it as a miss in its
    # accuracy); tritonnn refuses it, naming the value.
    deliberate("labels.fractional-sparse-label")
    loss = keras_ref.losses.SparseCategoricalCrossentropy()
    assert float(loss(np.array([0.0, 1.7], "float32"), p[:2])) == float(loss(np.array([0, 1]), p[:2]))
    with pytest.raises(ValueError, match=r"integer class labels.*e\.g\. 1\.7"):
        tk.losses.SparseCategoricalCrossentropy()(np.array([0.0, 1.7], "float32"), p[:2])
    with pytest.raises(ValueError, match=r"integer class labels.*e\.g\. 2\.5"):
        tk.losses.sparse_categorical_crossentropy(np.array([0.0, 2.5]), torch.tensor(p[:2]))


def test_top_k_ties_go_to_the_lower_index(keras_ref):
    deliberate("metrics.top-k-ties")
    got = tk.metrics.Precision(top_k=2)
    got.update_state(np.array([0, 0, 1, 1]), np.array([1.0, 1.0, 1.0, 1.0], "float32"))
    assert float(got.result()) == 0.0  # Keras' documented example: the first two of four equal scores are kept
    scores = np.array([[0.1, 0.7, 0.3, 0.9], [0.8, 0.2, 0.6, 0.4]], "float32")  # no ties: the same as Keras
    labels = np.array([[0, 1, 1, 0], [1, 0, 0, 1]])
    for K in (keras_ref, tk):
        m = K.metrics.Recall(top_k=2)
        m.update_state(labels, scores)
        assert float(m.result()) == 0.5


def test_built_in_metric_states_are_float64(keras_ref):
    deliberate("metrics.float64-state")
    for name, args in (("Mean", ()), ("AUC", ()), ("Precision", ()), ("TruePositives", ()), ("R2Score", ())):
        ref, got = getattr(keras_ref.metrics, name)(*args), getattr(tk.metrics, name)(*args)
        y, p = _targets("binary", "n1", BATCHES[0])
        for m in (ref, got):
            m.update_state(y) if name == "Mean" else m.update_state(y, p)
        assert [v.name for v in got.variables] == [v.name for v in ref.variables]
        assert {str(v.dtype) for v in ref.variables} == {"float32"}
        assert {v.dtype for v in got.variables} == {torch.float64}
        assert _np(got.result()).dtype == np.float32 == _np(ref.result()).dtype
        assert not _close(name, _np(ref.result()), _np(got.result()))


# ---- through compile / fit / evaluate / train_on_batch -----------------------------------------------------------


def _binary_metrics(K):
    return [
        "accuracy",
        "auc",
        K.metrics.AUC(curve="PR", name="pr_auc"),
        "precision",
        "recall",
        K.metrics.Precision(thresholds=[0.3, 0.5, 0.7], name="precisions"),
        K.metrics.TruePositives(name="tp"),
        K.metrics.FalsePositives(name="fp"),
        K.metrics.TrueNegatives(name="tn"),
        K.metrics.FalseNegatives(thresholds=[0.3, 0.5, 0.7], name="fns"),
        K.metrics.PrecisionAtRecall(0.5, name="p_at_r"),
        K.metrics.RecallAtPrecision(0.5, name="r_at_p"),
        K.metrics.SensitivityAtSpecificity(0.5, name="s_at_s"),
        K.metrics.SpecificityAtSensitivity(0.5, name="sp_at_se"),
        K.metrics.BinaryAccuracy(threshold=0.3, name="acc_at_0.3"),
        "mse",
        "MeanAbsoluteError",
        K.metrics.binary_accuracy,
    ]


def _fit_both(keras_ref, make_model, loss, metrics, x, y, **fit_kw):
    """fit (2 epochs), evaluate, train_on_batch and test_on_batch under Keras and tritonnn from the same weights."""
    out = {}
    weights = None
    for K in (keras_ref, tk):
        K.utils.set_random_seed(0)
        model = make_model(K)
        if weights is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        model.compile(optimizer=K.optimizers.SGD(0.1), loss=loss, metrics=metrics(K))
        res = {"fit": model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, **fit_kw).history}
        res["evaluate"] = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
        res["train_on_batch"] = model.train_on_batch(x[:16], y[:16], return_dict=True)
        res["test_on_batch"] = model.test_on_batch(x[16:32], y[16:32], return_dict=True)
        out[K.__name__] = res
    return out["keras"], out["tritonnn"]


def _assert_logs_match(ref: dict, got: dict) -> None:
    failures = []
    for part in ref:
        if sorted(ref[part]) != sorted(got[part]):
            failures.append(f"{part}: keys {sorted(got[part])} != Keras' {sorted(ref[part])}")
            continue
        for key in ref[part]:
            r, g = ref[part][key], got[part][key]
            if isinstance(r, list):
                r, g = np.stack([np.asarray(v) for v in r]), np.stack([np.asarray(v) for v in g])
            failures += _close(f"{part}.{key}", r, g)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("shape", ["n", "n1"])
@pytest.mark.parametrize("loss", ["binary_crossentropy", "hinge", "binary_focal_crossentropy", "squared_hinge"])
def test_binary_classification_logs_match_keras(keras_ref, loss, shape):
    rng = np.random.RandomState(2)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x[:, 0] + 0.3 * rng.normal(size=64) > 0).astype("float32")
    y = y if shape == "n" else y[:, None]
    sw = rng.uniform(0.5, 2.0, 64).astype("float32")

    def model(K):
        return K.Sequential([K.Input((5,)), K.layers.Dense(1, activation="sigmoid")])

    metrics = _binary_metrics if loss == "binary_crossentropy" else (lambda K: ["accuracy", "auc", "precision"])
    ref, got = _fit_both(keras_ref, model, loss, metrics, x, y)
    _assert_logs_match(ref, got)
    if loss != "binary_crossentropy":
        return
    for extra in ({"class_weight": {0: 1.0, 1: 3.0}}, {"sample_weight": sw}, {"sample_weight": sw[:, None]}):
        ref, got = _fit_both(keras_ref, model, loss, lambda K: ["accuracy", "auc"], x, y, **extra)
        _assert_logs_match(ref, got)


@pytest.mark.parametrize("labels", ["int", "int_n1", "float", "one_hot"])
def test_multiclass_logs_match_keras(keras_ref, labels):
    rng = np.random.RandomState(3)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = np.argmax(x[:, :4] + 0.5 * rng.normal(size=(64, 4)), -1)
    y = {"int": y, "int_n1": y[:, None], "float": y.astype("float32"), "one_hot": np.eye(4, dtype="float32")[y]}[labels]
    loss = "categorical_crossentropy" if labels == "one_hot" else "sparse_categorical_crossentropy"

    def metrics(K):
        if labels == "one_hot":
            return ["accuracy", K.metrics.TopKCategoricalAccuracy(k=2), K.metrics.F1Score("macro"), "categorical_hinge"]
        return ["accuracy", K.metrics.SparseTopKCategoricalAccuracy(k=2), "sparse_categorical_crossentropy"]

    def model(K):
        return K.Sequential([K.Input((6,)), K.layers.Dense(8, activation="relu"), K.layers.Dense(4, "softmax")])

    ref, got = _fit_both(keras_ref, model, loss, metrics, x, y)
    _assert_logs_match(ref, got)
    ref, got = _fit_both(keras_ref, model, loss, lambda K: ["accuracy"], x, y, class_weight={0: 2.0, 2: 0.5})
    _assert_logs_match(ref, got)


@pytest.mark.parametrize("loss", ["mse", "mae", "mape", "msle", "log_cosh", "huber", "poisson", "cosine_similarity"])
def test_regression_logs_match_keras(keras_ref, loss):
    rng = np.random.RandomState(4)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = np.abs(x @ rng.normal(size=5)).astype("float32") + 0.5

    def metrics(K):
        return ["mse", "mae", "mape", "msle", "RootMeanSquaredError", "r2_score", "log_cosh_error", "cosine_similarity"]

    def model(K):
        return K.Sequential([K.Input((5,)), K.layers.Dense(1, activation="softplus")])

    for target in (y, y[:, None]):
        ref, got = _fit_both(keras_ref, model, loss, metrics, x, target)
        _assert_logs_match(ref, got)


def test_a_loss_function_of_the_user_is_rank_matched_as_in_keras(keras_ref):
    rng = np.random.RandomState(5)
    x = rng.normal(size=(48, 3)).astype("float32")
    y = (x.sum(-1) * 0.5).astype("float32")

    def make(K):
        def my_loss(y_true, y_pred):
            return K.ops.mean(K.ops.abs(y_true - y_pred), axis=-1) + 0.1 * K.ops.mean(K.ops.square(y_pred), axis=-1)

        return my_loss

    logs = {}
    for K in (keras_ref, tk):
        K.utils.set_random_seed(0)
        model = K.Sequential([K.Input((3,)), K.layers.Dense(1)])
        if K is tk:
            model.set_weights(logs["weights"])
        else:
            logs["weights"] = model.get_weights()
        model.compile(optimizer=K.optimizers.SGD(0.1), loss=make(K), metrics=[make(K)])
        logs[K.__name__] = {"fit": model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history}
    _assert_logs_match(logs["keras"], logs["tritonnn"])


def test_compile_names_match_keras_history_keys(keras_ref):
    rng = np.random.RandomState(6)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    names = ["mse", "MSE", "MeanSquaredError", "mape", "msle", "mean_absolute_error", "bce", "auc", "AUC", "acc"]
    names += ["log_cosh_error", "r2_score", "true_positives", "f1_score", "precision", "binary_accuracy"]
    keys = {}
    for K in (keras_ref, tk):
        model = K.Sequential([K.Input((4,)), K.layers.Dense(1, activation="sigmoid")])
        model.compile("sgd", "bce", metrics=names + [K.metrics.binary_crossentropy])
        keys[K.__name__] = sorted(model.fit(x, y[:, None], epochs=1, verbose=0).history)
    assert keys["tritonnn"] == keys["keras"]


# ---- custom metrics --------------------------------------------------------------------------------------------


def _custom_metric_class(K):
    """A custom metric as Keras' guides write it, for either framework."""

    class BinaryTruePositives(K.metrics.Metric):
        def __init__(self, name="binary_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")
            self.seen = self.add_weight(name="seen", initializer="zeros")
            self.spread = self.add_variable(shape=(2,), initializer="ones", name="spread", aggregation="mean")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_true = K.ops.cast(K.ops.reshape(y_true, (-1,)), "bool")
            y_pred = K.ops.greater(K.ops.reshape(y_pred, (-1,)), 0.5)
            values = K.ops.cast(K.ops.logical_and(y_true, y_pred), self.dtype)
            if sample_weight is not None:
                values = K.ops.multiply(values, K.ops.cast(K.ops.reshape(sample_weight, (-1,)), self.dtype))
            self.true_positives.assign_add(K.ops.sum(values))
            self.seen.assign(self.seen + K.ops.cast(K.ops.shape(y_true)[0], self.dtype))
            self.spread.assign_sub(K.ops.stack([K.ops.sum(values), 1.0]) * 0.01)

        def result(self):
            return self.true_positives / K.ops.maximum(self.seen, 1.0) + 0.0 * K.ops.sum(self.spread)

    return BinaryTruePositives


def test_a_keras_custom_metric_runs_unchanged(keras_ref):
    rng = np.random.RandomState(7)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    p = np.linspace(0, 1, 64, dtype="float32")[:, None]
    seen = {}
    for K in (keras_ref, tk):
        m = _custom_metric_class(K)()
        m.update_state(y, p, sample_weight=np.linspace(0.5, 1.5, 64, dtype="float32"))
        direct = {
            "result": float(m.result()),
            "tp": m.true_positives.numpy(),
            "seen": float(m.seen.value),
            "spread": m.spread.numpy(),
            "names": [v.name for v in m.variables],
            "sum": float(m.true_positives + m.seen),
        }
        m.reset_state()
        direct["after_reset"] = [v.numpy() for v in m.variables]
        K.utils.set_random_seed(0)
        model = K.Sequential([K.Input((5,)), K.layers.Dense(1, activation="sigmoid")])
        if K is tk:
            model.set_weights(seen["weights"])
        else:
            seen["weights"] = model.get_weights()
        model.compile("sgd", "binary_crossentropy", metrics=[_custom_metric_class(K)(), "accuracy"])
        direct["fit"] = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False).history
        direct["evaluate"] = model.evaluate(x, y, verbose=0, return_dict=True)
        seen[K.__name__] = direct
    ref, got = seen["keras"], seen["tritonnn"]
    assert got["names"] == ref["names"]
    failures = []
    for key in ("result", "tp", "seen", "spread", "sum"):
        failures += _close(key, ref[key], got[key])
    for i, (r, g) in enumerate(zip(ref["after_reset"], got["after_reset"], strict=True)):
        failures += _close(f"after_reset[{i}]", r, g)
    assert not failures, "\n".join(failures)
    _assert_logs_match(
        {"fit": ref["fit"], "evaluate": ref["evaluate"]}, {"fit": got["fit"], "evaluate": got["evaluate"]}
    )


# ---- names ----------------------------------------------------------------------------------------------------------


def _not_for_mlps() -> dict[str, dict[str, str]]:
    """tools/keras_coverage.py's judgements (the one reviewed list of Keras names an MLP does not reach)."""
    path = Path(__file__).resolve().parents[2] / "tools" / "keras_coverage.py"
    spec = importlib.util.spec_from_file_location("keras_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NOT_FOR_MLPS


@pytest.mark.parametrize("module", ["losses", "metrics"])
def test_every_keras_loss_and_metric_name_is_here_or_judged_out_of_scope(keras_ref, module):
    judged = _not_for_mlps()[module]
    keras_names = {n for n in dir(getattr(keras_ref, module)) if not n.startswith("_")}
    ours = {n for n in dir(getattr(tk, module)) if not n.startswith("_")}
    missing = sorted(keras_names - ours)
    assert [n for n in missing if not any(fnmatch.fnmatchcase(n, p) for p in judged)] == []
    # Out of scope today: sequence alignment (CTC), image segmentation (Dice, Tversky, the IoU metrics), similarity
    # learning on embeddings (Circle).
    assert missing == sorted(
        ["CTC", "ctc", "Dice", "dice", "Tversky", "tversky", "Circle", "circle"]
        if module == "losses"
        else ["BinaryIoU", "IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU"]
    )
    for name in keras_names & ours:
        assert callable(getattr(getattr(tk, module), name)), name
