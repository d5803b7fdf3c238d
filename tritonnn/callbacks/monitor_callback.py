"""The shared base of the callbacks that watch one logged quantity, and the checks of their arguments."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .callback import Callback

_MODES = ("auto", "min", "max")


def check_mode(mode: Any) -> str:
    if mode not in _MODES:
        raise ValueError(f"Expected `mode` to be one of {_MODES}. Received: mode={mode!r}")
    return mode


def check_non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Expected `{name}` to be a non-negative integer. Received: {name}={value!r}")
    return value


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


class MonitorCallback(Callback):
    """Shared rules of callbacks that watch one logged quantity: direction, ``min_delta`` and improvement."""

    def __init__(self, monitor: str, mode: str, baseline: float | None, min_delta: float) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"Expected `monitor` to be a non-empty string. Received: monitor={monitor!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)):
            raise ValueError(f"Expected `min_delta` to be a number. Received: min_delta={min_delta!r}")
        self.monitor = monitor
        self.mode = check_mode(mode)
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


__all__ = ["MonitorCallback", "check_mode", "check_non_negative_int"]
