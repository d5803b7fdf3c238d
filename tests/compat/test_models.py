"""Models a user builds, under both modules with identical weights: what they output and how they count.

For each architecture (Dense stacks with every activation, Dropout at inference, BatchNormalization and
LayerNormalization, Embedding with pooling, the merging layers, Reshape/Flatten/Activation, a Functional model with
two inputs and two outputs) the weights Keras made are replaced by the same random arrays in both models
(``set_weights``), and these must match: ``predict``'s outputs (shape, dtype, values), a direct call's output
(shape, dtype, values), each layer's ``compute_output_shape`` chained from the input (a Functional model's
output shapes), the weights' shapes, ``count_params()``, the
number of (non-)trainable weights and the counts ``summary()`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tritonnn

from .compare import assert_same, observe, shape_of, summary_counts, to_numpy
from .differences import deliberate

# Every name keras.activations exports that works as Dense(activation=<name>) in Keras itself, and None. Not here:
# "glu" (Keras' Dense builds the next layer for `units` inputs but glu halves them, so Keras fails at predict) and
# "threshold" (it has required arguments, so a name alone raises TypeError in Keras).
ACTIVATIONS = [
    "celu", "elu", "exponential", "gelu", "hard_shrink", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh",
    "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu", "sigmoid", "silu",
    "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus",
    "swish", "tanh", "tanh_shrink", None,
]  # fmt: skip


def dense_stack(activation: str | None) -> Callable[[Any], Any]:
    def build(K):
        return K.Sequential(
            [
                K.Input((5,)),
                K.layers.Dense(8, activation=activation),
                K.layers.Dense(6, activation=activation),
                K.layers.Dense(3),
            ]
        )

    return build


def dropout_mlp(K):
    return K.Sequential(
        [K.Input((5,)), K.layers.Dense(16, activation="relu"), K.layers.Dropout(0.5), K.layers.Dense(3, "softmax")]
    )


def batchnorm_mlp(K):
    return K.Sequential(
        [
            K.Input((5,)),
            K.layers.Dense(8),
            K.layers.BatchNormalization(),
            K.layers.Activation("relu"),
            K.layers.Dense(4),
            K.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False),
        ]
    )


def layernorm_mlp(K):
    return K.Sequential(
        [
            K.Input((5,)),
            K.layers.Dense(8),
            K.layers.LayerNormalization(),
            K.layers.Dense(4, activation="gelu"),
            K.layers.LayerNormalization(epsilon=1e-5, scale=False),
        ]
    )


def layernorm_2d(K):
    return K.Sequential([K.Input((3, 4)), K.layers.LayerNormalization(axis=[1, 2]), K.layers.Flatten()])


def embedding_avg(K):
    return K.Sequential(
        [
            K.Input((7,), dtype="int32"),
            K.layers.Embedding(20, 6),
            K.layers.GlobalAveragePooling1D(),
            K.layers.Dense(2, activation="sigmoid"),
        ]
    )


def embedding_max(K):
    return K.Sequential(
        [K.Input((7,), dtype="int32"), K.layers.Embedding(20, 6), K.layers.GlobalMaxPooling1D(), K.layers.Dense(3)]
    )


def reshape_flatten(K):
    return K.Sequential(
        [
            K.Input((12,)),
            K.layers.Reshape((3, 4)),
            K.layers.Dense(5, activation="tanh"),
            K.layers.Flatten(),
            K.layers.Activation("softmax"),
        ]
    )


def merging(K):
    a, b = K.Input((4,), name="a"), K.Input((4,), name="b")
    da, db = K.layers.Dense(6)(a), K.layers.Dense(6)(b)
    merged = [
        K.layers.Add()([da, db]),
        K.layers.Subtract()([da, db]),
        K.layers.Multiply()([da, db]),
        K.layers.Average()([da, db]),
        K.layers.Maximum()([da, db]),
        K.layers.Minimum()([da, db]),
    ]
    return K.Model(inputs=[a, b], outputs=K.layers.Concatenate()(merged))


def two_in_two_out(K):
    x1, x2 = K.Input((5,), name="features"), K.Input((3,), name="extra")
    h = K.layers.Dense(8, activation="relu", name="h1")(x1)
    h = K.layers.Concatenate(name="join")([h, K.layers.Dense(4, activation="tanh", name="h2")(x2)])
    h = K.layers.Dropout(0.3)(h)
    cls = K.layers.Dense(3, activation="softmax", name="cls")(h)
    reg = K.layers.Dense(1, name="reg")(h)
    return K.Model(inputs=[x1, x2], outputs=[cls, reg], name="two_io")


def shared_layer(K):
    a, b = K.Input((4,)), K.Input((4,))
    shared = K.layers.Dense(3, activation="relu")
    return K.Model([a, b], K.layers.add([shared(a), shared(b)]))


def frozen_part(K):
    model = K.Sequential([K.Input((5,)), K.layers.Dense(8), K.layers.BatchNormalization(), K.layers.Dense(2)])
    model.layers[0].trainable = False
    return model


RNG_SEED = 7


def inputs_for(name: str, batch: int = 9) -> Any:
    rng = np.random.default_rng(RNG_SEED)
    if name.startswith("embedding"):
        return rng.integers(0, 20, size=(batch, 7)).astype("int32")
    if name in ("merging", "shared_layer"):
        return [rng.normal(size=(batch, 4)).astype("float32") for _ in range(2)]
    if name == "two_in_two_out":
        return [rng.normal(size=(batch, 5)).astype("float32"), rng.normal(size=(batch, 3)).astype("float32")]
    if name == "reshape_flatten":
        return rng.normal(size=(batch, 12)).astype("float32")
    if name == "layernorm_2d":
        return rng.normal(size=(batch, 3, 4)).astype("float32")
    return rng.normal(size=(batch, 5)).astype("float32")


def same_random_weights(keras_model: Any) -> list[np.ndarray]:
    """Arrays to give both models, shaped like Keras' weights (variances drawn positive)."""
    rng = np.random.default_rng(RNG_SEED + 1)
    out = []
    for w in keras_model.weights:
        shape = tuple(w.shape)
        if "variance" in w.path:
            out.append(rng.uniform(0.5, 1.5, size=shape).astype("float32"))
        else:
            out.append(rng.normal(scale=0.5, size=shape).astype("float32"))
    return out


