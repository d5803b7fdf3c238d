"""Benchmark: tritonnn's fused dense vs PyTorch eager (F.linear + activation) and torch.compile(max-autotune).

    python bench/dense.py                       # the default MLP-shaped sweep, fp32 / tf32 / bf16, fwd and fwd+bwd
    python bench/dense.py --quick               # three shapes, bf16 only
    python bench/dense.py --activation relu --dtypes bf16 --modes fwd --shapes 4096x4096x4096

For each (mode, dtype, shape): median and 20/80-percentile times from ``triton.testing.do_bench``, TFLOP/s (fwd:
2MNK flops, fwd+bwd: 6MNK), the ratio of each peer's time to tritonnn's, and the percentage of the roofline:
``max(flops / peak_flops, bytes / peak_bandwidth)`` over the measured time, with H100 SXM figures (bf16 ~800 TFLOP/s,
tf32 ~400, fp32 without tensor cores ~60, ~3.0 TB/s copy bandwidth) and the bytes the fused kernels move (below).
A table goes to stdout and one row per measurement is appended to bench/RESULTS.md (``--results PATH``: another
file), with device, date and command; ``--json PATH`` appends one JSON object per provider and case to PATH.
``--dry-run`` runs the same code on the CPU, for checking the script without a GPU: CPU tensors, Triton's
interpreter for tritonnn's kernels, torch eager as the only peer (torch.compile is skipped, with a note), one tiny
shape, a ``time.perf_counter`` median (bench/_results.py) instead of ``triton.testing.do_bench``, and rows only to
``--results`` when it is given.

Bytes moved (elements; times the element size), for an activation that saves its derivative (gelu):
    fused forward:     read MK + KN + N, write MN (y) + MN (act'(z))
    fused backward:    read 2 MN (dy, once per GEMM) + 2 MN (act') + MK + KN, write MK + KN + N
    eager forward:     F.linear reads MK + KN + N and writes MN (z); gelu reads MN, writes MN
    eager backward:    gelu' reads 2 MN, writes MN (dz); dx/dkernel GEMMs read 2 MN + MK + KN, write MK + KN; dbias
                       reads MN
On a machine without a CUDA GPU the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys

import torch
import torch.nn.functional as F
from _results import RESULTS, device_name, measure, write_json  # bench/ is on sys.path: these run as scripts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# H100 SXM peaks (dense): the roofline each measurement is compared with.
PEAK_TFLOPS = {"bf16": 800.0, "tf32": 400.0, "fp32": 60.0}
PEAK_TBPS = 3.0
DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_SHAPES = [  # (M, K, N): MLP layers, batch*sequence rows M from 128 to 16384, widths 512 to 8192
    (128, 512, 512),
    (128, 4096, 4096),
    (1024, 1024, 4096),
    (4096, 4096, 1024),
    (4096, 4096, 4096),
    (16384, 1024, 4096),
    (16384, 4096, 4096),
    (16384, 8192, 8192),
]
QUICK_SHAPES = [(1024, 1024, 4096), (4096, 4096, 4096), (16384, 4096, 4096)]
DRY_RUN_SHAPES = [(64, 128, 64)]  # the interpreter runs each 32x32 block in Python: a tiny, aligned shape

TORCH_ACT = {
    "linear": lambda z: z,
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


def setup(provider: str, shape, dtype_name: str, activation: str, mode: str, device: str = "cuda"):
    """A zero-argument callable running one forward (or forward + backward) of ``provider`` on ``device``."""
    from tritonnn import kernels

    m, k, n = shape
    dtype = DTYPES[dtype_name]
    x = torch.randn(m, k, device=device, dtype=dtype, requires_grad=mode == "fwd+bwd")
    w = (torch.randn(k, n, device=device, dtype=dtype) / k**0.5).requires_grad_(mode == "fwd+bwd")
    b = torch.randn(n, device=device, dtype=dtype).requires_grad_(mode == "fwd+bwd")
    dy = torch.randn(m, n, device=device, dtype=dtype)
    act = TORCH_ACT[activation]

    if provider == "tritonnn":

        def fn(x, w, b):
            return kernels.dense(x, w, b, activation)
    else:
        wt = w.detach().t().contiguous().requires_grad_(mode == "fwd+bwd")  # F.linear's (out, in) layout

        def eager(x, wt, b):
            return act(F.linear(x, wt, b))

        fn = torch.compile(eager, mode="max-autotune") if provider == "torch.compile" else eager
        w = wt

    if mode == "fwd":

        def run():
            with torch.no_grad():
                return fn(x, w, b)
    else:

        def run():
            x.grad = w.grad = b.grad = None
            fn(x, w, b).backward(dy)

    return run


def fused_bytes(shape, elt: int, mode: str, activation: str) -> int:
    from tritonnn.kernels import ACTIVATIONS

    m, k, n = shape
    saved = m * n if ACTIVATIONS[activation].needs_preactivation else 0
    fwd = (m * k + k * n + n + m * n + saved) * elt
    if mode == "fwd":
        return fwd
    grad_reads = 2 * m * n + (2 * m * n if activation != "linear" else 0)
    return fwd + (grad_reads + m * k + k * n + m * k + k * n + n) * elt


def aot_report(archs=(90, 80), name_filter: str = "") -> int:
    """Registers and spills of every autotune config with the heavy epilogues, compiled as the GPU runs them.

    tests/kernels/test_aot.py compiles each config without divisibility hints; the run-time specialisation of a
    launch on 16-byte-aligned tensors with sizes divisible by 16 adds them (vector loads, cp.async pipelining),
    and so does this report (``tt.divisibility`` on every pointer and size). Needs Triton, not a GPU; run it with
    TRITON_INTERPRET unset.
    """
    import dataclasses

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sys.path.insert(0, REPO)
    from tritonnn.kernels import _aot
    from tritonnn.kernels import dense as _  # noqa: F401  (registers the cases)

    dense_mod = sys.modules["tritonnn.kernels.dense"]
    heavy = {
        "fwd": [("relu+dropout", {"ACTIVATION": 1, "SAVE_GRAD": False, "HAS_DROPOUT": True}),
                ("mish+dropout", {"ACTIVATION": dense_mod.ACTIVATIONS["mish"].id, "HAS_DROPOUT": True})],
        "bwd": [("tanh+dropout", {"DROPOUT_REGEN": True}), ("saved act'", {"GRAD_FROM": 2})],
    }  # fmt: skip
    divisible = {"M", "N", "K", "stride_xm", "stride_wk", "stride_dym"}
    for case in _aot.AOT_CASES:
        if not case.name.startswith("dense") or ("fp16" in case.name) or name_filter not in case.name:
            continue
        part = "fwd" if case.name.startswith("dense_fwd") else "bwd"
        for variant, over in heavy[part]:
            c = dataclasses.replace(case, constexprs={**case.constexprs, **over})
            names = list(c.signature)
            attrs = {
                (names.index(n),): [["tt.divisibility", 16]]
                for n, t in c.signature.items()
                if (t.startswith("*") or n in divisible) and t != "constexpr"
            }
            for arch in archs:
                src = ASTSource(
                    _aot.jit_function(c.kernel), dict(c.signature), constexprs=dict(c.constexprs), attrs=attrs
                )
                compiled = triton.compile(
                    src,
                    target=GPUTarget("cuda", arch, 32),
                    options={"num_warps": c.num_warps, "num_stages": c.num_stages},
                )
                ptx = compiled.asm["ptx"]
                regs, st, ld = _aot._ptxas_stats(ptx, arch)
                tc = "wgmma" if "wgmma.mma_async" in ptx else "mma.sync" if "mma.sync" in ptx else "-"
                name = (
                    case.name.split("[")[0]
                    + "["
                    + case.name.split("[")[1].replace("gelu", variant).replace("tanh", variant)
                )
                smem = compiled.metadata.shared
                print(
                    f"{name:<56} sm_{arch}  regs {regs:>3}  spill st/ld {st}/{ld}  smem {smem:>6}  tc {tc}", flush=True
                )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", default="fp32,tf32,bf16")
    parser.add_argument("--modes", default="fwd,fwd+bwd")
    parser.add_argument("--activation", default="gelu", choices=sorted(TORCH_ACT))
    parser.add_argument("--shapes", default="", help="comma-separated MxKxN")
    parser.add_argument("--providers", default="tritonnn,torch,torch.compile")
    parser.add_argument("--quick", action="store_true", help="three shapes, bf16")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--results", default=None, metavar="PATH", help="append the rows here, not to bench/RESULTS.md")
    parser.add_argument("--json", default=None, metavar="PATH", help="append one JSON object per result row to PATH")
    parser.add_argument(
        "--dry-run", action="store_true", help="CPU tensors, Triton's interpreter, torch eager only, a tiny shape"
    )
    parser.add_argument("--aot", action="store_true", help="print registers/spills of aligned compiles (no GPU needed)")
    parser.add_argument("--aot-filter", default="", help="with --aot: only cases whose name contains this")
    parser.add_argument("--aot-arch", default="90,80", help="with --aot: comma-separated sm versions")
    args = parser.parse_args(argv)
    if args.aot:
        return aot_report(tuple(int(a) for a in args.aot_arch.split(",")), args.aot_filter)

    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before tritonnn's kernels are defined (imported below)
    elif not torch.cuda.is_available():
        print("bench/dense.py needs a CUDA GPU; none is visible on this machine, so nothing was measured.")
        return 0
    dev = "cpu" if args.dry_run else "cuda"

    import triton

    sys.path.insert(0, REPO)
    from tritonnn import kernels

    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",") if s] or (
        DRY_RUN_SHAPES if args.dry_run else QUICK_SHAPES if args.quick else DEFAULT_SHAPES
    )
    dtypes = ["bf16"] if args.quick and args.dtypes == "fp32,tf32,bf16" else args.dtypes.split(",")
    providers = args.providers.split(",")
    skipped = {}
    if args.dry_run and "torch.compile" in providers:
        skipped["torch.compile"] = "not timed in a dry run (compiling for the CPU takes minutes)"
        providers.remove("torch.compile")
        print(f"torch.compile: {skipped['torch.compile']}")
    device = device_name(dev)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    command = "python bench/dense.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    command = command.strip()
    results = None if args.no_record else args.results or (None if args.dry_run else RESULTS)
    rows = []
    kernels.set_backend("triton")
    for mode in args.modes.split(","):
        for dtype_name in dtypes:
            tf32 = dtype_name == "tf32"
            kernels.set_float32_matmul_precision("high" if tf32 else "highest")
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            print(
                f"\ndense {mode} {dtype_name} {args.activation}  {device}  torch {torch.__version__} "
                f"triton {triton.__version__}  {stamp}"
            )
            for shape in shapes:
                m, k, n = shape
                flops = (2 if mode == "fwd" else 6) * m * n * k
                elt = DTYPES[dtype_name].itemsize
                nbytes = fused_bytes(shape, elt, mode, args.activation)
                roofline_ms = max(flops / (PEAK_TFLOPS[dtype_name] * 1e12), nbytes / (PEAK_TBPS * 1e12)) * 1e3
                case = {
                    "script": "dense", "device": device, "date": stamp, "command": command,
                    "case": f"{mode} {dtype_name} {args.activation} {m}x{k}x{n}", "mode": mode, "dtype": dtype_name,
                    "activation": args.activation, "shape": f"{m}x{k}x{n}", "flops": flops, "bytes": nbytes,
                    "peak_tflops": PEAK_TFLOPS[dtype_name], "peak_tbps": PEAK_TBPS,
                }  # fmt: skip
                times = {}
                for provider in providers:
                    try:
                        run = setup(provider, shape, dtype_name, args.activation, mode, dev)
                        times[provider] = p_ms, p_lo, p_hi = measure(run, dev)
                        write_json(args.json, {
                            **case, "provider": provider, "ms": p_ms, "p20": p_lo, "p80": p_hi,
                            "tflops": flops / (p_ms * 1e-3) / 1e12, "roofline_pct": 100 * roofline_ms / p_ms,
                        })  # fmt: skip
                    except Exception as exc:  # a peer that fails (e.g. out of memory) is reported, not fatal
                        error = f"{type(exc).__name__}: {str(exc)[:200]}"
                        print(f"  {provider} failed at {shape}: {error}")
                        write_json(args.json, {**case, "provider": provider, "error": error})
                    if dev == "cuda":
                        torch.cuda.empty_cache()
                for provider, reason in skipped.items():
                    write_json(args.json, {**case, "provider": provider, "skipped": reason})
                if "tritonnn" not in times:
                    continue
                ms, lo, hi = times["tritonnn"]
                tflops = flops / (ms * 1e-3) / 1e12
                ratios = " | ".join(f"{times[p][0] / ms:.2f}x {p}" for p in providers if p != "tritonnn" and p in times)
                line = (
                    f"M={m} K={k} N={n} | tritonnn {ms:.3f} ms [{lo:.3f},{hi:.3f}] | {tflops:.0f} TFLOP/s | "
                    f"{100 * roofline_ms / ms:.0f}% roofline | {ratios}"
                )
                print(line, flush=True)
                rows.append(f"| {stamp} | {device} | {mode} | {dtype_name} | {args.activation} | {line} |")
    kernels.set_float32_matmul_precision("highest")
    if rows and results:
        new_file = not os.path.exists(results)
        with open(results, "a") as f:
            if new_file:
                f.write("# Benchmark results\n")
            version = f"torch {torch.__version__}, triton {triton.__version__}"
            f.write(f"\n## dense: `{command}` ({device}, {version})\n\n")
            f.write("| date | device | mode | dtype | activation | result |\n|---|---|---|---|---|---|\n")
            f.write("\n".join(rows) + "\n")
        print(f"\nappended {len(rows)} rows to {os.path.relpath(results, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
