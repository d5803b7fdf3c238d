"""Fused optimizer updates over flat fp32 buffers: one launch updates every parameter of a model.

The optimizer (``tritonnn/optimizers``) keeps all trainable parameters in one contiguous fp32 buffer, their
gradients in another, and each state (moments, velocities) in one more, so a step is one kernel over ``n``
elements, whatever the number of variables. One kernel serves every rule; the rule and its options are constexprs
(``RULE``, ``CLIP``, ``HAS_WD``, ``HAS_MOMENTUM``, ``NESTEROV``, ``CENTERED``, ``AMSGRAD``), so each configuration
compiles to straight-line code with no dead loads.

Update rules: Keras 3's, in the order Keras applies them (``BaseOptimizer._backend_apply_gradients``):
  1. clip the gradient: ``clipvalue`` (element-wise clamp), ``clipnorm`` (each variable's gradient scaled by
     ``clipnorm / max(||g_var||, clipnorm)``), or ``global_clipnorm`` (every gradient scaled by
     ``clip * min(1 / ||g||, 1 / clip)``, NaN when the norm is not finite, as Keras does);
  2. weight decay, when set: ``p -= p * weight_decay * lr`` (before the update, for every optimizer);
  3. the rule:
     SGD      m = momentum m - lr g;  p += m  (nesterov: p += momentum m - lr g);  no momentum: p -= lr g
     Adam     m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  [amsgrad: vh = max(vh, v), v := vh]
              p -= lr_t m / (sqrt(v) + eps),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t),  t = iterations + 1
     RMSprop  v = rho v + (1 - rho) g^2;  [centered: a = rho a + (1 - rho) g, denom = v - a^2 + eps]
              else denom = v + eps;  inc = lr g / sqrt(denom);  momentum > 0: mo = momentum mo + inc, p -= mo
              else p -= inc
Keras vs PyTorch (both written down because the defaults look alike and are not):
  - Adam: Keras adds epsilon to sqrt(v) *after* folding the bias corrections into the rate (``eps_hat`` of Kingma &
    Ba), PyTorch adds it to sqrt(v_hat) = sqrt(v / (1 - b2^t)); the two agree when eps is 0. Keras' default epsilon
    is 1e-7, PyTorch's 1e-8.
  - RMSprop: Keras puts epsilon *inside* the square root (sqrt(v + eps)), PyTorch outside (sqrt(v) + eps); Keras'
    rho is PyTorch's alpha (defaults 0.9 vs 0.99); Keras' default epsilon 1e-7, PyTorch's 1e-8.
  - SGD with momentum: Keras folds lr into the velocity (m = mu m - lr g), PyTorch does not (b = mu b + g,
    p -= lr b): identical trajectories for a constant lr, different ones when lr changes (schedules).
    Keras' nesterov step is p += mu m - lr g, PyTorch's p -= lr (g + mu b): the same for a constant lr.
  - Weight decay: Keras decays every optimizer decoupled, p -= lr wd p before the rule (AdamW's form, default
    0.004 for AdamW); PyTorch's Adam/SGD/RMSprop ``weight_decay`` adds wd p to the gradient (L2), and
    ``torch.optim.AdamW`` uses p -= lr wd p with default wd 0.01.

The global norm is one reduction pass (``_optim_sqnorm_kernel``: each program sums the squares of a chunk and adds
them to a device scalar with one atomic), and the scaling is fused into the update kernel, which reads that
scalar: no host sync, no rescaled copy of the gradient. ``clipnorm`` (per variable) uses the same two kernels over
a chunk table whose chunks never cross a variable boundary, one accumulator per variable.

All step-dependent scalars (the learning rate from a schedule, Adam's bias corrections) are computed on the host
from the optimizer's host-side step counter, which never needs to be read back from the device: no host sync.

Traffic per parameter (fp32): Adam reads p, g, m, v and writes p, m, v: 28 bytes (amsgrad +8); SGD with momentum
20, without 12; RMSprop 20 (+8 momentum, +8 centered). Clipping by norm adds one read of g: +4.
"""

from __future__ import annotations

import dataclasses
import math
import threading

import torch

from . import _backend
from ._aot import AotCase, register_aot
from ._triton import tl, triton

SGD, ADAM, RMSPROP = 0, 1, 2
RULES = {"sgd": SGD, "adam": ADAM, "rmsprop": RMSPROP}
CLIP_NONE, CLIP_VALUE, CLIP_NORM, CLIP_GLOBAL = 0, 1, 2, 3
CLIP_MODES = {None: CLIP_NONE, "value": CLIP_VALUE, "norm": CLIP_NORM, "global": CLIP_GLOBAL}

