"""The flat-gradient contract between the optimizers and the dense backward.

An optimizer (``tritonnn/optimizers``) owns its parameters' storage: ``build(params)`` makes each parameter, and
its ``.grad``, a view into one flat fp32 buffer (one per kind: parameters, gradients), and marks the parameter
with :func:`mark_flat_grad`. For a parameter so marked, the dense backward (``kernels/dense.py``) may accumulate
dkernel / dbias into ``.grad`` itself, instead of returning them for autograd's AccumulateGrad to add in a
separate pass over the gradient; the result is the same ``.grad += d``.

The mark says only who owns ``.grad``. :func:`is_flat_grad_leaf` asks whether a tensor is such an
optimizer-managed leaf; the backward still checks, per call, that AccumulateGrad would have run and that ``.grad``
is the view it expects ("Gradients straight into the optimizer's flat buffer" in ``kernels/dense.py``), and takes
the normal return otherwise.
"""

from __future__ import annotations

import torch

# The attribute set (True) on a parameter whose .grad is a view into an optimizer's flat gradient buffer.
FLAT_GRAD_ATTR = "_tritonnn_flat_grad"


def mark_flat_grad(param: torch.Tensor) -> None:
    """Mark ``param`` as living in an optimizer's flat buffers (its ``.grad`` a view into the flat gradient)."""
    setattr(param, FLAT_GRAD_ATTR, True)


def is_flat_grad_leaf(t: torch.Tensor | None) -> bool:
    """Whether ``t`` is a marked leaf that requires grad: one whose ``.grad`` an optimizer manages."""
    return t is not None and bool(getattr(t, FLAT_GRAD_ATTR, False)) and t.requires_grad and t.is_leaf
