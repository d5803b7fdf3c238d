"""Triton, when it is there.

Triton ships wheels for Linux only. Everywhere else tritonnn still imports and runs on its torch backend, so the
kernel modules import ``triton`` and ``tl`` from here: the real modules when Triton is installed, otherwise a
stand-in whose decorators leave the kernel functions defined but unlaunchable. ``_backend`` never routes an op to
a kernel when ``HAS_TRITON`` is false, so the stand-in is never called.

``INTERPRETING`` is fixed when this module is imported, exactly as Triton fixes it when ``@triton.jit`` runs:
set ``TRITON_INTERPRET=1`` before importing tritonnn (see ../shared/TRITON_NOTES.md).
"""

from __future__ import annotations

import os

INTERPRETING: bool = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
    TRITON_IMPORT_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - exercised by tests/test_packaging.py in a subprocess
    HAS_TRITON = False
    TRITON_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

    class _Unavailable:
        """Decorators and names that let kernel modules import without Triton."""

        constexpr = int  # used only as an annotation

        def __init__(self, name: str):
            self._name = name

        def jit(self, fn=None, **_):
            return fn if fn is not None else (lambda f: f)

        def autotune(self, *_, **__):
            return lambda f: f

        def heuristics(self, *_, **__):
            return lambda f: f

        def Config(self, *args, **kwargs):  # noqa: N802 - mirrors triton.Config
            return (args, kwargs)

        def cdiv(self, a: int, b: int) -> int:
            return -(-a // b)

        def next_power_of_2(self, n: int) -> int:
            return 1 << max(0, int(n) - 1).bit_length()

        def __getattr__(self, item):
            raise RuntimeError(f"{self._name}.{item} needs Triton, which is not installed ({TRITON_IMPORT_ERROR})")

    triton = _Unavailable("triton")  # type: ignore[assignment]
    tl = _Unavailable("triton.language")  # type: ignore[assignment]

__all__ = ["triton", "tl", "HAS_TRITON", "INTERPRETING", "TRITON_IMPORT_ERROR"]
