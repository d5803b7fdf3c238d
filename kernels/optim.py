"""Fused optimizer updates over flat fp32 buffers: one launch updates every parameter of a model.

The optimizer (``tritonnn/optimizers``) keeps all trainable parameters in one contiguous fp32 buffer, their
gradients in another, and each state (moments, velocities) in one more, so a step is one kernel over ``n``
elements, whatever the number of variables. One kernel serves every rule; the rule and its options are constexprs
(``RULE``, ``CLIP``, ``HAS_WD``, ``HAS_MOMENTUM``, ``NESTEROV``, ``CENTERED``, ``AMSGRAD``), so each configuration
compiles to straight-line code with no dead loads (``POW_HALF``: Ftrl's default power, square roots).

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
     Adagrad  a += g^2 (a starts at initial_accumulator_value);  p -= lr g / sqrt(a + eps)
     Adamax   m += (g - m)(1 - b1);  u = max(b2 u, |g|);  p -= lr m / ((1 - b1^t)(u + eps))
     Nadam    m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  u_i = b1 (1 - 0.5 * 0.96^i),  P_t = u_1 ... u_t
              m_hat = u_{t+1} m / (1 - P_t u_{t+1}) + (1 - u_t) g / (1 - P_t);  v_hat = v / (1 - b2^t)
              p -= lr m_hat / (sqrt(v_hat) + eps);  P_t (Keras' u_product) is a device scalar, advanced each step
     Lion     p -= lr sign(b1 m + (1 - b1) g);  m = b2 m + (1 - b2) g
     Adadelta a = rho a + (1 - rho) g^2;  d = -sqrt(s + eps) g / sqrt(a + eps);  s = rho s + (1 - rho) d^2;
              p += lr d
     Ftrl     n' = n + g^2 (n starts at initial_accumulator_value), c = -learning_rate_power;
              z += g + 2 l2_shrinkage p - (n'^c - n^c) / lr p;  q = n'^c / lr + 2 (l2 + beta / (2 lr));
              p = (clip(z, -l1, l1) - z) / q;  n = n'
Keras vs PyTorch (both written down because the defaults look alike and are not):
  - Adam: Keras adds epsilon to sqrt(v) *after* folding the bias corrections into the rate (``eps_hat`` of Kingma &
    Ba), PyTorch adds it to sqrt(v_hat) = sqrt(v / (1 - b2^t)); the two agree when eps is 0. Keras' default epsilon
    is 1e-7, PyTorch's 1e-8.
  - RMSprop: Keras puts epsilon *inside* the square root (sqrt(v + eps)), PyTorch outside (sqrt(v) + eps); Keras'
    rho is PyTorch's alpha (defaults 0.9 vs 0.99); Keras' default epsilon 1e-7, PyTorch's 1e-8.
  - SGD with momentum: Keras folds lr into the velocity (m = mu m - lr g), PyTorch does not (b = mu b + g,
    p -= lr b): identical trajectories for a constant lr, different ones when lr changes (schedules).
    Keras' nesterov step is p += mu m - lr g, PyTorch's p -= lr (g + mu b): the same for a constant lr.
  - Adagrad: Keras' accumulator starts at initial_accumulator_value (0.1) and epsilon (1e-7) is inside the root;
    PyTorch's starts at 0 (initial_accumulator_value=0), eps 1e-10 outside the root, default lr 0.01.
  - Adamax: Keras adds epsilon to u in the denominator; PyTorch takes u = max(b2 u, |g| + eps) (eps 1e-8, lr 0.002).
  - Nadam: Keras' momentum schedule is u_t = b1 (1 - 0.5 * 0.96^t); PyTorch's NAdam uses
    0.96^(t * momentum_decay) with momentum_decay 0.004, a far slower decay: different trajectories from step 1.
  - Adadelta: Keras' defaults are lr 0.001, rho 0.95, epsilon 1e-7; PyTorch's lr 1.0, rho 0.9, eps 1e-6 (the rule
    itself, epsilon inside both roots, is the same).
  - Weight decay: Keras decays every optimizer decoupled, p -= lr wd p before the rule (AdamW's form, default
    0.004 for AdamW); PyTorch's Adam/SGD/RMSprop ``weight_decay`` adds wd p to the gradient (L2), and
    ``torch.optim.AdamW`` uses p -= lr wd p with default wd 0.01.

The global norm is one reduction pass (``_optim_sqnorm_kernel``: each program sums the squares of a chunk and adds
them to a device scalar with one atomic), and the scaling is fused into the update kernel, which reads that
scalar: no host sync, no rescaled copy of the gradient. ``clipnorm`` (per variable) uses the same two kernels over
a chunk table whose chunks never cross a variable boundary, one accumulator per variable.

Every step-dependent scalar lives on the device, so that one step reads no host value that changes between steps
and a CUDA graph replay of it is exact. :class:`FlatUpdate` (one configuration over fixed buffers, checked and
prepared once) owns them, in one float64 vector on the buffers' device: the learning rate and the step count
(``FlatUpdate.lr`` and ``FlatUpdate.step``, 0-d views that the optimizer reads and writes). Each call adds 1 to the
count with a device op and launches the kernel, which reads the rate and the count through a pointer
(``scalars_ptr``) and computes the bias corrections ``1 - beta^t`` (Adam, Adamax, Nadam) and Nadam's
``0.96^t`` from the count itself (from ``log(beta)``, given once: the only scalars passed by value are constants of
the configuration). Nadam's running product ``u_product`` has no closed form in t: it is a third device scalar
(``FlatUpdate.u_product``), multiplied by ``u_t`` with device ops before the launch, masked like the count.
A second pointer, ``found_inf`` (0-d fp32, optional), masks the whole update when nonzero (dynamic loss scaling's
skipped step: parameters, states, the count and ``u_product`` untouched).

Traffic per parameter (fp32): Adam reads p, g, m, v and writes p, m, v: 28 bytes (amsgrad +8); SGD with momentum
20, without 12; RMSprop 20 (+8 momentum, +8 centered); Adagrad and Lion (p, g, one state) 20; Adamax, Nadam,
Adadelta and Ftrl (p, g, two states) 28. Clipping by norm adds one read of g: +4.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from . import _backend
from ._aot import AotCase, register_aot
from ._triton import tl, triton

SGD, ADAM, RMSPROP, ADAGRAD, ADAMAX, NADAM, LION, ADADELTA, FTRL = range(9)
RULES = {
    "sgd": SGD,
    "adam": ADAM,
    "rmsprop": RMSPROP,
    "adagrad": ADAGRAD,
    "adamax": ADAMAX,
    "nadam": NADAM,
    "lion": LION,
    "adadelta": ADADELTA,
    "ftrl": FTRL,
}
# Nadam's momentum schedule: u_t = beta_1 (1 - 0.5 * 0.96^t) (Keras' constant decay 0.96).
NADAM_DECAY = 0.96
_NADAM_DECAY = tl.constexpr(NADAM_DECAY)  # the kernel's copies
_LOG_NADAM_DECAY = tl.constexpr(math.log(NADAM_DECAY))
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
# no fused torch kernel is exact (RMSprop, Adagrad, Adamax, Nadam, Lion, Adadelta, Ftrl; any rule on a non-CPU
# tensor): see FlatUpdate's torch path below.
# The learning rate and the step may be host numbers or 0-d device tensors; with tensors every op stays on the
# device (no host read, no host-to-device copy), so that the torch path is capturable too.
# ----------------------------------------------------------------------------------------------------------------
def _clip_reference(grad: torch.Tensor, clip: GradClip | None) -> torch.Tensor:
    if clip is None:
        return grad
    if clip.mode == "value":
        return grad.clamp(-clip.value, clip.value)
    if clip.mode == "global":
        norm = grad.square().sum().sqrt()
        # clip / max(norm, clip); Keras adds (norm - norm) so that a non-finite norm gives NaN (clamp keeps a NaN).
        return grad * (clip.value / torch.clamp_min(norm, clip.value) + (norm - norm))
    parts = grad.split(list(clip.segments.sizes))
    return torch.cat([g * (clip.value / torch.clamp_min(g.square().sum().sqrt(), clip.value)) for g in parts])


def clip_gradient(grad: torch.Tensor, clip: GradClip | None) -> torch.Tensor:
    """Keras' clipping of a flat gradient, in device ops (the reference's): a new tensor when ``clip`` is set,
    ``grad`` itself otherwise. The rules that are not one fused kernel (``tritonnn/optimizers/per_variable.py``)
    clip with it."""
    return _clip_reference(grad, clip)


def adam_rate(lr, step, beta_1: float, beta_2: float):
    """Adam's bias-corrected rate ``lr sqrt(1 - beta_2^t) / (1 - beta_1^t)`` at the 1-based step ``t``.

    Host numbers give a float; a 0-d ``step`` tensor gives a 0-d float64 tensor on its device, computed there (no
    host read), with ``lr`` a float or a 0-d tensor."""
    if isinstance(step, torch.Tensor):
        t = step.to(torch.float64)
        return lr * torch.sqrt(1.0 - torch.pow(beta_2, t)) / (1.0 - torch.pow(beta_1, t))
    return lr * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)


def _power(base: float, step):
    """``base ** step`` for an int step (a float) or a 0-d step tensor (float64, on its device, no host read)."""
    if isinstance(step, torch.Tensor):
        return torch.pow(base, step.to(torch.float64))
    return base**step


def nadam_u_product(beta_1: float, step: int) -> float:
    """Keras' Nadam ``u_product`` after ``step`` steps: the product of ``beta_1 (1 - 0.5 * 0.96^i)``, i = 1..step
    (1 before the first step), in float64 on the host."""
    out = 1.0
    for i in range(1, step + 1):
        out *= beta_1 * (1.0 - 0.5 * NADAM_DECAY**i)
    return out


@torch.no_grad()
def optimizer_reference_(
    rule: str,
    param: torch.Tensor,
    grad: torch.Tensor,
    s1: torch.Tensor | None,
    s2: torch.Tensor | None,
    s3: torch.Tensor | None,
    *,
    lr: float | torch.Tensor,
    step: int | torch.Tensor = 1,
    h1: float = 0.0,
    h2: float = 0.0,
    h3: float = 0.0,
    h4: float = 0.0,
    h5: float = 0.0,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    nesterov: bool = False,
    centered: bool = False,
    amsgrad: bool = False,
    clip: GradClip | None = None,
    n_valid: int | None = None,
    u_product: float | torch.Tensor | None = None,
) -> None:
    """One Keras update of ``param`` in place. The hyperparameters ``h1 ... h5`` and the states by rule:

    ========  =====================================================  ===========================================
    rule      h1, h2 (h3, h4, h5)                                    s1, s2, s3
    ========  =====================================================  ===========================================
    sgd       momentum                                               momentum
    adam      beta_1, beta_2                                         m, v, v_hat (amsgrad)
    rmsprop   rho, momentum                                          velocity, momentum, average gradient
    adagrad   -                                                      accumulator
    adamax    beta_1, beta_2                                         m, u (the infinity norm)
    nadam     beta_1, beta_2                                         m, v
    lion      beta_1, beta_2                                         m
    adadelta  rho                                                    accumulated grad, accumulated delta
    ftrl      learning_rate_power, l1, l2, l2_shrinkage, beta        accumulator, linear
    ========  =====================================================  ===========================================

    ``lr`` (float or 0-d tensor) and ``step`` (the 1-based step, int or 0-d tensor) may live on the device.
    ``u_product`` (Nadam): Keras' ``u_product`` at this step, the product of ``u_i = beta_1 (1 - 0.5 * 0.96^i)``
    for i = 1 ... step (a float or a 0-d tensor); default: computed on the host from an int ``step``."""
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
        lr_t = adam_rate(lr, step, h1, h2)
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
    elif rule == "adagrad":
        s1.add_(g * g)
        param.sub_(lr * g / guard((s1 + epsilon).sqrt()))
    elif rule == "adamax":
        s1.add_((g - s1) * (1.0 - h1))
        torch.maximum(s2 * h2, g.abs(), out=s2)
        param.sub_(lr * s1 / guard((s2 + epsilon) * (1.0 - _power(h1, step))))
    elif rule == "nadam":
        u_t = h1 * (1.0 - 0.5 * _power(NADAM_DECAY, step))
        u_next = h1 * (1.0 - 0.5 * _power(NADAM_DECAY, step + 1))
        if u_product is None:
            u_product = nadam_u_product(h1, step)
        s1.add_((g - s1) * (1.0 - h1))
        s2.add_((g * g - s2) * (1.0 - h2))
        m_hat = s1 * (u_next / (1.0 - u_product * u_next)) + g * ((1.0 - u_t) / (1.0 - u_product))
        v_hat = s2 / (1.0 - _power(h2, step))
        param.sub_(m_hat * lr / guard(v_hat.sqrt() + epsilon))
    elif rule == "lion":
        param.sub_(lr * torch.sign(s1 * h1 + g * (1.0 - h1)))
        s1.mul_(h2).add_(g * (1.0 - h2))
    elif rule == "adadelta":
        s1.mul_(h1).add_(g * g * (1.0 - h1))
        delta = -((s2 + epsilon).sqrt() * g) / guard((s1 + epsilon).sqrt())
        s2.mul_(h1).add_(delta * delta * (1.0 - h1))
        param.add_(lr * delta)
    elif rule == "ftrl":
        power, l1, l2, l2_shrinkage, beta = -h1, h2, h3, h4, h5
        grad_to_use = g + 2.0 * l2_shrinkage * param
        new_accum = s1 + g * g
        s2.add_(grad_to_use - (new_accum.pow(power) - s1.pow(power)) / lr * param)
        quadratic = new_accum.pow(power) / lr + 2.0 * (l2 + beta / (2.0 * lr))
        param.copy_((s2.clamp(-l1, l1) - s2) / guard(quadratic))
        s1.copy_(new_accum)
    else:
        raise ValueError(f"Unknown rule {rule!r}; expected one of {sorted(RULES)}")


# ----------------------------------------------------------------------------------------------------------------
# The torch path on CPU tensors: Keras' rules through torch's fused CPU Adam where it is exact, in-place ops else
# ----------------------------------------------------------------------------------------------------------------
# The reference above is ~10 element-wise passes over the flat buffers (Adam: 64 ms per step for 670K parameters on
# a 2-core EPYC); torch's fused CPU Adam does it in one vectorised, threaded pass (~2.8 ms). Mapping, with the
# learning rate and the step on the device:
#   Adam     torch: p -= lr' / bc1(s) * m / (sqrt(v) / sqrt(bc2(s)) + eps),  bc_i(s) = 1 - beta_i^s
#            Keras: p -= lr sqrt(bc2(t)) / bc1(t) * m / (sqrt(v) + eps)
#            With the state step s = inf (so bc_i(s) = 1: torch divides by 1, exactly) and the tensor rate
#            lr' = lr sqrt(bc2(t)) / bc1(t), computed on the device from the step tensor (FlatUpdate._adam_rate:
#            four small ops in float64), the two are identical, epsilon included. amsgrad: both take max(v_hat, v) in
#            place of v under the same square root. The moments are the same recurrences.
#   weight decay: Keras' p -= p wd lr (plain lr) before the rule: one in-place addcmul with the rate tensor
#            (torch's _fused_adamw_ would decay with lr', and _fused_adam_'s weight_decay is L2: neither is used).
#   SGD      Keras' rules written with in-place ops reading the rate tensor: no momentum p -= lr g (one addcmul);
#            momentum m = mu m - lr g, p += m (nesterov: p += mu m - lr g): torch's velocity leaves lr out
#            (b = mu b + g, p -= lr b), so its fused SGD is no match once lr changes.
#   clipping: the clipped gradient is computed by _clip_reference (a temporary; the gradient buffer is never
#            written) and fed to the update.
#   RMSprop  torch puts epsilon outside the square root, Keras inside: no exact fused equivalent, the reference runs.
#   the rest Adagrad, Adamax, Nadam, Lion, Adadelta, Ftrl: torch has no fused CPU op for them; the reference runs.
# The fused op is probed at import against the reference on a few elements; a torch without it (or whose op
# disagrees) keeps the reference path. The zero padding past n_valid stays zero (a zero gradient and zero states
# give a zero update), as under the reference; with epsilon = 0 the update runs on the first n_valid elements only,
# so that it never divides 0 by 0 there.
# A masked step (found_inf) on the torch path updates copies of the parameter and state buffers and keeps them
# where found_inf is 0 (torch.where): exact, and only dynamic loss scaling pays for it.


def _probe_fused_adam():
    """``torch._fused_adam_`` when it exists, runs on CPU with a tensor rate and an infinite state step, and matches
    the reference's Keras update (amsgrad, two steps) on a few elements."""
    fn = getattr(torch, "_fused_adam_", None)
    if fn is None:
        return None
    gen = torch.Generator().manual_seed(0)
    p, g = torch.randn(8, generator=gen), torch.randn(8, generator=gen)
    ref, zeros = p.clone(), [torch.zeros(8) for _ in range(6)]
    try:
        for step in (1, 2):
            optimizer_reference_("adam", ref, g, zeros[0], zeros[1], zeros[2], lr=0.1, step=step, h1=0.9, h2=0.99,
                                 epsilon=0.01, amsgrad=True)  # fmt: skip
            rate = torch.tensor(adam_rate(0.1, step, 0.9, 0.99), dtype=torch.float64)
            fn([p], [g], [zeros[3]], [zeros[4]], [zeros[5]], [torch.tensor(math.inf)], lr=rate, beta1=0.9,
               beta2=0.99, weight_decay=0.0, eps=0.01, amsgrad=True, maximize=False)  # fmt: skip
        return fn if torch.allclose(p, ref, rtol=1e-5, atol=1e-6) else None
    except (RuntimeError, TypeError, NotImplementedError):
        return None


