"""The benchmark scripts run on a CPU and report what the code does. No timing is asserted (speed lives in bench/).

Each script runs in a subprocess: bench/plan.py must set TRITON_INTERPRET before tritonnn is imported, and
bench/train.py fixes torch's thread count.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")


def run(script: str, *args: str, timeout: int = 120) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRITONNN_BACKEND")}
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{script} {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def bench_models():
    """bench/models.py, loaded from its file (bench/ is not a package, and sys.path stays as it is)."""
    spec = importlib.util.spec_from_file_location("_bench_models", os.path.join(BENCH, "models.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def seed_plan() -> str:
    return run("plan.py", "--model", "seed")


def _table(out: str, title: str) -> list[list[str]]:
    """Rows (split on whitespace) of the per-launch table that follows the line starting with ``title``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 2 :]:
        if not re.match(r"^\s*\d+ ", line):
            break
        rows.append(line.split())
    return rows


def test_plan_counts_the_seed_models_triton_launches(seed_plan):
    MODELS = bench_models().MODELS

    layers = MODELS["seed"].layers
    dense_layers = len(layers) - 1
    # Derived from the code path: kernels.dense launches one forward GEMM per layer; its backward launches the dx
    # GEMM (PART 0) only when the layer's input needs a gradient (not the first layer: the data does not) and the
    # dkernel + dbias GEMM (PART 1) for every layer. The fused cross-entropy launches its forward (loss and d logits)
    # and one in-place scaling in the backward. The optimizer is one launch over the flat buffers (no clipping).
    expected = {
        "_dense_fwd_kernel": dense_layers,
        "_dense_bwd_kernel": (dense_layers - 1) + dense_layers,
        "_xent_fwd_kernel": 1,
        "_xent_bwd_kernel": 1,
        "_optim_fwd_kernel": 1,
    }
    rows = _table(seed_plan, "per-layer path")  # TRITONNN_FUSED_MLP=0; the fused MLP's step is the next test's
    triton = [r[2] for r in rows if r[1] == "triton"]
    assert {name: triton.count(name) for name in expected} == expected
    assert len(triton) == sum(expected.values())
    # Order: the forward GEMMs, the loss, its backward, the backward GEMMs, the optimizer last.
    assert triton[:dense_layers] == ["_dense_fwd_kernel"] * dense_layers
    assert triton[dense_layers : dense_layers + 2] == ["_xent_fwd_kernel", "_xent_bwd_kernel"]
    assert triton[-1] == "_optim_fwd_kernel"


def test_plan_counts_the_fused_mlp_step(seed_plan):
    """fit() runs the seed model as one fused MLP (kernels/fused_mlp.py) with its cross-entropy inside: 3 Triton
    launches a step (forward + loss, backward into the flat gradients, the optimizer), against the per-layer path's
    8; the totals and the ratio line say so."""
    assert "fit() path: fused MLP (fused: 64-32-10 in 1 forward launch and 1 backward launch" in seed_plan
    triton = [r[2] for r in _table(seed_plan, "tritonnn") if r[1] == "triton"]
    assert triton == ["_fused_mlp_fwd_kernel", "_fused_mlp_bwd_kernel", "_optim_fwd_kernel"]
    totals = {line.split()[0]: line.split() for line in seed_plan.splitlines() if re.match(r"^\S+\s+\d+\s", line)}
    assert int(totals["tritonnn"][2]) == 3 and int(totals["per-layer"][2]) == 8
    assert int(totals["tritonnn"][1]) < int(totals["per-layer"][1])
    assert float(totals["tritonnn"][6]) < float(totals["per-layer"][6])  # implied us
    assert re.search(r"^per-layer / fused MLP: [\d.]+x launches \(8 vs 3 Triton\)", seed_plan, re.M)


def test_plan_bytes_follow_the_kernels_formulas(seed_plan):
    MODELS = bench_models().MODELS

    layers, m = MODELS["seed"].layers, MODELS["seed"].batch
    rows = [r for r in _table(seed_plan, "per-layer path") if r[1] == "triton"]
    first_fwd = rows[0]
    k, n = layers[0], layers[1]
    # fp32 forward with relu (nothing saved): read x (MK), kernel (KN), bias (N); write y (MN). FLOPs 2MNK.
    assert int(first_fwd[4].replace(",", "")) == 4 * (m * k + k * n + n)
    assert int(first_fwd[5].replace(",", "")) == 4 * m * n
    assert int(first_fwd[6].replace(",", "")) == 2 * m * n * k
    # Adam over the flat fp32 buffers, padded to 64 elements: read param, grad, m, v; write param, m, v (28 B),
    # plus the step's device scalars (learning rate, step count, found-inf flag) read through pointers.
    params = sum(a * b + b for a, b in zip(layers[:-1], layers[1:], strict=True))
    padded = math.ceil(params / 64) * 64
    optim_row = rows[-1]
    assert 16 * padded < int(optim_row[4].replace(",", "")) <= 16 * padded + 64
    assert int(optim_row[5].replace(",", "")) == 12 * padded


