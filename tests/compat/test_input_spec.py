"""``InputSpec`` against Keras: a custom layer that declares its inputs accepts and refuses the same calls (on
arrays and on symbolic inputs), with Keras' error class and message, and the spec's config and repr are Keras'."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tritonnn

# (id, InputSpec kwargs, the input shapes (and dtype) of calls that must pass, calls that must fail)
CASES = [
    ("ndim", {"ndim": 2}, [(4, 3)], [(4,), (4, 3, 1)]),
    ("min-max", {"min_ndim": 2, "max_ndim": 3}, [(4, 3), (4, 3, 2)], [(4,), (2, 2, 2, 2)]),
    ("axes", {"ndim": 2, "axes": {-1: 3}}, [(4, 3), (1, 3)], [(4, 5)]),
    ("axes-positive", {"min_ndim": 2, "axes": {1: 6}}, [(2, 6), (2, 6, 1)], [(2, 5)]),
    ("shape", {"shape": (None, 3, 2)}, [(4, 3, 2), (1, 3, 2)], [(4, 2, 3), (4, 3)]),
    ("squeeze", {"shape": (None, 5, 1), "allow_last_axis_squeeze": True}, [(2, 5), (2, 5, 1)], [(2, 4)]),
    ("dtype", {"dtype": "float32", "ndim": 2}, [(2, 3)], [((2, 3), "int32")]),
]


def _layer(K: Any, spec: Any) -> Any:
    class Declared(K.layers.Layer):
        def __init__(self):
            super().__init__(name="declared")
            self.input_spec = spec

        def call(self, x):
            return x

    return Declared()


def _array(shape: Any) -> np.ndarray:
    shape, dtype = shape if isinstance(shape[0], tuple) else (shape, "float32")
    return np.ones(shape, dtype)


def _outcome(K: Any, spec_kwargs: dict, shape: Any, symbolic: bool) -> str:
    layer = _layer(K, K.InputSpec(**spec_kwargs))
    x = _array(shape)
    try:
        if symbolic:
            layer(K.Input(batch_shape=(None, *x.shape[1:]), dtype=str(x.dtype)))
        else:
            layer(x)
    except ValueError as e:
        return f"ValueError: {e}"
    return "ok"


@pytest.mark.parametrize("symbolic", [False, True], ids=["arrays", "symbolic"])
@pytest.mark.parametrize("case, spec, good, bad", CASES, ids=[c[0] for c in CASES])
def test_a_declared_layer_accepts_and_refuses_what_keras_does(keras_ref, case, spec, good, bad, symbolic):
    for shape in good:
        assert _outcome(keras_ref, spec, shape, symbolic) == "ok"
        assert _outcome(tritonnn, spec, shape, symbolic) == "ok"
    for shape in bad:
        ref, got = _outcome(keras_ref, spec, shape, symbolic), _outcome(tritonnn, spec, shape, symbolic)
        assert ref.startswith("ValueError") and got.startswith("ValueError"), (ref, got)
        # the same words up to the shapes, which Keras writes with its own tuple/list conventions
        assert got.split(": expected")[0] == ref.split(": expected")[0], (ref, got)


def test_named_and_optional_inputs_and_counts_as_keras(keras_ref):
    for K in (keras_ref, tritonnn):
        specs = [K.InputSpec(ndim=2, name="a"), K.InputSpec(ndim=2, name="b", optional=True)]
        layer = _layer(K, specs)
        a = np.ones((2, 3), "float32")
        with pytest.raises(ValueError, match='Missing data for input "b"'):
            layer({"a": a})
        with pytest.raises(ValueError, match=r"expects 2 named input\(s\) with keys \['a', 'b'\], but it received 1"):
            layer([a])
        with pytest.raises(ValueError, match="expects 1 input"):
            _layer(K, [K.InputSpec(ndim=2)])([a, a])
        with pytest.raises(ValueError, match="expected ndim=2"):
            layer({"a": a, "b": np.ones(3, "float32")})


def test_config_and_repr_are_keras(keras_ref):
    kwargs = {"dtype": "float32", "shape": (None, 4), "axes": {1: 4}, "optional": True}
    ref, got = keras_ref.InputSpec(**kwargs), tritonnn.InputSpec(**kwargs)
    assert got.get_config() == ref.get_config()
    assert repr(got) == repr(ref)
    assert tritonnn.InputSpec.from_config(got.get_config()).get_config() == got.get_config()
    assert tritonnn.layers.InputSpec is tritonnn.InputSpec
    for K in (keras_ref, tritonnn):
        with pytest.raises(TypeError, match="integer keys"):
            K.InputSpec(axes={"x": 1})
        with pytest.raises(ValueError, match="greater than the maximum"):
            K.InputSpec(ndim=2, axes={2: 1})
