"""Keras 3's ``Lamb`` (Adam's moments, each variable's update scaled by a layer-wise trust ratio) over the flat
buffers: the moments in one pass over the flat buffer, the two norms of each variable with ``torch._foreach_norm``."""

from __future__ import annotations

import torch

from .optimizer import Optimizer
from .per_variable import PerVariableUpdate, split_views


class Lamb(Optimizer):
    """Keras' Lamb: with ``t = iterations + 1``, ``m += (g - m)(1 - beta_1)``, ``v += (g^2 - v)(1 - beta_2)``,
    ``u = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)``, and per variable
    ``ratio = ||w|| / ||u||`` (1 when either norm is 0): ``w -= ratio * lr * u``.

    The norms are of the whole variable (the weight after weight decay, and its update); Keras' rule, which
    leaves out the paper's weight decay term inside the update (``weight_decay`` is Keras' decoupled one, applied
    before the rule as for every optimizer).

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        beta_1: Defaults to 0.9.
        beta_2: Defaults to 0.999.
        epsilon: Defaults to 1e-7.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, name)
    """

    _rule = "lamb"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        # Keras checks none of the three, and its first step raises ValueError ("Invalid dtype") for one that is
        # not a number: the same error here, at once.
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2), ("epsilon", epsilon)):
            if not isinstance(value, (int, float)):
                raise ValueError(f"Expected `{key}` a float. Received: {key}={value!r}")
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _state_names(self):
        return ("momentums", "velocities")

    def _prepare_update(self):
        shapes = [tuple(p.shape) for p in self.params]
        b1, b2, eps = float(self.beta_1), float(self.beta_2), float(self.epsilon)

        def rule(p, g, states, lr, t):
            m, v = states
            m.add_((g - m) * (1 - b1))
            v.add_((g * g - v) * (1 - b2))
            bc1 = 1.0 - torch.pow(b1, t)
            bc2 = 1.0 - torch.pow(b2, t)
            update = (m / bc1) / (torch.sqrt(v / bc2) + eps)
            update_views = split_views(update, shapes)
            w_norm = torch.stack(torch._foreach_norm(split_views(p, shapes)))
            u_norm = torch.stack(torch._foreach_norm(update_views))
            ones = torch.ones_like(w_norm)
            ratio = torch.where(w_norm > 0, torch.where(u_norm > 0, w_norm / u_norm, ones), ones)
            torch._foreach_mul_(update_views, list((ratio * lr).unbind(0)))  # ratio * lr * u, per variable
            p.sub_(update)

        return PerVariableUpdate(
            rule, self.flat_param, self.flat_grad, (self._state["momentums"], self._state["velocities"]),
            n_valid=self._n_valid, clip=self._clip, weight_decay=self.weight_decay,
        )  # fmt: skip

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
