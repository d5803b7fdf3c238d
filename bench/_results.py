"""What the benchmark scripts share in making their rows: one timer and one copy-bandwidth roofline for both
devices (CUDA, and the CPU of a ``--dry-run``), appending rows under a script's own section of a RESULTS.md, and
the one-JSON-object-per-row file (``--json``) that bench/gpu_summary.py reads."""

from __future__ import annotations

import json
import os
import statistics
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
QUANTILES = (0.5, 0.2, 0.8)


def measure(fn, device: str = "cuda", *, cpu_seconds: float = 0.25, cpu_reps: tuple[int, int] = (3, 50)):
    """Median, 20th and 80th percentile milliseconds of ``fn()``.

    On CUDA: ``triton.testing.do_bench`` (CUDA events, its own warm-up and repetitions). Elsewhere (a dry run on the
    CPU, where do_bench cannot run): one warm-up call, then ``time.perf_counter`` around each call, repeated for
    ``cpu_seconds`` (at least ``cpu_reps[0]``, at most ``cpu_reps[1]`` calls)."""
    if device == "cuda":
        from triton.testing import do_bench

        return tuple(do_bench(fn, quantiles=list(QUANTILES)))
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + cpu_seconds
    while len(times) < cpu_reps[1] and (len(times) < cpu_reps[0] or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    if len(times) < 2:
        return times[0], times[0], times[0]
    cuts = statistics.quantiles(times, n=10, method="inclusive")  # deciles: [1] is p20, [7] is p80
    return statistics.median(times), cuts[1], cuts[7]


def copy_bandwidth(device: str = "cuda", nbytes: int | None = None) -> float:
    """Bytes/s of a copy between two buffers on ``device`` (bytes read + bytes written), timed by ``measure``: the
    roofline the "% copy BW" columns use. 1 GiB on CUDA; 64 MiB on the CPU unless ``nbytes`` says otherwise."""
    import torch

    nbytes = nbytes or (1 << 30 if device == "cuda" else 1 << 26)
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)  # touched: no page faults timed
    dst = torch.empty_like(src).fill_(0.0)
    ms = measure(lambda: dst.copy_(src), device)[0]
    return 2 * src.numel() * 4 / (ms * 1e-3)


def device_name(device: str) -> str:
    """The GPU's name, or ``CPU (n cores)`` for a dry run."""
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else f"CPU ({os.cpu_count()} cores)"


def write_json(path: str | None, row: dict) -> None:
    """Append one result row as a JSON line to ``path`` (nothing when None), flushed at once: a script stopped by
    a time limit keeps the rows it measured."""
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def append_to_section(section: str, header: str, table_head: str, rows: list[str], path: str = RESULTS) -> None:
    """Append ``rows`` to the table under the ``section`` heading of the RESULTS.md at ``path``, creating the
    section (after the last one) and its table (under this run's ``header``) when absent; other sections are left
    as they are."""
    text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    if section not in text:
        text = text.rstrip("\n") + f"\n\n{section}\n\n{header}\n\n" + table_head
    start = text.index(section)
    nxt = text.find("\n## ", start + len(section))
    end = len(text) if nxt < 0 else nxt + 1
    body = text[start:end].rstrip("\n") + "\n"
    if "| date | device |" not in body:  # a section without a table yet: start one under this run's header
        body += f"\n{header}\n\n" + table_head
    body += "".join(r + "\n" for r in rows)
    text = text[:start] + body + ("\n" + text[end:] if nxt >= 0 else "")
    with open(path, "w") as f:
        f.write(text)
