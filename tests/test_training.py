"""The vertical slice: the seed's model trains end to end through the Keras API."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

import tritonnn as keras


@pytest.fixture(scope="module")
def digits():
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    x_train = x_train.reshape(len(x_train), -1).astype("float32") / 16.0
    x_test = x_test.reshape(len(x_test), -1).astype("float32") / 16.0
    return x_train, y_train, x_test, y_test


def seed_model() -> keras.Sequential:
    model = keras.Sequential()
    model.add(keras.layers.Dense(32, activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    return model


def test_seed_model_learns_digits(digits):
    x_train, y_train, x_test, y_test = digits
    keras.utils.set_random_seed(3)
    model = seed_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0, validation_split=0.1)
    assert isinstance(history, keras.callbacks.History)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 15 for v in history.history.values())
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    assert acc > 0.9, acc
    # evaluate's numbers agree with a numpy computation from predict()
    probs = model.predict(x_test, verbose=0)
    assert probs.shape == (len(x_test), 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert acc == pytest.approx(float((probs.argmax(-1) == y_test).mean()), abs=1e-6)
    ref_loss = float(-np.log(probs[np.arange(len(y_test)), y_test].astype(np.float64)).mean())
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    logs = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert logs == pytest.approx({"loss": loss, "accuracy": acc})


def test_fit_loss_matches_a_hand_written_torch_loop(digits):
    """Same init, same batches, same Keras Adam rule: the per-epoch loss of fit equals a plain torch loop's."""
    x_train, y_train, _, _ = digits
    x, y = x_train[:256], y_train[:256]
    keras.utils.set_random_seed(0)
    model = seed_model()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    model.build((None, 64))
    w = [p.detach().clone().double() for p in model.weights]
    hist = model.fit(x, y, epochs=3, batch_size=64, shuffle=False, verbose=0).history["loss"]

    params = [p.requires_grad_() for p in w]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.int64)
    t = 0
    for epoch_loss in hist:
        total = 0.0
        for start in range(0, 256, 64):
            h = torch.relu(xt[start : start + 64] @ params[0] + params[1])
            logits = h @ params[2] + params[3]
            loss = torch.nn.functional.cross_entropy(logits, yt[start : start + 64])
            grads = torch.autograd.grad(loss, params)
            t += 1
            with torch.no_grad():
                for p, g, mi, vi in zip(params, grads, m, v, strict=True):
                    mi.mul_(0.9).add_(0.1 * g)
                    vi.mul_(0.999).add_(0.001 * g * g)
                    p -= 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t) * mi / (vi.sqrt() + 1e-7)
            total += loss.item() * 64
        assert epoch_loss == pytest.approx(total / 256, rel=1e-4)


def test_lazy_build_and_summary(digits, capsys):
    model = seed_model()
    assert not model.built
    model.summary()  # Keras 3: an unbuilt model lists its layers, unbuilt
    text = capsys.readouterr().out
    assert text.count("0 (unbuilt)") == 2 and "Total params: 0" in text
    out = model.predict(digits[0][:5], verbose=0)
    assert out.shape == (5, 10)
    assert model.built and model.count_params() == 64 * 32 + 32 + 32 * 10 + 10
    model.summary()
    text = capsys.readouterr().out
    for needle in ("Layer (type)", "(None, 32)", "(None, 10)", "2,080", "330", "Total params: 2,410"):
        assert needle in text
    assert "Non-trainable params: 0" in text


def test_model_is_a_torch_module(digits):
    model = seed_model()
    model.build((None, 64))
    assert isinstance(model, torch.nn.Module)
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == 4 and sum(p.numel() for p in model.parameters()) == 2410
    state = model.state_dict()
    assert len(state) == 4
    expected = keras.config.default_device().type
    assert all(p.device.type == expected for p in model.parameters())
    y = model(torch.as_tensor(digits[0][:3]).to(expected))
    assert tuple(y.shape) == (3, 10)


def test_input_shape_builds_eagerly():
    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    assert model.built and model.count_params() == 64 * 8 + 8 + 8 * 2 + 2
    model = keras.Sequential([keras.layers.Dense(4, input_shape=(3,))])
    assert model.built and model.layers[0].kernel.shape == (3, 4)


def test_verbose_progress_output(digits, capsys):
    x, y = digits[0][:100], digits[1][:100]
    model = seed_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=25, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert lines[1].startswith("4/4 - ") and " - accuracy: " in lines[1] and " - loss: " in lines[1]
    model.fit(x, y, epochs=1, batch_size=25, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "4/4 ━" in out and ("ms/step" in out or "us/step" in out)


def test_progbar_draws_at_bounded_rate():
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]
    bar = keras.callbacks.Progbar(1000, verbose=1, interval=3600, stream=stream)
    calls = []
    for step in range(1, 1000):
        bar.update(step, lambda: calls.append(1) or {"loss": 1.0}, finalize=False)
    bar.update(1000, {"loss": 0.5}, finalize=True)
    # the first call draws, the rest fall inside the interval, the final one always draws
    assert len(calls) == 1
    assert stream.getvalue().count("\r") == 2 and stream.getvalue().endswith("\n")


def test_fit_before_compile_and_bad_arguments(digits):
    x, y = digits[0][:10], digits[1][:10]
    model = seed_model()
    with pytest.raises(ValueError, match="compile"):
        model.fit(x, y)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.0, verbose=0)
    with pytest.raises(ValueError, match="10 samples but y has 9"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match="non-empty"):
        model.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(ValueError, match="Unknown loss: 'sparse_categorical_crossentropi'"):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropi")
    with pytest.raises(ValueError, match="positive integer"):
        keras.layers.Dense(0)
    model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 64"):
        model.predict(x[:, :10], verbose=0)


def test_labels_out_of_range_are_rejected(digits):
    x, y = digits[0][:10], digits[1][:10].astype("int64")
    model = seed_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    y[3] = 10
    with pytest.raises(ValueError, match="labels"):
        model.fit(x, y, verbose=0)
