"""Keras' ``ReduceLROnPlateau``."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .callback import Callback, say
from .monitor_callback import check_mode, check_non_negative_int


class ReduceLROnPlateau(Callback):
    """Reduce the learning rate when a quantity has stopped improving (Keras' ``ReduceLROnPlateau``).

    Args:
        monitor: quantity to be monitored. Defaults to ``"val_loss"``.
        factor: the new rate is ``lr * factor``; must be below 1.
        patience: number of epochs with no improvement after which the rate is reduced.
        verbose: ``0`` silent, ``1`` prints each reduction.
        mode: ``"auto"``, ``"min"`` or ``"max"``; ``"auto"`` maximizes quantities whose name contains ``"acc"``
            and minimizes the others, as Keras does.
        min_delta: threshold for measuring the new optimum.
        cooldown: number of epochs to wait after a reduction before counting again.
        min_lr: lower bound on the learning rate.

    The rate of each epoch is added to the epoch logs as ``learning_rate``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 <= factor < 1.0:
            raise ValueError(
                f"ReduceLROnPlateau does not support a factor >= 1.0 (or < 0). Received: factor={factor!r}"
            )
        if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or min_lr < 0:
            raise ValueError(f"Expected `min_lr` to be a non-negative number. Received: min_lr={min_lr!r}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = check_non_negative_int("patience", patience)
        self.cooldown = check_non_negative_int("cooldown", cooldown)
        self.verbose = verbose
        self.mode = check_mode(mode)
        self.min_delta = float(min_delta)
        self.min_lr = float(min_lr)
        self._reset()

    def _reset(self) -> None:
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: a < b - self.min_delta
            self.best = math.inf
        else:
            self.monitor_op = lambda a, b: a > b + self.min_delta
            self.best = -math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(logs)}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > float(np.float32(self.min_lr)):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        say(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


__all__ = ["ReduceLROnPlateau"]
