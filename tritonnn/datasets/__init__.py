"""Small public data sets as NumPy arrays, the way Keras' loaders return them.

``tritonnn.datasets.digits.load_data()`` is bundled with the package; ``mnist`` and ``fashion_mnist`` are read from
a cache folder (``$TRITONNN_DATA``, default ``~/.cache/tritonnn``) and downloaded there, sha256-checked, when missing.
"""

from __future__ import annotations

from . import digits as digits

__all__ = ["digits"]
