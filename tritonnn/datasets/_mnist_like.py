"""What mnist and fashion_mnist share: four IDX files, cached and verified, decoded into Keras' arrays."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ._cache import cache_dir, fetch, source_url
from ._idx import read_images_and_labels

# The four files, in the order they are fetched.
FILE_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def load(
    name: str,
    subdir: str,
    default_url: str,
    sha256: Mapping[str, str],
    path: str | os.PathLike[str] | None,
    base_url: str | None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Fetch (or find) and verify all four files, then decode them.

    Returns:
        `(x_train, y_train), (x_test, y_test)` as `uint8` arrays of shapes `(60000, 28, 28)`, `(60000,)`,
        `(10000, 28, 28)`, `(10000,)` (the counts are whatever the verified files hold).
    """
    files = {f: sha256[f] for f in FILE_NAMES}
    paths = fetch(name, subdir, files, cache_dir(subdir, path), source_url(subdir, default_url, base_url))
    train = read_images_and_labels(paths[FILE_NAMES[0]], paths[FILE_NAMES[1]])
    test = read_images_and_labels(paths[FILE_NAMES[2]], paths[FILE_NAMES[3]])
    return train, test
