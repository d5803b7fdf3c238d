"""keras.wrappers (``SKLearnClassifier``, ``SKLearnRegressor``, ``SKLearnTransformer``) against real Keras: the same
small model (its initial weights set from a seed by the model-building function) wrapped under each module and
fitted on a tiny data set with unshuffled SGD; predictions, ``decision_function``, ``score``, ``transform``,
``classes_``, ``n_features_in_``, the history and the weights after ``fit``; ``get_params``/``set_params``/
``sklearn.base.clone``, the estimator tags, use in a ``Pipeline`` and in ``cross_val_score``; scikit-learn's own
estimator checks (every one Keras passes); the errors for bad input; the ``ImportError`` without scikit-learn and
``import tritonnn`` not importing it. Keras' accidents that tritonnn does not copy are listed differences."""

from __future__ import annotations

import importlib
import pickle
import re
import subprocess
import sys
from collections import Counter
from typing import Any

import numpy as np
import pytest

import tritonnn

from .compare import Raised, assert_same, observe
from .differences import deliberate

sklearn = pytest.importorskip("sklearn", minversion="1.6", reason="keras.wrappers needs scikit-learn >= 1.6")

from sklearn.base import clone, is_classifier, is_regressor  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils import get_tags  # noqa: E402

RNG = np.random.default_rng(14)
X = RNG.normal(size=(12, 3))  # float64, as a user's data usually is: validated as it is, the model casts
X_NEW = RNG.normal(size=(5, 3))
Y_INT = RNG.permutation(np.array([0, 1, 2] * 4))
Y_STR = np.array(["cat", "dog", "eel"])[Y_INT]
Y_BIN = RNG.permutation(np.array([3, 7] * 6))
Y_REG = X @ np.array([0.5, -1.0, 0.25]) + 0.1 * RNG.normal(size=12)
FIT = {"epochs": 3, "batch_size": 4, "shuffle": False, "verbose": 0}


def initial_weights(n_in: int, hidden: int, n_out: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, n_in, hidden, n_out])
    return [
        rng.normal(scale=0.5, size=(n_in, hidden)).astype("float32"),
        rng.normal(scale=0.1, size=(hidden,)).astype("float32"),
        rng.normal(scale=0.5, size=(hidden, n_out)).astype("float32"),
        rng.normal(scale=0.1, size=(n_out,)).astype("float32"),
    ]


def builder(K: Any) -> Any:
    """The model-building function a user passes as ``model``, written against module ``K``."""

    def build(X, y, loss="categorical_crossentropy", activation="softmax", hidden=5, lr=0.1, seed=0):
        n_in, n_out = X.shape[1], (y.shape[1] if y.ndim > 1 else 1)
        model = K.Sequential(
            [K.Input((n_in,)), K.layers.Dense(hidden, activation="tanh"), K.layers.Dense(n_out, activation=activation)]
        )
        model.set_weights(initial_weights(n_in, hidden, n_out, seed))
        model.compile(loss=loss, optimizer=K.optimizers.SGD(learning_rate=lr))
        return model

    return build


REGRESSION = {"loss": "mse", "activation": None, "lr": 0.05}


class PicklableBuilder:
    """``builder(K)`` as a callable pickle can store (a user's module-level function): ``K`` by its module name."""

    def __init__(self, K: Any) -> None:
        self.module = K.__name__

    def __call__(self, X: Any, y: Any, **kwargs: Any) -> Any:
        return builder(importlib.import_module(self.module))(X, y, **kwargs)


def both(keras_ref: Any, fn: Any) -> tuple[Any, Any]:
    """``fn(K, wrappers)`` under real Keras, then under tritonnn."""
    return fn(keras_ref, keras_ref.wrappers), fn(tritonnn, tritonnn.wrappers)


def fitted_view(est: Any) -> dict[str, Any]:
    """What a fitted wrapper shows: its model's weights and history."""
    return {
        "weights": [np.asarray(w) for w in est.model_.get_weights()],
        "history": {k: [float(v) for v in vals] for k, vals in est.history_.history.items()},
        "n_features_in_": est.n_features_in_,
    }


def without_addresses(text: str) -> str:
    return re.sub(r" at 0x[0-9a-f]+", "", text)


# ---- the public names -----------------------------------------------------------------------------------------------


