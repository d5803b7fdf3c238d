"""Keras 3 layers."""

from .activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .core import Activation, Dense, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding
from .input_spec import InputSpec
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

__all__ = ["Activation", "Dense", "Flatten", "Input", "InputLayer", "Layer", "Reshape"]
__all__ += ["Add", "Average", "BatchNormalization", "Concatenate", "Dropout", "Embedding", "GlobalAveragePooling1D"]
__all__ += ["GlobalMaxPooling1D", "LayerNormalization", "Maximum", "Minimum", "Multiply", "Subtract"]
__all__ += ["add", "average", "concatenate", "maximum", "minimum", "multiply", "subtract"]
__all__ += ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax", "Identity", "Lambda", "Dot", "dot", "UnitNormalization"]
__all__ += ["ActivityRegularization", "AlphaDropout", "GaussianDropout", "GaussianNoise", "Permute", "RepeatVector"]
__all__ += ["CategoryEncoding", "Discretization", "Normalization", "Rescaling", "RMSNormalization", "InputSpec"]
