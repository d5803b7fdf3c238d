"""The activation table: names, aliases, errors, and each row's forward and derivative against float64 references
written independently from Keras' definitions (not from the table)."""

from __future__ import annotations

import math

import pytest
import torch

from tritonnn.kernels import ACTIVATIONS
from tritonnn.kernels.activations import ALIASES, activation_derivative, activation_reference, canonical

# Keras 3's definitions, in float64, written out from keras/src/activations (not from kernels/activations.py).
KERAS = {
    "linear": lambda x: x,
    "relu": lambda x: torch.clamp(x, min=0),
    "relu6": lambda x: torch.clamp(x, 0, 6),
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.2 * x),
    "elu": lambda x: torch.where(x > 0, x, torch.expm1(x)),
    "selu": lambda x: 1.0507009873554805 * torch.where(x > 0, x, 1.6732632423543772 * torch.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "silu": lambda x: x / (1 + torch.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "hard_sigmoid": lambda x: torch.clamp(x + 3, 0, 6) / 6,
    "hard_silu": lambda x: x * torch.clamp(x + 3, 0, 6) / 6,
    "tanh": torch.tanh,
    "softplus": lambda x: torch.log1p(torch.exp(-x.abs())) + torch.clamp(x, min=0),
    "softsign": lambda x: x / (1 + x.abs()),
    "mish": lambda x: x * torch.tanh(torch.log1p(torch.exp(-x.abs())) + torch.clamp(x, min=0)),
    "exponential": torch.exp,
}

# Smooth points, away from every kink, and the kinks themselves (where torch's subgradient conventions apply).
SMOOTH = torch.tensor([-7.3, -3.2, -2.9, -1.0, -0.3, -1e-3, 2e-4, 0.07, 0.5, 1.0, 2.5, 2.9, 3.1, 5.9, 6.2, 9.0])
KINKS = {"relu": [0.0], "relu6": [0.0, 6.0], "hard_sigmoid": [-3.0, 3.0], "hard_silu": [-3.0, 3.0], "leaky_relu": [0.0]}


def test_table_matches_keras_names():
    assert set(KERAS) == set(ACTIVATIONS)
    assert "softmax" not in ACTIVATIONS and "log_softmax" not in ACTIVATIONS
    assert sorted(row.id for row in ACTIVATIONS.values()) == list(range(len(ACTIVATIONS)))
    assert all(row.name == name for name, row in ACTIVATIONS.items())


def test_canonical_names_and_aliases():
    assert canonical(None) == "linear"
    assert canonical("swish") == "silu"
    assert canonical("hard_swish") == "hard_silu"
    for name in ACTIVATIONS:
        assert canonical(name) == name
    for alias, target in ALIASES.items():
        assert canonical(alias) == target


def test_unknown_activation_names_the_closest_match():
    with pytest.raises(ValueError, match=r"Unknown activation: 'rleu'\. Did you mean 'relu'\?.*Received: activation"):
        canonical("rleu")
    with pytest.raises(ValueError, match="Valid names"):
        canonical("softmax")
    with pytest.raises(ValueError, match="Expected an activation name"):
        canonical(3)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_forward_matches_keras_definition(name):
    x = torch.cat([SMOOTH, torch.linspace(-12, 12, 97)]).double()
    torch.testing.assert_close(activation_reference(name, x), KERAS[name](x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_matches_autograd_of_keras_definition(name):
    """The table's derivative (from y or z, as the row says) equals autograd's, including at the kinks."""
    x = torch.cat([SMOOTH.double(), torch.tensor(KINKS.get(name, []), dtype=torch.float64)]).requires_grad_()
    (expected,) = torch.autograd.grad(KERAS[name](x).sum(), x)
    if name in KINKS:  # torch's own functions decide the kinks: relu'(0) = 0, relu6'(6) = 0, leaky'(0) = slope
        kink = torch.tensor(KINKS[name], dtype=torch.float64, requires_grad=True)
        (at_kinks,) = torch.autograd.grad(ACTIVATIONS[name].forward(kink).sum(), kink)
        expected[len(SMOOTH) :] = at_kinks
    torch.testing.assert_close(activation_derivative(name, x.detach()), expected, atol=1e-12, rtol=1e-10)


def test_zero_safe_rows():
    """Rows whose act' from a zero output is zero: a fused dropout needs no mask in their backward."""
    safe = {name for name, row in ACTIVATIONS.items() if row.zero_safe}
    assert safe == {"relu", "relu6", "sigmoid", "hard_sigmoid", "exponential"}
    pre = {name for name, row in ACTIVATIONS.items() if row.needs_preactivation}
    assert pre == {"gelu", "gelu_tanh", "silu", "hard_silu", "softplus", "mish"}
