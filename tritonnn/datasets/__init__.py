"""Small public data sets as NumPy arrays, the way Keras' loaders return them.

``tritonnn.datasets.digits.load_data()`` is bundled with the package. ``mnist.load_data()`` and
``fashion_mnist.load_data()`` read their four IDX files from a cache folder (``$TRITONNN_DATA/<name>``, default
``~/.cache/tritonnn/<name>``) and download missing ones there, sha256-checked, from the canonical host or a mirror
(``base_url=`` or ``$TRITONNN_DATA_URL``).
"""

from __future__ import annotations

from . import digits as digits
from . import fashion_mnist as fashion_mnist
from . import mnist as mnist
from ._cache import ChecksumError as ChecksumError
from ._cache import DatasetUnavailableError as DatasetUnavailableError
from ._idx import IDXFormatError as IDXFormatError

__all__ = ["digits", "mnist", "fashion_mnist", "ChecksumError", "DatasetUnavailableError", "IDXFormatError"]
