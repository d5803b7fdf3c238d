"""Dense: ``y = dropout(act(x @ kernel + bias))`` in one pass over memory, forward and backward.

Forward (one tiled GEMM, fp32 accumulation; everything else in its epilogue, on the fp32 accumulator):
    z = x @ kernel + bias ; y = act(z) ; y = keep * y / (1 - rate)     keep = Philox(seed, row * N + col)
    read x (MK) and kernel (KN) once from DRAM, write y (MN), and, only for activations whose derivative is not a
    function of the output (gelu, silu, mish, softplus, hard_silu), g = act'(z) * keep / (1 - rate) (MN).
    PyTorch eager (F.linear + act + dropout) writes z, reads it, writes y (and a mask), and reads y again: three
    to four passes over MN where this does one.

Backward (dz is never materialised; it is rebuilt tile by tile in the prologue of the GEMMs that consume it):
    dz = dy * act'(.) * keep / (1 - rate)
    dx = dz @ kernel^T        (one GEMM over N; dz rebuilt from dy and the saved y or g while loading)
    dkernel = x^T @ dz        (one GEMM over M; the same prologue)
    dbias = sum_m dz          (accumulated by the dkernel programs of the first K-tile, which already walk every row
                               of dz for their columns: no extra pass, no atomics, deterministic)
    read dy and the saved tensor twice (once per GEMM), x and kernel once; write dx, dkernel, dbias.

What is saved for the backward, per activation (the "save vs recompute" decision, kernels/activations.py):
- linear without dropout: nothing but x and kernel.
- derivative a function of the output (relu, relu6, leaky_relu, elu, selu, sigmoid, hard_sigmoid, tanh, softsign,
  exponential, and linear under dropout): the output y, which autograd keeps alive anyway (it is the next layer's
  input); no extra bytes. A 1-bit relu mask would cost an extra MN/8 write (and a pack/unpack per tile) and free
  nothing, since y stays alive as the next layer's saved input; it would only save bandwidth where the prologue
  re-reads y, which is L2-resident after the first GEMM. Decided by byte count: not measured (no GPU here).
- derivative a function of the pre-activation (gelu, gelu_tanh, silu, hard_silu, softplus, mish): ``act'(z)``,
  computed in the forward epilogue while z is in registers, in place of z itself. Same bytes as saving z, but the
  backward prologue is one multiply rather than an erf/exp per element per GEMM program (each dz element is rebuilt
  by K / BLOCK_K programs of each backward GEMM, which would make them CUDA-core bound).

The fused dropout's mask is never stored as a mask: for pre-activation rows the mask and scale are folded into the
saved ``act'`` (no extra bytes); for output rows with ``act'(0) == 0`` (relu, relu6, sigmoid, hard_sigmoid,
exponential) the dropped output is 0 and so is its gradient; for the others (linear, leaky_relu, elu, selu, tanh,
softsign) the backward prologue regenerates the mask with Philox from (seed, index). That last case costs about 80
integer instructions per element per GEMM program, K / BLOCK_K times per element: correct and storage-free, but
CUDA-core heavy; a 1-bit saved mask would be the alternative if a GPU profile shows it matters.

The dropout seed is an int seed (a scalar kernel argument) or a device seed (a 0-dim int64 tensor that the forward
epilogue and the regenerating backward load once per program: the constexpr DEVICE_SEED; kernels/dropout.py), so a
step whose seed changes every call can be captured in a CUDA graph. Same mask for the same seed value either way.
"""

from __future__ import annotations

import torch

from . import _backend, precision
from ._aot import AotCase, register_aot
from ._triton import INTERPRETING, tl, triton
from .activations import (
    ACTIVATIONS,
    LEAKY_RELU_SLOPE,
    SELU_ALPHA,
    SELU_SCALE,
    Activation,
    activation_fwd,
    activation_reference,
    canonical,
)
from .dropout import (
    check_rate,
    check_seed,
    dropout_reference,
    is_device_seed,
    keep_threshold,
    seed_args,
    torch_dropout_mask,
)
from .flat_grad import flat_grad_target, is_flat_grad_leaf

# ---------------------------------------------------------------------------------------------------------------
# Reference
# ---------------------------------------------------------------------------------------------------------------


def dense_reference(
    x: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    *,
    dropout_rate: float = 0.0,
    dropout_seed: int | torch.Tensor = 0,
) -> torch.Tensor:
    """Plain torch, differentiated by autograd: the written-down spec."""
    z = torch.matmul(x, kernel)
    if bias is not None:
        z = z + bias
    y = activation_reference(activation, z)
    if dropout_rate > 0:
        y = dropout_reference(y, dropout_rate, dropout_seed)
    return y


# ---------------------------------------------------------------------------------------------------------------
# Triton kernels
# ---------------------------------------------------------------------------------------------------------------

# The ACTIVATION ids the backward's prologue branches on (act' from the saved output), from the one table; the
# forward's epilogue is the table's device function (activations.activation_fwd).
_LINEAR = tl.constexpr(ACTIVATIONS["linear"].id)
_RELU = tl.constexpr(ACTIVATIONS["relu"].id)
_RELU6 = tl.constexpr(ACTIVATIONS["relu6"].id)
_LEAKY_RELU = tl.constexpr(ACTIVATIONS["leaky_relu"].id)
_ELU = tl.constexpr(ACTIVATIONS["elu"].id)
_SELU = tl.constexpr(ACTIVATIONS["selu"].id)
_SIGMOID = tl.constexpr(ACTIVATIONS["sigmoid"].id)
_HARD_SIGMOID = tl.constexpr(ACTIVATIONS["hard_sigmoid"].id)
_TANH = tl.constexpr(ACTIVATIONS["tanh"].id)
_SOFTSIGN = tl.constexpr(ACTIVATIONS["softsign"].id)
_EXPONENTIAL = tl.constexpr(ACTIVATIONS["exponential"].id)

_SLOPE = tl.constexpr(LEAKY_RELU_SLOPE)
_SELU_A = tl.constexpr(SELU_ALPHA)
_SELU_S = tl.constexpr(SELU_SCALE)

# The interpreter computes bf16 tiles wrongly (they are uint16 bit patterns in numpy): upcast right after each load
# when interpreting. On a GPU the operands stay in their dtype for the tensor cores.
_UPCAST = tl.constexpr(INTERPRETING)

# Backward prologue sources of act'(.): nothing (linear), the saved output, or the saved act'(z).
_FROM_NONE = 0
_FROM_OUTPUT = 1
_FROM_SAVED = 2


