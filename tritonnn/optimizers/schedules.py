"""Keras 3 learning-rate schedules: ``ExponentialDecay``, ``CosineDecay``, ``PiecewiseConstantDecay``,
``InverseTimeDecay``, ``PolynomialDecay``, ``CosineDecayRestarts``.

A schedule maps the optimizer's step count (its ``iterations`` before the update, as in Keras) to a learning rate.
Called with a host number it computes in Python floats. Called with a 0-d tensor step it computes on that tensor's
device in float32, as Keras does (its device form): torch ops whose constants are Python scalars, so no host read
and no host-to-device copy. The optimizer keeps its step count on the device and calls the built-in schedules so,
inside every step: a CUDA graph holding the step replays each later step's rate. A user's subclass is evaluated
on the host with the count as an int (``has_device_form`` tells which); its optimizer's step is then not
capturable.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override `get_config()`.")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _is_tensor(step) -> bool:
    return isinstance(step, torch.Tensor)


def _check_positive(name: str, value) -> None:
    if not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (integer division if ``staircase``).

    Args:
        initial_learning_rate: float.
        decay_steps: positive int.
        decay_rate: float.
        staircase: decay at discrete intervals.
        name: the schedule's name.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        _check_positive("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step):
        if _is_tensor(step):
            p = step.to(torch.float32) / float(self.decay_steps)
            if self.staircase:
                p = torch.floor(p)
            return torch.pow(float(self.decay_rate), p) * float(self.initial_learning_rate)
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate) * float(self.decay_rate) ** p

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` (or, after a linear warmup, from ``warmup_target``) to
    ``alpha`` times it over ``decay_steps``; constant afterwards.

    Args:
        initial_learning_rate: float.
        decay_steps: positive int, the number of steps to decay over.
        alpha: the final rate as a fraction of the decay's starting rate.
        name: the schedule's name.
        warmup_target: float or None; with a value, the rate first rises linearly from ``initial_learning_rate``
            to ``warmup_target`` over ``warmup_steps``.
        warmup_steps: int.
    """

    def __init__(
        self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None, warmup_steps=0
    ):
        _check_positive("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decayed(self, s: torch.Tensor, base: float) -> torch.Tensor:
        cos = 0.5 * (1.0 + torch.cos(math.pi * (s / float(self.decay_steps))))
        return ((1.0 - self.alpha) * cos + self.alpha) * float(base)

    def __call__(self, step):
        if _is_tensor(step):
            s = step.to(torch.float32)
            if self.warmup_target is None:
                return self._decayed(torch.clamp(s, max=float(self.decay_steps)), self.initial_learning_rate)
            s = torch.clamp(s, max=float(self.decay_steps + self.warmup_steps))
            delta = float(self.warmup_target - self.initial_learning_rate)
            warm = (s / float(max(self.warmup_steps, 1))) * delta + float(self.initial_learning_rate)
            decayed = self._decayed(s - float(self.warmup_steps), self.warmup_target)
            return torch.where(s < self.warmup_steps, warm, decayed)
        s = float(step)
        if self.warmup_target is None:
            s = min(s, float(self.decay_steps))
            cos = 0.5 * (1.0 + math.cos(math.pi * s / self.decay_steps))
            return float(self.initial_learning_rate) * ((1 - self.alpha) * cos + self.alpha)
        s = min(s, float(self.decay_steps + self.warmup_steps))
        if s < self.warmup_steps:
            return (self.warmup_target - self.initial_learning_rate) * (s / self.warmup_steps) + float(
                self.initial_learning_rate
            )
        cos = 0.5 * (1.0 + math.cos(math.pi * (s - self.warmup_steps) / self.decay_steps))
        return float(self.warmup_target) * ((1 - self.alpha) * cos + self.alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``,
    ``values[-1]`` after the last boundary.

    Args:
        boundaries: strictly increasing step counts.
        values: one more value than boundaries.
        name: the schedule's name.
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, "
                f"and values={values} of length {len(values)}."
            )
        if any(b >= a for b, a in zip(boundaries[:-1], boundaries[1:], strict=True)) if boundaries else False:
            raise ValueError(f"Expected strictly increasing boundaries. Received: boundaries={boundaries}")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step):
        if _is_tensor(step):
            # values[i] where boundaries[i-1] < step <= boundaries[i]: a chain of wheres on Python scalars.
            if not self.boundaries:
                return torch.full(step.shape, float(self.values[0]), dtype=torch.float32, device=step.device)
            out = torch.where(step <= self.boundaries[-1], float(self.values[-2]), float(self.values[-1]))
            for boundary, value in zip(self.boundaries[-2::-1], self.values[-3::-1], strict=True):
                out = torch.where(step <= boundary, float(value), out)
            return out.to(torch.float32)
        for boundary, value in zip(self.boundaries, self.values, strict=False):
            if step <= boundary:
                return float(value)
        return float(self.values[-1])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


