"""Models: ``Model`` (the container joined to the trainer), the Functional API and ``Sequential``; ``clone_model``,
``model_from_json`` and ``load_model``."""

from __future__ import annotations

from typing import Any

from .. import saving
from ..saving import save_model  # Keras' keras.models.save_model is keras.saving.save_model
from .cloning import clone_model
from .functional import Functional
from .model import Model, model_from_json
from .sequential import Sequential


def load_model(
    filepath: str, custom_objects: dict[str, Any] | None = None, compile: bool = True, safe_mode: bool = True
) -> Model:
    """Load a model saved by ``model.save``: architecture, weights and (with ``compile``) optimizer state."""
    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


__all__ = ["Functional", "Model", "Sequential", "clone_model", "load_model", "model_from_json", "save_model"]
