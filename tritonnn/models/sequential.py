"""``Sequential``: a linear stack of layers."""

from __future__ import annotations

from typing import Any

import torch

from .. import saving
from ..layers import fusion
from ..layers.core import InputLayer
from ..layers.layer import Layer, shape_of
from ..layers.symbolic import KerasTensor
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
        for layer, fused_dropout in fusion.sequential_plan(list(self._layers), training):
            if fused_dropout is not None:
                x = fusion.call_fused(layer, fused_dropout, x)
            else:
                x = layer(x, training=training)
        return x

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [saving.serialize_layer(layer) for layer in self._layers],
        }
        if self._input_layer is not None:
            cfg["input_shape"] = list(self._input_layer.shape)
            cfg["input_dtype"] = str(self._input_layer.dtype).replace("torch.", "")
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Sequential:
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        if config.get("input_shape") is not None:
            model.add(InputLayer(shape=tuple(config["input_shape"]), dtype=config.get("input_dtype")))
        for layer_cfg in config["layers"]:
            model.add(saving.deserialize_layer(layer_cfg, custom_objects=custom_objects))
        return model
