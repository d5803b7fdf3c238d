"""Every example runs as a script would, shortened."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "datasets")


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(REPO, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_seed_digits(capsys):
    accuracy = load_example("seed_digits").main(["--epochs", "20", "--verbose", "0"])
    assert accuracy > 0.9
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "mnist")), reason=f"{SHARED}/mnist is missing")
def test_mnist_mlp_shortened(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRITONNN_DATA", str(tmp_path))
    monkeypatch.setenv("TRITONNN_DATA_URL", "file://" + SHARED)
    accuracy = load_example("mnist_mlp").main(["--epochs", "2", "--limit", "3000", "--verbose", "0"])
    assert accuracy > 0.8  # two epochs on 3000 samples (chance: 0.1); the full run is measured in bench/
    out = capsys.readouterr().out
    assert "dropout" in out and "Test accuracy" in out


def test_functional_two_io(capsys):
    results = load_example("functional_two_io").main(["--epochs", "8", "--verbose", "0"])
    assert set(results) == {"loss", "digit_loss", "mean_ink_loss", "digit_accuracy", "mean_ink_mae"}
    assert results["digit_accuracy"] > 0.7
    assert results["mean_ink_mae"] < 0.1
    assert results["loss"] == pytest.approx(results["digit_loss"] + 10.0 * results["mean_ink_loss"], rel=1e-4)


def test_custom_callback_stops_training(capsys):
    callback = load_example("custom_callback").main(["--target", "0.9"])
    assert callback.rows and callback.rows[-1]["val_accuracy"] >= 0.9
    assert all(row["val_accuracy"] < 0.9 for row in callback.rows[:-1])
    assert callback.rows[-1]["learning_rate"] == pytest.approx(0.001)
