"""Layer normalization, RMS normalization and batch normalization.

Layer norm over the normalized axes (the last one, or several), with ``N`` elements per normalized group:

    mu = mean(x)      var = mean((x - mu)**2)      (biased, as Keras' ``ops.moments``)
    xhat = (x - mu) * rstd,   rstd = 1 / sqrt(var + epsilon)
    y = xhat * gamma + beta

Backward (per group, ``g = dy * gamma``):

    dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    dgamma = sum over groups of dy * xhat      dbeta = sum over groups of dy

RMS normalization (Zhang & Sennrich 2019; Keras' ``ops.rms_normalization``) is the same kernel pair with
``RMS=True``: no centring and no offset, ``rstd = 1 / sqrt(mean(x**2) + epsilon)``, ``xhat = x * rstd``,
``y = xhat * scale``, and in the backward ``dx = rstd * (g - xhat * mean(g * xhat))`` (no ``mean(g)`` term).

Batch norm is the same normalization over every axis but the channel one, with the statistics of the batch in
training (and the moving statistics ``moving = moving * momentum + batch_stat * (1 - momentum)`` updated in place,
on the device, without a host sync) and the moving statistics in inference.

16-bit inputs are normalized in fp32 and the result cast back, as Keras does.

Traffic of the Triton layer-norm (rows of N elements of ``b`` bytes, M rows):
    forward:  read M*N*b, write M*N*b (+ 8M bytes of mean and rstd saved for the backward)
    backward: read 2*M*N*b (x, dy), write M*N*b (dx), plus a (programs, N) fp32 partial of dgamma / dbeta
              summed by a second small kernel.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from . import _backend
from ._aot import AotCase, register_aot
from ._triton import INTERPRETING, tl, triton

_FLOAT_16 = (torch.float16, torch.bfloat16)


def _axes(axis: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """Normalized, sorted, non-negative axes; a ValueError for an axis out of range."""
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, numbers.Integral) or not -ndim <= int(a) < ndim:
            raise ValueError(f"Invalid axis for an input of rank {ndim}. Received: axis={axis}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"Duplicate axis. Received: axis={axis}")
    return tuple(sorted(out))


def _param_view(p: torch.Tensor | None, axes: tuple[int, ...], x: torch.Tensor) -> torch.Tensor | None:
    """``p`` (shaped like the listed axes of x) reshaped to broadcast against x."""
    if p is None:
        return None
    shape = [1] * x.dim()
    for a in axes:
        shape[a] = x.shape[a]
    return p.to(torch.float32).reshape(shape)


# ----------------------------------------------------------------------------------------------------------------
# References: plain torch, the CPU path and the written-down spec (differentiated by autograd).
# ----------------------------------------------------------------------------------------------------------------
def layer_norm_reference(
    x: torch.Tensor,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    axis: int | Sequence[int] = -1,
    epsilon: float = 1e-3,
) -> torch.Tensor:
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` over ``axis``, computed in fp32 for 16-bit inputs."""
    axes = _axes(axis, x.dim())
    xf = x.to(torch.float32) if x.dtype in _FLOAT_16 else x
    mean = xf.mean(dim=axes, keepdim=True)
    var = (xf - mean).square().mean(dim=axes, keepdim=True)
    y = (xf - mean) * torch.rsqrt(var + epsilon)
    g, b = _param_view(gamma, axes, x), _param_view(beta, axes, x)
    if g is not None:
        y = y * g.to(y.dtype)
    if b is not None:
        y = y + b.to(y.dtype)
    return y.to(x.dtype)


def rms_norm_reference(
    x: torch.Tensor, scale: torch.Tensor | None, axis: int | Sequence[int] = -1, epsilon: float = 1e-6
) -> torch.Tensor:
    """``x * rsqrt(mean(x**2) + epsilon) * scale`` over ``axis``, computed in fp32 for 16-bit inputs."""
    axes = _axes(axis, x.dim())
    xf = x.to(torch.float32) if x.dtype in _FLOAT_16 else x
    y = xf * torch.rsqrt(xf.square().mean(dim=axes, keepdim=True) + epsilon)
    g = _param_view(scale, axes, x)
    if g is not None:
        y = y * g.to(y.dtype)
    return y.to(x.dtype)


