"""Keras 3's ``LossScaleOptimizer``: dynamic loss scaling for float16 training, around any optimizer."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..naming import unique_name
from .optimizer import Optimizer
from .registry import deserialize, get, register, serialize


@register
class LossScaleOptimizer(Optimizer):
    """Dynamic loss scaling for float16 training (Keras' ``LossScaleOptimizer``), around any optimizer.

    The loss is multiplied by ``loss_scale`` before the backward pass so that small float16 gradients do not
    flush to zero; ``step()`` divides the flat gradient by the scale, and applies the inner optimizer only when
    every gradient is finite. A step whose gradients overflowed is skipped (parameters, states and the inner
    ``iterations`` unchanged) and the scale halved; after ``dynamic_growth_steps`` good steps in a row the scale
    doubles. ``compile()`` wraps the optimizer in one automatically under the ``"mixed_float16"`` policy, as Keras
    does.

    All of it runs on the device, with no host sync: the scale (float32), the good-step counter and the found-inf
    flag are device tensors; a step is one pass that checks the scaled gradients finite and unscales them
    (``torch._amp_foreach_non_finite_check_and_unscale_``), the inner update masked by the flag (it loads and
    stores nothing on a skipped step), and the scale update (``torch._amp_update_scale_``: Keras' rule, the
    doubling kept only while the doubled scale is finite). So the step is capturable whenever the inner one is.
    Reading ``loss_scale`` or ``skipped_steps`` syncs, once. bfloat16 needs no scaling.
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
        if (
            isinstance(dynamic_growth_steps, bool)
            or not isinstance(dynamic_growth_steps, int)
            or dynamic_growth_steps < 1
        ):
            raise ValueError(
                "Expected `dynamic_growth_steps` a positive integer. "
                f"Received: dynamic_growth_steps={dynamic_growth_steps!r}"
            )
        self.inner_optimizer = get(inner_optimizer)
        self.name = name or unique_name("loss_scale_optimizer")  # Keras' counted automatic name
        self.initial_scale = float(initial_scale)
        self.dynamic_growth_steps = dynamic_growth_steps
        # Keras' dynamic_scale and step_counter (int32: what _amp_update_scale_ keeps), on the host until built.
        self._scale = torch.tensor(self.initial_scale, dtype=torch.float32)
        self._good_steps = torch.zeros((), dtype=torch.int32)
        self._skipped = torch.zeros((), dtype=torch.float64)
        self._found_inf: torch.Tensor | None = None
        self._inv_scale: torch.Tensor | None = None
        # A power-of-two scale stays one (x2, x0.5), and multiplying by its reciprocal is then exactly Keras'
        # division: the finite check and the unscaling are one pass. Any other scale is divided afterwards.
        self._exact_reciprocal = math.frexp(self.initial_scale)[0] == 0.5

    # The flat buffers, the rate and the step count are the inner optimizer's.
    built = property(lambda self: self.inner_optimizer.built)
    params = property(lambda self: self.inner_optimizer.params)
    flat_param = property(lambda self: self.inner_optimizer.flat_param)
    flat_grad = property(lambda self: self.inner_optimizer.flat_grad)
    flat_grads = property(lambda self: self.inner_optimizer.flat_grads)
    iterations = property(lambda self: self.inner_optimizer.iterations)
    variables = property(lambda self: self.inner_optimizer.variables)
    capture_blocker = property(lambda self: self.inner_optimizer.capture_blocker)

    @property
    def learning_rate(self) -> float:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self.inner_optimizer.learning_rate = value

    @property
    def loss_scale(self) -> float:
        """The current scale (read from the device: one sync)."""
        return float(self._scale)

    @property
    def skipped_steps(self) -> int:
        """Steps skipped for non-finite gradients since this optimizer was built (read from the device)."""
        return int(self._skipped)

    def build(self, params: list[torch.nn.Parameter]) -> None:
        self.inner_optimizer.build(params)
        device = self.inner_optimizer.params[0].device  # a MultiOptimizer has no single flat buffer
        self._scale = self._scale.to(device)  # a scale loaded before build is kept
        self._good_steps = self._good_steps.to(device)
        self._skipped = torch.zeros((), dtype=torch.float64, device=device)
        self._found_inf = torch.zeros((), dtype=torch.float32, device=device)
        self._inv_scale = torch.ones((), dtype=torch.float32, device=device)

    def zero_grad(self) -> None:
        self.inner_optimizer.zero_grad()

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to differentiate: ``loss * loss_scale`` (the device scale: no host value enters the graph)."""
        return loss * self._scale

    @torch.no_grad()
    def step(self, found_inf: torch.Tensor | None = None) -> None:
        """Check the scaled gradients finite and unscale them; apply the inner step masked by the result; double
        or halve the scale. Device ops only (see the class docstring). ``found_inf`` is computed here, not taken."""
        if not self.built:
            raise RuntimeError("Call optimizer.build(params) before optimizer.step()")
        if found_inf is not None:
            raise ValueError("LossScaleOptimizer.step() finds non-finite gradients itself: call it without found_inf")
        inner = self.inner_optimizer
        inner._sync_views()  # a gradient replaced behind the optimizer's back is checked and unscaled too
        grads = inner.flat_grads  # one flat buffer; a MultiOptimizer's sub-optimizers' buffers
        found = self._found_inf
        found.zero_()
        if self._exact_reciprocal:
            torch.reciprocal(self._scale, out=self._inv_scale)
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found, self._inv_scale)
        else:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found, self._inv_scale)  # checks only (x1)
            torch._foreach_div_(grads, self._scale)
        inner.step(found_inf=found)
        # Keras: finite -> step_counter == growth - 1 ? (counter 0, scale x2) : counter + 1; else counter 0, x0.5.
        torch._amp_update_scale_(self._scale, self._good_steps, found, 2.0, 0.5, self.dynamic_growth_steps)
        self._skipped.add_(found)

    def finalize_variable_values(self, var_list: Any) -> None:
        """The inner optimizer's (Keras': EMA's weights written into ``var_list`` at the end of ``fit``)."""
        self.inner_optimizer.finalize_variable_values(var_list)

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
        state["loss_scale"] = torch.tensor(float(self._scale), dtype=torch.float64)
        state["loss_scale_good_steps"] = torch.tensor(int(self._good_steps), dtype=torch.int64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        if "loss_scale" in state:
            self._scale.fill_(float(state.pop("loss_scale")))
        if "loss_scale_good_steps" in state:
            self._good_steps.fill_(int(state.pop("loss_scale_good_steps")))
        self.inner_optimizer.load_state_dict(state)

    def __repr__(self) -> str:
        return f"<LossScaleOptimizer scale={self.loss_scale} inner={self.inner_optimizer!r}>"
