"""Keras names added for issue #14's coverage list, each against real Keras: the learning-rate schedules
``InverseTimeDecay``, ``PolynomialDecay`` and ``CosineDecayRestarts`` (rates at many steps, in both of tritonnn's
forms, configs, serialization, a short ``fit`` under SGD); ``keras.utils.PyDataset`` / ``Sequence`` (the same
subclass trained, evaluated and predicted on under each module, every call it receives compared);
``keras.utils.Progbar`` (the values it accumulates, what it prints); ``keras.config`` (logging, tracebacks, unsafe
deserialization, the caps on fit); ``keras.backend.result_type``, ``keras.layers.serialize`` / ``deserialize``,
``keras.utils.get_source_inputs`` and ``keras.utils.split_dataset``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tritonnn
from tritonnn.optimizers import schedules
from tritonnn.trainers.step_runner import EmulatedGraph

from . import differences
from .compare import assert_same, observe, to_numpy

# ---- learning-rate schedules --------------------------------------------------------------------------------------

# (id, class name, args, kwargs), built alike under each module
SCHEDULE_CASES: list[tuple[str, str, tuple, dict[str, Any]]] = [
    ("inverse_time", "InverseTimeDecay", (0.1, 4, 0.5), {}),
    ("inverse_time_staircase", "InverseTimeDecay", (0.1, 3, 0.7), {"staircase": True, "name": "itd"}),
    ("polynomial", "PolynomialDecay", (0.1, 10), {}),
    ("polynomial_power", "PolynomialDecay", (0.1, 7), {"end_learning_rate": 0.01, "power": 2.0}),
    ("polynomial_cycle", "PolynomialDecay", (0.1, 7), {"end_learning_rate": 0.01, "power": 0.5, "cycle": True}),
    ("restarts", "CosineDecayRestarts", (0.1, 4), {}),
    ("restarts_t3", "CosineDecayRestarts", (1.0, 3), {"t_mul": 3.0, "m_mul": 0.5, "alpha": 0.1}),
    ("restarts_t1", "CosineDecayRestarts", (0.1, 5), {"t_mul": 1.0, "m_mul": 0.9}),
    ("restarts_t11", "CosineDecayRestarts", (0.1, 5), {"t_mul": 1.1, "alpha": 0.05}),
]
_IDS = [c[0] for c in SCHEDULE_CASES]
STEPS = list(range(0, 400)) + [997, 1000, 1001, 4095, 10**5, 10**6 + 3]


def _build(K: Any, case: tuple) -> Any:
    _, name, args, kwargs = case
    return getattr(K.optimizers.schedules, name)(*args, **kwargs)


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=_IDS)
def test_schedule_rates_match_keras_host_and_device_form(keras_ref, case):
    """Keras' rate (float32, from an int64 step tensor, as its optimizer calls it) at many steps: tritonnn's device
    form bit for bit (the same float32 ops), its host form within fp32 rounding."""
    ref, got = _build(keras_ref, case), _build(tritonnn, case)
    assert schedules.has_device_form(got)
    want = np.array([float(ref(torch.tensor(t, dtype=torch.int64))) for t in STEPS], dtype=np.float32)
    device = [got(torch.tensor(t, dtype=torch.int64)) for t in STEPS]
    assert all(d.dtype == torch.float32 and d.shape == () for d in device)
    np.testing.assert_array_equal(np.array([float(d) for d in device], dtype=np.float32), want)
    # the host form computes in float64 (CosineDecayRestarts excepted: see its docstring): at the largest steps
    # Keras' float32 step fraction is the one off (a cycling polynomial's 1 - p there cancels to few bits)
    small = [i for i, t in enumerate(STEPS) if t < 10**5]
    host = np.array([got(STEPS[i]) for i in small])
    assert all(isinstance(got(t), float) for t in (0, 7))
    np.testing.assert_allclose(host, want[small], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=_IDS)
def test_schedule_device_form_never_reads_the_host(case):
    """Recorded once on a device step (host syncs refused) and replayed: each replay gives the eager rate."""
    s = _build(tritonnn, case)
    step = torch.zeros((), dtype=torch.int64)
    graph = EmulatedGraph(s, (step,))
    for t in (0, 1, 3, 4, 11, 12, 28, 363, 10**6):
        step.fill_(t)
        assert torch.equal(graph.replay(), s(step))


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=_IDS)
def test_schedule_configs_and_serialization_match_keras(keras_ref, case):
    ref, got = _build(keras_ref, case), _build(tritonnn, case)
    assert got.get_config() == ref.get_config()
    assert list(got.get_config()) == list(ref.get_config())
    assert tritonnn.optimizers.schedules.serialize(got) == keras_ref.optimizers.schedules.serialize(ref)
    # each side reads the other's serialized form
    back = tritonnn.optimizers.schedules.deserialize(keras_ref.optimizers.schedules.serialize(ref))
    assert type(back) is type(got) and back.get_config() == ref.get_config()
    there = keras_ref.optimizers.schedules.deserialize(tritonnn.optimizers.schedules.serialize(got))
    assert type(there).__name__ == case[1] and there.get_config() == ref.get_config()
    via_saving = tritonnn.saving.deserialize_keras_object(keras_ref.saving.serialize_keras_object(ref))
    assert type(via_saving) is type(got)


@pytest.mark.parametrize(
    "name,args",
    [("InverseTimeDecay", (0.1, 0, 0.5)), ("PolynomialDecay", (0.1, -1)), ("CosineDecayRestarts", (0.1, 0))],
)
def test_schedule_argument_checks_match_keras(keras_ref, name, args):
    with pytest.raises(ValueError) as ref:
        getattr(keras_ref.optimizers.schedules, name)(*args)
    with pytest.raises(ValueError) as got:
        getattr(tritonnn.optimizers.schedules, name)(*args)
    assert str(got.value) == str(ref.value)


def test_schedule_defaults_match_keras(keras_ref):
    for name in ("InverseTimeDecay", "PolynomialDecay", "CosineDecayRestarts"):
        kwargs = {"decay_rate": 0.5} if "Inverse" in name else {}
        ref = getattr(keras_ref.optimizers.schedules, name)(0.1, 5, **kwargs)
        got = getattr(tritonnn.optimizers.schedules, name)(0.1, 5, **kwargs)
        assert got.get_config() == ref.get_config()


_FIT_X = np.random.default_rng(3).normal(size=(48, 6)).astype("float32")
_FIT_Y = np.random.default_rng(4).integers(0, 4, size=(48,))


def _fit_with_schedule(K: Any, case: tuple, weights: list[np.ndarray] | None) -> dict[str, Any]:
    model = K.Sequential([K.Input((6,)), K.layers.Dense(8, activation="relu"), K.layers.Dense(4)])
    if weights is not None:
        model.set_weights(weights)
    opt = K.optimizers.SGD(learning_rate=_build(K, case), momentum=0.9)
    model.compile(optimizer=opt, loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    h = model.fit(_FIT_X, _FIT_Y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    return {
        "history": {k: [float(v) for v in vs] for k, vs in h.history.items()},
        "weights": [np.asarray(w) for w in model.get_weights()],
        "iterations": int(to_numpy(K, opt.iterations)),
        "learning_rate": float(to_numpy(K, opt.learning_rate)),
    }


@pytest.mark.parametrize("case", [SCHEDULE_CASES[i] for i in (1, 4, 6)], ids=[_IDS[i] for i in (1, 4, 6)])
def test_sgd_with_schedule_fits_like_keras(keras_ref, case):
    """18 SGD steps (momentum 0.9) whose rate follows the schedule: losses, weights and the final rate as Keras'."""
    keras_ref.utils.set_random_seed(0)
    w0 = keras_ref.Sequential([keras_ref.Input((6,)), keras_ref.layers.Dense(8), keras_ref.layers.Dense(4)])
    weights = [np.asarray(w) for w in w0.get_weights()]
    ref = _fit_with_schedule(keras_ref, case, weights)
    got = _fit_with_schedule(tritonnn, case, weights)
    assert_same(ref, got, rtol=1e-4, atol=1e-5)


