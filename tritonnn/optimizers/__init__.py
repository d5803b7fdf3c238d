"""Keras 3 optimizers over flat fp32 buffers: ``Adam``, ``AdamW``, ``SGD``, ``RMSprop``.

An optimizer owns its model's trainable parameters: ``build(params)`` copies them into one contiguous fp32 buffer
and makes every parameter (and its ``.grad``) a view into it, with one more flat buffer per state (moments,
velocities). A step is then one kernel launch over every parameter (plus one reduction pass when clipping by
norm), and zeroing the gradients is one fill.

The update rules, argument names and defaults are Keras 3's, which differ from PyTorch's in places (epsilon
placement and default, where lr enters momentum, decoupled weight decay for every optimizer): see
``tritonnn/kernels/optim.py`` for the rules and the list of differences.

The step counter is kept on the host (``iterations``, an int), so the learning rate (a float or a schedule) and
Adam's bias corrections are computed on the host each step without ever reading the device: no host sync.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import torch

from ..kernels import optim as _optim
from ..kernels.dense import FLAT_GRAD_ATTR as _FLAT_GRAD_ATTR
from . import schedules
from .schedules import LearningRateSchedule

_PAD = 64  # flat buffers are padded to a multiple of this many elements (256 bytes)

_UNSUPPORTED = {
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def _check_optional_positive(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
        raise ValueError(f"Expected `{name}` a positive float or None. Received: {name}={value!r}")


def _check_unit(name: str, value: Any, *, closed: bool = False) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (0 <= value <= 1 if closed else 0 <= value < 1)
    )
    if not ok:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"Expected `{name}` a float in {interval}. Received: {name}={value!r}")


class Optimizer:
    """Base class: flat parameter, gradient and state buffers; subclasses give the rule and its states.

    Args (Keras' base optimizer arguments):
        learning_rate: a float, a ``LearningRateSchedule``, or a callable with no arguments returning a float.
        weight_decay: float or None; ``p -= p * weight_decay * lr`` before every update.
        clipnorm: float or None; each variable's gradient is rescaled to at most this norm.
        clipvalue: float or None; gradients are clamped to ``[-clipvalue, clipvalue]``.
        global_clipnorm: float or None; all gradients are rescaled so their global norm is at most this.
        name: string.

    ``use_ema``, ``loss_scale_factor`` and ``gradient_accumulation_steps`` are accepted at their defaults only.
    """

    _rule = ""  # "sgd" | "adam" | "rmsprop"

    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        for key, default in _UNSUPPORTED.items():
            value = kwargs.pop(key, default)
            if value != default:
                raise ValueError(
                    f"`{key}` is not supported by tritonnn's fused optimizers yet. Received: {key}={value!r}"
                )
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        for key, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)):
            _check_optional_positive(key, value)
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
            )
        if weight_decay is not None and (not isinstance(weight_decay, (int, float)) or weight_decay < 0):
            raise ValueError(f"Expected `weight_decay` a float >= 0 or None. Received: weight_decay={weight_decay!r}")
        self.name = name or type(self).__name__.lower()
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self._learning_rate: Any = None
        self._set_learning_rate(learning_rate, initial=True)
        self._iterations = 0
        self.params: list[torch.nn.Parameter] = []
        self.flat_param: torch.Tensor | None = None
        self.flat_grad: torch.Tensor | None = None
        self._state: dict[str, torch.Tensor] = {}
        self._param_views: list[torch.Tensor] = []
        self._grad_views: list[torch.Tensor] = []
        self._clip: _optim.GradClip | None = None
        self._pending_state: dict[str, torch.Tensor] | None = None
        self._n_valid = 0

    # ---- learning rate and iterations ----
    def _set_learning_rate(self, value: Any, initial: bool = False) -> None:
        if isinstance(value, LearningRateSchedule) or (callable(value) and not isinstance(value, (int, float))):
            self._learning_rate = value
            return
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(
                "Argument `learning_rate` should be float, or an instance of LearningRateSchedule, or a callable "
                "(that takes in the current iteration value and returns the corresponding learning rate value). "
                f"Received instead: learning_rate={value!r}"
            )
        if not initial and isinstance(self._learning_rate, LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                "constructor argument, hence its learning rate is not settable. If you need the learning rate to "
                "be settable, you should instantiate the optimizer with a float `learning_rate` argument."
            )
        self._learning_rate = float(value)

    def _current_learning_rate(self) -> float:
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            return float(lr(self._iterations))
        if callable(lr):
            return float(lr())
        return lr

    @property
    def learning_rate(self) -> float:
        """The rate the next step uses (a schedule is evaluated at ``iterations``); settable as in Keras."""
        return self._current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self._set_learning_rate(value)

    @property
    def iterations(self) -> int:
        """Steps taken so far (a host-side count: reading it never syncs with the device)."""
        return self._iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        self._iterations = int(value)

    # ---- buffers ----
    @property
    def built(self) -> bool:
        return self.flat_param is not None

    def _state_names(self) -> tuple[str, ...]:
        return ()

    @property
    def variables(self) -> list[torch.Tensor]:
        """The optimizer's state buffers (flat), in a fixed order."""
        return [self._state[k] for k in self._state_names()]

    def __getattr__(self, item: str) -> Any:
        state = self.__dict__.get("_state")
        if state is not None and item in state:
            return state[item]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {item!r}")

    @torch.no_grad()
    def build(self, params: list[torch.nn.Parameter]) -> None:
        """Move ``params`` (fp32 master weights) into one flat buffer; params and grads become views into it.

        Building again (a new parameter list) starts from fresh states.
        """
        params = list(params)
        if not params:
            raise ValueError("The optimizer received no trainable parameters to update (build(params) with params=[])")
        device = params[0].device
        seen = set()
        for i, p in enumerate(params):
            if not isinstance(p, torch.Tensor):
                raise ValueError(f"Expected build(params) a list of torch Parameters. Received: params[{i}]={p!r}")
            if id(p) in seen:
                raise ValueError(f"Expected each parameter once. Received: params[{i}] repeated")
            seen.add(id(p))
            if p.device != device:
                raise ValueError(
                    f"Expected all parameters on one device. Received: {device} and {p.device} (params[{i}])"
                )
            if p.dtype != torch.float32:
                raise ValueError(
                    "Expected float32 master weights (under a mixed policy, layers keep float32 variables and "
                    f"cast them to the compute dtype). Received: params[{i}].dtype={p.dtype}"
                )
        sizes = [p.numel() for p in params]
        total = sum(sizes)
        # Pad to a multiple of _PAD elements: the kernel's loads and stores are then 16-byte vectors (its ALIGNED
        # path); the padding is zeros that nothing reads, and it never divides 0 by 0 (see n_valid).
        padded = -(-total // _PAD) * _PAD
        self._n_valid = total
        self.flat_param = torch.zeros(padded, dtype=torch.float32, device=device)
        self.flat_grad = torch.zeros(padded, dtype=torch.float32, device=device)
        self._param_views, self._grad_views = [], []
        offset = 0
        for p, n in zip(params, sizes, strict=True):
            pv = self.flat_param[offset : offset + n].view_as(p)
            gv = self.flat_grad[offset : offset + n].view_as(p)
            pv.copy_(p.detach())
            p.data = pv
            p.grad = gv
            # The torch-path dense backward may add this parameter's gradient into .grad itself rather than return
            # it for autograd to add (kernels/dense.py, "Gradients straight into the optimizer's flat buffer").
            setattr(p, _FLAT_GRAD_ATTR, True)
            self._param_views.append(pv)
            self._grad_views.append(gv)
            offset += n
        self.params = params
        self._state = {name: torch.zeros_like(self.flat_param) for name in self._state_names()}
        self._iterations = 0
        seg_sizes = sizes + ([padded - total] if padded > total else [])
        if self.clipnorm is not None:
            self._clip = _optim.GradClip("norm", float(self.clipnorm), _optim.make_segments(seg_sizes, device))
        elif self.global_clipnorm is not None:
            segments = _optim.make_segments(seg_sizes, device, by_variable=False)
            self._clip = _optim.GradClip("global", float(self.global_clipnorm), segments)
        elif self.clipvalue is not None:
            self._clip = _optim.GradClip("value", float(self.clipvalue))
        else:
            self._clip = None
        if self._pending_state is not None:
            pending, self._pending_state = self._pending_state, None
            self.load_state_dict(pending)

    @torch.no_grad()
    def _sync_views(self) -> None:
        """Re-attach a parameter or gradient that was replaced rather than updated in place.

        ``module.zero_grad()`` (set_to_none) or ``p.data = ...`` elsewhere would detach a parameter from the flat
        buffers; this restores the view, keeping the values. A cheap host-side identity check per parameter.
        """
        for p, pv, gv in zip(self.params, self._param_views, self._grad_views, strict=True):
            if p.data_ptr() != pv.data_ptr():
                pv.copy_(p.detach())
                p.data = pv
            if p.grad is not gv:
                if p.grad is None:
                    gv.zero_()
                else:
                    gv.copy_(p.grad)
                p.grad = gv

    def zero_grad(self) -> None:
        """One fill of the flat gradient buffer."""
        if self.flat_grad is None:
            raise RuntimeError("Call optimizer.build(params) before optimizer.zero_grad()")
        self.flat_grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """Apply one update to every parameter from the gradients accumulated in the flat gradient buffer."""
        if not self.built:
            raise RuntimeError("Call optimizer.build(params) before optimizer.step()")
        self._sync_views()
        self._update(self._current_learning_rate(), self._iterations + 1)
        self._iterations += 1

    def apply(self, grads: list[torch.Tensor] | None = None) -> None:
        """Keras' ``apply(grads)``: copy ``grads`` into the flat gradient buffer (if given), then ``step()``."""
        if grads is not None:
            if not self.built or len(grads) != len(self.params):
                raise ValueError(
                    f"Expected {len(self.params)} gradients for the built parameters. Received {len(grads)}"
                )
            with torch.no_grad():
                for gv, g in zip(self._grad_views, grads, strict=True):
                    gv.copy_(g)
        self.step()

    def _update(self, lr: float, step: int) -> None:
        raise NotImplementedError

    # ---- serialization ----
    def get_config(self) -> dict[str, Any]:
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            lr = float(lr())
        return {
            "name": self.name,
            "learning_rate": lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            **_UNSUPPORTED,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The optimizer's state: every flat state buffer, ``iterations`` and (when a float) ``learning_rate``."""
        state: dict[str, torch.Tensor] = {"iterations": torch.tensor(self._iterations, dtype=torch.int64)}
        if isinstance(self._learning_rate, float):
            state["learning_rate"] = torch.tensor(self._learning_rate, dtype=torch.float64)
        if self.built:
            for name in self._state_names():
                state[name] = self._state[name].detach().clone()
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` saved. Before ``build`` it is kept and applied when built."""
        if not self.built:
            self._pending_state = dict(state)
            if "learning_rate" in state and not isinstance(self._learning_rate, LearningRateSchedule):
                self._learning_rate = float(state["learning_rate"])
            return
        missing = [k for k in self._state_names() if k not in state]
        if missing:
            raise ValueError(f"Expected the optimizer state to hold {list(self._state_names())}. Missing: {missing}")
        for name in self._state_names():
            src = state[name]
            if tuple(src.shape) != tuple(self._state[name].shape):
                raise ValueError(
                    f"Expected state {name!r} of shape {tuple(self._state[name].shape)} (the built parameters). "
                    f"Received: {tuple(src.shape)}"
                )
            self._state[name].copy_(src)
        self._iterations = int(state.get("iterations", 0))
        if "learning_rate" in state and not isinstance(self._learning_rate, LearningRateSchedule):
            self._learning_rate = float(state["learning_rate"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self._learning_rate!r}>"


class SGD(Optimizer):
    """Keras' SGD: ``m = momentum * m - lr * g; p += m`` (nesterov: ``p += momentum * m - lr * g``).

    Args:
        learning_rate: float or schedule. Defaults to 0.01.
        momentum: float in [0, 1]. Defaults to 0.0.
        nesterov: bool. Defaults to False.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="SGD", **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        _check_unit("momentum", momentum, closed=True)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _state_names(self):
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _update(self, lr, step):
        _optim.sgd_(
            self.flat_param, self.flat_grad, self._state.get("momentum_buffer"), lr=lr, momentum=self.momentum,
            nesterov=self.nesterov, weight_decay=self.weight_decay, clip=self._clip, n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras' Adam: ``p -= lr_t * m / (sqrt(v) + epsilon)``, ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``.

    Epsilon is added after the bias correction (PyTorch adds it to the corrected ``sqrt(v_hat)``), default 1e-7.

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        beta_1: Defaults to 0.9.
        beta_2: Defaults to 0.999.
        epsilon: Defaults to 1e-7.
        amsgrad: Defaults to False.
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name="adam",
                 **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        _check_unit("beta_1", beta_1)
        _check_unit("beta_2", beta_2)
        if not isinstance(epsilon, (int, float)) or epsilon < 0:
            raise ValueError(f"Expected `epsilon` a float >= 0. Received: epsilon={epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), amsgrad

    def _state_names(self):
        return ("momentums", "velocities", "velocity_hats") if self.amsgrad else ("momentums", "velocities")

    def _update(self, lr, step):
        _optim.adam_(
            self.flat_param, self.flat_grad, self._state["momentums"], self._state["velocities"], step=step, lr=lr,
            beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon, amsgrad=self.amsgrad,
            v_hat=self._state.get("velocity_hats"), weight_decay=self.weight_decay, clip=self._clip,
            n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """Keras' AdamW: Adam with decoupled weight decay ``p -= p * weight_decay * lr`` (default 0.004; PyTorch's
    ``torch.optim.AdamW`` defaults to 0.01 and epsilon 1e-8)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, name="adamw",
                 **kwargs):  # fmt: skip
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, name, **kwargs)  # fmt: skip


class RMSprop(Optimizer):
    """Keras' RMSprop: ``v = rho v + (1 - rho) g^2``; ``p -= lr g / sqrt(v + epsilon)`` (epsilon inside the root;
    PyTorch: ``sqrt(v) + eps``, and its ``alpha`` is Keras' ``rho``, default 0.99 there).

    Args:
        learning_rate: float or schedule. Defaults to 0.001.
        rho: Defaults to 0.9.
        momentum: Defaults to 0.0 (``mo = momentum * mo + lr g / sqrt(...)``, ``p -= mo``).
        epsilon: Defaults to 1e-7.
        centered: Defaults to False (``v - a^2`` with ``a`` the average gradient).
        (and the base arguments: weight_decay, clipnorm, clipvalue, global_clipnorm, name)
    """

    _rule = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="rmsprop", **kwargs):  # fmt: skip
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        _check_unit("rho", rho)
        _check_unit("momentum", momentum)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), centered

    def _state_names(self):
        names = ["velocities"]
        if self.momentum > 0:
            names.append("momentums")
        if self.centered:
            names.append("average_gradients")
        return tuple(names)

    def _update(self, lr, step):
        _optim.rmsprop_(
            self.flat_param, self.flat_grad, self._state["velocities"], self._state.get("momentums"),
            self._state.get("average_gradients"), lr=lr, rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
            centered=self.centered, weight_decay=self.weight_decay, clip=self._clip, n_valid=self._n_valid,
        )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class LossScaleOptimizer(Optimizer):
    """Dynamic loss scaling for float16 training (Keras' ``LossScaleOptimizer``), around any optimizer.

    The loss is multiplied by ``loss_scale`` before the backward pass so that small float16 gradients do not
    flush to zero; ``step()`` divides the flat gradient by the scale, and applies the inner optimizer only when
    every gradient is finite. A step whose gradients overflowed is skipped and the scale halved; after
    ``dynamic_growth_steps`` good steps in a row the scale doubles. ``compile()`` wraps the optimizer in one
    automatically under the ``"mixed_float16"`` policy, as Keras does.

    Deciding whether to skip reads one flag from the device per step (a host sync); bfloat16 needs no scaling.
    """

    def __init__(
        self,
        inner_optimizer: Any,
        initial_scale: float = 2.0**15,
        dynamic_growth_steps: int = 2000,
        name: str | None = None,
        **kwargs: Any,
    ):
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if isinstance(inner_optimizer, LossScaleOptimizer):
            raise ValueError("LossScaleOptimizer cannot wrap another LossScaleOptimizer")
        if not (isinstance(initial_scale, (int, float)) and math.isfinite(initial_scale) and initial_scale > 0):
            raise ValueError(
                f"Expected `initial_scale` a positive finite float. Received: initial_scale={initial_scale!r}"
            )
        if not isinstance(dynamic_growth_steps, int) or dynamic_growth_steps < 1:
            raise ValueError(
                "Expected `dynamic_growth_steps` a positive integer. "
                f"Received: dynamic_growth_steps={dynamic_growth_steps!r}"
            )
        self.inner_optimizer = get(inner_optimizer)
        self.name = name or "loss_scale_optimizer"
        self.initial_scale = float(initial_scale)
        self.dynamic_growth_steps = dynamic_growth_steps
        self.loss_scale = float(initial_scale)
        self._good_steps = 0
        self.skipped_steps = 0

    # The flat buffers, the rate and the step count are the inner optimizer's.
    built = property(lambda self: self.inner_optimizer.built)
    params = property(lambda self: self.inner_optimizer.params)
    flat_param = property(lambda self: self.inner_optimizer.flat_param)
    flat_grad = property(lambda self: self.inner_optimizer.flat_grad)
    iterations = property(lambda self: self.inner_optimizer.iterations)
    variables = property(lambda self: self.inner_optimizer.variables)

    @property
    def learning_rate(self) -> float:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self.inner_optimizer.learning_rate = value

    def build(self, params: list[torch.nn.Parameter]) -> None:
        self.inner_optimizer.build(params)

    def zero_grad(self) -> None:
        self.inner_optimizer.zero_grad()

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to differentiate: ``loss * loss_scale``."""
        return loss * self.loss_scale

    @torch.no_grad()
    def step(self) -> None:
        """Unscale the gradients; apply the inner step if all are finite, else skip it and halve the scale."""
        if not self.built:
            raise RuntimeError("Call optimizer.build(params) before optimizer.step()")
        grad = self.inner_optimizer.flat_grad
        grad.mul_(1.0 / self.loss_scale)
        if bool(torch.isfinite(grad).all()):
            self.inner_optimizer.step()
            self._good_steps += 1
            if self._good_steps >= self.dynamic_growth_steps:
                self.loss_scale *= 2.0
                self._good_steps = 0
        else:
            self.loss_scale = max(self.loss_scale / 2.0, 1.0)
            self._good_steps = 0
            self.skipped_steps += 1

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inner_optimizer": serialize(self.inner_optimizer),
            "initial_scale": self.initial_scale,
            "dynamic_growth_steps": self.dynamic_growth_steps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> LossScaleOptimizer:
        config = dict(config)
        config["inner_optimizer"] = deserialize(config["inner_optimizer"], custom_objects)
        return cls(**config)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = self.inner_optimizer.state_dict()
        state["loss_scale"] = torch.tensor(self.loss_scale, dtype=torch.float64)
        state["loss_scale_good_steps"] = torch.tensor(self._good_steps, dtype=torch.int64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        if "loss_scale" in state:
            self.loss_scale = float(state.pop("loss_scale"))
        if "loss_scale_good_steps" in state:
            self._good_steps = int(state.pop("loss_scale_good_steps"))
        self.inner_optimizer.load_state_dict(state)

    def __repr__(self) -> str:
        return f"<LossScaleOptimizer scale={self.loss_scale} inner={self.inner_optimizer!r}>"


ALL_OBJECTS = {cls.__name__: cls for cls in (Adam, AdamW, SGD, RMSprop, LossScaleOptimizer)}
_BY_NAME = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop}


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Optimizer:
    known = dict(ALL_OBJECTS, **(custom_objects or {}))
    name = config.get("class_name")
    cls = known.get(name) or _BY_NAME.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer class: {name!r}. Expected one of {sorted(known)}")
    return cls.from_config(config.get("config", {}), custom_objects)


def get(identifier: Any) -> Optimizer:
    """An optimizer from a Keras string identifier (``"adam"``, case-insensitive), a config dict, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    valid = sorted(_BY_NAME)
    close = difflib.get_close_matches(str(identifier).lower(), valid, n=1) if isinstance(identifier, str) else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}.{hint} Valid names: {valid}")


__all__ = [
    "Adam",
    "AdamW",
    "LossScaleOptimizer",
    "Optimizer",
    "RMSprop",
    "SGD",
    "deserialize",
    "get",
    "schedules",
    "serialize",
]
