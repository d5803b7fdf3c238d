"""Layers held in lists and dicts: tracked, as Keras tracks them.

Keras finds the layers (and so the weights) of ``self.blocks = [Dense(4), Dense(3)]`` or ``self.heads = {"a":
Dense(2)}`` in a custom layer or a subclassed model; ``torch.nn.Module`` finds only layers assigned to attributes
one by one. ``Layer.__setattr__`` therefore keeps a list or dict assigned to an attribute as a :class:`TrackedList`
or :class:`TrackedDict` (a ``list`` / ``dict`` subclass: it reads, compares and iterates as one), and registers the
layers it holds, in order and nested containers included, as one ``torch.nn.ModuleList`` child under the
attribute's name, so ``weights``, ``trainable_weights``, ``state_dict`` (keys ``blocks.0.kernel``...), the optimizer
and saving see them. Every mutation (``append``, ``extend``, ``insert``, item assignment and deletion, ``pop``,
``remove``, ``clear``, ``+=``, ``update``, ``setdefault``...) re-registers the layers it now holds. A tuple, which
cannot change, is registered as it is and kept a tuple.

Which attributes: every list, tuple or dict assigned to a public attribute (an empty list may get its layers later,
``self.blocks = []`` then ``append``), and one assigned to a private (``_``) attribute when it holds a layer at that
point (tritonnn's own bookkeeping lists of losses, tensors and nodes stay plain).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def layers_in(value: Any) -> Iterator[torch.nn.Module]:
    """The layers (any ``torch.nn.Module``) in a (nested) list, tuple or dict, in order (dicts in their insertion
    order)."""
    if isinstance(value, torch.nn.Module):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from layers_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from layers_in(v)


class _Tracked:
    """What both containers share: the owner and attribute name they register their layers under."""

    _owner: Any = None
    _attr: str = ""

    def _bind(self, owner: Any, attr: str) -> None:
        self._owner, self._attr = owner, attr

    def _changed(self) -> None:
        owner = self._owner
        if owner is not None and "_modules" in owner.__dict__:  # (not while unpickling: the owner comes back whole)
            top = owner.__dict__.get(self._attr)  # a nested container registers the whole attribute's layers
            if isinstance(top, _Tracked):
                register(owner, self._attr, top)


def _wrap(value: Any, owner: Any, attr: str) -> Any:
    """``value`` with its (nested) lists and dicts as tracked containers bound to ``owner.attr``."""
    if isinstance(value, _Tracked):
        value._bind(owner, attr)
        return value
    if type(value) is list:
        out = TrackedList(_wrap(v, owner, attr) for v in value)
    elif type(value) is dict:
        out = TrackedDict((k, _wrap(v, owner, attr)) for k, v in value.items())
    else:
        return value
    out._bind(owner, attr)
    return out


class TrackedList(_Tracked, list):
    """A list whose layers are registered with the layer that holds it (module docstring)."""

    def __reduce_ex__(self, protocol: int) -> Any:  # pickled and deep-copied with its owner (bound through the memo)
        return (TrackedList, (list(self),), {"_owner": self._owner, "_attr": self._attr})


class TrackedDict(_Tracked, dict):
    """A dict whose layers are registered with the layer that holds it (module docstring)."""

    def __reduce_ex__(self, protocol: int) -> Any:
        return (TrackedDict, (dict(self),), {"_owner": self._owner, "_attr": self._attr})


def _list_method(name: str) -> Any:
    base = getattr(list, name)

    def method(self: TrackedList, *args: Any, **kwargs: Any) -> Any:
        out = base(self, *args, **kwargs)
        for i, v in enumerate(self):  # a list or dict put in is tracked too
            if type(v) in (list, dict):
                list.__setitem__(self, i, _wrap(v, self._owner, self._attr))
        self._changed()
        return self if name == "__iadd__" else out

    method.__name__ = method.__qualname__ = name
    return method


def _dict_method(name: str) -> Any:
    base = getattr(dict, name)

    def method(self: TrackedDict, *args: Any, **kwargs: Any) -> Any:
        out = base(self, *args, **kwargs)
        for k, v in list(self.items()):
            if type(v) in (list, dict):
                dict.__setitem__(self, k, _wrap(v, self._owner, self._attr))
        self._changed()
        return self if name == "__ior__" else out

    method.__name__ = method.__qualname__ = name
    return method


for _name in ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "__setitem__", "__delitem__",
              "__iadd__", "__imul__"):  # fmt: skip
    setattr(TrackedList, _name, _list_method(_name))
for _name in ("__setitem__", "__delitem__", "pop", "popitem", "clear", "update", "setdefault", "__ior__"):
    setattr(TrackedDict, _name, _dict_method(_name))
del _name


def register(owner: Any, attr: str, value: Any) -> None:
    """Register the layers in ``value`` as the ``ModuleList`` child ``attr`` of ``owner`` (none: no child)."""
    found = list(layers_in(value))
    modules = owner.__dict__["_modules"]
    if found:
        modules[attr] = torch.nn.ModuleList(found)
    else:
        modules.pop(attr, None)


def tracked(owner: Any, attr: str, value: Any) -> Any | None:
    """The value to store for ``owner.attr = value`` when it is a container to track (module docstring), else
    None (then the assignment is nn.Module's, unchanged)."""
    if type(value) not in (list, dict, tuple) and not isinstance(value, _Tracked):
        return None
    if attr.startswith("_") and next(layers_in(value), None) is None:
        return None
    return _wrap(value, owner, attr)