# 1024 fp32 per program over 4 warps (8 per thread: two 16-byte vector loads per buffer) saturates HBM for a
# streaming update; the segmented (clipnorm) path loops over chunks of up to _SEG_CHUNK elements per program so
# that one atomic per chunk is cheap (a 1e9-parameter model: ~15K atomics, not ~1M).
_BLOCK = 1024
_SEG_CHUNK = 65536


@dataclasses.dataclass(frozen=True)
class Segments:
    """A chunk table over a flat buffer: chunk i is [start[i], start[i+1]), inside variable seg[i].

    With ``by_variable=False`` the chunks ignore the variable boundaries and every chunk is segment 0 (the global
    norm).
    """

    sizes: tuple[int, ...]  # element count of each variable, in buffer order
    start: torch.Tensor  # *i64 [n_chunks + 1]
    seg: torch.Tensor  # *i32 [n_chunks]
    n_segments: int

    @property
    def n_chunks(self) -> int:
        return int(self.seg.numel())


def make_segments(sizes, device, *, by_variable: bool = True, chunk: int = _SEG_CHUNK) -> Segments:
    """The chunk table for variables of ``sizes`` elements laid out back to back (built once, at ``build``)."""
    starts, segs = [], []
    offset = 0
    if by_variable:
        for i, size in enumerate(sizes):
            for s in range(0, size, chunk):
                starts.append(offset + s)
                segs.append(i)
            offset += size
    else:
        offset = sum(sizes)
        for s in range(0, offset, chunk):
            starts.append(s)
            segs.append(0)
    starts.append(offset)
    return Segments(
        sizes=tuple(int(s) for s in sizes),
        start=torch.tensor(starts, dtype=torch.int64, device=device),
        seg=torch.tensor(segs, dtype=torch.int32, device=device),
        n_segments=len(sizes) if by_variable else 1,
    )


@dataclasses.dataclass(frozen=True)
class GradClip:
    """Keras' gradient clipping: ``mode`` "value" (clipvalue), "norm" (clipnorm) or "global" (global_clipnorm)."""

    mode: str
    value: float
    segments: Segments | None = None  # required for "norm" and "global"


# ----------------------------------------------------------------------------------------------------------------
# Reference: Keras' rules over flat buffers in plain torch. The written-down spec, and the torch path wherever
# no fused torch kernel is exact (RMSprop; any rule on a non-CPU tensor): see _torch_update_ below.
# ----------------------------------------------------------------------------------------------------------------
def _clip_reference(grad: torch.Tensor, clip: GradClip | None) -> torch.Tensor:
    if clip is None:
        return grad
    if clip.mode == "value":
        return grad.clamp(-clip.value, clip.value)
    if clip.mode == "global":
        norm = grad.square().sum().sqrt()
        return grad * (clip.value / torch.maximum(norm, norm.new_tensor(clip.value)) + (norm - norm))
    parts = grad.split(list(clip.segments.sizes))
    return torch.cat([g * (clip.value / torch.clamp_min(g.square().sum().sqrt(), clip.value)) for g in parts])


@torch.no_grad()
def optimizer_reference_(
    rule: str,
    param: torch.Tensor,
    grad: torch.Tensor,
    s1: torch.Tensor | None,
    s2: torch.Tensor | None,
    s3: torch.Tensor | None,
    *,
    lr: float,
    step: int = 1,
    h1: float = 0.0,
    h2: float = 0.0,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    nesterov: bool = False,
    centered: bool = False,
    amsgrad: bool = False,
    clip: GradClip | None = None,
    n_valid: int | None = None,
) -> None:
    """One Keras update of ``param`` in place. ``h1, h2``: SGD (momentum, -); Adam (beta_1, beta_2);
    RMSprop (rho, momentum). States: SGD s1 = momentum; Adam s1 = m, s2 = v, s3 = v_hat;
    RMSprop s1 = velocity, s2 = momentum, s3 = average gradient."""
    g = _clip_reference(grad, clip)

    def guard(den: torch.Tensor) -> torch.Tensor:  # padding past n_valid never divides 0 by 0
        if n_valid is None or n_valid >= den.numel():
            return den
        return torch.where(torch.arange(den.numel(), device=den.device) < n_valid, den, torch.ones_like(den))

    if weight_decay:
        param.sub_(param * weight_decay * lr)
    if rule == "sgd":
        if h1 != 0:
            s1.mul_(h1).sub_(g * lr)
            param.add_(s1 * h1 - g * lr if nesterov else s1)
        else:
            param.sub_(g * lr)
    elif rule == "adam":
        lr_t = lr * math.sqrt(1.0 - h2**step) / (1.0 - h1**step)
        s1.add_((g - s1) * (1.0 - h1))
        s2.add_((g * g - s2) * (1.0 - h2))
        v = s2
        if amsgrad:
            torch.maximum(s3, s2, out=s3)
            v = s3
        param.sub_(s1 * lr_t / guard(v.sqrt() + epsilon))
    elif rule == "rmsprop":
        s1.mul_(h1).add_(g * g * (1.0 - h1))
        if centered:
            s3.mul_(h1).add_(g * (1.0 - h1))
            denom = s1 - s3 * s3 + epsilon
        else:
            denom = s1 + epsilon
        inc = lr * g / guard(denom.sqrt())
        if h2 > 0:
            s2.mul_(h2).add_(inc)
            param.sub_(s2)
        else:
            param.sub_(inc)
    else:
        raise ValueError(f"Unknown rule {rule!r}; expected one of {sorted(RULES)}")


