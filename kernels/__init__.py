"""tritonnn.kernels: the engine.

Every op is exposed once here. Each dispatches to its Triton kernel for CUDA tensors and to its PyTorch
implementation otherwise; ``TRITONNN_BACKEND=auto|triton|torch`` or :func:`set_backend` overrides.
"""

from ._backend import BACKENDS, backend, backend_scope, get_backend, set_backend, use_triton
from ._triton import HAS_TRITON, INTERPRETING
from .activations import ACTIVATIONS
from .dense import dense
from .dropout import dropout
from .norm import batch_norm, layer_norm, moments
from .optim import adam_, optimizer_update_, rmsprop_, sgd_
from .precision import get_float32_matmul_precision, set_float32_matmul_precision
from .xent import binary_cross_entropy, log_softmax, softmax, softmax_cross_entropy

__all__ = [
    "ACTIVATIONS",
    "adam_",
    "optimizer_update_",
    "rmsprop_",
    "sgd_",
    "binary_cross_entropy",
    "dense",
    "dropout",
    "batch_norm",
    "layer_norm",
    "moments",
    "get_float32_matmul_precision",
    "set_float32_matmul_precision",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "BACKENDS",
    "HAS_TRITON",
    "INTERPRETING",
    "backend",
    "backend_scope",
    "get_backend",
    "set_backend",
    "use_triton",
]
