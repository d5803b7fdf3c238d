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


# torch._C._will_engine_execute_node: whether the running backward will run a given autograd node.
_WILL_EXECUTE = getattr(torch._C, "_will_engine_execute_node", None)


def flat_grad_target(ctx, index: int, param: torch.Tensor | None) -> torch.Tensor | None:
    """``param.grad`` when the custom backward of ``ctx`` may add ``param``'s gradient into it itself (and return
    None for it), else None: then the gradient must be returned for autograd to accumulate.

    ``index`` is ``param``'s position among the Function's inputs. True only when AccumulateGrad would have done
    the same ``.grad += d`` in place: a plain backward (no create_graph: grad mode is off); ``param`` a marked leaf
    (:func:`is_flat_grad_leaf`) and the one AccumulateGrad node of this input (not a cast copy under mixed
    precision); the engine will run that node (not for ``backward(inputs=...)`` without it, nor when
    ``torch.autograd.grad`` captures the gradient); ``.grad`` exists, is a strided tensor of the parameter's dtype,
    shape and device, and no tensor hook or post-accumulate hook waits for the gradient. (The dense backward,
    kernels/dense.py, asks this function too.)
    """
    if param is None or not is_flat_grad_leaf(param) or _WILL_EXECUTE is None or torch.is_grad_enabled():
        return None
    grad = param.grad
    if (
        grad is None
        or grad.layout != torch.strided
        or grad.dtype != param.dtype
        or grad.shape != param.shape
        or grad.device != param.device
        or param._backward_hooks
        or getattr(param, "_post_accumulate_grad_hooks", None)
    ):
        return None
    node = ctx.next_functions[index][0]
    if node is None or getattr(node, "variable", None) is not param:
        return None
    try:
        return grad if _WILL_EXECUTE(node) else None
    except RuntimeError:  # torch.autograd.grad() captures this parameter's gradient: return it
        return None
