"""Test configuration: the one place where the backend switch for kernel tests lives.

Every test that takes the ``backend`` fixture runs twice: on the torch backend, and on the triton backend. On a
machine without CUDA the triton backend runs the real Triton kernels on CPU tensors under Triton's interpreter,
which must be switched on before any kernel module is imported, so it is set here at the top, before tritonnn.
"""

from __future__ import annotations

import os

# Before numpy loads: the interpreter's tl.dot is np.matmul, and a threaded OpenBLAS on 2 busy cores is erratic.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
os.environ.setdefault("TRITONNN_DATA", os.path.join(os.path.dirname(__file__), ".cache-never-used"))

import torch  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import tritonnn  # noqa: E402,F401  (imported only after TRITON_INTERPRET is set)
from tritonnn.kernels import HAS_TRITON, backend_scope  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"


@pytest.fixture(params=["torch", "triton"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test on one backend: ``torch``, or ``triton`` (the interpreter when there is no GPU)."""
    if request.param == "triton" and not HAS_TRITON:
        pytest.skip("Triton is not installed")
    with backend_scope(request.param):
        yield request.param


@pytest.fixture
def device() -> str:
    """Where tensors go: ``cuda`` when a GPU is present, else ``cpu``."""
    return DEVICE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "backend" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kernel)
