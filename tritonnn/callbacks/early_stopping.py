"""Keras' ``EarlyStopping``."""

from __future__ import annotations

import warnings
from typing import Any

from .callback import say
from .monitor_callback import MonitorCallback, check_non_negative_int


class EarlyStopping(MonitorCallback):
    """Stop training when a monitored quantity has stopped improving (Keras' ``EarlyStopping``).

    Args:
        monitor: quantity to be monitored. Defaults to ``"val_loss"``.
        min_delta: minimum change that counts as an improvement (an absolute change of less than ``min_delta``
            is no improvement). Defaults to ``0``.
        patience: number of epochs with no improvement after which training is stopped. Defaults to ``0``.
        verbose: ``0`` silent, ``1`` prints a message when the callback acts.
        mode: ``"auto"``, ``"min"`` or ``"max"``; ``"auto"`` infers the direction from the quantity (losses and
            errors go down, accuracies go up) and raises when it cannot.
        baseline: baseline value; training stops unless the quantity improves on it within ``patience`` epochs.
        restore_best_weights: restore the weights of the best epoch when training ends (whether it stopped early
            or not, as in Keras 3); otherwise the weights of the last step are kept.
        start_from_epoch: number of warm-up epochs before improvement is monitored.

    Example::

        callback = tritonnn.callbacks.EarlyStopping(monitor="loss", patience=3)
        model.fit(x, y, epochs=100, callbacks=[callback])
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, None, min_delta)
        if baseline is not None and (isinstance(baseline, bool) or not isinstance(baseline, (int, float))):
            raise ValueError(f"Expected `baseline` to be a number or None. Received: baseline={baseline!r}")
        self.patience = check_non_negative_int("patience", patience)
        self.start_from_epoch = check_non_negative_int("start_from_epoch", start_from_epoch)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: list[Any] | None = None

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None
        self.monitor_op = None  # re-inferred, and `best` reset, so that an instance can be reused
        self.best = None

    def _snapshot(self) -> list[Any]:
        return [w.copy() for w in self.model.get_weights()]  # copies: CPU arrays may share the weights' memory

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(logs or {})}",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self._snapshot()  # the first monitored epoch is the best so far
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self._snapshot()
            # The wait restarts only when the value beats both the previous best and the baseline.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            say(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                say(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


__all__ = ["EarlyStopping"]
