"""Keras' ``ModelCheckpoint``, and the check of the ``save_freq`` it shares with ``BackupAndRestore``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

from .. import saving
from .._process import is_chief
from .callback import say, specialize
from .monitor_callback import MonitorCallback


def check_save_freq(save_freq: Any) -> Any:
    if save_freq == "epoch":
        return save_freq
    if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0:
        raise ValueError(f"Expected `save_freq` to be 'epoch' or a positive integer. Received: save_freq={save_freq!r}")
    return save_freq


class ModelCheckpoint(MonitorCallback):
    """Save the model or its weights at some frequency (Keras' ``ModelCheckpoint``).

    Args:
        filepath: where to save; may hold format fields filled from ``epoch`` (1-based), ``batch`` (1-based, with
            an integer ``save_freq``) and the logs, e.g. ``"ckpt/{epoch:02d}-{val_loss:.2f}.keras"``. A full model
            needs a ``.keras`` name; with ``save_weights_only=True``, ``.weights.h5`` or ``.weights.safetensors``.
            Both hold tritonnn's format (see ``tritonnn.saving``).
        monitor: the quantity that decides what is "best". Defaults to ``"val_loss"``.
        verbose: ``0`` silent, ``1`` prints a message when the callback saves or skips.
        save_best_only: save only when the monitored quantity improves on the best so far.
        save_weights_only: save only the weights (and optimizer state), not the whole model.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see ``EarlyStopping``).
        save_freq: ``"epoch"``, or an integer: save after every that many batches.
        initial_value_threshold: the initial "best" value; with ``save_best_only``, a model is saved only if it
            beats it.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, initial_value_threshold, 0)
        if not isinstance(filepath, (str, os.PathLike)):
            raise ValueError(f"Expected `filepath` to be a str or os.PathLike. Received: filepath={filepath!r}")
        self.filepath = os.fspath(filepath)
        suffixes = saving.WEIGHTS_SUFFIXES if save_weights_only else saving.MODEL_SUFFIXES
        if not self.filepath.endswith(suffixes):
            what = "When using `save_weights_only=True`, the" if save_weights_only else "The"
            raise ValueError(
                f"{what} filepath provided must end in {' or '.join(repr(s) for s in suffixes)}. "
                f"Received: filepath={self.filepath}"
            )
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.save_freq = check_save_freq(save_freq)
        self._current_epoch = 0
        self._current_step = 0
        self._batches_since_save = 0
        self._epoch_generator_state = None
        if self.save_freq != "epoch":
            specialize(self, on_train_batch_end=ModelCheckpoint._batch_end)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _batch_end(self, batch, logs=None):
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def _file_path(self, epoch: int, batch: int | None, logs: Mapping[str, Any]) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from e

    def _should_save(self, epoch: int, logs: Mapping[str, Any], filepath: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                say(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                say(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                    f"saving model to {filepath}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            say(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save(self, epoch: int, batch: int | None, logs: Mapping[str, Any] | None) -> None:
        logs = dict(logs or {})
        filepath = self._file_path(epoch, batch, logs)
        if os.path.isdir(filepath):
            raise OSError(
                "Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an existing "
                f"directory: {filepath}"
            )
        if not self._should_save(epoch, logs, filepath) or not is_chief():  # one writer in a data-parallel run
            return
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            saver = getattr(self.model, "save_weights", None) or (
                lambda p, overwrite: saving.save_weights(self.model, p, overwrite)
            )
        else:
            saver = getattr(self.model, "save", None) or (
                lambda p, overwrite: saving.save_model(self.model, p, overwrite)
            )
        saver(filepath, overwrite=True)


__all__ = ["ModelCheckpoint", "check_save_freq"]
