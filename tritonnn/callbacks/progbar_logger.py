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

from .. import config
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
    """Keras 3's progress bar (``keras.utils.Progbar``): ``12/45 ━━━━━╺━━━━━━━━ 1s 3ms/step - accuracy: 0.91``.

    ``update(current, values)`` with Keras' ``values``, a list of ``(name, value_for_last_step)``: a name in
    ``stateful_metrics`` (or, given ``stateless_metrics``, one not in it) is shown as given; the others are
    averaged over the steps seen, each value weighted by the steps since the previous update (Keras' rule; a
    finalizing update shows its values as given). ``add(n, values)`` is ``update(seen + n, values)``. tritonnn's
    trainer also passes a mapping of values already averaged, or a callable returning one (called only when a line
    is drawn, so a training step's logs are read from the device only then): both are shown as given.

    While interactive logging is disabled (``keras.config.disable_interactive_logging``) each drawn line goes to
    ``logging`` instead of stdout (unless a ``stream`` was given).

    ``verbose=1`` redraws one line (at most every ``interval`` seconds, and at the end; on a terminal in place,
    elsewhere one line per draw); ``verbose=2`` prints one summary line at the end; ``verbose=0`` draws nothing.

    Args:
        target: the total number of steps expected, None if unknown.
        width: the bar's width in characters.
        verbose: 0 (silent), 1 (a bar) or 2 (one line at the end).
        interval: the minimum time between redraws, in seconds.
        stateful_metrics: names shown as given (not averaged); give it or ``stateless_metrics``, not both.
        stateless_metrics: names averaged, the others shown as given.
        unit_name: the name of a step in the timing (``"step"``, ``"sample"``...).
        stream: where to write (tritonnn's addition; ``sys.stdout`` by default).
    """

    def __init__(
        self,
        target: int | None,
        width: int = 20,
        verbose: int = 1,
        interval: float = 0.05,
        stateful_metrics: Any = None,
        stateless_metrics: Any = None,
        unit_name: str = "step",
        *,
        stream: TextIO | None = None,
    ):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError(
                "Only one of `stateful_metrics` or `stateless_metrics` can be provided. `stateful_metrics` is used "
                "to make metrics stateless by default (with an exclusion list), while `stateless_metrics` is used to "
                "make metrics stateful by default (with an exclusion list)."
            )
        self.target, self.width, self.verbose, self.interval = target, width, verbose, interval
        self.unit_name = unit_name
        if stateful_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = set(stateful_metrics), None
        elif stateless_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = None, set(stateless_metrics)
        else:
            self.stateful_metrics, self.stateless_metrics = set(), None
        self._own_stream = stream is not None
        self.stream = stream or sys.stdout
        self.dynamic = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._seen_so_far = 0
        self._values: dict[str, list[Any]] = {}  # name -> [sum of value * steps, steps] (as Keras keeps them)
        self._values_order: list[str] = []
        self._start = time.perf_counter()
        self._last_draw = -math.inf
        self._last_len = 0

    def _record(self, name: str, value: Any, current: int, finalize: bool, as_given: bool = False) -> None:
        if name not in self._values_order:
            self._values_order.append(name)
        if self.stateful_metrics is not None:
            averaged = name not in self.stateful_metrics
        else:
            averaged = name in self.stateless_metrics
        if as_given or not averaged or finalize:
            self._values[name] = [value, 1]
            return
        steps = max(current - self._seen_so_far, 1)
        if name in self._values:
            self._values[name][0] += value * steps
            self._values[name][1] += steps
        else:
            self._values[name] = [value * steps, steps]

    def update(
        self,
        current: int,
        values: Any = None,
        finalize: bool | None = None,
    ) -> None:
        """Move the bar to step ``current``; ``values``: ``[(name, value), ...]`` (or a mapping, or a callable
        returning one, shown as given); ``finalize``: whether this is the last update (default: ``current >=
        target``)."""
        finalize = (self.target is not None and current >= self.target) if finalize is None else finalize
        if values is not None and not callable(values) and not isinstance(values, Mapping):
            for name, value in values:
                self._record(name, value, current, finalize)
        elif isinstance(values, Mapping):
            for name, value in values.items():
                self._record(name, value, current, finalize, as_given=True)
        self._seen_so_far = current
        now = time.perf_counter()
        if self.verbose not in (1, 2) or (self.verbose == 2 and not finalize):
            return
        if not finalize and (now - self._last_draw < self.interval or not self.dynamic):
            return
        self._last_draw = now
        if callable(values):
            for name, value in values().items():
                self._record(name, value, current, finalize, as_given=True)
        elapsed = now - self._start
        per_step = elapsed / max(current, 1)
        unit = self.unit_name
        if self.verbose == 2:
            line = f"{current}/{self.target} - {_format_time(elapsed)} - {_format_per_step(per_step, unit)}"
        else:
            if self.target:
                done = max(0, min(self.width, int(self.width * current / self.target)))
                bar = "━" * done + ("╺" if done < self.width else "") + "━" * max(0, self.width - done - 1)
                if self.dynamic:
                    bar = "\x1b[1m" + bar[:done] + "\x1b[0m\x1b[2m" + bar[done:] + "\x1b[0m"
                digits = int(math.log10(self.target)) + 1
                head = f"{current:>{digits}}/{self.target} {bar}"
            else:
                head = f"{current}/Unknown"
            if finalize:
                timing = f"{_format_time(elapsed)} {_format_per_step(per_step, unit)}"
            else:
                eta = per_step * (self.target - current) if self.target else 0.0
                timing = f"{_format_time(eta)} {_format_per_step(per_step, unit)}"
            line = f"{head} {timing}"
        for name in self._values_order:
            total, count = self._values[name]
            line += f" - {name}: {_format_value(np.mean(total) / max(1, count))}"
        if not self._own_stream and not config.is_interactive_logging_enabled():
            config.print_msg(line)  # to logging: one record per drawn line
        elif self.dynamic and self.verbose == 1:
            pad = max(0, self._last_len - len(line))
            self.stream.write("\r" + line + " " * pad + ("\n" if finalize else ""))
        else:
            self.stream.write(line + "\n")
        self._last_len = len(line)
        self.stream.flush()

    def add(self, n: int, values: Any = None) -> None:
        """``update(seen + n, values)``: advance the bar by ``n`` steps."""
        self.update(self._seen_so_far + n, values)


class ProgbarLogger(Callback):
    """Prints ``Epoch i/N`` and a progress bar (``verbose=1``) or one line per epoch (``verbose=2``)."""

    def __init__(self, verbose: int = 1) -> None:
        super().__init__()
        self.verbose = verbose
        self.bar: Progbar | None = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose:
            config.print_msg(f"Epoch {epoch + 1}/{self.params.get('epochs')}")
        self.bar = Progbar(self.params.get("steps"), verbose=self.verbose)

    def progress(self, step: int, values: Callable[[], Mapping[str, Any]]) -> None:
        if self.bar is not None and self.verbose:
            self.bar.update(step, values, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None and self.verbose:
            self.bar.update(self.params.get("steps") or 0, dict(logs or {}), finalize=True)


__all__ = ["Progbar", "ProgbarLogger"]
