"""Keras 3 callbacks: the hooks, ``History`` and the progress bar.

Logs are read from the device only when something needs them: the progress bar redraws at most every
``interval`` seconds, and per-batch logs are built only for callbacks that override a per-batch hook.
"""

from __future__ import annotations

import base64
import csv
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

import numpy as np
import torch

BATCH_HOOKS = (
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)


def _is_chief() -> bool:
    """True in a single process and on rank 0 of a data-parallel run: the process that prints and writes."""
    from .distribution import _is_chief

    return _is_chief()


def _say(*args: Any) -> None:
    """``print`` for the callbacks' messages: rank 0 alone prints in a data-parallel run."""
    if _is_chief():
        print(*args)


class Callback:
    """Base class: override any hook; ``self.model`` is set by ``fit``/``evaluate``/``predict``."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)  # Keras 2's name, still honoured by Keras 3

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


def _overrides(cb: Callback, hook: str) -> bool:
    if getattr(type(cb), hook, None) is not getattr(Callback, hook):
        return True
    legacy = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}.get(hook)
    return legacy is not None and getattr(type(cb), legacy, None) is not getattr(Callback, legacy)


class CallbackList:
    """Calls every callback's hook in order. Per-batch logs are materialised only when someone reads them."""

    def __init__(self, callbacks: list[Callback] | None, model: Any, **params: Any):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self._batch_readers = {h: [cb for cb in self.callbacks if _overrides(cb, h)] for h in BATCH_HOOKS}

    def wants(self, hook: str) -> bool:
        return bool(self._batch_readers[hook])

    def call(self, hook: str, *args: Any, logs: Mapping[str, Any] | None = None) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs=logs)

    def batch(self, hook: str, batch: int, logs_fn: Callable[[], dict[str, Any]] | None) -> None:
        readers = self._batch_readers[hook]
        if readers:
            logs = logs_fn() if logs_fn is not None else {}
            for cb in readers:
                getattr(cb, hook)(batch, logs=logs)


