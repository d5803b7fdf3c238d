"""The worker of tests/test_distribution.py, launched by torchrun: ``torchrun --standalone --nproc_per_node=2
tests/dist_worker.py SCENARIO OUTDIR``. Each rank writes what it saw to OUTDIR; the test compares the ranks with each
other and with a single-process run made by :func:`train` in the test's own process.

Scenarios: ``main`` (everything that should work, and the errors every rank raises alike), ``raise`` (rank 1
raises mid-fit while rank 0 keeps training: the whole run must fail with rank 1's message), ``one`` (a world of one
without a launcher), ``graphs`` (the captured step against the eager one) and ``multi`` (a ``MultiOptimizer``,
one flat buffer per sub-optimizer, against one process).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import numpy as np

import tritonnn as keras

SEED = 1234
EPOCHS = 3
BATCH = 5  # odd: split 3 + 2 over two ranks
N_TRAIN = 21  # the last batch holds 1 sample: rank 1 gets none


def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N_TRAIN + 5, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 1).astype("int64")
    sw = rng.uniform(0.5, 2.0, size=N_TRAIN).astype("float32")
    return {"x": x[:N_TRAIN], "y": y[:N_TRAIN], "sw": sw, "x_val": x[N_TRAIN:], "y_val": y[N_TRAIN:]}


def model(seed: int) -> Any:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(6,))
    h = keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3), name="hidden")(inputs)
    h = keras.layers.Dropout(0.0, name="drop")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    m = keras.Model(inputs, outputs)
    m.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def train(seed: int, callbacks: list[Any] | None = None, verbose: int = 0) -> tuple[Any, dict[str, list[float]]]:
    """The run compared across ranks and with a single process: tail batch, odd batch, sample weights,
    validation data with its own tail."""
    d = data()
    m = model(seed)
    history = m.fit(
        d["x"],
        d["y"],
        sample_weight=d["sw"],
        batch_size=BATCH,
        epochs=EPOCHS,
        validation_data=(d["x_val"], d["y_val"]),
        validation_batch_size=4,
        callbacks=callbacks,
        verbose=verbose,
    )
    return m, history.history


def _record_writes(out: str, written: list[str]) -> None:
    """Record every file this process creates or replaces under ``out`` (Python's audit events)."""

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], str) and args[0].startswith(out):
            mode = args[1] or ""
            if any(c in mode for c in "wax+") or (isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR)):
                written.append(os.path.basename(args[0]))
        elif event in ("os.rename", "tempfile.mkstemp") and str(
            args[-1] if event == "tempfile.mkstemp" else args[1]
        ).startswith(out):
            written.append(os.path.basename(str(args[-1] if event == "tempfile.mkstemp" else args[1])))

    sys.addaudithook(hook)


