"""The benchmark models, shared by bench/train.py and bench/plan.py: layer widths, batch size, dropout.

Imports neither tritonnn nor keras at module level: plan.py must set TRITON_INTERPRET before tritonnn is imported,
and train.py's Keras workers import keras under their own KERAS_BACKEND.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    layers: tuple[int, ...]  # input, hidden..., classes
    batch: int
    dropout: float  # a Dropout(rate) after every hidden Dense (relu)


MODELS = {
    "seed": Spec("seed", (64, 32, 10), 32, 0.0),  # the seed's 8x8-digits model
    "classic": Spec("classic", (784, 512, 512, 10), 128, 0.2),  # Keras' classic MNIST MLP
    "wide": Spec("wide", (784, 4096, 4096, 10), 4096, 0.0),
}


def parse_layers(text: str) -> tuple[int, ...]:
    layers = tuple(int(w) for w in text.split(","))
    if len(layers) < 2 or min(layers) < 1:
        raise ValueError(f"--layers needs at least two positive widths (input,...,classes). Received: {text!r}")
    return layers


def build_tritonnn(keras, spec: Spec):
    """The tritonnn (or Keras 3) model: Dense relu (+ Dropout) per hidden width, a linear Dense for the logits,
    Adam(1e-3), sparse categorical cross-entropy from logits. ``keras`` is ``tritonnn`` or ``keras``."""
    stack = [keras.Input(shape=(spec.layers[0],))]
    for width in spec.layers[1:-1]:
        stack.append(keras.layers.Dense(width, activation="relu"))
        if spec.dropout:
            stack.append(keras.layers.Dropout(spec.dropout))
    stack.append(keras.layers.Dense(spec.layers[-1]))
    model = keras.Sequential(stack)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def build_torch(spec: Spec, device: str) -> nn.Sequential:
    """The same model as ``nn.Sequential`` (fp32 master weights; bf16 comes from torch.autocast)."""
    mods: list[nn.Module] = []
    for fan_in, width in zip(spec.layers[:-2], spec.layers[1:-1], strict=True):
        mods += [nn.Linear(fan_in, width), nn.ReLU()]
        if spec.dropout:
            mods.append(nn.Dropout(spec.dropout))
    mods.append(nn.Linear(spec.layers[-2], spec.layers[-1]))
    return nn.Sequential(*mods).to(device)


def torch_adam(model: nn.Module, device: str) -> tuple[torch.optim.Optimizer, str]:
    """Adam(1e-3): fused on CUDA; on CPU the foreach implementation (named in the output)."""
    if device == "cuda":
        return torch.optim.Adam(model.parameters(), lr=1e-3, fused=True), "fused"
    return torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True), "foreach"
