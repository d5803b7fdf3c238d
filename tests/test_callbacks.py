"""Keras' built-in callbacks against hand-worked Keras 3 semantics: scripted monitor values, files on disk."""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest

import tritonnn as keras
from tritonnn.callbacks import CallbackList

# ---- helpers ------------------------------------------------------------------------------------------------------


class FakeModel:
    """What a monitoring callback touches: ``stop_training``, weights, metrics and an optimizer."""

    def __init__(self, learning_rate: float = 1.0):
        self.stop_training = False
        self.weights = [np.zeros(2, dtype="float32")]
        self.metrics: list = []
        self.optimizer = keras.optimizers.SGD(learning_rate=learning_rate)

    def get_weights(self):
        return self.weights  # the live arrays, as a CPU model's get_weights may return them

    def set_weights(self, weights):
        for w, v in zip(self.weights, weights, strict=True):
            w[...] = v


def run_epochs(cb, values, monitor="val_loss", model=None):
    """Drive ``cb`` through epochs whose logs hold ``values``; returns the model and the epoch it stopped at."""
    model = model or FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    stopped = None
    for epoch, v in enumerate(values):
        model.weights[0][...] = epoch  # the weights of epoch e are all e
        cb.on_epoch_end(epoch, {monitor: v})
        if model.stop_training:
            stopped = epoch
            break
    cb.on_train_end()
    return model, stopped


def tiny_model(seed: int = 0, optimizer: object = "sgd") -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.layers.InputLayer(shape=(4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")
    return x, y


def scripted(key: str, values: list[float]) -> keras.callbacks.LambdaCallback:
    """A callback that writes ``values[epoch]`` into the epoch logs under ``key`` (before later callbacks read)."""

    def inject(epoch, logs):
        logs[key] = values[epoch]

    return keras.callbacks.LambdaCallback(on_epoch_end=inject)


# ---- EarlyStopping ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, values, stopped_at",
    [
        # best 0.9 at epoch 1, then two epochs without improvement
        (dict(patience=2), [1.0, 0.9, 0.95, 0.92, 0.91, 0.8], 3),
        # patience 0 stops at the first non-improvement, never at epoch 0
        (dict(patience=0), [1.0, 1.0], 1),
        # 0.97 is an improvement of 0.03 < min_delta
        (dict(patience=1, min_delta=0.05), [1.0, 0.97, 0.96], 1),
        # min_delta is taken as an absolute value
        (dict(patience=1, min_delta=-0.05), [1.0, 0.97, 0.96], 1),
        # always improving: never stops
        (dict(patience=1), [5.0, 4.0, 3.0, 2.0], None),
        # the first two epochs are a warm-up
        (dict(patience=0, start_from_epoch=2), [1.0, 2.0, 3.0, 4.0], 3),
        # never beating the baseline: the wait is not reset by improving on the previous value
        (dict(patience=2, baseline=0.5), [0.9, 0.95, 0.8], 1),
        # improvements below the baseline still skip the stop check (Keras 3's order)
        (dict(patience=1, baseline=0.5), [0.9, 0.8, 0.7, 0.7], 3),
        # beating the baseline resets the wait
        (dict(patience=2, baseline=0.5), [0.9, 0.4, 0.45, 0.45, 0.45], 3),
    ],
)
def test_early_stopping_scripted_val_loss(kwargs, values, stopped_at):
    model, stopped = run_epochs(keras.callbacks.EarlyStopping(**kwargs), values)
    assert stopped == stopped_at
    assert model.stop_training == (stopped_at is not None)


def test_early_stopping_auto_mode_maximizes_accuracy_and_rejects_unknown_names():
    _, stopped = run_epochs(
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=1), [0.5, 0.6, 0.55], "val_accuracy"
    )
    assert stopped == 2
    _, stopped = run_epochs(keras.callbacks.EarlyStopping(monitor="acc", mode="min", patience=0), [0.5, 0.6], "acc")
    assert stopped == 1
    with pytest.raises(ValueError, match="maximized or minimized"):
        run_epochs(keras.callbacks.EarlyStopping(monitor="val_widgets"), [1.0], "val_widgets")
    run_epochs(keras.callbacks.EarlyStopping(monitor="val_widgets", mode="max"), [1.0], "val_widgets")


def test_early_stopping_restores_best_weights_when_stopped_and_when_not():
    cb = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    model, stopped = run_epochs(cb, [1.0, 0.5, 0.7, 0.8, 0.1])
    assert stopped == 3 and cb.best_epoch == 1
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])
    # Keras 3 restores at the end of training even when patience was never exhausted.
    model, stopped = run_epochs(cb, [1.0, 0.5, 0.7])  # the same instance, reused
    assert stopped is None
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])
    model, _ = run_epochs(keras.callbacks.EarlyStopping(patience=2), [1.0, 0.5, 0.7, 0.8])
    np.testing.assert_array_equal(model.weights[0], [3.0, 3.0])