# ----------------------------------------------------------------------------------------------------------------
# The torch path on CPU tensors: Keras' rules through torch's fused CPU optimizer kernels where one is exact
# ----------------------------------------------------------------------------------------------------------------
# The reference above is ~10 element-wise passes over the flat buffers (Adam: 64 ms per step for 670K parameters on
# a 2-core EPYC); torch's fused CPU Adam does it in one vectorised, threaded pass (~2.8 ms). Mapping:
#   Adam     torch: p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps'),  bc_i = 1 - beta_i^t
#            Keras: p -= lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps)      -> identical for eps' = eps / sqrt(bc2).
#            amsgrad: both take max(v_hat, v) in place of v under the same square root: identical.
#            The moments are the same recurrences (m += (g - m)(1 - b1) is m b1 + g (1 - b1)).
#   weight decay: Keras p -= p wd lr before the rule = torch's _fused_adamw_ (p *= 1 - lr wd, then the rule);
#            _fused_adam_'s weight_decay is L2 (added to the gradient) and is never used.
#   SGD      no momentum: p -= lr g, torch's _fused_sgd_ with momentum 0 (weight decay applied before, as Keras).
#            With momentum torch's velocity leaves lr out (b = mu b + g, p -= lr b), Keras folds it in
#            (m = mu m - lr g, p += m): the buffers differ by a factor -lr, so a fused call would need two extra
#            rescaling passes over the state (and lr != 0); Keras' rule is written with in-place ops instead (3
#            passes, 4 with nesterov, no temporaries).
#   clipping: the clipped gradient is computed by _clip_reference (a temporary; the gradient buffer is never
#            written) and fed to the fused update.
#   RMSprop  torch puts epsilon outside the square root, Keras inside: no exact fused equivalent, the reference runs.
# Each fused op is probed at import against the reference on a few elements; a torch without it (or whose op
# disagrees) keeps the reference path. The zero padding past n_valid stays zero (a zero gradient and zero states
# give a zero update), as under the reference; with epsilon = 0 the update runs on the first n_valid elements only,
# so that it never divides 0 by 0 there.


def _probe_fused(name: str):
    """``torch.<name>`` when it exists, runs on CPU and matches the reference's Keras update on a few elements."""
    fn = getattr(torch, name, None)
    if fn is None:
        return None
    gen = torch.Generator().manual_seed(0)
    p, g = torch.randn(8, generator=gen), torch.randn(8, generator=gen)
    try:
        if name == "_fused_sgd_":
            want = p - 0.1 * g
            fn([p], [g], [], weight_decay=0.0, momentum=0.0, lr=0.1, dampening=0.0, nesterov=False, maximize=False,
               is_first_step=False)  # fmt: skip
        else:
            ref, zeros = p.clone(), [torch.zeros(8) for _ in range(6)]
            wd = 0.1 if name == "_fused_adamw_" else None
            for step in (1, 2):
                optimizer_reference_("adam", ref, g, zeros[0], zeros[1], zeros[2], lr=0.1, step=step, h1=0.9,
                                     h2=0.99, epsilon=0.01, weight_decay=wd, amsgrad=True)  # fmt: skip
                fn([p], [g], [zeros[3]], [zeros[4]], [zeros[5]], [torch.tensor(float(step))], lr=0.1, beta1=0.9,
                   beta2=0.99, weight_decay=wd or 0.0, eps=0.01 / math.sqrt(1.0 - 0.99**step), amsgrad=True,
                   maximize=False)  # fmt: skip
            want = ref
        return fn if torch.allclose(p, want, rtol=1e-5, atol=1e-6) else None
    except (RuntimeError, TypeError, NotImplementedError):
        return None


