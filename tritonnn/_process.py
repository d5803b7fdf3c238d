"""Which process this is in a run: rank 0 prints and writes files, the others stay quiet.

The lowest layer of the steering wheel: callbacks, saving and the distribution package all ask it, and it imports
nothing of tritonnn, so none of them has to import another to learn whether it is the chief.
"""

from __future__ import annotations

import os

import torch.distributed as dist


def env_int(name: str) -> int | None:
    """An integer environment variable (torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or None when unset."""
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Expected the environment variable {name} to be an integer. Received: {value!r}") from None


def is_chief() -> bool:
    """Whether this process is the one that prints and writes files: rank 0, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return (env_int("RANK") or 0) == 0


def barrier() -> None:
    """Wait until every process of the run reaches this call (nothing to wait for in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


__all__ = ["barrier", "env_int", "is_chief"]
