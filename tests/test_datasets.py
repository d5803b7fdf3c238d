"""tritonnn.datasets: the bundled digits split, and the MNIST-style download cache, all without the network.

Downloads are served from the real files in ``<repo>/../shared/datasets`` by a loopback HTTP server (or read
through ``file://``); every test passes its own temporary cache (the conftest's TRITONNN_DATA must never be used).
Each full MNIST-style set is decoded at most twice (about 0.5 s each).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tritonnn import datasets
from tritonnn.datasets import _cache, _idx, _make_digits, digits, fashion_mnist, mnist

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
DIGITS_CSV = SHARED / "digits" / "digits.csv.gz"
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]

needs_shared = pytest.mark.skipif(
    not (SHARED / "mnist").is_dir() or not (SHARED / "fashion-mnist").is_dir(),
    reason=f"the shared data sets are not beside the repository ({SHARED})",
)
needs_digits_csv = pytest.mark.skipif(not DIGITS_CSV.is_file(), reason=f"{DIGITS_CSV} is missing")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port); yields the base URL and the list of paths asked."""
    requests: list[str] = []

    class Handler(_Handler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once, like a machine with no network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the conftest's TRITONNN_DATA nor a stray TRITONNN_DATA_URL may leak into a test."""
    monkeypatch.setenv("TRITONNN_DATA", str(tmp_path / "env-cache-must-not-be-used"))
    monkeypatch.delenv("TRITONNN_DATA_URL", raising=False)


def assert_mnist_like(data: tuple, train_counts: list[int], test_counts: list[int]) -> None:
    (x_train, y_train), (x_test, y_test) = data
    for a, shape in ((x_train, (60000, 28, 28)), (y_train, (60000,)), (x_test, (10000, 28, 28)), (y_test, (10000,))):
        assert a.dtype == np.uint8
        assert a.shape == shape
        assert a.flags.writeable
    assert np.bincount(y_train, minlength=10).tolist() == train_counts
    assert np.bincount(y_test, minlength=10).tolist() == test_counts
    assert x_train.max() == 255 and x_test.max() == 255 and x_train.min() == 0


# --------------------------------------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_ranges_and_class_counts() -> None:
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert x_train.shape == (1438, 8, 8) and y_train.shape == (1438,)
    assert x_test.shape == (359, 8, 8) and y_test.shape == (359,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8
    assert x_train.max() == 16 and x_test.max() == 16  # 0..16, not rescaled to 0..255
    assert y_train.max() == 9 and y_test.max() == 9
    train_counts = np.bincount(y_train, minlength=10)
    test_counts = np.bincount(y_test, minlength=10)
    assert (train_counts + test_counts).tolist() == DIGITS_CLASS_COUNTS
    # Stratified 80/20: every class's test share is round(0.2 * n).
    assert test_counts.tolist() == [int(np.floor(0.2 * n + 0.5)) for n in DIGITS_CLASS_COUNTS]


def test_digits_split_is_fixed_and_arrays_are_independent() -> None:
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    x_train[0, 0, 0] = 99  # the caller owns the arrays: changing them must not change the next load
    (x_train2, y_train2), (x_test2, y_test2) = digits.load_data()
    assert x_train2[0, 0, 0] != 99
    x_train[0, 0, 0] = x_train2[0, 0, 0]
    for a, b in ((x_train, x_train2), (y_train, y_train2), (x_test, x_test2), (y_test, y_test2)):
        np.testing.assert_array_equal(a, b)


@needs_digits_csv
def test_digits_parts_are_disjoint_and_together_the_csv_rows() -> None:
    # Read the CSV independently of the package's script: image pixels then the label, one sample per row.
    with gzip.open(DIGITS_CSV, "rt") as f:
        csv_rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    assert csv_rows.shape == (1797, 65)
    (x_train, y_train), (x_test, y_test) = digits.load_data()

    def rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.concatenate([x.reshape(len(x), 64).astype(np.int64), y[:, None].astype(np.int64)], axis=1)

    def multiset(a: np.ndarray) -> Counter:
        return Counter(map(tuple, a.tolist()))

    train, test, csv = multiset(rows(x_train, y_train)), multiset(rows(x_test, y_test)), multiset(csv_rows)
    assert train + test == csv
    # The CSV has no repeated image, so disjoint parts share no image at all (whatever its label).
    assert len(multiset(csv_rows[:, :64])) == 1797
    assert not {im.tobytes() for im in x_train} & {im.tobytes() for im in x_test}


@needs_digits_csv
def test_digits_npz_is_what_the_committed_script_makes() -> None:
    built = _make_digits.build(DIGITS_CSV)
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    for key, loaded in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        np.testing.assert_array_equal(built[key], loaded, err_msg=key)
    train_rows, test_rows = built["train_rows"].astype(np.int64), built["test_rows"].astype(np.int64)
    assert np.intersect1d(train_rows, test_rows).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_rows, test_rows])), np.arange(1797))


