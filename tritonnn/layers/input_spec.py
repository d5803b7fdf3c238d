"""Keras 3's ``InputSpec``: what a layer declares about its inputs (rank, dtype, shape, given axes), checked at
every call.

A layer sets ``self.input_spec`` (one ``InputSpec``, or a list / nested structure of them, one per input tensor of
the first argument); ``Layer.__call__`` then checks the inputs against it before ``call`` runs, on tensors and on
symbolic tensors alike, and raises Keras' ``ValueError`` naming the input, the layer and what differs. ``None`` in a
shape matches any size.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from .symbolic import flatten


def _dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``torch.float32``, ``"float32"``, ``np.float32`` or ``np.dtype("float32")``."""
    if isinstance(dtype, torch.dtype):
        return str(dtype).replace("torch.", "")
    if isinstance(dtype, str):
        name = dtype
    else:
        name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or str(dtype)
    return {"float": "float32", "int": "int64", "double": "float64", "half": "float16"}.get(name, name)


def _shape_of(x: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in x.shape)


class InputSpec:
    """The rank, dtype and shape a layer expects of each input (Keras' ``keras.InputSpec``).

    Args:
        dtype: the expected dtype (a name such as ``"float32"`` or a torch/NumPy dtype).
        shape: the expected shape, batch dimension included; ``None`` entries match any size. Sets ``ndim``.
        ndim: the expected rank.
        max_ndim, min_ndim: bounds on the rank.
        axes: ``{axis: size}``, sizes the given axes must have (``None``: any).
        allow_last_axis_squeeze: accept a last axis of size 1 more or less than ``shape`` / ``ndim`` says.
        name: the key of this input when the inputs come as a dict.
        optional: whether the input may be ``None``.
    """

    def __init__(
        self,
        dtype: Any = None,
        shape: Any = None,
        ndim: int | None = None,
        max_ndim: int | None = None,
        min_ndim: int | None = None,
        axes: dict[int, int | None] | None = None,
        allow_last_axis_squeeze: bool = False,
        name: str | None = None,
        optional: bool = False,
    ):
        self.dtype = _dtype_name(dtype) if dtype is not None else None
        if shape is not None:
            self.shape: tuple[int | None, ...] | None = tuple(None if d is None else int(d) for d in shape)
            self.ndim = len(self.shape)
        else:
            self.ndim = ndim
            self.shape = None
        self.max_ndim = max_ndim
        self.min_ndim = min_ndim
        self.name = name
        self.optional = optional
        self.allow_last_axis_squeeze = allow_last_axis_squeeze
        try:
            axes = axes or {}
            self.axes = {int(k): axes[k] for k in axes}
        except (ValueError, TypeError):
            raise TypeError(f"Argument `axes` must be a dict with integer keys. Received: axes={axes}") from None
        if self.axes and (self.ndim is not None or self.max_ndim is not None):
            max_dim = (self.ndim if self.ndim else self.max_ndim) - 1
            if max(self.axes) > max_dim:
                raise ValueError(f"Axis {max(self.axes)} is greater than the maximum allowed value: {max_dim}")

    def __repr__(self) -> str:
        parts = [
            f"dtype={self.dtype}" if self.dtype else "",
            f"shape={self.shape}" if self.shape else "",
            f"ndim={self.ndim}" if self.ndim else "",
            f"max_ndim={self.max_ndim}" if self.max_ndim else "",
            f"min_ndim={self.min_ndim}" if self.min_ndim else "",
            f"axes={self.axes}" if self.axes else "",
        ]
        return f"InputSpec({', '.join(p for p in parts if p)})"

    def get_config(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "shape": self.shape,
            "ndim": self.ndim,
            "max_ndim": self.max_ndim,
            "min_ndim": self.min_ndim,
            "axes": self.axes,
            "optional": self.optional,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> InputSpec:
        return cls(**config)


def assert_input_compatibility(input_spec: Any, inputs: Any, layer_name: str) -> None:
    """Raise Keras' ``ValueError`` when ``inputs`` (a layer call's first argument) do not meet ``input_spec``."""
    if not input_spec:
        return
    specs = flatten(input_spec)
    if isinstance(inputs, dict):
        names = [spec.name for spec in specs]
        if all(names):
            for name in names:
                if name not in inputs:
                    raise ValueError(
                        f'Missing data for input "{name}". You passed a data dictionary with keys '
                        f"{list(inputs.keys())}. Expected the following keys: {names}"
                    )
            inputs = [inputs[name] for name in names]
    inputs = flatten(inputs)
    if len(inputs) != len(specs):
        names = [spec.name for spec in specs if spec is not None]
        if len(names) == len(specs) and all(names):
            example = ", ".join(f"'{n}': ..." for n in names)
            raise ValueError(
                f'Layer "{layer_name}" expects {len(specs)} named input(s) with keys {names}, but it received '
                f"{len(inputs)} input tensors. Pass inputs as a dict, e.g. `layer({{{example}}})`."
            )
        raise ValueError(
            f'Layer "{layer_name}" expects {len(specs)} input(s), but it received {len(inputs)} input tensors.'
        )
    for i, (x, spec) in enumerate(zip(inputs, specs, strict=True)):
        if spec is None or (x is None and spec.optional):
            continue
        if not hasattr(x, "shape"):
            raise ValueError(
                f"Inputs to a layer should be tensors. Got '{x}' (of type {type(x)}) as input for layer '{layer_name}'."
            )
        where = f"Input {i} with name '{spec.name}' of layer '{layer_name}' is incompatible with the layer"
        shape = _shape_of(x)
        ndim = len(shape)
        if spec.ndim is not None and not spec.allow_last_axis_squeeze and ndim != spec.ndim:
            raise ValueError(f"{where}: expected ndim={spec.ndim}, found ndim={ndim}. Full shape received: {shape}")
        if spec.max_ndim is not None and ndim > spec.max_ndim:
            raise ValueError(f"{where}: expected max_ndim={spec.max_ndim}, found ndim={ndim}")
        if spec.min_ndim is not None and ndim < spec.min_ndim:
            raise ValueError(
                f"{where}: expected min_ndim={spec.min_ndim}, found ndim={ndim}. Full shape received: {shape}"
            )
        if spec.dtype is not None and _dtype_name(x.dtype) != spec.dtype:
            raise ValueError(f"{where}: expected dtype={spec.dtype}, found dtype={_dtype_name(x.dtype)}")
        for axis, value in spec.axes.items():
            if not isinstance(axis, numbers.Integral) or not -ndim <= axis < ndim:
                raise ValueError(f"{where}: expected an axis {axis}, but received input with shape {shape}")
            if value is not None and shape[axis] not in (value, None):
                raise ValueError(
                    f"{where}: expected axis {axis} of input shape to have value {value}, but received input with "
                    f"shape {shape}"
                )
        if spec.shape is not None:
            spec_shape, got = spec.shape, shape
            if spec.allow_last_axis_squeeze:
                got = got[:-1] if got and got[-1] == 1 else got
                spec_shape = spec_shape[:-1] if spec_shape and spec_shape[-1] == 1 else spec_shape
            for want, have in zip(spec_shape, got, strict=False):
                if want is not None and have is not None and want != have:
                    raise ValueError(f"{where}: expected shape={spec.shape}, found shape={shape}")
