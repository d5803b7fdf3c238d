"""``keras.utils.get_file`` against Keras, offline: ``file://`` origins into temporary caches. The same calls give the
same paths (relative to each cache), the same contents, the same hash checks and the same extraction folders."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile

import pytest

import tritonnn

from .differences import deliberate


@pytest.fixture
def served(tmp_path):
    """A folder of files to download: a plain file, a .tar.gz and a .zip of two files."""
    root = tmp_path / "server"
    root.mkdir()
    (root / "data.bin").write_bytes(b"0123456789" * 1000)
    with tarfile.open(root / "pack.tar.gz", "w:gz") as tar:
        for name, payload in (("a.txt", b"alpha"), ("sub/b.txt", b"beta")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with zipfile.ZipFile(root / "pack.zip", "w") as z:
        z.writestr("a.txt", b"alpha")
        z.writestr("sub/b.txt", b"beta")
    return root


def _url(root, name):
    return (root / name).as_uri()


def _tree(path):
    out = {}
    for dirpath, _, files in os.walk(path):
        for f in files:
            full = os.path.join(dirpath, f)
            out[os.path.relpath(full, path)] = open(full, "rb").read()
    return out


CALLS = [
    ("plain", dict(fname="data.bin", origin="data.bin")),
    ("inferred-name", dict(origin="data.bin")),
    ("sha256", dict(fname="d.bin", origin="data.bin", file_hash="SHA256:data.bin")),
    ("md5", dict(fname="d.bin", origin="data.bin", md5_hash="MD5:data.bin")),
    ("subdir", dict(fname="data.bin", origin="data.bin", cache_subdir="models")),
    ("extract-tar", dict(fname="pack.tar.gz", origin="pack.tar.gz", extract=True)),
    ("extract-zip", dict(origin="pack.zip", extract=True)),
    ("untar", dict(fname="pack", origin="pack.tar.gz", untar=True)),
]


def _resolve(kwargs, root):
    out = dict(kwargs)
    out["origin"] = _url(root, kwargs["origin"])
    for key in ("file_hash", "md5_hash"):
        if key in out:
            algo, name = out[key].split(":")
            out[key] = hashlib.new(algo.lower(), (root / name).read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("case, kwargs", CALLS, ids=[c[0] for c in CALLS])
def test_get_file_caches_and_extracts_as_keras(keras_ref, served, tmp_path, case, kwargs):
    results, paths = [], []
    for K in (keras_ref, tritonnn):
        cache = tmp_path / f"cache-{K.__name__}"
        cache.mkdir()  # Keras writes to /tmp/.keras instead when the cache folder does not exist yet
        path = K.utils.get_file(cache_dir=str(cache), **_resolve(kwargs, served))
        content = _tree(path) if os.path.isdir(path) else open(path, "rb").read()
        results.append((os.path.relpath(path, cache), content))
        paths.append((K, cache, path))
    assert results[1] == results[0]
    resolved = _resolve(kwargs, served)
    served.rename(tmp_path / "offline")  # cached: a second call finds the file without the origin
    for K, cache, path in paths:
        assert K.utils.get_file(cache_dir=str(cache), **resolved) == path


def test_hash_mismatches_as_keras(keras_ref, served, tmp_path):
    url = _url(served, "data.bin")
    wrong = "0" * 64
    for K in (keras_ref, tritonnn):
        cache = str(tmp_path / f"cache-{K.__name__}")
        os.mkdir(cache)
        with pytest.raises(ValueError, match="hash does not match"):
            K.utils.get_file("data.bin", url, file_hash=wrong, cache_dir=cache)
        # a cached file that does not match its hash is downloaded again
        path = K.utils.get_file("data.bin", url, cache_dir=cache, force_download=True)
        with open(path, "wb") as f:
            f.write(b"corrupt")
        good = hashlib.sha256((served / "data.bin").read_bytes()).hexdigest()
        assert (
            open(K.utils.get_file("data.bin", url, file_hash=good, cache_dir=cache), "rb").read()[:10] == b"0123456789"
        )
        with pytest.raises(ValueError, match="Paths are no longer accepted"):
            K.utils.get_file(os.path.join("a", "b.bin"), url, cache_dir=cache)
        with pytest.raises(ValueError, match='specify the "origin"'):
            K.utils.get_file("x.bin", cache_dir=cache)


def test_what_tritonnn_refuses_where_keras_keeps_going(served, tmp_path):
    deliberate("utils.get-file-failures")
    url = _url(served, "data.bin")
    cache = str(tmp_path / "cache")  # not there yet: made (Keras would fall back to /tmp/.keras)
    with pytest.raises(ValueError, match="hash does not match"):
        tritonnn.utils.get_file("data.bin", url, file_hash="0" * 64, cache_dir=cache)
    assert not os.path.exists(os.path.join(cache, "datasets", "data.bin"))  # a corrupted download is not kept
    with pytest.raises(ValueError, match="Could not extract"):
        tritonnn.utils.get_file("data.bin", url, extract=True, cache_dir=cache)  # not an archive
    evil = served / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="outside the extraction folder"):
        tritonnn.utils.get_file("evil.tar", _url(served, "evil.tar"), extract=True, cache_dir=cache)
    assert not os.path.exists(os.path.join(cache, "escaped.txt"))
    assert not any(n.startswith(".") for n in os.listdir(os.path.join(cache, "datasets")))  # no temporary left
