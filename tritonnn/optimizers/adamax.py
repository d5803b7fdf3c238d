"""Keras 3's ``Adamax`` (Adam with the infinity norm) as one fused update over the flat buffers."""

from __future__ import annotations

from ..kernels import optim as _optim
from .optimizer import Optimizer, check_non_negative, check_unit


class Adamax(Optimizer):
    """Keras' Adamax: ``m += (g - m)(1 - beta_1)``; ``u = max(beta_2 u, |g|)``;
    ``p -= lr m / ((1 - beta_1^t)(u + epsilon))`` (PyTorch adds eps inside the max instead).

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        beta_1: float in [0, 1). Defaults to 0.9.
        beta_2: float in [0, 1]. Defaults to 0.999.
        epsilon: Defaults to 1e-7.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "adamax"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        check_unit("beta_1", beta_1)
        check_unit("beta_2", beta_2, closed=True)
        check_non_negative("epsilon", epsilon)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _state_names(self):
        return ("m", "u")  # Keras' Adamax._m (momentum) and ._u (the infinity norm)

    def _prepare_update(self):
        return _optim.FlatUpdate(
            "adamax", self.flat_param, self.flat_grad, self._state["m"], self._state["u"], h1=self.beta_1,
            h2=self.beta_2, epsilon=self.epsilon, weight_decay=self.weight_decay, clip=self._clip,
            n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