def output_shapes(model: Any, input_shape: tuple[Any, ...]) -> Any:
    """Each layer's ``compute_output_shape``, chained from the input shape (Sequential), or the model outputs'
    symbolic shapes (Functional)."""
    if hasattr(model, "pop"):  # Sequential
        shapes, shape = [], input_shape
        for layer in model.layers:
            shape = shape_of(layer.compute_output_shape(shape))
            shapes.append(shape)
        return shapes
    return [shape_of(t.shape) for t in model.outputs]


def what_a_user_sees(K: Any, model: Any, x: Any, weights: list[np.ndarray]) -> dict[str, Any]:
    set_ok = observe(lambda: model.set_weights(weights))
    first = x[0] if isinstance(x, list) else x
    return {
        "set_weights": set_ok,
        "predict": observe(lambda: model.predict(x, verbose=0)),
        "call": observe(lambda: to_numpy(K, model(x, training=False))),
        "output_shapes": observe(lambda: output_shapes(model, (None, *first.shape[1:]))),
        "weight_shapes": observe(lambda: [tuple(int(d) for d in w.shape) for w in model.weights]),
        "count_params": observe(model.count_params),
        "n_trainable_weights": observe(lambda: len(model.trainable_weights)),
        "n_non_trainable_weights": observe(lambda: len(model.non_trainable_weights)),
        "summary": observe(lambda: summary_counts(model)),
    }


ARCHITECTURES: dict[str, Callable[[Any], Any]] = {
    **{f"dense_{a}": dense_stack(a) for a in ACTIVATIONS},
    "dropout_mlp": dropout_mlp,
    "batchnorm_mlp": batchnorm_mlp,
    "layernorm_mlp": layernorm_mlp,
    "layernorm_2d": layernorm_2d,
    "embedding_avg": embedding_avg,
    "embedding_max": embedding_max,
    "reshape_flatten": reshape_flatten,
    "merging": merging,
    "two_in_two_out": two_in_two_out,
    "shared_layer": shared_layer,
    "frozen_part": frozen_part,
}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architecture(keras_ref, name):
    build = ARCHITECTURES[name]
    ref_model = build(keras_ref)
    weights = same_random_weights(ref_model)
    x = inputs_for(name)
    ref = what_a_user_sees(keras_ref, ref_model, x, weights)
    got = what_a_user_sees(tritonnn, build(tritonnn), x, weights)
    assert_same(ref, got, what=name, deliberate=SKIPPED.get(name))


# Keras 3.15's torch sparsemax takes its threshold from the sum of the cumulative sums over the support instead of
# the cumulative sum at its end, so its rows do not sum to 1 once two or more entries are kept.
SPARSEMAX = deliberate("activations.sparsemax-on-keras-torch")
SKIPPED = {"dense_sparsemax": {"predict": SPARSEMAX, "call": SPARSEMAX}}


def _sparsemax_reference(z: np.ndarray) -> np.ndarray:
    """The Euclidean projection of each row onto the probability simplex (Martins & Astudillo, 2016), in float64."""
    z = z.astype("float64")
    s = -np.sort(-z, axis=-1)
    k = np.arange(1, z.shape[-1] + 1)
    cumsum = np.cumsum(s, axis=-1)
    support = 1 + k * s > cumsum
    k_z = support.sum(-1, keepdims=True)
    tau = (np.take_along_axis(cumsum, k_z - 1, axis=-1) - 1) / k_z
    return np.maximum(z - tau, 0)


