"""Fused softmax cross-entropy, softmax / log-softmax, and sigmoid binary cross-entropy.

Softmax cross-entropy, per row ``i`` of logits ``z`` (N x C) with target distribution ``t`` (one-hot from integer
labels, or a given probability matrix), after label smoothing ``t' = (1 - ls) t + ls / C``:

    loss_i = T_i * lse(z_i) - sum_j t'_ij z_ij          T_i = sum_j t'_ij  (1 for one-hot / normalised targets)
    d loss_i / d z_ij = T_i * softmax(z_i)_j - t'_ij

One program per row walks the row in chunks of ``BLOCK_C`` columns keeping a per-lane online log-sum-exp (running
max ``m`` and running ``s = sum exp(z - m)``, rescaled by ``exp(m_old - m_new)`` whenever the max grows), plus the
sums it needs for the target term. So registers stay bounded for any C (131072 and beyond). When gradients are
needed the same launch writes ``d z = (T softmax - t') * scale`` (``scale`` = 1/n_valid for ``mean``), so the
backward is one scaling by the incoming gradient, never a second softmax; when that gradient is exactly 1 (a plain
``loss.backward()``) the scaling kernel's loads and stores are predicated off and it moves no (N, C) bytes.
No (N, C) fp32 temporary is made: the gradient is stored in the logits' dtype and is the only (N, C) buffer
allocated.

Traffic (bytes the op must move), logits of ``b`` bytes per element:
    integer labels, no grad:   read N*C*b                       (+ 8N labels, 4N loss)
    integer labels, with grad: read N*C*b, write N*C*b          (+ the same small terms)
    probability targets add one read of the (N, C) target matrix per pass over it.
When C <= BLOCK_C (``ONE_CHUNK``) the row stays in registers and the logits are read from HBM exactly once. For
larger C the gradient loop re-reads the row it has just reduced (L2 holds a 128K-column fp32 row, 512 KB, for
the few hundred rows in flight); the bench reports the achieved bandwidth against the minimal traffic above.

Integer labels are range-checked on the host before any launch (one device->host sync for the check): a label
outside [0, C) that is not ``ignore_index`` is a ``ValueError``, never an out-of-bounds read. Inside the kernel the
label is only ever compared with column indices, never used as an address.

``from_logits=False`` follows Keras 3 exactly (probabilities renormalised to sum to 1, clipped to [1e-7, 1 - 1e-7],
then ``-sum t log p``) with plain torch: it is the slow path by design; the API layer routes
``Dense(C, activation="softmax")`` + cross-entropy to the logits path, so a softmax output never goes through
``log(probabilities)``.

Binary cross-entropy with logits, element-wise, with ``t' = (1 - ls) t + ls / 2``:
    loss = max(z, 0) - z t' + log(1 + exp(-|z|))        d loss / d z = sigmoid(z) - t'
one flat kernel, read z and t, write loss (and the gradient).
"""

from __future__ import annotations

import torch

from . import _backend
from ._aot import AotCase, register_aot
from ._triton import tl, triton

REDUCTIONS = ("mean", "sum", "none")
EPSILON = 1e-7  # keras.config.epsilon(): the probability clip for from_logits=False

# Column chunk for rows longer than one block. 4096 fp32 columns over 8 warps is 16 per thread per operand, which
# keeps the six per-lane accumulators of the probability-target path under ptxas's budget without spills (see the
# AOT table: python -m tritonnn.kernels --filter xent). Rows up to _ONE_CHUNK_MAX columns are held whole.
_BLOCK_C = 4096
_ONE_CHUNK_MAX = 8192
# Flat element-wise kernels (binary cross-entropy, the backward scaling).
_BLOCK_FLAT = 2048