# ---- keras.utils.PyDataset / Sequence -----------------------------------------------------------------------------

_DS_X = np.random.default_rng(5).normal(size=(40, 6)).astype("float32")
_DS_Y = np.random.default_rng(6).integers(0, 4, size=(40,))
_DS_W = np.random.default_rng(7).uniform(0.5, 1.5, size=(40,)).astype("float32")


def _dataset_class(K: Any) -> type:
    """The same PyDataset subclass under either module: batches of 8 by index, a log of every call."""

    class Batches(K.utils.PyDataset):
        def __init__(self, parts: str = "xy", n: int = 5, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.parts, self.n, self.log = parts, n, []

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> Any:
            self.log.append(i)
            s = slice(8 * i, 8 * i + 8)
            if self.parts == "x":
                return _DS_X[s]
            if self.parts == "xyw":
                return _DS_X[s], _DS_Y[s], _DS_W[s]
            return [_DS_X[s], _DS_Y[s]] if self.parts == "list" else (_DS_X[s], _DS_Y[s])

        def on_epoch_begin(self) -> None:
            self.log.append("begin")

        def on_epoch_end(self) -> None:
            self.log.append("end")

    return Batches


def _ds_model(K: Any, weights: list[np.ndarray]) -> Any:
    model = K.Sequential([K.Input((6,)), K.layers.Dense(8, activation="relu"), K.layers.Dense(4)])
    model.set_weights(weights)
    model.compile(
        optimizer=K.optimizers.SGD(0.1, momentum=0.9),
        loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _ds_weights(keras_ref: Any) -> list[np.ndarray]:
    keras_ref.utils.set_random_seed(1)
    m = keras_ref.Sequential([keras_ref.Input((6,)), keras_ref.layers.Dense(8), keras_ref.layers.Dense(4)])
    return [np.asarray(w) for w in m.get_weights()]


def _ds_run(K: Any, weights: list[np.ndarray], parts: str, fit_kwargs: dict[str, Any]) -> dict[str, Any]:
    Batches = _dataset_class(K)
    model = _ds_model(K, weights)
    train, val = Batches(parts), Batches("xy", n=2)
    h = model.fit(train, epochs=3, shuffle=False, verbose=0, validation_data=val, **fit_kwargs)
    first_fit = list(train.log)
    train.log.clear()
    model.fit(train, epochs=2, shuffle=False, verbose=0)
    test = Batches(parts)
    evaluated = model.evaluate(test, verbose=0, return_dict=True)
    pred = Batches("x")
    predicted = model.predict(pred, verbose=0)
    return {
        "history": {k: [float(v) for v in vs] for k, vs in h.history.items()},
        "weights": [np.asarray(w) for w in model.get_weights()],
        "evaluate": {k: float(v) for k, v in evaluated.items()},
        "predict": np.asarray(predicted),
        "calls": {
            "fit": first_fit,
            "second_fit": train.log,
            "validation": val.log,
            "evaluate": test.log,
            "predict": pred.log,
        },
    }


@pytest.mark.parametrize(
    "parts,fit_kwargs",
    [("xy", {}), ("list", {}), ("xyw", {}), ("xy", {"steps_per_epoch": 3}), ("xy", {"class_weight": {0: 2.0}})],
    ids=["tuple", "list", "sample_weight", "steps_per_epoch", "class_weight"],
)
def test_pydataset_fit_evaluate_predict_like_keras(keras_ref, parts, fit_kwargs):
    """The same PyDataset subclass under each module, from the same weights: the history (with validation on a
    PyDataset), the weights, evaluate's and predict's results, and every call to ``__getitem__``,
    ``on_epoch_begin`` and ``on_epoch_end`` in order (``on_epoch_end`` once more than the epochs in fit and
    evaluate: Keras' iterator "resets" first)."""
    weights = _ds_weights(keras_ref)
    ref = _ds_run(keras_ref, weights, parts, fit_kwargs)
    got = _ds_run(tritonnn, weights, parts, fit_kwargs)
    # Keras' first fit of a model draws batch 0 once more to build its metrics (inside one more on_epoch_begin),
    # then resets: its log starts ["begin", 0, "end", ...] where tritonnn's starts ["end", ...]
    peek = differences.deliberate("data.pydataset-first-fit-peek")
    ref_first = ref["calls"]["fit"]
    assert ref_first[:3] == ["begin", 0, "end"]
    assert got["calls"]["fit"] == ref_first[2:], peek
    assert got["calls"]["fit"].count("end") == ref_first.count("end")
    ref["calls"]["fit"] = got["calls"]["fit"]
    assert_same(ref, got, rtol=1e-4, atol=1e-5)


def test_pydataset_shuffled_batch_order(keras_ref):
    """``fit(shuffle=True)`` (the default): each epoch draws every batch once, in a new random order, under
    both; the orders themselves come from different generators."""
    logs = {}
    for K in (keras_ref, tritonnn):
        K.utils.set_random_seed(3)
        ds = _dataset_class(K)("xy", n=5)
        _ds_model(K, _ds_weights(keras_ref)).fit(ds, epochs=3, verbose=0)
        logs[K.__name__] = [c for c in ds.log if c != "begin"]
    ref, got = logs["keras"], logs["tritonnn"]
    assert isinstance(ref[0], int) and ref[1] == "end"
    ref = ref[1:]  # Keras' first fit's extra batch 0, see above
    split = lambda log: [sorted(c) for c in _epochs(log)]  # noqa: E731
    assert split(got) == split(ref) == [[], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    orders = _epochs(got)[1:]
    assert len({tuple(o) for o in orders}) > 1 or orders[0] != [0, 1, 2, 3, 4]
    differences.deliberate("data.pydataset-shuffle-order")


def _epochs(log: list) -> list[list[int]]:
    """The batch indices between consecutive "end" calls."""
    out, cur = [], []
    for c in log:
        if c == "end":
            out.append(cur)
            cur = []
        else:
            cur.append(c)
    return out


def test_pydataset_base_class_as_keras(keras_ref):
    assert tritonnn.utils.Sequence is tritonnn.utils.PyDataset
    assert keras_ref.utils.Sequence is keras_ref.utils.PyDataset
    for K in (keras_ref, tritonnn):
        ds = _dataset_class(K)("xy", n=3, workers=4, use_multiprocessing=True, max_queue_size=3)
        assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size, ds.num_batches) == (4, True, 3, 3)
        assert [b[0].shape for b in ds] == [(8, 6)] * 3
        assert (K.utils.PyDataset().workers, K.utils.PyDataset().max_queue_size) == (1, 10)
    for K in (keras_ref, tritonnn):

        class NoSuper(K.utils.PyDataset):
            def __init__(self):
                pass

            def __len__(self):
                return 1

            def __getitem__(self, i):
                return (_DS_X[:2], _DS_Y[:2], _DS_W[:2], _DS_W[:2])

        with pytest.warns(UserWarning, match="should call `super"):
            assert NoSuper().workers == 1
        model = _ds_model(K, _ds_weights(keras_ref))
        with pytest.raises(ValueError, match="must return a tuple"):
            model.fit(NoSuper(), verbose=0)
        with pytest.raises(NotImplementedError):
            K.utils.PyDataset()[0]


# ---- keras.utils.Progbar ------------------------------------------------------------------------------------------


def _progbar_session(K: Any, **kwargs: Any) -> Any:
    bar = K.utils.Progbar(10, verbose=0, **kwargs)
    bar.update(1, [("loss", 1.0), ("acc", 0.5)])
    bar.update(4, [("loss", 0.4), ("acc", 0.7)])  # weighted by the 3 steps since the last update
    bar.add(2, [("loss", np.array([0.2, 0.4])), ("lr", 0.01)])
    bar.update(6, [("acc", 0.9)])  # no new steps: weight 1
    return bar


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"stateful_metrics": ["acc"]}, {"stateless_metrics": ["loss"]}],
    ids=["default", "stateful", "stateless"],
)
def test_progbar_accumulates_values_as_keras(keras_ref, kwargs):
    ref, got = _progbar_session(keras_ref, **kwargs), _progbar_session(tritonnn, **kwargs)
    assert got._values_order == ref._values_order and got._seen_so_far == ref._seen_so_far == 6
    assert_same(
        {k: [np.asarray(v[0], np.float64), v[1]] for k, v in ref._values.items()},
        {k: [np.asarray(v[0], np.float64), v[1]] for k, v in got._values.items()},
    )
    for bar in (ref, got):  # a finalizing update shows its values as given
        bar.update(10, [("loss", 0.25)])
        assert bar._values["loss"] == [0.25, 1]
    assert (got.target, got.width, got.verbose, got.interval, got.unit_name) == (10, 20, 0, 0.05, "step")
    with pytest.raises(ValueError, match="Only one of"):
        tritonnn.utils.Progbar(3, stateful_metrics=["a"], stateless_metrics=["b"])


def _final_values(line: str) -> dict[str, float]:
    import re

    return {k: float(v) for k, v in re.findall(r" - (\w+): ([-0-9.e+]+)", line)}


@pytest.mark.parametrize("verbose", [1, 2])
def test_progbar_prints_like_keras(keras_ref, capsys, verbose):
    """Both print; the final line (``verbose=2``: the only one) shows ``target/target`` and the same averages."""
    out = {}
    for K in (keras_ref, tritonnn):
        bar = K.utils.Progbar(3, verbose=verbose, unit_name="sample", stateful_metrics=["lr"])
        bar.update(1, [("loss", 1.0), ("lr", 0.1)])
        bar.add(1, [("loss", 0.5), ("lr", 0.05)])
        bar.update(3, [("loss", 0.25), ("lr", 0.01)], finalize=True)
        out[K.__name__] = capsys.readouterr().out
    ref_line = out["keras"].replace("\b", "").split("\r")[-1].strip().splitlines()[-1]
    got_line = out["tritonnn"].replace("\b", "").split("\r")[-1].strip().splitlines()[-1]
    assert "3/3" in got_line and "/sample" in got_line and "/sample" in ref_line
    assert _final_values(got_line) == _final_values(ref_line) == {"loss": 0.25, "lr": 0.01}
    if verbose == 2:
        assert out["tritonnn"].count("\n") == out["keras"].count("\n") == 1


# ---- keras.config: logging, tracebacks, unsafe deserialization, the caps on fit ----------------------------------


@pytest.fixture
def _config_restored(keras_ref):
    """Each module's process-wide settings as they were, after the test (Keras' live in its global_state)."""
    from keras.src.backend.common import global_state

    cfg = tritonnn.config
    saved = (
        cfg._INTERACTIVE_LOGGING,
        cfg._TRACEBACK_FILTERING,
        cfg._SAFE_MODE,
        cfg._MAX_EPOCHS,
        cfg._MAX_STEPS_PER_EPOCH,
    )
    keras_saved = {
        k: global_state.get_global_attribute(k)
        for k in ("interactive_logging", "traceback_filtering", "safe_mode_saving")
    }
    keras_caps = (keras_ref.config.max_epochs(), keras_ref.config.max_steps_per_epoch())
    yield
    (cfg._INTERACTIVE_LOGGING, cfg._TRACEBACK_FILTERING, cfg._SAFE_MODE, cfg._MAX_EPOCHS, cfg._MAX_STEPS_PER_EPOCH) = (
        saved
    )
    for k, v in keras_saved.items():
        global_state.set_global_attribute(k, v)
    keras_ref.config.set_max_epochs(keras_caps[0])
    keras_ref.config.set_max_steps_per_epoch(keras_caps[1])


