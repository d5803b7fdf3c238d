"""What boston_housing and california_housing share: one ``.npz`` of ``x`` and ``y`` in Keras' download cache,
fetched and hash-checked by :func:`tritonnn.file_utils.get_file`, then shuffled and split as Keras does."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import file_utils
from ._cache import ChecksumError, DatasetUnavailableError

# The folder Keras' regression data sets are downloaded from (the same files, at the same URLs, as in Keras).
ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def check_test_split(test_split: Any) -> None:
    if not (0 <= test_split < 1):
        raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 and 1 (exclusive of 1).")


def fetch(name: str, path: str | os.PathLike[str], origin: str, sha256: str) -> str:
    """The verified local copy of ``origin``, cached as ``path`` in Keras' cache folder (``$KERAS_HOME/datasets``,
    default ``~/.keras/datasets``) and downloaded there when missing or stale.

    Raises:
        tritonnn.datasets.ChecksumError: (a ``ValueError``) the download does not have the published sha256.
        tritonnn.datasets.DatasetUnavailableError: (an ``OSError``) the file is missing and cannot be downloaded.
    """
    try:
        return file_utils.get_file(path, origin=origin, file_hash=sha256)
    except ValueError as e:
        if not str(e).startswith("Incomplete or corrupted file"):
            raise  # e.g. a `path` that is not a bare file name
        raise ChecksumError(
            f"{e} (the {name} data set, downloaded from {origin}: the file was discarded, nothing is cached; "
            "retry later)"
        ) from e
    except OSError as e:
        if not str(e).startswith("URL fetch failure"):
            raise  # writing the cache failed (disk full, permissions): that error as it is
        target = os.path.join(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"), "datasets", path)
        raise DatasetUnavailableError(
            f"Could not download the {name} data set ({e}). To load it offline, fetch {origin} elsewhere and put "
            f"it, unchanged (sha256 {sha256}), at {target} (Keras' cache folder: $KERAS_HOME/datasets, else "
            "~/.keras/datasets)."
        ) from e


def read(file: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(file, allow_pickle=False) as f:
        return f["x"], f["y"]


def shuffle_and_split(x: np.ndarray, y: np.ndarray, test_split: float, seed: Any) -> Split:
    """Keras' split: the samples permuted by ``np.random.RandomState(seed)``, then the first
    ``int(n * (1 - test_split))`` of them for training and the rest for testing."""
    order = np.arange(len(x))
    np.random.RandomState(seed).shuffle(order)
    x, y = x[order], y[order]
    cut = int(len(x) * (1 - test_split))
    return (np.array(x[:cut]), np.array(y[:cut])), (np.array(x[cut:]), np.array(y[cut:]))