def main(out: str) -> None:
    rank = int(os.environ["RANK"])
    report: dict[str, Any] = {"rank": rank}
    written: list[str] = []
    dp_module = keras.distribution.data_parallel
    report["auto_before_fit"] = dp_module._DISTRIBUTION is dp_module._UNSET
    d = data()
    # Every rank starts from its own seed: rank 0's weights and shuffle seed must reach the others.
    ckpt = os.path.join(out, "ckpt.keras")
    callbacks = [keras.callbacks.CSVLogger(os.path.join(out, "log.csv")), keras.callbacks.ModelCheckpoint(ckpt)]
    with open(os.path.join(out, f"stdout{rank}.txt"), "w") as f, contextlib.redirect_stdout(f):
        _record_writes(out, written)
        m, history = train(SEED if rank == 0 else SEED + 1 + rank, callbacks=callbacks, verbose=2)
    dp = keras.distribution.distribution()
    report["auto"] = repr(dp)
    report["after_fit"] = {
        "distribution": m._distribution is None,
        "uninstalled": "train_step" not in m.__dict__ and "step" not in m.optimizer.__dict__,
    }
    report["history"] = history
    report["dropout_seed"] = m.get_layer("drop")._base_seed
    report["evaluate"] = m.evaluate(d["x"], d["y"], batch_size=3, verbose=0, return_dict=True)
    np.savez(os.path.join(out, f"weights{rank}.npz"), *m.get_weights())
    np.save(os.path.join(out, f"predict{rank}.npy"), m.predict(d["x"], verbose=0))
    m.save(os.path.join(out, "dp.keras"))
    m.save_weights(os.path.join(out, "dp.weights.h5"))
    report["written"] = sorted(set(written))

    # The Keras spelling, on top of the automatic one.
    explicit = keras.distribution.DataParallel()
    keras.distribution.set_distribution(explicit)
    report["explicit"] = keras.distribution.distribution() is explicit
    report["devices"] = explicit.devices

    # EarlyStopping sees reduced logs; a callback that stops one rank alone stops both at the same epoch.
    class StopOnRank1(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if rank == 1 and epoch == 1:
                self.model.stop_training = True

    class StopOnRank1MidEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if rank == 1 and batch == 2:
                self.model.stop_training = True

    early = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=10.0, patience=1)
    report["early_epochs"] = len(
        model(SEED)
        .fit(
            d["x"],
            d["y"],
            batch_size=4,
            epochs=6,
            validation_data=(d["x_val"], d["y_val"]),
            callbacks=[early],
            verbose=0,
        )
        .history["loss"]
    )  # noqa: E501
    report["early_stopped_epoch"] = early.stopped_epoch
    m2 = model(SEED)
    report["rank1_stop_epochs"] = len(
        m2.fit(d["x"], d["y"], batch_size=4, epochs=6, callbacks=[StopOnRank1()], verbose=0).history["loss"]
    )  # noqa: E501
    m3 = model(SEED)
    m3.fit(d["x"], d["y"], batch_size=4, epochs=6, callbacks=[StopOnRank1MidEpoch()], verbose=0)
    report["mid_epoch_stop_iterations"] = m3.optimizer.iterations

    # Errors that every rank raises alike (so none is left waiting).
    errors = {}
    for name, call in {
        "batch_too_small": lambda: model(SEED).fit(d["x"], d["y"], batch_size=1, verbose=0),
        "generator_runs_out": lambda: model(SEED).fit(_batches(d, 5, drop=rank), epochs=1, verbose=0),
        "evaluate_exhausted": lambda: _evaluate_twice(_batches(d, 5)),
        "sum_reduction": lambda: _sum_model().fit(d["x"], d["y"], batch_size=4, verbose=0),
        "devices": lambda: keras.distribution.DataParallel(devices=["cpu"]),
        "different_data": lambda: model(SEED).fit(d["x"][rank:], d["y"][rank:], batch_size=4, verbose=0),
        "evaluate_different_data": lambda: model(SEED).evaluate(d["x"][rank:], d["y"][rank:], verbose=0),
    }.items():
        try:
            call()
            errors[name] = None
        except ValueError as e:
            errors[name] = str(e)
    report["errors"] = errors
    keras.distribution.barrier()

    # A DataLoader of global batches (every rank reads all of them) trains as the arrays do; validation too.
    import torch

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(d["x"]), torch.from_numpy(d["y"])), batch_size=5
    )
    val_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(d["x_val"]), torch.from_numpy(d["y_val"])), batch_size=2
    )
    from_loader, from_arrays = model(SEED), model(SEED)
    h_loader = from_loader.fit(loader, epochs=2, validation_data=val_loader, verbose=0).history
    h_arrays = from_arrays.fit(
        d["x"], d["y"], batch_size=5, epochs=2, shuffle=False, validation_data=(d["x_val"], d["y_val"]), verbose=0
    ).history
    np.savez(os.path.join(out, f"loader{rank}.npz"), *from_loader.get_weights())
    np.savez(os.path.join(out, f"arrays{rank}.npz"), *from_arrays.get_weights())
    report["loader_history"], report["arrays_history"] = h_loader, h_arrays
    report["loader_evaluate"] = from_loader.evaluate(_batches(d, 3), verbose=0, return_dict=True)
    report["arrays_evaluate"] = from_loader.evaluate(d["x"], d["y"], batch_size=3, verbose=0, return_dict=True)

    # A shuffled DataLoader: torch's generator is rank 0's from the start of fit, so every rank draws its order.
    shuffled = model(SEED if rank == 0 else SEED + 7)
    shuffled.fit(torch.utils.data.DataLoader(loader.dataset, batch_size=4, shuffle=True), epochs=2, verbose=0)
    np.savez(os.path.join(out, f"shuffled{rank}.npz"), *shuffled.get_weights())

    # Bucketed all-reduce (buckets of at least 64 bytes), launched from the backward's hooks.
    keras.distribution.buckets.BUCKET_BYTES = 64
    try:
        bucketed, _ = train(SEED if rank == 0 else SEED + 3)
        dp_now = keras.distribution.distribution()
        report["buckets"] = len(dp_now._buckets.ranges)
        report["buckets_launched_early"] = dp_now._buckets.launched_early
        stray_bucketed = _train_stray(d)
    finally:
        keras.distribution.buckets.BUCKET_BYTES = 25 * 2**20
    np.savez(os.path.join(out, f"bucketed{rank}.npz"), *bucketed.get_weights())
    # A train_step that replaces the gradients (set_to_none) instead of letting them accumulate into the flat
    # buffer trains as the plain one does, with one all-reduce and with buckets.
    plain = model(SEED)
    plain.fit(d["x"], d["y"], batch_size=4, epochs=2, verbose=0)
    report["stray_grads_diff"] = [
        max(float(np.abs(a - b).max()) for a, b in zip(plain.get_weights(), m.get_weights(), strict=True))
        for m in (_train_stray(d), stray_bucketed)
    ]

    # BackupAndRestore: interrupted at epoch 2 on both ranks, resumed from rank 0's backup, the same weights as a
    # run never interrupted; rank 1 writes no backup.
    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == 8:
                raise KeyboardInterrupt

    backup = os.path.join(out, "backup")
    before = set(written)
    with contextlib.suppress(KeyboardInterrupt):
        model(SEED).fit(
            d["x"],
            d["y"],
            batch_size=4,
            epochs=3,
            callbacks=[keras.callbacks.BackupAndRestore(backup, save_freq=3), Interrupt()],
            verbose=0,
        )  # noqa: E501
    report["backup_written"] = sorted(set(written) - before)
    resumed = model(SEED + 100 + rank)
    resumed.fit(
        d["x"],
        d["y"],
        batch_size=4,
        epochs=3,
        callbacks=[keras.callbacks.BackupAndRestore(backup, save_freq=3)],
        verbose=0,
    )  # noqa: E501
    straight = model(SEED)
    straight.fit(d["x"], d["y"], batch_size=4, epochs=3, verbose=0)
    report["resumed_equal"] = all(
        np.array_equal(a, b) for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True)
    )
    report["resumed_moved"] = not all(
        np.array_equal(a, b) for a, b in zip(resumed.get_weights(), model(SEED).get_weights(), strict=True)
    )
    report["backup_left"] = os.path.exists(backup)
    with open(os.path.join(out, f"report{rank}.json"), "w") as f:
        json.dump(report, f)


