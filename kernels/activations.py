"""The activation table: one row per element-wise activation Keras names by string.

Each row carries
- ``forward(z)``: the torch definition (the CPU path and the written-down spec of the Triton epilogue);
- ``derivative(t)``: ``act'(z)`` in torch, where ``t`` is the pre-activation ``z`` when ``needs_preactivation``
  and the output ``y = act(z)`` otherwise;
- ``id``: the ``ACTIVATION`` constexpr of the Triton epilogue (kernels/dense.py branches on it);
- ``needs_preactivation``: whether ``act'`` is *not* a function of the output. For these (gelu, silu, mish, ...)
  the dense forward computes ``act'(z)`` in its epilogue, where ``z`` is still in fp32 registers, and saves it
  (the same bytes as saving ``z``, but the backward then needs one multiply instead of an erf/exp per element per
  GEMM program). For the others the backward recomputes ``act'`` from the output, which autograd keeps anyway.

Adding an activation is adding a row here plus its ``elif ACTIVATION == ...`` branch in the Triton epilogue
(forward, and the derivative for ``needs_preactivation`` rows) or prologue (derivative from the output).
``softmax``/``log_softmax`` are not element-wise and live elsewhere.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._triton import tl, triton

# Keras' constants: leaky_relu's default negative_slope, selu's alpha and scale.
LEAKY_RELU_SLOPE = 0.2
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_C = 0.044715


@dataclasses.dataclass(frozen=True)
class Activation:
    name: str
    id: int
    forward: Callable[[torch.Tensor], torch.Tensor]
    derivative: Callable[[torch.Tensor], torch.Tensor]
    needs_preactivation: bool

    @functools.cached_property  # computed once per row, not at every dense backward (it reads a tensor)
    def zero_safe(self) -> bool:
        """``act'`` computed from an output of 0 is 0 (relu, sigmoid, ...).

        A fused dropout zeroes the output of dropped elements, so for these activations the saved (dropped) output
        alone gives the right gradient: no mask needs to be regenerated in the backward.
        """
        if self.needs_preactivation:
            return False
        return bool(self.derivative(torch.zeros(1, dtype=torch.float64)).item() == 0.0)


def _hard_sigmoid(z: torch.Tensor) -> torch.Tensor:
    return F.relu6(z + 3.0) / 6.0  # Keras 3: relu6(x + 3) / 6


def _gelu_erf_grad(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(z * (1.0 / math.sqrt(2.0)))) + z * torch.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _gelu_tanh_grad(z: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(_SQRT_2_OVER_PI * (z + _GELU_C * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * z * z)


def _silu_grad(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _mish_grad(z: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(F.softplus(z))
    return t + z * (1.0 - t * t) * torch.sigmoid(z)


def _hard_silu_grad(z: torch.Tensor) -> torch.Tensor:
    return _hard_sigmoid(z) + z * ((z > -3.0) & (z < 3.0)).to(z.dtype) / 6.0


_ROWS = [
    # name, forward, derivative (of y when needs_preactivation is False, of z otherwise), needs_preactivation
    ("linear", lambda z: z, lambda y: torch.ones_like(y), False),
    ("relu", F.relu, lambda y: (y > 0).to(y.dtype), False),
    ("relu6", F.relu6, lambda y: ((y > 0) & (y < 6)).to(y.dtype), False),
    (
        "leaky_relu",
        lambda z: F.leaky_relu(z, LEAKY_RELU_SLOPE),
        lambda y: torch.where(y > 0, torch.ones_like(y), torch.full_like(y, LEAKY_RELU_SLOPE)),
        False,
    ),
    ("elu", F.elu, lambda y: torch.where(y > 0, torch.ones_like(y), y + 1.0), False),
    ("selu", F.selu, lambda y: torch.where(y > 0, torch.full_like(y, SELU_SCALE), y + SELU_SCALE * SELU_ALPHA), False),
    ("gelu", F.gelu, _gelu_erf_grad, True),
    ("gelu_tanh", lambda z: F.gelu(z, approximate="tanh"), _gelu_tanh_grad, True),
    ("silu", F.silu, _silu_grad, True),
    ("sigmoid", torch.sigmoid, lambda y: y * (1.0 - y), False),
    ("hard_sigmoid", _hard_sigmoid, lambda y: ((y > 0) & (y < 1)).to(y.dtype) / 6.0, False),
    ("hard_silu", lambda z: z * _hard_sigmoid(z), _hard_silu_grad, True),
    ("tanh", torch.tanh, lambda y: 1.0 - y * y, False),
    ("softplus", F.softplus, torch.sigmoid, True),
    ("softsign", F.softsign, lambda y: (1.0 - y.abs()) ** 2, False),
    ("mish", F.mish, _mish_grad, True),
    ("exponential", torch.exp, lambda y: y, False),
]

ACTIVATIONS: dict[str, Activation] = {
    name: Activation(name, i, fwd, der, pre) for i, (name, fwd, der, pre) in enumerate(_ROWS)
}

# Keras' other spellings of the same functions.
ALIASES: dict[str, str] = {
    "swish": "silu",
    "hard_swish": "hard_silu",
    "gelu_approximate": "gelu_tanh",
}


def canonical(name: str | None) -> str:
    """The table's name for ``name`` (None is ``linear``); ``ValueError`` listing the valid names otherwise."""
    if name is None:
        return "linear"
    if not isinstance(name, str):
        raise ValueError(f"Expected an activation name (a string). Received: activation={name!r}")
    key = ALIASES.get(name, name)
    if key not in ACTIVATIONS:
        close = difflib.get_close_matches(name, list(ACTIVATIONS) + list(ALIASES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown activation: {name!r}.{hint} Valid names: {sorted(set(ACTIVATIONS) | set(ALIASES))}. "
            f"Received: activation={name!r}"
        )
    return key


def activation_reference(name: str | None, z: torch.Tensor) -> torch.Tensor:
    """Apply an element-wise activation with plain torch."""
    return ACTIVATIONS[canonical(name)].forward(z)


def activation_derivative(name: str | None, z: torch.Tensor) -> torch.Tensor:
    """``act'(z)`` from the table's derivative (given ``z`` or ``act(z)`` as the row needs)."""
    row = ACTIVATIONS[canonical(name)]
    return row.derivative(z if row.needs_preactivation else row.forward(z))


# ---------------------------------------------------------------------------------------------------------------
# The table's rows as a Triton device function, for kernels that apply an activation to an fp32 tile in registers
# ---------------------------------------------------------------------------------------------------------------
# The same math as the dense forward epilogue (kernels/dense.py, where it is written inline), with act'(z) for every
# row, not only the pre-activation ones: a kernel that recomputes z (kernels/fused_mlp.py) takes the derivative from
# z itself, with the kink conventions of the table's derivatives (relu'(0) = 0, leaky_relu'(0) = slope, relu6 and
# hard_sigmoid flat at both ends).
_LINEAR = tl.constexpr(ACTIVATIONS["linear"].id)
_RELU = tl.constexpr(ACTIVATIONS["relu"].id)
_RELU6 = tl.constexpr(ACTIVATIONS["relu6"].id)
_LEAKY_RELU = tl.constexpr(ACTIVATIONS["leaky_relu"].id)
_ELU = tl.constexpr(ACTIVATIONS["elu"].id)
_SELU = tl.constexpr(ACTIVATIONS["selu"].id)
_GELU = tl.constexpr(ACTIVATIONS["gelu"].id)
_GELU_TANH = tl.constexpr(ACTIVATIONS["gelu_tanh"].id)
_SILU = tl.constexpr(ACTIVATIONS["silu"].id)
_SIGMOID = tl.constexpr(ACTIVATIONS["sigmoid"].id)
_HARD_SIGMOID = tl.constexpr(ACTIVATIONS["hard_sigmoid"].id)
_HARD_SILU = tl.constexpr(ACTIVATIONS["hard_silu"].id)
_TANH = tl.constexpr(ACTIVATIONS["tanh"].id)
_SOFTPLUS = tl.constexpr(ACTIVATIONS["softplus"].id)
_SOFTSIGN = tl.constexpr(ACTIVATIONS["softsign"].id)
_MISH = tl.constexpr(ACTIVATIONS["mish"].id)
_EXPONENTIAL = tl.constexpr(ACTIVATIONS["exponential"].id)
_SLOPE = tl.constexpr(LEAKY_RELU_SLOPE)
_SELU_A = tl.constexpr(SELU_ALPHA)
_SELU_S = tl.constexpr(SELU_SCALE)
_SQRT_2_OVER_PI_C = tl.constexpr(_SQRT_2_OVER_PI)
_INV_SQRT_2 = tl.constexpr(0.7071067811865476)
_INV_SQRT_2PI_C = tl.constexpr(_INV_SQRT_2PI)
_GELU_C_C = tl.constexpr(_GELU_C)


@triton.jit
def activation_fwd(z, ACTIVATION: tl.constexpr, NEED_GRAD: tl.constexpr):
    """``(act(z), act'(z))`` of an fp32 tile; with NEED_GRAD False the second value is ``z`` (not computed)."""
    # Shared pieces, each computed once for the rows built on them. e = exp(-|z|) never overflows.
    if ACTIVATION == _SILU or ACTIVATION == _SIGMOID or ACTIVATION == _SOFTPLUS or ACTIVATION == _MISH:
        e = tl.exp(-tl.abs(z))
        sig = tl.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))  # sigmoid(z)
        # softplus(z) = max(z, 0) + log1p(e), log1p by Goldberg's trick (exact where 1 + e rounds to 1)
        u1 = 1.0 + e
        log1p_e = tl.where(u1 == 1.0, e, tl.log(u1) * (e / (u1 - 1.0)))
        softplus = tl.maximum(z, 0.0) + log1p_e
    if ACTIVATION == _TANH or ACTIVATION == _GELU_TANH or ACTIVATION == _MISH:
        if ACTIVATION == _TANH:
            u = z
        elif ACTIVATION == _GELU_TANH:
            u = _SQRT_2_OVER_PI_C * (z + _GELU_C_C * z * z * z)
        else:
            u = softplus
        # tanh(u) = sign(u) (1 - t) / (1 + t), t = exp(-2|u|); odd Taylor series below |u| < 0.1, where the exp form
        # loses its relative precision (TRITON_NOTES.md).
        t = tl.exp(-2.0 * tl.abs(u))
        th = (1.0 - t) / (1.0 + t)
        th = tl.where(u < 0, -th, th)
        u2 = u * u
        th_small = u * (1.0 + u2 * (-0.3333333333333333 + u2 * (0.13333333333333333 + u2 * -0.05396825396825397)))
        th = tl.where(tl.abs(u) < 0.1, th_small, th)
    if ACTIVATION == _ELU or ACTIVATION == _SELU:
        # expm1(min(z, 0)), with its Taylor series near 0 where exp(z) - 1 cancels.
        zn = tl.minimum(z, 0.0)
        em1 = tl.exp(zn) - 1.0
        em1_small = zn * (1.0 + zn * (0.5 + zn * (0.16666666666666666 + zn * (0.041666666666666664 + zn / 120.0))))
        em1 = tl.where(zn > -0.1, em1_small, em1)

    y = z
    g = z
    if ACTIVATION == _LINEAR:
        if NEED_GRAD:
            g = tl.full(z.shape, 1.0, tl.float32)
    elif ACTIVATION == _RELU:
        y = tl.maximum(z, 0.0)
        if NEED_GRAD:
            g = tl.where(z > 0, 1.0, 0.0)
    elif ACTIVATION == _RELU6:
        y = tl.minimum(tl.maximum(z, 0.0), 6.0)
        if NEED_GRAD:
            g = tl.where((z > 0) & (z < 6.0), 1.0, 0.0)
    elif ACTIVATION == _LEAKY_RELU:
        y = tl.where(z > 0, z, z * _SLOPE)
        if NEED_GRAD:
            g = tl.where(z > 0, 1.0, _SLOPE)
    elif ACTIVATION == _ELU:
        y = tl.where(z > 0, z, em1)
        if NEED_GRAD:
            g = tl.where(z > 0, 1.0, em1 + 1.0)
    elif ACTIVATION == _SELU:
        y = _SELU_S * tl.where(z > 0, z, _SELU_A * em1)
        if NEED_GRAD:
            g = tl.where(z > 0, _SELU_S, y + _SELU_S * _SELU_A)
    elif ACTIVATION == _GELU:
        cdf = 0.5 * (1.0 + tl.erf(z * _INV_SQRT_2))
        y = z * cdf
        if NEED_GRAD:
            g = cdf + z * tl.exp(-0.5 * z * z) * _INV_SQRT_2PI_C
    elif ACTIVATION == _GELU_TANH:
        y = 0.5 * z * (1.0 + th)
        if NEED_GRAD:
            g = 0.5 * (1.0 + th) + 0.5 * z * (1.0 - th * th) * _SQRT_2_OVER_PI_C * (1.0 + 3.0 * _GELU_C_C * z * z)
    elif ACTIVATION == _SILU:
        y = z * sig
        if NEED_GRAD:
            g = sig * (1.0 + z * (1.0 - sig))
    elif ACTIVATION == _SIGMOID:
        y = sig
        if NEED_GRAD:
            g = sig * (1.0 - sig)
    elif ACTIVATION == _HARD_SIGMOID:
        y = tl.minimum(tl.maximum(z + 3.0, 0.0), 6.0) * (1.0 / 6.0)  # saturates at exactly 0 and 1
        if NEED_GRAD:
            g = tl.where((z > -3.0) & (z < 3.0), 1.0 / 6.0, 0.0)
    elif ACTIVATION == _HARD_SILU:
        hs = tl.minimum(tl.maximum(z + 3.0, 0.0), 6.0) * (1.0 / 6.0)
        y = z * hs
        if NEED_GRAD:
            g = hs + tl.where((z > -3.0) & (z < 3.0), z * (1.0 / 6.0), 0.0)
    elif ACTIVATION == _TANH:
        y = th
        if NEED_GRAD:
            g = 1.0 - th * th
    elif ACTIVATION == _SOFTPLUS:
        y = softplus
        if NEED_GRAD:
            g = sig
    elif ACTIVATION == _SOFTSIGN:
        y = z / (1.0 + tl.abs(z))
        if NEED_GRAD:
            g = (1.0 - tl.abs(y)) * (1.0 - tl.abs(y))
    elif ACTIVATION == _MISH:
        y = z * th
        if NEED_GRAD:
            g = th + z * (1.0 - th * th) * sig
    elif ACTIVATION == _EXPONENTIAL:
        y = tl.exp(z)
        if NEED_GRAD:
            g = y
    return y, g
