"""The compiled loss inside the fused MLP (issue #17): a train or test step of a Sequential (or a Functional chain)
that runs as one fused MLP (``layers/fusion.py``) computes its loss in the same two launches when the loss is the
model's only one and the fused kernels have it: ``SparseCategoricalCrossentropy`` (on the logits, or on a last-layer
softmax's logits) or ``MeanSquaredError``, reduced ``sum_over_batch_size``, no ``ignore_class``, no sample or class
weights, in float32. The step is then one forward launch (the loss and, for the metrics, the predictions), one
backward launch (the loss gradient fused into its first stage, the weight gradients into the optimizer's flat
buffer) and the optimizer's. Anything else returns None and the step runs the model, then ``compute_loss``.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import losses as losses_mod
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


def fused_loss(model: Any, x: Any, y: Any, sample_weight: Any, training: bool) -> tuple[torch.Tensor, Any] | None:
    """``(total loss, y_pred)`` of one step with the compiled loss fused into the MLP's kernels, or None. Sets what
    ``compute_loss`` sets for the metric updates (``_last_output_losses``); the model's own losses (weight
    regularizers) are added as compute_loss adds them."""
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
    if name == "softmax_cross_entropy":
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            return None
        targets = y.reshape(-1) if y.dim() == 2 and y.shape[1] == 1 else y
        if targets.dim() != 1:
            return None
    else:
        if not y.dtype.is_floating_point or y.dim() != 2:
            return None
        targets = y.to(torch.float32)
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
