"""``keras.utils.model_to_dot`` against Keras: the same program builds a model under both, and the two
``pydot.Dot``'s ``to_string()`` are equal once each node's id (``str(id(layer))``, a different number in each
process) is replaced by its layer's name: the same graph settings, the same nodes with the same labels, in the same
order, and the same edges, in the same order. Without pydot, Keras' ImportError."""

from __future__ import annotations

import inspect
import re
import sys

import pytest

import tritonnn as tk


@pytest.fixture
def pydot():
    return pytest.importorskip("pydot", reason="model_to_dot needs pydot: pip install tritonnn[plot]")


def named_layers(model):
    """Every layer of the model, of its nested models too, with the model itself: id -> name."""
    names = {id(model): model.name}
    for layer in getattr(model, "layers", []):
        names.update(named_layers(layer))
    for t in getattr(model, "inputs", None) or []:  # a Sequential's input layer (no node; Keras' has none either)
        layer = getattr(t, "_keras_history", None)
        layer = layer.operation if layer is not None else t.node.layer
        names[id(layer)] = layer.name
    return names


def canonical(model, dot) -> str:
    """``dot.to_string()`` with each node id replaced by ``<name>``; an id of no layer of the model fails."""
    names = named_layers(model)

    def name_of(match):
        key = int(match.group(0))
        assert key in names, f"node id {key} is no layer of the model"
        return f"<{names[key]}>"

    return re.sub(r"(?m)(?<![\w.])\d{6,}(?![\w.])", name_of, dot.to_string())


def sequential(K):
    return K.Sequential(
        [
            K.Input((4,), name="x"),
            K.layers.Dense(3, activation="relu", name="hidden"),
            K.layers.Dropout(0.1, name="drop"),
            K.layers.Activation("tanh", name="act"),
            K.layers.Dense(2, name="logits"),
        ],
        name="seq",
    )


def sequential_frozen(K):
    model = sequential(K)
    model.get_layer("hidden").trainable = False
    return model


def sequential_built(K):
    model = K.Sequential([K.layers.Dense(3, name="d1"), K.layers.Dense(2, activation="sigmoid", name="d2")], name="s")
    model.build((None, 5))
    return model


def functional(K):
    a, b = K.Input((4,), name="a"), K.Input((3,), name="b")
    x = K.layers.Dense(5, activation="relu", name="da")(a)
    y = K.layers.Dense(5, name="db")(b)
    s = K.layers.Add(name="add")([x, y])
    c = K.layers.Concatenate(name="cat")([s, x])
    return K.Model([a, b], [K.layers.Dense(1, name="out")(c), K.layers.Dense(2, name="aux")(x)], name="fn")


def functional_shared(K):
    a, b = K.Input((4,), name="a"), K.Input((4,), name="b")
    shared = K.layers.Dense(3, name="shared")
    twice = K.layers.Add(name="twice")([shared(a), shared(b)])
    same = K.layers.Multiply(name="same")([twice, twice])  # the same tensor twice: one edge
    return K.Model([a, b], same, name="siamese")


def nested(K):
    inner_seq = K.Sequential(
        [K.Input((5,), name="si"), K.layers.Dense(4, name="s1"), K.layers.Dense(3, name="s2")], name="inner_seq"
    )
    i = K.Input((3,), name="fi")
    inner_fn = K.Model(i, K.layers.Dense(2, activation="relu", name="f1")(i), name="inner_fn")
    x = K.Input((6,), name="x")
    h = K.layers.Dense(5, name="h")(x)
    return K.Model(x, K.layers.Dense(1, name="top")(inner_fn(inner_seq(h))), name="outer")


def nested_sequential(K):
    inner = K.Sequential(
        [K.Input((4,), name="ii"), K.layers.Dense(3, name="i1"), K.layers.Dense(2, name="i2")], name="inner"
    )
    return K.Sequential([K.Input((4,), name="oi"), inner, K.layers.Dense(1, name="o1")], name="outer_seq")