class History(Callback):
    """Records the epoch logs: ``history.history["loss"]`` is the list of per-epoch losses."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _format_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def _format_per_step(seconds: float, unit: str = "step") -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def _format_value(v: Any) -> str:
    v = float(v)
    return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 or v == 0 else f"{v:.4e}"


class Progbar:
    """Keras 3's progress bar: ``12/45 ━━━━━╺━━━━━━━━ 1s 3ms/step - accuracy: 0.91 - loss: 0.29``.

    ``verbose=1`` redraws one line (at most every ``interval`` seconds, and at the end); ``verbose=2`` prints one
    summary line at the end. ``values`` may be a callable, called only when a line is drawn.
    """

    def __init__(
        self, target: int | None, width: int = 20, verbose: int = 1, interval: float = 0.1, stream: TextIO | None = None
    ):
        self.target, self.width, self.verbose, self.interval = target, width, verbose, interval
        self.stream = stream or sys.stdout
        self.dynamic = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._start = time.perf_counter()
        self._last_draw = -math.inf
        self._last_len = 0

    def update(
        self, current: int, values: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None, finalize=None
    ) -> None:
        finalize = (self.target is not None and current >= self.target) if finalize is None else finalize
        now = time.perf_counter()
        if self.verbose == 2 and not finalize:
            return
        if not finalize and (now - self._last_draw < self.interval or not self.dynamic):
            return
        self._last_draw = now
        vals = values() if callable(values) else (values or {})
        elapsed = now - self._start
        per_step = elapsed / max(current, 1)
        if self.verbose == 2:
            line = f"{current}/{self.target} - {_format_time(elapsed)} - {_format_per_step(per_step)}"
        else:
            if self.target:
                done = min(self.width, int(self.width * current / self.target))
                bar = "━" * done + ("╺" if done < self.width else "") + "━" * max(0, self.width - done - 1)
                if self.dynamic:
                    bar = "\x1b[1m" + bar[:done] + "\x1b[0m\x1b[2m" + bar[done:] + "\x1b[0m"
                digits = int(math.log10(self.target)) + 1
                head = f"{current:>{digits}}/{self.target} {bar}"
            else:
                head = f"{current}/Unknown"
            if finalize:
                timing = f"{_format_time(elapsed)} {_format_per_step(per_step)}"
            else:
                eta = per_step * (self.target - current) if self.target else 0.0
                timing = f"{_format_time(eta)} {_format_per_step(per_step)}"
            line = f"{head} {timing}"
        for k, v in vals.items():
            line += f" - {k}: {_format_value(v)}"
        if self.dynamic and self.verbose == 1:
            pad = max(0, self._last_len - len(line))
            self.stream.write("\r" + line + " " * pad + ("\n" if finalize else ""))
        else:
            self.stream.write(line + "\n")
        self._last_len = len(line)
        self.stream.flush()


class ProgbarLogger(Callback):
    """Prints ``Epoch i/N`` and a progress bar (``verbose=1``) or one line per epoch (``verbose=2``)."""

    def __init__(self, verbose: int = 1) -> None:
        super().__init__()
        self.verbose = verbose
        self.bar: Progbar | None = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')}", flush=True)
        self.bar = Progbar(self.params.get("steps"), verbose=self.verbose)

    def progress(self, step: int, values: Callable[[], Mapping[str, Any]]) -> None:
        if self.bar is not None and self.verbose:
            self.bar.update(step, values, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None and self.verbose:
            self.bar.update(self.params.get("steps") or 0, dict(logs or {}), finalize=True)


# ---- Keras' built-in callbacks -----------------------------------------------------------------------------------

_MODES = ("auto", "min", "max")


def _check_mode(mode: Any) -> str:
    if mode not in _MODES:
        raise ValueError(f"Expected `mode` to be one of {_MODES}. Received: mode={mode!r}")
    return mode


def _check_non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Expected `{name}` to be a non-negative integer. Received: {name}={value!r}")
    return value


def _check_save_freq(save_freq: Any) -> Any:
    if save_freq == "epoch":
        return save_freq
    if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0:
        raise ValueError(f"Expected `save_freq` to be 'epoch' or a positive integer. Received: save_freq={save_freq!r}")
    return save_freq


# Directions of metrics that carry no `_direction` attribute, by the name under which they are logged.
_UP_NAMES = ("accuracy", "acc", "auc", "precision", "recall")
_DOWN_NAMES = ("loss", "mse", "mae", "mean_squared_error", "mean_absolute_error", "crossentropy")


def _direction(model: Any, monitor: str) -> str | None:
    """``"up"`` or ``"down"`` for a monitored quantity, as Keras infers it in ``mode="auto"``; ``None`` if unknown.

    ``loss`` goes down; a model metric with a ``_direction`` attribute says its own; otherwise the name decides
    (accuracy-like names go up, error and crossentropy names go down).
    """
    name = monitor.removeprefix("val_")
    if name == "loss" or name.endswith("_loss"):
        return "down"
    for m in getattr(model, "metrics", None) or []:
        if getattr(m, "name", None) == name and getattr(m, "_direction", None) in ("up", "down"):
            return m._direction
    if name in _UP_NAMES or name.endswith("_accuracy"):
        return "up"
    if name in _DOWN_NAMES or name.endswith(("_crossentropy", "_error")):
        return "down"
    return None


class _MonitorCallback(Callback):
    """Shared rules of callbacks that watch one logged quantity: direction, ``min_delta`` and improvement."""

    def __init__(self, monitor: str, mode: str, baseline: float | None, min_delta: float) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"Expected `monitor` to be a non-empty string. Received: monitor={monitor!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)):
            raise ValueError(f"Expected `min_delta` to be a number. Received: min_delta={min_delta!r}")
        self.monitor = monitor
        self.mode = _check_mode(mode)
        self.best: float | None = baseline
        self.min_delta = abs(float(min_delta))
        self.monitor_op: Callable[[float, float], bool] | None = None

    def _set_monitor_op(self) -> None:
        if self.mode == "auto":
            direction = _direction(self.model, self.monitor)
            if direction is None:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but tritonnn isn't able to "
                    "automatically determine whether that metric should be maximized or minimized. Pass "
                    "`mode='max'` in order to monitor based on the highest metric value, or pass `mode='min'` in "
                    "order to use the lowest value."
                )
        else:
            direction = "down" if self.mode == "min" else "up"
        if direction == "down":
            self.monitor_op = lambda a, b: a < b
            self.min_delta = -abs(self.min_delta)
        else:
            self.monitor_op = lambda a, b: a > b
            self.min_delta = abs(self.min_delta)
        if self.best is None:
            self.best = math.inf if direction == "down" else -math.inf

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        return bool(self.monitor_op(value - self.min_delta, reference))


class EarlyStopping(_MonitorCallback):
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
        self.patience = _check_non_negative_int("patience", patience)
        self.start_from_epoch = _check_non_negative_int("start_from_epoch", start_from_epoch)
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
            _say(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _say(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


def _specialize(cb: Callback, **hooks: Callable[..., Any]) -> None:
    """Give ``cb`` per-batch hooks on a subclass made for it alone.

    ``CallbackList`` builds per-batch logs (a read from the device) only for callbacks whose class overrides a
    batch hook, so callbacks that need batches only in some configurations add them here instead of on the class.
    """
    cls = type(cb)
    cb.__class__ = type(cls.__name__, (cls,), {"__module__": cls.__module__, "__qualname__": cls.__qualname__, **hooks})


class ModelCheckpoint(_MonitorCallback):
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
        from . import saving

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
        self.save_freq = _check_save_freq(save_freq)
        self._current_epoch = 0
        self._current_step = 0
        self._batches_since_save = 0
        self._epoch_generator_state = None
        if self.save_freq != "epoch":
            _specialize(self, on_train_batch_end=ModelCheckpoint._batch_end)

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
                _say(f"\nEpoch {epoch + 1}: saving model to {filepath}")
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
                _say(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                    f"saving model to {filepath}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            _say(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save(self, epoch: int, batch: int | None, logs: Mapping[str, Any] | None) -> None:
        from . import saving

        logs = dict(logs or {})
        filepath = self._file_path(epoch, batch, logs)
        if os.path.isdir(filepath):
            raise OSError(
                "Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an existing "
                f"directory: {filepath}"
            )
        if not self._should_save(epoch, logs, filepath) or not _is_chief():  # one writer in a data-parallel run
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
            _say(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(new_lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


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
        self.patience = _check_non_negative_int("patience", patience)
        self.cooldown = _check_non_negative_int("cooldown", cooldown)
        self.verbose = verbose
        self.mode = _check_mode(mode)
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
                        _say(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


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


class CSVLogger(Callback):
    """Stream the epoch logs to a CSV file (Keras' ``CSVLogger``): a header ``epoch,<sorted log keys>``, then one
    row per epoch; a key missing from a later epoch is written as ``NA``.

    Args:
        filename: the CSV file, e.g. ``"run/log.csv"``.
        separator: the string that separates fields.
        append: append to an existing file (no second header), rather than overwrite it.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise ValueError(f"Expected `filename` to be a str or os.PathLike. Received: filename={filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"Expected `separator` to be a one-character string. Received: separator={separator!r}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self.writer: csv.DictWriter | None = None
        self.append_header = True
        self.csv_file: TextIO | None = None

    def on_train_begin(self, logs=None):
        if not _is_chief():  # rank 0 alone writes the file in a data-parallel run
            return
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode)  # noqa: SIM115 (open across epochs, closed in on_train_end)
        self.writer = None
        self.keys = None

    @staticmethod
    def _handle_value(v: Any) -> Any:
        if isinstance(v, str):
            return v
        if isinstance(v, np.ndarray) and v.ndim == 0:
            return v
        if isinstance(v, Iterable):
            return f'"[{", ".join(map(str, v))}]"'
        return v

    def on_epoch_end(self, epoch, logs=None):
        if not _is_chief():
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.writer is None:
            sep = self.sep

            class _Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys], dialect=_Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch, **{k: self._handle_value(logs.get(k, "NA")) for k in self.keys}}
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


