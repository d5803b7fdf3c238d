"""Keras 3's ``Nadam`` (Adam with Nesterov momentum and Dozat's momentum schedule) as one fused update over the
flat buffers, its running product ``u_product`` a scalar on the device."""

from __future__ import annotations

import torch

from ..kernels import optim as _optim
from .optimizer import Optimizer, check_non_negative, check_unit


class Nadam(Optimizer):
    """Keras' Nadam: with ``u_t = beta_1 (1 - 0.5 * 0.96^t)`` and ``u_product`` the product ``u_1 ... u_t``,
    ``m_hat = u_{t+1} m / (1 - u_product u_{t+1}) + (1 - u_t) g / (1 - u_product)``, ``v_hat = v / (1 - beta_2^t)``,
    ``p -= lr m_hat / (sqrt(v_hat) + epsilon)``.

    ``u_product`` (Keras' ``_u_product`` variable) lives on the device beside the step count and is advanced by each
    step with device ops, so a captured step replays exactly; ``state_dict`` holds it under ``"u_product"``.

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        beta_1: float in [0, 1). Defaults to 0.9.
        beta_2: float in [0, 1). Defaults to 0.999.
        epsilon: Defaults to 1e-7.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "nadam"
    _scalar_variables = 1  # u_product, one of Keras' optimizer.variables

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        check_unit("beta_1", beta_1)
        check_unit("beta_2", beta_2)
        check_non_negative("epsilon", epsilon)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _state_names(self):
        return ("momentums", "velocities")

    def _prepare_update(self):
        return _optim.FlatUpdate(
            "nadam", self.flat_param, self.flat_grad, self._state["momentums"], self._state["velocities"],
            h1=self.beta_1, h2=self.beta_2, epsilon=self.epsilon, weight_decay=self.weight_decay, clip=self._clip,
            n_valid=self._n_valid,
        )  # fmt: skip

    @property
    def u_product(self) -> float:
        """Keras' ``u_product``: the product of ``u_i`` over the steps taken (1 before the first; a sync)."""
        return 1.0 if self._flat_update is None else float(self._flat_update.u_product)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        state["u_product"] = torch.tensor(self.u_product, dtype=torch.float64)
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        if self.built:
            if "u_product" in state:
                self._flat_update.u_product.copy_(state["u_product"])
            else:  # a state without it: the product that the restored iterations imply
                self._flat_update.u_product.fill_(_optim.nadam_u_product(self.beta_1, self.iterations))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
