"""``optimizer.apply(grads, trainable_variables)`` and ``apply_gradients`` against Keras: the custom-training-loop
calls (Keras' "writing a training loop from scratch" guide), on the same weights and the same gradients."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tritonnn

from .compare import assert_same, to_numpy
from .differences import deliberate

RNG = np.random.default_rng(7)
W0 = [RNG.normal(size=(3, 2)).astype("float32"), RNG.normal(size=(2,)).astype("float32")]
G = [RNG.normal(size=(3, 2)).astype("float32"), RNG.normal(size=(2,)).astype("float32")]


def _model(K: Any) -> Any:
    model = K.Sequential([K.Input((3,)), K.layers.Dense(2)])
    model.set_weights(W0)
    return model


def _grads(K: Any, scale: float = 1.0) -> list[Any]:
    return [K.ops.convert_to_tensor(g * scale) for g in G]


def _optimizer(K: Any, kind: str) -> Any:
    if kind == "adam":
        return K.optimizers.Adam(0.1)
    if kind == "sgd_momentum":
        return K.optimizers.SGD(0.1, momentum=0.9)
    return K.optimizers.LossScaleOptimizer(K.optimizers.SGD(0.1), initial_scale=8.0)


def _weights(K: Any, model: Any) -> list[np.ndarray]:
    return [to_numpy(K, w) for w in model.get_weights()]


@pytest.mark.parametrize("how", ["apply_built", "apply_variables", "apply_reversed", "apply_gradients"])
@pytest.mark.parametrize("opt", ["adam", "sgd_momentum", "loss_scale"])
def test_apply_moves_the_weights_as_keras(keras_ref, opt, how):
    results = []
    for K in (keras_ref, tritonnn):
        model = _model(K)
        variables = model.trainable_weights
        optimizer = _optimizer(K, opt)
        scale = 8.0 if opt == "loss_scale" else 1.0  # the gradients of a scaled loss: apply unscales them
        for _ in range(2):
            grads = _grads(K, scale)
            if how == "apply_built":
                if not optimizer.built:
                    optimizer.build(variables)
                optimizer.apply(grads)
            elif how == "apply_variables":
                optimizer.apply(grads, variables)
            elif how == "apply_reversed":
                optimizer.apply(grads[::-1], variables[::-1])
            else:
                optimizer.apply_gradients(zip(grads, variables, strict=True))
        results.append((_weights(K, model), int(to_numpy(K, optimizer.iterations))))
    (ref, ref_steps), (got, got_steps) = results
    assert got_steps == ref_steps == 2
    for a, b in zip(got, ref, strict=True):
        assert_same(a, b)


def test_apply_refuses_what_keras_accepts_and_what_would_train_wrong(keras_ref):
    deliberate("optimizers.apply-every-variable")
    model = _model(tritonnn)
    optimizer = tritonnn.optimizers.Adam(0.1)
    kernel, bias = model.trainable_weights
    with pytest.raises(ValueError, match="must already be built"):
        optimizer.apply(_grads(tritonnn))
    with pytest.raises(ValueError, match="one gradient per variable: 1 gradients"):
        optimizer.apply(_grads(tritonnn), [kernel])
    optimizer.build([kernel, bias])
    before = _weights(tritonnn, model)
    with pytest.raises(ValueError, match="gradient for each of them"):
        optimizer.apply([torch.zeros(3, 2)], [kernel])  # Keras updates the kernel alone
    with pytest.raises(ValueError, match="is None"):
        optimizer.apply([torch.zeros(3, 2), None], [kernel, bias])  # Keras skips the bias
    with pytest.raises(ValueError, match=r"has shape \(2, 3\), but the variable has shape \(3, 2\)"):
        optimizer.apply([torch.zeros(2, 3), torch.zeros(2)])  # would broadcast into the buffer in torch
    optimizer.apply([])  # an empty list is a no-op, as in Keras
    assert int(optimizer.iterations) == 0
    for a, b in zip(_weights(tritonnn, model), before, strict=True):
        np.testing.assert_array_equal(a, b)