def test_early_stopping_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        keras.callbacks.EarlyStopping(mode="maximum")
    with pytest.raises(ValueError, match="patience"):
        keras.callbacks.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="baseline"):
        keras.callbacks.EarlyStopping(baseline="low")


def test_early_stopping_through_fit(data):
    x, y = data
    model = tiny_model()
    values = [1.0, 0.8, 0.9, 0.85, 0.7, 0.6]
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    snapshots = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(model.get_weights()))
    history = model.fit(
        x, y, epochs=6, batch_size=16, verbose=0, callbacks=[scripted("val_loss", values), record, early]
    )
    assert history.epoch == [0, 1, 2, 3]
    assert history.history["val_loss"] == values[:4]
    for got, want in zip(model.get_weights(), [w.copy() for w in snapshots[1]], strict=True):
        np.testing.assert_array_equal(got, want)


# ---- ModelCheckpoint ----------------------------------------------------------------------------------------------


def test_model_checkpoint_filenames_from_epoch_and_logs(tmp_path, data):
    x, y = data
    model = tiny_model()
    values = [0.9, 0.8, 0.85]
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "ck" / "{epoch:02d}-{val_loss:.2f}.keras"))
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[scripted("val_loss", values), ckpt])
    assert sorted(os.listdir(tmp_path / "ck")) == ["01-0.90.keras", "02-0.80.keras", "03-0.85.keras"]
    last = keras.saving.load_model(tmp_path / "ck" / "03-0.85.keras")
    np.testing.assert_array_equal(last.predict(x, verbose=0), model.predict(x, verbose=0))


def test_model_checkpoint_save_best_only_and_threshold(tmp_path, data):
    x, y = data
    model = tiny_model()
    values = [0.9, 0.95, 0.7, 0.7, 0.75]
    ckpt = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "{epoch}.weights.h5"), save_best_only=True, save_weights_only=True
    )
    model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[scripted("val_loss", values), ckpt])
    assert sorted(os.listdir(tmp_path)) == ["1.weights.h5", "3.weights.h5"]  # 0.7 again is no improvement
    ckpt = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "t{epoch}.keras"), monitor="val_accuracy", save_best_only=True, initial_value_threshold=0.5
    )
    acc = [0.4, 0.5, 0.6, 0.55]
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[scripted("val_accuracy", acc), ckpt])
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("t")) == ["t3.keras"]


def test_model_checkpoint_one_file_keeps_the_best_weights(tmp_path, data):
    x, y = data
    model = tiny_model()
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: snapshots.append([w.copy() for w in model.get_weights()])
    )
    path = tmp_path / "best.weights.safetensors"
    ckpt = keras.callbacks.ModelCheckpoint(str(path), save_best_only=True, save_weights_only=True)
    model.fit(
        x, y, epochs=4, batch_size=16, verbose=0, callbacks=[scripted("val_loss", [3.0, 1.0, 2.0, 1.5]), record, ckpt]
    )
    fresh = tiny_model(seed=1)
    keras.saving.load_weights(fresh, path)
    for got, want in zip(fresh.get_weights(), snapshots[1], strict=True):
        np.testing.assert_array_equal(got, want)


def test_model_checkpoint_batch_frequency(tmp_path, data):
    x, y = data
    model = tiny_model()
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}b{batch}.keras"), save_freq=3)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[ckpt])  # 4 batches an epoch, 8 in all
    assert sorted(os.listdir(tmp_path)) == ["e1b3.keras", "e2b2.keras"]


def test_model_checkpoint_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"\.keras"):
        keras.callbacks.ModelCheckpoint(str(tmp_path / "m.h5"))
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        keras.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_weights_only=True)
    with pytest.raises(ValueError, match="save_freq"):
        keras.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_freq="batch")
    with pytest.raises(ValueError, match="filepath"):
        keras.callbacks.ModelCheckpoint(None)


# ---- learning rates -----------------------------------------------------------------------------------------------


def test_reduce_lr_on_plateau_sequence():
    """factor 0.5, patience 2, cooldown 1, min_lr 0.1 on a flat val_loss, worked by hand from Keras' rules."""
    cb = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.1)
    model = FakeModel(learning_rate=1.0)
    cb.set_model(model)
    cb.on_train_begin()
    lrs, logged = [], []
    for epoch in range(11):
        logs = {"val_loss": 1.0}
        cb.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
        lrs.append(model.optimizer.learning_rate)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.1, 0.1, 0.1]
    assert logged == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.1, 0.1]  # the rate the epoch ran at


