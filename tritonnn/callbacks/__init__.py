"""Keras 3 callbacks: the hooks, ``History`` and the progress bar.

Logs are read from the device only when something needs them: the progress bar redraws at most every
``interval`` seconds, and per-batch logs are built only for callbacks that override a per-batch hook.
"""

from .backup_and_restore import BackupAndRestore
from .callback import BATCH_HOOKS, Callback, CallbackList, History
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .lambda_callback import LambdaCallback
from .learning_rate_scheduler import LearningRateScheduler
from .model_checkpoint import ModelCheckpoint
from .progbar_logger import Progbar, ProgbarLogger
from .reduce_lr_on_plateau import ReduceLROnPlateau
from .remote_monitor import RemoteMonitor
from .swap_ema_weights import SwapEMAWeights
from .terminate_on_nan import TerminateOnNaN

__all__ = ["BATCH_HOOKS", "BackupAndRestore", "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History"]
__all__ += ["LambdaCallback", "LearningRateScheduler", "ModelCheckpoint", "Progbar", "ProgbarLogger"]
__all__ += ["ReduceLROnPlateau", "RemoteMonitor", "SwapEMAWeights", "TerminateOnNaN"]