@triton.jit(do_not_specialize=["seed", "threshold"])
def _dense_fwd_kernel(
    x_ptr,  # *[M, K] input, any strides
    w_ptr,  # *[K, N] kernel, any strides
    b_ptr,  # *[N] bias, contiguous (read only when HAS_BIAS)
    y_ptr,  # *[M, N] output, contiguous
    g_ptr,  # *[M, N] act'(z) * keep * scale, contiguous (written only when SAVE_GRAD)
    M,
    N,
    K,
    stride_xm,
    stride_xk,
    stride_wk,
    stride_wn,
    seed,  # Philox key of the fused dropout (an int seed; unused with DEVICE_SEED)
    seed_ptr,  # *i64 [] the Philox key in device memory (DEVICE_SEED; else a dummy pointer, never read)
    threshold,  # i32: keep an element when randint >> 1 >= threshold
    scale,  # fp32: 1 / (1 - rate)
    ACTIVATION: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SAVE_GRAD: tl.constexpr,
    HAS_DROPOUT: tl.constexpr,
    DEVICE_SEED: tl.constexpr,  # HAS_DROPOUT's key is the int64 at seed_ptr (a device seed), not the scalar seed
    PRECISION: tl.constexpr,  # tl.dot input_precision: "ieee" or "tf32" (fp32 only)
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    EPILOGUE_SPLIT: tl.constexpr,  # 1 or 2 column slices for the epilogue
    WIDE_INDEX: tl.constexpr,  # M * N >= 2**31: int64 element indices for Philox
    ALIGNED: tl.constexpr,  # verified on the host: see _aligned()
):
    if ALIGNED:
        # 16-element rows: vector loads and cp.async/wgmma pipelining (what the run-time specialisation of aligned
        # arguments gives; spelt out so that the ahead-of-time compile sees it too).
        tl.assume(K % 16 == 0)
        tl.assume(N % 16 == 0)
        tl.assume(stride_xm % 16 == 0)
        tl.assume(stride_wk % 16 == 0)
    # Grouped ordering: GROUP_M row-tiles share their kernel columns while they are in L2.
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_n
    first_m = (pid // group) * GROUP_M
    group_m = min(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % group_m
    pid_n = (pid % group) // group_m

    # Operand tiles. Rows of x and columns of the kernel past the edge wrap around (valid addresses, results
    # discarded by the store mask), so only the K tail needs a mask in the loop.
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + (offs_m % M).to(tl.int64)[:, None] * stride_xm + offs_k[None, :] * stride_xk
    w_ptrs = w_ptr + offs_k[:, None] * stride_wk + (offs_n % N).to(tl.int64)[None, :] * stride_wn
    if ALIGNED:  # runs of 16 contiguous elements starting 16-byte aligned (the wrap at N % 16 == 0 keeps them)
        x_ptrs = tl.max_contiguous(tl.multiple_of(x_ptrs, [1, 16]), [1, 16])
        w_ptrs = tl.max_contiguous(tl.multiple_of(w_ptrs, [1, 16]), [1, 16])

    # Main loop: fp32 accumulation on the tensor cores (wgmma on sm_90, mma.sync on sm_80).
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K
        a = tl.load(x_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
        b = tl.load(w_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
        if _UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
        x_ptrs += BLOCK_K * stride_xk
        w_ptrs += BLOCK_K * stride_wk

    # Epilogue, on the fp32 accumulator, in EPILOGUE_SPLIT column slices of BLOCK_N // EPILOGUE_SPLIT: a slice at a
    # time keeps the activation's temporaries (and Philox's four words of state per element) within the register
    # file; over the whole tile they spilled (ptxas, sm_90, 128x128 tile, 8 warps: mish + dropout stored 1 KB).
    if EPILOGUE_SPLIT == 2:
        acc = tl.permute(tl.reshape(acc, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1))
        acc_0, acc_1 = tl.split(acc)
    if DEVICE_SEED:  # the dropout's Philox key, loaded once per program (8 bytes, the same for every program)
        key = tl.load(seed_ptr)
    else:
        key = seed
    for h in tl.static_range(EPILOGUE_SPLIT):
        if EPILOGUE_SPLIT == 1:
            z = acc
        elif h == 0:
            z = acc_0
        else:
            z = acc_1
        offs_n = pid_n * BLOCK_N + h * (BLOCK_N // EPILOGUE_SPLIT) + tl.arange(0, BLOCK_N // EPILOGUE_SPLIT)
        if HAS_BIAS:
            bias = tl.load(b_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)
            z = z + bias[None, :]

        # act(z), and act'(z) for the rows that need the pre-activation (SAVE_GRAD): the activation table's
        # device function, which the fused MLP's kernels share.
        y, g = activation_fwd(z, ACTIVATION, SAVE_GRAD)

        # Fused inverted dropout: the mask is Philox on (seed, row-major index), exactly kernels/dropout.py's.
        if WIDE_INDEX:
            offs_y = offs_m.to(tl.int64)[:, None] * N + offs_n[None, :]
        else:
            offs_y = offs_m[:, None] * N + offs_n[None, :]  # int32 Philox counters: same bits, cheaper
        if HAS_DROPOUT:
            keep = (tl.randint(key, offs_y) >> 1).to(tl.int32) >= threshold
            y = tl.where(keep, y * scale, 0.0)
            if SAVE_GRAD:
                g = tl.where(keep, g * scale, 0.0)

        # Write y (and act'(z) where the backward needs it) in the input dtype.
        y_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
        tl.store(y_ptr + offs_y, y.to(y_ptr.dtype.element_ty), mask=y_mask)
        if SAVE_GRAD:
            tl.store(g_ptr + offs_y, g.to(g_ptr.dtype.element_ty), mask=y_mask)


@triton.jit(do_not_specialize=["seed", "threshold"])
def _dense_bwd_kernel(
    dy_ptr,  # *[M, N] gradient of the output, any strides
    aux_ptr,  # *[M, N] saved: the output (GRAD_FROM 1) or act'(z) * keep * scale (GRAD_FROM 2), contiguous
    x_ptr,  # *[M, K] input, any strides (PART 1)
    w_ptr,  # *[K, N] kernel, any strides (PART 0)
    out_ptr,  # *[M, K] dx (PART 0) or *[K, N] dkernel (PART 1), contiguous
    db_ptr,  # *fp32 [N] dbias (PART 1 with HAS_BIAS)
    M,
    N,
    K,
    stride_dym,
    stride_dyn,
    stride_xm,
    stride_xk,
    stride_wk,
    stride_wn,
    seed,  # Philox key of the fused dropout (DROPOUT_REGEN with an int seed)
    seed_ptr,  # *i64 [] the Philox key in device memory (DEVICE_SEED; else a dummy pointer, never read)
    threshold,  # i32: kept when randint >> 1 >= threshold
    scale,  # fp32: 1 / (1 - rate), 1 without dropout
    unscale,  # fp32: 1 - rate: the saved output times this is act(z) for kept elements
    sat_hi,  # fp32: the saved output of a saturated relu6 / hard_sigmoid (6 or 1, times scale, in the input dtype)
    ACTIVATION: tl.constexpr,
    GRAD_FROM: tl.constexpr,  # 0: act' = 1, 1: act' from the saved output, 2: act' saved
    DROPOUT_REGEN: tl.constexpr,  # regenerate the dropout mask (output rows with act'(0) != 0)
    DEVICE_SEED: tl.constexpr,  # DROPOUT_REGEN's key is the int64 at seed_ptr (a device seed), not the scalar seed
    HAS_BIAS: tl.constexpr,
    PART: tl.constexpr,  # 0: dx = dz @ kernel^T, 1: dkernel = x^T @ dz (and dbias)
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    WIDE_INDEX: tl.constexpr,  # M * N >= 2**31: int64 element indices for Philox
    ALIGNED: tl.constexpr,  # verified on the host: see _aligned()
    ACCUMULATE: tl.constexpr = False,  # PART 1: add dkernel (and dbias) to what out_ptr (db_ptr) hold
):
    if ALIGNED:
        tl.assume(K % 16 == 0)
        tl.assume(N % 16 == 0)
        tl.assume(stride_dym % 16 == 0)
        tl.assume(stride_xm % 16 == 0)
        tl.assume(stride_wk % 16 == 0)
    # Both parts are C[P, Q] = sum_R A[P, R] B[R, Q] with the BLOCK_M x BLOCK_N tile of C per program:
    #   PART 0: dx[m, k]      = sum_n dz[m, n] kernel[k, n]   (P, Q, R) = (M, K, N), A = dz, B = kernel^T
    #   PART 1: dkernel[k, n] = sum_m x[m, k] dz[m, n]        (P, Q, R) = (K, N, M), A = x^T, B = dz
    if PART == 0:
        P = M
        Q = K
        R = N
    else:
        P = K
        Q = N
        R = M
    pid = tl.program_id(0)
    num_p = tl.cdiv(P, BLOCK_M)
    num_q = tl.cdiv(Q, BLOCK_N)
    group = GROUP_M * num_q
    first_p = (pid // group) * GROUP_M
    group_p = min(num_p - first_p, GROUP_M)
    pid_p = first_p + (pid % group) % group_p
    pid_q = (pid % group) // group_p
    offs_p = pid_p * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_q = pid_q * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_r = tl.arange(0, BLOCK_K)

    # Index tiles of dz: (dm, dn) broadcast to [BLOCK_M, BLOCK_K] (PART 0) or [BLOCK_K, BLOCK_N] (PART 1). The
    # non-reduced index wraps around at the edge (valid addresses, discarded by the store mask); the reduced one is
    # masked, so dz is 0 past M or N.
    if PART == 0:
        dm = (offs_p % M)[:, None]
        dn = offs_r[None, :]
        w_ptrs = w_ptr + offs_r[:, None] * stride_wn + (offs_q % K).to(tl.int64)[None, :] * stride_wk
    else:
        dm = offs_r[:, None]
        dn = (offs_q % N)[None, :]
        x_ptrs = x_ptr + (offs_p % K).to(tl.int64)[:, None] * stride_xk + offs_r[None, :] * stride_xm
    dy_ptrs = dy_ptr + dm.to(tl.int64) * stride_dym + dn.to(tl.int64) * stride_dyn
    aux_ptrs = aux_ptr + dm.to(tl.int64) * N + dn
    if ALIGNED:  # dy and the saved tensor run along n; the kernel (PART 0) and x (PART 1) along the tile's rows
        dy_ptrs = tl.max_contiguous(tl.multiple_of(dy_ptrs, [1, 16]), [1, 16])
        aux_ptrs = tl.max_contiguous(tl.multiple_of(aux_ptrs, [1, 16]), [1, 16])
        if PART == 0:
            w_ptrs = tl.max_contiguous(tl.multiple_of(w_ptrs, [16, 1]), [16, 1])
        else:
            x_ptrs = tl.max_contiguous(tl.multiple_of(x_ptrs, [16, 1]), [16, 1])
    if PART == 0:
        dy_step = BLOCK_K * stride_dyn
        aux_step = BLOCK_K
    else:
        dy_step = BLOCK_K * stride_dym
        aux_step = BLOCK_K * N

    if DEVICE_SEED:  # the regenerated mask's Philox key, loaded once per program, before the loop
        key = tl.load(seed_ptr)
    else:
        key = seed
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    db = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for r in range(0, tl.cdiv(R, BLOCK_K)):
        r_left = R - r * BLOCK_K
        if PART == 0:
            z_mask = offs_r[None, :] < r_left
        else:
            z_mask = offs_r[:, None] < r_left

        # Prologue: rebuild this tile of dz = dy * act'(.) * keep * scale in fp32.
        dz = tl.load(dy_ptrs, mask=z_mask, other=0.0).to(tl.float32)
        if GRAD_FROM == 2:
            dz = dz * tl.load(aux_ptrs, mask=z_mask, other=0.0).to(tl.float32)
        elif GRAD_FROM == 1:
            ys = tl.load(aux_ptrs, mask=z_mask, other=0.0).to(tl.float32)  # the saved (dropped, scaled) output
            y = ys * unscale
            # act'(z) from the output. Kinks and saturation are decided on the saved value itself, so that the
            # dropout's scaling cannot move an element across them.
            if ACTIVATION == _LINEAR:
                dact = tl.full(ys.shape, 1.0, tl.float32)
            elif ACTIVATION == _RELU:
                dact = tl.where(ys > 0, 1.0, 0.0)
            elif ACTIVATION == _RELU6:
                dact = tl.where((ys > 0) & (ys < sat_hi), 1.0, 0.0)
            elif ACTIVATION == _LEAKY_RELU:
                dact = tl.where(ys > 0, 1.0, _SLOPE)
            elif ACTIVATION == _ELU:
                dact = tl.where(ys > 0, 1.0, y + 1.0)
            elif ACTIVATION == _SELU:
                dact = tl.where(ys > 0, _SELU_S, y + _SELU_S * _SELU_A)
            elif ACTIVATION == _SIGMOID:
                dact = y * (1.0 - y)
            elif ACTIVATION == _HARD_SIGMOID:
                dact = tl.where((ys > 0) & (ys < sat_hi), 1.0 / 6.0, 0.0)
            elif ACTIVATION == _TANH:
                dact = 1.0 - y * y
            elif ACTIVATION == _SOFTSIGN:
                dact = (1.0 - tl.abs(y)) * (1.0 - tl.abs(y))
            else:  # _EXPONENTIAL
                dact = y
            dact = dact * scale
            if DROPOUT_REGEN:
                if WIDE_INDEX:
                    idx = dm.to(tl.int64) * N + dn
                else:
                    idx = dm * N + dn
                keep = (tl.randint(key, idx) >> 1).to(tl.int32) >= threshold
                dact = tl.where(keep, dact, 0.0)
            dz = dz * dact
        if _UPCAST:
            dz_op = dz
        else:
            dz_op = dz.to(dy_ptr.dtype.element_ty)  # the tensor-core operand, in the input dtype

        if PART == 0:
            b = tl.load(w_ptrs, mask=offs_r[:, None] < r_left, other=0.0)
            if _UPCAST:
                b = b.to(tl.float32)
            acc = tl.dot(dz_op, b, acc, input_precision=PRECISION)
            w_ptrs += BLOCK_K * stride_wn
            dn += BLOCK_K
        else:
            a = tl.load(x_ptrs, mask=offs_r[None, :] < r_left, other=0.0)
            if _UPCAST:
                a = a.to(tl.float32)
            acc = tl.dot(a, dz_op, acc, input_precision=PRECISION)
            if HAS_BIAS:
                # dbias, from the fp32 dz, by the programs of the first K-tile only.
                if pid_p == 0:
                    db += tl.sum(dz, axis=0)
            x_ptrs += BLOCK_K * stride_xm
            dm += BLOCK_K
        dy_ptrs += dy_step
        aux_ptrs += aux_step

    out_mask = (offs_p[:, None] < P) & (offs_q[None, :] < Q)
    out_offs = offs_p.to(tl.int64)[:, None] * Q + offs_q[None, :]
    if ACCUMULATE:  # into the optimizer's flat fp32 gradient: each output tile has exactly one program (no race)
        acc += tl.load(out_ptr + out_offs, mask=out_mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + out_offs, acc.to(out_ptr.dtype.element_ty), mask=out_mask)
    if PART == 1:
        if HAS_BIAS:
            if pid_p == 0:
                if ACCUMULATE:
                    db += tl.load(db_ptr + offs_q, mask=offs_q < N, other=0.0)
                tl.store(db_ptr + offs_q, db, mask=offs_q < N)


# ---------------------------------------------------------------------------------------------------------------
# Autotuning
# ---------------------------------------------------------------------------------------------------------------

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) per kernel ("fwd", or "bwd" for both backward GEMMs), dtype kind
# ("16": bf16/fp16, "tf32", "ieee") and path:
# - "hopper" (sm_90, ALIGNED): large tiles for wgmma, 3-4 cp.async stages within 228 KB of shared memory;
# - "fallback" (older GPUs, ALIGNED): fewer stages (sm_80 has 164 KB);
# - "ragged" (K or N not a multiple of 16, or unaligned views): masked element-wise loads keep an address register
#   per element and are not pipelined, so the tiles are small.
# The backward GEMMs use BLOCK_K = 32 (16 for tf32): their dz operand is computed in registers and restaged through
# shared memory; with BLOCK_K = 64 the dkernel GEMM spilled on sm_80 (ptxas: 120-216 bytes for every 16-bit tile).
# IEEE fp32 has no tensor-core path: tl.dot runs on the FMA units with both operand tiles in registers; larger tiles
# spilled. Every config here is compiled for sm_90 and sm_80 by tests/kernels/test_aot.py, which fails on a spill.
CONFIGS: dict[tuple[str, str, str], list[tuple[int, int, int, int, int]]] = {
    ("fwd", "16", "hopper"): [(128, 128, 64, 8, 4), (128, 64, 64, 4, 4), (64, 128, 64, 4, 4)],
    ("fwd", "16", "fallback"): [(128, 128, 64, 8, 3), (64, 128, 64, 4, 4)],
    ("fwd", "16", "ragged"): [(64, 64, 32, 4, 3)],
    ("fwd", "tf32", "hopper"): [(128, 128, 32, 8, 3), (64, 64, 32, 4, 4)],
    ("fwd", "tf32", "fallback"): [(64, 64, 32, 4, 4)],
    ("fwd", "tf32", "ragged"): [(64, 64, 16, 4, 3)],
    ("bwd", "16", "hopper"): [(128, 128, 32, 8, 4), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4)],
    ("bwd", "16", "fallback"): [(128, 128, 32, 8, 3), (64, 128, 32, 4, 4)],
    ("bwd", "16", "ragged"): [(64, 64, 32, 4, 3)],
    ("bwd", "tf32", "hopper"): [(128, 128, 16, 8, 3), (64, 64, 32, 4, 4)],
    ("bwd", "tf32", "fallback"): [(64, 64, 32, 4, 4)],
    ("bwd", "tf32", "ragged"): [(64, 64, 16, 4, 3)],
}
for _part in ("fwd", "bwd"):
    for _path in ("hopper", "fallback", "ragged"):
        CONFIGS[(_part, "ieee", _path)] = [(64, 64, 16, 4, 3)]
# The ragged IEEE dkernel GEMM sat at 255 registers with 4 warps and spilled 64-80 bytes under triton 3.6 (the GPU
# image's version; 3.9 fit it without a spill): 8 warps halve each thread's share of the tile.
CONFIGS[("bwd", "ieee", "ragged")] = [(64, 64, 16, 8, 3)]
# Launches whose dropout reads a device seed (DEVICE_SEED), where they differ. The loaded Philox key lives in
# registers where an int seed is a kernel parameter: the ragged 16-bit dkernel GEMM regenerating the mask, at 255
# registers with 4 warps for both seed forms, spilled 40 bytes on sm_90 under triton 3.6 with a device seed. 8 warps
# hold it in 140-176 registers, dx and dkernel, int and device seeds alike (triton 3.6 and 3.9, sm_90 and sm_80);
# the int-seed lists stay as they are.
DEVICE_SEED_CONFIGS: dict[tuple[str, str, str], list[tuple[int, int, int, int, int]]] = {
    ("bwd", "16", "ragged"): [(64, 64, 32, 8, 3)],
}
# The interpreter cannot benchmark (no GPU): one small config keeps tests fast (TRITON_NOTES.md).
INTERPRETER_CONFIG = (32, 32, 32, 4, 1)
GROUP_M = 8


def _config(c: tuple[int, int, int, int, int]):
    bm, bn, bk, warps, stages = c
    return triton.Config(
        {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": GROUP_M}, num_warps=warps, num_stages=stages
    )


def _path(hopper: bool, aligned: bool) -> str:
    return "ragged" if not aligned else "hopper" if hopper else "fallback"


_TUNED: dict[tuple[str, str, bool, bool, bool], object] = {}


def _tuned(name: str, kind: str, hopper: bool, aligned: bool, device_seed: bool = False):
    """The autotuned launcher of one kernel for one config set, keyed on the problem shape."""
    key = (name, kind, hopper, aligned, device_seed)
    if key not in _TUNED:
        kernel = _dense_fwd_kernel if name == "fwd" else _dense_bwd_kernel
        part = "fwd" if name == "fwd" else "bwd"
        accumulate = name == "bwd_dw_acc"
        configs = [
            _config(c)
            for c in (
                [INTERPRETER_CONFIG]
                if INTERPRETING
                else _configs(part, kind, _path(hopper, aligned), accumulate, device_seed)
            )
        ]
        # The accumulating dkernel launch adds into its outputs: benchmarking must restore them.
        restore = ["out_ptr", "db_ptr"] if accumulate else None
        _TUNED[key] = triton.autotune(configs=configs, key=["M", "N", "K"], restore_value=restore)(kernel)
    return _TUNED[key]


def _configs(
    part: str, kind: str, path: str, accumulate: bool = False, device_seed: bool = False
) -> list[tuple[int, int, int, int, int]]:
    """The autotune list (``DEVICE_SEED_CONFIGS`` first for a device seed). The dkernel launch that accumulates into
    the optimizer's flat fp32 gradient holds the old tile beside the accumulator in its epilogue: with 128x128 tf32
    tiles that spilled (255 registers, sm_90 80 B, sm_80 320 B stored), so accumulating launches keep to the tiles
    under 128x128."""
    configs = (DEVICE_SEED_CONFIGS.get((part, kind, path)) if device_seed else None) or CONFIGS[(part, kind, path)]
    if accumulate:
        configs = [c for c in configs if c[0] * c[1] < 128 * 128] or [(64, 64, 32, 4, 4)]
    return configs


def _kind(dtype: torch.dtype) -> str:
    if dtype != torch.float32:
        return "16"
    return "tf32" if precision.dot_precision() == "tf32" else "ieee"


def _launcher(
    name: str, dtype: torch.dtype, device: torch.device, config: dict | None, aligned: bool, device_seed: bool = False
):
    """The autotuned kernel, or, with ``config`` (BLOCK_*, GROUP_M, num_warps, num_stages), the bare kernel with
    those meta-parameters: how tests cover block sizes the interpreter's single config does not, and how the
    benchmark pins a config."""
    if config is None:
        return lambda grid: _tuned(name, _kind(dtype), _is_hopper(device), aligned, device_seed)[grid]
    kernel = _dense_fwd_kernel if name == "fwd" else _dense_bwd_kernel
    return lambda grid: lambda *args, **kwargs: kernel[grid](*args, **kwargs, **config)


def _aligned(k: int, n: int, *tensors: torch.Tensor) -> bool:
    """The ALIGNED fast path's conditions: K and N multiples of 16, every 2-D operand with unit stride along its
    last dimension, a row stride that is a multiple of 16 elements and a 16-byte aligned start."""
    if k % 16 or n % 16:
        return False
    return all(t.stride(-1) == 1 and t.stride(0) % 16 == 0 and t.data_ptr() % 16 == 0 for t in tensors)


def _is_hopper(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 9


# ---------------------------------------------------------------------------------------------------------------
# Ahead-of-time compile cases (tests/kernels/test_aot.py): every autotune config (Hopper and fallback lists) of each
# of the three kernels (forward, backward dx, backward dkernel+dbias), for fp32 with ieee and with tf32, bf16 and
# fp16, with a typical epilogue/prologue (gelu saving act'; act' from the output for tanh). The registered compile has
# no divisibility hints (the run-time specialisation of 16-aligned pointers and sizes), so its loads are scalar and
# unpipelined: a pessimistic register count. `python bench/dense.py --aot` compiles the heavier variants (mish +
# dropout, a regenerated mask) with those hints, as the GPU runs them. IEEE fp32 has no tensor-core path (FMA dot).
# The fused dropout with a device seed (DEVICE_SEED: the Philox key loaded from memory, held in registers where an
# int seed is a kernel parameter) is registered too, for the largest tile of each list a device-seed launch gets
# (DEVICE_SEED_CONFIGS first), fp32 and bf16: relu+dropout forward, tanh+dropout (regenerated mask) backward,
# compiled for both archs like every case. Its aligned cases are compiled with the
# divisibility hints of an aligned launch (``AotCase.divisible``), ragged ones without: without hints the dropout
# variants sit at the register limit with int seeds already (the 16-bit dkernel GEMM spilled up to 212 bytes).
# ---------------------------------------------------------------------------------------------------------------

_AOT_DTYPES = [
    ("fp32-ieee", "*fp32", "ieee"),
    ("fp32-tf32", "*fp32", "tf32"),
    ("bf16", "*bf16", "tf32"),
    ("fp16", "*fp16", "tf32"),
]
_AOT_FWD_EPILOGUES = {
    "gelu": {"ACTIVATION": ACTIVATIONS["gelu"].id, "SAVE_GRAD": True, "HAS_DROPOUT": False},
    "mish+dropout": {"ACTIVATION": ACTIVATIONS["mish"].id, "SAVE_GRAD": True, "HAS_DROPOUT": True},
    "relu+dropout": {"ACTIVATION": ACTIVATIONS["relu"].id, "SAVE_GRAD": False, "HAS_DROPOUT": True},
}
_AOT_BWD_PROLOGUES = {
    "tanh": {"ACTIVATION": ACTIVATIONS["tanh"].id, "GRAD_FROM": _FROM_OUTPUT, "DROPOUT_REGEN": False},
    "tanh+dropout": {"ACTIVATION": ACTIVATIONS["tanh"].id, "GRAD_FROM": _FROM_OUTPUT, "DROPOUT_REGEN": True},
}


def _aot_fwd_case(label, ptr, prec, epilogue, config, aligned, device_seed=False, divisible=()) -> AotCase:
    bm, bn, bk, warps, stages = config
    blocks = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": GROUP_M}
    flags = (
        "ACTIVATION",
        "HAS_BIAS",
        "SAVE_GRAD",
        "HAS_DROPOUT",
        "DEVICE_SEED",
        "PRECISION",
        "EPILOGUE_SPLIT",
        "WIDE_INDEX",
        "ALIGNED",
    )
    seed_tag = (",device-seed" if device_seed else "") + (",div16" if divisible else "")
    return AotCase(
        name=f"dense_fwd[{label},{epilogue}{seed_tag},{bm}x{bn}x{bk}w{warps}s{stages}{'' if aligned else ',ragged'}]",
        kernel=_dense_fwd_kernel,
        signature={
            **dict.fromkeys(("x_ptr", "w_ptr", "b_ptr", "y_ptr", "g_ptr"), ptr),
            **dict.fromkeys(("M", "N", "K", "stride_xm", "stride_wk"), "i32"),
            **dict.fromkeys(("stride_xk", "stride_wn"), "constexpr"),  # unit strides are specialised at run time
            "seed": "i64",
            "seed_ptr": "*i64" if device_seed else ptr,  # the launcher's dummy for an int seed is y
            "threshold": "i32",
            "scale": "fp32",
            **dict.fromkeys((*flags, *blocks), "constexpr"),
        },
        constexprs={
            "stride_xk": 1,
            "stride_wn": 1,
            **_AOT_FWD_EPILOGUES[epilogue],
            "DEVICE_SEED": device_seed,
            "HAS_BIAS": True,
            "PRECISION": prec,
            "EPILOGUE_SPLIT": 2,
            "WIDE_INDEX": False,
            "ALIGNED": aligned,
            **blocks,
        },
        num_warps=warps,
        num_stages=stages,
        tensor_cores=prec != "ieee",
        divisible=tuple(divisible),
    )


def _aot_bwd_case(
    label, ptr, prec, prologue, part, config, aligned, accumulate=False, device_seed=False, divisible=()
) -> AotCase:
    bm, bn, bk, warps, stages = config
    blocks = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": GROUP_M}
    flags = (
        "ACTIVATION", "GRAD_FROM", "DROPOUT_REGEN", "DEVICE_SEED", "HAS_BIAS", "PART", "PRECISION", "WIDE_INDEX",
        "ALIGNED", "ACCUMULATE",
    )  # fmt: skip
    tile = f"{bm}x{bn}x{bk}w{warps}s{stages}{'' if aligned else ',ragged'}{',acc' if accumulate else ''}"
    seed_tag = (",device-seed" if device_seed else "") + (",div16" if divisible else "")
    return AotCase(
        name=f"dense_bwd_{('dx', 'dw')[part]}[{label},{prologue}{seed_tag},{tile}]",
        kernel=_dense_bwd_kernel,
        signature={
            **dict.fromkeys(("dy_ptr", "aux_ptr", "x_ptr", "w_ptr", "out_ptr"), ptr),
            "db_ptr": "*fp32",
            **dict.fromkeys(("M", "N", "K", "stride_dym", "stride_xm", "stride_wk"), "i32"),
            **dict.fromkeys(("stride_dyn", "stride_xk", "stride_wn"), "constexpr"),
            "seed": "i64",
            "seed_ptr": "*i64" if device_seed else ptr,  # the launcher's dummy for an int seed is dy
            "threshold": "i32",
            **dict.fromkeys(("scale", "unscale", "sat_hi"), "fp32"),
            **dict.fromkeys((*flags, *blocks), "constexpr"),
        },
        constexprs={
            "stride_dyn": 1,
            "stride_xk": 1,
            "stride_wn": 1,
            **_AOT_BWD_PROLOGUES[prologue],
            "DEVICE_SEED": device_seed,
            "HAS_BIAS": part == 1,
            "PART": part,
            "PRECISION": prec,
            "WIDE_INDEX": False,
            "ALIGNED": aligned,
            "ACCUMULATE": accumulate,
            **blocks,
        },
        num_warps=warps,
        num_stages=stages,
        tensor_cores=prec != "ieee",
        divisible=tuple(divisible),
    )


def _aot_divisible(part: str) -> tuple[str, ...]:
    """What an aligned launch specialises as multiples of 16: every pointer, K, N and the row strides (not M)."""
    if part == "fwd":
        return ("x_ptr", "w_ptr", "b_ptr", "y_ptr", "g_ptr", "seed_ptr", "N", "K", "stride_xm", "stride_wk")
    return ("dy_ptr", "aux_ptr", "x_ptr", "w_ptr", "out_ptr", "db_ptr", "seed_ptr", "N", "K", "stride_dym",
            "stride_xm", "stride_wk")  # fmt: skip


def _aot_cases() -> list[AotCase]:
    cases = []
    for label, ptr, prec in _AOT_DTYPES:
        kind = "ieee" if prec == "ieee" else "tf32" if ptr == "*fp32" else "16"
        for part in ("fwd", "bwd"):
            for path in ("hopper", "fallback", "ragged"):
                aligned = path != "ragged"
                for config in CONFIGS[(part, kind, path)]:
                    if path == "fallback" and config in CONFIGS[(part, kind, "hopper")]:
                        continue
                    if part == "fwd":
                        cases.append(_aot_fwd_case(label, ptr, prec, "gelu", config, aligned))
                    else:
                        cases += [_aot_bwd_case(label, ptr, prec, "tanh", p, config, aligned) for p in (0, 1)]
                        if ptr == "*fp32" and config in _configs(part, kind, path, accumulate=True):
                            # fp32 dkernel straight into the optimizer's flat gradient
                            cases.append(_aot_bwd_case(label, ptr, prec, "tanh", 1, config, aligned, True))
                # The largest tile of the list a device seed gets, with a dropout keyed by it (fp16 compiles what
                # bf16 does).
                config = _configs(part, kind, path, device_seed=True)[0]
                if label == "fp16" or (path == "fallback" and config in CONFIGS[(part, kind, "hopper")]):
                    continue
                div = _aot_divisible(part) if aligned else ()
                if part == "fwd":
                    cases.append(_aot_fwd_case(label, ptr, prec, "relu+dropout", config, aligned, True, div))
                else:
                    cases += [
                        _aot_bwd_case(label, ptr, prec, "tanh+dropout", p, config, aligned, False, True, div)
                        for p in (0, 1)
                    ]
    return cases


register_aot(*_aot_cases())


# ---------------------------------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------------------------------


def _dot_precision(dtype: torch.dtype) -> str:
    return precision.dot_precision() if dtype == torch.float32 else "tf32"  # ignored for 16-bit inputs


def _epilogue_split(act: Activation, rate: float) -> int:
    """Column slices of the forward epilogue: 2 where it is heavy (a saved derivative or Philox), else 1."""
    return 1 if INTERPRETING or (rate == 0.0 and not act.needs_preactivation) else 2


def _grad_source(act: Activation, rate: float) -> int:
    if act.needs_preactivation:
        return _FROM_SAVED
    if act.name == "linear" and rate == 0.0:
        return _FROM_NONE
    return _FROM_OUTPUT


def _saturated_output(act: Activation, scale: float, dtype: torch.dtype) -> float:
    """The saved output of a saturated relu6 (6) or hard_sigmoid (1), as the forward epilogue rounds it."""
    top = 6.0 if act.name == "relu6" else 1.0
    one = torch.tensor(top, dtype=torch.float32) * torch.tensor(scale, dtype=torch.float32)
    return float(one.to(dtype).float())


def dense_fwd(
    x2: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor | None,
    act: Activation,
    rate: float,
    seed: int | torch.Tensor,
    config: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the forward: ``y`` (M, N) and, for pre-activation rows, ``act'(z) * keep * scale`` (M, N). ``seed``:
    an int, or a device seed (a 0-dim int64 tensor the kernel loads; kernels/dropout.py)."""
    m, k = x2.shape
    n = kernel.shape[1]
    y = torch.empty((m, n), dtype=x2.dtype, device=x2.device)
    g = torch.empty_like(y) if act.needs_preactivation else None
    b = bias.contiguous() if bias is not None else y  # a dummy pointer when there is no bias
    config = dict(config) if config is not None else None
    split = config.pop("EPILOGUE_SPLIT", None) if config is not None else None
    aligned = _aligned(k, n, x2, kernel)
    key, key_ptr, device_seed = seed_args(seed if rate > 0.0 else 0, y)
    kern = _launcher("fwd", x2.dtype, x2.device, config, aligned, device_seed)

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)

    kern(grid)(
        x2, kernel, b, y, g if g is not None else y,
        m, n, k,
        x2.stride(0), x2.stride(1), kernel.stride(0), kernel.stride(1),
        key, key_ptr, keep_threshold(rate), 1.0 / (1.0 - rate),
        ACTIVATION=act.id,
        HAS_BIAS=bias is not None,
        SAVE_GRAD=g is not None,
        HAS_DROPOUT=rate > 0.0,
        DEVICE_SEED=device_seed,
        PRECISION=_dot_precision(x2.dtype),
        EPILOGUE_SPLIT=split or _epilogue_split(act, rate),
        WIDE_INDEX=m * n >= 2**31,
        ALIGNED=aligned,
    )  # fmt: skip
    return y, g


def dense_bwd(
    dy2: torch.Tensor,
    aux: torch.Tensor | None,
    x2: torch.Tensor,
    kernel: torch.Tensor,
    act: Activation,
    rate: float,
    seed: int | torch.Tensor,
    *,
    has_bias: bool,
    need_dx: bool = True,
    need_dw: bool = True,
    config: dict | None = None,
    dw_into: torch.Tensor | None = None,
    db_into: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Launch the backward GEMMs: ``dx`` (M, K), ``dkernel`` (K, N) and ``dbias`` (N,), each only if needed.

    ``dw_into`` (and ``db_into`` when there is a bias): fp32 tensors (the parameters' ``.grad`` views into the
    optimizer's flat buffer) to which the dkernel launch adds dkernel and dbias in place, returning both as None;
    when ``dw_into`` is not contiguous or a bias has no ``db_into``, both are returned fresh instead."""
    m, k = x2.shape
    n = kernel.shape[1]
    source = _grad_source(act, rate)
    scale = 1.0 / (1.0 - rate)
    aux_t = aux if aux is not None else dy2  # a dummy pointer when nothing was saved
    regen = source == _FROM_OUTPUT and rate > 0.0 and not act.zero_safe
    key, key_ptr, device_seed = seed_args(seed if regen else 0, dy2)  # the seed is read only to regenerate
    common = dict(
        ACTIVATION=act.id,
        GRAD_FROM=source,
        DROPOUT_REGEN=regen,
        DEVICE_SEED=device_seed,
        PRECISION=_dot_precision(x2.dtype),
        WIDE_INDEX=m * n >= 2**31,
        ALIGNED=_aligned(k, n, dy2, aux_t, x2, kernel),
    )
    sat = _saturated_output(act, scale, x2.dtype) if act.name in ("relu6", "hard_sigmoid") else 0.0
    args_tail = (key, key_ptr, keep_threshold(rate), scale, 1.0 - rate, sat)
    dx = dw = db = None
    if need_dx:
        dx = torch.empty((m, k), dtype=x2.dtype, device=x2.device)
        grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(k, meta["BLOCK_N"]),)  # noqa: E731
        _launcher("bwd_dx", x2.dtype, x2.device, config, common["ALIGNED"], device_seed)(grid)(
            dy2, aux_t, x2, kernel, dx, dx,
            m, n, k,
            dy2.stride(0), dy2.stride(1), x2.stride(0), x2.stride(1), kernel.stride(0), kernel.stride(1),
            *args_tail, HAS_BIAS=False, PART=0, **common,
        )  # fmt: skip
    # The dkernel launch writes dkernel and dbias both in place or both fresh.
    into = dw_into is not None and dw_into.is_contiguous() and (db_into is not None or not has_bias)
    if need_dw or has_bias:
        if into:
            dw, db = dw_into, db_into if has_bias else dw_into
        else:
            dw = torch.empty((k, n), dtype=kernel.dtype, device=x2.device)
            db = torch.empty((n,), dtype=torch.float32, device=x2.device) if has_bias else dw
        grid = lambda meta: (triton.cdiv(k, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)  # noqa: E731
        name = "bwd_dw_acc" if into else "bwd_dw"
        _launcher(name, x2.dtype, x2.device, config, common["ALIGNED"], device_seed)(grid)(
            dy2, aux_t, x2, kernel, dw, db,
            m, n, k,
            dy2.stride(0), dy2.stride(1), x2.stride(0), x2.stride(1), kernel.stride(0), kernel.stride(1),
            *args_tail, HAS_BIAS=has_bias, PART=1, ACCUMULATE=into, **common,
        )  # fmt: skip
        if into:
            return dx, None, None
        db = db.to(x2.dtype) if has_bias else None
    return dx, dw, db


# ---------------------------------------------------------------------------------------------------------------
# The same two halves in torch: the CPU path, built from the same activation table (so gradcheck checks the table)
# ---------------------------------------------------------------------------------------------------------------


# Activations applied in place to the fresh GEMM output where the backward needs only the output (not z).
_IN_PLACE = {"relu": torch.relu_, "sigmoid": torch.sigmoid_, "tanh": torch.tanh_, "exponential": torch.exp_}

# torch.ops.mkldnn._linear_pointwise (oneDNN's fused linear + bias + relu) was measured against addmm + relu_ on the
# 2-core EPYC (torch 2.13, 2 threads, best of 20x5 calls): 128x784x512 1257 vs 1262 us, 128x512x512 841 vs 837 us,
# 128x512x10 96 vs 81 us, 32x64x32 68 vs 15 us (and its dx GEMM, 32x64x32, 50 vs 15 us). Never faster beyond noise,
# 4x slower for the seed model's shapes: the torch path uses addmm, and bench/README.md records the numbers.


def _torch_affine(x2: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x2 @ kernel + bias`` with the bias fused into the GEMM (addmm). 16-bit inputs are computed in fp32 (the
    result stays fp32, to be rounded once at the end), like the Triton kernels' fp32 accumulator."""
    ct = torch.float32 if x2.dtype in (torch.bfloat16, torch.float16) else x2.dtype
    xc, wc = _as(x2, ct), _as(kernel, ct)
    return torch.addmm(_as(bias, ct), xc, wc) if bias is not None else torch.mm(xc, wc)


def torch_dense_fwd(x2, kernel, bias, act: Activation, rate: float, seed: int | torch.Tensor):
    """``(y, saved)``: the output and what :func:`torch_dense_bwd` needs. The bias is fused into the GEMM, the
    activation applied in place where the backward reads only its output, and the dropout mask applied in place."""
    z = _torch_affine(x2, kernel, bias)
    # What the backward needs: z for pre-activation rows, y (before dropout) otherwise; under dropout, the whole
    # factor act' * keep * scale, so that the backward neither regenerates the mask nor evaluates act' again:
    # dz = dy * saved. The mask is the torch path's (PCG64 on a CPU with an int seed, Philox on a GPU or with a
    # device seed: kernels/dropout.py).
    # relu keeps nothing but its output, dropout included: the dropped output is 0, the kept one positive exactly
    # where relu' is 1, so dz = threshold_backward(dy, y, 0) * scale.
    if act.needs_preactivation:
        y = act.forward(z)
        saved = z
    else:
        in_place = _IN_PLACE.get(act.name)
        y = saved = in_place(z) if in_place is not None else act.forward(z)  # z is this function's own tensor
    if rate > 0.0:
        keep = torch_dropout_mask(seed, rate, tuple(y.shape), y.device)
        scale = 1.0 / (1.0 - rate)
        if act.name == "relu":  # the same bits as torch.where(keep, y * scale, 0), without the copies
            y = saved = y.masked_fill_(~keep, 0.0).mul_(scale)
        else:
            zero = torch.zeros((), dtype=y.dtype, device=y.device)
            saved = torch.where(keep, act.derivative(saved) * scale, zero)
            y = torch.where(keep, y * scale, zero)
    return _as(y, x2.dtype), saved


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t.to(dtype)`` without the call when it is already that dtype (a few us per call on the seed model)."""
    return t if t.dtype == dtype else t.to(dtype)


def _mm(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha * (a @ b)`` with alpha folded into the GEMM (beta = 0: the 0-d input is neither read nor copied)."""
    return torch.mm(a, b) if alpha == 1.0 else torch.addmm(a.new_zeros(()), a, b, beta=0.0, alpha=alpha)


def torch_dense_bwd(dy2, saved, x2, kernel, act: Activation, rate: float, need_dx, need_dw, has_bias,
               dw_into=None, db_into=None):  # fmt: skip
    """``(dx, dkernel, dbias)``; with ``dw_into`` / ``db_into`` (a parameter's ``.grad``), dkernel / dbias are
    accumulated into that tensor in place instead (one addmm_ / add_) and returned as None."""
    ct = saved.dtype
    dy = _as(dy2, ct)
    alpha = 1.0  # a factor of dz left to the GEMMs' alpha and the bias sum: relu's dropout scale
    if act.name == "relu":
        dz = torch.ops.aten.threshold_backward(dy, saved, 0)  # dy where y > 0, else 0: one pass
        alpha = 1.0 / (1.0 - rate) if rate > 0.0 else 1.0
    elif rate > 0.0:
        dz = dy * saved  # saved = act' * keep * scale
    elif act.name == "linear":
        dz = dy
    else:
        dz = dy * act.derivative(saved)
    dx = _as(_mm(dz, _as(kernel, ct).t(), alpha), x2.dtype) if need_dx else None
    dw = db = None
    if dw_into is not None:
        dw_into.addmm_(_as(x2, ct).t(), dz, alpha=alpha)
    elif need_dw:
        dw = _as(_mm(_as(x2, ct).t(), dz, alpha), x2.dtype)
    if has_bias:
        db = dz.sum(0)
        if db_into is not None:
            db_into.add_(db, alpha=alpha)
            db = None
        else:
            db = _as(db if alpha == 1.0 else db.mul_(alpha), x2.dtype)
    return dx, dw, db


# ---------------------------------------------------------------------------------------------------------------
# Gradients straight into the optimizer's flat buffer (torch path)
# ---------------------------------------------------------------------------------------------------------------
# The optimizer (tritonnn/optimizers) makes each parameter's .grad a view into one flat fp32 buffer and marks the
# parameter (the contract and its marker: kernels/flat_grad.py). For such a kernel or bias, the torch-path backward
# adds dkernel / dbias into .grad itself (addmm_ with beta = 1: the GEMM's own accumulate) and returns None for it,
# so autograd's AccumulateGrad, which would do the same in-place ``.grad += d`` as a separate pass over the
# gradient, receives nothing and does nothing. That is the same result (AccumulateGrad adds in place whenever .grad
# exists and the backward does not build a graph), and it holds only when AccumulateGrad would have run;
# ``flat_grad.flat_grad_target`` checks each condition (the fused MLP's backward asks the same):
#   - a plain backward (no create_graph: grad mode is off), and the parameter is the one AccumulateGrad node of
#     this input (not a cast copy under mixed precision);
#   - the engine will run that node: torch._C._will_engine_execute_node (False for backward(inputs=...) without
#     it; a RuntimeError when torch.autograd.grad captures the parameter's gradient, which must then be returned);
#   - .grad exists, is a strided tensor of the parameter's dtype, shape and device, and no tensor hook or
#     post-accumulate hook waits for the gradient.
# Weight sharing (a Dense called twice) and retain_graph repeat the add like AccumulateGrad would; anything else
# (optimizer not built, .grad replaced or None) takes the normal return.


def _flat_grad_param(t: torch.Tensor | None, ct: torch.dtype) -> torch.Tensor | None:
    """``t`` itself when it is an optimizer-managed leaf whose gradient the torch backward may write in place."""
    if t is None or not is_flat_grad_leaf(t) or t.dtype != ct:
        return None
    return t


# ---------------------------------------------------------------------------------------------------------------
# Autograd
# ---------------------------------------------------------------------------------------------------------------


class DenseFunction(torch.autograd.Function):
    """``dropout(act(x @ kernel + bias))`` with a fused forward and a fused backward.

    Save vs recompute: x and kernel are saved (they are alive anyway). Of the (M, N) tensors, the Triton path saves
    the output y when act' is a function of it (no extra memory: it is the returned tensor), ``act'(z) * keep *
    scale`` when it is not, and nothing for linear; the dropout mask is never saved (see the module docstring). A
    device seed is saved as a tensor (the backward regenerates the mask from it; never read on the host).

    The torch path (CPU, float64, empty shapes) is :func:`torch_dense_fwd` / :func:`torch_dense_bwd`: addmm with the
    bias, the activation in place, relu (dropout included) differentiated from its output alone, and, for a kernel or
    bias that lives in an optimizer's flat buffer, dkernel / dbias added straight into ``.grad`` (see "Gradients
    straight into the optimizer's flat buffer" above).
    """

    @staticmethod
    def forward(ctx, x, kernel, bias, activation: str, rate: float, seed: int | torch.Tensor, on_triton: bool):
        act = ACTIVATIONS[activation]
        lead, k, n = x.shape[:-1], x.shape[-1], kernel.shape[1]
        x2 = x if x.dim() == 2 else x.reshape(-1, k)
        device_seed = seed if is_device_seed(seed) else None
        if on_triton:
            y2, g = dense_fwd(x2, kernel, bias, act, rate, seed)
            y = y2.view(*lead, n)
            source = _grad_source(act, rate)
            aux = g if source == _FROM_SAVED else y if source == _FROM_OUTPUT else None
            ctx.save_for_backward(x2, kernel, aux, device_seed)
            ctx.flat_params = (_flat_grad_param(kernel, torch.float32), _flat_grad_param(bias, torch.float32))
        else:
            y2, saved = torch_dense_fwd(x2, kernel, bias, act, rate, seed)
            y = y2 if x.dim() == 2 else y2.view(*lead, n)
            ctx.save_for_backward(x2, kernel, saved, None)  # the saved factor holds the mask: no seed needed
            ct = saved.dtype
            ctx.flat_params = (_flat_grad_param(kernel, ct), _flat_grad_param(bias, ct))
        ctx.act, ctx.rate, ctx.on_triton, ctx.has_bias = act, rate, on_triton, bias is not None
        ctx.seed = None if device_seed is not None else seed
        ctx.x_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, dy):
        x2, kernel, saved, device_seed = ctx.saved_tensors
        n = kernel.shape[1]
        dy2 = dy if dy.dim() == 2 else dy.reshape(-1, n)
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        kernel_param, bias_param = ctx.flat_params
        dw_into = flat_grad_target(ctx, 1, kernel_param) if need_dw else None
        db_into = flat_grad_target(ctx, 2, bias_param) if need_db else None
        if ctx.on_triton:
            aux = saved.reshape(-1, n) if saved is not None else None
            seed = device_seed if device_seed is not None else ctx.seed
            dx, dw, db = dense_bwd(
                dy2, aux, x2, kernel, ctx.act, ctx.rate, seed, has_bias=ctx.has_bias, need_dx=need_dx,
                need_dw=need_dw, dw_into=dw_into, db_into=db_into,
            )  # fmt: skip
        else:
            dx, dw, db = torch_dense_bwd(
                dy2, saved, x2, kernel, ctx.act, ctx.rate, need_dx, need_dw and dw_into is None,
                ctx.has_bias and need_db, dw_into=dw_into, db_into=db_into,
            )  # fmt: skip
        dx = (dx if dx.dim() == len(ctx.x_shape) else dx.view(ctx.x_shape)) if need_dx else None
        return dx, dw if need_dw else None, db if need_db else None, None, None, None, None


# ---------------------------------------------------------------------------------------------------------------
# The public op
# ---------------------------------------------------------------------------------------------------------------

_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _validate(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> None:
    for name, t in (("x", x), ("kernel", kernel), ("bias", bias)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise ValueError(f"dense: {name} must be a torch.Tensor. Received: {name}={type(t).__name__}")
    if kernel.dim() != 2:
        raise ValueError(f"dense: kernel must be 2-D (in, out). Received: kernel.shape={tuple(kernel.shape)}")
    if x.dim() < 1 or x.shape[-1] != kernel.shape[0]:
        raise ValueError(
            f"dense: the last dimension of x must equal kernel.shape[0]={kernel.shape[0]}. "
            f"Received: x.shape={tuple(x.shape)}"
        )
    if not x.dtype.is_floating_point:
        raise ValueError(f"dense: x must be a floating-point tensor. Received: x.dtype={x.dtype}")
    for name, t in (("kernel", kernel), ("bias", bias)):
        if t is None:
            continue
        if t.device != x.device:
            raise ValueError(f"dense: {name} must be on x's device {x.device}. Received: {name}.device={t.device}")
        if t.dtype != x.dtype:
            raise ValueError(f"dense: {name} must have x's dtype {x.dtype}. Received: {name}.dtype={t.dtype}")
    if bias is not None and tuple(bias.shape) != (kernel.shape[1],):
        raise ValueError(f"dense: bias must have shape ({kernel.shape[1]},). Received: bias.shape={tuple(bias.shape)}")


def dense(
    x: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    *,
    dropout_rate: float = 0.0,
    dropout_seed: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """``act(x @ kernel + bias)``, then (when ``dropout_rate > 0``) Keras' inverted dropout, fused.

    Args:
        x: ``(..., in)``.
        kernel: ``(in, out)``, as in Keras.
        bias: ``(out,)`` or None.
        activation: a name from ``ACTIVATIONS`` or an alias (``"swish"``, ...); None is linear.
        dropout_rate: drop probability of the Dropout layer that follows (training mode); 0 fuses nothing.
        dropout_seed: the mask's seed: a Python int (None draws one), or a device seed (a 0-dim int64 tensor on
            x's device, never read on the host, so the call can be captured in a CUDA graph); the mask equals
            ``dropout(y, rate, seed)``'s bit for bit on the same backend (Philox in the Triton kernels, on a GPU and
            for a device seed; PCG64 on the CPU torch path with an int seed: kernels/dropout.py).

    Returns ``(..., out)`` in x's dtype. float64 (and any shape with a zero-sized dimension) takes the torch path.
    """
    activation = canonical(activation)
    _validate(x, kernel, bias)
    rate = check_rate(dropout_rate)
    seed = check_seed(dropout_seed, x.device) if rate > 0.0 else 0
    on_triton = _backend.use_triton(x) and x.dtype in _TRITON_DTYPES and x.numel() > 0 and kernel.numel() > 0
    if not on_triton and rate == 0.0 and (x.numel() // max(1, x.shape[-1])) * kernel.numel() <= NATIVE_MAX_MACS:
        return _native_dense(x, kernel, bias, ACTIVATIONS[activation])
    return DenseFunction.apply(x, kernel, bias, activation, rate, seed, on_triton)


# The torch path of a small layer without dropout is built from native autograd ops (addmm, the activation), whose
# backward runs in C++: below about 4M multiply-adds the Python of DenseFunction's forward and backward costs more
# than the arithmetic it saves. Measured on the 2-core EPYC (torch 2.13), forward + backward of one relu layer:
# 32x64x32 231 vs 373 us, 128x512x10 538 vs 718 us, 128x128x128 512 vs 630 us; 256x256x256 3288 vs 2266 us and
# 128x512x512 4199 vs 4280 us (DenseFunction's relu gradient from its output and its gradients written straight
# into the optimizer's flat buffer win there). Same arithmetic as torch_dense_fwd (16-bit inputs computed in fp32).
NATIVE_MAX_MACS = 1 << 22


def _native_dense(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, act: Activation) -> torch.Tensor:
    z = _torch_affine(x if x.dim() == 2 else x.reshape(-1, x.shape[-1]), kernel, bias)
    y = _as(act.forward(z), x.dtype)
    return y if x.dim() == 2 else y.view(*x.shape[:-1], kernel.shape[1])
