"""Benchmark: fused softmax cross-entropy (forward + backward) against PyTorch eager and torch.compile.

    python bench/xent.py                      # bf16 logits, integer labels, the default N x C sweep
    python bench/xent.py --dtype fp32 --mode fwd --shapes 4096x10,8192x131072

Bytes the op must move (integer labels; b bytes per logit):
    fwd      read N*C*b                      (+ 8N labels, 4N loss)
    fwd+bwd  read N*C*b, write N*C*b          (the gradient, the only (N, C) buffer the op needs)
Effective bandwidth = those bytes / median time, and % of the device's measured copy bandwidth (a device-to-device
copy of 1 GiB, read + write, timed the same way; ~3.0 TB/s on an H100 SXM).

Providers: tritonnn (one kernel writes the loss and the gradient; backward = one scaling), torch
(F.cross_entropy + backward: log_softmax, nll, and a softmax-based backward), torch.compile of the same.
Timed with triton.testing.do_bench (median, 20th/80th percentiles). One table on stdout; one row per shape and
provider appended to bench/RESULTS.md (``--results PATH``: another file) with the device, date and command;
``--json PATH`` appends one JSON object per row to PATH. Without a GPU it says so and exits 0, unless
``--dry-run``: the same code on the CPU (Triton's interpreter for tritonnn's kernel, torch eager as the only peer,
torch.compile skipped with a note, one tiny shape, a ``time.perf_counter`` median and a CPU copy as the bandwidth
roofline), rows only to ``--results`` when it is given.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys

import torch
from _results import (  # bench/ is on sys.path: these run as scripts
    RESULTS,
    append_to_section,
    copy_bandwidth,
    device_name,
    measure,
    write_json,
)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

DEFAULT_SHAPES = "4096x10,4096x1000,8192x8192,8192x32768,4096x50304,8192x131072"
DRY_RUN_SHAPES = "32x256"  # the interpreter runs the kernel in Python: a tiny shape
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SECTION = "## xent: softmax cross-entropy (bench/xent.py)"
TABLE_HEAD = (
    "| date | device | command | shape | provider | median ms | p20 | p80 | GB/s | % copy BW | vs torch |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def setup(provider: str, n: int, c: int, dtype: torch.dtype, mode: str, device: str = "cuda"):
    """A closure running one forward (+ backward) for the provider, on fresh-looking but reused inputs."""
    import torch.nn.functional as F

    from tritonnn import kernels

    gen = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn(n, c, device=device, dtype=dtype, generator=gen).requires_grad_(mode == "fwd+bwd")
    target = torch.randint(0, c, (n,), device=device, generator=gen)

    if provider == "tritonnn":

        def loss_fn(z, t):
            with kernels.backend_scope("triton"):
                return kernels.softmax_cross_entropy(z, t)

    elif provider == "torch":

        def loss_fn(z, t):
            return F.cross_entropy(z, t)

    else:
        loss_fn = torch.compile(lambda z, t: F.cross_entropy(z, t), dynamic=False)

    if mode == "fwd":

        def run():
            with torch.no_grad():
                loss_fn(logits, target)

    else:

        def run():
            logits.grad = None
            loss_fn(logits, target).backward()

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=None, help=f"comma-separated NxC (default {DEFAULT_SHAPES})")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--mode", default="fwd+bwd", choices=["fwd", "fwd+bwd"])
    parser.add_argument("--providers", default="tritonnn,torch,torch.compile")
    parser.add_argument("--no-save", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--results", default=None, metavar="PATH", help="append the rows here, not to bench/RESULTS.md")
    parser.add_argument("--json", default=None, metavar="PATH", help="append one JSON object per result row to PATH")
    parser.add_argument("--dry-run", action="store_true", help="CPU, Triton's interpreter, torch eager, a tiny shape")
    args = parser.parse_args(argv)
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before tritonnn's kernels are defined (imported by setup)
    elif not torch.cuda.is_available():
        print("bench/xent.py needs a CUDA GPU (none found): nothing to measure.")
        return 0
    import triton

    dev = "cpu" if args.dry_run else "cuda"
    dtype = DTYPES[args.dtype]
    b = torch.finfo(dtype).bits // 8
    device = device_name(dev)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    bw = copy_bandwidth(dev)
    header = (
        f"xent {args.mode} {args.dtype}  {device}  torch {torch.__version__} triton {triton.__version__}  {now}  "
        f"copy bandwidth {bw / 1e12:.2f} TB/s"
    )
    print(header)
    command = "python bench/xent.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    command = command.strip()
    providers = [p for p in args.providers.split(",") if p]
    skipped = {}
    if args.dry_run and "torch.compile" in providers:
        skipped["torch.compile"] = "not timed in a dry run (compiling for the CPU takes minutes)"
        providers.remove("torch.compile")
        print(f"torch.compile: {skipped['torch.compile']}")
    shapes = args.shapes or (DRY_RUN_SHAPES if args.dry_run else DEFAULT_SHAPES)
    rows = []
    for shape in shapes.split(","):
        n, c = (int(v) for v in shape.lower().split("x"))
        moved = n * c * b * (2 if args.mode == "fwd+bwd" else 1) + n * 12
        case = {
            "script": "xent", "device": device, "date": now, "command": command,
            "case": f"{n}x{c} {args.dtype} {args.mode}", "bytes": moved, "copy_bw_gbps": bw / 1e9,
        }  # fmt: skip
        results = {}
        for provider in providers:
            try:
                results[provider] = med, p20, p80 = measure(setup(provider, n, c, dtype, args.mode, dev), dev)
                gbps = moved / (med * 1e-3) / 1e9
                write_json(args.json, {
                    **case, "provider": provider, "ms": med, "p20": p20, "p80": p80, "gbps": gbps,
                    "copy_bw_pct": 100 * gbps * 1e9 / bw,
                })  # fmt: skip
            except torch.cuda.OutOfMemoryError:
                print(f"N={n} C={c} | {provider:<13} out of memory")
                write_json(args.json, {**case, "provider": provider, "error": "out of memory"})
            except Exception as exc:  # a peer that fails (torch.compile, say) is reported, not fatal
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                print(f"N={n} C={c} | {provider:<13} failed: {error}")
                write_json(args.json, {**case, "provider": provider, "error": error})
            if dev == "cuda":
                torch.cuda.empty_cache()
        for provider, reason in skipped.items():
            write_json(args.json, {**case, "provider": provider, "skipped": reason})
        for provider, (med, p20, p80) in results.items():
            gbps = moved / (med * 1e-3) / 1e9
            ratio = f"{results['torch'][0] / med:.2f}x" if "torch" in results else "-"
            print(
                f"N={n:<5} C={c:<6} | {provider:<13} {med:8.3f} ms [{p20:.3f},{p80:.3f}] | {gbps:7.0f} GB/s | "
                f"{100 * gbps * 1e9 / bw:5.1f}% | {ratio} torch",
                flush=True,
            )
            rows.append(
                f"| {now} | {device} | `{command}` | {n}x{c} {args.dtype} {args.mode} | {provider} | "
                f"{med:.3f} | {p20:.3f} | {p80:.3f} | {gbps:.0f} | {100 * gbps * 1e9 / bw:.1f} | {ratio} |"
            )
    results_path = None if args.no_save else args.results or (None if args.dry_run else RESULTS)
    if results_path and rows:
        append_to_section(SECTION, header, TABLE_HEAD, rows, results_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
