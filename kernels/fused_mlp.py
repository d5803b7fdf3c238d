"""Fused MLP: a whole stack of narrow Dense layers in one kernel per pass, the activations never leaving the chip.

For the narrow MLPs this engine trains (the seed model 64-32-10, 64-64-64 stacks) the FLOPs are tiny and every
framework pays a kernel or more per layer per pass, each writing and re-reading its activations through DRAM.
tiny-cuda-nn's "fully fused" MLP (Mueller et al. 2021, "Real-time Neural Radiance Caching for Path Tracing") keeps a
block of the batch on chip and runs all the layers in one kernel; this is that idea in Triton.

Forward (one launch; one program per BLOCK_M rows; every weight read once per program):
    h_0 = x ;  z_l = h_l @ W_l + b_l ;  h_{l+1} = keep_l * act_l(z_l) / (1 - rate_l)      l = 0 .. L-1
    keep_l = Philox(seed_l, m * N_l + n) >> 1 >= round(rate_l * 2**31): kernels.dropout(h, rate_l, seed_l)'s mask on
    the Triton backend (the row-major index into that layer's (M, N_l) output). The first layer is K-looped over the
    input width in BLOCK_K chunks; the others are one tl.dot each, on tiles padded to powers of two. h_l enters the
    next tl.dot in the input dtype (bf16 rounded as the per-layer path stores it), z_l accumulates in fp32, the
    activation (kernels/activations.py: activation_fwd) and the dropout run on the fp32 accumulator. Output: the
    logits h_L, or with a fused loss the loss itself (the tiles' sums added in tile order by the last program to
    finish) and, unless asked for (return_logits), no (M, N) tensor at all.

Backward (one launch per chunk of rows, two when the partials are large; one program per BLOCK_M rows):
recompute the tile's forward (below: why), then walk back
    g = d loss / d h_L: the incoming dy, or fused: softmax cross-entropy with integer labels (softmax(h_L) - onehot)/M,
        mean squared error 2 (h_L - t) / (M N_L) (Keras' sum_over_batch_size), times the scalar d loss read on the
        device (no host sync)
    for l = L-1 .. 0:  dz = g * act_l'(z_l) * keep_l / (1 - rate_l) ;  dW_l = h_l^T dz ;  db_l = sum_rows dz ;
                       g = dz @ W_l^T   (g = dX at l = 0, written only when x needs it)
act_l' comes from the output for relu, is 1 for linear, and otherwise from z_l recomputed from the kept h_l (one
more tl.dot and epilogue, the same Philox mask) when the walk reaches layer l: only the hidden outputs h_l stay in
registers (AOT: keeping every act_l' tile spilled). The row sums dW_l, db_l are deterministic without float atomics:
each program stores its tile's contribution, once, in its own fp32 slot of a (tiles, P) partial buffer (P: the
number of parameters), and the slots are summed column by column in slot order, whoever sums them: the last program
to finish (an int32 arrival counter, acq_rel, reset by that program) when tiles * P * 4 <= REDUCE_HERE_BYTES, else
a second, column-parallel launch. The sum goes straight into the optimizer's flat gradient buffer when the
parameters are flat-gradient leaves (kernels/flat_grad.py; it adds into their ``.grad`` and returns None for them,
as dense's backward does), else into fresh gradients.

Launches per training step (forward + backward + the optimizer's own one): 3 while the partials fit
REDUCE_HERE_BYTES (the seed model up to batch 1728: 27 tiles of 64 rows of 9.6 KB each; fused_mlp_supported states
the batch for each network), 4 above (the reduce launch); above PARTIAL_BUDGET_BYTES of partials (the seed model at
445K rows) the backward is split into launches of that many rows, each adding to the gradients.

Bytes, save vs recompute (decided by bytes; no GPU here to time it). The backward needs, per layer, its input h_l
and act_l'. Saving them costs a write in the forward and a read in the backward of every hidden activation (and of
act'(z) for gelu-like rows); recomputing costs one more forward's FLOPs and no bytes, since the backward reads x
anyway (dW_0 = x^T dz_0). Seed model 64-32-10 (one hidden layer of 32), fp32:
    batch  4096: save = 4096 * 32 * 4 B written + read = 0.5 MiB + 0.5 MiB = 1 MiB more (relu; 2 MiB for gelu),
                 and 0.5 MiB held between the passes; recompute = 0 B and 19.4 MFLOP more.
    batch 65536: save = 8 + 8 = 16 MiB more (32 MiB for gelu), 8 MiB held; recompute = 0 B, 310 MFLOP more.
    Both ways the step reads x twice (2 x 1 MiB / 2 x 16 MiB; the second read is L2-warm only for small batches)
    and dy or the labels once. At H100 rates 16 MiB is ~5 us of HBM and 310 MFLOP ~0.5 us on the bf16/tf32 tensor
    cores (~5 us on the IEEE FMA units): recompute wins for tf32 and bf16, ties for IEEE fp32, and never holds the
    (M, N) activations. So the forward saves only its inputs (x, weights, biases, labels: alive anyway).
The price of fusing the weight gradients is the partial buffer: tiles * P * 4 bytes written and read again, i.e.
8 P / BLOCK_M bytes per row against x's K * b. Seed model (P = 2410, BLOCK_M = 64): 301 B/row vs x's 256 (fp32) or
128 (bf16); 64-64-64-64-10 (P = 13.1K, BLOCK_M 32 / 16 in bf16 / tf32): 3.3 / 6.6 KB/row, 784-64-64-10 (P = 55K):
14-28 KB/row. Small batches keep it in L2; for wide layers at large batches the per-layer path's dkernel GEMMs (which
accumulate over rows in registers) move fewer bytes: bench/fused_mlp.py measures where the line falls.

Bounds (one place: MAX_LAYERS, MAX_WIDTH, MAX_INPUT_WIDTH, WIDTH_BUDGET, MAX_DROPOUTS, and TF32_MAX_DROPOUTS,
IEEE_MAX_LAYERS / IEEE_WIDTH_BUDGET; checked by :func:`fused_mlp_supported`, and by :func:`fused_mlp` with a
ValueError): 1 to 4 layers; every layer's width (hidden and last) at most 64, padded to a power of two >= 16 (tl.dot's
minimum); the padded widths summing to at most 208 (64-64-64-64-10); the input width at most 1024, K-looped; at most
2 layers with a fused dropout (1 for float32). Chosen from the ahead-of-time compile under both triton 3.6 (the
GPU image's) and 3.9, sm_80 and sm_90 (FWD_BLOCKS / BWD_BLOCKS list the registers of the worst networks within
them): the backward keeps every hidden output and one (P_in x P_out) fp32 dW tile in registers, so its budget is in
the sum of the widths, not in any one of them; 1024-128-128-128-128 spilled 600+ B even at BLOCK_M 32, and under
3.6 every 128-wide stack with dropout spilled in the forward (1.4-1.6 KB for 784-128-128-10 bf16), as did three
dropouts at width 64 (0.4-1 KB): each fused dropout's Philox rounds hold 60-90 registers there. IEEE fp32 (float32
at precision "highest": tl.dot on the FMA units, operands in registers) fuses two layers summing to 80 (the seed
model, 784-64-10); beyond that float32 runs the per-layer path unless TF32 is allowed
(``set_float32_matmul_precision("high")``). dtypes: float32 and bfloat16 with fp32 accumulation; float64, float16
and empty batches run the per-layer reference.
"""

from __future__ import annotations

import dataclasses

import torch

from . import _backend, precision, xent
from ._aot import AotCase, register_aot
from ._triton import INTERPRETING, tl, triton
from .activations import ACTIVATIONS, activation_fwd, canonical
from .dense import dense
from .dropout import check_rate, check_seed, keep_threshold
from .flat_grad import flat_grad_target
from .fused_mlp_torch import TorchMLPFunction
from .xent import softmax_cross_entropy

# ---------------------------------------------------------------------------------------------------------------
# Bounds, in one place (chosen from the ahead-of-time compile: see FWD_BLOCKS / BWD_BLOCKS below)
# ---------------------------------------------------------------------------------------------------------------
MAX_LAYERS = 4  # Dense layers in one fused stack
MAX_WIDTH = 64  # every layer's output width (hidden and last), padded to a power of two >= 16
MAX_INPUT_WIDTH = 1024  # the first layer's input width (K-looped, BLOCK_K at a time: it costs time, not registers)
WIDTH_BUDGET = 208  # the layers' padded output widths, summed: 64-64-64-64-10 = 64 + 64 + 64 + 16
MAX_DROPOUTS = 2  # layers with a fused dropout (rate > 0) in one stack (16-bit inputs)
TF32_MAX_DROPOUTS = 1  # float32 (TF32 or IEEE): its fp32 operands hold twice the registers of bf16 ones
# Why these and not more (AOT under triton 3.6, the GPU image's version; 3.9 fitted more): every 128-wide stack with a
# dropout after a layer other than the first spilled in the forward at every tile tried (784-128-128-10 bf16 with
# dropout + cross-entropy: 1380 B on sm_90, 1648 B on sm_80 at (64, 8); 862 / 764 B at (64, 4); 3.5-7 KB at 16 warps),
# and three dropouts spilled even at width 64 and 32 (64-64-64-64-10 tf32 at (64, 8): 628 B sm_90, 1052 B sm_80;
# 32-32-32-32-10 at (128, 4): 84-120 B): each fused dropout's Philox4x32-10 rounds cost 60-90 registers per thread
# in that compile; TF32's forward spilled with two (1024-64-64-64-16: 1060 / 872 B at (64, 8); 0-644 B at (64, 4) and
# (128, 8)), bf16's fits two. Within these bounds the worst networks compile spill-free on sm_80 and sm_90 under
# both versions.
MIN_PAD = 16  # tl.dot needs every dimension >= 16
DTYPES = (torch.float32, torch.bfloat16)  # what the kernels run; float64 / float16 take the reference path
# IEEE fp32 (float32 at set_float32_matmul_precision("highest")) runs tl.dot on the FMA units, whose operands live in
# registers: the seed model and other two-layer stacks fit (1024-64-16 backward 170 / 168 registers on sm_80 / sm_90),
# three 32-wide layers already spilled (64-32-32-10: 104 B) and 64-64-64-64-10 spilled 9-30 KB. Beyond these bounds
# float32 runs the per-layer path unless TF32 ("high") is allowed; bf16 and TF32 take the full bounds above.
IEEE_MAX_LAYERS = 2
IEEE_WIDTH_BUDGET = 80  # 64 + 16

# Fused losses: canonical name -> LOSS constexpr, and the spellings accepted for each.
LOSSES = {"softmax_cross_entropy": 1, "mean_squared_error": 2}
LOSS_ALIASES = {
    "sparse_categorical_crossentropy": "softmax_cross_entropy",
    "xent": "softmax_cross_entropy",
    "mse": "mean_squared_error",
}

# The backward's last program sums the (tiles, P) partials itself when they are at most this many bytes (one program
# reading 256 KB from L2 is ~1-2 us, about what a second launch costs); above it a column-parallel second launch
# does. Not measured (no GPU here): bench/fused_mlp.py times both sides of it.
REDUCE_HERE_BYTES = 256 * 1024
# At most this much (tiles, P) partial buffer per backward launch: larger batches are split into launches of as many
# rows (the seed model: 445K rows per launch; 784-128-128-10 in tf32: 2.2K rows, 30 launches at batch 65536, where the
# per-layer path's dkernel GEMMs, accumulating over rows in registers, move far fewer bytes).
PARTIAL_BUDGET_BYTES = 64 * 1024 * 1024

