"""Keras' ``LambdaCallback``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .callback import BATCH_HOOKS, Callback, specialize

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
        specialize(self, **hooks)


__all__ = ["LambdaCallback"]
