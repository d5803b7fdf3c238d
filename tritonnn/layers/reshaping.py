"""Reshaping layers beside Flatten and Reshape: RepeatVector and Permute."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from .lambda_layer import FloatAutocast
from .layer import Layer


class RepeatVector(FloatAutocast, Layer):
    """Repeats a ``(batch, features)`` input ``n`` times: the output is ``(batch, n, features)``.

    Args:
        n: a positive integer, the number of repetitions.
    """

    def __init__(self, n: int, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(n, numbers.Integral) or isinstance(n, bool):
            raise TypeError(f"Expected an integer value for `n`, got {type(n)}.")
        if n <= 0:
            raise ValueError(f"Argument `n` should be a positive integer. Received: n={n}")
        self.n = int(n)
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() != 2:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected ndim=2, found "
                f"ndim={inputs.dim()}. Full shape received: {tuple(inputs.shape)}"
            )
        return inputs[:, None, :].expand(inputs.shape[0], self.n, inputs.shape[1]).contiguous()

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n}


class Permute(FloatAutocast, Layer):
    """Permutes the dimensions of each sample: ``Permute((2, 1))`` swaps the two axes after the batch axis.

    Args:
        dims: a permutation of ``1..rank`` (the batch axis, 0, stays first).
    """

    def __init__(self, dims: tuple[int, ...] | list[int], **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(dims, (list, tuple)) or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims
        ):
            raise ValueError(f"Expected `dims` to be a tuple of integers. Received: dims={dims!r}")
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(
                "Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` must be "
                f"consecutive and start from 1. Received dims={dims}"
            )
        self.built = True

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() != len(self.dims) + 1:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected ndim={len(self.dims) + 1}, "
                f"found ndim={inputs.dim()}. Full shape received: {tuple(inputs.shape)}"
            )
        return inputs.permute(0, *self.dims).contiguous()

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dims": self.dims}


__all__ = ["Permute", "RepeatVector"]