def test_plan_prints_totals_for_both_sides(seed_plan):
    MODELS = bench_models().MODELS

    eager = _table(seed_plan, "PyTorch eager")
    names = [r[2] for r in eager]
    assert names.count("addmm") == len(MODELS["seed"].layers) - 1  # one addmm per nn.Linear
    assert "_fused_adam_" in names
    totals = {
        line.split()[0]: line.split() for line in seed_plan.splitlines() if re.match(r"^(tritonnn|eager)\s+\d", line)
    }
    assert int(totals["tritonnn"][1]) == len(_table(seed_plan, "tritonnn"))
    assert int(totals["eager"][1]) == len(eager)
    assert "implied" in seed_plan and "launch cost 3.0 us" in seed_plan
    # The step as fit() runs it: labels checked once per fit, so no host sync per step (the last column).
    assert totals["tritonnn"][8] == "0"
    # On a GPU fit() captures the whole step, the optimizer's update included, in one CUDA graph: one replay.
    graph = re.search(r"CUDA graph: captured on a GPU: all (\d+) launches .* are one replay: 1 host launch", seed_plan)
    assert graph and int(graph[1]) == len(_table(seed_plan, "tritonnn"))


def test_train_help_and_a_tiny_cpu_run(capsys, monkeypatch):
    monkeypatch.syspath_prepend(BENCH)  # restored after the test, with train.py's own sys.path entry
    try:
        import train  # imports torch and numpy only: --help in-process saves a subprocess start

        with pytest.raises(SystemExit) as exit_info:
            train.main(["--help"])
    finally:
        for name in ("train", "models"):
            sys.modules.pop(name, None)
    assert exit_info.value.code == 0
    assert "--peers" in capsys.readouterr().out
    out = run(
        "train.py", "--models", "seed", "--dtypes", "fp32", "--peers", "tritonnn,torch", "--epochs", "1",
        "--threads", "1", "--no-results", "--no-plot",
    )  # fmt: skip
    assert "| model / dtype | tritonnn | torch | tritonnn/torch |" in out
    row = next(line for line in out.splitlines() if line.startswith("| seed 64-32-10 b32"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[1].replace(",", "")) > 0 and float(cells[2].replace(",", "")) > 0
    assert cells[3].endswith("x")


def test_autotune_lists_configs_without_a_gpu():
    pytest.importorskip("triton")
    import torch

    if torch.cuda.is_available():
        pytest.skip("with a GPU autotune.py times the configs; this test covers the CPU listing")
    out = run("autotune.py", "dense-fwd", "--shape", "128x784x512", "--dtype", "bf16")
    assert "nothing can be timed without a GPU" in out
    listed = re.findall(r"^\s+\d+\s+(\S+)$", out, re.M)
    dense = importlib.import_module("tritonnn.kernels.dense")  # the package's `dense` name is the op
    want = [f"{bm}x{bn}x{bk}w{w}s{s}" for bm, bn, bk, w, s in dense.CONFIGS[("fwd", "16", "hopper")]]
    want += [f"{bm}x{bn}x{bk}w{w}s{s}" for bm, bn, bk, w, s in dense.CONFIGS[("fwd", "16", "fallback")]]
    assert listed == want


def test_fused_mlp_bench_without_a_gpu_and_its_dry_run():
    """bench/fused_mlp.py says it needs a GPU and exits 0; --dry-run runs its providers on the CPU (the fused kernels
    under the interpreter) and prints a row per provider after the network's fused_mlp_supported reason."""
    pytest.importorskip("triton")
    import torch

    if torch.cuda.is_available():
        pytest.skip("with a GPU the script times the providers; this test covers the CPU paths")
    assert "needs a CUDA GPU" in run("fused_mlp.py")
    out = run("fused_mlp.py", "--dry-run", "--seed-model", "--providers", "fused,torch", "--dtype", "fp32")
    assert "64-32-10: fused: 64-32-10 in 1 forward launch" in out
    rows = re.findall(r"^64-32-10\s+M=37\s+train \| (\S+)", out, re.M)
    assert rows == ["fused", "torch"]
