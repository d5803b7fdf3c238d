"""Keras 3 dtype policies: ``Policy(name)``, ``set_global_policy``, ``global_policy``.

A policy names two dtypes: the one variables are stored in and the one layers compute in. Under
``"mixed_bfloat16"`` / ``"mixed_float16"`` variables stay float32 (the optimizer's flat master buffer) and each
layer casts what it reads to the compute dtype in its forward; autograd then accumulates float32 gradients into
the flat gradient buffer, and the fused optimizer updates float32. ``"bfloat16"`` / ``"float16"`` make both
dtypes low precision (Keras' meaning); tritonnn's flat-buffer optimizers need float32 variables, so training
under those policies raises at ``optimizer.build`` with a message naming the mixed policy to use instead.
"""

from __future__ import annotations

import torch

from .optimizers import LossScaleOptimizer

_POLICIES = {
    # name: (variable_dtype, compute_dtype)
    "float32": ("float32", "float32"),
    "mixed_bfloat16": ("float32", "bfloat16"),
    "mixed_float16": ("float32", "float16"),
    "bfloat16": ("bfloat16", "bfloat16"),
    "float16": ("float16", "float16"),
}

_TORCH = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Policy:
    """A dtype policy named as in Keras: ``"float32"``, ``"mixed_bfloat16"``, ``"mixed_float16"``, ``"bfloat16"``,
    ``"float16"``.

    Attributes:
        name: the policy's name.
        variable_dtype: dtype of the weights, as a string (``"float32"`` under the mixed policies).
        compute_dtype: dtype layers compute in, as a string.
    """

    def __init__(self, name: str = "float32"):
        if isinstance(name, Policy):
            name = name.name
        if not isinstance(name, str) or name not in _POLICIES:
            raise ValueError(
                f"Cannot convert '{name}' to a mixed precision Policy. Valid policies include "
                f"{', '.join(repr(p) for p in _POLICIES)}. Received: name={name!r}"
            )
        self._name = name
        self._variable_dtype, self._compute_dtype = _POLICIES[name]

    @property
    def name(self) -> str:
        return self._name

    @property
    def variable_dtype(self) -> str:
        return self._variable_dtype

    @property
    def compute_dtype(self) -> str:
        return self._compute_dtype

    @property
    def torch_variable_dtype(self) -> torch.dtype:
        return _TORCH[self._variable_dtype]

    @property
    def torch_compute_dtype(self) -> torch.dtype:
        return _TORCH[self._compute_dtype]

    @property
    def is_mixed(self) -> bool:
        return self._variable_dtype != self._compute_dtype

    def get_config(self) -> dict[str, str]:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config: dict[str, str]) -> Policy:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f'<Policy "{self._name}">'


DTypePolicy = Policy  # Keras 3's class name

_global_policy: Policy | None = None


def set_global_policy(policy: Policy | str | None) -> None:
    """Set the policy layers created from now on use (``None`` resets to ``"float32"``)."""
    global _global_policy
    _global_policy = None if policy is None else Policy(policy.name if isinstance(policy, Policy) else policy)


def global_policy() -> Policy:
    """The current global policy (``"float32"`` unless set)."""
    return _global_policy if _global_policy is not None else Policy("float32")


set_dtype_policy = set_global_policy  # Keras 3 aliases
dtype_policy = global_policy

__all__ = ["DTypePolicy", "LossScaleOptimizer", "Policy", "dtype_policy", "global_policy", "set_dtype_policy"]
__all__ += ["set_global_policy"]
