"""The compiled loss inside the fused MLP (issue #17): a train or test step of a Sequential (or a Functional chain)
that runs as one fused MLP (``layers/fusion.py``) computes its loss in the same two launches when the loss is the
model's only one and the fused kernels have it: ``SparseCategoricalCrossentropy`` (on the logits, or on a last-layer
softmax's logits) or ``MeanSquaredError``, reduced ``sum_over_batch_size``, no ``ignore_class``, no sample or class
weights, in float32. The step is then one forward launch (the loss and, for the metrics, the predictions), one
backward launch (the loss gradient fused into its first stage, the weight gradients into the optimizer's flat
buffer) and the optimizer's. Anything else returns None and the step runs the model, then ``compute_loss``.

On the torch backend (a CPU) such a step is fused one level further (:func:`train_without_autograd`): the stack's
forward and its backward (kernels/fused_mlp_torch.py) are called directly, without an autograd graph, the weight
gradients added into the optimizer's flat buffer, because there nothing else needs the graph: every trainable
parameter is a flat-gradient leaf with no hook, the model has no other loss, and no loss scaling. What the engine
would do is then exactly that backward and those ``.grad`` adds; the per-step Python of the graph and the engine is
what a small CPU step is made of (issue #16: the seed model's step).
"""

from __future__ import annotations

from typing import Any

import torch

from .. import kernels
from .. import losses as losses_mod
from ..kernels import flat_grad, xent
from ..kernels.activations import canonical
from ..kernels.fused_mlp import MLPSpec
from ..kernels.fused_mlp_torch import stack_backward, stack_forward
from ..layers import fusion


def _fused_loss_name(loss_fn: Any) -> str | None:
    """The fused kernels' name for a compiled loss, or None when they do not compute it."""
    if getattr(loss_fn, "reduction", None) != "sum_over_batch_size" or str(getattr(loss_fn, "dtype", "")) != "float32":
        return None
    if type(loss_fn) is losses_mod.SparseCategoricalCrossentropy:
        if loss_fn.ignore_class is None and loss_fn.axis == -1:
            return "softmax_cross_entropy"
    if type(loss_fn) is losses_mod.MeanSquaredError:
        return "mean_squared_error"
    return None


def _targets(name: str, y: torch.Tensor) -> torch.Tensor | None:
    """The fused loss's targets from a batch's ``y``, or None when the fused loss does not take them."""
    if name == "softmax_cross_entropy":
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            return None
        targets = y.reshape(-1) if y.dim() == 2 and y.shape[1] == 1 else y
        return targets if targets.dim() == 1 else None
    if not y.dtype.is_floating_point or y.dim() != 2:
        return None
    return y.to(torch.float32)


def _fusable(model: Any, x: Any, y: Any, sample_weight: Any) -> tuple[list[Any], str] | None:
    """``(layers, loss name)`` when a step's loss may be fused into the model's MLP (module docstring), else None."""
    if getattr(type(model).compute_loss, "__qualname__", "") != "Trainer.compute_loss":
        return None  # a model's own compute_loss is called, as written
    layers_of = getattr(model, "_fused_mlp_layers", None)
    losses = getattr(model, "_output_losses", None)
    if layers_of is None or losses is None or len(losses) != 1 or sample_weight is not None:
        return None
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or not fusion.fused_mlp_enabled():
        return None
    layers = layers_of()
    name = _fused_loss_name(losses[0])
    if layers is None or name is None:
        return None
    return layers, name


_ONES: dict[tuple[torch.device, float], torch.Tensor] = {}  # d loss / d loss (times the loss weight), per device


def _grad_seed(device: torch.device, weight: float) -> torch.Tensor:
    key = (device, weight)
    t = _ONES.get(key)
    if t is None:
        t = _ONES[key] = torch.full((), weight, dtype=torch.float32, device=device)
    return t


