"""Shared test helpers: comparison against float64 references with dtype-derived tolerances."""

from __future__ import annotations

import math

import torch

# (atol, rtol) by dtype, from the brief: fp32 IEEE well under 1e-5, tf32 about 1e-3, bf16/fp16 about 1e-2.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-9),
    torch.float32: (1e-5, 2e-6),
    torch.float16: (2e-3, 1e-2),
    torch.bfloat16: (1e-2, 2e-2),
}


def sum_error_bound(n: int, dtype: torch.dtype, abs_sum: torch.Tensor | float) -> torch.Tensor | float:
    """How far a float sum of ``n`` terms may lie from the exact sum: ``(ceil(log2 n) + 1) * u * sum|terms|``.

    ``u`` is the dtype's unit roundoff (half its machine epsilon). A blocked or pairwise sum, as every CPU and GPU
    reduction here is (SIMD lanes, then a tree), rounds each term through about ``log2 n`` partial sums, and the
    order, which differs between CPUs (AVX2 vs AVX-512 lanes), only moves the error within this bound. So a
    tolerance built from it holds on any machine, and stays orders of magnitude below a real bug's error.
    """
    u = torch.finfo(dtype).eps / 2
    return (math.ceil(math.log2(max(n, 2))) + 1) * u * abs_sum


def assert_close_verbose(
    actual: torch.Tensor,
    expected: torch.Tensor,
    *,
    atol: float | torch.Tensor,
    rtol: float,
    name: str = "tensor",
) -> None:
    """``|actual - expected| <= atol + rtol * |expected|`` everywhere, NaN/Inf never passing.

    On failure, names the first five offending indices with both values.
    """
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    a = actual.detach().to(torch.float64).cpu()
    e = expected.detach().to(torch.float64).cpu()
    if not torch.isfinite(e).all():
        raise AssertionError(f"{name}: the reference itself is not finite")
    if isinstance(atol, torch.Tensor):  # a bound per element (e.g. from sum_error_bound)
        atol = atol.detach().to(torch.float64).cpu()
    bad = ~(torch.isfinite(a) & ((a - e).abs() <= atol + rtol * e.abs()))
    if bad.any():
        idx = bad.nonzero()[:5].tolist()
        rows = [f"  at {tuple(i)}: got {a[tuple(i)].item()!r}, expected {e[tuple(i)].item()!r}" for i in idx]
        err = (a - e).abs()[torch.isfinite(a)]
        worst = err.max().item() if err.numel() else float("nan")
        shown = atol if isinstance(atol, float) else "per element"
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {a.numel()} elements out of tolerance (atol={shown}, rtol={rtol}), "
            f"max finite abs error {worst:.3g}\n" + "\n".join(rows)
        )