def subclassed(K):
    class Tiny(K.Model):
        def __init__(self):
            super().__init__(name="tiny")
            self.dense = K.layers.Dense(2, name="d")

        def call(self, x):
            return self.dense(x)

    model = Tiny()
    model(K.ops.ones((1, 3)))
    return model


MODELS = {
    "sequential": sequential,
    "sequential_frozen": sequential_frozen,
    "sequential_built": sequential_built,
    "functional": functional,
    "functional_shared": functional_shared,
    "nested": nested,
    "nested_sequential": nested_sequential,
    "subclassed": subclassed,
}

OPTIONS = {
    "defaults": {},
    "everything": dict(show_shapes=True, show_dtype=True, show_layer_activations=True, show_trainable=True),
    "classes_only": dict(show_layer_names=False, show_shapes=True),
    "lr_curved": dict(rankdir="LR", dpi=96, splines="curved", show_trainable=True),
    "expanded": dict(expand_nested=True, show_shapes=True),
    "subgraph": dict(subgraph=True, show_dtype=True),
}


@pytest.mark.parametrize("options", list(OPTIONS), ids=list(OPTIONS))
@pytest.mark.parametrize("make", list(MODELS), ids=list(MODELS))
def test_dot_is_keras(keras_ref, pydot, make, options):
    kwargs = OPTIONS[options]
    ref_model, got_model = MODELS[make](keras_ref), MODELS[make](tk)
    ref = keras_ref.utils.model_to_dot(ref_model, **kwargs)
    got = tk.utils.model_to_dot(got_model, **kwargs)
    assert type(got) is type(ref)
    assert canonical(got_model, got) == canonical(ref_model, ref)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's parser on pyparsing 3.3
def test_the_dot_is_a_graph_pydot_reads_back(keras_ref, pydot):
    model = functional(tk)
    dot = tk.utils.model_to_dot(model, show_shapes=True)
    (again,) = pydot.graph_from_dot_data(dot.to_string())
    names = {str(id(layer)): layer.name for layer in model.layers}
    assert sorted(names[n.get_name()] for n in again.get_nodes() if n.get_name() in names) == sorted(names.values())
    edges = {(names[e.get_source()], names[e.get_destination()]) for e in again.get_edges()}
    assert edges == {
        ("a", "da"),
        ("b", "db"),
        ("da", "add"),
        ("db", "add"),
        ("add", "cat"),
        ("da", "cat"),
        ("cat", "out"),
        ("da", "aux"),
    }


def test_signature_is_keras(keras_ref):
    def params(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert params(tk.utils.model_to_dot) == params(keras_ref.utils.model_to_dot)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda K, m: K.utils.model_to_dot(m, layer_range=["a", "b"]), ValueError),
        (lambda K, m: K.utils.model_to_dot(m, colour="red"), ValueError),
        (lambda K, m: K.utils.model_to_dot(K.Sequential([K.layers.Dense(2)])), ValueError),
    ],
    ids=["layer_range", "unknown_kwarg", "unbuilt"],
)
def test_errors_are_keras(keras_ref, pydot, call, error):
    with pytest.raises(error) as ref:
        call(keras_ref, sequential(keras_ref))
    with pytest.raises(error) as got:
        call(tk, sequential(tk))
    assert str(got.value) == str(ref.value)


def test_without_pydot_the_error_is_keras(keras_ref, monkeypatch):
    from keras.src.utils import model_visualization

    model = sequential(tk)
    monkeypatch.setattr(model_visualization, "pydot", None)
    with pytest.raises(ImportError) as ref:
        keras_ref.utils.model_to_dot(sequential(keras_ref))
    for name in ("pydot", "pydot_ng", "pydotplus"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    with pytest.raises(ImportError) as got:
        tk.utils.model_to_dot(model)
    assert str(got.value) == str(ref.value) == "You must install pydot (`pip install pydot`) for model_to_dot to work."
