"""Every launch configuration of a tritonnn kernel, timed and ranked for one shape, with the one tritonnn picks.

    python bench/autotune.py dense-fwd --shape 4096x4096x4096 --dtype bf16        # M x K x N
    python bench/autotune.py dense-bwd --shape 128x784x512 --dtype fp32 --tf32
    python bench/autotune.py xent --shape 8192x131072 --dtype bf16                # N x C
    python bench/autotune.py adam --shape 1e8                                     # parameters
    python bench/autotune.py dense-fwd --shape 128x784x512 --aot                  # no GPU: registers / spills

Configurations per kernel:
- ``dense-fwd`` / ``dense-bwd``: the autotune lists of kernels/dense.py (``CONFIGS``: BLOCK_M x BLOCK_N x BLOCK_K,
  warps, stages) for the dtype kind (bf16/fp16, tf32, ieee fp32) and path (hopper on sm_90+, fallback, ragged when K
  or N is not a multiple of 16). tritonnn's choice is ``triton.autotune``'s (keyed on M, N, K), read back from the
  autotuner after one launch. dense-bwd times both backward GEMMs (dx and dkernel + dbias) with the same config.
- ``xent``: the chunk size BLOCK_C of the fused cross-entropy (every power of two from 1024 up to the one-chunk row
  where that fits); tritonnn's choice is the launcher's heuristic (``_pick_block``), not autotuned.
- ``adam``: the element block of the fused optimizer (512 .. 4096); tritonnn's choice is the module's ``_BLOCK``.
Each config is timed with ``triton.testing.do_bench`` (median, 20/80 percentiles, ms), ranked fastest first, and the
fastest is cached on disk in ``~/.cache/tritonnn/autotune.json`` (``$TRITONNN_AUTOTUNE_CACHE`` overrides), keyed by
kernel, shape, dtype, device name and triton version: a second run prints the cached ranking without timing
(``--force`` re-times). Triton's own disk cache of autotune results (``cache_results=True``, or
``TRITON_CACHE_AUTOTUNING=1``, under ``TRITON_CACHE_DIR``, in triton 3.6 and 3.9 alike) is switched on here for the
dense autotuner, so that its choice, too, persists between runs.

Without a CUDA GPU nothing can be timed: the script lists the configs it would try (and with ``--aot`` the ptxas
registers and spills of each, compiled for sm_90 / sm_80 by ``tritonnn.kernels._aot.compile_case``) and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys

os.environ.setdefault("TRITON_CACHE_AUTOTUNING", "1")  # before triton reads its knobs: persist dense's choice

import torch  # noqa: E402

KERNELS = ("dense-fwd", "dense-bwd", "xent", "adam")
CACHE = os.environ.get("TRITONNN_AUTOTUNE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "tritonnn",
                                                                "autotune.json"))  # fmt: skip
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_shape(kernel: str, text: str) -> tuple[int, ...]:
    dims = tuple(int(float(d)) for d in text.lower().split("x"))
    want = {"dense-fwd": 3, "dense-bwd": 3, "xent": 2, "adam": 1}[kernel]
    if len(dims) != want or min(dims) < 1:
        raise ValueError(f"{kernel} expects a shape of {want} positive sizes (see --help). Received: {text!r}")
    return dims


def _mod(name: str):
    """A kernel module (``tritonnn.kernels.dense`` is shadowed by the ``dense`` op in the package namespace)."""
    return importlib.import_module(f"tritonnn.kernels.{name}")


def dense_path_kind(dtype: str, tf32: bool, hopper: bool, shape) -> tuple[str, str]:
    kind = "16" if dtype != "fp32" else "tf32" if tf32 else "ieee"
    _, k, n = shape
    return _mod("dense")._path(hopper, k % 16 == 0 and n % 16 == 0), kind


def configs_for(kernel: str, dtype: str, tf32: bool, hopper: bool, shape) -> tuple[list[dict], str]:
    """The candidate configs (dicts of meta-parameters) and a note on how tritonnn chooses among them."""
    if kernel.startswith("dense"):
        dense = _mod("dense")
        path, kind = dense_path_kind(dtype, tf32, hopper, shape)
        part = "fwd" if kernel == "dense-fwd" else "bwd"
        cfgs = [
            {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": dense.GROUP_M, "num_warps": w, "num_stages": s}
            for bm, bn, bk, w, s in dense.CONFIGS[(part, kind, path)]
        ]
        return cfgs, f"triton.autotune over CONFIGS[({part!r}, {kind!r}, {path!r})], keyed on M, N, K"
    if kernel == "xent":
        xent = _mod("xent")
        c = shape[1]
        whole = 1 << max(4, (c - 1).bit_length())
        blocks = [b for b in (1024, 2048, 4096, 8192) if b < whole] + ([whole] if whole <= xent._ONE_CHUNK_MAX else [])
        chosen, _ = xent._pick_block(c, None)
        return [{"BLOCK_C": b, "num_warps": xent._num_warps(b)} for b in blocks], f"heuristic: BLOCK_C={chosen}"
    optim = _mod("optim")
    return [{"BLOCK": b} for b in (512, 1024, 2048, 4096)], f"fixed: _BLOCK={optim._BLOCK}"


def label(cfg: dict) -> str:
    if "BLOCK_M" in cfg:
        return f"{cfg['BLOCK_M']}x{cfg['BLOCK_N']}x{cfg['BLOCK_K']}w{cfg['num_warps']}s{cfg['num_stages']}"
    return ",".join(f"{k}={v}" for k, v in cfg.items())


def aot_report(kernel: str, dtype: str, tf32: bool, shape, cfgs_by_arch) -> None:
    """ptxas registers / spills of the registered AOT case matching each config (sm_90 hopper list, sm_80 fallback)."""
    from tritonnn.kernels import _aot

    _aot.kernel_modules()
    dt = {"fp32": "fp32-tf32" if tf32 else "fp32-ieee", "bf16": "bf16", "fp16": "fp16"}[dtype]
    for arch, cfgs in cfgs_by_arch:
        for cfg in cfgs:
            if kernel.startswith("dense"):
                parts = ["dense_fwd"] if kernel == "dense-fwd" else ["dense_bwd_dx", "dense_bwd_dw"]
                ragged = ",ragged" if shape[1] % 16 or shape[2] % 16 else ""
                names = [f"{p}[{dt}," for p in parts]
                tail = f",{label(cfg)}{ragged}]"
                cases = [
                    c for c in _aot.AOT_CASES if any(c.name.startswith(n) for n in names) and c.name.endswith(tail)
                ]
            elif kernel == "xent":
                tag = f"xent_fwd[{dtype},labels,grad,C{cfg['BLOCK_C']},"
                cases = [c for c in _aot.AOT_CASES if c.name.startswith(tag)]
            else:
                cases = [c for c in _aot.AOT_CASES if c.name == "optim_fwd[adam]" and cfg["BLOCK"] == 1024]
            if not cases:
                print(f"  sm_{arch} {label(cfg):<24} no registered AOT case with these meta-parameters")
            for case in cases:
                try:
                    r = _aot.compile_case(case, arch)
                    print(f"  sm_{arch} {label(cfg):<24} {case.name:<46} regs {r.registers:>3}  spill st/ld "
                          f"{r.spill_stores}/{r.spill_loads}  smem {r.shared}")  # fmt: skip
                except Exception as exc:  # a compile error is a finding, not a crash
                    print(f"  sm_{arch} {label(cfg):<24} {case.name}: {type(exc).__name__}: {str(exc)[:200]}")


def setup(kernel: str, shape, dtype: str, cfg: dict | None):
    """A zero-argument callable launching the kernel once with ``cfg`` (None: tritonnn's own choice)."""
    from tritonnn.kernels import ACTIVATIONS

    dense, optim, xent = _mod("dense"), _mod("optim"), _mod("xent")
    dt = DTYPES[dtype]
    if kernel.startswith("dense"):
        m, k, n = shape
        x = torch.randn(m, k, device="cuda", dtype=dt)
        w = torch.randn(k, n, device="cuda", dtype=dt) / k**0.5
        b = torch.randn(n, device="cuda", dtype=dt)
        act = ACTIVATIONS["relu"]
        if kernel == "dense-fwd":
            return lambda: dense.dense_fwd(x, w, b, act, 0.0, 0, config=cfg)
        y, _ = dense.dense_fwd(x, w, b, act, 0.0, 0)
        dy = torch.randn_like(y)
        return lambda: dense.dense_bwd(dy, y, x, w, act, 0.0, 0, has_bias=True, config=cfg)
    if kernel == "xent":
        rows, c = shape
        logits = torch.randn(rows, c, device="cuda", dtype=dt)
        target = torch.randint(0, c, (rows,), device="cuda")
        scale = torch.ones(1, device="cuda")
        block = cfg["BLOCK_C"] if cfg else None
        return lambda: xent.xent_fwd(logits, target, scale, label_smoothing=0.0, ignore_index=None, need_grad=True,
                                     block_c=block)  # fmt: skip
    (n,) = shape
    n = -(-n // 64) * 64  # the optimizer pads its flat buffers to 64 elements
    p, g, m1, v = (torch.randn(n, device="cuda") for _ in range(4))
    v.abs_()
    block = cfg["BLOCK"] if cfg else optim._BLOCK

    def run():
        saved, optim._BLOCK = optim._BLOCK, block  # the launcher reads the module constant at each call
        try:
            optim.optimizer_update_("adam", p, g, m1, v, lr=1e-3, step=1, h1=0.9, h2=0.999)
        finally:
            optim._BLOCK = saved

    return run


def chosen_dense(kernel: str, shape, dtype: str, tf32: bool) -> str:
    """The config triton.autotune picked for this shape, after one launch through the autotuned path."""
    dense = _mod("dense")
    setup(kernel, shape, dtype, None)()
    torch.cuda.synchronize()
    kind = "16" if dtype != "fp32" else "tf32" if tf32 else "ieee"
    hopper = torch.cuda.get_device_capability()[0] >= 9
    aligned = shape[1] % 16 == 0 and shape[2] % 16 == 0
    names = ["fwd"] if kernel == "dense-fwd" else ["bwd_dx", "bwd_dw"]
    picks = []
    for name in names:
        tuner = dense._TUNED.get((name, kind, hopper, aligned))
        best = getattr(tuner, "best_config", None)
        if best is not None:
            kw = best.kwargs
            picks.append(f"{name}: {kw['BLOCK_M']}x{kw['BLOCK_N']}x{kw['BLOCK_K']}w{best.num_warps}s{best.num_stages}")
    return "; ".join(picks) or "not found in the autotuner"


def load_cache() -> dict:
    try:
        with open(CACHE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kernel", choices=KERNELS)
    parser.add_argument("--shape", default=None, help="dense: MxKxN; xent: NxC; adam: parameter count")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--tf32", action="store_true", help="fp32 dense GEMMs in tf32 (set_float32_matmul_precision)")
    parser.add_argument("--force", action="store_true", help="time again even when the shape is cached")
    parser.add_argument("--aot", action="store_true", help="without a GPU: ptxas registers/spills of each config")
    args = parser.parse_args(argv)
    default_shape = {"dense-fwd": "4096x4096x4096", "dense-bwd": "4096x4096x4096", "xent": "8192x32768", "adam": "1e8"}
    shape = parse_shape(args.kernel, args.shape or default_shape[args.kernel])
    dtype = "fp32" if args.kernel == "adam" else args.dtype
    import triton

    from tritonnn import kernels

    if args.tf32:
        kernels.set_float32_matmul_precision("high")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    shape_s = "x".join(map(str, shape))
    if not torch.cuda.is_available():
        print(f"autotune {args.kernel} {shape_s} {dtype}  no CUDA GPU  torch {torch.__version__} "
              f"triton {triton.__version__}  {when}")  # fmt: skip
        print("nothing can be timed without a GPU; the configs a GPU run would time:")
        by_arch = []
        for arch, hopper in ((90, True), (80, False)):
            cfgs, how = configs_for(args.kernel, dtype, args.tf32, hopper, shape)
            where = f"sm_{arch}" if args.kernel.startswith("dense") else "every GPU"
            print(f"{where}: {len(cfgs)} configs ({how})")
            for i, cfg in enumerate(cfgs):
                print(f"  {i:>2}  {label(cfg)}")
            by_arch.append((arch, cfgs))
            if not args.kernel.startswith("dense"):
                break  # the same list on every GPU
        if args.aot:
            print("ptxas (ahead-of-time compile, the registered cases with these meta-parameters):")
            aot_report(args.kernel, dtype, args.tf32, shape, by_arch)
        return 0

    name = torch.cuda.get_device_name()
    key = f"{args.kernel}|{shape_s}|{dtype}{'-tf32' if args.tf32 and dtype == 'fp32' else ''}|{name}|" \
        f"triton {triton.__version__}"  # fmt: skip
    print(f"autotune {args.kernel} {shape_s} {dtype}  {name}  torch {torch.__version__} triton {triton.__version__}  "
          f"{when}")  # fmt: skip
    cache = load_cache()
    if key in cache and not args.force:
        entry = cache[key]
        print(f"cached ({CACHE}, measured {entry['when']}; --force to time again):")
    else:
        hopper = torch.cuda.get_device_capability()[0] >= 9
        cfgs, how = configs_for(args.kernel, dtype, args.tf32, hopper, shape)
        timed = []
        for cfg in cfgs:
            try:
                fn = setup(args.kernel, shape, dtype, cfg)
                ms = triton.testing.do_bench(fn, quantiles=[0.5, 0.2, 0.8])
                timed.append({"config": label(cfg), "ms": list(ms)})
            except Exception as exc:  # e.g. out of shared memory on this GPU: reported, ranked last
                timed.append({"config": label(cfg), "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
        timed.sort(key=lambda t: t["ms"][0] if "ms" in t else float("inf"))
        if args.kernel.startswith("dense"):
            how += f"; picked: {chosen_dense(args.kernel, shape, dtype, args.tf32)}"
        entry = {"when": when, "ranked": timed, "tritonnn": how}
        cache[key] = entry
        os.makedirs(os.path.dirname(CACHE), exist_ok=True)
        with open(CACHE, "w") as f:
            json.dump(cache, f, indent=1)
    best = entry["ranked"][0]["ms"][0] if "ms" in entry["ranked"][0] else None
    for i, t in enumerate(entry["ranked"]):
        if "ms" in t:
            med, lo, hi = t["ms"]
            print(f"  {i + 1:>2}. {t['config']:<24} {med:.4f} ms [{lo:.4f}, {hi:.4f}]  {med / best:.2f}x the fastest")
        else:
            print(f"  {i + 1:>2}. {t['config']:<24} failed: {t['error']}")
    print(f"fastest: {entry['ranked'][0]['config']}   tritonnn's choice: {entry['tritonnn']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