def train_without_autograd(model: Any, x: Any, y: Any, sample_weight: Any) -> tuple[torch.Tensor, Any] | None:
    """One train step's forward and backward on the torch backend, the loss fused into the MLP and the backward
    called directly (module docstring): ``(loss, y_pred)`` with the weight gradients added into ``.grad``, or None
    when the step is not such a step (then nothing was run). The optimizer's update is the caller's."""
    fusable = _fusable(model, x, y, sample_weight)
    if fusable is None or x.dim() != 2:
        return None
    layers, name = fusable
    if not getattr(layers[0], "built", False) or layers[0]._autocast(x).dtype != torch.float32:
        return None  # float32 only: under a mixed policy the autograd path casts the master weights
    if kernels.use_triton_on(x.device) or getattr(model.optimizer, "scale_loss", None) is not None:
        return None
    if not torch.is_grad_enabled() or any(layer._layer_losses or layer._regularizers for layer in (model, *layers)):
        return None  # another loss (add_loss, a weight regularizer): autograd sums it in
    stack, _ = fusion.mlp_path(layers, True, x.dtype, x.device)
    targets = _targets(name, y)
    if stack is None or targets is None or x.shape[0] == 0:
        return None
    widths = stack.widths
    if x.shape[1] != widths[0]:
        return None
    if stack.dropouts[-1] is not None or (stack.softmax and name != "softmax_cross_entropy"):
        return None
    params: list[torch.Tensor | None] = []
    for d in stack.dense:
        params += [d.kernel, d.bias]
    need, into = [], []
    for p in params:
        wants = p is not None and p.requires_grad
        grad = p.grad if wants else None
        if wants and not (
            flat_grad.is_flat_grad_leaf(p)
            and grad is not None
            and grad.dtype == torch.float32
            and grad.shape == p.shape
            and not p._backward_hooks
            and not getattr(p, "_post_accumulate_grad_hooks", None)
        ):
            return None  # a gradient only autograd can deliver (a hook waits for it; not the optimizer's)
        need.append(wants)
        into.append(grad)
    n_out = widths[-1]
    if name == "softmax_cross_entropy":
        if targets.shape[0] != x.shape[0]:
            return None
        xent.check_labels(targets, n_out)  # the cross-entropy's own check and message; no sync for array data
    elif tuple(targets.shape) != (x.shape[0], n_out):
        return None
    rates = stack.rates
    seeds = [0 if dr is None else fusion.dropout_seed(dr, x.device) for dr in stack.dropouts]
    acts = [canonical(a) for a in stack.activations]
    spec = MLPSpec(
        tuple(widths), tuple(acts), tuple(p is not None for p in params[1::2]), tuple(rates), tuple(seeds),
        name, True,
    )  # fmt: skip
    weight = float(model._output_loss_weights[0])
    with torch.no_grad():
        value, logits, keep = stack_forward(x, targets, spec, params)
        stack_backward(spec, params, keep, _grad_seed(x.device, weight), False, need, into)
    model._last_output_losses = [value]
    total = value * weight if weight != 1.0 else value
    return total, (stack.dense[-1].activate(logits) if stack.softmax else logits)


def fused_loss(model: Any, x: Any, y: Any, sample_weight: Any, training: bool) -> tuple[torch.Tensor, Any] | None:
    """``(total loss, y_pred)`` of one step with the compiled loss fused into the MLP's kernels, or None. Sets what
    ``compute_loss`` sets for the metric updates (``_last_output_losses``); the model's own losses (weight
    regularizers) are added as compute_loss adds them."""
    fusable = _fusable(model, x, y, sample_weight)
    if fusable is None:
        return None
    layers, name = fusable
    targets = _targets(name, y)
    if targets is None:
        return None
    out = fusion.call_fused_mlp(layers, x, training, loss=name, targets=targets)
    if out is None:
        return None
    value, y_pred = out
    model._last_output_losses = [value]
    weight = model._output_loss_weights[0]
    total = value * weight if weight != 1.0 else value
    for extra in model.losses:
        total = total + extra
    return total, y_pred