def _config_state(K: Any) -> dict[str, Any]:
    c = K.config
    return {
        "interactive_logging": c.is_interactive_logging_enabled(),
        "utils.interactive_logging": K.utils.is_interactive_logging_enabled(),
        "traceback_filtering": c.is_traceback_filtering_enabled(),
        "max_epochs": c.max_epochs(),
        "max_steps_per_epoch": c.max_steps_per_epoch(),
    }


def test_config_switches_as_keras(keras_ref, _config_restored):
    from keras.src.saving import serialization_lib

    states = {}
    for K in (keras_ref, tritonnn):
        seen = [_config_state(K)]
        K.config.disable_interactive_logging()
        K.config.disable_traceback_filtering()
        K.config.set_max_epochs(3)
        K.config.set_max_steps_per_epoch(7)
        seen.append(_config_state(K))
        K.utils.enable_interactive_logging()
        K.config.enable_traceback_filtering()
        K.config.set_max_epochs(None)
        K.config.set_max_steps_per_epoch(None)
        seen.append(_config_state(K))
        K.utils.disable_interactive_logging()
        seen.append(_config_state(K))
        K.config.enable_interactive_logging()
        K.config.enable_unsafe_deserialization()
        states[K.__name__] = seen
    assert_same(states["keras"], states["tritonnn"])
    assert states["tritonnn"][0] == {
        "interactive_logging": True,
        "utils.interactive_logging": True,
        "traceback_filtering": True,
        "max_epochs": None,
        "max_steps_per_epoch": None,
    }
    assert serialization_lib.in_safe_mode() is False and tritonnn.config.in_safe_mode() is False