def test_module_names_match_keras(keras_ref):
    public = {n for n in dir(keras_ref.wrappers) if not n.startswith("_")}
    assert public == {"SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"}
    assert public <= set(dir(tritonnn.wrappers)) and set(tritonnn.wrappers.__all__) == public
    assert tritonnn.wrappers.SKLearnClassifier is tritonnn.wrappers.SKLearnClassifier  # made once
    for name in public:
        cls = getattr(tritonnn.wrappers, name)
        assert cls.__name__ == name and cls.__module__ == "tritonnn.wrappers"
        ref = getattr(keras_ref.wrappers, name)
        assert [b.__name__ for b in cls.__mro__ if b.__module__.startswith("sklearn")] == [
            b.__name__ for b in ref.__mro__ if b.__module__.startswith("sklearn")
        ]
    with pytest.raises(AttributeError):
        tritonnn.wrappers.SKLearnNothing  # noqa: B018


def test_import_tritonnn_leaves_sklearn_unimported_and_the_error_without_it_is_keras():
    """In fresh processes: ``import tritonnn`` does not import scikit-learn; without scikit-learn the classes exist
    and constructing one raises Keras' ``ImportError`` (Keras run the same way in the same process)."""
    code = (
        "import sys, os\n"
        "os.environ['KERAS_BACKEND'] = 'torch'\n"
        "import tritonnn\n"
        "assert 'sklearn' not in sys.modules, 'import tritonnn imported sklearn'\n"
        "sys.modules['sklearn'] = None\n"
        "import keras\n"
        "for name in ('SKLearnClassifier', 'SKLearnRegressor', 'SKLearnTransformer'):\n"
        "    got = []\n"
        "    for cls in (getattr(keras.wrappers, name), getattr(tritonnn.wrappers, name)):\n"
        "        try:\n"
        "            cls(model=None)\n"
        "        except ImportError as e:\n"
        "            got.append(str(e))\n"
        "    assert len(got) == 2 and got[0] == got[1], got\n"
        "    print(got[1])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == (
        "SKLearnClassifier requires `scikit-learn` to be installed. Run `pip install scikit-learn` to install it."
    )


# ---- fit, predict, score, transform ---------------------------------------------------------------------------------

CLASSIFIER_CASES = [
    ("multiclass", Y_INT, {}),
    ("string_labels", Y_STR, {}),
    ("binary_sigmoid", Y_BIN, {"loss": "binary_crossentropy", "activation": "sigmoid"}),
    ("multiclass_mse_seed", Y_INT, {"loss": "mse", "seed": 3, "hidden": 4}),
]


@pytest.mark.parametrize("y, model_kwargs", [c[1:] for c in CLASSIFIER_CASES], ids=[c[0] for c in CLASSIFIER_CASES])
def test_classifier_matches_keras(keras_ref, y, model_kwargs):
    def run(K, W):
        est = W.SKLearnClassifier(builder(K), model_kwargs=model_kwargs, fit_kwargs=dict(FIT))
        assert est.fit(X, y) is est
        return {
            **fitted_view(est),
            "classes_": est.classes_,
            "decision_function": est.decision_function(X_NEW),
            "predict": est.predict(X),
            "predict_new": est.predict(X_NEW),
            "score": est.score(X, y),
            "has_predict_proba": hasattr(est, "predict_proba"),  # neither has one
            "is_classifier": is_classifier(est),
        }

    ref, got = both(keras_ref, run)
    assert ref["decision_function"].shape == (5, len(np.unique(y)))  # always one-hot, whatever the loss
    assert_same(ref, got)


def test_classifier_targets_are_one_hot_for_the_model_as_in_keras(keras_ref):
    """The building function sees the validated ``X`` and the one-hot ``y`` (float64), whatever the loss."""
    seen: dict[str, Any] = {}

    def run(K, W):
        build = builder(K)

        def spy(X, y, **kwargs):
            seen[K.__name__] = (X.dtype, X.shape, y.dtype, y.shape, y.sum(axis=0))
            return build(X, y, **kwargs)

        observe(
            lambda: W.SKLearnClassifier(spy, model_kwargs={"loss": "mse"}, fit_kwargs=dict(FIT)).fit(X.tolist(), Y_STR)
        )
        # a sparse loss gets the one-hot targets too, and fails on them
        return observe(
            lambda: W.SKLearnClassifier(
                build, model_kwargs={"loss": "sparse_categorical_crossentropy"}, fit_kwargs=FIT
            ).fit(X, Y_INT)
        )

    ref, got = both(keras_ref, run)
    assert isinstance(ref, Raised) and ref == got, (ref, got)
    assert_same(seen["keras"], seen["tritonnn"])
    assert seen["tritonnn"][3] == (12, 3)


