"""Lambda (a function as a layer) and Identity."""

from __future__ import annotations

import inspect
import types
from typing import Any

import torch

from .. import _serialization
from .layer import Layer


class FloatAutocast:
    """A layer mixin: float inputs are cast to the compute dtype (mixed precision); integer and bool inputs pass as
    they are, as Keras' autocasting does (tritonnn's default also casts integers, for layers that compute in
    floats)."""

    def _autocast(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != self.compute_dtype:
            return x.to(self.compute_dtype)
        return x


class Identity(FloatAutocast, Layer):
    """Returns its inputs unchanged (a tensor, or a list or dict of tensors): a placeholder in a model."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.built = True

    def call(self, inputs: Any) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


_LAMBDA_REFUSED = (
    "Requested the deserialization of a `Lambda` layer whose `{what}` is a Python lambda. Rebuilding it would run "
    "Python bytecode stored in the config: Keras refuses it in safe mode (its default), and tritonnn refuses it "
    "whatever safe_mode is. Define the function with `def` and pass it in `custom_objects` (or a "
    "`custom_object_scope`, or register it with `@tritonnn.saving.register_keras_serializable()`)."
)


def _serialize_function(fn: Any) -> Any:
    if isinstance(fn, types.FunctionType) and fn.__name__ == "<lambda>":
        return _serialization.serialize_lambda(fn)
    return _serialization.serialize_keras_object(fn)


def _deserialize_function(config: Any, what: str, custom_objects: dict[str, Any] | None) -> Any:
    if isinstance(config, dict) and config.get("class_name") == "__lambda__":
        raise ValueError(_LAMBDA_REFUSED.format(what=what))
    return _serialization.deserialize_value(config, custom_objects)


def _parameters(fn: Any) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        return set()


class Lambda(FloatAutocast, Layer):
    """Wraps a function as a layer: ``Lambda(lambda x: x ** 2)``.

    ``function(inputs, **arguments)`` is called on the layer's inputs (with ``training=`` and ``mask=`` too when
    the function takes them). Prefer a ``Layer`` subclass for anything with weights or state.

    Saving: a named function is saved by its name and found again through ``custom_objects``, a
    ``custom_object_scope`` or ``register_keras_serializable``. A Python lambda is saved as Keras saves it (its
    bytecode), but loading it is refused with a ``ValueError``, as Keras refuses it in safe mode, its default;
    tritonnn never runs code from a file, so ``safe_mode=False`` does not lift it.

    Args:
        function: the function; it takes the input tensor (or list/dict of tensors) first.
        output_shape: optional, the output shape without the batch dimension (a tuple), or a function of the
            input shape returning the whole output shape. Used by ``compute_output_shape``; without it the shape
            is found by calling the function.
        mask: Keras' output mask; tritonnn has no mask propagation, so only None is accepted.
        arguments: optional dict of keyword arguments passed to the function.
    """

    def __init__(
        self,
        function: Any,
        output_shape: Any = None,
        mask: Any = None,
        arguments: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Expected `function` to be callable. Received: function={function!r}")
        if mask is not None:
            raise ValueError(
                "Lambda(mask=...) is not supported: tritonnn has no mask propagation (pass the mask as a tensor to "
                f"the layers that take one). Received: mask={mask!r}"
            )
        if arguments is not None and not isinstance(arguments, dict):
            raise ValueError(f"Expected `arguments` to be a dict or None. Received: arguments={arguments!r}")
        if output_shape is not None and not callable(output_shape) and not isinstance(output_shape, (list, tuple)):
            raise ValueError(
                f"Expected `output_shape` to be a tuple, a function or None. Received: output_shape={output_shape!r}"
            )
        self.function = function
        self.arguments = dict(arguments or {})
        self.mask = None
        self._output_shape_arg = tuple(output_shape) if isinstance(output_shape, list) else output_shape
        params = _parameters(function)
        self._fn_expects_training_arg = "training" in params
        self._fn_expects_mask_arg = "mask" in params
        self.built = True

    def call(self, inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        kwargs = dict(self.arguments)
        if self._fn_expects_mask_arg:
            kwargs["mask"] = mask
        if self._fn_expects_training_arg:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = self._output_shape_arg
        if shape is None:
            return super().compute_output_shape(input_shape)
        if callable(shape):
            return shape(input_shape)
        first = input_shape
        while isinstance(first, (list, tuple)) and first and isinstance(first[0], (list, tuple)):
            first = first[0]
        batch = first[0] if isinstance(first, (list, tuple)) and first else None
        if shape and all(isinstance(s, (list, tuple)) for s in shape):
            return type(shape)((batch, *s) for s in shape)
        return (batch, *shape)

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {**super().get_config(), "function": _serialize_function(self.function)}
        if self._output_shape_arg is not None:
            shape = self._output_shape_arg
            cfg["output_shape"] = _serialize_function(shape) if callable(shape) else shape
        cfg["arguments"] = _serialization.serialize_keras_object(self.arguments)
        return cfg

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None, safe_mode: bool | None = None
    ) -> Lambda:
        """Rebuild from :meth:`get_config`: functions by name (``custom_objects``, the active
        ``custom_object_scope``, the registry, Keras' built-ins); a Python lambda is refused (``ValueError``)
        whatever ``safe_mode`` is."""
        config = dict(config)
        if "function" not in config:
            raise ValueError(f"A Lambda config needs a 'function' entry. Received: {config!r}")
        config["function"] = _deserialize_function(config["function"], "function", custom_objects)
        if "output_shape" in config:
            shape = config["output_shape"]
            if isinstance(shape, dict):
                shape = _deserialize_function(shape, "output_shape", custom_objects)
            elif isinstance(shape, list) and all(d is None or isinstance(d, int) for d in shape):
                shape = tuple(shape)
            config["output_shape"] = shape
        if "arguments" in config:
            config["arguments"] = _serialization.deserialize_value(config["arguments"], custom_objects)
        return cls(**config)


__all__ = ["Identity", "Lambda"]