def _torch_update_(rule, param, grad, s1, s2, s3, *, lr, step, h1, h2, epsilon, weight_decay, nesterov, centered,
                   amsgrad, clip, n_valid) -> None:  # fmt: skip
    """The torch path: the fused CPU kernels where exact (see above), else :func:`optimizer_reference_`."""
    fused = None
    if param.device.type == "cpu":
        if rule == "adam" and 0.0 <= h1 < 1.0 and 0.0 <= h2 < 1.0:
            fused = _FUSED.get("_fused_adamw_" if weight_decay else "_fused_adam_")
        elif rule == "sgd":
            fused = _FUSED.get("_fused_sgd_") if h1 == 0 else _sgd_momentum_
    if fused is None:
        optimizer_reference_(
            rule, param, grad, s1, s2, s3, lr=lr, step=step, h1=h1, h2=h2, epsilon=epsilon,
            weight_decay=weight_decay, nesterov=nesterov, centered=centered, amsgrad=amsgrad, clip=clip,
            n_valid=n_valid,
        )  # fmt: skip
        return
    g = _clip_reference(grad, clip)
    p = param
    if rule == "adam":
        m, v, vh = s1, s2, s3
        if epsilon == 0.0 and n_valid is not None and n_valid < param.numel():
            # Only here could the zero padding divide 0 by 0; otherwise it stays zero and slicing (~2.5 us per
            # view, five views) is skipped.
            p, g, m, v, vh = (t[:n_valid] if t is not None else None for t in (p, g, m, v, vh))
        fused(
            [p], [g], [m], [v], [vh] if amsgrad else [], [_step_tensor(step)], lr=float(lr), beta1=float(h1),
            beta2=float(h2), weight_decay=float(weight_decay or 0.0), eps=float(epsilon) / math.sqrt(1.0 - h2**step),
            amsgrad=bool(amsgrad), maximize=False,
        )  # fmt: skip
        return
    if weight_decay:  # (the zero padding stays zero through SGD: nothing is sliced)
        p.mul_(1.0 - weight_decay * lr)
    if fused is _sgd_momentum_:
        _sgd_momentum_(p, g, s1, lr=float(lr), momentum=float(h1), nesterov=nesterov)
    else:
        fused([p], [g], [], weight_decay=0.0, momentum=0.0, lr=float(lr), dampening=0.0, nesterov=False,
              maximize=False, is_first_step=False)  # fmt: skip


def _sgd_momentum_(p, g, m, *, lr: float, momentum: float, nesterov: bool) -> None:
    """Keras' momentum SGD in place: m = momentum m - lr g; p += m (nesterov: p += momentum m - lr g)."""
    m.mul_(momentum).sub_(g, alpha=lr)
    if nesterov:
        p.add_(m, alpha=momentum).sub_(g, alpha=lr)
    else:
        p.add_(m)


_STEP = threading.local()


def _step_tensor(step: int) -> torch.Tensor:
    """The fused Adam's step count as a 0-d CPU tensor (which it reads on the host): one per thread, refilled
    (2.5 us) rather than made (11 us) at every step."""
    t = getattr(_STEP, "tensor", None)
    if t is None:
        t = _STEP.tensor = torch.zeros(())
    return t.fill_(float(step))


_FUSED = {name: _probe_fused(name) for name in ("_fused_adam_", "_fused_adamw_", "_fused_sgd_")}


# ----------------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _optim_sqnorm_kernel(
    grad_ptr,  # *fp32 [n] the flat gradient
    start_ptr,  # *i64 [n_chunks + 1] chunk boundaries
    seg_ptr,  # *i32 [n_chunks] chunk -> accumulator index
    out_ptr,  # *fp32 [n_segments] sums of squares, zeroed by the caller
    BLOCK: tl.constexpr,
):
    # One program per chunk: sum g^2 over the chunk in BLOCK steps (a per-lane fp32 accumulator), then one atomic.
    pid = tl.program_id(0)
    start = tl.load(start_ptr + pid)
    end = tl.load(start_ptr + pid + 1)
    seg = tl.load(seg_ptr + pid)
    acc = tl.zeros([BLOCK], tl.float32)
    for s in range(start, end, BLOCK):
        offs = s + tl.arange(0, BLOCK)
        g = tl.load(grad_ptr + offs, mask=offs < end, other=0.0)
        acc += g * g
    tl.atomic_add(out_ptr + seg, tl.sum(acc, axis=0))


