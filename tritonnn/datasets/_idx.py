"""A strict reader for gzip-compressed IDX files (the MNIST file format).

After decompression an IDX file is: two zero bytes, a type byte, a byte with the number of dimensions ``d``; then
``d`` big-endian uint32 sizes; then the data, row-major, big-endian, exactly as many bytes as the sizes say.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

# IDX type byte -> element type (multi-byte types are big-endian in the file).
_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXFormatError(ValueError):
    """A file is not a well-formed (gzip-compressed) IDX file, or not the array a loader expects."""


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX file held in ``data``.

    Returns:
        A new, writable NumPy array with the file's shape, in native byte order (``uint8`` for type 0x08).
    """
    if len(data) < 4:
        raise IDXFormatError(f"{name}: {len(data)} bytes is too short for an IDX header (4-byte magic number)")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or type_code not in _DTYPES:
        raise IDXFormatError(
            f"{name}: bad IDX magic number 0x{magic:08X}: expected 0x0000TTDD with type TT one of "
            f"{', '.join(f'0x{t:02X}' for t in _DTYPES)} (0x08 = unsigned byte) and DD dimensions"
        )
    if ndim == 0:
        raise IDXFormatError(f"{name}: IDX magic number 0x{magic:08X} gives 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(
            f"{name}: truncated header: {ndim} dimensions need {header} bytes, the file has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[type_code])
    expected = math.prod(shape) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "trailing bytes"
        raise IDXFormatError(
            f"{name}: {what}: dimensions {shape} of {dtype.itemsize}-byte elements need {expected} data bytes "
            f"after the {header}-byte header, the file has {got}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a gzip-compressed IDX file (``*-idx?-ubyte.gz``).

    Returns:
        The array, as :func:`parse_idx` gives it.
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise IDXFormatError(f"{path}: not a valid gzip file ({type(e).__name__}: {e})") from e
    return parse_idx(data, name=os.fspath(path))


def read_images_and_labels(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    image_shape: tuple[int, ...] = (28, 28),
    num_classes: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Read one images file and its labels file, and check they are what an MNIST-style loader returns.

    Returns:
        `(images, labels)`: `uint8` arrays of shape `(N, *image_shape)` and `(N,)`, labels in `0..num_classes-1`.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != tuple(image_shape):
        raise IDXFormatError(
            f"{images_path}: expected unsigned-byte images of shape (N, {', '.join(map(str, image_shape))}), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXFormatError(
            f"{labels_path}: expected a 1-D unsigned-byte label vector, got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise IDXFormatError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if len(labels) and int(labels.max()) >= num_classes:
        raise IDXFormatError(f"{labels_path}: label {int(labels.max())} is out of range 0..{num_classes - 1}")
    return images, labels
