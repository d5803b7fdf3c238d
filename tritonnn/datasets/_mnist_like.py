"""What mnist and fashion_mnist share: four IDX files, cached and verified, decoded into Keras' arrays, and the parts
of ``load_data``'s docstring that say so."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Mapping
from typing import TypeVar

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

_F = TypeVar("_F", bound=Callable[..., object])

# What a load_data docstring's `{files_args}` and `{raises_example}` stand for, before its subdir, URL and module
# name are filled in (the text is dedented; complete_doc indents it to the docstring's own level).
_FILES_ARGS = """\
The four gzip-compressed IDX files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``) are read from the cache folder. Any that is
missing is downloaded there first, to a temporary file that is moved into place only when its sha256 matches
the published one. Cached files are checked too, on every call: a mismatch raises an error naming the file to
delete (it is never replaced silently). Offline with missing files, the error lists which files to put where.

Args:
    path: the folder holding (or to receive) the four files. Defaults to ``$TRITONNN_DATA/{subdir}``, or
        ``~/.cache/tritonnn/{subdir}`` when ``TRITONNN_DATA`` is unset.
    base_url: the URL of the folder to download missing files from (``https://``, ``http://`` or ``file://``).
        Defaults to ``$TRITONNN_DATA_URL/{subdir}/`` when that variable is set (a mirror laid out like the
        cache), else ``{default_url}``."""

_RAISES_EXAMPLE = """\
Raises:
    tritonnn.datasets.DatasetUnavailableError: (an ``OSError``) files are missing and cannot be downloaded.
    tritonnn.datasets.ChecksumError: (a ``ValueError``) a downloaded or cached file has the wrong sha256.
    tritonnn.datasets.IDXFormatError: (a ``ValueError``) a file is not the IDX array it should be.

Example:

```python
(x_train, y_train), (x_test, y_test) = keras.datasets.{module}.load_data()
assert x_train.shape == (60000, 28, 28)
assert x_test.shape == (10000, 28, 28)
assert y_train.shape == (60000,)
assert y_test.shape == (10000,)
```"""


def complete_doc(subdir: str, default_url: str) -> Callable[[_F], _F]:
    """A decorator filling a ``load_data`` docstring's ``{files_args}`` (how the four files are cached and
    verified, then ``Args:``) and ``{raises_example}`` (``Raises:``, then ``Example:`` with the function's own
    module name) in, each standing alone on a line indented like the docstring's text."""

    def fill(doc: str, placeholder: str, text: str) -> str:
        line = next(line for line in doc.splitlines() if line.strip() == placeholder)
        indent = line[: len(line) - len(line.lstrip())]
        return doc.replace(line, textwrap.indent(text, indent), 1)

    def decorate(fn: _F) -> _F:
        if fn.__doc__ is None:  # python -OO
            return fn
        names = {"subdir": subdir, "default_url": default_url, "module": fn.__module__.rsplit(".", 1)[-1]}
        doc = fill(fn.__doc__, "{files_args}", _FILES_ARGS.format(**names))
        fn.__doc__ = fill(doc, "{raises_example}", _RAISES_EXAMPLE.format(**names))
        return fn

    return decorate


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
