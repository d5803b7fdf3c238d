"""scikit-learn estimators around a tritonnn model: ``SKLearnClassifier``, ``SKLearnRegressor`` and
``SKLearnTransformer`` (Keras' ``keras.wrappers``).

scikit-learn is optional: nothing here imports it until one of the three classes is first reached
(``tritonnn.wrappers.SKLearnClassifier``), so ``import tritonnn`` never pays for it. The classes are made then,
once, on scikit-learn's ``BaseEstimator`` and mixins (so that ``clone``, ``Pipeline``, ``cross_val_score`` and the
estimator tags see them as scikit-learn's own); without scikit-learn they are made on plain ``object`` and
constructing one raises Keras' ``ImportError``.

Behaviour as Keras': ``fit`` validates ``X`` and ``y`` with scikit-learn (2-D numeric ``X``, finite, a 1-D ``y``
of as many samples; ``n_features_in_`` is set), builds the model (a callable's result, or a clone of a given
model), checks that it is compiled with a loss and an optimizer, and fits it. The classifier always one-hot
encodes its target (``classes_`` are the sorted labels; the model sees ``y`` of shape ``(n, n_classes)``), and
``predict`` takes the arg max of the model's output back to labels; the regressor and the transformer give the
model ``y`` of shape ``(n, 1)``. Where Keras 3.15 does otherwise than it documents, tritonnn follows the
documentation (listed in docs/keras_differences.md): ``warm_start=True`` reuses the model, ``sklearn.base.clone``
keeps ``fit_kwargs``, ``fit(**kwargs)`` leaves ``fit_kwargs`` as it was, ``epoch_`` is a number after ``fit`` and
``set_fit_request`` routes to ``fit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models import Model, clone_model

NAMES = ("SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer")  # made on first use, see classes()


def _require_sklearn(symbol_name: str) -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError(
            f"{symbol_name} requires `scikit-learn` to be installed. Run `pip install scikit-learn` to install it."
        ) from None


def _validate_data(estimator: Any, X: Any, y: Any = None, *, reset: bool = True) -> Any:
    """scikit-learn's input validation (``validate_data`` from 1.6, the estimator's ``_validate_data`` before):
    ``X`` alone, or ``(X, y)`` when ``y`` is given."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6
        args = (X,) if y is None else (X, y)
        return estimator._validate_data(*args, reset=reset)
    if y is None:
        return validate_data(estimator, X, reset=reset)
    return validate_data(estimator, X, y, reset=reset)


def _check_target(y: Any) -> str:
    """scikit-learn's ``type_of_target`` of ``y``; an ``"unknown"`` one is a ``ValueError``."""
    from sklearn.utils.multiclass import type_of_target

    kind = type_of_target(y)
    if kind == "unknown":
        raise ValueError(f"Unknown label type for data: {y!r}")
    return kind


def _check_fitted(estimator: Any) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)


def _routing_enabled() -> bool:
    """Whether scikit-learn's metadata routing is on (``sklearn.set_config(enable_metadata_routing=True)``)."""
    import sklearn

    return bool(sklearn.get_config().get("enable_metadata_routing", False))


def _check_model(model: Any) -> None:
    """A built model must be a tritonnn ``Model`` compiled with a loss and an optimizer."""
    if not isinstance(model, Model):
        raise TypeError(
            "Expected `model` to be a tritonnn Model, or a callable returning one. "
            f"Received (or the callable returned): {model!r}"
        )
    if not model.compiled or not model.loss or not model.optimizer:
        raise RuntimeError("Given model needs to be compiled, and have a loss and an optimizer.")