# ---------------------------------------------------------------------------------------------------------------
# Reference: the per-layer path (kernels.dense chain and the unfused loss), the spec and the fallback
# ---------------------------------------------------------------------------------------------------------------


def fused_mlp_reference(
    x: torch.Tensor,
    kernels: list[torch.Tensor],
    biases: list[torch.Tensor | None],
    activations: list[str | None],
    *,
    dropout_rates: list[float] | None = None,
    dropout_seeds: list[int] | None = None,
    loss: str | None = None,
    targets: torch.Tensor | None = None,
    return_logits: bool = False,
):
    """The same function, one kernels.dense per layer (its fused dropout included) and the loss after: what the
    torch backend, CPU tensors off the interpreter, float64 / float16 and empty batches run."""
    h = x
    for i, (w, b, act) in enumerate(zip(kernels, biases, activations, strict=True)):
        rate = dropout_rates[i] if dropout_rates is not None else 0.0
        seed = dropout_seeds[i] if dropout_seeds is not None and rate > 0.0 else None
        h = dense(h, w, b, act, dropout_rate=rate, dropout_seed=seed if rate > 0.0 else None)
    if loss is None:
        return h
    if loss == "softmax_cross_entropy":
        value = softmax_cross_entropy(h, targets)
    else:
        ct = torch.promote_types(h.dtype, torch.float32)
        value = (h.to(ct) - targets.to(ct)).square().mean()
    return (value, h) if return_logits else value


# ---------------------------------------------------------------------------------------------------------------
# Triton kernels
# ---------------------------------------------------------------------------------------------------------------

# The interpreter computes bf16 tiles wrongly (uint16 bit patterns in numpy): upcast right after each load when
# interpreting, and keep the operands fp32. On a GPU the operands are in the input dtype, for the tensor cores.
_UPCAST = tl.constexpr(INTERPRETING)
_NONE = tl.constexpr(0)
_LINEAR = tl.constexpr(ACTIVATIONS["linear"].id)
_RELU = tl.constexpr(ACTIVATIONS["relu"].id)
_XENT = tl.constexpr(LOSSES["softmax_cross_entropy"])
_MSE = tl.constexpr(LOSSES["mean_squared_error"])


@triton.jit
def _operand(t, dtype_ptr):
    """An fp32 tile as a tl.dot operand: in the input dtype (what the per-layer path stores between layers)."""
    if _UPCAST:
        return t
    return t.to(dtype_ptr.dtype.element_ty)


@triton.jit
def _load_weight(w_ptr, K: tl.constexpr, N: tl.constexpr, KP: tl.constexpr, NP: tl.constexpr):
    """The (KP, NP) tile of a contiguous (K, N) weight, zero past its edges (so padded rows and columns add 0)."""
    offs_k = tl.arange(0, KP)
    offs_n = tl.arange(0, NP)
    mask = (offs_k[:, None] < K) & (offs_n[None, :] < N)
    w = tl.load(w_ptr + offs_k[:, None] * N + offs_n[None, :], mask=mask, other=0.0)
    if _UPCAST:
        w = w.to(tl.float32)
    return w


@triton.jit
def _load_weight_t(w_ptr, K: tl.constexpr, N: tl.constexpr, KP: tl.constexpr, NP: tl.constexpr):
    """The (NP, KP) transpose of :func:`_load_weight`'s tile, loaded as such (for dz @ W^T)."""
    offs_n = tl.arange(0, NP)
    offs_k = tl.arange(0, KP)
    mask = (offs_n[:, None] < N) & (offs_k[None, :] < K)
    w = tl.load(w_ptr + offs_k[None, :] * N + offs_n[:, None], mask=mask, other=0.0)
    if _UPCAST:
        w = w.to(tl.float32)
    return w


@triton.jit
def _dz(g, d, h_next, scale, ACTIVATION: tl.constexpr, HAS_DROPOUT: tl.constexpr):
    """dz = g * act'(z) * keep * scale. relu takes it from the layer's output h_next (positive exactly where z > 0
    and the element was kept), linear without dropout is g itself: neither keeps a d tile alive in registers."""
    if ACTIVATION == _RELU:
        return tl.where(h_next > 0, g * scale, 0.0)
    elif ACTIVATION == _LINEAR and not HAS_DROPOUT:
        return g
    else:
        return g * d


@triton.jit
def _backprop_layer(
    g, h_in, h_out, d_last, slot_ptr, w_ptr, b_ptr, rows, seed, threshold, scale,
    K: tl.constexpr, N: tl.constexpr, KP: tl.constexpr, NP: tl.constexpr,
    ACTIVATION: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_DROPOUT: tl.constexpr, IS_LAST: tl.constexpr,
    PRECISION: tl.constexpr, WIDE_INDEX: tl.constexpr, dtype_ptr,
):  # fmt: skip
    """One hidden or last layer of the walk back: ``g`` (d loss / d h_out, fp32) -> d loss / d h_in.

    act' comes from the recompute for the last layer (``d_last``), from the output h_out for relu, and otherwise
    from z = h_in @ W + b recomputed here (the same tl.dot and epilogue as the forward, the same Philox mask)."""
    if IS_LAST or ACTIVATION == _RELU or (ACTIVATION == _LINEAR and not HAS_DROPOUT):
        d = d_last
    else:
        z = tl.dot(h_in, _load_weight(w_ptr, K, N, KP, NP), tl.zeros((h_in.shape[0], NP), tl.float32),
                   input_precision=PRECISION)  # fmt: skip
        _, d = _epilogue(z, b_ptr, rows, seed, threshold, scale, N, ACTIVATION, HAS_BIAS, HAS_DROPOUT, True, NP,
                         WIDE_INDEX)  # fmt: skip
    dz = _dz(g, d, h_out, scale, ACTIVATION, HAS_DROPOUT)
    dz_op = _operand(dz, dtype_ptr)
    _store_partial(slot_ptr, h_in, dz_op, K, N, KP, NP, PRECISION)
    if HAS_BIAS:
        _store_bias_partial(slot_ptr + K * N, dz, N, NP)
    return tl.dot(dz_op, _load_weight_t(w_ptr, K, N, KP, NP), tl.zeros((h_in.shape[0], KP), tl.float32),
                  input_precision=PRECISION)  # fmt: skip


@triton.jit
def _x_ptrs(x_ptr, offs_m, M, stride_xm, stride_xk, BLOCK_K: tl.constexpr, ALIGNED: tl.constexpr):
    """Pointers to the first BLOCK_K columns of x's rows offs_m. Rows past M wrap around (valid addresses; their
    results are masked wherever they could count). ALIGNED: runs of 16 contiguous elements, 16-element aligned
    (what the run-time specialisation of aligned arguments gives, spelt out for the ahead-of-time compile too)."""
    offs_k = tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + (offs_m % M).to(tl.int64)[:, None] * stride_xm + offs_k[None, :] * stride_xk
    if ALIGNED:
        x_ptrs = tl.max_contiguous(tl.multiple_of(x_ptrs, [1, 16]), [1, 16])
    return x_ptrs


