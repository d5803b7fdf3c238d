"""Keras 3's ``ScheduleFreeAdamW`` (Defazio et al., 2024: an interpolation of an Adam-normalised SGD sequence and its
running average, in place of a learning-rate schedule) over the flat buffers, in one pass of torch ops."""

from __future__ import annotations

from typing import Any

import torch

from .optimizer import Optimizer
from .per_variable import PerVariableUpdate


class ScheduleFreeAdamW(Optimizer):
    """Keras' Schedule-Free AdamW. The model's weights are the sequence ``y``; the optimizer keeps ``z``
    (``momentums``, which starts at the weights when the optimizer is built) and Adam's second moment ``v``
    (``velocities``); the average ``x`` is not stored but recovered from ``y`` and ``z``.

    With ``t = iterations + 1`` and the rate ``lr`` of the step (times ``min(t / warmup_steps, 1)`` when
    ``warmup_steps > 0``), after the decoupled weight decay of every optimizer (``y *= 1 - weight_decay * lr``):
    ``v += (g^2 - v)(1 - beta_2)``, ``z -= lr g / (sqrt(v / (1 - beta_2^t)) + epsilon)``, then
    ``x = (y - (1 - beta_1) z) / beta_1``, ``x = (1 - 1/t) x + z / t`` and ``y = (1 - beta_1) z + beta_1 x``.

    ``x`` is recovered from the ``z`` just updated: that is what Keras computes on its torch backend (its
    ``momentum_old = momentum.value`` is the variable's tensor itself, which the update of ``z`` changes in place),
    and so what tritonnn computes; the paper recovers it from the previous ``z``.

    As in Keras, the weights stay ``y`` for evaluation and prediction too: nothing is swapped in (the paper
    evaluates at ``x``), and ``fit`` leaves ``y`` in the model.

    Args:
        learning_rate: float or schedule. Defaults to 0.0025.
        beta_1: Defaults to 0.9.
        beta_2: Defaults to 0.999.
        epsilon: Defaults to 1e-8.
        warmup_steps: Defaults to 0 (no warmup).
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, name)
    """

    _rule = "schedule_free_adamw"

    def __init__(
        self,
        learning_rate: Any = 0.0025,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        warmup_steps: float = 0,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps, **kwargs,
        )  # fmt: skip
        # Keras checks none of them; its first step raises "Invalid dtype" (ValueError) for a rate that is not a
        # number, and a TypeError comparing a `warmup_steps` that is not one with 0. The same errors here, at once.
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2), ("epsilon", epsilon)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"Expected `{key}` a float. Received: {key}={value!r}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, float)):
            raise TypeError(f"Expected `warmup_steps` a number. Received: warmup_steps={warmup_steps!r}")
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.warmup_steps = warmup_steps

    def _state_names(self):
        return ("momentums", "velocities")

    def _prepare_update(self):
        # z starts at the weights (Keras assigns a copy of each variable to its momentum when it builds); build
        # calls this before it loads a pending state, so a restored z wins.
        self._state["momentums"].copy_(self.flat_param)
        b1, b2, eps = float(self.beta_1), float(self.beta_2), float(self.epsilon)
        warmup = float(self.warmup_steps)

        def rule(y, g, states, lr, t):
            z, v = states
            if warmup > 0:
                lr = lr * torch.clamp_max(t / warmup, 1.0)
            v.add_((g * g - v) * (1 - b2))
            denom = torch.sqrt(v / (1 - torch.pow(b2, t))) + eps
            z.sub_((lr * g) / denom)
            weight = 1.0 / t
            x = (y - (1 - b1) * z) / b1
            x = (1 - weight) * x + weight * z
            y.copy_((1 - b1) * z + b1 * x)

        return PerVariableUpdate(
            rule, self.flat_param, self.flat_grad, (self._state["momentums"], self._state["velocities"]),
            n_valid=self._n_valid, clip=self._clip, weight_decay=self.weight_decay,
        )  # fmt: skip

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "warmup_steps": self.warmup_steps,
        }
