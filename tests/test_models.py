"""The model API beyond the seed slice: Functional, subclassed, several inputs/outputs, data sources, frozen
layers, custom layers, regularization, mixed precision and the fused Dense+Dropout path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonnn as keras

rng = np.random.default_rng(0)
X4 = rng.random((64, 4), dtype=np.float32)
X3 = rng.random((64, 3), dtype=np.float32)
Y1 = rng.random((64, 1), dtype=np.float32)
Y3 = rng.integers(0, 3, 64)


def two_io_model() -> keras.Model:
    a = keras.Input(shape=(4,), name="a")
    b = keras.Input(shape=(3,), name="b")
    shared = keras.layers.Dense(5, activation="relu", name="shared")
    merged = keras.layers.Concatenate(name="cat")([shared(a), keras.layers.Dense(5, name="hb")(b)])
    reg = keras.layers.Dense(1, name="reg")(merged)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(merged)
    return keras.Model(inputs=[a, b], outputs=[reg, cls])


def test_functional_graph_matches_manual_forward():
    model = two_io_model()
    assert type(model).__name__ == "Functional" and isinstance(model, keras.Model)
    # Keras 3's order: by depth from the outputs, the inputs first
    assert [layer.name for layer in model.layers] == ["a", "b", "shared", "hb", "cat", "reg", "cls"]
    reg, cls = model.predict([X4, X3], verbose=0)
    w = {layer.name: [t.detach().double() for t in layer.weights] for layer in model.layers}
    a, b = torch.tensor(X4, dtype=torch.float64), torch.tensor(X3, dtype=torch.float64)
    h = torch.cat([torch.relu(a @ w["shared"][0] + w["shared"][1]), b @ w["hb"][0] + w["hb"][1]], dim=-1)
    np.testing.assert_allclose(reg, (h @ w["reg"][0] + w["reg"][1]).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cls, torch.softmax(h @ w["cls"][0] + w["cls"][1], -1).numpy(), rtol=1e-5, atol=1e-6)
    # dict inputs by Input name give the same
    reg2, _ = model.predict({"a": X4, "b": X3}, verbose=0)
    np.testing.assert_array_equal(reg, reg2)


def test_shared_layer_is_one_set_of_weights():
    x = keras.Input(shape=(4,))
    dense = keras.layers.Dense(4, name="tied")
    y = keras.layers.Add()([dense(x), dense(dense(x))])
    model = keras.Model(x, y)
    assert model.count_params() == 20
    out = model.predict(X4, verbose=0)
    k, bias = (t.detach().double() for t in dense.weights)
    xt = torch.tensor(X4, dtype=torch.float64)
    first = xt @ k + bias
    np.testing.assert_allclose(out, (first + (first @ k + bias)).numpy(), rtol=1e-5, atol=1e-6)


def test_multi_output_losses_weights_and_logs():
    keras.utils.set_random_seed(1)
    model = two_io_model()
    model.compile(
        optimizer="adam",
        loss=["mse", "sparse_categorical_crossentropy"],
        loss_weights=[2.0, 0.5],
        metrics=[["mae"], ["accuracy"]],
    )
    hist = model.fit([X4, X3], [Y1, Y3], epochs=2, batch_size=16, verbose=0, validation_split=0.25).history
    assert set(hist) == {
        "loss", "reg_loss", "cls_loss", "reg_mae", "cls_accuracy",
        "val_loss", "val_reg_loss", "val_cls_loss", "val_reg_mae", "val_cls_accuracy",
    }  # fmt: skip
    logs = model.evaluate([X4, X3], [Y1, Y3], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(2.0 * logs["reg_loss"] + 0.5 * logs["cls_loss"], rel=1e-5)
    reg, cls = model.predict([X4, X3], verbose=0)
    assert logs["reg_loss"] == pytest.approx(float(((reg - Y1) ** 2).mean()), rel=1e-4)
    assert logs["cls_loss"] == pytest.approx(float(-np.log(cls[np.arange(64), Y3]).mean()), rel=1e-4)
    assert logs["reg_mae"] == pytest.approx(float(np.abs(reg - Y1).mean()), rel=1e-4)
    assert logs["cls_accuracy"] == pytest.approx(float((cls.argmax(-1) == Y3).mean()))
    # dict targets by output name work the same
    again = model.evaluate([X4, X3], {"reg": Y1, "cls": Y3}, verbose=0, return_dict=True)
    assert again == pytest.approx(logs)


def test_subclassed_model_trains_and_saves_its_layers():
    class TwoLayer(keras.Model):
        def __init__(self):
            super().__init__(name="two_layer")
            self.hidden = keras.layers.Dense(16, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.hidden(x))

    keras.utils.set_random_seed(2)
    model = TwoLayer()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = model.fit(X4, Y3, epochs=30, batch_size=64, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert len(model.layers) == 2 and model.count_params() == 4 * 16 + 16 + 16 * 3 + 3


def test_generators_and_dataloaders_feed_fit_evaluate_predict():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    seen = []

    def gen():
        while True:
            for start in range(0, 64, 16):
                seen.append(start)
                yield X4[start : start + 16], Y3[start : start + 16]

    hist = model.fit(gen(), steps_per_epoch=4, epochs=2, verbose=0).history
    assert len(hist["loss"]) == 2 and seen == [0, 16, 32, 48] * 2
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(X4), torch.tensor(Y3)), batch_size=16, shuffle=False
    )
    array_logs = model.evaluate(X4, Y3, batch_size=16, verbose=0, return_dict=True)
    loader_logs = model.evaluate(loader, verbose=0, return_dict=True)
    assert loader_logs == pytest.approx(array_logs, rel=1e-6)
    preds = model.predict(torch.utils.data.DataLoader(torch.tensor(X4), batch_size=10), verbose=0)
    np.testing.assert_allclose(preds, model.predict(X4, verbose=0), rtol=1e-6)
    model.fit(loader, epochs=1, verbose=0, validation_data=loader)
    with pytest.raises(ValueError, match="`y` must not be given"):
        model.fit(loader, Y3, verbose=0)


def test_frozen_layer_is_not_updated():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8), keras.layers.Dense(3)])
    model.layers[0].trainable = False
    frozen = [w.copy() for w in model.layers[0].get_weights()]
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.layers[1].get_weights()[0].copy()
    model.fit(X4, Y3, epochs=2, verbose=0)
    for a, b in zip(frozen, model.layers[0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(before, model.layers[1].get_weights()[0])
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2


def test_get_set_weights_round_trip_and_errors():
    model = two_io_model()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(4, 5), (5,), (3, 5), (5,), (10, 1), (1,), (10, 3), (3,)]
    new = [np.full_like(w, 0.5) for w in weights]
    model.set_weights(new)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), new, strict=True))
    with pytest.raises(ValueError, match="expected 8 weights"):
        model.set_weights(new[:-1])
    with pytest.raises(ValueError, match="not compatible"):
        model.set_weights([np.zeros((2, 2), "float32")] + new[1:])


class Scale(keras.layers.Layer):
    """A custom layer as Keras users write one: weights in build, math in call, a loss, a config."""

    def __init__(self, factor: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=True, name="w")

    def call(self, x):
        self.add_loss(self.factor * keras.ops.sum(keras.ops.square(self.w)))
        return x * self.w

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_custom_layer_trains_and_its_losses_count():
    model = keras.Sequential([keras.Input(shape=(4,)), Scale(0.5, name="scale"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    assert model.count_params() == 4 + 5
    logs = model.evaluate(X4, Y1, verbose=0, return_dict=True)
    pred = model.predict(X4, verbose=0)
    # loss = mse + 0.5 * sum(w^2) with w = ones(4)
    assert logs["loss"] == pytest.approx(float(((pred - Y1) ** 2).mean()) + 0.5 * 4, rel=1e-5)
    w0 = model.get_layer("scale").get_weights()[0].copy()
    model.fit(X4, Y1, epochs=1, verbose=0)
    assert np.all(model.get_layer("scale").get_weights()[0] < w0)  # the penalty pulls w towards 0
    layer = Scale.from_config(model.get_layer("scale").get_config())
    assert layer.factor == 0.5 and layer.name == "scale"


def test_regularizers_add_their_penalties():
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(3, kernel_regularizer="l2", bias_regularizer=keras.regularizers.L1(0.1)),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    k, b = model.layers[0].get_weights()
    b[:] = [1.0, -2.0, 0.5]
    model.layers[0].set_weights([k, b])
    expected_penalty = 0.01 * float((k.astype(np.float64) ** 2).sum()) + 0.1 * 3.5
    assert sum(float(t.detach()) for t in model.losses) == pytest.approx(expected_penalty, rel=1e-5)
    pred = model.predict(X4, verbose=0)
    y = rng.random((64, 3), dtype=np.float32)
    logs = model.evaluate(X4, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(float(((pred - y) ** 2).mean()) + expected_penalty, rel=1e-5)


def test_inputs_on_another_device_get_a_clear_error():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)])
    other = torch.device("meta")
    with pytest.raises(ValueError, match="received an input on meta"):
        model(torch.zeros(2, 4, device=other))


def test_train_test_predict_on_batch():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.test_on_batch(X4, Y3)
    probs = model.predict_on_batch(X4)
    assert before[0] == pytest.approx(float(-np.log(probs[np.arange(64), Y3]).mean()), rel=1e-5)
    assert before[1] == pytest.approx(float((probs.argmax(-1) == Y3).mean()))
    train_logs = model.train_on_batch(X4, Y3, return_dict=True)
    assert train_logs["loss"] == pytest.approx(before[0], rel=1e-5)  # the loss before the update
    assert model.test_on_batch(X4, Y3)[0] < before[0]


def test_sample_and_class_weights_scale_the_loss():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    probs = model.predict(X4, verbose=0)
    per_sample = -np.log(probs[np.arange(64), Y3].astype(np.float64))
    sw = rng.random(64).astype(np.float32)
    assert model.evaluate(X4, Y3, sample_weight=sw, verbose=0) == pytest.approx(
        float((per_sample * sw).mean()), rel=1e-5
    )
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    # class_weight is a training argument: the first epoch's loss (one full batch, before the update) shows it
    loss = model.fit(X4, Y3, class_weight=cw, batch_size=64, epochs=1, verbose=0).history["loss"][0]
    weights = np.array([cw[int(c)] for c in Y3])
    assert loss == pytest.approx(float((per_sample * weights).mean()), rel=1e-5)


def test_fused_dense_dropout_equals_the_unfused_layers():
    """Sequential runs Dense+Dropout as one fused kernel in training; it must equal the layers run one by one."""
    keras.utils.set_random_seed(5)
    dense = keras.layers.Dense(6, activation="relu")
    model = keras.Sequential([keras.Input(shape=(4,)), dense, keras.layers.Dropout(0.5, seed=11)])
    x = torch.tensor(X4)
    seed = keras.layers.Dropout(0.5, seed=11).next_seed()  # the same seed stream: its first draw
    manual = keras.kernels.dropout(dense(x), 0.5, seed, True)
    fused = model(x, training=True)
    torch.testing.assert_close(fused, manual, rtol=0, atol=0)
    assert 0 < int((fused == 0).sum()) < fused.numel()
    torch.testing.assert_close(model(x, training=False), dense(x))  # inactive at inference


def test_mixed_bfloat16_policy_keeps_float32_masters():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = keras.Sequential(
            [keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
        )
        assert model.layers[0].compute_dtype == torch.bfloat16 and model.layers[0].dtype == torch.float32
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        out = model(torch.tensor(X4))
        assert out.dtype == torch.bfloat16
        losses = model.fit(X4, Y3, epochs=20, batch_size=64, verbose=0).history["loss"]
        assert all(w.dtype == torch.float32 for w in model.weights)
        assert losses[-1] < losses[0]
        assert model.predict(X4, verbose=0).dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_subclassed_model_saves_and_loads(tmp_path):
    @keras.saving.register_keras_serializable(package="tests")
    class Tiny(keras.Model):
        def __init__(self, units: int = 8, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.hidden(x))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    model = Tiny(units=6)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X4, Y3, epochs=2, verbose=0)
    assert model.get_build_config() == {"input_shape": [None, 4]}
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Tiny) and loaded.units == 6
    np.testing.assert_array_equal(loaded.predict(X4, verbose=0), model.predict(X4, verbose=0))


def test_get_weights_returns_copies_and_keras2_batch_hooks_fire():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)])
    w = model.get_weights()
    w[0][:] = 123.0
    assert not np.any(model.get_weights()[0] == 123.0)
    seen = []

    class Keras2Style(keras.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, sorted(logs)))

    model.compile(optimizer="sgd", loss="mse")
    model.fit(X4, Y1.repeat(2, axis=1), batch_size=32, epochs=1, verbose=0, callbacks=[Keras2Style()])
    assert seen == [(0, ["loss"]), (1, ["loss"])]


def test_loss_scale_optimizer_skips_overflowing_steps_and_adapts_the_scale():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(learning_rate=0.5), initial_scale=8.0,
                                              dynamic_growth_steps=2)  # fmt: skip
    opt.build([p])
    # an overflowed step: skipped, scale halved, weights untouched
    opt.zero_grad()
    p.grad.copy_(torch.tensor([1.0, float("inf"), 0.0]))
    opt.step()
    assert opt.loss_scale == 4.0 and opt.skipped_steps == 1 and opt.iterations == 0
    torch.testing.assert_close(p.detach(), torch.tensor([1.0, -2.0, 3.0]))
    # a good step: the gradient is unscaled before the inner update (p -= lr * g / scale)
    for expected_scale in (4.0, 4.0):
        assert opt.loss_scale == expected_scale  # no growth before dynamic_growth_steps good steps
        opt.zero_grad()
        p.grad.copy_(opt.scale_loss(torch.tensor(1.0)) * torch.tensor([2.0, 2.0, 2.0]))
        before = p.detach().clone()
        opt.step()
        torch.testing.assert_close(p.detach(), before - 0.5 * 2.0)
    assert opt.loss_scale == 8.0 and opt.iterations == 2  # doubled after 2 good steps
    restored = keras.optimizers.LossScaleOptimizer.from_config(opt.get_config())
    assert restored.initial_scale == 8.0 and isinstance(restored.inner_optimizer, keras.optimizers.SGD)


def test_mixed_float16_compile_wraps_the_optimizer_and_trains():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential(
            [keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
        )
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        losses = model.fit(X4, Y3, epochs=15, batch_size=64, verbose=0).history["loss"]
        assert losses[-1] < losses[0] and all(np.isfinite(losses))
        assert all(w.dtype == torch.float32 for w in model.weights)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_opt_in_check_for_non_finite_inputs():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = X4.copy()
    x[5, 2] = np.nan
    model.fit(x, Y1, epochs=1, verbose=0)  # off by default: trains (on NaN) without reading the data
    keras.config.set_check_numerics(True)
    try:
        with pytest.raises(ValueError, match=r"`x` contains non-finite values .* index \(5, 2\)"):
            model.fit(x, Y1, epochs=1, verbose=0)
        y = Y1.copy()
        y[0] = np.inf
        with pytest.raises(ValueError, match="`y` contains non-finite"):
            model.evaluate(X4, y, verbose=0)
    finally:
        keras.config.set_check_numerics(False)


def test_fit_resumes_mid_epoch_from_initial_step():
    """A callback that restored a backup sets _initial_epoch/_initial_step; fit skips the batches already done."""
    seen = []

    class Resume(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.model._initial_epoch, self.model._initial_step = 1, 3

        def on_train_batch_begin(self, batch, logs=None):
            seen.append((len(self.model.history.epoch), batch))

    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    hist = model.fit(X4, Y1, batch_size=8, epochs=3, verbose=0, callbacks=[Resume()])
    assert hist.epoch == [1, 2]
    assert seen == [(0, b) for b in range(3, 8)] + [(1, b) for b in range(8)]


def test_a_fitted_model_pickles_and_trains_on():
    """After fit (integer labels, validation: the step callables of the last call), evaluate and predict, a model
    pickles and deep-copies with its weights and optimizer state, predicts the same and trains on (Keras' models
    pickle; scikit-learn's wrappers pickle fitted estimators)."""
    import copy
    import pickle

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((24, 4)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 24)
    inp = keras.Input((4,))
    for model in (
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)]),
        keras.Model(inp, keras.layers.Dense(3)(keras.layers.Dense(5, activation="relu")(inp))),
    ):
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])  # fmt: skip
        model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0)
        model.evaluate(x, y, verbose=0)
        want = model.predict(x, verbose=0)
        for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            np.testing.assert_array_equal(twin.predict(x, verbose=0), want)
            assert int(twin.optimizer.iterations) == int(model.optimizer.iterations) == 6
            twin.fit(x, y, batch_size=8, epochs=1, verbose=0)
            assert int(twin.optimizer.iterations) == 9
