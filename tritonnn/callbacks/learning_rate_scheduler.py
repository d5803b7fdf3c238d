"""Keras' ``LearningRateScheduler``."""

from __future__ import annotations

from collections.abc import Callable

from .callback import Callback, say


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of every epoch (Keras' ``LearningRateScheduler``).

    Args:
        schedule: a function ``schedule(epoch, lr) -> new_lr`` (or ``schedule(epoch)``), ``epoch`` 0-based and
            ``lr`` the current learning rate as a float.
        verbose: ``0`` silent, ``1`` prints the new rate.

    The rate of each epoch is added to the epoch logs as ``learning_rate``.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"Expected `schedule` to be a callable. Received: schedule={schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if optimizer is None:
            raise ValueError('The model must be compiled: the optimizer has no "learning_rate" to schedule.')
        lr = float(optimizer.learning_rate)
        try:  # new API: schedule(epoch, lr); old API: schedule(epoch)
            new_lr = self.schedule(epoch, lr)
        except TypeError:
            new_lr = self.schedule(epoch)
        if hasattr(new_lr, "item") and getattr(new_lr, "ndim", 1) == 0:
            new_lr = new_lr.item()
        if isinstance(new_lr, bool) or not isinstance(new_lr, (int, float)):
            raise ValueError(
                f"The output of the `schedule` function should be a float. Got: {new_lr!r} (epoch={epoch})"
            )
        optimizer.learning_rate = float(new_lr)
        if self.verbose > 0:
            say(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(new_lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


__all__ = ["LearningRateScheduler"]