class _SKLBase:
    """What the three wrappers share; the public classes are made from it on scikit-learn's ``BaseEstimator``.

    Args:
        model: a compiled tritonnn ``Model``, or a callable returning one. A callable is called at each ``fit`` as
            ``model(X=X, y=y, **model_kwargs)`` with the validated inputs and the encoded targets (so that it can
            size the model from ``X.shape[1]`` and ``y.shape[1]``); a model is cloned with
            ``tritonnn.models.clone_model`` (new weights, compiled the same way) unless ``warm_start``.
        warm_start: when true, a ``fit`` after the first one continues training ``model_`` instead of making a new
            model, and a given model is fitted itself rather than a clone of it.
        model_kwargs: keyword arguments for ``model`` when it is a callable.
        fit_kwargs: keyword arguments for ``model.fit`` (``epochs``, ``batch_size``, ``verbose``...). Those given to
            the wrapper's ``fit`` take precedence (for that call only).

    Attributes:
        model_: the fitted model.
        history_: the ``History`` its last ``fit`` returned.
        n_features_in_: the number of features ``fit`` saw.
    """

    def __init__(
        self,
        model: Any,
        warm_start: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        fit_kwargs: dict[str, Any] | None = None,
    ) -> None:
        _require_sklearn(type(self).__name__)
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"non_deterministic": True}

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags

    def __sklearn_clone__(self) -> Any:
        """A new, unfitted estimator with the same parameters (``sklearn.base.clone``); the model (or the callable
        making it) is shared, as it is only ever cloned or called by ``fit``."""
        return type(self)(
            model=self.model, warm_start=self.warm_start, model_kwargs=self.model_kwargs, fit_kwargs=self.fit_kwargs
        )

    @property
    def epoch_(self) -> int:
        """The number of epochs the model has been trained for by the last ``fit`` (the next epoch's index): 0
        before any."""
        history = getattr(self, "history_", None)
        epochs = getattr(history, "epoch", None)
        return int(epochs[-1]) + 1 if epochs else 0

    def set_fit_request(self, **kwargs: Any) -> Any:
        """Request metadata for ``fit`` through scikit-learn's metadata routing (which must be enabled).

        Args:
            **kwargs: ``param_name=alias``, the alias ``True``, ``False``, ``None`` or a string, as scikit-learn's
                ``set_fit_request``; a requested parameter is passed on to ``model.fit`` (``sample_weight``...).

        Returns:
            The estimator.
        """
        if not _routing_enabled():
            raise RuntimeError(
                "This method is only available when metadata routing is enabled. You can enable it using "
                "sklearn.set_config(enable_metadata_routing=True)."
            )
        from sklearn.utils.metadata_routing import MetadataRequest

        request = MetadataRequest(owner=type(self).__name__)
        for param, alias in kwargs.items():
            request.fit.add_request(param=param, alias=alias)
        self._metadata_request = request
        return self

    def _get_model(self, X: np.ndarray, y: np.ndarray) -> Any:
        if self.warm_start and getattr(self, "model_", None) is not None:
            return self.model_
        if isinstance(self.model, Model):
            return self.model if self.warm_start else clone_model(self.model)
        if not callable(self.model):
            raise TypeError(
                f"Expected `model` to be a tritonnn Model or a callable returning one. Received: model={self.model!r}"
            )
        return self.model(X=X, y=y, **(self.model_kwargs or {}))

    def _validate_fit_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        return _validate_data(self, X, y, reset=True)

    def fit(self, X: Any, y: Any, **kwargs: Any) -> Any:
        """Fit the model on ``X`` and ``y``.

        Args:
            X: array-like of shape ``(n_samples, n_features)``.
            y: array-like of shape ``(n_samples,)``: the targets.
            **kwargs: keyword arguments for ``model.fit``, over ``fit_kwargs``.

        Returns:
            The estimator.
        """
        X, y = self._validate_fit_data(X, y)
        y = self._process_target(y, reset=True)
        model = self._get_model(X, y)
        _check_model(model)
        self.history_ = model.fit(X, y, **{**(self.fit_kwargs or {}), **kwargs})
        self.model_ = model
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The fitted model's predictions for ``X``, as targets (labels for the classifier)."""
        _check_fitted(self)
        X = _validate_data(self, X, reset=False)
        return self._reverse_process_target(self.model_.predict(X))

    def _process_target(self, y: np.ndarray, reset: bool = False) -> np.ndarray:
        """The targets as the model is fitted on: a column ``(n, 1)`` (the classifier one-hot encodes)."""
        _check_target(y)
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _reverse_process_target(self, y: np.ndarray) -> np.ndarray:
        """The model's output as targets: a ``(n, 1)`` output squeezed to ``(n,)``."""
        return np.squeeze(y, axis=1) if y.ndim == 2 else y


