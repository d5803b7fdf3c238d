"""Four programs in the style of keras.io's guides, each one function of the module it runs under.

``test_guides.py`` runs each with ``keras`` and with ``tritonnn`` and compares the dicts they return: what a user of
the guide looks at (shapes, dtypes, keys, counts, file names, and values). The programs were written for this suite
after what the guides exercise, not copied from them, and are adapted to it in three ways only:

- the data: the 8x8 digits bundled with tritonnn (``tritonnn.datasets.digits``, numpy arrays) and seeded random
  arrays, for both modules, instead of MNIST or a downloaded CSV;
- the initial weights: right after a model is built it is given weights drawn from a fixed numpy generator
  (``set_weights``), so that both frameworks start from the same point and their values can be compared;
- ``fit(..., shuffle=False)`` where values after training are compared, so both take the same batches (where a
  model trains with Dropout, whose masks differ by design, only what does not depend on them is returned).

Guides: "Training & evaluation with the built-in methods", "Writing your own callbacks", "Imbalanced
classification", "The Sequential model".
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

import tritonnn.datasets.digits

from .compare import Raised


def _digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    (x_train, y_train), (x_test, y_test) = tritonnn.datasets.digits.load_data()
    x_train = x_train.reshape(-1, 64).astype("float32") / 16.0
    x_test = x_test.reshape(-1, 64).astype("float32") / 16.0
    return (x_train, y_train.astype("int32")), (x_test, y_test.astype("int32"))


def _seed(model: Any, seed: int) -> None:
    """Give ``model`` weights from a fixed generator (the one adaptation besides the data)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.15, size=tuple(w.shape)).astype("float32") for w in model.get_weights()])


def _sections(seen: dict[str, Any]) -> Callable[[str], Callable[[Callable[[], Any]], None]]:
    """``@section("name")`` runs the function at once and keeps what it returns, or what it raised, under
    ``seen["name"]``: a part of a guide that fails is reported as such and the parts after it still run."""

    def section(name: str) -> Callable[[Callable[[], Any]], None]:
        def run(fn: Callable[[], Any]) -> None:
            try:
                seen[name] = fn()
            except Exception as e:  # noqa: BLE001  (what the user would see)
                seen[name] = Raised(e)

        return run

    return section


def _floats(history: Any) -> dict[str, list[float]]:
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def _shape(x: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in x.shape)


def _counts(model: Any) -> dict[str, str]:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return dict(re.findall(r"(Total|Trainable|Non-trainable|Optimizer) params: ([\d,]+)", "\n".join(lines)))


