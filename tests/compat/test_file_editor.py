"""``keras.saving.KerasFileEditor`` against real Keras: the same program (build a model, set the same weights, save,
open the file with the editor, print its summary, compare it with the model and with a model whose one layer
differs, rename/delete/add objects and weights, save, load into the new model) under both, comparing what a user
sees: the printed summary and comparison lines, ``compare()``'s return, the edit errors, the loaded weights and
outputs.

The two files differ by design (Keras' zip of HDF5, tritonnn's one safetensors file keyed by ``state_dict`` keys):
the editor shows a tritonnn file under the paths Keras shows for the same model, and saves each path under the key
of the model it names (``tritonnn/file_editor.py``'s docstring)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tritonnn as tk
from tritonnn import saving

from .compare import Raised, assert_same, observe
from .differences import deliberate

RNG = np.random.default_rng(7)
X = RNG.normal(size=(6, 4)).astype("float32")


def _arrays(shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.normal(size=s).astype("float32") for s in shapes]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras prints through rich, which wraps lines at the terminal's width: wide enough to compare whole lines."""
    monkeypatch.setenv("COLUMNS", "1000")


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def _tree(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """An editor's ``weights_dict`` flattened: ``{"layers/dense/0": (shape, dtype name)}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_tree(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = (tuple(np.shape(v)), str(np.asarray(v).dtype))
    return out


def _keras_h5_paths(path: str) -> dict[str, Any]:
    """The weights of a Keras ``.keras`` file as its HDF5 tree holds them, without the ``vars`` level."""
    import h5py

    out: dict[str, Any] = {}
    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name.replace("vars/", "")] = (tuple(obj.shape), str(obj.dtype))

        f.visititems(visit)
    return out


# ---- the model of the programs ----------------------------------------------------------------------------------

SHAPES = [(4, 5), (5,), (5,), (5,), (5,), (5,), (5, 3), (3,)]


def old_model(K: Any, units: int = 3) -> Any:
    """Dense(5, name="d1") -> BatchNormalization -> Dense(units), with set weights."""
    inp = K.Input((4,))
    x = K.layers.Dense(5, name="d1")(inp)
    x = K.layers.BatchNormalization()(x)
    out = K.layers.Dense(units)(x)
    model = K.Model(inp, out)
    if units == 3:
        weights = _arrays(SHAPES)
        weights[4] = np.abs(weights[4]) + 0.5  # a variance
        weights[5] = np.abs(weights[5]) + 0.5
        model.set_weights(weights)
    return model


def new_model(K: Any) -> Any:
    """The architecture the edits adapt the file to: the middle Dense(3) became an EinsumDense, then a Dense(2)
    without a bias and a Dense(1) follow."""
    inp = K.Input((4,))
    x = K.layers.Dense(5)(inp)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.EinsumDense("ab,bc->ac", output_shape=3, bias_axes="c")(x)
    x = K.layers.Dense(2, use_bias=False)(x)
    out = K.layers.Dense(1)(x)
    return K.Model(inp, out)


def _open(K: Any, path: str, capsys: pytest.CaptureFixture) -> tuple[Any, list[str]]:
    capsys.readouterr()
    editor = K.saving.KerasFileEditor(path)
    return editor, _lines(capsys.readouterr().out)


def _printed(fn: Callable[[], Any], capsys: pytest.CaptureFixture) -> tuple[Any, list[str]]:
    capsys.readouterr()
    out = observe(fn)
    return out, _lines(capsys.readouterr().out)


def _saved_with(lines: list[str]) -> list[str]:
    """The header lines without the writer's version line (``file_editor.header-line``)."""
    return [line for line in lines if not line.startswith("Saved with ")]


def _counts(result: Any) -> Any:
    """``compare()``'s return without ``match_count`` (``file_editor.compare-counts``)."""
    return {k: v for k, v in result.items() if k != "match_count"} if isinstance(result, dict) else result


def _count_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.strip().startswith("Found ")]


# ---- the programs -----------------------------------------------------------------------------------------------


