"""The hook by which ``tritonnn.ops`` hands a call on symbolic tensors to the Functional API.

``tritonnn.ops`` cannot import the layers (they import it), so a symbolic tensor is known here by its base class,
:class:`SymbolicValue`, and the code that records such a call as a graph node (``tritonnn.layers.op_node``)
registers itself with :func:`set_handler` when it is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
_HANDLER: list[Handler] = []
OP_NAMES: dict[str, str] = {}  # each public name of tritonnn.ops -> the name of the op it is (filled by ops)


class SymbolicValue:
    """The base class of ``tritonnn.KerasTensor``: what an op's arguments are checked for."""

    __slots__ = ()


def set_handler(handler: Handler) -> None:
    """Make ``handler(op_name, fn, args, kwargs)`` the one that runs an op called on symbolic tensors."""
    _HANDLER[:] = [handler]


def _holds(value: Any) -> bool:
    if isinstance(value, SymbolicValue):
        return True
    if type(value) in (list, tuple):
        return any(_holds(v) for v in value)
    if type(value) is dict:
        return any(_holds(v) for v in value.values())
    return False


def has_symbolic(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a symbolic tensor is among the arguments (or inside a list, tuple or dict of them)."""
    for a in args:
        if isinstance(a, SymbolicValue) or (type(a) in (list, tuple, dict) and _holds(a)):
            return True
    return bool(kwargs) and any(_holds(v) for v in kwargs.values())


def dispatch(op_name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``fn`` (the op ``op_name``) on arguments holding symbolic tensors: through the registered handler."""
    if not _HANDLER:
        raise RuntimeError(f"ops.{op_name} was called on a symbolic tensor before tritonnn.layers was imported")
    return _HANDLER[0](op_name, fn, args, kwargs)
