"""Small public data sets as NumPy arrays, the way Keras' loaders return them.

``tritonnn.datasets.digits.load_data()`` is bundled with the package. ``mnist.load_data()`` and
``fashion_mnist.load_data()`` read their four IDX files from a cache folder (``$TRITONNN_DATA/<name>``, default
``~/.cache/tritonnn/<name>``) and download missing ones there, sha256-checked, from the canonical host or a mirror
(``base_url=`` or ``$TRITONNN_DATA_URL``). ``boston_housing.load_data()`` and ``california_housing.load_data()``
fetch Keras' ``.npz`` files into Keras' own cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``) with
``keras.utils.get_file``, sha256-checked, and shuffle and split them as Keras does.
"""

from __future__ import annotations

from . import boston_housing as boston_housing
from . import california_housing as california_housing
from . import digits as digits
from . import fashion_mnist as fashion_mnist
from . import mnist as mnist
from ._cache import ChecksumError as ChecksumError
from ._cache import DatasetUnavailableError as DatasetUnavailableError
from ._idx import IDXFormatError as IDXFormatError

__all__ = ["boston_housing", "california_housing", "digits", "mnist", "fashion_mnist"]
__all__ += ["ChecksumError", "DatasetUnavailableError", "IDXFormatError"]
