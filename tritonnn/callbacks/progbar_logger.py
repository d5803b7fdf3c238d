"""The progress bar: ``Progbar`` and the ``ProgbarLogger`` callback that drives it.

The bar redraws at most every ``interval`` seconds, so logs are read from the device only when a line is drawn.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import numpy as np

from .callback import Callback


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
    v = float(np.mean(v))  # a metric with several thresholds logs an array: Keras' bar shows its mean
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


__all__ = ["Progbar", "ProgbarLogger"]
