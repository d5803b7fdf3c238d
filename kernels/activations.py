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