def test_make_digits_split_is_stratified_and_seeded() -> None:
    labels = np.repeat(np.arange(10), 50)
    train, test = _make_digits.split_rows(labels, seed=3)
    again_train, again_test = _make_digits.split_rows(labels, seed=3)
    np.testing.assert_array_equal(test, again_test)
    np.testing.assert_array_equal(train, again_train)
    assert np.bincount(labels[test]).tolist() == [10] * 10
    assert not np.array_equal(test, _make_digits.split_rows(labels, seed=4)[1])


def test_make_digits_rejects_a_different_csv(tmp_path: Path) -> None:
    other = tmp_path / "digits.csv.gz"
    other.write_bytes(gzip.compress(b"0," * 64 + b"0\n"))
    with pytest.raises(ValueError, match="sha256"):
        _make_digits.read_csv(other)


# ------------------------------------------------------------------------------------------------------------ IDX


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    return bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_parse_idx_reads_shapes_and_big_endian_types() -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = _idx.parse_idx(idx_bytes(images))
    np.testing.assert_array_equal(out, images)
    assert out.dtype == np.uint8 and out.flags.writeable
    ints = np.array([1, -2, 70000], dtype=">i4")
    out = _idx.parse_idx(idx_bytes(ints, 0x0C))
    assert out.tolist() == [1, -2, 70000] and out.dtype == np.int32 and out.dtype.isnative


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00\x00\x08", "too short"),
        (b"\x00\x01\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic number 0x00010801"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "magic number 0x00000701"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">2I", 2, 2), "truncated header"),
        (b"\x00\x00\x08\x02" + struct.pack(">2I", 2, 3) + bytes(5), "truncated: .* need 6 data bytes .* has 5"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(3), "trailing bytes"),
    ],
    ids=["short", "nonzero-magic", "bad-type", "zero-dims", "short-header", "short-data", "long-data"],
)
def test_parse_idx_rejects_malformed_data(data: bytes, match: str) -> None:
    with pytest.raises(datasets.IDXFormatError, match=match):
        _idx.parse_idx(data, name="x.idx")


def test_read_idx_rejects_a_file_that_is_not_gzip(tmp_path: Path) -> None:
    plain = tmp_path / "labels.gz"
    plain.write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(datasets.IDXFormatError, match="not a valid gzip"):
        _idx.read_idx(plain)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(idx_bytes(np.zeros(300, np.uint8)))[:-10])
    with pytest.raises(datasets.IDXFormatError, match="not a valid gzip"):
        _idx.read_idx(cut)


def test_read_images_and_labels_checks_what_a_loader_needs(tmp_path: Path) -> None:
    def write(name: str, array: np.ndarray) -> Path:
        p = tmp_path / name
        p.write_bytes(gzip.compress(idx_bytes(array)))
        return p

    images = write("images.gz", np.zeros((3, 28, 28), np.uint8))
    labels = write("labels.gz", np.array([0, 9, 4], np.uint8))
    x, y = _idx.read_images_and_labels(images, labels)
    assert x.shape == (3, 28, 28) and y.tolist() == [0, 9, 4]
    with pytest.raises(datasets.IDXFormatError, match=r"shape \(N, 28, 28\)"):
        _idx.read_images_and_labels(write("small.gz", np.zeros((3, 27, 28), np.uint8)), labels)
    with pytest.raises(datasets.IDXFormatError, match="1-D"):
        _idx.read_images_and_labels(images, write("2d.gz", np.zeros((3, 1), np.uint8)))
    with pytest.raises(datasets.IDXFormatError, match="3 images but .* 2 labels"):
        _idx.read_images_and_labels(images, write("two.gz", np.zeros(2, np.uint8)))
    with pytest.raises(datasets.IDXFormatError, match="label 10 is out of range"):
        _idx.read_images_and_labels(images, write("ten.gz", np.array([0, 10, 1], np.uint8)))