@triton.jit
def _optim_fwd_kernel(
    # buffers, all fp32 [n], updated in place
    param_ptr,
    grad_ptr,  # read only: clipping never writes the gradient back
    s1_ptr,  # SGD momentum | Adam m | RMSprop velocity
    s2_ptr,  # Adam v | RMSprop momentum
    s3_ptr,  # Adam v_hat (amsgrad) | RMSprop average gradient (centered)
    # clipping by norm: sums of squares on the device, and the chunk table for per-variable norms
    sqnorm_ptr,  # *fp32 [n_segments]
    start_ptr,  # *i64 [n_chunks + 1] (SEGMENTED)
    seg_ptr,  # *i32 [n_chunks] (SEGMENTED)
    n,  # elements updated (the optimizer pads its buffers to a multiple of 16: see ALIGNED)
    n_valid,  # elements that are real parameters; the padding beyond never divides 0 by 0
    # scalars, computed on the host from the host-side step counter (no sync)
    lr,  # the learning rate (weight decay uses it as is)
    step_size,  # lr for SGD/RMSprop; lr sqrt(1 - b2^t) / (1 - b1^t) for Adam
    wd,
    h1,  # SGD momentum | Adam beta_1 | RMSprop rho
    h2,  # Adam beta_2 | RMSprop momentum
    epsilon,
    clip,
    # block information
    RULE: tl.constexpr,  # 0 SGD, 1 Adam, 2 RMSprop
    CLIP: tl.constexpr,  # 0 none, 1 clipvalue, 2 clipnorm (per variable), 3 global_clipnorm
    HAS_WD: tl.constexpr,
    HAS_MOMENTUM: tl.constexpr,
    NESTEROV: tl.constexpr,
    CENTERED: tl.constexpr,
    AMSGRAD: tl.constexpr,
    HAS_S1: tl.constexpr,
    HAS_S2: tl.constexpr,
    HAS_S3: tl.constexpr,
    SEGMENTED: tl.constexpr,  # CLIP == 2: one program per chunk of one variable, looping in BLOCK steps
    ALIGNED: tl.constexpr,  # host-verified: n % 16 == 0 and every buffer 16-byte aligned
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    if SEGMENTED:
        # Per-variable clipnorm: this chunk lies inside one variable, whose sum of squares is sqnorm_ptr[seg].
        start = tl.load(start_ptr + pid)
        end = tl.load(start_ptr + pid + 1)
        n_iter = tl.cdiv(end - start, BLOCK)
        sqnorm = tl.load(sqnorm_ptr + tl.load(seg_ptr + pid))
    else:
        # One block per program: start is a multiple of BLOCK.
        start = pid.to(tl.int64) * BLOCK
        end = n
        n_iter = 1
        if CLIP == 3:
            sqnorm = tl.load(sqnorm_ptr)
        else:
            sqnorm = 0.0
    for i in range(0, n_iter):
        offs = start + i * BLOCK + tl.arange(0, BLOCK)
        if ALIGNED:
            # What the host checked (n % 16 == 0, every buffer 16-byte aligned), said so that the compiler emits
            # 16-byte vector accesses: a mask written offs // 16 < n // 16 is visibly constant over runs of 16,
            # and the pointer runs are marked contiguous and aligned. (At run time Triton would see the 16-aligned
            # pointers and n itself; the ahead-of-time compile sees only what is written here.)
            mask = (offs // 16) < (end // 16)
            p_ptrs = tl.max_contiguous(tl.multiple_of(param_ptr + offs, 16), 16)
            g_ptrs = tl.max_contiguous(tl.multiple_of(grad_ptr + offs, 16), 16)
            a_ptrs = tl.max_contiguous(tl.multiple_of(s1_ptr + offs, 16), 16)
            b_ptrs = tl.max_contiguous(tl.multiple_of(s2_ptr + offs, 16), 16)
            c_ptrs = tl.max_contiguous(tl.multiple_of(s3_ptr + offs, 16), 16)
        else:
            mask = offs < end
            p_ptrs = param_ptr + offs
            g_ptrs = grad_ptr + offs
            a_ptrs = s1_ptr + offs
            b_ptrs = s2_ptr + offs
            c_ptrs = s3_ptr + offs
        real = offs < n_valid
        # Load what the rule reads; absent states are never touched (s* = g is only a placeholder). Masked lanes
        # read states as 1 so that no lane divides 0 by 0 (harmless on a GPU, an error in the interpreter).
        p = tl.load(p_ptrs, mask=mask, other=0.0)
        g = tl.load(g_ptrs, mask=mask, other=0.0)
        s1 = g
        s2 = g
        s3 = g
        if HAS_S1:
            s1 = tl.load(a_ptrs, mask=mask, other=1.0)
        if HAS_S2:
            s2 = tl.load(b_ptrs, mask=mask, other=1.0)
        if HAS_S3:
            s3 = tl.load(c_ptrs, mask=mask, other=1.0)
        # 1. Clip, as Keras: a value clamp, or the scale clip / max(norm, clip) with the norm from the device.
        if CLIP == 1:
            g = tl.minimum(tl.maximum(g, -clip), clip)
        if CLIP >= 2:
            norm = tl.sqrt(sqnorm)
            # clip * min(1/norm, 1/clip) == clip / max(norm, clip). Keras adds (norm - norm) so that a non-finite
            # norm gives NaN; the where says the same without computing inf - inf (which the interpreter flags).
            g = g * tl.where(norm < float("inf"), clip / tl.maximum(norm, clip), float("nan"))
        # 2. Decoupled weight decay with the plain learning rate, before the rule (every Keras optimizer).
        if HAS_WD:
            p = p - p * wd * lr
        # 3. The rule.
        if RULE == 0:  # SGD, lr folded into the velocity
            if HAS_MOMENTUM:
                s1 = h1 * s1 - step_size * g
                if NESTEROV:
                    p = p + h1 * s1 - step_size * g
                else:
                    p = p + s1
            else:
                p = p - step_size * g
        elif RULE == 1:  # Adam: epsilon added to sqrt(v) after the bias correction went into step_size
            s1 = s1 + (g - s1) * (1.0 - h1)
            s2 = s2 + (g * g - s2) * (1.0 - h2)
            if AMSGRAD:
                s3 = tl.maximum(s3, s2)
                den = tl.sqrt(s3) + epsilon
            else:
                den = tl.sqrt(s2) + epsilon
            p = p - step_size * s1 / tl.where(real, den, 1.0)
        else:  # RMSprop: epsilon inside the square root
            s1 = h1 * s1 + (1.0 - h1) * g * g
            if CENTERED:
                s3 = h1 * s3 + (1.0 - h1) * g
                den = tl.sqrt(s1 - s3 * s3 + epsilon)
            else:
                den = tl.sqrt(s1 + epsilon)
            inc = step_size * g / tl.where(real, den, 1.0)
            if HAS_MOMENTUM:
                s2 = h2 * s2 + inc
                p = p - s2
            else:
                p = p - inc
        tl.store(p_ptrs, p, mask=mask)
        if HAS_S1:
            tl.store(a_ptrs, s1, mask=mask)
        if HAS_S2:
            tl.store(b_ptrs, s2, mask=mask)
        if HAS_S3:
            tl.store(c_ptrs, s3, mask=mask)


def _flags(rule: int, *, momentum: bool = False, centered: bool = False, amsgrad: bool = False):
    """Which state buffers a configuration reads and writes."""
    if rule == SGD:
        return momentum, False, False
    if rule == ADAM:
        return True, True, amsgrad
    return True, momentum, centered


_OPTIM_SIG = {
    "param_ptr": "*fp32",
    "grad_ptr": "*fp32",
    "s1_ptr": "*fp32",
    "s2_ptr": "*fp32",
    "s3_ptr": "*fp32",
    "sqnorm_ptr": "*fp32",
    "start_ptr": "*i64",
    "seg_ptr": "*i32",
    "n": "i64",
    "n_valid": "i64",
    **{k: "fp32" for k in ("lr", "step_size", "wd", "h1", "h2", "epsilon", "clip")},
    **{
        k: "constexpr"
        for k in (
            "RULE CLIP HAS_WD HAS_MOMENTUM NESTEROV CENTERED AMSGRAD HAS_S1 HAS_S2 HAS_S3 SEGMENTED ALIGNED BLOCK"
        ).split()
    },
}


def _optim_case(name: str, rule: int, clip: int = 0, **kw) -> AotCase:
    momentum, centered, amsgrad = kw.get("momentum", False), kw.get("centered", False), kw.get("amsgrad", False)
    s1, s2, s3 = _flags(rule, momentum=momentum, centered=centered, amsgrad=amsgrad)
    return AotCase(
        name=f"optim_fwd[{name}]",
        kernel=_optim_fwd_kernel,
        signature=dict(_OPTIM_SIG),
        constexprs={
            "RULE": rule,
            "CLIP": clip,
            "HAS_WD": kw.get("wd", False),
            "HAS_MOMENTUM": momentum,
            "NESTEROV": kw.get("nesterov", False),
            "CENTERED": centered,
            "AMSGRAD": amsgrad,
            "HAS_S1": s1,
            "HAS_S2": s2,
            "HAS_S3": s3,
            "SEGMENTED": clip == CLIP_NORM,
            "ALIGNED": kw.get("aligned", clip != CLIP_NORM),
            "BLOCK": _BLOCK,
        },
        num_warps=_num_warps(kw.get("aligned", clip != CLIP_NORM), clip == CLIP_NORM),
        num_stages=1,
    )


def _num_warps(aligned: bool, segmented: bool) -> int:
    """4 warps, but 8 on the unaligned flat path: with 4, triton 3.6's ptxas spilled 4 bytes on sm_90 there (8
    elements of each of five buffers per thread as scalar loads); 8 warps halve that and compile spill-free."""
    return 8 if not aligned and not segmented else 4


register_aot(
    _optim_case("adam", ADAM),
    _optim_case("adam,unaligned", ADAM, aligned=False),
    _optim_case("adamw,global_clipnorm", ADAM, CLIP_GLOBAL, wd=True),
    _optim_case("adam,amsgrad,clipnorm", ADAM, CLIP_NORM, amsgrad=True),
    _optim_case("sgd", SGD),
    _optim_case("sgd,nesterov,clipvalue", SGD, CLIP_VALUE, momentum=True, nesterov=True),
    _optim_case("rmsprop", RMSPROP),
    _optim_case("rmsprop,centered,momentum,wd", RMSPROP, CLIP_GLOBAL, momentum=True, centered=True, wd=True),
    AotCase(
        name="optim_sqnorm[fp32]",
        kernel=_optim_sqnorm_kernel,
        signature={
            "grad_ptr": "*fp32",
            "start_ptr": "*i64",
            "seg_ptr": "*i32",
            "out_ptr": "*fp32",
            "BLOCK": "constexpr",
        },
        constexprs={"BLOCK": _BLOCK},
        num_warps=4,
        num_stages=1,
    ),
)


# ----------------------------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------------------------
_STATE_NAMES = {
    "sgd": ("momentum_buffer", "unused_s2", "unused_s3"),
    "adam": ("m", "v", "v_hat"),
    "rmsprop": ("velocity", "momentum_buffer", "average_grad"),
}


def _check_flat(op: str, **buffers: torch.Tensor | None) -> None:
    ref = buffers["param"]
    for name, t in buffers.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float32 or t.dim() != 1 or not t.is_contiguous():
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{op}: expected {name} a contiguous 1-D float32 buffer. Received: {got}")
        if t.shape != ref.shape or t.device != ref.device:
            raise ValueError(
                f"{op}: expected {name} of param's shape {tuple(ref.shape)} on {ref.device}. "
                f"Received: {tuple(t.shape)} on {t.device}"
            )


def grad_sqnorm(grad: torch.Tensor, segments: Segments) -> torch.Tensor:
    """Sums of squares of ``grad`` per segment (fp32 [n_segments]), in one reduction pass on the device."""
    out = torch.zeros(segments.n_segments, dtype=torch.float32, device=grad.device)
    if segments.n_chunks:
        _optim_sqnorm_kernel[(segments.n_chunks,)](
            grad, segments.start, segments.seg, out, BLOCK=_BLOCK, num_warps=4, num_stages=1
        )
    return out


def optimizer_update_(
    rule: str,
    param: torch.Tensor,
    grad: torch.Tensor,
    s1: torch.Tensor | None = None,
    s2: torch.Tensor | None = None,
    s3: torch.Tensor | None = None,
    *,
    lr: float,
    step: int = 1,
    h1: float = 0.0,
    h2: float = 0.0,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    nesterov: bool = False,
    centered: bool = False,
    amsgrad: bool = False,
    clip: GradClip | None = None,
    n_valid: int | None = None,
) -> None:
    """One Keras update of the flat buffers in place: one launch (plus one reduction pass when clipping by norm).

    On the torch backend with CPU tensors, Adam/AdamW (amsgrad included) and SGD run torch's fused CPU kernels with
    Keras' semantics mapped onto them, momentum SGD in-place ops, RMSprop the reference (see ``_torch_update_``).

    Arguments as :func:`optimizer_reference_`; ``step`` is the 1-based step (Adam's bias correction). ``n_valid``:
    the first ``n_valid`` elements are parameters, the rest zero padding (the optimizer pads its buffers to a
    multiple of 16 elements so that the kernel's loads vectorise); default: all.
    """
    op = f"{rule}_"
    if rule not in RULES:
        raise ValueError(f"optimizer_update_: expected rule in {sorted(RULES)}. Received: rule={rule!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"{op}: expected the 1-based step count, an integer >= 1. Received: step={step!r}")
    names = _STATE_NAMES[rule]
    _check_flat(op, param=param, grad=grad, **{names[0]: s1, names[1]: s2, names[2]: s3})
    r = RULES[rule]
    momentum = (r == SGD and h1 != 0) or (r == RMSPROP and h2 > 0)
    need = _flags(r, momentum=momentum, centered=centered, amsgrad=amsgrad)
    for name, needed, buf in zip(names, need, (s1, s2, s3), strict=True):
        if needed and buf is None:
            raise ValueError(f"{op}: this configuration needs the state buffer {name}. Received: {name}=None")
    if clip is not None:
        if clip.mode not in ("value", "norm", "global"):
            raise ValueError(f"{op}: expected clip.mode 'value', 'norm' or 'global'. Received: {clip.mode!r}")
        if clip.mode != "value" and (clip.segments is None or sum(clip.segments.sizes) != param.numel()):
            raise ValueError(f"{op}: clipping by norm needs segments covering the {param.numel()} elements")
    if not _backend.use_triton(param):
        return _torch_update_(
            rule, param, grad, s1, s2, s3, lr=lr, step=step, h1=h1, h2=h2, epsilon=epsilon,
            weight_decay=weight_decay, nesterov=nesterov, centered=centered, amsgrad=amsgrad, clip=clip,
            n_valid=n_valid,
        )  # fmt: skip
    n = param.numel()
    if n == 0:
        return None
    mode = CLIP_MODES[None if clip is None else clip.mode]
    step_size = lr * math.sqrt(1.0 - h2**step) / (1.0 - h1**step) if r == ADAM else lr
    if mode in (CLIP_NORM, CLIP_GLOBAL):
        sqnorm = grad_sqnorm(grad, clip.segments)
    else:
        sqnorm = param  # never read
    segmented = mode == CLIP_NORM
    used = [t for t, needed in zip((s1, s2, s3), need, strict=True) if needed] + [param, grad]
    aligned = not segmented and n % 16 == 0 and all(t.data_ptr() % 16 == 0 for t in used)
    grid = (clip.segments.n_chunks,) if segmented else (triton.cdiv(n, _BLOCK),)
    start, seg = (clip.segments.start, clip.segments.seg) if segmented else (param, param)
    _optim_fwd_kernel[grid](
        param, grad,
        s1 if need[0] else param, s2 if need[1] else param, s3 if need[2] else param,
        sqnorm, start, seg, n, n if n_valid is None else int(n_valid),
        float(lr), float(step_size), float(weight_decay or 0.0), float(h1), float(h2), float(epsilon),
        float(clip.value if clip is not None else 0.0),
        RULE=r, CLIP=mode, HAS_WD=bool(weight_decay), HAS_MOMENTUM=momentum, NESTEROV=bool(nesterov and momentum),
        CENTERED=bool(centered and r == RMSPROP), AMSGRAD=bool(amsgrad and r == ADAM),
        HAS_S1=need[0], HAS_S2=need[1], HAS_S3=need[2], SEGMENTED=segmented, ALIGNED=aligned,
        BLOCK=_BLOCK,
        num_warps=_num_warps(aligned, segmented), num_stages=1,
    )  # fmt: skip
    return None


def adam_(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    *,
    step: int,
    lr: float,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    v_hat: torch.Tensor | None = None,
    weight_decay: float | None = None,
    clip: GradClip | None = None,
    n_valid: int | None = None,
) -> None:
    """Keras' Adam (AdamW with ``weight_decay``) over flat fp32 buffers, in place; ``step`` is 1-based."""
    optimizer_update_(
        "adam", param, grad, m, v, v_hat, lr=lr, step=step, h1=beta_1, h2=beta_2, epsilon=epsilon,
        weight_decay=weight_decay, amsgrad=amsgrad, clip=clip, n_valid=n_valid,
    )  # fmt: skip


def sgd_(
    param: torch.Tensor,
    grad: torch.Tensor,
    momentum_buffer: torch.Tensor | None = None,
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float | None = None,
    clip: GradClip | None = None,
    n_valid: int | None = None,
) -> None:
    """Keras' SGD (momentum, nesterov) over flat fp32 buffers, in place."""
    optimizer_update_(
        "sgd", param, grad, momentum_buffer, lr=lr, h1=momentum, nesterov=nesterov, weight_decay=weight_decay,
        clip=clip, n_valid=n_valid,
    )  # fmt: skip


def rmsprop_(
    param: torch.Tensor,
    grad: torch.Tensor,
    velocity: torch.Tensor,
    momentum_buffer: torch.Tensor | None = None,
    average_grad: torch.Tensor | None = None,
    *,
    lr: float,
    rho: float = 0.9,
    momentum: float = 0.0,
    epsilon: float = 1e-7,
    centered: bool = False,
    weight_decay: float | None = None,
    clip: GradClip | None = None,
    n_valid: int | None = None,
) -> None:
    """Keras' RMSprop (momentum, centered; epsilon inside the square root) over flat fp32 buffers, in place."""
    optimizer_update_(
        "rmsprop", param, grad, velocity, momentum_buffer, average_grad, lr=lr, h1=rho, h2=momentum,
        epsilon=epsilon, centered=centered, weight_decay=weight_decay, clip=clip, n_valid=n_valid,
    )  # fmt: skip