def test_regressor_matches_keras(keras_ref):
    def run(K, W):
        est = W.SKLearnRegressor(builder(K), model_kwargs=REGRESSION, fit_kwargs=dict(FIT)).fit(X, Y_REG)
        weighted = W.SKLearnRegressor(builder(K), model_kwargs=REGRESSION, fit_kwargs=dict(FIT))
        weighted.fit(X, Y_REG, sample_weight=np.linspace(0.5, 2.0, 12), epochs=2)  # over fit_kwargs' epochs
        return {
            **fitted_view(est),
            "predict": est.predict(X_NEW),
            "score": est.score(X, Y_REG),
            "is_regressor": is_regressor(est),
            "weighted": fitted_view(weighted),
            "weighted_predict": weighted.predict(X_NEW),
        }

    ref, got = both(keras_ref, run)
    assert ref["predict"].shape == (5,) and len(ref["weighted"]["history"]["loss"]) == 2
    assert_same(ref, got)


def test_transformer_matches_keras(keras_ref):
    def run(K, W):
        est = W.SKLearnTransformer(builder(K), model_kwargs={**REGRESSION, "hidden": 3}, fit_kwargs=dict(FIT))
        out = est.fit_transform(X, Y_REG)
        return {**fitted_view(est), "fit_transform": out, "transform": est.transform(X_NEW)}

    ref, got = both(keras_ref, run)
    assert ref["transform"].shape == (5, 1) and ref["transform"].dtype == np.float32
    assert_same(ref, got)


def test_given_model_is_cloned_compiled_as_in_keras(keras_ref):
    """A (compiled) model given as ``model`` is cloned: new weights, compiled the same way; the given model is
    left as it was."""

    def run(K, W):
        inputs = K.Input((3,))
        model = K.Model(inputs, K.layers.Dense(1)(K.layers.Dense(4, activation="relu")(inputs)))
        model.compile(loss="mse", optimizer=K.optimizers.SGD(0.01))
        before = [np.asarray(w) for w in model.get_weights()]
        est = W.SKLearnRegressor(model, fit_kwargs=dict(FIT)).fit(X, Y_REG)
        return {
            "same_object": est.model_ is model,
            "unchanged": all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)),
            "shapes": [tuple(w.shape) for w in est.model_.get_weights()],
            "optimizer": type(est.model_.optimizer).__name__,
            "learning_rate": float(np.asarray(est.model_.optimizer.learning_rate)),
            "epochs": len(est.history_.history["loss"]),
            "predict_shape": est.predict(X_NEW).shape,
        }

    ref, got = both(keras_ref, run)
    assert ref["same_object"] is False and ref["unchanged"] is True
    assert_same(ref, got)


# ---- scikit-learn's API: params, clone, tags, pipelines, cross-validation -------------------------------------------


