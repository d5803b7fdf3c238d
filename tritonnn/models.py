"""Models: ``Model`` (compile / fit / evaluate / predict), the Functional API and ``Sequential``.

``Model(inputs, outputs)`` builds a Functional model from symbolic tensors; subclassing ``Model`` and defining
``call()`` gives a subclassed model; ``Sequential`` is a linear stack. All three are ``torch.nn.Module``s.
"""

from __future__ import annotations

import collections.abc
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from . import _graphs, config, optimizers
from . import losses as losses_mod
from . import metrics as metrics_mod
from .callbacks import Callback, CallbackList, History, Progbar, ProgbarLogger
from .kernels import xent
from .layers.core import Dense, InputLayer
from .layers.layer import Layer, shape_of
from .layers.symbolic import KerasTensor, Node, flatten, map_structure

# ---- data -----------------------------------------------------------------------------------------------------


def _to_tensor(x: Any, device: torch.device) -> torch.Tensor:
    """One array to a tensor on ``device``; float64 becomes float32 (Keras' floatx)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(x)
        if arr.dtype == object:
            raise ValueError("Could not convert the data to a tensor: it holds Python objects (dtype=object)")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.float64:
        t = t.to(torch.float32)
    return t.to(device, non_blocking=True)


# fit()'s fast path on CUDA moves the whole data set to the device once, when it takes at most this fraction of the
# free device memory; a larger one stays in host memory (pinned) and each batch is copied asynchronously.
DATA_ON_DEVICE_FRACTION = 0.5


def _nbytes(a: Any) -> int:
    if isinstance(a, torch.Tensor):
        return a.numel() * a.element_size()
    return int(np.asarray(a).nbytes)


def _data_device(arrays: list[Any], device: torch.device) -> torch.device:
    """Where fit() keeps its arrays: on ``device`` unless that is a GPU they would crowd (then the host)."""
    if device.type != "cuda":
        return device
    pending = sum(_nbytes(a) for a in arrays if not (isinstance(a, torch.Tensor) and a.device == device))
    free, _ = torch.cuda.mem_get_info(device)
    return device if pending <= DATA_ON_DEVICE_FRACTION * free else torch.device("cpu")


def _first(data: Any) -> torch.Tensor:
    return flatten(data)[0]


def _num_samples(data: Any) -> int:
    sizes = {int(t.shape[0]) for t in flatten(data)}
    if len(sizes) > 1:
        raise ValueError(f"Data cardinality is ambiguous: the arrays have different lengths {sorted(sizes)}")
    return sizes.pop()


def _index(data: Any, idx: Any) -> Any:
    return map_structure(lambda t: t[idx], data)


def _check_finite(name: str, data: Any) -> None:
    """With ``tritonnn.config.set_check_numerics(True)``: a clear error for NaN or Inf in the data."""
    for i, t in enumerate(flatten(data) if data is not None else []):
        if isinstance(t, torch.Tensor) and t.dtype.is_floating_point:
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                where = tuple(int(v) for v in bad.nonzero()[0])
                part = f"{name}[{i}]" if len(flatten(data)) > 1 else name
                raise ValueError(
                    f"`{part}` contains non-finite values (NaN or Inf): {int(bad.sum())} of {t.numel()}, the first "
                    f"at index {where} = {t[where].item()}. Clean the data, or call "
                    "tritonnn.config.set_check_numerics(False) to train on it anyway."
                )


def _check_batch_size(batch_size: Any) -> int:
    if batch_size is None:
        return 32
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"Expected `batch_size` to be a positive integer. Received: batch_size={batch_size!r}")
    return int(batch_size)


def _is_dataset(x: Any) -> bool:
    """A DataLoader, a generator or another iterable of batches (not an array, tensor, list or dict of them)."""
    if isinstance(x, (np.ndarray, torch.Tensor, list, tuple, dict)) or x is None:
        return False
    return isinstance(x, (collections.abc.Iterator, collections.abc.Iterable))


def _is_label_tensor(t: torch.Tensor) -> bool:
    return not (t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool)


def _split_batch(batch: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` from one batch: a tuple or list of 1 to 3 parts (Keras' rule; DataLoaders yield
    lists), otherwise ``x`` alone."""
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 3:
        return (*batch, *([None] * (3 - len(batch))))
    return batch, None, None


class _ArraySource:
    """Batches sliced by index from tensors held on the model's device (one copy, no per-step transfer)."""

    def __init__(
        self,
        x: Any,
        y: Any,
        sw: Any,
        batch_size: int,
        shuffle: bool,
        steps: int | None = None,
        target: torch.device | None = None,
    ):
        self.x, self.y, self.sw = x, y, sw
        self.target = target  # the model's device when the arrays stay on the host (too big for the GPU)
        self.n = _num_samples(x)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.steps = math.ceil(self.n / batch_size) if steps is None else int(steps)

    def label_bounds(self) -> tuple[int, int] | None:
        """(min, max) over the integer target arrays: read once per fit/evaluate (one sync), not once per step."""
        ints = [t for t in flatten(self.y) if isinstance(t, torch.Tensor) and _is_label_tensor(t)]
        if not ints or not self.n:
            return None
        return min(int(t.min()) for t in ints), max(int(t.max()) for t in ints)

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[tuple[Any, Any, Any]]:
        device = _first(self.x).device
        order = torch.randperm(self.n, generator=generator).to(device) if self.shuffle else None
        for step in range(self.steps):
            start = (step * self.batch_size) % self.n
            stop = min(start + self.batch_size, self.n)
            yield _gather(self, slice(start, stop) if order is None else order[start:stop], device)


