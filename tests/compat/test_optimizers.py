"""Every optimizer tritonnn exports, configured as a user would, against Keras' on identical weights and batches.

Each case builds the same small MLP under both modules, gives both the same weights (``set_weights``), compiles
with the optimizer and takes three ``train_on_batch`` steps on the same batches; the weights after each step, the
loss each step returns, ``optimizer.iterations`` and ``optimizer.learning_rate`` must match. The first step is
held to fp32's one-step tolerance (rtol 1e-5, atol 1e-6); after the second and third the gradients come from
weights that already differ by rounding, which Adam's and RMSprop's normalisation by ``sqrt(v)`` can grow for the
smallest gradients, so the tolerance is loosened to rtol 1e-4, atol 1e-5 there. Lion's update is ``lr`` times a sign:
a sign that rounding could flip (a momentum interpolation within rounding of 0) would show as a difference of
``2 lr`` in one weight; the batches here have none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tritonnn

from .compare import ATOL, RTOL, assert_same, observe, to_numpy

RNG = np.random.default_rng(20240514)
X = RNG.normal(size=(3, 16, 6)).astype("float32")  # three batches of 16 samples, 6 features
Y = RNG.integers(0, 4, size=(3, 16))
W0 = [
    RNG.normal(scale=0.5, size=(6, 8)).astype("float32"),
    RNG.normal(scale=0.1, size=(8,)).astype("float32"),
    RNG.normal(scale=0.5, size=(8, 4)).astype("float32"),
    RNG.normal(scale=0.1, size=(4,)).astype("float32"),
]


def _schedule(K: Any, kind: str) -> Any:
    s = K.optimizers.schedules
    if kind == "exponential":
        return s.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.5)
    if kind == "exponential_staircase":
        return s.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5, staircase=True)
    if kind == "cosine":
        return s.CosineDecay(0.05, decay_steps=4)
    if kind == "cosine_warmup":
        return s.CosineDecay(0.0, decay_steps=4, warmup_target=0.05, warmup_steps=2)
    if kind == "piecewise":
        return s.PiecewiseConstantDecay([1, 2], [0.05, 0.02, 0.01])
    raise AssertionError(kind)


_FTRL_REG = {
    "l1_regularization_strength": 0.01,
    "l2_regularization_strength": 0.01,
    "l2_shrinkage_regularization_strength": 0.01,
    "beta": 0.1,
}
# (id, class name, kwargs); a kwarg value "schedule:<kind>" is a learning-rate schedule built under each module.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("sgd", "SGD", {}),
    ("sgd_lr", "SGD", {"learning_rate": 0.1}),
    ("sgd_momentum", "SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("sgd_nesterov", "SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("sgd_weight_decay", "SGD", {"learning_rate": 0.1, "momentum": 0.5, "weight_decay": 0.01}),
    ("sgd_clipnorm", "SGD", {"learning_rate": 0.1, "clipnorm": 0.1}),
    ("sgd_clipvalue", "SGD", {"learning_rate": 0.1, "clipvalue": 0.01}),
    ("sgd_global_clipnorm", "SGD", {"learning_rate": 0.1, "global_clipnorm": 0.1}),
    ("sgd_exponential", "SGD", {"learning_rate": "schedule:exponential"}),
    ("sgd_exponential_staircase", "SGD", {"learning_rate": "schedule:exponential_staircase", "momentum": 0.9}),
    ("sgd_cosine", "SGD", {"learning_rate": "schedule:cosine"}),
    ("sgd_cosine_warmup", "SGD", {"learning_rate": "schedule:cosine_warmup"}),
    ("sgd_piecewise", "SGD", {"learning_rate": "schedule:piecewise"}),
    ("adam", "Adam", {}),
    ("adam_lr", "Adam", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5}),
    ("adam_amsgrad", "Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("adam_weight_decay", "Adam", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("adam_clipnorm", "Adam", {"learning_rate": 0.01, "clipnorm": 0.1}),
    ("adam_clipvalue", "Adam", {"learning_rate": 0.01, "clipvalue": 0.01}),
    ("adam_global_clipnorm", "Adam", {"learning_rate": 0.01, "global_clipnorm": 0.1}),
    ("adam_exponential", "Adam", {"learning_rate": "schedule:exponential"}),
    ("adamw", "AdamW", {}),
    ("adamw_lr", "AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("adamw_amsgrad_clipnorm", "AdamW", {"learning_rate": 0.01, "amsgrad": True, "clipnorm": 0.1}),
    ("rmsprop", "RMSprop", {}),
    ("rmsprop_lr", "RMSprop", {"learning_rate": 0.01, "rho": 0.8, "epsilon": 1e-5}),
    ("rmsprop_momentum", "RMSprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("rmsprop_centered", "RMSprop", {"learning_rate": 0.01, "centered": True}),
    ("rmsprop_momentum_centered", "RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    ("rmsprop_weight_decay", "RMSprop", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("rmsprop_clipvalue", "RMSprop", {"learning_rate": 0.01, "clipvalue": 0.01}),
    ("rmsprop_global_clipnorm", "RMSprop", {"learning_rate": 0.01, "global_clipnorm": 0.1}),
    ("rmsprop_cosine", "RMSprop", {"learning_rate": "schedule:cosine", "momentum": 0.9}),
    ("adagrad", "Adagrad", {}),
    ("adagrad_lr", "Adagrad", {"learning_rate": 0.05, "initial_accumulator_value": 0.5, "epsilon": 1e-5}),
    ("adagrad_weight_decay_clipnorm", "Adagrad", {"learning_rate": 0.05, "weight_decay": 0.1, "clipnorm": 0.1}),
    ("adagrad_zero_accumulator", "Adagrad", {"learning_rate": 0.05, "initial_accumulator_value": 0.0}),
    ("adamax", "Adamax", {}),
    ("adamax_lr", "Adamax", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5}),
    ("adamax_global_clipnorm", "Adamax", {"learning_rate": 0.01, "global_clipnorm": 0.1, "weight_decay": 0.1}),
    ("nadam", "Nadam", {}),
    ("nadam_lr", "Nadam", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5}),
    ("nadam_clipvalue", "Nadam", {"learning_rate": 0.01, "clipvalue": 0.01}),
    ("nadam_exponential", "Nadam", {"learning_rate": "schedule:exponential", "weight_decay": 0.1}),
    ("lion", "Lion", {}),
    ("lion_lr", "Lion", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95}),
    ("lion_weight_decay_clipnorm", "Lion", {"learning_rate": 0.01, "weight_decay": 0.1, "clipnorm": 0.1}),
    ("adadelta", "Adadelta", {}),
    ("adadelta_lr", "Adadelta", {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6}),
    ("adadelta_clipvalue", "Adadelta", {"learning_rate": 1.0, "clipvalue": 0.01, "weight_decay": 0.01}),
    ("ftrl", "Ftrl", {}),
    ("ftrl_regularized", "Ftrl", {"learning_rate": 0.05, **_FTRL_REG}),
    ("ftrl_power", "Ftrl", {"learning_rate": 0.05, "learning_rate_power": -0.3, "initial_accumulator_value": 0.5}),
    ("ftrl_power_regularized_clipnorm", "Ftrl", {"learning_rate_power": -0.7, "global_clipnorm": 0.1, **_FTRL_REG}),
    ("ftrl_cosine", "Ftrl", {"learning_rate": "schedule:cosine", "clipvalue": 0.01}),
    ("lamb", "Lamb", {}),
    ("lamb_lr", "Lamb", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5}),
    ("lamb_weight_decay_clipnorm", "Lamb", {"learning_rate": 0.01, "weight_decay": 0.1, "clipnorm": 0.1}),
    ("lamb_exponential", "Lamb", {"learning_rate": "schedule:exponential", "global_clipnorm": 0.1}),
    ("adafactor", "Adafactor", {}),
    (
        "adafactor_lr",
        "Adafactor",
        {"learning_rate": 0.8, "beta_2_decay": -0.5, "epsilon_2": 0.05, "clip_threshold": 0.5},
    ),
    ("adafactor_not_relative", "Adafactor", {"learning_rate": 0.8, "relative_step": False, "clipvalue": 0.01}),
    ("adafactor_weight_decay", "Adafactor", {"learning_rate": 0.01, "weight_decay": 0.1, "clipnorm": 0.1}),
    ("adafactor_cosine", "Adafactor", {"learning_rate": "schedule:cosine", "epsilon_1": 1e-3}),
    ("muon", "Muon", {}),
    ("muon_lr", "Muon", {"learning_rate": 0.02, "momentum": 0.9, "adam_lr_ratio": 0.5, "weight_decay": 0.1}),
    ("muon_plain_clipnorm", "Muon", {"learning_rate": 0.02, "nesterov": False, "rms_rate": None, "clipnorm": 0.1}),
    ("muon_cosine", "Muon", {"learning_rate": "schedule:cosine", "exclude_layers": ["dense_1"]}),
    ("schedule_free_adamw", "ScheduleFreeAdamW", {}),
    ("schedule_free_adamw_lr", "ScheduleFreeAdamW", {"learning_rate": 0.02, "beta_1": 0.8, "weight_decay": 0.1}),
    ("schedule_free_adamw_warmup", "ScheduleFreeAdamW", {"learning_rate": 0.02, "warmup_steps": 2, "clipvalue": 0.01}),
    ("schedule_free_adamw_exponential", "ScheduleFreeAdamW", {"learning_rate": "schedule:exponential"}),
    # biases on SGD with momentum, kernels on Adam (OptimizerMap's default); learning_rate raises in both
    ("multi_optimizer", "MultiOptimizer", {"default": ("Adam", {"learning_rate": 0.01}),
                                           ".*/bias": ("SGD", {"learning_rate": 0.1, "momentum": 0.9})}),
    ("multi_optimizer_rules", "MultiOptimizer", {"default": ("Lamb", {"learning_rate": 0.01}),
                                                 ".*/dense/kernel": ("Muon", {"learning_rate": 0.02}),
                                                 ".*/bias": ("ScheduleFreeAdamW", {"learning_rate": 0.01})}),
]  # fmt: skip


def make_optimizer(K: Any, cls: str, kwargs: dict[str, Any]) -> Any:
    if cls == "MultiOptimizer":  # kwargs: {"default": (class, kwargs), pattern: (class, kwargs), ...}
        made = {key: make_optimizer(K, *spec) for key, spec in kwargs.items()}
        default = made.pop("default")
        return K.optimizers.MultiOptimizer(K.optimizers.OptimizerMap(default, made))
    args = {
        k: _schedule(K, v.split(":", 1)[1]) if isinstance(v, str) and v.startswith("schedule:") else v
        for k, v in kwargs.items()
    }
    return getattr(K.optimizers, cls)(**args)


def run_steps(K: Any, optimizer: Any, steps: int = 3) -> dict[str, Any]:
    """What a user sees over ``steps`` train_on_batch calls: weights and loss after each, iterations, the rate."""
    model = K.Sequential([K.Input((6,)), K.layers.Dense(8, activation="tanh"), K.layers.Dense(4, activation="softmax")])
    model.set_weights(W0)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    out: dict[str, Any] = {"steps": []}
    for i in range(steps):
        loss = model.train_on_batch(X[i], Y[i])
        out["steps"].append({"loss": float(loss), "weights": [np.asarray(w) for w in model.get_weights()]})
    out["iterations"] = int(to_numpy(K, model.optimizer.iterations))
    # a MultiOptimizer's raises AttributeError (in both)
    out["learning_rate"] = observe(lambda: float(to_numpy(K, model.optimizer.learning_rate)))
    return out


@pytest.mark.parametrize("cls,kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_weights_after_train_on_batch_steps(keras_ref, cls, kwargs):
    ref = run_steps(keras_ref, make_optimizer(keras_ref, cls, kwargs))
    got = run_steps(tritonnn, make_optimizer(tritonnn, cls, kwargs))
    assert_same(ref["steps"][0], got["steps"][0], rtol=RTOL, atol=ATOL, what="after one step")
    assert_same(ref["steps"][1:], got["steps"][1:], rtol=1e-4, atol=1e-5, what="after steps 2 and 3")
    assert_same(
        {"iterations": ref["iterations"], "learning_rate": ref["learning_rate"]},
        {"iterations": got["iterations"], "learning_rate": got["learning_rate"]},
    )


def test_every_exported_optimizer_is_covered():
    """A new optimizer in ``tritonnn.optimizers`` must get a case here (LossScaleOptimizer has its own test)."""
    exported = {
        name
        for name in tritonnn.optimizers.__all__
        if isinstance(getattr(tritonnn.optimizers, name), type)
        and issubclass(getattr(tritonnn.optimizers, name), tritonnn.optimizers.Optimizer)
        and name not in ("Optimizer", "LossScaleOptimizer")
    }
    assert exported == {c[1] for c in CASES}


def test_loss_scale_optimizer_in_float32(keras_ref):
    """``LossScaleOptimizer`` around SGD with momentum, without a mixed policy: the scaled loss is unscaled again."""

    def make(K):
        return K.optimizers.LossScaleOptimizer(K.optimizers.SGD(learning_rate=0.1, momentum=0.9))

    ref, got = run_steps(keras_ref, make(keras_ref)), run_steps(tritonnn, make(tritonnn))
    assert_same(ref["steps"][0], got["steps"][0], what="after one step")
    assert_same(ref["steps"][1:], got["steps"][1:], rtol=1e-4, atol=1e-5, what="after steps 2 and 3")
    assert_same(ref["iterations"], got["iterations"], what="iterations")