# ----------------------------------------------------------------------------------------------- cache and URLs


def test_cache_dir_and_source_url_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRITONNN_DATA", raising=False)
    monkeypatch.delenv("TRITONNN_DATA_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.cache_dir("mnist") == tmp_path / "home" / ".cache" / "tritonnn" / "mnist"
    assert mnist.DEFAULT_URL == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert fashion_mnist.DEFAULT_URL == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert _cache.source_url("mnist", mnist.DEFAULT_URL) == mnist.DEFAULT_URL
    monkeypatch.setenv("TRITONNN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TRITONNN_DATA_URL", "https://mirror.example/sets/")
    assert _cache.cache_dir("fashion-mnist") == tmp_path / "data" / "fashion-mnist"
    assert _cache.cache_dir("mnist", tmp_path / "mine") == tmp_path / "mine"
    assert _cache.source_url("fashion-mnist", "x") == "https://mirror.example/sets/fashion-mnist/"
    assert _cache.source_url("mnist", "x", "file:///srv/mnist/") == "file:///srv/mnist/"


@needs_shared
def test_mnist_download_over_http_caches_then_loads_with_server_stopped(no_env: None, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with serve(SHARED / "mnist") as (url, requests):
        data = mnist.load_data(path=cache, base_url=url)
    assert sorted(requests) == sorted(f"/{f}" for f in FILES)
    assert_mnist_like(data, MNIST_TRAIN_COUNTS, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert cache_listing(cache) == sorted(FILES)  # the four files and no leftover temporary file
    for f in FILES:
        assert sha256(cache / f) == mnist.SHA256[f]
    assert not (tmp_path / "env-cache-must-not-be-used").exists()

    # The server is gone: a second load must come from the cache alone, and give the same arrays.
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=cache, base_url=url)
    np.testing.assert_array_equal(x_train, data[0][0])
    np.testing.assert_array_equal(y_test, data[1][1])


@needs_shared
def test_fashion_mnist_download_over_http_via_env_vars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, refused_url: str
) -> None:
    monkeypatch.setenv("TRITONNN_DATA", str(tmp_path / "data"))
    with serve(SHARED) as (url, requests):  # a mirror laid out like the cache: <url>/fashion-mnist/<file>
        monkeypatch.setenv("TRITONNN_DATA_URL", url)
        data = fashion_mnist.load_data()
    assert sorted(requests) == sorted(f"/fashion-mnist/{f}" for f in FILES)
    assert_mnist_like(data, [6000] * 10, [1000] * 10)
    assert cache_listing(tmp_path / "data" / "fashion-mnist") == sorted(FILES)
    assert cache_listing(tmp_path / "data") == ["fashion-mnist"]


@needs_shared
def test_fashion_mnist_from_a_file_url(no_env: None, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    data = fashion_mnist.load_data(path=str(cache), base_url=(SHARED / "fashion-mnist").as_uri())
    assert_mnist_like(data, [6000] * 10, [1000] * 10)
    assert cache_listing(cache) == sorted(FILES)


def corrupt(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: len(data) // 2]
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    return bytes(flipped)


@needs_shared
@pytest.mark.parametrize(
    ("bad_file", "how"),
    [("train-images-idx3-ubyte.gz", "truncated"), ("t10k-labels-idx1-ubyte.gz", "bit-flipped")],
)
def test_corrupted_download_is_rejected_and_not_cached(no_env: None, tmp_path: Path, bad_file: str, how: str) -> None:
    served = tmp_path / "served"
    served.mkdir()
    for f in FILES:
        if f != bad_file:
            os.symlink(SHARED / "mnist" / f, served / f)
    bad = corrupt((SHARED / "mnist" / bad_file).read_bytes(), how)
    (served / bad_file).write_bytes(bad)
    cache = tmp_path / "cache"

    with serve(served) as (url, _), pytest.raises(datasets.ChecksumError) as info:
        mnist.load_data(path=cache, base_url=url)
    message = str(info.value)
    assert bad_file in message
    assert f"expected sha256 {mnist.SHA256[bad_file]}" in message
    assert f"received {hashlib.sha256(bad).hexdigest()}" in message

    # Nothing but verified files is left: not the bad one, and no temporary file. Files fetched before the bad one
    # stay (they are verified); train-images is fetched first, so its corruption leaves the cache empty.
    kept = cache_listing(cache)
    assert bad_file not in kept
    assert kept == sorted(FILES[: FILES.index(bad_file)])
    for f in kept:
        assert sha256(cache / f) == mnist.SHA256[f]


@needs_shared
def test_corrupted_cached_file_is_an_error_that_says_to_delete_it(
    no_env: None, tmp_path: Path, refused_url: str
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    for f in FILES:
        shutil.copyfile(SHARED / "mnist" / f, cache / f)
    bad = corrupt((cache / FILES[3]).read_bytes(), "bit-flipped")
    (cache / FILES[3]).write_bytes(bad)
    with pytest.raises(datasets.ChecksumError) as info:
        mnist.load_data(path=cache, base_url=refused_url)
    message = str(info.value)
    assert str(cache / FILES[3]) in message and "Delete it" in message
    assert mnist.SHA256[FILES[3]] in message and hashlib.sha256(bad).hexdigest() in message
    assert (cache / FILES[3]).read_bytes() == bad  # left for the user to look at, not silently replaced


def test_offline_with_an_empty_cache_says_which_files_to_put_where(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, refused_url: str
) -> None:
    monkeypatch.setenv("TRITONNN_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("TRITONNN_DATA_URL", raising=False)
    with pytest.raises(datasets.DatasetUnavailableError) as info:
        mnist.load_data(base_url=refused_url)
    assert isinstance(info.value, OSError)
    message = str(info.value)
    target = tmp_path / "data" / "mnist"
    assert f"in {target}:" in message
    assert refused_url in message and "refused" in message.lower()
    for f in FILES:
        assert f"{f}  sha256 {mnist.SHA256[f]}" in message.replace("   ", "  ")
    assert "TRITONNN_DATA" in message and "TRITONNN_DATA_URL" in message
    assert cache_listing(target) == []


@needs_shared
def test_offline_with_a_partial_cache_lists_only_the_missing_files(
    no_env: None, tmp_path: Path, refused_url: str
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    for f in (FILES[1], FILES[3]):
        shutil.copyfile(SHARED / "fashion-mnist" / f, cache / f)
    with pytest.raises(datasets.DatasetUnavailableError) as info:
        fashion_mnist.load_data(path=cache, base_url=refused_url)
    message = str(info.value)
    assert FILES[0] in message and FILES[2] in message
    assert FILES[1] not in message and FILES[3] not in message
    assert "already there" in message and "fashion-mnist" in message
    assert cache_listing(cache) == sorted([FILES[1], FILES[3]])


def test_http_error_is_reported_with_its_status(no_env: None, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with serve(empty) as (url, _), pytest.raises(datasets.DatasetUnavailableError, match="HTTP 404"):
        mnist.load_data(path=tmp_path / "cache", base_url=url)
    assert cache_listing(tmp_path / "cache") == []


@needs_shared
def test_a_cache_write_error_is_not_reported_as_a_download_failure(
    no_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_cache.os, "fsync", disk_full)
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="No space left") as info:
        mnist.load_data(path=cache, base_url=(SHARED / "mnist").as_uri())
    assert not isinstance(info.value, datasets.DatasetUnavailableError)
    assert cache_listing(cache) == []  # the temporary file is removed
