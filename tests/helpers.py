"""Shared test helpers: comparison against float64 references with dtype-derived tolerances."""

from __future__ import annotations

import torch

# (atol, rtol) by dtype, from the brief: fp32 IEEE well under 1e-5, tf32 about 1e-3, bf16/fp16 about 1e-2.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-9),
    torch.float32: (1e-5, 2e-6),
    torch.float16: (2e-3, 1e-2),
    torch.bfloat16: (1e-2, 2e-2),
}


def assert_close_verbose(
    actual: torch.Tensor,
    expected: torch.Tensor,
    *,
    atol: float,
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
    bad = ~(torch.isfinite(a) & ((a - e).abs() <= atol + rtol * e.abs()))
    if bad.any():
        idx = bad.nonzero()[:5].tolist()
        rows = [f"  at {tuple(i)}: got {a[tuple(i)].item()!r}, expected {e[tuple(i)].item()!r}" for i in idx]
        err = (a - e).abs()[torch.isfinite(a)]
        worst = err.max().item() if err.numel() else float("nan")
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {a.numel()} elements out of tolerance (atol={atol}, rtol={rtol}), "
            f"max finite abs error {worst:.3g}\n" + "\n".join(rows)
        )
