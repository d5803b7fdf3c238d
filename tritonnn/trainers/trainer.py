"""The trainer: ``compile``, ``fit``, ``evaluate``, ``predict`` and the steps they run (Keras 3's ``Trainer``).

``tritonnn.Model`` is ``Trainer`` + ``Layer``: the layer side (``tritonnn/models/model.py``) holds the container
(weights, sublayers, building, saving, summary); this side holds what training adds to it. Data comes through
``trainers/data.py``, per-output losses and metrics through ``trainers/compile_utils.py``, and the per-batch step
through ``trainers/step_runner.py`` (a CUDA graph where it can be captured). A data-parallel run
(``tritonnn.distribution``) shards the sources and reduces gradients and metrics through the hooks called here.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import config, optimizers
from .. import losses as losses_mod
from .. import metrics as metrics_mod
from ..callbacks import Callback, CallbackList, History, Progbar, ProgbarLogger
from ..distribution import data_parallel
from ..layers.symbolic import flatten, map_structure
from . import compile_utils, data, fused_step, step_runner
from . import data as data_mod

# One lock per model: fit, evaluate and the single-batch train/test calls of a model run one at a time (a second
# thread waits for the first to finish, as in Keras), so two threads never build or step one optimizer at once.
# Kept beside the model rather than on it, so that a model stays copyable and picklable.
_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _training_lock(model: Any) -> threading.RLock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def _one_at_a_time(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` under the model's training lock (re-entrant: a callback may call evaluate inside fit)."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _training_lock(self):
            return method(self, *args, **kwargs)

    return locked


_PARTS: dict[Any, bool] = {}  # step function -> whether it takes (x, y, sample_weight): tritonnn's older signature


def _takes_parts(step: Callable[..., Any]) -> bool:
    """Whether a step override takes the batch's parts (``train_step(self, x, y, sample_weight=None)``, tritonnn's
    signature before it followed Keras) rather than Keras' one ``data`` argument."""
    key = getattr(step, "__func__", step)
    known = _PARTS.get(key)
    if known is None:
        params = [
            p
            for p in inspect.signature(step).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        known = _PARTS[key] = len(params) >= 2
    return known


def _log_value(value: Any) -> Any:
    """A metric result for the logs, as Keras' ``pythonify_logs`` makes it: a float when it converts, else the
    numpy array."""
    array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    return float(array.reshape(-1)[0]) if array.size == 1 else array


class CompileMetrics(metrics_mod.Metric):
    """Keras' ``CompileMetrics``: every compiled metric of a model (each output's ``metrics`` and
    ``weighted_metrics``) as one metric named ``"compile_metrics"``, the second entry of ``model.metrics``.

    ``update_state(y, y_pred, sample_weight)`` routes each output's targets and predictions to its metrics, the
    sample weights to the weighted ones only (as fit does); ``result()`` is ``{name: value}``, which the logs
    flatten; ``reset_state`` and ``variables`` cover every compiled metric. Made on each access of
    ``model.metrics`` over the model's live metric objects (it holds no state of its own)."""

    def __init__(self, trainer: Any):
        super().__init__(name="compile_metrics")
        self._trainer = trainer
        for group in trainer._output_metrics or []:
            self._metrics.extend(group)

    @property
    def metrics(self) -> list[metrics_mod.Metric]:
        return list(self._metrics)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        t = self._trainer
        preds = t._outputs_list(y_pred)
        ys = t._targets_list(y_true, len(preds))
        t._resolve_compiled(ys, preds)
        for group, yt, yp in zip(t._output_metrics, ys, preds, strict=True):
            for m in group:
                m._to(yp.device)
                m.update_state(yt, yp.detach(), sample_weight=sample_weight if m._tritonnn_weighted else None)
        self._metrics[:] = [m for group in t._output_metrics for m in group]

    def result(self) -> dict[str, Any]:
        return {m.name: m.result() for m in self._metrics}


class Trainer:
    """Training for a model (mixed into ``tritonnn.Model``): compile, fit, evaluate, predict, train/test steps.

    The host class provides the layer side this uses: calling the model, ``device``, ``built``,
    ``trainable_weights``, ``losses`` and ``output_names``.
    """

    _distribution: Any = None  # the DataParallel of the running fit/evaluate (tritonnn.distribution), else None

    def __init__(self) -> None:
        self.compiled = False
        self._jit_compile: Any = "auto"
        self.optimizer: optimizers.Optimizer | None = None
        self.loss: Any = None
        self.stop_training = False
        self.history: History | None = None
        self._compile_config: dict[str, Any] | None = None
        self._loss_spec: Any = None
        self._loss_weights_spec: Any = None
        self._metrics_spec: Any = None
        self._weighted_metrics_spec: Any = None
        self._output_losses: list[Any] | None = None
        self._output_metrics: list[list[metrics_mod.Metric]] | None = None
        self._loss_tracker = metrics_mod.Mean(name="loss")
        self._output_loss_trackers: list[metrics_mod.Mean] = []
        self._optimizer_params: list[torch.nn.Parameter] = []
        self._initial_epoch: int | None = None

    # The per-call machinery of the last fit/evaluate (step callables, captured graphs, the last step's losses with
    # their autograd graph): rebuilt by the next call, never part of a pickled or copied model.
    _TRANSIENT = ("_last_step_runner", "_test_runner", "_last_output_losses", "_shuffle_generator", "_step_logs")

    def __getstate__(self) -> dict[str, Any]:
        """A fitted model pickles as Keras' does (scikit-learn's wrappers pickle fitted estimators): everything but
        the transient state of the last call (``_TRANSIENT``)."""
        state = dict(self.__dict__)
        for key in self._TRANSIENT:
            state.pop(key, None)
        optimizer = state.get("optimizer")
        if isinstance(optimizer, optimizers.Optimizer) and optimizer.built:
            # A built optimizer's parameters are views into its flat buffers, which pickle does not keep (each
            # view is stored as its own copy). Stored instead: an unbuilt optimizer of the same config holding the
            # state (as a saved file holds it), built over the model's weights by the next fit, state applied.
            try:
                fresh = type(optimizer).from_config(optimizer.get_config())
            except Exception:  # noqa: BLE001 - an optimizer without a config round trip is stored as it is
                return state
            fresh.load_state_dict(optimizer.state_dict())
            state["optimizer"], state["_optimizer_params"] = fresh, []
        return state

    # ---- metrics ----
    @property
    def metrics(self) -> list[metrics_mod.Metric]:
        """Keras' order: the loss tracker, the compiled metrics as one :class:`CompileMetrics` (when compile got
        any), then the per-output loss trackers."""
        out: list[metrics_mod.Metric] = [self._loss_tracker]
        if self._metrics_spec or self._weighted_metrics_spec:
            out.append(CompileMetrics(self))
        return out + list(self._output_loss_trackers)

    @property
    def metrics_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    # ---- compile ----
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        loss_weights: Any = None,
        metrics: Any = None,
        weighted_metrics: Any = None,
        run_eagerly: bool = False,
        steps_per_execution: int = 1,
        jit_compile: Any = "auto",
        auto_scale_loss: bool = True,
    ) -> None:
        """Configure the model for training: optimizer, loss(es), loss weights and metrics, strings or objects.

        For several outputs, ``loss``, ``loss_weights``, ``metrics`` and ``weighted_metrics`` may be lists (one
        entry per output) or dicts keyed by output name; a single loss applies to every output.
        """
        self.optimizer = optimizers.get(optimizer)
        if self.compute_dtype == torch.float16 and not isinstance(self.optimizer, optimizers.LossScaleOptimizer):
            # Keras wraps the optimizer under "mixed_float16": float16 gradients need dynamic loss scaling.
            self.optimizer = optimizers.LossScaleOptimizer(self.optimizer)
        self._loss_spec = compile_utils.check_nest(loss, losses_mod.get)
        self.loss = self._loss_spec
        self._loss_weights_spec = loss_weights
        for name, spec in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if spec is not None and not isinstance(spec, (list, tuple, dict)):
                raise ValueError(f"Expected `{name}` to be a list or a dict. Received: {name}={spec!r}")
            for m in flatten(spec) if spec is not None else []:  # unknown names fail now, not at the first batch
                # A known name is not instantiated here (an automatic name like "auc_1" is drawn once, at the
                # first batch, as in Keras); any other identifier is resolved now, so that a typo fails in compile.
                if not (isinstance(m, str) and (m.lower() in ("accuracy", "acc") or m in metrics_mod.ALL_OBJECTS)):
                    metrics_mod.get(m)
        self._metrics_spec, self._weighted_metrics_spec = metrics, weighted_metrics
        self._output_losses = None
        self._output_metrics = None
        self._output_loss_trackers = []
        self._optimizer_params = []
        # Serialized when asked for (saving), as Keras does: the optimizer's config as it is then, and a compile
        # argument that cannot be serialized (a schedule without get_config) fails the save, not the compile.
        self._compile_config = {
            "optimizer": self.optimizer,
            "loss": loss,
            "loss_weights": loss_weights,
            "metrics": metrics,
            "weighted_metrics": weighted_metrics,
            "run_eagerly": run_eagerly,
            "steps_per_execution": steps_per_execution,
            "jit_compile": jit_compile,
        }
        if jit_compile not in (True, False, "auto"):
            raise ValueError(
                f"Expected `jit_compile` to be True, False or 'auto'. Received: jit_compile={jit_compile!r}"
            )
        self._jit_compile = jit_compile  # on CUDA, True/"auto": capture steps in CUDA graphs; False: never
        self.compiled = True

    def get_compile_config(self) -> dict[str, Any] | None:
        """What ``compile`` was given, serialized now (None before compile)."""
        cfg = self._compile_config
        if cfg is None:
            return None
        return {
            "optimizer": optimizers.serialize(cfg["optimizer"]),
            "loss": compile_utils.serialize_nest(cfg["loss"]),
            "loss_weights": cfg["loss_weights"],
            "metrics": compile_utils.serialize_nest(cfg["metrics"]),
            "weighted_metrics": compile_utils.serialize_nest(cfg["weighted_metrics"]),
            # Keras' last three keys; "auto" is written as given (Keras' torch backend writes False for it:
            # docs/keras_differences.md, compile-config.jit-compile-auto)
            "run_eagerly": cfg.get("run_eagerly", False),
            "steps_per_execution": cfg.get("steps_per_execution", 1),
            "jit_compile": cfg.get("jit_compile", "auto"),
        }

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compile again from :meth:`get_compile_config`'s output."""
        cfg = dict(config)
        cfg["optimizer"] = (
            optimizers.deserialize(cfg["optimizer"]) if isinstance(cfg["optimizer"], dict) else cfg["optimizer"]
        )
        cfg["loss"] = compile_utils.deserialize_nest(cfg.get("loss"), losses_mod)
        cfg["metrics"] = compile_utils.deserialize_nest(cfg.get("metrics"), metrics_mod)
        cfg["weighted_metrics"] = compile_utils.deserialize_nest(cfg.get("weighted_metrics"), metrics_mod)
        self.compile(**cfg)

    def _output_keys(self) -> list[str] | None:
        """What keys the outputs' targets, losses and metrics: a Functional model's output dict keys (sorted), as
        Keras keys them, where ``output_names`` names the output layers; else ``output_names``."""
        keys = getattr(self, "output_dict_keys", None)
        return list(keys) if keys is not None else self.output_names

    def _outputs_list(self, y_pred: Any) -> list[torch.Tensor]:
        return compile_utils.outputs_list(y_pred, self._output_keys())

    def _targets_list(self, y: Any, n_outputs: int) -> list[Any]:
        if y is None:  # no targets at all: a model that adds its own losses (fit(x) with y=None)
            return [None] * n_outputs
        return compile_utils.targets_list(y, n_outputs, self._output_keys())

    def _resolve_compiled(self, ys: list[Any], preds: list[torch.Tensor]) -> None:
        """Make the per-output losses, weights and metric objects, once: at the first batch (its shapes pick
        the metric variants, e.g. which accuracy)."""
        if self._output_losses is not None:
            return
        compiled = compile_utils.CompiledOutputs(
            self._loss_spec,
            self._loss_weights_spec,
            self._metrics_spec,
            self._weighted_metrics_spec,
            ys,
            preds,
            self._output_keys(),
        )
        self._output_losses = compiled.losses
        self._output_loss_weights = compiled.loss_weights
        self._output_metrics = compiled.metrics
        self._output_loss_trackers = compiled.loss_trackers

    # ---- steps ----
    def compute_loss(
        self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None, training: bool = True
    ) -> torch.Tensor:
        """The compiled loss (weighted sum over outputs) plus the model's losses (regularizers, ``add_loss``).
        ``training`` is Keras' argument (its loss scaling applies in training; tritonnn scales in the step)."""
        preds = self._outputs_list(y_pred)
        ys = self._targets_list(y, len(preds))
        self._resolve_compiled(ys, preds)
        total = None
        self._last_output_losses = []
        for loss_fn, weight, yt, yp in zip(self._output_losses, self._output_loss_weights, ys, preds, strict=True):
            if loss_fn is None or yt is None:
                continue
            value = loss_fn(yt, yp, sample_weight)  # a Loss (compile_utils wraps plain functions)
            self._last_output_losses.append(value)
            total = value * weight if total is None else total + value * weight
        if total is None:
            if not self.losses:
                raise ValueError("The model has no loss to optimize: pass `loss=` to `compile()` or use `add_loss()`.")
            total = torch.zeros((), device=self.device)
        for extra in self.losses:
            total = total + extra
        return total

    def _ensure_built(self, x: Any) -> None:
        if not self.built:
            with torch.no_grad():
                self(data.index(x, slice(0, 1)), training=False)
            self._clear_losses()

    def _ensure_optimizer(self) -> None:
        params = self.trainable_weights
        if not params:
            raise ValueError("The model has no trainable weights to train.")
        if [id(p) for p in params] != [id(p) for p in self._optimizer_params]:
            self.optimizer.build(params)
            self._optimizer_params = params

    def train_step(self, data: Any) -> dict[str, Any]:
        """One update on a batch ``data`` (``x``, ``(x, y)`` or ``(x, y, sample_weight)``, as Keras passes it):
        forward, loss, backward, metric updates, one fused optimizer step. Returns the metrics' results (device
        tensors, as Keras' ``get_metrics_result()``). Override it as in Keras to customize ``fit``; the built-in
        one runs without building this dict (``_default_train_step``)."""
        self._default_train_step(*data_mod.unpack_x_y_sample_weight(data))
        return self._metrics_result()

    def _default_train_step(self, x: Any, y: Any, sample_weight: Any = None) -> None:
        """The built-in train step on the batch's parts (what ``fit`` runs when ``train_step`` is not overridden;
        no host sync)."""
        self._train_body(x, y, sample_weight)
        self.optimizer.step()

    def _metrics_result(self) -> dict[str, Any]:
        """``{name: result}`` of every metric, as tensors (Keras' ``get_metrics_result``; no host sync)."""
        return {m.name: m.result() for m in self.metrics}

    def _train_body(self, x: Any, y: Any, sample_weight: Any = None) -> None:
        """All of a train step but the optimizer update: the part fit() captures in a CUDA graph."""
        self.optimizer.zero_grad()
        direct = fused_step.train_without_autograd(self, x, y, sample_weight)  # a fused MLP on the torch backend
        if direct is not None:  # (its layers add no losses: it runs only when none has any)
            loss, y_pred = direct
        else:
            self._clear_losses()
            fused = fused_step.fused_loss(self, x, y, sample_weight, training=True)  # the loss inside a fused MLP
            if fused is not None:
                loss, y_pred = fused
            else:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x, y, y_pred, sample_weight)
            scale_loss = getattr(self.optimizer, "scale_loss", None)
            (loss if scale_loss is None else scale_loss(loss)).backward()
        self._update_metrics(loss, y, y_pred, sample_weight)

    # ---- CUDA graphs (tritonnn/trainers/step_runner.py) ----
    def _graph_blocker(self, kind: str, device: torch.device | None = None) -> str | None:
        """Why the ``kind`` ("train", "test", "predict") step cannot be captured in a CUDA graph, or None; ``device``
        asks as if the model were there (bench/plan.py asks about CUDA on a CPU)."""
        device = self.device if device is None else device
        if self._jit_compile is False:
            return "jit_compile=False"
        if step_runner.factory_for(device) is None:
            return f"the model is on {device.type}, not CUDA"
        if config.check_numerics():
            return "check_numerics is on (it reads values on the host)"
        if kind == "train":
            if type(self).train_step is not Trainer.train_step:
                return "a custom train_step"
            host_seeded = [
                layer.name
                for layer in self._flatten_layers()
                if getattr(layer, "rate", 0) and hasattr(layer, "next_seed") and not hasattr(layer, "device_seeds")
            ]
            if host_seeded:
                return f"training-mode dropout in {host_seeded} draws a new seed on the host every step"
        if kind == "test" and type(self).test_step is not Trainer.test_step:
            return "a custom test_step"
        return None

    def _optimizer_in_graph(self) -> bool:
        """Whether the captured train step holds the optimizer's update too (one replay per step), or the update
        runs after each replay, eagerly (a learning rate computed on the host: ``capture_blocker`` names it)."""
        return getattr(self.optimizer, "capture_blocker", "unknown optimizer") is None

    def _use_device_seeds(self) -> None:
        """Dropout layers draw their seeds on the device wherever the step may be captured (a graph factory
        exists for the model's device), eager steps included, so that eager and captured runs draw the same
        masks: on CUDA the mask is Philox either way; under the CPU emulator both take the Philox torch path."""
        on = step_runner.factory_for(self.device) is not None
        for layer in self._flatten_layers():
            if hasattr(layer, "device_seeds"):
                layer.device_seeds = on

    def _step_runner(self, kind: str, source: Any) -> Callable[..., Any]:
        """The per-batch callable of fit/evaluate/predict: a StepGraph where capture is possible, else eager."""
        eager = self._step_function(kind)
        split = kind == "train" and not self._optimizer_in_graph()  # the update after the replay, eagerly
        if kind == "train":
            self._use_device_seeds()
        return step_runner.step_runner(
            kind,
            eager,
            source,
            blocker=self._graph_blocker(kind),
            device=self.device,
            body=self._train_body if split else None,
            after=self.optimizer.step if split else None,
            key=self._distribution.step_key if kind == "train" and self._distribution is not None else None,
        )

    def _step_function(self, kind: str) -> Callable[..., Any]:
        """What one batch of ``kind`` runs, on the batch's parts ``(x, y, sample_weight)`` (``predict``: ``x``): the
        built-in step, or the model's own ``train_step``/``test_step``/``predict_step`` called as Keras calls it,
        on the packed batch (a dict it returns becomes the logs: ``_step_logs``). An override written with
        tritonnn's earlier signature, ``train_step(self, x, y, sample_weight=None)``, is called with the parts."""
        name = {"train": "train_step", "test": "test_step", "predict": "predict_step"}[kind]
        own = self.__dict__.get(name)  # an instance attribute: data-parallel's wrapper of the step
        overridden = own is not None or getattr(type(self), name) is not getattr(Trainer, name)
        if not overridden:
            return {"train": self._default_train_step, "test": self._default_test_step,
                    "predict": self._predict_body}[kind]  # fmt: skip
        step = getattr(self, name)
        parts = _takes_parts(step)
        if kind == "predict":
            return (lambda x: step(x)) if parts else (lambda x: step((x,)))

        def run(x: Any, y: Any = None, sample_weight: Any = None) -> Any:
            out = step(x, y, sample_weight) if parts else step(data_mod.pack_x_y_sample_weight(x, y, sample_weight))
            self.__dict__["_step_logs"] = out if isinstance(out, dict) else None
            return out

        return run

    def _current_logs(self) -> dict[str, Any]:
        """The logs callbacks and the progress bar see: what a custom step returned (Keras' rule: its dict, nested
        dicts flattened), else the compiled metrics' values."""
        returned = self.__dict__.get("_step_logs")
        if returned is None:
            return self._logs()
        out: dict[str, Any] = {}
        for key, value in returned.items():
            if isinstance(value, dict):
                out.update({k: _log_value(v) for k, v in value.items()})
            else:
                out[key] = _log_value(value)
        return out

    def _predict_body(self, x: Any) -> Any:
        out = self(x, training=False)
        self._clear_losses()
        return out

    def test_step(self, data: Any) -> dict[str, Any]:
        """One evaluation batch ``data`` (as ``train_step``'s): loss and metric updates; returns the metrics'
        results. Override it as in Keras to customize ``evaluate`` (and ``fit``'s validation)."""
        self._default_test_step(*data_mod.unpack_x_y_sample_weight(data))
        return self._metrics_result()

    def predict_step(self, data: Any) -> Any:
        """The model's outputs for one batch ``data`` (``x`` or ``(x,)``); override it to customize ``predict``."""
        return self._predict_body(data_mod.unpack_x_y_sample_weight(data)[0])

    def _default_test_step(self, x: Any, y: Any, sample_weight: Any = None) -> None:
        self._clear_losses()
        fused = fused_step.fused_loss(self, x, y, sample_weight, training=False)  # the loss inside a fused MLP
        if fused is not None:
            loss, y_pred = fused
        else:
            y_pred = self(x, training=False)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        self._update_metrics(loss, y, y_pred, sample_weight)

    def _update_metrics(self, loss: torch.Tensor, y: Any, y_pred: Any, sample_weight: Any) -> None:
        batch = data.num_samples(y_pred)
        self._loss_tracker.update_state(loss.detach(), sample_weight=batch)
        for tracker, value in zip(self._output_loss_trackers, self._last_output_losses, strict=False):
            tracker.update_state(value.detach(), sample_weight=batch)
        preds = self._outputs_list(y_pred)
        ys = self._targets_list(y, len(preds))
        for group, yt, yp in zip(self._output_metrics, ys, preds, strict=True):
            for m in group:
                m._to(yp.device)  # a custom metric's variables follow the predictions (no copy when they are there)
                m.update_state(yt, yp.detach(), sample_weight=sample_weight if m._tritonnn_weighted else None)

    def _reset_metrics(self) -> None:
        for m in self.metrics:
            m.reset_state()

    def _logs(self, prefix: str = "") -> dict[str, Any]:
        """The current loss and metric values as Python floats (this reads from the device); a metric with several
        values (``Precision(thresholds=[...])``) gives a numpy array, as in Keras' logs."""
        ordered = [
            *(m for group in self._output_metrics or [] for m in group),
            self._loss_tracker,
            *self._output_loss_trackers,
        ]
        return {prefix + m.name: _log_value(m.result()) for m in ordered}

    def _check_no_targets_needed(self, method: str, batches: bool = False) -> None:
        """Data without targets (``y=None``) trains and evaluates only a model compiled without losses or metrics
        that read targets: one whose loss it adds itself (``add_loss``), as Keras allows."""
        needs = [
            what
            for what, spec in (
                ("a loss", self._loss_spec),
                ("metrics", self._metrics_spec),
                ("weighted metrics", self._weighted_metrics_spec),
            )
            if spec is not None and any(v is not None for v in flatten(spec))
        ]
        if needs:
            got = "batches without targets" if batches else "y=None"
            raise ValueError(
                f"Expected target data `y` for {method}(): the model was compiled with {' and '.join(needs)}, which "
                f"compare(s) predictions with targets. Received: {got}. Pass `y`, or compile without `loss` and "
                "`metrics` when the model adds its own losses with `add_loss()`."
            )

    # ---- data preparation ----
    def _prepare(self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: Any = None):
        return data.prepare(x, y, sample_weight, class_weight, self.device)

    def _source(self, x, y, sample_weight, batch_size, shuffle, steps, class_weight=None, continuing=False):
        return data.make_source(
            x, y, sample_weight, batch_size, shuffle, steps, self.device, class_weight, continuing=continuing
        )

    def _build_from(self, source: Any) -> None:
        """Build the model on the first sample of an array source; a generator's model must be built already."""
        if isinstance(source, data.ArraySource):
            self._ensure_built(data.index(source.x, slice(0, 1)))
        elif not self.built:
            raise ValueError("Build the model (call it on a batch, or give an Input) before fitting on a generator")

    # ---- fit ----
    @_one_at_a_time
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: str | int = "auto",
        callbacks: list[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: dict[int, float] | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
    ) -> History:
        """Train for ``epochs`` epochs; returns a ``History`` whose ``.history`` has Keras' key names.

        ``x``/``y`` may be numpy arrays, torch tensors, lists or dicts of them (several inputs or outputs), or
        ``x`` alone a generator or ``torch.utils.data.DataLoader`` yielding ``(x, y)`` or ``(x, y, sample_weight)``.
        """
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")
        batch_size = data.check_batch_size(batch_size)
        steps_per_epoch = data.check_steps("steps_per_epoch", steps_per_epoch)
        validation_steps = data.check_steps("validation_steps", validation_steps)
        verbose = 1 if verbose == "auto" else int(verbose)
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"Expected `epochs` to be a non-negative integer. Received: epochs={epochs!r}")
        epochs = config.capped_epochs(epochs)  # keras.config.max_epochs, for debugging runs
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"`validation_split` must be in [0, 1). Received: validation_split={validation_split}")
        if validation_split and validation_data is None:
            if data.is_dataset(x):
                raise ValueError("`validation_split` is only supported for arrays and tensors, not generators")
            x, y, sample_weight, n = self._prepare(x, y, sample_weight, class_weight)
            class_weight = None
            split = int(n * (1.0 - validation_split))  # Keras takes the last fraction, before shuffling
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no data for training or validation")
            validation_data = (data.index(x, slice(split, n)), None if y is None else data.index(y, slice(split, n)))
            if sample_weight is not None:
                validation_data += (sample_weight[split:],)
                sample_weight = sample_weight[:split]
            x, y = data.index(x, slice(0, split)), None if y is None else data.index(y, slice(0, split))
        source = self._source(x, y, sample_weight, batch_size, shuffle, steps_per_epoch, class_weight, continuing=True)
        if isinstance(source, data.ArraySource) and source.y is None:
            self._check_no_targets_needed("fit")
        val_source = None
        if validation_data is not None:
            if data.is_dataset(validation_data):
                val_source = data.IterableSource(validation_data, self.device, validation_steps)
            else:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                    raise ValueError(
                        "`validation_data` should be a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight)"
                    )
                val_source = self._source(
                    *validation_data[:2],
                    validation_data[2] if len(validation_data) == 3 else None,
                    validation_batch_size or batch_size,
                    False,
                    validation_steps,
                )

        self._build_from(source)
        self._ensure_optimizer()
        dist = data_parallel.for_run(self)  # None in a single process
        if dist is not None:
            source, val_source, verbose, callbacks = dist._prepare_fit(
                self, source, val_source, verbose, callbacks, batch_size
            )
        self.history = History()
        progbar = ProgbarLogger(verbose) if verbose else None
        cbs = CallbackList(
            [*(callbacks or []), *([progbar] if progbar else []), self.history],
            self,
            epochs=epochs,
            steps=source.steps,
            verbose=verbose,
        )
        self.stop_training = False
        # The shuffle order: one permutation per epoch from this generator, seeded from torch's global RNG (so
        # set_random_seed makes it reproducible). A resuming callback may restore its state (see below).
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        self._shuffle_generator = gen
        self._initial_epoch = self._initial_step = self._resume_generator_state = None
        self.train()
        cbs.call("on_train_begin")
        if dist is not None:  # every rank starts from rank 0's weights, optimizer state and shuffle generator
            dist._begin_fit(self)
        # BackupAndRestore sets these when it restored a backup: the epoch to start at, the batches of that
        # epoch already trained, and the generator state from the start of that epoch (to redraw its order).
        if self._initial_epoch is not None:
            initial_epoch = max(initial_epoch, self._initial_epoch)
        skip = int(self._initial_step or 0)
        if self._resume_generator_state is not None:
            gen.set_state(self._resume_generator_state)
        epoch_logs: dict[str, float] = {}
        run = self._step_runner("train", source)
        self._last_step_runner = run
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            self.__dict__["_step_logs"] = None  # a custom train_step's returned logs, set by each of its steps
            cbs.call("on_epoch_begin", epoch)
            steps_done = 0
            for step, (xb, yb, swb) in enumerate(source.epoch(gen)):
                if step < skip:  # already trained before the interruption
                    steps_done = step + 1
                    continue
                cbs.batch("on_train_batch_begin", step, None)
                run(xb, yb, swb)
                steps_done = step + 1
                cbs.batch("on_train_batch_end", step, self._current_logs)
                if progbar:
                    progbar.progress(steps_done, self._current_logs)
                if self.stop_training:
                    break
            skip = 0
            if steps_done == 0:
                raise ValueError("fit() got no batches for an epoch: the generator or DataLoader is empty")
            if progbar and source.steps is None:
                progbar.params["steps"] = steps_done
            if dist is not None:  # the epoch's metrics over every rank's samples
                dist._reduce_metrics(self)
            epoch_logs = self._current_logs()
            if val_source is not None and (epoch + 1) % validation_freq == 0:
                cbs.call("on_test_begin")  # Keras runs fit's validation through evaluate, with fit's callbacks
                val_logs = self._run_test(val_source, cbs, keep_runner=True)
                cbs.call("on_test_end", logs=val_logs)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                self.train()
            cbs.call("on_epoch_end", epoch, logs=epoch_logs)
            if self.stop_training:
                break
        if isinstance(self.optimizer, optimizers.Optimizer) and epochs > 0:  # Keras: EMA's average into the weights
            self.optimizer.finalize_variable_values(self.trainable_weights)
        cbs.call("on_train_end", logs=epoch_logs)
        self.__dict__.pop("_test_runner", None)
        if dist is not None:
            dist._end_fit(self)
        self.eval()
        return self.history

    # ---- evaluate / predict ----
    def _run_test(
        self, source: Any, cbs: CallbackList | None = None, bar: Progbar | None = None, keep_runner: bool = False
    ) -> dict[str, float]:
        self.eval()
        self._reset_metrics()
        self.__dict__["_step_logs"] = None
        steps = 0
        cached = self.__dict__.get("_test_runner")
        if cached is not None and cached[0] is source:  # fit's validation: one captured graph for every epoch
            run = cached[1]
        else:
            run = self._step_runner("test", source)
            if keep_runner:
                self.__dict__["_test_runner"] = (source, run)
        with torch.no_grad():
            for step, (xb, yb, swb) in enumerate(source.epoch()):
                if yb is None and step == 0:
                    self._check_no_targets_needed("evaluate", batches=True)
                if cbs:
                    cbs.batch("on_test_batch_begin", step, None)
                run(xb, yb, swb)
                steps = step + 1
                if cbs:
                    cbs.batch("on_test_batch_end", step, self._current_logs)
                if bar:
                    bar.update(steps, self._current_logs, finalize=False)
        if self._distribution is not None:  # data-parallel: sum the metric states of every rank (some may have none)
            self._distribution._end_test(self, source)
        elif steps == 0:
            raise ValueError("evaluate() got no batches: the data is empty")
        logs = self._current_logs()
        self.__dict__["_step_logs"] = None  # (fit's validation: its logs do not stand for the next epoch's)
        return logs

    @_one_at_a_time
    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: str | int = "auto",
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: list[Callback] | None = None,
        return_dict: bool = False,
    ) -> Any:
        """Loss and metrics on the data: a scalar, the list ``[loss, *metrics]``, or a dict with ``return_dict``."""
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")
        batch_size = data.check_batch_size(batch_size)
        steps = data.check_steps("steps", steps)
        verbose = 1 if verbose == "auto" else int(verbose)
        source = self._source(x, y, sample_weight, batch_size, False, steps)
        if isinstance(source, data.ArraySource) and source.y is None:
            self._check_no_targets_needed("evaluate")
        self._build_from(source)
        dist = data_parallel.for_run(self)  # None in a single process
        if dist is not None:
            source, verbose = dist._prepare_evaluate(self, source, verbose, batch_size)
        cbs = CallbackList(callbacks, self, steps=source.steps, verbose=verbose)
        bar = Progbar(source.steps, verbose=verbose) if verbose else None
        cbs.call("on_test_begin")
        logs = self._run_test(source, cbs, bar)
        if bar:
            bar.update(source.steps or 0, logs, finalize=True)
        cbs.call("on_test_end", logs=logs)
        return self._result(logs, return_dict)

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: str | int = "auto",
        steps: int | None = None,
        callbacks: list[Callback] | None = None,
    ) -> Any:
        """Outputs for the inputs, as numpy arrays, computed in batches (``training=False``)."""
        batch_size = data.check_batch_size(batch_size)
        steps = data.check_steps("steps", steps)
        verbose = 1 if verbose == "auto" else int(verbose)
        source = self._source(x, None, None, batch_size, False, steps)
        source.predicting()
        self._build_from(source)
        cbs = CallbackList(callbacks, self, steps=source.steps, verbose=verbose)
        bar = Progbar(source.steps, verbose=verbose) if verbose else None
        self.eval()
        outs = []
        run = self._step_runner("predict", source)
        cbs.call("on_predict_begin")
        with torch.no_grad():
            for step, (xb, _, _) in enumerate(source.epoch()):
                cbs.batch("on_predict_batch_begin", step, None)
                out = run(xb)
                outs.append(out)
                cbs.batch("on_predict_batch_end", step, lambda out=out: {"outputs": out})
                if bar:
                    bar.update(step + 1, None, finalize=False)
        if bar:
            bar.update(len(outs), None, finalize=True)
        cbs.call("on_predict_end")
        if not outs:
            raise ValueError("predict() got no batches: the data is empty")
        return map_structure(data.to_numpy, data.concat(outs))

    # ---- single batches ----
    @_one_at_a_time
    def train_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: Any = None, return_dict: bool = False
    ) -> Any:
        """One update on one batch; returns the loss and metrics of that batch (metrics reset first)."""
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")
        x, y, sample_weight, _ = self._prepare(x, y, sample_weight, class_weight)
        self._ensure_built(x)
        self._ensure_optimizer()
        self.train()
        self._reset_metrics()
        self.__dict__["_step_logs"] = None
        self._step_function("train")(x, y, sample_weight)
        self.eval()
        return self._result(self._current_logs(), return_dict)

    @_one_at_a_time
    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False) -> Any:
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")
        x, y, sample_weight, _ = self._prepare(x, y, sample_weight)
        self._ensure_built(x)
        self.eval()
        self._reset_metrics()
        self.__dict__["_step_logs"] = None
        with torch.no_grad():
            self._step_function("test")(x, y, sample_weight)
        return self._result(self._current_logs(), return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        x, _, _, _ = self._prepare(x)
        self.eval()
        with torch.no_grad():
            out = self(x, training=False)
        self._clear_losses()
        return map_structure(data.to_numpy, out)

    def _result(self, logs: dict[str, float], return_dict: bool) -> Any:
        """Keras' return value: the logs dict, or ``[loss, *metrics]`` (a scalar when there are no metrics)."""
        if return_dict:
            return logs
        # Keras' _flatten_metrics_in_order: the metrics' names in order (the compiled ones expanded), then every
        # other key of the logs in sorted order. Keras expands the compiled metrics by their own names, which are
        # the logs' keys for one output only (with several, the keys carry the output's name: they sort after)
        names: list[str] = []
        for m in self.metrics:
            if not isinstance(m, CompileMetrics):
                names.append(m.name)
            elif len(self._output_metrics or []) == 1:
                names.extend(s.name for s in m.metrics)
        values = [logs[n] for n in names if n in logs] + [logs[k] for k in sorted(logs) if k not in names]
        return values[0] if len(values) == 1 else values