_FUSED_ADAM = _probe_fused_adam()


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
def _one_minus_exp(y):
    """1 - exp(y) for y = t log(beta) <= 0 (a bias correction 1 - beta^t), accurate near y = 0: there 1 - exp(y)
    would lose the digits (t = 1, beta = 0.999: 6e-5 relative in fp32), so it is the series
    -y (1 + y/2 (1 + y/3 (...))) to y^6 (relative error < 2e-9 for |y| < 1/4); beyond, 1 - exp(y) >= 0.22 is
    accurate to 3e-7. y = -inf (beta = 0) gives 1."""
    z = tl.maximum(y, -0.25)
    e = -z * (1.0 + z / 2 * (1.0 + z / 3 * (1.0 + z / 4 * (1.0 + z / 5 * (1.0 + z / 6 * (1.0 + z / 7))))))
    return tl.where(y > -0.25, e, 1.0 - tl.exp(y))


@triton.jit
def _pow_nonneg(x, a):
    """x^a for x >= 0 and a >= 0 (Ftrl's accumulator powers), as torch.pow: 0^0 = 1, 0^a = 0 for a > 0."""
    return tl.where(x > 0, tl.exp(a * tl.log(tl.maximum(x, 1e-30))), tl.where(a > 0, 0.0, 1.0))


