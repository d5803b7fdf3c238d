"""tritonnn.kernels: the engine.

Every op is exposed once here. Each dispatches to its Triton kernel for CUDA tensors and to its PyTorch
implementation otherwise; ``TRITONNN_BACKEND=auto|triton|torch`` or :func:`set_backend` overrides.

Two small protocols are exposed with the ops. :func:`mark_flat_grad` / :func:`is_flat_grad_leaf` (and their marker,
``FLAT_GRAD_ATTR``) are the flat-gradient contract (``flat_grad.py``): an optimizer that makes each parameter's
``.grad`` a view into one flat fp32 buffer marks the parameter, and the dense backward may then accumulate dkernel /
dbias into that ``.grad`` itself. :func:`known_label_range` is a context manager for a training loop that has
range-checked its integer labels once: inside it, cross-entropy skips its per-call label check (a device->host sync)
for the label tensors it names. :func:`sparse_labels` turns class labels held as whole-number floats into integers
under the same check (cross-entropy takes such (N,) float labels itself).
"""

from ._backend import BACKENDS, backend, backend_scope, get_backend, set_backend, use_triton, use_triton_on
from ._triton import HAS_TRITON, INTERPRETING
from .activations import ACTIVATIONS
from .dense import dense
from .dropout import dropout, seed_stream_next
from .flat_grad import FLAT_GRAD_ATTR, is_flat_grad_leaf, mark_flat_grad
from .fused_mlp import fused_mlp, fused_mlp_supported
from .norm import batch_norm, layer_norm, moments, rms_norm
from .optim import adam_, optimizer_update_, rmsprop_, sgd_
from .precision import get_float32_matmul_precision, set_float32_matmul_precision
from .xent import (
    binary_cross_entropy,
    known_label_range,
    log_softmax,
    softmax,
    softmax_cross_entropy,
    sparse_labels,
)

__all__ = [
    "ACTIVATIONS",
    "adam_",
    "optimizer_update_",
    "rmsprop_",
    "sgd_",
    "binary_cross_entropy",
    "dense",
    "dropout",
    "seed_stream_next",
    "fused_mlp",
    "fused_mlp_supported",
    "batch_norm",
    "layer_norm",
    "rms_norm",
    "moments",
    "get_float32_matmul_precision",
    "set_float32_matmul_precision",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "known_label_range",
    "sparse_labels",
    "FLAT_GRAD_ATTR",
    "is_flat_grad_leaf",
    "mark_flat_grad",
    "BACKENDS",
    "HAS_TRITON",
    "INTERPRETING",
    "backend",
    "backend_scope",
    "get_backend",
    "set_backend",
    "use_triton",
    "use_triton_on",
]
