"""tritonnn.plotting: training curves and layer graphs are written as real images; matplotlib stays optional."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import tritonnn as keras
from tritonnn import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def needs_matplotlib():
    return pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install tritonnn[plot])")


def png_size(path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == PNG_MAGIC and len(raw) > 1000
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")  # IHDR width, height


def svg_text(model, tmp_path, **kwargs) -> str:
    matplotlib = needs_matplotlib()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # keep labels as text, not glyph outlines
        plotting.plot_model(model, tmp_path / "m.svg", **kwargs)
    return (tmp_path / "m.svg").read_text()


def mlp() -> keras.Sequential:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.layers.InputLayer(shape=(6,)),
            keras.layers.Dense(5, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="probs"),
        ]
    )


def branching() -> keras.Model:
    inputs = keras.Input(shape=(8,), name="features")
    a = keras.layers.Dense(4, name="left")(inputs)
    b = keras.layers.Dense(4, name="right")(inputs)
    return keras.Model(inputs, [keras.layers.Dense(2, name="left_out")(a), keras.layers.Dense(1, name="right_out")(b)])


# ---- plot_history -------------------------------------------------------------------------------------------------


def test_plot_history_from_fit_one_panel_per_metric(tmp_path):
    needs_matplotlib()
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 6)).astype("float32"), rng.integers(0, 3, 20)
    history = model.fit(x, y, epochs=3, batch_size=10, verbose=0, validation_split=0.5)
    out = plotting.plot_history(history, tmp_path / "curves" / "h.png", dpi=40)
    assert out == str(tmp_path / "curves" / "h.png")
    assert png_size(tmp_path / "curves" / "h.png") == (2 * 180, 140)  # (4.5 in x 2 panels, 3.5 in) at 40 dpi
    plotting.plot_history(history.history, tmp_path / "loss.png", metrics=["loss"], dpi=40)
    assert png_size(tmp_path / "loss.png") == (180, 140)


def test_plot_history_bad_input(tmp_path):
    needs_matplotlib()
    with pytest.raises(ValueError, match="history"):
        plotting.plot_history({}, tmp_path / "h.png")
    with pytest.raises(ValueError, match="metrics"):
        plotting.plot_history({"loss": [1.0]}, tmp_path / "h.png", metrics=["accuracy"])
    with pytest.raises(ValueError, match="dpi"):
        plotting.plot_history({"loss": [1.0]}, tmp_path / "h.png", dpi=0)
    with pytest.raises(ValueError, match="path"):
        plotting.plot_history({"loss": [1.0]}, None)


# ---- plot_model ---------------------------------------------------------------------------------------------------


def test_plot_model_sequential_is_a_labelled_chain(tmp_path):
    model = mlp()
    text = svg_text(model, tmp_path, show_shapes=True, show_layer_names=True, show_layer_activations=True)
    for label in ("hidden (Dense)", "probs (Dense)", "Input shape: (None, 6)", "Output shape: (None, 3)", "softmax"):
        assert label in text
    assert "hidden (Dense)" not in svg_text(model, tmp_path)  # Keras 3 shows the class only by default
    plotting.plot_model(model, tmp_path / "tb.png", dpi=50)
    plotting.plot_model(model, tmp_path / "lr.png", dpi=50, rankdir="LR")
    (tb_w, tb_h), (lr_w, lr_h) = png_size(tmp_path / "tb.png"), png_size(tmp_path / "lr.png")
    assert lr_w > tb_w and lr_h < tb_h  # the two boxes side by side instead of stacked


def test_plot_model_functional_follows_the_graph(tmp_path):
    model = branching()
    assert ("features", "left") in model._graph_edges()
    text = svg_text(model, tmp_path, show_layer_names=True, show_shapes=True, show_trainable=True, show_dtype=True)
    for name in ("features (InputLayer)", "left (Dense)", "right (Dense)", "left_out (Dense)", "right_out (Dense)"):
        assert name in text
    assert "Output shape: (None, 1)" in text and "Trainable: True" in text and "dtype: float32" in text
    plotting.plot_model(model, tmp_path / "tb.png", dpi=50)
    plotting.plot_model(model, tmp_path / "lr.png", dpi=50, rankdir="LR", splines="curved")
    (tb_w, tb_h), (lr_w, lr_h) = png_size(tmp_path / "tb.png"), png_size(tmp_path / "lr.png")
    assert lr_w > tb_w and lr_h < tb_h  # three ranks across instead of down


def test_plot_model_bad_input(tmp_path):
    needs_matplotlib()
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not yet been built"):
        plotting.plot_model(unbuilt, tmp_path / "m.png")
    model = mlp()
    with pytest.raises(ValueError, match="rankdir"):
        plotting.plot_model(model, tmp_path / "m.png", rankdir="BT")
    with pytest.raises(ValueError, match="splines"):
        plotting.plot_model(model, tmp_path / "m.png", splines="wiggly")
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        plotting.plot_model(model, tmp_path / "m.png", show_colors=True)
    with pytest.raises(NotImplementedError, match="expand_nested"):
        plotting.plot_model(model, tmp_path / "m.png", expand_nested=True)
    with pytest.raises(ValueError, match="model"):
        plotting.plot_model("model", tmp_path / "m.png")


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib...` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install tritonnn\[plot\]"):
        plotting.plot_history({"loss": [1.0]}, tmp_path / "h.png")
    with pytest.raises(ImportError, match=r"pip install tritonnn\[plot\]"):
        plotting.plot_model(mlp(), tmp_path / "m.png")
    assert not (tmp_path / "h.png").exists()
