"""Preprocessing layers an MLP takes its features through: Rescaling, Normalization, CategoryEncoding,
Discretization.

They run inside the model (in ``fit`` too), on the model's device, with Keras' arguments and configs. State a
layer learns from data (``Normalization.adapt``, ``Discretization.adapt``) is computed once, eagerly, before
training.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from .. import _serialization, config
from .layer import Layer


def _on(t: torch.Tensor, cache: dict[Any, torch.Tensor], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``t`` on ``device`` in ``dtype``, converted once (by the first, eager call) and reused: a call inside a
    captured CUDA graph finds its copy made and copies nothing."""
    if t.device == device and t.dtype == dtype:
        return t
    key = (id(t), device, dtype)
    if key not in cache:
        cache[key] = t.to(device=device, dtype=dtype)
    return cache[key]


def _constant(value: Any, what: str) -> float | torch.Tensor:
    """A Python float stays one; an array (NumPy, list, tensor) becomes a float32 tensor on the default device."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) or value is None:
        raise ValueError(f"Expected `{what}` to be a number or an array of numbers. Received: {what}={value!r}")
    try:
        t = torch.as_tensor(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value))
    except (TypeError, ValueError) as e:
        raise ValueError(f"Expected `{what}` to be a number or an array of numbers. Received: {what}={value!r}") from e
    if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise ValueError(f"Expected `{what}` to hold numbers. Received: {what}={value!r}")
    return t.to(torch.float32).to(config.default_device())


class Rescaling(Layer):
    """``inputs * scale + offset``, in the layer's compute dtype: ``Rescaling(1 / 255)`` maps pixels to [0, 1],
    ``Rescaling(1 / 127.5, offset=-1)`` to [-1, 1].

    Args:
        scale: a float, or an array broadcast against the inputs' trailing axes (the channels' axis first under
            ``image_data_format() == "channels_first"``, as in Keras).
        offset: a float or such an array (default 0).
    """

    def __init__(self, scale: Any, offset: Any = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset
        self._scale = _constant(scale, "scale")
        self._offset = _constant(offset, "offset")
        self._copies: dict[Any, torch.Tensor] = {}
        self.built = True

    def _value(self, value: float | torch.Tensor, device: torch.device, dtype: torch.dtype) -> Any:
        if isinstance(value, float):
            return value
        t = _on(value, self._copies, device, dtype)
        if t.dim() > 0 and config.image_data_format() == "channels_first":
            t = t.reshape(*t.shape, *([1] * (3 - t.dim())))  # a view: nothing copied
        return t

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs if inputs.dtype == self.compute_dtype else inputs.to(self.compute_dtype)
        scale = self._value(self._scale, x.device, x.dtype)
        offset = self._value(self._offset, x.device, x.dtype)
        return x * scale + offset

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "scale": _serialization.serialize_keras_object(self.scale),
            "offset": _serialization.serialize_keras_object(self.offset),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Rescaling:
        config = dict(config)
        for key in ("scale", "offset"):
            if key in config:
                config[key] = _serialization.deserialize_value(config[key], custom_objects)
        return cls(**config)


def _axes(axis: Any) -> tuple[int, ...]:
    if axis is None:
        return ()
    axes = (axis,) if isinstance(axis, numbers.Integral) and not isinstance(axis, bool) else axis
    if not isinstance(axes, (list, tuple)) or not all(
        isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes
    ):
        raise ValueError(f"Expected `axis` to be None, an int or a tuple of ints. Received: axis={axis!r}")
    return tuple(int(a) for a in axes)


def _batches(data: Any) -> tuple[tuple[int, ...], Iterable[Any] | None]:
    """The shape of ``adapt``'s data and, for an iterable of batches, the batches (None for one array)."""
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return tuple(data.shape), None
    if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
        raise TypeError(
            f"Unsupported data type: {type(data)}. `adapt` supports NumPy arrays, tensors, and iterables of batches "
            "(a list or a generator of arrays, or of (x, y) tuples)."
        )
    iterator = iter(data)
    first = next(iterator, None)
    if first is None:
        raise ValueError(
            "adapt() received an empty iterable (no batches). Pass a non-empty iterable of arrays or tensors, e.g. "
            "layer.adapt([x]) or layer.adapt(list_of_batches)."
        )
    first = first[0] if isinstance(first, tuple) else first
    shape = getattr(first, "shape", None)
    if shape is None:
        raise TypeError(
            "adapt() expects an iterable that yields arrays or tensors with a `.shape` attribute. Got an element of "
            f"type {type(first).__name__}."
        )

    def chained() -> Iterable[Any]:
        yield first
        for batch in iterator:
            yield batch[0] if isinstance(batch, tuple) else batch

    return tuple(shape), chained()


