"""Process-wide settings: the float type, the fuzz factor, the image layout and the device new weights are made on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .mixed_precision import dtype_policy, set_dtype_policy

__all__ = [
    "backend",
    "check_numerics",
    "default_device",
    "device",
    "dtype_policy",
    "epsilon",
    "floatx",
    "image_data_format",
]
__all__ += ["set_check_numerics", "set_default_device", "set_dtype_policy", "set_epsilon", "set_floatx"]
__all__ += ["set_image_data_format", "standardize_dtype"]

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
_DEVICE: str | None = None
_CHECK_NUMERICS = os.environ.get("TRITONNN_CHECK_NUMERICS", "0") not in ("", "0")


def floatx() -> str:
    """The default float type of weights, as a string (Keras' ``keras.config.floatx()``)."""
    return _FLOATX


def set_floatx(value: str) -> None:
    global _FLOATX
    if value not in ("float16", "bfloat16", "float32", "float64"):
        raise ValueError(f"Unknown floatx type. Expected float16, bfloat16, float32 or float64. Received: {value!r}")
    _FLOATX = value


def epsilon() -> float:
    """The fuzz factor of numeric expressions (Keras' ``keras.config.epsilon()``, 1e-7 by default): constraints
    divide by ``norm + epsilon``."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Expected `epsilon` to be a float. Received: value={value!r}")
    _EPSILON = float(value)


def image_data_format() -> str:
    """``"channels_last"`` (Keras' default) or ``"channels_first"``: the layout image layers would read."""
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format: str) -> None:
    global _IMAGE_DATA_FORMAT
    value = str(data_format).lower()
    if value not in ("channels_first", "channels_last"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format!r}"
        )
    _IMAGE_DATA_FORMAT = value


def backend() -> str:
    """``"torch"``: tritonnn's tensors are torch tensors, so a script that branches on Keras' backend name takes
    its torch branch (``x.detach().cpu().numpy()`` and the like work on what tritonnn returns)."""
    return "torch"


def default_device() -> torch.device:
    """Where weights and data go: CUDA when available, else CPU (override with :func:`set_default_device`)."""
    if _DEVICE is not None:
        return torch.device(_DEVICE)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_default_device(device: str | torch.device | None) -> None:
    global _DEVICE
    _DEVICE = None if device is None else str(torch.device(device))


@contextlib.contextmanager
def device(device_name: str | torch.device) -> Iterator[None]:
    """Keras' ``with keras.device("cpu"):``: weights and data made inside the block go to ``device_name`` (``"cpu"``,
    ``"gpu"``/``"gpu:0"`` (CUDA), ``"cuda:1"``); the previous default comes back after it."""
    name = str(device_name).lower()
    if name.startswith("gpu"):
        name = "cuda" + name[3:]
    try:
        target = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"Invalid device name. Expected 'cpu', 'gpu:N' or 'cuda:N'. Received: {device_name!r}") from e
    global _DEVICE
    previous = _DEVICE
    _DEVICE = str(target)
    try:
        yield
    finally:
        _DEVICE = previous


def standardize_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """A torch dtype from a Keras dtype string or a torch dtype; ``None`` is floatx."""
    if dtype is None:
        dtype = _FLOATX
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        result = getattr(torch, str(dtype))
    except AttributeError:
        result = None
    if not isinstance(result, torch.dtype):
        raise ValueError(f"Unknown dtype. Received: dtype={dtype!r}")
    return result


def check_numerics() -> bool:
    """Whether fit/evaluate/predict check their input data for NaN and Inf (off by default: it reads the data)."""
    return _CHECK_NUMERICS


def set_check_numerics(enabled: bool) -> None:
    """Turn the NaN/Inf check of input data on or off (also ``TRITONNN_CHECK_NUMERICS=1``)."""
    global _CHECK_NUMERICS
    _CHECK_NUMERICS = bool(enabled)