def test_reduce_lr_on_plateau_min_delta_and_accuracy_mode():
    cb = keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=1, min_delta=0.05)
    model = FakeModel(learning_rate=1.0)
    cb.set_model(model)
    cb.on_train_begin()
    lrs = []
    for epoch, acc in enumerate([0.5, 0.6, 0.62, 0.7]):  # 0.62 is within min_delta of 0.6
        cb.on_epoch_end(epoch, {"val_accuracy": acc})
        lrs.append(model.optimizer.learning_rate)
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1], rel=1e-12)
    with pytest.raises(ValueError, match="factor"):
        keras.callbacks.ReduceLROnPlateau(factor=1.0)


def test_learning_rate_scheduler_through_fit(data):
    x, y = data
    model = tiny_model(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    seen = []
    sched = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5)
    spy = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(model.optimizer.learning_rate))
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[sched, spy])
    assert seen == [0.1, 0.05, 0.025]
    assert history.history["learning_rate"] == [0.1, 0.05, 0.025]
    # the one-argument form, as in older Keras
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        verbose=0,
        callbacks=[keras.callbacks.LearningRateScheduler(lambda e: 0.01 * (e + 1))],
    )
    assert model.optimizer.learning_rate == 0.02
    with pytest.raises(ValueError, match="should be a float"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.LearningRateScheduler(lambda e, lr: "fast")])
    with pytest.raises(ValueError, match="schedule"):
        keras.callbacks.LearningRateScheduler(0.1)


# ---- TerminateOnNaN -----------------------------------------------------------------------------------------------


def test_terminate_on_nan_stops_after_the_bad_batch(data, capsys):
    x, y = data
    x = x.copy()
    x[9] = np.nan  # in the second batch of 8, with shuffle off
    model = tiny_model()
    batches = []
    count = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    history = model.fit(
        x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[count, keras.callbacks.TerminateOnNaN()]
    )
    assert batches == [0, 1]
    assert history.epoch == [0] and math.isnan(history.history["loss"][0])
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 1"):
        tiny_model().fit(
            x,
            y,
            epochs=1,
            batch_size=8,
            shuffle=False,
            verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN(raise_error=True)],
        )


# ---- CSVLogger ----------------------------------------------------------------------------------------------------


def test_csv_logger_rows_match_history_and_append(tmp_path, data):
    x, y = data
    path = tmp_path / "log.csv"
    model = tiny_model()
    history = model.fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        verbose=0,
        validation_data=(x[:8], y[:8]),
        callbacks=[keras.callbacks.CSVLogger(path)],
    )
    raw = path.read_bytes()
    assert raw.startswith(b"epoch,accuracy,loss,val_accuracy,val_loss\r\n")  # csv's excel dialect, as in Keras
    rows = list(csv.DictReader(path.open(newline="")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key, values in history.history.items():
        assert [float(r[key]) for r in rows] == values  # repr round trip: exact
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        verbose=0,
        validation_data=(x[:8], y[:8]),
        callbacks=[keras.callbacks.CSVLogger(path, append=True)],
    )
    lines = path.read_text().splitlines()
    assert len(lines) == 6 and lines.count(lines[0]) == 1
    keras.callbacks.CSVLogger(path, separator=";")  # a new logger without append overwrites on train begin
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[keras.callbacks.CSVLogger(path, separator=";")])
    assert path.read_text().splitlines()[0] == "epoch;accuracy;loss"


def test_csv_logger_fills_missing_keys_with_na(tmp_path):
    cb = keras.callbacks.CSVLogger(tmp_path / "log.csv")
    cb.set_model(FakeModel())
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.25})
    cb.on_epoch_end(1, {"loss": 0.125, "extra": [1, 2]})
    cb.on_train_end()
    assert (tmp_path / "log.csv").read_text().splitlines() == ["epoch,loss,val_loss", "0,0.5,0.25", "1,0.125,NA"]
    with pytest.raises(ValueError, match="separator"):
        keras.callbacks.CSVLogger(tmp_path / "x.csv", separator=", ")


# ---- LambdaCallback -----------------------------------------------------------------------------------------------


def test_lambda_callback_every_hook(data):
    x, y = data
    calls = []
    hooks = {}
    for hook in ("on_epoch_begin", "on_epoch_end", *keras.callbacks.BATCH_HOOKS):
        hooks[hook] = lambda i, logs, hook=hook: calls.append((hook, i))
    for hook in (
        "on_train_begin",
        "on_train_end",
        "on_test_begin",
        "on_test_end",
        "on_predict_begin",
        "on_predict_end",
    ):
        hooks[hook] = lambda logs, hook=hook: calls.append((hook, None))
    cb = keras.callbacks.LambdaCallback(**hooks)
    model = tiny_model()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[cb])
    model.evaluate(x, y, batch_size=32, verbose=0, callbacks=[cb])
    model.predict(x, batch_size=32, verbose=0, callbacks=[cb])
    assert calls == [
        ("on_train_begin", None),
        ("on_epoch_begin", 0),
        ("on_train_batch_begin", 0),
        ("on_train_batch_end", 0),
        ("on_epoch_end", 0),
        ("on_train_end", None),
        ("on_test_begin", None),
        ("on_test_batch_begin", 0),
        ("on_test_batch_end", 0),
        ("on_test_end", None),
        ("on_predict_begin", None),
        ("on_predict_batch_begin", 0),
        ("on_predict_batch_end", 0),
        ("on_predict_end", None),
    ]


