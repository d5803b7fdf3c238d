"""Every Triton kernel compiles ahead of time for Hopper (sm_90) and Ampere (sm_80), on this CPU-only machine.

The compile needs real JITFunctions, so it runs in a subprocess started without TRITON_INTERPRET. It catches what
the interpreter forgives (tl.dot dims under 16, dtype mixes, too much shared memory), checks that the GEMMs use
tensor cores (wgmma on sm_90, mma.sync on sm_80), and that no hot kernel spills registers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tritonnn.kernels import HAS_TRITON, INTERPRETING, _aot

pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def aot_results() -> tuple[dict, list[dict]]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "tritonnn.kernels", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return lines[0], lines[1:]


def test_every_kernel_has_an_aot_case(aot_results):
    header, results = aot_results
    assert header["kernels"], "no Triton kernel found in tritonnn.kernels"
    missing = _aot.problems(header["missing"], results)["missing"]
    assert not missing, missing
    assert {r["arch"] for r in results} == {90, 80}


@pytest.mark.parametrize("kind", ["errors", "tensor_cores", "spills"])
def test_aot_gate(aot_results, kind):
    """Every case compiles for sm_90 and sm_80; GEMMs use tensor cores; no hot kernel spills registers."""
    header, results = aot_results
    found = _aot.problems(header["missing"], results)[kind]
    assert not found, "\n".join(found)


@pytest.mark.skipif(not INTERPRETING, reason="only meaningful under TRITON_INTERPRET=1")
def test_kernels_are_interpreted_on_cpu():
    """A conftest that imported the kernels before setting TRITON_INTERPRET would leave JITFunctions here."""
    import triton
    from triton.runtime.interpreter import InterpretedFunction

    from tritonnn.kernels import _aot

    kinds = {}
    for mod_name in _aot.kernel_modules():
        for attr, value in vars(sys.modules[mod_name]).items():
            while hasattr(value, "fn") and not isinstance(value, (InterpretedFunction, triton.runtime.JITFunction)):
                value = value.fn  # through Autotuner / Heuristics wrappers
            if isinstance(value, (InterpretedFunction, triton.runtime.JITFunction)):
                kinds[f"{mod_name}.{attr}"] = type(value).__name__
    assert kinds, "no Triton kernel found"
    assert set(kinds.values()) == {"InterpretedFunction"}, kinds