def _gather(source: Any, idx: Any, device: torch.device) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` rows ``idx`` of an array source, on its target device (the model's)."""
    batch = (
        _index(source.x, idx),
        None if source.y is None else _index(source.y, idx),
        None if source.sw is None else source.sw[idx],
    )
    if source.target is not None and source.target != device:
        batch = map_structure(lambda t: None if t is None else t.to(source.target, non_blocking=True), batch)
    return batch


class _IterableSource:
    """Batches drawn from a DataLoader or a generator; each is moved to the device as it comes."""

    def __init__(self, data: Any, device: torch.device, steps: int | None):
        self.data, self.device = data, device
        self.reiterable = not isinstance(data, collections.abc.Iterator)
        self._iter: Iterator | None = None
        if steps is None and hasattr(data, "__len__"):
            steps = len(data)
        self.steps = steps

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[tuple[Any, Any, Any]]:
        if self.reiterable or self._iter is None:
            self._iter = iter(self.data)
        count = 0
        while self.steps is None or count < self.steps:
            try:
                batch = next(self._iter)
            except StopIteration:
                if self.steps is not None and count == 0 and self.reiterable is False:
                    raise ValueError(
                        "The data generator ran out of data: give `steps_per_epoch` (or `steps`) no larger than "
                        "the number of batches it yields, or a generator that loops forever."
                    ) from None
                return
            x, y, sw = _split_batch(batch)
            to = lambda a: _to_tensor(a, self.device)  # noqa: E731
            x, y = map_structure(to, x), None if y is None else map_structure(to, y)
            if config.check_numerics():
                _check_finite("x", x)
                _check_finite("y", y)
            yield x, y, None if sw is None else to(sw)
            count += 1


# ---- models ---------------------------------------------------------------------------------------------------


class Model(Layer):
    """A layer with training: ``compile``, ``fit``, ``evaluate``, ``predict``.

    ``Model(inputs, outputs)`` makes a Functional model; subclass ``Model`` and define ``call()`` for a subclassed
    one.
    """

    _autocast_inputs = False  # each layer casts what it needs (an Embedding keeps integer inputs)
    _distribution: Any = None  # the DataParallel of the running fit/evaluate (tritonnn.distribution), else None

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
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

    # ---- structure ----
    @property
    def layers(self) -> list[Layer]:
        return [m for m in self.children() if isinstance(m, Layer)]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index."""
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model only has {len(layers)} layers."
                )
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in layers]}.")

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return config.default_device()

    @property
    def output_names(self) -> list[str] | None:
        """Names of the outputs for multi-output models (None for a single unnamed output)."""
        return None

    @property
    def metrics(self) -> list[metrics_mod.Metric]:
        out = [self._loss_tracker, *self._output_loss_trackers]
        for group in self._output_metrics or []:
            out.extend(group)
        return out

    @property
    def metrics_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def summary(self, line_length: int | None = None, print_fn: Callable[[str], None] | None = None, **_: Any) -> None:
        """Print a table of layers (name and type, output shape, parameter count) and the parameter totals."""
        from .utils import summary_text

        (print_fn or print)(summary_text(self, line_length=line_length))

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
        self._loss_spec = _check_nest("loss", loss, losses_mod.get)
        self.loss = self._loss_spec
        self._loss_weights_spec = loss_weights
        for name, spec in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if spec is not None and not isinstance(spec, (list, tuple, dict)):
                raise ValueError(f"Expected `{name}` to be a list or a dict. Received: {name}={spec!r}")
            for m in flatten(spec) if spec is not None else []:  # unknown names fail now, not at the first batch
                if not (isinstance(m, str) and m in ("accuracy", "acc")):
                    metrics_mod.get(m)
        self._metrics_spec, self._weighted_metrics_spec = metrics, weighted_metrics
        self._output_losses = None
        self._output_metrics = None
        self._output_loss_trackers = []
        self._optimizer_params = []
        self._compile_config = {
            "optimizer": optimizers.serialize(self.optimizer),
            "loss": _serialize_nest(loss),
            "loss_weights": loss_weights,
            "metrics": _serialize_nest(metrics),
            "weighted_metrics": _serialize_nest(weighted_metrics),
        }
        if jit_compile not in (True, False, "auto"):
            raise ValueError(
                f"Expected `jit_compile` to be True, False or 'auto'. Received: jit_compile={jit_compile!r}"
            )
        self._jit_compile = jit_compile  # on CUDA, True/"auto": capture steps in CUDA graphs; False: never
        self.compiled = True

    def get_compile_config(self) -> dict[str, Any] | None:
        """What ``compile`` was given, serialized (None before compile)."""
        return self._compile_config

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compile again from :meth:`get_compile_config`'s output."""
        cfg = dict(config)
        cfg["optimizer"] = (
            optimizers.deserialize(cfg["optimizer"]) if isinstance(cfg["optimizer"], dict) else cfg["optimizer"]
        )
        cfg["loss"] = _deserialize_nest(cfg.get("loss"), losses_mod)
        cfg["metrics"] = _deserialize_nest(cfg.get("metrics"), metrics_mod)
        cfg["weighted_metrics"] = _deserialize_nest(cfg.get("weighted_metrics"), metrics_mod)
        self.compile(**cfg)

    def _outputs_list(self, y_pred: Any) -> list[torch.Tensor]:
        if isinstance(y_pred, dict):
            names = self.output_names or sorted(y_pred)
            return [y_pred[n] for n in names]
        if isinstance(y_pred, (list, tuple)):
            return list(y_pred)
        return [y_pred]

    def _targets_list(self, y: Any, n_outputs: int) -> list[Any]:
        if isinstance(y, dict):
            names = self.output_names
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

    def _per_output(self, spec: Any, n: int, what: str) -> list[Any]:
        names = self.output_names or [f"output_{i}" for i in range(n)]
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
        if what in ("metrics", "weighted_metrics") or n == 1:
            return [spec] + [None] * (n - 1) if n == 1 else [spec] * n
        return [spec] * n

    def _resolve_compiled(self, ys: list[Any], preds: list[torch.Tensor]) -> None:
        if self._output_losses is not None:
            return
        n = len(preds)
        self._output_losses = self._per_output(self._loss_spec, n, "loss")
        weights = self._loss_weights_spec
        self._output_loss_weights = (
            [1.0] * n
            if weights is None
            else [1.0 if w is None else float(w) for w in self._per_output(weights, n, "loss_weights")]
        )
        names = self.output_names or [f"output_{i}" for i in range(n)]
        metric_groups: list[list[metrics_mod.Metric]] = []
        for i, (m_spec, wm_spec) in enumerate(
            zip(
                self._per_output(self._metrics_spec, n, "metrics"),
                self._per_output(self._weighted_metrics_spec, n, "weighted_metrics"),
                strict=True,
            )
        ):
            group = []
            for weighted, spec in ((False, m_spec), (True, wm_spec)):
                ids = [] if spec is None else (list(spec) if isinstance(spec, (list, tuple)) else [spec])
                for ident in ids:
                    metric = metrics_mod.get(ident, ys[i], preds[i])
                    metric._tritonnn_weighted = weighted
                    if n > 1:
                        metric.name = f"{names[i]}_{metric.name}"
                    if weighted and not n > 1:
                        metric.name = (
                            f"weighted_{metric.name}" if any(m.name == metric.name for m in group) else metric.name
                        )
                    group.append(metric)
            metric_groups.append(group)
        self._output_metrics = metric_groups
        self._output_loss_trackers = (
            [metrics_mod.Mean(name=f"{names[i]}_loss") for i in range(n) if self._output_losses[i] is not None]
            if n > 1
            else []
        )

    # ---- steps ----
    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None) -> torch.Tensor:
        """The compiled loss (weighted sum over outputs) plus the model's losses (regularizers, ``add_loss``)."""
        preds = self._outputs_list(y_pred)
        ys = self._targets_list(y, len(preds))
        self._resolve_compiled(ys, preds)
        total = None
        self._last_output_losses = []
        for loss_fn, weight, yt, yp in zip(self._output_losses, self._output_loss_weights, ys, preds, strict=True):
            if loss_fn is None or yt is None:
                continue
            if isinstance(loss_fn, losses_mod.Loss):
                value = loss_fn(yt, yp, sample_weight)
            else:
                value = losses_mod.reduce_weighted(loss_fn(yt, yp), sample_weight, "sum_over_batch_size")
            self._last_output_losses.append(value)
            total = value * weight if total is None else total + value * weight
        if total is None:
            if not self.losses:
                raise ValueError("The model has no loss to optimize: pass `loss=` to `compile()` or use `add_loss()`.")
            total = torch.zeros((), device=self.device)
        for extra in self.losses:
            total = total + extra
        return total

    def _maybe_build(self, inputs: Any) -> None:
        if not self.built:
            # Sublayers build themselves during this first forward; remember the shape for saving.
            self._build_input_shape = shape_of(inputs)
            self.built = True

    def build(self, input_shape: Any = None) -> None:
        """Build a subclassed model for ``input_shape`` by calling it once on zeros of that shape."""
        if input_shape is None:
            raise ValueError("You must provide an `input_shape` argument.")
        self._build_input_shape = input_shape
        self.built = True
        self.build_from_config({"input_shape": _as_lists(input_shape)})

    def get_build_config(self) -> dict[str, Any] | None:
        """The input shape the model was built with (Keras' ``get_build_config``), for saving."""
        shape = getattr(self, "_build_input_shape", None)
        return None if shape is None else {"input_shape": _as_lists(shape)}

    def build_from_config(self, config: dict[str, Any]) -> None:
        """Build from :meth:`get_build_config`'s output by calling the model on zeros of that shape."""

        def zeros(shape: Any) -> Any:
            if isinstance(shape, dict):
                return {k: zeros(v) for k, v in shape.items()}
            if isinstance(shape, list) and shape and isinstance(shape[0], (list, dict)):
                return [zeros(v) for v in shape]
            return torch.zeros([1 if d is None else int(d) for d in shape], device=self.device)

        example = zeros(config["input_shape"])
        with torch.no_grad():
            self(example, training=False)
        self._clear_losses()

    def _ensure_built(self, x: Any) -> None:
        if not self.built:
            with torch.no_grad():
                self(_index(x, slice(0, 1)), training=False)
            self._clear_losses()

    def _ensure_optimizer(self) -> None:
        params = self.trainable_weights
        if not params:
            raise ValueError("The model has no trainable weights to train.")
        if [id(p) for p in params] != [id(p) for p in self._optimizer_params]:
            self.optimizer.build(params)
            self._optimizer_params = params

    def train_step(self, x: Any, y: Any, sample_weight: Any = None) -> None:
        """One update: forward, loss, backward, metric updates, one fused optimizer step (no host sync)."""
        self._train_body(x, y, sample_weight)
        self.optimizer.step()

    def _train_body(self, x: Any, y: Any, sample_weight: Any = None) -> None:
        """All of a train step but the optimizer update: the part fit() captures in a CUDA graph."""
        self.optimizer.zero_grad()
        self._clear_losses()
        y_pred = self(x, training=True)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        scale_loss = getattr(self.optimizer, "scale_loss", None)
        (loss if scale_loss is None else scale_loss(loss)).backward()
        self._update_metrics(loss, y, y_pred, sample_weight)

    # ---- CUDA graphs (tritonnn/_graphs.py) ----
    def _graph_blocker(self, kind: str, device: torch.device | None = None) -> str | None:
        """Why the ``kind`` ("train", "test", "predict") step cannot be captured in a CUDA graph, or None; ``device``
        asks as if the model were there (bench/plan.py asks about CUDA on a CPU)."""
        device = self.device if device is None else device
        if self._jit_compile is False:
            return "jit_compile=False"
        if _graphs.factory_for(device) is None:
            return f"the model is on {device.type}, not CUDA"
        if config.check_numerics():
            return "check_numerics is on (it reads values on the host)"
        if self._distribution is not None:
            return "data-parallel training (not captured yet)"
        if kind == "train":
            if type(self).train_step is not Model.train_step:
                return "a custom train_step"
            if isinstance(self.optimizer, optimizers.LossScaleOptimizer):
                return "dynamic loss scaling decides on the host"
            if any(getattr(layer, "rate", 0) and hasattr(layer, "next_seed") for layer in self._flatten_layers()):
                return "training-mode dropout draws a new seed on the host every step"
        if kind == "test" and type(self).test_step is not Model.test_step:
            return "a custom test_step"
        return None

    def _step_runner(self, kind: str, source: Any) -> Callable[..., Any]:
        """The per-batch callable of fit/evaluate/predict: a StepGraph where capture is possible, else eager."""
        eager = {"train": self.train_step, "test": self.test_step, "predict": self._predict_body}[kind]
        # Labels from an array source were range-checked once (min/max of the whole array): each step's batch is
        # registered with that range, so cross-entropy skips its per-call check, a host sync.
        bounds = source.label_bounds() if isinstance(source, _ArraySource) and kind != "predict" else None
        labels = None
        if bounds is not None:

            def labels(args: tuple) -> xent.known_label_range:
                return xent.known_label_range([t for t in flatten(args[1]) if _is_label_tensor(t)], *bounds)

        blocker = self._graph_blocker(kind)
        if blocker is None and not isinstance(source, _ArraySource):
            blocker = "batches from a generator (labels not checked up front; shapes may vary)"
        if blocker is None:
            return _graphs.StepGraph(
                self._train_body if kind == "train" else eager,
                _graphs.factory_for(self.device),
                after=self.optimizer.step if kind == "train" else None,
                clone_outputs=kind == "predict",
                context=labels,
                name=f"{kind} step",
            )
        if labels is None:
            return eager

        def run(*args: Any) -> Any:
            with labels(args):
                return eager(*args)

        return run

    def _predict_body(self, x: Any) -> Any:
        out = self(x, training=False)
        self._clear_losses()
        return out

    def test_step(self, x: Any, y: Any, sample_weight: Any = None) -> None:
        self._clear_losses()
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        self._update_metrics(loss, y, y_pred, sample_weight)

    def _update_metrics(self, loss: torch.Tensor, y: Any, y_pred: Any, sample_weight: Any) -> None:
        batch = _num_samples(y_pred)
        self._loss_tracker.update_state(loss.detach(), sample_weight=batch)
        for tracker, value in zip(self._output_loss_trackers, self._last_output_losses, strict=False):
            tracker.update_state(value.detach(), sample_weight=batch)
        preds = self._outputs_list(y_pred)
        ys = self._targets_list(y, len(preds))
        for group, yt, yp in zip(self._output_metrics, ys, preds, strict=True):
            for m in group:
                m.update_state(yt, yp.detach(), sample_weight=sample_weight if m._tritonnn_weighted else None)

    def _reset_metrics(self) -> None:
        for m in self.metrics:
            m.reset_state()

    def _logs(self, prefix: str = "") -> dict[str, float]:
        """The current loss and metric values as Python floats (this reads from the device)."""
        ordered = [
            *(m for group in self._output_metrics or [] for m in group),
            self._loss_tracker,
            *self._output_loss_trackers,
        ]
        return {prefix + m.name: float(m.result()) for m in ordered}

    # ---- data preparation ----
    def _prepare(self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: Any = None):
        if x is None:
            raise ValueError("Expected input data `x`. Received: x=None")
        device = self.device
        home = _data_device(flatten(x) + ([] if y is None else flatten(y)), device)
        x = map_structure(lambda a: _to_tensor(a, home), x)
        y = None if y is None else map_structure(lambda a: _to_tensor(a, home), y)
        if home != device:  # pinned, so that each batch's copy to the GPU is asynchronous
            x, y = (
                map_structure(lambda t: t.pin_memory(), x),
                None if y is None else map_structure(lambda t: t.pin_memory(), y),
            )
            device = home
        if config.check_numerics():
            _check_finite("x", x)
            _check_finite("y", y)
        n = _num_samples(x)
        if n == 0:
            raise ValueError("Expected input data to be non-empty. Received: 0 samples")
        if y is not None and _num_samples(y) != n:
            raise ValueError(
                f"Data cardinality is ambiguous: x has {n} samples but y has {_num_samples(y)} samples. "
                "Make sure all arrays contain the same number of samples."
            )
        if sample_weight is not None:
            sample_weight = _to_tensor(sample_weight, device).to(torch.float32)
            if sample_weight.shape[0] != n:
                raise ValueError(f"sample_weight has {sample_weight.shape[0]} entries but the data has {n} samples")
        if class_weight is not None:
            sample_weight = _apply_class_weight(class_weight, y, sample_weight)
        return x, y, sample_weight, n

    def _source(self, x, y, sample_weight, batch_size, shuffle, steps, class_weight=None):
        if _is_dataset(x):
            if y is not None:
                raise ValueError("When `x` is a generator or DataLoader, `y` must not be given: yield (x, y) batches")
            return _IterableSource(x, self.device, steps)
        x, y, sample_weight, _ = self._prepare(x, y, sample_weight, class_weight)
        return _ArraySource(x, y, sample_weight, batch_size, shuffle, steps, target=self.device)

    def _build_from(self, source: Any) -> None:
        """Build the model on the first sample of an array source; a generator's model must be built already."""
        if isinstance(source, _ArraySource):
            self._ensure_built(_index(source.x, slice(0, 1)))
        elif not self.built:
            raise ValueError("Build the model (call it on a batch, or give an Input) before fitting on a generator")

    # ---- fit ----
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
            raise RuntimeError("You must call `compile()` before using the model.")
        batch_size = _check_batch_size(batch_size)
        verbose = 1 if verbose == "auto" else int(verbose)
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"Expected `epochs` to be a non-negative integer. Received: epochs={epochs!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"`validation_split` must be in [0, 1). Received: validation_split={validation_split}")
        if validation_split and validation_data is None:
            if _is_dataset(x):
                raise ValueError("`validation_split` is only supported for arrays and tensors, not generators")
            x, y, sample_weight, n = self._prepare(x, y, sample_weight, class_weight)
            class_weight = None
            split = int(n * (1.0 - validation_split))  # Keras takes the last fraction, before shuffling
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no data for training or validation")
            validation_data = (_index(x, slice(split, n)), None if y is None else _index(y, slice(split, n)))
            if sample_weight is not None:
                validation_data += (sample_weight[split:],)
                sample_weight = sample_weight[:split]
            x, y = _index(x, slice(0, split)), None if y is None else _index(y, slice(0, split))
        source = self._source(x, y, sample_weight, batch_size, shuffle, steps_per_epoch, class_weight)
        if isinstance(source, _ArraySource) and source.y is None:
            raise ValueError("Expected target data `y` for fit(). Received: y=None")
        val_source = None
        if validation_data is not None:
            if _is_dataset(validation_data):
                val_source = _IterableSource(validation_data, self.device, validation_steps)
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
        dist = _distribution_for(self)  # None in a single process
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
            cbs.call("on_epoch_begin", epoch)
            steps_done = 0
            for step, (xb, yb, swb) in enumerate(source.epoch(gen)):
                if step < skip:  # already trained before the interruption
                    steps_done = step + 1
                    continue
                cbs.batch("on_train_batch_begin", step, None)
                run(xb, yb, swb)
                steps_done = step + 1
                cbs.batch("on_train_batch_end", step, self._logs)
                if progbar:
                    progbar.progress(steps_done, self._logs)
                if self.stop_training:
                    break
            skip = 0
            if steps_done == 0:
                raise ValueError("fit() got no batches for an epoch: the generator or DataLoader is empty")
            if progbar and source.steps is None:
                progbar.params["steps"] = steps_done
            if dist is not None:  # the epoch's metrics over every rank's samples
                dist._reduce_metrics(self)
            epoch_logs = self._logs()
            if val_source is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._run_test(val_source, keep_runner=True)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                self.train()
            cbs.call("on_epoch_end", epoch, logs=epoch_logs)
            if self.stop_training:
                break
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
                if yb is None:
                    raise ValueError("Expected target data `y` to evaluate. Received batches without targets")
                if cbs:
                    cbs.batch("on_test_batch_begin", step, None)
                run(xb, yb, swb)
                steps = step + 1
                if cbs:
                    cbs.batch("on_test_batch_end", step, self._logs)
                if bar:
                    bar.update(steps, self._logs, finalize=False)
        if self._distribution is not None:  # data-parallel: sum the metric states of every rank (some may have none)
            self._distribution._end_test(self, source)
        elif steps == 0:
            raise ValueError("evaluate() got no batches: the data is empty")
        return self._logs()

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
            raise RuntimeError("You must call `compile()` before using the model.")
        batch_size = _check_batch_size(batch_size)
        verbose = 1 if verbose == "auto" else int(verbose)
        source = self._source(x, y, sample_weight, batch_size, False, steps)
        if isinstance(source, _ArraySource) and source.y is None:
            raise ValueError("Expected target data `y` for evaluate(). Received: y=None")
        self._build_from(source)
        dist = _distribution_for(self)  # None in a single process
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
        batch_size = _check_batch_size(batch_size)
        verbose = 1 if verbose == "auto" else int(verbose)
        source = self._source(x, None, None, batch_size, False, steps)
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
        return map_structure(_to_numpy, _concat(outs))

    # ---- single batches ----
    def train_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: Any = None, return_dict: bool = False
    ) -> Any:
        """One update on one batch; returns the loss and metrics of that batch (metrics reset first)."""
        if not self.compiled:
            raise RuntimeError("You must call `compile()` before using the model.")
        x, y, sample_weight, _ = self._prepare(x, y, sample_weight, class_weight)
        self._ensure_built(x)
        self._ensure_optimizer()
        self.train()
        self._reset_metrics()
        self.train_step(x, y, sample_weight)
        self.eval()
        return self._result(self._logs(), return_dict)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False) -> Any:
        if not self.compiled:
            raise RuntimeError("You must call `compile()` before using the model.")
        x, y, sample_weight, _ = self._prepare(x, y, sample_weight)
        self._ensure_built(x)
        self.eval()
        self._reset_metrics()
        with torch.no_grad():
            self.test_step(x, y, sample_weight)
        return self._result(self._logs(), return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        x, _, _, _ = self._prepare(x)
        self.eval()
        with torch.no_grad():
            out = self(x, training=False)
        self._clear_losses()
        return map_structure(_to_numpy, out)

    def _result(self, logs: dict[str, float], return_dict: bool) -> Any:
        """Keras' return value: the logs dict, or ``[loss, *metrics]`` (a scalar when there are no metrics)."""
        if return_dict:
            return logs
        values = [logs[m.name] for m in self.metrics]
        return values[0] if len(values) == 1 else values

    # ---- saving ----
    def save(self, filepath: str, overwrite: bool = True) -> None:
        """Save architecture, weights and optimizer state to one file (see ``tritonnn.saving``)."""
        from . import saving

        saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        from . import saving

        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str) -> None:
        from . import saving

        saving.load_weights(self, filepath)

    def __call__(self, inputs: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if not isinstance(inputs, (torch.Tensor, KerasTensor)) and not isinstance(inputs, (list, tuple, dict)):
            inputs = _to_tensor(inputs, self.device)
        elif isinstance(inputs, (list, tuple, dict)):
            inputs = map_structure(
                lambda a: a if isinstance(a, (torch.Tensor, KerasTensor)) else _to_tensor(a, self.device), inputs
            )
        self._check_device(inputs)
        return super().__call__(inputs, *args, training=training, **kwargs)

    def _check_device(self, inputs: Any) -> None:
        if not self.built:
            return
        device = self.device
        for t in flatten(inputs):
            if isinstance(t, torch.Tensor) and t.device != device:
                raise ValueError(
                    f"Model {self.name!r} has its weights on {device} but received an input on {t.device}. "
                    f"Move the input with `.to({str(device)!r})`, or pass numpy arrays (moved automatically)."
                )

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable}


def _distribution_for(model: Model) -> Any:
    from . import distribution

    return distribution._for_run(model)


def _as_lists(shape: Any) -> Any:
    if isinstance(shape, dict):
        return {k: _as_lists(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple, dict)):
        return [_as_lists(v) for v in shape]
    return list(shape)


def _apply_class_weight(class_weight: dict, y: Any, sample_weight: Any) -> torch.Tensor:
    labels = _first(y)
    n = labels.shape[0]
    if labels.dim() > 1 and labels.shape[-1] > 1:
        idx = labels.argmax(-1)
    else:
        idx = labels.reshape(n).long()
    size = max(int(idx.max()) + 1, max(int(k) for k in class_weight) + 1)
    table = torch.ones(size, device=labels.device)
    for k, w in class_weight.items():
        table[int(k)] = float(w)
    cw = table[idx]
    return cw if sample_weight is None else sample_weight * cw


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.cpu().numpy()


def _concat(outs: list[Any]) -> Any:
    first = outs[0]
    if isinstance(first, dict):
        return {k: torch.cat([o[k] for o in outs]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(torch.cat([o[i] for o in outs]) for i in range(len(first)))
    return torch.cat(outs)


def _check_nest(what: str, spec: Any, getter: Callable[[Any], Any]) -> Any:
    if isinstance(spec, dict):
        return {k: getter(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [getter(v) for v in spec]
    return getter(spec)


def _serialize_nest(spec: Any) -> Any:
    def one(obj: Any) -> Any:
        if obj is None or isinstance(obj, (str, int, float)):
            return obj
        if hasattr(obj, "get_config"):
            return {"class_name": type(obj).__name__, "config": obj.get_config()}
        name = getattr(obj, "__name__", None)
        if name is None:
            raise ValueError(f"Cannot serialize {obj!r} for the compile config")
        return name

    if isinstance(spec, dict):
        return {k: _serialize_nest(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [_serialize_nest(v) for v in spec]
    return one(spec)


def _deserialize_nest(spec: Any, module: Any) -> Any:
    if isinstance(spec, dict) and "class_name" in spec:
        cls = getattr(module, spec["class_name"], None)
        if not isinstance(cls, type):
            raise ValueError(f"Unknown class {spec['class_name']!r} in the compile config")
        return cls.from_config(spec["config"])
    if isinstance(spec, dict):
        return {k: _deserialize_nest(v, module) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_deserialize_nest(v, module) for v in spec]
    return spec


# ---- Functional ---------------------------------------------------------------------------------------------------


class Functional(Model):
    """A model defined by symbolic inputs and outputs: ``Model(inputs, outputs)``.

    ``inputs``/``outputs`` may be one tensor, a list, or a dict; layers may be shared and branches merged.
    """

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, trainable: bool = True, **kwargs: Any):
        super().__init__(name=name, trainable=trainable, **kwargs)
        for t in flatten(inputs):
            if not isinstance(t, KerasTensor) or not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"All `inputs` of a Functional model must come from `tritonnn.Input`. Received: {t!r}")
        for t in flatten(outputs):
            if not isinstance(t, KerasTensor):
                raise ValueError(f"All `outputs` of a Functional model must be symbolic tensors. Received: {t!r}")
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._nodes = self._topological_nodes()
        layers: list[Layer] = []
        for node in self._nodes:
            if node.layer not in layers:
                layers.append(node.layer)
        names = [layer.name for layer in layers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(
                f"The name(s) {sorted(dup)} are used by more than one layer. All layer names should be unique."
            )
        self._layer_modules = torch.nn.ModuleDict({layer.name: layer for layer in layers})
        self.built = True

    def _topological_nodes(self) -> list[Node]:
        order: list[Node] = []
        visiting: set[int] = set()
        done: set[int] = set()
        input_ids = {id(t) for t in flatten(self._inputs_struct)}

        def visit(t: KerasTensor) -> None:
            node = t.node
            if id(node) in done:
                return
            if id(node) in visiting:
                raise ValueError("The layer graph has a cycle")
            visiting.add(id(node))
            if isinstance(node.layer, InputLayer):
                if id(t) not in input_ids:
                    raise ValueError(
                        f"Graph disconnected: cannot obtain value for tensor {t!r}: the Input {node.layer.name!r} "
                        "is not among the model's `inputs`."
                    )
            else:
                for parent in node.parents:
                    if isinstance(parent, KerasTensor):
                        visit(parent)
            visiting.discard(id(node))
            done.add(id(node))
            order.append(node)

        for t in flatten(self._outputs_struct):
            visit(t)
        return order

    @property
    def layers(self) -> list[Layer]:
        return list(self._layer_modules.values())

    @property
    def inputs(self) -> list[KerasTensor]:
        return flatten(self._inputs_struct)

    @property
    def outputs(self) -> list[KerasTensor]:
        return flatten(self._outputs_struct)

    @property
    def input_names(self) -> list[str]:
        return [t.node.layer.name for t in self.inputs]

    @property
    def output_names(self) -> list[str] | None:
        if isinstance(self._outputs_struct, dict):
            return sorted(self._outputs_struct)
        outs = self.outputs
        return [t.node.layer.name for t in outs] if len(outs) > 1 else None

    def _graph_edges(self) -> list[tuple[str, str]]:
        """(from layer, to layer) pairs, for drawing the graph."""
        edges = []
        for node in self._nodes:
            for parent in node.parents:
                if isinstance(parent, KerasTensor):
                    edges.append((parent.node.layer.name, node.layer.name))
        return edges

    def _bind_inputs(self, inputs: Any) -> dict[int, torch.Tensor]:
        spec = self._inputs_struct
        if isinstance(spec, dict):
            if not isinstance(inputs, dict):
                raise ValueError(f"The model expects a dict of inputs with keys {sorted(spec)}")
            missing = set(spec) - set(inputs)
            if missing:
                raise ValueError(f"Missing inputs {sorted(missing)}; the model expects {sorted(spec)}")
            pairs = [(spec[k], inputs[k]) for k in spec]
        else:
            specs = flatten(spec)
            if isinstance(inputs, dict):
                names = [t.node.layer.name for t in specs]
                missing = set(names) - set(inputs)
                if missing:
                    raise ValueError(f"Missing inputs {sorted(missing)}; the model expects {names}")
                values = [inputs[n] for n in names]
            else:
                values = flatten(inputs)
            if len(values) != len(specs):
                raise ValueError(f"The model expects {len(specs)} input(s) but received {len(values)}")
            pairs = list(zip(specs, values, strict=True))
        bound = {}
        for kt, value in pairs:
            if not isinstance(value, torch.Tensor):
                value = _to_tensor(value, self.device)
            expected = kt.shape[1:]
            if value.dim() != len(kt.shape) or any(
                e is not None and e != g for e, g in zip(expected, value.shape[1:], strict=True)
            ):
                raise ValueError(
                    f"Input {kt.node.layer.name!r} is incompatible with the model: expected shape {kt.shape}, "
                    f"received {tuple(value.shape)}"
                )
            want = kt.node.layer.dtype
            if value.dtype != want and (value.dtype.is_floating_point or want.is_floating_point):
                value = value.to(want)
            bound[id(kt)] = value
        return bound

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        values = self._bind_inputs(inputs)
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            args = map_structure(lambda t: values[id(t)] if isinstance(t, KerasTensor) else t, node.inputs)
            out = node.layer(args, training=training, **node.kwargs)
            out_flat = flatten(out)
            for kt, value in zip(flatten(node.outputs), out_flat, strict=True):
                values[id(kt)] = value
        return map_structure(lambda t: values[id(t)], self._outputs_struct)

    def get_config(self) -> dict[str, Any]:
        from .saving import serialize_layer

        node_ids = {id(node): i for i, node in enumerate(self._nodes)}

        def ref(t: Any) -> Any:
            if isinstance(t, KerasTensor):
                return {"__tensor__": [node_ids[id(t.node)], t.index]}
            return t

        layer_cfgs = []
        for layer in self.layers:
            cfg = serialize_layer(layer)
            layer_cfgs.append(cfg)
        nodes = []
        for node in self._nodes:
            nodes.append(
                {
                    "layer": node.layer.name,
                    "inputs": None if node.inputs is None else map_structure(ref, node.inputs),
                    "kwargs": node.kwargs,
                }
            )
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layer_cfgs,
            "nodes": nodes,
            "inputs": map_structure(ref, self._inputs_struct),
            "outputs": map_structure(ref, self._outputs_struct),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Functional:
        from .saving import deserialize_layer

        layers = {}
        for cfg in config["layers"]:
            layer = deserialize_layer(cfg, custom_objects=custom_objects)
            layers[layer.name] = layer
        produced: list[Any] = []

        def deref(v: Any) -> Any:
            if isinstance(v, dict) and "__tensor__" in v:
                node_i, idx = v["__tensor__"]
                return flatten(produced[node_i])[idx]
            if isinstance(v, dict):
                return {k: deref(x) for k, x in v.items()}
            if isinstance(v, list):
                return [deref(x) for x in v]
            return v

        for node_cfg in config["nodes"]:
            layer = layers.get(node_cfg["layer"])
            if layer is None:
                raise ValueError(f"The config names a layer {node_cfg['layer']!r} that it does not define")
            if isinstance(layer, InputLayer):
                produced.append(layer.output)
            else:
                produced.append(layer(deref(node_cfg["inputs"]), **node_cfg.get("kwargs", {})))
        return cls(
            deref(config["inputs"]),
            deref(config["outputs"]),
            name=config.get("name"),
            trainable=config.get("trainable", True),
        )


# ---- Sequential ---------------------------------------------------------------------------------------------------


class Sequential(Model):
    """A linear stack of layers.

    Example::

        model = tritonnn.Sequential()
        model.add(tritonnn.layers.Dense(32, activation="relu"))
        model.add(tritonnn.layers.Dense(10, activation="softmax"))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=5)

    A ``Dense`` followed by a ``Dropout`` runs as one fused kernel in training (bit-identical masks).
    """

    def __init__(self, layers: list[Any] | None = None, trainable: bool = True, name: str | None = None):
        super().__init__(name=name, trainable=trainable)
        self._layers = torch.nn.ModuleList()
        self._input_layer: InputLayer | None = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    @property
    def inputs(self) -> list[KerasTensor] | None:
        return None if self._input_layer is None else [self._input_layer.output]

    def add(self, layer: Any) -> None:
        """Append a layer; an ``Input`` (or a first layer with ``input_shape=``) builds the model right away."""
        if isinstance(layer, KerasTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Only instances of `tritonnn.layers.Layer` can be added to a Sequential model. Received: {layer!r}"
            )
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or len(self._layers):
                raise ValueError("An Input must be the first layer of a Sequential model")
            self._input_layer = layer
            self._build_from_input()
            return
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                f"All layers added to a Sequential model should have unique names. Name {layer.name!r} is already "
                "the name of a layer in this model."
            )
        self._layers.append(layer)
        if self._input_layer is None and len(self._layers) == 1 and layer._input_shape_arg is not None:
            self._input_layer = InputLayer(shape=layer._input_shape_arg)
        self.built = False
        self._build_from_input()

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not len(self._layers):
            raise ValueError("There are no layers in the model.")
        layer = self._layers[-1]
        del self._layers[-1]
        return layer

    def _build_from_input(self) -> None:
        if self._input_layer is not None and len(self._layers):
            self.build((None, *self._input_layer.shape))

    def _maybe_build(self, inputs: Any) -> None:
        if not self.built:
            if self._input_layer is None and isinstance(inputs, torch.Tensor):
                # Built from the first batch: the input keeps that batch's dtype (integer ids for an Embedding).
                dtype = None if inputs.dtype.is_floating_point else inputs.dtype
                self._input_layer = InputLayer(shape=tuple(inputs.shape[1:]), dtype=dtype)
            self.build(None if self._input_layer is not None else shape_of(inputs))

    def build(self, input_shape: Any = None) -> None:
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("You must provide an `input_shape` argument.")
            input_shape = (None, *self._input_layer.shape)
        if self._input_layer is None:
            self._input_layer = InputLayer(shape=tuple(input_shape)[1:])
        x: Any = self._input_layer.output
        for layer in self._layers:
            x = layer(x)
        self.built = True

    def call(self, inputs: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        x = inputs
        layers = list(self._layers)
        i = 0
        while i < len(layers):
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if training and isinstance(layer, Dense) and nxt is not None and _fusable_dropout(nxt):
                x = layer.call_with_dropout(layer._autocast(x), nxt.rate, nxt.next_seed())
                i += 2
                continue
            x = layer(x, training=training)
            i += 1
        return x

    def get_config(self) -> dict[str, Any]:
        from .saving import serialize_layer

        cfg: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [serialize_layer(layer) for layer in self._layers],
        }
        if self._input_layer is not None:
            cfg["input_shape"] = list(self._input_layer.shape)
            cfg["input_dtype"] = str(self._input_layer.dtype).replace("torch.", "")
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Sequential:
        from .saving import deserialize_layer

        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        if config.get("input_shape") is not None:
            model.add(InputLayer(shape=tuple(config["input_shape"]), dtype=config.get("input_dtype")))
        for layer_cfg in config["layers"]:
            model.add(deserialize_layer(layer_cfg, custom_objects=custom_objects))
        return model


def _fusable_dropout(layer: Layer) -> bool:
    return (
        type(layer).__name__ == "Dropout"
        and hasattr(layer, "next_seed")
        and getattr(layer, "noise_shape", None) is None
        and 0.0 < float(getattr(layer, "rate", 0.0)) < 1.0
    )


def load_model(
    filepath: str, custom_objects: dict[str, Any] | None = None, compile: bool = True, safe_mode: bool = True
) -> Model:
    """Load a model saved by ``model.save``: architecture, weights and (with ``compile``) optimizer state."""
    from . import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
