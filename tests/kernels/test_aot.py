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

from tritonnn.kernels import HAS_TRITON, INTERPRETING

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
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return lines[0], lines[1:]


def test_every_kernel_has_an_aot_case(aot_results):
    header, results = aot_results
    assert header["kernels"], "no Triton kernel found in tritonnn.kernels"
    assert header["missing"] == [], f"kernels with no ahead-of-time compile case: {header['missing']}"
    assert {r["arch"] for r in results} == {90, 80}


def test_every_case_compiles_for_sm90_and_sm80(aot_results):
    _, results = aot_results
    errors = [f"{r['name']} sm_{r['arch']}: {r['error']}" for r in results if "error" in r]
    assert not errors, "\n".join(errors)


def test_gemms_use_tensor_cores(aot_results):
    _, results = aot_results
    for r in results:
        if r.get("tensor_cores"):
            if r["arch"] == 90:
                assert r["wgmma"], f"{r['name']}: no wgmma.mma_async in the sm_90 PTX"
            else:
                assert r["mma_sync"], f"{r['name']}: no mma.sync in the sm_80 PTX"


def test_no_spills_in_hot_kernels(aot_results):
    _, results = aot_results
    spilled = [
        f"{r['name']} sm_{r['arch']}: {r['spill_stores']} B stored, {r['spill_loads']} B loaded, {r['registers']} regs"
        for r in results
        if "error" not in r and r.get("hot_loop") and (r["spill_stores"] or r["spill_loads"])
    ]
    assert not spilled, "\n".join(spilled)


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
