"""Graph-safe dropout (issue #16): a Dropout layer's seed stream on the device.

``Dropout.next_seed_tensor(device)`` advances the layer's stream in device memory and returns the seed as a 0-dim
int64 tensor, equal to what ``next_seed()`` returns at the same position; with ``device_seeds`` on, the layer's
training calls and the fused Dense+Dropout (``layers/fusion.py`` ``dropout_seed``) use it. Then a captured step
(``EmulatedGraph``, a CUDA graph's semantics on a CPU: ops recorded once, replayed, host syncs refused) draws a new
mask on every replay, the masks the same layer would draw eagerly.
"""

from __future__ import annotations

import pytest
import torch

import tritonnn as keras
from tritonnn import kernels
from tritonnn.kernels.dropout import dropout_mask
from tritonnn.layers import Dropout, fusion
from tritonnn.trainers.step_runner import EmulatedGraph

EXTREME_BASES = [0, 1, 2**32 - 1, 2**62, 2**63 - 1, (0x9E3779B97F4A7C15 * 3) % 2**62, 12345678901234567]


def _device_dropout(rate: float, seed: int) -> Dropout:
    layer = Dropout(rate, seed=seed)
    layer.device_seeds = True
    return layer


def _masked(x: torch.Tensor, seed: int, rate: float) -> torch.Tensor:
    """kernels.dropout's output for the Philox mask of ``seed``: what a device seed of that value gives."""
    keep = dropout_mask(seed, rate, tuple(x.shape), x.device)
    return torch.where(keep, x * (1.0 / (1.0 - rate)), torch.zeros((), dtype=x.dtype))


# ---- the stream ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", EXTREME_BASES)
def test_the_device_stream_is_the_host_stream(base):
    host, dev = Dropout(0.5, seed=base), Dropout(0.5, seed=base)
    expected = [host.next_seed() for _ in range(3000)]
    drawn = torch.stack([dev.next_seed_tensor("cpu") for _ in range(3000)])
    assert drawn.dtype == torch.int64 and drawn.shape == (3000,)
    assert drawn.tolist() == expected
    assert dev._counter == host._counter == 3000
    assert all(0 <= s < 2**63 for s in drawn.tolist())


@pytest.mark.parametrize("counter", [2**31 - 2, 2**32 - 2, 2**63 - 3, 2**64 - 3])
def test_the_device_stream_wraps_the_counter_as_the_host_does(counter):
    """The counter's int64 wraps past 2**63 (the host's splitmix64 reads it mod 2**64 too)."""
    host, dev = Dropout(0.5, seed=2**63 - 1), Dropout(0.5, seed=2**63 - 1)
    host._counter = dev._counter = counter
    expected = [host.next_seed() for _ in range(6)]
    assert [int(dev.next_seed_tensor("cpu")) for _ in range(6)] == expected
    assert dev._counter == host._counter % 2**64


def test_host_and_device_draws_continue_one_stream():
    reference = Dropout(0.5, seed=9)
    expected = [reference.next_seed() for _ in range(12)]
    layer = Dropout(0.5, seed=9)
    drawn = [layer.next_seed(), int(layer.next_seed_tensor("cpu")), int(layer.next_seed_tensor("cpu"))]
    drawn += [layer.next_seed(), layer.next_seed(), int(layer.next_seed_tensor("cpu"))]
    drawn += [layer.next_seed() for _ in range(3)] + [int(layer.next_seed_tensor("cpu")) for _ in range(3)]
    assert drawn == expected


def test_each_device_seed_is_a_fresh_tensor():
    layer = Dropout(0.5, seed=4)
    a = layer.next_seed_tensor("cpu")
    a_value = int(a)
    b = layer.next_seed_tensor("cpu")
    assert a is not b and a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr()
    assert int(a) == a_value != int(b), "a later draw must not change a seed already handed out"


