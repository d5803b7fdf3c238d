"""The classic Keras MNIST MLP: Dense 512 relu, Dropout 0.2, Dense 512 relu, Dropout 0.2, Dense 10 softmax, RMSprop,
batch 128, 20 epochs (Keras' published result: 98.40% test accuracy).

    python examples/mnist_mlp.py [--epochs 20] [--limit N]

MNIST is read from $TRITONNN_DATA (default ~/.cache/tritonnn/mnist), downloaded and checked on first use; point
$TRITONNN_DATA_URL at a mirror (or a file:// folder holding mnist/) when offline.
"""

from __future__ import annotations

import argparse
import time

import tritonnn as keras


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N samples only")
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train = x_train.reshape(60000, 784).astype("float32") / 255
    x_test = x_test.reshape(10000, 784).astype("float32") / 255
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    y_train = keras.utils.to_categorical(y_train, 10)
    y_test = keras.utils.to_categorical(y_test, 10)

    model = keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=args.verbose,
        validation_data=(x_test, y_test),
    )
    seconds = time.perf_counter() - start
    score = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test loss: {score[0]:.4f}  Test accuracy: {score[1]:.4f}  ({seconds:.1f}s, {keras.kernels.backend()})")
    return score[1]


if __name__ == "__main__":
    main()