def test_disabled_interactive_logging_sends_fit_output_to_logging(keras_ref, _config_restored, capsys, caplog):
    weights = _ds_weights(keras_ref)
    out = {}
    for K in (keras_ref, tritonnn):
        K.config.disable_interactive_logging()
        model = _ds_model(K, weights)
        model.fit(_DS_X, _DS_Y, batch_size=8, epochs=2, verbose=1)
        model.fit(_DS_X, _DS_Y, batch_size=8, epochs=1, verbose=2)
        out[K.__name__] = capsys.readouterr().out
    # Keras' per-batch bar updates run on its callbacks' worker thread, where its (thread-local) switch reads as
    # the default: they still reach stdout; its epoch lines and verbose=2 lines do not. tritonnn prints nothing.
    assert out["tritonnn"] == "" and "Epoch 1/2" not in out["keras"] and "\n5/5 - " not in out["keras"]
    assert "loss: " in out["keras"], differences.deliberate("config.interactive-logging-everywhere")
    import logging

    with caplog.at_level(logging.INFO, logger="tritonnn"):
        _ds_model(tritonnn, weights).fit(_DS_X, _DS_Y, batch_size=8, epochs=2, verbose=2)
    messages = [r.getMessage() for r in caplog.records if r.name == "tritonnn"]
    assert messages[0] == "Epoch 1/2" and messages[1].startswith("5/5 - ") and " - loss: " in messages[1]
    tritonnn.config.enable_interactive_logging()
    _ds_model(tritonnn, weights).fit(_DS_X, _DS_Y, batch_size=8, epochs=1, verbose=2)
    assert capsys.readouterr().out.startswith("Epoch 1/1\n5/5 - ")


def _capped_run(K: Any, weights: list[np.ndarray], data: str) -> dict[str, Any]:
    model = _ds_model(K, weights)
    x = _dataset_class(K)("xy") if data == "pydataset" else _DS_X
    y = None if data == "pydataset" else _DS_Y
    with pytest.warns(UserWarning) as caught:
        h = model.fit(x, y, batch_size=None if y is None else 8, epochs=5, shuffle=False, verbose=0)
        ev = model.evaluate(x, y, batch_size=None if y is None else 8, verbose=0, return_dict=True)
        pred = model.predict(_dataset_class(K)("x") if data == "pydataset" else _DS_X, batch_size=8, verbose=0)
    limits = sorted({str(w.message) for w in caught if str(w.message).startswith("Limiting")})
    return {
        "history": {k: [float(v) for v in vs] for k, vs in h.history.items()},
        "iterations": int(to_numpy(K, model.optimizer.iterations)),
        "weights": [np.asarray(w) for w in model.get_weights()],
        "evaluate": {k: float(v) for k, v in ev.items()},
        "predict": np.asarray(pred),
        "warnings": limits,
    }


