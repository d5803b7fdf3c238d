"""``tritonnn.install_as_keras()``: after it, ``import keras`` and the ``keras.*`` submodule imports give tritonnn's
modules. Each case runs in a fresh interpreter, so this process (and the differential suite's real Keras) is never
switched."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

import tritonnn


def run(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def test_keras_imports_resolve_to_tritonnn_and_an_mlp_script_runs():
    result = run(
        """
        import tritonnn
        tritonnn.install_as_keras()

        import keras
        import keras.layers
        from keras import layers, ops
        from keras.callbacks import EarlyStopping
        from keras.models import Sequential
        from keras.optimizers.schedules import ExponentialDecay
        from keras.datasets import digits
        import keras.optimizers.schedules as schedules_module
        import keras.utils

        assert keras is tritonnn and keras.layers is tritonnn.layers and layers is tritonnn.layers
        assert ops is tritonnn.ops and Sequential is tritonnn.models.Sequential
        assert EarlyStopping is tritonnn.callbacks.EarlyStopping
        assert ExponentialDecay is tritonnn.optimizers.schedules.ExponentialDecay
        assert schedules_module is tritonnn.optimizers.schedules and digits is tritonnn.datasets.digits
        # the modules keep their own identity: one module object under two names, never loaded twice
        assert keras.layers.__spec__.name == "tritonnn.layers" and keras.__name__ == "tritonnn"
        import sys
        assert sys.modules["keras.callbacks"] is sys.modules["tritonnn.callbacks"]

        import numpy as np
        model = Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(3, "softmax")])
        model.compile(optimizer=keras.optimizers.Adam(ExponentialDecay(0.01, 10, 0.9)),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        history = model.fit(x, np.arange(32) % 3, epochs=2, verbose=0, callbacks=[EarlyStopping(monitor="loss")])
        assert len(history.history["loss"]) == 2
        tritonnn.install_as_keras()  # a second call changes nothing
        assert sys.meta_path.count(sys.meta_path[0]) == 1
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_module_not_imported_yet_is_found_once_under_both_names():
    result = run(
        """
        import sys
        import tritonnn
        sys.modules.pop("tritonnn.datasets.digits", None)  # as if never imported
        tritonnn.install_as_keras()
        sys.modules.pop("keras.datasets.digits", None)
        import keras.datasets.digits as kd
        import tritonnn.datasets.digits as td
        assert kd is td and kd.__spec__.name == "tritonnn.datasets.digits"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["keras.src", "keras.applications", "keras.layers.nothing_here"])
def test_a_name_tritonnn_lacks_is_a_clear_module_not_found(name):
    result = run(
        f"""
        import tritonnn
        tritonnn.install_as_keras()
        try:
            import {name}
        except ModuleNotFoundError as e:
            assert e.name == {name!r}, e.name
            assert "tritonnn" in str(e) and "keras_coverage" in str(e), str(e)
            print("refused")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


def test_after_the_real_keras_it_refuses_instead_of_mixing():
    if importlib.util.find_spec("keras") is None:
        pytest.skip("needs the real Keras installed (pip install 'keras>=3.5')")
    result = run(
        """
        import os
        os.environ["KERAS_BACKEND"] = "torch"
        import keras
        import tritonnn
        try:
            tritonnn.install_as_keras()
        except RuntimeError as e:
            assert "before the real Keras is imported" in str(e)
            import sys
            assert sys.modules["keras"] is keras and keras is not tritonnn
            print("refused")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


def test_this_process_is_left_alone():
    assert sys.modules.get("keras") is not tritonnn
    assert not any(type(f).__name__ == "KerasAliasFinder" for f in sys.meta_path)
