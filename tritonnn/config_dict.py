"""Keras 3's ``keras.utils.Config``: a dict of named values that also reads and writes them as attributes, can be
frozen against changes, and serializes to JSON."""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterator
from typing import Any


class Config:
    """A dict-like container for named values (Keras' ``keras.utils.Config``).

    ``config.lr = 0.1`` and ``config["lr"] = 0.1`` set the same entry; ``freeze()`` makes every later change raise
    ``ValueError`` until ``unfreeze()``; ``as_dict()`` / ``to_json()`` give the entries. Iteration yields the keys in
    sorted order (``keys()``, ``items()`` keep insertion order), as in Keras.
    """

    _own = frozenset({"_entries", "_frozen"})

    def __init__(self, **kwargs: Any):
        object.__setattr__(self, "_entries", dict(kwargs))
        object.__setattr__(self, "_frozen", False)

    @property
    def frozen(self) -> bool:
        """Whether changes are refused."""
        return self._frozen

    def freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def unfreeze(self) -> None:
        object.__setattr__(self, "_frozen", False)

    def _check_mutable(self) -> None:
        if self._frozen:
            raise ValueError("Cannot mutate attribute(s) because the config is frozen.")

    def as_dict(self) -> dict[str, Any]:
        return copy.copy(self._entries)

    def to_json(self) -> str:
        return json.dumps(self._entries)

    def keys(self) -> Any:
        return self._entries.keys()

    def values(self) -> Any:
        return self._entries.values()

    def items(self) -> Any:
        return self._entries.items()

    def pop(self, *args: Any) -> Any:
        self._check_mutable()
        return self._entries.pop(*args)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._check_mutable()
        self._entries.update(*args, **kwargs)

    def get(self, keyname: str, value: Any = None) -> Any:
        return self._entries.get(keyname, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Config._own or hasattr(type(self), name):
            object.__setattr__(self, name, value)
            return
        self._check_mutable()
        self._entries[name] = value

    def __getattr__(self, name: str) -> Any:  # only called for names that are not attributes of the object
        entries = object.__getattribute__(self, "_entries")
        if name in entries:
            return entries[name]
        message = f"Unknown attribute: '{name}'."
        close = difflib.get_close_matches(name, list(entries), n=1, cutoff=0.7)
        if close:
            message += f" Did you mean '{close[0]}'?"
        raise AttributeError(message)

    def __setitem__(self, key: str, item: Any) -> None:
        self._check_mutable()
        self._entries[key] = item

    def __getitem__(self, key: str) -> Any:
        return self._entries[key]

    def __delitem__(self, key: str) -> None:
        self._check_mutable()
        del self._entries[key]

    def __contains__(self, item: object) -> bool:
        return item in self._entries

    def __iter__(self) -> Iterator[str]:
        yield from sorted(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<Config {self._entries}>"
