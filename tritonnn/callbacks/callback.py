"""The hooks: ``Callback``, the ``CallbackList`` that calls them, and ``History``.

Per-batch logs are built only for callbacks that override a per-batch hook (see :func:`overrides`). Every hook
gets a dict as ``logs``, never None, as in Keras: empty for the begin hooks, the values so far for the end hooks,
flattened, with keys sorted and values as Python floats (Keras' ``pythonify_logs``; see :func:`pythonify_logs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .. import config
from .._process import is_chief

BATCH_HOOKS = (
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)


# The hooks Keras calls with the logs as a positional argument, after the epoch for the epoch hooks; the batch
# hooks get ``logs=`` by keyword (a callback that names the parameter otherwise works as under Keras).
_POSITIONAL = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_test_begin",
    "on_test_end",
    "on_predict_begin",
    "on_predict_end",
)


def pythonify_logs(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The dict a hook gets, by Keras' rule: a new dict (None is ``{}``), nested dicts flattened into it, keys in
    sorted order, each value ``float(value)`` where that works and the value itself where it does not (a batch of
    predictions)."""
    result: dict[str, Any] = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, Mapping):
            result.update(pythonify_logs(value))
            continue
        try:
            value = float(value)
        except (TypeError, ValueError, RuntimeError):
            pass
        result[key] = value
    return result


def say(*args: Any) -> None:
    """``print`` for the callbacks' messages: rank 0 alone prints in a data-parallel run; to ``logging`` instead
    while interactive logging is disabled (``keras.config.disable_interactive_logging``)."""
    if is_chief():
        config.print_msg(" ".join(str(a) for a in args))


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


def overrides(cb: Callback, hook: str) -> bool:
    """Whether ``cb``'s class overrides ``hook`` (for a training batch hook, or Keras 2's name for it).

    ``CallbackList`` calls a per-batch hook, and builds its logs, only for the callbacks for which this is true.
    """
    if getattr(type(cb), hook, None) is not getattr(Callback, hook):
        return True
    legacy = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}.get(hook)
    return legacy is not None and getattr(type(cb), legacy, None) is not getattr(Callback, legacy)


def specialize(cb: Callback, **hooks: Callable[..., Any]) -> None:
    """Give ``cb`` per-batch hooks on a subclass made for it alone.

    ``CallbackList`` builds per-batch logs (a read from the device) only for callbacks whose class overrides a
    batch hook, so callbacks that need batches only in some configurations add them here instead of on the class.
    """
    cls = type(cb)
    cb.__class__ = type(cls.__name__, (cls,), {"__module__": cls.__module__, "__qualname__": cls.__qualname__, **hooks})


class CallbackList:
    """Calls every callback's hook in order. Per-batch logs are materialised only when someone reads them."""

    def __init__(self, callbacks: list[Callback] | None, model: Any, **params: Any):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self._batch_readers = {h: [cb for cb in self.callbacks if overrides(cb, h)] for h in BATCH_HOOKS}

    def wants(self, hook: str) -> bool:
        return bool(self._batch_readers[hook])

    def call(self, hook: str, *args: Any, logs: Mapping[str, Any] | None = None) -> None:
        """Call ``hook`` on every callback with one dict made from ``logs`` (shared by the callbacks of this call,
        so what one adds the next sees, as in Keras)."""
        logs = pythonify_logs(logs)
        for cb in self.callbacks:
            if hook in _POSITIONAL:
                getattr(cb, hook)(*args, logs)
            else:
                getattr(cb, hook)(*args, logs=logs)

    def batch(self, hook: str, batch: int, logs_fn: Callable[[], Mapping[str, Any]] | None) -> None:
        """Call a per-batch hook on the callbacks that override it; ``logs_fn`` (None: no logs, the begin hooks)
        is called only when there is one."""
        readers = self._batch_readers[hook]
        if readers:
            logs = pythonify_logs(logs_fn() if logs_fn is not None else None)
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


__all__ = ["BATCH_HOOKS", "Callback", "CallbackList", "History", "overrides", "pythonify_logs", "say", "specialize"]
