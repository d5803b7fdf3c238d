"""The training loop a user drives, under both modules from identical weights: what compile, fit, evaluate,
train_on_batch, test_on_batch and predict_on_batch give back.

Compared: ``History.history`` keys and values (validation data and split, several metrics, multi-output models with
named outputs, loss dicts, lists and ``loss_weights``), every Keras loss and metric given to ``compile`` as a
string (the per-object values are ``test_losses_metrics.py``'s), what ``evaluate`` returns (a scalar, the list
``[loss, *output_losses, *metrics]``, ``return_dict``), ``sample_weight`` and ``class_weight`` in ``fit`` and
``evaluate``, and a BatchNormalization model's weights after training (moving statistics).

Fits run with ``shuffle=False`` and plain SGD, so both frameworks take the same batches in the same order; the
values after several steps are held to rtol 1e-4, atol 1e-5 (each step's gradient comes from weights that already
differ by fp32 rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tritonnn

from . import differences
from .compare import Raised, assert_same, observe, to_numpy

RTOL, ATOL = 1e-4, 1e-5  # after several steps
RNG = np.random.default_rng(1234)
N = 48
X = RNG.normal(size=(N, 5)).astype("float32")
X2 = RNG.normal(size=(N, 3)).astype("float32")
C = 6  # classes: more than top-k accuracy's default k=5
Y_SPARSE = RNG.integers(0, C, size=(N,))
Y_ONEHOT = np.eye(C, dtype="float32")[Y_SPARSE]
Y_BINARY = RNG.integers(0, 2, size=(N, 1)).astype("float32")
Y_REG = RNG.normal(size=(N, 3)).astype("float32")
Y_POS = RNG.uniform(0.1, 2.0, size=(N, 3)).astype("float32")
SAMPLE_WEIGHT = RNG.uniform(0.0, 2.0, size=(N,)).astype("float32")


def weights_for(model: Any, seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.4, size=tuple(w.shape)).astype("float32") for w in model.weights]


def mlp(K: Any, units: int, activation: str | None) -> Any:
    return K.Sequential(
        [K.Input((5,)), K.layers.Dense(8, activation="tanh"), K.layers.Dense(units, activation=activation)]
    )


def two_io(K: Any) -> Any:
    a, b = K.Input((5,), name="features"), K.Input((3,), name="extra")
    h = K.layers.Concatenate(name="join")([K.layers.Dense(8, activation="relu", name="hidden")(a), b])
    cls = K.layers.Dense(C, activation="softmax", name="cls")(h)
    reg = K.layers.Dense(3, name="reg")(h)
    return K.Model(inputs=[a, b], outputs=[cls, reg], name="two_io")


def history_of(h: Any) -> dict[str, list[float]]:
    return {k: [float(v) for v in vals] for k, vals in h.history.items()}


def run(K: Any, build: Callable[[Any], Any], compile_kwargs: Callable[[Any], dict], fit_kwargs: dict,
        eval_kwargs: dict | None = None, weights: list[np.ndarray] | None = None) -> dict[str, Any]:  # fmt: skip
    """Build, set the shared weights, compile, evaluate before, fit, evaluate after (list and dict)."""
    model = build(K)
    model.set_weights(weights if weights is not None else weights_for(build(K)))
    out: dict[str, Any] = {"compile": observe(lambda: model.compile(**compile_kwargs(K)))}
    x, y = fit_kwargs["x"], fit_kwargs["y"]
    eval_kwargs = {"x": x, "y": y, **(eval_kwargs or {})}
    out["evaluate_before"] = observe(lambda: model.evaluate(verbose=0, **eval_kwargs))
    hist = observe(lambda: model.fit(verbose=0, shuffle=False, batch_size=16, **fit_kwargs))
    out["history_keys"] = hist if isinstance(hist, Raised) else observe(lambda: sorted(hist.history))
    out["history"] = hist if isinstance(hist, Raised) else observe(lambda: history_of(hist))
    out["evaluate"] = observe(lambda: model.evaluate(verbose=0, **eval_kwargs))
    out["evaluate_dict"] = observe(lambda: model.evaluate(verbose=0, return_dict=True, **eval_kwargs))
    out["weights"] = observe(model.get_weights)
    return out


def compare_runs(keras_ref: Any, *args: Any, deliberate: dict[str, str] | None = None, **kwargs: Any) -> None:
    ref = run(keras_ref, *args, **kwargs)
    got = run(tritonnn, *args, **kwargs)
    assert_same(*only_compile_if_it_failed(ref, got), rtol=RTOL, atol=ATOL, deliberate=deliberate)


def only_compile_if_it_failed(ref: dict[str, Any], got: dict[str, Any]) -> tuple[dict, dict]:
    """When ``compile`` raised on one side, everything after it fails for that reason alone: compare compile."""
    if isinstance(ref["compile"], Raised) or isinstance(got["compile"], Raised):
        return {"compile": ref["compile"]}, {"compile": got["compile"]}
    return ref, got


def _sgd(K: Any) -> Any:
    return K.optimizers.SGD(learning_rate=0.1)


# ---- History keys and values ----
def test_single_output_several_metrics_validation_data(keras_ref):
    compare_runs(
        keras_ref,
        lambda K: mlp(K, C, "softmax"),
        lambda K: {
            "optimizer": _sgd(K),
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy", "sparse_top_k_categorical_accuracy", "sparse_categorical_crossentropy"],
        },
        {"x": X, "y": Y_SPARSE, "epochs": 2, "validation_data": (X[:20], Y_SPARSE[:20])},
    )


@pytest.mark.parametrize("loss_weights", [[0.25], (0.25,), [0.5, 0.5]])
def test_single_output_loss_weights_as_a_list(keras_ref, loss_weights):
    """One output, ``loss_weights`` a list of one weight (Keras scales the loss by it), or of two (Keras' error)."""
    compare_runs(
        keras_ref,
        lambda K: mlp(K, 3, None),
        lambda K: {"optimizer": _sgd(K), "loss": "mse", "loss_weights": loss_weights},
        {"x": X, "y": Y_REG, "epochs": 2},
    )


def test_validation_split_and_metric_objects_with_names(keras_ref):
    compare_runs(
        keras_ref,
        lambda K: mlp(K, C, "softmax"),
        lambda K: {
            "optimizer": _sgd(K),
            "loss": K.losses.CategoricalCrossentropy(),
            "metrics": [K.metrics.CategoricalAccuracy(name="acc"), K.metrics.TopKCategoricalAccuracy(k=2)],
        },
        {"x": X, "y": Y_ONEHOT, "epochs": 2, "validation_split": 0.25},
    )


def test_multi_output_named_loss_dict_metrics_dict_loss_weights(keras_ref):
    compare_runs(
        keras_ref,
        two_io,
        lambda K: {
            "optimizer": _sgd(K),
            "loss": {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
            "loss_weights": {"cls": 1.0, "reg": 0.5},
            "metrics": {"cls": ["accuracy"], "reg": ["mae", K.metrics.MeanSquaredError(name="mse")]},
        },
        {
            "x": [X, X2],
            "y": {"cls": Y_SPARSE, "reg": Y_REG},
            "epochs": 2,
            "validation_data": ([X[:16], X2[:16]], {"cls": Y_SPARSE[:16], "reg": Y_REG[:16]}),
        },
    )


def test_multi_output_loss_list_inputs_dict(keras_ref):
    compare_runs(
        keras_ref,
        two_io,
        lambda K: {
            "optimizer": _sgd(K),
            "loss": ["categorical_crossentropy", "mae"],
            "loss_weights": [0.3, 2.0],
            "metrics": [["categorical_accuracy"], []],
        },
        {"x": {"features": X, "extra": X2}, "y": [Y_ONEHOT, Y_REG], "epochs": 1},
    )


def test_multi_output_one_loss_for_every_output(keras_ref):
    compare_runs(
        keras_ref,
        two_io,
        lambda K: {"optimizer": _sgd(K), "loss": "mse"},
        {"x": [X, X2], "y": [Y_ONEHOT, Y_REG], "epochs": 1},
    )


# ---- compile strings ----
# (loss string, output units, output activation, targets)
LOSS_STRINGS: list[tuple[str, int, str | None, np.ndarray]] = [
    ("mse", 3, None, Y_REG),
    ("mean_squared_error", 3, None, Y_REG),
    ("mae", 3, None, Y_REG),
    ("mean_absolute_error", 3, None, Y_REG),
    ("mape", 3, None, Y_POS),
    ("mean_absolute_percentage_error", 3, None, Y_POS),
    ("msle", 3, "softplus", Y_POS),
    ("mean_squared_logarithmic_error", 3, "softplus", Y_POS),
    ("huber", 3, None, Y_REG),
    ("log_cosh", 3, None, Y_REG),
    ("binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("bce", 1, "sigmoid", Y_BINARY),
    ("binary_focal_crossentropy", 1, "sigmoid", Y_BINARY),
    ("hinge", 1, "tanh", Y_BINARY),
    ("squared_hinge", 1, "tanh", Y_BINARY),
    ("categorical_crossentropy", C, "softmax", Y_ONEHOT),
    ("categorical_focal_crossentropy", C, "softmax", Y_ONEHOT),
    ("categorical_hinge", C, "softmax", Y_ONEHOT),
    ("sparse_categorical_crossentropy", C, "softmax", Y_SPARSE),
    ("kl_divergence", C, "softmax", Y_ONEHOT),
    ("kld", C, "softmax", Y_ONEHOT),
    ("poisson", 3, "softplus", Y_POS),
    ("cosine_similarity", 3, None, Y_REG),
]


@pytest.mark.parametrize("loss,units,activation,y", LOSS_STRINGS, ids=[c[0] for c in LOSS_STRINGS])
def test_compile_loss_string(keras_ref, loss, units, activation, y):
    compare_runs(
        keras_ref,
        lambda K: mlp(K, units, activation),
        lambda K: {"optimizer": _sgd(K), "loss": loss},
        {"x": X, "y": y, "epochs": 1},
    )


# (metric string, the model's loss, output units, activation, targets)
METRIC_STRINGS: list[tuple[str, str, int, str | None, np.ndarray]] = [
    ("accuracy", "sparse_categorical_crossentropy", C, "softmax", Y_SPARSE),
    ("acc", "sparse_categorical_crossentropy", C, "softmax", Y_SPARSE),
    ("accuracy", "categorical_crossentropy", C, "softmax", Y_ONEHOT),
    ("accuracy", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("sparse_categorical_accuracy", "sparse_categorical_crossentropy", C, "softmax", Y_SPARSE),
    ("sparse_top_k_categorical_accuracy", "sparse_categorical_crossentropy", C, "softmax", Y_SPARSE),
    ("sparse_categorical_crossentropy", "sparse_categorical_crossentropy", C, "softmax", Y_SPARSE),
    ("categorical_accuracy", "categorical_crossentropy", C, "softmax", Y_ONEHOT),
    ("top_k_categorical_accuracy", "categorical_crossentropy", C, "softmax", Y_ONEHOT),
    ("categorical_crossentropy", "categorical_crossentropy", C, "softmax", Y_ONEHOT),
    ("kl_divergence", "categorical_crossentropy", C, "softmax", Y_ONEHOT),
    ("binary_accuracy", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("binary_crossentropy", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("bce", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("true_positives", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("false_positives", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("true_negatives", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("false_negatives", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("squared_hinge", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("categorical_hinge", "categorical_crossentropy", C, "softmax", Y_ONEHOT),
    ("auc", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("precision", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("recall", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("hinge", "binary_crossentropy", 1, "sigmoid", Y_BINARY),
    ("mse", "mse", 3, None, Y_REG),
    ("mean_squared_error", "mse", 3, None, Y_REG),
    ("mae", "mse", 3, None, Y_REG),
    ("mean_absolute_error", "mse", 3, None, Y_REG),
    ("mape", "mse", 3, None, Y_POS),
    ("mean_absolute_percentage_error", "mse", 3, None, Y_POS),
    ("msle", "mse", 3, "softplus", Y_POS),
    ("mean_squared_logarithmic_error", "mse", 3, "softplus", Y_POS),
    ("root_mean_squared_error", "mse", 3, None, Y_REG),
    ("log_cosh_error", "mse", 3, None, Y_REG),
    ("cosine_similarity", "mse", 3, None, Y_REG),
    ("poisson", "mse", 3, "softplus", Y_POS),
    ("r2_score", "mse", 3, None, Y_REG),
]


@pytest.mark.parametrize(
    "metric,loss,units,activation,y", METRIC_STRINGS, ids=[f"{c[0]}-{c[1]}" for c in METRIC_STRINGS]
)
def test_compile_metric_string(keras_ref, metric, loss, units, activation, y):
    # The confusion counts' training entry in Keras' History is the validation count (a metric whose result() is its
    # own state variable): the val_ entry, evaluate and everything else are compared.
    aliased = metric in ("true_positives", "false_positives", "true_negatives", "false_negatives")
    compare_runs(
        keras_ref,
        lambda K: mlp(K, units, activation),
        lambda K: {"optimizer": _sgd(K), "loss": loss, "metrics": [metric]},
        {"x": X, "y": y, "epochs": 1, "validation_data": (X[:16], y[:16])},
        deliberate={f"history.{metric}": differences.deliberate("metrics.history-train-entry-aliases-validation")}
        if aliased
        else None,
    )


def test_confusion_counts_without_validation(keras_ref):
    """Without validation data Keras' History holds the training counts: they must match exactly."""
    compare_runs(
        keras_ref,
        lambda K: mlp(K, 1, "sigmoid"),
        lambda K: {
            "optimizer": _sgd(K),
            "loss": "binary_crossentropy",
            "metrics": [
                K.metrics.TruePositives(name="tp"),
                K.metrics.FalsePositives(name="fp"),
                K.metrics.TrueNegatives(name="tn"),
                K.metrics.FalseNegatives(name="fn"),
                K.metrics.Precision(),
                K.metrics.Recall(),
            ],
        },
        {"x": X, "y": Y_BINARY, "epochs": 2},
    )


def test_optimizer_strings(keras_ref):
    """``compile(optimizer=<string>)``: the default hyper-parameters of every optimizer name, one step each."""
    for name in ("sgd", "adam", "adamw", "rmsprop", "SGD", "Adam"):
        compare_runs(
            keras_ref,
            lambda K: mlp(K, C, "softmax"),
            lambda K, name=name: {"optimizer": name, "loss": "sparse_categorical_crossentropy"},
            {"x": X[:16], "y": Y_SPARSE[:16], "epochs": 1},
        )


# ---- evaluate's return value, single batches ----
def batch_calls(K: Any, build: Callable[[Any], Any], compile_kwargs: dict[str, Any], x: Any, y: Any) -> dict:
    model = build(K)
    model.set_weights(weights_for(build(K)))
    return {
        "compile": observe(lambda: model.compile(optimizer=K.optimizers.SGD(0.1), **compile_kwargs)),
        "evaluate": observe(lambda: model.evaluate(x, y, verbose=0)),
        "evaluate_type": observe(lambda: type(model.evaluate(x, y, verbose=0)).__name__),
        "evaluate_dict": observe(lambda: model.evaluate(x, y, verbose=0, return_dict=True)),
        "test_on_batch": observe(lambda: model.test_on_batch(x, y)),
        "test_on_batch_dict": observe(lambda: model.test_on_batch(x, y, return_dict=True)),
        "train_on_batch": observe(lambda: model.train_on_batch(x, y)),
        "train_on_batch_dict": observe(lambda: model.train_on_batch(x, y, return_dict=True)),
        "predict_on_batch": observe(lambda: to_numpy(K, model.predict_on_batch(x))),
        "weights_after": observe(model.get_weights),
    }


RETURN_CASES: dict[str, tuple[Callable[[Any], Any], dict[str, Any], Any, Any]] = {
    "loss_only": (lambda K: mlp(K, C, "softmax"), {"loss": "sparse_categorical_crossentropy"}, X, Y_SPARSE),
    "two_metrics": (
        lambda K: mlp(K, C, "softmax"),
        {"loss": "categorical_crossentropy", "metrics": ["accuracy", "top_k_categorical_accuracy"]},
        X,
        Y_ONEHOT,
    ),
    "multi_output": (
        two_io,
        {
            "loss": {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
            "metrics": {"cls": ["accuracy"], "reg": ["mae"]},
        },
        [X, X2],
        {"cls": Y_SPARSE, "reg": Y_REG},
    ),
    "multi_output_loss_only": (
        two_io,
        {"loss": ["sparse_categorical_crossentropy", "mse"]},
        [X, X2],
        [Y_SPARSE, Y_REG],
    ),
}


@pytest.mark.parametrize("case", list(RETURN_CASES))
def test_evaluate_and_single_batch_returns(keras_ref, case):
    build, compile_kwargs, x, y = RETURN_CASES[case]
    ref = batch_calls(keras_ref, build, compile_kwargs, x, y)
    got = batch_calls(tritonnn, build, compile_kwargs, x, y)
    assert_same(*only_compile_if_it_failed(ref, got), rtol=RTOL, atol=ATOL, what=case)


# ---- sample_weight and class_weight ----
def test_sample_weight_in_fit_and_evaluate(keras_ref):
    compare_runs(
        keras_ref,
        lambda K: mlp(K, C, "softmax"),
        lambda K: {
            "optimizer": _sgd(K),
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
            "weighted_metrics": ["accuracy"],
        },
        {
            "x": X,
            "y": Y_SPARSE,
            "sample_weight": SAMPLE_WEIGHT,
            "epochs": 2,
            "validation_data": (X[:16], Y_SPARSE[:16], SAMPLE_WEIGHT[:16]),
        },
        {"sample_weight": SAMPLE_WEIGHT},
        deliberate={
            key: differences.deliberate("evaluate.plain-and-weighted-metric-list")
            for key in ("evaluate_before", "evaluate")
        },
    )


def test_sample_weight_regression_multi_dim_targets(keras_ref):
    compare_runs(
        keras_ref,
        lambda K: mlp(K, 3, None),
        lambda K: {"optimizer": _sgd(K), "loss": "mse", "weighted_metrics": ["mae"]},
        {"x": X, "y": Y_REG, "sample_weight": SAMPLE_WEIGHT, "epochs": 2},
        {"sample_weight": SAMPLE_WEIGHT},
    )


def test_class_weight_in_fit(keras_ref):
    compare_runs(
        keras_ref,
        lambda K: mlp(K, C, "softmax"),
        lambda K: {"optimizer": _sgd(K), "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        {"x": X, "y": Y_SPARSE, "class_weight": {0: 0.5, 1: 2.0, 2: 1.0, 3: 4.0}, "epochs": 2},
    )


def test_class_weight_binary(keras_ref):
    compare_runs(
        keras_ref,
        lambda K: mlp(K, 1, "sigmoid"),
        lambda K: {"optimizer": _sgd(K), "loss": "binary_crossentropy", "weighted_metrics": ["accuracy"]},
        {"x": X, "y": Y_BINARY, "class_weight": {0: 1.0, 1: 3.0}, "epochs": 2},
    )


# ---- targets of rank one for a (n, 1) output ----
# Keras matches the ranks of y_true and y_pred (``squeeze_or_expand_to_same_rank``): (n,) targets for a (n, 1)
# output are per-sample values, never broadcast to (n, n). The guides pass y as float32 (n,).
RANK_ONE: list[tuple[str, str | None, np.ndarray, list[str]]] = [
    ("mse", None, Y_REG[:, 0], ["mae", "mse"]),
    ("mae", None, Y_REG[:, 0], ["mse"]),
    ("huber", None, Y_REG[:, 0], []),
    ("binary_crossentropy", "sigmoid", Y_BINARY[:, 0], ["accuracy", "binary_accuracy", "auc", "precision"]),
    ("binary_crossentropy", "sigmoid", Y_BINARY[:, 0].astype("int64"), ["accuracy", "recall"]),
]


@pytest.mark.parametrize("loss,activation,y,metrics", RANK_ONE, ids=[f"{c[0]}-{c[2].dtype}" for c in RANK_ONE])
def test_rank_one_targets_for_one_unit_output(keras_ref, loss, activation, y, metrics):
    compare_runs(
        keras_ref,
        lambda K: mlp(K, 1, activation),
        lambda K: {"optimizer": _sgd(K), "loss": loss, "metrics": metrics},
        {"x": X, "y": y, "epochs": 2, "validation_data": (X[:16], y[:16])},
    )


# ---- BatchNormalization in training ----
def test_batch_normalization_moving_statistics_after_fit(keras_ref):
    def build(K):
        return K.Sequential(
            [
                K.Input((5,)),
                K.layers.Dense(6),
                K.layers.BatchNormalization(momentum=0.8),
                K.layers.Activation("relu"),
                K.layers.Dense(C, activation="softmax"),
            ]
        )

    ref_model = build(keras_ref)
    rng = np.random.default_rng(3)
    weights = [
        (
            rng.uniform(0.5, 1.5, size=tuple(w.shape))
            if "variance" in w.path
            else rng.normal(scale=0.4, size=tuple(w.shape))
        ).astype("float32")
        for w in ref_model.weights
    ]
    compare_runs(
        keras_ref,
        build,
        lambda K: {"optimizer": _sgd(K), "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        {"x": X, "y": Y_SPARSE, "epochs": 2},
        weights=weights,
    )


# ---- a saturated softmax ----
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_cross_entropy_of_a_saturated_softmax(keras_ref, loss):
    """Large logits: some probabilities round below 1e-7. Everything but the loss value matches; the loss differs as
    docs/keras_differences.md says (Keras on torch clips the probabilities, tritonnn uses the logits)."""
    y = Y_SPARSE if loss.startswith("sparse") else Y_ONEHOT
    weights = [w * 12 for w in weights_for(mlp(tritonnn, C, "softmax"))]

    def program(K):
        model = mlp(K, C, "softmax")
        model.set_weights(weights)
        model.compile(optimizer=_sgd(K), loss=loss, metrics=["accuracy"])
        return {
            "predict": model.predict(X, verbose=0),
            "evaluate": model.evaluate(X, y, verbose=0, return_dict=True),
        }

    ref, got = program(keras_ref), program(tritonnn)
    assert_same(
        ref, got, deliberate={"evaluate.loss": differences.deliberate("loss.softmax-cross-entropy-from-logits")}
    )
    # The documented difference, from a float64 forward pass of the same weights:
    h = np.tanh(X.astype("float64") @ weights[0] + weights[1])
    z = h @ weights[2] + weights[3]
    log_p = z - z.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    picked = log_p[np.arange(N), Y_SPARSE]
    assert (picked < np.log(1e-7)).any(), "the case must saturate, or it shows nothing"
    assert ref["evaluate"]["loss"] == pytest.approx(-np.maximum(picked, np.log(1e-7)).mean(), rel=1e-4)
    assert got["evaluate"]["loss"] == pytest.approx(-picked.mean(), rel=1e-4)
