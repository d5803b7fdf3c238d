"""Data-parallel training over ``torch.distributed`` (Keras 3's ``keras.distribution`` spelling).

Launch the same script once per device with ``torchrun --nproc_per_node=8 train.py``; ``fit`` and ``evaluate``
then train and evaluate data-parallel. The distribution is set explicitly::

    tritonnn.distribution.set_distribution(tritonnn.distribution.DataParallel())

or automatically, when ``WORLD_SIZE > 1`` is in the environment (torchrun sets it) and no distribution was set.
The process group is created from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) with NCCL for CUDA tensors and gloo for CPU tensors, or an already initialized one is used.

How ``fit`` runs under ``DataParallel``:

* Every process holds the whole data set (the same arrays). At the start of ``fit`` the weights, the optimizer
  state, fit's shuffle generator and torch's global generator are broadcast from rank 0, so every rank starts from
  rank 0's model and draws the same order each epoch (``tritonnn.utils.set_random_seed`` on rank 0 makes a run
  reproducible).
* ``batch_size`` is the global batch. Each global batch is cut into contiguous slices, one per rank, as evenly as
  possible: the first ``batch_size % world_size`` ranks take one sample more. The last, smaller batch of an epoch
  is split the same way, so some ranks may get no sample; they still take part in every collective.
* Each rank scales its gradient by ``local_samples / global_samples`` and the flat gradient buffer is summed over
  the ranks before the optimizer's single fused step: in one all-reduce after the backward pass, or, for buffers
  over 25 MB, in buckets of about 25 MB, each all-reduced asynchronously as soon as the backward pass has produced
  it (overlapping the rest of the backward). For losses reduced with ``"sum_over_batch_size"`` (Keras' default)
  this is exactly the gradient of the single-process loss on the global batch, sample weights and regularization
  losses included. Losses with another reduction are refused.
* A ``MultiOptimizer`` (also wrapped in a ``LossScaleOptimizer``, as ``compile`` does under
  ``"mixed_float16"``) keeps one flat buffer per sub-optimizer: each sub-optimizer's parameter buffer and state
  are broadcast, and each gradient buffer is all-reduced (one all-reduce per buffer), or, when they hold over
  25 MB together, each is cut into buckets of its own (a bucket never spans two buffers) and all the buckets are
  launched in one order, the same on every rank: by their last parameter in the model's order, the last layers
  first, as the backward pass produces them. The captured step (a CUDA graph) holds these all-reduces as it
  holds the single buffer's.
* Metric and loss states are summed over the ranks at the end of each epoch and of each evaluation, so the epoch
  logs (and ``History``, ``EarlyStopping``, ``ReduceLROnPlateau``...) are those of the whole data set, the same on
  every rank. The logs passed to per-batch hooks mid-epoch are the rank's own.
* Only rank 0 draws the progress bar and writes files: ``ModelCheckpoint``, ``CSVLogger`` and
  ``BackupAndRestore`` write from rank 0 alone, and ``model.save`` / ``save_weights`` do nothing on other ranks
  (they do not wait: to read the file from every rank right after, call :func:`barrier` first).
* ``stop_training`` is agreed at the end of each epoch (and after each batch when a callback has a per-batch
  hook): training stops on every rank when it stops on one.

Validation data and ``evaluate`` are split across the ranks the same way (no shuffle). ``predict`` runs the whole
input on each rank. A generator or a ``DataLoader`` must yield the same global batches on every process (same
data, same order, e.g. the same seed); each process reads the whole batch and keeps its slice, and before each step
the processes check, with one small all-gather, that all of them have a batch of the same size.
"""

from .._process import barrier
from .data_parallel import DataParallel, distribution, initialize, list_devices, set_distribution

__all__ = ["DataParallel", "barrier", "distribution", "initialize", "list_devices", "set_distribution"]
