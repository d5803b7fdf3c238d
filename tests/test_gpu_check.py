"""bench/gpu_check.sh --dry-run: every step of the device check on the CPU, so the script cannot rot between the rare
times a GPU is lent. The run's numbers are not judged (speed lives in bench/): only that each step ran and left
what the summary reads, and that a dry run leaves the repository's bench/RESULTS.md alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "RESULTS.md")
TEST_FILES = [
    "tests/kernels/test_dense.py",
    "tests/kernels/test_dropout.py",
    "tests/kernels/test_optim.py",
    "tests/kernels/test_xent.py",
    "tests/test_cuda_graphs.py",
    "tests/test_graphs.py",
    "tests/test_fusion.py",
    "tests/test_determinism.py",
]


def _rows(markdown: str, first_cell: str) -> list[list[str]]:
    """The cells of every table row whose first cell is ``first_cell``."""
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_the_dry_run_writes_the_summary_and_leaves_the_repo_alone(tmp_path):
    with open(RESULTS, "rb") as f:
        before = f.read()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GPU_CHECK_", "TRITON"))}
    env.update(OUT=str(tmp_path), PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", os.path.join("bench", "gpu_check.sh"), "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert proc.returncode == 0, log
    with open(RESULTS, "rb") as f:
        assert f.read() == before, "a dry run must not touch bench/RESULTS.md"

    files = sorted(os.listdir(tmp_path))
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files), files
    assert {"summary.md", "RESULTS.md", "tests.log", "bench.log", "junit.xml", "bench.jsonl"} <= set(files), files
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# GPU check (dry run on the CPU): passed"), summary[:300]

    # Steps: each ran to the end inside its limit.
    for step in ("tests", "dense", "xent", "optim", "train"):
        (row,) = [r for r in _rows(summary, step) if len(r) == 5]  # step, status, seconds, limit, command
        assert row[1] == "ok", row
    # Tests: counts per file, every file of the selection ran tests and none failed.
    for name in TEST_FILES:
        (row,) = _rows(summary, name)
        passed, failed, errors = (int(c) for c in row[1:4])
        assert passed > 0 and failed == errors == 0, row
    (total,) = _rows(summary, "all")
    assert int(total[1]) >= 50 and total[2:4] == ["0", "0"], total
    # Benchmarks: one row per script, with measured rows and numbers in its headline.
    for script in ("dense", "xent", "optim", "train"):
        (row,) = [r for r in _rows(summary, script) if len(r) == 4]  # script, status, rows, headline
        assert int(row[2]) > 0 and re.search(r"\d", row[3]) and "tritonnn" in row[3], row
    assert "torch.compile not timed in a dry run" in summary  # a peer left out is named, not dropped
    for table_title in ("### dense", "### xent", "### optim", "### train"):
        assert table_title in summary

    # RESULTS.md under $OUT: the repository's file with this run's rows added (the scripts' under their sections,
    # the summary's at the end); nothing of the original is lost.
    copy = (tmp_path / "RESULTS.md").read_text().splitlines()
    original = before.decode().splitlines()
    assert set(original) <= set(copy) and len(copy) > len(original)
    added = "\n".join(line for line in copy if line not in set(original))
    assert "python bench/dense.py --dry-run" in added and "python bench/train.py" in added
    heading = r"### gpu check \(`bash bench/gpu_check\.sh --dry-run`\): passed, CPU \(\d+ cores\), \d{4}-\d\d-\d\dT"
    assert re.search(heading, added), added[-3000:]
    assert "| all | " in added and "| train | ok |" in added  # the summary's rows, not only the scripts'
