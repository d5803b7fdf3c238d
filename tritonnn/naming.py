"""Keras' automatic names (``dense``, ``dense_1``... for layers, ``variable``, ``variable_1``... for variables) on
one counter per prefix, which ``keras.backend.get_uid`` reads and ``clear_session`` resets: shared by the layers and
the variables, as in Keras."""

from __future__ import annotations

from collections import defaultdict

_NAME_COUNTS: defaultdict[str, int] = defaultdict(int)


def unique_name(base: str) -> str:
    """Keras' automatic names: ``dense``, ``dense_1``, ``dense_2``..."""
    count = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if count == 0 else f"{base}_{count}"


def get_uid(prefix: str = "") -> int:
    """Keras' ``keras.backend.get_uid``: 1, 2, 3... per prefix, on the counter that automatic layer names use (after
    one ``Dense``, ``get_uid("dense")`` is 2)."""
    _NAME_COUNTS[prefix] += 1
    return _NAME_COUNTS[prefix]


def clear_session() -> None:
    """Reset automatic layer and variable names (Keras' ``keras.backend.clear_session``)."""
    _NAME_COUNTS.clear()
