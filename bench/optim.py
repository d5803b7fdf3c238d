"""Benchmark: one fused flat-buffer optimizer step against torch.optim (fused, foreach) and torch.compile.

    python bench/optim.py                                  # Adam, 1e5 .. 1e9 parameters
    python bench/optim.py --optimizer sgd --counts 1e6,1e8 --global-clipnorm 1.0

Bytes a step must move, per fp32 parameter (read p, g and each state; write p and each state):
    Adam 28 (amsgrad +8), SGD 12 (momentum 20), RMSprop 20 (momentum +8, centered +8), Adagrad 20, Lion 20,
    Adamax 28, Nadam 28, Adadelta 28, Ftrl 28; clipping by norm adds one more read of g (+4): the norm pass.
torch.optim has no Lion and no Ftrl: those run tritonnn alone (the peers are reported as skipped).
Effective bandwidth = those bytes / median time, and % of the device's measured copy bandwidth (a device-to-device
copy of 1 GiB, read + write; ~3.0 TB/s on an H100 SXM).

The parameters are 16 tensors of equal size (a model's worth of weight matrices). Providers: tritonnn (one kernel
over the flat buffers, plus one reduction pass with global_clipnorm), torch.optim with ``fused=True`` and with
``foreach=True`` (their clipping, when asked, is ``torch.nn.utils.clip_grad_norm_`` before the step), and
``torch.compile`` of the foreach step. The rules differ in epsilon placement (Keras vs PyTorch), not in traffic.
Timed with triton.testing.do_bench (median, 20th/80th percentiles). One table on stdout; one row per count and
provider appended to bench/RESULTS.md (``--results PATH``: another file) with the device, date and command;
``--json PATH`` appends one JSON object per row to PATH. Without a GPU it says so and exits 0, unless
``--dry-run``: the same code on the CPU (Triton's interpreter for tritonnn's kernel, torch fused and foreach as
the peers, torch.compile skipped with a note, a tiny count, a ``time.perf_counter`` median and a CPU copy as the
bandwidth roofline), rows only to ``--results`` when it is given.
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

DEFAULT_COUNTS = "1e5,1e6,1e7,1e8,1e9"
DRY_RUN_COUNTS = "1e4"  # the interpreter runs the kernel's blocks in Python
N_TENSORS = 16
SECTION = "## optim: fused optimizer step (bench/optim.py)"
TABLE_HEAD = (
    "| date | device | command | params | optimizer | provider | median ms | p20 | p80 | GB/s | % copy BW "
    "| vs torch fused | vs torch foreach |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
# sgd with momentum 0.9, rmsprop without momentum
BYTES = {"adam": 28, "sgd": 20, "rmsprop": 20, "adagrad": 20, "lion": 20, "adamax": 28, "nadam": 28, "adadelta": 28,
         "ftrl": 28}  # fmt: skip
TORCH = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
         "adagrad": torch.optim.Adagrad, "adamax": torch.optim.Adamax, "nadam": torch.optim.NAdam,
         "adadelta": torch.optim.Adadelta}  # fmt: skip


def _params(count: int, device: str = "cuda") -> list[torch.nn.Parameter]:
    size = max(1, count // N_TENSORS)
    gen = torch.Generator(device=device).manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(size, device=device, generator=gen) * 0.02) for _ in range(N_TENSORS)]
    for p in params:
        p.grad = torch.randn(size, device=device, generator=gen) * 1e-3
    return params


def setup(provider: str, optimizer: str, count: int, global_clipnorm: float | None, device: str = "cuda"):
    """A closure running one optimizer step for the provider (gradients already in place)."""
    from tritonnn import kernels, optimizers

    params = _params(count, device)
    if provider == "tritonnn":
        kw = {"momentum": 0.9} if optimizer == "sgd" else {}
        opt = optimizers.get(optimizer).__class__(global_clipnorm=global_clipnorm, **kw)
        grads = [p.grad for p in params]
        opt.build(params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.grad.copy_(g)

        def run():
            with kernels.backend_scope("triton"):
                opt.step()

        return run
    kw = {"lr": 1e-3}
    if optimizer == "sgd":
        kw["momentum"] = 0.9
    if provider == "torch fused":
        kw["fused"] = True
    else:
        kw["foreach"] = True
    opt = TORCH[optimizer](params, **kw)

    def step():
        if global_clipnorm is not None:
            torch.nn.utils.clip_grad_norm_(params, global_clipnorm, foreach=True)
        opt.step()

    if provider == "torch.compile":
        step = torch.compile(step)
    step()  # materialise the state (and compile) outside the timing
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="adam", choices=sorted(BYTES))
    parser.add_argument("--counts", default=None, help=f"comma-separated parameter counts (default {DEFAULT_COUNTS})")
    parser.add_argument("--global-clipnorm", type=float, default=None)
    parser.add_argument("--providers", default="tritonnn,torch fused,torch foreach,torch.compile")
    parser.add_argument("--no-save", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--results", default=None, metavar="PATH", help="append the rows here, not to bench/RESULTS.md")
    parser.add_argument("--json", default=None, metavar="PATH", help="append one JSON object per result row to PATH")
    parser.add_argument("--dry-run", action="store_true", help="CPU, Triton's interpreter, torch eager, a tiny count")
    args = parser.parse_args(argv)
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before tritonnn's kernels are defined (imported by setup)
    elif not torch.cuda.is_available():
        print("bench/optim.py needs a CUDA GPU (none found): nothing to measure.")
        return 0
    import triton

    dev = "cpu" if args.dry_run else "cuda"
    device = device_name(dev)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    bw = copy_bandwidth(dev)
    clip = f" global_clipnorm={args.global_clipnorm}" if args.global_clipnorm else ""
    header = (
        f"optim {args.optimizer}{clip} fp32  {device}  torch {torch.__version__} triton {triton.__version__}  {now}  "
        f"copy bandwidth {bw / 1e12:.2f} TB/s"
    )
    print(header)
    command = "python bench/optim.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    command = command.strip()
    per_param = BYTES[args.optimizer] + (4 if args.global_clipnorm else 0)
    providers = [p for p in args.providers.split(",") if p]
    skipped = {}
    if args.optimizer not in TORCH:
        for provider in [p for p in providers if p != "tritonnn"]:
            skipped[provider] = f"torch.optim has no {args.optimizer}"
            providers.remove(provider)
            print(f"{provider}: {skipped[provider]}")
    if args.dry_run and "torch.compile" in providers:
        skipped["torch.compile"] = "not timed in a dry run (compiling for the CPU takes minutes)"
        providers.remove("torch.compile")
        print(f"torch.compile: {skipped['torch.compile']}")
    rows = []
    for text in (args.counts or (DRY_RUN_COUNTS if args.dry_run else DEFAULT_COUNTS)).split(","):
        count = int(float(text))
        count = max(N_TENSORS, count // N_TENSORS * N_TENSORS)
        case = {
            "script": "optim", "device": device, "date": now, "command": command,
            "case": f"{args.optimizer}{clip} {count:.0e} params", "params": count, "bytes": count * per_param,
            "copy_bw_gbps": bw / 1e9,
        }  # fmt: skip
        results = {}
        for provider in providers:
            try:
                run = setup(provider, args.optimizer, count, args.global_clipnorm, dev)
                results[provider] = med, p20, p80 = measure(run, dev)
                gbps = count * per_param / (med * 1e-3) / 1e9
                write_json(args.json, {
                    **case, "provider": provider, "ms": med, "p20": p20, "p80": p80, "gbps": gbps,
                    "copy_bw_pct": 100 * gbps * 1e9 / bw,
                })  # fmt: skip
            except torch.cuda.OutOfMemoryError:
                print(f"params={count:.0e} | {provider:<13} out of memory")
                write_json(args.json, {**case, "provider": provider, "error": "out of memory"})
            except Exception as exc:  # a peer that fails (torch.compile, say) is reported, not fatal
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                print(f"params={count:.0e} | {provider:<13} failed: {error}")
                write_json(args.json, {**case, "provider": provider, "error": error})
            if dev == "cuda":
                torch.cuda.empty_cache()
        for provider, reason in skipped.items():
            write_json(args.json, {**case, "provider": provider, "skipped": reason})
        for provider, (med, p20, p80) in results.items():
            gbps = count * per_param / (med * 1e-3) / 1e9
            fused = f"{results['torch fused'][0] / med:.2f}x" if "torch fused" in results else "-"
            foreach = f"{results['torch foreach'][0] / med:.2f}x" if "torch foreach" in results else "-"
            print(
                f"params={count:<11} | {provider:<13} {med:9.3f} ms [{p20:.3f},{p80:.3f}] | {gbps:7.0f} GB/s | "
                f"{100 * gbps * 1e9 / bw:5.1f}% | {fused} fused | {foreach} foreach",
                flush=True,
            )
            rows.append(
                f"| {now} | {device} | `{command}` | {count} | {args.optimizer}{clip} | {provider} | "
                f"{med:.3f} | {p20:.3f} | {p80:.3f} | {gbps:.0f} | {100 * gbps * 1e9 / bw:.1f} | {fused} | {foreach} |"
            )
    results_path = None if args.no_save else args.results or (None if args.dry_run else RESULTS)
    if results_path and rows:
        append_to_section(SECTION, header, TABLE_HEAD, rows, results_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