@pytest.mark.parametrize("data", ["arrays", "pydataset"])
def test_max_epochs_and_steps_cap_fit_as_keras(keras_ref, _config_restored, data):
    """``set_max_epochs`` and ``set_max_steps_per_epoch(2)``: fit(epochs=5) runs the capped epochs of 2 steps,
    evaluate and predict 2 batches, each with Keras' warning. (Arrays: one epoch. With arrays and fewer steps
    than batches, Keras' next epoch continues from the batch where the last one stopped, tritonnn's starts from
    the first, as it does for an explicit ``steps_per_epoch``: not compared here.)"""
    epochs = 1 if data == "arrays" else 2
    weights = _ds_weights(keras_ref)
    runs = {}
    for K in (keras_ref, tritonnn):
        K.config.set_max_epochs(epochs)
        K.config.set_max_steps_per_epoch(2)
        runs[K.__name__] = _capped_run(K, weights, data)
    ref, got = runs["keras"], runs["tritonnn"]
    assert got["iterations"] == 2 * epochs and len(got["history"]["loss"]) == epochs
    assert got["predict"].shape == (16, 4)
    assert got["warnings"] == [f"Limiting epochs to {epochs}", "Limiting steps_per_epoch to 2"]
    assert_same(ref, got, rtol=1e-4, atol=1e-5)


# ---- keras.backend.result_type ------------------------------------------------------------------------------------

_DT = ["bool", "uint8", "uint16", "uint32", "int8", "int16", "int32", "int64", "bfloat16", "float16", "float32"]
_DT += ["float64", "complex64", "complex128"]


def test_result_type_matches_keras_over_every_pair_and_python_type(keras_ref):
    """Every pair (and triple with a Python type) of Keras' dtypes, Python's bool/int/float, None, numpy and torch
    dtypes: the same dtype, or the same error class."""
    kinds = [*_DT, bool, int, float, None, np.float64, np.dtype("int16"), torch.float16, torch.int64]
    cases = [()] + [(a,) for a in kinds] + [(a, b) for a in kinds for b in kinds]
    cases += [(a, b, c) for a in _DT for b in (int, float) for c in ("int8", "float16")]
    cases += [("float8_e4m3fn", "float32"), ("string", "int32"), ("uint64", "int64")]
    ref = [observe(lambda c=c: keras_ref.backend.result_type(*c)) for c in cases]
    got = [observe(lambda c=c: tritonnn.backend.result_type(*c)) for c in cases]
    assert_same(dict(zip(map(repr, cases), ref, strict=True)), dict(zip(map(repr, cases), got, strict=True)))


def test_result_type_follows_floatx_like_keras(keras_ref):
    cases = [(int,), (float,), (int, float), ("int8", float), (int, int), ("bool", int), ("bfloat16", int)]
    out = {}
    for K in (keras_ref, tritonnn):
        K.config.set_floatx("float16")
        try:
            out[K.__name__] = [K.backend.result_type(*c) for c in cases]
        finally:
            K.config.set_floatx("float32")
    assert out["tritonnn"] == out["keras"]


# ---- keras.layers.serialize / deserialize, keras.utils.get_source_inputs, keras.utils.split_dataset ---------------


def test_layers_serialize_and_deserialize_as_keras(keras_ref):
    for K in (keras_ref, tritonnn):
        layer = K.layers.Dense(3, activation="relu", name="d")
        cfg = K.layers.serialize(layer)
        assert (cfg["module"], cfg["class_name"], cfg["registered_name"]) == ("keras.layers", "Dense", None)
        assert {k: cfg["config"][k] for k in ("name", "units", "activation", "use_bias", "trainable")} == {
            "name": "d",
            "units": 3,
            "activation": "relu",
            "use_bias": True,
            "trainable": True,
        }
        back = K.layers.deserialize(cfg)
        assert type(back) is type(layer) and back.get_config() == layer.get_config()
        model = K.Sequential([K.Input((4,)), K.layers.Dense(2), K.layers.Dropout(0.5)], name="m")
        again = K.layers.deserialize(K.layers.serialize(model))
        assert isinstance(again, K.Sequential) and [type(x).__name__ for x in again.layers] == ["Dense", "Dropout"]
        with pytest.raises(ValueError, match="not a `keras.layers.Layer`"):
            K.layers.deserialize(K.saving.serialize_keras_object(K.losses.MeanSquaredError()))
    # Keras reads tritonnn's serialized layer
    there = keras_ref.layers.deserialize(tritonnn.layers.serialize(tritonnn.layers.Dense(5, name="e")))
    assert type(there).__name__ == "Dense" and there.units == 5 and there.name == "e"