class _Classifier(_SKLBase):
    """A scikit-learn classifier around a tritonnn model (Keras' ``keras.wrappers.SKLearnClassifier``).

    The targets are one-hot encoded for the model, whatever its loss: a model built by a callable gets ``y`` of
    shape ``(n_samples, n_classes)`` (so ``categorical_crossentropy`` with a softmax output of ``y.shape[1]``
    units, or ``binary_crossentropy`` with sigmoids, one per class); ``predict`` gives the label of the largest
    output, ``decision_function`` the outputs themselves. There is no ``predict_proba``, as in Keras.

    Args:
        model: a compiled tritonnn ``Model``, or a callable returning one. A callable is called at each ``fit`` as
            ``model(X=X, y=y, **model_kwargs)`` with the validated inputs and the one-hot targets; a model is
            cloned with ``tritonnn.models.clone_model`` (new weights, compiled the same way) unless ``warm_start``.
        warm_start: when true, a ``fit`` after the first one continues training ``model_`` instead of making a new
            model, and a given model is fitted itself rather than a clone of it.
        model_kwargs: keyword arguments for ``model`` when it is a callable.
        fit_kwargs: keyword arguments for ``model.fit``; those given to the wrapper's ``fit`` take precedence.

    Attributes:
        model_: the fitted model.
        history_: the ``History`` its last ``fit`` returned.
        classes_: the class labels, sorted (``np.unique`` of the targets).
        n_features_in_: the number of features ``fit`` saw.

    Example:

    ```python
    def build(X, y, loss="categorical_crossentropy"):
        inputs = tritonnn.Input((X.shape[1],))
        hidden = tritonnn.layers.Dense(16, activation="relu")(inputs)
        outputs = tritonnn.layers.Dense(y.shape[1], activation="softmax")(hidden)
        model = tritonnn.Model(inputs, outputs)
        model.compile(loss=loss, optimizer="adam")
        return model

    clf = tritonnn.wrappers.SKLearnClassifier(build, fit_kwargs={"epochs": 20, "verbose": 0})
    clf.fit(X, labels).score(X, labels)
    ```
    """

    def decision_function(self, X: Any) -> np.ndarray:
        """The fitted model's raw outputs for ``X``, shape ``(n_samples, n_classes)``."""
        _check_fitted(self)
        X = _validate_data(self, X, reset=False)
        return self.model_.predict(X)

    def _process_target(self, y: np.ndarray, reset: bool = False) -> np.ndarray:
        kind = _check_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Only binary and multiclass target types are supported. Target type: {kind}")
        if reset:
            from sklearn.preprocessing import OneHotEncoder

            self._target_encoder = OneHotEncoder(sparse_output=False).fit(y.reshape(-1, 1))
            self.classes_ = np.unique(y)
            if len(self.classes_) == 1:
                raise ValueError("Classifier can't train when only one class is present.")
        return self._target_encoder.transform(y.reshape(-1, 1))

    def _reverse_process_target(self, y: np.ndarray) -> np.ndarray:
        return np.squeeze(self._target_encoder.inverse_transform(y), axis=1)

    def _more_tags(self) -> dict[str, Any]:
        return {"poor_score": True}

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class _Regressor(_SKLBase):
    """A scikit-learn regressor around a tritonnn model (Keras' ``keras.wrappers.SKLearnRegressor``).

    The model is fitted on ``y`` of shape ``(n_samples, 1)`` (a callable building it sees that ``y``) and its
    ``(n_samples, 1)`` predictions come back as ``(n_samples,)``; ``score`` is scikit-learn's R².

    Args:
        model: a compiled tritonnn ``Model``, or a callable returning one, called at each ``fit`` as
            ``model(X=X, y=y, **model_kwargs)``; a model is cloned with ``tritonnn.models.clone_model`` (new
            weights, compiled the same way) unless ``warm_start``.
        warm_start: when true, a ``fit`` after the first one continues training ``model_`` instead of making a new
            model, and a given model is fitted itself rather than a clone of it.
        model_kwargs: keyword arguments for ``model`` when it is a callable.
        fit_kwargs: keyword arguments for ``model.fit``; those given to the wrapper's ``fit`` take precedence.

    Attributes:
        model_: the fitted model.
        history_: the ``History`` its last ``fit`` returned.
        n_features_in_: the number of features ``fit`` saw.

    Example:

    ```python
    def build(X, y):
        inputs = tritonnn.Input((X.shape[1],))
        outputs = tritonnn.layers.Dense(y.shape[1])(tritonnn.layers.Dense(16, activation="relu")(inputs))
        model = tritonnn.Model(inputs, outputs)
        model.compile(loss="mse", optimizer="adam")
        return model

    reg = tritonnn.wrappers.SKLearnRegressor(build, fit_kwargs={"epochs": 50, "verbose": 0}).fit(X, y)
    ```
    """

    def _more_tags(self) -> dict[str, Any]:
        return {"poor_score": True}

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class _Transformer(_SKLBase):
    """A scikit-learn transformer around a tritonnn model (Keras' ``keras.wrappers.SKLearnTransformer``): ``fit``
    trains the model on ``X`` and ``y`` (of shape ``(n_samples, 1)``), ``transform`` gives its outputs for ``X``
    (an embedding, say) unchanged. A "transformer" in scikit-learn's sense, a pipeline step, not an attention model.

    Args:
        model: a compiled tritonnn ``Model``, or a callable returning one, called at each ``fit`` as
            ``model(X=X, y=y, **model_kwargs)``; a model is cloned with ``tritonnn.models.clone_model`` (new
            weights, compiled the same way) unless ``warm_start``.
        warm_start: when true, a ``fit`` after the first one continues training ``model_`` instead of making a new
            model, and a given model is fitted itself rather than a clone of it.
        model_kwargs: keyword arguments for ``model`` when it is a callable.
        fit_kwargs: keyword arguments for ``model.fit``; those given to the wrapper's ``fit`` take precedence.

    Attributes:
        model_: the fitted model.
        history_: the ``History`` its last ``fit`` returned.
        n_features_in_: the number of features ``fit`` saw.

    To keep a trained model as it is in a pipeline, wrap the fitted transformer in scikit-learn's
    ``sklearn.frozen.FrozenEstimator`` (scikit-learn 1.6 and later).
    """

    def transform(self, X: Any) -> np.ndarray:
        """The fitted model's outputs for ``X``, shape ``(n_samples, ...)`` as the model gives them."""
        _check_fitted(self)
        X = _validate_data(self, X, reset=False)
        return self.model_.predict(X)

    def _more_tags(self) -> dict[str, Any]:
        return {"preserves_dtype": []}

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags


