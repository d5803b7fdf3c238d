"""Fashion-MNIST: 60000 train and 10000 test 28x28 grey images of 10 kinds of clothing, labels 0..9.

The four IDX files are read from a cache folder and downloaded there (sha256-checked) when missing; see
:func:`load_data`. Origin: Zalando Research (github.com/zalandoresearch/fashion-mnist), MIT license.
"""

from __future__ import annotations

import os

import numpy as np

from . import _mnist_like

__all__ = ["load_data"]

# The authors' own host (the one their README links).
DEFAULT_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SUBDIR = "fashion-mnist"
SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}


@_mnist_like.complete_doc(SUBDIR, DEFAULT_URL)
def load_data(
    path: str | os.PathLike[str] | None = None, base_url: str | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads the Fashion-MNIST dataset.

    This is a dataset of 60,000 28x28 grayscale images of 10 fashion categories, along with a test set of 10,000
    images. The classes are:

    | Label | Description |
    |:-----:|-------------|
    |   0   | T-shirt/top |
    |   1   | Trouser     |
    |   2   | Pullover    |
    |   3   | Dress       |
    |   4   | Coat        |
    |   5   | Sandal      |
    |   6   | Shirt       |
    |   7   | Sneaker     |
    |   8   | Bag         |
    |   9   | Ankle boot  |

    {files_args}

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.

    **`x_train`**: `uint8` NumPy array of grayscale image data with shapes `(60000, 28, 28)`, containing the
    training data.

    **`y_train`**: `uint8` NumPy array of labels (integers in range 0-9) with shape `(60000,)` for the training
    data.

    **`x_test`**: `uint8` NumPy array of grayscale image data with shapes `(10000, 28, 28)`, containing the test
    data.

    **`y_test`**: `uint8` NumPy array of labels (integers in range 0-9) with shape `(10000,)` for the test data.

    {raises_example}

    License: The copyright for Fashion-MNIST is held by Zalando SE. Fashion-MNIST is licensed under the MIT license.
    """
    return _mnist_like.load("Fashion-MNIST", SUBDIR, DEFAULT_URL, SHA256, path, base_url)
