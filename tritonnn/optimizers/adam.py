"""Keras 3's ``Adam`` (and AMSGrad) as one fused update over the flat buffers."""

from __future__ import annotations

from ..kernels import optim as _optim
from .optimizer import Optimizer, check_unit


class Adam(Optimizer):
    """Keras' Adam: ``p -= lr_t * m / (sqrt(v) + epsilon)``, ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``.

    Epsilon is added after the bias correction (PyTorch adds it to the corrected ``sqrt(v_hat)``), default 1e-7.

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        beta_1: Defaults to 0.9.
        beta_2: Defaults to 0.999.
        epsilon: Defaults to 1e-7.
        amsgrad: Defaults to False.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None,
                 **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        check_unit("beta_1", beta_1)
        check_unit("beta_2", beta_2)
        if not isinstance(epsilon, (int, float)) or epsilon < 0:
            raise ValueError(f"Expected `epsilon` a float >= 0. Received: epsilon={epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), amsgrad

    def _state_names(self):
        return ("momentums", "velocities", "velocity_hats") if self.amsgrad else ("momentums", "velocities")

    def _prepare_update(self):
        return _optim.FlatUpdate(
            "adam", self.flat_param, self.flat_grad, self._state["momentums"], self._state["velocities"],
            self._state.get("velocity_hats"), h1=self.beta_1, h2=self.beta_2, epsilon=self.epsilon,
            amsgrad=self.amsgrad, weight_decay=self.weight_decay, clip=self._clip, n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }
