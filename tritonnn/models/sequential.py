"""``Sequential``: a linear stack of layers."""

from __future__ import annotations

from typing import Any

import torch

from .. import config, saving
from ..layers import fusion
from ..layers.core import InputLayer
from ..layers.layer import Layer, shape_of
from ..layers.symbolic import KerasTensor, Node, build_tensors
from .model import Model


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
        # The symbolic graph of the stack (from the input layer's tensor through every layer), made when the model
        # is built: what `inputs`, `outputs` and each layer's `output` read. `_graph_nodes` are the nodes it
        # recorded on the layers, dropped from them when the stack changes and the graph is made again.
        self._graph_output: KerasTensor | None = None
        self._graph_nodes: list[Node] = []
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    # ---- the symbolic graph (defined once the model knows its input shape) ----
    def _graph(self, what: str) -> tuple[KerasTensor, KerasTensor]:
        if self._input_layer is None or self._graph_output is None:
            raise AttributeError(f"Sequential model '{self.name}' has no defined {what} yet.")
        return self._input_layer.output, self._graph_output

    @property
    def inputs(self) -> list[KerasTensor]:
        """The model's symbolic input, in a list (an ``AttributeError`` until the input shape is known)."""
        return [self._graph("inputs")[0]]

    @property
    def outputs(self) -> list[KerasTensor]:
        """The last layer's symbolic output, in a list: with :attr:`inputs`, what a Functional model built from
        this one takes (``Model(model.inputs, model.get_layer(name).output)`` shares the layers and weights)."""
        return [self._graph("outputs")[1]]

    @property
    def input(self) -> KerasTensor:
        """The model's symbolic input (``inputs[0]``)."""
        return self._graph("input")[0]

    @property
    def output(self) -> KerasTensor:
        """The last layer's symbolic output (``outputs[0]``)."""
        return self._graph("output")[1]

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self._graph("input shape")[0].shape

    @property
    def output_shape(self) -> Any:
        return self._graph("output shape")[1].shape

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
        if self._input_layer is None and len(self._layers) == 2:
            self._input_layer = _input_layer_like(self._layers[0])
        self.built = False
        self._build_from_input()

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not len(self._layers):
            raise IndexError("There are no layers in the model to pop.")  # Keras' class: its list's pop()
        layer = self._layers[-1]
        del self._layers[-1]
        if self._graph_output is not None:  # the graph ends at the layer before now
            self._make_graph()
        return layer

    def _build_from_input(self) -> None:
        if self._input_layer is not None and len(self._layers):
            self.build((None, *self._input_layer.shape))

    def _maybe_build(self, inputs: Any, args: tuple[Any, ...] = ()) -> None:
        if not self.built:
            called_on = build_tensors(self)  # called on a symbolic tensor: its shape, None where unknown
            if self._input_layer is None and called_on is not None and isinstance(called_on[0], KerasTensor):
                symbolic_input = called_on[0]
                dtype = config.standardize_dtype(symbolic_input.dtype)
                self._input_layer = InputLayer(
                    shape=tuple(symbolic_input.shape[1:]), dtype=None if dtype.is_floating_point else dtype
                )
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
        self._make_graph()
        self.built = True

    def _make_graph(self) -> None:
        """Call the layers in turn on the input layer's symbolic tensor (which builds them), replacing the graph
        an earlier build recorded on them."""
        for node in self._graph_nodes:
            owner = node.layer._inbound_nodes
            if node in owner:
                owner.remove(node)
        self._graph_nodes = []
        self._graph_output = None
        x: Any = self._input_layer.output
        for layer in self._layers:
            before = len(layer._inbound_nodes)
            x = layer(x)
            self._graph_nodes.extend(layer._inbound_nodes[before:])
        self._graph_output = x if len(self._layers) else None

    def call(self, inputs: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        # A stack of Dense layers (+ dropouts) within the fused MLP's bounds runs as one kernel per pass
        # (layers/fusion.py: mlp_path says which path and why; TRITONNN_FUSED_MLP=0 turns it off).
        fused = fusion.call_fused_mlp(list(self._layers), inputs, training)
        if fused is not None:
            return fused
        x = inputs
        for layer, fused_dropout in fusion.sequential_plan(list(self._layers), training):
            if fused_dropout is not None:
                x = fusion.call_fused(layer, fused_dropout, x)
            else:
                x = layer(x, training=training)
        return x

    def _fused_mlp_layers(self) -> list[Layer] | None:
        """The layers a fused MLP would run in place of :meth:`call` (trainers/fused_step.py), or None when this
        model's call is its own (a subclass's)."""
        return list(self._layers) if type(self).call is Sequential.call else None

    def get_config(self) -> dict[str, Any]:
        """Keras' layout: ``name``, ``trainable``, ``dtype``, ``layers`` (the input layer first, when the model has
        one) and ``build_input_shape`` (the input's batch shape, when it is known)."""
        layers = [] if self._input_layer is None else [saving.serialize_layer(self._input_layer)]
        layers.extend(saving.serialize_layer(layer) for layer in self._layers)
        cfg: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": Layer.get_config(self)["dtype"],
            "layers": layers,
        }
        if self._input_layer is not None:
            cfg["build_input_shape"] = list(self._input_layer.batch_shape)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Sequential:
        """Rebuild from :meth:`get_config`'s output, or from the layout tritonnn wrote before it followed Keras'
        (files of format_version 1 until then): ``input_shape`` and ``input_dtype`` keys beside ``layers`` that
        do not hold the input layer."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(
                "A Sequential model configuration must be a dictionary containing the 'name' and 'layers' keys. "
                f"Received: config={config!r}"
            )
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        if config.get("input_shape") is not None:  # the earlier layout
            model.add(InputLayer(shape=tuple(config["input_shape"]), dtype=config.get("input_dtype")))
        for layer_cfg in config["layers"]:
            model.add(saving.deserialize_layer(layer_cfg, custom_objects=custom_objects))
        build_shape = config.get("build_input_shape")
        if not model.built and isinstance(build_shape, (list, tuple)) and build_shape and len(model._layers):
            model.build(tuple(build_shape))
        return model


def _input_layer_like(first: Layer) -> InputLayer | None:
    """An input layer for a stack whose first layer is a model with one defined input (a Sequential with an
    ``Input``, a Functional model), as Keras builds such a stack once a second layer is added; None otherwise."""
    if not isinstance(first, Model):
        return None
    try:
        inputs = first.inputs
    except AttributeError:  # a Sequential without an input shape yet, a subclassed model
        return None
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], KerasTensor):
        return None
    source = inputs[0].node.layer
    return InputLayer(batch_shape=source.batch_shape, dtype=source.dtype)