def _graph(K: Any) -> dict[str, Any]:
    a, b = K.Input((3,), name="a"), K.Input((2,), name="b")
    x = K.layers.Dense(4)(a)
    y = K.layers.Concatenate()([x, b])
    z = K.layers.Dense(1)(y)
    w = K.layers.Add()([K.layers.Dense(2)(b), K.layers.Dense(2)(b)])
    v = K.layers.Concatenate()([K.layers.Dense(2)(w), K.layers.Dense(2)(a), z])
    inputs = [a, b]
    index = lambda ts: [next(i for i, t in enumerate(inputs) if t is s) for s in ts]  # noqa: E731
    gsi = K.utils.get_source_inputs
    arr = np.ones((2, 3))
    return {
        "z": index(gsi(z)),
        "w": index(gsi(w)),
        "v": index(gsi(v)),
        "a": index(gsi(a)),
        "x": index(gsi(x)),
        "array": gsi(arr) is arr,
    }


def test_get_source_inputs_as_keras(keras_ref):
    assert (
        _graph(tritonnn) == _graph(keras_ref) == {"z": [0, 1], "w": [1], "v": [1, 0], "a": [0], "x": [0], "array": True}
    )


def _splits(K: Any) -> dict[str, Any]:
    x = np.arange(20, dtype="float32").reshape(10, 2)
    y = np.arange(10) * 10
    out: dict[str, Any] = {}
    for name, kwargs in {
        "seeded": {"left_size": 0.7, "shuffle": True, "seed": 3},
        "right_int": {"right_size": 4, "shuffle": True, "seed": 11},
        "both": {"left_size": 0.25, "right_size": 0.75, "shuffle": True, "seed": 0},
    }.items():
        left, right = K.utils.split_dataset((x, y), **kwargs)
        out[name] = {
            "types": [type(left).__name__, type(right).__name__],
            "lengths": [len(left), len(right)],
            "left": [[np.asarray(t) for t in left[i]] for i in range(len(left))],
            "right": [[np.asarray(t) for t in right[i]] for i in range(len(right))],
        }
    left, right = K.utils.split_dataset(x, left_size=3, shuffle=True, seed=5)
    out["array"] = [[np.asarray(left[i][0]) for i in range(len(left))], len(right), len(left[0])]
    for name, kwargs in {
        "no_size": {},
        "zero_both": {"left_size": 0, "right_size": 0},
        "too_big": {"left_size": 10},
        "fraction_over_one": {"left_size": 0.6, "right_size": 0.6},
        "bad_type": {"left_size": "half"},
        "remainder": {"left_size": 3, "right_size": 3, "shuffle": True, "seed": 1},
    }.items():
        out[name] = observe(lambda kw=kwargs: K.utils.split_dataset((x, y), **kw))
    out["not_a_dataset"] = observe(lambda: K.utils.split_dataset({"x": x}, left_size=0.5))
    return out


def test_split_dataset_as_keras_on_torch(keras_ref):
    """With ``shuffle=True`` and a seed: the same ``torch.utils.data.Subset`` pair as Keras on torch (the same
    samples in the same order), and the same errors for bad sizes."""
    assert_same(_splits(keras_ref), _splits(tritonnn))


def test_split_dataset_without_shuffle_keeps_the_order(keras_ref):
    """``shuffle=False``: tritonnn's left part is the first samples in order, as Keras documents it (and does on
    TensorFlow); Keras 3.15 on torch hands ``random_split`` no generator, so torch's global RNG permutes them."""
    x = np.arange(10, dtype="float32")
    left, right = tritonnn.utils.split_dataset(x, left_size=0.6)
    assert left.indices == [0, 1, 2, 3, 4, 5] and right.indices == [6, 7, 8, 9]
    torch.manual_seed(0)
    ref_left, _ = keras_ref.utils.split_dataset(x, left_size=0.6)
    unshuffled = differences.deliberate("utils.split-dataset-unshuffled")
    assert sorted(ref_left.indices) != ref_left.indices, unshuffled
