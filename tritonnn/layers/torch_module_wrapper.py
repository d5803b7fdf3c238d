"""TorchModuleWrapper: a ``torch.nn.Module`` as a layer (Keras' ``keras.layers.TorchModuleWrapper``, from its
torch backend)."""

from __future__ import annotations

import base64
import io
from typing import Any

import torch

from .. import config
from .layer import Layer

_UNPICKLE_REFUSED = (
    "Requested the deserialization of a `torch.nn.Module` object via `torch.load()`. This carries a potential risk "
    "of arbitrary code execution and thus it is disallowed: tritonnn never unpickles a module from a config or a "
    "file, whatever `safe_mode` is. Build the module in code, wrap it again, and load the weights with "
    "`load_weights()` (or pass the module object itself as the config's 'module')."
)


class TorchModuleWrapper(Layer):
    """Wraps a ``torch.nn.Module`` as a layer: its parameters become the layer's weights (trainable where the
    parameter requires a gradient), trained by ``fit`` and counted by ``summary()``; its buffers (a batch norm's
    running statistics) are saved with the model's weights.

    The call passes every argument to the module; the module is put in training mode unless the call's
    ``training`` is ``False`` (Keras' rule: a direct call without ``training`` runs in training mode). Float inputs
    are cast to the layer's compute dtype; integer inputs stay as they are.

    Args:
        module: the module. A lazy module (``torch.nn.LazyLinear``...) must be initialized first (called once).
        name: the layer's name.
        output_shape: optional, what ``compute_output_shape`` returns (without it, the shape is found by calling
            the module).

    ``get_config`` writes the module as Keras does (``torch.save``, base64), so Keras can read the config with
    ``safe_mode=False``; ``from_config`` never unpickles it (a ``ValueError``, whatever ``safe_mode`` is).
    """

    def __init__(self, module: torch.nn.Module, name: str | None = None, output_shape: Any = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        if not isinstance(module, torch.nn.Module):
            raise AttributeError(
                f"Expected `module` to be a torch.nn.Module. Received: module={module!r} ({type(module).__name__})"
            )
        if isinstance(module, torch.nn.modules.lazy.LazyModuleMixin) and module.has_uninitialized_params():
            raise ValueError(
                "LazyModules are not supported unless they are already initialized. "
                f"Received uninitialized LazyModule: module={module}"
            )
        self.module = module.to(config.default_device())
        self.output_shape = output_shape
        # The parameters that were trainable when wrapped: `trainable = True` gives back these, not the frozen ones.
        for p in self.module.parameters():
            p._tritonnn_trainable = bool(p.requires_grad)
        self._trainable = self._trainable  # a layer made with trainable=False freezes the module's parameters
        self.built = True

    @property
    def _trainable(self) -> bool:
        return self.__dict__.get("_trainable_flag", True)

    @_trainable.setter
    def _trainable(self, value: bool) -> None:
        # Layer's flag, set by `trainable = ...` on this layer or on a model holding it; the module's parameters
        # are not the layer's own (they belong to the torch module), so they follow the flag here.
        self.__dict__["_trainable_flag"] = bool(value)
        module = self.__dict__.get("_modules", {}).get("module")
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(bool(value) and getattr(p, "_tritonnn_trainable", True))

    def _autocast(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != self.compute_dtype:
            return x.to(self.compute_dtype)
        return x

    def call(self, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if training is False:
            self.eval()
        else:
            self.train()
        return self.module(*args, **kwargs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self.output_shape is None:
            return super().compute_output_shape(input_shape)
        return self.output_shape

    def get_config(self) -> dict[str, Any]:
        buffer = io.BytesIO()
        torch.save(self.module, buffer)
        return {
            **super().get_config(),
            "module": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "output_shape": self.output_shape,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None, safe_mode: bool | None = None
    ) -> TorchModuleWrapper:
        """Rebuild from a config whose ``"module"`` is a ``torch.nn.Module`` object. A serialized module (the
        string ``get_config`` writes) is refused with a ``ValueError``: unpickling runs arbitrary code."""
        config = dict(config)
        if "module" in config and not isinstance(config["module"], torch.nn.Module):
            raise ValueError(_UNPICKLE_REFUSED)
        return cls(**config)


__all__ = ["TorchModuleWrapper"]
