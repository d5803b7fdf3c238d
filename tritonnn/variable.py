"""``keras.Variable`` and ``keras.name_scope``: a layer's weights as Keras variables that are torch Parameters.

A :class:`Variable` is a ``torch.nn.Parameter`` (so every torch API that takes a parameter takes it, and torch ops
on it cost what they cost on a parameter: ``Parameter``'s disabled ``__torch_function__`` is kept, and an op returns
a plain tensor) with Keras' attributes and methods: ``assign``/``assign_add``/``assign_sub`` (in place: the optimizer's
flat-buffer views stay views), ``numpy()``, ``value``, ``name``, ``path``, ``trainable``, ``constraint``,
``regularizer``, ``aggregation``. ``Layer.add_weight`` creates them; ``Variable(initializer, shape=...)`` makes one
on its own. ``dtype`` and ``shape`` stay torch's (a ``torch.dtype``, a ``torch.Size``): see
``docs/keras_differences.md`` (``keras.backend.standardize_dtype(v.dtype)`` gives Keras' ``"float32"`` in both).

A variable's ``path`` is the name scopes open when it is created, then its name, as in Keras: ``name_scope`` blocks
nest (``with name_scope("a"): with name_scope("b"):`` gives ``a/b/<name>``), and a layer opens one with its own name
while it builds, calls and creates weights, under the path it was first built or called at; so a ``Dense`` in a
``Sequential`` has ``sequential/dense/kernel``, and one called on a Functional model's ``Input`` ``dense/kernel``.
"""

from __future__ import annotations

import copy
import numbers
import threading
from typing import Any

import numpy as np
import torch

from . import config, initializers
from ._convert import convert_to_tensor
from .kernels import FLAT_GRAD_ATTR
from .naming import unique_name
from .ops import convert_to_numpy

_AGGREGATIONS = (None, "none", "mean", "sum", "only_first_replica")
_SYNCHRONIZATIONS = (None, "none", "on_read", "on_write", "auto")


# ---- name scopes -------------------------------------------------------------------------------------------------

_SCOPES = threading.local()  # per thread, as Keras' global state


def scope_stack() -> list[name_scope]:
    """This thread's open name scopes, innermost last (a layer's call pushes its scope on it directly: the same as
    ``with layer_scope:``, without the context manager's cost on every call)."""
    stack = getattr(_SCOPES, "stack", None)
    if stack is None:
        stack = _SCOPES.stack = []
    return stack


def check_name(name: Any) -> None:
    """Keras' rule for a variable's or a scope's name: a string without ``/`` (a ``ValueError`` otherwise)."""
    if not isinstance(name, str) or "/" in name:
        raise ValueError(f"Argument `name` must be a string and cannot contain character `/`. Received: name={name}")


class name_scope:  # noqa: N801 - Keras' spelling (``keras.name_scope``)
    """A block whose variables' paths start with the names of the scopes open around it (``keras.name_scope``).

    Args:
        name: the scope's name (a string without ``/``).
        caller: the object opening the scope (a layer opens one with itself); with ``deduplicate``, a scope of the
            same name and caller directly inside it adds nothing, and one whose caller has a ``_parent_path`` (a
            layer already built or called somewhere) starts from that path instead of the open scopes.
        deduplicate: see ``caller``.
        override_parent: a path that replaces the scopes open around this one (``"a/b"``; ``""`` for none).
    """

    __slots__ = ("name", "caller", "deduplicate", "override_parent", "_pop_on_exit")

    def __init__(
        self, name: str, caller: Any = None, deduplicate: bool = True, override_parent: str | None = None
    ) -> None:
        check_name(name)
        self.name = name
        self.caller = caller
        self.deduplicate = deduplicate
        if override_parent is None and deduplicate:
            override_parent = getattr(caller, "_parent_path", None)
        self.override_parent = override_parent
        self._pop_on_exit = False

    def __enter__(self) -> name_scope:
        stack = scope_stack()
        if self.deduplicate and stack and self.caller is not None:
            top = stack[-1]
            if top.caller is self.caller and top.name == self.name:
                return self  # the caller's scope is open already (a layer's build inside its call)
        stack.append(self)
        self._pop_on_exit = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pop_on_exit:
            self._pop_on_exit = False
            stack = scope_stack()
            if stack:
                stack.pop()

    def __repr__(self) -> str:
        return f"<name_scope name={self.name!r} path={current_path()!r}>"


def current_path() -> str:
    """The path of the open scopes (``"a/b"``; ``""`` outside every scope): what a new variable's path starts with."""
    parts: list[str] = []
    for scope in getattr(_SCOPES, "stack", None) or ():
        if scope.override_parent is not None:
            parts = [p for p in scope.override_parent.split("/") if p]
        parts.append(scope.name)
    return "/".join(parts)


def _child_path(name: str) -> str:
    parent = current_path()
    return f"{parent}/{name}" if parent else name


# ---- the variable --------------------------------------------------------------------------------------------------


def _standardize_shape(shape: Any, name: str) -> tuple[int, ...]:
    """Keras' shape checks for a variable made from an initializer: ints >= 0, no ``None``."""
    if shape is None:
        raise ValueError("Undefined shapes are not supported.")
    if not isinstance(shape, (tuple, list, torch.Size)):
        if not hasattr(shape, "__iter__"):
            raise ValueError(f"Cannot convert '{shape}' to a shape.")
    dims = tuple(shape)
    if any(d is None for d in dims):
        raise ValueError(
            "Shapes used to initialize variables must be fully-defined (no `None` dimensions). Received: "
            f"shape={dims} for variable path='{name}'"
        )
    out = []
    for d in dims:
        invalid = f"Cannot convert '{dims}' to a shape. Found invalid dimension '{d}' of type '{type(d)}'. "
        if isinstance(d, (str, float, bool)):
            raise ValueError(invalid)
        try:
            d = int(d)
        except (TypeError, ValueError) as e:
            raise ValueError(invalid) from e
        if d < 0:
            raise ValueError(f"Cannot convert '{dims}' to a shape. Negative dimensions are not allowed.")
        out.append(d)
    return tuple(out)


def dtype_name(dtype: torch.dtype) -> str:
    """Keras' name of a torch dtype (``torch.float32`` -> ``"float32"``), what ``keras.backend.standardize_dtype``
    gives for a variable's ``dtype``."""
    return str(dtype).rsplit(".", 1)[-1]


def initial_value(initializer: Any, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """``initializer(shape, dtype)`` as a tensor of ``dtype``: a tritonnn ``Initializer`` (or its name or config)
    gets the torch dtype, as everywhere in tritonnn; any other callable gets Keras' dtype name (``"float32"``), as a
    function written for Keras expects."""
    if isinstance(initializer, (str, dict, type)):
        initializer = initializers.get(initializer)
    if isinstance(initializer, initializers.Initializer):
        value = initializer(shape, dtype)
    elif callable(initializer):
        value = initializer(shape, dtype=dtype_name(dtype))
    else:
        raise ValueError(f"Could not interpret initializer identifier: {initializer!r}")
    value = convert_to_tensor(value, dtype) if not isinstance(value, torch.Tensor) else value
    return value if value.dtype == dtype else value.to(dtype)


class Variable(torch.nn.Parameter):
    """A Keras variable: a ``torch.nn.Parameter`` with Keras' attributes (``keras.Variable``).

    Args:
        initializer: the initial value (an array, a tensor, a number or a nested list; copied), or an initializer
            (a name such as ``"zeros"``, an ``Initializer``, or a callable ``f(shape, dtype)``), which needs ``shape``.
        shape: the variable's shape, for an initializer (ignored for a value, which has its own).
        dtype: the dtype (default: the value's, or floatx for an initializer).
        trainable: whether training updates it (``requires_grad``). Torch lets only float and complex tensors
            require gradients: an integer variable needs ``trainable=False`` (``RuntimeError`` otherwise, as in Keras
            on torch).
        autocast: kept as Keras' attribute (a layer casts its inputs, not its weights, to the compute dtype).
        aggregation: ``"none"`` (``None``), ``"mean"``, ``"sum"`` or ``"only_first_replica"``: how data-parallel
            training combines the replicas' values (an annotation).
        synchronization: ``"auto"``, ``"none"`` (``None``), ``"on_read"`` or ``"on_write"`` (an annotation).
        name: the variable's name, without ``/`` (automatic names otherwise: ``variable``, ``variable_1``...).
        layout: a sharding layout; only ``None`` (tritonnn's data parallelism replicates every variable).

    ``path`` is the open :class:`name_scope` paths, then ``name``. The value lives on
    ``tritonnn.config.default_device()``.
    """

    def __new__(
        cls,
        initializer: Any,
        shape: Any = None,
        dtype: Any = None,
        trainable: bool = True,
        autocast: bool = True,
        aggregation: str | None = "none",
        synchronization: str | None = "auto",
        name: str | None = None,
        layout: Any = None,
        **kwargs: Any,
    ) -> Variable:
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to Variable: {kwargs}")
        if name is None:
            name = unique_name("variable")
        check_name(name)
        if aggregation not in _AGGREGATIONS:
            raise ValueError(
                "Invalid value for argument `aggregation`. Expected one of `None`, `'none'`, `'mean'`, `'sum'`, "
                f"`'only_first_replica'`. Received: aggregation={aggregation}"
            )
        if synchronization not in _SYNCHRONIZATIONS:
            raise ValueError(
                "Invalid value for argument `synchronization`. Expected one of `None`, `'none'`, `'on_read'`, "
                f"`'on_write'`, `'auto'`. Received: synchronization={synchronization}"
            )
        if layout is not None:
            raise ValueError(
                "`layout` is not supported by tritonnn (its data parallelism replicates every variable). "
                f"Received: layout={layout!r}"
            )
        path = _child_path(name)
        target = None if dtype is None else config.standardize_dtype(dtype)
        if isinstance(initializer, str) or callable(initializer):
            if shape is None:
                raise ValueError(
                    "When creating a Variable from an initializer, the `shape` argument should be specified. "
                    f"Received: initializer={initializer} and shape={shape}"
                )
            shape = _standardize_shape(shape, path)
            value = initial_value(initializer, shape, target or config.standardize_dtype(None))
        else:
            if isinstance(initializer, torch.Tensor):
                value = initializer.detach()
            elif isinstance(initializer, (np.ndarray, np.generic, numbers.Number, list, tuple)):
                value = convert_to_tensor(initializer)
            else:
                value = convert_to_tensor(np.asarray(initializer))  # anything with __array__ (another Variable)
            value = value.to(target) if target is not None and value.dtype != target else value
            value = value.to(config.default_device(), copy=True)  # its own memory, never an alias of the value given
        value = value.to(config.default_device())
        return from_tensor(
            value, name, path, trainable, autocast, aggregation or "none", synchronization or "none", cls=cls
        )

    # ---- Keras' attributes ---------------------------------------------------------------------------------------
    @property
    def name(self) -> str:  # torch.Tensor's own `name` (its graph name) is unused for parameters
        """The variable's name (``"kernel"``)."""
        return self._keras_name

    @property
    def path(self) -> str:
        """The name scopes it was created in and its name (``"sequential/dense/kernel"``)."""
        return self._keras_path

    @property
    def _tritonnn_path(self) -> str:  # the attribute tritonnn's weights had before they were Variables
        return self._keras_path

    @property
    def trainable(self) -> bool:
        """Whether training updates it: ``requires_grad`` (settable; ``layer.trainable = ...`` sets it too)."""
        return self.requires_grad

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.requires_grad_(bool(value))

    @property
    def value(self) -> torch.Tensor:
        """The current value: the variable itself (a tensor, autograd-connected as in Keras on torch)."""
        return self

    @property
    def autocast(self) -> bool:
        return self._autocast

    @property
    def aggregation(self) -> str:
        """How data-parallel training combines the replicas' values (``"none"``, ``"mean"``, ``"sum"``...)."""
        return self._aggregation

    @property
    def synchronization(self) -> str:
        return self._synchronization

    @property
    def constraint(self) -> Any:
        """A projection the optimizer applies after every update (``add_weight(constraint=...)``), or None."""
        return self._constraint

    @constraint.setter
    def constraint(self, value: Any) -> None:
        if value is not None and not callable(value):
            raise ValueError(
                "Invalid value for attribute `constraint`. Expected a callable (such as a "
                f"`keras.constraints.Constraint` instance) or `None`. Received: constraint={value}"
            )
        self._constraint = value

    @property
    def regularizer(self) -> Any:
        """The penalty ``add_weight(regularizer=...)`` gave it (added to the layer's ``losses``), or None."""
        return self._regularizer

    @regularizer.setter
    def regularizer(self, value: Any) -> None:
        if value is not None and not callable(value):
            raise ValueError(
                "Invalid value for attribute `regularizer`. Expected a callable (such as a "
                f"`keras.regularizers.Regularizer` instance) or `None`. Received: regularizer={value}"
            )
        self._regularizer = value

    @property
    def overwrite_with_gradient(self) -> bool:
        return self._overwrite_with_gradient

    @overwrite_with_gradient.setter
    def overwrite_with_gradient(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"`overwrite_with_gradient` must be a boolean. Received: {value}")
        if value:
            raise ValueError("`overwrite_with_gradient=True` (float8 training) is not supported by tritonnn")
        self._overwrite_with_gradient = value

    # ---- values ------------------------------------------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:  # type: ignore[override]
        """A copy of the value on the host (bfloat16 as ``ml_dtypes.bfloat16`` where installed, as Keras gives)."""
        return convert_to_numpy(self)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        value = self.numpy()
        return value if dtype is None else value.astype(dtype, copy=False)

    def _coerce(self, value: Any) -> torch.Tensor:
        """``value`` as a tensor on this variable's device, in the dtype Keras' conversion gives it."""
        if isinstance(value, torch.Tensor):
            value = value.detach()
        elif isinstance(value, (np.ndarray, np.generic, numbers.Number, list, tuple)):
            value = convert_to_tensor(value)
        else:
            value = convert_to_tensor(np.asarray(value))
        return value if value.device == self.device else value.to(self.device)

    def assign(self, value: Any) -> torch.Tensor:
        """Write ``value`` into the variable, in place (also under ``torch.no_grad`` and after an optimizer made the
        variable a view of its flat buffer: the optimizer then trains from the new value); returns the value
        written. Its shape must be the variable's (``ValueError`` otherwise)."""
        value = self._coerce(value)
        if value.dtype != self.dtype:
            value = value.to(self.dtype)
        if tuple(value.shape) != tuple(self.shape):
            raise ValueError(
                "The shape of the target variable and the shape of the target value in `variable.assign(value)` must "
                f"match. variable.shape={tuple(self.shape)}, Received: value.shape={tuple(value.shape)}. "
                f"Target variable: {self!r}"
            )
        with torch.no_grad():
            self.copy_(value)
        return value

    def assign_add(self, value: Any) -> torch.Tensor:
        """``assign(variable + value)``: ``value`` broadcasts to the variable's shape; returns the new value."""
        return self.assign(torch.add(self.detach(), self._coerce(value)))

    def assign_sub(self, value: Any) -> torch.Tensor:
        """``assign(variable - value)``: ``value`` broadcasts to the variable's shape; returns the new value."""
        return self.assign(torch.sub(self.detach(), self._coerce(value)))

    def __bool__(self) -> bool:
        raise TypeError("A Keras Variable cannot be used as a boolean.")

    def __float__(self) -> float:
        if self.dim() > 0:
            raise TypeError(f"Only scalar arrays can be converted to Python scalars. Got: shape={tuple(self.shape)}")
        return float(self.detach())

    def __int__(self) -> int:
        if self.dim() > 0:
            raise TypeError(f"Only scalar arrays can be converted to Python scalars. Got: shape={tuple(self.shape)}")
        return int(self.detach())

    def __repr__(self, *args: Any, **kwargs: Any) -> str:
        dtype = dtype_name(self.dtype)
        return f"<Variable path={self.path}, shape={tuple(self.shape)}, dtype={dtype}, value={self.numpy()}>"

    __str__ = __repr__

    # ---- copies --------------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        """The Python attributes a copy keeps (Keras' and tritonnn's), not the mark of the optimizer whose flat
        buffers hold this variable (``kernels.FLAT_GRAD_ATTR``): the copy's ``.grad`` is no optimizer's."""
        return {k: v for k, v in self.__dict__.items() if k != FLAT_GRAD_ATTR}

    def __deepcopy__(self, memo: dict[int, Any]) -> Variable:
        if id(self) in memo:
            return memo[id(self)]
        result = torch.nn.Parameter.__new__(
            type(self), self.data.clone(memory_format=torch.preserve_format), self.requires_grad
        )
        memo[id(self)] = result
        result.__dict__.update(copy.deepcopy(self._state(), memo))
        return result

    def __reduce_ex__(self, protocol: int) -> tuple[Any, ...]:
        data = self.data
        if data.untyped_storage().nbytes() != data.numel() * data.element_size():
            data = data.clone()  # a view of an optimizer's flat buffer: pickle this variable's elements only
        return (_rebuild_variable, (type(self), data, self.requires_grad, self._state()))


def from_tensor(
    value: torch.Tensor,
    name: str,
    path: str,
    trainable: bool = True,
    autocast: bool = True,
    aggregation: str = "none",
    synchronization: str = "auto",
    requires_grad: bool | None = None,
    cls: type[Variable] | None = None,
) -> Variable:
    """A :class:`Variable` holding ``value`` itself (no copy, no checks), named ``name`` at ``path``: what
    ``Layer.add_weight`` makes. ``requires_grad`` defaults to ``trainable`` (a layer that is frozen creates its weights
    ``trainable=True``, the flag ``layer.trainable = True`` restores, but not requiring grad)."""
    v = torch.nn.Parameter.__new__(cls or Variable, value, bool(trainable if requires_grad is None else requires_grad))
    v._keras_name = name
    v._keras_path = path
    v._tritonnn_trainable = bool(trainable)  # trainable when created: Layer.trainable = True restores it
    v._autocast = bool(autocast)
    v._aggregation = aggregation
    v._synchronization = synchronization
    v._regularizer = None
    v._constraint = None
    v._overwrite_with_gradient = False
    return v


def _rebuild_variable(cls: type[Variable], data: torch.Tensor, requires_grad: bool, state: dict[str, Any]) -> Variable:
    v = torch.nn.Parameter.__new__(cls, data, requires_grad)
    v.__dict__.update(state)
    return v


__all__ = ["Variable", "current_path", "from_tensor", "name_scope", "scope_stack"]