# ---------------------------------------------------------------------------------------------------------------------
# "Training & evaluation with the built-in methods"
# ---------------------------------------------------------------------------------------------------------------------
def training_and_evaluation(K: Any) -> dict[str, Any]:
    """compile/fit/evaluate/predict, validation data and split, custom losses and metric, sample and class
    weights, a two-input two-output model with loss dicts and loss_weights, and the usual callbacks."""
    (x_train, y_train), (x_test, y_test) = _digits()
    x_val, y_val = x_train[-128:], y_train[-128:]
    x_train, y_train = x_train[:512], y_train[:512]  # small enough for CI, large enough to learn something
    x_test, y_test = x_test[:200], y_test[:200]
    y_train_onehot = np.eye(10, dtype="float32")[y_train]
    seen: dict[str, Any] = {}
    section = _sections(seen)

    def make_model() -> Any:
        inputs = K.Input(shape=(64,), name="digits")
        h = K.layers.Dense(32, activation="relu", name="dense_1")(inputs)
        h = K.layers.Dense(32, activation="relu", name="dense_2")(h)
        outputs = K.layers.Dense(10, activation="softmax", name="predictions")(h)
        model = K.Model(inputs=inputs, outputs=outputs)
        _seed(model, 1)
        return model

    @section("end_to_end")
    def _():  # objects in compile, fit with validation data, evaluate, predict
        model = make_model()
        model.compile(
            optimizer=K.optimizers.RMSprop(learning_rate=1e-3),
            loss=K.losses.SparseCategoricalCrossentropy(),
            metrics=[K.metrics.SparseCategoricalAccuracy()],
        )
        history = model.fit(
            x_train, y_train, batch_size=128, epochs=2, validation_data=(x_val, y_val), shuffle=False, verbose=0
        )
        results = model.evaluate(x_test, y_test, batch_size=128, verbose=0)
        predictions = model.predict(x_test[:3], verbose=0)
        return {
            "history": _floats(history),
            "evaluate": [float(v) for v in results],
            "predict": {"shape": predictions.shape, "dtype": str(predictions.dtype), "values": predictions},
        }

    @section("strings_and_validation_split")
    def _():
        model = make_model()
        model.compile(
            optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"]
        )
        return _floats(model.fit(x_train, y_train, batch_size=128, validation_split=0.2, shuffle=False, verbose=0))

    @section("loss_function")
    def _():  # a loss function of one's own, on one-hot targets made with ops.one_hot
        def mean_squared_of_onehot(y_true: Any, y_pred: Any) -> Any:
            return K.ops.mean(K.ops.square(y_true - y_pred), axis=-1)

        model = make_model()
        model.compile(optimizer="adam", loss=mean_squared_of_onehot)
        targets = K.ops.one_hot(K.ops.convert_to_tensor(y_train), 10)
        return _floats(model.fit(x_train, targets, batch_size=128, shuffle=False, verbose=0))

    @section("loss_subclass")
    def _():  # a Loss subclass with a parameter: the MSE plus a pull of the predictions towards 0.5
        class MSEWithPull(K.losses.Loss):
            def __init__(self, pull: float = 0.1, name: str = "mse_with_pull"):
                super().__init__(name=name)
                self.pull = pull

            def call(self, y_true: Any, y_pred: Any) -> Any:
                mse = K.ops.mean(K.ops.square(y_true - y_pred), axis=-1)
                return mse + self.pull * K.ops.mean(K.ops.square(0.5 - y_pred), axis=-1)

        model = make_model()
        model.compile(optimizer="adam", loss=MSEWithPull(pull=0.2))
        return _floats(model.fit(x_train, y_train_onehot, batch_size=128, shuffle=False, verbose=0))

    @section("metric_subclass")
    def _():  # a Metric subclass with a state variable: how many samples were classified right (a sum)
        class CorrectCount(K.metrics.Metric):
            def __init__(self, name: str = "correct_count", **kwargs: Any):
                super().__init__(name=name, **kwargs)
                self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")

            def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
                labels = K.ops.cast(K.ops.reshape(y_true, (-1,)), "int32")
                guesses = K.ops.cast(K.ops.argmax(y_pred, axis=-1), "int32")
                hits = K.ops.cast(K.ops.equal(labels, guesses), "float32")
                if sample_weight is not None:
                    hits = hits * K.ops.cast(K.ops.reshape(sample_weight, (-1,)), "float32")
                self.correct.assign_add(K.ops.sum(hits))

            def result(self) -> Any:
                return self.correct

            def reset_state(self) -> None:
                self.correct.assign(0.0)

        model = make_model()
        model.compile(
            optimizer=K.optimizers.RMSprop(learning_rate=1e-3),
            loss=K.losses.SparseCategoricalCrossentropy(),
            metrics=[CorrectCount()],
        )
        history = model.fit(
            x_train, y_train, batch_size=128, epochs=2, validation_data=(x_val, y_val), shuffle=False, verbose=0
        )
        results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
        return {"history": _floats(history), "evaluate": {k: float(v) for k, v in results.items()}}

    @section("add_loss")
    def _():  # a layer that adds a loss of its own (an activity penalty), beside the compiled loss
        class PenalizeActivity(K.layers.Layer):
            def call(self, inputs: Any) -> Any:
                self.add_loss(1e-2 * K.ops.mean(K.ops.square(inputs)))
                return inputs

        inputs = K.Input(shape=(64,), name="digits")
        h = PenalizeActivity()(K.layers.Dense(32, activation="relu")(inputs))
        model = K.Model(inputs, K.layers.Dense(10, activation="softmax")(h))
        _seed(model, 2)
        model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
        return _floats(model.fit(x_train, y_train, batch_size=128, shuffle=False, verbose=0))

    @section("class_weight")
    def _():
        class_weight = {c: 1.0 for c in range(10)}
        class_weight[5] = 2.0
        model = make_model()
        model.compile(
            optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"]
        )
        return _floats(model.fit(x_train, y_train, class_weight=class_weight, batch_size=128, shuffle=False, verbose=0))

    @section("sample_weight")
    def _():  # the same emphasis as class_weight, given per sample
        sample_weight = np.ones(len(y_train), dtype="float32")
        sample_weight[y_train == 5] = 2.0
        model = make_model()
        model.compile(
            optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"]
        )
        return _floats(
            model.fit(x_train, y_train, sample_weight=sample_weight, batch_size=128, shuffle=False, verbose=0)
        )

    @section("multi_input_multi_output")
    def _():  # two inputs, two named outputs; losses, metrics and loss weights by output name, then as lists
        meta_train = np.random.default_rng(3).normal(size=(len(x_train), 8)).astype("float32")
        score_train = x_train.mean(axis=1, keepdims=True)

        def make_two_io() -> Any:
            features, meta = K.Input(shape=(64,), name="features"), K.Input(shape=(8,), name="meta")
            h = K.layers.concatenate(
                [K.layers.Dense(32, activation="relu")(features), K.layers.Dense(8, activation="relu")(meta)]
            )
            score = K.layers.Dense(1, name="score_output")(h)
            cls = K.layers.Dense(10, activation="softmax", name="class_output")(h)
            model = K.Model(inputs=[features, meta], outputs=[score, cls])
            _seed(model, 4)
            return model

        model = make_two_io()
        model.compile(
            optimizer=K.optimizers.RMSprop(1e-3),
            loss={"score_output": K.losses.MeanSquaredError(), "class_output": K.losses.CategoricalCrossentropy()},
            metrics={
                "score_output": [K.metrics.MeanAbsoluteError()],
                "class_output": [K.metrics.CategoricalAccuracy()],
            },
            loss_weights={"score_output": 2.0, "class_output": 1.0},
        )
        history = model.fit(
            {"features": x_train, "meta": meta_train},
            {"score_output": score_train, "class_output": y_train_onehot},
            batch_size=128,
            epochs=2,
            shuffle=False,
            verbose=0,
        )
        out = model.predict({"features": x_test[:4], "meta": np.zeros((4, 8), "float32")}, verbose=0)
        seen_here = {
            "output_names": list(model.output_names),
            "summary": _counts(model),
            "history": _floats(history),
            "predict": {"type": type(out).__name__, "shapes": [o.shape for o in out], "values": list(out)},
        }
        model = make_two_io()  # the same model, losses as a list in the outputs' order
        model.compile(
            optimizer=K.optimizers.RMSprop(1e-3),
            loss=[K.losses.MeanSquaredError(), K.losses.CategoricalCrossentropy()],
            loss_weights=[2.0, 1.0],
        )
        history = model.fit(
            [x_train, meta_train], [score_train, y_train_onehot], batch_size=128, shuffle=False, verbose=0
        )
        seen_here["as_lists.history"] = _floats(history)
        return seen_here

    @section("callbacks")
    def _():  # stop when val_loss stops improving, keep the best model, lower the rate on a plateau
        model = make_model()
        model.compile(
            optimizer=K.optimizers.RMSprop(learning_rate=1e-2),
            loss="sparse_categorical_crossentropy",
            metrics=["sparse_categorical_accuracy"],
        )
        with tempfile.TemporaryDirectory() as tmp:
            callbacks = [
                K.callbacks.EarlyStopping(monitor="val_loss", min_delta=2e-2, patience=1, verbose=0),
                K.callbacks.ModelCheckpoint(
                    filepath=os.path.join(tmp, "model_{epoch}.keras"),
                    save_best_only=True,
                    monitor="val_loss",
                    verbose=0,
                ),
                K.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-4, verbose=0),
            ]
            history = model.fit(
                x_train,
                y_train,
                epochs=12,
                batch_size=128,
                validation_data=(x_val, y_val),
                callbacks=callbacks,
                shuffle=False,
                verbose=0,
            )
            files = sorted(os.listdir(tmp), key=lambda f: int(re.sub(r"\D", "", f) or 0))
            best = K.models.load_model(os.path.join(tmp, files[-1]))
            return {
                "history": _floats(history),
                "epochs_run": len(history.history["loss"]),
                "stopped_epoch": int(callbacks[0].stopped_epoch),
                "final_learning_rate": float(np.asarray(K.ops.convert_to_numpy(model.optimizer.learning_rate))),
                "checkpoints": files,
                "best_model_evaluate": [float(v) for v in best.evaluate(x_test, y_test, verbose=0)],
            }

    return seen


# ---------------------------------------------------------------------------------------------------------------------
# "Writing your own callbacks"
# ---------------------------------------------------------------------------------------------------------------------
HOOKS = [
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
    "on_predict_begin", "on_predict_end", "on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
    "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
]  # fmt: skip


def writing_your_own_callbacks(K: Any) -> dict[str, Any]:
    """A callback recording every hook's ``logs.keys()``; one reading ``logs["loss"]``; early stopping at the
    minimum loss through ``self.model.stop_training``; a schedule setting ``self.model.optimizer.learning_rate``."""
    (x_train, y_train), (x_test, y_test) = _digits()
    y_train, y_test = y_train.astype("float32"), y_test.astype("float32")  # regress the digit's value
    seen: dict[str, Any] = {}
    section = _sections(seen)

    def get_model(learning_rate: float = 0.1) -> Any:
        model = K.Sequential([K.Input((64,)), K.layers.Dense(1)])
        _seed(model, 5)
        model.compile(
            optimizer=K.optimizers.RMSprop(learning_rate=learning_rate),
            loss="mean_squared_error",
            metrics=["mean_absolute_error"],
        )
        return model

    class CustomCallback(K.callbacks.Callback):
        """Keeps, for every hook called, its name and the keys of the logs it got."""

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[str, Any]] = []

    def keep_keys(hook: str) -> Callable[..., None]:
        def on_hook(self: Any, *args: Any, logs: Any = None) -> None:
            if args and not isinstance(args[-1], int):  # logs given positionally
                logs = args[-1]
            self.calls.append((hook, None if logs is None else sorted(logs.keys())))

        return on_hook

    for hook in HOOKS:
        setattr(CustomCallback, hook, keep_keys(hook))

    @section("every_hook")
    def _():
        model = get_model()
        calls = {}
        cb = CustomCallback()
        model.fit(
            x_train[:128], y_train[:128], batch_size=64, epochs=1, validation_split=0.5, callbacks=[cb], verbose=0
        )
        calls["fit"] = cb.calls
        cb = CustomCallback()
        model.evaluate(x_test[:64], y_test[:64], batch_size=32, callbacks=[cb], verbose=0)
        calls["evaluate"] = cb.calls
        cb = CustomCallback()
        model.predict(x_test[:64], batch_size=32, callbacks=[cb], verbose=0)
        calls["predict"] = cb.calls
        return calls

    @section("loss_and_error_printing")
    def _():
        class LossAndErrorPrintingCallback(K.callbacks.Callback):
            """Prints the running loss after each batch and the epoch's loss and error (kept in ``lines``)."""

            def __init__(self) -> None:
                super().__init__()
                self.lines: list[str] = []
                self.values: list[float] = []

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                self.lines.append(f"Up to batch {batch}, the average loss is")
                self.values.append(float(logs["loss"]))

            def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
                self.lines.append(f"Up to batch {batch}, the average test loss is")
                self.values.append(float(logs["loss"]))

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                self.lines.append(f"The average loss for epoch {epoch} is ... and mean absolute error is")
                self.values += [float(logs["loss"]), float(logs["mean_absolute_error"])]

        model = get_model()
        printer = LossAndErrorPrintingCallback()
        model.fit(x_train[:256], y_train[:256], batch_size=64, epochs=2, shuffle=False, verbose=0, callbacks=[printer])
        model.evaluate(x_test[:128], y_test[:128], batch_size=64, verbose=0, callbacks=[printer])
        return {"lines": printer.lines, "values": printer.values}

    @section("early_stopping_at_min_loss")
    def _():
        class EarlyStoppingAtMinLoss(K.callbacks.Callback):
            """Stops when the loss is at its minimum (after ``patience`` epochs without improvement) and goes back
            to the best weights."""

            def __init__(self, patience: int = 0) -> None:
                super().__init__()
                self.patience = patience
                self.best_weights: Any = None

            def on_train_begin(self, logs: Any = None) -> None:
                self.wait, self.stopped_epoch, self.best = 0, 0, np.inf

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                current = logs.get("loss")
                if np.less(current, self.best):
                    self.best, self.wait = current, 0
                    self.best_weights = self.model.get_weights()
                else:
                    self.wait += 1
                    if self.wait >= self.patience:
                        self.stopped_epoch = epoch
                        self.model.stop_training = True
                        self.model.set_weights(self.best_weights)

        model = get_model(learning_rate=0.5)
        stopper = EarlyStoppingAtMinLoss()
        history = model.fit(
            x_train[:256], y_train[:256], batch_size=64, epochs=30, shuffle=False, verbose=0, callbacks=[stopper]
        )
        return {
            "history": _floats(history),
            "stopped_epoch": stopper.stopped_epoch,
            "loss_with_restored_weights": float(model.evaluate(x_train[:256], y_train[:256], verbose=0)[0]),
        }

    @section("learning_rate_scheduler")
    def _():
        schedule = [(3, 0.05), (6, 0.01), (9, 0.005), (12, 0.001)]

        def lr_schedule(epoch: int, lr: float) -> float:
            if epoch < schedule[0][0] or epoch > schedule[-1][0]:
                return lr
            for start, rate in schedule:
                if epoch == start:
                    return rate
            return lr

        class CustomLearningRateScheduler(K.callbacks.Callback):
            def __init__(self, fn: Any) -> None:
                super().__init__()
                self.fn = fn
                self.rates: list[float] = []

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                if not hasattr(self.model.optimizer, "learning_rate"):
                    raise ValueError('Optimizer must have a "learning_rate" attribute.')
                lr = float(np.array(self.model.optimizer.learning_rate))
                scheduled = self.fn(epoch, lr)
                self.model.optimizer.learning_rate = scheduled
                self.rates.append(scheduled)

        model = get_model()
        scheduler = CustomLearningRateScheduler(lr_schedule)
        history = model.fit(
            x_train[:256], y_train[:256], batch_size=64, epochs=14, shuffle=False, verbose=0, callbacks=[scheduler]
        )
        return {
            "rates": scheduler.rates,
            "final_rate": float(np.array(model.optimizer.learning_rate)),
            "history": _floats(history),
        }

    return seen


