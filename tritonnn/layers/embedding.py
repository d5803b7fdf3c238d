"""Embedding: turns non-negative integers (indexes) into dense vectors of fixed size."""

from __future__ import annotations

from typing import Any

import torch

from .. import constraints, initializers, ops, regularizers
from .layer import Layer, check_unquantized


def _check_positive(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive integer. Received: {name}={value}"
        )
    return value


class Embedding(Layer):
    """Turns integer indexes into dense vectors: ``outputs[..., :] = embeddings[inputs[...]]``.

    Args:
        input_dim: size of the vocabulary (maximum integer index + 1).
        output_dim: dimension of the dense embedding.
        embeddings_initializer: initializer of the ``(input_dim, output_dim)`` matrix. Defaults to ``"uniform"``
            (``RandomUniform(-0.05, 0.05)``).
        embeddings_regularizer: optional regularizer of the matrix.
        embeddings_constraint: optional constraint of the matrix, applied after every optimizer update.
        mask_zero: whether index 0 is a padding value to be masked out (see :meth:`compute_mask`); then index 0
            is reserved and ``input_dim`` should be the vocabulary size + 1.
        weights: optional initial embedding matrix, ``(input_dim, output_dim)``.

    Input shape: ``(batch, ...)`` integers (floats are truncated to int32, as Keras does). An index outside
    ``[0, input_dim)`` raises a ``ValueError`` (checked on the host before the lookup: one device sync per call).
    Output shape: ``(batch, ..., output_dim)`` in the layer's compute dtype.
    """

    _autocast_inputs = False  # indices stay integers

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        weights: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: Any = None,
        **kwargs: Any,
    ):
        check_unquantized("Embedding", lora_rank, quantization_config)
        super().__init__(**kwargs)
        self.input_dim = _check_positive("input_dim", input_dim)
        self.output_dim = _check_positive("output_dim", output_dim)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        init = "random_uniform" if embeddings_initializer == "uniform" else embeddings_initializer
        self.embeddings_initializer = initializers.get(init)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.embeddings: torch.nn.Parameter | None = None
        if weights is not None:
            self.build(None)
            self.set_weights([weights] if not isinstance(weights, (list, tuple)) else list(weights))

    def build(self, input_shape: Any = None) -> None:
        self.embeddings = self.add_weight(
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            name="embeddings",
            constraint=self.embeddings_constraint,
        )
        self.built = True

    def call(self, inputs: Any) -> torch.Tensor:
        idx = ops.convert_to_tensor(inputs)
        if idx.dtype not in (torch.int32, torch.int64):
            idx = ops.cast(idx, "int32")
        if idx.device != self.embeddings.device:
            idx = idx.to(self.embeddings.device)
        if idx.numel() and bool(ops.any(ops.logical_or(ops.less(idx, 0), ops.greater_equal(idx, self.input_dim)))):
            lo, hi = int(ops.min(idx)), int(ops.max(idx))
            raise ValueError(
                f"Embedding layer {self.name!r} received an index out of range [0, {self.input_dim}): input_dim="
                f"{self.input_dim}. Received: indices from {lo} to {hi}"
            )
        table = self.embeddings
        if table.dtype != self.compute_dtype:  # mixed precision: fp32 table, output in the compute dtype
            table = ops.cast(table, self.compute_dtype)
        return ops.take(table, idx, axis=0)

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor | None:
        """``inputs != 0`` when ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*tuple(input_shape), self.output_dim)

    def get_config(self) -> dict[str, Any]:
        reg, act = self.embeddings_regularizer, self.activity_regularizer
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": None if reg is None else regularizers.serialize(reg),
            "activity_regularizer": None if act is None else regularizers.serialize(act),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            "quantization_config": None,
        }
