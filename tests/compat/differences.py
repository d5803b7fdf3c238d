"""The deliberate differences from Keras, read from ``docs/keras_differences.md`` (the one list, with reasons).

The document holds a Markdown table whose first column is an id in backticks; ``DELIBERATE`` maps each id to the
rest of its row. A comparison that skips an item names it through :func:`deliberate`, which fails for an id the
document does not list; ``test_differences.py`` checks the other direction (every listed id is used by a test), so
the list and the tests cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "keras_differences.md"
_ROW = re.compile(r"^\|\s*`([a-z0-9][a-z0-9_.-]*)`\s*\|(.*)\|\s*$")


def parse(text: str) -> dict[str, str]:
    """``{id: "what | why"}`` for every table row whose first cell is a backticked id; an id listed twice fails."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _ROW.match(line.strip())
        if m is None:
            continue
        key, rest = m.group(1), " | ".join(c.strip() for c in m.group(2).split("|"))
        if key in out:
            raise ValueError(f"{DOC.name}: the id {key!r} is listed twice")
        out[key] = rest
    return out


DELIBERATE: dict[str, str] = parse(DOC.read_text(encoding="utf-8"))


def deliberate(key: str) -> str:
    """``key`` when ``docs/keras_differences.md`` lists it (a ``KeyError`` naming the document otherwise)."""
    if key not in DELIBERATE:
        raise KeyError(f"{key!r} is not a deliberate difference listed in docs/keras_differences.md: add it there")
    return key