def test_lambda_callback_with_epoch_hooks_asks_for_no_batch_logs():
    cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: None)
    assert isinstance(cb, keras.callbacks.LambdaCallback)
    cbs = CallbackList([cb], FakeModel())
    assert not any(cbs.wants(h) for h in keras.callbacks.BATCH_HOOKS)
    seen = []
    alias = keras.callbacks.LambdaCallback(on_batch_end=lambda b, logs: seen.append(sorted(logs)))
    assert CallbackList([alias], FakeModel()).wants("on_train_batch_end")
    tiny_model().fit(np.zeros((4, 4), "float32"), np.zeros(4, "int64"), batch_size=2, verbose=0, callbacks=[alias])
    assert seen == [["accuracy", "loss"]] * 2
    with pytest.raises(ValueError, match="on_epoch_ending"):
        keras.callbacks.LambdaCallback(on_epoch_ending=print)
    with pytest.raises(ValueError, match="on_epoch_end"):
        keras.callbacks.LambdaCallback(on_epoch_end="print")


# ---- BackupAndRestore ---------------------------------------------------------------------------------------------


class Crash(keras.callbacks.Callback):
    """Interrupts training at the end of an epoch, or of one batch of an epoch."""

    def __init__(self, epoch: int, batch: int | None = None):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt("simulated interruption")

    def on_epoch_end(self, epoch, logs=None):
        if self.batch is None and epoch == self.epoch:
            raise KeyboardInterrupt("simulated interruption")


def test_backup_and_restore_resumes_where_it_stopped(tmp_path, data):
    x, y = data
    # The reference: four uninterrupted epochs.
    ref = tiny_model(seed=0, optimizer="adam")
    ref.fit(x, y, epochs=4, batch_size=8, shuffle=False, verbose=0)
    # The same run, interrupted after epoch index 1 (after the backup of that epoch was written).
    backup_dir = tmp_path / "backup"
    model = tiny_model(seed=0, optimizer="adam")
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            x, y, epochs=4, batch_size=8, shuffle=False, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup_dir), Crash(1)],
        )  # fmt: skip
    assert os.listdir(backup_dir) == [keras.callbacks.BackupAndRestore.FILENAME]
    # A new process: a fresh model with other initial weights resumes from the backup.
    resumed = tiny_model(seed=5, optimizer="adam")
    history = resumed.fit(
        x, y, epochs=4, batch_size=8, shuffle=False, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup_dir)]
    )
    assert history.epoch == [2, 3]
    assert resumed.optimizer.iterations == ref.optimizer.iterations == 16
    for got, want in zip(resumed.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert not backup_dir.exists()  # deleted after a successful run


def test_backup_and_restore_batch_frequency_and_keep(tmp_path, data):
    from tritonnn import saving

    x, y = data
    backup_dir = tmp_path / "b"
    cb = keras.callbacks.BackupAndRestore(backup_dir, save_freq=3, delete_checkpoint=False)
    # 4 batches an epoch; backups after global batches 3 (epoch 0) and 6 (epoch 1); interrupted at global batch 8.
    with pytest.raises(KeyboardInterrupt):
        tiny_model().fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[cb, Crash(1, batch=3)])
    path = str(backup_dir / cb.FILENAME)
    extra = saving._read(path).json("extra", path)
    assert (extra["epoch"], extra["step"]) == (1, 2)  # global batch 6 is batch 2 of epoch 1
    assert set(extra["random"]) == {"torch", "shuffle", "dropout"}
    assert int(saving._read(path).tensors["optimizer/iterations"]) == 6
    fresh = tiny_model(seed=3)
    history = fresh.fit(
        x, y, epochs=3, batch_size=8, verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False)],
    )  # fmt: skip
    assert history.epoch == [1, 2]  # a mid-epoch backup resumes its epoch at the next batch
    assert fresh.optimizer.iterations == 6 + 2 + 4
    assert os.path.exists(path)
    with pytest.raises(ValueError, match="backup_dir"):
        keras.callbacks.BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        keras.callbacks.BackupAndRestore(backup_dir, save_freq=0)