@pytest.mark.parametrize("name", ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"])
def test_params_repr_and_tags_match_keras(keras_ref, name):
    def run(K, W):
        est = getattr(W, name)(builder(K), model_kwargs={"hidden": 3}, fit_kwargs={"epochs": 2})
        params = est.get_params()
        out = {
            "keys": sorted(params),
            "params": {k: v for k, v in params.items() if k != "model"},
            "model_is_the_function": params["model"] is est.model,
            "deep": sorted(est.get_params(deep=True)),
            "repr": without_addresses(repr(est)),
            "tags": repr(get_tags(est)),
            "set_params_returns_self": est.set_params(warm_start=True, model_kwargs={"hidden": 2}) is est,
            "after_set": {k: v for k, v in est.get_params().items() if k != "model"},
            "bad_param": observe(lambda: est.set_params(no_such_param=1)),
            "default_repr": without_addresses(repr(getattr(W, name)(builder(K)))),
            "pickled_params": {
                k: v for k, v in pickle.loads(pickle.dumps(getattr(W, name)(max))).get_params().items() if k != "model"
            },
        }
        return out

    ref, got = both(keras_ref, run)
    assert isinstance(ref["bad_param"], Raised) and ref["bad_param"].type == "ValueError"
    assert_same(ref, got)


def test_clone_matches_keras_except_fit_kwargs(keras_ref):
    """``sklearn.base.clone``: a new, unfitted estimator sharing the building function. Keras' drops
    ``fit_kwargs`` (its ``__sklearn_clone__`` omits it); tritonnn's keeps it."""

    def run(K, W):
        est = W.SKLearnClassifier(builder(K), model_kwargs={"hidden": 3}, fit_kwargs=dict(FIT)).fit(X, Y_INT)
        twin = clone(est)
        return {
            "type": type(twin).__name__,
            "fitted": hasattr(twin, "model_") or hasattr(twin, "classes_"),
            "shares_model": twin.model is est.model,
            "params": {k: v for k, v in twin.get_params().items() if k != "model"},
        }

    ref, got = both(keras_ref, run)
    assert ref["params"]["fit_kwargs"] is None and got["params"]["fit_kwargs"] == FIT
    assert_same(ref, got, deliberate={"params.fit_kwargs": deliberate("wrappers.clone-keeps-fit-kwargs")})


def test_pipelines_match_keras(keras_ref):
    def run(K, W):
        clf = make_pipeline(StandardScaler(), W.SKLearnClassifier(builder(K), fit_kwargs=dict(FIT))).fit(X, Y_STR)
        features = make_pipeline(
            W.SKLearnTransformer(builder(K), model_kwargs={**REGRESSION, "hidden": 4}, fit_kwargs=dict(FIT)),
            LinearRegression(),
        ).fit(X, Y_REG)
        return {
            "predict": clf.predict(X_NEW),
            "score": clf.score(X, Y_STR),
            "decision_function": clf.decision_function(X_NEW),
            "classes_": clf.classes_,
            "features_predict": features.predict(X_NEW),
            "features_score": features.score(X, Y_REG),
        }

    ref, got = both(keras_ref, run)
    # LinearRegression on the one learned feature: a least-squares fit amplifies the fp32 rounding of the feature
    assert_same(ref, got, rtol=1e-4, atol=1e-5)


def test_cross_val_score_matches_keras(keras_ref):
    """Three unshuffled folds, ``fit`` arguments through ``params`` (scikit-learn passes them to ``fit`` when
    metadata routing is off): the same fold scores. With the arguments in ``fit_kwargs`` instead, tritonnn's folds
    (clones) train with them; Keras' clones have lost them, so its folds train one epoch of default ``fit``."""

    def run(K, W):
        return {
            "regressor": cross_val_score(
                W.SKLearnRegressor(builder(K), model_kwargs=REGRESSION), X, Y_REG, cv=3, params=FIT
            ),
            "classifier": cross_val_score(W.SKLearnClassifier(builder(K)), X, Y_INT, cv=3, params=FIT),
        }

    ref, got = both(keras_ref, run)
    assert ref["regressor"].shape == (3,)
    assert_same(ref, got)
    deliberate("wrappers.clone-keeps-fit-kwargs")
    through_fit_kwargs = cross_val_score(
        tritonnn.wrappers.SKLearnRegressor(builder(tritonnn), model_kwargs=REGRESSION, fit_kwargs=dict(FIT)),
        X,
        Y_REG,
        cv=3,
    )
    assert_same(ref["regressor"], through_fit_kwargs)


# ---- scikit-learn's estimator checks --------------------------------------------------------------------------------


def dynamic_model(K: Any) -> Any:
    """The model-building function of Keras' own scikit-learn tests (keras/src/wrappers/sklearn_test.py), with a
    single output tensor rather than a list of one."""

    def build(X, y, loss, out_activation_function="softmax", layers=(10,)):
        inputs = hidden = K.Input(shape=(X.shape[1],))
        for size in layers:
            hidden = K.layers.Dense(size, activation="relu")(hidden)
        n_outputs = y.shape[1] if len(y.shape) > 1 else 1
        model = K.Model(inputs, K.layers.Dense(n_outputs, activation=out_activation_function)(hidden))
        model.compile(loss=loss, optimizer="rmsprop")
        return model

    return build


# Keras' own list of the checks its wrappers are expected to fail (sklearn_test.py's EXPECTED_FAILED_CHECKS)
EXPECTED_FAILED_CHECKS = {
    "SKLearnClassifier": [
        "check_classifiers_regression_target",
        "check_parameters_default_constructible",
        "check_classifiers_one_label_sample_weights",
        "check_classifiers_classes",
        "check_classifier_data_not_an_array",
        "check_supervised_y_2d",
        "check_fit_idempotent",
        "check_classifiers_train",
    ],
    "SKLearnRegressor": ["check_parameters_default_constructible"],
    "SKLearnTransformer": ["check_parameters_default_constructible"],
}
CHECK_KWARGS = {
    "SKLearnClassifier": {"loss": "categorical_crossentropy", "layers": (20, 20, 20)},
    "SKLearnRegressor": {"loss": "mse", "out_activation_function": None},
    "SKLearnTransformer": {"loss": "mse", "out_activation_function": None},
}


def passed_checks(estimator: Any) -> Counter:
    from sklearn.utils.estimator_checks import check_estimator

    name = type(estimator).__name__
    results = check_estimator(
        estimator, expected_failed_checks=dict.fromkeys(EXPECTED_FAILED_CHECKS[name], "Keras fails it"), on_fail=None
    )
    return Counter(r["check_name"] for r in results if r["status"] == "passed")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # the checks' own warnings (convergence, data conversion)
@pytest.mark.parametrize("name", ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"])
def test_sklearn_estimator_checks_keras_passes(keras_ref, name):
    """scikit-learn's ``check_estimator`` on each wrapper, as Keras' own test configures it: every check Keras'
    wrapper passes, tritonnn's passes too."""

    def run(K, W):
        fit_kwargs = {"epochs": 5} if name == "SKLearnClassifier" else {}
        est = getattr(W, name)(model=dynamic_model(K), model_kwargs=CHECK_KWARGS[name], fit_kwargs=fit_kwargs)
        return passed_checks(est)

    ref, got = both(keras_ref, run)
    assert ref["check_fit2d_1sample"] and ref["check_n_features_in"] and ref["check_estimators_nan_inf"]
    missing = {check: n - got[check] for check, n in ref.items() if got[check] < n}
    assert not missing, f"checks Keras' {name} passes and tritonnn's fails: {missing}"


def test_fitted_estimator_pickles_as_in_keras(keras_ref):
    def run(K, W):
        est = W.SKLearnRegressor(PicklableBuilder(K), model_kwargs=REGRESSION, fit_kwargs=dict(FIT)).fit(X, Y_REG)
        return pickle.loads(pickle.dumps(est)).predict(X_NEW), est.predict(X_NEW)

    (ref_loaded, ref_pred), (got_loaded, got_pred) = both(keras_ref, run)
    assert_same(ref_loaded, ref_pred)
    assert_same(got_loaded, got_pred)
    assert_same(ref_pred, got_pred)


# ---- errors ---------------------------------------------------------------------------------------------------------


def _fit(cls: str, x: Any, y: Any, **kwargs: Any) -> Any:
    def go(K, W):
        model_kwargs = {} if cls == "SKLearnClassifier" else REGRESSION
        return getattr(W, cls)(builder(K), model_kwargs=model_kwargs, fit_kwargs=dict(FIT)).fit(x, y, **kwargs)

    return go


def _fitted_then(cls: str, call: Any) -> Any:
    def go(K, W):
        y = Y_INT if cls == "SKLearnClassifier" else Y_REG
        model_kwargs = {} if cls == "SKLearnClassifier" else REGRESSION
        return call(getattr(W, cls)(builder(K), model_kwargs=model_kwargs, fit_kwargs=dict(FIT)).fit(X, y))

    return go


def _uncompiled(K, W):
    def build(X, y):
        inputs = K.Input((X.shape[1],))
        return K.Model(inputs, K.layers.Dense(1)(inputs))

    return W.SKLearnRegressor(build, fit_kwargs=dict(FIT)).fit(X, Y_REG)


X_NAN = X.copy()
X_NAN[2, 1] = np.nan
X_INF = X.copy()
X_INF[0, 0] = np.inf
# (id, what is run, whether the messages are compared too: those written by scikit-learn or by the wrapper)
ERROR_CASES = [
    ("classifier_continuous_target", _fit("SKLearnClassifier", X, Y_REG), True),
    ("classifier_one_class", _fit("SKLearnClassifier", X, np.zeros(12)), True),
    ("classifier_multilabel", _fit("SKLearnClassifier", X, np.eye(3)[Y_INT]), True),
    ("regressor_2d_target", _fit("SKLearnRegressor", X, np.ones((12, 2))), True),
    ("sample_count_mismatch", _fit("SKLearnRegressor", X, Y_REG[:7]), True),
    ("x_1d", _fit("SKLearnRegressor", X[:, 0], Y_REG), True),
    ("x_nan", _fit("SKLearnRegressor", X_NAN, Y_REG), True),
    ("x_inf", _fit("SKLearnClassifier", X_INF, Y_INT), True),
    ("x_strings", _fit("SKLearnRegressor", np.full((12, 3), "a"), Y_REG), True),
    ("x_empty", _fit("SKLearnRegressor", np.zeros((0, 3)), np.zeros(0)), True),
    ("x_3d", _fit("SKLearnRegressor", np.zeros((12, 3, 1)), Y_REG), True),
    ("unknown_fit_argument", _fit("SKLearnRegressor", X, Y_REG, no_such_argument=1), False),
    ("predict_not_fitted", lambda K, W: W.SKLearnClassifier(builder(K)).predict(X), True),
    ("transform_not_fitted", lambda K, W: W.SKLearnTransformer(builder(K)).transform(X), True),
    ("decision_not_fitted", lambda K, W: W.SKLearnClassifier(builder(K)).decision_function(X), True),
    ("predict_feature_count", _fitted_then("SKLearnRegressor", lambda e: e.predict(X[:, :2])), True),
    ("transform_feature_count", _fitted_then("SKLearnClassifier", lambda e: e.decision_function(X[:, :2])), True),
    ("predict_1d", _fitted_then("SKLearnClassifier", lambda e: e.predict(X[0])), True),
    ("predict_nan", _fitted_then("SKLearnRegressor", lambda e: e.predict(X_NAN)), True),
    ("uncompiled_model", _uncompiled, True),
    ("model_none", lambda K, W: W.SKLearnRegressor(None).fit(X, Y_REG), False),
    ("unknown_model_kwarg", lambda K, W: W.SKLearnRegressor(builder(K), model_kwargs={"bogus": 1}).fit(X, Y_REG), True),
    (
        "transformer_without_y",
        lambda K, W: W.SKLearnTransformer(builder(K), fit_kwargs=dict(FIT)).fit_transform(X),
        False,
    ),
    ("set_fit_request_without_routing", lambda K, W: W.SKLearnRegressor(builder(K)).set_fit_request(x=True), True),
]


@pytest.mark.parametrize("run, messages", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_errors_match_keras(keras_ref, run, messages):
    ref, got = both(keras_ref, lambda K, W: observe(lambda: run(K, W)))
    assert isinstance(ref, Raised), f"Keras raised nothing: {ref!r}"
    assert got == ref, f"tritonnn: {got!r}, Keras: {ref!r}"
    if messages:
        assert without_addresses(got.message) == without_addresses(ref.message)


def test_a_callable_returning_no_model_is_a_type_error():
    """Keras: ``AttributeError: 'NoneType' object has no attribute 'compiled'``; tritonnn names the problem."""
    deliberate("error.wrappers-model-not-a-model")
    with pytest.raises(TypeError, match="tritonnn Model, or a callable returning one.*None"):
        tritonnn.wrappers.SKLearnRegressor(lambda X, y: None).fit(X, Y_REG)


# ---- what tritonnn does as Keras documents it, where Keras 3.15 does otherwise -------------------------------------


def test_warm_start_continues_training(keras_ref):
    """``warm_start=True``: Keras documents that the model is then not cloned and a later ``fit`` reuses the
    weights, but Keras 3.15 ignores the flag (every fit builds or clones a new model). tritonnn's second ``fit``
    continues ``model_``: its weights are those of Keras' model fitted twice directly."""
    deliberate("wrappers.warm-start")

    def direct(K):
        model = builder(K)(X, Y_REG.reshape(-1, 1), **REGRESSION)
        model.fit(X, Y_REG.reshape(-1, 1), **FIT)
        model.fit(X, Y_REG.reshape(-1, 1), **FIT)
        return [np.asarray(w) for w in model.get_weights()]

    def twice(W, K):
        est = W.SKLearnRegressor(builder(K), warm_start=True, model_kwargs=REGRESSION, fit_kwargs=dict(FIT)).fit(
            X, Y_REG
        )
        first = est.model_
        est.fit(X, Y_REG)
        return est, first

    got, first = twice(tritonnn.wrappers, tritonnn)
    assert got.model_ is first
    assert_same(direct(keras_ref), [np.asarray(w) for w in got.model_.get_weights()], rtol=1e-4, atol=1e-5)
    ref, ref_first = twice(keras_ref.wrappers, keras_ref)
    assert ref.model_ is not ref_first  # Keras built a new model
    # a given model is fitted itself (Keras fits a clone)
    inputs = tritonnn.Input((3,))
    model = tritonnn.Model(inputs, tritonnn.layers.Dense(1)(inputs))
    model.compile(loss="mse", optimizer="sgd")
    est = tritonnn.wrappers.SKLearnRegressor(model, warm_start=True, fit_kwargs=dict(FIT)).fit(X, Y_REG)
    assert est.model_ is model and len(model.history.history["loss"]) == 3


def test_fit_arguments_leave_fit_kwargs_as_they_were(keras_ref):
    """``fit(X, y, epochs=1)``: Keras writes the call's arguments into the estimator's ``fit_kwargs`` dict (so a
    later ``fit`` without them still uses them, and ``get_params`` changes); tritonnn applies them to that call."""
    deliberate("wrappers.fit-kwargs-unchanged")

    def run(K, W):
        est = W.SKLearnRegressor(builder(K), model_kwargs=REGRESSION, fit_kwargs=dict(FIT))
        est.fit(X, Y_REG, epochs=1)
        first = len(est.history_.history["loss"])
        est.fit(X, Y_REG)
        return first, len(est.history_.history["loss"]), est.get_params()["fit_kwargs"]

    ref, got = both(keras_ref, run)
    assert ref == (1, 1, {**FIT, "epochs": 1})
    assert got == (1, 3, FIT)


def test_epoch_is_a_number_after_fit(keras_ref):
    """``epoch_``: 0 before ``fit`` in both; after it Keras raises ``AttributeError`` (it calls ``.get`` on the
    ``History`` callback), tritonnn gives the number of epochs trained."""
    deliberate("wrappers.epoch-count")

    def run(K, W):
        est = W.SKLearnRegressor(builder(K), model_kwargs=REGRESSION, fit_kwargs=dict(FIT))
        before = est.epoch_
        est.fit(X, Y_REG)
        return before, observe(lambda: est.epoch_)

    ref, got = both(keras_ref, run)
    assert ref[0] == got[0] == 0
    assert isinstance(ref[1], Raised) and ref[1].type == "AttributeError"
    assert got[1] == 3


def test_set_fit_request_routes_to_fit(keras_ref):
    """With metadata routing on, ``set_fit_request(sample_weight=True)``: Keras records the request for ``score``
    (so ``cross_val_score`` weights the scores, not the training); tritonnn for ``fit``, as the method's name and
    Keras' docstring say, so each fold trains with its samples' weights."""
    deliberate("wrappers.set-fit-request")
    weights = np.linspace(0.5, 2.0, 12)
    with sklearn.config_context(enable_metadata_routing=True):
        ref = keras_ref.wrappers.SKLearnRegressor(builder(keras_ref), model_kwargs=REGRESSION, fit_kwargs=dict(FIT))
        got = tritonnn.wrappers.SKLearnRegressor(builder(tritonnn), model_kwargs=REGRESSION, fit_kwargs=dict(FIT))
        assert ref.set_fit_request(sample_weight=True) is ref and got.set_fit_request(sample_weight=True) is got
        assert "score" in str(ref.get_metadata_routing()) and "fit" not in str(ref.get_metadata_routing())
        assert "fit" in str(got.get_metadata_routing()) and "score" not in str(got.get_metadata_routing())
        scores = cross_val_score(got, X, Y_REG, cv=3, params={"sample_weight": weights})
    # each fold by hand: the Keras model fitted with the fold's weights, scored unweighted
    want = []
    for k in range(3):
        test = np.arange(4 * k, 4 * k + 4)
        train = np.setdiff1d(np.arange(12), test)
        est = keras_ref.wrappers.SKLearnRegressor(builder(keras_ref), model_kwargs=REGRESSION, fit_kwargs=dict(FIT))
        want.append(est.fit(X[train], Y_REG[train], sample_weight=weights[train]).score(X[test], Y_REG[test]))
    assert_same(np.array(want), scores)
