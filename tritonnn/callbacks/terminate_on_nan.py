"""Keras' ``TerminateOnNaN``."""

from __future__ import annotations

import math

from .callback import Callback


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite (Keras' ``TerminateOnNaN``).

    Args:
        raise_error: ``False`` (default) stops gracefully with ``model.stop_training = True``, so ``on_train_end``
            still runs; ``True`` raises a ``RuntimeError`` at once.

    It reads the loss after every batch, which waits for the device each step.
    """

    def __init__(self, raise_error: bool = False) -> None:
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            if self.raise_error:
                raise RuntimeError(
                    f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. Terminating training "
                    "immediately."
                )
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


__all__ = ["TerminateOnNaN"]
