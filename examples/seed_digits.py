"""The seed's model, trained on the 8x8 handwritten digits bundled with tritonnn.

    python examples/seed_digits.py [--epochs 30] [--batch-size 32]

Written as a Keras user writes it: only the import line differs from a Keras 3 script.
"""

from __future__ import annotations

import argparse
import time

import tritonnn as keras


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    # Pixels are counts 0..16; flatten each 8x8 image and scale it to [0, 1].
    x_train = x_train.reshape(len(x_train), -1).astype("float32") / 16.0
    x_test = x_test.reshape(len(x_test), -1).astype("float32") / 16.0

    model = keras.Sequential()
    model.add(keras.layers.Dense(32, activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=args.verbose)
    train_time = time.perf_counter() - start
    model.summary()
    loss, accuracy = model.evaluate(x_test, y_test, verbose=args.verbose)
    print(
        f"backend: {keras.kernels.backend()}  device: {model.device}  train time: {train_time:.1f}s  "
        f"test loss: {loss:.4f}  test accuracy: {accuracy:.4f}"
    )
    return accuracy


if __name__ == "__main__":
    main()
