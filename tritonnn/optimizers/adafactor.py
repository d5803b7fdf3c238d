"""Keras 3's ``Adafactor`` (factored second moments for variables of two or more dimensions, a relative step size
and RMS clipping of the update) over the flat buffers, with the factored moments in one more buffer of their own."""

from __future__ import annotations

import math

import torch

from .optimizer import Optimizer
from .per_variable import PerVariableUpdate, split_views


def _rms(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.mean(torch.square(x)))


class Adafactor(Optimizer):
    """Keras' Adafactor. With ``t = iterations + 1``, ``rho = min(lr, 1 / sqrt(t))``,
    ``beta_2_t = 1 - t^beta_2_decay`` and ``G = g^2 + epsilon_1``, for each variable ``w``:

    - two or more dimensions: ``r = beta_2_t r + (1 - beta_2_t) mean(G, -1)`` and
      ``c = beta_2_t c + (1 - beta_2_t) mean(G, -2)`` (the factored moments, of shapes ``w.shape[:-1]`` and
      ``w.shape[:-2] + w.shape[-1:]``), then ``v = (r / mean(r, -1))[..., None] * c[..., None, :]``;
    - fewer: ``v = beta_2_t v + (1 - beta_2_t) G``;

    then ``u = g / sqrt(v)``, ``u /= max(1, rms(u) / clip_threshold)`` and
    ``w -= max(epsilon_2, rms(w)) * rho * u`` (``rms(w)`` of the weight before this update, after weight decay).

    ``relative_step``: as in Keras, the rate is ``min(lr, 1 / sqrt(t))`` whatever its value (Keras takes that
    minimum once more when it is set, which changes nothing); it is kept for the config.

    ``v`` is kept for every variable (Keras' ``velocities``: a flat state buffer); ``r`` and ``c`` of every
    variable of two or more dimensions share one flat buffer of their own (``state_dict()["factored_moments"]``:
    each variable's ``r`` then ``c``, in the order of the parameters). Keras also makes two scalar placeholder
    variables per variable of fewer dimensions; they hold nothing and exist here only in the count of
    ``optimizer.variables`` that ``model.summary()`` prints.

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        beta_2_decay: Defaults to -0.8.
        epsilon_1: Defaults to 1e-30.
        epsilon_2: Defaults to 1e-3.
        clip_threshold: Defaults to 1.0.
        relative_step: Defaults to True.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, name)
    """

    _rule = "adafactor"

    def __init__(self, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3, clip_threshold=1.0,
                 relative_step=True, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        for key, value in (
            ("beta_2_decay", beta_2_decay),
            ("epsilon_1", epsilon_1),
            ("epsilon_2", epsilon_2),
            ("clip_threshold", clip_threshold),
        ):
            if not isinstance(value, (int, float)):  # Keras' first step raises ValueError ("Invalid dtype")
                raise ValueError(f"Expected `{key}` a float. Received: {key}={value!r}")
        self.beta_2_decay = beta_2_decay
        self.epsilon_1 = epsilon_1
        self.epsilon_2 = epsilon_2
        self.clip_threshold = clip_threshold
        self.relative_step = relative_step
        self._factored: torch.Tensor | None = None
        self._factored_shapes: list[tuple[tuple[int, ...], tuple[int, ...]] | None] = []

    def _state_names(self):
        return ("velocities",)

    @property
    def _scalar_variables(self) -> int:
        """The elements of Keras' factored variables: ``r`` and ``c`` of each variable of two or more dimensions,
        and the two scalar placeholders of each other one (``model.summary()``'s optimizer count)."""
        shapes = [tuple(p.shape) for p in self.params]
        return sum(2 if len(s) < 2 else math.prod(s[:-1]) + math.prod(s[:-2] + s[-1:]) for s in shapes)

    def _prepare_update(self):
        shapes = [tuple(p.shape) for p in self.params]
        self._factored_shapes = [None if len(s) < 2 else (s[:-1], s[:-2] + s[-1:]) for s in shapes]
        n_factored = sum(math.prod(rc[0]) + math.prod(rc[1]) for rc in self._factored_shapes if rc is not None)
        self._factored = torch.zeros(n_factored, dtype=torch.float32, device=self.flat_param.device)
        factored_shapes = list(self._factored_shapes)
        decay, eps1, eps2 = float(self.beta_2_decay), float(self.epsilon_1), float(self.epsilon_2)
        threshold = float(self.clip_threshold)

        def rule(p, g, states, lr, t):
            (v, factored) = states
            rho = torch.minimum(lr, 1.0 / torch.sqrt(t))
            beta_2_t = 1.0 - torch.pow(t, decay)
            rest = 1.0 - beta_2_t
            square = g * g + eps1  # Keras' regulated_grad_square
            offset = 0
            views = zip(
                split_views(p, shapes), split_views(g, shapes), split_views(square, shapes),
                split_views(v, shapes), factored_shapes, strict=True,
            )  # fmt: skip
            for pv, gv, sq, vv, rc in views:
                alpha = torch.clamp_min(_rms(pv), eps2) * rho  # max(epsilon_2, rms(w)) rho
                if rc is None:
                    vv.copy_(beta_2_t * vv + rest * sq)
                else:
                    (r_shape, c_shape) = rc
                    nr, nc = math.prod(r_shape), math.prod(c_shape)
                    r = factored[offset : offset + nr].view(r_shape)
                    c = factored[offset + nr : offset + nr + nc].view(c_shape)
                    offset += nr + nc
                    r.copy_(beta_2_t * r + rest * torch.mean(sq, dim=-1))
                    c.copy_(beta_2_t * c + rest * torch.mean(sq, dim=-2))
                    vv.copy_((r / torch.mean(r, dim=-1, keepdim=True)).unsqueeze(-1) * c.unsqueeze(-2))
                u = gv / torch.sqrt(vv)
                u = u / torch.clamp_min(_rms(u) / threshold, 1.0)
                pv.sub_(alpha * u)

        return PerVariableUpdate(
            rule, self.flat_param, self.flat_grad, (self._state["velocities"],), (self._factored,),
            n_valid=self._n_valid, clip=self._clip, weight_decay=self.weight_decay,
        )  # fmt: skip

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        if self._factored is not None:
            state["factored_moments"] = self._factored.detach().clone()
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if self.built:  # checked before anything is loaded
            if "factored_moments" not in state:
                raise ValueError(
                    "Expected the optimizer state to hold 'factored_moments' (Adafactor's r and c). "
                    "Missing: ['factored_moments']"
                )
            src = state["factored_moments"]
            if tuple(src.shape) != tuple(self._factored.shape):
                raise ValueError(
                    f"Expected state 'factored_moments' of shape {tuple(self._factored.shape)} (the built "
                    f"parameters). Received: {tuple(src.shape)}"
                )
        super().load_state_dict(state)
        if self.built:
            self._factored.copy_(state["factored_moments"])

    def get_config(self):
        return {
            **super().get_config(),
            "beta_2_decay": self.beta_2_decay,
            "epsilon_1": self.epsilon_1,
            "epsilon_2": self.epsilon_2,
            "clip_threshold": self.clip_threshold,
            "relative_step": self.relative_step,
        }
