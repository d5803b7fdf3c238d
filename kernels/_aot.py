"""Ahead-of-time compilation of every Triton kernel for GPUs that are not here.

``triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))`` runs the whole NVIDIA pipeline (TTIR, TTGIR,
LLVM, PTX, ptxas) on a CPU-only machine. That proves what the interpreter cannot: the kernel compiles for real
hardware (``tl.dot`` dims of at least 16, no dtype mixes, shared memory within the target), the GEMMs use tensor
cores (``wgmma`` on sm_90, ``mma.sync`` on sm_80), and ptxas's register and spill counts.

Each kernel module registers the launch configurations it uses with :func:`register_aot`. The test suite compiles
every registered case for sm_90 and sm_80, and checks that every ``@triton.jit`` kernel in the package has at least
one case. Run ``python -m tritonnn.kernels`` for the table of registers and spills.

The compile needs real ``JITFunction`` objects, so it must run in a process started without ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

from ._triton import HAS_TRITON, triton

ARCHS = (90, 80)


@dataclasses.dataclass(frozen=True)
class AotCase:
    """One launch configuration of one kernel, as the launcher would use it."""

    name: str  # unique, e.g. "dense_fwd[bf16,relu,128x128x64]"
    kernel: Any  # the @triton.jit function (or the Autotuner wrapping it)
    signature: dict[str, str]  # every parameter -> "*fp32", "i32", ..., or "constexpr"
    constexprs: dict[str, Any]
    num_warps: int = 4
    num_stages: int = 3
    tensor_cores: bool = False  # the PTX must hold wgmma (sm_90) and mma.sync (sm_80)
    hot_loop: bool = True  # a spill in this kernel is a performance bug
    # Parameters compiled as multiples of 16 (pointers: 16-byte aligned), as Triton specialises a launch on aligned
    # tensors and sizes at run time; empty: the pessimistic compile without those hints.
    divisible: tuple[str, ...] = ()


@dataclasses.dataclass
class AotResult:
    name: str
    arch: int
    registers: int
    spill_stores: int
    spill_loads: int
    shared: int
    wgmma: bool
    mma_sync: bool


AOT_CASES: list[AotCase] = []


def register_aot(*cases: AotCase) -> None:
    """Add launch configurations to the ahead-of-time compile list."""
    names = {c.name for c in AOT_CASES}
    for case in cases:
        if case.name in names:
            raise ValueError(f"duplicate AOT case name {case.name!r}")
        AOT_CASES.append(case)
        names.add(case.name)


def jit_function(kernel: Any) -> Any:
    """The JITFunction under an Autotuner/Heuristics wrapper."""
    while not isinstance(kernel, triton.runtime.JITFunction) and hasattr(kernel, "fn"):
        kernel = kernel.fn
    return kernel


def kernel_modules() -> list[str]:
    """Every module of tritonnn.kernels, imported, so that their register_aot calls have run."""
    pkg = importlib.import_module(__package__)
    names = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("__"):  # __main__ is the command line, not a kernel module
            continue
        name = f"{__package__}.{info.name}"
        importlib.import_module(name)
        names.append(name)
    return names


def is_device_function(fn: Any) -> bool:
    """Whether a @triton.jit function returns a value: a device function (an activation epilogue, say), compiled
    into the kernels that call it and never launched, so it needs no compile case of its own."""
    tree = ast.parse(textwrap.dedent(fn.src))
    return any(isinstance(node, ast.Return) and node.value is not None for node in ast.walk(tree))


def all_kernels() -> dict[str, Any]:
    """Every @triton.jit kernel (not device function) defined in tritonnn.kernels, by qualified name."""
    found = {}
    for mod_name in kernel_modules():
        mod = sys.modules[mod_name]
        for attr, value in vars(mod).items():
            fn = jit_function(value) if HAS_TRITON else None
            if fn is not None and isinstance(fn, triton.runtime.JITFunction) and fn.fn.__module__ == mod_name:
                if not is_device_function(fn):
                    found[f"{mod_name}.{attr}"] = fn
    return found


def _ptxas_stats(ptx: str, arch: int) -> tuple[int, int, int]:
    """Registers, spill-store bytes and spill-load bytes that ptxas reports for the PTX."""
    from triton.backends.nvidia.compiler import get_ptxas

    target = re.search(r"^\.target\s+(\S+)", ptx, re.M)
    gpu_name = target.group(1).rstrip(",") if target else f"sm_{arch}"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        proc = subprocess.run(
            [get_ptxas(arch).path, "-v", f"--gpu-name={gpu_name}", path, "-o", os.path.join(tmp, "k.cubin")],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed for {gpu_name}:\n{proc.stderr}")
    regs = max(int(m) for m in re.findall(r"Used (\d+) registers", proc.stderr))
    stores = sum(int(m) for m in re.findall(r"(\d+) bytes spill stores", proc.stderr))
    loads = sum(int(m) for m in re.findall(r"(\d+) bytes spill loads", proc.stderr))
    return regs, stores, loads


def compile_case(case: AotCase, arch: int) -> AotResult:
    """Compile one case for ``sm_<arch>`` and read what ptxas made of it."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = jit_function(case.kernel)
    attrs = {(fn.arg_names.index(name),): [["tt.divisibility", 16]] for name in case.divisible}
    src = ASTSource(fn, dict(case.signature), constexprs=dict(case.constexprs), attrs=attrs)
    compiled = triton.compile(
        src,
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": case.num_warps, "num_stages": case.num_stages},
    )
    ptx = compiled.asm["ptx"]
    regs, stores, loads = _ptxas_stats(ptx, arch)
    return AotResult(
        name=case.name,
        arch=arch,
        registers=regs,
        spill_stores=stores,
        spill_loads=loads,
        shared=int(compiled.metadata.shared),
        wgmma="wgmma.mma_async" in ptx,
        mma_sync="mma.sync" in ptx,
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Compile every tritonnn Triton kernel for sm_90 and sm_80.")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument("--filter", default="", help="only cases whose name contains this")
    parser.add_argument("--jobs", type=int, default=0, help="compile processes (default: one per CPU)")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 on a compile error, a spill, or a GEMM without tensor cores"
    )
    args = parser.parse_args(argv)
    if not HAS_TRITON:
        print("Triton is not installed: nothing to compile")
        return 1
    kernels = all_kernels()
    covered = {jit_function(c.kernel) for c in AOT_CASES}
    missing = sorted(name for name, fn in kernels.items() if fn not in covered)
    if args.json:
        print(json.dumps({"kernels": sorted(kernels), "missing": missing}))
    elif missing:
        print("kernels without an AOT case:", ", ".join(missing))
    jobs = [(i, arch) for i, case in enumerate(AOT_CASES) if args.filter in case.name for arch in ARCHS]
    workers = max(1, min(args.jobs or os.cpu_count() or 1, len(jobs)))
    results = []
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork: the workers inherit the imported kernel modules and their AOT_CASES.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for res in pool.map(_compile_job, jobs):
                _report(res, args.json)
                results.append(res)
    else:
        for job in jobs:
            results.append(_compile_job(job))
            _report(results[-1], args.json)
    if args.check:
        found = [msg for msgs in problems(missing, results).values() for msg in msgs]
        print(f"triton {triton.__version__}: {len(results)} compiles, {len(found)} problems", file=sys.stderr)
        for msg in found:
            print("  " + msg, file=sys.stderr)
        return 1 if found else 0
    return 0


