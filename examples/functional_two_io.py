"""A Functional model with two inputs and two outputs, on the bundled digits.

Input "pixels" is the 8x8 image, input "ink" is the per-row ink total; the model predicts the digit class
(softmax head) and the image's mean ink (regression head), with a shared trunk and per-output losses and metrics.

    python examples/functional_two_io.py [--epochs 30]
"""

from __future__ import annotations

import argparse

import numpy as np

import tritonnn as keras


def load() -> tuple[dict, dict, dict, dict]:
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()

    def inputs(x: np.ndarray) -> dict[str, np.ndarray]:
        x = x.astype("float32") / 16.0
        return {"pixels": x.reshape(len(x), 64), "ink": x.sum(axis=2)}

    def targets(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return {"digit": y.astype("int64"), "mean_ink": (x.astype("float32") / 16.0).mean(axis=(1, 2))[:, None]}

    return inputs(x_train), targets(x_train, y_train), inputs(x_test), targets(x_test, y_test)


def build_model() -> keras.Model:
    pixels = keras.Input(shape=(64,), name="pixels")
    ink = keras.Input(shape=(8,), name="ink")
    trunk = keras.layers.Dense(64, activation="relu", name="trunk")(pixels)
    side = keras.layers.Dense(16, activation="relu", name="side")(ink)
    merged = keras.layers.Concatenate(name="merge")([trunk, side])
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(merged)
    mean_ink = keras.layers.Dense(1, name="mean_ink")(merged)
    return keras.Model(inputs={"pixels": pixels, "ink": ink}, outputs={"digit": digit, "mean_ink": mean_ink})


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(7)
    x_train, y_train, x_test, y_test = load()
    model = build_model()
    model.compile(
        optimizer="adam",
        loss={"digit": "sparse_categorical_crossentropy", "mean_ink": "mse"},
        loss_weights={"digit": 1.0, "mean_ink": 10.0},
        metrics={"digit": ["accuracy"], "mean_ink": ["mae"]},
    )
    model.summary()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, validation_split=0.1, verbose=args.verbose)
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    print("test:", "  ".join(f"{k}: {v:.4f}" for k, v in results.items()))
    return results


if __name__ == "__main__":
    main()
