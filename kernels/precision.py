"""The float32 matmul precision switch, modelled on ``torch.set_float32_matmul_precision``.

- ``"highest"`` (the default): float32 GEMMs run in IEEE fp32 (``tl.dot(..., input_precision="ieee")``), relative
  error about 1e-6.
- ``"high"``: float32 GEMMs may run on TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation), relative error
  about 1e-3 and several times faster on Ampere and Hopper.

It affects only float32 inputs on the Triton backend; bfloat16 and float16 always use their tensor cores with fp32
accumulation. The torch backend follows torch's own setting.
"""

from __future__ import annotations

PRECISIONS = ("highest", "high")

_precision = "highest"


def set_float32_matmul_precision(precision: str) -> None:
    """Select ``"highest"`` (IEEE fp32) or ``"high"`` (TF32 tensor cores) for float32 GEMMs from now on."""
    global _precision
    if precision not in PRECISIONS:
        raise ValueError(
            f"Expected the float32 matmul precision to be one of {PRECISIONS}. Received: precision={precision!r}"
        )
    _precision = precision


def get_float32_matmul_precision() -> str:
    """The current float32 matmul precision: ``"highest"`` or ``"high"``."""
    return _precision


def dot_precision() -> str:
    """The ``input_precision`` a float32 ``tl.dot`` uses under the current setting."""
    return "ieee" if _precision == "highest" else "tf32"
