"""Keras' ``BackupAndRestore``: the training state an interrupted ``fit`` resumes from."""

from __future__ import annotations

import base64
import os
from typing import Any

import torch

from .. import saving
from .._process import is_chief
from .callback import Callback, specialize
from .model_checkpoint import check_save_freq


class BackupAndRestore(Callback):
    """Back up the training state so that an interrupted ``fit`` resumes where it stopped (Keras'
    ``BackupAndRestore``).

    At the end of every epoch (or every ``save_freq`` batches) the weights, the optimizer state, the epoch and the
    batches of it already trained are written to ``backup_dir/backup.weights.safetensors`` (atomically: a crash
    mid-write keeps the last backup), with the random state that the rest of the run depends on: torch's global
    generator, fit's shuffle generator as it was when the epoch began (so that the epoch's order is drawn again)
    and each Dropout layer's seed stream. When ``fit`` starts and a backup exists, all of it is restored and
    training resumes at the batch after the last one backed up, so that on CPU a run killed mid-epoch and resumed
    ends with the same weights, bit for bit, as one never interrupted (given the same seed and data). The backup is
    deleted when training ends normally, unless ``delete_checkpoint=False``; an exception leaves it in place.

    Args:
        backup_dir: directory for the backup; not to be shared with other callbacks or runs.
        save_freq: ``"epoch"``, or an integer: back up every that many batches.
        delete_checkpoint: delete the backup when training finishes.
    """

    FILENAME = "backup.weights.safetensors"

    def __init__(
        self, backup_dir: str | os.PathLike, save_freq: str | int = "epoch", delete_checkpoint: bool = True
    ) -> None:
        super().__init__()
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise ValueError(f"Empty `backup_dir` argument passed. Received: backup_dir={backup_dir!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = check_save_freq(save_freq)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._current_epoch = 0
        self._current_step = 0
        self._batches_since_save = 0
        self._epoch_generator_state = None
        if self.save_freq != "epoch":
            specialize(self, on_train_batch_end=BackupAndRestore._batch_end)

    @property
    def backup_path(self) -> str:
        return os.path.join(self.backup_dir, self.FILENAME)

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, the model must be built before you call `fit()`.")
        self._current_epoch = 0
        self._current_step = 0
        self._batches_since_save = 0
        self._epoch_generator_state = self._shuffle_state()
        # In a data-parallel run rank 0 alone reads the backup; fit then broadcasts what it restored.
        if is_chief() and os.path.exists(self.backup_path):
            extra = saving.restore_checkpoint(self.model, self.backup_path)
            epoch = extra.get("epoch")
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(f"The backup {self.backup_path} records no valid epoch. Received: epoch={epoch!r}")
            step = extra.get("step", 0)
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ValueError(f"The backup {self.backup_path} records no valid step. Received: step={step!r}")
            self.model._initial_epoch = epoch
            self.model._initial_step = step
            self._restore_random_state(extra.get("random"))

    # ---- the random state a resumed run needs to repeat the interrupted one ----
    def _shuffle_state(self) -> torch.Tensor | None:
        gen = getattr(self.model, "_shuffle_generator", None)
        return None if gen is None else gen.get_state()

    def _dropout_layers(self) -> list[Any]:
        layers = self.model._flatten_layers() if hasattr(self.model, "_flatten_layers") else []
        return [
            layer
            for layer in layers
            if hasattr(layer, "next_seed") and hasattr(layer, "_base_seed") and layer is not self.model
        ]

    def _random_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "torch": _b64(torch.get_rng_state()),
            "dropout": [[layer._base_seed, layer._counter] for layer in self._dropout_layers()],
        }
        if self._epoch_generator_state is not None:
            state["shuffle"] = _b64(self._epoch_generator_state)
        return state

    def _restore_random_state(self, state: Any) -> None:
        if state is None:  # a backup from before the random state was recorded: weights and epoch only
            return
        where = f"The backup {self.backup_path}"
        if not isinstance(state, dict):
            raise ValueError(f"{where} records no valid random state. Received: {type(state).__name__}")
        dropout = state.get("dropout", [])
        layers = self._dropout_layers()
        if not isinstance(dropout, list) or len(dropout) != len(layers):
            raise ValueError(
                f"{where} records the seed streams of {len(dropout) if isinstance(dropout, list) else '?'} Dropout "
                f"layers, but the model has {len(layers)}"
            )
        for layer, entry in zip(layers, dropout, strict=True):
            if not (isinstance(entry, list) and len(entry) == 2 and all(type(v) is int and v >= 0 for v in entry)):
                raise ValueError(f"{where} records an invalid Dropout seed stream. Received: {entry!r}")
            layer._base_seed, layer._counter = entry
        if "torch" in state:
            torch.set_rng_state(_unb64(state["torch"], where))
        if "shuffle" in state:
            self.model._resume_generator_state = _unb64(state["shuffle"], where)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._current_step = 0
        # fit draws the epoch's shuffle order after this hook: this state redraws it on resume.
        self._epoch_generator_state = self._shuffle_state()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._current_step = 0
        self._epoch_generator_state = self._shuffle_state()  # the next epoch starts from here
        if self.save_freq == "epoch":
            self._save()

    def _batch_end(self, batch, logs=None):
        self._current_step = batch + 1
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save()

    def _save(self) -> None:
        if not is_chief():  # rank 0 alone writes in a data-parallel run
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        extra = {"epoch": self._current_epoch, "step": self._current_step, "random": self._random_state()}
        saving.save_checkpoint(self.model, self.backup_path, extra)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and is_chief() and os.path.exists(self.backup_path):
            os.remove(self.backup_path)
            try:
                os.rmdir(self.backup_dir)  # only when nothing else is in it
            except OSError:
                pass


def _b64(t: torch.Tensor) -> str:
    """A uint8 RNG state tensor as base64 text (the backup's ``extra`` is JSON)."""
    return base64.b64encode(t.numpy().tobytes()).decode("ascii")


def _unb64(text: Any, where: str) -> torch.Tensor:
    try:
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} records a random state that is not base64 text: {e}") from None
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


__all__ = ["BackupAndRestore"]
