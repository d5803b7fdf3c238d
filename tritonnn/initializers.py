"""Keras 3 initializers: classes and string identifiers, with ``seed=``.

Values are drawn on the CPU from a ``torch.Generator`` and then moved, so a seeded initializer gives the same
weights on every device. Unseeded initializers draw from torch's global generator
(see :func:`tritonnn.utils.set_random_seed`).
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import torch

from . import _serialization
from ._registry import known_objects


def compute_fans(shape: tuple[int, ...], input_axes: Any = None, output_axes: Any = None) -> tuple[float, float]:
    """Keras' fans: ``(in, out)`` for a 2-D kernel; receptive field folded in for higher ranks; with both
    ``input_axes`` and ``output_axes``, the products of the sizes of those axes (an einsum-style kernel's)."""
    if input_axes is not None and output_axes is not None:
        try:
            return float(math.prod(shape[a] for a in input_axes)), float(math.prod(shape[a] for a in output_axes))
        except (IndexError, TypeError):
            raise ValueError(
                f"`input_axes` and `output_axes` must be lists of axes of the weight's shape {tuple(shape)}. "
                f"Received: input_axes={input_axes}, output_axes={output_axes}"
            ) from None
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


class Initializer:
    """Base class: ``init(shape, dtype)`` returns a tensor."""

    def __call__(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)


class _Seeded(Initializer):
    def __init__(self, seed: int | None = None):
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"Expected an integer seed or None. Received: seed={seed!r}")
        self.seed = seed

    def _generator(self) -> torch.Generator | None:
        return None if self.seed is None else torch.Generator().manual_seed(self.seed)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class Zeros(Initializer):
    def __call__(self, shape, dtype=torch.float32):
        return torch.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype=torch.float32):
        return torch.ones(shape, dtype=dtype)


class Constant(Initializer):
    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, dtype=torch.float32):
        return torch.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(_Seeded):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=torch.float32):
        out = torch.empty(shape, dtype=torch.float32)
        return out.normal_(self.mean, self.stddev, generator=self._generator()).to(dtype)

    def get_config(self):
        return {"seed": self.seed, "mean": self.mean, "stddev": self.stddev}


class RandomUniform(_Seeded):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=torch.float32):
        out = torch.empty(shape, dtype=torch.float32)
        return out.uniform_(self.minval, self.maxval, generator=self._generator()).to(dtype)

    def get_config(self):
        return {"seed": self.seed, "minval": self.minval, "maxval": self.maxval}


def _truncated_normal(shape, mean, stddev, generator) -> torch.Tensor:
    """Normal samples redrawn until within two standard deviations, as Keras' truncated normal."""
    out = torch.empty(shape, dtype=torch.float32)
    torch.nn.init.trunc_normal_(out, 0.0, 1.0, -2.0, 2.0, generator=generator)
    return out * stddev + mean


class TruncatedNormal(_Seeded):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=torch.float32):
        return _truncated_normal(shape, self.mean, self.stddev, self._generator()).to(dtype)

    def get_config(self):
        return {"seed": self.seed, "mean": self.mean, "stddev": self.stddev}


class VarianceScaling(_Seeded):
    """``scale / fan`` variance, as a truncated normal, an untruncated normal or a uniform (Keras' rule)."""

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
        input_axes: list[int] | None = None,
        output_axes: list[int] | None = None,
    ):
        super().__init__(seed)
        self.input_axes, self.output_axes = input_axes, output_axes
        if scale <= 0.0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: expected fan_in, fan_out or fan_avg. Received: mode={mode}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"Invalid `distribution` argument. Received: distribution={distribution}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, shape, dtype=torch.float32):
        fan_in, fan_out = compute_fans(tuple(shape), self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        var = self.scale / max(1.0, fan)
        gen = self._generator()
        if self.distribution == "truncated_normal":
            # 0.879... is the standard deviation of a unit normal truncated to [-2, 2].
            return _truncated_normal(shape, 0.0, math.sqrt(var) / 0.87962566103423978, gen).to(dtype)
        out = torch.empty(shape, dtype=torch.float32)
        if self.distribution == "untruncated_normal":
            return out.normal_(0.0, math.sqrt(var), generator=gen).to(dtype)
        limit = math.sqrt(3.0 * var)
        return out.uniform_(-limit, limit, generator=gen).to(dtype)

    def get_config(self):
        return {
            "seed": self.seed,
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


def _variance_scaling_class(name: str, scale: float, mode: str, distribution: str) -> type:
    def __init__(self, seed: int | None = None, input_axes: list[int] | None = None, output_axes=None):
        VarianceScaling.__init__(
            self, scale=scale, mode=mode, distribution=distribution, seed=seed, input_axes=input_axes,
            output_axes=output_axes,
        )  # fmt: skip

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config})


