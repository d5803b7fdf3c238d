"""Benchmark: the fused MLP (kernels.fused_mlp) against the per-layer path (a kernels.dense chain), eager PyTorch and
torch.compile, on narrow stacks.

    python bench/fused_mlp.py                       # W-W-W-10 stacks, W = 32, 64, 128, batch 32 .. 65536, bf16, train
    python bench/fused_mlp.py --dtype fp32 --mode fwd --widths 64 --batches 4096,65536
    python bench/fused_mlp.py --seed-model          # the seed model 64-32-10 instead of the W-W-W-10 stacks
    python bench/fused_mlp.py --dry-run             # CPU: the interpreter, one tiny shape; checks the script only

Network: input width W, hidden layers of W units with relu, a 10-unit linear output (``--depth`` Dense layers in all,
default 3), biases everywhere. Modes:
    fwd    the logits, under no_grad (inference);
    train  the loss (softmax cross-entropy with integer labels, mean over the batch) and its backward, with the
           parameters in an optimizer's flat gradient buffer (tritonnn.optimizers.SGD().build) for the tritonnn
           providers, as fit() holds them; the optimizer's own step (one launch, the same for both) is not timed.
Providers: fused (kernels.fused_mlp, the loss fused: one forward launch, one backward launch, or two above
REDUCE_HERE_BYTES of partials), per-layer (kernels.dense per layer + kernels.softmax_cross_entropy: 2 + 2L - 1 + 1
launches), torch (eager F.linear + relu + F.cross_entropy), torch.compile (the same function, compiled).

Bytes model (b bytes per element, P parameters, M rows, K the input width, N_l the layer widths):
    fused fwd     read M K b (x) + P b (weights, once per program: from L2 after the first) ; write M N_L b (logits)
    fused train   forward: read M K b + P b, 8 M (labels), nothing written but the loss (the logits stay on chip);
                  backward: read M K b again (recompute, and dW_0 = x^T dz_0) + P b + 8 M, write P * 4 (fp32 grads,
                  added into the flat buffer: read + write) ; nothing else: no hidden activation reaches memory
    per-layer     adds, per hidden layer l, a write and a read of M N_l b in the forward, and in the backward a read of
                  the saved output (for act') and a write + read of the gradient dh_l: ~5 M N_l b per hidden layer,
                  plus the logits (write, read) and their gradient (write, read): 4 M N_L b
Columns: median ms [p20, p80], effective GB/s of the fused bytes model (the minimum any provider must move), its %
of the device's copy bandwidth, and each provider's time over fused's (> 1: fused is faster). Timed with
triton.testing.do_bench (median, 20th/80th percentiles); rows appended to bench/RESULTS.md under this script's
section (``--no-save``: not). ``--count-launches`` also counts each provider's CUDA kernels per step with
torch.profiler. Without a CUDA GPU the script says so and exits 0 (``--dry-run`` runs it on the CPU).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
DRY_RUN = "--dry-run" in sys.argv
if DRY_RUN:  # before tritonnn (and triton) are imported: the kernels run under the interpreter
    os.environ["TRITON_INTERPRET"] = "1"
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _results import append_to_section, copy_bandwidth, device_name, measure  # noqa: E402  (bench/ is on sys.path)

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_WIDTHS = "32,64,128"
DEFAULT_BATCHES = "32,128,512,2048,8192,32768,65536"
PROVIDERS = "fused,per-layer,torch,torch.compile"
N_CLASSES = 10
SECTION = "## fused_mlp: whole-MLP kernels (bench/fused_mlp.py)"
TABLE_HEAD = (
    "| date | device | command | net | batch | mode | provider | median ms | p20 | p80 | GB/s | % copy BW "
    "| fused speedup |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def network(width: int, depth: int, seed_model: bool) -> tuple[list[int], list[str]]:
    """(widths, activations): ``W-W-...-10`` with relu hidden layers, or the seed model 64-32-10."""
    if seed_model:
        return [64, 32, N_CLASSES], ["relu", "linear"]
    return [width] * depth + [N_CLASSES], ["relu"] * (depth - 1) + ["linear"]


def fused_bytes(widths: list[int], m: int, b: int, mode: str) -> int:
    """The fused path's minimal traffic (module docstring)."""
    params = sum(k * n + n for k, n in zip(widths[:-1], widths[1:], strict=True))
    fwd = m * widths[0] * b + params * b
    if mode == "fwd":
        return fwd + m * widths[-1] * b
    return 2 * fwd + 2 * 8 * m + 2 * params * 4


def setup(provider: str, widths: list[int], acts: list[str], m: int, dtype: torch.dtype, mode: str, device: str):
    """A closure running one forward (mode fwd) or one loss + backward (mode train) for the provider."""
    from tritonnn import kernels, optimizers

    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(m, widths[0], device=device, dtype=dtype, generator=gen)
    labels = torch.randint(0, widths[-1], (m,), device=device, generator=gen)
    ws = [
        torch.nn.Parameter((torch.randn(k, n, device=device, generator=gen) / k**0.5).to(dtype))
        for k, n in zip(widths[:-1], widths[1:], strict=True)
    ]
    bs = [torch.nn.Parameter(torch.zeros(n, device=device, dtype=dtype)) for n in widths[1:]]
    params = [t for pair in zip(ws, bs, strict=True) for t in pair]
    tritonnn_provider = provider in ("fused", "per-layer")
    if mode == "train" and tritonnn_provider and dtype == torch.float32:
        optimizers.SGD().build(params)  # .grad views into one flat fp32 buffer, as fit() has them

    def torch_logits(x):
        h = x
        for w, b, a in zip(ws, bs, acts, strict=True):
            h = F.linear(h, w.t(), b)
            h = torch.relu(h) if a == "relu" else h
        return h

    def per_layer_logits(x):
        h = x
        for w, b, a in zip(ws, bs, acts, strict=True):
            h = kernels.dense(h, w, b, a)
        return h

    if provider == "fused":

        def step():
            with kernels.backend_scope("triton"):
                if mode == "fwd":
                    return kernels.fused_mlp(x, ws, bs, acts)
                kernels.fused_mlp(x, ws, bs, acts, loss="softmax_cross_entropy", targets=labels).backward()

    elif provider == "per-layer":

        def step():
            with kernels.backend_scope("triton"):
                if mode == "fwd":
                    return per_layer_logits(x)
                kernels.softmax_cross_entropy(per_layer_logits(x), labels).backward()

    else:
        fn = torch_logits if mode == "fwd" else (lambda x, t: F.cross_entropy(torch_logits(x).float(), t))
        if provider == "torch.compile":
            fn = torch.compile(fn, dynamic=False)

        def step():
            if mode == "fwd":
                return fn(x)
            for p in params:
                p.grad = None
            fn(x, labels).backward()

    if mode == "fwd":
        return lambda: _no_grad(step)
    return step


def _no_grad(fn):
    with torch.no_grad():
        return fn()


def count_launches(step) -> int:
    """CUDA kernels one call of ``step`` launches (torch.profiler; warmed up first)."""
    from torch.profiler import ProfilerActivity, profile

    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default=DEFAULT_WIDTHS, help="comma-separated hidden widths W")
    parser.add_argument("--depth", type=int, default=3, help="Dense layers per stack (1 to 4)")
    parser.add_argument("--seed-model", action="store_true", help="the seed model 64-32-10 instead")
    parser.add_argument("--batches", default=DEFAULT_BATCHES, help="comma-separated batch sizes")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--mode", default="train", choices=["fwd", "train"])
    parser.add_argument("--providers", default=PROVIDERS)
    parser.add_argument("--count-launches", action="store_true", help="count each provider's CUDA kernels per step")
    parser.add_argument("--no-save", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--dry-run", action="store_true", help="CPU and the interpreter, one tiny shape")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("bench/fused_mlp.py needs a CUDA GPU (none found): nothing to measure. (--dry-run checks the script.)")
        return 0
    import triton

    from tritonnn import kernels

    device = "cpu" if args.dry_run else "cuda"
    dtype = DTYPES[args.dtype]
    kernels.set_float32_matmul_precision("high" if args.dtype == "tf32" else "highest")
    torch.backends.cuda.matmul.allow_tf32 = args.dtype == "tf32"
    b = torch.finfo(dtype).bits // 8
    widths_list = [int(w) for w in args.widths.split(",")] if not args.seed_model else [64]
    batches = [int(m) for m in args.batches.split(",")]
    providers = [p for p in args.providers.split(",") if p]
    if args.dry_run:
        widths_list, batches = widths_list[:1], [37]
        providers = [p for p in providers if p != "torch.compile"]  # nothing to compile against on the CPU here
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    name = device_name(device)
    bw = copy_bandwidth(device)
    header = (
        f"fused_mlp {args.mode} {args.dtype}  {name}  torch {torch.__version__} triton {triton.__version__}  {now}  "
        f"copy bandwidth {bw / 1e12:.2f} TB/s"
    )
    print(header)
    command = "python bench/fused_mlp.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    rows = []
    for width in widths_list:
        widths, acts = network(width, args.depth, args.seed_model)
        ok, why = kernels.fused_mlp_supported(widths, acts, dtype, loss="softmax_cross_entropy")
        net = "-".join(map(str, widths))
        print(f"{net}: {why}")
        for m in batches:
            moved = fused_bytes(widths, m, b, args.mode)
            results, launches = {}, {}
            for provider in providers:
                if provider == "fused" and not ok:
                    continue
                try:
                    step = setup(provider, widths, acts, m, dtype, args.mode, device)
                    results[provider] = measure(step, device)
                    if args.count_launches and device == "cuda":
                        launches[provider] = count_launches(step)
                except torch.cuda.OutOfMemoryError:
                    print(f"{net} M={m} | {provider:<13} out of memory")
                if device == "cuda":
                    torch.cuda.empty_cache()
            for provider, (med, p20, p80) in results.items():
                gbps = moved / (med * 1e-3) / 1e9
                speedup = f"{med / results['fused'][0]:.2f}x" if "fused" in results else "-"
                count = f" | {launches[provider]:3d} launches" if provider in launches else ""
                print(
                    f"{net:<16} M={m:<6} {args.mode:<5} | {provider:<13} {med:8.3f} ms [{p20:.3f},{p80:.3f}] | "
                    f"{gbps:7.1f} GB/s | {100 * gbps * 1e9 / bw:5.1f}% | fused {speedup}{count}",
                    flush=True,
                )
                rows.append(
                    f"| {now} | {name} | `{command.strip()}` | {net} {args.dtype} | {m} | {args.mode} | {provider} | "
                    f"{med:.3f} | {p20:.3f} | {p80:.3f} | {gbps:.1f} | {100 * gbps * 1e9 / bw:.1f} | {speedup} |"
                )
    if not args.no_save and not args.dry_run and rows:
        append_to_section(SECTION, header, TABLE_HEAD, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
