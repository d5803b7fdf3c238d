"""``tritonnn.random`` (Keras' ``keras.random``) on its own: shapes, dtypes, ranges, statistics, determinism under a
seed, ``SeedGenerator``'s stream, the same values on every device, no host sync in a draw from a ``SeedGenerator``,
and clear errors for bad arguments. The comparison of signatures and defaults with real Keras is in
tests/compat/test_random.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn import random
from tritonnn.trainers import step_runner

N = 200_000  # samples for the statistics (the seeds are fixed: each check passes or fails the same way every run)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


@pytest.mark.parametrize(
    "draw",
    [
        lambda s: random.normal((3, 4), seed=s),
        lambda s: random.uniform((5,), seed=s),
        lambda s: random.truncated_normal((2, 3), seed=s),
        lambda s: random.randint((6,), 0, 10, seed=s),
        lambda s: random.categorical(torch.zeros(2, 5), 7, seed=s),
        lambda s: random.shuffle(torch.arange(20), seed=s),
        lambda s: random.dropout(torch.ones(4, 6), 0.5, seed=s),
        lambda s: random.gamma((5,), 2.5, seed=s),
        lambda s: random.beta((5,), 2.0, 3.0, seed=s),
        lambda s: random.binomial((5,), 10, 0.3, seed=s),
    ],
)
def test_an_int_seed_gives_the_same_values_every_call_and_another_seed_others(draw):
    a, b, c = draw(7), draw(7), draw(8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_a_seed_generator_gives_new_values_each_call_and_the_same_sequence_from_the_same_seed():
    g1, g2 = random.SeedGenerator(3), random.SeedGenerator(3)
    first = [random.normal((4,), seed=g1) for _ in range(3)]
    again = [random.normal((4,), seed=g2) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    # As in Keras, the int seed s is the generator's first draw: [s, 0].
    assert torch.equal(random.normal((4,), seed=3), first[0])
    assert g1.state.tolist() == [3, 3]  # [seed, counter] after three draws


def test_seed_generator_next_config_and_validation():
    g = random.SeedGenerator(11, name="g")
    assert g.get_config() == {"seed": 11, "name": "g"}
    again = random.SeedGenerator.from_config(g.get_config())
    assert again.state.tolist() == [11, 0]
    assert g.next().tolist() == [11, 0] and g.next().tolist() == [11, 1] and g.state.tolist() == [11, 2]
    g.next(ordered=False)
    assert g.state.tolist() == [(11 + 1) * 5387 % 933199, (2 + 1) * 5387 % 933199]  # Keras' unordered step
    unseeded = random.SeedGenerator()
    assert unseeded.get_config()["seed"] is None and 1 <= int(unseeded.state[0]) <= 10**9
    with pytest.raises(ValueError, match="must be an integer"):
        random.SeedGenerator(1.5)
    with pytest.raises(ValueError, match="Unrecognized keyword"):
        random.SeedGenerator(1, backend="torch")
    with pytest.raises(ValueError, match="SeedGenerator"):
        random.normal((2,), seed="3")


def test_seed_none_follows_set_random_seed():
    keras.utils.set_random_seed(5)
    a = [random.uniform((3,)) for _ in range(2)]
    keras.utils.set_random_seed(5)
    b = [random.uniform((3,)) for _ in range(2)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], a[1])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_float_draws_have_the_dtype_and_the_statistics(dtype):
    u = random.uniform((N,), minval=-2.0, maxval=3.0, dtype=dtype, seed=1)
    assert u.dtype == getattr(torch, dtype) and u.shape == (N,)
    uf = _np(u.float())
    assert uf.min() >= -2.0 and uf.max() < 3.0
    assert abs(uf.mean() - 0.5) < 0.02 and abs(uf.var() - 25 / 12) < 0.05
    z = _np(random.normal((N,), mean=1.0, stddev=2.0, dtype=dtype, seed=2).float())
    assert abs(z.mean() - 1.0) < 0.03 and abs(z.std() - 2.0) < 0.03
    t = _np(random.truncated_normal((N,), mean=-1.0, stddev=0.5, dtype=dtype, seed=3).float())
    assert t.min() >= -2.0 and t.max() <= 0.0  # within two standard deviations
    # the standard normal truncated to [-2, 2] has variance 1 - 4 phi(2) / (Phi(2) - Phi(-2)) = 0.7737
    assert abs(t.mean() + 1.0) < 0.01 and abs(t.var() / 0.25 - 0.7737) < 0.02


def test_float_dtypes_default_to_floatx_and_integers_are_refused():
    assert random.normal((2,)).dtype == torch.float32
    for fn in (random.uniform, random.normal, random.truncated_normal):
        with pytest.raises(ValueError, match="floating point"):
            fn((2,), dtype="int32")
    with pytest.raises(ValueError, match="integer `dtype`"):
        random.randint((2,), 0, 3, dtype="float32")


def test_uniform_draws_of_the_low_precision_dtypes_stay_below_maxval():
    for dtype in ("float16", "bfloat16"):
        u = random.uniform((N,), dtype=dtype, seed=4)
        assert float(u.float().max()) < 1.0 and float(u.float().min()) >= 0.0


def test_randint_range_dtype_and_uniformity():
    r = random.randint((N,), -3, 4, seed=5)
    assert r.dtype == torch.int32
    counts = np.bincount(_np(r) + 3, minlength=7)
    assert counts.sum() == N and len(counts) == 7
    assert np.all(np.abs(counts / N - 1 / 7) < 0.005)
    assert random.randint((3,), 0, 2**40, dtype="int64", seed=1).dtype == torch.int64
    with pytest.raises(ValueError, match="minval < maxval"):
        random.randint((2,), 3, 3)


def test_categorical_follows_the_softmax_of_the_logits():
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    with np.errstate(divide="ignore"):
        logits = torch.tensor(np.log(probs), dtype=torch.float32)
    draws = random.categorical(logits, 60_000, seed=6)
    assert draws.shape == (2, 60_000) and draws.dtype == torch.int32
    for row in range(2):
        freq = np.bincount(_np(draws[row]), minlength=3) / 60_000
        np.testing.assert_allclose(freq, probs[row], atol=0.01)
    assert int(draws[1].max()) <= 1  # probability 0 is never drawn
    with pytest.raises(ValueError, match="2-D"):
        random.categorical(torch.zeros(3), 2)


def test_shuffle_permutes_along_the_axis_keeping_the_other_axes_together():
    x = torch.arange(30).reshape(10, 3)
    s = random.shuffle(x, seed=7)
    assert sorted(_np(s[:, 0]).tolist()) == list(range(0, 30, 3))
    assert torch.equal(s - s[:, :1], torch.tensor([0, 1, 2]).expand(10, 3))  # rows move whole
    cols = random.shuffle(x, axis=1, seed=7)
    assert all(sorted(r) == sorted(o) for r, o in zip(_np(cols).tolist(), _np(x).tolist(), strict=True))
    with pytest.raises(ValueError, match="axis"):
        random.shuffle(x, axis=2)


def test_dropout_keeps_the_expectation_and_honours_noise_shape():
    x = torch.ones(400, 500)
    y = random.dropout(x, 0.3, seed=8)
    kept = _np(y) != 0
    assert abs(kept.mean() - 0.7) < 0.005
    np.testing.assert_allclose(_np(y)[kept], 1 / 0.7, rtol=1e-6)
    shared = random.dropout(x, 0.5, noise_shape=(None, 1), seed=9)
    assert np.all(_np(shared) == _np(shared)[:, :1])  # one decision per row
    assert torch.equal(random.dropout(x, 0.0, seed=1), x) and not random.dropout(x, 1.0, seed=1).any()
    with pytest.raises(ValueError, match="rate"):
        random.dropout(x, 1.5)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 4.5])
def test_gamma_has_the_mean_and_variance_alpha(alpha):
    g = _np(random.gamma((N,), alpha, seed=10)).astype("float64")
    assert g.min() >= 0
    assert abs(g.mean() - alpha) < 0.02 * max(alpha, 1) and abs(g.var() - alpha) < 0.05 * max(alpha, 1)


def test_beta_and_binomial_statistics_and_parameter_checks():
    b = _np(random.beta((N,), 2.0, 3.0, seed=11)).astype("float64")
    assert b.min() >= 0 and b.max() <= 1
    assert abs(b.mean() - 0.4) < 0.005 and abs(b.var() - 0.04) < 0.002  # ab / ((a+b)^2 (a+b+1)) = 6/150
    n = _np(random.binomial((N,), 20, 0.25, seed=12))
    assert random.binomial((2,), 3, 0.5).dtype == torch.float32
    assert np.all(n == np.floor(n)) and n.min() >= 0 and n.max() <= 20
    assert abs(n.mean() - 5) < 0.03 and abs(n.var() - 3.75) < 0.06
    with pytest.raises(ValueError, match="alpha"):
        random.gamma((2,), -1.0)
    with pytest.raises(ValueError, match="probabilities"):
        random.binomial((2,), 3, 1.5)
    with pytest.raises(ValueError, match="counts"):
        random.binomial((2,), 2.5, 0.5)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="shape"):
        random.normal((2, -1))
    with pytest.raises(ValueError, match="shape"):
        random.uniform("3")
    assert random.normal(3).shape == (3,) and random.normal(()).shape == ()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_values_are_the_same_on_cuda_and_on_the_cpu():
    with keras.device("cpu"):
        cpu = [random.normal((1000,), seed=4), random.uniform((1000,), seed=4), random.randint((50,), 0, 9, seed=4)]
    with keras.device("cuda"):
        gpu = [random.normal((1000,), seed=4), random.uniform((1000,), seed=4), random.randint((50,), 0, 9, seed=4)]
    assert all(g.device.type == "cuda" for g in gpu)
    for c, g in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(g.cpu(), c, rtol=2e-6, atol=1e-6)  # exp/log/cos may round differently


def test_a_draw_from_a_seed_generator_needs_no_host_sync_and_replays_new_values():
    """What a CUDA graph needs: recorded once (refusing host syncs), replayed, the generator advances each replay."""
    gen = random.SeedGenerator(21)
    gen.to("cpu")
    out: list[torch.Tensor] = []

    def step():
        key = random.draw_key(gen, "cpu")
        out.append(random.standard_normal(key, (8,), torch.float32))
        return out[-1]

    graph = step_runner.EmulatedGraph(lambda: step(), ())
    first = graph.outputs.clone()
    second = graph.replay().clone()
    assert not torch.equal(first, second)
    fresh = random.SeedGenerator(21)
    expected = [random.standard_normal(random.draw_key(fresh, "cpu"), (8,), torch.float32) for _ in range(2)]
    assert torch.equal(first, expected[0]) and torch.equal(second, expected[1])


def test_the_generator_is_splitmix64():
    """The element stream is SplitMix64's (Steele et al.): its published first output from state 0 is
    0xE220A8397B1DCDAF."""
    key = torch.zeros((), dtype=torch.int64)
    first = int(random.random_bits(key, (1,))[0]) & (2**64 - 1)
    assert first == 0xE220A8397B1DCDAF
    assert random.mix64(0) == 0 and random.mix64(random.GOLDEN) == 0xE220A8397B1DCDAF
    u = random.open_uniform(key, (N,), torch.float32)
    assert float(u.min()) > 0.0 and float(u.max()) < 1.0  # strictly inside: log(u) and log(1 - u) are finite
