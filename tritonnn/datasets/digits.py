"""The 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", the copy scikit-learn ships).

1797 grey-level 8x8 images, each pixel 0..16, labels 0..9. The data are bundled with tritonnn
(``tritonnn/datasets/data/digits.npz``, about 50 KB), so loading never touches the network or a cache folder.

License: CC BY 4.0 (E. Alpaydin and C. Kaynak, 1998, UCI Machine Learning Repository).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["load_data"]


def load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads the 8x8 digits data set, split into fixed train and test parts.

    The split is stratified 80/20, made once from a fixed seed by ``tritonnn/datasets/_make_digits.py`` (which
    documents it): 1438 train and 359 test samples, every class in both parts in the same proportions, each part in
    the original row order of scikit-learn's ``digits.csv.gz``. Every call returns the same split.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.

    **`x_train`**: `uint8` array of grayscale image data with shape `(1438, 8, 8)`, values 0..16.

    **`y_train`**: `uint8` array of digit labels (integers in range 0-9) with shape `(1438,)`.

    **`x_test`**: `uint8` array of grayscale image data with shape `(359, 8, 8)`, values 0..16.

    **`y_test`**: `uint8` array of digit labels (integers in range 0-9) with shape `(359,)`.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    assert x_train.shape == (1438, 8, 8)
    ```
    """
    with resources.files("tritonnn.datasets").joinpath("data").joinpath("digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as npz:
            return (npz["x_train"], npz["y_train"]), (npz["x_test"], npz["y_test"])
