"""Keras 3's ``Adagrad`` as one fused update over the flat buffers."""

from __future__ import annotations

from ..kernels import optim as _optim
from .optimizer import Optimizer, check_non_negative


class Adagrad(Optimizer):
    """Keras' Adagrad: ``a += g^2``; ``p -= lr g / sqrt(a + epsilon)``, the accumulator ``a`` starting at
    ``initial_accumulator_value`` (epsilon inside the root; PyTorch: ``sqrt(a) + eps``, accumulator from 0).

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        initial_accumulator_value: the accumulators' starting value, >= 0. Defaults to 0.1.
        epsilon: Defaults to 1e-7.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        check_non_negative("initial_accumulator_value", initial_accumulator_value)
        check_non_negative("epsilon", epsilon)
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)

    def _state_names(self):
        return ("accumulators",)

    def _state_initial_value(self, name):
        return self.initial_accumulator_value

    def _prepare_update(self):
        return _optim.FlatUpdate(
            "adagrad", self.flat_param, self.flat_grad, self._state["accumulators"], epsilon=self.epsilon,
            weight_decay=self.weight_decay, clip=self._clip, n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }
