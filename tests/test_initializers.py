"""Initializers and regularizers against Keras' formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn import initializers, regularizers

SHAPE = (300, 200)  # fan_in 300, fan_out 200, fan_avg 250


@pytest.mark.parametrize(
    "name, scale, fan, dist",
    [
        ("glorot_uniform", 1.0, 250, "uniform"),
        ("glorot_normal", 1.0, 250, "truncated"),
        ("he_uniform", 2.0, 300, "uniform"),
        ("he_normal", 2.0, 300, "truncated"),
        ("lecun_uniform", 1.0, 300, "uniform"),
        ("lecun_normal", 1.0, 300, "truncated"),
    ],
)
def test_variance_scaling_family(name, scale, fan, dist):
    w = initializers.get(name)(SHAPE).double()
    std = math.sqrt(scale / fan)
    assert w.shape == SHAPE and w.dtype == torch.float64
    # the variance is scale / fan for every member of the family (the truncated normal is rescaled by 0.8796)
    assert w.std().item() == pytest.approx(std, rel=0.03)
    if dist == "uniform":
        limit = math.sqrt(3.0 * scale / fan)
        assert w.abs().max().item() <= limit and w.abs().max().item() > 0.99 * limit
    else:  # truncated at two standard deviations of the underlying normal
        assert w.abs().max().item() <= 2.0 * std / 0.87962566103423978 + 1e-12


def test_seeded_initializers_repeat_and_unseeded_follow_the_global_seed():
    a = initializers.GlorotUniform(seed=3)((4, 5))
    b = initializers.GlorotUniform(seed=3)((4, 5))
    c = initializers.GlorotUniform(seed=4)((4, 5))
    assert torch.equal(a, b) and not torch.equal(a, c)
    keras.utils.set_random_seed(9)
    d = initializers.RandomNormal()((4, 5))
    keras.utils.set_random_seed(9)
    assert torch.equal(d, initializers.RandomNormal()((4, 5)))


def test_simple_initializers_and_lookup():
    assert torch.equal(initializers.get("zeros")((2, 3)), torch.zeros(2, 3))
    assert torch.equal(initializers.get("ones")((2,)), torch.ones(2))
    assert torch.equal(initializers.Constant(2.5)((2,)), torch.full((2,), 2.5))
    u = initializers.RandomUniform(-0.1, 0.3, seed=1)((1000,))
    assert u.min() >= -0.1 and u.max() < 0.3 and u.mean().item() == pytest.approx(0.1, abs=0.01)
    n = initializers.RandomNormal(mean=1.0, stddev=0.5, seed=1)((20000,))
    assert n.mean().item() == pytest.approx(1.0, abs=0.02) and n.std().item() == pytest.approx(0.5, rel=0.03)
    t = initializers.TruncatedNormal(stddev=1.0, seed=1)((20000,))
    assert t.abs().max() <= 2.0
    assert isinstance(initializers.get("GlorotUniform"), initializers.GlorotUniform)
    cfg = initializers.serialize(initializers.RandomNormal(mean=0.5, seed=7))
    again = initializers.get(cfg)
    assert isinstance(again, initializers.RandomNormal) and again.mean == 0.5 and again.seed == 7
    with pytest.raises(ValueError, match="Unknown initializer: 'glorot_unifrom'. Did you mean 'glorot_uniform'"):
        initializers.get("glorot_unifrom")
    with pytest.raises(ValueError, match="integer seed"):
        initializers.RandomNormal(seed=1.5)


def test_dense_uses_keras_default_initializers():
    layer = keras.layers.Dense(7)
    layer.build((None, 5))
    assert isinstance(layer.kernel_initializer, initializers.GlorotUniform)
    limit = math.sqrt(6.0 / (5 + 7))
    assert layer.kernel.abs().max().item() <= limit
    assert torch.equal(layer.bias.detach(), torch.zeros(7, device=layer.bias.device))


def test_regularizers_match_keras_defaults_and_formulas():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    assert regularizers.get("l1")(w).item() == pytest.approx(0.01 * 3.5)
    assert regularizers.get("l2")(w).item() == pytest.approx(0.01 * 5.25)
    assert regularizers.get("l1l2")(w).item() == 0.0  # Keras 3: "l1l2" is L1L2(), whose penalties default to 0
    assert regularizers.l1_l2 is regularizers.L1L2 and regularizers.l1_l2(l1=0.01, l2=0.01)(w).item() == pytest.approx(
        0.01 * 3.5 + 0.01 * 5.25
    )
    assert regularizers.L1L2(l1=0.1, l2=0.2)(w).item() == pytest.approx(0.35 + 1.05)
    with pytest.raises(ValueError, match="non-negative"):
        regularizers.L2(-1.0)
    with pytest.raises(ValueError, match="Unknown regularizer"):
        regularizers.get("l3")
    np.testing.assert_allclose(regularizers.get(regularizers.serialize(regularizers.L1(0.3)))(w).item(), 1.05)
