"""Keras 3 layers, and ``serialize`` / ``deserialize`` of any layer or model."""

from typing import Any

from .._registry import deserialize_object
from .._serialization import serialize_keras_object
from .activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .core import Activation, Dense, Flatten, Input, InputLayer, Reshape
from .einsum_dense import EinsumDense
from .embedding import Embedding
from .input_spec import InputSpec
from .integer_lookup import IntegerLookup
from .lambda_layer import Identity, Lambda
from .layer import Layer
from .merging import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .noise import ActivityRegularization, AlphaDropout, GaussianDropout, GaussianNoise
from .normalization import BatchNormalization, LayerNormalization, RMSNormalization, UnitNormalization
from .pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from .preprocessing import CategoryEncoding, Discretization, Normalization, Rescaling
from .regularization import Dropout
from .reshaping import Permute, RepeatVector
from .torch_module_wrapper import TorchModuleWrapper
from .wrapper import Wrapper

__all__ = ["Activation", "Dense", "Flatten", "Input", "InputLayer", "Layer", "Reshape"]
__all__ += ["Add", "Average", "BatchNormalization", "Concatenate", "Dropout", "Embedding", "GlobalAveragePooling1D"]
__all__ += ["GlobalMaxPooling1D", "LayerNormalization", "Maximum", "Minimum", "Multiply", "Subtract"]
__all__ += ["add", "average", "concatenate", "maximum", "minimum", "multiply", "subtract"]
__all__ += ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax", "Identity", "Lambda", "Dot", "dot", "UnitNormalization"]
__all__ += ["ActivityRegularization", "AlphaDropout", "GaussianDropout", "GaussianNoise", "Permute", "RepeatVector"]
__all__ += ["CategoryEncoding", "Discretization", "Normalization", "Rescaling", "RMSNormalization", "InputSpec"]
__all__ += ["EinsumDense", "IntegerLookup", "TorchModuleWrapper", "Wrapper"]
__all__ += ["deserialize", "serialize"]


def serialize(layer: Layer) -> dict[str, Any]:
    """The layer's configuration as a JSON-compatible dict (``keras.saving.serialize_keras_object``'s layout)."""
    return serialize_keras_object(layer)


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Layer:
    """The layer (or model) a :func:`serialize` dict describes; ``custom_objects`` maps names to custom classes
    and functions. A config of anything but a layer is a ``ValueError``, as in Keras."""
    obj = deserialize_object(config, custom_objects=custom_objects)
    if not isinstance(obj, Layer):
        raise ValueError(
            f"`keras.layers.deserialize` was passed a `config` object that is not a `keras.layers.Layer`. "
            f"Received: {config}"
        )
    return obj
