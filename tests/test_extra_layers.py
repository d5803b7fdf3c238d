"""The extra layers inside fit: a model holding the noise layers, PReLU, Normalization, Rescaling,
UnitNormalization and Softmax trains, its training step is captured (the emulated graph on a CPU, a real CUDA graph
where there is one) with the same weights, bit for bit, as the eager run, and the noise is new on every replay; the
noise layers follow mixed precision and the input's device. Comparisons with real Keras are in
tests/compat/test_layers_extra.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn.trainers import step_runner

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 6)).astype("float32")
Y = RNG.integers(0, 3, 96)


@pytest.fixture
def emulated(monkeypatch):
    """Every model is 'graph capable' on the CPU, with the emulated graph (as tests/test_graphs.py)."""
    made = []

    def factory(device):
        def make(fn, static_args):
            graph = step_runner.EmulatedGraph(fn, static_args)
            made.append(graph)
            return graph

        return make

    monkeypatch.setattr(step_runner, "factory_for", factory)
    return made


def _model(jit_compile="auto"):
    keras.utils.set_random_seed(7)
    norm = keras.layers.Normalization()
    norm.adapt(X)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Rescaling(0.5, offset=0.1),
            norm,
            keras.layers.GaussianNoise(0.1, seed=1),
            keras.layers.Dense(16),
            keras.layers.PReLU(),
            keras.layers.GaussianDropout(0.2, seed=2),
            keras.layers.Dense(16, activation="selu"),
            keras.layers.AlphaDropout(0.1, seed=3),
            keras.layers.UnitNormalization(),
            keras.layers.ActivityRegularization(l2=0.01),
            keras.layers.Dense(3),
            keras.layers.Softmax(),
        ]
    )
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile
    )
    return model


def test_a_model_with_the_new_layers_is_captured_and_equals_the_eager_run(emulated):
    eager = _model(jit_compile=False)
    h_eager = eager.fit(X, Y, batch_size=16, epochs=2, verbose=0)
    graphed = _model()
    h_graphed = graphed.fit(X, Y, batch_size=16, epochs=2, verbose=0)
    run = graphed._last_step_runner
    assert isinstance(run, step_runner.StepGraph) and run.disabled is None  # nothing keeps the step out
    assert run.replays > 0
    for a, b in zip(eager.weights, graphed.weights, strict=True):
        assert torch.equal(a, b)
    assert h_eager.history == h_graphed.history
    np.testing.assert_array_equal(eager.predict(X, verbose=0), graphed.predict(X, verbose=0))


def test_each_replay_draws_new_noise():
    layer = keras.layers.GaussianNoise(1.0, seed=5)
    x = torch.zeros(4, 8, device="cpu")
    layer(x, training=True)  # the first call moves the generator to the input's device, eagerly
    graph = step_runner.EmulatedGraph(lambda v: layer(v, training=True), (x,))
    first = graph.outputs.clone()
    second = graph.replay().clone()
    third = graph.replay().clone()
    assert not torch.equal(first, second) and not torch.equal(second, third)
    twin = keras.layers.GaussianNoise(1.0, seed=5)
    expected = [twin(x, training=True) for _ in range(4)][1:]
    assert all(torch.equal(a, b) for a, b in zip(expected, (first, second, third), strict=True))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_noise_layers_compute_in_the_policys_dtype(policy):
    x = torch.tensor(X)
    for layer in (
        keras.layers.GaussianNoise(0.2, seed=1, dtype=policy),
        keras.layers.GaussianDropout(0.2, seed=1, dtype=policy),
        keras.layers.AlphaDropout(0.2, seed=1, dtype=policy),
        keras.layers.PReLU(dtype=policy),
        keras.layers.Rescaling(2.0, dtype=policy),
    ):
        out = layer(x, training=True)
        assert out.dtype == getattr(torch, policy.split("_")[1]), type(layer).__name__
        assert torch.isfinite(out.float()).all()


def test_the_seed_generator_follows_the_input_device():
    layer = keras.layers.GaussianDropout(0.3, seed=1)
    layer(torch.ones(2, 3, device="cpu"), training=True)
    assert layer.seed_generator.state.device.type == "cpu"
    if torch.cuda.is_available():
        out = layer(torch.ones(2, 3, device="cuda"), training=True)
        assert out.device.type == "cuda" and layer.seed_generator.state.device.type == "cuda"


def test_integer_inputs_keep_their_dtype_through_the_reshaping_layers():
    ints = torch.arange(12).reshape(2, 3, 2)
    assert keras.layers.Permute((2, 1))(ints).dtype == torch.int64
    assert keras.layers.Identity()(ints).dtype == torch.int64
    assert keras.layers.RepeatVector(2)(ints[:, 0]).dtype == torch.int64
    assert keras.layers.Lambda(lambda t: t % 2)(ints).dtype == torch.int64
    assert keras.layers.Discretization(bin_boundaries=[3.0])(ints).dtype == torch.int32


def test_functional_models_use_the_new_layers_symbolically():
    a, b = keras.Input((5,)), keras.Input((5,))
    cos = keras.layers.Dot(axes=1, normalize=True)([a, b])
    seq = keras.layers.RepeatVector(4)(a)
    flipped = keras.layers.Permute((2, 1))(seq)
    model = keras.Model([a, b], [cos, flipped])
    assert cos.shape == (None, 1) and flipped.shape == (None, 5, 4)
    xa, xb = RNG.normal(size=(3, 5)).astype("float32"), RNG.normal(size=(3, 5)).astype("float32")
    out_cos, out_flip = model.predict([xa, xb], verbose=0)
    expected = (xa * xb).sum(1) / np.linalg.norm(xa, axis=1) / np.linalg.norm(xb, axis=1)
    np.testing.assert_allclose(out_cos[:, 0], expected, rtol=1e-5)
    np.testing.assert_array_equal(out_flip, np.repeat(xa[:, :, None], 4, axis=2))
    again = keras.Model.from_config(model.get_config())
    np.testing.assert_array_equal(again.predict([xa, xb], verbose=0)[1], out_flip)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="ndim=2"):
        keras.layers.RepeatVector(2)(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="shared_axes"):
        keras.layers.PReLU(shared_axes=[3])(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="axis"):
        keras.layers.Softmax(axis=3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="count_weights"):
        keras.layers.CategoryEncoding(4, output_mode="count")(torch.tensor([[1, 2]]), count_weights=torch.ones(1, 3))
    with pytest.raises(ValueError, match="sparse"):
        keras.layers.CategoryEncoding(4, sparse=True)
    with pytest.raises(ValueError, match="adapt"):
        keras.layers.Discretization(num_bins=3)(torch.zeros(2, 1))
    with pytest.raises(ValueError, match="sorted"):
        keras.layers.Discretization(bin_boundaries=[1.0, 0.0])
    with pytest.raises(ValueError, match="given `mean` and `variance`"):
        keras.layers.Normalization(mean=1.0, variance=1.0).adapt(X)
    with pytest.raises(ValueError, match="incompatible shape"):
        norm = keras.layers.Normalization()
        norm.adapt(X)
        norm.adapt(X[:, :3])
    with pytest.raises(ValueError, match="empty iterable"):
        keras.layers.Normalization().adapt([])
    with pytest.raises(TypeError, match="callable"):
        keras.layers.Lambda("x * 2")
    with pytest.raises(ValueError, match="scale"):
        keras.layers.Rescaling("half")
    with pytest.raises(ValueError, match="seed"):
        keras.layers.GaussianNoise(0.1, seed="s")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_step_is_captured_in_a_real_graph_and_equals_eager():
    with keras.device("cuda"):
        eager = _model(jit_compile=False)
        eager.fit(X, Y, batch_size=16, epochs=2, verbose=0)
        graphed = _model()
        graphed.fit(X, Y, batch_size=16, epochs=2, verbose=0)
    run = graphed._last_step_runner
    assert isinstance(run, step_runner.StepGraph) and run.disabled is None and run.replays > 0
    for a, b in zip(eager.weights, graphed.weights, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_category_encoding_is_captured_and_checks_eagerly():
    with keras.device("cuda"):
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [keras.Input((2,), dtype="int64"), keras.layers.CategoryEncoding(5), keras.layers.Dense(3)]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        ids = RNG.integers(0, 5, (96, 2))
        model.fit(ids, Y, batch_size=16, epochs=1, verbose=0)
        run = model._last_step_runner
        assert run.disabled is None and run.replays > 0
        with pytest.raises(ValueError, match="out of range"):
            model.predict(np.array([[7, 1]]), verbose=0)
