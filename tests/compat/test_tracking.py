"""Layers held in lists and dicts by custom layers and subclassed models (tritonnn/layers/tracking.py), under both
modules: the weights and their paths, training, mutation after assignment, nesting, and saving.

Before tracking, tritonnn found no weight of ``self.blocks = [Dense(4), Dense(3)]``: such a model had no trainable
weights (fit refused it) while Keras trains it.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

import tritonnn

from . import differences
from .compare import assert_same, observe, summary_counts

RNG = np.random.default_rng(7)
X = RNG.normal(size=(32, 5)).astype("float32")
Y = RNG.normal(size=(32, 2)).astype("float32")


def blocks_model(K: Any) -> Any:
    class Blocks(K.Model):
        def __init__(self) -> None:
            super().__init__(name="blocks")
            self.stack = [K.layers.Dense(4, activation="tanh"), K.layers.Dense(3, activation="tanh")]
            self.heads = {"out": K.layers.Dense(2)}
            self.sizes = [4, 3]  # a list without layers: stays a list of ints

        def call(self, x: Any) -> Any:
            for layer in self.stack:
                x = layer(x)
            return self.heads["out"](x)

    return Blocks()


def grown_model(K: Any) -> Any:
    """An empty list filled after assignment, and nested lists."""

    class Grown(K.Model):
        def __init__(self) -> None:
            super().__init__(name="grown")
            self.stages = []
            self.stages.append([K.layers.Dense(6, activation="relu")])
            self.stages.append([K.layers.Dense(5), K.layers.Dense(4, activation="relu")])
            self.last = K.layers.Dense(2)

        def call(self, x: Any) -> Any:
            for stage in self.stages:
                for layer in stage:
                    x = layer(x)
            return self.last(x)

    return Grown()


def custom_layer_model(K: Any) -> Any:
    class Residual(K.layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.parts = [K.layers.Dense(5), K.layers.Dense(5)]

        def call(self, x: Any) -> Any:
            return x + self.parts[1](self.parts[0](x))

    return K.Sequential([K.Input((5,)), Residual(name="residual"), K.layers.Dense(2)])


BUILDERS = {"blocks": blocks_model, "grown": grown_model, "custom_layer": custom_layer_model}


def run(K: Any, build: Any) -> dict[str, Any]:
    model = build(K)
    model(X[:2])
    out: dict[str, Any] = {
        "n_weights": len(model.weights),
        "n_trainable": len(model.trainable_weights),
        "shapes": [tuple(int(d) for d in w.shape) for w in model.weights],
        "paths": [w.path for w in model.weights],
        "summary": observe(lambda: summary_counts(model)),
    }
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(scale=0.3, size=tuple(w.shape)).astype("float32") for w in model.weights])
    model.compile(optimizer=K.optimizers.SGD(learning_rate=0.05), loss="mse")
    history = observe(lambda: model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0).history)
    out["history"] = history
    out["weights"] = observe(model.get_weights)
    out["predict"] = observe(lambda: model.predict(X[:4], verbose=0))
    return out


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_layers_in_lists_and_dicts_are_tracked_and_train(keras_ref, name):
    assert_same(run(keras_ref, BUILDERS[name]), run(tritonnn, BUILDERS[name]), rtol=1e-5, atol=1e-6)


def test_containers_read_as_lists_and_dicts_and_follow_changes():
    model = blocks_model(tritonnn)
    model(X[:2])
    assert isinstance(model.stack, list) and isinstance(model.heads, dict) and model.sizes == [4, 3]
    assert len(model.weights) == 6
    model.stack.append(tritonnn.layers.Dense(3))  # new layers count as soon as they are held
    model.stack[-1](np.zeros((1, 3), "float32"))
    assert len(model.weights) == 8
    del model.stack[-1]
    assert len(model.weights) == 6
    model.heads.update(aux=tritonnn.layers.Dense(1))
    model.heads["aux"](np.zeros((1, 2), "float32"))
    assert len(model.weights) == 8
    model.heads.pop("aux")
    model.stack = []  # replaced: the old layers go with the old list
    assert [w.shape for w in model.weights] == [(3, 2), (2,)]
    del model.heads
    assert model.weights == [] and not hasattr(model, "heads")


class Grown(tritonnn.Model):
    """grown_model's class under tritonnn, at module level so that pickle finds it."""

    def __init__(self) -> None:
        super().__init__(name="grown")
        self.stages = []
        self.stages.append([tritonnn.layers.Dense(6, activation="relu")])
        self.stages.append([tritonnn.layers.Dense(5), tritonnn.layers.Dense(4, activation="relu")])
        self.last = tritonnn.layers.Dense(2)

    def call(self, x: Any) -> Any:
        for stage in self.stages:
            for layer in stage:
                x = layer(x)
        return self.last(x)


