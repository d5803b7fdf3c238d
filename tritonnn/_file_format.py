"""The file format both :mod:`tritonnn.saving` and :mod:`tritonnn.file_editor` read and write (described in saving's
module docstring): the format's name and version, the optimizer's key prefix, the checked reader, the atomic writer,
and the walk for the input shapes a config declares. One copy, so the two cannot disagree about what a file is."""

from __future__ import annotations

import json
import os
import secrets
import struct
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load

FORMAT_NAME = "tritonnn"
FORMAT_VERSION = 1
OPTIMIZER_PREFIX = "optimizer/"
SHAPE_KEYS = frozenset({"shape", "input_shape", "batch_shape", "batch_input_shape"})


def read(path: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A tritonnn file's header metadata and tensors, or a ValueError that says what the file is instead (a zip, an
    HDF5 file, truncated, a header that is not JSON, another format or version) and never a partial result."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {path}")
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"PK\x03\x04":
        raise ValueError(f"{path} is a zip archive (a Keras `.keras` file?), not a tritonnn file; it cannot be read")
    if data[:8] == b"\x89HDF\r\n\x1a\n":
        raise ValueError(f"{path} is an HDF5 file (Keras `.h5`?), not a tritonnn file; it cannot be read")
    if len(data) < 8:
        raise ValueError(f"{path} is truncated or not a tritonnn file: {len(data)} bytes, too short for a header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise ValueError(
            f"{path} is truncated or not a tritonnn file: the header declares {header_len} bytes but the file has "
            f"{len(data) - 8} after the length field"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"{path} is not a tritonnn file: its header is not JSON ({e})") from e
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a tritonnn file: its header has no format={FORMAT_NAME!r} entry")
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise ValueError(
            f"{path} has format_version={version!r}; this tritonnn reads format_version {FORMAT_VERSION!r}"
        )
    try:
        tensors = st_load(data)
    except SafetensorError as e:
        raise ValueError(f"{path} is truncated or corrupt: {e}") from e
    return metadata, tensors


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a mix.

    The temporary file is created with mode ``0o666``, which the kernel reduces by the process's umask as for any
    new file (``tempfile.mkstemp`` would create it ``0o600``, and that mode would stay on the saved file); nothing
    reads or changes the umask.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):  # a name taken by another writer: draw another, as mkstemp does
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"Could not create a temporary file beside {path}: every name tried exists")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable; not every platform can open a directory
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def declared_shapes(config: Any) -> list[list[Any]]:
    """The flat shapes (lists of ints and None) under the input-shape keys of a config, at any depth (walked
    without recursion: a file's JSON may nest deeper than Python's stack)."""
    shapes: list[list[Any]] = []
    pending: list[tuple[Any, bool]] = [(config, False)]
    while pending:
        value, is_shape = pending.pop()
        if isinstance(value, dict):
            pending.extend((v, is_shape or k in SHAPE_KEYS) for k, v in value.items())
        elif isinstance(value, list):
            if is_shape and all(d is None or isinstance(d, int) for d in value):
                shapes.append(value)
            else:
                pending.extend((v, is_shape) for v in value)
    return shapes