def test_sparsemax_is_the_simplex_projection(keras_ref):
    """What docs/keras_differences.md says of sparsemax: tritonnn's is the projection, Keras-on-torch's is not."""
    z = np.random.default_rng(0).normal(size=(64, 7)).astype("float32")
    expected = _sparsemax_reference(z)
    assert (np.count_nonzero(expected, axis=-1) >= 2).any()  # rows where the two differ
    got = to_numpy(tritonnn, tritonnn.activations.sparsemax(tritonnn.ops.convert_to_tensor(z)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    keras_rows = to_numpy(keras_ref, keras_ref.activations.sparsemax(keras_ref.ops.convert_to_tensor(z))).sum(-1)
    assert not np.allclose(keras_rows, 1.0, atol=1e-3), "Keras' sparsemax is fixed: drop the deliberate difference"


def test_summary_of_an_unbuilt_model(keras_ref):
    """Keras 3 prints an unbuilt model's table (``?`` shapes, ``0 (unbuilt)``) with zero totals."""

    def program(K):
        model = K.Sequential([K.layers.Dense(4), K.layers.Dense(2)])
        lines: list[str] = []
        model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
        text = "\n".join(lines)
        return {"unbuilt_rows": text.count("0 (unbuilt)"), "counts": summary_counts(model), "built": model.built}

    assert_same(program(keras_ref), observe(lambda: program(tritonnn)))


OPTIMIZERS_FOR_SUMMARY = {
    "sgd": lambda K: K.optimizers.SGD(),
    "sgd_momentum": lambda K: K.optimizers.SGD(momentum=0.9),
    "adam_amsgrad": lambda K: K.optimizers.Adam(amsgrad=True),
    "adamw": lambda K: K.optimizers.AdamW(),
    "rmsprop_centered_momentum": lambda K: K.optimizers.RMSprop(momentum=0.5, centered=True),
    "sgd_schedule": lambda K: K.optimizers.SGD(K.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)),
    "loss_scale_adam": lambda K: K.optimizers.LossScaleOptimizer(K.optimizers.Adam()),
    "adagrad": lambda K: K.optimizers.Adagrad(),
    "adamax": lambda K: K.optimizers.Adamax(),
    "nadam": lambda K: K.optimizers.Nadam(),  # and its u_product scalar
    "lion": lambda K: K.optimizers.Lion(),
    "adadelta": lambda K: K.optimizers.Adadelta(),
    "ftrl": lambda K: K.optimizers.Ftrl(),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS_FOR_SUMMARY))
def test_summary_counts_optimizer_params_once_trained(keras_ref, optimizer):
    """After the first training step Keras counts the optimizer's variables ("Optimizer params", in the total);
    frozen weights get no slots."""

    def program(K):
        model = K.Sequential([K.Input((4,)), K.layers.Dense(3), K.layers.BatchNormalization(), K.layers.Dense(2)])
        model.layers[-1].trainable = False
        model.compile(optimizer=OPTIMIZERS_FOR_SUMMARY[optimizer](K), loss="mse")
        compiled = summary_counts(model)
        model.train_on_batch(np.zeros((2, 4), "float32"), np.zeros((2, 2), "float32"))
        return {"compiled": compiled, "trained": summary_counts(model)}

    assert_same(program(keras_ref), observe(lambda: program(tritonnn)))


def _two_builds(K: Any, tmp: str) -> dict[str, Any]:
    """The same Functional architecture (a nested Functional block inside) built twice in one session, so its layers
    get other automatic names: weights saved from the first load into the second, by structure (Keras' rule), from
    a weights file and from a model file; a third model of other widths refuses them."""
    import os

    def build(width: int = 3) -> Any:
        inner_in = K.Input((4,))
        inner = K.Model(inner_in, K.layers.Dense(width, activation="tanh")(inner_in))
        inp = K.Input((4,))
        return K.Model(inp, K.layers.Dense(2)(K.layers.Concatenate()([inner(inp), K.layers.Dense(3)(inp)])))

    first = build()
    rng = np.random.default_rng(0)
    first.set_weights([rng.normal(size=tuple(w.shape)).astype("float32") for w in first.weights])
    x = rng.normal(size=(5, 4)).astype("float32")
    paths = [w.path for w in first.weights]
    out: dict[str, Any] = {"names_differ": observe(lambda: paths != [w.path for w in build().weights])}
    weights_file, model_file = os.path.join(tmp, f"{K.__name__}.weights.h5"), os.path.join(tmp, f"{K.__name__}.keras")
    first.save_weights(weights_file)
    first.save(model_file)
    for name, path in (("weights_file", weights_file), ("model_file", model_file)):
        second = build()
        out[name] = observe(lambda second=second, path=path: second.load_weights(path))
        out[name + "_predict"] = observe(lambda second=second: second.predict(x, verbose=0))
    out["other_widths"] = observe(lambda: build(width=5).load_weights(weights_file))
    out["first_predict"] = first.predict(x, verbose=0)
    return out


def test_weights_load_into_another_build_of_the_same_architecture(keras_ref, tmp_path):
    ref, got = _two_builds(keras_ref, str(tmp_path)), _two_builds(tritonnn, str(tmp_path))
    assert_same(ref, got)
    np.testing.assert_allclose(got["weights_file_predict"], got["first_predict"], rtol=1e-6)
    np.testing.assert_allclose(got["model_file_predict"], got["first_predict"], rtol=1e-6)