def moments(x: torch.Tensor, axes: Sequence[int], keepdims: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance over ``axes`` (Keras' ``ops.moments``), in fp32 for 16-bit inputs."""
    xf = x.to(torch.float32) if x.dtype in _FLOAT_16 else x
    axes = tuple(axes)
    mean = xf.mean(dim=axes, keepdim=True)
    var = (xf - mean).square().mean(dim=axes, keepdim=True)
    if not keepdims:
        mean, var = mean.squeeze(axes), var.squeeze(axes)
    return mean, var


def batch_norm(
    x: torch.Tensor,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    moving_mean: torch.Tensor,
    moving_variance: torch.Tensor,
    *,
    axis: int = -1,
    momentum: float = 0.99,
    epsilon: float = 1e-3,
    training: bool = False,
) -> torch.Tensor:
    """Keras' batch normalization over every axis of ``x`` but ``axis`` (the channels).

    In training the batch mean and biased variance normalize ``x`` (gradients flow through them) and the moving
    statistics are updated in place, on the device: ``moving = moving * momentum + batch_stat * (1 - momentum)``.
    In inference the moving statistics normalize ``x``. 16-bit inputs are computed in fp32, the result cast back.
    """
    (ch,) = _axes(axis, x.dim())
    reduce_axes = tuple(a for a in range(x.dim()) if a != ch)
    xf = x.to(torch.float32) if x.dtype in _FLOAT_16 else x
    if training:
        mean, var = moments(xf, reduce_axes)
        with torch.no_grad():
            moving_mean.mul_(momentum).add_(mean.detach().to(moving_mean.dtype), alpha=1.0 - momentum)
            moving_variance.mul_(momentum).add_(var.detach().to(moving_variance.dtype), alpha=1.0 - momentum)
    else:
        mean, var = moving_mean, moving_variance
    shape = [1] * x.dim()
    shape[ch] = x.shape[ch]
    mean = mean.to(xf.dtype).reshape(shape)
    var = var.to(xf.dtype).reshape(shape)
    y = (xf - mean) * torch.rsqrt(var + epsilon)
    if gamma is not None:
        y = y * gamma.to(xf.dtype).reshape(shape)
    if beta is not None:
        y = y + beta.to(xf.dtype).reshape(shape)
    return y.to(x.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Triton layer norm over the last (flattened trailing) axis: one program per row forward; in the backward each
# program walks a contiguous slab of rows and keeps its dgamma/dbeta partial sums in registers.
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _layer_norm_fwd_kernel(
    x_ptr,  # *[M, N] input, row stride stride_xm, unit column stride
    y_ptr,  # *[M, N] output, contiguous
    gamma_ptr,  # *[N] scale (unused without HAS_GAMMA)
    beta_ptr,  # *[N] offset (unused without HAS_BETA)
    mean_ptr,  # *fp32[M] row means, saved for the backward (not written with RMS)
    rstd_ptr,  # *fp32[M] row 1/sqrt(var + eps), saved for the backward
    stride_xm,  # row stride of x
    N,  # elements per row
    eps,  # fp32 epsilon
    HAS_GAMMA: tl.constexpr,
    HAS_BETA: tl.constexpr,
    BLOCK_N: tl.constexpr,  # power of two >= N: the whole row lives in registers
    RMS: tl.constexpr = False,  # RMS normalization: no centring (the saved mean is 0), no offset
):
    # The row, read once; the padding lanes load 0 and are masked out of the variance below.
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    valid = cols < N
    x = tl.load(x_ptr + row * stride_xm + cols, mask=valid, other=0.0).to(tl.float32)
    # Two-pass moments in fp32 (mean first, then the centred sum of squares: no E[x^2] - E[x]^2 cancellation).
    if RMS:
        xc = x  # the padding lanes loaded 0
    else:
        mean = tl.sum(x, axis=0) / N
        xc = tl.where(valid, x - mean, 0.0)
    var = tl.sum(xc * xc, axis=0) / N
    rstd = 1.0 / tl.sqrt(var + eps)
    y = xc * rstd
    # The affine part on the fp32 value, before the single down-cast.
    if HAS_GAMMA:
        y = y * tl.load(gamma_ptr + cols, mask=valid, other=0.0).to(tl.float32)
    if HAS_BETA:
        y = y + tl.load(beta_ptr + cols, mask=valid, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * N + cols, y.to(y_ptr.dtype.element_ty), mask=valid)
    if not RMS:  # RMS norm saves no mean (nothing to centre by)
        tl.store(mean_ptr + row, mean)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def _layer_norm_bwd_kernel(
    dy_ptr,  # *[M, N] incoming gradient, contiguous
    x_ptr,  # *[M, N] forward input, row stride stride_xm
    gamma_ptr,  # *[N] scale (unused without HAS_GAMMA)
    mean_ptr,  # *fp32[M] saved row means
    rstd_ptr,  # *fp32[M] saved row 1/sqrt(var + eps)
    dx_ptr,  # *[M, N] output gradient of x, contiguous
    dgamma_part_ptr,  # *fp32[programs, N] this program's sum of dy * xhat over its rows
    dbeta_part_ptr,  # *fp32[programs, N] this program's sum of dy over its rows
    stride_xm,  # row stride of x
    M,  # rows
    N,  # elements per row
    ROWS_PER_PROGRAM,  # rows handled by one program (the last one may get fewer)
    HAS_GAMMA: tl.constexpr,
    BLOCK_N: tl.constexpr,
    RMS: tl.constexpr = False,  # RMS normalization: no mean(g) term, no dbeta
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    valid = cols < N
    if HAS_GAMMA:
        gamma = tl.load(gamma_ptr + cols, mask=valid, other=0.0).to(tl.float32)
    else:
        gamma = tl.where(valid, 1.0, 0.0)
    dgamma = tl.zeros((BLOCK_N,), dtype=tl.float32)
    dbeta = tl.zeros((BLOCK_N,), dtype=tl.float32)
    # This program's slab of rows; the last slab may run past M, and those rows are masked out (dy reads 0).
    row_start = pid.to(tl.int64) * ROWS_PER_PROGRAM
    for i in range(0, ROWS_PER_PROGRAM):
        row = row_start + i
        live = cols < tl.where(row < M, N, 0)  # the row's lanes, none past the end
        x = tl.load(x_ptr + row * stride_xm + cols, mask=live, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + row * N + cols, mask=live, other=0.0).to(tl.float32)
        # Past-the-end rows read row M-1's moments (in bounds); their lanes are dead anyway.
        rstd = tl.load(rstd_ptr + tl.minimum(row, M - 1))
        # Rebuild xhat from the saved moments rather than storing it: one (M, N) write saved in the forward.
        if RMS:
            xhat = x * rstd  # the dead lanes loaded 0
        else:
            mean = tl.load(mean_ptr + tl.minimum(row, M - 1))
            xhat = tl.where(live, (x - mean) * rstd, 0.0)
        # The VJP of xhat = (x - mu) * rstd with g = dy * gamma: dx = rstd * (g - mean(g) - xhat * mean(g xhat)).
        g = dy * gamma
        c_xhat = tl.sum(g * xhat, axis=0) / N
        if RMS:  # d/dx of x * rstd(x) with rstd = (mean(x^2) + eps)^-1/2: no centring, no mean(g) term
            dx = (g - xhat * c_xhat) * rstd
        else:
            c_mean = tl.sum(g, axis=0) / N
            dx = (g - xhat * c_xhat - c_mean) * rstd
        tl.store(dx_ptr + row * N + cols, dx.to(dx_ptr.dtype.element_ty), mask=live)
        dgamma += dy * xhat
        dbeta += dy
    tl.store(dgamma_part_ptr + pid * N + cols, dgamma, mask=valid)
    tl.store(dbeta_part_ptr + pid * N + cols, dbeta, mask=valid)


# Rows up to this many elements are held whole in registers (forward: 16 fp32 per thread over 8 warps; backward:
# 8 per thread over 16 warps, see _bwd_num_warps); longer rows, and float64, take the torch path.
_MAX_TRITON_N = 4096
_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Backward programs: enough to fill an H100 (132 SMs) twice; each writes one fp32 row of dgamma/dbeta partials.
_BWD_PROGRAMS = 8 if INTERPRETING else 264


def _num_warps(block_n: int) -> int:
    return min(max(block_n // 256, 1), 8)


def _bwd_num_warps(block_n: int) -> int:
    # The backward keeps x, dy, gamma, xhat, g and the two partial sums live: at 4096 columns over 8 warps that is
    # 16 fp32 each per thread and sm_90's ptxas spilled (128 regs, 24 B); 16 warps halve it.
    return min(max(block_n // 256, 1), 16)


# The widest row is the one that could spill; fp16 compiles to the same code as bf16 but for the converts.
register_aot(
    *(
        AotCase(
            name=f"{'rms' if rms else 'layer'}_norm_fwd[{dt[1:]},{block}]",
            kernel=_layer_norm_fwd_kernel,
            signature={
                "x_ptr": dt,
                "y_ptr": dt,
                "gamma_ptr": "*fp32",
                "beta_ptr": "*fp32",
                "mean_ptr": "*fp32",
                "rstd_ptr": "*fp32",
                "stride_xm": "i64",
                "N": "i32",
                "eps": "fp32",
                "HAS_GAMMA": "constexpr",
                "HAS_BETA": "constexpr",
                "BLOCK_N": "constexpr",
                "RMS": "constexpr",
            },
            constexprs={"HAS_GAMMA": True, "HAS_BETA": not rms, "BLOCK_N": block, "RMS": rms},
            num_warps=_num_warps(block),
            num_stages=1,
        )
        for dt in ("*fp32", "*bf16")
        for block in (_MAX_TRITON_N,)
        for rms in (False, True)
    ),
    *(
        AotCase(
            name=f"{'rms' if rms else 'layer'}_norm_bwd[{dt[1:]},{block}]",
            kernel=_layer_norm_bwd_kernel,
            signature={
                "dy_ptr": dt,
                "x_ptr": dt,
                "gamma_ptr": "*fp32",
                "mean_ptr": "*fp32",
                "rstd_ptr": "*fp32",
                "dx_ptr": dt,
                "dgamma_part_ptr": "*fp32",
                "dbeta_part_ptr": "*fp32",
                "stride_xm": "i64",
                "M": "i32",
                "N": "i32",
                "ROWS_PER_PROGRAM": "i32",
                "HAS_GAMMA": "constexpr",
                "BLOCK_N": "constexpr",
                "RMS": "constexpr",
            },
            constexprs={"HAS_GAMMA": True, "BLOCK_N": block, "RMS": rms},
            num_warps=_bwd_num_warps(block),
            num_stages=1,
        )
        for dt in ("*fp32", "*bf16")
        for block in (_MAX_TRITON_N,)
        for rms in (False, True)
    ),
)


def layer_norm_fwd(
    x2: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None, epsilon: float, rms: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the forward on ``x2`` (M, N) with unit column stride: ``y`` (M, N), ``mean`` and ``rstd`` (M,)
    (``rms``: no mean is computed, and ``mean`` is ``rstd`` itself, a placeholder the backward does not read)."""
    m, n = x2.shape
    y = torch.empty((m, n), dtype=x2.dtype, device=x2.device)
    rstd = torch.empty((m,), dtype=torch.float32, device=x2.device)
    mean = rstd if rms else torch.empty((m,), dtype=torch.float32, device=x2.device)
    if m:
        block = triton.next_power_of_2(n)
        _layer_norm_fwd_kernel[(m,)](
            x2, y, gamma if gamma is not None else y, beta if beta is not None else y, mean, rstd,
            x2.stride(0), n, float(epsilon),
            HAS_GAMMA=gamma is not None, HAS_BETA=beta is not None, BLOCK_N=block, RMS=rms,
            num_warps=_num_warps(block),
        )  # fmt: skip
    return y, mean, rstd


def layer_norm_bwd(
    dy2: torch.Tensor,
    x2: torch.Tensor,
    gamma: torch.Tensor | None,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    rms: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward: ``dx`` (M, N) in x's dtype, ``dgamma`` and ``dbeta`` (N,) in fp32."""
    m, n = x2.shape
    dy2 = dy2.contiguous()
    dx = torch.empty((m, n), dtype=x2.dtype, device=x2.device)
    programs = max(min(m, _BWD_PROGRAMS), 1)
    rows = triton.cdiv(m, programs)
    dgamma_part = torch.zeros((programs, n), dtype=torch.float32, device=x2.device)
    dbeta_part = torch.zeros((programs, n), dtype=torch.float32, device=x2.device)
    if m:
        block = triton.next_power_of_2(n)
        _layer_norm_bwd_kernel[(programs,)](
            dy2, x2, gamma if gamma is not None else x2, mean, rstd, dx, dgamma_part, dbeta_part,
            x2.stride(0), m, n, rows,
            HAS_GAMMA=gamma is not None, BLOCK_N=block, RMS=rms,
            num_warps=_bwd_num_warps(block),
        )  # fmt: skip
    # (programs, N) -> (N,): a few hundred fp32 rows, a deterministic column sum.
    return dx, dgamma_part.sum(0), dbeta_part.sum(0)


class LayerNormFunction(torch.autograd.Function):
    """Saves x, gamma and the (M,) moments; xhat is recomputed in the backward rather than stored. ``rms``: RMS
    normalization (``beta`` must be None)."""

    @staticmethod
    def forward(
        ctx,
        x2: torch.Tensor,
        gamma: torch.Tensor | None,
        beta: torch.Tensor | None,
        epsilon: float,
        rms: bool = False,
    ):
        y, mean, rstd = layer_norm_fwd(x2, gamma, beta, epsilon, rms)
        ctx.save_for_backward(x2, gamma, mean, rstd)
        ctx.beta_dtype = None if beta is None else beta.dtype
        ctx.rms = rms
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x2, gamma, mean, rstd = ctx.saved_tensors
        dx, dgamma, dbeta = layer_norm_bwd(dy, x2, gamma, mean, rstd, ctx.rms)
        dgamma = dgamma.to(gamma.dtype) if gamma is not None and ctx.needs_input_grad[1] else None
        dbeta = dbeta.to(ctx.beta_dtype) if ctx.beta_dtype is not None and ctx.needs_input_grad[2] else None
        return dx, dgamma, dbeta, None, None


def _check_epsilon(epsilon: float) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not float(epsilon) >= 0.0:
        raise ValueError(f"Expected `epsilon` to be a non-negative float. Received: epsilon={epsilon!r}")
    return float(epsilon)


def layer_norm(
    x: torch.Tensor,
    gamma: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    axis: int | Sequence[int] = -1,
    epsilon: float = 1e-3,
) -> torch.Tensor:
    """Keras' layer normalization of ``x`` over ``axis`` (an int or a list of ints).

    Args:
        x: the input, any rank.
        gamma, beta: scale and offset shaped like ``x``'s normalized axes (None: no scale / no offset).
        axis: the normalized axis or axes.
        epsilon: added to the variance.

    Returns ``x``'s shape and dtype. When the normalized axes are the trailing ones (the default ``-1``), the
    row is at most 4096 elements and the dtype is fp32/bf16/fp16, the Triton kernels run (forward and backward);
    otherwise the torch reference.
    """
    return _normalize("layer_norm", x, {"gamma": gamma, "beta": beta}, axis, epsilon)


def rms_norm(
    x: torch.Tensor, scale: torch.Tensor | None = None, axis: int | Sequence[int] = -1, epsilon: float = 1e-6
) -> torch.Tensor:
    """Keras' RMS normalization (``ops.rms_normalization``): ``x * rsqrt(mean(x**2) + epsilon) * scale`` over
    ``axis``, in fp32 for 16-bit inputs; the layer-norm kernels with ``RMS=True`` under the same conditions as
    :func:`layer_norm` (trailing axes, rows of at most 4096, fp32/bf16/fp16), else the torch reference."""
    return _normalize("rms_norm", x, {"scale": scale}, axis, epsilon)


def _normalize(op: str, x: torch.Tensor, params: dict, axis: int | Sequence[int], epsilon: float) -> torch.Tensor:
    epsilon = _check_epsilon(epsilon)
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        got = f"x.dtype={x.dtype}" if isinstance(x, torch.Tensor) else f"x={type(x).__name__}"
        raise ValueError(f"{op}: expected x a floating-point tensor. Received: {got}")
    for name, p in params.items():
        if p is None:
            continue
        if not isinstance(p, torch.Tensor) or not p.dtype.is_floating_point:
            got = f"{name}.dtype={p.dtype}" if isinstance(p, torch.Tensor) else f"{name}={type(p).__name__}"
            raise ValueError(f"{op}: expected {name} a floating-point tensor or None. Received: {got}")
        if p.device != x.device:
            raise ValueError(f"{op}: expected {name} on x's device {x.device}. Received: {name}.device={p.device}")
    axes = _axes(axis, x.dim())
    trailing = axes == tuple(range(x.dim() - len(axes), x.dim()))
    n = 1
    for a in axes:
        n *= x.shape[a]
    for name, p in params.items():
        if p is not None and tuple(p.shape) not in (tuple(x.shape[a] for a in axes), (n,)):
            raise ValueError(
                f"{op}: expected {name} of shape {tuple(x.shape[a] for a in axes)} for axis={axis}. "
                f"Received: {name}.shape={tuple(p.shape)}"
            )
    rms = op == "rms_norm"
    gamma, beta = (params["scale"], None) if rms else (params["gamma"], params["beta"])
    if _backend.use_triton(x) and trailing and x.dtype in _TRITON_DTYPES and 0 < n <= _MAX_TRITON_N and x.numel() > 0:
        x2 = x.reshape(-1, n)
        if x2.stride(1) != 1:
            x2 = x2.contiguous()
        g = None if gamma is None else gamma.reshape(n).contiguous()
        b = None if beta is None else beta.reshape(n).contiguous()
        return LayerNormFunction.apply(x2, g, b, epsilon, rms).reshape(x.shape)
    if gamma is not None and gamma.dim() == 1 and len(axes) > 1:
        gamma = gamma.reshape([x.shape[a] for a in axes])
    if beta is not None and beta.dim() == 1 and len(axes) > 1:
        beta = beta.reshape([x.shape[a] for a in axes])
    if rms:
        return rms_norm_reference(x, gamma, axes, epsilon)
    return layer_norm_reference(x, gamma, beta, axes, epsilon)
