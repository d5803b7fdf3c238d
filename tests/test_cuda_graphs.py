"""fit(), evaluate() and predict() with CUDA-graph capture equal the eager run bit for bit, on real CUDA graphs.

Each case is built twice from one seed (``keras.utils.set_random_seed``): compiled with ``jit_compile=False``
(eager: never captured) and with ``jit_compile="auto"`` (captured where the step allows it), run on the same data,
and compared byte for byte: weights, History, evaluate()'s results, predict()'s outputs. Where a step can be
captured, the test also checks that a graph was used: the step runner is a ``StepGraph`` that replayed. Every case
here must be captured whole (training-mode dropout with device seeds, dynamic loss scaling under ``mixed_float16``
and the optimizer's update included): the last field of ``CASES`` says so, and a blocker named by
``model._graph_blocker("train")`` fails the test. Each test records what ran (``graph``: replays, or why the step
ran eagerly) as a junit property, which bench/gpu_summary.py lists.

The ``cuda`` variants run with ``torch.cuda.CUDAGraph`` on a GPU (bench/gpu_check.sh runs this file there) and are
skipped without CUDA. On a CPU the same cases run as ``emulated`` variants instead, with the CPU stand-in for a
CUDA graph that tests/test_graphs.py uses (``step_runner.EmulatedGraph``): that checks the cases themselves and the
capture plumbing of these models wherever the suite runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn.trainers import step_runner as _graphs

HAS_CUDA = torch.cuda.is_available()

# name: (layer widths, Dropout rate after each hidden Dense, batch size, dtype policy, capturable today)
CASES = {
    "seed": ((64, 32, 10), 0.0, 32, "float32", True),  # the seed model on the 8x8 digits
    "classic": ((784, 64, 64, 10), 0.2, 128, "float32", True),  # Keras' MNIST MLP, narrowed
    "classic-fp16": ((784, 64, 64, 10), 0.2, 128, "mixed_float16", True),
    "classic-bf16": ((784, 64, 64, 10), 0.2, 128, "mixed_bfloat16", True),
}
EPOCHS = 2


@pytest.fixture(params=["cuda", "emulated"])
def graphs(request, monkeypatch):
    """Real CUDA graphs on a GPU; on a CPU the emulated graph, through the same factory hook."""
    if request.param == "cuda" and not HAS_CUDA:
        pytest.skip("real CUDA graphs need a CUDA GPU (the emulated variant runs on this machine)")
    if request.param == "emulated":
        if HAS_CUDA:
            pytest.skip("on a GPU the real CUDA graphs run instead")
        monkeypatch.setattr(_graphs, "factory_for", lambda device: _graphs.EmulatedGraph)
    return request.param


@pytest.fixture
def runners(monkeypatch):
    """Every step runner fit/evaluate/predict made, as (kind, runner), in order."""
    made = []
    original = _graphs.step_runner

    def spy(kind, *args, **kwargs):
        run = original(kind, *args, **kwargs)
        made.append((kind, run))
        return run

    monkeypatch.setattr(_graphs, "step_runner", spy)
    return made


@pytest.fixture(autouse=True)
def _float32_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _data(name: str):
    if name == "seed":
        (x, y), _ = keras.datasets.digits.load_data()
        return x.reshape(len(x), -1).astype("float32") / 16.0, y.astype("int64")
    rng = np.random.default_rng(0)  # MNIST-shaped: uniform pixels, random labels
    return rng.random((1100, 784), dtype=np.float32), rng.integers(0, 10, 1100)


def _model(name: str, jit_compile):
    layers, rate, _, policy, _ = CASES[name]
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(7)
    stack = [keras.Input(shape=(layers[0],))]
    for width in layers[1:-1]:
        stack.append(keras.layers.Dense(width, activation="relu"))
        if rate:
            stack.append(keras.layers.Dropout(rate))
    stack.append(keras.layers.Dense(layers[-1]))
    model = keras.Sequential(stack)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


def _assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb) > 0
    for u, v in zip(wa, wb, strict=True):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes()


def _graph_note(run) -> str:
    if isinstance(run, _graphs.StepGraph):
        return f"captured: {run.replays} replays, {run.eager_calls} eager calls" + (
            f", disabled ({run.disabled})" if run.disabled else ""
        )
    return "eager"


def _check_captured(model, kind: str, run, must_capture: bool) -> str:
    """A graph that replayed wherever the model allows capture; returns what ran, for the junit property."""
    blocker = model._graph_blocker(kind)
    if blocker is None:
        assert isinstance(run, _graphs.StepGraph), f"the {kind} step could be captured but ran {run!r}"
        assert run.disabled is None, run.disabled
        assert run.replays > 0
    else:
        assert not must_capture, f"the {kind} step should be capturable, blocked by: {blocker}"
        assert not isinstance(run, _graphs.StepGraph) or run.replays == 0
    return _graph_note(run) + ("" if blocker is None else f" ({blocker})")


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_captured_equals_eager_bit_for_bit(graphs, runners, record_property, name):
    x, y = _data(name)
    batch, must_capture = CASES[name][2], CASES[name][4]
    # The last batch of each epoch is partial (run eagerly); the validation batches are small enough for replays.
    fit = dict(batch_size=batch, epochs=EPOCHS, validation_split=0.2, validation_batch_size=32, verbose=0)
    eager = _model(name, jit_compile=False)
    assert eager._graph_blocker("train") == "jit_compile=False"
    h_eager = eager.fit(x, y, **fit)
    runners.clear()
    graphed = _model(name, jit_compile="auto")
    h_graphed = graphed.fit(x, y, **fit)

    _assert_same_weights(eager, graphed)
    assert h_eager.history == h_graphed.history  # losses, accuracy, val_ (in-fit evaluation) per epoch
    assert graphed.optimizer.iterations == eager.optimizer.iterations
    train = graphed._last_step_runner
    assert [run for kind, run in runners if kind == "train"] == [train]
    note = _check_captured(graphed, "train", train, must_capture)
    tests = [run for kind, run in runners if kind == "test"]  # the in-fit validation
    assert tests
    for run in tests:
        validation = _check_captured(graphed, "test", run, must_capture=True)
    note += "; validation " + validation
    record_property("graph", f"{graphs} {name} fit: {note}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_evaluate_and_predict_captured_equal_eager_bit_for_bit(graphs, runners, record_property, name):
    x, y = _data(name)
    batch = CASES[name][2]
    eager, graphed = _model(name, jit_compile=False), _model(name, jit_compile="auto")
    _assert_same_weights(eager, graphed)  # the one seed made the same initial weights

    r_eager = eager.evaluate(x, y, batch_size=batch, verbose=0)
    runners.clear()
    r_graphed = graphed.evaluate(x, y, batch_size=batch, verbose=0)
    assert r_eager == r_graphed
    assert [kind for kind, _ in runners] == ["test"]
    note = "evaluate " + _check_captured(graphed, "test", runners[0][1], must_capture=True)

    p_eager = eager.predict(x, batch_size=batch, verbose=0)
    runners.clear()
    p_graphed = graphed.predict(x, batch_size=batch, verbose=0)
    assert p_eager.dtype == p_graphed.dtype and p_eager.shape == p_graphed.shape == (len(x), CASES[name][0][-1])
    assert p_eager.tobytes() == p_graphed.tobytes()  # each batch copied out before the next replay overwrites it
    assert [kind for kind, _ in runners] == ["predict"]
    note += "; predict " + _check_captured(graphed, "predict", runners[0][1], must_capture=True)
    record_property("graph", f"{graphs} {name}: {note}")


def test_data_parallel_fit_captured_equals_eager(graphs, tmp_path, record_property):
    """tests/dist_worker.py's ``graphs`` scenario on one process: ``DataParallel`` over NCCL with the all-reduce
    captured in a real CUDA graph (on a CPU: gloo and the emulated graph); tests/test_distribution.py runs the
    two-rank emulated variant."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TRITON_INTERPRET")}
    env.update(TRITONNN_TEST_GRAPHS=graphs, OMP_NUM_THREADS="1")
    if graphs == "emulated":
        env.update(TRITONNN_BACKEND="torch", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    worker = os.path.join(root, "tests", "dist_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", worker, "graphs"]
    proc = subprocess.run([*cmd, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    with open(tmp_path / "graphs0.json") as f:
        report = json.load(f)
    for reduce in ("one", "bucketed"):
        eager, graph = report[f"eager_{reduce}"], report[f"graph_{reduce}"]
        assert graph["device"].startswith("cuda" if graphs == "cuda" else "cpu")
        assert graph["blocker"] is None and graph["disabled"] is None
        assert graph["weights"] == eager["weights"] and graph["history"] == eager["history"]
        # 3 epochs of 4 full batches and a partial one (eager); a CUDA capture does not run the step, an emulated
        # one does
        assert graph["replays"] == (10 if graphs == "cuda" else 9) and graph["eager_calls"] == 5
    record_property("graph", f"{graphs} data-parallel fit (1 rank): {report['graph_one']['replays']} replays")