# ---------------------------------------------------------------------------------------------------------------------
# "Imbalanced classification"
# ---------------------------------------------------------------------------------------------------------------------
def imbalanced_classification(K: Any) -> dict[str, Any]:
    """A rare positive class ("is it a zero?", about 10%), float32 labels of shape (n,), the confusion counts and
    precision/recall as metrics, class weights from the class frequencies, a checkpoint per epoch."""
    (x_train, digit_train), (x_test, digit_test) = _digits()
    y_train = (digit_train == 0).astype("float32")
    y_test = (digit_test == 0).astype("float32")
    x_val, y_val = x_train[-256:], y_train[-256:]
    x_train, y_train = x_train[:768], y_train[:768]
    seen: dict[str, Any] = {}
    section = _sections(seen)

    counts = np.bincount(y_train.astype("int64"))
    seen["counts"] = [int(c) for c in counts]
    class_weight = {0: 1.0 / counts[0], 1: 1.0 / counts[1]}
    model = K.Sequential(
        [
            K.Input(shape=(x_train.shape[-1],)),
            K.layers.Dense(64, activation="relu"),
            K.layers.Dense(64, activation="relu"),
            K.layers.Dropout(0.3),
            K.layers.Dense(64, activation="relu"),
            K.layers.Dropout(0.3),
            K.layers.Dense(1, activation="sigmoid"),
        ]
    )
    _seed(model, 6)
    seen["summary"] = _counts(model)

    @section("compile_and_evaluate_before_training")
    def _():  # before training (Dropout is off in evaluate) every value is comparable
        metrics = [
            K.metrics.FalseNegatives(name="fn"),
            K.metrics.FalsePositives(name="fp"),
            K.metrics.TrueNegatives(name="tn"),
            K.metrics.TruePositives(name="tp"),
            K.metrics.Precision(name="precision"),
            K.metrics.Recall(name="recall"),
        ]
        model.compile(optimizer=K.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=metrics)
        results = model.evaluate(x_val, y_val, batch_size=128, verbose=0, return_dict=True)
        return {k: float(v) for k, v in results.items()}

    @section("train")
    def _():
        with tempfile.TemporaryDirectory() as tmp:
            callbacks = [K.callbacks.ModelCheckpoint(os.path.join(tmp, "rare_model_at_epoch_{epoch}.keras"))]
            history = model.fit(
                x_train,
                y_train,
                batch_size=256,
                epochs=2,
                verbose=0,
                callbacks=callbacks,
                validation_data=(x_val, y_val),
                class_weight=class_weight,
            )
            checkpoints = sorted(os.listdir(tmp))
        # Training draws Dropout masks, so the counts differ; what they add up to does not.
        last = {k: v[-1] for k, v in history.history.items()}
        after = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
        probabilities = model.predict(x_test, verbose=0)
        return {
            "checkpoints": checkpoints,
            "history.keys": sorted(history.history),
            "history.lengths": {k: len(v) for k, v in history.history.items()},
            "val_counts_total": int(round(last["val_tp"] + last["val_fp"] + last["val_tn"] + last["val_fn"])),
            "val_positives": int(round(last["val_tp"] + last["val_fn"])),
            "train_counts_total": int(round(last["tp"] + last["fp"] + last["tn"] + last["fn"])),
            "evaluate_after.keys": sorted(after),
            "test_positives": int(round(after["tp"] + after["fn"])),
            "predict": {"shape": probabilities.shape, "dtype": str(probabilities.dtype)},
            "predict_in_0_1": bool(((probabilities >= 0) & (probabilities <= 1)).all()),
        }

    return seen