def _f32(step: torch.Tensor, value) -> torch.Tensor:
    """``value`` as a 0-d float32 tensor on ``step``'s device: one fill kernel (no host-to-device copy), so a CUDA
    graph may hold it. Keras casts these constants to tensors; dividing by a tensor rather than by a Python scalar
    also keeps CUDA's true division (a CPU-scalar divisor becomes a multiplication by its reciprocal there, one bit
    off, which moves a ``floor`` at a boundary)."""
    return torch.full((), float(value), dtype=torch.float32, device=step.device)


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (``floor(step / decay_steps)`` if
    ``staircase``).

    Args:
        initial_learning_rate: float.
        decay_steps: positive number, how often to apply the decay.
        decay_rate: float.
        staircase: decay at discrete intervals.
        name: the schedule's name.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        if decay_steps <= 0:
            raise ValueError(f"Argument `decay_steps` must be > 0. Received: decay_steps={decay_steps}")

    def __call__(self, step):
        if _is_tensor(step):
            p = step.to(torch.float32) / _f32(step, self.decay_steps)
            if self.staircase:
                p = torch.floor(p)
            denom = _f32(step, self.decay_rate) * p + 1.0
            return _f32(step, self.initial_learning_rate) / denom
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate) / (1.0 + float(self.decay_rate) * p)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PolynomialDecay(LearningRateSchedule):
    """``(initial_learning_rate - end_learning_rate) * (1 - step / decay_steps) ** power + end_learning_rate``,
    the step held at ``decay_steps`` afterwards; with ``cycle``, ``decay_steps`` is instead multiplied by
    ``ceil(step / decay_steps)`` (1 at step 0), so the decay restarts from the initial rate each cycle.

    Args:
        initial_learning_rate: float.
        decay_steps: positive number of steps to decay over.
        end_learning_rate: float, the final rate. Defaults to 0.0001.
        power: float. Defaults to 1.0 (linear).
        cycle: whether to cycle beyond ``decay_steps``.
        name: the schedule's name.
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name="PolynomialDecay",
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        if decay_steps <= 0:
            raise ValueError(f"Argument `decay_steps` must be > 0. Received: decay_steps={decay_steps}")

    def __call__(self, step):
        if _is_tensor(step):
            s = step.to(torch.float32)
            initial, end = _f32(step, self.initial_learning_rate), _f32(step, self.end_learning_rate)
            steps = _f32(step, self.decay_steps)
            if self.cycle:
                # the first multiple of decay_steps at or above the step (1 at step 0), as Keras: its divisor is
                # the Python number here
                steps = steps * torch.where(s == 0, 1.0, torch.ceil(s / self.decay_steps))
            else:
                s = torch.minimum(s, steps)
            p = s / steps
            return (initial - end) * torch.pow(1 - p, _f32(step, self.power)) + end
        s, steps = float(step), float(self.decay_steps)
        if self.cycle:
            steps *= 1.0 if s == 0 else math.ceil(s / self.decay_steps)
        else:
            s = min(s, steps)
        p = s / steps
        end = float(self.end_learning_rate)
        return (float(self.initial_learning_rate) - end) * (1.0 - p) ** float(self.power) + end

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): a cosine decay from ``initial_learning_rate`` to ``alpha`` times it
    over ``first_decay_steps``, then restarts, each period ``t_mul`` times longer and starting ``m_mul`` times lower.

    The restart index is ``floor(log(1 - fraction * (1 - t_mul)) / log(t_mul))`` in float32, as Keras computes it;
    at a restart its rounding decides on which side of the jump a step falls, and float64 decides some of them
    otherwise (``first_decay_steps=3, t_mul=3`` at step 363), so the host form is the same float32 formula run on
    the CPU: the two forms and Keras agree there.

    Args:
        initial_learning_rate: float.
        first_decay_steps: positive number of steps of the first decay period.
        t_mul: float, each period's length as a multiple of the one before. Defaults to 2.0.
        m_mul: float, each period's initial rate as a multiple of the one before. Defaults to 1.0.
        alpha: the minimum rate, as a fraction of ``initial_learning_rate``. Defaults to 0.0.
        name: the schedule's name. Defaults to ``"SGDRDecay"``, as Keras.
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name
        if first_decay_steps <= 0:
            raise ValueError(
                f"Argument `first_decay_steps` must be > 0. Received: first_decay_steps={first_decay_steps}"
            )

    def __call__(self, step):
        if not _is_tensor(step):
            return float(self(torch.tensor(step, dtype=torch.int64 if isinstance(step, int) else torch.float32)))
        t_mul, m_mul, alpha = _f32(step, self._t_mul), _f32(step, self._m_mul), _f32(step, self.alpha)
        fraction = step.to(torch.float32) / _f32(step, self.first_decay_steps)
        if float(self._t_mul) == 1.0:
            restart = torch.floor(fraction)
            fraction = fraction - restart
        else:
            restart = torch.floor(torch.log(1.0 - fraction * (1.0 - t_mul)) / torch.log(t_mul))
            passed = (1.0 - torch.pow(t_mul, restart)) / (1.0 - t_mul)
            fraction = (fraction - passed) / torch.pow(t_mul, restart)
        cosine = 0.5 * torch.pow(m_mul, restart) * (1.0 + torch.cos(_f32(step, math.pi) * fraction))
        return _f32(step, self.initial_learning_rate) * ((1 - alpha) * cosine + alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self._t_mul,
            "m_mul": self._m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


ALL_SCHEDULES = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}
_DEVICE_CALLS = frozenset(cls.__call__ for cls in ALL_SCHEDULES.values())


def has_device_form(schedule: LearningRateSchedule) -> bool:
    """Whether ``schedule(step_tensor)`` computes the rate on the step's device with torch ops only: a built-in
    schedule (or a subclass that keeps its ``__call__``). A subclass with its own ``__call__`` is host code."""
    return type(schedule).__call__ in _DEVICE_CALLS


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """A JSON-compatible dict, in Keras' layout."""
    return {
        "module": "keras.optimizers.schedules",
        "class_name": type(schedule).__name__,
        "config": schedule.get_config(),
        "registered_name": None,
    }


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> LearningRateSchedule:
    """The schedule a :func:`serialize` dict describes."""
    known = dict(ALL_SCHEDULES, **(custom_objects or {}))
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in known:
        raise ValueError(f"Unknown learning rate schedule: {name!r}. Expected one of {sorted(known)}")
    return known[name].from_config(dict(config.get("config", {})))


__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "has_device_form",
    "serialize",
]
