"""Which neighbouring layers run as one fused kernel in training, asked of the layers themselves.

Today's rule: a layer that can take a dropout into its epilogue (it has ``call_with_dropout(inputs, rate,
seed)``: ``Dense``) followed by a dropout layer that can be fused (its ``fusable_dropout_rate()`` is not None: a
plain ``Dropout`` with ``0 < rate < 1`` and no ``noise_shape``) runs as one fused kernel whose mask is
bit-identical to the standalone dropout's on the same backend. Both containers use it: ``Sequential`` for
consecutive layers, ``Functional`` for a node whose only consumer is such a dropout. Outside training every layer
runs on its own.

Which seed a dropout draws, fused or not, is decided here too (:func:`dropout_seed`): the next int of its host
stream, or, for a layer whose ``device_seeds`` is on, the next seed of its stream as a tensor on the input's device
(graph-capturable: nothing is read on the host).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from .. import kernels
from .layer import Layer


def takes_dropout(layer: Layer) -> bool:
    """Whether ``layer`` can run a following dropout in its own kernel."""
    return callable(getattr(type(layer), "call_with_dropout", None))  # on the class: no instance-attribute miss


def dropout_rate(layer: Layer) -> float | None:
    """The rate at which ``layer`` may be fused into the layer before it, or None when it is not such a dropout."""
    ask = getattr(type(layer), "fusable_dropout_rate", None)  # on the class: a miss per step is costly in nn.Module
    return ask(layer) if callable(ask) else None


def fuses(layer: Layer, following: Layer | None) -> bool:
    """Whether ``layer`` then ``following`` run as one fused kernel in training."""
    return following is not None and takes_dropout(layer) and dropout_rate(following) is not None


def dropout_seed(dropout: Layer, device: torch.device) -> int | torch.Tensor:
    """The next mask seed of ``dropout``'s stream for a training call on ``device``: a device seed (a fresh 0-dim
    int64 tensor there, ``next_seed_tensor``) when the layer's ``device_seeds`` is on, else the int ``next_seed()``.
    The one rule for ``Dropout.call`` and the fused path alike."""
    if getattr(dropout, "device_seeds", False):
        return dropout.next_seed_tensor(device)
    return dropout.next_seed()


def call_fused(layer: Layer, following: Layer, inputs: Any) -> torch.Tensor:
    """``following(layer(inputs), training=True)`` as one kernel; draws the dropout's next seed
    (:func:`dropout_seed`), as its own call would."""
    rate = dropout_rate(following)
    inputs = layer._autocast(inputs)
    return layer.call_with_dropout(inputs, rate, dropout_seed(following, inputs.device))


def sequential_plan(layers: list[Layer], training: bool | None) -> list[tuple[Layer, Layer | None]]:
    """The layers of a stack grouped into steps: ``(layer, None)`` runs alone, ``(layer, dropout)`` fused."""
    plan: list[tuple[Layer, Layer | None]] = []
    i = 0
    while i < len(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if training and fuses(layers[i], nxt):
            plan.append((layers[i], nxt))
            i += 2
        else:
            plan.append((layers[i], None))
            i += 1
    return plan


# ---- the fused MLP (kernels/fused_mlp.py): a stack of Dense layers (+ their dropouts) in one kernel per pass ----

FUSED_MLP_ENV = "TRITONNN_FUSED_MLP"  # "0" (or "false", "off", "no"): every stack runs the per-layer path


def fused_mlp_enabled() -> bool:
    """Whether stacks of Dense layers may run as one fused MLP (the switch: ``TRITONNN_FUSED_MLP=0`` turns it off;
    read at every call, so it may change between calls)."""
    return os.environ.get(FUSED_MLP_ENV, "1").strip().lower() not in ("0", "false", "off", "no")


@dataclasses.dataclass
class MLPStack:
    """A stack of Dense layers, each with the dropout after it (None: none), and whether a softmax follows the last
    (run after the fused kernels, on their logits, as Dense does)."""

    dense: list[Layer]
    dropouts: list[Layer | None]
    softmax: bool

    @property
    def widths(self) -> list[int]:
        return [int(self.dense[0].kernel.shape[0])] + [int(d.kernel.shape[1]) for d in self.dense]

    @property
    def activations(self) -> list[str]:
        acts = [d.activation for d in self.dense]
        return acts[:-1] + ["linear"] if self.softmax else acts

    @property
    def rates(self) -> list[float]:
        return [0.0 if dr is None else dropout_rate(dr) for dr in self.dropouts]


def mlp_stack(layers: list[Layer], training: bool | None) -> tuple[MLPStack | None, str]:
    """``layers`` as one fused-MLP stack, or None and why not (in words).

    A stack: layers that can be a fused MLP's (their ``fused_mlp_member()`` is None: ``Dense`` with ``call`` not
    overridden, built, no activity regularizer, an element-wise activation of the kernel table, the last one's may
    be ``softmax``), each followed in training by at most one fusable dropout (:func:`dropout_rate`); outside
    training such a dropout is the identity and is skipped."""
    if not fused_mlp_enabled():
        return None, f"{FUSED_MLP_ENV}=0 turns the fused MLP off"
    dense: list[Layer] = []
    dropouts: list[Layer | None] = []
    for layer in layers:
        member = getattr(layer, "fused_mlp_member", None)
        if callable(member):
            why = member()
            if why is not None:
                return None, f"layer {layer.name!r}: {why}"
            if dense and dense[-1].activation == "softmax":
                return None, f"a softmax before layer {layer.name!r} (only the last layer's runs on the fused logits)"
            dense.append(layer)
            dropouts.append(None)
        elif dropout_rate(layer) is not None:
            if not training:
                continue  # the identity outside training
            if not dense or dropouts[-1] is not None:
                return None, f"dropout {layer.name!r} does not follow a Dense layer"
            dropouts[-1] = layer
        else:
            return None, f"layer {layer.name!r} ({type(layer).__name__}) is not a Dense or a fusable Dropout"
    if not dense:
        return None, "no Dense layers"
    if dropouts[-1] is not None and dense[-1].activation == "softmax":
        return None, "a dropout after the softmax"
    return MLPStack(dense, dropouts, dense[-1].activation == "softmax"), ""


def mlp_path(
    layers: list[Layer], training: bool | None, dtype: torch.dtype, device: torch.device
) -> tuple[MLPStack | None, str]:
    """The fused stack that a call of ``layers`` on a ``dtype`` batch on ``device`` runs, or None, and why."""
    stack, why = mlp_stack(layers, training)
    if stack is None:
        return None, why
    if any(d.compute_dtype != stack.dense[0].compute_dtype for d in stack.dense):
        return None, "the layers compute in different dtypes"
    ok, why = kernels.fused_mlp_supported(
        stack.widths, stack.activations, dtype, device=device, dropout_rates=stack.rates
    )
    return (stack if ok else None), why


def _triton_on(device: torch.device) -> bool:
    try:
        return kernels.use_triton_on(device)
    except RuntimeError:  # the setting cannot run here: fused_mlp_supported words the reason
        return True


def call_fused_mlp(
    layers: list[Layer],
    inputs: Any,
    training: bool | None,
    *,
    loss: str | None = None,
    targets: torch.Tensor | None = None,
) -> Any:
    """``layers`` called in turn on ``inputs`` as one fused MLP (kernels.fused_mlp: one forward launch, one
    backward), or None when they cannot be (the caller runs them one by one). Each dropout draws its next seed
    (:func:`dropout_seed`) in layer order, as the per-layer path does.

    With ``loss`` (``"softmax_cross_entropy"`` on the logits, ``"mean_squared_error"`` on the output) and its
    ``targets``, the loss is fused too: returns ``(loss, predictions)`` (the predictions without a gradient, for the
    metrics: the output, or the softmax of the logits when the last layer has one), or None."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2:
        return None
    first = layers[0] if layers else None
    if first is None or not getattr(first, "built", False):
        return None
    x = first._autocast(inputs)
    stack, _ = mlp_path(layers, training, x.dtype, x.device)
    if stack is None or x.shape[1] != stack.widths[0]:
        return None
    if loss is not None and (stack.dropouts[-1] is not None or (stack.softmax and loss != "softmax_cross_entropy")):
        return None
    if loss is not None and not kernels.fused_mlp_supported(stack.widths, stack.activations, x.dtype, loss=loss)[0]:
        return None
    kernels_, biases = [], []
    for d in stack.dense:
        k, b = d._weights_for(x)
        kernels_.append(k)
        biases.append(b)
    rates = stack.rates
    seeds = [None if dr is None else dropout_seed(dr, x.device) for dr in stack.dropouts]
    out = kernels.fused_mlp(
        x, kernels_, biases, stack.activations, dropout_rates=rates, dropout_seeds=seeds, loss=loss,
        targets=targets, return_logits=loss is not None,
    )  # fmt: skip
    if loss is not None:
        value, logits = out
        return value, (stack.dense[-1].activate(logits) if stack.softmax else logits)
    if stack.softmax:
        out = stack.dense[-1].activate(out)  # the softmax of the fused logits, which it keeps for the loss
    return out
