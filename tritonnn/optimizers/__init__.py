"""Keras 3 optimizers over flat fp32 buffers: ``Adam``, ``AdamW``, ``SGD``, ``RMSprop``, ``Adagrad``, ``Adamax``,
``Nadam``, ``Lion``, ``Adadelta``, ``Ftrl``, ``Lamb``, ``Adafactor``, ``Muon``, ``ScheduleFreeAdamW``; and
``MultiOptimizer`` (with ``OptimizerMap``), which gives each variable the optimizer a map of paths chooses.

An optimizer owns its model's trainable parameters: ``build(params)`` copies them into one contiguous fp32 buffer
and makes every parameter (and its ``.grad``) a view into it, with one more flat buffer per state (moments,
velocities). A step is then one kernel launch over every parameter (plus one reduction pass when clipping by
norm), and zeroing the gradients is one fill.

The update rules, argument names and defaults are Keras 3's, which differ from PyTorch's in places (epsilon
placement and default, where lr enters momentum, decoupled weight decay for every optimizer): see
``tritonnn/kernels/optim.py`` for the rules and the list of differences.

The step counter (``iterations``) and the learning rate live on the device, and a step only runs device ops (a
built-in schedule's rate is computed from the device counter, Adam's bias corrections inside the update kernel,
dynamic loss scaling's check, skip and scale update in ``LossScaleOptimizer``): no host sync, and nothing that a
CUDA graph would freeze, so ``step()`` can be captured and replayed (``Optimizer.capturable``; a user's
``LearningRateSchedule`` subclass or a callable rate is computed on the host and is the exception).

``Lamb`` and ``Adafactor`` need per-variable reductions (a trust ratio of two norms; factored second moments and
RMS clipping), which the element-wise fused kernel does not give: their steps are torch ops over each parameter's
view of the same flat buffers (``per_variable.py``), as free of host syncs and as capturable as the others; so are
``Muon``'s (its Newton-Schulz orthogonalization as batched matrix products over the 2-D variables of each shape)
and ``ScheduleFreeAdamW``'s (one pass of torch ops). A ``MultiOptimizer`` builds each sub-optimizer on the
variables routed to it, each with flat buffers of its own, and its step is theirs.
Every optimizer takes Keras' ``use_ema`` (a moving average of the weights in one more flat buffer, updated on the
device; ``fit()`` ends by writing it into the weights, and ``keras.callbacks.SwapEMAWeights`` swaps it in for
evaluation).

The package is laid out like Keras 3's: ``optimizer.py`` (the ``Optimizer`` base and the shared argument checks),
``sgd.py``, ``adam.py``, ``adamw.py``, ``rmsprop.py``, ``adagrad.py``, ``adamax.py``, ``nadam.py``, ``lion.py``,
``adadelta.py``, ``ftrl.py``, ``lamb.py``, ``adafactor.py``, ``muon.py``, ``schedule_free_adamw.py`` (with
``per_variable.py``, their step), ``loss_scale_optimizer.py``, ``multi_optimizer.py``, ``schedules.py``, and
``registry.py`` (``ALL_OBJECTS``, the name table, ``get``, ``serialize``, ``deserialize``).
"""

from . import schedules
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .ftrl import Ftrl
from .lamb import Lamb
from .lion import Lion
from .loss_scale_optimizer import LossScaleOptimizer
from .multi_optimizer import MultiOptimizer, OptimizerMap
from .muon import Muon
from .nadam import Nadam
from .optimizer import Optimizer
from .registry import ALL_OBJECTS as ALL_OBJECTS
from .registry import deserialize, get, serialize
from .rmsprop import RMSprop
from .schedule_free_adamw import ScheduleFreeAdamW
from .schedules import LearningRateSchedule as LearningRateSchedule
from .sgd import SGD

__all__ = [
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "Adamax",
    "AdamW",
    "Ftrl",
    "Lamb",
    "Lion",
    "LossScaleOptimizer",
    "MultiOptimizer",
    "Muon",
    "Nadam",
    "Optimizer",
    "OptimizerMap",
    "RMSprop",
    "SGD",
    "ScheduleFreeAdamW",
    "deserialize",
    "get",
    "schedules",
    "serialize",
]
