"""tritonnn.saving against files that lie (issue #15): stored dtypes that do not match the weights, configs that ask
for far more memory than the file holds, and the permissions of the files it writes."""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import struct
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

import tritonnn as keras
from tritonnn import saving
from tritonnn.layers import layer as layer_module


def mlp(seed: int = 0, compile: bool = True, first: keras.layers.Layer | None = None) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.layers.InputLayer(shape=(4,)),
            first if first is not None else keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    if compile:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 2] > 0).astype("int64")
    return x, y


@pytest.fixture
def trained(data):
    model = mlp()
    model.fit(*data, epochs=1, batch_size=8, verbose=0)
    return model


def edit_header(path, edit) -> None:
    """Rewrite the JSON header of a safetensors file in place with ``edit(header)``; the tensor bytes stay as they
    are (a stranger's or a corrupted file)."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + raw[8 + n :])


def relabel(path, key: str, dtype: str) -> None:
    """Change the dtype a tensor is declared with (same shape, same bytes)."""

    def edit(header):
        header[key]["dtype"] = dtype

    edit_header(path, edit)


def edit_model_config(path, edit) -> None:
    def edit_meta(header):
        cfg = json.loads(header["__metadata__"]["model_config"])
        edit(cfg)
        header["__metadata__"]["model_config"] = json.dumps(cfg)

    edit_header(path, edit_meta)


def rewrite_tensors(path, edit) -> None:
    """Rewrite a file with ``edit(tensors)`` applied, the metadata kept."""
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
        # Copies: the tensors safe_open returns map the file, which is about to be rewritten.
        tensors = {k: f.get_tensor(k).clone() for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    edit(tensors)
    with open(path, "wb") as f:
        f.write(st_save(tensors, metadata=meta))


def weights_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model, before: dict[str, torch.Tensor]) -> None:
    for k, v in model.state_dict().items():
        assert torch.equal(v.detach().cpu(), before[k]), f"{k} was changed by a refused load"


# ---- 1. stored dtypes ---------------------------------------------------------------------------------------------


def test_a_weight_stored_as_another_dtype_is_refused_naming_both(tmp_path, trained):
    path = tmp_path / "m.keras"
    trained.save(path)
    relabel(path, "_layers.0.kernel", "I32")  # the float32 bits, read as integers, would be weights of ~1e9
    with pytest.raises(ValueError, match=r"'_layers\.0\.kernel'.*stored as int32.*model's weight it fills is float32"):
        saving.load_model(path)
    fresh = mlp(seed=5)
    fresh.build((None, 4))
    before = weights_of(fresh)
    with pytest.raises(ValueError, match=r"'_layers\.0\.kernel'.*int32.*float32"):
        saving.load_weights(fresh, path)
    assert_unchanged(fresh, before)


@pytest.mark.parametrize(
    ("key", "stored", "expected"), [("momentums", "I32", "float32"), ("iterations", "F64", "int64")]
)
def test_optimizer_state_stored_as_another_dtype_is_refused_before_anything_is_copied(
    tmp_path, data, trained, key, stored, expected
):
    path = tmp_path / "w.weights.h5"
    trained.save_weights(path)
    relabel(path, "optimizer/" + key, stored)
    target = mlp(seed=5)
    target.fit(*data, epochs=1, batch_size=8, verbose=0)
    before = weights_of(target)
    before_opt = {k: v.detach().cpu().clone() for k, v in target.optimizer.state_dict().items()}
    with pytest.raises(ValueError, match=rf"'optimizer/{key}'.*stored as \w+.*is {expected}"):
        saving.load_weights(target, path)
    assert_unchanged(target, before)  # the model weights were not copied either
    for k, v in target.optimizer.state_dict().items():
        assert torch.equal(v.cpu(), before_opt[k]), k


def test_narrowing_and_integer_float_conversions_are_refused(tmp_path, trained):
    path = tmp_path / "w.weights.h5"
    trained.save_weights(path)
    fresh = mlp(seed=5, compile=False)
    fresh.build((None, 4))
    for dtype in (torch.float64, torch.int32, torch.int64, torch.bool):
        rewrite_tensors(path, lambda t, d=dtype: t.update({"_layers.1.bias": t["_layers.1.bias"].to(d)}))
        with pytest.raises(ValueError, match=rf"'_layers\.1\.bias'.*stored as {str(dtype)[6:]}.*float32"):
            saving.load_weights(fresh, path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_widen_to_float32_exactly(tmp_path, trained, dtype):
    path = tmp_path / "w.weights.h5"
    trained.save_weights(path)
    rewrite_tensors(path, lambda t: t.update({"_layers.0.kernel": t["_layers.0.kernel"].to(dtype)}))
    fresh = mlp(seed=5, compile=False)
    fresh.build((None, 4))
    saving.load_weights(fresh, path)
    want = trained.state_dict()["_layers.0.kernel"].detach().cpu().to(dtype).float()
    assert torch.equal(fresh.state_dict()["_layers.0.kernel"].detach().cpu(), want)


# ---- 2. the memory a file can make loading allocate ---------------------------------------------------------------

BIG = 10**11  # elements: 400 GB of float32


def max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


@pytest.fixture
def no_big_allocations(monkeypatch):
    """A context manager for the loads under test: inside it, an initializer asked for a large weight and a large
    ``torch.zeros`` fail the test instead of allocating (the unfixed code would try to fill 400 GB), and the peak
    RSS must stay well under 100 MB above where it started."""
    limit = 10**7
    real_get, real_zeros = keras.initializers.get, torch.zeros

    class Guarded(keras.initializers.Initializer):
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, shape, dtype=torch.float32):
            if math.prod(shape) > limit:
                raise AssertionError(f"an initializer was asked for a weight of shape {tuple(shape)}")
            return self.inner(shape, dtype)

    def guarded_get(identifier):
        init = real_get(identifier)
        return init if init is None or isinstance(init, Guarded) else Guarded(init)

    def guarded_zeros(*size, **kwargs):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (list, tuple)) else size
        if all(isinstance(d, int) for d in shape) and math.prod(shape) > limit:
            raise AssertionError(f"torch.zeros was asked for {tuple(shape)}")
        return real_zeros(*size, **kwargs)

    @contextlib.contextmanager
    def guard():
        rss = max_rss_bytes()
        with monkeypatch.context() as m:
            m.setattr(keras.initializers, "get", guarded_get)
            m.setattr(torch, "zeros", guarded_zeros)
            yield
        assert max_rss_bytes() - rss < 100 * 2**20

    return guard


def test_a_config_asking_for_more_weights_than_the_file_holds_fails_before_allocating(
    tmp_path, trained, no_big_allocations
):
    path = tmp_path / "m.keras"
    trained.save(path)
    assert path.stat().st_size < 20_000

    def huge(cfg):
        cfg["config"]["layers"][1]["config"]["units"] = BIG  # Keras' layout: layers[0] is the InputLayer

    edit_model_config(path, huge)
    name = trained.layers[0].name
    with (
        no_big_allocations(),
        pytest.raises(
            ValueError,
            match=rf"Layer '{name}'.*weight 'kernel' of shape \(4, {BIG}\).*holds 67 elements of model weights",
        ),
    ):
        saving.load_model(path)


@pytest.mark.parametrize(
    ("first", "weight"),
    [
        (lambda: keras.layers.BatchNormalization(center=False, scale=False), "moving_mean"),
        (lambda: keras.layers.LayerNormalization(), "gamma"),
    ],
)
def test_normalization_weights_are_bounded_by_the_file_too(tmp_path, no_big_allocations, first, weight):
    model = mlp(compile=False, first=first())
    model.build((None, 4))
    path = tmp_path / "m.keras"
    model.save(path)

    def wide(cfg):  # a wide input (allowed) makes the normalization's weights wide
        cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, 2 * 10**6]  # the InputLayer's (Keras' layout)

    edit_model_config(path, wide)
    with (
        no_big_allocations(),
        pytest.raises(ValueError, match=rf"weight '{weight}' of shape \(2000000,\).*holds 23 elements"),
    ):
        saving.load_model(path)


def test_embedding_tables_are_bounded_by_the_file(tmp_path, no_big_allocations):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.layers.InputLayer(shape=(3,)), keras.layers.Embedding(10, 4), keras.layers.Dense(2)]
    )
    path = tmp_path / "m.keras"
    model.save(path)

    def huge(cfg):
        cfg["config"]["layers"][1]["config"]["input_dim"] = BIG  # layers[0] is the InputLayer

    edit_model_config(path, huge)
    with (
        no_big_allocations(),
        pytest.raises(ValueError, match=rf"weight 'embeddings' of shape \({BIG}, 4\).*holds 50 elements"),
    ):
        saving.load_model(path)


def test_functional_configs_are_bounded_too(tmp_path, no_big_allocations):
    inputs = keras.Input(shape=(4,))
    outputs = keras.layers.Dense(2)(keras.layers.Dense(5)(inputs))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "f.keras"
    model.save(path)

    def huge(cfg):
        for layer in cfg["config"]["layers"]:
            if layer["class_name"] == "Dense" and layer["config"]["units"] == 2:
                layer["config"]["units"] = BIG

    edit_model_config(path, huge)
    with (
        no_big_allocations(),
        pytest.raises(ValueError, match=rf"weight 'kernel' of shape \(5, {BIG}\).*holds 37 elements"),
    ):
        saving.load_model(path)


def test_a_huge_input_shape_is_refused_before_allocating(tmp_path, trained, no_big_allocations):
    path = tmp_path / "m.keras"
    trained.save(path)

    def huge(cfg):
        cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, BIG]  # the InputLayer's (Keras' layout)

    edit_model_config(path, huge)
    with (
        no_big_allocations(),
        pytest.raises(ValueError, match=rf"input shape \[None, {BIG}\].*{BIG} elements per sample.*at most"),
    ):
        saving.load_model(path)
    weights = tmp_path / "w.weights.h5"
    trained.save_weights(weights)

    def huge_build(header):
        header["__metadata__"]["build_config"] = json.dumps({"input_shape": [None, BIG]})

    edit_header(weights, huge_build)
    unbuilt = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(3)])
    with no_big_allocations(), pytest.raises(ValueError, match=rf"input shape \[None, {BIG}\].*at most"):
        saving.load_weights(unbuilt, weights)


def test_load_weights_builds_an_unbuilt_model_within_the_file(tmp_path, trained, no_big_allocations):
    weights = tmp_path / "w.weights.h5"
    trained.save_weights(weights)
    unbuilt = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(3)])
    with no_big_allocations():
        saving.load_weights(unbuilt, weights)  # the same architecture: within the file's 67 elements
    too_big = keras.Sequential([keras.layers.Dense(10**6), keras.layers.Dense(3)])
    with (
        no_big_allocations(),
        pytest.raises(ValueError, match=r"weight 'kernel' of shape \(4, 1000000\).*holds 67 elements"),
    ):
        saving.load_weights(too_big, weights)


def test_weight_budget_counts_every_weight_and_nests():
    with layer_module.weight_budget(4 * 3 + 3, source="the test"):
        keras.layers.Dense(3).build((None, 4))
        with pytest.raises(ValueError, match=r"weight 'bias' of shape \(3,\) \(3 elements\).*15 elements.*15 "):
            keras.layers.Dense(3).build((None, 0))  # a kernel of 0 elements fits; its bias does not
    keras.layers.Dense(3).build((None, 4))  # no budget outside
    with pytest.raises(ValueError, match="n_elements"):
        with layer_module.weight_budget(-1):
            pass


# ---- 3. file permissions ------------------------------------------------------------------------------------------


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_saved_files_follow_the_umask(tmp_path, data, umask):
    model = mlp()
    model.fit(*data, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "w.weights.h5")
    model.save_weights(tmp_path / "w.weights.safetensors")
    saving.save_checkpoint(model, tmp_path / "c.weights.safetensors", {"epoch": 1})
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ck" / "{epoch:02d}.keras"), monitor="loss"),
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "ck" / "best.weights.h5"), monitor="loss", save_weights_only=True
        ),
        keras.callbacks.BackupAndRestore(tmp_path / "backup", delete_checkpoint=False),
    ]
    model.fit(*data, epochs=2, batch_size=8, verbose=0, callbacks=callbacks)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    assert {"ck/01.keras", "ck/02.keras", "ck/best.weights.h5", "backup/backup.weights.safetensors"} <= names
    assert not [n for n in names if n.endswith(".tmp")]  # no temporary file left behind
    for p in files:
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, (p, oct(p.stat().st_mode))
    assert os.umask(umask) == umask  # saving left the process's umask as it was


def test_overwriting_a_file_still_follows_the_umask(tmp_path, trained, umask):
    path = tmp_path / "m.keras"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    trained.save(path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    saving.load_model(path)