@triton.jit
def _first_layer(
    x_ptr, w_ptr, offs_m, M, stride_xm, stride_xk,
    K: tl.constexpr, N: tl.constexpr, NP: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    ALIGNED: tl.constexpr,
):  # fmt: skip
    """``x[rows] @ W_0`` (BLOCK_M, NP) in fp32, K-looped over the input width."""
    offs_k = tl.arange(0, BLOCK_K)
    offs_n = tl.arange(0, NP)
    x_ptrs = _x_ptrs(x_ptr, offs_m, M, stride_xm, stride_xk, BLOCK_K, ALIGNED)
    w_ptrs = w_ptr + offs_k[:, None] * N + offs_n[None, :]
    acc = tl.zeros((offs_m.shape[0], NP), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K
        a = tl.load(x_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
        b = tl.load(w_ptrs, mask=(offs_k[:, None] < k_left) & (offs_n[None, :] < N), other=0.0)
        if _UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
        x_ptrs += BLOCK_K * stride_xk
        w_ptrs += BLOCK_K * N
    return acc


@triton.jit
def _epilogue(
    z, b_ptr, offs_m, seed, threshold, scale, N: tl.constexpr,
    ACTIVATION: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_DROPOUT: tl.constexpr, NEED_GRAD: tl.constexpr,
    NP: tl.constexpr, WIDE_INDEX: tl.constexpr,
):  # fmt: skip
    """``(h, d)``: h = keep * act(z + b) * scale with the padding columns zeroed, d = act'(z + b) * keep * scale
    (NEED_GRAD), both fp32. The dropout mask is kernels/dropout.py's: Philox on (seed, m * N + n)."""
    offs_n = tl.arange(0, NP)
    if HAS_BIAS:
        z = z + tl.load(b_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    h, d = activation_fwd(z, ACTIVATION, NEED_GRAD)
    if HAS_DROPOUT:
        if WIDE_INDEX:
            idx = offs_m.to(tl.int64)[:, None] * N + offs_n[None, :]
        else:
            idx = offs_m[:, None] * N + offs_n[None, :]  # int32 Philox counters: the same bits, cheaper
        keep = (tl.randint(seed, idx) >> 1).to(tl.int32) >= threshold
        h = tl.where(keep, h * scale, 0.0)
        if NEED_GRAD:
            d = tl.where(keep, d * scale, 0.0)
    # act(0) need not be 0 (sigmoid, exponential): zero the padding so that no later sum sees it.
    h = tl.where(offs_n[None, :] < N, h, 0.0)
    return h, d


@triton.jit
def _device_seeds(
    p0, p1, p2, p3, DROP0: tl.constexpr, DROP1: tl.constexpr, DROP2: tl.constexpr, DROP3: tl.constexpr
):  # fmt: skip
    """The layers' Philox keys from device memory (8 bytes each, once per program; 0 where a layer drops nothing)."""
    s0 = tl.load(p0) if DROP0 else 0
    s1 = tl.load(p1) if DROP1 else 0
    s2 = tl.load(p2) if DROP2 else 0
    s3 = tl.load(p3) if DROP3 else 0
    return s0, s1, s2, s3


@triton.jit
def _loss_rows(y, target_ptr, offs_m, M, stride_tm, N: tl.constexpr, LOSS: tl.constexpr, NP: tl.constexpr):
    """Per-row loss of the fp32 output tile (0 for rows past M): cross-entropy ``lse(y) - y[label]`` or the
    squared error ``sum_n (y - t)^2``."""
    offs_n = tl.arange(0, NP)
    row_ok = offs_m < M
    col_ok = offs_n[None, :] < N
    if LOSS == _XENT:
        # The label is only compared with column indices, never used as an address.
        label = tl.load(target_ptr + offs_m, mask=row_ok, other=0)
        zl = tl.where(col_ok, y, float("-inf"))
        m = tl.max(zl, axis=1)
        lse = m + tl.log(tl.sum(tl.exp(zl - m[:, None]), axis=1))
        zy = tl.sum(tl.where(offs_n[None, :] == label[:, None], y, 0.0), axis=1)
        row = lse - zy
    else:
        mask = row_ok[:, None] & col_ok
        t = tl.load(target_ptr + offs_m.to(tl.int64)[:, None] * stride_tm + offs_n[None, :], mask=mask, other=0.0)
        e = tl.where(mask, y - t.to(tl.float32), 0.0)
        row = tl.sum(e * e, axis=1)
    return tl.where(row_ok, row, 0.0)


@triton.jit
def _loss_grad(y, target_ptr, offs_m, M, stride_tm, coef, N: tl.constexpr, LOSS: tl.constexpr, NP: tl.constexpr):
    """d loss / d y for the fp32 output tile, times ``coef`` (dloss / M for cross-entropy, 2 dloss / (M N) for the
    squared error); 0 for rows past M and padding columns."""
    offs_n = tl.arange(0, NP)
    row_ok = offs_m < M
    mask = row_ok[:, None] & (offs_n[None, :] < N)
    if LOSS == _XENT:
        label = tl.load(target_ptr + offs_m, mask=row_ok, other=0)
        zl = tl.where(offs_n[None, :] < N, y, float("-inf"))  # rows past M hold finite (wrapped) values
        m = tl.max(zl, axis=1)
        e = tl.exp(zl - m[:, None])
        p = e / tl.sum(e, axis=1)[:, None]
        g = p - tl.where(offs_n[None, :] == label[:, None], 1.0, 0.0)
    else:
        t = tl.load(target_ptr + offs_m.to(tl.int64)[:, None] * stride_tm + offs_n[None, :], mask=mask, other=0.0)
        g = y - t.to(tl.float32)
    return tl.where(mask, g * coef, 0.0)


@triton.jit
def _last_to_arrive(count_ptr, n_programs):
    """Whether this program is the last of ``n_programs`` to get here; the last one resets the counter to 0 for the
    next launch. Every store this program made before is visible to the last one after (barrier, then one acq_rel
    atomic per program: the release/acquire pair of CUTLASS's semaphore), so it may read them with .cg loads."""
    tl.debug_barrier()
    arrived = tl.atomic_add(count_ptr, 1, sem="acq_rel", scope="gpu")
    last = arrived == n_programs - 1
    if last:
        tl.store(count_ptr, 0)
    return last


@triton.jit(do_not_specialize=["seed0", "seed1", "seed2", "seed3", "thr0", "thr1", "thr2", "thr3"])
def _fused_mlp_fwd_kernel(
    # inputs
    x_ptr,  # *[M, K] input, any strides
    w0_ptr, b0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr,  # *[K_l, N_l] contiguous weights, *[N_l] biases
    target_ptr,  # *int [M] labels (LOSS xent) or *[M, N_last] float targets, unit column stride (LOSS mse)
    # outputs
    out_ptr,  # *[M, N_last] the logits, contiguous (STORE_OUT)
    part_ptr,  # *fp32 [tiles] per-tile loss sums (LOSS)
    count_ptr,  # *i32 [1] arrival counter: 0 at launch, left 0 (LOSS)
    loss_ptr,  # *fp32 [1] the loss (LOSS)
    # sizes and scalars
    M,
    stride_xm, stride_xk, stride_tm,
    seed0, seed1, seed2, seed3,  # Philox keys of the fused dropouts (int seeds; unused with DEVICE_SEED)
    seed0_ptr, seed1_ptr, seed2_ptr, seed3_ptr,  # *i64 [] device seeds (DEVICE_SEED; else dummies, never read)
    thr0, thr1, thr2, thr3,  # i32: keep when randint >> 1 >= thr
    scale0, scale1, scale2, scale3,  # fp32: 1 / (1 - rate)
    loss_scale,  # fp32: 1 / M (cross-entropy) or 1 / (M N_last) (squared error)
    # network and block information: the kernels are specialised on the network's widths
    NUM_LAYERS: tl.constexpr,
    K: tl.constexpr,  # the input width
    N0: tl.constexpr, N1: tl.constexpr, N2: tl.constexpr, N3: tl.constexpr,  # each layer's output width
    N_OUT: tl.constexpr,  # the last layer's
    P0: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr, P3: tl.constexpr,  # padded to powers of two >= 16
    ACT0: tl.constexpr, ACT1: tl.constexpr, ACT2: tl.constexpr, ACT3: tl.constexpr,
    BIAS0: tl.constexpr, BIAS1: tl.constexpr, BIAS2: tl.constexpr, BIAS3: tl.constexpr,
    DROP0: tl.constexpr, DROP1: tl.constexpr, DROP2: tl.constexpr, DROP3: tl.constexpr,
    DEVICE_SEED: tl.constexpr,  # the dropout keys are the int64s at seed*_ptr (device seeds, for CUDA graphs)
    LOSS: tl.constexpr,  # 0: none, 1: softmax cross-entropy, 2: mean squared error
    STORE_OUT: tl.constexpr,
    PRECISION: tl.constexpr,  # tl.dot input_precision: "ieee" or "tf32" (fp32 only)
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    WIDE_INDEX: tl.constexpr,  # M * N_l >= 2**31 for some layer: int64 Philox counters
    ALIGNED: tl.constexpr,  # verified on the host: x's rows start 16-element aligned, unit column stride
):  # fmt: skip
    if ALIGNED:
        tl.assume(stride_xm % 16 == 0)
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    if DEVICE_SEED:
        seed0, seed1, seed2, seed3 = _device_seeds(
            seed0_ptr, seed1_ptr, seed2_ptr, seed3_ptr, DROP0, DROP1, DROP2, DROP3
        )

    # Layer 0: K-looped GEMM, then its epilogue on the fp32 accumulator.
    z = _first_layer(x_ptr, w0_ptr, offs_m, M, stride_xm, stride_xk, K, N0, P0, BLOCK_K, PRECISION, ALIGNED)
    h, _ = _epilogue(z, b0_ptr, offs_m, seed0, thr0, scale0, N0, ACT0, BIAS0, DROP0, False, P0, WIDE_INDEX)
    # Layers 1..L-1: each a single tl.dot of the on-chip activations with the whole (padded) weight.
    if NUM_LAYERS > 1:
        z = tl.dot(_operand(h, x_ptr), _load_weight(w1_ptr, N0, N1, P0, P1), tl.zeros((BLOCK_M, P1), tl.float32),
                   input_precision=PRECISION)  # fmt: skip
        h, _ = _epilogue(z, b1_ptr, offs_m, seed1, thr1, scale1, N1, ACT1, BIAS1, DROP1, False, P1, WIDE_INDEX)
    if NUM_LAYERS > 2:
        z = tl.dot(_operand(h, x_ptr), _load_weight(w2_ptr, N1, N2, P1, P2), tl.zeros((BLOCK_M, P2), tl.float32),
                   input_precision=PRECISION)  # fmt: skip
        h, _ = _epilogue(z, b2_ptr, offs_m, seed2, thr2, scale2, N2, ACT2, BIAS2, DROP2, False, P2, WIDE_INDEX)
    if NUM_LAYERS > 3:
        z = tl.dot(_operand(h, x_ptr), _load_weight(w3_ptr, N2, N3, P2, P3), tl.zeros((BLOCK_M, P3), tl.float32),
                   input_precision=PRECISION)  # fmt: skip
        h, _ = _epilogue(z, b3_ptr, offs_m, seed3, thr3, scale3, N3, ACT3, BIAS3, DROP3, False, P3, WIDE_INDEX)

    offs_n = tl.arange(0, h.shape[1])
    if STORE_OUT:
        mask = (offs_m[:, None] < M) & (offs_n[None, :] < N_OUT)
        out_offs = offs_m.to(tl.int64)[:, None] * N_OUT + offs_n[None, :]
        tl.store(out_ptr + out_offs, h.to(out_ptr.dtype.element_ty), mask=mask)
    if LOSS != _NONE:
        # This tile's loss sum; the last program to finish adds the tiles' sums in tile order (deterministic).
        tl.store(part_ptr + pid, tl.sum(_loss_rows(h, target_ptr, offs_m, M, stride_tm, N_OUT, LOSS, h.shape[1])))
        n_tiles = tl.num_programs(0)
        if _last_to_arrive(count_ptr, n_tiles):
            offs_t = tl.arange(0, 1024)
            total = tl.zeros((1024,), tl.float32)
            for start in range(0, n_tiles, 1024):
                total += tl.load(part_ptr + start + offs_t, mask=start + offs_t < n_tiles, other=0.0,
                                 cache_modifier=".cg")  # fmt: skip
            tl.store(loss_ptr, tl.sum(total) * loss_scale)


@triton.jit
def _store_partial(
    slot_ptr, h, dz, K, N: tl.constexpr, KP: tl.constexpr, NP: tl.constexpr, PRECISION: tl.constexpr
):  # fmt: skip
    """Store this tile's ``h^T dz`` (fp32) into the (K, N) block of its slot at slot_ptr. Returns it."""
    dw = tl.dot(tl.trans(h), dz, tl.zeros((KP, NP), tl.float32), input_precision=PRECISION)
    offs_k = tl.arange(0, KP)
    offs_n = tl.arange(0, NP)
    mask = (offs_k[:, None] < K) & (offs_n[None, :] < N)
    tl.store(slot_ptr + offs_k[:, None] * N + offs_n[None, :], dw, mask=mask)
    return dw


@triton.jit
def _store_bias_partial(slot_ptr, dz, N: tl.constexpr, NP: tl.constexpr):
    """Store the column sums of the fp32 ``dz`` (this tile's bias gradient) into the N entries at slot_ptr."""
    offs_n = tl.arange(0, NP)
    db = tl.sum(dz, axis=0)
    tl.store(slot_ptr + offs_n, db, mask=offs_n < N)
    return db


@triton.jit
def _scatter(
    val, cols, gw_ptr, gb_ptr, off, K: tl.constexpr, N: tl.constexpr, HAS_BIAS: tl.constexpr, ACCUMULATE: tl.constexpr,
):  # fmt: skip
    """Write the reduced partial columns ``cols`` that fall in one layer's block [off, off + K N (+ N)) to its dW
    (and db), adding to what they hold with ACCUMULATE (the optimizer's flat fp32 .grad). Returns the block's end."""
    j = cols - off
    in_w = (j >= 0) & (j < K * N)
    v = val
    if ACCUMULATE:
        v += tl.load(gw_ptr + j, mask=in_w, other=0.0).to(tl.float32)
    tl.store(gw_ptr + j, v.to(gw_ptr.dtype.element_ty), mask=in_w)
    end = off + K * N
    if HAS_BIAS:
        jb = cols - end
        in_b = (jb >= 0) & (jb < N)
        vb = val
        if ACCUMULATE:
            vb += tl.load(gb_ptr + jb, mask=in_b, other=0.0).to(tl.float32)
        tl.store(gb_ptr + jb, vb.to(gb_ptr.dtype.element_ty), mask=in_b)
        end += N
    return end


@triton.jit
def _reduce_columns(
    part_ptr, n_slots, start,
    gw0_ptr, gb0_ptr, gw1_ptr, gb1_ptr, gw2_ptr, gb2_ptr, gw3_ptr, gb3_ptr,
    P: tl.constexpr, K: tl.constexpr, N0: tl.constexpr, N1: tl.constexpr, N2: tl.constexpr, N3: tl.constexpr,
    NUM_LAYERS: tl.constexpr, BIAS0: tl.constexpr, BIAS1: tl.constexpr, BIAS2: tl.constexpr, BIAS3: tl.constexpr,
    ACCUMULATE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Sum columns [start, start + BLOCK) of the (n_slots, P) partials in slot order and write them to the gradients.
    The one fixed order (slot 0, 1, ..., per column) whether the backward's last program or the reduce kernel runs
    it: the same bits either way."""
    cols = start + tl.arange(0, BLOCK)
    ok = cols < P
    acc = tl.zeros((BLOCK,), tl.float32)
    for s in range(0, n_slots):
        acc += tl.load(part_ptr + s * P + cols, mask=ok, other=0.0, cache_modifier=".cg")
    off = _scatter(acc, cols, gw0_ptr, gb0_ptr, 0, K, N0, BIAS0, ACCUMULATE)
    if NUM_LAYERS > 1:
        off = _scatter(acc, cols, gw1_ptr, gb1_ptr, off, N0, N1, BIAS1, ACCUMULATE)
    if NUM_LAYERS > 2:
        off = _scatter(acc, cols, gw2_ptr, gb2_ptr, off, N1, N2, BIAS2, ACCUMULATE)
    if NUM_LAYERS > 3:
        off = _scatter(acc, cols, gw3_ptr, gb3_ptr, off, N2, N3, BIAS3, ACCUMULATE)
    return off


@triton.jit(do_not_specialize=["seed0", "seed1", "seed2", "seed3", "thr0", "thr1", "thr2", "thr3"])
def _fused_mlp_bwd_kernel(
    # inputs
    x_ptr,  # *[M, K] input, any strides
    w0_ptr, b0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr,  # as in the forward
    dy_ptr,  # *[M, N_last] gradient of the logits, any strides (LOSS 0)
    target_ptr,  # labels or targets, as in the forward (LOSS 1, 2)
    gout_ptr,  # *fp32 [1] gradient of the fused loss, read on the device (LOSS 1, 2)
    # outputs
    dx_ptr,  # *[M, K] dX, contiguous (NEED_DX)
    part_ptr,  # *fp32 [tiles, P] per-tile partial dW / db, laid out [W0, b0, W1, b1, ...] (biases only if present)
    count_ptr,  # *i32 [1] arrival counter: 0 at launch, left 0 (REDUCE_HERE)
    gw0_ptr, gb0_ptr, gw1_ptr, gb1_ptr, gw2_ptr, gb2_ptr, gw3_ptr, gb3_ptr,  # dW_l, db_l (REDUCE_HERE)
    # sizes and scalars
    M,  # the rows of this launch (a chunk of the batch when the partials would outgrow PARTIAL_BUDGET_BYTES)
    row0,  # the chunk's first row in the batch: the dropout masks index the whole (batch, N_l) outputs
    stride_xm, stride_xk, stride_dym, stride_dyn, stride_tm,
    seed0, seed1, seed2, seed3,
    seed0_ptr, seed1_ptr, seed2_ptr, seed3_ptr,
    thr0, thr1, thr2, thr3,
    scale0, scale1, scale2, scale3,
    loss_scale,  # fp32: 1 / M (cross-entropy) or 2 / (M N_last) (squared error)
    # network and block information, as in the forward
    NUM_LAYERS: tl.constexpr,
    K: tl.constexpr,
    N0: tl.constexpr, N1: tl.constexpr, N2: tl.constexpr, N3: tl.constexpr,
    N_OUT: tl.constexpr,
    P0: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr, P3: tl.constexpr,
    ACT0: tl.constexpr, ACT1: tl.constexpr, ACT2: tl.constexpr, ACT3: tl.constexpr,
    BIAS0: tl.constexpr, BIAS1: tl.constexpr, BIAS2: tl.constexpr, BIAS3: tl.constexpr,
    DROP0: tl.constexpr, DROP1: tl.constexpr, DROP2: tl.constexpr, DROP3: tl.constexpr,
    DEVICE_SEED: tl.constexpr,  # the dropout keys are the int64s at seed*_ptr (device seeds, for CUDA graphs)
    LOSS: tl.constexpr,
    P: tl.constexpr,  # the number of parameters: one slot's length
    NEED_DX: tl.constexpr,
    REDUCE_HERE: tl.constexpr,  # the last program sums the partials (else the reduce kernel does)
    ACCUMULATE: tl.constexpr,  # add dW / db into what gw / gb hold (the optimizer's flat .grad)
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    REDUCE_BLOCK: tl.constexpr,
    WIDE_INDEX: tl.constexpr,
    ALIGNED: tl.constexpr,  # x (and so dX) rows 16-element aligned, unit column stride
):  # fmt: skip
    if ALIGNED:
        tl.assume(stride_xm % 16 == 0)
    # One program per BLOCK_M rows; its slot of the (tiles, P) partials and each layer's block in it:
    # [W0 (K x N0), b0 (N0), W1 (N0 x N1), b1, ...]. Every slot is written once, by its program (no float atomics).
    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    slot = part_ptr + pid.to(tl.int64) * P
    off1 = K * N0 + (N0 if BIAS0 else 0)
    off2 = off1 + N0 * N1 + (N1 if BIAS1 else 0)
    off3 = off2 + N1 * N2 + (N2 if BIAS2 else 0)
    if LOSS != _NONE:
        coef = tl.load(gout_ptr).to(tl.float32) * loss_scale
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rows = row0 + offs_m  # the rows' indices in the batch (the dropout masks')
    if DEVICE_SEED:
        seed0, seed1, seed2, seed3 = _device_seeds(
            seed0_ptr, seed1_ptr, seed2_ptr, seed3_ptr, DROP0, DROP1, DROP2, DROP3
        )

    # Recompute the forward for the tile, keeping each hidden layer's output h_l as the tl.dot operand it was
    # (the input of layer l, for dW_l), and d = act'(z) * keep * scale of layer 0 and of the last layer. The
    # middle layers' d is recomputed from h_l when the walk back reaches them (one tl.dot, one more Philox
    # under dropout): fewer tiles live at once, where keeping every d_l spilled (AOT, 64-64-64-64-10 bf16
    # with dropout, sm_80: 36-248 bytes at BLOCK_M 32-64).
    z = _first_layer(x_ptr, w0_ptr, offs_m, M, stride_xm, stride_xk, K, N0, P0, BLOCK_K, PRECISION, ALIGNED)
    h, d0 = _epilogue(z, b0_ptr, rows, seed0, thr0, scale0, N0, ACT0, BIAS0, DROP0, True, P0, WIDE_INDEX)
    d = d0
    if NUM_LAYERS > 1:
        h1 = _operand(h, x_ptr)
        z = tl.dot(h1, _load_weight(w1_ptr, N0, N1, P0, P1), tl.zeros((BLOCK_M, P1), tl.float32),
                   input_precision=PRECISION)  # fmt: skip
        h, d = _epilogue(z, b1_ptr, rows, seed1, thr1, scale1, N1, ACT1, BIAS1, DROP1, True, P1, WIDE_INDEX)
    if NUM_LAYERS > 2:
        h2 = _operand(h, x_ptr)
        z = tl.dot(h2, _load_weight(w2_ptr, N1, N2, P1, P2), tl.zeros((BLOCK_M, P2), tl.float32),
                   input_precision=PRECISION)  # fmt: skip
        h, d = _epilogue(z, b2_ptr, rows, seed2, thr2, scale2, N2, ACT2, BIAS2, DROP2, True, P2, WIDE_INDEX)
    if NUM_LAYERS > 3:
        h3 = _operand(h, x_ptr)
        z = tl.dot(h3, _load_weight(w3_ptr, N2, N3, P2, P3), tl.zeros((BLOCK_M, P3), tl.float32),
                   input_precision=PRECISION)  # fmt: skip
        h, d = _epilogue(z, b3_ptr, rows, seed3, thr3, scale3, N3, ACT3, BIAS3, DROP3, True, P3, WIDE_INDEX)

    # g = d loss / d h_L: the fused loss's gradient from the recomputed output, or the incoming dy (0 past M).
    offs_n = tl.arange(0, h.shape[1])
    if LOSS != _NONE:
        g = _loss_grad(h, target_ptr, offs_m, M, stride_tm, coef, N_OUT, LOSS, h.shape[1])
    else:
        dy_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N_OUT)
        dy_ptrs = dy_ptr + offs_m.to(tl.int64)[:, None] * stride_dym + offs_n[None, :] * stride_dyn
        g = tl.load(dy_ptrs, mask=dy_mask, other=0.0).to(tl.float32)

    # Layers L-1 .. 1: dz = g * d_l; this tile's dW_l = h_l^T dz and db_l = sum dz into the slot; g = dz W_l^T.
    if NUM_LAYERS > 3:
        g = _backprop_layer(
            g, h3, h, d, slot + off3, w3_ptr, b3_ptr, rows, seed3, thr3, scale3,
            N2, N3, P2, P3, ACT3, BIAS3, DROP3, True, PRECISION, WIDE_INDEX, x_ptr,
        )  # fmt: skip
    if NUM_LAYERS > 2:
        g = _backprop_layer(
            g, h2, h3 if NUM_LAYERS > 3 else h, d, slot + off2, w2_ptr, b2_ptr, rows, seed2, thr2, scale2,
            N1, N2, P1, P2, ACT2, BIAS2, DROP2, NUM_LAYERS == 3, PRECISION, WIDE_INDEX, x_ptr,
        )  # fmt: skip
    if NUM_LAYERS > 1:
        g = _backprop_layer(
            g, h1, h2 if NUM_LAYERS > 2 else h, d, slot + off1, w1_ptr, b1_ptr, rows, seed1, thr1, scale1,
            N0, N1, P0, P1, ACT1, BIAS1, DROP1, NUM_LAYERS == 2, PRECISION, WIDE_INDEX, x_ptr,
        )  # fmt: skip
        h_next = h1
    else:
        h_next = h

    # Layer 0, K-looped like its forward: dW_0[k-chunk] = x[:, chunk]^T dz (into the slot), dX[:, chunk] = dz
    # W_0[chunk]^T (stored). x is re-read chunk by chunk (L2-resident: the recompute just read it).
    if NUM_LAYERS > 1 and ACT0 != _RELU and not (ACT0 == _LINEAR and not DROP0):
        # act_0' once more from z_0 = x W_0 + b_0 (a third read of the tile of x, from L1/L2) rather than kept
        # alive in registers through the whole walk.
        z = _first_layer(x_ptr, w0_ptr, offs_m, M, stride_xm, stride_xk, K, N0, P0, BLOCK_K, PRECISION, ALIGNED)
        _, d0 = _epilogue(z, b0_ptr, rows, seed0, thr0, scale0, N0, ACT0, BIAS0, DROP0, True, P0, WIDE_INDEX)
    dz = _dz(g, d0, h_next, scale0, ACT0, DROP0)
    dz_op = _operand(dz, x_ptr)
    if BIAS0:
        _store_bias_partial(slot + K * N0, dz, N0, P0)
    offs_k = tl.arange(0, BLOCK_K)
    offs_n0 = tl.arange(0, P0)
    x_ptrs = _x_ptrs(x_ptr, offs_m, M, stride_xm, stride_xk, BLOCK_K, ALIGNED)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K
        a = tl.load(x_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
        if _UPCAST:
            a = a.to(tl.float32)
        _store_partial(slot + k * BLOCK_K * N0, a, dz_op, k_left, N0, BLOCK_K, P0, PRECISION)
        if NEED_DX:
            w_mask = (offs_k[:, None] < k_left) & (offs_n0[None, :] < N0)
            w0c = tl.load(w0_ptr + (k * BLOCK_K + offs_k)[:, None] * N0 + offs_n0[None, :], mask=w_mask, other=0.0)
            if _UPCAST:
                w0c = w0c.to(tl.float32)
            dx = tl.dot(dz_op, tl.trans(w0c), tl.zeros((BLOCK_M, BLOCK_K), tl.float32), input_precision=PRECISION)
            dx_mask = (offs_m[:, None] < M) & (offs_k[None, :] < k_left)
            dx_ptrs = dx_ptr + offs_m.to(tl.int64)[:, None] * K + (k * BLOCK_K + offs_k)[None, :]
            if ALIGNED:
                dx_ptrs = tl.max_contiguous(tl.multiple_of(dx_ptrs, [1, 16]), [1, 16])
            tl.store(dx_ptrs, dx.to(dx_ptr.dtype.element_ty), mask=dx_mask)
        x_ptrs += BLOCK_K * stride_xk

    if REDUCE_HERE:
        if _last_to_arrive(count_ptr, n_programs):
            for start in range(0, P, REDUCE_BLOCK):
                _reduce_columns(
                    part_ptr, n_programs, start,
                    gw0_ptr, gb0_ptr, gw1_ptr, gb1_ptr, gw2_ptr, gb2_ptr, gw3_ptr, gb3_ptr,
                    P, K, N0, N1, N2, N3, NUM_LAYERS, BIAS0, BIAS1, BIAS2, BIAS3, ACCUMULATE, REDUCE_BLOCK,
                )  # fmt: skip


@triton.jit
def _fused_mlp_reduce_kernel(
    part_ptr,  # *fp32 [tiles, P] the backward's partials
    gw0_ptr, gb0_ptr, gw1_ptr, gb1_ptr, gw2_ptr, gb2_ptr, gw3_ptr, gb3_ptr,  # dW_l, db_l
    n_slots,
    P: tl.constexpr, K: tl.constexpr, N0: tl.constexpr, N1: tl.constexpr, N2: tl.constexpr, N3: tl.constexpr,
    NUM_LAYERS: tl.constexpr,
    BIAS0: tl.constexpr, BIAS1: tl.constexpr, BIAS2: tl.constexpr, BIAS3: tl.constexpr,
    ACCUMULATE: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    # One program per BLOCK columns of the partials: the column-parallel form of the backward's own reduction.
    _reduce_columns(
        part_ptr, n_slots, tl.program_id(0).to(tl.int64) * BLOCK,
        gw0_ptr, gb0_ptr, gw1_ptr, gb1_ptr, gw2_ptr, gb2_ptr, gw3_ptr, gb3_ptr,
        P, K, N0, N1, N2, N3, NUM_LAYERS, BIAS0, BIAS1, BIAS2, BIAS3, ACCUMULATE, BLOCK,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Block sizes, chosen from the ahead-of-time compile (no spills on sm_80 / sm_90; see the AOT cases below)
# ---------------------------------------------------------------------------------------------------------------
# (BLOCK_M, num_warps) by the widest padded layer width, per pass and dtype kind ("16": bf16, "tf32", "ieee"), each
# compiled for sm_80 and sm_90 without a spill for the worst networks of the bounds (AOT; first chosen under triton
# 3.9 for bounds up to width 128, below, then re-checked under 3.6: the table at the end of this comment; registers
# sm_80 / sm_90), every layer with dropout (Philox) and a pre-activation activation (mish, gelu, selu), the fused
# cross-entropy: W1 = 1024-64-64-64-64, W2 = 1024-128-64-64-16, W3 = 1024-128-128-16 (the width budget, 272), and
# I1 = 1024-64-16 for IEEE (its budget, 80).
#   forward  at (128, 8) 64-64-64-64-10 bf16 (relu, gelu, tanh) spilled 20 B and W1 tf32 8 B on sm_80; at (64, 8)
#            bf16 W1 128/176, W2 183/169, W3 198/203; tf32 W1 244/200, W2 255/228, W3 255/239; ieee I1 120/110.
#   backward bf16 W1 at (32, 4) spilled 4 B, (32, 8) W1 223/201, W2 255/225, W3 255/227; tf32 at BLOCK_M 32 spilled
#            140-472 B, (16, 4) W1 255/248, (16, 8) W2 255/218, W3 223/208; ieee at (32, 8) 784-64-10 (gelu)
#            spilled 16 B, (16, 8) I1 170/168, 784-64-10 172/170.
# The forward keeps one (BLOCK_M x P) tile per layer at a time; the backward keeps every hidden layer's output and
# the gradient in flight, plus the (P_in x P_out) fp32 dW tile of the layer it is on, whose size BLOCK_M does not
# change: hence its smaller tiles. BLOCK_M >= 64 in the forward puts the hidden layers on wgmma (sm_90); the
# backward's dW products (P_in x BLOCK_M) @ (BLOCK_M x P_out) have M = P_in, on wgmma from P_in = 64.
# Today's bounds, re-checked (registers sm_90 / sm_80 under triton 3.6, then 3.9; no spill anywhere; dropout +
# cross-entropy, the dropouts after the last 2 (bf16) or 1 (tf32) hidden layers; BLOCK_K 32):
#   forward  bf16 64-64-64-64-10 252/255, 168/182; 1024-64-64-64-16 (mish, gelu, selu) 224/255, 166/182;
#            tf32 64-64-64-64-10 169/128, 128/117; 1024-64-64-64-16 213/247, 127/115.
#   backward bf16 64-64-64-64-10 189/202, 190/211; 1024-64-64-64-16 193/209, 171/208; tf32 64-64-64-64-10 plain
#            (dX, reduce launch) 255/255, 165/229; 1024-64-64-64-16 168/196, 174/201.
FWD_BLOCKS = {
    "16": {16: (128, 4), 32: (128, 4), 64: (64, 8)},
    "tf32": {16: (128, 4), 32: (128, 4), 64: (64, 8)},
    "ieee": {16: (64, 4), 32: (64, 4), 64: (64, 8)},
}
BWD_BLOCKS = {
    "16": {16: (64, 4), 32: (64, 4), 64: (32, 8)},
    "tf32": {16: (64, 4), 32: (64, 4), 64: (16, 4)},
    "ieee": {16: (64, 4), 32: (64, 4), 64: (16, 8)},
}
# The first layer's K chunk. 16-bit was 64: under triton 3.6 a one-chunk first layer (K = 64) let the compile hoist
# across the whole kernel, and 64-64-64-64-10 bf16 with dropout + cross-entropy spilled 356 B (backward, sm_80, at
# every BLOCK_M from 16 to 64; forward 28-356 B); at 32 it fits (backward 214, forward 242 / 254 registers).
BLOCK_K = {"16": 32, "tf32": 32, "ieee": 32}
FWD_STAGES = 2  # the forward's K loop: the next chunk of x and W_0 in flight while one is multiplied
BWD_STAGES = 1  # the backward's: registers go to the walk back (two stages cost W1 bf16 its spill-free fit)
REDUCE_BLOCK = 1024
INTERPRETER_BLOCK_M = 32  # the interpreter runs one program at a time: small tiles, several of them


def _pad(n: int) -> int:
    # the next power of two, in Python (triton.next_power_of_2 is a JIT-decorated function: microseconds a call)
    return max(MIN_PAD, 1 << max(int(n) - 1, 0).bit_length())


def _kind(dtype: torch.dtype) -> str:
    if dtype != torch.float32:
        return "16"
    return "tf32" if precision.dot_precision() == "tf32" else "ieee"


def _block_k(kind: str, k: int) -> int:
    return min(BLOCK_K[kind] if not INTERPRETING else 32, _pad(k))


def _blocks(table: dict, kind: str, pads: tuple[int, ...]) -> tuple[int, int]:
    block_m, warps = table[kind][max(pads)]
    return (INTERPRETER_BLOCK_M, 4) if INTERPRETING else (block_m, warps)


# ---------------------------------------------------------------------------------------------------------------
# The network description the kernels specialise on
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MLPSpec:
    """What the kernels are specialised on, besides the tensors: one entry per layer."""

    widths: tuple[int, ...]  # (in, out_0, ..., out_{L-1})
    activations: tuple[str, ...]  # canonical names from the activation table
    has_bias: tuple[bool, ...]
    rates: tuple[float, ...]  # dropout rate after each layer's activation (0: none)
    seeds: tuple[int, ...]  # the dropout seeds (0 where the rate is 0)
    loss: str | None  # None, "softmax_cross_entropy" or "mean_squared_error"
    return_logits: bool = False  # with a fused loss, also write the logits (for metrics): (loss, logits)

    @property
    def num_layers(self) -> int:
        return len(self.activations)

    @property
    def pads(self) -> tuple[int, ...]:
        return tuple(_pad(n) for n in self.widths[1:])

    @property
    def num_params(self) -> int:
        w = self.widths
        return sum(w[i] * w[i + 1] + (w[i + 1] if self.has_bias[i] else 0) for i in range(self.num_layers))

    @property
    def device_seed(self) -> bool:
        return any(isinstance(s, torch.Tensor) for s in self.seeds)

    def dropout_args(self, dummy: torch.Tensor) -> list:
        """seed_l, seed_l's pointer, threshold_l, scale_l, MAX_LAYERS of each: the kernels' dropout arguments (an int
        seed's pointer, and a device seed's int, are dummies)."""
        pad = MAX_LAYERS - self.num_layers
        seeds = [0 if isinstance(s, torch.Tensor) else s for s in self.seeds] + [0] * pad
        ptrs = [s if isinstance(s, torch.Tensor) else dummy for s in self.seeds] + [dummy] * pad
        thr = [keep_threshold(r) for r in self.rates] + [0] * pad
        scale = [1.0 / (1.0 - r) for r in self.rates] + [1.0] * pad
        return seeds + ptrs + thr + scale

    def constexprs(self) -> dict:
        """NUM_LAYERS, ACT*, BIAS*, DROP*, P*, LOSS."""
        n_pad = MAX_LAYERS - self.num_layers
        acts = [ACTIVATIONS[a].id for a in self.activations] + [0] * n_pad
        bias = list(self.has_bias) + [False] * n_pad
        drop = [r > 0.0 for r in self.rates] + [False] * n_pad
        pads = list(self.pads) + [MIN_PAD] * n_pad
        widths = list(self.widths[1:]) + [1] * n_pad
        out = {"NUM_LAYERS": self.num_layers, "K": self.widths[0], "N_OUT": self.widths[-1]}
        for i in range(MAX_LAYERS):
            out.update({f"N{i}": widths[i], f"P{i}": pads[i]})
            out.update({f"ACT{i}": acts[i], f"BIAS{i}": bias[i], f"DROP{i}": drop[i]})
        out["DEVICE_SEED"] = self.device_seed
        out["LOSS"] = LOSSES[self.loss] if self.loss else 0
        return out


# ---------------------------------------------------------------------------------------------------------------
# Ahead-of-time compile cases (tests/kernels/test_aot.py): the seed shapes 64-32-10, 64-64-64-64-10, 784-64-64-10
# and 1024-64-64-64-16 (the bounds' worst), for fp32 (IEEE), tf32 and bf16, each forward and backward plain (logits
# out, dy in), with dropout (as many as the dtype's bound) and the fused cross-entropy, and with the fused squared
# error; the reduce kernel. IEEE fp32 runs tl.dot on the FMA units (as dense's does): no tensor-core instruction.
# ---------------------------------------------------------------------------------------------------------------

_AOT_NETS = {
    "64-32-10": ((64, 32, 10), ("relu", "linear")),
    "64-64-64-64-10": ((64, 64, 64, 64, 10), ("relu", "gelu", "tanh", "linear")),
    "784-64-64-10": ((784, 64, 64, 10), ("relu", "gelu", "linear")),
    # the bounds' worst: the widest input, the whole width budget (64 + 64 + 64 + 16), the costliest activations
    "1024-64-64-64-16": ((1024, 64, 64, 64, 16), ("mish", "gelu", "selu", "linear")),
    "784-64-10": ((784, 64, 10), ("gelu", "linear")),  # IEEE fp32's bound: two layers, 64 + 16
}
_AOT_DTYPES = {"fp32-ieee": ("*fp32", "ieee"), "fp32-tf32": ("*fp32", "tf32"), "bf16": ("*bf16", "tf32")}
_AOT_VARIANTS = {  # (dropout, fused loss, device seeds)
    "plain": (False, None, False),
    "dropout+xent": (True, "softmax_cross_entropy", False),
    "mse": (False, "mean_squared_error", False),
    "dropout+xent,device-seeds": (True, "softmax_cross_entropy", True),
}
# (net, dtypes, variants): every variant for the seed model; the two that differ most (dX and the reduce launch,
# dropout and the fused loss) for the deeper stacks, in the dtypes whose bounds take them (IEEE fp32: two layers).
_AOT_PLAN = [
    ("64-32-10", ("fp32-ieee", "fp32-tf32", "bf16"), ("plain", "dropout+xent", "mse")),
    ("64-32-10", ("bf16",), ("dropout+xent,device-seeds",)),
    ("64-64-64-64-10", ("fp32-tf32", "bf16"), ("plain", "dropout+xent")),
    ("784-64-64-10", ("fp32-tf32", "bf16"), ("plain", "dropout+xent")),
    ("1024-64-64-64-16", ("fp32-tf32", "bf16"), ("dropout+xent",)),
    ("784-64-10", ("fp32-ieee",), ("dropout+xent",)),
]


def _aot_spec(net: str, dropout: bool, loss: str | None, max_dropouts: int = MAX_DROPOUTS) -> MLPSpec:
    widths, acts = _AOT_NETS[net]
    n = len(acts)
    # dropout after the last max_dropouts hidden layers (their Philox is live beside the most on-chip state)
    rates = tuple((0.2 if dropout and n - 1 - max_dropouts <= i < n - 1 else 0.0) for i in range(n))
    return MLPSpec(widths, acts, (True,) * n, rates, (0,) * n, loss)


def _per_layer(*names: str, value: str) -> dict:
    """``{name0: value, ..., name3: value}`` for each name: the per-layer parameters of the kernels."""
    return {f"{n}{i}{suffix}": value for n, suffix in (name.split("#") for name in names) for i in range(MAX_LAYERS)}


def _aot_case(part: str, net: str, label: str, ptr: str, prec: str, variant: str) -> AotCase:
    """One forward or backward case: the launch the launcher makes for that network, dtype and variant, with x
    aligned (the run-time specialisation of a contiguous, 16-element-wide input)."""
    dropout, loss, device_seed = _AOT_VARIANTS[variant]
    kind = "16" if ptr != "*fp32" else prec
    spec = _aot_spec(net, dropout, loss, TF32_MAX_DROPOUTS if kind == "tf32" else MAX_DROPOUTS)
    block_m, warps = (FWD_BLOCKS if part == "fwd" else BWD_BLOCKS)[kind][max(spec.pads)]
    target = ptr if loss == "mean_squared_error" else "*i64"
    scalars = {
        **_per_layer("seed#", value="i64"),
        **_per_layer("seed#_ptr", value="*i64"),
        **_per_layer("thr#", value="i32"),
        **_per_layer("scale#", value="fp32"),
    }
    consts = {
        **spec.constexprs(),
        "DEVICE_SEED": device_seed,
        "PRECISION": prec,
        "BLOCK_M": block_m,
        "BLOCK_K": min(BLOCK_K[kind], _pad(spec.widths[0])),
        "WIDE_INDEX": False,
        "ALIGNED": True,
    }
    if part == "fwd":
        kernel = _fused_mlp_fwd_kernel
        signature = {
            "x_ptr": ptr, **_per_layer("w#_ptr", "b#_ptr", value=ptr), "target_ptr": target,
            "out_ptr": ptr, "part_ptr": "*fp32", "count_ptr": "*i32", "loss_ptr": "*fp32",
            "M": "i32", "stride_xm": "i32", "stride_xk": "constexpr", "stride_tm": "i32",
            **scalars, "loss_scale": "fp32",
        }  # fmt: skip
        consts.update({"stride_xk": 1, "STORE_OUT": loss is None})
    else:
        kernel = _fused_mlp_bwd_kernel
        grad = ptr  # fp32: the optimizer's flat gradient (ACCUMULATE); bf16: fresh gradients in the weights' dtype
        signature = {
            "x_ptr": ptr, **_per_layer("w#_ptr", "b#_ptr", value=ptr), "dy_ptr": ptr, "target_ptr": target,
            "gout_ptr": "*fp32", "dx_ptr": ptr, "part_ptr": "*fp32", "count_ptr": "*i32",
            **_per_layer("gw#_ptr", "gb#_ptr", value=grad),
            "M": "i32", "row0": "i32", "stride_xm": "i32", "stride_xk": "constexpr", "stride_dym": "i32",
            "stride_dyn": "constexpr",
            "stride_tm": "i32", **scalars, "loss_scale": "fp32",
        }  # fmt: skip
        # plain: a stack with something below it (dX wanted) and the column-parallel reduce launch; fused loss: the
        # whole model (no dX), reduced by the last program: the training step of three launches.
        consts.update({"stride_xk": 1, "stride_dyn": 1, "P": spec.num_params, "NEED_DX": loss is None})
        consts.update({"REDUCE_HERE": loss is not None, "ACCUMULATE": ptr == "*fp32", "REDUCE_BLOCK": REDUCE_BLOCK})
    signature.update(dict.fromkeys((k for k in consts if k not in signature), "constexpr"))
    return AotCase(
        name=f"fused_mlp_{part}[{net},{label},{variant}]",
        kernel=kernel,
        signature=signature,
        constexprs=consts,
        num_warps=warps,
        num_stages=FWD_STAGES if part == "fwd" else BWD_STAGES,
        tensor_cores=prec != "ieee",
    )


def _aot_reduce_case(grad: str, accumulate: bool) -> AotCase:
    spec = _aot_spec("64-64-64-64-10", False, None)
    consts = {
        k: v for k, v in spec.constexprs().items() if k[:3] in ("NUM", "BIA") or k in ("K", "N0", "N1", "N2", "N3")
    }
    consts.update({"P": spec.num_params, "ACCUMULATE": accumulate, "BLOCK": REDUCE_BLOCK})
    return AotCase(
        name=f"fused_mlp_reduce[{grad[1:]}{',acc' if accumulate else ''}]",
        kernel=_fused_mlp_reduce_kernel,
        signature={
            "part_ptr": "*fp32",
            **_per_layer("gw#_ptr", "gb#_ptr", value=grad),
            "n_slots": "i32",
            **dict.fromkeys(consts, "constexpr"),
        },  # fmt: skip
        constexprs=consts,
        num_warps=4,
        num_stages=1,
    )


def _aot_cases() -> list[AotCase]:
    cases = []
    for net, labels, variants in _AOT_PLAN:
        for label in labels:
            for variant in variants:
                cases += [_aot_case(part, net, label, *_AOT_DTYPES[label], variant) for part in ("fwd", "bwd")]
    cases += [_aot_reduce_case("*fp32", True), _aot_reduce_case("*bf16", False)]
    return cases


register_aot(*_aot_cases())


# ---------------------------------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------------------------------

# Arrival counters of the last-program reductions, [forward, backward], per (device, stream): zeroed once, then left
# at 0 by every launch's last program. Per stream, so that launches that may overlap never share one.
_COUNTERS: dict[tuple, torch.Tensor] = {}


def _counter(device: torch.device) -> torch.Tensor:
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (str(device), stream)
    if key not in _COUNTERS:
        _COUNTERS[key] = torch.zeros(2, dtype=torch.int32, device=device)
    return _COUNTERS[key]


def _dot_precision(dtype: torch.dtype) -> str:
    return precision.dot_precision() if dtype == torch.float32 else "tf32"  # ignored for 16-bit inputs


def _aligned(x2: torch.Tensor) -> bool:
    """ALIGNED's promise to the kernels: x's rows start 16-element aligned with unit column stride, and so do dX's
    (contiguous, row stride K: K a multiple of 16)."""
    return x2.shape[1] % 16 == 0 and x2.stride(1) == 1 and x2.stride(0) % 16 == 0 and x2.data_ptr() % 16 == 0


def _layer_ptrs(tensors: list[torch.Tensor | None], dummy: torch.Tensor) -> list[torch.Tensor]:
    """MAX_LAYERS pointers, a dummy where a layer (or its bias) is absent."""
    return [t if t is not None else dummy for t in tensors] + [dummy] * (MAX_LAYERS - len(tensors))


def fused_mlp_fwd(
    x2: torch.Tensor,
    weights: list[torch.Tensor],
    biases: list[torch.Tensor | None],
    spec: MLPSpec,
    targets: torch.Tensor | None,
    *,
    store_out: bool,
    block_m: int | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Launch the forward: ``(logits, loss)``, logits (M, N_last) when ``store_out``, loss (0-dim fp32) when the
    spec has a fused loss."""
    m = x2.shape[0]
    n_out = spec.widths[-1]
    kind = _kind(x2.dtype)
    bm, warps = _blocks(FWD_BLOCKS, kind, spec.pads)
    bm = block_m or bm
    tiles = triton.cdiv(m, bm)
    out = torch.empty((m, n_out), dtype=x2.dtype, device=x2.device) if store_out else None
    loss = torch.empty((), dtype=torch.float32, device=x2.device) if spec.loss else None
    part = torch.empty(tiles, dtype=torch.float32, device=x2.device) if spec.loss else None
    dummy = x2
    ws = _layer_ptrs(weights, dummy)
    bs = _layer_ptrs(biases, dummy)
    t = targets if targets is not None else dummy
    loss_scale = 1.0 / m if spec.loss == "softmax_cross_entropy" else 1.0 / (m * n_out)
    _fused_mlp_fwd_kernel[(tiles,)](
        x2, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2], ws[3], bs[3], t,
        out if out is not None else dummy, part if part is not None else dummy, _counter(x2.device)[0:],
        loss if loss is not None else dummy,
        m, x2.stride(0), x2.stride(1), t.stride(0) if t.dim() == 2 else 0,
        *spec.dropout_args(dummy), loss_scale,
        **spec.constexprs(), STORE_OUT=store_out, PRECISION=_dot_precision(x2.dtype), BLOCK_M=bm,
        BLOCK_K=_block_k(kind, spec.widths[0]), WIDE_INDEX=m * max(spec.widths[1:]) >= 2**31, ALIGNED=_aligned(x2),
        num_warps=warps, num_stages=FWD_STAGES,
    )  # fmt: skip
    return out, loss


def fused_mlp_bwd(
    x2: torch.Tensor,
    weights: list[torch.Tensor],
    biases: list[torch.Tensor | None],
    spec: MLPSpec,
    targets: torch.Tensor | None,
    dy: torch.Tensor | None,
    dloss: torch.Tensor | None,
    *,
    need_dx: bool,
    grads_into: list[torch.Tensor | None] | None = None,
    rows_per_launch: int | None = None,
    reduce_here: bool | None = None,
    block_m: int | None = None,
) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """Launch the backward: ``(dx, [dW_0, db_0, dW_1, db_1, ...])`` (db_l None without a bias).

    ``dy`` is the gradient of the logits (no fused loss); ``dloss`` the 0-dim gradient of the fused loss.
    ``grads_into``: per parameter, a contiguous fp32 tensor (its ``.grad`` in the optimizer's flat buffer) to add
    the gradient into; the returned list then holds None for it. One backward launch per chunk of
    ``rows_per_launch`` rows (default: as many as keep the (tiles, P) partials within PARTIAL_BUDGET_BYTES; the whole
    batch for the seed model up to 445K rows), plus one reduce launch per chunk when its partials exceed
    REDUCE_HERE_BYTES (``reduce_here`` overrides). ``block_m`` overrides BLOCK_M (tests, the benchmark)."""
    m, k = x2.shape
    kind = _kind(x2.dtype)
    bm, warps = _blocks(BWD_BLOCKS, kind, spec.pads)
    bm = block_m or bm
    p = spec.num_params
    chunk = rows_per_launch or max(1, PARTIAL_BUDGET_BYTES // (4 * p)) * bm
    chunk = max(bm, chunk // bm * bm)
    flat = grads_into is not None
    if flat:
        outs = list(grads_into)
    else:
        outs = []
        for w, b in zip(weights, biases, strict=True):
            outs += [torch.empty_like(w), torch.empty_like(b) if b is not None else None]
    # Chunks after the first add to what the first wrote: in fp32 buffers when the gradients are 16-bit.
    work = outs
    if not flat and chunk < m and x2.dtype != torch.float32:
        work = [torch.empty(t.shape, dtype=torch.float32, device=t.device) if t is not None else None for t in outs]
    dx = torch.empty((m, k), dtype=x2.dtype, device=x2.device) if need_dx else None
    dummy = x2
    ws = _layer_ptrs(weights, dummy)
    bs = _layer_ptrs(biases, dummy)
    n_out = spec.widths[-1]
    loss_scale = 1.0 / m if spec.loss == "softmax_cross_entropy" else 2.0 / (m * n_out)
    consts = spec.constexprs()
    reduce_consts = {key: consts[key] for key in ("NUM_LAYERS", "K", "N0", "N1", "N2", "N3")}
    reduce_consts.update({f"BIAS{i}": consts[f"BIAS{i}"] for i in range(MAX_LAYERS)})
    for row0 in range(0, m, chunk):
        rows = min(chunk, m - row0)
        tiles = triton.cdiv(rows, bm)
        here = reduce_here if reduce_here is not None else tiles * p * 4 <= REDUCE_HERE_BYTES
        accumulate = flat or row0 > 0
        part = torch.empty((tiles, p), dtype=torch.float32, device=x2.device)
        gws = _layer_ptrs(work[0::2], part)
        gbs = _layer_ptrs(work[1::2], part)
        xc = x2[row0 : row0 + rows]
        t = targets[row0 : row0 + rows] if targets is not None else dummy
        d = dy[row0 : row0 + rows] if dy is not None else dummy
        _fused_mlp_bwd_kernel[(tiles,)](
            xc, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2], ws[3], bs[3], d, t,
            dloss if dloss is not None else part, dx[row0 : row0 + rows] if dx is not None else dummy, part,
            _counter(x2.device)[1:], gws[0], gbs[0], gws[1], gbs[1], gws[2], gbs[2], gws[3], gbs[3],
            rows, row0, xc.stride(0), xc.stride(1), d.stride(0), d.stride(1), t.stride(0) if t.dim() == 2 else 0,
            *spec.dropout_args(dummy), loss_scale,
            **consts, P=p, NEED_DX=need_dx, REDUCE_HERE=here, ACCUMULATE=accumulate,
            PRECISION=_dot_precision(x2.dtype), BLOCK_M=bm, BLOCK_K=_block_k(kind, k), REDUCE_BLOCK=REDUCE_BLOCK,
            WIDE_INDEX=m * max(spec.widths[1:]) >= 2**31, ALIGNED=_aligned(xc),
            num_warps=warps, num_stages=BWD_STAGES,
        )  # fmt: skip
        if not here:
            _fused_mlp_reduce_kernel[(triton.cdiv(p, REDUCE_BLOCK),)](
                part, gws[0], gbs[0], gws[1], gbs[1], gws[2], gbs[2], gws[3], gbs[3], tiles,
                P=p, **reduce_consts, ACCUMULATE=accumulate, BLOCK=REDUCE_BLOCK, num_warps=4, num_stages=1,
            )  # fmt: skip
    if work is not outs:
        for o, w in zip(outs, work, strict=True):
            if o is not None:
                o.copy_(w)
    return dx, [None for _ in outs] if flat else outs


# ---------------------------------------------------------------------------------------------------------------
# Autograd
# ---------------------------------------------------------------------------------------------------------------


class FusedMLPFunction(torch.autograd.Function):
    """The whole stack (and its loss) as one node: inputs ``(x, targets, spec, W_0, b_0, W_1, b_1, ...)``.

    Save vs recompute: only the inputs are saved (x, the weights and biases, the labels), all alive anyway; the
    backward recomputes every hidden activation and derivative on chip (module docstring: the bytes both ways).
    Parameters that are optimizer-managed flat-gradient leaves (kernels/flat_grad.py) get their gradients added into
    their ``.grad`` by the backward's reduction, and None returned; when any parameter is not such a leaf (or needs no
    gradient), all are returned fresh instead.
    """

    @staticmethod
    def forward(ctx, x, targets, spec: MLPSpec, *params):
        weights, biases = list(params[0::2]), list(params[1::2])
        out, loss = fused_mlp_fwd(x, weights, biases, spec, targets, store_out=spec.loss is None or spec.return_logits)
        ctx.spec = spec
        ctx.set_materialize_grads(False)  # no zero-filled gradient for the logits beside a fused loss (a launch)
        ctx.save_for_backward(x, targets, *params)
        if spec.loss is None:
            return out
        if out is not None:
            ctx.mark_non_differentiable(out)
            return loss, out
        return loss

    @staticmethod
    def backward(ctx, grad, *_):
        x, targets, *params = ctx.saved_tensors
        spec = ctx.spec
        weights, biases = list(params[0::2]), list(params[1::2])
        needs = ctx.needs_input_grad
        param_needs = [needs[3 + i] for i in range(len(params)) if params[i] is not None]
        # ctx.next_functions has one entry per tensor input: x, the targets when given, then the present params.
        first = 1 + (targets is not None)
        into = [flat_grad_target(ctx, first + j, t) for j, t in enumerate(t for t in params if t is not None)]
        accumulate = all(param_needs) and all(
            t is not None and t.dtype == torch.float32 and t.is_contiguous() for t in into
        )
        grads_into = None
        if accumulate:
            it = iter(into)
            grads_into = [next(it) if t is not None else None for t in params]
        dy = grad if spec.loss is None else None
        dloss = grad.to(torch.float32).reshape(1) if spec.loss is not None else None
        dx, grads = fused_mlp_bwd(x, weights, biases, spec, targets, dy, dloss, need_dx=needs[0], grads_into=grads_into)
        grads = [gr if needs[3 + i] else None for i, gr in enumerate(grads)]
        return (dx, None, None, *grads)


# ---------------------------------------------------------------------------------------------------------------
# The public op
# ---------------------------------------------------------------------------------------------------------------


def _canonical_loss(loss: str | None) -> str | None:
    if loss is None:
        return None
    name = LOSS_ALIASES.get(loss, loss) if isinstance(loss, str) else loss
    if name not in LOSSES:
        raise ValueError(
            f"fused_mlp: expected loss None or one of {sorted(set(LOSSES) | set(LOSS_ALIASES))}. "
            f"Received: loss={loss!r}"
        )
    return name


def _check_dropouts(rates) -> str | None:
    """Why these per-layer dropout rates are outside the fused kernels' bounds, or None."""
    n = sum(1 for r in rates if r and r > 0.0)
    if n > MAX_DROPOUTS:
        return f"expected at most {MAX_DROPOUTS} layers with a fused dropout. Received: {n}"
    return None


def _tf32_why(rates) -> str | None:
    """Why float32 (TF32 at precision 'high', or IEEE) cannot run these dropouts fused, or None (the AOT compile
    holds TF32's worst networks with one; IEEE's two-layer stacks have one hidden layer)."""
    n = sum(1 for r in rates if r and r > 0.0)
    if n <= TF32_MAX_DROPOUTS:
        return None
    return (
        f"float32 fuses at most {TF32_MAX_DROPOUTS} dropout (received {n}: its forward spills registers); "
        "bfloat16 fuses up to " + str(MAX_DROPOUTS)
    )


def _check_widths(widths: list[int]) -> str | None:
    """Why these (in, out_0, ..., out_{L-1}) widths are outside the fused kernels' bounds, or None."""
    layers = len(widths) - 1
    if not 1 <= layers <= MAX_LAYERS:
        return f"expected 1 to {MAX_LAYERS} layers. Received: {layers} layers"
    if not 1 <= widths[0] <= MAX_INPUT_WIDTH:
        return f"expected an input width in [1, {MAX_INPUT_WIDTH}]. Received: input width {widths[0]}"
    for i, n in enumerate(widths[1:]):
        if not 1 <= n <= MAX_WIDTH:
            return f"expected every layer's width in [1, {MAX_WIDTH}]. Received: width {n} for layer {i}"
    padded = sum(_pad(n) for n in widths[1:])
    if padded > WIDTH_BUDGET:
        return (
            f"expected the layers' widths, each padded to a power of two >= {MIN_PAD}, to sum to at most "
            f"{WIDTH_BUDGET}. Received: {' + '.join(str(_pad(n)) for n in widths[1:])} = {padded}"
        )
    return None


def _ieee_why(widths: list[int] | tuple[int, ...]) -> str | None:
    """Why IEEE fp32 (float32 at precision "highest") cannot run these widths fused, or None."""
    layers, padded = len(widths) - 1, sum(_pad(n) for n in widths[1:])
    if layers <= IEEE_MAX_LAYERS and padded <= IEEE_WIDTH_BUDGET:
        return None
    return (
        f"IEEE float32 (precision 'highest') fuses at most {IEEE_MAX_LAYERS} layers with padded widths summing to "
        f"{IEEE_WIDTH_BUDGET} (its tl.dot runs on the FMA units); received {layers} layers summing to {padded}: "
        "set_float32_matmul_precision('high') (TF32) or bfloat16 fuse it"
    )


def fused_mlp_supported(
    widths: list[int],
    activations: list[str | None] | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    loss: str | None = None,
    device: torch.device | str | None = None,
    dropout_rates: list[float] | None = None,
) -> tuple[bool, str]:
    """Whether :func:`fused_mlp` runs its fused kernels for this network, and why (or why not), in words.

    Args:
        widths: ``(in, out_0, ..., out_{L-1})``: the input width, then each Dense layer's units.
        activations: one name (or None, linear) per layer.
        dtype: the input and weight dtype.
        loss: None, ``"softmax_cross_entropy"`` (integer labels) or ``"mean_squared_error"`` (or an alias).
        device: where the tensors will be; given, the backend setting is asked too: on the torch backend (CPU
            tensors off the interpreter) the same stack runs as one autograd node of the per-layer torch ops
            (kernels/fused_mlp_torch.py), within the same bounds but without the Triton kernels' precision ones.
        dropout_rates: the rate of the dropout after each layer (0 or None: none); at most MAX_DROPOUTS non-zero.

    Returns ``(True, "fused: ...")`` or ``(False, reason)``; the trainer picks the path from it, ``summary()`` prints
    the reason. For float32 the answer depends on the matmul precision at the time of the call (IEEE fp32 has
    tighter bounds than TF32: IEEE_MAX_LAYERS, IEEE_WIDTH_BUDGET).
    """
    widths = [int(w) for w in widths]
    why = _check_widths(widths)
    if why is not None:
        return False, why
    why = _check_dropouts(dropout_rates or ())
    if why is not None:
        return False, why
    acts = activations if activations is not None else [None] * (len(widths) - 1)
    if len(acts) != len(widths) - 1:
        return False, f"expected one activation per layer ({len(widths) - 1}). Received: {len(acts)}"
    for a in acts:
        try:
            canonical(a)
        except ValueError:
            return False, f"activation {a!r} is not an element-wise activation of the table"
    if dtype not in DTYPES:
        return False, f"the fused kernels run float32 and bfloat16. Received: dtype={dtype}"
    try:
        name = _canonical_loss(loss)
    except ValueError as exc:
        return False, str(exc)
    shape = "-".join(str(w) for w in widths)
    if device is not None:
        try:
            on_triton = _backend.use_triton_on(device)
        except RuntimeError as exc:
            return False, str(exc)
        if not on_triton:  # the torch backend: no register budget, one autograd node (kernels/fused_mlp_torch.py)
            loss_text = f", {name} fused into it" if name else ""
            return True, f"fused (torch backend): {shape} as one autograd node, the per-layer torch ops{loss_text}"
    if dtype == torch.float32 and precision.dot_precision() == "ieee" and _ieee_why(widths):
        return False, _ieee_why(widths)
    if dtype == torch.float32 and _tf32_why(dropout_rates or ()):
        return False, _tf32_why(dropout_rates or ())
    pads = tuple(_pad(n) for n in widths[1:])
    params = sum(k * n + n for k, n in zip(widths[:-1], widths[1:], strict=True))
    rows = max(1, REDUCE_HERE_BYTES // (4 * params)) * BWD_BLOCKS[_kind(dtype)][max(pads)][0]
    loss_text = f", {name} fused into both" if name else ""
    return True, (
        f"fused: {shape} in 1 forward launch and 1 backward launch up to batch {rows} (2 above: the reduction of "
        f"the weight gradients){loss_text}"
    )


def _validate(x, kernels, biases, activations, dropout_rates, dropout_seeds, loss, targets, return_logits) -> MLPSpec:
    op = "fused_mlp"
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.dtype.is_floating_point:
        got = f"x.shape={tuple(x.shape)}, x.dtype={x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{op}: expected x a 2-D (batch, features) floating-point tensor. Received: {got}")
    if not isinstance(kernels, (list, tuple)) or not kernels:
        raise ValueError(f"{op}: expected kernels a non-empty list of (in, out) tensors. Received: {kernels!r}")
    n = len(kernels)
    biases = list(biases) if biases is not None else [None] * n
    activations = list(activations) if activations is not None else [None] * n
    rates = list(dropout_rates) if dropout_rates is not None else [0.0] * n
    seeds = list(dropout_seeds) if dropout_seeds is not None else [None] * n
    lists = {"biases": biases, "activations": activations, "dropout_rates": rates, "dropout_seeds": seeds}
    for name, lst in lists.items():
        if len(lst) != n:
            raise ValueError(f"{op}: expected one entry of {name} per kernel ({n}). Received: {len(lst)}")
    widths = [x.shape[1]]
    for i, (w, b) in enumerate(zip(kernels, biases, strict=True)):
        if not isinstance(w, torch.Tensor) or w.dim() != 2:
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ValueError(f"{op}: expected kernels[{i}] a 2-D (in, out) tensor. Received: {got}")
        if w.shape[0] != widths[-1]:
            what = "x.shape[1]" if i == 0 else f"kernels[{i - 1}].shape[1]"
            raise ValueError(
                f"{op}: kernels[{i}].shape[0] must equal {what}={widths[-1]}. "
                f"Received: kernels[{i}].shape={tuple(w.shape)}"
            )
        widths.append(w.shape[1])
        for name, t in ((f"kernels[{i}]", w), (f"biases[{i}]", b)):
            if t is None:
                continue
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"{op}: expected {name} a tensor or None. Received: {type(t).__name__}")
            if t.dtype != x.dtype:
                raise ValueError(f"{op}: {name} must have x's dtype {x.dtype}. Received: {name}.dtype={t.dtype}")
            if t.device != x.device:
                raise ValueError(f"{op}: {name} must be on x's device {x.device}. Received: {name}.device={t.device}")
        if b is not None and tuple(b.shape) != (w.shape[1],):
            raise ValueError(f"{op}: biases[{i}] must have shape ({w.shape[1]},). Received: {tuple(b.shape)}")
    why = _check_widths(widths)
    if why is not None:
        raise ValueError(f"{op}: {why} (the fused kernels' bounds; the per-layer path, kernels.dense, has none)")
    acts = tuple(canonical(a) for a in activations)
    rates = [check_rate(r) for r in rates]
    why = _check_dropouts(rates)
    if why is not None:
        raise ValueError(f"{op}: {why} (the fused kernels' bounds; the per-layer path, kernels.dense, has none)")
    seeds = [check_seed(s, x.device) if r > 0.0 else 0 for r, s in zip(rates, seeds, strict=True)]
    kinds = {isinstance(s, torch.Tensor) for r, s in zip(rates, seeds, strict=True) if r > 0.0}
    if len(kinds) > 1:
        raise ValueError(f"{op}: expected the dropout seeds all ints or all device seeds (0-dim int64 tensors)")
    loss = _canonical_loss(loss)
    if return_logits and loss is None:
        raise ValueError(f"{op}: return_logits applies to a fused loss. Received: return_logits=True, loss=None")
    if (loss is None) != (targets is None):
        got = type(targets).__name__
        raise ValueError(f"{op}: targets go with a fused loss. Received: loss={loss!r} and targets={got}")
    if loss is not None:
        _check_targets(op, loss, targets, x, widths[-1])
    has_bias = tuple(b is not None for b in biases)
    return MLPSpec(tuple(widths), acts, has_bias, tuple(rates), tuple(seeds), loss, bool(return_logits))


def _check_targets(op: str, loss: str, targets, x: torch.Tensor, n_out: int) -> None:
    if not isinstance(targets, torch.Tensor):
        raise ValueError(f"{op}: expected targets a tensor. Received: {type(targets).__name__}")
    if targets.device != x.device:
        raise ValueError(f"{op}: targets must be on x's device {x.device}. Received: targets.device={targets.device}")
    m = x.shape[0]
    if loss == "softmax_cross_entropy":
        if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
            raise ValueError(
                f"{op}: softmax_cross_entropy takes integer labels. Received: targets.dtype={targets.dtype}"
            )
        if tuple(targets.shape) != (m,):
            raise ValueError(f"{op}: expected labels of shape ({m},). Received: targets.shape={tuple(targets.shape)}")
        # kernels.softmax_cross_entropy's check: one device->host sync, none for labels whose range fit() checked
        # once (xent.known_label_range) or on CUDA with xent.CHECK_LABELS off. The kernels compare a label with
        # column indices only, never use it as an address.
        if m:
            xent.check_labels(targets, n_out, op)
    else:
        if not targets.dtype.is_floating_point:
            raise ValueError(f"{op}: mean_squared_error takes float targets. Received: targets.dtype={targets.dtype}")
        if tuple(targets.shape) != (m, n_out):
            raise ValueError(
                f"{op}: expected targets of the output's shape {(m, n_out)}. "
                f"Received: targets.shape={tuple(targets.shape)}"
            )


def fused_mlp(
    x: torch.Tensor,
    kernels: list[torch.Tensor],
    biases: list[torch.Tensor | None] | None = None,
    activations: list[str | None] | None = None,
    *,
    dropout_rates: list[float] | None = None,
    dropout_seeds: list[int | None] | None = None,
    loss: str | None = None,
    targets: torch.Tensor | None = None,
    return_logits: bool = False,
):
    """A stack of Dense layers ``h = dropout(act(h @ kernel + bias))``, and optionally its loss, fused.

    Args:
        x: ``(batch, in)``.
        kernels: one ``(in_l, out_l)`` weight per layer (1 to MAX_LAYERS), as Keras' Dense kernels.
        biases: one ``(out_l,)`` bias or None per layer; None: no biases.
        activations: one name of the activation table (or None, linear) per layer.
        dropout_rates: the rate of the Dropout after each layer's activation (training mode); 0 (or None for all)
            drops nothing.
        dropout_seeds: each dropout's seed (an int; None draws one). The mask equals ``kernels.dropout(h, rate,
            seed)``'s on the same backend: Philox on (seed, row-major index into that layer's output).
        loss: None (return the last layer's output), ``"softmax_cross_entropy"`` (integer labels; alias
            ``"sparse_categorical_crossentropy"``) or ``"mean_squared_error"`` (alias ``"mse"``), reduced over the
            batch as Keras' ``sum_over_batch_size``: the mean over rows (cross-entropy) or over all elements (squared
            error).
        targets: the labels ``(batch,)`` or targets ``(batch, out_last)`` of the fused loss.
        return_logits: with a fused loss, return ``(loss, logits)`` (the logits without a gradient, for metrics).

    Returns the ``(batch, out_last)`` output in x's dtype, or the fp32 scalar loss. Widths beyond the bounds
    (MAX_LAYERS, MAX_WIDTH, MAX_INPUT_WIDTH; see :func:`fused_mlp_supported`) are a ValueError. On the Triton
    backend float32 / bfloat16 run the fused kernels (one forward launch, one or two backward launches); on the torch
    backend they run as one autograd node of the per-layer torch ops (kernels/fused_mlp_torch.py); float64, float16
    and an empty batch run :func:`fused_mlp_reference`, the kernels.dense chain.
    """
    spec = _validate(x, kernels, biases, activations, dropout_rates, dropout_seeds, loss, targets, return_logits)
    biases = list(biases) if biases is not None else [None] * len(kernels)
    backend_triton = _backend.use_triton(x)
    if not backend_triton and x.dtype in DTYPES and x.shape[0] > 0:  # the torch backend: the stack as one node
        params = [t for w, b in zip(kernels, biases, strict=True) for t in (w, b)]
        return TorchMLPFunction.apply(x, targets, spec, *params)
    on_triton = backend_triton and x.dtype in DTYPES and x.shape[0] > 0
    if on_triton and x.dtype == torch.float32 and precision.dot_precision() == "ieee":
        on_triton = _ieee_why(spec.widths) is None
    if on_triton and x.dtype == torch.float32:
        on_triton = _tf32_why(spec.rates) is None
    if not on_triton:
        return fused_mlp_reference(
            x, list(kernels), biases, list(spec.activations), dropout_rates=list(spec.rates),
            dropout_seeds=list(spec.seeds), loss=spec.loss, targets=targets, return_logits=spec.return_logits,
        )  # fmt: skip
    params = []
    for w, b in zip(kernels, biases, strict=True):
        params += [w.contiguous(), b.contiguous() if b is not None else None]
    if targets is not None:
        targets = targets.contiguous()
    return FusedMLPFunction.apply(x, targets, spec, *params)
