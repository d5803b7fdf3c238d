"""Keras 3's ``Muon`` (momentum orthogonalized by a Newton-Schulz iteration for the 2-D variables, AdamW for the
others) over the flat buffers: the element-wise parts in one pass over the flat buffer, the orthogonalization as
batched matrix products over the 2-D variables of each shape."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import torch

from .optimizer import Optimizer
from .per_variable import PerVariableUpdate, split_views


def _check_float(name: str, value: Any) -> None:
    # Keras' first step casts these to the variable's dtype: "Invalid dtype" (ValueError) for anything else.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Expected `{name}` a float. Received: {name}={value!r}")


def _check_operand(name: str, value: Any, optional: bool = False) -> None:
    # Keras multiplies these with Python numbers and tensors in its step: a TypeError for anything else.
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected `{name}` a float{' or None' if optional else ''}. Received: {name}={value!r}")


def newton_schulz(x: torch.Tensor, steps: int, a: float, b: float, c: float) -> torch.Tensor:
    """Keras' ``zeropower_via_newtonschulz5`` over the last two axes of ``x`` (a batch of matrices of one shape).

    A tall matrix is transposed first (and back at the end); it is divided by its Frobenius norm (+ 1e-7), then
    ``steps`` times ``A = X X^T``, ``X = a X + (b A + c A A) X``: an approximation of the orthogonal factor
    ``U V^T`` of the matrix's SVD.
    """
    if x.dim() < 2:
        raise ValueError(
            f"Expected gradient or momentum to have at least 2 dimensions. Received: shape={tuple(x.shape)}"
        )
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    x = x / (torch.linalg.matrix_norm(x, keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + (c * gram) @ gram) @ x
    return x.mT if tall else x


class Muon(Optimizer):
    """Keras' Muon: a Newton-Schulz orthogonalized momentum step for the 2-D variables, AdamW for the others.

    Which rule a variable gets is Keras' (``_should_use_adamw``), decided once when the optimizer is built: AdamW
    for a variable that is not 2-D, for one whose ``path`` contains ``"embedding"`` (any case) when
    ``exclude_embeddings``, and for one whose ``path`` matches (``re.search``) an entry of ``exclude_layers``
    (iterated as Keras does: a string is its characters); Muon for every other variable. A tensor without a
    ``path`` (a plain ``torch.nn.Parameter``) matches no pattern.

    With ``t = iterations + 1`` and the rate ``lr`` of the step, every variable is first decayed,
    ``w -= w * wd * lr``, with ``wd = weight_decay`` for a Muon variable and ``adam_weight_decay`` for an AdamW
    one (None: no decay). Then

    - Muon: ``m += g + m (momentum - 1)``; ``G = g + momentum m`` with ``nesterov``, else ``m``;
      ``w -= lr O sqrt(max(rows, cols)) rms_rate`` with ``O = newton_schulz(G)`` (:func:`newton_schulz`, with
      ``ns_steps``, ``muon_a``, ``muon_b``, ``muon_c``; ``rms_rate`` None drops the scaling);
    - AdamW, at the rate ``lr * adam_lr_ratio``: ``m += (g - m)(1 - adam_beta_1)``,
      ``v += (g^2 - v)(1 - adam_beta_2)``, ``w -= alpha m / (sqrt(v) + epsilon)`` with
      ``alpha = lr sqrt(1 - adam_beta_2^t) / (1 - adam_beta_1^t)``.

    States: ``momentums`` (every variable) and ``velocities`` (the AdamW variables'; zeros where a variable takes
    the Muon step, which Keras gives no velocity). The Muon variables of one shape are orthogonalized together,
    as one batch of matrix products; everything else is one pass over the flat buffers. No host sync: the step is
    capturable as the fused ones are.

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        adam_beta_1: Defaults to 0.9.
        adam_beta_2: Defaults to 0.999.
        adam_weight_decay: float or None: the AdamW variables' decay. Defaults to 0.004.
        epsilon: AdamW's epsilon. Defaults to 1e-7.
        weight_decay: float or None: the Muon variables' decay. Defaults to 0.004.
        exclude_layers: regular expressions; a variable whose path matches one takes AdamW. Defaults to none.
        exclude_embeddings: Defaults to True.
        muon_a, muon_b, muon_c: the Newton-Schulz coefficients. Default to 3.4445, -4.7750, 2.0315.
        adam_lr_ratio: Defaults to 1.
        momentum: Defaults to 0.95.
        ns_steps: Newton-Schulz iterations. Defaults to 5.
        nesterov: Defaults to True.
        rms_rate: float or None. Defaults to 0.2.
        (and the base arguments: clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, name)
    """

    _rule = "muon"

    def __init__(
        self,
        learning_rate: Any = 0.001,
        adam_beta_1: float = 0.9,
        adam_beta_2: float = 0.999,
        adam_weight_decay: float | None = 0.004,
        epsilon: float = 1e-7,
        weight_decay: float | None = 0.004,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        exclude_layers: Iterable[str] | None = None,
        exclude_embeddings: bool = True,
        muon_a: float = 3.4445,
        muon_b: float = -4.7750,
        muon_c: float = 2.0315,
        adam_lr_ratio: float = 1,
        momentum: float = 0.95,
        ns_steps: int = 5,
        nesterov: bool = True,
        rms_rate: float | None = 0.2,
        **kwargs: Any,
    ):
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps, **kwargs,
        )  # fmt: skip
        for key, value in (("adam_beta_1", adam_beta_1), ("adam_beta_2", adam_beta_2), ("epsilon", epsilon)):
            _check_float(key, value)
        _check_float("adam_lr_ratio", adam_lr_ratio)
        if adam_weight_decay is not None:
            _check_float("adam_weight_decay", adam_weight_decay)
        for key, value in (("muon_a", muon_a), ("muon_b", muon_b), ("muon_c", muon_c), ("momentum", momentum)):
            _check_operand(key, value)
        _check_operand("rms_rate", rms_rate, optional=True)
        if not isinstance(ns_steps, int):  # Keras: range(ns_steps)
            raise TypeError(f"Expected `ns_steps` an integer. Received: ns_steps={ns_steps!r}")
        excluded = exclude_layers or []
        try:
            patterns = list(excluded)
        except TypeError:
            raise TypeError(
                f"Expected `exclude_layers` a list of regular expressions. Received: exclude_layers={exclude_layers!r}"
            ) from None
        for pattern in patterns:
            if not isinstance(pattern, (str, re.Pattern)):
                raise TypeError(
                    "Expected `exclude_layers` a list of regular expressions (strings). Received: "
                    f"exclude_layers={exclude_layers!r}"
                )
        self.adam_beta_1 = adam_beta_1
        self.adam_beta_2 = adam_beta_2
        self.epsilon = epsilon
        self.muon_a = muon_a
        self.muon_b = muon_b
        self.muon_c = muon_c
        self.adam_lr_ratio = adam_lr_ratio
        self.momentum = momentum
        self.ns_steps = ns_steps
        self.nesterov = nesterov
        self.exclude_embeddings = exclude_embeddings
        self.exclude_layers = excluded
        self.adam_weight_decay = adam_weight_decay
        self.rms_rate = rms_rate
        self._adamw: list[bool] = []  # per built parameter: whether it takes the AdamW step

    def _should_use_adamw(self, variable: Any) -> bool:
        """Keras' choice of the AdamW step for ``variable``: not 2-D, an embedding, or a path in ``exclude_layers``."""
        if len(variable.shape) != 2:
            return True
        path = getattr(variable, "path", None)
        if not isinstance(path, str):
            return False  # a plain tensor: no path to match
        if self.exclude_embeddings and "embedding" in path.lower():
            return True
        return any(re.search(keyword, path) for keyword in self.exclude_layers)

    def _state_names(self):
        return ("momentums", "velocities")

    @property
    def _scalar_variables(self) -> int:
        """``model.summary()``'s count: Keras makes no velocity for a Muon variable, and the flat ``velocities``
        buffer (counted per parameter element) spans them too."""
        return -sum(p.numel() for p, adamw in zip(self.params, self._adamw, strict=False) if not adamw)

    def _prepare_update(self):
        shapes = [tuple(p.shape) for p in self.params]
        adamw = [self._should_use_adamw(p) for p in self.params]
        self._adamw = adamw
        device = self.flat_param.device
        sizes = [math.prod(s) for s in shapes]
        any_adamw, any_muon = any(adamw), not all(adamw)
        # Per element: 1 where the variable takes the Muon step (only needed when both rules are present).
        is_muon = None
        if any_adamw and any_muon:
            is_muon = torch.cat(
                [torch.full((n,), not a, dtype=torch.bool, device=device) for n, a in zip(sizes, adamw, strict=True)]
            )
        # Per element weight decay: Keras' weight_decay for the Muon variables, adam_weight_decay for the others.
        decays = [self.adam_weight_decay if a else self.weight_decay for a in adamw]
        decay = None
        if any(d for d in decays):
            decay = torch.cat(
                [
                    torch.full((n,), float(d or 0.0), dtype=torch.float32, device=device)
                    for n, d in zip(sizes, decays, strict=True)
                ]
            )
        # The Muon variables, grouped by shape: each group is orthogonalized as one batch.
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (s, a) in enumerate(zip(shapes, adamw, strict=True)):
            if not a:
                groups.setdefault(s, []).append(i)
        b1, b2, eps = float(self.adam_beta_1), float(self.adam_beta_2), float(self.epsilon)
        ratio, mu, nesterov = float(self.adam_lr_ratio), float(self.momentum), bool(self.nesterov)
        steps, a_, b_, c_ = int(self.ns_steps), float(self.muon_a), float(self.muon_b), float(self.muon_c)
        rms = None if self.rms_rate is None else float(self.rms_rate)

        def rule(p, g, states, lr, t):
            m, v = states
            if decay is not None:
                p.sub_(p * decay * lr)  # Keras: variable - variable * wd * lr
            if is_muon is None:
                m_new = m + (g + m * (mu - 1)) if any_muon else m + (g - m) * (1 - b1)
            else:
                m_new = torch.where(is_muon, m + (g + m * (mu - 1)), m + (g - m) * (1 - b1))
            m.copy_(m_new)
            if any_adamw:
                v_new = v + (g * g - v) * (1 - b2)
                v.copy_(v_new if is_muon is None else torch.where(is_muon, v, v_new))
                lr_adam = lr * ratio
                alpha = lr_adam * torch.sqrt(1 - torch.pow(b2, t)) / (1 - torch.pow(b1, t))
                update = (m * alpha) / (torch.sqrt(v) + eps)
            else:
                update = torch.empty_like(p)
            if any_muon:
                direction = g + mu * m if nesterov else m
                d_views, u_views = split_views(direction, shapes), split_views(update, shapes)
                for (rows, cols), members in groups.items():
                    ortho = newton_schulz(torch.stack([d_views[i] for i in members]), steps, a_, b_, c_)
                    step = lr * ortho
                    if rms is not None:
                        step = step * math.sqrt(max(rows, cols)) * rms
                    for j, i in enumerate(members):
                        u_views[i].copy_(step[j])
            p.sub_(update)

        return PerVariableUpdate(
            rule, self.flat_param, self.flat_grad, (self._state["momentums"], self._state["velocities"]),
            n_valid=self._n_valid, clip=self._clip,
        )  # fmt: skip

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "adam_beta_1": self.adam_beta_1,
            "adam_beta_2": self.adam_beta_2,
            "epsilon": self.epsilon,
            "exclude_layers": self.exclude_layers,
            "muon_a": self.muon_a,
            "muon_b": self.muon_b,
            "muon_c": self.muon_c,
            "adam_lr_ratio": self.adam_lr_ratio,
            "momentum": self.momentum,
            "ns_steps": self.ns_steps,
            "nesterov": self.nesterov,
            "exclude_embeddings": self.exclude_embeddings,
            "adam_weight_decay": self.adam_weight_decay,
            "rms_rate": self.rms_rate,
        }
