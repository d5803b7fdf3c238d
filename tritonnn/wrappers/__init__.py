"""Keras' ``keras.wrappers``: tritonnn models as scikit-learn estimators (``SKLearnClassifier``,
``SKLearnRegressor``, ``SKLearnTransformer``).

scikit-learn is an optional dependency (``pip install tritonnn[sklearn]``): it is imported when one of the classes
is first reached, not by ``import tritonnn``; without it, constructing a wrapper raises Keras' ``ImportError``.
"""

from __future__ import annotations

from typing import Any

from . import sklearn_wrapper

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return sklearn_wrapper.classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
