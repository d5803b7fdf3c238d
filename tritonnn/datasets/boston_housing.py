"""Boston housing prices (Keras' ``boston_housing``): 506 Boston suburbs of the late 1970s, 13 attributes each, and
the median value of their homes, in k$. Origin: the StatLib library of Carnegie Mellon University.

**WARNING:** this data set has an ethical problem: its authors included a variable, "B", that may appear to assume
that racial self-segregation influences house prices. Keras strongly discourages its use, unless in the context of
illustrating ethical issues in data science and machine learning (``california_housing`` with ``version="small"``
is its stand-in).
"""

from __future__ import annotations

import os

import numpy as np

from . import _npz_regression

__all__ = ["load_data"]

ORIGIN = _npz_regression.ORIGIN_FOLDER + "boston_housing.npz"
SHA256 = "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"


def load_data(
    path: str | os.PathLike[str] = "boston_housing.npz", test_split: float = 0.2, seed: int | None = 113
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads the Boston Housing dataset, shuffled and split as Keras does.

    The file (``boston_housing.npz``, from Keras' origin) is downloaded once into Keras' cache folder,
    ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``), and its sha256 is checked on every load; a cached copy
    that does not match is downloaded again. Read the module's docstring for the ethical problem of this data set.

    Args:
        path: the file's name in the cache folder (a name, not a path).
        test_split: the fraction of the data to reserve as test set, in ``[0, 1)``.
        seed: the seed of the shuffle (``np.random.RandomState(seed)``) done before the split.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.

    **`x_train`, `x_test`**: arrays of shape `(num_samples, 13)`: the samples' attributes (404 train and 102 test
    samples with the defaults).

    **`y_train`, `y_test`**: arrays of shape `(num_samples,)`: the targets, floats typically between 10 and 50, the
    median home price in k$.

    Raises:
        ValueError: ``test_split`` is not in ``[0, 1)``, or ``path`` is not a bare file name.
        tritonnn.datasets.ChecksumError: (a ``ValueError``) the download does not have the expected sha256.
        tritonnn.datasets.DatasetUnavailableError: (an ``OSError``) the file is missing and cannot be downloaded.
    """
    _npz_regression.check_test_split(test_split)
    x, y = _npz_regression.read(_npz_regression.fetch("Boston housing", path, ORIGIN, SHA256))
    return _npz_regression.shuffle_and_split(x, y, test_split, seed)
