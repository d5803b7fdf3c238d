"""Which neighbouring layers run as one fused kernel in training, asked of the layers themselves.

Today's rule: a layer that can take a dropout into its epilogue (it has ``call_with_dropout(inputs, rate,
seed)``: ``Dense``) followed by a dropout layer that can be fused (its ``fusable_dropout_rate()`` is not None: a
plain ``Dropout`` with ``0 < rate < 1`` and no ``noise_shape``) runs as one fused kernel whose mask is
bit-identical to the standalone dropout's on the same backend. Both containers use it: ``Sequential`` for
consecutive layers, ``Functional`` for a node whose only consumer is such a dropout. Outside training every layer
runs on its own.

Which seed a dropout draws, fused or not, is decided here too (:func:`dropout_seed`): the next int of its host
stream, or, for a layer whose ``device_seeds`` is on, the next seed of its stream as a tensor on the input's device
(graph-capturable: nothing is read on the host).
"""

from __future__ import annotations

from typing import Any

import torch

from .layer import Layer


def takes_dropout(layer: Layer) -> bool:
    """Whether ``layer`` can run a following dropout in its own kernel."""
    return callable(getattr(layer, "call_with_dropout", None))


def dropout_rate(layer: Layer) -> float | None:
    """The rate at which ``layer`` may be fused into the layer before it, or None when it is not such a dropout."""
    ask = getattr(layer, "fusable_dropout_rate", None)
    return ask() if callable(ask) else None


def fuses(layer: Layer, following: Layer | None) -> bool:
    """Whether ``layer`` then ``following`` run as one fused kernel in training."""
    return following is not None and takes_dropout(layer) and dropout_rate(following) is not None


def dropout_seed(dropout: Layer, device: torch.device) -> int | torch.Tensor:
    """The next mask seed of ``dropout``'s stream for a training call on ``device``: a device seed (a fresh 0-dim
    int64 tensor there, ``next_seed_tensor``) when the layer's ``device_seeds`` is on, else the int ``next_seed()``.
    The one rule for ``Dropout.call`` and the fused path alike."""
    if getattr(dropout, "device_seeds", False):
        return dropout.next_seed_tensor(device)
    return dropout.next_seed()


def call_fused(layer: Layer, following: Layer, inputs: Any) -> torch.Tensor:
    """``following(layer(inputs), training=True)`` as one kernel; draws the dropout's next seed
    (:func:`dropout_seed`), as its own call would."""
    rate = dropout_rate(following)
    inputs = layer._autocast(inputs)
    return layer.call_with_dropout(inputs, rate, dropout_seed(following, inputs.device))


def sequential_plan(layers: list[Layer], training: bool | None) -> list[tuple[Layer, Layer | None]]:
    """The layers of a stack grouped into steps: ``(layer, None)`` runs alone, ``(layer, dropout)`` fused."""
    plan: list[tuple[Layer, Layer | None]] = []
    i = 0
    while i < len(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if training and fuses(layers[i], nxt):
            plan.append((layers[i], nxt))
            i += 2
        else:
            plan.append((layers[i], None))
            i += 1
    return plan
