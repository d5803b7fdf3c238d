"""The CUDA-graph fast path of fit/evaluate/predict (tritonnn/trainers/step_runner.py), exercised on a CPU.

On a machine without a GPU the graph factory is replaced by ``EmulatedGraph``, which has a CUDA graph's semantics
(record the step's ops once; replay exactly those ops on the same tensors, shapes and Python scalars frozen; a host
sync during capture is refused). So these tests check the plumbing: warm-up, static input buffers, the eager
fallback for partial batches and for steps that cannot be captured, the optimizer outside the graph, and that the
results equal an eager run bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn.trainers import data
from tritonnn.trainers import step_runner as _graphs

RNG = np.random.default_rng(0)
X = RNG.standard_normal((200, 12)).astype("float32")
Y = RNG.integers(0, 4, 200)


@pytest.fixture
def emulated(monkeypatch):
    """Make every model 'graph capable' on the CPU, with the emulated graph; count the graphs made."""
    made = []

    def factory(device):
        def make(fn, static_args):
            g = _graphs.EmulatedGraph(fn, static_args)
            made.append(g)
            return g

        return make

    monkeypatch.setattr(_graphs, "factory_for", factory)
    return made


def _model(dropout=0.0, jit_compile="auto", **compile_kw):
    keras.utils.set_random_seed(3)
    layers = [keras.Input(shape=(12,)), keras.layers.Dense(16, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(4))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.01, 3, 0.5)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
        **compile_kw,
    )
    return model


def _weights(model):
    return [w.detach().clone() for w in model.weights]


def test_captured_fit_evaluate_predict_equal_eager_bit_for_bit(emulated):
    eager = _model(jit_compile=False)
    h_eager = eager.fit(X, Y, batch_size=32, epochs=3, verbose=0)  # 200 = 6 x 32 + a partial batch of 8
    graphed = _model()
    h_graphed = graphed.fit(X, Y, batch_size=32, epochs=3, verbose=0)
    run = graphed._last_step_runner
    assert isinstance(run, _graphs.StepGraph) and run.disabled is None
    # 21 steps: 2 warm-up + 1 captured (the emulated capture runs it), 15 replays, 3 partial batches eager.
    assert (run.replays, run.eager_calls) == (15, 2 + 3)
    for a, b in zip(_weights(eager), _weights(graphed), strict=True):
        assert torch.equal(a, b)
    assert h_eager.history == h_graphed.history  # losses and metrics accumulate on the device in the graph too
    assert eager.evaluate(X, Y, batch_size=32, verbose=0) == graphed.evaluate(X, Y, batch_size=32, verbose=0)
    # predict's outputs are copied out of the graph before the next replay overwrites them
    np.testing.assert_array_equal(eager.predict(X, batch_size=16, verbose=0), graphed.predict(X, batch_size=16))
    assert len(emulated) == 3  # one graph per fit / evaluate / predict


def test_the_learning_rate_schedule_is_not_frozen_in_the_graph(emulated):
    # The optimizer's update is in the graph and reads the decayed rate from the device step count (checked
    # against eager above bit for bit; here: the rate did change during the captured steps).
    model = _model()
    model.fit(X, Y, batch_size=32, epochs=2, verbose=0)
    assert model.optimizer.iterations == 14
    assert model.optimizer.learning_rate == pytest.approx(0.01 * 0.5 ** (14 / 3), rel=1e-6)


@pytest.mark.parametrize(
    "setup, reason",
    [
        (lambda: _model(jit_compile=False), "jit_compile=False"),
    ],
)
def test_steps_that_cannot_be_captured_run_eagerly(emulated, setup, reason):
    model = setup()
    assert reason in model._graph_blocker("train")
    model.fit(X, Y, batch_size=32, epochs=1, verbose=0)
    assert not isinstance(model._last_step_runner, _graphs.StepGraph)
    assert emulated == []


def _fit_pair(build, **fit_kw):
    """The same model fitted eagerly (jit_compile=False) and with capture: (eager, graphed, histories)."""
    eager = build(False)  # each built right before its fit: both draw the same shuffle seed after set_random_seed
    h_eager = eager.fit(X, Y, batch_size=32, epochs=2, verbose=0, **fit_kw)
    graphed = build("auto")
    h_graphed = graphed.fit(X, Y, batch_size=32, epochs=2, verbose=0, **fit_kw)
    return eager, graphed, h_eager.history, h_graphed.history


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_dropout_and_loss_scaling_steps_are_one_replay_and_equal_eager(emulated, policy):
    """Training-mode dropout draws its seed on the device and float16 loss scaling decides on the device, so the
    whole step, optimizer update included, is one replay: no eager work after it, and each replay draws a new
    mask (the results equal an eager run bit for bit, which draws a new mask per step)."""
    keras.mixed_precision.set_global_policy(policy)
    try:

        def build(jit):
            keras.utils.set_random_seed(3)
            model = keras.Sequential(
                [
                    keras.Input(shape=(12,)),
                    keras.layers.Dense(16, activation="relu"),
                    keras.layers.Dropout(0.25),
                    keras.layers.Dense(16, activation="relu"),
                    keras.layers.Dropout(0.1, seed=7),
                    keras.layers.Dense(4),
                ]
            )
            model.compile(
                optimizer="adam",
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
                jit_compile=jit,
            )
            return model

        eager, graphed, h_eager, h_graphed = _fit_pair(build)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert graphed._graph_blocker("train") is None and graphed._optimizer_in_graph()
    run = graphed._last_step_runner
    assert isinstance(run, _graphs.StepGraph) and run.disabled is None and run.after is None
    assert run.replays == 2 * 6 - 3  # 7 batches an epoch: 6 full (2 warm-up + 1 captured first), 1 partial
    for a, b in zip(_weights(eager), _weights(graphed), strict=True):
        assert torch.equal(a, b)
    assert h_eager == h_graphed
    if policy == "mixed_float16":
        assert isinstance(graphed.optimizer, keras.optimizers.LossScaleOptimizer)
        assert int(graphed.optimizer.iterations) == int(eager.optimizer.iterations) == 14


def test_a_learning_rate_set_between_replays_takes_effect_without_recapture(emulated):
    """ReduceLROnPlateau-style writes go to the device tensor the captured update reads."""

    class Halve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer.learning_rate = self.model.optimizer.learning_rate * 0.5

    def build(jit):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input(shape=(12,)), keras.layers.Dense(8), keras.layers.Dense(4)])
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        return model

    eager, graphed, h_eager, h_graphed = _fit_pair(build, callbacks=[Halve()])
    assert isinstance(graphed._last_step_runner, _graphs.StepGraph) and graphed._last_step_runner.after is None
    assert len(emulated) == 1  # one capture for the whole fit
    assert graphed.optimizer.learning_rate == pytest.approx(0.025)
    for a, b in zip(_weights(eager), _weights(graphed), strict=True):
        assert torch.equal(a, b)


def test_a_host_computed_learning_rate_keeps_the_update_after_the_replay(emulated):
    class Stepwise(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.01 if int(step) < 5 else 0.001

        def get_config(self):
            return {}

    def build(jit):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input(shape=(12,)), keras.layers.Dense(4)])
        model.compile(
            optimizer=keras.optimizers.Adam(Stepwise()),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        return model

    eager, graphed, h_eager, h_graphed = _fit_pair(build)
    assert not graphed._optimizer_in_graph()
    run = graphed._last_step_runner
    assert isinstance(run, _graphs.StepGraph) and run.after is not None and run.replays > 0
    for a, b in zip(_weights(eager), _weights(graphed), strict=True):
        assert torch.equal(a, b)


def test_a_custom_train_step_is_not_captured(emulated):
    class Custom(keras.Sequential):
        def train_step(self, data):
            return super().train_step(data)

    keras.utils.set_random_seed(3)
    model = Custom([keras.Input(shape=(12,)), keras.layers.Dense(4)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert model._graph_blocker("train") == "a custom train_step"


class _Hits(keras.metrics.Metric):
    """A Keras-style custom metric: its variable is updated in place by assign_add, inside the captured step."""

    def __init__(self, name="hits"):
        super().__init__(name=name)
        self.hits = self.add_variable(shape=(), initializer="zeros", name="hits")

    def update_state(self, y_true, y_pred, sample_weight=None):
        right = keras.ops.equal(keras.ops.argmax(y_pred, axis=-1), keras.ops.cast(y_true, "int64"))
        self.hits.assign_add(keras.ops.sum(keras.ops.cast(right, self.dtype)))

    def result(self):
        return self.hits


def test_float_labels_and_a_custom_metric_are_captured_like_integer_labels(emulated):
    # Float labels holding whole numbers are checked once per fit (ArraySource.label_bounds): the captured step
    # has no host sync for them (a capture would refuse it), converts them on the device, and trains exactly as
    # integer labels do; a custom metric's variables update in the graph too.
    runs = []
    for labels in (Y, Y.astype("float32")):
        model = _model()
        model.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2), _Hits()],
        )
        history = model.fit(X, labels, batch_size=32, epochs=2, verbose=0)
        run = model._last_step_runner
        assert isinstance(run, _graphs.StepGraph) and run.disabled is None and run.replays == 2 * 6 - 3
        runs.append((history.history, model.evaluate(X, labels, batch_size=32, verbose=0, return_dict=True)))
    assert runs[0] == runs[1]
    assert runs[0][0]["hits"][-1] == pytest.approx(runs[0][0]["accuracy"][-1] * len(X))


def test_a_capture_that_fails_falls_back_to_eager_with_a_warning(emulated):
    class Syncing(keras.layers.Layer):
        def call(self, x):
            if float(x.abs().max()) > 1e9:  # a host sync: CUDA graphs cannot capture it
                raise AssertionError("unreachable")
            return x

    def build(jit):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input(shape=(12,)), Syncing(), keras.layers.Dense(4)])
        model.compile(
            optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit
        )
        return model

    eager = build(False)
    eager.fit(X, Y, batch_size=32, epochs=2, verbose=0)
    model = build("auto")
    with pytest.warns(RuntimeWarning, match="could not be captured.*host sync"):
        model.fit(X, Y, batch_size=32, epochs=2, verbose=0)
    run = model._last_step_runner
    assert run.disabled is not None and run.replays == 0
    for a, b in zip(_weights(eager), _weights(model), strict=True):
        assert torch.equal(a, b)


def test_generator_batches_are_not_captured(emulated):
    model = _model()

    def gen():
        while True:
            yield X[:32], Y[:32]

    model.fit(gen(), steps_per_epoch=4, epochs=1, verbose=0)
    assert not isinstance(model._last_step_runner, _graphs.StepGraph)


def test_on_cpu_without_the_emulator_nothing_is_captured():
    model = _model()
    assert "not CUDA" in model._graph_blocker("train")
    model.fit(X, Y, batch_size=32, epochs=1, verbose=0)
    assert not isinstance(model._last_step_runner, _graphs.StepGraph)


def test_jit_compile_is_checked():
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="jit_compile"):
        model.compile(optimizer="adam", loss="mse", jit_compile="yes")


def test_the_emulated_graph_freezes_what_a_cuda_graph_freezes():
    # Replay reruns the recorded ops on the same tensors: new input values flow through, a Python scalar read at
    # capture time stays what it was (which is why fit keeps host-side values, like the learning rate, out).
    x = torch.ones(3)
    scale = {"v": 2.0}
    g = _graphs.EmulatedGraph(lambda t: t * scale["v"] + 1, (x,))
    x.copy_(torch.tensor([1.0, 2.0, 3.0]))
    scale["v"] = 10.0
    assert g.replay().tolist() == [3.0, 5.0, 7.0]
    with pytest.raises(RuntimeError, match="host sync"):
        _graphs.EmulatedGraph(lambda t: t * float(t.sum()), (x,))


def test_a_host_key_is_part_of_the_captured_signature():
    # A data-parallel rank's share of the global batch is read from the host and frozen at capture: a step with
    # another value (same batch shape: the last global batch split 2 + 2 where full ones split 3 + 2) runs eagerly.
    weight = {"v": 0.25}
    seen = []

    def step(t):
        seen.append(weight["v"])
        return t * weight["v"]

    graph = _graphs.StepGraph(step, _graphs.EmulatedGraph, warmup=1, key=lambda: weight["v"])
    x = torch.ones(2)
    for _ in range(3):
        assert graph(x).tolist() == [0.25, 0.25]
    weight["v"] = 0.5
    assert graph(x).tolist() == [0.5, 0.5]  # eager: the graph's 0.25 would have been wrong
    weight["v"] = 0.25
    assert graph(2 * x).tolist() == [0.5, 0.5]  # the graph again
    assert (graph.replays, graph.eager_calls, seen) == (2, 2, [0.25, 0.25, 0.5])  # warm-up, capture, eager


def test_data_stays_on_the_host_when_it_would_crowd_the_gpu(monkeypatch):
    cuda = torch.device("cuda")
    arrays = [np.zeros((1000, 100), "float32"), np.zeros(1000, "int64")]  # 408 KB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**9, 2 * 10**9))
    assert data.data_device(arrays, cuda) == cuda
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (600_000, 2 * 10**9))
    assert data.data_device(arrays, cuda) == torch.device("cpu")  # 408 KB > half of 600 KB free
    assert data.data_device(arrays, torch.device("cpu")) == torch.device("cpu")


def test_host_resident_batches_are_moved_to_the_model_device():
    x, y = torch.arange(10.0).reshape(5, 2), torch.arange(5)
    source = data.ArraySource(x, y, None, 2, True, target=torch.device("meta"))
    batches = list(source.epoch(torch.Generator().manual_seed(0)))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]
    assert all(t.device.type == "meta" for b in batches for t in b[:2])
