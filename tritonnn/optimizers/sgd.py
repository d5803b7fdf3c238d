"""Keras 3's ``SGD`` (momentum and Nesterov) as one fused update over the flat buffers."""

from __future__ import annotations

from ..kernels import optim as _optim
from .optimizer import Optimizer, check_unit


class SGD(Optimizer):
    """Keras' SGD: ``m = momentum * m - lr * g; p += m`` (nesterov: ``p += momentum * m - lr * g``).

    Args:
        learning_rate: float or schedule. Defaults to 0.01.
        momentum: float in [0, 1]. Defaults to 0.0.
        nesterov: bool. Defaults to False.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        check_unit("momentum", momentum, closed=True)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _state_names(self):
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _prepare_update(self):
        return _optim.FlatUpdate(
            "sgd", self.flat_param, self.flat_grad, self._state.get("momentum_buffer"), h1=self.momentum,
            nesterov=self.nesterov, weight_decay=self.weight_decay, clip=self._clip, n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