def problems(missing: list[str], results: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What fails the gate, by kind: kernels without a case, compile errors, GEMMs without tensor-core
    instructions (wgmma on sm_90, mma.sync on sm_80), and spills in hot kernels."""
    ok = [r for r in results if "error" not in r]
    return {
        "missing": [f"{name}: no ahead-of-time compile case" for name in missing],
        "errors": [f"{r['name']} sm_{r['arch']}: {r['error']}" for r in results if "error" in r],
        "tensor_cores": [
            f"{r['name']} sm_{r['arch']}: no {'wgmma.mma_async' if r['arch'] == 90 else 'mma.sync'} in the PTX"
            for r in ok
            if r.get("tensor_cores") and not (r["wgmma"] if r["arch"] == 90 else r["mma_sync"])
        ],
        "spills": [
            f"{r['name']} sm_{r['arch']}: {r['spill_stores']} B stored, {r['spill_loads']} B loaded, "
            f"{r['registers']} regs"
            for r in ok
            if r.get("hot_loop") and (r["spill_stores"] or r["spill_loads"])
        ],
    }


def _compile_job(job: tuple[int, int]) -> dict[str, Any]:
    index, arch = job
    case = AOT_CASES[index]
    try:
        res = dataclasses.asdict(compile_case(case, arch))
        res["tensor_cores"] = case.tensor_cores
        res["hot_loop"] = case.hot_loop
    except Exception as exc:  # reported, and the test fails on it
        res = {"name": case.name, "arch": arch, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    return res


def _report(res: dict[str, Any], as_json: bool) -> None:
    arch = res["arch"]
    if as_json:
        print(json.dumps(res), flush=True)
    elif "error" in res:
        print(f"{res['name']:<48} sm_{arch}  ERROR {res['error']}")
    else:
        tc = "wgmma" if res["wgmma"] else "mma.sync" if res["mma_sync"] else "-"
        print(
            f"{res['name']:<48} sm_{arch}  regs {res['registers']:>3}  spill st/ld "
            f"{res['spill_stores']}/{res['spill_loads']}  smem {res['shared']:>6}  tc {tc}",
            flush=True,
        )