def test_tracked_models_save_load_copy_and_pickle(tmp_path):
    model = Grown()
    model(X[:2])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "grown.weights.h5")
    model.save_weights(path)
    other = Grown()
    other(X[:2])
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(X, verbose=0), model.predict(X, verbose=0))
    for clone in (copy.deepcopy(other), pickle.loads(pickle.dumps(other))):
        np.testing.assert_array_equal(clone.predict(X, verbose=0), model.predict(X, verbose=0))
        clone.stages[0].append(tritonnn.layers.Dense(6))  # the copy's list registers with the copy, not `other`
        assert len(clone.stages[0]) == 2 and len(other.stages[0]) == 1
        clone.stages[0][1](np.zeros((1, 6), "float32"))
        assert len(clone.weights) == len(other.weights) + 2


def test_a_layer_put_in_by_item_assignment_or_into_a_nested_list_is_tracked(keras_ref):
    """``self.stack[0] = Dense(5)`` and ``self.nested[0].append(Dense(2))`` after the nested list was put in:
    tritonnn's weights are those of the layers the containers hold, so the model trains what it calls. Keras 3.15
    drops the replaced layer without tracking the new one, and does not see the nested list's later changes: those
    layers' weights are missing from ``model.weights`` and never train."""
    differences.deliberate("layers.tracked-item-assignment")

    def build(K: Any) -> Any:
        class Swapped(K.Model):
            def __init__(self) -> None:
                super().__init__(name="swapped")
                self.stack = [K.layers.Dense(4), K.layers.Dense(3, name="kept")]
                self.stack[0] = K.layers.Dense(5, name="new")
                self.nested = []
                self.nested.append([K.layers.Dense(2, name="first")])
                self.nested[0].append(K.layers.Dense(2, name="later"))

            def call(self, x: Any) -> Any:
                for layer in [*self.stack, *self.nested[0]]:
                    x = layer(x)
                return x

        model = Swapped()
        model(X[:2])
        return [w.path.split("/")[1] for w in model.weights[::2]]

    assert build(keras_ref) == ["kept", "first"]  # Keras: "new" and "later" are called, not tracked
    assert build(tritonnn) == ["new", "kept", "first", "later"]


def test_the_built_in_containers_register_each_weight_once():
    """tritonnn's own models keep their layers in private attributes too; none of them may become a second
    registration of the same layers (state_dict would hold each weight twice, and saved files would change)."""
    inp = tritonnn.Input((5,))
    h = tritonnn.layers.Dense(4)(inp)
    functional = tritonnn.Model(inp, tritonnn.layers.Dense(2)(tritonnn.ops.relu(h) + 1.0))
    sequential = tritonnn.Sequential([tritonnn.Input((5,)), tritonnn.layers.Dense(4), tritonnn.layers.Dense(2)])
    for model in (functional, sequential, blocks_model(tritonnn)):
        model(X[:2])
        state = model.state_dict()
        assert len(state) == len({t.data_ptr() for t in state.values()}) == len(model.weights), list(state)
