"""The ``Optimizer`` base class over flat fp32 buffers, and the argument checks the optimizers share.

``build(params)`` copies the parameters into one contiguous fp32 buffer and makes every parameter (and its
``.grad``) a view into it, marking each one for the dense backward (the flat-gradient contract,
``tritonnn.kernels.mark_flat_grad``); subclasses give the update rule and the names of their state buffers.

The step is capturable: the step count (``iterations``) and the learning rate live on the parameters' device (in
the float64 scalars of the prepared update, ``tritonnn.kernels.optim.FlatUpdate``), the step updates the count with
a device op and the update kernel reads both through a pointer (Adam's bias corrections are computed from the
count inside it), and a built-in schedule computes the rate from the device count with torch ops. So one
``step()`` neither syncs with the host nor reads a host value that changes between steps, and a CUDA graph holding
it replays every later step exactly. The host side stays Keras': ``learning_rate`` and ``iterations`` read and
write the device values (a sync only when read), ``state_dict`` holds host tensors under the same keys as ever. A
rate the host computes (a user's ``LearningRateSchedule`` subclass, a callable) is written to the device by each
step: such a step is not capturable, and ``capture_blocker`` says why.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from ..kernels import mark_flat_grad
from ..kernels import optim as _optim
from ..naming import unique_name
from . import schedules
from .schedules import LearningRateSchedule

_PAD = 64  # flat buffers are padded to a multiple of this many elements (256 bytes)

_UNSUPPORTED = {
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def _snake_case(name: str) -> str:
    """Keras' ``to_snake_case`` of a class name (``AdamW`` -> ``adam_w``, ``RMSprop`` -> ``rm_sprop``)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _check_optional_positive(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
        raise ValueError(f"Expected `{name}` a positive float or None. Received: {name}={value!r}")


def check_unit(name: str, value: Any, *, closed: bool = False) -> None:
    """Raise a ValueError unless ``value`` is a float in [0, 1) (``closed``: [0, 1]); shared by the optimizers."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (0 <= value <= 1 if closed else 0 <= value < 1)
    )
    if not ok:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"Expected `{name}` a float in {interval}. Received: {name}={value!r}")


def check_non_negative(name: str, value: Any) -> None:
    """Raise a ValueError unless ``value`` is a float >= 0 (``epsilon``, ``initial_accumulator_value``)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"Expected `{name}` a float >= 0. Received: {name}={value!r}")


def _check_ema(ema_momentum: Any, ema_overwrite_frequency: Any) -> None:
    """Keras' checks of the EMA arguments (made when ``use_ema`` is set), with its messages."""
    if isinstance(ema_momentum, torch.Tensor) or not isinstance(ema_momentum, (int, float)):
        raise TypeError(f"`ema_momentum` must be a float in the range [0, 1]. Received: ema_momentum={ema_momentum!r}")
    if not 0 <= ema_momentum <= 1:
        raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
    if ema_overwrite_frequency and (not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1):
        raise ValueError(
            "`ema_overwrite_frequency` must be an integer >= 1 or None. Received: "
            f"ema_overwrite_frequency={ema_overwrite_frequency}"
        )


def _check_found_inf(found_inf: Any, device: torch.device) -> None:
    ok = isinstance(found_inf, torch.Tensor) and found_inf.dtype == torch.float32 and found_inf.dim() == 0
    if not (ok and found_inf.device == device):
        got = (
            f"{found_inf.dtype} {tuple(found_inf.shape)} on {found_inf.device}"
            if isinstance(found_inf, torch.Tensor)
            else repr(found_inf)
        )
        raise ValueError(f"Expected `found_inf` a 0-d float32 tensor on {device}. Received: found_inf={got}")


