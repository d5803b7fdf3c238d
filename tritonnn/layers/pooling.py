"""Global pooling over the steps of a sequence: GlobalAveragePooling1D, GlobalMaxPooling1D."""

from __future__ import annotations

from typing import Any

import torch

from .. import ops
from .layer import Layer, unique_name

DATA_FORMATS = ("channels_last", "channels_first")


def _data_format(value: str | None) -> str:
    value = "channels_last" if value is None else str(value).lower()
    if value not in DATA_FORMATS:
        raise ValueError(
            f"The `data_format` argument must be one of {{'channels_first', 'channels_last'}}. "
            f"Received: data_format={value}"
        )
    return value


class _GlobalPooling1D(Layer):
    _default_name = "global_pooling1d"

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        if kwargs.get("name") is None:  # Keras' "global_average_pooling1d", where the generic rule gives "..._1_d"
            kwargs["name"] = unique_name(self._default_name)
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)
        self.keepdims = bool(keepdims)
        self.built = True

    @property
    def _steps_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def _check_rank(self, shape: Any) -> None:
        if len(shape) != 3:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected ndim=3, found "
                f"ndim={len(shape)}. Full shape received: {tuple(shape)}"
            )

    def build(self, input_shape: Any) -> None:
        self._check_rank(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        self._check_rank(input_shape)
        shape = list(input_shape)
        if self.keepdims:
            shape[self._steps_axis] = 1
        else:
            del shape[self._steps_axis]
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over the steps of each sequence; with a mask, the mean over the unmasked steps.

    Args:
        data_format: ``"channels_last"`` (default: inputs ``(batch, steps, features)``) or ``"channels_first"``
            (``(batch, features, steps)``).
        keepdims: whether to keep the steps axis, with length 1.

    Call arguments: ``inputs``, and optionally ``mask`` of shape ``(batch, steps)``, true for the steps to keep.

    Output shape: ``(batch, features)``, or ``(batch, 1, features)`` / ``(batch, features, 1)`` with keepdims.
    """

    _default_name = "global_average_pooling1d"

    def call(self, inputs: torch.Tensor, mask: Any = None) -> torch.Tensor:
        self._check_rank(inputs.shape)
        axis = self._steps_axis
        if mask is None:
            return ops.mean(inputs, axis=axis, keepdims=self.keepdims)
        w = ops.expand_dims(ops.cast(mask, inputs.dtype), 2 if self.data_format == "channels_last" else 1)
        total = ops.sum(ops.multiply(inputs, w), axis=axis, keepdims=self.keepdims)
        return ops.divide(total, ops.sum(w, axis=axis, keepdims=self.keepdims))


class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over the steps of each sequence.

    Args:
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        keepdims: whether to keep the steps axis, with length 1.

    Output shape: ``(batch, features)``, or with the steps axis of length 1 when ``keepdims``.
    """

    _default_name = "global_max_pooling1d"

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        self._check_rank(inputs.shape)
        return ops.max(inputs, axis=self._steps_axis, keepdims=self.keepdims)
