"""The download cache behind the MNIST-style loaders: urllib only, sha256 always, atomic placement.

Where files live: ``path`` when a loader is given one, else ``$TRITONNN_DATA/<subdir>``, else
``~/.cache/tritonnn/<subdir>`` (``<subdir>`` is ``mnist`` or ``fashion-mnist``).

Where files come from when missing: ``base_url`` when a loader is given one (the folder holding the files), else
``$TRITONNN_DATA_URL/<subdir>/`` (a mirror laid out like the cache), else the data set's canonical host. Any URL
urllib opens works: ``https://``, ``http://``, ``file://``.

Every file is checked against its published sha256, on every load:

- A download goes to a temporary file in the cache folder, is hashed while it streams, and is moved into place
  with ``os.replace`` only when the hash matches. A mismatch raises :class:`ChecksumError` (file, expected and
  received hash) and leaves nothing behind, so a bad mirror or a cut connection never poisons the cache.
- A file already in the cache that does not match is an error too (:class:`ChecksumError`, saying which file to
  delete). It is not deleted or re-downloaded behind the user's back: it may be a file they put there by hand, and
  the machine may be offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

DATA_ENV = "TRITONNN_DATA"
URL_ENV = "TRITONNN_DATA_URL"
DEFAULT_ROOT = os.path.join("~", ".cache", "tritonnn")
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


class ChecksumError(ValueError):
    """A downloaded or cached file does not have the expected sha256."""


class DatasetUnavailableError(OSError):
    """Files are missing from the cache and could not be downloaded (offline, wrong URL, HTTP error)."""


class _FetchFailed(Exception):
    """Internal: opening or reading the URL failed (the cause is chained)."""


# What urllib raises for a refused connection, a timeout, a reset, an HTTP error status or a missing file:// file.
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


def cache_dir(subdir: str, path: str | os.PathLike[str] | None = None) -> Path:
    """The folder a data set's files are cached in: ``path``, else ``$TRITONNN_DATA/subdir``, else the default."""
    if path is not None:
        return Path(path).expanduser()
    root = os.environ.get(DATA_ENV) or DEFAULT_ROOT
    return Path(root).expanduser() / subdir


def source_url(subdir: str, default: str, base_url: str | None = None) -> str:
    """The folder URL to download from: ``base_url``, else ``$TRITONNN_DATA_URL/subdir/``, else ``default``."""
    if base_url:
        return base_url
    root = os.environ.get(URL_ENV)
    if root:
        return f"{root.rstrip('/')}/{subdir}/"
    return default


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(name: str, subdir: str, files: Mapping[str, str], directory: Path, base_url: str) -> dict[str, Path]:
    """Make sure every file in ``files`` (file name -> sha256) is in ``directory`` and verified.

    ``name`` (e.g. ``MNIST``) and ``subdir`` (its cache subfolder, e.g. ``mnist``) are only used in messages.

    Cached files are checked first; missing ones are then downloaded from ``base_url`` one after the other (each
    verified one stays cached even when a later one fails).

    Returns:
        File name -> path of the verified file in ``directory``.
    """
    paths = {f: directory / f for f in files}
    missing = []
    for f, expected in files.items():
        if not paths[f].exists():
            missing.append(f)
            continue
        got = sha256_file(paths[f])
        if got != expected:
            raise ChecksumError(
                f"The cached file {paths[f]} is corrupted or not the {name} file it should be: expected sha256 "
                f"{expected}, received {got}. Delete it and load again to download a fresh copy (or put the right "
                "file there)."
            )
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(missing):
        url = f"{base_url.rstrip('/')}/{f}"
        try:
            _download(url, paths[f], files[f])
        except _FetchFailed as e:  # the network or the URL failed; errors writing the cache propagate as they are
            cause = e.__cause__
            assert cause is not None
            raise DatasetUnavailableError(
                _unavailable_message(name, subdir, directory, base_url, files, missing[i:], cause)
            ) from cause
    return paths


def _download(url: str, target: Path, expected: str) -> None:
    """Stream ``url`` into a temporary file beside ``target``; ``os.replace`` it there only if the sha256 matches."""
    print(f"tritonnn.datasets: downloading {url} -> {target}", file=sys.stderr, flush=True)
    # Like tempfile.mkstemp, but with the umask's permissions (mkstemp's 0600 would stick to the cached file).
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=_TIMEOUT_S)
            except _NETWORK_ERRORS as e:
                raise _FetchFailed from e
            with response:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except _NETWORK_ERRORS as e:
                        raise _FetchFailed from e
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != expected:
            raise ChecksumError(
                f"The download of {target.name} from {url} is corrupted (or not the expected file): expected sha256 "
                f"{expected}, received {got} ({size} bytes). It was discarded, nothing was cached; retry, or use "
                f"another mirror (base_url= or ${URL_ENV})."
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _unavailable_message(
    name: str,
    subdir: str,
    directory: Path,
    base_url: str,
    files: Mapping[str, str],
    missing: list[str],
    error: BaseException,
) -> str:
    if isinstance(error, urllib.error.HTTPError):
        cause = f"HTTP {error.code} {error.reason} for {error.url}"
    elif isinstance(error, urllib.error.URLError):
        cause = str(error.reason)
    else:
        cause = f"{type(error).__name__}: {error}"
    width = max(len(f) for f in missing)
    listing = "\n".join(f"  {f:<{width}}  sha256 {files[f]}" for f in missing)
    others = " (the other files are already there)" if len(missing) < len(files) else ""
    return (
        f"Could not download {name} from {base_url} ({cause}).\n"
        f"To load {name} offline, put these files, unchanged (gzip-compressed, as published), in {directory}{others}:\n"
        f"{listing}\n"
        f"The cache folder is the `path` argument, else ${DATA_ENV}/{subdir} (${DATA_ENV} is "
        f"{os.environ.get(DATA_ENV) or 'unset'}), else {DEFAULT_ROOT}/{subdir}. A mirror can be given with "
        f"`base_url=` (the folder holding the files) or ${URL_ENV} (a folder with mnist/ and fashion-mnist/ in it); "
        "file:// URLs work."
    )
