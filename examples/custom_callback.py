"""A custom callback, written as Keras users write one: it logs the learning rate and the time of each epoch and
stops training once the validation accuracy reaches a target.

    python examples/custom_callback.py [--target 0.95]
"""

from __future__ import annotations

import argparse
import time

import tritonnn as keras


class StopAtAccuracy(keras.callbacks.Callback):
    """Record per-epoch timing and learning rate; stop when ``val_accuracy`` reaches ``target``."""

    def __init__(self, target: float):
        super().__init__()
        self.target = target
        self.rows: list[dict[str, float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {
            "epoch": epoch + 1,
            "seconds": time.perf_counter() - self._start,
            "learning_rate": float(self.model.optimizer.learning_rate),
            **logs,
        }
        self.rows.append(row)
        print(f"  [callback] epoch {epoch + 1}: val_accuracy={logs['val_accuracy']:.4f} lr={row['learning_rate']:.2e}")
        if logs["val_accuracy"] >= self.target:
            print(f"  [callback] reached {self.target:.2%}: stopping")
            self.model.stop_training = True


def main(argv: list[str] | None = None) -> StopAtAccuracy:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    x_train = x_train.reshape(len(x_train), -1).astype("float32") / 16
    x_test = x_test.reshape(len(x_test), -1).astype("float32") / 16
    model = keras.Sequential([keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callback = StopAtAccuracy(args.target)
    model.fit(x_train, y_train, epochs=args.epochs, validation_data=(x_test, y_test), callbacks=[callback], verbose=0)
    print(f"stopped after {len(callback.rows)} epochs")
    return callback


if __name__ == "__main__":
    main()
