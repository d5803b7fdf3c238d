"""Keras 3's ``LossScaleOptimizer``: dynamic loss scaling for float16 training, around any optimizer."""

from __future__ import annotations

import math
from typing import Any

import torch

from .optimizer import Optimizer
from .registry import deserialize, get, register, serialize


@register
class LossScaleOptimizer(Optimizer):
    """Dynamic loss scaling for float16 training (Keras' ``LossScaleOptimizer``), around any optimizer.

    The loss is multiplied by ``loss_scale`` before the backward pass so that small float16 gradients do not
    flush to zero; ``step()`` divides the flat gradient by the scale, and applies the inner optimizer only when
    every gradient is finite. A step whose gradients overflowed is skipped and the scale halved; after
    ``dynamic_growth_steps`` good steps in a row the scale doubles. ``compile()`` wraps the optimizer in one
    automatically under the ``"mixed_float16"`` policy, as Keras does.

    Deciding whether to skip reads one flag from the device per step (a host sync); bfloat16 needs no scaling.
    """

    def __init__(
        self,
        inner_optimizer: Any,
        initial_scale: float = 2.0**15,
        dynamic_growth_steps: int = 2000,
        name: str | None = None,
        **kwargs: Any,
    ):
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if isinstance(inner_optimizer, LossScaleOptimizer):
            raise ValueError("LossScaleOptimizer cannot wrap another LossScaleOptimizer")
        if not (isinstance(initial_scale, (int, float)) and math.isfinite(initial_scale) and initial_scale > 0):
            raise ValueError(
                f"Expected `initial_scale` a positive finite float. Received: initial_scale={initial_scale!r}"
            )
        if not isinstance(dynamic_growth_steps, int) or dynamic_growth_steps < 1:
            raise ValueError(
                "Expected `dynamic_growth_steps` a positive integer. "
                f"Received: dynamic_growth_steps={dynamic_growth_steps!r}"
            )
        self.inner_optimizer = get(inner_optimizer)
        self.name = name or "loss_scale_optimizer"
        self.initial_scale = float(initial_scale)
        self.dynamic_growth_steps = dynamic_growth_steps
        self.loss_scale = float(initial_scale)
        self._good_steps = 0
        self.skipped_steps = 0

    # The flat buffers, the rate and the step count are the inner optimizer's.
    built = property(lambda self: self.inner_optimizer.built)
    params = property(lambda self: self.inner_optimizer.params)
    flat_param = property(lambda self: self.inner_optimizer.flat_param)
    flat_grad = property(lambda self: self.inner_optimizer.flat_grad)
    iterations = property(lambda self: self.inner_optimizer.iterations)
    variables = property(lambda self: self.inner_optimizer.variables)

    @property
    def learning_rate(self) -> float:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self.inner_optimizer.learning_rate = value

    def build(self, params: list[torch.nn.Parameter]) -> None:
        self.inner_optimizer.build(params)

    def zero_grad(self) -> None:
        self.inner_optimizer.zero_grad()

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to differentiate: ``loss * loss_scale``."""
        return loss * self.loss_scale

    @torch.no_grad()
    def step(self) -> None:
        """Unscale the gradients; apply the inner step if all are finite, else skip it and halve the scale."""
        if not self.built:
            raise RuntimeError("Call optimizer.build(params) before optimizer.step()")
        grad = self.inner_optimizer.flat_grad
        grad.mul_(1.0 / self.loss_scale)
        if bool(torch.isfinite(grad).all()):
            self.inner_optimizer.step()
            self._good_steps += 1
            if self._good_steps >= self.dynamic_growth_steps:
                self.loss_scale *= 2.0
                self._good_steps = 0
        else:
            self.loss_scale = max(self.loss_scale / 2.0, 1.0)
            self._good_steps = 0
            self.skipped_steps += 1

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inner_optimizer": serialize(self.inner_optimizer),
            "initial_scale": self.initial_scale,
            "dynamic_growth_steps": self.dynamic_growth_steps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> LossScaleOptimizer:
        config = dict(config)
        config["inner_optimizer"] = deserialize(config["inner_optimizer"], custom_objects)
        return cls(**config)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = self.inner_optimizer.state_dict()
        state["loss_scale"] = torch.tensor(self.loss_scale, dtype=torch.float64)
        state["loss_scale_good_steps"] = torch.tensor(self._good_steps, dtype=torch.int64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        if "loss_scale" in state:
            self.loss_scale = float(state.pop("loss_scale"))
        if "loss_scale_good_steps" in state:
            self._good_steps = int(state.pop("loss_scale_good_steps"))
        self.inner_optimizer.load_state_dict(state)

    def __repr__(self) -> str:
        return f"<LossScaleOptimizer scale={self.loss_scale} inner={self.inner_optimizer!r}>"
