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
provider appended to bench/RESULTS.md with the device, date and command. Without a GPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys

import torch
from _results import append_to_section, copy_bandwidth  # bench/ is on sys.path: these run as scripts

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

DEFAULT_SHAPES = "4096x10,4096x1000,8192x8192,8192x32768,4096x50304,8192x131072"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SECTION = "## xent: softmax cross-entropy (bench/xent.py)"
TABLE_HEAD = (
    "| date | device | command | shape | provider | median ms | p20 | p80 | GB/s | % copy BW | vs torch |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def setup(provider: str, n: int, c: int, dtype: torch.dtype, mode: str):
    """A closure running one forward (+ backward) for the provider, on fresh-looking but reused inputs."""
    import torch.nn.functional as F

    from tritonnn import kernels

    gen = torch.Generator(device="cuda").manual_seed(0)
    logits = torch.randn(n, c, device="cuda", dtype=dtype, generator=gen).requires_grad_(mode == "fwd+bwd")
    target = torch.randint(0, c, (n,), device="cuda", generator=gen)

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
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated NxC")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--mode", default="fwd+bwd", choices=["fwd", "fwd+bwd"])
    parser.add_argument("--providers", default="tritonnn,torch,torch.compile")
    parser.add_argument("--no-save", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench/xent.py needs a CUDA GPU (none found): nothing to measure.")
        return 0
    import triton
    from triton.testing import do_bench

    dtype = DTYPES[args.dtype]
    b = torch.finfo(dtype).bits // 8
    device = torch.cuda.get_device_name()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    bw = copy_bandwidth()
    header = (
        f"xent {args.mode} {args.dtype}  {device}  torch {torch.__version__} triton {triton.__version__}  {now}  "
        f"copy bandwidth {bw / 1e12:.2f} TB/s"
    )
    print(header)
    command = "python bench/xent.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    providers = [p for p in args.providers.split(",") if p]
    rows = []
    for shape in args.shapes.split(","):
        n, c = (int(v) for v in shape.lower().split("x"))
        moved = n * c * b * (2 if args.mode == "fwd+bwd" else 1) + n * 12
        results = {}
        for provider in providers:
            try:
                results[provider] = do_bench(setup(provider, n, c, dtype, args.mode), quantiles=[0.5, 0.2, 0.8])
            except torch.cuda.OutOfMemoryError:
                print(f"N={n} C={c} | {provider:<13} out of memory")
            torch.cuda.empty_cache()
        for provider, (med, p20, p80) in results.items():
            gbps = moved / (med * 1e-3) / 1e9
            ratio = f"{results['torch'][0] / med:.2f}x" if "torch" in results else "-"
            print(
                f"N={n:<5} C={c:<6} | {provider:<13} {med:8.3f} ms [{p20:.3f},{p80:.3f}] | {gbps:7.0f} GB/s | "
                f"{100 * gbps * 1e9 / bw:5.1f}% | {ratio} torch",
                flush=True,
            )
            rows.append(
                f"| {now} | {device} | `{command.strip()}` | {n}x{c} {args.dtype} {args.mode} | {provider} | "
                f"{med:.3f} | {p20:.3f} | {p80:.3f} | {gbps:.0f} | {100 * gbps * 1e9 / bw:.1f} | {ratio} |"
            )
    if not args.no_save and rows:
        append_to_section(SECTION, header, TABLE_HEAD, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