# ---------------------------------------------------------------------------------------------------------------------
# "The Sequential model"
# ---------------------------------------------------------------------------------------------------------------------
def sequential_model(K: Any) -> dict[str, Any]:
    """Building with a list or add(), pop(), input shapes, summary, weights before and after building, feature
    extraction with a Functional model over ``model.inputs`` and ``layer.output``, and transfer learning by
    freezing layers (``layer.trainable = False``, and a frozen inner Sequential)."""
    (x_train, y_train), (x_test, _) = _digits()
    x_train, y_train = x_train[:384], y_train[:384]
    seen: dict[str, Any] = {}
    section = _sections(seen)

    @section("from_a_list")
    def _():
        model = K.Sequential(
            [
                K.layers.Dense(2, activation="relu", name="layer1"),
                K.layers.Dense(3, activation="relu", name="layer2"),
                K.layers.Dense(4, name="layer3"),
            ]
        )
        y = model(K.ops.ones((3, 3)))
        return {
            "output_shape": _shape(y),
            "layer_names": [layer.name for layer in model.layers],
            "weight_shapes": [[_shape(w) for w in layer.weights] for layer in model.layers],
        }

    @section("add_and_pop")
    def _():
        model = K.Sequential(name="my_sequential")
        model.add(K.layers.Dense(2, activation="relu"))
        model.add(K.layers.Dense(3, activation="relu"))
        model.add(K.layers.Dense(4))
        seen_here = {"name": model.name, "n_layers": len(model.layers)}
        model.pop()
        seen_here["n_layers_after_pop"] = len(model.layers)
        return seen_here

    @section("weights_appear_when_built")
    def _():
        layer = K.layers.Dense(3)
        seen_here = {"layer_before": len(layer.weights)}
        layer(K.ops.ones((1, 4)))
        seen_here["layer_after"] = [_shape(w) for w in layer.weights]
        model = K.Sequential([K.layers.Dense(2, activation="relu"), K.layers.Dense(3, activation="relu")])
        seen_here["model_before"] = len(model.weights)
        model(K.ops.ones((1, 4)))
        seen_here["model_after"] = len(model.weights)
        seen_here["summary"] = _counts(model)
        return seen_here

    @section("input_first")
    def _():
        model = K.Sequential()
        model.add(K.Input(shape=(4,)))
        model.add(K.layers.Dense(2, activation="relu"))
        return {"n_layers": len(model.layers), "summary": _counts(model)}

    @section("input_shape_argument")
    def _():
        model = K.Sequential([K.layers.Dense(2, activation="relu", input_shape=(4,))])
        return {"n_layers": len(model.layers), "summary": _counts(model)}

    @section("add_then_summary")
    def _():  # the debugging workflow: add layers one by one, looking at the summary after each
        model = K.Sequential()
        model.add(K.Input(shape=(64,)))
        summaries = []
        for units in (32, 32, 16):
            model.add(K.layers.Dense(units, activation="relu"))
            summaries.append(_counts(model))
        model.add(K.layers.Dense(10))
        summaries.append(_counts(model))
        return summaries

    @section("feature_extraction")
    def _():  # every layer's output, then one layer's by name
        initial_model = K.Sequential(
            [
                K.Input(shape=(64,)),
                K.layers.Dense(32, activation="relu"),
                K.layers.Dense(32, activation="relu", name="my_intermediate_layer"),
                K.layers.Dense(16, activation="relu"),
            ]
        )
        _seed(initial_model, 7)
        extractor = K.Model(inputs=initial_model.inputs, outputs=[layer.output for layer in initial_model.layers])
        x = K.ops.convert_to_tensor(x_test[:5])
        features = extractor(x)
        one = K.Model(inputs=initial_model.inputs, outputs=initial_model.get_layer(name="my_intermediate_layer").output)
        return {
            "shapes": [_shape(f) for f in features],
            "values": [np.asarray(K.ops.convert_to_numpy(f)) for f in features],
            "one_layer": np.asarray(K.ops.convert_to_numpy(one(x))),
        }

    @section("transfer_learning_freeze_layers")
    def _():  # freeze every layer but the last, train, check what moved
        model = K.Sequential(
            [
                K.Input(shape=(64,)),
                K.layers.Dense(32, activation="relu"),
                K.layers.Dense(32, activation="relu"),
                K.layers.Dense(10),
            ]
        )
        _seed(model, 8)
        for layer in model.layers[:-1]:
            layer.trainable = False
        model.compile(
            optimizer=K.optimizers.Adam(1e-3),
            loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        before = model.get_weights()
        history = model.fit(x_train, y_train, batch_size=128, epochs=2, shuffle=False, verbose=0)
        return {
            "trainable_weights": len(model.trainable_weights),
            "non_trainable_weights": len(model.non_trainable_weights),
            "unchanged": [bool(np.array_equal(a, b)) for a, b in zip(before, model.get_weights(), strict=True)],
            "summary": _counts(model),
            "history": _floats(history),
        }

    @section("transfer_learning_frozen_base")
    def _():  # a frozen base model inside a Sequential, a new head on top
        base = K.Sequential([K.Input(shape=(64,)), K.layers.Dense(32, activation="relu")])
        base.trainable = False
        model = K.Sequential([base, K.layers.Dense(10)])
        _seed(model, 9)
        model.compile(optimizer="adam", loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
        before = model.get_weights()
        history = model.fit(x_train, y_train, batch_size=128, epochs=1, shuffle=False, verbose=0)
        return {
            "summary": _counts(model),
            "trainable_weights": len(model.trainable_weights),
            "unchanged": [bool(np.array_equal(a, b)) for a, b in zip(before, model.get_weights(), strict=True)],
            "history": _floats(history),
        }

    return seen


PROGRAMS = {
    "training_and_evaluation": training_and_evaluation,
    "writing_your_own_callbacks": writing_your_own_callbacks,
    "imbalanced_classification": imbalanced_classification,
    "sequential_model": sequential_model,
}