class Optimizer:
    """Base class: flat parameter, gradient and state buffers; subclasses give the rule and its states.

    Args (Keras' base optimizer arguments):
        learning_rate: a float, a ``LearningRateSchedule``, or a callable with no arguments returning a float.
        weight_decay: float or None; ``p -= p * weight_decay * lr`` before every update.
        clipnorm: float or None; each variable's gradient is rescaled to at most this norm.
        clipvalue: float or None; gradients are clamped to ``[-clipvalue, clipvalue]``.
        global_clipnorm: float or None; all gradients are rescaled so their global norm is at most this.
        name: string.
        use_ema: bool; keep an exponential moving average of the weights (Keras' "Polyak averaging"), in one more
            flat buffer, ``average`` (``state_dict()["average"]``). After every update (before the constraints),
            ``average = m average + (1 - m) weights`` with ``m = ema_momentum``, except on the first step
            (``iterations == 0``: ``m = 0``, the average starts at the weights). ``fit()`` ends with
            :meth:`finalize_variable_values`, which overwrites the weights with the average, as in Keras.
        ema_momentum: float in [0, 1], defaults to 0.99 (checked only when ``use_ema``).
        ema_overwrite_frequency: int >= 1 or None; with ``use_ema``, the weights are overwritten with the average
            after every step whose 1-based count is a multiple of it. Defaults to None (never during training).

    ``loss_scale_factor`` and ``gradient_accumulation_steps`` are accepted at their defaults only.

    The average's update and overwrite are device ops that read the device step count (a 0-d mask, a ``lerp``
    and a ``where`` over the flat buffers): the step stays free of host syncs and capturable.

    A parameter with a ``constraint`` attribute (``Layer.add_weight(constraint=...)``, Keras' ``variable.constraint``)
    is projected with it after every ``step``.
    """

    _rule = ""  # a rule of tritonnn.kernels.optim.RULES: "sgd", "adam", "rmsprop", "adagrad", ...
    _scalar_variables = 0  # scalar variables Keras' rule adds to optimizer.variables (Nadam: u_product)

    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
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
        if use_ema:  # Keras checks the EMA arguments only when EMA is on, and keeps them as given either way
            _check_ema(ema_momentum, ema_overwrite_frequency)
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        # Keras' automatic name: the class name in snake case, counted (``adam``, ``adam_1``...; ``AdamW`` is
        # ``adam_w``, ``RMSprop`` ``rm_sprop``), on the counter the layers use and ``clear_session`` resets
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self._learning_rate: Any = None  # a float (the value as set), a LearningRateSchedule or a callable
        # The prepared update, made by build: it holds the rate and the count on the device (.lr, .step).
        self._flat_update: _optim.FlatUpdate | None = None
        self._set_learning_rate(learning_rate, initial=True)
        self._host_iterations: int | None = 0  # the count as the host last knew it (None: read the device)
        self.params: list[torch.nn.Parameter] = []
        self.flat_param: torch.Tensor | None = None
        self.flat_grad: torch.Tensor | None = None
        self._state: dict[str, torch.Tensor] = {}
        self._param_views: list[torch.Tensor] = []
        self._grad_views: list[torch.Tensor] = []
        self._average_views: list[torch.Tensor] = []
        self._view_ptrs: list[int] = []
        self._clip: _optim.GradClip | None = None
        self._pending_state: dict[str, torch.Tensor] | None = None
        self._n_valid = 0
        self._constraints: list[tuple[torch.Tensor, Any]] = []

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
        if self._flat_update is not None:  # the next step (eager or replayed) reads it: nothing to recapture
            self._flat_update.lr.fill_(self._learning_rate)

    def _host_step(self) -> int:
        """``iterations`` for a rate the host computes: the host's count, read back only after a masked step."""
        if self._host_iterations is None:
            self._host_iterations = int(self._flat_update.step)
        return self._host_iterations

    def _write_step_rate(self) -> None:
        """Put the rate of the step about to run on the device (before the count moves); a float is there already."""
        lr = self._learning_rate
        if isinstance(lr, float):
            return
        update = self._flat_update
        if isinstance(lr, LearningRateSchedule) and schedules.has_device_form(lr):
            update.lr.copy_(lr(update.step))
        else:
            update.lr.fill_(float(lr(self._host_step()) if isinstance(lr, LearningRateSchedule) else lr()))

    @property
    def learning_rate(self) -> float:
        """The rate the next step uses (a schedule is evaluated at ``iterations``); settable as in Keras.

        A float rate reads back as the value set (the device holds it in float32; only this setter, ``build`` and
        ``load_state_dict`` write it, so reading needs no sync). A schedule is evaluated in Python floats at the
        device count (one sync, on reading); the step uses its float32 device form, equal within fp32 rounding."""
        lr = self._learning_rate
        if isinstance(lr, float):
            return lr
        if isinstance(lr, LearningRateSchedule):
            return float(lr(self.iterations if schedules.has_device_form(lr) else self._host_step()))
        return float(lr())

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self._set_learning_rate(value)

    @property
    def iterations(self) -> int:
        """Steps taken so far: the device counter, read back (one sync, on reading; never during a step)."""
        if self._flat_update is None:
            return self._host_iterations
        return int(self._flat_update.step)

    @iterations.setter
    def iterations(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, torch.Tensor)) or int(value) < 0:
            raise ValueError(f"Expected `iterations` an integer >= 0. Received: iterations={value!r}")
        if self._flat_update is not None:
            self._flat_update.set_step(int(value))
        self._host_iterations = int(value)

    @property
    def capture_blocker(self) -> str | None:
        """Why ``step()`` cannot be captured in a CUDA graph (a host value that changes every step), or None."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            return None if schedules.has_device_form(lr) else "a custom LearningRateSchedule is evaluated on the host"
        if callable(lr):
            return "a callable learning_rate is evaluated on the host"
        return None

    @property
    def capturable(self) -> bool:
        """Whether one ``step()`` reads no host value that changes between steps and never syncs: a CUDA graph
        that captured it replays later steps exactly (``capture_blocker`` says why not)."""
        return self.capture_blocker is None

    # ---- buffers ----
    @property
    def built(self) -> bool:
        return self.flat_param is not None

    @property
    def flat_grads(self) -> list[torch.Tensor]:
        """The flat gradient buffers a step reads (``[flat_grad]`` once built; a ``MultiOptimizer`` has one per
        sub-optimizer): what ``LossScaleOptimizer`` checks and unscales."""
        return [] if self.flat_grad is None else [self.flat_grad]

    def _state_names(self) -> tuple[str, ...]:
        return ()

    def _buffer_names(self) -> tuple[str, ...]:
        """The flat state buffers this optimizer keeps: the rule's (``_state_names``), then EMA's ``average``."""
        return self._state_names() + (("average",) if self.use_ema else ())

    def _state_initial_value(self, name: str) -> float:
        """The value a state buffer starts at (Keras' initializer: zeros, or Adagrad's and Ftrl's
        ``initial_accumulator_value`` for their accumulators)."""
        return 0.0

    @property
    def variables(self) -> list[torch.Tensor]:
        """The optimizer's state buffers (flat), in a fixed order (the rule's, then EMA's ``average``)."""
        return [self._state[k] for k in self._buffer_names()]

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
            mark_flat_grad(p)
            self._param_views.append(pv)
            self._grad_views.append(gv)
            offset += n
        self.params = params
        self._view_ptrs = [pv.data_ptr() for pv in self._param_views]  # fixed: the flat buffer stays where it is
        # Keras' ``variable.constraint`` (set by ``Layer.add_weight``): projected after every update, in `step`.
        self._constraints = [
            (pv, p.constraint)
            for p, pv in zip(params, self._param_views, strict=True)
            if getattr(p, "constraint", None) is not None
        ]
        self._state = {
            name: torch.full_like(self.flat_param, self._state_initial_value(name)) for name in self._buffer_names()
        }
        # Keras' _model_variables_moving_average: one view per parameter into the flat average (zeros until the
        # first step sets it to the weights).
        self._average_views = []
        if self.use_ema:
            average, offset = self._state["average"], 0
            for p, n in zip(params, sizes, strict=True):
                self._average_views.append(average[offset : offset + n].view_as(p))
                offset += n
        self._host_iterations = 0
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
        self._flat_update = self._prepare_update()  # the count starts at 0
        if isinstance(self._learning_rate, float):
            self._flat_update.lr.fill_(self._learning_rate)
        if self._pending_state is not None:
            pending, self._pending_state = self._pending_state, None
            self.load_state_dict(pending)

    @torch.no_grad()
    def _sync_views(self) -> None:
        """Re-attach a parameter or gradient that was replaced rather than updated in place.

        ``module.zero_grad()`` (set_to_none) or ``p.data = ...`` elsewhere would detach a parameter from the flat
        buffers; this restores the view, keeping the values. A cheap host-side identity check per parameter.
        """
        for p, pv, gv, ptr in zip(self.params, self._param_views, self._grad_views, self._view_ptrs, strict=True):
            if p.data_ptr() != ptr:
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
    def step(self, found_inf: torch.Tensor | None = None) -> None:
        """Apply one update to every parameter from the gradients accumulated in the flat gradient buffer.

        Device ops only (see the module docstring): the rate of this step (a built-in schedule's, from the device
        count), ``iterations += 1``, then one fused update launch (plus a reduction pass when clipping by norm),
        then the weights' constraints. ``found_inf``: a 0-d float32 tensor on the device; where nonzero the step is
        skipped entirely (parameters, states and ``iterations`` unchanged, no constraint applied), as dynamic loss
        scaling does after an overflow.
        """
        if not self.built:
            raise RuntimeError("Call optimizer.build(params) before optimizer.step()")
        if found_inf is not None:
            _check_found_inf(found_inf, self.flat_param.device)
        self._sync_views()
        self._write_step_rate()
        self._flat_update(found_inf)  # iterations += 1 (unless found_inf), then the update
        if self.use_ema:
            self._update_average(found_inf)
        if found_inf is None:
            if self._host_iterations is not None:
                self._host_iterations += 1
        else:
            self._host_iterations = None  # only the device knows whether this step counted
        if self._constraints:
            self._apply_constraints(found_inf)

    @torch.no_grad()
    def _update_average(self, found_inf: torch.Tensor | None = None) -> None:
        """Keras' EMA after the update, before the constraints: ``average = m average + (1 - m) weights`` with
        ``m = ema_momentum`` but 0 on the first step (Keras' ``iterations`` is 0 then; the device count, already
        advanced, is 1), then, with ``ema_overwrite_frequency``, the weights overwritten by the average after every
        step whose count is a multiple of it (Keras' ``(iterations + 1) % frequency == 0``). Device ops reading the
        device count; a step skipped by ``found_inf`` leaves the average and the weights as they were."""
        step = self._flat_update.step  # steps taken, this one included (float64, on the device)
        average, flat = self._state["average"], self.flat_param
        momentum = (step != 1).to(torch.float32) * float(self.ema_momentum)
        if found_inf is not None:
            momentum = torch.where(found_inf == 0, momentum, 1.0)  # lerp with weight 1 keeps the average exactly
        torch.lerp(flat, average, momentum, out=average)  # weights + m (average - weights)
        if self.ema_overwrite_frequency:
            overwrite = torch.remainder(step, int(self.ema_overwrite_frequency)) == 0
            if found_inf is not None:
                overwrite = overwrite & (found_inf == 0)
            torch.where(overwrite, average, flat, out=flat)

    @property
    def _model_variables_moving_average(self) -> list[torch.Tensor]:
        """Keras' name for the averages: one view per built parameter into the flat ``average`` buffer. Only an
        optimizer built with ``use_ema`` has it (an ``AttributeError`` otherwise, as in Keras)."""
        if not (self.use_ema and self.built):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute '_model_variables_moving_average'")
        return list(self._average_views)

    @torch.no_grad()
    def finalize_variable_values(self, var_list: Any) -> None:
        """Keras' end of training (``fit()`` calls it): with ``use_ema``, each variable of ``var_list`` (the
        model's trainable weights, in the order the optimizer was built with) takes the value of its average;
        without, nothing happens."""
        if not self.use_ema:
            return
        averages = self._model_variables_moving_average
        var_list = list(var_list)
        if len(var_list) != len(averages):
            raise ValueError(
                f"The length of model variables ({len(var_list)}) to override does not match the length of model "
                f"variables stored in the optimizer ({len(averages)}). Please check if the optimizer was called on "
                "your model."
            )
        for i, (var, average) in enumerate(zip(var_list, averages, strict=True)):
            if tuple(var.shape) != tuple(average.shape):
                raise ValueError(
                    f"Variable {i} has shape {tuple(var.shape)}, but its average in the optimizer has shape "
                    f"{tuple(average.shape)}"
                )
            var.copy_(average)

    @torch.no_grad()
    def _apply_constraints(self, found_inf: torch.Tensor | None = None) -> None:
        """Project each constrained parameter after the update (Keras: ``variable.assign(constraint(variable))``
        for every trainable variable that has one, after the update step). The projection is computed from the
        parameter's view and written back into it, so the parameter stays a view of the flat buffer. A step skipped
        by ``found_inf`` keeps the parameter as it was (Keras applies nothing then)."""
        for pv, constraint in self._constraints:
            projected = constraint(pv)
            if tuple(projected.shape) != tuple(pv.shape):
                raise ValueError(
                    f"The constraint {constraint!r} returned a tensor of shape {tuple(projected.shape)} for a weight "
                    f"of shape {tuple(pv.shape)}: a constraint must keep the weight's shape"
                )
            if found_inf is None:
                pv.copy_(projected)
            else:
                torch.where(found_inf == 0, projected, pv, out=pv)

    def apply(self, grads: Any = None, trainable_variables: Any = None) -> None:
        """Keras' ``apply(grads, trainable_variables=None)``: copy ``grads`` into the flat gradient buffer (if
        given), then ``step()``.

        ``grads`` match the built parameters one to one, or ``trainable_variables`` (which builds the optimizer
        on its first call, as in Keras) in any order. The update is one fused step over every parameter, so a
        gradient is needed for each: a subset of the variables, or a ``None`` gradient (which Keras skips), is a
        ``ValueError`` rather than a step that would move the others with a zero gradient."""
        if grads is None:
            self.step()
            return
        grads = list(grads)
        if not grads:
            return  # Keras: an empty list of gradients is a no-op
        if trainable_variables is not None:
            variables = list(trainable_variables)
            if len(variables) != len(grads):
                raise ValueError(
                    f"Expected one gradient per variable: {len(variables)} gradients. Received {len(grads)}"
                )
            if not self.built:
                self.build(variables)
        elif not self.built:
            raise ValueError(
                "When passing `grads` without `trainable_variables`, the optimizer must already be built on a list "
                "of variables. Call `optimizer.build(trainable_variables)` first."
            )
        else:
            variables = list(self.params)
            if len(grads) != len(variables):
                raise ValueError(f"Expected {len(variables)} gradients for the built parameters. Received {len(grads)}")
        base = getattr(self, "inner_optimizer", self)  # a LossScaleOptimizer's buffers are its inner one's
        position = {id(p): i for i, p in enumerate(self.params)}
        order = [position.get(id(v)) for v in variables]
        if None in order or sorted(order) != list(range(len(self.params))):
            unknown = sum(i is None for i in order)
            raise ValueError(
                f"The fused update steps all {len(self.params)} variables the optimizer was built with at once: "
                f"expected a gradient for each of them. Received gradients for {len(variables)} variables "
                f"({unknown} the optimizer does not hold{', some repeated' if unknown == 0 else ''})"
            )
        with torch.no_grad():
            for i, g in zip(order, grads, strict=True):
                if g is None:
                    raise ValueError(
                        f"The gradient of variable {i} is None: the fused update steps every variable, so each "
                        "needs a gradient (use zeros for a variable that should not move with SGD)"
                    )
                g = torch.as_tensor(g)
                view = base._grad_views[i]
                if tuple(g.shape) != tuple(view.shape):
                    raise ValueError(
                        f"The gradient of variable {i} has shape {tuple(g.shape)}, but the variable has shape "
                        f"{tuple(view.shape)}"
                    )
                view.copy_(g)
        self.step()

    def apply_gradients(self, grads_and_vars: Any) -> int:
        """Keras' ``apply_gradients([(grad, variable), ...])``: :meth:`apply`; returns ``iterations``."""
        pairs = list(grads_and_vars)
        grads, variables = ([g for g, _ in pairs], [v for _, v in pairs]) if pairs else ([], [])
        self.apply(grads, variables)
        return self.iterations

    def _prepare_update(self) -> _optim.FlatUpdate:
        """The subclass's rule over the built flat buffers (``tritonnn.kernels.optim.FlatUpdate``)."""
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
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            **_UNSUPPORTED,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The optimizer's state: every flat state buffer (EMA's ``average`` included), ``iterations`` and (when a
        float) ``learning_rate``."""
        state: dict[str, torch.Tensor] = {"iterations": torch.tensor(self.iterations, dtype=torch.int64)}
        if isinstance(self._learning_rate, float):
            state["learning_rate"] = torch.tensor(self._learning_rate, dtype=torch.float64)
        if self.built:
            for name in self._buffer_names():
                state[name] = self._state[name].detach().clone()
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` saved. Before ``build`` it is kept and applied when built."""
        if not self.built:
            self._pending_state = dict(state)
            self._host_iterations = int(state.get("iterations", 0))  # what `iterations` reads until the build
            if "learning_rate" in state and not isinstance(self._learning_rate, LearningRateSchedule):
                self._learning_rate = float(state["learning_rate"])
            return
        names = self._buffer_names()
        missing = [k for k in names if k not in state]
        if missing:
            raise ValueError(f"Expected the optimizer state to hold {list(names)}. Missing: {missing}")
        for name in names:
            src = state[name]
            if tuple(src.shape) != tuple(self._state[name].shape):
                raise ValueError(
                    f"Expected state {name!r} of shape {tuple(self._state[name].shape)} (the built parameters). "
                    f"Received: {tuple(src.shape)}"
                )
            self._state[name].copy_(src)
        self.iterations = int(state.get("iterations", 0))
        if "learning_rate" in state and not isinstance(self._learning_rate, LearningRateSchedule):
            self._learning_rate = float(state["learning_rate"])
            self._flat_update.lr.fill_(self._learning_rate)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self._learning_rate!r}>"
