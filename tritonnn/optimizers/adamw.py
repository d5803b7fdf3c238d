"""Keras 3's ``AdamW``: ``Adam`` with decoupled weight decay (default 0.004)."""

from __future__ import annotations

from .adam import Adam


class AdamW(Adam):
    """Keras' AdamW: Adam with decoupled weight decay ``p -= p * weight_decay * lr`` (default 0.004; PyTorch's
    ``torch.optim.AdamW`` defaults to 0.01 and epsilon 1e-8)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, name=None,
                 **kwargs):  # fmt: skip
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, name, **kwargs)  # fmt: skip