def _batches(d: dict[str, np.ndarray], size: int, drop: int = 0):
    """A one-pass generator of global batches; ``drop`` leaves out that many last batches."""
    x, y = d["x"], d["y"]
    starts = list(range(0, len(x), size))
    return ((x[i : i + size], y[i : i + size]) for i in starts[: len(starts) - drop])


def _train_stray(d: dict[str, np.ndarray]) -> Any:
    class Stray(keras.models.Functional):
        def train_step(self, data):
            return super().train_step(data)

        def compute_loss(self, *args, **kwargs):
            for p in self.trainable_weights:  # after zero_grad(): the backward makes fresh .grad tensors
                p.grad = None
            return super().compute_loss(*args, **kwargs)

    keras.utils.set_random_seed(SEED)
    ref = model(SEED)
    m = Stray(ref._inputs_struct, ref._outputs_struct)
    m.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(d["x"], d["y"], batch_size=4, epochs=2, verbose=0)
    return m


def _evaluate_twice(batches: Any) -> None:
    m = model(SEED)
    m.evaluate(batches, verbose=0)
    m.evaluate(batches, verbose=0)  # the one-pass generator is exhausted: the single-process error, on every rank


def _sum_model() -> Any:
    m = model(SEED)
    m.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(reduction="sum"))
    return m


