"""Wrapper: the base class of layers that wrap another layer (Keras' ``keras.layers.Wrapper``)."""

from __future__ import annotations

from typing import Any

from .. import _registry, _serialization
from .layer import Layer


class Wrapper(Layer):
    """Abstract base class of the layers that take another layer and augment it (Keras' ``TimeDistributed`` and
    ``Bidirectional`` are such layers): a subclass implements ``call``, usually calling ``self.layer``.

    ``build`` builds the wrapped layer (when it is not built) on the same input shape; its weights are the
    wrapper's weights (trainable while both are), and ``get_config`` nests its config under ``"layer"``, from
    which ``from_config`` rebuilds it.

    Args:
        layer: the layer to wrap.
    """

    def __init__(self, layer: Layer, **kwargs: Any):
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Layer {layer} supplied to Wrapper isn't a supported layer type. Please ensure wrapped layer is a "
                "valid Keras layer."
            )
        super().__init__(**kwargs)
        self.layer = layer
        self._freeze_if_untrainable()

    def _freeze_if_untrainable(self) -> None:
        # A wrapper made with trainable=False trains none of the wrapped layer's weights (Keras' trainable_weights
        # of an untrainable layer is empty), while the wrapped layer keeps its own flag, as in Keras.
        if not self.trainable:
            for p in self.layer.parameters():
                p.requires_grad_(False)

    def build(self, input_shape: Any = None) -> None:
        if not self.layer.built:
            self.layer.build(input_shape)
            self.layer.built = True
        self._freeze_if_untrainable()
        self.built = True

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{type(self).__name__} is an abstract wrapper: it has no call() of its own. Subclass "
            "`keras.layers.Wrapper` and implement `call()` (usually calling `self.layer`)."
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": _serialization.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Wrapper:
        """Rebuild the wrapper and the wrapped layer from :meth:`get_config` (the wrapped layer's class is found
        as for any config: built-in, registered, in ``custom_objects`` or the active ``custom_object_scope``)."""
        config = dict(config)
        if "layer" not in config:
            raise ValueError(f"A {cls.__name__} config needs a 'layer' entry. Received: {config!r}")
        layer = _registry.deserialize_object(config.pop("layer"), custom_objects=custom_objects)
        return cls(layer, **config)


__all__ = ["Wrapper"]