def test_base_seed_and_counter_stay_attributes_that_move_the_device_stream():
    """BackupAndRestore and DataParallel read and write ``_base_seed`` / ``_counter`` once per fit: written, the
    device stream continues from there (in place: a graph that captured the tensors follows); read, it syncs."""
    layer = Dropout(0.5, seed=1)
    for _ in range(5):
        layer.next_seed_tensor("cpu")
    assert (layer._base_seed, layer._counter) == (1, 5)
    seeds_before = [int(layer.next_seed_tensor("cpu")) for _ in range(2)]
    layer._base_seed, layer._counter = 77, 40  # a restore, or rank 0's stream with a per-rank base
    twin = Dropout(0.5, seed=77)
    twin._counter = 40
    assert [int(layer.next_seed_tensor("cpu")) for _ in range(3)] == [twin.next_seed() for _ in range(3)]
    assert (layer._base_seed, layer._counter) == (77, 43)
    assert seeds_before != [int(layer.next_seed_tensor("cpu")) for _ in range(2)]


def test_device_seeds_is_off_by_default_and_not_in_the_config():
    layer = Dropout(0.3, seed=2)
    assert layer.device_seeds is False
    layer.device_seeds = True
    config = layer.get_config()
    assert "device_seeds" not in config
    assert Dropout.from_config(config).device_seeds is False


# ---- who uses it --------------------------------------------------------------------------------------------------


def test_fusion_dropout_seed_is_the_one_rule():
    host, dev = Dropout(0.5, seed=8), _device_dropout(0.5, 8)
    s = fusion.dropout_seed(host, torch.device("cpu"))
    t = fusion.dropout_seed(dev, torch.device("cpu"))
    assert isinstance(s, int) and isinstance(t, torch.Tensor) and int(t) == s


@pytest.mark.parametrize("noise_shape", [None, (None, 1)])
def test_a_device_seeded_dropout_call_draws_the_philox_masks_of_its_stream(backend, device, noise_shape):
    layer = Dropout(0.25, noise_shape=noise_shape, seed=11)
    layer.device_seeds = True
    host = Dropout(0.25, seed=11)
    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(0)).to(device) + 3.0
    for _ in range(3):
        y = layer(x, training=True)
        seed = host.next_seed()
        if noise_shape is None:
            expected = _masked(x, seed, 0.25)
        else:
            expected = x * _masked(torch.ones(6, 1, device=device), seed, 0.25)
        assert torch.equal(y, expected)


def _mlp(device_seeds: bool) -> keras.Sequential:
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input(shape=(12,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.3, seed=5),
            keras.layers.Dense(4, activation="tanh"),
        ]
    )
    model.layers[1].device_seeds = device_seeds
    return model


def test_the_fused_dense_dropout_uses_the_device_seed(backend, device, monkeypatch):
    """Sequential runs Dense+Dropout fused; with device_seeds the seed it passes is the stream's tensor, and the
    result equals the Dense, then kernels.dropout with the Philox mask of the host stream's seed."""
    seeds = []
    original = keras.layers.Dense.call_with_dropout

    def spy(self, inputs, rate, seed):
        seeds.append(seed)
        return original(self, inputs, rate, seed)

    monkeypatch.setattr(keras.layers.Dense, "call_with_dropout", spy)
    monkeypatch.setenv("TRITONNN_FUSED_MLP", "0")  # the Dense+Dropout pair, not the whole stack fused (#17)
    model = _mlp(True).to(device)
    dense, _, head = model.layers
    x = torch.randn(9, 12, generator=torch.Generator().manual_seed(1)).to(device)
    host = Dropout(0.3, seed=5)
    for _ in range(2):
        y = model(x, training=True)
        assert isinstance(seeds[-1], torch.Tensor) and seeds[-1].device == x.device
        assert torch.equal(y, head(_masked(dense(x), host.next_seed(), 0.3)))
    assert len(seeds) == 2


# ---- captured: recorded once, replayed ----------------------------------------------------------------------------


