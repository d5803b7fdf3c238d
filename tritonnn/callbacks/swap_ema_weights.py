"""Keras' ``SwapEMAWeights``."""

from __future__ import annotations

from typing import Any

import torch

from .callback import Callback


class SwapEMAWeights(Callback):
    """Swap the model's weights with the optimizer's moving averages for evaluation (Keras' ``SwapEMAWeights``).

    For use with an optimizer made with ``use_ema=True``: before ``evaluate`` (fit's validation included) and
    ``predict`` the weights and the averages trade places, and after they trade back, so that the metrics are the
    averaged weights' while training goes on from the trained ones. The swap is in place (the averages live in the
    optimizer's flat ``average`` buffer); changing the weights or the averages in another callback meanwhile has
    undefined results, as in Keras.

    Args:
        swap_on_epoch: also swap at the end of every epoch and back at the start of the next, so that the
            callbacks after this one (``ModelCheckpoint``) see the averaged weights. After the last epoch the
            averages are set to the weights then in the model (the averaged ones), so that ``fit``'s closing
            ``finalize_variable_values`` leaves the averaged weights in the model. Defaults to False.

    A swap raises ``ValueError`` when the optimizer keeps no averages (``use_ema=False``, or not built yet).
    Unlike Keras 3.15, whose ``on_predict_end`` tests its flag the wrong way round and leaves the averaged weights
    in the model after ``predict``, the weights are swapped back after ``predict`` as after ``evaluate``
    (docs/keras_differences.md, ``callbacks.swap-ema-after-predict``).
    """

    def __init__(self, swap_on_epoch: bool = False) -> None:
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def _ema_optimizer(self) -> Any:
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's averages are its inner's
        if not hasattr(optimizer, "_model_variables_moving_average"):
            raise ValueError(
                "SwapEMAWeights must be used when `use_ema=True` is set on the optimizer. "
                f"Received: use_ema={getattr(optimizer, 'use_ema', False)}"
            )
        return optimizer

    @torch.no_grad()
    def _swap_variables(self) -> None:
        optimizer = self._ema_optimizer()
        for var, average in zip(optimizer.params, optimizer._model_variables_moving_average, strict=True):
            weights = var.detach().clone()
            var.copy_(average)
            average.copy_(weights)

    @torch.no_grad()
    def _finalize_ema_values(self) -> None:
        optimizer = self._ema_optimizer()
        for var, average in zip(optimizer.params, optimizer._model_variables_moving_average, strict=True):
            average.copy_(var)

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch and self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True
            # fit() ends by writing the averages into the weights (finalize_variable_values): after the last epoch
            # the averages hold the trained weights, so they take the averaged ones back from the model first.
            if epoch == self.params["epochs"] - 1:
                self._finalize_ema_values()

    def on_test_begin(self, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True

    def on_test_end(self, logs=None):
        if self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    def on_predict_begin(self, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True

    def on_predict_end(self, logs=None):
        if self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False


__all__ = ["SwapEMAWeights"]
