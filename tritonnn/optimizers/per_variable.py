"""The step of a rule that needs per-variable reductions (``Lamb``'s trust ratio, ``Adafactor``'s factored second
moments and RMS clipping), over the optimizer's flat buffers.

The fused kernel of ``tritonnn.kernels.optim`` is element-wise: each element's update reads only that element's
states. ``Lamb`` scales a variable's whole update by the ratio of two of that variable's norms, and ``Adafactor``
reduces a variable's squared gradient over its last two axes, so neither fits it. ``PerVariableUpdate`` stands in
for the kernel's ``FlatUpdate`` (the same interface, which ``Optimizer`` drives): it keeps the step's scalars, the
rate and the count, on the device in one float64 vector (``lr`` and ``step`` are 0-d views of it), clips the
gradient and decays the weights as Keras does (``BaseOptimizer._clip_gradients`` and torch's
``_apply_weight_decay``: ``p *= 1 - weight_decay * lr``), and calls the rule with torch ops on the real elements of
the flat buffers (the padding is never touched). A rule reads the per-variable pieces as views (``split``) of those
buffers, so the element-wise parts of its update run once over the flat buffer and only the reductions run per
variable (``torch._foreach_norm`` where a norm is all it needs).

Everything reads the device scalars through tensors: no host sync and no host value that changes between steps,
so the step is capturable (``Optimizer.capture_blocker``) as the fused ones are. ``found_inf`` (dynamic loss
scaling's skipped step) runs the rule on copies and keeps them only where the flag is 0, as the fused torch path
does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..kernels import optim as _optim

# rule(param, grad, states, lr, t): one update in place. ``param``, ``grad`` and each of ``states`` are the real
# elements of the flat buffers (or copies of them), ``lr`` and ``t`` (the 1-based step) 0-d float32 tensors.
Rule = Callable[[torch.Tensor, torch.Tensor, Sequence[torch.Tensor], torch.Tensor, torch.Tensor], None]


class PerVariableUpdate:
    """One rule with per-variable reductions over fixed flat buffers; each call is one step (see the module).

    Args:
        rule: the update (see ``Rule``): called with the first ``n_valid`` elements of ``param``, of the clipped
            gradient and of each flat state in ``states``, and with every tensor of ``extra`` as it is (Adafactor's
            factored moments).
        param, grad: the optimizer's flat fp32 buffers.
        states: flat fp32 state buffers of ``param``'s size.
        extra: other state tensors the rule updates in place (copied and masked like the others under
            ``found_inf``).
        n_valid: the elements that are parameters (the rest is padding).
        clip: Keras' gradient clipping (``tritonnn.kernels.optim.GradClip``) or None.
        weight_decay: float or None.
    """

    def __init__(
        self,
        rule: Rule,
        param: torch.Tensor,
        grad: torch.Tensor,
        states: Sequence[torch.Tensor] = (),
        extra: Sequence[torch.Tensor] = (),
        *,
        n_valid: int,
        clip: _optim.GradClip | None = None,
        weight_decay: float | None = None,
    ):
        self.rule, self.param, self.grad = rule, param, grad
        self.states, self.extra = tuple(states), tuple(extra)
        self.n_valid, self.clip = int(n_valid), clip
        self.weight_decay = float(weight_decay) if weight_decay else None
        self.device = param.device
        f64 = dict(dtype=torch.float64, device=self.device)
        self.scalars = torch.tensor([0.0, 0.0], **f64)  # [lr, steps taken]
        self.lr, self.step = self.scalars[0], self.scalars[1]
        self._count = torch.tensor([0.0, 1.0], **f64)

    def set_step(self, value: int | torch.Tensor) -> None:
        """Set the count of steps taken (an int from the host, or a 0-d tensor on the device, copied there)."""
        if isinstance(value, torch.Tensor):
            self.step.copy_(value)
        else:
            self.step.fill_(float(value))

    @torch.no_grad()
    def __call__(self, found_inf: torch.Tensor | None = None) -> None:
        if found_inf is None:
            self.scalars.add_(self._count)
        else:
            self.scalars.add_(self._count * (found_inf == 0))
        k = self.n_valid
        grad = _optim.clip_gradient(self.grad, self.clip)[:k]  # a temporary when clipping; never written back
        buffers = (self.param[:k], *(s[:k] for s in self.states), *self.extra)
        work = buffers if found_inf is None else tuple(b.clone() for b in buffers)
        lr = self.lr.to(torch.float32)
        t = self.step.to(torch.float32)
        p = work[0]
        if self.weight_decay:
            p.mul_(1.0 - self.weight_decay * lr)  # Keras on torch: variable *= 1 - weight_decay * lr
        self.rule(p, grad, work[1:], lr, t)
        if found_inf is not None:
            keep = found_inf == 0
            for b, w in zip(buffers, work, strict=True):
                torch.where(keep, w, b, out=b)


def split_views(flat: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """``flat`` (the real elements of a flat buffer) as one view per variable, in ``shapes``."""
    sizes = [_numel(s) for s in shapes]
    return [part.view(shape) for part, shape in zip(flat.split(sizes), shapes, strict=True)]


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