GlorotUniform = _variance_scaling_class("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling_class("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling_class("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling_class("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling_class("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling_class("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only)."""

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype=torch.float32):
        if len(shape) != 2:
            raise ValueError(
                "Identity matrix initializer can only be used for 2D matrices. "
                f"Received: shape={tuple(shape)} of rank {len(shape)}."
            )
        return (self.gain * torch.eye(*shape, dtype=torch.float32)).to(dtype)

    def get_config(self):
        return {"gain": self.gain}


class Orthogonal(_Seeded):
    """An orthogonal matrix times ``gain`` (Keras' recipe: the Q of a normal matrix's QR, signs made uniform by
    the diagonal of R; shapes of rank > 2 are flattened to ``(prod(shape[:-1]), shape[-1])``)."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype=torch.float32):
        if len(shape) < 2:
            raise ValueError(
                f"The tensor to initialize must be at least two-dimensional. Received: shape={tuple(shape)} of rank "
                f"{len(shape)}."
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = torch.empty((max(rows, cols), min(rows, cols)), dtype=torch.float32)
        a.normal_(0.0, 1.0, generator=self._generator())
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.t()
        return (self.gain * q.reshape(tuple(shape))).to(dtype)

    def get_config(self):
        return {"seed": self.seed, "gain": self.gain}


IdentityInitializer = Identity  # Keras 3's other names
OrthogonalInitializer = Orthogonal

# Keras 3's lowercase aliases are the classes themselves (``keras.initializers.glorot_uniform(seed=1)``).
zeros, ones, constant, identity, orthogonal = Zeros, Ones, Constant, Identity, Orthogonal
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, glorot_uniform, glorot_normal = VarianceScaling, GlorotUniform, GlorotNormal
he_uniform, he_normal, lecun_uniform, lecun_normal = HeUniform, HeNormal, LecunUniform, LecunNormal

ALL_OBJECTS: dict[str, type] = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
    "identity": Identity,
    "orthogonal": Orthogonal,
}
_BY_CLASS_NAME = {cls.__name__: cls for cls in ALL_OBJECTS.values()}


def serialize(initializer: Initializer | None) -> dict[str, Any] | None:
    """Keras' layout: ``{"module": "keras.initializers", "class_name", "config", "registered_name": None}`` for a
    built-in class (a registered or user class: its module and registered name), a function as Keras' function
    record (a lambda as its bytecode, which is never read back), None for None."""
    return _serialization.serialize_keras_object(initializer)


def _class_of(config: dict[str, Any], custom_objects: dict[str, Any] | None, builtins: dict[str, Any]) -> Any:
    """The class a ``{"class_name", "registered_name"...}`` dict names, with Keras' precedence: the registry, the
    active custom-object scope and ``custom_objects`` by registered name, then by class name, then ``builtins`` by
    class name (the earlier tritonnn layout, without ``module``/``registered_name``, resolves the same way)."""
    user = known_objects(custom_objects)
    for key in (config.get("registered_name"), config.get("class_name")):
        if isinstance(key, str) and key in user:
            return user[key]
    return builtins.get(config.get("class_name") or "")


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Initializer:
    """An initializer from :func:`serialize`'s dict (Keras' layout or tritonnn's earlier ``{"class_name",
    "config"}``) or a name; ``custom_objects`` maps class names to classes."""
    if isinstance(config, dict) and config.get("class_name") in ("function", "__lambda__"):
        return _serialization.deserialize_value(config, custom_objects)  # a function (a lambda is refused)
    if isinstance(config, str) and config in known_objects(custom_objects):
        return known_objects(custom_objects)[config]()
    if isinstance(config, dict):
        cls = _class_of(config, custom_objects, _BY_CLASS_NAME)
        if cls is None:
            raise ValueError(f"Unknown initializer class: {config.get('class_name')!r}")
        return cls.from_config(config.get("config") or {})
    if not isinstance(config, str):
        raise ValueError(f"Could not interpret initializer config: {config!r}")
    return get(config)


def get(identifier: Any) -> Any:
    """An initializer from a Keras string (``"glorot_uniform"``), a class name, a config dict, an instance, or a
    function ``fn(shape, dtype=None)`` (returned as it is)."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = ALL_OBJECTS.get(identifier) or _BY_CLASS_NAME.get(identifier)
        if cls is not None:
            return cls()
        names = sorted(ALL_OBJECTS)
        close = difflib.get_close_matches(identifier, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown initializer: {identifier!r}.{hint} Valid names: {names}")
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier) and not isinstance(identifier, type):
        return identifier  # a function ``fn(shape, dtype=None)``, as Keras takes it
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")