@pytest.mark.parametrize("warmup", [1, 0], ids=["after-an-eager-call", "first-call-captured"])
def test_a_captured_dropout_call_draws_a_new_mask_per_replay(warmup):
    """The property CUDA graphs need: the seed advance is among the recorded ops, so N replays draw the N masks
    that N eager calls of the same layer draw (a host seed would be frozen into the graph instead)."""
    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(2)) + 3.0
    layer, twin = _device_dropout(0.4, 5), _device_dropout(0.4, 5)
    eager = [twin(x, training=True) for _ in range(6)]
    for _ in range(warmup):
        layer(x, training=True)
    with kernels.backend_scope("torch"):  # the emulator replays ATen ops (a Triton launch is not one)
        graph = EmulatedGraph(lambda t: layer(t, training=True), (x,))  # refuses a host sync while recording
        outputs = [graph.outputs.clone()] + [graph.replay().clone() for _ in range(5 - warmup)]
    for got, expected in zip(outputs, eager[warmup:], strict=True):
        assert torch.equal(got, expected)
    assert len({tuple((o != 0).flatten().tolist()) for o in outputs}) == len(outputs), "a mask repeated"
    assert layer._counter == twin._counter == 6
    host = Dropout(0.4, seed=5)
    assert torch.equal(outputs[-1], _masked(x, [host.next_seed() for _ in range(6)][-1], 0.4))


def test_a_host_seeded_dropout_is_frozen_by_a_capture():
    """What device seeds fix: an int seed is a Python scalar, frozen at capture; every replay repeats its mask."""
    x = torch.ones(4, 64)
    layer = Dropout(0.5, seed=3)
    with kernels.backend_scope("torch"):
        graph = EmulatedGraph(lambda t: layer(t, training=True), (x,))
        first = graph.outputs.clone()
        assert torch.equal(graph.replay(), first)


def test_a_host_draw_after_device_draws_is_refused_in_a_capture():
    """Reading the device counter back is a host sync, which a capture refuses rather than freezing it."""
    layer = Dropout(0.5, seed=3)
    layer.next_seed_tensor("cpu")
    with pytest.raises(RuntimeError, match="host sync"):
        EmulatedGraph(lambda t: kernels.dropout(t, 0.5, layer.next_seed()), (torch.ones(3),))


def test_a_captured_training_step_of_a_fused_mlp_equals_eager_steps():
    """Forward and backward (Dense+Dropout fused, then Dense) recorded once and replayed: each replay's loss and
    gradients equal an eager step of a twin model, whose dropout draws the next seed of the same stream."""
    x = torch.randn(9, 12, generator=torch.Generator().manual_seed(3))
    captured, eager = _mlp(True), _mlp(True)
    for a, b in zip(captured.weights, eager.weights, strict=True):
        assert torch.equal(a, b)

    def step(model):
        def run(t):
            loss = (model(t, training=True) ** 2).mean()
            return (loss, *torch.autograd.grad(loss, list(model.trainable_weights)))

        return run

    run_eager = step(eager)
    with kernels.backend_scope("torch"):  # the emulator replays ATen ops (a Triton launch is not one)
        run_eager(x)  # the warm-up both models take (the capture's first step draws the second seed)
        step(captured)(x)
        graph = EmulatedGraph(step(captured), (x,))
        results = [tuple(t.clone() for t in graph.outputs)]
        results += [tuple(t.clone() for t in graph.replay()) for _ in range(3)]
        for got in results:
            expected = run_eager(x)
            assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))
    assert len({float(r[0].detach()) for r in results}) == len(results), "each replay must draw another mask"


def test_device_seeds_need_no_host_sync_on_either_backend(backend):
    """kernels.dropout and the fused dense (forward and backward) with a device seed record without a host sync."""
    x = torch.randn(8, 20, generator=torch.Generator().manual_seed(4)).requires_grad_()
    w = torch.randn(20, 24, generator=torch.Generator().manual_seed(5)).requires_grad_()
    seed = torch.tensor(99)

    def run(t):
        y = kernels.dense(t, w, None, "tanh", dropout_rate=0.3, dropout_seed=seed)
        y = kernels.dropout(y, 0.2, seed + 1)
        return torch.autograd.grad(y.sum(), [t, w])

    expected = run(x)  # draws nothing: the seeds are given
    got = EmulatedGraph(run, (x,)).outputs  # recording runs the ops once, refusing any host sync
    assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))


def test_on_cuda_a_stream_that_must_move_during_a_capture_says_so(monkeypatch):
    """Moving the stream to a device is a host-to-device copy, which a CUDA capture cannot hold: a clear error
    instead of a capture that fails deep inside torch (or a stream reset frozen into the graph)."""
    layer = _device_dropout(0.5, 1)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    with pytest.raises(RuntimeError, match="draw one seed on that device before the capture"):
        layer.next_seed_tensor(torch.device("cuda", 0))
    assert layer._counter == 0
