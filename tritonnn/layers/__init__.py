"""Keras 3 layers."""

from .core import Activation, Dense, Flatten, Input, InputLayer, Reshape
from .layer import Layer

__all__ = ["Activation", "Dense", "Flatten", "Input", "InputLayer", "Layer", "Reshape"]
