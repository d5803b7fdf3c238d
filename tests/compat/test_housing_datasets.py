"""``keras.datasets.boston_housing`` and ``california_housing`` against Keras, offline.

The real files cannot be fetched here, so each test writes a small synthetic ``.npz`` in Keras' layout (``x`` and
``y``) into a temporary Keras cache (``$KERAS_HOME/datasets``) and gives tritonnn its sha256 in place of the real
one; Keras' ``load_data`` reads the very same file (its ``get_file`` replaced by one that records the call), so the
shuffles and splits are compared on the same data. The recorded call also shows that tritonnn asks for the same
file, from the same URL, with the same hash as Keras. Every download path is cut or pointed at this machine
(``file://``, a closed port on 127.0.0.1): no test touches the network.
"""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest

import tritonnn as tk
from tritonnn import file_utils
from tritonnn.datasets import ChecksumError, DatasetUnavailableError
from tritonnn.datasets import _npz_regression as regression

from .compare import assert_same
from .differences import deliberate

SETS = {
    # module name: (samples, features, dtype) of the synthetic file; california has more than its "small" 600
    "boston_housing": (57, 13, "float64"),
    "california_housing": (701, 8, "float32"),
}


def write_npz(path, n, features, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(dtype)
    y = (np.arange(n) + rng.uniform(size=n)).astype(dtype)  # distinct targets: the order is visible
    with open(path, "wb") as f:
        np.savez(f, x=x, y=y)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def offline(monkeypatch):
    """tritonnn's downloads fail the test: whatever is loaded must come from the cache."""

    def no_download(origin, target):
        raise AssertionError(f"a download was attempted: {origin}")

    monkeypatch.setattr(file_utils, "_download", no_download)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A Keras cache folder ($KERAS_HOME) holding a synthetic file per data set; tritonnn expects its hash."""
    home = tmp_path / "keras_home"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    files = {}
    for name, (n, features, dtype) in SETS.items():
        module = getattr(tk.datasets, name)
        files[name] = home / "datasets" / f"{name}.npz"
        monkeypatch.setattr(module, "SHA256", write_npz(files[name], n, features, dtype))
    return files


REAL = {
    name: (getattr(tk.datasets, name).ORIGIN, getattr(tk.datasets, name).SHA256) for name in SETS
}  # before any monkeypatching


@pytest.fixture
def keras_reads(keras_ref, cache, monkeypatch):
    """Keras' loaders read the synthetic files; returns the (fname, origin, file_hash) of each get_file call."""
    import importlib

    calls = []
    for name in SETS:
        module = importlib.import_module(f"keras.src.datasets.{name}")

        def fake_get_file(fname=None, origin=None, file_hash=None, _name=name, **kwargs):
            calls.append((_name, fname, origin, file_hash, kwargs))
            return str(cache[_name])

        monkeypatch.setattr(module, "get_file", fake_get_file)
    return calls


SPLITS = [dict(), dict(test_split=0.0), dict(test_split=0.33, seed=7), dict(test_split=0.5, seed=0)]


@pytest.mark.parametrize("kwargs", SPLITS, ids=["defaults", "no_test", "third_seed7", "half_seed0"])
@pytest.mark.parametrize("name", list(SETS))
def test_split_and_shuffle_are_keras(keras_ref, keras_reads, offline, name, kwargs):
    ref = getattr(keras_ref.datasets, name).load_data(**kwargs)
    got = getattr(tk.datasets, name).load_data(**kwargs)
    assert_same(ref, got, rtol=0, atol=0)
    n = SETS[name][0]
    assert len(got[0][0]) + len(got[1][0]) == n and len(got[0][0]) == int(n * (1 - kwargs.get("test_split", 0.2)))
    assert not np.array_equal(got[0][1], np.sort(got[0][1]))  # shuffled


@pytest.mark.parametrize("kwargs", [dict(version="small"), dict(version="small", test_split=0.1, seed=3)])
def test_california_small_is_keras(keras_ref, keras_reads, offline, kwargs):
    ref = keras_ref.datasets.california_housing.load_data(**kwargs)
    got = tk.datasets.california_housing.load_data(**kwargs)
    assert_same(ref, got, rtol=0, atol=0)
    assert len(got[0][0]) + len(got[1][0]) == 600


@pytest.mark.parametrize("name", list(SETS))
def test_the_file_url_and_hash_are_keras(keras_ref, keras_reads, name):
    getattr(keras_ref.datasets, name).load_data()
    ((_, fname, origin, file_hash, kwargs),) = [c for c in keras_reads if c[0] == name]
    assert (fname, origin, file_hash, kwargs) == (f"{name}.npz", *REAL[name], {})
    assert origin.startswith("https://")


def test_a_cached_file_is_read_without_network(cache, offline):
    (x_train, y_train), (x_test, y_test) = tk.datasets.boston_housing.load_data()
    assert x_train.shape == (45, 13) and x_test.shape == (12, 13) and y_train.shape == (45,)
    assert x_train.dtype == np.float64
    (x_train, _), (x_test, _) = tk.datasets.california_housing.load_data(path="california_housing.npz")
    assert x_train.shape == (560, 8) and x_test.shape == (141, 8) and x_train.dtype == np.float32


def test_a_missing_file_is_downloaded_and_cached(tmp_path, monkeypatch):
    """Through get_file for real, from a file:// folder standing in for Keras' origin, then from the cache."""
    served = tmp_path / "served"
    served.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    sha = write_npz(served / "boston_housing.npz", 30, 13, "float64")
    monkeypatch.setattr(tk.datasets.boston_housing, "ORIGIN", (served / "boston_housing.npz").as_uri())
    monkeypatch.setattr(tk.datasets.boston_housing, "SHA256", sha)
    first = tk.datasets.boston_housing.load_data()
    cached = tmp_path / "home" / "datasets" / "boston_housing.npz"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha
    (served / "boston_housing.npz").unlink()
    assert_same(first, tk.datasets.boston_housing.load_data(), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(SETS))
def test_a_wrong_checksum_is_a_clear_error(keras_ref, tmp_path, monkeypatch, name):
    """The cached file is not the real one: both re-download it, get the same wrong file again, and refuse it."""
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    wrong = tmp_path / "wrong.npz"
    write_npz(wrong, 20, SETS[name][1], "float64")
    served = []

    def serve_wrong(origin, target, *args):
        served.append(origin)
        with open(target, "wb") as f:
            f.write(wrong.read_bytes())
        return target, None

    from keras.src.utils import file_utils as keras_file_utils

    monkeypatch.setattr(keras_file_utils, "urlretrieve", serve_wrong)
    monkeypatch.setattr(file_utils, "_download", serve_wrong)
    results = {}
    for side, K, cache_dir in (("keras", keras_ref, home / "k"), ("tritonnn", tk, home / "t")):
        (cache_dir / "datasets").mkdir(parents=True)
        (cache_dir / "datasets" / f"{name}.npz").write_bytes(wrong.read_bytes())
        if side == "keras":
            from keras.src.backend import config as keras_config

            monkeypatch.setattr(keras_config, "keras_home", lambda d=str(cache_dir): d)
        monkeypatch.setenv("KERAS_HOME", str(cache_dir))
        with pytest.raises(ValueError) as e:
            getattr(K.datasets, name).load_data()
        results[side] = (e.value, (cache_dir / "datasets" / f"{name}.npz").exists())
    assert served == [REAL[name][0]] * 2  # each fetched the real URL again, once
    (ref, ref_kept), (got, got_kept) = results["keras"], results["tritonnn"]
    assert isinstance(got, ChecksumError)
    assert str(got).startswith(str(ref))  # Keras' message, then which data set and URL
    assert REAL[name][0] in str(got) and REAL[name][1] in str(got)
    deliberate("utils.get-file-failures")  # Keras keeps the file that failed its check, tritonnn does not
    assert (ref_kept, got_kept) == (True, False)


def test_offline_with_no_cached_file_is_a_clear_error(tmp_path, monkeypatch):
    """A real download attempt, to a closed port on this machine: an OSError saying where to put which file."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    origin = f"http://127.0.0.1:{port}/boston_housing.npz"
    monkeypatch.setattr(tk.datasets.boston_housing, "ORIGIN", origin)
    with pytest.raises(DatasetUnavailableError) as e:
        tk.datasets.boston_housing.load_data()
    assert isinstance(e.value, OSError)
    message = str(e.value)
    assert origin in message and REAL["boston_housing"][1] in message
    assert str(tmp_path / "home" / "datasets" / "boston_housing.npz") in message
    assert not (tmp_path / "home" / "datasets" / "boston_housing.npz").exists()


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("boston_housing", dict(test_split=1)),
        ("boston_housing", dict(test_split=-0.1)),
        ("california_housing", dict(test_split=1.5)),
        ("california_housing", dict(version="medium")),
    ],
    ids=["split_1", "split_negative", "split_over_1", "version"],
)
def test_bad_arguments_are_keras_errors(keras_ref, keras_reads, offline, name, kwargs):
    with pytest.raises(ValueError) as ref:
        getattr(keras_ref.datasets, name).load_data(**kwargs)
    with pytest.raises(ValueError) as got:
        getattr(tk.datasets, name).load_data(**kwargs)
    assert str(got.value) == str(ref.value)


@pytest.mark.parametrize("name", list(SETS))
def test_a_path_is_refused_as_in_keras(keras_ref, tmp_path, monkeypatch, offline, name):
    """``path`` is the file's name in the cache; Keras' get_file refuses a path (before any download)."""
    from keras.src.backend import config as keras_config

    monkeypatch.setattr(keras_config, "keras_home", lambda: str(tmp_path / "k"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "t"))
    with pytest.raises(ValueError) as ref:
        getattr(keras_ref.datasets, name).load_data(path=f"sub/{name}.npz")
    with pytest.raises(ValueError) as got:
        getattr(tk.datasets, name).load_data(path=f"sub/{name}.npz")
    assert str(got.value) == str(ref.value)


@pytest.mark.parametrize("name", list(SETS))
def test_signatures_are_keras(keras_ref, name):
    import inspect

    def params(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert params(getattr(tk.datasets, name).load_data) == params(getattr(keras_ref.datasets, name).load_data)


def test_the_split_keeps_a_permutation(cache, offline):
    """Every sample lands in exactly one part, with its own target."""
    with np.load(cache["boston_housing"]) as f:
        x, y = f["x"], f["y"]
    (x_train, y_train), (x_test, y_test) = tk.datasets.boston_housing.load_data(test_split=0.3, seed=1)
    xs, ys = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    order = np.argsort(ys)
    np.testing.assert_array_equal(xs[order], x[np.argsort(y)])
    np.testing.assert_array_equal(ys[order], np.sort(y))
    assert regression.ORIGIN_FOLDER.startswith("https://")
