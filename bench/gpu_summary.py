"""The summary of one bench/gpu_check.sh run: steps, test counts per file, benchmark tables; appended to RESULTS.md.

    python bench/gpu_summary.py --steps STEPS.tsv --junit kernels=K.xml --junit graphs=G.xml --json BENCH.jsonl \\
        --out summary.md --results bench/RESULTS.md --command "bash bench/gpu_check.sh" --budget 480

Reads what the steps left: ``--steps`` (one tab-separated line per step: name, status, exit code, seconds, limit
in seconds, command; written by gpu_check.sh), the pytest junit XML files (``--junit LABEL=PATH``; a missing or
partial file is reported, not fatal) and the benchmark scripts' ``--json`` rows (one object per line, with a
``script`` key). Writes ``--out`` (Markdown) and appends the same run to ``--results`` under a heading that names
the device, the date and the command; for a benchmark script that did not finish (its own RESULTS.md rows are
missing then) the rows it measured are appended in full.

Exit code: 1 when a test failed or errored, or a step failed (a crash, a collection error, a failed install); else
3 when a step ran out of its time (the check is incomplete); else 0. Numbers are reported, never judged.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from importlib import metadata

BENCH_SCRIPTS = ("dense", "xent", "optim", "train")


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------


def read_steps(path: str | None) -> list[dict]:
    steps = []
    if path and os.path.exists(path):
        for line in open(path):
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 6:
                name, status, rc, seconds, limit, command = parts[:6]
                steps.append(
                    {"name": name, "status": status, "rc": rc, "seconds": seconds, "limit": limit, "command": command}
                )
    return steps


def _test_file(case: ET.Element) -> str:
    if case.get("file"):
        return case.get("file")
    parts = (case.get("classname") or "?").split(".")
    while len(parts) > 1 and parts[-1][:1].isupper():  # a test class: tests.test_x.TestY
        parts.pop()
    return "/".join(parts) + ".py"


def read_junit(path: str) -> tuple[dict[str, dict], list[tuple[str, str, str]], list[str], str | None]:
    """Per file: counts and seconds; the failures (id, kind, first line); the ``graph`` properties; an error."""
    files: dict[str, dict] = defaultdict(lambda: {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "time": 0.0})
    failures: list[tuple[str, str, str]] = []
    graphs: list[str] = []
    if not os.path.exists(path):
        return {}, [], [], "no junit report (the step did not get as far as writing one)"
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return {}, [], [], f"unreadable junit report ({exc})"
    for case in root.iter("testcase"):
        counts = files[_test_file(case)]
        counts["time"] += float(case.get("time") or 0.0)
        tags = {child.tag: child for child in case}
        test_id = f"{_test_file(case)}::{case.get('name')}"
        if "error" in tags or "failure" in tags:
            kind = "error" if "error" in tags else "failure"
            counts["errors" if kind == "error" else "failed"] += 1
            message = (tags[kind].get("message") or tags[kind].text or "").strip().splitlines()
            failures.append((test_id, kind, message[0][:240] if message else ""))
        elif "skipped" in tags:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
        for prop in case.iter("property"):
            if prop.get("name") == "graph":
                graphs.append(prop.get("value", ""))
    return dict(files), failures, graphs, None


def read_rows(path: str | None) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = defaultdict(list)
    if path and os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
                rows[row.get("script", "?")].append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------


def table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in row) + " |" for row in body]
    return "\n".join(lines)


def _num(v, fmt: str = "{:,.3g}") -> str:
    return "-" if v is None else fmt.format(v)


def _note(row: dict) -> str | None:
    if "skipped" in row:
        return str(row["skipped"])
    if "error" in row:
        return f"failed: {row['error']}"
    return None


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _ms(rows: list[dict]) -> dict[tuple[str, str], float]:
    return {(r["case"], r["provider"]): r["ms"] for r in rows if r.get("ms")}


# The peers each script's ratios are taken against: dense reports each provider's time over tritonnn's; xent and
# optim report a baseline's time over each provider's (their own stdout columns).
BASELINES = {"dense": ("tritonnn",), "xent": ("torch",), "optim": ("torch fused", "torch foreach")}


def ratios(script: str, rows: list[dict], r: dict) -> dict[str, float]:
    ms = _ms(rows)
    out = {}
    for base in BASELINES.get(script, ()):
        other = ms.get((r["case"], base))
        if other and r.get("ms"):
            out[base] = r["ms"] / other if script == "dense" else other / r["ms"]
    return out


def dense_table(rows: list[dict]) -> str:
    body = []
    for r in rows:
        note = _note(r)
        if note:
            body.append([r["case"], r["provider"], note, "", "", ""])
            continue
        vs = ratios("dense", rows, r).get("tritonnn")
        body.append([
            r["case"], r["provider"], f"{r['ms']:.4g} [{r['p20']:.4g}, {r['p80']:.4g}]", _num(r["tflops"]),
            _num(r["roofline_pct"], "{:.3g}%"), _num(vs, "{:.3g}x"),
        ])  # fmt: skip
    peaks = sorted({f"{r['dtype']} {r['peak_tflops']:g} TFLOP/s" for r in rows if "peak_tflops" in r})
    tbps = next((r["peak_tbps"] for r in rows if "peak_tbps" in r), 3.0)
    note = f"\n\nRoofline: max(FLOPs / peak, bytes / {tbps:g} TB/s) with H100 SXM peaks ({', '.join(peaks)}); " \
        "`time / tritonnn's` > 1 means tritonnn is faster."  # fmt: skip
    head = ["case", "provider", "median ms [p20, p80]", "TFLOP/s", "% roofline", "time / tritonnn's"]
    return table(head, body) + note


def bandwidth_table(rows: list[dict]) -> str:
    script = rows[0]["script"]
    peers = BASELINES[script]
    body = []
    for r in rows:
        note = _note(r)
        if note:
            body.append([r["case"], r["provider"], note, "", "", *[""] * len(peers)])
            continue
        vs = ratios(script, rows, r)
        body.append([
            r["case"], r["provider"], f"{r['ms']:.4g} [{r['p20']:.4g}, {r['p80']:.4g}]", _num(r["gbps"], "{:,.4g}"),
            _num(r["copy_bw_pct"], "{:.3g}%"), *[_num(vs.get(p), "{:.3g}x") for p in peers],
        ])  # fmt: skip
    bw = next((r["copy_bw_gbps"] for r in rows if "copy_bw_gbps" in r), None)
    note = f"\n\nCopy bandwidth measured by the script: {_num(bw, '{:,.0f}')} GB/s (read + write); `vs X` is X's " \
        "time over this provider's (> 1: this provider is faster)."  # fmt: skip
    head = ["case", "provider", "median ms [p20, p80]", "GB/s", "% copy BW", *[f"vs {p}" for p in peers]]
    return table(head, body) + note


def train_table(rows: list[dict]) -> str:
    ours = {r["case"]: r["samples_per_s"] for r in rows if r["provider"] == "tritonnn" and "samples_per_s" in r}
    body = []
    for r in rows:
        note = _note(r)
        if note:
            body.append([r["case"], r["provider"], note, ""])
            continue
        ratio = ours.get(r["case"], 0) / r["samples_per_s"] if r["case"] in ours and r["samples_per_s"] else None
        body.append([r["case"], r["provider"], _num(r["samples_per_s"], "{:,.0f}"), _num(ratio, "{:.3g}x")])
    return table(["model / dtype", "peer", "samples/s (median epoch)", "tritonnn / peer"], body) + (
        "\n\n`tritonnn / peer` > 1 means tritonnn trains faster."
    )


def glance(script: str, rows: list[dict], step: dict | None) -> list[str]:
    """One row per benchmark script: its step's status, how many rows it measured, and the headline numbers."""
    status = step["status"] if step else "not run"
    measured = [r for r in rows if _note(r) is None]
    ours = [r for r in measured if r["provider"] == "tritonnn"]
    notes = sorted({f"{r['provider']} {_note(r)}" for r in rows if _note(r)})
    head = "-"
    if script == "dense" and ours:
        best = max(ours, key=lambda r: r["tflops"])
        by_peer = defaultdict(list)
        for r in measured:
            if r["provider"] != "tritonnn" and "tritonnn" in ratios(script, rows, r):
                by_peer[r["provider"]].append(ratios(script, rows, r)["tritonnn"])
        vs = ", ".join(f"{_geomean(v):.3g}x for {p}" for p, v in sorted(by_peer.items()))
        head = f"tritonnn up to {best['tflops']:,.4g} TFLOP/s ({best['roofline_pct']:.3g}% roofline, {best['case']})"
        head += f"; peer time / tritonnn's, geomean: {vs}" if vs else ""
    elif script in ("xent", "optim") and ours:
        best = max(ours, key=lambda r: r["gbps"])
        by_peer = defaultdict(list)
        for r in ours:
            for p, v in ratios(script, rows, r).items():
                by_peer[p].append(v)
        vs = ", ".join(f"{_geomean(v):.3g}x vs {p}" for p, v in sorted(by_peer.items()))
        head = f"tritonnn up to {best['gbps']:,.4g} GB/s ({best['copy_bw_pct']:.3g}% of copy BW, {best['case']})"
        head += f"; speedup, geomean: {vs}" if vs else ""
    elif script == "train" and ours:
        by_case = {(r["case"], r["provider"]): r.get("samples_per_s") for r in measured}
        parts = []
        for r in ours:
            torch_sps = by_case.get((r["case"], "torch"))
            vs = f" ({r['samples_per_s'] / torch_sps:.3g}x torch)" if torch_sps else ""
            parts.append(f"{r['model']} {r['dtype']} {r['samples_per_s']:,.0f}/s{vs}")
        head = "tritonnn " + "; ".join(parts)
    if notes:
        head += "; " + "; ".join(notes)
    return [script, status, str(len(measured)), head]


