"""Keras 3's ``keras.utils.get_file``: download a file once into a cache, check its hash, extract an archive.

Where files go: ``cache_dir`` (default ``$KERAS_HOME``, else ``~/.keras``; a cache folder that cannot be written
falls back to ``/tmp/.keras``, as in Keras), in ``cache_subdir`` (default ``datasets``). The download streams into a
temporary file beside the target and is moved into place (``os.replace``) only when complete and, with
``file_hash``, only when the hash matches, so an interrupted or corrupted download never leaves a file that a later
call would take for the real one. Archives (tar, tar.gz/bz2/xz, zip) are extracted member by member into a
temporary folder, refusing any member whose path would land outside it (absolute paths, ``..``, links), then moved
into place. Any URL urllib opens works, ``file://`` included.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from typing import Any

_CHUNK = 1 << 20


def _hasher(algorithm: str, file_hash: str | None) -> Any:
    if algorithm == "sha256" or (algorithm == "auto" and file_hash is not None and len(file_hash) == 64):
        return hashlib.sha256()
    if algorithm in ("md5", "auto"):
        return hashlib.md5()
    raise ValueError(f"Expected `hash_algorithm` 'auto', 'sha256' or 'md5'. Received: hash_algorithm={algorithm!r}")


def hash_file(fpath: str, algorithm: str = "sha256", file_hash: str | None = None) -> str:
    """The hex digest of a file (Keras' ``hash_file``): ``sha256``, ``md5``, or ``auto`` (sha256 for a 64-digit
    ``file_hash``, else md5)."""
    h = _hasher(algorithm, file_hash)
    with open(fpath, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def validate_file(fpath: str, file_hash: str, algorithm: str = "auto") -> bool:
    """Whether the file's hash is ``file_hash`` (Keras' ``validate_file``)."""
    return hash_file(fpath, algorithm, file_hash) == str(file_hash)


def _download(origin: str, target: str) -> None:
    print(f"Downloading data from {origin}", file=sys.stderr, flush=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(origin, timeout=60.0) as response:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
            except urllib.error.HTTPError as e:
                raise OSError(f"URL fetch failure on {origin}: {e.code} -- {e.reason}") from e
            except urllib.error.URLError as e:
                raise OSError(f"URL fetch failure on {origin}: {e.reason}") from e
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _inside(root: str, name: str) -> bool:
    dest = os.path.realpath(os.path.join(root, name))
    return dest == os.path.realpath(root) or dest.startswith(os.path.realpath(root) + os.sep)


def _extract(archive_path: str, path: str, archive_format: Any) -> bool:
    """Extract ``archive_path`` into ``path`` (replaced as a whole); False when the format matches none given."""
    if archive_format is None:
        return False
    if archive_format == "auto":
        formats = ["tar", "zip"]
    else:
        formats = [archive_format] if isinstance(archive_format, str) else list(archive_format)
    for kind in formats:
        if kind not in ("tar", "zip"):
            raise NotImplementedError(kind)
        if kind == "tar" and tarfile.is_tarfile(archive_path):
            opener = tarfile.open
        elif kind == "zip" and zipfile.is_zipfile(archive_path):
            opener = zipfile.ZipFile
        else:
            continue
        parent = os.path.dirname(os.path.abspath(path))
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.")
        try:
            with opener(archive_path) as archive:
                if isinstance(archive, tarfile.TarFile):
                    members = archive.getmembers()
                    for m in members:
                        if not _inside(tmp, m.name) or m.issym() or m.islnk() or m.isdev():
                            raise ValueError(
                                f"Refusing to extract {archive_path}: its member {m.name!r} is a link, a device or "
                                "a path outside the extraction folder"
                            )
                    archive.extractall(tmp, members=members)
                else:
                    for name in archive.namelist():
                        if not _inside(tmp, name):
                            raise ValueError(
                                f"Refusing to extract {archive_path}: its member {name!r} is a path outside the "
                                "extraction folder"
                            )
                    archive.extractall(tmp)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True
    return False


def get_file(
    fname: str | None = None,
    origin: str | None = None,
    untar: bool = False,
    md5_hash: str | None = None,
    file_hash: str | None = None,
    cache_subdir: str = "datasets",
    hash_algorithm: str = "auto",
    extract: bool = False,
    archive_format: Any = "auto",
    cache_dir: str | None = None,
    force_download: bool = False,
) -> str:
    """Download ``origin`` into the cache unless it is already there, and return its path (Keras' ``get_file``).

    Args:
        fname: the file's name in the cache (default: the last part of the URL's path); not a path.
        origin: the URL.
        untar: deprecated, as in Keras: ``extract=True, archive_format="tar"``.
        md5_hash: deprecated, as in Keras: ``file_hash`` with ``hash_algorithm="md5"``.
        file_hash: the expected hash (sha256 or md5); a cached file that does not match is downloaded again, a
            download that does not match raises ``ValueError`` and is not kept.
        cache_subdir: the subfolder of the cache (an absolute path is used as it is).
        hash_algorithm: ``"auto"`` (sha256 for a 64-digit hash, else md5), ``"sha256"`` or ``"md5"``.
        extract: extract the archive; the return value is then the extraction folder.
        archive_format: ``"auto"`` (tar, then zip), ``"tar"``, ``"zip"``, a list of them, or None.
        cache_dir: the cache folder (default ``$KERAS_HOME`` or ``~/.keras``).
        force_download: download even when the file is cached.

    Returns:
        The path of the downloaded file, or of the folder it was extracted to.
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    _hasher(hash_algorithm, file_hash)  # a bad algorithm name fails before anything is downloaded
    base = os.path.expanduser(cache_dir)
    if not os.access(base, os.W_OK) and os.path.exists(base):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    datadir = os.path.join(base, cache_subdir)
    os.makedirs(datadir, exist_ok=True)
    provided = fname
    fname = os.fspath(fname) if fname else ""
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(
                f"Can't parse the file name from the origin provided: '{origin}'.Please specify the `fname` argument."
            )
    elif os.sep in fname:
        raise ValueError(
            "Paths are no longer accepted as the `fname` argument. To specify the file's parent directory, use the "
            f"`cache_dir` argument. Received: fname={fname}"
        )
    if extract or untar:
        if provided and "." in fname:
            target = os.path.join(datadir, fname)
            extraction_dir = os.path.join(datadir, f"{fname[: fname.find('.')]}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            target = os.path.join(datadir, f"{fname}_archive")
    else:
        target = os.path.join(datadir, fname)

    download = force_download or not os.path.exists(target)
    if not download and file_hash is not None and not validate_file(target, file_hash, hash_algorithm):
        print(
            f"A local file was found, but it seems to be incomplete or outdated because the {hash_algorithm} file "
            f"hash does not match the original value of {file_hash} so we will re-download the data.",
            file=sys.stderr,
        )
        download = True
    if download:
        _download(origin, target)
        if file_hash is not None and not validate_file(target, file_hash, hash_algorithm):
            os.remove(target)
            raise ValueError(
                f"Incomplete or corrupted file detected. The {hash_algorithm} file hash does not match the provided "
                f"value of {file_hash}."
            )
    if extract or untar:
        if not _extract(target, extraction_dir, "tar" if untar else archive_format):
            raise ValueError(f"Could not extract the archive {target} (archive_format={archive_format!r})")
        return extraction_dir
    return target
