"""What ``compile()`` was given, resolved per output: losses, loss weights and metrics, and their configs.

A model with several outputs takes ``loss``, ``loss_weights``, ``metrics`` and ``weighted_metrics`` as one value
for every output, a list (one entry per output) or a dict keyed by output name, as in Keras. The functions here
turn those specs into per-output lists, build the metric objects once the first batch shows the targets' and
predictions' shapes, and write/read the specs to and from the JSON compile config.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import torch

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .._serialization import is_class_config, serialize_keras_object


def outputs_list(y_pred: Any, output_names: list[str] | None) -> list[torch.Tensor]:
    """The model's outputs as a list, in output-name order for a dict."""
    if isinstance(y_pred, dict):
        names = output_names or sorted(y_pred)
        return [y_pred[n] for n in names]
    if isinstance(y_pred, (list, tuple)):
        return list(y_pred)
    return [y_pred]


def targets_list(y: Any, n_outputs: int, output_names: list[str] | None) -> list[Any]:
    """The targets as a list matching :func:`outputs_list` (a dict by output name, a list, or one target)."""
    if isinstance(y, dict):
        names = output_names
        if names is None or set(y) - set(names):
            raise ValueError(f"Target dict keys {sorted(y)} do not match the model's output names {names}")
        return [y.get(n) for n in names]
    if isinstance(y, (list, tuple)) and n_outputs > 1:
        if len(y) != n_outputs:
            raise ValueError(f"The model has {n_outputs} outputs but {len(y)} targets were given")
        return list(y)
    if n_outputs != 1:
        raise ValueError(f"The model has {n_outputs} outputs: give y as a list or dict of {n_outputs} targets")
    return [y]


def per_output(spec: Any, n: int, what: str, output_names: list[str] | None) -> list[Any]:
    """One entry of a compile argument per output (``what`` names the argument in errors)."""
    names = output_names or [f"output_{i}" for i in range(n)]
    if isinstance(spec, dict):
        unknown = set(spec) - set(names)
        if unknown:
            raise ValueError(f"`{what}` has keys {sorted(unknown)} that are not output names {names}")
        return [spec.get(k) for k in names]
    if isinstance(spec, (list, tuple)) and n > 1:
        if len(spec) != n:
            raise ValueError(
                f"For a model with {n} outputs, `{what}` as a list must have {n} entries. Received {len(spec)}"
            )
        return list(spec)
    if what == "loss_weights" and n == 1 and isinstance(spec, (list, tuple)):
        if len(spec) != 1:  # Keras' message
            raise ValueError(f"`loss_weights` must match the number of losses, got 1 losses and {len(spec)} weights.")
        return list(spec)
    if what == "loss" and n == 1 and isinstance(spec, (list, tuple)) and len(spec) == 1:
        return list(spec)  # one output's loss in a list of one (Keras takes it)
    if what in ("metrics", "weighted_metrics") and n == 1 and isinstance(spec, (list, tuple)) and len(spec) == 1:
        if isinstance(spec[0], (list, tuple)):  # one output's list of metrics, in a list of one (Keras takes it)
            return [list(spec[0])]
    if what in ("metrics", "weighted_metrics") or n == 1:
        return [spec] + [None] * (n - 1) if n == 1 else [spec] * n
    return [spec] * n


def _object_name(obj: Any) -> str:
    """Keras' ``get_object_name``: an object's ``name``, else its (class') name in snake case."""
    if hasattr(obj, "name"):
        return obj.name
    return _snake(getattr(obj, "__name__", None) or type(obj).__name__)


