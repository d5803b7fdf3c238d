"""MNIST handwritten digits: 60000 train and 10000 test 28x28 grey images, labels 0..9.

The four original IDX files are read from a cache folder and downloaded there (sha256-checked) when missing; see
:func:`load_data`. Origin: Yann LeCun, Corinna Cortes and Christopher J.C. Burges; Keras and TensorFlow describe it
as made available under CC BY-SA 3.0.
"""

from __future__ import annotations

import os

import numpy as np

from . import _mnist_like

__all__ = ["load_data"]

# The mirror torchvision downloads from (yann.lecun.com no longer serves the files reliably).
DEFAULT_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
SUBDIR = "mnist"
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


@_mnist_like.complete_doc(SUBDIR, DEFAULT_URL)
def load_data(
    path: str | os.PathLike[str] | None = None, base_url: str | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads the MNIST dataset.

    This is a dataset of 60,000 28x28 grayscale images of the 10 digits, along with a test set of 10,000 images.

    {files_args}

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.

    **`x_train`**: `uint8` NumPy array of grayscale image data with shapes `(60000, 28, 28)`, containing the
    training data. Pixel values range from 0 to 255.

    **`y_train`**: `uint8` NumPy array of digit labels (integers in range 0-9) with shape `(60000,)` for the
    training data.

    **`x_test`**: `uint8` NumPy array of grayscale image data with shapes `(10000, 28, 28)`, containing the test
    data. Pixel values range from 0 to 255.

    **`y_test`**: `uint8` NumPy array of digit labels (integers in range 0-9) with shape `(10000,)` for the test
    data.

    {raises_example}
    """
    return _mnist_like.load("MNIST", SUBDIR, DEFAULT_URL, SHA256, path, base_url)
