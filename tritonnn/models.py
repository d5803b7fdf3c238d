"""Models: ``Model`` (compile / fit / evaluate / predict) and ``Sequential``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import config, losses, optimizers
from . import metrics as metrics_mod
from .callbacks import Callback, CallbackList, History, ProgbarLogger
from .layers.core import InputLayer
from .layers.layer import Layer

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
    return t.to(device)


def _map(fn: Callable[[Any], Any], data: Any) -> Any:
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: _map(fn, v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_map(fn, v) for v in data)
    return fn(data)


def _first(data: Any) -> torch.Tensor:
    while isinstance(data, (dict, list, tuple)):
        data = next(iter(data.values())) if isinstance(data, dict) else data[0]
    return data


def _num_samples(data: Any) -> int:
    sizes = set()
    _map(lambda t: sizes.add(int(t.shape[0])), data)
    if len(sizes) > 1:
        raise ValueError(f"Data cardinality is ambiguous: the arrays have different lengths {sorted(sizes)}")
    return sizes.pop()


def _index(data: Any, idx: Any) -> Any:
    return _map(lambda t: t[idx], data)


def _check_batch_size(batch_size: Any) -> int:
    if batch_size is None:
        return 32
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"Expected `batch_size` to be a positive integer. Received: batch_size={batch_size!r}")
    return int(batch_size)


# ---- models ---------------------------------------------------------------------------------------------------


class Model(Layer):
    """A layer with training: ``compile``, ``fit``, ``evaluate``, ``predict``. Subclass it and define ``call``."""

    _autocast_inputs = False  # each layer casts what it needs (an Embedding keeps integer inputs)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.compiled = False
        self.optimizer: optimizers.Optimizer | None = None
        self.loss: Any = None
        self.stop_training = False
        self.history: History | None = None
        self._metric_ids: list[Any] = []
        self._metrics: list[metrics_mod.Metric] | None = None
        self._loss_tracker = metrics_mod.Mean(name="loss")
        self._optimizer_params: list[torch.nn.Parameter] = []

    # ---- structure ----
    @property
    def layers(self) -> list[Layer]:
        return [m for m in self.children() if isinstance(m, Layer)]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has {len(self.layers)}")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self.layers]}.")

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return config.default_device()

    @property
    def metrics_names(self) -> list[str]:
        return ["loss", *[m.name for m in (self._metrics or [])]]

    def summary(self, print_fn: Callable[[str], None] | None = None, line_length: int | None = None) -> None:
        """Print a table of layers (name and type, output shape, parameter count) and the parameter totals."""
        from .utils import summary_text

        text = summary_text(self, line_length=line_length)
        (print_fn or print)(text)

    # ---- compile ----
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: list[Any] | None = None,
        loss_weights: Any = None,
        weighted_metrics: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Configure the model for training (Keras' arguments, strings and objects alike)."""
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ValueError(f"Expected `metrics` to be a list. Received: metrics={metrics!r}")
        self._metric_ids = list(metrics or [])
        for m in self._metric_ids:  # unknown names fail now, not at the first batch
            if not (isinstance(m, str) and m in ("accuracy", "acc")):
                metrics_mod.get(m)
        self._metrics = None
        self._optimizer_params = []
        self.compiled = True

    def _resolve_metrics(self, y: Any, y_pred: torch.Tensor) -> list[metrics_mod.Metric]:
        if self._metrics is None:
            y_t = _first(y)
            self._metrics = [metrics_mod.get(m, y_t, y_pred) for m in self._metric_ids]
        return self._metrics

    # ---- steps ----
    def compute_loss(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        """The compiled loss plus the model's losses (regularization penalties, ``add_loss`` terms)."""
        if self.loss is None:
            raise ValueError("The model has no loss: pass `loss=` to `compile()`.")
        if isinstance(self.loss, losses.Loss):
            total = self.loss(y, y_pred, sample_weight)
        elif sample_weight is None:
            total = self.loss(y, y_pred).float().mean()
        else:
            total = losses.reduce_weighted(self.loss(y, y_pred), sample_weight, "sum_over_batch_size")
        for extra in self.losses:
            total = total + extra
        return total

    def _ensure_built(self, x: Any) -> None:
        if not self.built:
            with torch.no_grad():
                self(_index(x, slice(0, 1)), training=False)
            self._clear_losses()

    def _ensure_optimizer(self) -> None:
        params = self.trainable_weights
        if [id(p) for p in params] != [id(p) for p in self._optimizer_params]:
            self.optimizer.build(params)
            self._optimizer_params = params

    def train_step(self, x: Any, y: Any, sample_weight: Any = None) -> None:
        """One update: forward, loss, backward, one fused optimizer step, metric updates (no host sync)."""
        self.optimizer.zero_grad()
        self._clear_losses()
        y_pred = self(x, training=True)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        loss.backward()
        self.optimizer.step()
        self._update_metrics(loss, y, y_pred, sample_weight)

    def test_step(self, x: Any, y: Any, sample_weight: Any = None) -> None:
        self._clear_losses()
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        self._update_metrics(loss, y, y_pred, sample_weight)

    def _update_metrics(self, loss: torch.Tensor, y: Any, y_pred: Any, sample_weight: Any) -> None:
        batch = _num_samples(y)
        self._loss_tracker.update_state(loss.detach(), sample_weight=batch)
        for m in self._resolve_metrics(y, y_pred):
            m.update_state(y, y_pred.detach(), sample_weight=sample_weight)

    def _reset_metrics(self) -> None:
        self._loss_tracker.reset_state()
        for m in self._metrics or []:
            m.reset_state()

    def _logs(self, prefix: str = "") -> dict[str, float]:
        """The current loss and metric values as Python floats (this reads from the device)."""
        logs = {}
        for m in [*(self._metrics or []), self._loss_tracker]:
            logs[prefix + m.name] = float(m.result())
        return logs

    # ---- data preparation ----
    def _prepare(self, x: Any, y: Any = None, sample_weight: Any = None, class_weight: Any = None):
        if x is None:
            raise ValueError("Expected input data `x`. Received: x=None")
        device = self.device
        x = _map(lambda a: _to_tensor(a, device), x)
        y = _map(lambda a: _to_tensor(a, device), y)
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
            labels = _first(y)
            idx = labels.argmax(-1) if labels.dim() > 1 and labels.shape[-1] > 1 else labels.reshape(n).long()
            table = torch.ones(int(idx.max()) + 1, device=device)
            for k, w in class_weight.items():
                if int(k) < table.numel():
                    table[int(k)] = float(w)
            cw = table[idx]
            sample_weight = cw if sample_weight is None else sample_weight * cw
        return x, y, sample_weight, n

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
        """Train for ``epochs`` epochs; returns a ``History`` whose ``.history`` has Keras' key names."""
        if not self.compiled:
            raise RuntimeError("You must call `compile()` before using the model.")
        batch_size = _check_batch_size(batch_size)
        verbose = 1 if verbose == "auto" else int(verbose)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"`validation_split` must be in [0, 1). Received: validation_split={validation_split}")
        x, y, sample_weight, n = self._prepare(x, y, sample_weight, class_weight)
        if y is None:
            raise ValueError("Expected target data `y` for fit(). Received: y=None")
        if validation_split and validation_data is None:
            # Keras takes the last fraction of the data, before shuffling.
            split = int(n * (1.0 - validation_split))
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no data for training or validation")
            validation_data = (
                _index(x, slice(split, n)),
                _index(y, slice(split, n)),
                None if sample_weight is None else sample_weight[split:],
            )
            x, y = _index(x, slice(0, split)), _index(y, slice(0, split))
            sample_weight = None if sample_weight is None else sample_weight[:split]
            n = split
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError(
                    "`validation_data` should be a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight)"
                )
            val = self._prepare(*validation_data)[:3]

        self._ensure_built(x)
        self._ensure_optimizer()
        steps = math.ceil(n / batch_size) if steps_per_epoch is None else int(steps_per_epoch)
        self.history = History()
        progbar = ProgbarLogger(verbose) if verbose else None
        cbs = CallbackList(
            [*(callbacks or []), *([progbar] if progbar else []), self.history],
            self,
            epochs=epochs,
            steps=steps,
            verbose=verbose,
        )
        self.stop_training = False
        self.train()
        cbs.call("on_train_begin")
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        epoch_logs: dict[str, float] = {}
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            cbs.call("on_epoch_begin", epoch)
            order = torch.randperm(n, generator=gen).to(self.device) if shuffle else None
            for step in range(steps):
                start = (step * batch_size) % n
                idx = slice(start, min(start + batch_size, n)) if order is None else order[start : start + batch_size]
                cbs.batch("on_train_batch_begin", step, None)
                sw = None if sample_weight is None else sample_weight[idx]
                self.train_step(_index(x, idx), _index(y, idx), sw)
                cbs.batch("on_train_batch_end", step, self._logs)
                if progbar:
                    progbar.progress(step + 1, self._logs)
                if self.stop_training:
                    break
            epoch_logs = self._logs()
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_tensors(
                    *val, batch_size=validation_batch_size or batch_size, steps=validation_steps
                )
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                self.train()
            cbs.call("on_epoch_end", epoch, logs=epoch_logs)
            if self.stop_training:
                break
        cbs.call("on_train_end", logs=epoch_logs)
        self.eval()
        return self.history

    # ---- evaluate / predict ----
    def _evaluate_tensors(
        self,
        x: Any,
        y: Any,
        sample_weight: Any,
        batch_size: int,
        steps: int | None = None,
        cbs: CallbackList | None = None,
        progbar: ProgbarLogger | None = None,
    ) -> dict[str, float]:
        n = _num_samples(x)
        self.eval()
        self._reset_metrics()
        total = math.ceil(n / batch_size) if steps is None else min(int(steps), math.ceil(n / batch_size))
        with torch.no_grad():
            for step in range(total):
                idx = slice(step * batch_size, min((step + 1) * batch_size, n))
                if cbs:
                    cbs.batch("on_test_batch_begin", step, None)
                self.test_step(_index(x, idx), _index(y, idx), None if sample_weight is None else sample_weight[idx])
                if cbs:
                    cbs.batch("on_test_batch_end", step, self._logs)
                if progbar and progbar.bar:
                    progbar.bar.update(step + 1, self._logs, finalize=False)
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
        x, y, sample_weight, n = self._prepare(x, y, sample_weight)
        if y is None:
            raise ValueError("Expected target data `y` for evaluate(). Received: y=None")
        self._ensure_built(x)
        total = math.ceil(n / batch_size) if steps is None else min(int(steps), math.ceil(n / batch_size))
        cbs = CallbackList(callbacks, self, steps=total, verbose=verbose)
        progbar = ProgbarLogger(verbose) if verbose else None
        if progbar:
            progbar.set_params({"steps": total})
            from .callbacks import Progbar

            progbar.bar = Progbar(total, verbose=verbose)
        cbs.call("on_test_begin")
        logs = self._evaluate_tensors(x, y, sample_weight, batch_size, steps, cbs, progbar)
        if progbar and progbar.bar:
            progbar.bar.update(total, logs, finalize=True)
        cbs.call("on_test_end", logs=logs)
        if return_dict:
            return logs
        values = [logs["loss"], *[logs[m.name] for m in (self._metrics or [])]]
        return values[0] if len(values) == 1 else values

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
        x, _, _, n = self._prepare(x)
        self._ensure_built(x)
        total = math.ceil(n / batch_size) if steps is None else min(int(steps), math.ceil(n / batch_size))
        cbs = CallbackList(callbacks, self, steps=total, verbose=verbose)
        from .callbacks import Progbar

        bar = Progbar(total, verbose=verbose) if verbose else None
        self.eval()
        outs = []
        cbs.call("on_predict_begin")
        with torch.no_grad():
            for step in range(total):
                idx = slice(step * batch_size, min((step + 1) * batch_size, n))
                cbs.batch("on_predict_batch_begin", step, None)
                out = self(_index(x, idx), training=False)
                self._clear_losses()
                outs.append(out)
                cbs.batch("on_predict_batch_end", step, lambda out=out: {"outputs": out})
                if bar:
                    bar.update(step + 1, None, finalize=step + 1 == total)
        cbs.call("on_predict_end")
        return _map(
            lambda t: t.float().cpu().numpy() if t.dtype in (torch.bfloat16, torch.float16) else t.cpu().numpy(),
            _concat(outs),
        )

    def __call__(self, inputs: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if isinstance(inputs, np.ndarray):
            inputs = _to_tensor(inputs, self.device)
        return super().__call__(inputs, *args, training=training, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable}


def _concat(outs: list[Any]) -> Any:
    first = outs[0]
    if isinstance(first, dict):
        return {k: torch.cat([o[k] for o in outs]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(torch.cat([o[i] for o in outs]) for i in range(len(first)))
    return torch.cat(outs)


class Sequential(Model):
    """A linear stack of layers.

    Example::

        model = tritonnn.Sequential()
        model.add(tritonnn.layers.Dense(32, activation="relu"))
        model.add(tritonnn.layers.Dense(10, activation="softmax"))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=5)
    """

    def __init__(self, layers: list[Layer] | None = None, trainable: bool = True, name: str | None = None):
        super().__init__(name=name, trainable=trainable)
        self._layers = torch.nn.ModuleList()
        self._input_layer: InputLayer | None = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def add(self, layer: Layer) -> None:
        """Append a layer; an ``Input`` (or a first layer with ``input_shape=``) builds the model right away."""
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

    def build(self, input_shape: Any = None) -> None:
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("You must provide an `input_shape` argument.")
            input_shape = (None, *self._input_layer.shape)
        shape = tuple(input_shape)
        for layer in self._layers:
            if not layer.built:
                layer.build(shape)
                layer.built = True
            shape = layer.compute_output_shape(shape)
            layer._output_shape = shape
        self.built = True

    def call(self, inputs: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        x = inputs
        for layer in self._layers:
            x = layer(x, training=training)
            layer._output_shape = (None, *tuple(x.shape[1:]))
        return x

    def get_config(self) -> dict[str, Any]:
        layers = [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self._layers]
        cfg = {"name": self.name, "trainable": self.trainable, "layers": layers}
        if self._input_layer is not None:
            cfg["input_shape"] = self._input_layer.shape
        return cfg
