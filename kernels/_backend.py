"""The one backend switch of tritonnn.

``TRITONNN_BACKEND`` (read at import) or :func:`set_backend` selects how every op in ``tritonnn.kernels`` runs:

- ``auto`` (default): the Triton kernel for CUDA tensors, the PyTorch implementation otherwise, and PyTorch
  everywhere when Triton is missing.
- ``triton``: always the Triton kernel. On CPU tensors this needs ``TRITON_INTERPRET=1`` (Triton's interpreter
  runs the real kernels with numpy); without it, or without Triton, the op raises an error naming the cause.
- ``torch``: always the PyTorch implementation (which is also each op's written-down reference).

Each public op has the same three-line shape::

    if _backend.use_triton(x):
        return DenseFunction.apply(...)
    return dense_reference(...)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from ._triton import HAS_TRITON, INTERPRETING, TRITON_IMPORT_ERROR

BACKENDS = ("auto", "triton", "torch")


def _check(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"Unknown tritonnn backend. Expected one of {BACKENDS}. Received: backend={name!r}")
    return name.lower()


_backend = _check(os.environ.get("TRITONNN_BACKEND", "auto") or "auto")


def set_backend(name: str) -> None:
    """Select ``"auto"``, ``"triton"`` or ``"torch"`` for every op from now on."""
    global _backend
    _backend = _check(name)


def get_backend() -> str:
    """The selected backend setting: ``"auto"``, ``"triton"`` or ``"torch"``."""
    return _backend


@contextlib.contextmanager
def backend_scope(name: str) -> Iterator[None]:
    """Run a block under another backend setting, restoring the previous one after."""
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def use_triton(x: torch.Tensor) -> bool:
    """Whether an op on ``x`` runs its Triton kernel under the current setting.

    Raises ``RuntimeError`` when the setting is ``triton`` and the kernel cannot run, naming the cause, rather than
    falling back silently.
    """
    if _backend == "torch":
        return False
    if _backend == "auto":
        return HAS_TRITON and x.is_cuda
    if not HAS_TRITON:
        raise RuntimeError(f"TRITONNN_BACKEND=triton but Triton cannot be imported ({TRITON_IMPORT_ERROR})")
    if not x.is_cuda and not INTERPRETING:
        raise RuntimeError(
            f"TRITONNN_BACKEND=triton needs CUDA tensors, or TRITON_INTERPRET=1 set before tritonnn is imported "
            f"to run the kernels on CPU with Triton's interpreter. Received a tensor on device={x.device}"
        )
    return True


def use_triton_on(device: torch.device | str) -> bool:
    """:func:`use_triton` for a tensor on ``device``, answered without making one where the setting alone decides
    (``torch``; ``auto``: CUDA or not), for checks that run at every step (the fused MLP's path)."""
    if _backend == "torch":
        return False
    if _backend == "auto":
        return HAS_TRITON and torch.device(device).type == "cuda"
    return use_triton(torch.empty(0, device=device))


def backend(x: torch.Tensor | None = None) -> str:
    """The path an op takes: ``"triton"`` or ``"torch"``, for ``x`` or, without it, for the default device."""
    if x is None:
        x = torch.empty(0, device="cuda" if torch.cuda.is_available() else "cpu")
    return "triton" if use_triton(x) else "torch"
