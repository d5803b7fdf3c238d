"""``Model``: the container side of a model (sublayers, building, saving, summary) joined to the trainer.

``Model(inputs, outputs)`` builds a Functional model (``functional.py``) from symbolic tensors; subclassing
``Model`` and defining ``call()`` gives a subclassed model; ``Sequential`` (``sequential.py``) is a linear stack.
All three are ``torch.nn.Module``s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from .. import config, saving
from ..layers import fusion
from ..layers.layer import Layer, shape_of
from ..layers.symbolic import flatten
from ..trainers.trainer import Trainer
from ..utils import summary_text


def _functional_arguments(args: tuple, kwargs: dict[str, Any]) -> bool:
    """Keras' functional_init_arguments: ``(inputs, outputs)`` given positionally, or either by keyword."""
    return len(args) == 2 or (len(args) == 1 and "outputs" in kwargs) or ("inputs" in kwargs and "outputs" in kwargs)


def _inject_functional(cls: type, functional: type) -> None:
    """Put ``functional`` in place of ``Model`` among ``cls``'s bases, up its hierarchy (Keras'
    ``inject_functional_model_class``), so that a subclass of Model instantiated with (inputs, outputs) is one."""
    if cls is Model or cls is functional or issubclass(cls, functional):
        return
    bases = []
    for base in cls.__bases__:
        if base is Model:
            bases.append(functional)
        else:
            if issubclass(base, Model):
                _inject_functional(base, functional)
            bases.append(base)
    cls.__bases__ = tuple(bases)


class Model(Trainer, Layer):
    """A layer with training: ``compile``, ``fit``, ``evaluate``, ``predict`` (``tritonnn.trainers.trainer``).

    ``Model(inputs, outputs)`` makes a Functional model; subclass ``Model`` and define ``call()`` for a subclassed
    one.
    """

    _autocast_inputs = False  # each layer casts what it needs (an Embedding keeps integer inputs)
    # The class ``Model(inputs, outputs)`` makes: ``Functional``, which sets itself here when it is defined
    # (functional.py imports this module, so this module cannot import it).
    functional_class: type | None = None

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            if Model.functional_class is None:
                raise RuntimeError("tritonnn.models.functional was not imported: import tritonnn first")
            return super().__new__(Model.functional_class)
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any):
        functional = Model.functional_class
        if _functional_arguments(args, kwargs) and functional is not None and not isinstance(self, functional):
            # A subclass of Model made from (inputs, outputs), Keras' "Functional subclass" (the custom train_step
            # guides): as Keras' inject_functional_model_class, the class becomes a Functional subclass, then
            # Functional builds the graph (and calls this __init__ again, without the graph arguments).
            _inject_functional(type(self), functional)
            functional.__init__(self, *args, **kwargs)
            return
        Layer.__init__(self, *args, **kwargs)
        Trainer.__init__(self)

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

    def _fused_mlp_layers(self) -> list[Layer] | None:
        """The layers, in order, that a fused MLP may run in place of :meth:`call` (a Sequential, a Functional chain),
        or None: this model's call is its own."""
        return None

    def fused_mlp_path(self, training: bool = True, dtype: torch.dtype | None = None) -> tuple[bool, str]:
        """Whether a call of this model (``training``: as fit() makes it; else as evaluate() and predict()) runs
        its layers as one fused MLP (kernels.fused_mlp, ``layers/fusion.py``), and why (or why not), in words.
        ``dtype`` defaults to the first layer's compute dtype; the device is the model's."""
        layers = self._fused_mlp_layers()
        if layers is None:
            return False, "not a Sequential or a Functional chain of layers (one input, one output, no branches)"
        if dtype is None:
            dtype = layers[0].compute_dtype if layers else torch.float32
        stack, why = fusion.mlp_path(layers, training, dtype, self.device)
        return stack is not None, why

    def summary(self, line_length: int | None = None, print_fn: Callable[[str], None] | None = None, **_: Any) -> None:
        """Print a table of layers (name and type, output shape, parameter count) and the parameter totals."""
        (print_fn or print)(summary_text(self, line_length=line_length))

    # ---- building ----
    def _maybe_build(self, inputs: Any, args: tuple[Any, ...] = ()) -> None:
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
        self.build_from_config({"input_shape": as_lists(input_shape)})

    def get_build_config(self) -> dict[str, Any] | None:
        """The input shape the model was built with (Keras' ``get_build_config``), for saving."""
        shape = getattr(self, "_build_input_shape", None)
        return None if shape is None else {"input_shape": as_lists(shape)}

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

    # ---- saving ----
    def save(self, filepath: str, overwrite: bool = True) -> None:
        """Save architecture, weights and optimizer state to one file (see ``tritonnn.saving``)."""
        saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str) -> None:
        saving.load_weights(self, filepath)

    def __call__(self, inputs: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        # Arrays and lists of numbers become tensors on the model's device in Layer.__call__; a tensor on another
        # device is an error that says so.
        self._check_device((inputs, args))
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

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Model:
        """A model from :meth:`get_config`'s output: a Functional config (``layers``, ``input_layers``,
        ``output_layers``) rebuilds the graph, as ``keras.Model.from_config`` does; any other config is passed to
        the class's constructor (a subclassed model's own ``get_config``)."""
        functional = Model.functional_class
        if functional is not None and functional.is_functional_config(config):
            target = cls if isinstance(cls, type) and issubclass(cls, functional) else functional
            return functional.from_config.__func__(target, config, custom_objects=custom_objects)
        if not isinstance(config, dict):
            raise ValueError(f"Expected `config` to be a dict. Received: config={config!r}")
        return cls(**config)

    def to_json(self, **kwargs: Any) -> str:
        """The model's architecture as a JSON string (``json.dumps`` keyword arguments pass through), which
        :func:`model_from_json` rebuilds (new weights)."""
        return json.dumps(saving.serialize_layer(self), **kwargs)


def model_from_json(json_string: str, custom_objects: dict[str, Any] | None = None) -> Model:
    """Rebuild an (uncompiled) model from :meth:`Model.to_json`'s string (Keras' ``keras.models.model_from_json``).

    Args:
        json_string: the JSON text of a model's serialized config.
        custom_objects: optional dict mapping class names (or registered names) to custom classes.
    """
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise ValueError(f"Expected `json_string` to be a JSON string. Received: {type(json_string).__name__}")
    try:
        config = json.loads(json_string)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"`json_string` is not valid JSON: {e}") from e
    model = saving.deserialize_layer(config, custom_objects=custom_objects)
    if not isinstance(model, Model):
        raise ValueError(f"The JSON describes a {type(model).__name__}, not a model")
    return model


def as_lists(shape: Any) -> Any:
    """A shape (or a nest of shapes) with lists for tuples, as JSON holds it."""
    if isinstance(shape, dict):
        return {k: as_lists(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple, dict)):
        return [as_lists(v) for v in shape]
    return list(shape)
