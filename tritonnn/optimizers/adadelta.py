"""Keras 3's ``Adadelta`` as one fused update over the flat buffers."""

from __future__ import annotations

from ..kernels import optim as _optim
from .optimizer import Optimizer, check_non_negative, check_unit


class Adadelta(Optimizer):
    """Keras' Adadelta: ``a = rho a + (1 - rho) g^2``; ``d = -sqrt(s + epsilon) g / sqrt(a + epsilon)``;
    ``s = rho s + (1 - rho) d^2``; ``p += lr d`` (Keras' default learning rate is 0.001, PyTorch's 1.0).

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        rho: float in [0, 1]. Defaults to 0.95.
        epsilon: Defaults to 1e-7.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "adadelta"

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        check_unit("rho", rho, closed=True)
        check_non_negative("epsilon", epsilon)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _state_names(self):
        return ("accumulated_grads", "accumulated_delta_vars")

    def _prepare_update(self):
        return _optim.FlatUpdate(
            "adadelta", self.flat_param, self.flat_grad, self._state["accumulated_grads"],
            self._state["accumulated_delta_vars"], h1=self.rho, epsilon=self.epsilon, weight_decay=self.weight_decay,
            clip=self._clip, n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
