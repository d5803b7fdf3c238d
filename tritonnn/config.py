"""Process-wide settings: the float type, the fuzz factor, the image layout and the device new weights are made on;
where logs go (interactive logging), traceback filtering, unsafe deserialization, and the debugging caps on
``fit``'s epochs and steps (``max_epochs``, ``max_steps_per_epoch``), as Keras 3's ``keras.config``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
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
__all__ += ["disable_interactive_logging", "enable_interactive_logging", "is_interactive_logging_enabled"]
__all__ += ["disable_traceback_filtering", "enable_traceback_filtering", "is_traceback_filtering_enabled"]
__all__ += ["enable_unsafe_deserialization", "max_epochs", "max_steps_per_epoch"]
__all__ += ["set_max_epochs", "set_max_steps_per_epoch"]

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
_DEVICE: str | None = None
_CHECK_NUMERICS = os.environ.get("TRITONNN_CHECK_NUMERICS", "0") not in ("", "0")
_INTERACTIVE_LOGGING = True
_TRACEBACK_FILTERING = True
_SAFE_MODE: bool | None = None  # None: each loader's own safe_mode argument decides (Keras' global_state default)
# Keras reads these two from its own environment variables, once, at import
_MAX_EPOCHS: int | None = int(os.environ["KERAS_MAX_EPOCHS"]) if "KERAS_MAX_EPOCHS" in os.environ else None
_MAX_STEPS_PER_EPOCH: int | None = (
    int(os.environ["KERAS_MAX_STEPS_PER_EPOCH"]) if "KERAS_MAX_STEPS_PER_EPOCH" in os.environ else None
)


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


# ---- logging, tracebacks, deserialization (keras.config) ----------------------------------------------------------


def enable_interactive_logging() -> None:
    """Send the progress bars' and callbacks' messages to stdout (the default)."""
    global _INTERACTIVE_LOGGING
    _INTERACTIVE_LOGGING = True


def disable_interactive_logging() -> None:
    """Send the progress bars' and callbacks' messages to the ``logging`` logger ``"tritonnn"`` at INFO level
    instead of stdout (Keras sends them to ``absl.logging``), for jobs whose output is not a terminal."""
    global _INTERACTIVE_LOGGING
    _INTERACTIVE_LOGGING = False


def is_interactive_logging_enabled() -> bool:
    """Whether messages go to stdout (True, the default) or to ``logging`` (see ``disable_interactive_logging``)."""
    return _INTERACTIVE_LOGGING


def print_msg(message: str, line_break: bool = True) -> None:
    """Write a progress or callback message where interactive logging says: stdout, or ``logging`` (INFO)."""
    if _INTERACTIVE_LOGGING:
        sys.stdout.write(message + ("\n" if line_break else ""))
        sys.stdout.flush()
    else:
        logging.getLogger("tritonnn").info(message.strip("\r\n"))


def enable_traceback_filtering() -> None:
    """Turn traceback filtering on (the default). A setting kept as Keras keeps it: tritonnn does not rewrite
    tracebacks either way (its frames are ordinary Python, shown in full)."""
    global _TRACEBACK_FILTERING
    _TRACEBACK_FILTERING = True


def disable_traceback_filtering() -> None:
    """Turn traceback filtering off (see ``enable_traceback_filtering``)."""
    global _TRACEBACK_FILTERING
    _TRACEBACK_FILTERING = False


def is_traceback_filtering_enabled() -> bool:
    """Whether traceback filtering is on (True by default)."""
    return _TRACEBACK_FILTERING


def enable_unsafe_deserialization() -> None:
    """Disable safe mode globally, as Keras' does (its loaders then deserialize lambdas whatever their
    ``safe_mode`` argument). tritonnn's loaders never run code from a config or a file, so this lifts nothing:
    a Python lambda in a config is refused still (the ``layers.lambda-never-deserialized`` difference)."""
    global _SAFE_MODE
    _SAFE_MODE = False


def in_safe_mode() -> bool | None:
    """The global safe mode: None (each loader's ``safe_mode`` argument decides) or False once
    ``enable_unsafe_deserialization()`` was called."""
    return _SAFE_MODE


# ---- debugging caps on fit (keras.config.max_epochs / max_steps_per_epoch) ----------------------------------------


def set_max_epochs(max_epochs: int | None) -> None:
    """Cap the epochs every ``fit`` runs (None: no cap); for debugging runs, also ``KERAS_MAX_EPOCHS``."""
    global _MAX_EPOCHS
    _MAX_EPOCHS = max_epochs


def set_max_steps_per_epoch(max_steps_per_epoch: int | None) -> None:
    """Cap the steps of every epoch of ``fit`` (and of ``evaluate`` and ``predict``, whose passes Keras caps alike)
    (None: no cap); for debugging runs, also ``KERAS_MAX_STEPS_PER_EPOCH``."""
    global _MAX_STEPS_PER_EPOCH
    _MAX_STEPS_PER_EPOCH = max_steps_per_epoch


def max_epochs() -> int | None:
    """The cap on ``fit``'s epochs (None: none)."""
    return _MAX_EPOCHS


def max_steps_per_epoch() -> int | None:
    """The cap on the steps of an epoch (None: none)."""
    return _MAX_STEPS_PER_EPOCH


def capped_epochs(epochs: int) -> int:
    """``epochs`` under ``max_epochs()``, with Keras' warning when the cap applies."""
    if _MAX_EPOCHS and _MAX_EPOCHS < epochs:
        warnings.warn(f"Limiting epochs to {_MAX_EPOCHS}", stacklevel=3)
        return _MAX_EPOCHS
    return epochs


def capped_steps(steps: int | None) -> int | None:
    """An epoch's ``steps_per_epoch`` (None: the data's own) under ``max_steps_per_epoch()``, with Keras' warning:
    as Keras, the cap replaces a missing or larger count."""
    if _MAX_STEPS_PER_EPOCH and (not steps or _MAX_STEPS_PER_EPOCH < steps):
        warnings.warn(f"Limiting steps_per_epoch to {_MAX_STEPS_PER_EPOCH}", stacklevel=3)
        return _MAX_STEPS_PER_EPOCH
    return steps