def fail(out: str) -> None:
    rank = int(os.environ["RANK"])
    d = data()

    class Explode(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if rank == 1 and epoch == 1:
                raise RuntimeError("rank 1 failed on purpose at epoch 2")

    model(SEED).fit(d["x"], d["y"], batch_size=4, epochs=1000, callbacks=[Explode()], verbose=0)


def world_of_one(address: str) -> None:
    """No launcher: ``initialize`` joins a process group of one from its arguments; fit then runs the
    data-parallel path, which must train exactly as a single process does."""
    keras.distribution.initialize(job_addresses=address, num_processes=1, process_id=0)
    dp = keras.distribution.DataParallel()
    keras.distribution.set_distribution(dp)
    parallel, _ = train(SEED)
    keras.distribution.set_distribution(None)
    single, _ = train(SEED)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(parallel.get_weights(), single.get_weights(), strict=True))
    print(json.dumps({"world_size": dp.world_size, "rank": dp.rank, "diff": diff}))


def graphs(out: str) -> None:
    """The data-parallel train step captured (CUDA graph semantics from ``EmulatedGraph``: ops recorded once with
    the all-reduce among them, replayed, host syncs refused) against the same run stepped eagerly, with one
    all-reduce and with buckets; dropout, sample weights, a learning-rate schedule and validation included."""
    from tritonnn.trainers import step_runner

    rank = int(os.environ["RANK"])
    rng = np.random.default_rng(3)
    x = rng.normal(size=(31, 6)).astype("float32")  # batch 5: four full batches split 3 + 2, then 4 split 2 + 2
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    sw = rng.uniform(0.5, 2.0, size=24).astype("float32")

    def run(jit: bool, bucket_bytes: int) -> dict[str, Any]:
        keras.utils.set_random_seed(SEED if rank == 0 else SEED + 1)  # rank 0's weights must reach rank 1
        inputs = keras.Input(shape=(6,))
        h = keras.layers.Dense(16, activation="relu")(inputs)
        h = keras.layers.Dropout(0.3, seed=5)(h)
        outputs = keras.layers.Dense(3, activation="softmax")(h)
        m = keras.Model(inputs, outputs)
        schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)
        m.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=jit,
        )
        keras.distribution.buckets.BUCKET_BYTES = bucket_bytes
        try:
            history = m.fit(
                x[:24],
                y[:24],
                sample_weight=sw,
                batch_size=5,
                epochs=3,
                shuffle=False,
                validation_data=(x[24:], y[24:]),  # batches of 3 split 2 + 1, the last (1) on rank 0 alone
                validation_batch_size=3,
                verbose=0,
            ).history
            buckets = keras.distribution.distribution()._buckets
        finally:
            keras.distribution.buckets.BUCKET_BYTES = 25 * 2**20
        runner = m._last_step_runner
        return {
            "weights": [w.tolist() for w in m.get_weights()],
            "history": history,
            "replays": getattr(runner, "replays", 0),
            "eager_calls": getattr(runner, "eager_calls", None),
            "disabled": getattr(runner, "disabled", None),
            "blocker": m._graph_blocker("train"),
            "buckets": 0 if buckets is None else len(buckets.ranges),
            "device": str(m.device),
        }

    real = os.environ.get("TRITONNN_TEST_GRAPHS") == "cuda"  # real CUDA graphs, NCCL (tests/test_cuda_graphs.py)
    if int(os.environ["WORLD_SIZE"]) == 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel())  # not automatic for one process
    original = step_runner.factory_for
    if not real:
        step_runner.factory_for = lambda device: step_runner.EmulatedGraph
    try:
        report = {
            f"{'graph' if jit else 'eager'}_{name}": run(jit, size)
            for name, size in (("one", 25 * 2**20), ("bucketed", 64))
            for jit in (False, True)
        }
    finally:
        step_runner.factory_for = original
    with open(os.path.join(out, f"graphs{rank}.json"), "w") as f:
        json.dump(report, f)