@triton.jit
def _optim_fwd_kernel(
    # buffers, all fp32 [n], updated in place
    param_ptr,
    grad_ptr,  # read only: clipping never writes the gradient back
    s1_ptr,  # SGD momentum | Adam, Adamax, Nadam, Lion m | RMSprop velocity | Adagrad, Ftrl accumulator |
    # Adadelta accumulated grad
    s2_ptr,  # Adam, Nadam v | RMSprop momentum | Adamax u | Adadelta accumulated delta | Ftrl linear
    s3_ptr,  # Adam v_hat (amsgrad) | RMSprop average gradient (centered)
    # clipping by norm: sums of squares on the device, and the chunk table for per-variable norms
    sqnorm_ptr,  # *fp32 [n_segments]
    start_ptr,  # *i64 [n_chunks + 1] (SEGMENTED)
    seg_ptr,  # *i32 [n_chunks] (SEGMENTED)
    # the step's scalars, on the device (so that a CUDA graph replay reads this step's values)
    scalars_ptr,  # *fp64 [7] FlatUpdate's: beta_1, beta_2, lr (weight decay uses it as is), t (1-based), t, 1,
    # Nadam's u_product through step t
    found_inf_ptr,  # *fp32 [] nonzero: skip the whole update (HAS_FOUND_INF)
    n,  # elements updated (the optimizer pads its buffers to a multiple of 16: see ALIGNED)
    n_valid,  # elements that are real parameters; the padding beyond never divides 0 by 0
    # constants of the configuration
    wd,
    h1,  # SGD momentum | Adam, Adamax, Nadam, Lion beta_1 | RMSprop, Adadelta rho | Ftrl -learning_rate_power
    h2,  # Adam, Adamax, Nadam, Lion beta_2 | RMSprop momentum | Ftrl l1
    log_h1,  # Adam, Adamax: log(beta_1) (-inf for 0), from the host in float64
    log_h2,  # Adam, Nadam: log(beta_2)
    h3,  # Ftrl: 2 l2
    h4,  # Ftrl: beta
    h5,  # Ftrl: 2 l2_shrinkage
    epsilon,
    clip,
    # block information
    RULE: tl.constexpr,  # 0 SGD, 1 Adam, 2 RMSprop, 3 Adagrad, 4 Adamax, 5 Nadam, 6 Lion, 7 Adadelta, 8 Ftrl
    CLIP: tl.constexpr,  # 0 none, 1 clipvalue, 2 clipnorm (per variable), 3 global_clipnorm
    HAS_WD: tl.constexpr,
    HAS_MOMENTUM: tl.constexpr,
    NESTEROV: tl.constexpr,
    CENTERED: tl.constexpr,
    AMSGRAD: tl.constexpr,
    POW_HALF: tl.constexpr,  # Ftrl with learning_rate_power -0.5: the powers are square roots
    HAS_S1: tl.constexpr,
    HAS_S2: tl.constexpr,
    HAS_S3: tl.constexpr,
    HAS_FOUND_INF: tl.constexpr,
    SEGMENTED: tl.constexpr,  # CLIP == 2: one program per chunk of one variable, looping in BLOCK steps
    ALIGNED: tl.constexpr,  # host-verified: n % 16 == 0 and every buffer 16-byte aligned
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    lr = tl.load(scalars_ptr + 2).to(tl.float32)
    # The step's scalars, once per program. The bias corrections 1 - b^t come from t and log(b) (_one_minus_exp);
    # t >= 1 (a skipped step at t = 0 computes, unused).
    step_size = lr
    c_m = 0.0
    c_g = 0.0
    inv_bc2 = 1.0
    if RULE == 1:  # Adam: step_size = lr sqrt(1 - b2^t) / (1 - b1^t)
        t = tl.maximum(tl.load(scalars_ptr + 3).to(tl.float32), 1.0)
        step_size = lr * tl.sqrt(_one_minus_exp(t * log_h2)) / _one_minus_exp(t * log_h1)
    if RULE == 4:  # Adamax: step_size = lr / (1 - b1^t)
        t = tl.maximum(tl.load(scalars_ptr + 3).to(tl.float32), 1.0)
        step_size = lr / _one_minus_exp(t * log_h1)
    if RULE == 5:
        # Nadam: m_hat = c_m m + c_g g, c_m = u_{t+1} / (1 - u_prod_t u_{t+1}), c_g = (1 - u_t) / (1 - u_prod_t),
        # u_t = b1 (1 - 0.5 * 0.96^t); u_prod_t (through this step) is on the device, advanced by FlatUpdate.
        t = tl.maximum(tl.load(scalars_ptr + 3).to(tl.float32), 1.0)
        decay_t = tl.exp(t * _LOG_NADAM_DECAY)
        u_t = h1 * (1.0 - 0.5 * decay_t)
        u_next = h1 * (1.0 - 0.5 * (decay_t * _NADAM_DECAY))
        u_prod = tl.load(scalars_ptr + 6).to(tl.float32)
        c_m = u_next / (1.0 - u_prod * u_next)
        den_g = 1.0 - u_prod  # 0 only on a skip before the first step (u_prod = 1), whose result is unused
        c_g = (1.0 - u_t) / tl.where(den_g > 0, den_g, 1.0)
        inv_bc2 = 1.0 / _one_minus_exp(t * log_h2)
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
    if HAS_FOUND_INF:
        keep = (tl.zeros([BLOCK], tl.float32) + tl.load(found_inf_ptr)) == 0.0  # the flag, as a block mask
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
        if HAS_FOUND_INF:
            # A skipped step loads and stores nothing: parameters and states stay as they were.
            mask = mask & keep
        real = (offs < n_valid) & mask
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
        elif RULE == 2:  # RMSprop: epsilon inside the square root
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
        elif RULE == 3:  # Adagrad: epsilon inside the square root
            s1 = s1 + g * g
            p = p - step_size * g / tl.where(real, tl.sqrt(s1 + epsilon), 1.0)
        elif RULE == 4:  # Adamax: u = max(b2 u, |g|), epsilon added to u
            s1 = s1 + (g - s1) * (1.0 - h1)
            s2 = tl.maximum(h2 * s2, tl.abs(g))
            p = p - step_size * s1 / tl.where(real, s2 + epsilon, 1.0)
        elif RULE == 5:  # Nadam: epsilon added to sqrt(v / (1 - b2^t))
            s1 = s1 + (g - s1) * (1.0 - h1)
            s2 = s2 + (g * g - s2) * (1.0 - h2)
            den = tl.sqrt(s2 * inv_bc2) + epsilon
            p = p - step_size * (c_m * s1 + c_g * g) / tl.where(real, den, 1.0)
        elif RULE == 6:  # Lion: the sign of the interpolation (sign(0) = 0, a NaN stays NaN), then m
            c = h1 * s1 + (1.0 - h1) * g
            p = p - step_size * tl.where(c > 0, 1.0, tl.where(c < 0, -1.0, c))
            s1 = h2 * s1 + (1.0 - h2) * g
        elif RULE == 7:  # Adadelta: delta = -sqrt(s2 + eps) g / sqrt(s1 + eps); p += lr delta
            s1 = h1 * s1 + (1.0 - h1) * g * g
            delta = -(tl.sqrt(s2 + epsilon) * g) / tl.where(real, tl.sqrt(s1 + epsilon), 1.0)
            s2 = h1 * s2 + (1.0 - h1) * delta * delta
            p = p + step_size * delta
        else:  # Ftrl: h1 = -learning_rate_power, h2 = l1, h3 = 2 l2, h4 = beta, h5 = 2 l2_shrinkage
            new_accum = s1 + g * g
            if POW_HALF:
                pow_new = tl.sqrt(new_accum)
                pow_old = tl.sqrt(s1)
            else:
                pow_new = _pow_nonneg(new_accum, h1)
                pow_old = _pow_nonneg(s1, h1)
            s2 = s2 + (g + h5 * p) - (pow_new - pow_old) / step_size * p
            quadratic = pow_new / step_size + (h3 + h4 / step_size)
            p = (tl.minimum(tl.maximum(s2, -h2), h2) - s2) / tl.where(real, quadratic, 1.0)
            s1 = new_accum
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
    if rule == RMSPROP:
        return True, momentum, centered
    if rule in (ADAGRAD, LION):
        return True, False, False
    return True, True, False  # Adamax, Nadam, Adadelta, Ftrl


_OPTIM_SIG = {
    "param_ptr": "*fp32",
    "grad_ptr": "*fp32",
    "s1_ptr": "*fp32",
    "s2_ptr": "*fp32",
    "s3_ptr": "*fp32",
    "sqnorm_ptr": "*fp32",
    "start_ptr": "*i64",
    "seg_ptr": "*i32",
    "scalars_ptr": "*fp64",
    "found_inf_ptr": "*fp32",
    "n": "i64",
    "n_valid": "i64",
    **{k: "fp32" for k in ("wd", "h1", "h2", "log_h1", "log_h2", "h3", "h4", "h5", "epsilon", "clip")},
    **{
        k: "constexpr"
        for k in (
            "RULE CLIP HAS_WD HAS_MOMENTUM NESTEROV CENTERED AMSGRAD POW_HALF HAS_S1 HAS_S2 HAS_S3 HAS_FOUND_INF "
            "SEGMENTED ALIGNED BLOCK"
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
            "POW_HALF": kw.get("pow_half", False),
            "HAS_S1": s1,
            "HAS_S2": s2,
            "HAS_S3": s3,
            "HAS_FOUND_INF": kw.get("found_inf", False),
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
    # dynamic loss scaling (mixed_float16): the update masked by the device flag found_inf
    _optim_case("adam,found_inf", ADAM, found_inf=True),
    _optim_case("adamw,unaligned,found_inf", ADAM, wd=True, aligned=False, found_inf=True),
    _optim_case("sgd,momentum,clipnorm,found_inf", SGD, CLIP_NORM, momentum=True, found_inf=True),
    _optim_case("rmsprop,momentum,found_inf", RMSPROP, momentum=True, found_inf=True),
    _optim_case("adagrad", ADAGRAD),
    _optim_case("adagrad,unaligned,clipvalue,found_inf", ADAGRAD, CLIP_VALUE, aligned=False, found_inf=True),
    _optim_case("adamax", ADAMAX),
    _optim_case("adamax,clipnorm,wd", ADAMAX, CLIP_NORM, wd=True),
    _optim_case("nadam", NADAM),
    _optim_case(
        "nadam,unaligned,global_clipnorm,wd,found_inf", NADAM, CLIP_GLOBAL, wd=True, aligned=False, found_inf=True
    ),  # fmt: skip
    _optim_case("lion", LION),
    _optim_case("lion,clipnorm,wd,found_inf", LION, CLIP_NORM, wd=True, found_inf=True),
    _optim_case("adadelta", ADADELTA),
    _optim_case("adadelta,unaligned,global_clipnorm,found_inf", ADADELTA, CLIP_GLOBAL, aligned=False, found_inf=True),
    _optim_case("ftrl", FTRL, pow_half=True),
    _optim_case("ftrl,power,unaligned,wd,found_inf", FTRL, wd=True, aligned=False, found_inf=True),
    _optim_case("ftrl,clipnorm", FTRL, CLIP_NORM, pow_half=True),
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
    "adagrad": ("accumulator", "unused_s2", "unused_s3"),
    "adamax": ("m", "u", "unused_s3"),
    "nadam": ("m", "v", "unused_s3"),
    "lion": ("m", "unused_s2", "unused_s3"),
    "adadelta": ("accumulated_grad", "accumulated_delta_var", "unused_s3"),
    "ftrl": ("accumulator", "linear", "unused_s3"),
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


def grad_sqnorm(grad: torch.Tensor, segments: Segments, out: torch.Tensor | None = None) -> torch.Tensor:
    """Sums of squares of ``grad`` per segment (fp32 [n_segments]), in one reduction pass on the device; into
    ``out`` (zeroed here) when given."""
    if out is None:
        out = torch.zeros(segments.n_segments, dtype=torch.float32, device=grad.device)
    else:
        out.zero_()
    if segments.n_chunks:
        _optim_sqnorm_kernel[(segments.n_chunks,)](
            grad, segments.start, segments.seg, out, BLOCK=_BLOCK, num_warps=4, num_stages=1
        )
    return out


def _log_beta(beta: float) -> float:
    return math.log(beta) if beta > 0 else -math.inf


def _check_scalar(op: str, name: str, t, device: torch.device, dtype: torch.dtype | None = None) -> None:
    ok = isinstance(t, torch.Tensor) and t.dim() == 0 and t.device == device
    ok = ok and (t.dtype == dtype if dtype is not None else not (t.is_complex() or t.dtype == torch.bool))
    if not ok:
        want = f"a 0-d {dtype} tensor" if dtype is not None else "a 0-d real tensor"
        got = f"{t.dtype} {tuple(t.shape)} on {t.device}" if isinstance(t, torch.Tensor) else repr(t)
        raise ValueError(f"{op}: expected {name} {want} on {device}. Received: {name}={got}")


class FlatUpdate:
    """One Keras update rule over fixed flat fp32 buffers, checked and prepared once; each call is one step.

    The step's scalars live on the buffers' device, in one float64 vector: ``update.lr`` (the rate of the next
    step, to be written in place: ``fill_`` from the host between steps, ``copy_`` from device ops such as a
    schedule's) and ``update.step`` (steps taken so far: Keras' ``iterations``; set with :meth:`set_step`) are 0-d
    views of it, and so is ``update.u_product`` (Nadam's running product of ``u_i = beta_1 (1 - 0.5 * 0.96^i)``
    over the steps taken: Keras' ``u_product`` variable; 1 for the other rules). A call
    ``update(found_inf=None)`` adds 1 to ``step`` and updates the buffers at ``t = step`` with the rate ``lr``: one
    kernel launch (plus one reduction pass when clipping by norm) and one small device op for the count (Nadam:
    a few more, multiplying ``u_product`` by ``u_t`` on the device).
    ``found_inf`` (0-d float32 on the device, optional) skips the step when nonzero: the buffers, ``step`` and
    ``u_product`` stay as they were. A call reads nothing else that could change between steps (the constants of
    the rule are fixed here), does not sync with the host and copies nothing to the device, so a CUDA graph that
    captured one call replays every later step exactly. The optimizer (``tritonnn/optimizers``) makes one at ``build``.

    Arguments as :func:`optimizer_reference_`; ``lr`` and ``iterations`` start the scalars; ``op`` names the
    operation in error messages.
    """

    def __init__(
        self,
        rule: str,
        param: torch.Tensor,
        grad: torch.Tensor,
        s1: torch.Tensor | None = None,
        s2: torch.Tensor | None = None,
        s3: torch.Tensor | None = None,
        *,
        h1: float = 0.0,
        h2: float = 0.0,
        h3: float = 0.0,
        h4: float = 0.0,
        h5: float = 0.0,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        nesterov: bool = False,
        centered: bool = False,
        amsgrad: bool = False,
        clip: GradClip | None = None,
        n_valid: int | None = None,
        lr: float = 0.0,
        iterations: int = 0,
        u_product: float = 1.0,
        op: str | None = None,
    ):
        if rule not in RULES:
            raise ValueError(f"optimizer_update_: expected rule in {sorted(RULES)}. Received: rule={rule!r}")
        op = op or f"{rule}_"
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
        self.op, self.rule, self.device = op, rule, param.device
        self.param, self.grad = param, grad
        self.states = tuple(buf if needed else None for buf, needed in zip((s1, s2, s3), need, strict=True))
        self.h1, self.h2, self.epsilon = float(h1), float(h2), float(epsilon)
        self.h3, self.h4, self.h5 = float(h3), float(h4), float(h5)
        self.weight_decay = float(weight_decay) if weight_decay else None
        self.momentum = momentum
        self.nesterov = bool(nesterov and momentum)
        self.centered = bool(centered and r == RMSPROP)
        self.amsgrad = bool(amsgrad and r == ADAM)
        self.clip = clip
        self.n = n = param.numel()
        self.n_valid = n if n_valid is None else int(n_valid)
        adam = r == ADAM
        # The scalars, lanes [beta_1, beta_2, lr | t, t, 1 | u_product]: the torch path's Adam rate is computed from
        # the first two triples lane by lane (_adam_rate); each call adds _count = [0, 0, 0 | 1, 1, 0 | 0].
        b1, b2 = (self.h1, self.h2) if adam else (0.0, 0.0)
        f64 = dict(dtype=torch.float64, device=self.device)
        self.scalars = torch.tensor(
            [b1, b2, float(lr), float(iterations), float(iterations), 1.0, float(u_product)], **f64
        )
        self.lr, self.step, self.u_product = self.scalars[2], self.scalars[3], self.scalars[6]
        self._steps = self.scalars[3:5]  # t in both exponent lanes
        self._bases, self._exponents = self.scalars[:3], self.scalars[3:6]  # views made once (~1 us each)
        self._count = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0], **f64)
        self._nadam = r == NADAM
        # The Triton launch, fixed: grid, alignment, the reduction buffer of clipping by norm, the constants.
        mode = CLIP_MODES[None if clip is None else clip.mode]
        segmented = mode == CLIP_NORM
        used = [t for t in self.states if t is not None] + [param, grad]
        aligned = not segmented and n % 16 == 0 and all(t.data_ptr() % 16 == 0 for t in used)
        self._grid = (clip.segments.n_chunks,) if segmented else (triton.cdiv(n, _BLOCK),)
        self._sqnorm = None
        if mode in (CLIP_NORM, CLIP_GLOBAL):
            self._sqnorm = torch.zeros(clip.segments.n_segments, dtype=torch.float32, device=self.device)
        self._tables = (clip.segments.start, clip.segments.seg) if segmented else (param, param)
        k1, k2, k3, k4, k5 = self.h1, self.h2, 0.0, 0.0, 0.0
        if r == FTRL:  # the kernel's constants: -learning_rate_power, l1, 2 l2, beta, 2 l2_shrinkage
            k1, k2, k3, k4, k5 = -self.h1, self.h2, 2.0 * self.h3, self.h5, 2.0 * self.h4
        self._consts = (
            float(weight_decay or 0.0), k1, k2, _log_beta(self.h1) if r in (ADAM, ADAMAX) else 0.0,
            _log_beta(self.h2) if r in (ADAM, NADAM) else 0.0, k3, k4, k5, self.epsilon,
            float(clip.value if clip is not None else 0.0),
        )  # fmt: skip
        self._meta = dict(
            RULE=r, CLIP=mode, HAS_WD=bool(weight_decay), HAS_MOMENTUM=momentum, NESTEROV=self.nesterov,
            CENTERED=self.centered, AMSGRAD=self.amsgrad, POW_HALF=r == FTRL and self.h1 == -0.5, HAS_S1=need[0],
            HAS_S2=need[1], HAS_S3=need[2], SEGMENTED=segmented, ALIGNED=aligned, BLOCK=_BLOCK,
            num_warps=_num_warps(aligned, segmented), num_stages=1,
        )  # fmt: skip
        # The torch path's fused CPU Adam: the constants and buffers of its rate, and the state step inf (see above).
        self._fused = None
        if adam and self.device.type == "cpu" and 0.0 <= h1 < 1.0 and 0.0 <= h2 < 1.0:
            self._fused = _FUSED_ADAM
        if self._fused is not None:
            self._rate_consts = (
                torch.tensor([1.0, 1.0, 0.0], **f64),  # 1 - x, 1 - x, x
                torch.tensor([-1.0, -1.0, 1.0], **f64),
                torch.tensor([-1.0, 0.5, 1.0], **f64),  # the powers of [bc1, bc2, lr] in the rate
            )
            self._rate_work = (torch.empty(3, **f64), torch.empty(3, **f64), torch.empty((), **f64))
            self._inf_step = [torch.tensor(math.inf)]
        # Only with epsilon 0 could the zero padding divide 0 by 0 in the fused Adam: it then updates the real
        # elements only (otherwise the padding stays zero, and the views, ~2.5 us each, are skipped).
        self._slice = self._fused is not None and self.epsilon == 0.0 and self.n_valid < n
        # The fused call's arguments, made once where they are the buffers themselves (no clipping, no slicing):
        # a step then costs the op, not the building of its lists (a few us on a small model's CPU step).
        self._fused_kw = dict(beta1=self.h1, beta2=self.h2, weight_decay=0.0, eps=self.epsilon, amsgrad=self.amsgrad,
                              maximize=False)  # fmt: skip
        self._fused_lists = None
        if self._fused is not None and clip is None and not self._slice:
            self._fused_lists = self._adam_lists(param, grad, self.states)

    def _adam_lists(self, p, g, states):
        m, v, vh = states
        if self._slice:
            k = self.n_valid
            p, g, m, v, vh = (None if t is None else t[:k] for t in (p, g, m, v, vh))
        return [p], [g], [m], [v], [vh] if self.amsgrad else [], self._inf_step

    def set_step(self, value: int | torch.Tensor) -> None:
        """Set the count of steps taken (an int from the host, or a 0-d tensor on the device, copied there)."""
        if isinstance(value, torch.Tensor):
            self._steps.copy_(value)
        else:
            self._steps.fill_(float(value))

    def __call__(self, found_inf: torch.Tensor | None = None) -> None:
        triton_path = _backend.use_triton(self.param)  # (raises, naming the cause, before anything changed)
        if found_inf is None:
            self.scalars.add_(self._count)
        else:
            _check_scalar(self.op, "found_inf", found_inf, self.device, torch.float32)
            self.scalars.add_(self._count * (found_inf == 0))
        if self._nadam:  # u_product *= u_t = beta_1 (1 - 0.5 * 0.96^t), at the new t, on the device
            u_t = torch.pow(NADAM_DECAY, self.step).mul_(-0.5).add_(1.0).mul_(self.h1)
            if found_inf is not None:
                u_t = torch.where(found_inf == 0, u_t, 1.0)
            self.u_product.mul_(u_t)
        if self.n == 0:
            return
        if triton_path:
            self._launch(found_inf)
        elif found_inf is None:
            self._torch(self.param, self.states)
        else:
            # Update copies, keep them where found_inf == 0: the buffers of a skipped step stay as they were.
            bufs = (self.param, *self.states)
            new = [None if b is None else b.clone() for b in bufs]
            self._torch(new[0], tuple(new[1:]))
            keep = found_inf == 0
            for b, c in zip(bufs, new, strict=True):
                if b is not None:
                    torch.where(keep, c, b, out=b)

    def _launch(self, found_inf: torch.Tensor | None) -> None:
        p = self.param
        sqnorm = p  # never read without clipping by norm
        if self._sqnorm is not None:
            sqnorm = grad_sqnorm(self.grad, self.clip.segments, out=self._sqnorm)
        s1, s2, s3 = (p if t is None else t for t in self.states)
        _optim_fwd_kernel[self._grid](
            p, self.grad, s1, s2, s3, sqnorm, *self._tables, self.scalars, p if found_inf is None else found_inf,
            self.n, self.n_valid, *self._consts, HAS_FOUND_INF=found_inf is not None, **self._meta,
        )  # fmt: skip

    def _adam_rate(self) -> torch.Tensor:
        """lr sqrt(1 - b2^t) / (1 - b1^t) as a 0-d float64 tensor: four small same-dtype ops into fixed buffers."""
        offsets, signs, powers = self._rate_consts
        a, b, rate = self._rate_work
        torch.pow(self._bases, self._exponents, out=a)  # [b1^t, b2^t, lr]
        torch.addcmul(offsets, a, signs, out=b)  # [1 - b1^t, 1 - b2^t, lr]
        torch.pow(b, powers, out=a)  # [1 / bc1, sqrt(bc2), lr]
        return torch.prod(a, 0, out=rate)

    def _torch(self, p: torch.Tensor, states: tuple) -> None:
        """The torch path on ``p`` and ``states`` (the buffers, or copies of them): see the notes above."""
        s1, s2, s3 = states
        lr = self.lr
        if self.rule not in ("sgd", "adam") or (self.rule == "adam" and self._fused is None):
            optimizer_reference_(
                self.rule, p, self.grad, s1, s2, s3, lr=lr, step=self.step, h1=self.h1, h2=self.h2, h3=self.h3,
                h4=self.h4, h5=self.h5, epsilon=self.epsilon, weight_decay=self.weight_decay, nesterov=self.nesterov,
                centered=self.centered, amsgrad=self.amsgrad, clip=self.clip, n_valid=self.n_valid,
                u_product=self.u_product,
            )  # fmt: skip
            return
        g = self.grad if self.clip is None else _clip_reference(self.grad, self.clip)
        if self.weight_decay:  # Keras' p -= p wd lr, with the plain rate
            p.addcmul_(p, lr, value=-self.weight_decay)
        if self.rule == "adam":
            fast = self._fused_lists is not None and p is self.param
            lists = self._fused_lists if fast else self._adam_lists(p, g, states)
            self._fused(*lists, lr=self._adam_rate(), **self._fused_kw)
        elif self.momentum:  # SGD: m = mu m - lr g; p += m (nesterov: p += mu m - lr g)
            s1.mul_(self.h1).addcmul_(g, lr, value=-1.0)
            if self.nesterov:
                p.add_(s1, alpha=self.h1).addcmul_(g, lr, value=-1.0)
            else:
                p.add_(s1)
        else:
            p.addcmul_(g, lr, value=-1.0)


def optimizer_update_(
    rule: str,
    param: torch.Tensor,
    grad: torch.Tensor,
    s1: torch.Tensor | None = None,
    s2: torch.Tensor | None = None,
    s3: torch.Tensor | None = None,
    *,
    lr: float | torch.Tensor,
    step: int | torch.Tensor = 1,
    h1: float = 0.0,
    h2: float = 0.0,
    h3: float = 0.0,
    h4: float = 0.0,
    h5: float = 0.0,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    nesterov: bool = False,
    centered: bool = False,
    amsgrad: bool = False,
    clip: GradClip | None = None,
    n_valid: int | None = None,
    found_inf: torch.Tensor | None = None,
    u_product: float | torch.Tensor | None = None,
) -> None:
    """One Keras update of the flat buffers in place: one launch (plus one reduction pass when clipping by norm).

    On the torch backend with CPU tensors, Adam/AdamW (amsgrad included) runs torch's fused CPU Adam with Keras'
    semantics mapped onto it, SGD in-place ops, the other rules the reference (see the notes above
    :class:`FlatUpdate`).

    Arguments as :func:`optimizer_reference_`; ``step`` is the 1-based step (Adam's bias correction). ``lr`` and
    ``step`` may be 0-d tensors on the buffers' device. ``found_inf``: see :class:`FlatUpdate`. ``n_valid``: the
    first ``n_valid`` elements are parameters, the rest zero padding (the optimizer pads its buffers to a multiple
    of 16 elements so that the kernel's loads vectorise); default: all. ``u_product`` (Nadam): Keras' ``u_product``
    *before* this step (the product through step - 1; a float or a 0-d tensor on the device); default: computed
    on the host from an int ``step``. This prepares a :class:`FlatUpdate` for one call; a training loop keeps one
    instead.
    """
    op = f"{rule}_"
    if rule not in RULES:
        raise ValueError(f"optimizer_update_: expected rule in {sorted(RULES)}. Received: rule={rule!r}")
    if isinstance(step, torch.Tensor):
        _check_scalar(op, "step", step, param.device)
    elif isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"{op}: expected the 1-based step count, an integer >= 1. Received: step={step!r}")
    if isinstance(lr, torch.Tensor):
        _check_scalar(op, "lr", lr, param.device)
    elif isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise ValueError(f"{op}: expected lr a float or a 0-d tensor. Received: lr={lr!r}")
    host_lr = 0.0 if isinstance(lr, torch.Tensor) else float(lr)
    host_done = 0 if isinstance(step, torch.Tensor) else step - 1
    if rule == "nadam" and u_product is None:
        if isinstance(step, torch.Tensor):
            raise ValueError(f"{op}: a step tensor needs u_product (the product before this step) on the device")
        u_product = nadam_u_product(float(h1), host_done)
    if isinstance(u_product, torch.Tensor):
        _check_scalar(op, "u_product", u_product, param.device)
    update = FlatUpdate(
        rule, param, grad, s1, s2, s3, h1=h1, h2=h2, h3=h3, h4=h4, h5=h5, epsilon=epsilon, weight_decay=weight_decay,
        nesterov=nesterov, centered=centered, amsgrad=amsgrad, clip=clip, n_valid=n_valid, lr=host_lr,
        iterations=host_done, op=op,
        u_product=1.0 if u_product is None or isinstance(u_product, torch.Tensor) else float(u_product),
    )  # fmt: skip
    if isinstance(lr, torch.Tensor):
        update.lr.copy_(lr)
    if isinstance(step, torch.Tensor):
        update.set_step(step - 1)
    if isinstance(u_product, torch.Tensor):
        update.u_product.copy_(u_product)
    update(found_inf)


def adam_(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    *,
    step: int | torch.Tensor,
    lr: float | torch.Tensor,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    v_hat: torch.Tensor | None = None,
    weight_decay: float | None = None,
    clip: GradClip | None = None,
    n_valid: int | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """Keras' Adam (AdamW with ``weight_decay``) over flat fp32 buffers, in place; ``step`` is 1-based."""
    optimizer_update_(
        "adam", param, grad, m, v, v_hat, lr=lr, step=step, h1=beta_1, h2=beta_2, epsilon=epsilon,
        weight_decay=weight_decay, amsgrad=amsgrad, clip=clip, n_valid=n_valid, found_inf=found_inf,
    )  # fmt: skip


def sgd_(
    param: torch.Tensor,
    grad: torch.Tensor,
    momentum_buffer: torch.Tensor | None = None,
    *,
    lr: float | torch.Tensor,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float | None = None,
    clip: GradClip | None = None,
    n_valid: int | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """Keras' SGD (momentum, nesterov) over flat fp32 buffers, in place."""
    optimizer_update_(
        "sgd", param, grad, momentum_buffer, lr=lr, h1=momentum, nesterov=nesterov, weight_decay=weight_decay,
        clip=clip, n_valid=n_valid, found_inf=found_inf,
    )  # fmt: skip


def rmsprop_(
    param: torch.Tensor,
    grad: torch.Tensor,
    velocity: torch.Tensor,
    momentum_buffer: torch.Tensor | None = None,
    average_grad: torch.Tensor | None = None,
    *,
    lr: float | torch.Tensor,
    rho: float = 0.9,
    momentum: float = 0.0,
    epsilon: float = 1e-7,
    centered: bool = False,
    weight_decay: float | None = None,
    clip: GradClip | None = None,
    n_valid: int | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """Keras' RMSprop (momentum, centered; epsilon inside the square root) over flat fp32 buffers, in place."""
    optimizer_update_(
        "rmsprop", param, grad, velocity, momentum_buffer, average_grad, lr=lr, h1=rho, h2=momentum,
        epsilon=epsilon, centered=centered, weight_decay=weight_decay, clip=clip, n_valid=n_valid,
        found_inf=found_inf,
    )  # fmt: skip
