"""The differential suite's setup: real Keras 3 (on its torch backend) beside tritonnn, in this pytest process.

``KERAS_BACKEND`` is set before anything can import keras (``setdefault``: a backend chosen outside wins). Keras is
imported lazily by the session fixture ``keras_ref``, so the rest of the suite never pays for it, and a machine
without keras skips these tests with the reason instead of failing.

Importing and running Keras must not change torch's process-wide state under the other tests: ``keras_ref`` takes
a snapshot of it before the import and puts back whatever differs afterwards, and ``_torch_state_unchanged``
(autouse, here only) does the same after every compat test: Keras' ``fit`` and ``set_random_seed`` touch the
global RNGs, and a program may change a flag.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import random  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import tritonnn  # noqa: E402


def torch_global_state() -> dict[str, object]:
    """The process-wide torch (and numpy/Python RNG) settings that another test could depend on."""
    state: dict[str, object] = {
        "default_dtype": torch.get_default_dtype(),
        "num_threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "grad_enabled": torch.is_grad_enabled(),
        "anomaly": torch.is_anomaly_enabled(),
    }
    if hasattr(torch, "get_default_device"):
        state["default_device"] = torch.get_default_device()
    return state


def rng_state() -> dict[str, object]:
    state: dict[str, object] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_torch_global_state(before: dict[str, object]) -> list[str]:
    """Put back every setting of ``before`` that differs now; returns the names of those that did."""
    now = torch_global_state()
    changed = [k for k in before if now.get(k) != before[k]]
    setters = {
        "default_dtype": torch.set_default_dtype,
        "num_threads": torch.set_num_threads,
        "deterministic": lambda v: torch.use_deterministic_algorithms(
            v, warn_only=bool(before["deterministic_warn_only"])
        ),
        "deterministic_warn_only": lambda v: torch.use_deterministic_algorithms(
            bool(before["deterministic"]), warn_only=v
        ),
        "cudnn_deterministic": lambda v: setattr(torch.backends.cudnn, "deterministic", v),
        "cudnn_benchmark": lambda v: setattr(torch.backends.cudnn, "benchmark", v),
        "float32_matmul_precision": torch.set_float32_matmul_precision,
        "grad_enabled": torch.set_grad_enabled,
        "anomaly": torch.set_anomaly_enabled,
        "default_device": lambda v: torch.set_default_device(v),
    }
    for key in changed:
        setters[key](before[key])
    return changed


def restore_rng_state(before: dict[str, object]) -> None:
    torch.set_rng_state(before["torch"])
    np.random.set_state(before["numpy"])
    random.setstate(before["python"])
    if "cuda" in before:
        torch.cuda.set_rng_state_all(before["cuda"])


_HERE = os.path.dirname(os.path.abspath(__file__))
# Keras 3.15 on torch converts its own variables with np.array(x, copy=False), which numpy 2 reports on every call.
_KERAS_NOISE = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.path).startswith(_HERE + os.sep):
            item.add_marker(pytest.mark.filterwarnings(_KERAS_NOISE))


@pytest.fixture(scope="session")
def keras_ref():
    """Real Keras 3 (``import keras``), imported on first use; torch's global state is restored after the import."""
    before, rngs = torch_global_state(), rng_state()
    keras = pytest.importorskip(
        "keras",
        minversion="3.0",
        reason="the differential suite compares tritonnn with real Keras 3: pip install 'keras>=3' (torch backend)",
    )
    restore_torch_global_state(before)
    restore_rng_state(rngs)
    return keras


@pytest.fixture(autouse=True)
def _torch_state_unchanged():
    """After each compat test: torch's global settings and the RNGs are as they were before it."""
    before, rngs = torch_global_state(), rng_state()
    yield
    restore_torch_global_state(before)
    restore_rng_state(rngs)


@pytest.fixture(autouse=True)
def _automatic_names_from_zero():
    """Before each compat test: Keras' and tritonnn's automatic names (``dense``, ``auc``, then ``auc_1``...) count
    from zero, as in a fresh process. Both frameworks run in this one process, and each would otherwise count the
    objects that the earlier tests made of it, a different number on each side (Keras' reference programs and
    tritonnn's are not made the same number of times)."""
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.backend.clear_session(free_memory=False)
    tritonnn.backend.clear_session(free_memory=False)
    yield
