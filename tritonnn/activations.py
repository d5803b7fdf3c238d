"""Keras 3 activation functions: ``keras.activations.relu``, ``sigmoid``, ``softmax``..., ``get``, ``serialize``,
``deserialize``.

Each function takes a tensor (or anything ``ops.convert_to_tensor`` takes) and returns a torch tensor, with Keras'
arguments and defaults. The element-wise ones that ``tritonnn.kernels.activations`` tabulates are computed from
that table, and a ``Dense(activation=keras.activations.relu)`` (or any function of :data:`FUSED` passed as the
activation) runs exactly as ``activation="relu"``: in the dense kernel's fused epilogue. Any other callable
(these functions with other arguments, a user's function) runs after the dense op, as in Keras.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from . import _registry, config, kernels
from ._convert import convert_to_tensor
from .kernels.activations import LEAKY_RELU_SLOPE, activation_reference


def _x(x: Any) -> torch.Tensor:
    """A floating tensor (integers become floatx, as Keras' activations compute in floats)."""
    t = convert_to_tensor(x)
    return t if t.is_floating_point() else t.to(config.standardize_dtype(None))


def relu(x: Any, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0) -> torch.Tensor:
    """``max(x, 0)``; Keras' extras: ``negative_slope`` below ``threshold``, a ceiling ``max_value``."""
    x = _x(x)
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return activation_reference("relu", x)
    if negative_slope != 0.0 and max_value is None and threshold == 0.0:
        return F.leaky_relu(x, negative_slope)
    negative = F.relu(threshold - x) if negative_slope != 0.0 else None
    y = torch.where(x > threshold, x, torch.zeros_like(x)) if threshold != 0.0 else F.relu(x)
    if max_value is not None:
        y = torch.clamp(y, 0.0, max_value)
    if negative is not None:
        y = y - negative_slope * negative
    return y


def leaky_relu(x: Any, negative_slope: float = 0.2) -> torch.Tensor:
    x = _x(x)
    if negative_slope == LEAKY_RELU_SLOPE:
        return activation_reference("leaky_relu", x)
    return F.leaky_relu(x, negative_slope)


def relu6(x: Any) -> torch.Tensor:
    return activation_reference("relu6", _x(x))


def softmax(x: Any, axis: int = -1) -> torch.Tensor:
    """Softmax over ``axis``; the output keeps its logits, so a cross-entropy on it takes the logits path (Keras'
    ``_keras_logits``)."""
    z = _x(x)
    y = kernels.softmax(z, axis=axis)
    if axis in (-1, z.ndim - 1):
        y._tritonnn_logits = z
    return y


def log_softmax(x: Any, axis: int = -1) -> torch.Tensor:
    return kernels.log_softmax(_x(x), axis=axis)


def elu(x: Any, alpha: float = 1.0) -> torch.Tensor:
    x = _x(x)
    return activation_reference("elu", x) if alpha == 1.0 else F.elu(x, alpha)


def selu(x: Any) -> torch.Tensor:
    return activation_reference("selu", _x(x))


def softplus(x: Any) -> torch.Tensor:
    return activation_reference("softplus", _x(x))


def softsign(x: Any) -> torch.Tensor:
    return activation_reference("softsign", _x(x))


def soft_shrink(x: Any, threshold: float = 0.5) -> torch.Tensor:
    return F.softshrink(_x(x), threshold)


def sparse_plus(x: Any) -> torch.Tensor:
    """0 below -1, ``(x + 1)**2 / 4`` in (-1, 1), ``x`` from 1."""
    x = _x(x)
    return torch.where(x <= -1, torch.zeros_like(x), torch.where(x < 1, 0.25 * (x + 1) ** 2, x))


def silu(x: Any) -> torch.Tensor:
    """``x * sigmoid(x)`` (also ``swish``)."""
    return activation_reference("silu", _x(x))


def squareplus(x: Any, b: float = 4) -> torch.Tensor:
    x = _x(x)
    return (x + torch.sqrt(x * x + b)) / 2


def gelu(x: Any, approximate: bool = False) -> torch.Tensor:
    """Gaussian error linear unit; Keras' activation defaults to the exact (erf) form."""
    return activation_reference("gelu_tanh" if approximate else "gelu", _x(x))


def celu(x: Any, alpha: float = 1.0) -> torch.Tensor:
    return F.celu(_x(x), alpha)


def glu(x: Any, axis: int = -1) -> torch.Tensor:
    """Gated linear unit: the first half of ``axis`` times the sigmoid of the second half."""
    x = _x(x)
    if x.shape[axis] % 2:
        raise ValueError(f"glu needs an even size along axis {axis}. Received: x.shape={tuple(x.shape)}")
    return F.glu(x, dim=axis)


def tanh(x: Any) -> torch.Tensor:
    return activation_reference("tanh", _x(x))


def tanh_shrink(x: Any) -> torch.Tensor:
    return F.tanhshrink(_x(x))


def hard_tanh(x: Any) -> torch.Tensor:
    return F.hardtanh(_x(x), -1.0, 1.0)


def hard_shrink(x: Any, threshold: float = 0.5) -> torch.Tensor:
    return F.hardshrink(_x(x), threshold)


def threshold(x: Any, threshold: float, default_value: float) -> torch.Tensor:
    """``x`` where ``x > threshold``, else ``default_value`` (Keras gives neither a default)."""
    return F.threshold(_x(x), threshold, default_value)


def sigmoid(x: Any) -> torch.Tensor:
    return activation_reference("sigmoid", _x(x))


def exponential(x: Any) -> torch.Tensor:
    return activation_reference("exponential", _x(x))


def hard_sigmoid(x: Any) -> torch.Tensor:
    """``relu6(x + 3) / 6``, Keras 3's definition."""
    return activation_reference("hard_sigmoid", _x(x))


def log_sigmoid(x: Any) -> torch.Tensor:
    return F.logsigmoid(_x(x))


def sparse_sigmoid(x: Any) -> torch.Tensor:
    """0 below -1, ``(x + 1) / 2`` in (-1, 1), 1 from 1."""
    return torch.clamp(0.5 * (_x(x) + 1), 0.0, 1.0)


def hard_silu(x: Any) -> torch.Tensor:
    """``x * hard_sigmoid(x)`` (also ``hard_swish``)."""
    return activation_reference("hard_silu", _x(x))


def linear(x: Any) -> torch.Tensor:
    """The identity (what ``activation=None`` means)."""
    return convert_to_tensor(x)


def mish(x: Any) -> torch.Tensor:
    return activation_reference("mish", _x(x))


def sparsemax(x: Any, axis: int = -1) -> torch.Tensor:
    """The Euclidean projection of ``x`` onto the probability simplex along ``axis`` (sparse probabilities)."""
    z = _x(x).movedim(axis, -1)
    z_sorted = torch.sort(z, dim=-1, descending=True).values
    cumsum = torch.cumsum(z_sorted, dim=-1)
    r = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    support = z_sorted - (cumsum - 1) / r > 0
    k = support.sum(dim=-1, keepdim=True).clamp(min=1)
    tau = (torch.gather(cumsum, -1, k - 1) - 1) / k.to(z.dtype)
    return torch.clamp(z - tau, min=0).movedim(-1, axis)


swish = silu
hard_swish = hard_silu

# The functions that are the dense kernel's fused activations when called with their defaults (which is how a
# layer calls its activation): function -> the name Dense runs them under.
FUSED: dict[Callable[..., Any], str] = {
    linear: "linear",
    relu: "relu",
    relu6: "relu6",
    leaky_relu: "leaky_relu",
    elu: "elu",
    selu: "selu",
    gelu: "gelu",
    silu: "silu",
    sigmoid: "sigmoid",
    hard_sigmoid: "hard_sigmoid",
    hard_silu: "hard_silu",
    tanh: "tanh",
    softplus: "softplus",
    softsign: "softsign",
    mish: "mish",
    exponential: "exponential",
    softmax: "softmax",
    log_softmax: "log_softmax",
}

_FUNCTIONS = (
    relu, leaky_relu, relu6, softmax, celu, elu, selu, softplus, softsign, squareplus, soft_shrink, sparse_plus,
    silu, gelu, glu, tanh, tanh_shrink, threshold, sigmoid, sparse_sigmoid, exponential, hard_sigmoid, hard_silu,
    hard_tanh, hard_shrink, linear, mish, log_softmax, log_sigmoid, sparsemax,
)  # fmt: skip
# Keras' names: each function's own name, plus the aliases swish and hard_swish.
ALL_OBJECTS: dict[str, Callable[..., Any]] = {
    **{fn.__name__: fn for fn in _FUNCTIONS},
    "swish": silu,
    "hard_swish": hard_silu,
}


def fused_name(activation: Any) -> str | None:
    """The name the dense kernel fuses ``activation`` under, when it is one of :data:`FUSED`'s functions; else None."""
    try:
        return FUSED.get(activation)
    except TypeError:  # an unhashable callable
        return None


def get(identifier: Any) -> Callable[..., Any]:
    """An activation function from None (``linear``), a Keras name, a serialized config or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret activation function identifier: {identifier!r}")


def serialize(activation: Any) -> Any:
    """A built-in function serializes to its name (``"relu"``), as in Keras; another function to
    ``{"class_name": "function", "config": <its name>, "module": <its module>}``, which :func:`deserialize` resolves
    through ``custom_objects``."""
    name = getattr(activation, "__name__", None)
    if name in ALL_OBJECTS and ALL_OBJECTS[name] is activation:
        return name
    if isinstance(activation, types.FunctionType) and name and name != "<lambda>":
        registered = _registry.get_registered_name(activation)  # "package>name" when registered
        return {
            "module": activation.__module__,
            "class_name": "function",
            "config": name,
            "registered_name": registered,
        }
    raise ValueError(
        f"Unknown activation function {activation!r} cannot be serialized: use a keras.activations function or a "
        "named function (pass it in `custom_objects` when loading)."
    )


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Callable[..., Any]:
    """The function a name or :func:`serialize`'s dict stands for: ``custom_objects``, an active
    ``custom_object_scope`` and the registry of ``register_keras_serializable`` first, then Keras' names."""
    custom = _registry.known_objects(custom_objects)
    if isinstance(config, dict):
        if config.get("class_name") != "function" or not isinstance(config.get("config"), str):
            raise ValueError(
                'Expected an activation config {"class_name": "function", "config": <name>}. '
                f"Received: config={config!r}"
            )
        name = config.get("registered_name") or config["config"]
        fn = custom.get(name) or custom.get(config["config"]) or ALL_OBJECTS.get(config["config"])
        if fn is None:
            raise ValueError(
                f"Could not locate the activation function {name!r}: pass it in `custom_objects` when loading."
            )
        return fn
    if isinstance(config, str):
        fn = custom.get(config) or ALL_OBJECTS.get(config)
        if fn is not None:
            return fn
        close = difflib.get_close_matches(config, list(ALL_OBJECTS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown activation: {config!r}.{hint} Valid names: {sorted(ALL_OBJECTS)}")
    raise ValueError(f"Could not interpret activation function identifier: {config!r}")


__all__ = sorted([*ALL_OBJECTS, "deserialize", "get", "serialize"])
