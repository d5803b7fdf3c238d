"""The same bad call under Keras and under tritonnn raises the same exception class (the messages may differ).

Each case is a small program taking the module; it must raise under both, and ``type(error)`` must be the same
class name (``ValueError`` for ``ValueError``...). A case where tritonnn refuses on purpose what Keras accepts or
reports by accident names its entry of ``docs/keras_differences.md``: then only tritonnn's side is checked (it must
still raise, as the list says).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tritonnn

from .differences import DELIBERATE, deliberate

X = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
Y = np.array([0, 1, 1, 0, 1, 0, 0, 1])


def mlp(K: Any) -> Any:
    return K.Sequential([K.Input((4,)), K.layers.Dense(3, activation="relu"), K.layers.Dense(2, activation="softmax")])


def compiled(K: Any, loss: str = "sparse_categorical_crossentropy", **kwargs: Any) -> Any:
    model = mlp(K)
    model.compile(optimizer="adam", loss=loss, **kwargs)
    return model


def two_inputs(K: Any) -> Any:
    a, b = K.Input((4,)), K.Input((4,))
    return K.Model([a, b], K.layers.Concatenate()([a, b]))


def _lr_on_schedule(K: Any) -> None:
    opt = K.optimizers.SGD(K.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))
    opt.learning_rate = 0.1


def _embedding_oob(K: Any) -> None:
    model = K.Sequential([K.Input((3,), dtype="int32"), K.layers.Embedding(5, 2)])
    model.predict(np.array([[1, 2, 7]], dtype="int32"), verbose=0)


def _fit_flat_metrics_two_outputs(K: Any) -> None:
    a = K.Input((4,))
    model = K.Model(a, [K.layers.Dense(2, name="p")(a), K.layers.Dense(1, name="q")(a)])
    model.compile("sgd", loss=["mse", "mse"], metrics=["mae"])
    model.fit(X, [np.zeros((8, 2)), np.zeros((8, 1))], verbose=0)


# name -> (program, the deliberate difference's id or None)
CASES: dict[str, tuple[Callable[[Any], Any], str | None]] = {
    "predict_wrong_input_width": (lambda K: mlp(K).predict(np.zeros((3, 5), "float32"), verbose=0), None),
    "call_wrong_input_width": (lambda K: mlp(K)(np.zeros((3, 5), "float32")), None),
    "fit_wrong_input_width": (lambda K: compiled(K).fit(np.zeros((8, 5), "float32"), Y, verbose=0), None),
    "predict_wrong_rank": (lambda K: mlp(K).predict(np.zeros((3,), "float32"), verbose=0), None),
    "fit_before_compile": (lambda K: mlp(K).fit(X, Y, verbose=0), None),
    "train_on_batch_before_compile": (lambda K: mlp(K).train_on_batch(X, Y), None),
    "evaluate_before_compile": (
        lambda K: mlp(K).evaluate(X, Y, verbose=0),
        deliberate("error.evaluate-before-compile"),
    ),
    "fit_x_y_length_mismatch": (lambda K: compiled(K).fit(X, Y[:5], verbose=0), None),
    "evaluate_x_y_length_mismatch": (lambda K: compiled(K).evaluate(X, Y[:5], verbose=0), None),
    "fit_sample_weight_length_mismatch": (
        lambda K: compiled(K).fit(X, Y, sample_weight=np.ones(5), verbose=0),
        None,
    ),
    "unknown_loss_string": (lambda K: compiled(K, loss="no_such_loss").fit(X, Y, verbose=0), None),
    "unknown_loss_string_at_compile": (
        lambda K: mlp(K).compile("adam", "no_such_loss"),
        deliberate("error.unknown-name-at-compile"),
    ),
    "unknown_metric_string": (lambda K: compiled(K, metrics=["no_such_metric"]).fit(X, Y, verbose=0), None),
    "unknown_metric_string_at_compile": (
        lambda K: mlp(K).compile("adam", "mse", metrics=["no_such_metric"]),
        deliberate("error.unknown-name-at-compile"),
    ),
    "unknown_optimizer_string": (lambda K: mlp(K).compile("no_such_optimizer", "mse"), None),
    "unknown_activation": (lambda K: K.layers.Dense(3, activation="no_such_activation"), None),
    "unknown_initializer": (lambda K: K.layers.Dense(3, kernel_initializer="no_such_initializer"), None),
    "unknown_layer_kwarg": (lambda K: K.layers.Dense(3, no_such_argument=1), None),
    "dense_units_zero": (lambda K: K.layers.Dense(0), None),
    "dense_units_negative": (lambda K: K.layers.Dense(-1), None),
    "dropout_rate_above_one": (lambda K: K.layers.Dropout(1.5), None),
    "input_negative_dim": (lambda K: K.Input((-2,)), None),
    "set_weights_wrong_count": (lambda K: mlp(K).set_weights([np.zeros((4, 3))]), None),
    "set_weights_wrong_shape": (
        lambda K: mlp(K).set_weights([np.zeros((4, 4)), np.zeros(3), np.zeros((3, 2)), np.zeros(2)]),
        None,
    ),
    "layer_set_weights_wrong_shape": (lambda K: mlp(K).layers[0].set_weights([np.zeros((4, 4)), np.zeros(3)]), None),
    "get_layer_unknown_name": (lambda K: mlp(K).get_layer("no_such_layer"), None),
    "get_layer_index_out_of_range": (lambda K: mlp(K).get_layer(index=9), None),
    "count_params_unbuilt": (lambda K: K.layers.Dense(2).count_params(), None),
    "sequential_pop_empty": (lambda K: K.Sequential().pop(), None),
    "concatenate_mismatched_shapes": (lambda K: K.layers.Concatenate()([K.Input((2, 3)), K.Input((4, 3))]), None),
    "add_mismatched_shapes": (lambda K: K.layers.Add()([K.Input((2,)), K.Input((3,))]), None),
    "reshape_wrong_size": (lambda K: K.layers.Reshape((5,))(K.Input((4,))), None),
    "model_inputs_not_keras_tensors": (lambda K: K.Model(inputs=[1], outputs=[2]), None),
    "predict_too_few_inputs": (lambda K: two_inputs(K).predict([X], verbose=0), None),
    "categorical_crossentropy_wrong_target_width": (
        lambda K: compiled(K, loss="categorical_crossentropy").fit(X, np.zeros((8, 3)), verbose=0),
        None,
    ),
    "metrics_flat_list_for_two_outputs": (_fit_flat_metrics_two_outputs, None),
    "metrics_not_a_list": (lambda K: mlp(K).compile("adam", "mse", metrics="mae"), None),
    "two_clipping_arguments": (lambda K: K.optimizers.SGD(clipnorm=1.0, clipvalue=1.0), None),
    "learning_rate_not_a_number": (lambda K: K.optimizers.Adam(learning_rate="fast"), None),
    "set_learning_rate_of_a_schedule": (_lr_on_schedule, None),
    "sgd_momentum_out_of_range": (lambda K: K.optimizers.SGD(momentum=1.5), None),
    "adam_beta_out_of_range": (
        lambda K: K.optimizers.Adam(beta_1=1.5),
        deliberate("error.optimizer-argument-checks"),
    ),
    "lion_beta_1_zero": (lambda K: K.optimizers.Lion(beta_1=0.0), None),
    "ftrl_positive_learning_rate_power": (lambda K: K.optimizers.Ftrl(learning_rate_power=0.5), None),
    "ftrl_negative_initial_accumulator": (lambda K: K.optimizers.Ftrl(initial_accumulator_value=-0.1), None),
    "ftrl_negative_l1": (lambda K: K.optimizers.Ftrl(l1_regularization_strength=-0.1), None),
    "adagrad_negative_initial_accumulator": (
        lambda K: K.optimizers.Adagrad(initial_accumulator_value=-0.1),
        deliberate("error.optimizer-argument-checks"),
    ),
    "adamax_beta_out_of_range": (
        lambda K: K.optimizers.Adamax(beta_2=1.5),
        deliberate("error.optimizer-argument-checks"),
    ),
    "nadam_negative_epsilon": (
        lambda K: K.optimizers.Nadam(epsilon=-1e-7),
        deliberate("error.optimizer-argument-checks"),
    ),
    "lion_beta_2_out_of_range": (
        lambda K: K.optimizers.Lion(beta_2=1.5),
        deliberate("error.optimizer-argument-checks"),
    ),
    "adadelta_rho_out_of_range": (
        lambda K: K.optimizers.Adadelta(rho=1.5),
        deliberate("error.optimizer-argument-checks"),
    ),
    "validation_data_one_element": (lambda K: compiled(K).fit(X, Y, validation_data=(X,), verbose=0), None),
    "validation_split_above_one": (
        lambda K: compiled(K).fit(X, Y, validation_split=1.5, verbose=0),
        deliberate("error.fit-argument-checks"),
    ),
    "batch_size_zero": (
        lambda K: compiled(K).fit(X, Y, batch_size=0, verbose=0),
        deliberate("error.fit-argument-checks"),
    ),
    "epochs_negative": (lambda K: compiled(K).fit(X, Y, epochs=-1, verbose=0), deliberate("error.fit-argument-checks")),
    "fit_without_y": (lambda K: compiled(K).fit(X, verbose=0), deliberate("error.fit-without-y")),
    "embedding_index_out_of_range": (_embedding_oob, deliberate("error.index-out-of-range")),
    "sparse_label_out_of_range": (
        lambda K: compiled(K).fit(X, Y + 5, verbose=0),
        deliberate("error.index-out-of-range"),
    ),
    "mse_target_shape_mismatch": (
        lambda K: compiled(K, loss="mse").fit(X, np.zeros((8, 3)), verbose=0),
        deliberate("error.loss-shape-mismatch"),
    ),
}


def outcome(program: Callable[[Any], Any], K: Any) -> str:
    """The class name of what ``program(K)`` raised, or ``"no error"``."""
    try:
        program(K)
    except Exception as e:  # noqa: BLE001  (the class is what is compared)
        return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return "no error"


@pytest.mark.parametrize("case", list(CASES))
def test_same_exception_class(keras_ref, case):
    program, difference = CASES[case]
    got = outcome(program, tritonnn)
    assert got != "no error", f"tritonnn accepted the bad call {case!r}"
    if difference is not None:  # documented: tritonnn raises on purpose where Keras does otherwise
        assert difference in DELIBERATE
        return
    ref = outcome(program, keras_ref)
    assert ref != "no error", f"Keras accepts {case!r}: the case is no bad call, fix the case"
    assert got.split(":")[0] == ref.split(":")[0], f"{case}:\n  Keras:    {ref}\n  tritonnn: {got}"