# ----------------------------------------------------------------------------------------------------------------
# References: the torch implementations, which are also the CPU path and the written-down spec.
# ----------------------------------------------------------------------------------------------------------------
def _reduce(loss: torch.Tensor, keep: torch.Tensor | None, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    denom = loss.new_tensor(float(loss.numel())) if keep is None else keep.sum().clamp_min(1).to(loss.dtype)
    return loss.sum() / denom


def _target_matrix(target: torch.Tensor, c: int, ignore_index: int | None, like: torch.Tensor):
    """(t, keep): the target distribution as an (N, C) fp32 matrix and the rows that count (None: all)."""
    if target.dtype.is_floating_point:
        return target.to(torch.float32), None
    keep = target != ignore_index if ignore_index is not None else None
    labels = target if keep is None else torch.where(keep, target, 0)
    t = torch.nn.functional.one_hot(labels.long(), c).to(torch.float32)
    return t, keep


def softmax_cross_entropy_reference(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    from_logits: bool = True,
) -> torch.Tensor:
    """Per row ``-sum_j t'_j log p_j``; ``p = softmax(logits)`` or, ``from_logits=False``, Keras' clipped probs.

    Computed in fp32 whatever the input dtype (Keras computes losses in float32 under mixed precision); the
    result is fp32.
    """
    c = logits.shape[-1]
    x = logits.to(torch.float32)
    if from_logits:
        logp = torch.log_softmax(x, dim=-1)
    else:
        p = x / x.sum(dim=-1, keepdim=True)
        logp = torch.log(p.clamp(EPSILON, 1.0 - EPSILON))
    t, keep = _target_matrix(target, c, ignore_index, x)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / c
    # Classes without target mass cost nothing, even at a -inf logit (a masked vocabulary entry): 0 * -inf is 0 here.
    loss = -(t * torch.where(t != 0, logp, 0.0)).sum(-1)
    if keep is not None:
        loss = loss * keep
    return _reduce(loss, keep, reduction)


def binary_cross_entropy_reference(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    from_logits: bool = True,
) -> torch.Tensor:
    """Element-wise binary cross-entropy in fp32 (Keras' clip to [1e-7, 1 - 1e-7] for probabilities)."""
    x = output.to(torch.float32)
    t = target.to(torch.float32)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
    else:
        p = x.clamp(EPSILON, 1.0 - EPSILON)
        loss = -(t * torch.log(p) + (1.0 - t) * torch.log1p(-p))
    return _reduce(loss, None, reduction)


# ----------------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _xent_fwd_kernel(
    # inputs
    logits_ptr,  # *[N, C] fp32/bf16/fp16, row stride stride_lm, unit column stride
    target_ptr,  # *i64 [N] labels (HAS_PROBS False) or *[N, C] float probabilities (HAS_PROBS True)
    scale_ptr,  # *fp32 [1]: the gradient's scale (1 / n_valid for "mean", else 1), on the device: no host sync
    # outputs
    loss_ptr,  # *fp32 [N]: the per-row loss, 0 for ignored rows
    grad_ptr,  # *[N, C] logits dtype: d loss / d logits (HAS_GRAD), row stride stride_gm
    # sizes and scalars
    n_cols,
    stride_lm,
    stride_tm,
    stride_gm,
    ignore_index,  # i64; never equal to a valid label when the caller has no ignore_index (it passes -1)
    label_smoothing,  # fp32
    # block information
    HAS_PROBS: tl.constexpr,
    HAS_GRAD: tl.constexpr,
    ONE_CHUNK: tl.constexpr,  # BLOCK_C >= n_cols: the whole row is held in registers, read once
    BLOCK_C: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_C)
    x_row = logits_ptr + row * stride_lm
    t_row = target_ptr + row * stride_tm
    g_row = grad_ptr + row * stride_gm
    smooth_u = label_smoothing / n_cols  # the uniform part of the smoothed target, ls / C
    keep_w = 1.0 - label_smoothing  # weight of the given target

    # The label is compared with column indices only, never used as an address.
    if HAS_PROBS:
        label = -1
        keep = n_cols > 0  # every row counts
    else:
        label = tl.load(t_row)
        keep = label != ignore_index

    if ONE_CHUNK:
        # The whole row in registers: one read of the logits, softmax and gradient from the same registers.
        mask = cols < n_cols
        z = tl.load(x_row + cols, mask=mask, other=float("-inf")).to(tl.float32)
        zm = tl.where(mask, z, 0.0)
        m = tl.max(z, axis=0)
        e = tl.exp(z - m)  # masked lanes: exp(-inf) = 0
        s = tl.sum(e, axis=0)
        lse = m + tl.log(s)
        zsum = tl.sum(zm, axis=0)
        if HAS_PROBS:
            t = tl.load(t_row + cols, mask=mask, other=0.0).to(tl.float32)
            tsum = tl.sum(t, axis=0)
            tz = tl.sum(t * tl.where(t != 0.0, zm, 0.0), axis=0)  # t = 0 never meets a -inf logit
        else:
            tsum = 1.0
            tz = tl.sum(tl.where(cols == label, zm, 0.0), axis=0)
        big_t = keep_w * tsum + label_smoothing  # T = sum_j t'_j
        # Masked-out classes (-inf logits) must cost nothing when they carry no target mass: the smoothing term is
        # added only when smoothing is on (else 0 * -inf would be NaN), and t = 0 terms are skipped above.
        loss = big_t * lse - (keep_w * tz + smooth_u * tl.where(label_smoothing > 0, zsum, 0.0))
        tl.store(loss_ptr + row, tl.where(keep, loss, 0.0))
        if HAS_GRAD:
            scale = tl.where(keep, tl.load(scale_ptr), 0.0)
            if HAS_PROBS:
                t_s = keep_w * t + smooth_u
            else:
                t_s = tl.where(cols == label, keep_w, 0.0) + smooth_u
            g = (big_t * (e / s) - t_s) * scale
            tl.store(g_row + cols, g.to(grad_ptr.dtype.element_ty), mask=mask)
    else:
        # Pass 1: per-lane online log-sum-exp. m_vec starts finite (-3e38), so a lane that only ever sees masked
        # columns (-inf) rescales by exp(0) = 1 and adds exp(-inf) = 0, never -inf - -inf.
        m_vec = tl.full([BLOCK_C], -3.0e38, tl.float32)
        s_vec = tl.zeros([BLOCK_C], tl.float32)
        zsum_vec = tl.zeros([BLOCK_C], tl.float32)
        tz_vec = tl.zeros([BLOCK_C], tl.float32)
        tsum_vec = tl.zeros([BLOCK_C], tl.float32)
        for start in range(0, n_cols, BLOCK_C):
            c = start + cols
            mask = c < n_cols
            z = tl.load(x_row + c, mask=mask, other=float("-inf")).to(tl.float32)
            zm = tl.where(mask, z, 0.0)
            m_new = tl.maximum(m_vec, z)
            s_vec = s_vec * tl.exp(m_vec - m_new) + tl.exp(z - m_new)
            m_vec = m_new
            zsum_vec += zm
            if HAS_PROBS:
                t = tl.load(t_row + c, mask=mask, other=0.0).to(tl.float32)
                tz_vec += t * tl.where(t != 0.0, zm, 0.0)
                tsum_vec += t
            else:
                tz_vec += tl.where(c == label, zm, 0.0)
        # Combine the lanes: m = max over lanes, s = sum_l s_l exp(m_l - m).
        m = tl.max(m_vec, axis=0)
        s = tl.sum(s_vec * tl.exp(m_vec - m), axis=0)
        lse = m + tl.log(s)
        zsum = tl.sum(zsum_vec, axis=0)
        tz = tl.sum(tz_vec, axis=0)
        if HAS_PROBS:
            tsum = tl.sum(tsum_vec, axis=0)
        else:
            tsum = 1.0
        big_t = keep_w * tsum + label_smoothing
        loss = big_t * lse - (keep_w * tz + smooth_u * tl.where(label_smoothing > 0, zsum, 0.0))
        tl.store(loss_ptr + row, tl.where(keep, loss, 0.0))
        if HAS_GRAD:
            # Pass 2 over the row just reduced (L2-resident): d z = (T exp(z - lse) - t') * scale.
            scale = tl.where(keep, tl.load(scale_ptr), 0.0)
            for start in range(0, n_cols, BLOCK_C):
                c = start + cols
                mask = c < n_cols
                z = tl.load(x_row + c, mask=mask, other=float("-inf")).to(tl.float32)
                p = tl.exp(z - lse)
                if HAS_PROBS:
                    t = tl.load(t_row + c, mask=mask, other=0.0).to(tl.float32)
                    t_s = keep_w * t + smooth_u
                else:
                    t_s = tl.where(c == label, keep_w, 0.0) + smooth_u
                g = (big_t * p - t_s) * scale
                tl.store(g_row + c, g.to(grad_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _xent_bwd_kernel(
    grad_ptr,  # *[M, K] any float: the gradient saved by the forward, scaled in place
    gout_ptr,  # *float: the incoming gradient, read at m * stride_om + k * stride_ok (strides 0 for a scalar)
    n_cols,
    stride_gm,
    stride_om,
    stride_ok,
    BLOCK: tl.constexpr,
):
    # The whole backward of the fused losses: grad *= grad_output, broadcast as the strides say. grad_output stays
    # on the device (a scalar for mean/sum), so there is no host sync and no second softmax.
    # A 1-D grid over (row, column block) tiles: CUDA caps grid dims 1 and 2 at 65535, dim 0 at 2^31 - 1.
    pid = tl.program_id(0).to(tl.int64)
    n_col_blocks = tl.cdiv(n_cols, BLOCK)
    row = pid // n_col_blocks
    c = (pid % n_col_blocks) * BLOCK + tl.arange(0, BLOCK)
    mask = c < n_cols
    ptrs = grad_ptr + row * stride_gm + c
    go = tl.load(gout_ptr + row * stride_om + c * stride_ok, mask=mask, other=1.0).to(tl.float32)
    # Where the incoming gradient is exactly 1 (a plain loss.backward() of a mean or sum) the saved gradient is
    # already final: those lanes are predicated off, so the common case moves no (N, C) bytes at all, and still
    # without a host sync to find out.
    todo = mask & (go != 1.0)
    g = tl.load(ptrs, mask=todo, other=0.0).to(tl.float32)
    tl.store(ptrs, (g * go).to(grad_ptr.dtype.element_ty), mask=todo)


@triton.jit
def _softmax_fwd_kernel(
    x_ptr,  # *[N, C] float, row stride stride_xm
    y_ptr,  # *[N, C] same dtype, row stride stride_ym
    n_cols,
    stride_xm,
    stride_ym,
    LOG: tl.constexpr,  # log_softmax instead of softmax
    ONE_CHUNK: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_C)
    x_row = x_ptr + row * stride_xm
    y_row = y_ptr + row * stride_ym
    if ONE_CHUNK:
        # Read once, write once.
        mask = cols < n_cols
        z = tl.load(x_row + cols, mask=mask, other=float("-inf")).to(tl.float32)
        m = tl.max(z, axis=0)
        e = tl.exp(z - m)
        s = tl.sum(e, axis=0)
        if LOG:
            y = z - (m + tl.log(s))
        else:
            y = e / s
        tl.store(y_row + cols, y.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        # Online log-sum-exp over chunks (as in _xent_fwd_kernel), then a second sweep writes the output.
        m_vec = tl.full([BLOCK_C], -3.0e38, tl.float32)
        s_vec = tl.zeros([BLOCK_C], tl.float32)
        for start in range(0, n_cols, BLOCK_C):
            c = start + cols
            z = tl.load(x_row + c, mask=c < n_cols, other=float("-inf")).to(tl.float32)
            m_new = tl.maximum(m_vec, z)
            s_vec = s_vec * tl.exp(m_vec - m_new) + tl.exp(z - m_new)
            m_vec = m_new
        m = tl.max(m_vec, axis=0)
        lse = m + tl.log(tl.sum(s_vec * tl.exp(m_vec - m), axis=0))
        for start in range(0, n_cols, BLOCK_C):
            c = start + cols
            mask = c < n_cols
            z = tl.load(x_row + c, mask=mask, other=0.0).to(tl.float32)
            if LOG:
                y = z - lse
            else:
                y = tl.exp(z - lse)
            tl.store(y_row + c, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bce_fwd_kernel(
    z_ptr,  # *[n] float logits
    t_ptr,  # *[n] float targets
    scale_ptr,  # *fp32 [1]: gradient scale (1/n for "mean")
    loss_ptr,  # *fp32 [n] element-wise loss
    grad_ptr,  # *[n] logits dtype, d loss / d z (HAS_GRAD)
    n,
    label_smoothing,
    HAS_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    z = tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    t = tl.load(t_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    # Stable form: max(z, 0) - z t + log(1 + exp(-|z|)). e = exp(-|z|) in (0, 1] never overflows; log(1 + e)
    # loses relative precision for tiny e, so use the series e - e^2/2 there (portable: no libdevice log1p).
    e = tl.exp(-tl.abs(z))
    log1p_e = tl.where(e < 1e-4, e - 0.5 * e * e, tl.log(1.0 + e))
    loss = tl.maximum(z, 0.0) - z * t + log1p_e
    tl.store(loss_ptr + offs, loss, mask=mask)
    if HAS_GRAD:
        # sigmoid(z) - t from the same e, without cancellation: for z >= 0, sigmoid(z) = 1 - e / (1 + e), so
        # the difference is (1 - t) - e / (1 + e) (exact for t = 1); for z < 0, sigmoid(z) = e / (1 + e).
        q = e / (1.0 + e)
        g = tl.where(z >= 0, (1.0 - t) - q, q - t) * tl.load(scale_ptr)
        tl.store(grad_ptr + offs, g.to(grad_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------------------------------
# Ahead-of-time compile cases: the launch configurations the launchers pick, large C included.
# ----------------------------------------------------------------------------------------------------------------
def _xent_case(dtype: str, probs: bool, grad: bool, one_chunk: bool, block: int, warps: int) -> AotCase:
    tag = f"xent_fwd[{dtype},{'probs' if probs else 'labels'},{'grad' if grad else 'nograd'},C{block}" + (
        ",one]" if one_chunk else ",chunked]"
    )
    return AotCase(
        name=tag,
        kernel=_xent_fwd_kernel,
        signature={
            "logits_ptr": f"*{dtype}",
            "target_ptr": f"*{dtype}" if probs else "*i64",
            "scale_ptr": "*fp32",
            "loss_ptr": "*fp32",
            "grad_ptr": f"*{dtype}",
            "n_cols": "i32",
            "stride_lm": "i64",
            "stride_tm": "i64",
            "stride_gm": "i64",
            "ignore_index": "i64",
            "label_smoothing": "fp32",
            "HAS_PROBS": "constexpr",
            "HAS_GRAD": "constexpr",
            "ONE_CHUNK": "constexpr",
            "BLOCK_C": "constexpr",
        },
        constexprs={"HAS_PROBS": probs, "HAS_GRAD": grad, "ONE_CHUNK": one_chunk, "BLOCK_C": block},
        num_warps=warps,
        num_stages=1,
    )


def _num_warps(block: int) -> int:
    return 4 if block <= 1024 else 8 if block <= 4096 else 16


register_aot(
    # Chunked: any C > _ONE_CHUNK_MAX, up to 131072 and beyond, in chunks of _BLOCK_C.
    _xent_case("fp32", False, True, False, _BLOCK_C, _num_warps(_BLOCK_C)),
    _xent_case("bf16", False, True, False, _BLOCK_C, _num_warps(_BLOCK_C)),
    _xent_case("fp32", True, True, False, _BLOCK_C, _num_warps(_BLOCK_C)),
    _xent_case("bf16", False, False, False, _BLOCK_C, _num_warps(_BLOCK_C)),
    # One chunk: small C (e.g. 10 classes: a 16-wide block) and the largest row held whole.
    _xent_case("fp32", False, True, True, 16, _num_warps(16)),
    _xent_case("fp32", True, True, True, 1024, _num_warps(1024)),
    _xent_case("bf16", False, True, True, _ONE_CHUNK_MAX, _num_warps(_ONE_CHUNK_MAX)),
    _xent_case("fp32", True, True, True, _ONE_CHUNK_MAX, _num_warps(_ONE_CHUNK_MAX)),
    AotCase(
        name="xent_bwd[bf16]",
        kernel=_xent_bwd_kernel,
        signature={
            "grad_ptr": "*bf16",
            "gout_ptr": "*fp32",
            "n_cols": "i32",
            "stride_gm": "i64",
            "stride_om": "i64",
            "stride_ok": "i64",
            "BLOCK": "constexpr",
        },
        constexprs={"BLOCK": _BLOCK_FLAT},
        num_warps=8,
        num_stages=1,
    ),
    *[
        AotCase(
            name=f"softmax_fwd[{dt},{'log' if log else 'softmax'},C{block},{'one' if one else 'chunked'}]",
            kernel=_softmax_fwd_kernel,
            signature={
                "x_ptr": f"*{dt}",
                "y_ptr": f"*{dt}",
                "n_cols": "i32",
                "stride_xm": "i64",
                "stride_ym": "i64",
                "LOG": "constexpr",
                "ONE_CHUNK": "constexpr",
                "BLOCK_C": "constexpr",
            },
            constexprs={"LOG": log, "ONE_CHUNK": one, "BLOCK_C": block},
            num_warps=_num_warps(block),
            num_stages=1,
        )
        for dt, log, one, block in [
            ("fp32", False, True, 16),
            ("bf16", True, True, _ONE_CHUNK_MAX),
            ("fp32", False, False, _BLOCK_C),
            ("bf16", True, False, _BLOCK_C),
        ]
    ],
    *[
        AotCase(
            name=f"bce_fwd[{dt},{'grad' if grad else 'nograd'}]",
            kernel=_bce_fwd_kernel,
            signature={
                "z_ptr": f"*{dt}",
                "t_ptr": f"*{dt}",
                "scale_ptr": "*fp32",
                "loss_ptr": "*fp32",
                "grad_ptr": f"*{dt}",
                "n": "i64",
                "label_smoothing": "fp32",
                "HAS_GRAD": "constexpr",
                "BLOCK": "constexpr",
            },
            constexprs={"HAS_GRAD": grad, "BLOCK": _BLOCK_FLAT},
            num_warps=8,
            num_stages=1,
        )
        for dt, grad in [("fp32", True), ("bf16", True), ("fp32", False)]
    ],
)


# ----------------------------------------------------------------------------------------------------------------
# Launchers: validate, allocate, launch. No autograd here.
# ----------------------------------------------------------------------------------------------------------------
def _pick_block(n_cols: int, block_c: int | None) -> tuple[int, bool]:
    """(BLOCK_C, ONE_CHUNK) for a row of n_cols; ``block_c`` forces a chunk size (tests, benchmarks)."""
    if block_c is not None:
        return block_c, block_c >= n_cols
    whole = triton.next_power_of_2(max(n_cols, 16))
    if whole <= _ONE_CHUNK_MAX:
        return whole, True
    return _BLOCK_C, False


def xent_fwd(
    logits: torch.Tensor,
    target: torch.Tensor,
    scale: torch.Tensor,
    *,
    label_smoothing: float,
    ignore_index: int | None,
    need_grad: bool,
    block_c: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-row losses (fp32 [N]) and, if ``need_grad``, ``d loss_rows / d logits * scale`` in the logits' dtype.

    ``logits`` (N, C) with unit column stride; ``target`` validated labels (N,) or probabilities (N, C);
    ``scale`` a device fp32 tensor of one element.
    """
    n, c = logits.shape
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    probs = target.dtype.is_floating_point
    if probs and target.stride(1) != 1:
        target = target.contiguous()
    if not probs:
        target = target.to(torch.int64).contiguous()
    loss = torch.empty(n, dtype=torch.float32, device=logits.device)
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format) if need_grad else None
    block, one = _pick_block(c, block_c)
    if n:
        _xent_fwd_kernel[(n,)](
            logits,
            target,
            scale,
            loss,
            grad if grad is not None else loss,  # never written without HAS_GRAD
            c,
            logits.stride(0),
            target.stride(0) if probs else 1,
            grad.stride(0) if grad is not None else 0,
            -1 if ignore_index is None else int(ignore_index),
            float(label_smoothing),
            HAS_PROBS=probs,
            HAS_GRAD=need_grad,
            ONE_CHUNK=one,
            BLOCK_C=block,
            num_warps=_num_warps(block),
            num_stages=1,
        )
    return loss, grad


def xent_bwd(grad: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """Scale the saved gradient ``grad`` (2-D, unit column stride) in place by ``grad_output``.

    ``grad_output`` is a scalar, one value per row (shape (M,)), or the gradient's own shape.
    """
    m, k = grad.shape
    go = grad_output.contiguous()
    if go.dim() == 0 or go.numel() == 1:
        s_m, s_k = 0, 0
    elif go.shape == (m,):
        s_m, s_k = 1, 0
    elif tuple(go.shape) == (m, k):
        s_m, s_k = k, 1
    else:
        raise ValueError(f"xent_bwd: grad_output of shape {tuple(go.shape)} does not broadcast to {(m, k)}")
    if grad.numel():
        _xent_bwd_kernel[(m * triton.cdiv(k, _BLOCK_FLAT),)](
            grad, go, k, grad.stride(0), s_m, s_k, BLOCK=_BLOCK_FLAT, num_warps=8, num_stages=1
        )
    return grad


def softmax_fwd(x: torch.Tensor, *, log: bool, block_c: int | None = None) -> torch.Tensor:
    """Row softmax (or log-softmax) of a 2-D tensor over its last dimension."""
    x = x.contiguous()
    n, c = x.shape
    y = torch.empty_like(x)
    block, one = _pick_block(c, block_c)
    if x.numel():
        _softmax_fwd_kernel[(n,)](
            x, y, c, x.stride(0), y.stride(0), LOG=log, ONE_CHUNK=one, BLOCK_C=block,
            num_warps=_num_warps(block), num_stages=1,
        )  # fmt: skip
    return y


def bce_fwd(
    z: torch.Tensor, t: torch.Tensor, scale: torch.Tensor, *, label_smoothing: float, need_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Element-wise binary cross-entropy with logits (fp32) and, if asked, its gradient scaled by ``scale``."""
    z = z.contiguous()
    t = t.contiguous()
    n = z.numel()
    loss = torch.empty(z.shape, dtype=torch.float32, device=z.device)
    grad = torch.empty_like(z) if need_grad else None
    if n:
        _bce_fwd_kernel[(triton.cdiv(n, _BLOCK_FLAT),)](
            z, t, scale, loss, grad if grad is not None else loss, n, float(label_smoothing),
            HAS_GRAD=need_grad, BLOCK=_BLOCK_FLAT, num_warps=8, num_stages=1,
        )  # fmt: skip
    return loss, grad


# ----------------------------------------------------------------------------------------------------------------
# Autograd functions: the forward saves the gradient it already wrote (save, not recompute: it costs the (N, C)
# buffer the backward would need anyway, and removes a second softmax).
# ----------------------------------------------------------------------------------------------------------------
def _reduce_rows(loss: torch.Tensor, scale: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    total = loss.sum()
    return total * scale[0] if reduction == "mean" else total


class _FusedLossFunction(torch.autograd.Function):
    """Shared backward: scale the gradient the forward wrote, in place, by the incoming gradient."""

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.grad is None:
            return (None,) * ctx.n_inputs
        if ctx.consumed:
            raise RuntimeError(
                "The fused cross-entropy scales its saved gradient in place, so its backward runs once; "
                "recompute the loss instead of retain_graph=True"
            )
        ctx.consumed = True
        grad = ctx.grad
        if ctx.reduction != "none":
            grad_output = grad_output.to(torch.float32).reshape(1)
        g2 = grad if grad.dim() == 2 else grad.view(1, -1)
        go = grad_output if grad.dim() == 2 or grad_output.numel() == 1 else grad_output.reshape(1, -1)
        xent_bwd(g2, go)
        ctx.grad = None
        return (grad,) + (None,) * (ctx.n_inputs - 1)


class SoftmaxCrossEntropyFunction(_FusedLossFunction):
    @staticmethod
    def forward(ctx, logits, target, reduction, label_smoothing, ignore_index):
        n, c = logits.shape
        need_grad = ctx.needs_input_grad[0]
        if reduction == "mean":
            if target.dtype.is_floating_point or ignore_index is None:
                scale = torch.full((1,), 1.0 / max(n, 1), dtype=torch.float32, device=logits.device)
            else:
                n_valid = (target != ignore_index).sum().clamp_min(1)
                scale = n_valid.reciprocal().to(torch.float32).reshape(1)
        else:
            scale = torch.ones(1, dtype=torch.float32, device=logits.device)
        loss, grad = xent_fwd(
            logits, target, scale, label_smoothing=label_smoothing, ignore_index=ignore_index, need_grad=need_grad
        )
        ctx.grad, ctx.reduction, ctx.consumed, ctx.n_inputs = grad, reduction, False, 5
        return _reduce_rows(loss, scale, reduction)


class BinaryCrossEntropyFunction(_FusedLossFunction):
    @staticmethod
    def forward(ctx, logits, target, reduction, label_smoothing):
        need_grad = ctx.needs_input_grad[0]
        value = 1.0 / max(logits.numel(), 1) if reduction == "mean" else 1.0
        scale = torch.full((1,), value, dtype=torch.float32, device=logits.device)
        loss, grad = bce_fwd(logits, target, scale, label_smoothing=label_smoothing, need_grad=need_grad)
        ctx.grad, ctx.reduction, ctx.consumed, ctx.n_inputs = grad, reduction, False, 4
        if reduction == "none":
            return loss
        return loss.sum() * scale[0] if reduction == "mean" else loss.sum()


class SoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, log):
        shape = x.shape
        y = softmax_fwd(x.reshape(-1, shape[-1]), log=log).view(shape)
        ctx.save_for_backward(y)
        ctx.log = log
        return y

    @staticmethod
    def backward(ctx, g):
        # softmax: dx = y (g - sum(g y)); log_softmax: dx = g - softmax * sum(g). Forward-time op: plain torch.
        (y,) = ctx.saved_tensors
        yf, gf = y.float(), g.float()
        if ctx.log:
            dx = gf - yf.exp() * gf.sum(-1, keepdim=True)
        else:
            dx = yf * (gf - (gf * yf).sum(-1, keepdim=True))
        return dx.to(y.dtype), None


# ----------------------------------------------------------------------------------------------------------------
# Public ops
# ----------------------------------------------------------------------------------------------------------------
def _check_common(op: str, reduction: str, label_smoothing: float) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: expected reduction in {REDUCTIONS}. Received: reduction={reduction!r}")
    if not isinstance(label_smoothing, (int, float)) or not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(
            f"{op}: expected label_smoothing a float in [0, 1]. Received: label_smoothing={label_smoothing!r}"
        )


# The label range check costs one device->host sync per call. The kernel never uses a label as an address (it
# only compares it with column indices), so turning the check off cannot cause an out-of-bounds read: a bad label
# then silently counts as "no class" (loss = logsumexp). A training loop that validated its labels once may set
# this to False to keep its steps free of host syncs.
CHECK_LABELS = True

# Label arrays whose range is already known, by the memory they live in: {data_ptr: (numel, lo, hi)}. fit() checks
# its whole target array once (min and max: one sync per fit) and registers each batch it gathers from it for the
# step, so the per-step check becomes a host comparison with no launch and no sync. Matching on the storage, not
# the Python object, keeps views (reshape, squeeze) of a registered batch covered and anything else checked.
_KNOWN_RANGES: dict[int, tuple[int, int, int]] = {}


class known_label_range:  # noqa: N801 - used like a function, as a context manager
    """Within the block, label tensors in ``targets`` are known to lie in ``[lo, hi]`` (and, for a float tensor, to
    hold whole numbers): cross-entropy and :func:`sparse_labels` skip their per-call check (a device->host sync) when
    ``0 <= lo`` and ``hi < C``; any other label tensor, or a range that does not fit the logits, is checked as usual.
    """

    def __init__(self, targets: list[torch.Tensor], lo: int, hi: int):
        self.entries = {t.data_ptr(): (t.numel(), int(lo), int(hi)) for t in targets}

    def __enter__(self) -> known_label_range:
        self.previous = {ptr: _KNOWN_RANGES.get(ptr) for ptr in self.entries}  # nested blocks restore the outer
        _KNOWN_RANGES.update(self.entries)
        return self

    def __exit__(self, *exc: object) -> None:
        for ptr, before in self.previous.items():
            if before is None:
                _KNOWN_RANGES.pop(ptr, None)
            else:
                _KNOWN_RANGES[ptr] = before


def _is_known(target: torch.Tensor, c: int | None) -> bool:
    if not _KNOWN_RANGES:
        return False
    known = _KNOWN_RANGES.get(target.data_ptr())
    if known is None or known[0] != target.numel():
        return False
    return c is None or (known[1] >= 0 and known[2] < c)


def _shown(v: float) -> str:
    return f"{v:.7g}"


def _check_labels(target: torch.Tensor, c: int | None, ignore_index: int | None, op: str = "softmax_cross_entropy"):
    """Check class labels before any kernel sees them, in one device->host sync: integer-valued (a float tensor
    must hold whole numbers, as Keras' guides' ``y.astype("float32")`` does) and, with ``c``, in ``[0, c)``."""
    if not CHECK_LABELS and target.is_cuda:
        return
    if _is_known(target, c):
        return
    floating = target.dtype.is_floating_point
    bad = torch.zeros_like(target, dtype=torch.bool) if c is None else (target < 0) | (target >= c)
    if ignore_index is not None:
        bad &= target != ignore_index
    whole = None
    if floating:
        whole = torch.isfinite(target) & (target == torch.round(target))
        bad |= ~whole
    if not bool(bad.any()):
        return
    if floating and not bool(whole.all()):
        fractional = target[~whole]
        raise ValueError(
            f"{op}: expected integer class labels (a float array is accepted when it holds whole numbers). "
            f"Received: y_true with {fractional.numel()} non-integer value(s), e.g. {_shown(float(fractional[0]))}"
        )
    first = target[bad][0]
    allowed = f"[0, {c})" + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
    raise ValueError(
        f"{op}: expected integer labels in {allowed}. "
        f"Received: target with {int(bad.sum())} label(s) out of range, e.g. "
        f"{_shown(float(first)) if floating else int(first)}"
    )


def check_labels(target: torch.Tensor, c: int, op: str = "softmax_cross_entropy") -> None:
    """softmax_cross_entropy's check of integer class labels in ``[0, c)`` (one device->host sync; none for labels
    in a :class:`known_label_range`, or on CUDA with CHECK_LABELS off), for the other kernels that take class labels
    (kernels/fused_mlp.py's fused loss)."""
    _check_labels(target, c, None, op)


def sparse_labels(
    target: torch.Tensor,
    num_classes: int | None = None,
    *,
    ignore_index: int | None = None,
    op: str = "sparse labels",
) -> torch.Tensor:
    """Class labels as an integer tensor: an integer tensor as it is, a float tensor of whole numbers as int64.

    Checked in one device->host sync, skipped for a tensor registered with :class:`known_label_range` (fit()
    registers each batch of a target array it checked once): a float must hold a whole number (``1.7`` is a
    ``ValueError`` naming the value) and, with ``num_classes``, a label must lie in ``[0, num_classes)`` or equal
    ``ignore_index``. An integer tensor is only checked when ``num_classes`` is given. ``op`` names the caller in
    errors.
    """
    if not isinstance(target, torch.Tensor) or target.dtype == torch.bool or target.dtype.is_complex:
        got = f"target.dtype={target.dtype}" if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(f"{op}: expected integer class labels (or floats holding whole numbers). Received: {got}")
    if target.dtype.is_floating_point:
        _check_labels(target, num_classes, ignore_index, op)
        return target.to(torch.int64)
    if num_classes is not None:
        _check_labels(target, num_classes, ignore_index, op)
    return target


def softmax_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    from_logits: bool = True,
) -> torch.Tensor:
    """Cross-entropy of ``softmax(logits)`` (or of probabilities, ``from_logits=False``) against ``target``.

    Args:
        logits: (N, C) float tensor (logits, or probabilities when ``from_logits=False``).
        target: (N,) integer class indices (Keras' sparse case; a float (N,) tensor of whole numbers is taken as
            labels too) or an (N, C) probability / one-hot matrix (Keras' categorical case).
        reduction: ``"mean"`` (over the rows that count), ``"sum"`` or ``"none"`` (per row, fp32).
        label_smoothing: ``t' = (1 - ls) t + ls / C``.
        ignore_index: integer label whose rows count neither in the loss nor in the mean's denominator.
        from_logits: False follows Keras' probability path (renormalise, clip to [1e-7, 1 - 1e-7], log).

    Returns an fp32 scalar (or (N,) for ``"none"``). Gradients flow to ``logits``.
    """
    op = "softmax_cross_entropy"
    _check_common(op, reduction, label_smoothing)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.dtype.is_floating_point:
        raise ValueError(
            f"{op}: expected logits a 2-D (N, C) float tensor. Received: "
            f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}"
        )
    n, c = logits.shape
    if isinstance(target, torch.Tensor) and target.dtype.is_floating_point and target.dim() == 1:
        # Sparse labels held as floats (Keras' guides pass ``y.astype("float32")``): whole numbers, checked once.
        if tuple(target.shape) != (n,):
            raise ValueError(
                f"{op}: expected integer labels of shape ({n},). Received: target.shape={tuple(target.shape)}"
            )
        if target.device != logits.device:
            raise ValueError(f"{op}: target is on {target.device}, logits on {logits.device}")
        target = sparse_labels(target, c, ignore_index=ignore_index, op=op)
    elif target.dtype.is_floating_point:
        if tuple(target.shape) != (n, c):
            raise ValueError(
                f"{op}: expected probability targets of the logits' shape {(n, c)}. "
                f"Received: target.shape={tuple(target.shape)}"
            )
        if ignore_index is not None:
            raise ValueError(
                f"{op}: ignore_index applies to integer labels only. Received: ignore_index={ignore_index}"
            )
    elif target.dtype == torch.bool or target.dtype.is_complex:
        raise ValueError(f"{op}: expected integer labels or float probabilities. Received: target.dtype={target.dtype}")
    else:
        if tuple(target.shape) != (n,):
            raise ValueError(
                f"{op}: expected integer labels of shape ({n},). Received: target.shape={tuple(target.shape)}"
            )
        _check_labels(target, c, ignore_index)
    if target.device != logits.device:
        raise ValueError(f"{op}: target is on {target.device}, logits on {logits.device}")
    if from_logits and _backend.use_triton(logits):
        return SoftmaxCrossEntropyFunction.apply(logits, target, reduction, float(label_smoothing), ignore_index)
    if from_logits and ignore_index is None and n > 0 and not target.dtype.is_floating_point:
        # The torch path for integer labels: ATen's fused log-softmax + NLL (forward and backward) in fp32, with the
        # reference's label smoothing; a third of the reference's ops. The reference stays the spec, and the path
        # for probability targets (where t * -inf must be 0) and ignore_index (whose all-ignored mean is 0 here).
        return torch.nn.functional.cross_entropy(
            logits.to(torch.float32), target.long(), reduction=reduction, label_smoothing=float(label_smoothing)
        )
    return softmax_cross_entropy_reference(
        logits,
        target,
        reduction=reduction,
        label_smoothing=label_smoothing,
        ignore_index=ignore_index,
        from_logits=from_logits,
    )


def binary_cross_entropy(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    from_logits: bool = True,
) -> torch.Tensor:
    """Element-wise binary cross-entropy, fused with the sigmoid when ``from_logits`` (fp32 result).

    ``reduction="mean"`` averages over every element (Keras' ``binary_crossentropy`` averages the last axis per
    sample, then the batch: the same number for equal-width rows); ``"none"`` keeps ``output``'s shape.
    ``from_logits=False`` clips probabilities to [1e-7, 1 - 1e-7] as Keras does (torch path).
    """
    op = "binary_cross_entropy"
    _check_common(op, reduction, label_smoothing)
    if not isinstance(output, torch.Tensor) or not output.dtype.is_floating_point:
        raise ValueError(f"{op}: expected output a float tensor. Received: {type(output).__name__}")
    if tuple(target.shape) != tuple(output.shape):
        raise ValueError(
            f"{op}: expected target of the output's shape {tuple(output.shape)}. "
            f"Received: target.shape={tuple(target.shape)}"
        )
    if target.device != output.device:
        raise ValueError(
            f"{op}: expected target on the output's device {output.device}. Received: target.device={target.device}"
        )
    if not target.dtype.is_floating_point:
        target = target.to(output.dtype if output.dtype != torch.float64 else torch.float32)
    if from_logits and _backend.use_triton(output):
        return BinaryCrossEntropyFunction.apply(output, target, reduction, float(label_smoothing))
    return binary_cross_entropy_reference(
        output, target, reduction=reduction, label_smoothing=label_smoothing, from_logits=from_logits
    )


def _check_float(op: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        got = f"x.dtype={x.dtype}" if isinstance(x, torch.Tensor) else f"x={type(x).__name__}"
        raise ValueError(f"{op}: expected x a floating-point tensor. Received: {got}")


def softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Softmax over ``axis`` (a row kernel over the last axis; other axes are moved there)."""
    _check_float("softmax", x)
    if not _backend.use_triton(x) or x.dim() == 0:
        return torch.softmax(x, dim=axis)
    if axis not in (-1, x.dim() - 1):
        return SoftmaxFunction.apply(x.movedim(axis, -1).contiguous(), False).movedim(-1, axis)
    return SoftmaxFunction.apply(x, False)


def log_softmax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Log-softmax over ``axis`` (the same row kernel, LOG=True)."""
    _check_float("log_softmax", x)
    if not _backend.use_triton(x) or x.dim() == 0:
        return torch.log_softmax(x, dim=axis)
    if axis not in (-1, x.dim() - 1):
        return SoftmaxFunction.apply(x.movedim(axis, -1).contiguous(), True).movedim(-1, axis)
    return SoftmaxFunction.apply(x, True)


__all__ = [
    "binary_cross_entropy",
    "known_label_range",
    "sparse_labels",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
]
