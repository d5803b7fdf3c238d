"""tritonnn.saving against files that lie (issue #15): stored dtypes that do not match the weights, configs that ask
for far more memory than the file holds, and the permissions of the files it writes."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

import tritonnn as keras
from tritonnn import saving


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
