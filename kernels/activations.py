"""The activation table: one row per element-wise activation Keras names by string.

Each row gives the torch forward (the reference and the CPU path). The Triton epilogues are keyed by the same
names, so adding an activation is adding a row.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda z: z,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}

ALIASES: dict[str, str] = {}


def canonical(name: str | None) -> str:
    """The table's name for ``name`` (None is ``linear``); ``ValueError`` listing the valid names otherwise."""
    if name is None:
        return "linear"
    if not isinstance(name, str):
        raise ValueError(f"Expected an activation name (a string). Received: activation={name!r}")
    key = ALIASES.get(name, name)
    if key not in ACTIVATIONS:
        close = difflib.get_close_matches(name, list(ACTIVATIONS) + list(ALIASES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown activation: {name!r}.{hint} Valid names: {sorted(set(ACTIVATIONS) | set(ALIASES))}")
    return key


def activation_reference(name: str | None, z: torch.Tensor) -> torch.Tensor:
    """Apply an element-wise activation with plain torch."""
    return ACTIVATIONS[canonical(name)](z)
