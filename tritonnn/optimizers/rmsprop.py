"""Keras 3's ``RMSprop`` (momentum, centered) as one fused update over the flat buffers."""

from __future__ import annotations

from ..kernels import optim as _optim
from .optimizer import Optimizer, check_unit


class RMSprop(Optimizer):
    """Keras' RMSprop: ``v = rho v + (1 - rho) g^2``; ``p -= lr g / sqrt(v + epsilon)`` (epsilon inside the root;
    PyTorch: ``sqrt(v) + eps``, and its ``alpha`` is Keras' ``rho``, default 0.99 there).

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        rho: Defaults to 0.9.
        momentum: Defaults to 0.0 (``mo = momentum * mo + lr g / sqrt(...)``, ``p -= mo``).
        epsilon: Defaults to 1e-7.
        centered: Defaults to False (``v - a^2`` with ``a`` the average gradient).
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        check_unit("rho", rho)
        check_unit("momentum", momentum)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), centered

    def _state_names(self):
        names = ["velocities"]
        if self.momentum > 0:
            names.append("momentums")
        if self.centered:
            names.append("average_gradients")
        return tuple(names)

    def _prepare_update(self):
        return _optim.FlatUpdate(
            "rmsprop", self.flat_param, self.flat_grad, self._state["velocities"], self._state.get("momentums"),
            self._state.get("average_gradients"), h1=self.rho, h2=self.momentum, epsilon=self.epsilon,
            centered=self.centered, weight_decay=self.weight_decay, clip=self._clip, n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }
