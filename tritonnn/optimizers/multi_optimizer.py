"""Keras 3's ``OptimizerMap`` and ``MultiOptimizer``: each trainable variable stepped by the optimizer that a map of
path patterns (or a callable) gives it, every sub-optimizer with flat buffers of its own over its own variables."""

from __future__ import annotations

import base64
import marshal
import re
import types
import warnings
from collections.abc import Iterator, MutableMapping
from typing import Any

import torch

from .. import _registry
from .loss_scale_optimizer import LossScaleOptimizer
from .optimizer import Optimizer
from .registry import register


def _serialize(obj: Any) -> Any:
    """``keras.saving.serialize_keras_object`` of what a map holds, in Keras' layout: an optimizer (a built-in one
    under ``keras.optimizers``, a registered one under its registered name), an ``OptimizerMap``, a dict of them, a
    function (by its registered name; a lambda as its bytecode, which is never read back). ``tritonnn.saving``'s
    own serializer sits above the optimizers (it imports them), so the few kinds a map holds are written here."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, dict):
        return {key: _serialize(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_serialize(value) for value in obj)
    if isinstance(obj, types.FunctionType) and obj.__name__ == "<lambda>":
        warnings.warn(
            "The object being serialized includes a `lambda`. It can be written but never read back: tritonnn does "
            "not rebuild Python bytecode from a config. Use a named function (def) instead.",
            stacklevel=3,
        )
        code = base64.b64encode(marshal.dumps(obj.__code__)).decode("ascii")
        closure = None if obj.__closure__ is None else tuple(c.cell_contents for c in obj.__closure__)
        return {"class_name": "__lambda__", "config": {"value": (code, obj.__defaults__, closure)}}
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        name = _registry.get_registered_name(obj)
        return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    if not callable(getattr(obj, "get_config", None)):
        raise TypeError(
            f"Cannot serialize object {obj!r} of type {type(obj)}. To be serializable, a class must implement the "
            "`get_config()` method."
        )
    cls = type(obj)
    builtin = cls.__module__.startswith("tritonnn.optimizers.") and cls not in _registry.GLOBAL_CUSTOM_NAMES
    return {
        "module": "keras.optimizers" if builtin else (None if cls.__module__ == "__main__" else cls.__module__),
        "class_name": cls.__name__,
        "config": _serialize(obj.get_config()),
        "registered_name": None if builtin else _registry.get_registered_name(cls),
    }


def _deserialize(config: Any, custom_objects: dict[str, Any] | None) -> Any:
    """A nested config (an optimizer, a function record, a dict of them) rebuilt as ``deserialize_keras_object``
    rebuilds it; an ``OptimizerMap`` config here."""
    if isinstance(config, dict) and config.get("class_name") == "OptimizerMap" and "config" in config:
        return OptimizerMap.from_config(config["config"] or {}, custom_objects)
    if config is None or isinstance(config, (str, int, float, bool)):
        return config
    return _registry.deserialize_object(config, custom_objects)


class OptimizerMap(MutableMapping):
    """Keras' ``OptimizerMap``: variable paths (or regular expressions over them) to optimizers, with a default.

    ``optimizer_map[path]`` is the optimizer of the key equal to ``path``; else of the one key that matches all of
    it (``re.fullmatch``: ``"encoder/.*"`` for everything under ``encoder``; more than one is a ``ValueError``);
    else ``default_optimizer``. Calling the map on a variable looks up its ``path``. A key set with
    ``optimizer_map[key] = optimizer`` must be a new string and the optimizer neither a ``LossScaleOptimizer`` nor
    a ``MultiOptimizer`` (``ValueError``s, as in Keras; like Keras, the dict given to the constructor is taken as
    it is).

    Args:
        default_optimizer: the optimizer of every variable no key matches.
        optimizer_map: optional dict of keys to optimizers.
    """

    def __init__(self, default_optimizer: Optimizer, optimizer_map: dict[str, Optimizer] | None = None):
        if not isinstance(default_optimizer, Optimizer):
            raise TypeError(f"default_optimizer must be a Keras Optimizer instance. Received: {default_optimizer}")
        if optimizer_map is not None and not isinstance(optimizer_map, dict):
            raise TypeError(f"optimizer_map must be a dictionary. Received: {optimizer_map}")
        self._default_optimizer = default_optimizer
        self._optimizer_map: dict[str, Any] = optimizer_map or {}

    @property
    def default_optimizer(self) -> Optimizer:
        return self._default_optimizer

    def __getitem__(self, key: str) -> Optimizer:
        if key in self._optimizer_map:
            return self._optimizer_map[key]
        matching = [pattern for pattern in self._optimizer_map if re.fullmatch(pattern, key)]
        if len(matching) > 1:
            raise ValueError(f"Multiple optimizers assigned to variable {key}.")
        if matching:
            return self._optimizer_map[matching[0]]
        return self._default_optimizer

    def __setitem__(self, key: str, optimizer: Optimizer) -> None:
        if key in self._optimizer_map:
            raise ValueError(
                f"'{key}' already exists in the OptimizerMap with value {self._optimizer_map[key]}. Please make sure "
                "to not use duplicated keys."
            )
        if not isinstance(key, str):
            raise ValueError(f"key must be a string. Received: {key}")
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be a Keras Optimizer instance. Received: {optimizer}")
        if isinstance(optimizer, LossScaleOptimizer):
            raise ValueError("optimizer cannot be LossScaleOptimizer.")
        if isinstance(optimizer, MultiOptimizer):
            raise ValueError("optimizer cannot be MultiOptimizer.")
        self._optimizer_map[key] = optimizer

    def __delitem__(self, key: str) -> None:
        del self._optimizer_map[key]

    def __len__(self) -> int:
        return len(self._optimizer_map)

    def __iter__(self) -> Iterator[str]:
        return iter(self._optimizer_map)

    def __call__(self, variable: Any) -> Optimizer:
        path = getattr(variable, "path", None)
        if not isinstance(path, str):
            raise AttributeError(
                f"An OptimizerMap chooses a variable's optimizer by its `path`; {type(variable).__name__} has none "
                "(the weights of tritonnn layers and tritonnn.Variable have one)"
            )
        return self[path]

    def get_config(self) -> dict[str, Any]:
        return {
            "default_optimizer": _serialize(self._default_optimizer),
            "optimizer_map": _serialize(self._optimizer_map),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> OptimizerMap:
        default_optimizer = _deserialize(config["default_optimizer"], custom_objects)
        optimizer_map = config.get("optimizer_map")
        if isinstance(optimizer_map, dict):
            optimizer_map = {k: _deserialize(v, custom_objects) for k, v in optimizer_map.items()}
        return cls(default_optimizer, optimizer_map)

    def __repr__(self) -> str:
        return f"<OptimizerMap default={self._default_optimizer!r} map={self._optimizer_map!r}>"


@register
class MultiOptimizer(Optimizer):
    """Keras' ``MultiOptimizer``: each trainable variable updated by the optimizer ``optimizer_map`` gives it.

    ``optimizer_map`` is an :class:`OptimizerMap` (by variable path) or a callable taking a variable and returning
    its optimizer. ``build(variables)`` asks it once per variable, in order, and builds each sub-optimizer on the
    variables it got (a sub-optimizer that got none stays unbuilt); each keeps its own flat buffers, so a step is
    one step of each sub-optimizer (its fused update, or its per-variable one) over its variables. A variable
    whose optimizer is not an ``Optimizer``, is a ``LossScaleOptimizer`` or a ``MultiOptimizer`` is a
    ``ValueError`` at build, as in Keras.

    ``optimizers`` lists the sub-optimizers: the map's values, then its default, then any other the map returned
    at build, each once. Each has its own ``iterations`` and rate; ``learning_rate`` on the ``MultiOptimizer``
    raises ``AttributeError`` (read or set), as in Keras. ``iterations`` counts the ``MultiOptimizer``'s steps (a
    device counter, as every optimizer's). ``step()`` (fit's update) and ``apply(grads, variables)`` step every
    sub-optimizer that has variables; ``zero_grad`` zeroes their flat gradients. The step stays free of host syncs
    and is capturable when every sub-optimizer's is (``capture_blocker``). A ``LossScaleOptimizer`` may wrap a
    ``MultiOptimizer`` (``compile`` does under ``"mixed_float16"``), checking and unscaling every sub-optimizer's
    gradients and skipping all their steps together.

    ``state_dict()`` holds ``iterations`` and each sub-optimizer's state under ``"<i>/"`` (``"0/momentums"``...),
    ``i`` its position in ``optimizers``; ``get_config()`` serializes the map (or the callable) as Keras does.
    There is no single flat buffer: ``flat_param`` and ``flat_grad`` are None (``flat_grads`` lists the
    sub-optimizers' gradient buffers).

    Args:
        optimizer_map: an ``OptimizerMap`` or a callable ``variable -> Optimizer``.
        loss_scale_factor: accepted at its default (None) only, as by every tritonnn optimizer.
        name: string.
    """

    def __init__(self, optimizer_map: Any, loss_scale_factor: float | None = None, name: str | None = None):
        super().__init__(learning_rate=0.0, name=name, loss_scale_factor=loss_scale_factor)
        self._optimizer_map = optimizer_map
        self._inner_optimizers: list[Optimizer] = []
        if hasattr(optimizer_map, "values"):
            for opt in optimizer_map.values():
                self._add_inner(opt)
        default = getattr(optimizer_map, "default_optimizer", None)
        if default is not None:
            self._add_inner(default)
        self._active: list[tuple[Optimizer, list[torch.Tensor]]] = []  # the built sub-optimizers, their variables
        self._owner: dict[int, int] = {}  # id(variable) -> index in _inner_optimizers
        self._steps: torch.Tensor | None = None  # the count of steps taken (float64, on the variables' device)
        self._multi_built = False
        self._pending_multi_state: dict[str, torch.Tensor] | None = None

    def _add_inner(self, opt: Any) -> int:
        for i, known in enumerate(self._inner_optimizers):
            if known is opt:
                return i
        if not isinstance(opt, Optimizer):  # only a map's value can get here (build checks first)
            # Keras' class: its constructor sets each value's loss_scale_factor, which a non-optimizer may lack
            raise AttributeError(f"The OptimizerMap holds {opt!r}, which is not a Keras Optimizer instance.")
        self._inner_optimizers.append(opt)
        return len(self._inner_optimizers) - 1

    # ---- what Keras exposes ----
    @property
    def optimizers(self) -> list[Optimizer]:
        """The sub-optimizers, in Keras' order (see the class docstring)."""
        return list(self._inner_optimizers)

    @property
    def learning_rate(self) -> float:
        raise AttributeError(
            "Learning rate cannot be accessed on a MultiOptimizer. "
            "Access the learning rate on the individual sub-optimizers instead."
        )

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        raise AttributeError(
            "Learning rate cannot be set on a MultiOptimizer. "
            "Set the learning rate on the individual sub-optimizers instead."
        )

    @property
    def iterations(self) -> int:
        """The MultiOptimizer's own steps (each sub-optimizer counts its own): read from the device (one sync)."""
        if self._steps is None:
            return self._host_iterations
        return int(self._steps)

    @iterations.setter
    def iterations(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, torch.Tensor)) or int(value) < 0:
            raise ValueError(f"Expected `iterations` an integer >= 0. Received: iterations={value!r}")
        self._host_iterations = int(value)
        if self._steps is not None:
            self._steps.fill_(float(value))

    @property
    def built(self) -> bool:
        return self._multi_built

    @property
    def variables(self) -> list[torch.Tensor]:
        """The state buffers of the sub-optimizers that step (those the last build gave variables), in the order
        of ``optimizers``."""
        return [v for opt, _ in self._active for v in opt.variables]

    @property
    def flat_grads(self) -> list[torch.Tensor]:
        """The flat gradient buffers of the built sub-optimizers."""
        return [g for opt, _ in self._active for g in opt.flat_grads]

    @property
    def _stepping_optimizers(self) -> list[Optimizer]:
        """The sub-optimizers the last build gave variables (those that step), in the order of ``optimizers``:
        the owners of the flat buffers (``tritonnn.distribution`` broadcasts and all-reduces each one's)."""
        return [opt for opt, _ in self._active]

    @property
    def capture_blocker(self) -> str | None:
        for opt, _ in self._active:
            blocker = opt.capture_blocker
            if blocker is not None:
                return f"{opt.name}: {blocker}"
        return None

    @property
    def _scalar_variables(self) -> int:
        """``model.summary()`` counts an optimizer's variables as ``2 + (elements of params) x len(variables) +
        _scalar_variables`` (iterations, the rate, the per-element states): Keras' MultiOptimizer has its own
        iterations and rate, then every sub-optimizer's variables, so this is the sub-optimizers' counts less what
        the formula already counts."""
        total, active = 0, {id(opt) for opt, _ in self._active}
        for opt in self._inner_optimizers:
            lr_is_variable = not isinstance(opt.get_config().get("learning_rate"), dict)
            total += 1 + int(lr_is_variable)
            if id(opt) in active:
                total += sum(p.numel() for p in opt.params) * len(opt.variables) + opt._scalar_variables
        return total - sum(p.numel() for p in self.params) * len(self.variables)

    # ---- building and stepping ----
    def build(self, params: list[torch.Tensor]) -> None:
        """Ask the map for each variable's optimizer, then build each sub-optimizer on its variables (see the
        class docstring). Building again (a new variable list) routes and builds again, from fresh states."""
        params = list(params)
        if not params:
            raise ValueError("The optimizer received no trainable parameters to update (build(params) with params=[])")
        chosen: list[int] = []
        for var in params:
            opt = self._optimizer_map(var)
            if not isinstance(opt, Optimizer):
                raise ValueError(f"Optimizer for variable {var} is not an Optimizer instance.")
            if isinstance(opt, LossScaleOptimizer):
                raise ValueError("LossScaleOptimizer cannot be used inside an MultiOptimizer.")
            if isinstance(opt, MultiOptimizer):
                raise ValueError("MultiOptimizer cannot be used inside an MultiOptimizer.")
            chosen.append(self._add_inner(opt))
        groups: dict[int, list[torch.Tensor]] = {}
        for var, i in zip(params, chosen, strict=True):
            groups.setdefault(i, []).append(var)
        active = []
        for i, opt in enumerate(self._inner_optimizers):
            if i in groups:
                opt.build(groups[i])
                active.append((opt, groups[i]))
        self._active = active
        self._owner = {id(v): i for v, i in zip(params, chosen, strict=True)}
        self.params = params
        self._steps = torch.zeros((), dtype=torch.float64, device=params[0].device)
        self._host_iterations = 0
        self._multi_built = True
        if self._pending_multi_state is not None:
            pending, self._pending_multi_state = self._pending_multi_state, None
            self.load_state_dict(pending)

    def _check_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(f"Call optimizer.build(params) before optimizer.{what}()")

    def _sync_views(self) -> None:
        for opt, _ in self._active:
            opt._sync_views()

    def zero_grad(self) -> None:
        """One fill of each sub-optimizer's flat gradient buffer."""
        self._check_built("zero_grad")
        for opt, _ in self._active:
            opt.zero_grad()

    @torch.no_grad()
    def step(self, found_inf: torch.Tensor | None = None) -> None:
        """One step of every built sub-optimizer from the gradients in its flat buffer, then ``iterations += 1``;
        ``found_inf`` (a 0-d float32 device tensor, see ``Optimizer.step``) skips all of them where nonzero."""
        self._check_built("step")
        for opt, _ in self._active:
            opt.step(found_inf)
        if found_inf is None:
            self._steps.add_(1.0)
        else:
            self._steps.add_((found_inf == 0).to(torch.float64))

    def apply(self, grads: Any = None, trainable_variables: Any = None) -> None:
        """Keras' ``apply``: the gradients handed to each sub-optimizer's ``apply`` with its variables, then
        ``iterations += 1``. Every built variable needs a gradient (any order), as for every tritonnn optimizer."""
        if grads is None:
            self.step()
            return
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be built on a list of "
                    "variables. Call `optimizer.build(trainable_variables)` first."
                )
            variables = list(self.params)
        else:
            variables = list(trainable_variables)
            if not self.built:
                self.build(variables)
        if len(grads) != len(self.params) or len(variables) != len(grads):
            raise ValueError(
                "Gradients must match trainable variables one-to-one. "
                f"Received {len(grads)} gradients and {len(self.params)} variables."
            )
        per_optimizer: dict[int, tuple[list[Any], list[Any]]] = {}
        for g, v in zip(grads, variables, strict=True):
            i = self._owner.get(id(v))
            if i is None:
                raise KeyError(  # Keras' class: its lookup of the variable's key
                    f"Unknown variable: {v!r}. This optimizer can only be called for the variables it was built with."
                )
            sub_grads, sub_vars = per_optimizer.setdefault(i, ([], []))
            sub_grads.append(g)
            sub_vars.append(v)
        for i, opt in enumerate(self._inner_optimizers):
            if i in per_optimizer:
                opt.apply(*per_optimizer[i])
        with torch.no_grad():
            self._steps.add_(1.0)

    def finalize_variable_values(self, var_list: Any) -> None:
        """Each sub-optimizer's end of training on its variables of ``var_list`` (EMA's averages into them)."""
        groups: dict[int, list[Any]] = {}
        for var in var_list:
            i = self._owner.get(id(var))
            if i is None:
                raise KeyError(f"Unknown variable: {var!r}. The optimizer was not built with it.")
            groups.setdefault(i, []).append(var)
        for i, opt in enumerate(self._inner_optimizers):
            if i in groups:
                opt.finalize_variable_values(groups[i])

    # ---- serialization ----
    def get_config(self) -> dict[str, Any]:
        return {
            "optimizer_map": _serialize(self._optimizer_map),
            "loss_scale_factor": None,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> MultiOptimizer:
        config = dict(config)
        config["optimizer_map"] = _deserialize(config["optimizer_map"], custom_objects)
        return cls(**config)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``iterations``, then each sub-optimizer's ``state_dict()`` under ``"<i>/"`` (its index in ``optimizers``)."""
        state: dict[str, torch.Tensor] = {"iterations": torch.tensor(self.iterations, dtype=torch.int64)}
        for i, opt in enumerate(self._inner_optimizers):
            for key, value in opt.state_dict().items():
                state[f"{i}/{key}"] = value
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` saved; before ``build`` it is kept and applied when built."""
        if not self.built:
            self._pending_multi_state = dict(state)
            return
        per_optimizer: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            head, sep, rest = key.partition("/")
            if sep and head.isdigit():
                per_optimizer.setdefault(int(head), {})[rest] = value
        active = {id(opt) for opt, _ in self._active}
        for i, opt in enumerate(self._inner_optimizers):
            if id(opt) in active and i not in per_optimizer:
                raise ValueError(f"Expected the optimizer state to hold the state of sub-optimizer {i} ({opt.name!r})")
        for i, opt in enumerate(self._inner_optimizers):
            if i in per_optimizer:
                opt.load_state_dict(per_optimizer[i])
        self.iterations = int(state.get("iterations", 0))

    def __repr__(self) -> str:
        return f"<MultiOptimizer name={self.name!r} optimizers={self._inner_optimizers!r}>"