def _snake(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def get_metric(identifier: Any, y_true: Any, y_pred: Any) -> metrics_mod.Metric:
    """A compile() metric (Keras' ``get_metric``): ``"accuracy"``/``"acc"`` (any case) picked from the first batch's
    shapes, any other identifier through ``metrics.get``; a function is wrapped in a ``MeanMetricWrapper``. A string
    names the metric (its History key), as in Keras: ``metrics=["mse"]`` logs ``mse``."""
    if identifier is None:
        raise ValueError("Expected metric, received `None`")
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        metric = metrics_mod.resolve_accuracy(identifier, y_true, y_pred)
    else:
        metric = metrics_mod.get(identifier)
    name = identifier if isinstance(identifier, str) else _object_name(metric)
    if not isinstance(metric, metrics_mod.Metric):
        metric = metrics_mod.MeanMetricWrapper(metric, name=name)
    metric.name = name
    return metric


def get_loss(identifier: Any) -> Any:
    """A compile() loss as a ``Loss``: a function ``fn(y_true, y_pred)`` is wrapped in a ``LossFunctionWrapper``,
    so that its targets are rank-matched to the predictions as Keras does; a built-in function (``loss="mse"`` is
    ``mean_squared_error``) becomes its class, which computes the same values on the fused kernels' paths."""
    if identifier is None or isinstance(identifier, losses_mod.Loss):
        return identifier
    if inspect.isfunction(identifier) and identifier in losses_mod.FUNCTION_CLASSES:
        return losses_mod.FUNCTION_CLASSES[identifier]()
    return losses_mod.LossFunctionWrapper(identifier, name=_object_name(identifier))


class CompiledOutputs:
    """The compile arguments resolved for ``n`` outputs: a loss and a weight per output, the metric objects of
    each output, and a loss tracker per output that has a loss (multi-output models only)."""

    def __init__(
        self,
        loss_spec: Any,
        loss_weights_spec: Any,
        metrics_spec: Any,
        weighted_metrics_spec: Any,
        ys: list[Any],
        preds: list[torch.Tensor],
        output_names: list[str] | None,
    ):
        n = len(preds)
        self.losses = [get_loss(fn) for fn in per_output(loss_spec, n, "loss", output_names)]
        self.loss_weights = (
            [1.0] * n
            if loss_weights_spec is None
            else [
                1.0 if w is None else float(w) for w in per_output(loss_weights_spec, n, "loss_weights", output_names)
            ]
        )
        names = output_names or [f"output_{i}" for i in range(n)]
        metric_groups: list[list[metrics_mod.Metric]] = []
        for i, (m_spec, wm_spec) in enumerate(
            zip(
                per_output(metrics_spec, n, "metrics", output_names),
                per_output(weighted_metrics_spec, n, "weighted_metrics", output_names),
                strict=True,
            )
        ):
            group = []
            for weighted, spec in ((False, m_spec), (True, wm_spec)):
                ids = [] if spec is None else (list(spec) if isinstance(spec, (list, tuple)) else [spec])
                for ident in ids:
                    metric = get_metric(ident, ys[i], preds[i])
                    metric._tritonnn_weighted = weighted
                    if n > 1:
                        metric.name = f"{names[i]}_{metric.name}"
                    if weighted and not n > 1:
                        metric.name = (
                            f"weighted_{metric.name}" if any(m.name == metric.name for m in group) else metric.name
                        )
                    group.append(metric)
            metric_groups.append(group)
        self.metrics = metric_groups
        self.loss_trackers = (
            [metrics_mod.Mean(name=f"{names[i]}_loss") for i in range(n) if self.losses[i] is not None] if n > 1 else []
        )


# ---- the compile config ------------------------------------------------------------------------------------------


def check_nest(spec: Any, getter: Callable[[Any], Any]) -> Any:
    """``getter`` applied to each entry of a spec (one value, a list, or a dict): unknown names fail at compile."""
    if isinstance(spec, dict):
        return {k: getter(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [getter(v) for v in spec]
    return getter(spec)


def serialize_nest(spec: Any) -> Any:
    """A spec for the JSON compile config, as Keras writes it: strings and numbers as they are, objects in
    ``{"module", "class_name", "config", "registered_name"}`` and functions as Keras' function record, inside the
    spec's lists and dicts (a tuple is written as a list)."""
    if isinstance(spec, dict):
        return {k: serialize_nest(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [serialize_nest(v) for v in spec]
    if spec is not None and not isinstance(spec, (str, int, float)) and not hasattr(spec, "get_config"):
        if getattr(spec, "__name__", None) is None:
            raise ValueError(f"Cannot serialize {spec!r} for the compile config")
    return serialize_keras_object(spec)


def deserialize_nest(spec: Any, module: Any) -> Any:
    """:func:`serialize_nest`'s inverse, reading tritonnn's earlier ``{"class_name", "config"}`` layout too:
    ``module`` (``tritonnn.losses`` or ``.metrics``) rebuilds each object or function record (a registered class
    by its registered name; a custom function through the registry or the active ``custom_object_scope``); a
    name stays a name, for ``compile`` to resolve. An unknown class or function is a ``ValueError``."""
    if is_class_config(spec):
        try:
            return module.deserialize(spec)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Unknown object {spec.get('class_name')!r} in the compile config: {e}") from e
    if isinstance(spec, dict):
        return {k: deserialize_nest(v, module) for k, v in spec.items()}
    if isinstance(spec, list):
        return [deserialize_nest(v, module) for v in spec]
    return spec