class Normalization(Layer):
    """Standardizes features: ``(x - mean) / sqrt(variance)`` (``invert=True``: the inverse,
    ``mean + x * sqrt(variance)``), with the square root floored at ``tritonnn.config.epsilon()``.

    The statistics are given (``mean`` and ``variance``, broadcast to the kept axes) or learned by
    :meth:`adapt` from data, as Keras: then they are the layer's non-trainable weights ``mean``, ``variance`` (and
    Keras' legacy ``count``), saved with the model.

    Args:
        axis: the axis or axes kept (one statistic per index along them; default -1, the features), or None for
            one scalar mean and variance.
        mean, variance: optional statistics (both or neither), scalars or arrays of rank at most ``len(axis)``.
        invert: apply the inverse transformation (turns normalized values back).
    """

    def __init__(self, axis: Any = -1, mean: Any = None, variance: Any = None, invert: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = _axes(axis)
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self._build_input_shape: tuple[int | None, ...] | None = None
        self._fixed: tuple[torch.Tensor, torch.Tensor] | None = None
        self._copies: dict[Any, torch.Tensor] = {}
        if (mean is not None) != (variance is not None):
            raise ValueError(
                "When setting values directly, both `mean` and `variance` must be set. "
                f"Received: mean={mean} and variance={variance}"
            )
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError(
                    "When setting values directly, `mean` and `variance` must have the same shape. Received: mean "
                    f"shape {np.shape(mean)} and variance shape {np.shape(variance)}"
                )
            if len(np.shape(mean)) > len(self.axis):
                raise ValueError(
                    "The rank of `mean` must be less than or equal to the number of axes "
                    f"({len(self.axis)}). Received: mean shape {np.shape(mean)} for axis {self.axis}"
                )

    def build(self, input_shape: Any) -> None:
        input_shape = tuple(input_shape)
        ndim = len(input_shape)
        if any(not -ndim <= a < ndim for a in self.axis):
            raise ValueError(
                f"All `axis` values must be in the range [-ndim, ndim). Received inputs with ndim={ndim}, while "
                f"axis={self.axis}"
            )
        self._build_input_shape = input_shape
        self._keep_axis = tuple(sorted(a % ndim for a in self.axis))
        for d in self._keep_axis:
            if input_shape[d] is None:
                raise ValueError(
                    f"All `axis` values to be kept must have a known shape. Received axis={self.axis}, "
                    f"inputs.shape={input_shape}, with unknown axis at index {d}"
                )
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = tuple(input_shape[d] if d in self._keep_axis else 1 for d in range(ndim))
        self._mean_and_var_shape = tuple(input_shape[d] for d in self._keep_axis)
        if self.input_mean is None:
            # Registered as the layer's parameters "mean", "variance" and "count" (Keras' weight names).
            self.add_weight(self._mean_and_var_shape, "zeros", trainable=False, name="mean")
            self.add_weight(self._mean_and_var_shape, "ones", trainable=False, name="variance")
            self.add_weight((), "zeros", dtype="int32", trainable=False, name="count")
        else:
            mean = torch.as_tensor(np.asarray(self.input_mean, dtype="float32"))
            variance = torch.as_tensor(np.asarray(self.input_variance, dtype="float32"))
            if mean.dim() > 0:  # align the given statistics with the kept axes, from the right
                expanded = [1] * ndim
                for i in range(1, mean.dim() + 1):
                    expanded[self._keep_axis[-i]] = mean.shape[-i]
                mean, variance = mean.reshape(expanded), variance.reshape(expanded)
            device = config.default_device()
            self._fixed = (
                torch.broadcast_to(mean, self._broadcast_shape).to(device),
                torch.broadcast_to(variance, self._broadcast_shape).to(device),
            )
        self.built = True

    @property
    def adapt_mean(self) -> torch.nn.Parameter:
        """The adapted mean (Keras' ``adapt_mean``), of the kept axes' shape; a weight of the layer."""
        return self._parameters["mean"]

    @property
    def adapt_variance(self) -> torch.nn.Parameter:
        """The adapted variance (Keras' ``adapt_variance``), of the kept axes' shape; a weight of the layer."""
        return self._parameters["variance"]

    def adapt(self, data: Any) -> None:
        """Compute the mean and variance of ``data`` over the reduced axes: a NumPy array, a tensor, or an iterable
        of batches (arrays, tensors, or ``(x, y)`` tuples, whose ``x`` is used), combined exactly as one array.
        Builds the layer on the data's shape when it is not built."""
        if self.input_mean is not None:
            raise ValueError(
                "This Normalization layer was given `mean` and `variance`: it has no statistics to adapt. Create it "
                "without them to learn them from data."
            )
        shape, batches = _batches(data)
        if not self.built:
            self.build(shape)
        elif len(shape) != len(self._build_input_shape) or any(
            shape[d] != self._build_input_shape[d] for d in self._keep_axis
        ):
            raise ValueError(
                f"The layer was built with input_shape={self._build_input_shape}, but adapt() is being called with "
                f"data with an incompatible shape, data.shape={shape}"
            )
        total, mean, m2 = 0, None, None
        for batch in [data] if batches is None else batches:
            x = np.asarray(batch.detach().cpu() if isinstance(batch, torch.Tensor) else batch, dtype="float64")
            if x.ndim != len(self._build_input_shape) or any(
                x.shape[d] != self._build_input_shape[d] for d in self._keep_axis
            ):
                raise ValueError(
                    f"adapt() yielded a batch with incompatible shape. Expected {self._build_input_shape}, got "
                    f"{x.shape}."
                )
            n = math.prod(x.shape[d] for d in self._reduce_axis)
            if n == 0:
                continue
            b_mean = x.mean(axis=self._reduce_axis)
            b_m2 = ((x - b_mean.reshape(self._broadcast_shape)) ** 2).sum(axis=self._reduce_axis)
            if mean is None:
                total, mean, m2 = n, b_mean, b_m2
            else:  # Chan et al.'s pairwise combination of (count, mean, sum of squared deviations)
                delta = b_mean - mean
                grown = total + n
                mean = mean + delta * (n / grown)
                m2 = m2 + b_m2 + delta**2 * (total * n / grown)
                total = grown
        if mean is None:
            raise ValueError("adapt() received data with no samples: there is nothing to compute statistics from")
        with torch.no_grad():
            self.adapt_mean.copy_(torch.as_tensor(mean, dtype=self.adapt_mean.dtype))
            self.adapt_variance.copy_(torch.as_tensor(m2 / total, dtype=self.adapt_variance.dtype))

    def _statistics(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if self._fixed is not None:
            mean, variance = self._fixed
            return _on(mean, self._copies, device, dtype), _on(variance, self._copies, device, dtype)
        mean = self.adapt_mean.reshape(self._broadcast_shape)
        variance = self.adapt_variance.reshape(self._broadcast_shape)
        return mean.to(device=device, dtype=dtype), variance.to(device=device, dtype=dtype)

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs if inputs.is_floating_point() else inputs.to(self.compute_dtype)
        mean, variance = self._statistics(x.device, x.dtype)
        std = torch.clamp(torch.sqrt(variance), min=config.epsilon())
        return mean + x * std if self.invert else (x - mean) / std

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_build_config(self) -> dict[str, Any] | None:
        return None if self._build_input_shape is None else {"input_shape": list(self._build_input_shape)}

    def build_from_config(self, config: dict[str, Any]) -> None:
        if config:
            self.build(tuple(config["input_shape"]))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "axis": self.axis,
            "invert": self.invert,
            "mean": np.array(self.input_mean).tolist(),
            "variance": np.array(self.input_variance).tolist(),
        }


def _check_output_mode(output_mode: Any, allowed: tuple[str, ...], layer: str) -> str:
    if output_mode not in allowed:
        raise ValueError(
            f"Invalid value for argument `output_mode` of {layer}: expected one of {list(allowed)}. "
            f"Received: output_mode={output_mode!r}"
        )
    return output_mode


def _capturing(t: torch.Tensor) -> bool:
    return t.is_cuda and torch.cuda.is_current_stream_capturing()


def encode_categorical(
    indices: torch.Tensor, output_mode: str, depth: int, dtype: torch.dtype, count_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Keras' ``encode_categorical_inputs``: ``one_hot`` adds an axis of ``depth`` (replacing a trailing axis of
    1), ``multi_hot`` and ``count`` reduce the last axis into ``depth`` bins (a rank-1 input is one sample);
    ``int`` returns the indices. Indices outside ``[0, depth)`` give no entry."""
    if output_mode == "int":
        return indices
    idx = indices.to(torch.int64)
    if output_mode == "one_hot":
        if idx.dim() > 1 and idx.shape[-1] == 1:
            idx = idx.squeeze(-1)
        return (idx[..., None] == torch.arange(depth, device=idx.device)).to(dtype)
    hits = (idx[..., None] == torch.arange(depth, device=idx.device)).to(dtype)
    if output_mode == "multi_hot":
        return hits.amax(dim=-2) if hits.dim() > 1 else hits
    if count_weights is not None:
        hits = hits * count_weights.to(dtype)[..., None]
    return hits.sum(dim=-2)


class CategoryEncoding(Layer):
    """Encodes integer category indices in ``[0, num_tokens)`` as one-hot, multi-hot or count vectors (float32).

    ``one_hot``: one vector per index (a trailing axis of 1 is replaced); ``multi_hot``: per sample (the last
    axis), 1 for each index present; ``count``: per sample, how often each index occurs (weighted by
    ``count_weights`` when given). A rank-1 input is one sample for ``multi_hot`` and ``count``, as in Keras.

    An index outside ``[0, num_tokens)`` raises a ``ValueError`` (checked on the host: one sync per call), except
    inside a CUDA graph capture, where it cannot be read: there such an index gives no entry.

    Args:
        num_tokens: the number of categories (positive).
        output_mode: ``"multi_hot"`` (default; Keras' old name ``"binary"`` is accepted), ``"one_hot"``,
            ``"count"``.
        sparse: Keras' sparse outputs; not supported (must be False).
    """

    _autocast_inputs = False

    def __init__(self, num_tokens: int | None = None, output_mode: str = "multi_hot", sparse: bool = False, **kwargs):
        super().__init__(**kwargs)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode not in ("count", "one_hot", "multi_hot"):
            raise ValueError(f"Unknown arg for output_mode: {output_mode}")
        if num_tokens is None:
            raise ValueError(
                "num_tokens must be set to use this layer. If the number of tokens is not known beforehand, use the "
                "IntegerLookup layer instead."
            )
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, numbers.Integral) or num_tokens < 1:
            raise ValueError(f"`num_tokens` must be >= 1. Received: num_tokens={num_tokens}.")
        if sparse:
            raise ValueError("tritonnn has no sparse tensors: CategoryEncoding(sparse=True) is not supported")
        self.num_tokens = int(num_tokens)
        self.output_mode = output_mode
        self.sparse = False
        self.built = True

    def call(self, inputs: Any, count_weights: Any = None) -> torch.Tensor:
        x = torch.as_tensor(inputs)
        if x.is_floating_point():
            x = x.to(torch.int64)
        if count_weights is not None:
            if self.output_mode != "count":
                raise ValueError(
                    "`count_weights` is not used when `output_mode` is not `'count'`. "
                    f"Received `count_weights={count_weights}`."
                )
            count_weights = torch.as_tensor(count_weights, device=x.device)
            if tuple(count_weights.shape) != tuple(x.shape):
                raise ValueError(
                    f"`count_weights` must have the shape of the inputs {tuple(x.shape)}. Received "
                    f"{tuple(count_weights.shape)}"
                )
        if x.numel() and not _capturing(x):
            bad = (x < 0) | (x >= self.num_tokens)
            if bool(bad.any()):
                raise ValueError(
                    f"CategoryEncoding layer {self.name!r} received a category index out of range [0, "
                    f"{self.num_tokens}): num_tokens={self.num_tokens}. Received: indices from {int(x.min())} to "
                    f"{int(x.max())}"
                )
        return encode_categorical(x, self.output_mode, self.num_tokens, self.dtype, count_weights)

    def compute_output_shape(self, input_shape: Any) -> Any:
        input_shape = tuple(input_shape)
        if not input_shape:
            return (self.num_tokens,)
        if self.output_mode == "one_hot" and (input_shape[-1] != 1 or len(input_shape) == 1):
            return (*input_shape, self.num_tokens)
        return (*input_shape[:-1], self.num_tokens)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_tokens": self.num_tokens, "output_mode": self.output_mode}


class Discretization(Layer):
    """Buckets numbers into ranges: index ``i`` for ``bin_boundaries[i-1] <= x < bin_boundaries[i]`` (0 below the
    first boundary, ``len(bin_boundaries)`` from the last), as ``int32`` (``output_mode="int"``) or encoded as in
    :class:`CategoryEncoding` (``one_hot``, ``multi_hot``, ``count``) over ``len(bin_boundaries) + 1`` bins.

    ``num_bins`` instead of ``bin_boundaries``: :meth:`adapt` sets the boundaries to the data's quantiles at
    ``1/num_bins, 2/num_bins...``. They are the exact quantiles (linear interpolation), where Keras computes an
    approximation whose error is bounded by ``epsilon``; ``epsilon`` is kept for the config.

    Args:
        bin_boundaries: a sorted list of floats, or None when ``num_bins`` is given.
        num_bins: the number of bins ``adapt`` makes (a non-negative integer).
        epsilon: Keras' quantile-approximation error (kept in the config, unused).
        output_mode: ``"int"`` (default), ``"one_hot"``, ``"multi_hot"`` or ``"count"``.
        sparse: not supported (must be False).
    """

    def __init__(
        self,
        bin_boundaries: Any = None,
        num_bins: int | None = None,
        epsilon: float = 0.01,
        output_mode: str = "int",
        sparse: bool = False,
        dtype: Any = None,
        name: str | None = None,
    ):
        super().__init__(name=name, dtype=dtype)
        if sparse:
            raise ValueError("tritonnn has no sparse tensors: Discretization(sparse=True) is not supported")
        _check_output_mode(output_mode, ("int", "one_hot", "multi_hot", "count"), "Discretization")
        if num_bins is not None and (
            isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral) or num_bins < 0
        ):
            raise ValueError(f"`num_bins` must be greater than or equal to 0. Received: `num_bins={num_bins}`")
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError(
                "Both `num_bins` and `bin_boundaries` should not be set. "
                f"Received: `num_bins={num_bins}` and `bin_boundaries={bin_boundaries}`"
            )
        if num_bins is None and bin_boundaries is None:
            raise ValueError("You need to set either `num_bins` or `bin_boundaries`.")
        self.num_bins = None if num_bins is None else int(num_bins)
        self.epsilon = epsilon
        self.output_mode = output_mode
        self.sparse = False
        self.bin_boundaries = None
        self._boundaries: torch.Tensor | None = None
        self._copies: dict[Any, torch.Tensor] = {}
        if bin_boundaries is not None:
            self._set_boundaries(bin_boundaries)
        self.built = True

    def _set_boundaries(self, boundaries: Any) -> None:
        values = [float(b) for b in np.asarray(boundaries, dtype="float64").reshape(-1)]
        if any(b > a for a, b in zip(values[1:], values[:-1], strict=False)):
            raise ValueError(f"`bin_boundaries` must be sorted in increasing order. Received: {list(boundaries)}")
        self.bin_boundaries = values
        self._boundaries = torch.tensor(values, dtype=torch.float32, device=config.default_device())
        self._copies = {}

    def adapt(self, data: Any, steps: int | None = None) -> None:
        """Set the boundaries to the quantiles of ``data`` (an array, a tensor, or an iterable of batches, of which
        at most ``steps`` are read) at ``1/num_bins, ..., (num_bins-1)/num_bins``."""
        if self.num_bins is None:
            raise ValueError(
                "Cannot adapt a Discretization layer that has been initialized with `bin_boundaries`, use "
                "`num_bins` instead."
            )
        if isinstance(data, (np.ndarray, torch.Tensor)):
            chunks = [data]
        elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
            chunks = [b for i, b in enumerate(data) if steps is None or i < steps]
        else:
            raise TypeError(f"Unsupported data type for adapt(): {type(data)}")
        values = (
            np.concatenate(
                [
                    np.asarray(c.detach().cpu() if isinstance(c, torch.Tensor) else c, dtype="float64").reshape(-1)
                    for c in chunks
                ]
            )
            if chunks
            else np.zeros(0)
        )
        if values.size == 0:
            raise ValueError("adapt() received no values: there is nothing to compute quantiles from")
        if np.isnan(values).any():
            raise ValueError("adapt() received NaN values: quantiles of NaN are undefined")
        qs = np.arange(1, self.num_bins) / self.num_bins if self.num_bins > 1 else np.zeros(0)
        self._set_boundaries(np.quantile(values, qs).astype("float32"))

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        if self._boundaries is None:
            raise ValueError(
                "You need to either pass the `bin_boundaries` argument at construction time or call "
                "`adapt(dataset)` before you can start using the `Discretization` layer."
            )
        x = inputs if inputs.is_floating_point() else inputs.to(torch.float32)
        boundaries = _on(self._boundaries, self._copies, x.device, x.dtype)
        indices = torch.bucketize(x, boundaries, right=True)
        if self.output_mode == "int":
            return indices.to(torch.int32)
        return encode_categorical(indices, self.output_mode, len(self.bin_boundaries) + 1, self.compute_dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        input_shape = tuple(input_shape)
        if self.output_mode == "int":
            return input_shape
        depth = len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else self.num_bins
        if self.output_mode == "one_hot":
            if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
                return (*input_shape[:-1], depth)
            return (*input_shape, depth)
        return (*input_shape[:-1], depth) if len(input_shape) > 1 else (depth,)

    def get_config(self) -> dict[str, Any]:
        return {
            "bin_boundaries": self.bin_boundaries,
            "num_bins": self.num_bins,
            "epsilon": self.epsilon,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Discretization:
        config = dict(config)
        boundaries = config.get("bin_boundaries")
        if boundaries is not None and config.get("num_bins") is not None:  # an adapted layer: both are set
            del config["bin_boundaries"]
            layer = cls(**config)
            layer._set_boundaries(boundaries)
            return layer
        return cls(**config)


__all__ = ["CategoryEncoding", "Discretization", "Normalization", "Rescaling"]