def multi_model(seed: int, loss_scale: bool = False, jit_compile: Any = "auto") -> Any:
    """``model``'s layers with the hidden Dense on SGD with momentum and the output Dense on Adam, through a
    ``MultiOptimizer`` (two flat buffers), optionally wrapped in a ``LossScaleOptimizer`` (fp32: scaling by a
    power of two and back is exact) and then with ``model``'s L2 regularizer (autograd's step; without either, the
    torch backend's direct MLP step, which writes the gradients into the flat buffers itself)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(6,))
    l2 = keras.regularizers.L2(1e-3) if loss_scale else None
    h = keras.layers.Dense(8, activation="relu", kernel_regularizer=l2, name="hidden")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    m = keras.Model(inputs, outputs)
    O = keras.optimizers
    opt: Any = O.MultiOptimizer(O.OptimizerMap(O.Adam(0.05), {"hidden/.*": O.SGD(0.1, momentum=0.9)}))
    if loss_scale:
        opt = O.LossScaleOptimizer(opt)
    m.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return m


MULTI_PRE = 10  # samples of the pre-training that rank 0 runs alone (rank 1: more, so its state differs)


def pretrain_multi(m: Any, rank: int = 0) -> None:
    """Before the MultiOptimizer run (``multi``): a single-process fit on the first ``MULTI_PRE + 5 * rank``
    samples (each rank its own weights, optimizer states and counts); the data-parallel fit that follows must start
    every rank from rank 0's."""
    d = data()
    pre = MULTI_PRE + 5 * rank
    m.fit(d["x"][:pre], d["y"][:pre], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)


def pretrain_multi_alone(m: Any, rank: int, dp: Any) -> None:
    """:func:`pretrain_multi` in this process alone (rank 1 ends with other weights, states and counts than rank
    0), then ``dp`` back in use."""
    keras.distribution.set_distribution(None)
    try:
        pretrain_multi(m, rank)
    finally:
        keras.distribution.set_distribution(dp)


def multi(out: str) -> None:
    """A ``MultiOptimizer`` (and a ``LossScaleOptimizer`` around one) data-parallel, with one all-reduce per
    buffer and with buckets, eager and captured (``EmulatedGraph``), and under ``"mixed_float16"``; the test
    compares with one process."""
    from tritonnn.trainers import step_runner

    rank = int(os.environ["RANK"])
    dp = keras.distribution.distribution()
    d = data()
    report: dict[str, Any] = {}
    original = step_runner.factory_for
    for loss_scale in (False, True):
        for name, size in (("one", 25 * 2**20), ("bucketed", 64)):
            for jit in (False, True):
                m = multi_model(SEED if rank == 0 else SEED + 1 + rank, loss_scale, jit_compile=jit)
                pretrain_multi_alone(m, rank, dp)
                keras.distribution.buckets.BUCKET_BYTES = size
                step_runner.factory_for = lambda device: step_runner.EmulatedGraph
                try:
                    history = m.fit(
                        d["x"],
                        d["y"],
                        sample_weight=d["sw"],
                        batch_size=BATCH,
                        epochs=EPOCHS,
                        validation_data=(d["x_val"], d["y_val"]),
                        validation_batch_size=4,
                        verbose=0,
                    ).history
                finally:
                    keras.distribution.buckets.BUCKET_BYTES = 25 * 2**20
                    step_runner.factory_for = original
                runner = m._last_step_runner
                opt = m.optimizer.inner_optimizer if loss_scale else m.optimizer
                report[f"{'loss_scale' if loss_scale else 'multi'}_{name}_{'graph' if jit else 'eager'}"] = {
                    "weights": [w.tolist() for w in m.get_weights()],
                    "history": history,
                    "replays": getattr(runner, "replays", 0),
                    "disabled": getattr(runner, "disabled", None),
                    "buckets": 0 if dp._buckets is None else len(dp._buckets.ranges),
                    "buffers": len(dp._grads),
                    "iterations": [m.optimizer.iterations, *(o.iterations for o in opt.optimizers)],
                }
    # Under "mixed_float16" compile wraps the MultiOptimizer in a LossScaleOptimizer itself.
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        m = multi_model(SEED if rank == 0 else SEED + 1 + rank)
        pretrain_multi_alone(m, rank, dp)
        history = m.fit(d["x"], d["y"], sample_weight=d["sw"], batch_size=BATCH, epochs=EPOCHS, verbose=0).history
    finally:
        keras.config.set_dtype_policy(policy)
    report["mixed"] = {
        "weights": [w.tolist() for w in m.get_weights()],
        "history": history,
        "optimizer": [type(m.optimizer).__name__, type(m.optimizer.inner_optimizer).__name__],
        "buffers": len(dp._grads),
    }
    with open(os.path.join(out, f"multi{rank}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    scenario, arg = sys.argv[1], sys.argv[2]
    {"main": main, "raise": fail, "one": world_of_one, "graphs": graphs, "multi": multi}[scenario](arg)
