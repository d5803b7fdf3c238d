"""Keras 3's ``Ftrl`` (Follow The Regularized Leader) as one fused update over the flat buffers."""

from __future__ import annotations

from typing import Any

from ..kernels import optim as _optim
from .optimizer import Optimizer


def _check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Expected `{name}` a float. Received: {name}={value!r}")


class Ftrl(Optimizer):
    """Keras' Ftrl: with ``n' = n + g^2`` (``n`` from ``initial_accumulator_value``), ``c = -learning_rate_power``,
    ``z += g + 2 l2_shrinkage p - (n'^c - n^c) / lr p``, ``q = n'^c / lr + 2 (l2 + beta / (2 lr))``,
    ``p = (clip(z, -l1, l1) - z) / q``.

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        learning_rate_power: float <= 0. Defaults to -0.5.
        initial_accumulator_value: float >= 0. Defaults to 0.1.
        l1_regularization_strength: float >= 0. Defaults to 0.0.
        l2_regularization_strength: float >= 0. Defaults to 0.0.
        l2_shrinkage_regularization_strength: float >= 0. Defaults to 0.0.
        beta: Defaults to 0.0.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "ftrl"

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        for key, value in (
            ("learning_rate_power", learning_rate_power),
            ("initial_accumulator_value", initial_accumulator_value),
            ("l1_regularization_strength", l1_regularization_strength),
            ("l2_regularization_strength", l2_regularization_strength),
            ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength),
            ("beta", beta),
        ):
            _check_number(key, value)
        # Keras' checks and messages.
        if initial_accumulator_value < 0.0:
            raise ValueError(
                "`initial_accumulator_value` needs to be positive or zero. "
                f"Received: initial_accumulator_value={initial_accumulator_value}."
            )
        if learning_rate_power > 0.0:
            raise ValueError(
                "`learning_rate_power` needs to be negative or zero. Received: "
                f"learning_rate_power={learning_rate_power}."
            )
        for key, value in (
            ("l1_regularization_strength", l1_regularization_strength),
            ("l2_regularization_strength", l2_regularization_strength),
            ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength),
        ):
            if value < 0.0:
                raise ValueError(f"`{key}` needs to be positive or zero. Received: {key}={value}.")
        self.learning_rate_power = float(learning_rate_power)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.l1_regularization_strength = float(l1_regularization_strength)
        self.l2_regularization_strength = float(l2_regularization_strength)
        self.l2_shrinkage_regularization_strength = float(l2_shrinkage_regularization_strength)
        self.beta = float(beta)

    def _state_names(self):
        return ("accumulators", "linears")

    def _state_initial_value(self, name):
        return self.initial_accumulator_value if name == "accumulators" else 0.0

    def _prepare_update(self):
        return _optim.FlatUpdate(
            "ftrl", self.flat_param, self.flat_grad, self._state["accumulators"], self._state["linears"],
            h1=self.learning_rate_power, h2=self.l1_regularization_strength, h3=self.l2_regularization_strength,
            h4=self.l2_shrinkage_regularization_strength, h5=self.beta, weight_decay=self.weight_decay,
            clip=self._clip, n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1_regularization_strength,
            "l2_regularization_strength": self.l2_regularization_strength,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
            "beta": self.beta,
        }