# ---------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _device(rows: dict[str, list[dict]]) -> str:
    for script_rows in rows.values():
        for r in script_rows:
            if r.get("device"):
                return r["device"]
    try:
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    except Exception:  # noqa: BLE001 - the summary is written whatever the environment
        return "unknown device"


def build(args) -> tuple[str, str, str, int]:
    """(summary.md, the RESULTS.md section, what to print, exit code)."""
    steps = read_steps(args.steps)
    by_name = {s["name"]: s for s in steps}
    rows = read_rows(args.json)
    device = _device(rows)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    failed = any(s["status"].startswith("failed") for s in steps)
    ours_failed = [f"{r['script']} {r['case']}: {r['error']}" for v in rows.values() for r in v
                   if r.get("provider") == "tritonnn" and "error" in r]  # fmt: skip
    failed |= bool(ours_failed)
    incomplete = any(s["status"].startswith(("timeout", "no time")) for s in steps)

    used = sum(float(s["seconds"] or 0) for s in steps)
    intro = (
        f"`{args.command}` on {device}, {date}; torch {_version('torch')}, triton {_version('triton')}, "
        f"keras {_version('keras')}. Budget {args.budget} s, the steps took {used:.0f} s."
    )
    steps_md = table(
        ["step", "status", "seconds", "limit s", "command"],
        [[s["name"], s["status"], s["seconds"], s["limit"], f"`{s['command']}`"] for s in steps],
    )

    test_rows, failure_lines, graph_lines, missing = [], [], [], []
    for spec in args.junit:
        label, _, path = spec.partition("=")
        files, failures, graphs, error = read_junit(path)
        if error:
            missing.append(f"{label}: {error}")
        for name, c in sorted(files.items()):
            test_rows.append([name, c["passed"], c["failed"], c["errors"], c["skipped"], f"{c['time']:.1f}"])
        failed |= bool(failures)
        failure_lines += [f"- `{tid}` ({kind}): {msg}" for tid, kind, msg in failures]
        graph_lines += [f"- {g}" for g in graphs]
    totals = [sum(int(r[i]) for r in test_rows) for i in range(1, 5)]
    if test_rows:
        test_rows.append(["all", *totals, f"{sum(float(r[5]) for r in test_rows):.1f}"])
    tests_md = table(["test file", "passed", "failed", "errors", "skipped", "seconds"], test_rows)
    if missing:
        tests_md += "\n\n" + "\n".join(f"- {m}" for m in missing)

    glance_md = table(
        ["script", "status", "rows", "headline"], [glance(s, rows.get(s, []), by_name.get(s)) for s in BENCH_SCRIPTS]
    )
    per_script = {
        "dense": ("dense: GEMM + bias + activation", dense_table),
        "xent": ("xent: softmax cross-entropy", bandwidth_table),
        "optim": ("optim: fused optimizer step", bandwidth_table),
        "train": ("train: fit() epochs", train_table),
    }
    details = {s: (title, make(rows[s])) for s, (title, make) in per_script.items() if rows.get(s)}

    verdict = "FAILED" if failed else "INCOMPLETE (a step ran out of time)" if incomplete else "passed"
    title = "GPU check (dry run on the CPU)" if "--dry-run" in args.command.split() else "GPU check"
    notes = "\n".join([*(f"- tritonnn failed: {e}" for e in ours_failed), *(f"- {n}" for n in args.note)])

    def failures(limit: int, where: str = "") -> list[str]:
        more = [f"- ... {len(failure_lines) - limit} more{where}"] if len(failure_lines) > limit else []
        return ["\n".join(failure_lines[:limit] + more)] if failure_lines else []

    # What the command prints (the device tool returns the end of the output): the verdict, steps, tests, headlines.
    brief = [f"# {title}: {verdict}", intro, "## Steps", steps_md, "## Tests", tests_md]
    brief += ["### Failures", *failures(20, " (summary.md)")] if failure_lines else []
    brief += ["## Benchmarks", glance_md, *([notes] if notes else [])]
    # summary.md: all of it, every measured row included.
    summary = [f"# {title}: {verdict}", intro, "## Steps", steps_md, "## Tests", tests_md]
    summary += ["### Failures", *failures(100)] if failure_lines else []
    summary += ["### What the graph tests ran", "\n".join(graph_lines)] if graph_lines else []
    summary += ["## Benchmarks", glance_md, *([notes] if notes else [])]
    summary += [f"### {name}\n\n{body}" for name, body in details.values()]
    summary += ["## Files", "summary.md (this), RESULTS.md (bench/RESULTS.md with this run appended), tests.log, "
                "bench.log (full output), junit.xml, bench.jsonl (every row), train.png (if matplotlib)"]  # fmt: skip
    # RESULTS.md: the summary's rows under a heading with the command, the device and the date; the scripts append
    # their own rows, except one that did not finish: its measured rows are added here.
    section = [f"### gpu check (`{args.command}`): {verdict}, {device}, {date}", intro, steps_md, tests_md]
    section += failures(20, " (summary.md)")
    section += [glance_md, *([notes] if notes else [])]
    for script in BENCH_SCRIPTS:
        if script in details and by_name.get(script, {}).get("status") != "ok":
            name, body = details[script]
            section.append(f"#### {name} (the script did not finish: the rows it measured)\n\n{body}")
    code = 1 if failed else 3 if incomplete else 0
    return "\n\n".join(summary) + "\n", "\n\n".join(section) + "\n", "\n\n".join(brief) + "\n", code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=None, help="the steps file gpu_check.sh writes (TSV)")
    parser.add_argument("--junit", action="append", default=[], metavar="LABEL=PATH", help="a pytest junit XML")
    parser.add_argument("--json", default=None, metavar="PATH", help="the benchmark scripts' --json rows")
    parser.add_argument("--out", required=True, metavar="PATH", help="summary.md")
    parser.add_argument("--results", default=None, metavar="PATH", help="a RESULTS.md to append this run to")
    parser.add_argument("--command", default="bash bench/gpu_check.sh")
    parser.add_argument("--budget", default="?", help="the run's time budget in seconds (reported)")
    parser.add_argument("--note", action="append", default=[], help="a line for the benchmarks part (repeatable)")
    args = parser.parse_args(argv)
    summary_md, results_md, brief, code = build(args)
    with open(args.out, "w") as f:
        f.write(summary_md)
    if args.results:
        text = open(args.results).read() if os.path.exists(args.results) else "# Benchmark results\n"
        with open(args.results, "w") as f:
            f.write(text.rstrip("\n") + "\n\n" + results_md)
    print(brief)
    return code


if __name__ == "__main__":
    sys.exit(main())
