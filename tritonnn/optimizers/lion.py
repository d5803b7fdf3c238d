"""Keras 3's ``Lion`` (the sign of an interpolated momentum) as one fused update over the flat buffers."""

from __future__ import annotations

from ..kernels import optim as _optim
from .optimizer import Optimizer, check_unit


class Lion(Optimizer):
    """Keras' Lion: ``p -= lr sign(beta_1 m + (1 - beta_1) g)``; then ``m = beta_2 m + (1 - beta_2) g``.

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        beta_1: float in (0, 1]. Defaults to 0.9.
        beta_2: float in [0, 1]. Defaults to 0.99.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "lion"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        if isinstance(beta_1, bool) or not isinstance(beta_1, (int, float)) or not 0 < beta_1 <= 1:
            raise ValueError(
                "Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates to SignSGD. "
                f"Received: beta_1={beta_1}."
            )
        check_unit("beta_2", beta_2, closed=True)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)

    def _state_names(self):
        return ("momentums",)

    def _prepare_update(self):
        return _optim.FlatUpdate(
            "lion", self.flat_param, self.flat_grad, self._state["momentums"], h1=self.beta_1, h2=self.beta_2,
            weight_decay=self.weight_decay, clip=self._clip, n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
