"""Benchmark: samples per second of whole training epochs, tritonnn's fit() against PyTorch and Keras 3 peers.

    python bench/train.py                                  # every model, fp32 and bf16, every peer
    python bench/train.py --models seed --dtypes fp32 --peers tritonnn,torch --epochs 1
    python bench/train.py --models classic,wide --dtypes bf16 --epochs 5 --no-plot
    python bench/train.py --models classic --peers tritonnn --distributed 2   # + data-parallel over 2 processes

Every peer trains the same model (bench/models.py: Dense relu layers, optional Dropout, logits, Adam(1e-3), sparse
softmax cross-entropy) on the same data with the same batch size, reshuffled every epoch, data already on the device:
- ``tritonnn``: ``Model.fit(x, y, batch_size, epochs, verbose=0)``, the epochs timed by a callback;
- ``torch``: a hand-written eager loop: ``nn.Sequential``, ``F.cross_entropy``, ``torch.optim.Adam`` (fused=True on
  CUDA; foreach on CPU), batches gathered by a shuffled index tensor (``torch.randperm`` on the device);
- ``compile``/``compile-ro``: the same loop with forward + loss under ``torch.compile`` (default mode,
  ``mode="reduce-overhead"``, which adds CUDA graphs on a GPU and is the default mode on a CPU); the optimizer step
  stays eager;
- ``keras-torch``/``keras-jax``: Keras 3 ``fit`` with ``KERAS_BACKEND=torch`` / ``jax``, each in a subprocess (the
  backend is fixed at import), skipped with a message when keras (or jax) is not installed.
With ``--distributed N`` a column ``tritonnn-dpN`` is added: the same tritonnn ``fit`` launched by torchrun on N
processes (``tritonnn.distribution.DataParallel``: gloo on a CPU, NCCL on GPUs, one GPU per process), each with the
model's batch, so the global batch is N times it (weak scaling); samples/s counts the whole data set per epoch, timed
on rank 0. On a CPU the N processes share the machine's cores (run it with ``--threads`` at most cores / N).
bf16 is mixed precision everywhere: ``mixed_bfloat16`` for tritonnn and Keras, ``torch.autocast(bfloat16)`` for
torch (fp32 master weights throughout).

Models: ``seed`` 64-32-10 at batch 32 on the 8x8 digits (``tritonnn.datasets.digits``, 1438 samples);
``classic`` 784-512-512-10 with two Dropout(0.2) at batch 128 (the Keras MNIST MLP) and ``wide`` 784-4096-4096-10 at
batch 4096, both on synthetic MNIST-shaped data (uniform pixels, random labels: throughput does not depend on the
values). On a CPU the classic and wide epochs are shortened and wide is narrowed (printed in the header and the
rows) so that a full run takes minutes.

Timing: one warm-up epoch (compilation, autotuning, allocator) is excluded; then ``--epochs`` epochs are timed one by
one (with a device synchronisation at both ends) and the median is reported. Output: a table of samples/s and the
ratio tritonnn / peer (> 1: tritonnn is faster), rows appended to bench/RESULTS.md (``--results PATH``: another
file; device, date, command, torch/triton versions, load average on a CPU), one JSON object per model, dtype and
peer appended to ``--json PATH`` as each is measured, and a bar chart PNG (needs matplotlib; skipped otherwise).
``--cases seed:fp32,classic:bf16`` picks (model, dtype) pairs instead of the product of --models and --dtypes.
A peer that fails (torch.compile on an unsupported setup, say) is reported in its row; the script goes on, and
exits 1 at the end only when tritonnn itself failed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from _results import device_name, write_json  # noqa: E402
from models import MODELS, Spec, build_torch, build_tritonnn, torch_adam  # noqa: E402

RESULTS = os.path.join(BENCH, "RESULTS.md")
PEERS = ("tritonnn", "torch", "compile", "compile-ro", "keras-torch", "keras-jax")
DTYPES = ("fp32", "bf16")
# Samples per epoch: (GPU, CPU). The digits set is what it is (1438); synthetic sets are sized so that an epoch is
# many steps on a GPU and well under a second per peer on a 2-core CPU.
SAMPLES = {"seed": (1438, 1438), "classic": (60000, 8192), "wide": (65536, 4096)}
CPU_SPECS = {"wide": Spec("wide", (784, 1024, 1024, 10), 512, 0.0)}  # 784-4096-4096 at 4096 is ~10 s a step on CPU


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def spec_for(name: str, dev: str) -> Spec:
    return CPU_SPECS.get(name, MODELS[name]) if dev == "cpu" else MODELS[name]


def data(name: str, spec: Spec, dev: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 (n, features) and int64 (n,) labels, in host memory (each peer moves them to its device)."""
    if name == "seed":
        from tritonnn.datasets import digits

        (x, y), _ = digits.load_data()
        return x.reshape(len(x), -1).astype(np.float32) / 16.0, y.astype(np.int64)
    n = SAMPLES[name][dev == "cpu"]
    rng = np.random.default_rng(0)
    x = rng.random((n, spec.layers[0]), dtype=np.float32)
    return x, rng.integers(0, spec.layers[-1], n).astype(np.int64)


def sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------------------
# Peers: each returns the list of timed epoch durations in seconds
# ---------------------------------------------------------------------------------------------------------------


def run_tritonnn(spec: Spec, x: np.ndarray, y: np.ndarray, dtype: str, epochs: int, dev: str) -> list[float]:
    import tritonnn as keras

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if dtype == "bf16" else "float32")
    try:
        model = build_tritonnn(keras, spec)
        xt, yt = torch.from_numpy(x).to(model.device), torch.from_numpy(y).to(model.device)

        class EpochTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                sync(dev)
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                sync(dev)
                self.times.append(time.perf_counter() - self.start)

        model.fit(xt, yt, batch_size=spec.batch, epochs=1, verbose=0)  # warm-up
        timer = EpochTimer()
        model.fit(xt, yt, batch_size=spec.batch, epochs=epochs, verbose=0, callbacks=[timer])
        return timer.times
    finally:
        keras.mixed_precision.set_global_policy("float32")


def run_torch(spec, x, y, dtype, epochs, dev, compile_mode: str | None = None) -> list[float]:
    torch.manual_seed(0)
    model = build_torch(spec, dev)
    opt, _ = torch_adam(model, dev)
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    n = len(xt)
    bf16 = dtype == "bf16"

    def loss_fn(xb, yb):
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
            return F.cross_entropy(model(xb), yb)

    if compile_mode is not None:
        # A fresh dynamo state per run: loss_fn's code object is shared by every model and dtype of this process,
        # and their guards would otherwise pile up to the recompile limit (then dynamo falls back to eager).
        torch._dynamo.reset()
        loss_fn = torch.compile(loss_fn, mode=compile_mode)

    def epoch() -> float:
        sync(dev)
        start = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        for i in range(0, n, spec.batch):
            idx = perm[i : i + spec.batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(xt[idx], yt[idx]).backward()
            opt.step()
        sync(dev)
        return time.perf_counter() - start

    model.train()
    epoch()  # warm-up (with torch.compile: the compiles of the full and the last, partial batch)
    return [epoch() for _ in range(epochs)]


def run_keras(backend: str, model_name: str, dtype: str, epochs: int) -> list[float] | str:
    """Keras 3 in a subprocess with KERAS_BACKEND set; epoch times, or the reason it was skipped."""
    missing = [m for m in ("keras", *(["jax"] if backend == "jax" else [])) if importlib.util.find_spec(m) is None]
    if missing:
        return f"{' and '.join(missing)} not installed"
    env = dict(os.environ, KERAS_BACKEND=backend)
    cmd = [
        sys.executable,
        __file__,
        "--keras-worker",
        "--models",
        model_name,
        "--dtypes",
        dtype,
        "--epochs",
        str(epochs),
    ]
    cmd += ["--threads", str(torch.get_num_threads())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            out = json.loads(line)
            return out["times"] if "times" in out else out["skip"]
    return f"worker failed (rc {proc.returncode}): {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"


def run_distributed(model_name: str, dtype: str, epochs: int, nproc: int) -> list[float] | str:
    """tritonnn's fit data-parallel over ``nproc`` processes (torchrun); rank 0's epoch times, or why it failed."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", __file__]
    cmd += ["--dp-worker", "--models", model_name, "--dtypes", dtype, "--epochs", str(epochs)]
    cmd += ["--threads", str(max(1, torch.get_num_threads() // nproc))] if device() == "cpu" else []
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)["times"]
    return f"torchrun failed (rc {proc.returncode}): {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"


def dp_worker(model_name: str, dtype: str, epochs: int) -> int:
    """Inside torchrun: tritonnn's fit under DataParallel (automatic with WORLD_SIZE > 1); rank 0 prints JSON."""
    import dataclasses

    import tritonnn

    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = device()
    spec = spec_for(model_name, dev)
    x, y = data(model_name, spec, dev)
    times = run_tritonnn(dataclasses.replace(spec, batch=spec.batch * world), x, y, dtype, epochs, dev)
    if tritonnn.distribution.distribution() is None or tritonnn.distribution.distribution().rank == 0:
        print(json.dumps({"times": times, "world_size": world}), flush=True)
    return 0


def keras_worker(model_name: str, dtype: str, epochs: int) -> int:
    """Inside the subprocess: Keras 3 on its KERAS_BACKEND; prints one JSON line."""
    try:
        import keras
    except ImportError as exc:
        print(json.dumps({"skip": f"keras cannot be imported: {exc}"}))
        return 0
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    spec = spec_for(model_name, dev)
    x, y = data(model_name, spec, dev)
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if dtype == "bf16" else "float32")
    model = build_tritonnn(keras, spec)
    times: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # Keras reads the epoch's logs back: the device is done
            times.append(time.perf_counter() - self.start)

    model.fit(x, y, batch_size=spec.batch, epochs=1, verbose=0)  # warm-up (tracing / XLA compile)
    model.fit(x, y, batch_size=spec.batch, epochs=epochs, verbose=0, callbacks=[EpochTimer()])
    print(json.dumps({"times": times, "backend": keras.backend.backend(), "version": keras.__version__}))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------------


def header(dev: str) -> str:
    import triton

    name = torch.cuda.get_device_name() if dev == "cuda" else f"CPU ({os.cpu_count()} cores)"
    load = f"  load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}" if dev == "cpu" else ""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    adam = "fused" if dev == "cuda" else f"foreach, {torch.get_num_threads()} threads"
    return f"train fit() samples/s  {name}  torch {torch.__version__} triton {triton.__version__}  {when}{load}  " \
        f"torch Adam {adam}"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="seed,classic,wide", help=f"comma-separated, from {sorted(MODELS)}")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated, from fp32,bf16")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, from {','.join(PEERS)}")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs after the warm-up (GPU 5, CPU 3)")
    parser.add_argument(
        "--cases", default=None, help="comma-separated model:dtype pairs (e.g. seed:fp32,wide:bf16), not the product"
    )
    parser.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--results", default=RESULTS, metavar="PATH", help="append the rows here, not bench/RESULTS.md")
    parser.add_argument("--json", default=None, metavar="PATH", help="append one JSON object per result row to PATH")
    parser.add_argument("--no-plot", action="store_true", help="do not write the bar chart")
    parser.add_argument("--plot", default=os.path.join(BENCH, "train.png"), help="bar chart path (PNG)")
    parser.add_argument("--threads", type=int, default=None, help="CPU: torch.set_num_threads (default: torch's)")
    parser.add_argument("--keras-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--distributed",
        type=int,
        default=0,
        metavar="N",
        help="also time tritonnn's fit data-parallel over N processes (torchrun), global batch N x the model's",
    )
    parser.add_argument("--dp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models, dtypes, peers = (s.split(",") for s in (args.models, args.dtypes, args.peers))
    if args.cases:
        pairs = [tuple(c.split(":", 1)) if ":" in c else (c, "") for c in args.cases.split(",")]
        models, dtypes = [m for m, _ in pairs], [d for _, d in pairs]
        cases = pairs
    else:
        cases = [(m, d) for m in models for d in dtypes]
    for kind, chosen, allowed in (("model", models, MODELS), ("dtype", dtypes, DTYPES), ("peer", peers, PEERS)):
        bad = [c for c in chosen if c not in allowed]
        if bad:
            parser.error(f"unknown {kind} {bad}; choose from {sorted(allowed)}")
    dev = device()
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs = args.epochs or (5 if dev == "cuda" else 3)
    if args.keras_worker:
        return keras_worker(models[0], dtypes[0], epochs)
    if args.dp_worker:
        return dp_worker(models[0], dtypes[0], epochs)
    if args.distributed < 0 or args.distributed == 1:
        parser.error(f"--distributed takes a number of processes >= 2. Received: {args.distributed}")
    if args.distributed:
        peers = [*peers, f"tritonnn-dp{args.distributed}"]

    head = header(dev)
    print(head)
    cmd = "python bench/train.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    cmd = cmd.strip()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    rows = []  # (label, {peer: samples/s, or why there is no number})
    ours_failed = False
    data_of: dict[str, tuple] = {}
    for name, dtype in cases:
        if name not in data_of:
            spec = spec_for(name, dev)
            data_of[name] = (spec, *data(name, spec, dev))
        spec, x, y = data_of[name]
        label = f"{name} {'-'.join(map(str, spec.layers))} b{spec.batch} n{len(x)} {dtype}"
        case = {
            "script": "train", "device": device_name(dev), "date": stamp, "command": cmd, "case": label,
            "model": name, "dtype": dtype, "layers": list(spec.layers), "batch": spec.batch, "samples": len(x),
        }  # fmt: skip
        results: dict[str, float | str] = {}
        for peer in peers:
            try:
                if peer == "tritonnn":
                    times = run_tritonnn(spec, x, y, dtype, epochs, dev)
                elif peer.startswith("tritonnn-dp"):
                    times = run_distributed(name, dtype, epochs, args.distributed)
                elif peer in ("torch", "compile", "compile-ro"):
                    mode = {"torch": None, "compile": "default", "compile-ro": "reduce-overhead"}[peer]
                    times = run_torch(spec, x, y, dtype, epochs, dev, mode)
                else:
                    times = run_keras(peer.split("-")[1], name, dtype, epochs)
            except Exception as exc:  # a peer that fails is reported in its row, not fatal
                ours_failed |= peer == "tritonnn"
                first = str(exc).strip().splitlines()[:1]
                error = f"{type(exc).__name__}: {first[0][:200] if first else ''}"
                results[peer] = f"failed: {error}"
                print(f"  {label}  {peer}: failed ({error})", flush=True)
                write_json(args.json, {**case, "provider": peer, "error": error})
                continue
            if isinstance(times, str):
                results[peer] = times
                print(f"  {label}  {peer}: skipped ({times})")
                write_json(args.json, {**case, "provider": peer, "skipped": times})
                continue
            results[peer] = len(x) / statistics.median(times)
            spread = f"[{len(x) / max(times):,.0f}, {len(x) / min(times):,.0f}]"
            print(f"  {label}  {peer:<11} {results[peer]:>12,.0f} samples/s {spread}", flush=True)
            write_json(args.json, {**case, "provider": peer, "samples_per_s": results[peer], "epoch_s": times})
        rows.append((label, results))
    table = render(rows, peers)
    print()
    print(table)
    if not args.no_results:
        end = f"  \nload average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}" if dev == "cpu" else ""
        with open(args.results, "a") as f:
            f.write(f"\n### train: fit() epochs (bench/train.py)\n\n`{cmd}`  \n{head}{end}\n\n{table}\n")
    if not args.no_plot:
        plot(rows, peers, args.plot, head)
    return 1 if ours_failed else 0


def render(rows, peers) -> str:
    """A Markdown table: samples/s per peer (median epoch) and tritonnn / peer."""
    cols = ["model / dtype", *peers, *[f"tritonnn/{p}" for p in peers if p != "tritonnn"]]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for label, res in rows:
        cells = [label]
        for p in peers:
            v = res.get(p)
            failed = str(v).startswith("failed")
            cells.append(f"{v:,.0f}" if isinstance(v, float) else "failed" if failed else "skipped")
        ours = res.get("tritonnn")
        for p in peers:
            if p == "tritonnn":
                continue
            v = res.get(p)
            ok = isinstance(ours, float) and isinstance(v, float)
            cells.append(f"{ours / v:.2f}x" if ok else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, peers, path: str, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart")
        return
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows)), 4))
    width = 0.8 / len(peers)
    for j, peer in enumerate(peers):
        vals = [res.get(peer) if isinstance(res.get(peer), float) else 0.0 for _, res in rows]
        ax.bar([i + j * width for i in range(len(rows))], vals, width, label=peer)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    ax.set_xticklabels([label.split(" n")[0].replace(" ", "\n", 1) for label, _ in rows], fontsize=7)
    values = [v for _, res in rows for v in res.values() if isinstance(v, float) and v > 0]
    if values and max(values) > 20 * min(values):  # models far apart in speed: log axis, bars from a visible floor
        ax.set_yscale("log")
        ax.set_ylim(bottom=min(values) / 2)
    ax.set_ylabel("samples/s (median epoch)")
    ax.set_title(title.replace("  torch Adam", "\ntorch Adam"), fontsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"chart: {path}")


if __name__ == "__main__":
    sys.exit(main())
