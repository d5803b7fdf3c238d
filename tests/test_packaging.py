"""tritonnn.kernels is importable from a wheel, from the editable install and from a bare checkout; it never
installs as a top-level ``kernels``; and tritonnn works on its torch backend where Triton is absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import tritonnn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_SITE = os.path.dirname(os.path.dirname(os.path.abspath(__import__("torch").__file__)))


def run(code: str, cwd: str, *flags: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, *flags, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_kernels_live_under_tritonnn_only():
    assert tritonnn.kernels.__name__ == "tritonnn.kernels"
    assert "kernels" not in sys.modules


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    # Build from a copy, so that no stale build/ folder of the checkout can leak old files into the wheel.
    src = tmp_path_factory.mktemp("src") / "tritonnn"
    skip = (".git", "build", "dist", ".venv", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis")
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*skip))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (name,) = [f for f in os.listdir(out) if f.endswith(".whl")]
    return str(out / name)


def test_wheel_layout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"tritonnn", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for needed in ("tritonnn/kernels/__init__.py", "tritonnn/kernels/_backend.py", "tritonnn/datasets/data/digits.npz"):
        assert needed in names


def test_import_from_installed_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), wheel],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = run(
        "import tritonnn, tritonnn.kernels as k, sys; print(tritonnn.__file__); print(k.__file__);"
        "print('kernels' in sys.modules); print(tritonnn.datasets.digits.load_data()[0][0].shape)",
        str(tmp_path),
        env=env,
    ).split("\n")
    assert out[0].startswith(str(site)) and out[1].startswith(str(site / "tritonnn" / "kernels")), out
    assert out[2] == "False" and out[3] == "(1438, 8, 8)"


def test_import_from_a_bare_checkout(tmp_path):
    """Python started at the repository root with no install at all (-S: no site-packages, no editable hook)."""
    env = {**os.environ, "PYTHONPATH": TORCH_SITE}
    out = run(
        "import sys; sys.path.insert(0, ''); import tritonnn.kernels as k, tritonnn; print(k.__file__);"
        "print('kernels' in sys.modules)",
        REPO,
        "-S",
        env=env,
    ).split("\n")
    assert out[0] == os.path.join(REPO, "kernels", "__init__.py") and out[1] == "False"


def test_runs_without_triton(tmp_path):
    """Where Triton has no wheel, tritonnn imports, trains on the torch backend, and an explicit triton backend
    names the cause instead of failing somewhere deep."""
    code = """
import sys
sys.modules["triton"] = None  # makes `import triton` raise ImportError
import numpy as np
import tritonnn as keras
from tritonnn import kernels
assert not kernels.HAS_TRITON and kernels.backend() == "torch"
x = np.random.rand(64, 8).astype("float32"); y = (x.sum(1) > 4).astype("int64")
model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
h = model.fit(x, y, epochs=2, verbose=0)
assert len(h.history["loss"]) == 2
kernels.set_backend("triton")
try:
    model.predict(x, verbose=0)
except RuntimeError as e:
    print("ERR", e)
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = run(code, str(tmp_path), env=env)
    assert "ERR TRITONNN_BACKEND=triton but Triton cannot be imported" in out, out
