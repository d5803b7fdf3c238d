"""tritonnn: Triton kernels under a Keras 3 API.  ``import tritonnn as keras``."""

from __future__ import annotations

import importlib.util
import os
import sys


def _load_kernels_from_checkout() -> None:
    """Make ``tritonnn.kernels`` importable when Python runs from a source checkout.

    Installed (wheel or editable), ``kernels/`` is mapped to ``tritonnn.kernels`` by the build. Started from the
    repository root without an install, ``tritonnn/`` is found on the path but ``kernels/`` sits beside it, so it
    is loaded here under its package name (never as a top-level ``kernels``).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    init = os.path.join(os.path.dirname(here), "kernels", "__init__.py")
    if not os.path.exists(init):
        raise ModuleNotFoundError("tritonnn.kernels is missing: reinstall tritonnn")
    spec = importlib.util.spec_from_file_location(
        "tritonnn.kernels", init, submodule_search_locations=[os.path.dirname(init)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tritonnn.kernels"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["tritonnn.kernels"]
        raise


if importlib.util.find_spec("tritonnn.kernels") is None:
    _load_kernels_from_checkout()

from . import (  # noqa: E402
    activations,
    backend,
    callbacks,
    config,
    constraints,
    datasets,
    distribution,
    initializers,
    layers,
    losses,
    metrics,
    mixed_precision,
    models,
    ops,
    optimizers,
    plotting,
    random,
    regularizers,
    saving,
    tree,
    utils,
    wrappers,
)
from . import kernels as kernels  # noqa: E402
from .config import device  # noqa: E402
from .initializers import Initializer  # noqa: E402
from .keras_alias import install_as_keras  # noqa: E402
from .layers import Input, InputSpec, Layer  # noqa: E402
from .layers.symbolic import KerasTensor  # noqa: E402
from .losses import Loss  # noqa: E402
from .metrics import Metric  # noqa: E402
from .mixed_precision import DTypePolicy  # noqa: E402
from .mixed_precision import DTypePolicy as FloatDTypePolicy  # noqa: E402
from .models import Model, Sequential  # noqa: E402
from .optimizers import Optimizer  # noqa: E402
from .regularizers import Regularizer  # noqa: E402
from .variable import Variable, name_scope  # noqa: E402
from .version import __version__ as __version__  # noqa: E402

__all__ = [
    "DTypePolicy",
    "FloatDTypePolicy",
    "Initializer",
    "Input",
    "InputSpec",
    "KerasTensor",
    "Layer",
    "Loss",
    "Metric",
    "Model",
    "Optimizer",
    "Regularizer",
    "Sequential",
    "Variable",
    "activations",
    "backend",
    "callbacks",
    "config",
    "constraints",
    "datasets",
    "device",
    "distribution",
    "initializers",
    "install_as_keras",
    "kernels",
    "layers",
    "losses",
    "metrics",
    "mixed_precision",
    "models",
    "name_scope",
    "ops",
    "optimizers",
    "plotting",
    "random",
    "regularizers",
    "saving",
    "tree",
    "utils",
    "wrappers",
]