_CLASSES: dict[str, type] = {}


def _make_classes() -> dict[str, type]:
    """The three public classes, made on first use: on scikit-learn's bases when it imports, on ``object``
    otherwise (their constructors then raise the ``ImportError``)."""
    try:
        from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    except ImportError:
        BaseEstimator = ClassifierMixin = RegressorMixin = TransformerMixin = object  # noqa: N806
    layout = {
        "SKLearnClassifier": (ClassifierMixin, _Classifier),
        "SKLearnRegressor": (RegressorMixin, _Regressor),
        "SKLearnTransformer": (TransformerMixin, _Transformer),
    }
    out = {}
    for name, (mixin, impl) in layout.items():
        bases = tuple(dict.fromkeys(b for b in (impl, mixin, BaseEstimator) if b is not object)) or (object,)
        out[name] = type(
            name, bases, {"__module__": "tritonnn.wrappers", "__qualname__": name, "__doc__": impl.__doc__}
        )
    return out


def classes() -> dict[str, type]:
    """``{"SKLearnClassifier": ..., "SKLearnRegressor": ..., "SKLearnTransformer": ...}``, made once."""
    if not _CLASSES:
        _CLASSES.update(_make_classes())
    return _CLASSES


def __getattr__(name: str) -> type:
    if name in NAMES:
        return classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *NAMES])
