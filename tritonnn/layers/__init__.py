"""Keras 3 layers."""

from .core import Activation, Dense, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding
from .layer import Layer
from .merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .normalization import BatchNormalization, LayerNormalization
from .pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from .regularization import Dropout

__all__ = ["Activation", "Dense", "Flatten", "Input", "InputLayer", "Layer", "Reshape"]
__all__ += ["Add", "Average", "BatchNormalization", "Concatenate", "Dropout", "Embedding", "GlobalAveragePooling1D"]
__all__ += ["GlobalMaxPooling1D", "LayerNormalization", "Maximum", "Minimum", "Multiply", "Subtract"]
__all__ += ["add", "average", "concatenate", "maximum", "minimum", "multiply", "subtract"]
