"""Keras 3 optimizers over flat fp32 buffers.

An optimizer owns its model's trainable parameters: ``build(params)`` copies them into one contiguous fp32 buffer
and makes every parameter (and its ``.grad``) a view into it, so one kernel launch updates every parameter and
zeroing the gradients is one fill.
"""

from __future__ import annotations

import torch

from . import kernels


class Optimizer:
    """Base class: flat parameter, gradient and state buffers; subclasses give the update."""

    def __init__(self, learning_rate: float = 0.001, name: str | None = None):
        self.learning_rate = float(learning_rate)
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self.params: list[torch.nn.Parameter] = []
        self.flat_param: torch.Tensor | None = None
        self.flat_grad: torch.Tensor | None = None

    @property
    def built(self) -> bool:
        return self.flat_param is not None

    def _state_names(self) -> tuple[str, ...]:
        return ()

    @torch.no_grad()
    def build(self, params: list[torch.nn.Parameter]) -> None:
        """Move ``params`` into one flat fp32 buffer (params and grads become views into it)."""
        if not params:
            raise ValueError("The optimizer received no trainable parameters to update")
        device = params[0].device
        for p in params:
            if p.device != device:
                raise ValueError(f"All parameters must be on one device. Received {p.device} and {device}")
            if p.dtype != torch.float32:
                raise ValueError(f"Parameters must be float32 master weights. Received {p.dtype}")
        total = sum(p.numel() for p in params)
        self.flat_param = torch.empty(total, dtype=torch.float32, device=device)
        self.flat_grad = torch.zeros(total, dtype=torch.float32, device=device)
        offset = 0
        for p in params:
            n = p.numel()
            self.flat_param[offset : offset + n].copy_(p.reshape(-1))
            p.data = self.flat_param[offset : offset + n].view_as(p)
            p.grad = self.flat_grad[offset : offset + n].view_as(p)
            offset += n
        self.params = list(params)
        for name in self._state_names():
            setattr(self, name, torch.zeros_like(self.flat_param))

    def zero_grad(self) -> None:
        """One fill of the flat gradient buffer."""
        assert self.flat_grad is not None
        self.flat_grad.zero_()

    def step(self) -> None:
        """Apply one update to every parameter from its gradient."""
        if not self.built:
            raise RuntimeError("Call optimizer.build(params) before optimizer.step()")
        self.iterations += 1
        self._update()

    def _update(self) -> None:
        raise NotImplementedError


class Adam(Optimizer):
    """Keras' Adam: ``epsilon`` is added to ``sqrt(v)`` after the bias correction is folded into the rate."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        name: str | None = None,
    ):
        super().__init__(learning_rate, name=name)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _state_names(self) -> tuple[str, ...]:
        return ("m", "v")

    def _update(self) -> None:
        kernels.adam_(
            self.flat_param,
            self.flat_grad,
            self.m,
            self.v,
            step=self.iterations,
            lr=self.learning_rate,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
        )


_BY_NAME = {"adam": Adam}


def get(identifier: str | Optimizer) -> Optimizer:
    """An optimizer from a Keras string identifier (``"adam"``) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer: {identifier!r}. Valid names: {sorted(_BY_NAME)}")
