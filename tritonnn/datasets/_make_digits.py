"""Build ``tritonnn/datasets/data/digits.npz`` from scikit-learn's ``digits.csv.gz`` (run once; the npz is committed).

Usage, from the repository root::

    python -m tritonnn.datasets._make_digits [CSV] [--out NPZ]

``CSV`` defaults to ``<repo>/../shared/datasets/digits/digits.csv.gz`` (the file scikit-learn 1.9.1 ships: 1797 rows
of 64 pixels 0..16 and a label 0..9, no header); its sha256 is checked first, so the npz can only be made from that
exact file.

The split is stratified 80/20 and fixed: for each class 0..9 in turn, the class's row numbers (in CSV order) are
permuted by one ``np.random.default_rng(SEED)`` generator and the first ``round(0.2 * n_class)`` go to the test
part. Both parts are then kept in CSV row order. That gives 1438 train and 359 test samples (test per class: 36,
36, 35, 37, 36, 36, 36, 36, 35, 36). The npz also stores the CSV row numbers of each part (``train_rows``,
``test_rows``), so where every sample came from stays visible. Rerunning the script reproduces the same arrays (the
zip's timestamps differ, the arrays do not); ``tests/test_datasets.py`` checks that.

The loader (:func:`tritonnn.datasets.digits.load_data`) only reads the npz; this script is not imported by it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys

import numpy as np

CSV_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
SEED = 1797
TEST_FRACTION = 0.2
NUM_CLASSES = 10

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CSV = os.path.join(_HERE, "..", "..", "..", "shared", "datasets", "digits", "digits.csv.gz")
DEFAULT_OUT = os.path.join(_HERE, "data", "digits.npz")


def read_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read and check ``digits.csv.gz``.

    Returns:
        `(images, labels)`: uint8 arrays of shape `(1797, 8, 8)` (values 0..16) and `(1797,)` (values 0..9), in
        CSV row order.
    """
    with open(path, "rb") as f:
        raw = f.read()
    got = hashlib.sha256(raw).hexdigest()
    if got != CSV_SHA256:
        raise ValueError(f"{path}: sha256 is {got}, expected {CSV_SHA256} (scikit-learn 1.9.1's digits.csv.gz)")
    rows = np.loadtxt(gzip.decompress(raw).decode("ascii").splitlines(), delimiter=",", dtype=np.int64, ndmin=2)
    if rows.shape != (1797, 65):
        raise ValueError(f"{path}: expected 1797 rows of 65 columns, got shape {rows.shape}")
    pixels, labels = rows[:, :64], rows[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"{path}: pixel values must be 0..16 and labels 0..9")
    return pixels.reshape(-1, 8, 8).astype(np.uint8), labels.astype(np.uint8)


def split_rows(labels: np.ndarray, seed: int = SEED, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, ...]:
    """The fixed stratified split described in the module docstring.

    Returns:
        `(train_rows, test_rows)`: sorted int64 row numbers, disjoint, together `0..len(labels) - 1`.
    """
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == c)
        n_test = int(np.floor(test_fraction * len(rows) + 0.5))
        test_parts.append(rng.permutation(rows)[:n_test])
    test_rows = np.sort(np.concatenate(test_parts))
    train_rows = np.setdiff1d(np.arange(len(labels)), test_rows)
    return train_rows, test_rows


def build(csv_path: str | os.PathLike[str] = DEFAULT_CSV) -> dict[str, np.ndarray]:
    """Every array the npz holds: ``x_train``, ``y_train``, ``x_test``, ``y_test``, ``train_rows``, ``test_rows``."""
    images, labels = read_csv(csv_path)
    train_rows, test_rows = split_rows(labels)
    return {
        "x_train": images[train_rows],
        "y_train": labels[train_rows],
        "x_test": images[test_rows],
        "y_test": labels[test_rows],
        "train_rows": train_rows.astype(np.int16),
        "test_rows": test_rows.astype(np.int16),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", default=DEFAULT_CSV, help="path to digits.csv.gz")
    parser.add_argument("--out", default=DEFAULT_OUT, help="where to write the npz")
    args = parser.parse_args(argv)
    arrays = build(args.csv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    sizes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes): {sizes}", file=sys.stderr)


if __name__ == "__main__":
    main()
