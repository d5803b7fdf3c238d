"""Data-parallel fit over torch.distributed: two CPU processes with gloo, launched by torchrun from the test.

``tests/dist_worker.py`` runs on both ranks and writes what each saw; the tests compare the ranks with each other
and with a single-process run made here with the same global batch, seed and data order.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn import distribution as dist_mod
from tritonnn.distribution import sharded_data
from tritonnn.kernels import backend_scope

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "dist_worker.py")
sys.path.insert(0, os.path.join(ROOT, "tests"))
import dist_worker  # noqa: E402

sys.path.remove(os.path.join(ROOT, "tests"))

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()), reason="needs gloo"
)


def _torchrun(scenario: str, out: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for key in ("TRITON_INTERPRET", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    # CPU and gloo whatever the machine: two ranks on one GPU would be refused by NCCL.
    env.update(TRITONNN_BACKEND="torch", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER, scenario, out]
    # Generous: both ranks import torch and tritonnn on a 2-core machine. A hang would hit this timeout.
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = str(tmp_path_factory.mktemp("dp"))
    proc = _torchrun("main", out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    reports = [json.load(open(os.path.join(out, f"report{r}.json"))) for r in (0, 1)]
    weights = []
    for r in (0, 1):
        with np.load(os.path.join(out, f"weights{r}.npz")) as z:
            weights.append([z[f"arr_{i}"] for i in range(len(z.files))])
    return {"out": out, "reports": reports, "weights": weights}


@pytest.fixture(scope="module")
def single() -> dict:
    """The same training in this one process: no distribution, CPU, the torch backend."""
    assert dist_mod.distribution() is None
    keras.config.set_default_device("cpu")
    try:
        with backend_scope("torch"):
            model, history = dist_worker.train(dist_worker.SEED)
            d = dist_worker.data()
            evaluate = model.evaluate(d["x"], d["y"], batch_size=3, verbose=0, return_dict=True)
    finally:
        keras.config.set_default_device(None)
    return {"model": model, "weights": model.get_weights(), "history": history, "evaluate": evaluate}


def test_weights_identical_on_every_rank_and_equal_to_one_process(run, single):
    # 21 samples in global batches of 5 (3 + 2 per rank) and a tail of 1 (rank 1 gets none), sample weights,
    # an L2 regularizer, 3 epochs of Adam; rank 1 started from other weights and another shuffle seed.
    w0, w1 = run["weights"]
    assert len(w0) == len(single["weights"]) == 4
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, ref in zip(w0, single["weights"], strict=True):
        np.testing.assert_allclose(a, ref, rtol=0, atol=1e-5)
    # and training moved them: the comparison is not between two untrained models
    initial = dist_worker.model(dist_worker.SEED).get_weights()
    assert max(float(np.abs(a - b).max()) for a, b in zip(w0, initial, strict=True)) > 0.05


def test_bucketed_all_reduce_overlapped_with_the_backward(run, single):
    # the same training with the gradient buffer in buckets of 16 floats: [out bias + padding], [out kernel],
    # [hidden kernel + hidden bias (8 floats, too small alone)], each all-reduced asynchronously from the backward's
    # hooks; rank 1 launches its buckets at the step when its slice of the tail is empty
    r0, r1 = run["reports"]
    assert r0["buckets"] == r1["buckets"] == 3
    assert r0["buckets_launched_early"] > 0 and r1["buckets_launched_early"] > 0
    for r in (0, 1):
        with np.load(os.path.join(run["out"], f"bucketed{r}.npz")) as z:
            for i, ref in enumerate(single["weights"]):
                np.testing.assert_allclose(z[f"arr_{i}"], ref, rtol=0, atol=1e-5)


def test_gradients_replaced_instead_of_accumulated_are_still_averaged(run):
    for report in run["reports"]:
        assert max(report["stray_grads_diff"]) < 1e-5


def test_logs_are_reduced_over_ranks(run, single):
    r0, r1 = run["reports"]
    assert r0["history"] == r1["history"]
    assert set(r0["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key, values in single["history"].items():
        np.testing.assert_allclose(r0["history"][key], values, rtol=0, atol=1e-5, err_msg=key)
    # evaluate: batches of 3 (2 + 1 per rank), the data split across ranks, the metrics summed
    assert r0["evaluate"] == r1["evaluate"]
    for key, value in single["evaluate"].items():
        assert abs(r0["evaluate"][key] - value) < 1e-5, key


def test_dropout_masks_differ_across_ranks(run, single):
    # rank 0 keeps its own (the single process's) seed stream; rank 1's is derived from it, not equal to it
    r0, r1 = run["reports"]
    assert r0["dropout_seed"] == single["model"].get_layer("drop")._base_seed
    assert r1["dropout_seed"] != r0["dropout_seed"]


def test_model_saved_by_a_data_parallel_run_loads_in_one_process(run, single):
    loaded = keras.models.load_model(os.path.join(run["out"], "dp.keras"))
    x = dist_worker.data()["x"]
    with backend_scope("torch"):
        got = loaded.predict(x, verbose=0)
    for r in (0, 1):
        np.testing.assert_array_equal(got, np.load(os.path.join(run["out"], f"predict{r}.npy")))
    for a, b in zip(loaded.get_weights(), run["weights"][0], strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = dist_worker.model(0)
    fresh.load_weights(os.path.join(run["out"], "dp.weights.h5"))
    with backend_scope("torch"):
        np.testing.assert_array_equal(fresh.predict(x, verbose=0), got)


def test_only_rank_zero_writes_files_and_prints(run):
    r0, r1 = run["reports"]
    shared = {"log.csv", "ckpt.keras", "dp.keras", "dp.weights.h5"}
    assert shared <= set(r0["written"])
    assert set(r1["written"]) == {"weights1.npz", "predict1.npy"}  # its own outputs only: no temporary file either
    with open(os.path.join(run["out"], "stdout0.txt")) as f:
        stdout0 = f.read()
    with open(os.path.join(run["out"], "stdout1.txt")) as f:
        assert f.read() == ""
    assert stdout0.count("Epoch ") == dist_worker.EPOCHS and "val_loss" in stdout0
    with open(os.path.join(run["out"], "log.csv")) as f:
        rows = f.read().splitlines()
    assert rows[0] == "epoch,accuracy,loss,val_accuracy,val_loss" and len(rows) == 1 + dist_worker.EPOCHS


def test_stopping_is_decided_alike_on_every_rank(run):
    r0, r1 = run["reports"]
    # EarlyStopping on the reduced val_loss (min_delta so large that nothing improves): epoch 2 on both.
    assert r0["early_epochs"] == r1["early_epochs"] == 2
    assert r0["early_stopped_epoch"] == r1["early_stopped_epoch"] == 1
    # A callback that stops rank 1 alone, at an epoch end and mid-epoch: both ranks stop there.
    assert r0["rank1_stop_epochs"] == r1["rank1_stop_epochs"] == 2
    assert r0["mid_epoch_stop_iterations"] == r1["mid_epoch_stop_iterations"] == 3


def test_distribution_api(run):
    r0, r1 = run["reports"]
    # torchrun's WORLD_SIZE=2 made a DataParallel on first use, without set_distribution
    assert r0["auto_before_fit"] and r1["auto_before_fit"]
    assert r0["auto"] == "<DataParallel world_size=2 rank=0 device=cpu>"
    assert r1["auto"] == "<DataParallel world_size=2 rank=1 device=cpu>"
    assert r0["explicit"] and r1["explicit"]
    # after fit, the model is left as a single process leaves it (its train_step and optimizer.step are its own)
    assert r0["after_fit"] == r1["after_fit"] == {"distribution": True, "uninstalled": True}
    assert r0["devices"] == r1["devices"] == ["cpu", "cpu"]
    # in this single process: none, nothing installed on a model that fit
    assert dist_mod.distribution() is None
    assert keras.distribution.list_devices("cpu") == ["cpu:0"]
    with pytest.raises(ValueError, match="device_type"):
        keras.distribution.list_devices("tpu")
    with pytest.raises(ValueError, match="DataParallel or None"):
        keras.distribution.set_distribution("data_parallel")
    keras.distribution.barrier()  # nothing to wait for


def test_errors_are_raised_alike_on_every_rank(run):
    r0, r1 = run["reports"]
    assert r0["errors"] == r1["errors"]
    errors = r0["errors"]
    assert "must be at least 2" in errors["batch_too_small"] and "batch_size=1" in errors["batch_too_small"]
    assert "must read the same batches" in errors["generator_runs_out"] and "(0, 0)" in errors["generator_runs_out"]
    assert "reduction='sum'" in errors["sum_reduction"]
    assert "one device per process" in errors["devices"]
    for key in ("different_data", "evaluate_different_data"):
        assert "same data on every process" in errors[key], key
        assert "'samples': 21" in errors[key] and "'samples': 20" in errors[key], key
    assert errors["evaluate_exhausted"] == "evaluate() got no batches: the data is empty"


def test_a_dataloader_of_global_batches_trains_as_the_arrays_do(run):
    for r, report in enumerate(run["reports"]):
        # the loader's batches are the arrays' batches (no shuffle): same history, same weights
        for key, values in report["arrays_history"].items():
            np.testing.assert_allclose(report["loader_history"][key], values, rtol=0, atol=1e-6, err_msg=key)
        with (
            np.load(os.path.join(run["out"], f"loader{r}.npz")) as a,
            np.load(os.path.join(run["out"], f"arrays{r}.npz")) as b,
        ):
            for k in a.files:
                np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6)
        for key, value in report["arrays_evaluate"].items():
            assert abs(report["loader_evaluate"][key] - value) < 1e-6, key
    assert run["reports"][0]["loader_history"] == run["reports"][1]["loader_history"]


def test_a_shuffled_dataloader_draws_rank_zeros_order(run):
    keras.config.set_default_device("cpu")
    try:
        with backend_scope("torch"):
            d = dist_worker.data()
            dataset = torch.utils.data.TensorDataset(torch.from_numpy(d["x"]), torch.from_numpy(d["y"]))
            reference = dist_worker.model(dist_worker.SEED)
            reference.fit(torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True), epochs=2, verbose=0)
    finally:
        keras.config.set_default_device(None)
    for r in (0, 1):
        with np.load(os.path.join(run["out"], f"shuffled{r}.npz")) as z:
            for i, ref in enumerate(reference.get_weights()):
                np.testing.assert_allclose(z[f"arr_{i}"], ref, rtol=0, atol=1e-5)


def test_backup_and_restore_resumes_from_rank_zeros_backup(run):
    r0, r1 = run["reports"]
    assert r0["backup_written"] and all(n.startswith((".backup", "backup")) for n in r0["backup_written"])
    assert r1["backup_written"] == []
    assert r0["resumed_equal"] and r1["resumed_equal"]
    assert r0["resumed_moved"]
    assert not r0["backup_left"]  # deleted by rank 0 when the resumed run ended


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = str(tmp_path_factory.mktemp("dp_graphs"))
    proc = _torchrun("graphs", out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return [json.load(open(os.path.join(out, f"graphs{r}.json"))) for r in (0, 1)]


@pytest.mark.parametrize("reduce", ["one", "bucketed"])
def test_the_captured_data_parallel_step_equals_the_eager_one(graphs, reduce):
    # Each rank's train step recorded once with its all-reduce (one, or four buckets launched from the backward's
    # hooks) and replayed (CUDA graph semantics: EmulatedGraph), against jit_compile=False: the same bits on both
    # ranks, dropout (device seeds, a stream per rank), sample weights, a decaying learning rate and the
    # validation (its captured test step, metrics summed over the ranks at the end) included.
    for report in graphs:
        eager, graph = report[f"eager_{reduce}"], report[f"graph_{reduce}"]
        assert graph["blocker"] is None and graph["disabled"] is None
        assert graph["weights"] == eager["weights"] and graph["history"] == eager["history"]
        assert set(graph["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        # 3 epochs of 5 steps: 2 warm-up steps, the capture (which ran the step), 9 replays, and each epoch's last
        # step eagerly (its batch of 4 splits 2 + 2: another share of the batch than the captured 3 + 2)
        assert (graph["replays"], graph["eager_calls"]) == (9, 5)
        assert graph["buckets"] == eager["buckets"] == (4 if reduce == "bucketed" else 0)
    assert graphs[0][f"graph_{reduce}"]["weights"] == graphs[1][f"graph_{reduce}"]["weights"]
    first = np.array(graphs[0][f"graph_{reduce}"]["weights"][0])
    assert np.abs(first).max() > 0  # trained weights, compared between two runs that both moved them


def test_plan_counts_one_ranks_data_parallel_step():
    # bench/plan.py --ranks 2: each rank counts its share's step as fit runs it; on a GPU one replay holds it all,
    # the all-reduce included.
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRITONNN_BACKEND")}
    env.update(OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.join(ROOT, "bench", "plan.py"), "--ranks", "2", "--dropout", "0.2", "--summary"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "collectives ['allreduce_']" in proc.stdout, proc.stdout
    assert "syncs 0" in proc.stdout
    graph = r"all (\d+) launches \(.*all-reduce's and optimizer's .*\) are one replay: 1 host launch"
    assert re.search(graph, proc.stdout), proc.stdout


def test_data_parallel_outside_a_launcher_is_refused(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node=N"):
        keras.distribution.DataParallel()
    with pytest.raises(ValueError, match="job_addresses"):
        keras.distribution.initialize(job_addresses="nohost")
    assert not torch.distributed.is_initialized()


def test_a_rank_that_raises_fails_the_whole_run(tmp_path):
    proc = _torchrun("raise", str(tmp_path))  # rank 0 would train for 1000 epochs on its own
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "RuntimeError: rank 1 failed on purpose at epoch 2" in output


def test_initialize_from_arguments_and_a_world_of_one():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    for key in ("TRITON_INTERPRET", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    env.update(TRITONNN_BACKEND="torch", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, WORKER, "one", f"127.0.0.1:{port}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["world_size"], out["rank"]) == (1, 0)
    assert out["diff"] < 1e-6


def test_bench_times_the_data_parallel_case():
    env = dict(os.environ)
    for key in ("TRITON_INTERPRET", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    env.update(TRITONNN_BACKEND="torch", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.join(ROOT, "bench", "train.py"), "--models", "seed", "--dtypes", "fp32"]
    cmd += ["--peers", "tritonnn", "--distributed", "2", "--epochs", "1", "--no-results", "--no-plot", "--threads", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    row = [line for line in proc.stdout.splitlines() if line.startswith("| seed")]
    assert len(row) == 1 and "skipped" not in row[0], proc.stdout[-2000:]
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert float(cells[2].replace(",", "")) > 0  # the tritonnn-dp2 column: samples/s


class _Rank:
    def __init__(self, world_size: int, rank: int):
        self.world_size, self.rank, self.batch_weight = world_size, rank, 1.0


@pytest.mark.parametrize("world", [2, 3, 4])
def test_each_global_batch_is_split_into_contiguous_slices(world):
    # 11 samples, global batch 5: batches of 5, 5 and 1; every sample on exactly one rank, the shares sum to 1.
    x = torch.arange(11.0).reshape(11, 1)
    base = keras.trainers.data.ArraySource(x, x, None, 5, False)
    slices: list[list[list[float]]] = []
    weights: list[list[float]] = []
    for rank in range(world):
        dp = _Rank(world, rank)
        source = sharded_data.ShardedArraySource(base, dp, training=True)
        got, shares = [], []
        for xb, _, _ in source.epoch():
            got.append([] if xb is None else xb[:, 0].tolist())
            shares.append(dp.batch_weight)
        slices.append(got)
        weights.append(shares)
    for step, size in enumerate((5, 5, 1)):
        together = [v for rank in range(world) for v in slices[rank][step]]
        assert together == [float(v) for v in range(step * 5, step * 5 + size)]
        assert sum(weights[rank][step] for rank in range(world)) == pytest.approx(1.0)
        counts = [len(slices[rank][step]) for rank in range(world)]
        assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)
    # evaluation skips an empty slice instead of yielding it
    last = sharded_data.ShardedArraySource(base, _Rank(world, world - 1), training=False)
    assert len(list(last.epoch())) == 2


def test_single_process_fit_is_untouched():
    model = dist_worker.model(0)
    x, y = dist_worker.data()["x"], dist_worker.data()["y"]
    with backend_scope("torch"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model._distribution is None
    assert "train_step" not in model.__dict__ and "step" not in model.optimizer.__dict__


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = str(tmp_path_factory.mktemp("dp_multi"))
    proc = _torchrun("multi", out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return [json.load(open(os.path.join(out, f"multi{r}.json"))) for r in (0, 1)]


def _multi_single(loss_scale: bool) -> dict:
    """The ``multi`` scenario's run in this one process: the pre-training rank 0 does alone, then the fit on the
    whole data, each global batch at once."""
    keras.config.set_default_device("cpu")
    try:
        with backend_scope("torch"):
            m = dist_worker.multi_model(dist_worker.SEED, loss_scale)
            dist_worker.pretrain_multi(m, 0)
            d = dist_worker.data()
            history = m.fit(
                d["x"],
                d["y"],
                sample_weight=d["sw"],
                batch_size=dist_worker.BATCH,
                epochs=dist_worker.EPOCHS,
                validation_data=(d["x_val"], d["y_val"]),
                validation_batch_size=4,
                verbose=0,
            ).history
    finally:
        keras.config.set_default_device(None)
    opt = m.optimizer.inner_optimizer if loss_scale else m.optimizer
    return {
        "weights": m.get_weights(),
        "history": history,
        "iterations": [m.optimizer.iterations, *(o.iterations for o in opt.optimizers)],
    }


@pytest.mark.parametrize("loss_scale", [False, True], ids=["multi", "loss_scale"])
def test_a_multi_optimizer_trains_data_parallel_as_one_process(multi, loss_scale):
    # The hidden Dense on SGD with momentum, the output Dense on Adam: two flat buffers, each broadcast and
    # all-reduced (one all-reduce each, or four buckets of 16 floats in one order: out bias, out kernel, hidden
    # bias, hidden kernel), eager and captured (EmulatedGraph: the all-reduces recorded in the step and replayed).
    # Before the data-parallel fit each rank trained alone on its own samples (rank 1 on more, from other
    # weights): rank 0's weights, both sub-optimizers' states and counts (and the loss scale) must reach rank 1.
    ref = _multi_single(loss_scale)
    kind = "loss_scale" if loss_scale else "multi"
    assert ref["iterations"] == [2 + 15, 2 + 15, 2 + 15]  # 2 pre-training steps, then 3 epochs of 5 steps
    for reduce in ("one", "bucketed"):
        for step in ("eager", "graph"):
            key = f"{kind}_{reduce}_{step}"
            r0, r1 = multi[0][key], multi[1][key]
            assert r0["weights"] == r1["weights"] and r0["history"] == r1["history"], key
            assert r0["buffers"] == r1["buffers"] == 2, key
            assert r0["buckets"] == r1["buckets"] == (4 if reduce == "bucketed" else 0), key
            assert r0["iterations"] == r1["iterations"] == ref["iterations"], key
            assert len(r0["weights"]) == len(ref["weights"]) == 4
            for got, want in zip(r0["weights"], ref["weights"], strict=True):
                np.testing.assert_allclose(np.array(got, dtype=np.float32), want, rtol=0, atol=1e-5, err_msg=key)
            assert set(r0["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
            for name, values in ref["history"].items():
                np.testing.assert_allclose(r0["history"][name], values, rtol=0, atol=1e-5, err_msg=f"{key} {name}")
            if step == "graph":  # 12 full batches (3 + 2): 2 warm-up steps, the capture, 9 replays; tails eager
                assert r0["disabled"] is None and r0["replays"] == 9, key
            else:
                assert r0["replays"] == 0, key
    # training moved the weights from the pre-trained ones: not a comparison of two idle runs
    start = dist_worker.multi_model(dist_worker.SEED, loss_scale)
    keras.config.set_default_device("cpu")
    try:
        with backend_scope("torch"):
            dist_worker.pretrain_multi(start, 0)
    finally:
        keras.config.set_default_device(None)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(ref["weights"], start.get_weights(), strict=True))
    assert moved > 0.05


def test_a_multi_optimizer_under_mixed_float16_trains_data_parallel(multi):
    # compile wraps the MultiOptimizer in a LossScaleOptimizer; float16 compute rounds a gradient summed from
    # slices of 3 and 2 samples otherwise than one from 5, so the comparison with one process is looser (the
    # differences are ~3e-4, float16's epsilon is ~1e-3; a buffer left out of the all-reduce is off by > 0.05)
    keras.config.set_default_device("cpu")
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        with backend_scope("torch"):
            m = dist_worker.multi_model(dist_worker.SEED)
            dist_worker.pretrain_multi(m, 0)
            d = dist_worker.data()
            m.fit(
                d["x"],
                d["y"],
                sample_weight=d["sw"],
                batch_size=dist_worker.BATCH,
                epochs=dist_worker.EPOCHS,
                verbose=0,
            )
    finally:
        keras.config.set_dtype_policy(policy)
        keras.config.set_default_device(None)
    r0, r1 = multi[0]["mixed"], multi[1]["mixed"]
    assert r0["optimizer"] == ["LossScaleOptimizer", "MultiOptimizer"] and r0["buffers"] == 2
    assert r0["weights"] == r1["weights"] and r0["history"] == r1["history"]
    for got, want in zip(r0["weights"], m.get_weights(), strict=True):
        np.testing.assert_allclose(np.array(got, dtype=np.float32), want, rtol=0, atol=2e-3)


def test_flat_buffers_of_a_multi_optimizer():
    # what DataParallel broadcasts and all-reduces: one optimizer's flat buffers, or each stepping sub-optimizer's
    # (through a LossScaleOptimizer too); an optimizer with no buffer built is refused by name
    from tritonnn.distribution.data_parallel import flat_parts

    m = dist_worker.multi_model(0)
    variables = m.trainable_weights
    O = keras.optimizers
    sgd, adam, unused = O.SGD(), O.Adam(), O.Adagrad()
    multi = O.MultiOptimizer(O.OptimizerMap(adam, {"hidden/.*": sgd, "nothing/.*": unused}))
    with pytest.raises(ValueError, match="MultiOptimizer has none built"):
        flat_parts(multi)
    multi.build(variables)
    assert flat_parts(multi) == [sgd, adam]  # the unused Adagrad has no buffer and is not all-reduced
    assert flat_parts(O.LossScaleOptimizer(multi)) == [sgd, adam]
    assert [p.params for p in flat_parts(multi)] == [variables[:2], variables[2:]]
    single = O.Adam()
    with pytest.raises(ValueError, match="Adam has none built"):
        flat_parts(single)
    single.build(variables)
    assert flat_parts(single) == [single]