_ALL_HOOKS = (
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_begin",
    "on_train_end",
    "on_test_begin",
    "on_test_end",
    "on_predict_begin",
    "on_predict_end",
    *BATCH_HOOKS,
)


# Keras 2's names for the training batch hooks, still accepted by Keras 3's LambdaCallback.
_BATCH_ALIASES = {"on_batch_begin": "on_train_batch_begin", "on_batch_end": "on_train_batch_end"}


class LambdaCallback(Callback):
    """A callback made of plain functions (Keras' ``LambdaCallback``).

    ``on_epoch_begin``/``on_epoch_end`` are called as ``fn(epoch, logs)``; ``on_train_begin``/``on_train_end``
    (and the test/predict begin/end hooks) as ``fn(logs)``; the batch hooks as ``fn(batch, logs)``. Any other hook
    of ``Callback`` can be passed by name, e.g. ``on_test_batch_end=fn``; ``on_batch_begin``/``on_batch_end`` are
    the training batch hooks.

    Example::

        print_batch = tritonnn.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: print(batch))
    """

    def __init__(
        self,
        on_epoch_begin: Callable[..., Any] | None = None,
        on_epoch_end: Callable[..., Any] | None = None,
        on_train_begin: Callable[..., Any] | None = None,
        on_train_end: Callable[..., Any] | None = None,
        on_train_batch_begin: Callable[..., Any] | None = None,
        on_train_batch_end: Callable[..., Any] | None = None,
        **kwargs: Callable[..., Any] | None,
    ) -> None:
        super().__init__()
        fns = dict(
            on_epoch_begin=on_epoch_begin,
            on_epoch_end=on_epoch_end,
            on_train_begin=on_train_begin,
            on_train_end=on_train_end,
            on_train_batch_begin=on_train_batch_begin,
            on_train_batch_end=on_train_batch_end,
        )
        for hook, fn in kwargs.items():
            hook = _BATCH_ALIASES.get(hook, hook)
            if hook not in _ALL_HOOKS:
                raise ValueError(f"Expected the keyword arguments to be callback hooks {_ALL_HOOKS}. Received: {hook}")
            fns[hook] = fn
        hooks: dict[str, Callable[..., Any]] = {}
        for hook, fn in fns.items():
            if fn is None:
                continue
            if not callable(fn):
                raise ValueError(f"Expected `{hook}` to be a callable or None. Received: {hook}={fn!r}")
            if hook in BATCH_HOOKS or hook in ("on_epoch_begin", "on_epoch_end"):
                hooks[hook] = lambda self, index, logs=None, _fn=fn: _fn(index, logs)
            else:
                hooks[hook] = lambda self, logs=None, _fn=fn: _fn(logs)
        # Only the hooks given are overridden, so an epoch-only LambdaCallback never asks for per-batch logs.
        _specialize(self, **hooks)


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
        self.save_freq = _check_save_freq(save_freq)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._current_epoch = 0
        self._current_step = 0
        self._batches_since_save = 0
        self._epoch_generator_state = None
        if self.save_freq != "epoch":
            _specialize(self, on_train_batch_end=BackupAndRestore._batch_end)

    @property
    def backup_path(self) -> str:
        return os.path.join(self.backup_dir, self.FILENAME)

    def on_train_begin(self, logs=None):
        from . import saving

        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, the model must be built before you call `fit()`.")
        self._current_epoch = 0
        self._current_step = 0
        self._batches_since_save = 0
        self._epoch_generator_state = self._shuffle_state()
        # In a data-parallel run rank 0 alone reads the backup; fit then broadcasts what it restored.
        if _is_chief() and os.path.exists(self.backup_path):
            extra = saving._restore_into(self.model, self.backup_path)
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
        from . import saving

        if not _is_chief():  # rank 0 alone writes in a data-parallel run
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        extra = {"epoch": self._current_epoch, "step": self._current_step, "random": self._random_state()}
        saving._write(self.model, self.backup_path, "weights", True, extra)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and _is_chief() and os.path.exists(self.backup_path):
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
