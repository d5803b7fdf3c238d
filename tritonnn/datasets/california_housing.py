"""California housing prices (Keras' ``california_housing``): 20,640 California block groups of the 1990 U.S.
census, 8 features each, and the median house value, in dollars. Origin: the StatLib repository.

The features, in order: MedInc (median income in the block group), HouseAge (median house age), AveRooms and
AveBedrms (average rooms and bedrooms per household), Population, AveOccup (average household size), Latitude and
Longitude. The per-household averages can be surprisingly large for block groups with few households and many empty
houses, such as vacation resorts.
"""

from __future__ import annotations

import os

import numpy as np

from . import _npz_regression

__all__ = ["load_data"]

ORIGIN = _npz_regression.ORIGIN_FOLDER + "california_housing.npz"
SHA256 = "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f"
SMALL_SIZE = 600  # the samples of version="small": the file's first 600


def load_data(
    version: str = "large",
    path: str | os.PathLike[str] = "california_housing.npz",
    test_split: float = 0.2,
    seed: int | None = 113,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads the California Housing dataset, shuffled and split as Keras does.

    The file (``california_housing.npz``, from Keras' origin) is downloaded once into Keras' cache folder,
    ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``), and its sha256 is checked on every load; a cached copy
    that does not match is downloaded again.

    Args:
        version: ``"large"``, all 20,640 samples, or ``"small"``, the first 600 of them (a stand-in for the
            deprecated ``boston_housing`` data set).
        path: the file's name in the cache folder (a name, not a path).
        test_split: the fraction of the data to reserve as test set, in ``[0, 1)``.
        seed: the seed of the shuffle (``np.random.RandomState(seed)``) done before the split.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.

    **`x_train`, `x_test`**: arrays of shape `(num_samples, 8)`: the samples' features.

    **`y_train`, `y_test`**: arrays of shape `(num_samples,)`: the targets, floats typically between 25,000 and
    500,000, the median house value in dollars.

    Raises:
        ValueError: ``version`` or ``test_split`` is not one of the values above, or ``path`` is not a bare file
            name.
        tritonnn.datasets.ChecksumError: (a ``ValueError``) the download does not have the expected sha256.
        tritonnn.datasets.DatasetUnavailableError: (an ``OSError``) the file is missing and cannot be downloaded.
    """
    _npz_regression.check_test_split(test_split)
    if version not in ("small", "large"):  # Keras checks it after the download; the error is the same
        raise ValueError(f"Argument `version` must be one of 'small', 'large'. Received: version={version}")
    x, y = _npz_regression.read(_npz_regression.fetch("California housing", path, ORIGIN, SHA256))
    if version == "small":
        x, y = x[:SMALL_SIZE], y[:SMALL_SIZE]
    return _npz_regression.shuffle_and_split(x, y, test_split, seed)