def inspect_program(K: Any, tmp: str, capsys: pytest.CaptureFixture) -> dict[str, Any]:
    model = old_model(K)
    path = os.path.join(tmp, f"{K.__name__}_model.keras")
    model.save(path)
    editor, opened = _open(K, path, capsys)
    _, summary = _printed(editor.summary, capsys)
    same, same_lines = _printed(lambda: editor.compare(old_model(K)), capsys)
    other, other_lines = _printed(lambda: editor.compare(old_model(K, units=2)), capsys)
    return {
        "opened": _saved_with(opened),
        "opened_lines": len(opened),
        "summary": summary,
        "tree": _tree(editor.weights_dict),
        "same": same,
        "same_lines": same_lines,
        "other": other,
        "other_lines": other_lines,
    }


def test_summary_and_compare_match_keras(keras_ref: Any, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    ref = inspect_program(keras_ref, str(tmp_path), capsys)
    got = inspect_program(tk, str(tmp_path), capsys)
    # Keras prints "Saved with Keras 3.15.1 - date: ...", tritonnn "Saved with tritonnn <version>".
    deliberate("file_editor.header-line")
    assert ref["opened"] == [line.replace("tritonnn_model", "keras_model") for line in got["opened"]]
    assert ref["opened_lines"] == got["opened_lines"] == 2
    assert got["summary"] == ref["summary"]
    assert got["tree"] == ref["tree"] == _keras_h5_paths(str(tmp_path / "keras_model.keras"))
    # Keras adds the matches of every object before it to each object's count (18 for these 8 weights, 16 for the
    # 6 that match the other model); tritonnn counts each weight once.
    deliberate("file_editor.compare-counts")
    assert _counts(got["same"]) == _counts(ref["same"]) == {"status": "success", "error_count": 0}
    assert got["same"]["match_count"] == 8 != ref["same"]["match_count"]
    assert _count_lines(got["same_lines"]) == _count_lines(ref["same_lines"])
    assert got["same_lines"][-1] == "    Found 8 matching weights"
    assert _counts(got["other"]) == _counts(ref["other"]) == {"status": "error", "error_count": 2}
    assert got["other"]["match_count"] == 6
    assert got["other_lines"] == ref["other_lines"]
    assert "...Weight shape mismatch for /layers/dense_1/0" in got["other_lines"]


def one_layer_program(K: Any, tmp: str, capsys: pytest.CaptureFixture) -> dict[str, Any]:
    """One object, so Keras' counts are each weight once too."""
    model = K.Sequential([K.Input((3,)), K.layers.Dense(2)])
    model.set_weights(_arrays([(3, 2), (2,)]))
    path = os.path.join(tmp, "one.keras")
    model.save(path)
    editor, _ = _open(K, path, capsys)
    out: dict[str, Any] = {}
    out["same"], out["same_lines"] = _printed(lambda: editor.compare(model), capsys)
    wider = K.Sequential([K.Input((3,)), K.layers.Dense(4)])
    out["wider"], out["wider_lines"] = _printed(lambda: editor.compare(wider), capsys)
    unbuilt = K.Sequential([K.layers.Dense(2)])
    out["unbuilt"], out["unbuilt_lines"] = _printed(lambda: editor.compare(unbuilt), capsys)
    deeper = K.Sequential([K.Input((3,)), K.layers.Dense(2), K.layers.Dense(2)])
    out["deeper"], out["deeper_lines"] = _printed(lambda: editor.compare(deeper), capsys)
    return out


def test_compare_returns_and_prints_as_keras(keras_ref: Any, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    ref = one_layer_program(keras_ref, str(tmp_path), capsys)
    got = one_layer_program(tk, str(tmp_path), capsys)
    assert_same(ref, got)
    assert got["wider"] == {"status": "error", "error_count": 2, "match_count": 0}
    assert got["deeper"]["error_count"] == 1


# ---- editing, saving and loading --------------------------------------------------------------------------------


def edit_program(K: Any, tmp: str, capsys: pytest.CaptureFixture) -> dict[str, Any]:
    old = old_model(K)
    path = os.path.join(tmp, f"{K.__name__}_old.keras")
    old.save(path)
    editor, _ = _open(K, path, capsys)
    new = new_model(K)
    out: dict[str, Any] = {}
    out["before"], out["before_lines"] = _printed(lambda: editor.compare(new), capsys)
    gamma = np.linspace(0.5, 1.5, 5).astype("float32")
    kernel_2 = np.arange(6, dtype="float32").reshape(3, 2) / 10
    kernel_3, bias_3 = np.array([[1.0], [-2.0]], "float32"), np.array([0.25], "float32")
    editor.rename_object("dense_1", "einsum_dense")  # the Dense(3) becomes the EinsumDense
    editor.add_object("layers/dense_1", weights={"0": kernel_2})
    editor.add_object("layers/dense_2", weights={"0": kernel_3, "1": bias_3})
    editor.delete_weight("batch_normalization", "0")
    editor.add_weights("layers/batch_normalization", {"0": gamma})
    out["tree"] = _tree(editor.weights_dict)
    out["after"], out["after_lines"] = _printed(lambda: editor.compare(new), capsys)
    saved = os.path.join(tmp, f"{K.__name__}_edited.weights.h5")
    editor.save(saved)
    new.load_weights(saved)
    out["weights"] = [np.asarray(w) for w in new.get_weights()]
    out["predict"] = np.asarray(new.predict(X, verbose=0))
    reopened, _ = _open(K, saved, capsys)
    out["reopened"] = _tree(reopened.weights_dict)
    return out


def test_edit_save_and_load_as_keras(keras_ref: Any, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    ref = edit_program(keras_ref, str(tmp_path), capsys)
    got = edit_program(tk, str(tmp_path), capsys)
    deliberate("file_editor.compare-counts")
    # (Keras counts the errors of an object again in each object after it, here 5 for 4.)
    assert got["before"]["status"] == ref["before"]["status"] == "error"
    assert _count_lines(got["before_lines"]) == _count_lines(ref["before_lines"])
    assert got["before"]["error_count"] == sum(line.startswith("...") for line in got["before_lines"]) == 4
    for key in ("before", "before_lines"):
        ref.pop(key), got.pop(key)
    assert got["after"]["match_count"] == 11  # 2 + 4 + 2 + 1 + 2 weights
    got["after"]["match_count"] = ref["after"]["match_count"]
    got["after_lines"] = _count_lines(got["after_lines"])
    ref["after_lines"] = _count_lines(ref["after_lines"])
    assert_same(ref, got)
    assert got["after"]["status"] == "success"


# ---- objects Keras' editor drops ---------------------------------------------------------------------------------


def _block_class(K: Any) -> type:
    @K.saving.register_keras_serializable(package="FileEditorTest")
    class EditorBlock(K.layers.Layer):
        """An own weight and a sublayer attribute."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.inner = K.layers.Dense(2)

        def build(self, input_shape: Any) -> None:
            self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale")
            self.inner.build(input_shape)

        def call(self, x: Any) -> Any:
            return self.inner(x) * self.scale

    return EditorBlock


def nested_program(K: Any, tmp: str, capsys: pytest.CaptureFixture) -> dict[str, Any]:
    block = _block_class(K)
    seq = K.Sequential([K.Input((3,)), K.layers.Dense(2), K.layers.Dense(3, use_bias=False)])
    inp = K.Input((3,))
    x = block()(seq(inp))
    out = K.layers.Dense(1)(x)
    model = K.Model(inp, out)
    model.set_weights(_arrays([tuple(w.shape) for w in model.weights]))
    path = os.path.join(tmp, f"{K.__name__}_nested.keras")
    model.save(path)
    editor, _ = _open(K, path, capsys)
    result, _ = _printed(lambda: editor.compare(model), capsys)
    return {"tree": _tree(editor.weights_dict), "compare": result, "path": path, "weights": model.get_weights()}


def test_nested_objects_are_shown_and_saved(keras_ref: Any, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    ref = nested_program(keras_ref, str(tmp_path), capsys)
    got = nested_program(tk, str(tmp_path), capsys)
    # Keras 3.15's editor skips every object whose own variables group is empty (the nested Sequential, with its
    # layers) and the sublayers of one that has variables (the block's `inner`): those are in Keras' file, and
    # tritonnn's editor shows them under the paths Keras' file holds them at.
    deliberate("file_editor.nested-objects")
    keras_paths = _keras_h5_paths(ref["path"])
    assert got["tree"] == keras_paths
    assert "layers/sequential/layers/dense/0" in keras_paths and "layers/editor_block/inner/1" in keras_paths
    assert set(ref["tree"]) == {"layers/dense/0", "layers/dense/1", "layers/editor_block/0"} < set(keras_paths)
    assert got["compare"] == {"status": "success", "error_count": 0, "match_count": len(keras_paths)}
    # Everything shown is saved: the edited file loads back into the model.
    editor = tk.saving.KerasFileEditor(got["path"])
    editor.delete_weight("layers/editor_block/inner", "1")
    editor.add_weights("layers/editor_block/inner", {"1": np.full((2,), 3.0, "float32")})
    saved = str(tmp_path / "nested.weights.h5")
    editor.save(saved)
    model = tk.saving.load_model(got["path"])
    tk.saving.load_weights(model, saved)
    inner_bias = model.get_layer("editor_block").inner.bias.detach().numpy()
    np.testing.assert_array_equal(inner_bias, np.full((2,), 3.0, "float32"))


# ---- weights files -------------------------------------------------------------------------------------------


def test_weights_file_is_named_by_its_keys_until_compared(
    keras_ref: Any, tmp_path: Any, capsys: pytest.CaptureFixture
) -> None:
    ref_model = old_model(keras_ref)
    ref_model.save_weights(str(tmp_path / "keras.weights.h5"))
    ref_editor, _ = _open(keras_ref, str(tmp_path / "keras.weights.h5"), capsys)
    model = old_model(tk)
    model.save_weights(str(tmp_path / "tritonnn.weights.h5"))
    editor, _ = _open(tk, str(tmp_path / "tritonnn.weights.h5"), capsys)
    # A tritonnn weights file records no model config: its objects are named by the state_dict keys ...
    deliberate("file_editor.weights-file-paths")
    assert set(_tree(editor.weights_dict)) == {
        "layers/d1/kernel",
        "layers/d1/bias",
        "layers/batch_normalization/gamma",
        "layers/batch_normalization/beta",
        "layers/batch_normalization/moving_mean",
        "layers/batch_normalization/moving_variance",
        "layers/dense/kernel",
        "layers/dense/bias",
    }
    # ... until compare() is given the model: then by the model's Keras paths, as Keras' file is.
    result, lines = _printed(lambda: editor.compare(model), capsys)
    ref_result, ref_lines = _printed(lambda: ref_editor.compare(ref_model), capsys)
    assert _counts(result) == _counts(ref_result) == {"status": "success", "error_count": 0}
    assert _count_lines(lines) == _count_lines(ref_lines)
    assert _tree(editor.weights_dict) == _tree(ref_editor.weights_dict)
    _, summary = _printed(editor.summary, capsys)
    _, ref_summary = _printed(ref_editor.summary, capsys)
    assert summary == ref_summary
    # A file the editor wrote reopens with the paths it was saved with.
    editor.delete_object("dense_1")
    editor.save(tmp_path / "edited.weights.safetensors")
    again, _ = _open(tk, str(tmp_path / "edited.weights.safetensors"), capsys)
    assert set(_tree(again.weights_dict)) == {
        p for p in _tree(ref_editor.weights_dict) if not p.startswith("layers/dense_1/")
    }


# ---- errors -------------------------------------------------------------------------------------------------


def errors_program(K: Any, tmp: str, capsys: pytest.CaptureFixture) -> dict[str, Any]:
    model = old_model(K)
    path = os.path.join(tmp, f"{K.__name__}_err.keras")
    model.save(path)
    editor, _ = _open(K, path, capsys)
    calls: dict[str, Callable[[], Any]] = {
        "open_suffix": lambda: K.saving.KerasFileEditor(os.path.join(tmp, "model.h5")),
        "open_missing": lambda: K.saving.KerasFileEditor(os.path.join(tmp, "missing.keras")),
        "rename_ambiguous": lambda: editor.rename_object("0", "x"),
        "rename_unknown": lambda: editor.rename_object("nothing", "x"),
        "rename_bad_path": lambda: editor.rename_object("layers/nothing", "x"),
        "rename_to_path": lambda: editor.rename_object("dense", "layers/x"),
        "delete_unknown": lambda: editor.delete_object("layers/dense/7"),
        "delete_weight_unknown": lambda: editor.delete_weight("dense", "7"),
        "add_object_not_dict": lambda: editor.add_object("layers/x", [np.zeros(2)]),
        "add_object_bad_parent": lambda: editor.add_object("nothing/x", {"0": np.zeros(2)}),
        "add_weights_not_dict": lambda: editor.add_weights("dense", np.zeros(2)),
        "save_suffix": lambda: editor.save(os.path.join(tmp, "x.keras")),
    }
    out = {}
    for name, fn in calls.items():
        capsys.readouterr()
        out[name] = observe(fn)
    out["tree"] = _tree(editor.weights_dict)
    return out


def test_edit_errors_as_keras(keras_ref: Any, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    ref = errors_program(keras_ref, str(tmp_path), capsys)
    got = errors_program(tk, str(tmp_path), capsys)
    assert_same(ref, got)
    for name in ("rename_ambiguous", "rename_unknown", "rename_bad_path", "rename_to_path", "delete_weight_unknown"):
        assert isinstance(got[name], Raised) and got[name].type == "ValueError"
        # Keras' messages, but for the method they point to (Keras' says `editor.weights_summary()`, which it lacks)
        if name != "rename_unknown":
            assert got[name].message == ref[name].message, name
    assert "Use `editor.summary()`" in got["rename_unknown"].message


def test_edit_checks(keras_ref: Any, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    model = old_model(tk)
    path = str(tmp_path / "m.keras")
    model.save(path)
    editor, _ = _open(tk, path, capsys)
    deliberate("file_editor.edit-checks")
    # A value that is no array of numbers is refused when added (Keras' fails at save, from h5py, or stores it).
    with pytest.raises(ValueError, match="not an array of numbers"):
        editor.add_object("layers/x", {"0": "text"})
    with pytest.raises(ValueError, match="Weight names"):
        editor.add_weights("dense", {"a/b": np.zeros(2)})
    # Renaming an object to its own name keeps it (Keras' deletes it).
    editor.rename_object("layers/dense", "dense")
    assert "dense" in editor.weights_dict["layers"]
    ref_path = str(tmp_path / "k.keras")
    old_model(keras_ref).save(ref_path)
    ref_editor, _ = _open(keras_ref, ref_path, capsys)
    ref_editor.rename_object("layers/dense", "dense")
    assert "dense" not in ref_editor.weights_dict["layers"]
    # A weight is no object: delete_weight/add_weights on one say so.
    with pytest.raises(ValueError, match="is a weight, not an object"):
        editor.delete_weight("layers/dense/0", "0")
    with pytest.raises(ValueError, match="is a weight, not an object"):
        editor.add_weights("layers/dense/0", {"0": np.zeros(2)})
    # A float64 array fills a float32 weight (cast at save, as Keras' loading casts).
    editor.delete_weight("dense", "1")
    editor.add_weights("dense", {"1": np.full((5,), 0.5)})
    editor.save(tmp_path / "cast.weights.h5")
    tk.saving.load_weights(model, tmp_path / "cast.weights.h5")
    np.testing.assert_array_equal(model.get_layer("d1").bias.detach().numpy(), np.full((5,), 0.5, "float32"))


def test_save_needs_a_key_for_every_path(keras_ref: Any, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    model = old_model(tk)
    model.save(tmp_path / "m.keras")
    editor, _ = _open(tk, str(tmp_path / "m.keras"), capsys)
    editor.rename_object("dense_1", "einsum_dense")
    target = tmp_path / "out.weights.h5"
    target.write_bytes(b"previous")
    # The path names no weight of the file's model and no reference model was given: tritonnn cannot tell which
    # state_dict key it fills, so nothing is written (Keras writes the path; its loading finds it by class).
    deliberate("file_editor.save-needs-a-model")
    with pytest.raises(ValueError, match=r"layers/einsum_dense/0.*editor.compare\(model\)"):
        editor.save(target)
    assert target.read_bytes() == b"previous"
    ref_model = old_model(keras_ref)
    ref_model.save(tmp_path / "k.keras")
    ref_editor, _ = _open(keras_ref, str(tmp_path / "k.keras"), capsys)
    ref_editor.rename_object("dense_1", "einsum_dense")
    ref_editor.save(tmp_path / "k.weights.h5")
    assert os.path.getsize(tmp_path / "k.weights.h5") > 0
    # Renamed back, every path names a weight of the file's model: the file saves, and loads into that model.
    editor.rename_object("einsum_dense", "dense_1")
    editor.delete_weight("dense_1", "1")
    editor.add_weights("dense_1", {"1": np.full((3,), 2.0, "float32")})
    editor.save(target)
    tk.saving.load_weights(model, target)
    np.testing.assert_array_equal(model.layers[-1].bias.detach().numpy(), np.full((3,), 2.0, "float32"))


def test_optimizer_state(keras_ref: Any, tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    def program(K: Any) -> dict[str, Any]:
        model = old_model(K)
        model.compile(optimizer="adam", loss="mse")
        model.fit(X, np.ones((6, 3), "float32"), epochs=2, batch_size=6, verbose=0)
        path = os.path.join(str(tmp_path), f"{K.__name__}_opt.keras")
        model.save(path)
        editor, _ = _open(K, path, capsys)
        out = {"tree": _tree(editor.weights_dict)}
        out["with"], out["with_lines"] = _printed(lambda: editor.compare(model), capsys)
        out["bare_name"] = observe(lambda: editor.rename_object("dense_1", "dense_9"))
        if not isinstance(out["bare_name"], Raised):
            editor.rename_object("layers/dense_9", "dense_1")
        editor.delete_object("optimizer")
        fresh = old_model(K)
        out["without"], _ = _printed(lambda: editor.compare(fresh), capsys)
        editor.save(os.path.join(str(tmp_path), f"{K.__name__}_opt.weights.h5"))
        fresh.load_weights(os.path.join(str(tmp_path), f"{K.__name__}_opt.weights.h5"))
        # (the trained weights themselves are compared in the training tests, not here)
        out["loaded_as_saved"] = all(
            np.array_equal(a, b) for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True)
        )
        return out

    ref, got = program(keras_ref), program(tk)
    # The optimizer's state: Keras' variables 0..13 (iterations, learning_rate, then each weight's m and v);
    # tritonnn's flat buffers by name. The layers are the same.
    deliberate("file_editor.optimizer-state")
    layers = {k: v for k, v in got["tree"].items() if k.startswith("layers/")}
    assert layers == {k: v for k, v in ref["tree"].items() if k.startswith("layers/")}
    assert {k for k in got["tree"] if k.startswith("optimizer/")} == {
        "optimizer/iterations",
        "optimizer/learning_rate",
        "optimizer/momentums",
        "optimizer/velocities",
    }
    assert len([k for k in ref["tree"] if k.startswith("optimizer/")]) == 14
    assert got["with"]["status"] == ref["with"]["status"] == "success"
    assert got["with"]["match_count"] == 12
    assert got["without"] == {"status": "success", "error_count": 0, "match_count": 8}
    assert ref["without"]["status"] == "success"
    assert got["loaded_as_saved"] and ref["loaded_as_saved"]
    # A name that occurs once, in a file with an optimizer: Keras' count of the name adds what it counted before
    # the optimizer's group again, and refuses it as occurring "more than once"; tritonnn finds it.
    deliberate("file_editor.edit-checks")
    assert isinstance(ref["bare_name"], Raised) and "occurs more than once" in ref["bare_name"].message
    assert got["bare_name"] is None


def test_written_file_is_a_valid_tritonnn_file(tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    model = old_model(tk)
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, np.ones((6, 3), "float32"), epochs=1, batch_size=6, verbose=0)
    model.save(tmp_path / "m.keras")
    editor, _ = _open(tk, str(tmp_path / "m.keras"), capsys)
    editor.save(tmp_path / "same.weights.h5")
    # The optimizer state travels too: a compiled model restores it.
    loaded = saving.load_model(tmp_path / "m.keras")
    loaded.load_weights(tmp_path / "same.weights.h5")
    assert loaded.optimizer.iterations == model.optimizer.iterations == 1
    assert_same(model.get_weights(), loaded.get_weights(), rtol=0, atol=0)
    # A forged or damaged file is refused on opening, as load_weights refuses it.
    (tmp_path / "bad.weights.h5").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match="truncated or not a tritonnn file"):
        tk.saving.KerasFileEditor(tmp_path / "bad.weights.h5")
    # A bfloat16 model's weights keep their dtype through the editor.
    inp = tk.Input((4,))
    bf16 = tk.Model(inp, tk.layers.Dense(2, dtype="bfloat16")(inp))
    bf16.save_weights(tmp_path / "bf16.weights.h5")
    editor, _ = _open(tk, str(tmp_path / "bf16.weights.h5"), capsys)
    editor.compare(bf16)
    editor.save(tmp_path / "bf16_edited.weights.h5")
    before = [w.detach().clone() for w in bf16.weights]
    bf16.load_weights(tmp_path / "bf16_edited.weights.h5")
    for a, b in zip(before, bf16.weights, strict=True):
        assert b.dtype == a.dtype and bool((a == b).all())
