"""Faults: processes killed (SIGKILL) in the middle of a save and in the middle of a training epoch.

Each scenario runs tritonnn in a child process (the torch backend, on CPU) so that a real SIGKILL can end it:
no ``finally`` block, no atexit handler and no flush runs after it, as after a power cut or an OOM kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    env.update(TRITONNN_BACKEND="torch", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


def _script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


# ---- (a) killed while saving ----------------------------------------------------------------------------------

SAVER = """
    import os, signal, sys
    import torch
    import tritonnn as keras

    path, mode = sys.argv[1], sys.argv[2]
    keras.utils.set_random_seed(0)
    # About 2.4 M parameters (9.5 MB of float32): a save takes long enough to be caught in the middle.
    model = keras.Sequential([keras.Input((512,)), keras.layers.Dense(1536), keras.layers.Dense(1024)])
    if mode == "inject":
        # Deterministic: the 3rd save dies after writing half of its bytes to the temporary file.
        import tritonnn.saving as saving
        real_fdopen = os.fdopen
        count = {"n": 0}

        class HalfWriter:
            def __init__(self, f):
                self.f = f
            def __enter__(self):
                return self
            def __exit__(self, *a):
                return self.f.__exit__(*a)
            def write(self, data):
                self.f.write(data[: len(data) // 2])
                self.f.flush()
                os.fsync(self.f.fileno())
                print("dying", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            def __getattr__(self, name):
                return getattr(self.f, name)

        def fdopen(fd, *args, **kwargs):
            f = real_fdopen(fd, *args, **kwargs)
            count["n"] += 1
            return HalfWriter(f) if count["n"] == 3 else f

        saving.os.fdopen = fdopen
    i = 0
    while True:
        i += 1
        with torch.no_grad():
            for p in model.weights:
                p.fill_(float(i))
        print(f"begin {i}", flush=True)
        keras.saving.save_model(model, path)
        print(f"saved {i}", flush=True)
"""


def _check_saved(path: str, allowed: set[int]) -> int:
    """The file at ``path`` loads, and every weight holds one value: that of one complete save."""
    import tritonnn as keras

    model = keras.saving.load_model(path)
    weights = model.get_weights()
    value = float(weights[0].flat[0])
    assert value == int(value) and int(value) in allowed, (value, allowed)
    for w in weights:
        assert w.shape != () and np.all(w == value), "the loaded file mixes two saves"
    return int(value)


def _dir_state(directory) -> tuple[list[str], list[str]]:
    names = sorted(os.listdir(directory))
    models = [n for n in names if n.endswith(".keras")]
    return models, [n for n in names if n not in models]


def test_save_killed_mid_write_keeps_the_previous_file(tmp_path):
    """A save that dies half-way through writing its temporary file leaves the last complete save in place."""
    script = _script(tmp_path, "saver.py", SAVER)
    path = str(tmp_path / "out" / "model.keras")
    proc = subprocess.run(
        [sys.executable, script, path, "inject"], env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.split() == ["begin", "1", "saved", "1", "begin", "2", "saved", "2", "begin", "3", "dying"]
    assert _check_saved(path, {2}) == 2
    models, others = _dir_state(tmp_path / "out")
    assert models == ["model.keras"]  # the half-written temporary file is not taken for a model...
    assert len(others) == 1 and others[0].startswith(".model.keras.") and others[0].endswith(".tmp")  # ...but is there
    import tritonnn as keras

    with pytest.raises(ValueError):  # and loading it by mistake is a clear error, not garbage weights
        keras.saving.load_model(str(tmp_path / "out" / others[0]))


@pytest.mark.parametrize("delay_s", [0.0, 0.02, 0.05])
def test_save_killed_by_parent_keeps_a_complete_file(tmp_path, delay_s):
    """The parent kills a process that saves in a loop, shortly after one save begins (wherever that lands: in the
    serialisation, the write, the fsync or the rename); the file on disk is always one complete save."""
    script = _script(tmp_path, "saver.py", SAVER)
    path = str(tmp_path / "out" / "model.keras")
    proc = subprocess.Popen(
        [sys.executable, script, path, "loop"], env=_env(), cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        lines: list[str] = []
        while True:
            line = proc.stdout.readline()
            assert line, "the saver exited early"
            lines.append(line.split())
            if lines[-1] == ["begin", "4"]:
                break
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        lines += [line.split() for line in proc.stdout.read().splitlines()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    saved = [int(n) for word, n in lines if word == "saved"]
    begun = [int(n) for word, n in lines if word == "begin"]
    # The file holds the last reported save, or the one in progress if its rename happened before the kill.
    value = _check_saved(path, {saved[-1], begun[-1]})
    assert value >= 3
    models, others = _dir_state(tmp_path / "out")
    assert models == ["model.keras"]
    assert all(n.startswith(".model.keras.") and n.endswith(".tmp") for n in others)


# ---- (b) killed in the middle of an epoch, resumed by BackupAndRestore -------------------------------------------

TRAINER = """
    import json, os, signal, sys
    import numpy as np
    import tritonnn as keras

    mode, backup_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    keras.utils.set_random_seed(1234)
    rng = np.random.RandomState(0)
    x = rng.normal(size=(60, 12)).astype("float32")
    y = rng.randint(0, 5, size=60)
    model = keras.Sequential([
        keras.Input((12,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(5),
    ])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trained = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            trained.append([self.epoch, batch])
            if mode == "killed" and (self.epoch, batch) == (1, 5):
                os.kill(os.getpid(), signal.SIGKILL)  # after batch 5 of epoch 1; the last backup was after batch 3

    callbacks = [] if mode == "full" else [keras.callbacks.BackupAndRestore(backup_dir, save_freq=4)]
    # 60 samples in batches of 8: 8 batches an epoch, the last one short; the order is shuffled every epoch.
    model.fit(x, y, batch_size=8, epochs=3, shuffle=True, verbose=0, callbacks=callbacks + [Record()])
    np.savez(out, *model.get_weights())
    with open(out + ".json", "w") as f:
        json.dump({"trained": trained, "iterations": int(model.optimizer.iterations)}, f)
"""


def _train(script: str, mode: str, backup_dir: str, out: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, script, mode, backup_dir, out], env=_env(), cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_training_killed_mid_epoch_resumes_bit_for_bit(tmp_path):
    script = _script(tmp_path, "trainer.py", TRAINER)
    backup = str(tmp_path / "backup")
    full = _train(script, "full", backup, str(tmp_path / "full.npz"))
    assert full.returncode == 0, full.stderr
    killed = _train(script, "killed", backup, str(tmp_path / "killed.npz"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "killed.npz").exists()
    assert os.listdir(backup) == ["backup.weights.safetensors"]  # written at global batch 12 = epoch 1, batch 3
    resumed = _train(script, "resumed", backup, str(tmp_path / "resumed.npz"))
    assert resumed.returncode == 0, resumed.stderr
    assert not os.path.exists(backup)  # deleted after the successful run

    log = json.loads((tmp_path / "resumed.npz.json").read_text())
    # It started at batch 4 of epoch 1, the batch after the last backup, not at the start of the epoch.
    assert log["trained"][0] == [1, 4]
    assert log["trained"] == [[1, b] for b in range(4, 8)] + [[2, b] for b in range(8)]
    assert log["iterations"] == json.loads((tmp_path / "full.npz.json").read_text())["iterations"] == 24
    want, got = np.load(tmp_path / "full.npz"), np.load(tmp_path / "resumed.npz")
    assert len(want.files) == len(got.files) == 4
    for k in want.files:
        assert want[k].dtype == got[k].dtype and want[k].shape == got[k].shape
        assert want[k].tobytes() == got[k].tobytes(), f"weight {k} differs from the uninterrupted run's"
