"""``keras.Variable`` and ``keras.name_scope`` against real Keras: the weights' names and paths in Sequential,
Functional, subclassed and nested models (and under name scopes), standalone variables made every way Keras makes
them, ``assign``/``assign_add``/``assign_sub`` and their errors, ``numpy()``/``np.array``/``repr``, ``trainable``
with a layer's ``trainable``, and ``keras.ops.convert_to_numpy`` (copies; bfloat16 as ``ml_dtypes.bfloat16``).

tritonnn's variables are ``torch.nn.Parameter``s that its optimizers make views of one flat buffer: an ``assign``
after the optimizer is built keeps the view (the optimizer trains from the assigned value, as Keras does), and
copies (``deepcopy``, pickling, saving, ``clone_model``) keep the variables' attributes."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest
import torch

import tritonnn as tk
from tritonnn import ops

from .compare import Raised, assert_same, observe
from .differences import deliberate

RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 3)).astype("float32")
Y = RNG.normal(size=(8, 1)).astype("float32")


def weight_table(model: Any) -> list[tuple[Any, ...]]:
    """What a user reads off each weight: path, name, trainable, shape and the dtype's Keras name."""
    return [
        (w.path, w.name, bool(w.trainable), tuple(w.shape), tk.backend.standardize_dtype(w.dtype))
        for w in model.weights
    ]


# ---- models whose weight paths are compared ---------------------------------------------------------------------


def _block_class(K: Any, with_variable: bool = False) -> type:
    class Block(K.layers.Layer):
        """Sublayers made in __init__, built lazily by the first call; an own weight (and a Variable) in build."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.d1 = K.layers.Dense(3)
            self.d2 = K.layers.Dense(2)

        def build(self, input_shape: Any) -> None:
            self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale")
            if with_variable:
                # (Keras 3.15 lists `scale` three times in the weights of a Model holding such a layer: a layer
                # only, here)
                self.offset = K.Variable(np.zeros((2,), "float32"), name="offset")

        def call(self, x: Any) -> Any:
            out = self.d2(self.d1(x)) * self.scale
            return out + self.offset if with_variable else out

    return Block


def _builder_class(K: Any) -> type:
    class Builder(K.layers.Layer):
        """A weight made in __init__ and a sublayer built by this layer's own build."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.w0 = self.add_weight(shape=(1,), name="w0")
            self.inner = K.layers.Dense(2)

        def build(self, input_shape: Any) -> None:
            self.inner.build(input_shape)
            self.unnamed = self.add_weight(shape=(2,), initializer="zeros", trainable=False)

        def call(self, x: Any) -> Any:
            return self.inner(x) + self.unnamed

    return Builder


def _sequential_input(K: Any) -> Any:
    return K.Sequential([K.Input((3,)), K.layers.Dense(4), K.layers.BatchNormalization(), K.layers.Dense(1)])


def _sequential_build(K: Any) -> Any:
    model = K.Sequential([K.layers.Dense(4), K.layers.Dense(2)])
    model.build((None, 3))
    return model


def _sequential_called(K: Any) -> Any:
    model = K.Sequential([K.layers.Dense(4), K.layers.Dense(2)], name="called")
    model(X)
    return model


def _functional(K: Any) -> Any:
    inputs = K.Input((3,))
    x = K.layers.Dense(4)(inputs)
    x = K.layers.BatchNormalization()(x)
    outputs = K.layers.Dense(1, name="out")(x)
    return K.Model(inputs, outputs)


def _functional_nested(K: Any) -> Any:
    inner = K.Sequential([K.layers.Dense(2)], name="inner_seq")
    fixed = K.Sequential([K.Input((3,)), K.layers.Dense(3)], name="fixed")
    inputs = K.Input((3,))
    x = inner(fixed(inputs))
    return K.Model(inputs, K.layers.Dense(1)(x))


def _sequential_nested(K: Any) -> Any:
    inner = K.Sequential([K.Input((3,)), K.layers.Dense(2)], name="inner")
    return K.Sequential([K.Input((3,)), inner, K.layers.Dense(1)])


def _custom_layer(K: Any) -> Any:
    layer = _block_class(K, with_variable=True)()
    layer(X)
    return layer


def _subclassed_model(K: Any) -> Any:
    Block = _block_class(K)

    class Outer(K.Model):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.block = Block()
            self.head = K.layers.Dense(1)

        def call(self, x: Any) -> Any:
            return self.head(self.block(x))

    model = Outer()
    model(X)
    return model


def _subclassed_built(K: Any) -> Any:
    Block = _block_class(K)

    class Outer(K.Model):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.block = Block()

        def call(self, x: Any) -> Any:
            return self.block(x)

    model = Outer(name="built_outer")
    model.build((None, 3))  # tritonnn builds it by a call on zeros inside its build; Keras only marks it built
    model(X)
    return model


def _builder_in_scope(K: Any) -> Any:
    with K.name_scope("outer"):
        layer = _builder_class(K)()  # its __init__ weight gets the scope; its build runs outside it
    layer(X)
    return layer


def _build_in_scope(K: Any) -> Any:
    model = K.Sequential([K.layers.Dense(4)])
    with K.name_scope("top"):
        with K.name_scope("mid"):
            model.build((None, 3))
    model(X)  # called later outside the scopes: the paths stay
    return model


def _dense_built_then_called_in_scopes(K: Any) -> Any:
    dense = K.layers.Dense(3, name="d")
    with K.name_scope("s1"):
        dense.build((None, 3))
    with K.name_scope("s2"):
        dense(X)
    return dense


def _clone_sequential(K: Any) -> Any:
    return K.models.clone_model(_sequential_input(K))


def _clone_functional(K: Any) -> Any:
    return K.models.clone_model(_functional(K))


def _embedding_and_mixed(K: Any) -> Any:
    inputs = K.Input((2,), dtype="int32")
    x = K.layers.Embedding(5, 3)(inputs)
    x = K.layers.Flatten()(x)
    return K.Model(inputs, K.layers.Dense(2, dtype="mixed_float16")(x))


def _frozen_layer(K: Any) -> Any:
    model = _sequential_input(K)
    model.layers[0].trainable = False
    return model


MODELS = {
    "sequential-input": _sequential_input,
    "sequential-build": _sequential_build,
    "sequential-called": _sequential_called,
    "functional": _functional,
    "functional-nested": _functional_nested,
    "sequential-nested": _sequential_nested,
    "custom-layer": _custom_layer,
    "subclassed-model": _subclassed_model,
    "subclassed-built": _subclassed_built,
    "builder-in-scope": _builder_in_scope,
    "build-in-scope": _build_in_scope,
    "dense-scopes": _dense_built_then_called_in_scopes,
    "clone-sequential": _clone_sequential,
    "clone-functional": _clone_functional,
    "embedding-mixed": _embedding_and_mixed,
    "frozen-layer": _frozen_layer,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_weight_paths_and_names_match_keras(keras_ref, name):
    ref = weight_table(MODELS[name](keras_ref))
    got = weight_table(MODELS[name](tk))
    assert got == ref
    assert all(isinstance(w, tk.Variable) for w in MODELS[name](tk).weights)


def test_layer_paths_after_load_are_the_saved_models(keras_ref, tmp_path):
    """Keras' reloaded Sequential builds each layer from its own build config, outside the model's scope."""
    deliberate("variable.paths-after-load")

    def reload(K: Any, model: Any, path: str) -> list[str]:
        model.save(path)
        K.backend.clear_session()
        return [w.path for w in K.saving.load_model(path).weights]

    ref = reload(keras_ref, _sequential_input(keras_ref), str(tmp_path / "k.keras"))
    model = _sequential_input(tk)
    got = reload(tk, model, str(tmp_path / "t.keras"))
    assert ref == [p.split("/", 1)[1] for p in got]  # the model's name is the only difference
    assert got == [w.path for w in model.weights]


# ---- name scopes -------------------------------------------------------------------------------------------------


def _scope_program(K: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}

    class Caller:
        pass

    caller = Caller()
    with K.name_scope("a") as scope:
        out["enter"] = (type(scope).__name__, scope.name, scope.caller, scope.deduplicate, scope.override_parent)
        out["in_a"] = K.Variable(1.0, name="v").path
        with K.name_scope("a"):  # no caller: nested again
            out["a_a"] = K.Variable(1.0, name="v").path
        with K.name_scope("b", override_parent="x/y"):
            out["override"] = K.Variable(1.0, name="v").path
            with K.name_scope("c"):
                out["override_child"] = K.Variable(1.0, name="v").path
        with K.name_scope("r", override_parent=""):
            out["override_root"] = K.Variable(1.0, name="v").path
        with K.name_scope("c", caller=caller):
            with K.name_scope("c", caller=caller):  # the same caller and name: deduplicated
                out["dedupe"] = K.Variable(1.0, name="v").path
            with K.name_scope("c", caller=caller, deduplicate=False):
                out["no_dedupe"] = K.Variable(1.0, name="v").path
            dense = K.layers.Dense(2)
            dense.build((None, 3))
            out["dense"] = [w.path for w in dense.weights]
        out["after_inner"] = K.Variable(1.0, name="v").path
    out["after"] = K.Variable(1.0, name="v").path
    out["auto"] = [K.Variable(1.0).path for _ in range(2)]
    with K.name_scope("s"):
        out["auto_scoped"] = K.Variable(1.0).path
    for bad in ("a/b", 3, None):
        out[f"bad {bad!r}"] = observe(lambda bad=bad: K.name_scope(bad))
        out[f"bad variable name {bad!r}"] = observe(lambda bad=bad: K.Variable(1.0, name=bad).path)
    return out


def test_name_scope_matches_keras(keras_ref):
    ref, got = _scope_program(keras_ref), _scope_program(tk)
    assert_same(ref, got)
    assert got["bad 'a/b'"] == Raised(ValueError("")) and got["dedupe"] == "a/c/v"


def test_name_scope_exits_on_error():
    """A scope, and a layer's scope around its build and call, close when the block raises."""

    class Failing(tk.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.w = self.add_weight(shape=(1,), name="w")

        def call(self, x: Any) -> Any:
            raise RuntimeError("inside the call")

    with pytest.raises(RuntimeError):
        with tk.name_scope("broken"):
            raise RuntimeError("inside")
    assert tk.Variable(1.0, name="v").path == "v"
    model = tk.Sequential([Failing(name="failing")])
    with pytest.raises(RuntimeError, match="inside the call"):
        model(X)
    assert tk.Variable(1.0, name="after").path == "after"
    assert [w.path for w in model.weights] == ["sequential/failing/w"]


# ---- standalone variables -----------------------------------------------------------------------------------------

VARIABLES = {
    "float32-array": lambda K: K.Variable(np.arange(6, dtype="float32").reshape(2, 3)),
    "float64-array": lambda K: K.Variable(np.ones((2,))),
    "int-list": lambda K: K.Variable([1, 2, 3], trainable=False),
    "float-list": lambda K: K.Variable([1.0, 2.5]),
    "python-float": lambda K: K.Variable(3.5, name="scalar"),
    "numpy-scalar": lambda K: K.Variable(np.float32(2.0)),
    "bool": lambda K: K.Variable(True, trainable=False),
    "int64-array": lambda K: K.Variable(np.arange(3), trainable=False),
    "cast": lambda K: K.Variable(np.ones((2,), "float32"), dtype="float16"),
    "string-initializer": lambda K: K.Variable("ones", shape=[2, 3]),
    "initializer-dtype": lambda K: K.Variable(K.initializers.Constant(3.0), shape=(2,), dtype="float16"),
    "seeded-initializer": lambda K: K.Variable(K.initializers.Zeros(), shape=(0, 2)),
    "callable": lambda K: K.Variable(lambda shape, dtype: np.full(shape, 5.0, dtype), shape=(2,)),
    "non-trainable": lambda K: K.Variable(np.ones((2,), "float32"), trainable=False, name="frozen"),
    "annotations": lambda K: K.Variable(np.ones((1,), "float32"), aggregation="mean", synchronization="on_read"),
    "aggregation-none": lambda K: K.Variable(np.ones((1,), "float32"), aggregation=None, synchronization=None),
    "from-variable": lambda K: K.Variable(K.Variable(np.full((2,), 4.0, "float32")), name="copy"),
    "bfloat16": lambda K: K.Variable(np.ones((2,), "float32"), dtype="bfloat16"),
    # errors
    "no-shape": lambda K: K.Variable("zeros"),
    "none-dim": lambda K: K.Variable("zeros", shape=(None, 2)),
    "negative-dim": lambda K: K.Variable("zeros", shape=(-1, 2)),
    "float-dim": lambda K: K.Variable("zeros", shape=(1.5, 2)),
    "bad-aggregation": lambda K: K.Variable(1.0, aggregation="max"),
    "bad-synchronization": lambda K: K.Variable(1.0, synchronization="sometimes"),
    "int-trainable": lambda K: K.Variable([1, 2]),
}


def _describe(K: Any, make: Any) -> Any:
    v = make(K)
    return {
        "name": v.name,
        "path": v.path,
        "dtype": K.backend.standardize_dtype(v.dtype),
        "shape": tuple(v.shape),
        "ndim": v.ndim,
        "trainable": v.trainable,
        "aggregation": v.aggregation,
        "synchronization": v.synchronization,
        "numpy": v.numpy(),
        "array": np.array(v),
        "array64": np.array(v, dtype="float64"),
        "repr": repr(v),
        "constraint": v.constraint,
        "regularizer": v.regularizer,
        "is_variable": isinstance(v, K.Variable),
    }


@pytest.mark.parametrize("name", list(VARIABLES))
def test_standalone_variable_matches_keras(keras_ref, name):
    ref = observe(lambda: _describe(keras_ref, VARIABLES[name]))
    got = observe(lambda: _describe(tk, VARIABLES[name]))
    assert_same(ref, got)


def test_variable_attribute_setters_match_keras(keras_ref):
    def program(K: Any) -> dict[str, Any]:
        v = K.Variable(np.ones((2,), "float32"))
        out: dict[str, Any] = {}
        v.constraint = K.constraints.NonNeg()
        v.regularizer = K.regularizers.L2(0.1)
        out["set"] = (type(v.constraint).__name__, type(v.regularizer).__name__)
        for attr, bad in (("constraint", 3), ("regularizer", "x"), ("overwrite_with_gradient", 1)):
            out[attr] = observe(lambda attr=attr, bad=bad: setattr(v, attr, bad))
        v.trainable = False
        out["frozen"] = v.trainable
        v.trainable = True
        out["thawed"] = v.trainable
        out["float"] = observe(lambda: float(K.Variable(2.5)))
        out["int"] = observe(lambda: int(K.Variable(np.int32(7), trainable=False)))
        out["float-of-vector"] = observe(lambda: float(K.Variable(np.ones((1,), "float32"))))
        out["bool"] = observe(lambda: bool(K.Variable(2.5)))
        out["index"] = K.ops.convert_to_numpy(v[1])
        out["arith"] = [K.ops.convert_to_numpy(x) for x in (v + 1, 2 * v, v - v, -v, v @ v)]
        return out

    assert_same(program(keras_ref), program(tk))


def test_variable_dtype_is_torch_and_its_keras_name_is_standardize_dtype(keras_ref):
    """The one attribute that differs in kind: tritonnn's ``dtype`` is the parameter's torch dtype."""
    deliberate("variable.torch-dtype-and-shape")
    ref, got = keras_ref.Variable(np.ones((2, 3), "float32")), tk.Variable(np.ones((2, 3), "float32"))
    assert ref.dtype == "float32" and got.dtype is torch.float32
    assert keras_ref.backend.standardize_dtype(ref.dtype) == tk.backend.standardize_dtype(got.dtype) == "float32"
    assert ref.shape == got.shape == (2, 3) and isinstance(got.shape, tuple)
    assert isinstance(got, torch.nn.Parameter) and not isinstance(ref, torch.Tensor)


def test_variable_is_a_parameter_whose_ops_give_plain_tensors():
    """Parameter's disabled ``__torch_function__`` is kept: an op on a Variable costs what it costs on a Parameter
    and returns a plain tensor (never a Variable with a stale name and path)."""
    v = tk.Variable(np.ones((2, 3), "float32"), name="v")
    assert tk.Variable.__torch_function__ is torch.nn.Parameter.__torch_function__
    assert tk.Variable.__torch_function__ is torch._C._disabled_torch_function_impl
    for out in (v * 2, v + v, torch.matmul(v, v.T), v.detach(), v[0], torch.nn.functional.relu(v), v.sum()):
        assert type(out) is torch.Tensor
    (v * 3).sum().backward()
    assert torch.equal(v.grad, torch.full((2, 3), 3.0)) and v.is_leaf
    module = torch.nn.Module()
    module.w = v  # a Variable is registered as a parameter, as Keras tracks one set on a layer
    assert list(module.parameters()) == [v] and isinstance(v, torch.nn.Parameter)


def test_layer_names_are_checked_at_construction_as_in_keras(keras_ref):
    def program(K: Any) -> dict[str, Any]:
        return {repr(n): observe(lambda n=n: K.layers.Dense(2, name=n).name) for n in ("a/b", 3, "ok", "with space")}

    assert_same(program(keras_ref), program(tk))


def test_variable_copies_its_initial_value(keras_ref):
    deliberate("variable.initial-value-copied")
    ref_t, got_t = torch.zeros(2), torch.zeros(2)
    keras_ref.Variable(ref_t).assign([1.0, 2.0])
    tk.Variable(got_t).assign([1.0, 2.0])
    assert ref_t.tolist() == [1.0, 2.0] and got_t.tolist() == [0.0, 0.0]
    for K in (keras_ref, tk):  # a NumPy array is copied by both
        a = np.zeros(2, "float32")
        K.Variable(a).assign([1.0, 2.0])
        assert a.tolist() == [0.0, 0.0]


def test_unknown_and_unsupported_variable_arguments_are_refused(keras_ref):
    deliberate("variable.unknown-arguments")
    keras_ref.Variable(np.ones(2), foo=1)  # Keras ignores it
    with pytest.raises(ValueError, match="foo"):
        tk.Variable(np.ones(2), foo=1)
    with pytest.raises(ValueError, match="layout"):
        tk.Variable(np.ones(2), layout="replicated")
    ref = keras_ref.Variable(np.ones(2, "float32"))
    ref.overwrite_with_gradient = True
    with pytest.raises(ValueError, match="overwrite_with_gradient"):
        tk.Variable(np.ones(2, "float32")).overwrite_with_gradient = True
    with pytest.raises(ValueError, match="overwrite_with_gradient"):
        tk.layers.Dense(2).add_weight(shape=(2,), overwrite_with_gradient=True)


# ---- assign --------------------------------------------------------------------------------------------------------


def _assign_program(K: Any, no_grad: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def run() -> None:
        v = K.Variable(np.zeros((2, 3), "float32"), name="x")
        out["assign"] = K.ops.convert_to_numpy(v.assign(np.arange(6).reshape(2, 3)))
        out["after_assign"] = v.numpy()
        out["assign_list"] = K.ops.convert_to_numpy(v.assign([[1.5, 2, 3], [4, 5, 6]]))
        out["assign_add_scalar"] = K.ops.convert_to_numpy(v.assign_add(1.0))
        out["assign_add_row"] = K.ops.convert_to_numpy(v.assign_add(np.array([1.0, 2.0, 3.0])))
        out["assign_sub_tensor"] = K.ops.convert_to_numpy(v.assign_sub(K.ops.ones((2, 3))))
        out["assign_variable"] = K.ops.convert_to_numpy(v.assign(K.Variable(np.full((2, 3), 7.0, "float32"))))
        out["value"] = K.ops.convert_to_numpy(v.value)
        out["final"] = v.numpy()
        out["wrong_shape"] = observe(lambda: v.assign(np.ones((3, 2))))
        out["scalar_to_matrix"] = observe(lambda: v.assign(1.0))
        out["add_broadcast_up"] = observe(lambda: v.assign_add(np.ones((4, 2, 3))))
        out["add_not_broadcastable"] = observe(lambda: v.assign_add(np.ones((5,))))
        out["unchanged"] = v.numpy()
        i = K.Variable(np.array([1, 2], "int32"), trainable=False)
        i.assign_add(0.7)
        out["int_truncates"] = i.numpy()
        i.assign(np.array([3.9, -3.9]))
        out["int_assign_float"] = i.numpy()
        s = K.Variable(2.0)
        s.assign(np.float64(5.25))
        out["scalar"] = s.numpy()
        out["repr"] = repr(v)

    if no_grad:  # Keras on torch runs under the same torch mode
        with torch.no_grad():
            run()
    else:
        run()
    return out


@pytest.mark.parametrize("no_grad", [False, True], ids=["grad", "no_grad"])
def test_assign_matches_keras(keras_ref, no_grad):
    assert_same(_assign_program(keras_ref, no_grad), _assign_program(tk, no_grad))


def test_numpy_values_are_copies_as_in_keras(keras_ref):
    def program(K: Any) -> dict[str, Any]:
        v = K.Variable(np.ones((2,), "float32"))
        snapshots = {"numpy": v.numpy(), "array": np.array(v), "ops": K.ops.convert_to_numpy(v)}
        snapshots["ops_value"] = K.ops.convert_to_numpy(v.value)
        t = K.ops.ones((2,))
        snapshots["ops_tensor"] = K.ops.convert_to_numpy(t)
        v.assign([5.0, 6.0])
        with torch.no_grad():
            t.add_(1.0)
        return snapshots

    assert_same(program(keras_ref), program(tk))


# ---- layers' variables ---------------------------------------------------------------------------------------------


def _layer_program(K: Any) -> dict[str, Any]:
    dense = K.layers.Dense(
        2, kernel_constraint="non_neg", kernel_regularizer="l2", bias_initializer="ones", name="layer"
    )
    dense.build((None, 3))
    out: dict[str, Any] = {
        "types": [isinstance(w, K.Variable) for w in dense.weights],
        "attrs": (dense.kernel.path, dense.kernel.name, dense.bias.path),
        "constraint": (type(dense.kernel.constraint).__name__, dense.bias.constraint),
        "regularizer": (type(dense.kernel.regularizer).__name__, dense.bias.regularizer),
        "aggregation": dense.kernel.aggregation,
    }
    dense.trainable = False
    out["frozen"] = ([w.trainable for w in dense.weights], len(dense.trainable_weights))
    dense.kernel.trainable = True  # a frozen layer lists no trainable weights, whatever its variables say
    out["frozen_thawed_kernel"] = (
        dense.kernel.trainable,
        len(dense.trainable_weights),
        len(dense.non_trainable_weights),
    )
    dense.trainable = True
    out["thawed"] = [w.trainable for w in dense.weights]
    dense.bias.trainable = False
    out["bias_frozen"] = (len(dense.trainable_weights), [w.path for w in dense.non_trainable_weights])
    norm = K.layers.BatchNormalization()
    norm.build((None, 3))
    norm.trainable = False
    norm.trainable = True  # the moving statistics were made non-trainable and stay so
    out["norm"] = [(w.name, w.trainable) for w in norm.weights]
    dense.kernel.assign(np.ones((3, 2)))
    out["call"] = K.ops.convert_to_numpy(dense(X))
    return out


def test_layer_variables_match_keras(keras_ref):
    assert_same(_layer_program(keras_ref), _layer_program(tk))


NEW_KERNEL = RNG.normal(size=(3, 4)).astype("float32")


def _train_with_assign(K: Any, no_grad: bool) -> dict[str, Any]:
    model = K.Sequential([K.Input((3,)), K.layers.Dense(4, activation="tanh"), K.layers.Dense(1)])
    model.set_weights([np.full(w.shape, 0.1 * (i + 1), "float32") for i, w in enumerate(model.get_weights())])
    model.compile(optimizer=K.optimizers.SGD(0.1), loss="mse")
    out: dict[str, Any] = {"first": float(model.train_on_batch(X, Y))}  # builds the optimizer
    kernel = model.layers[0].kernel
    if no_grad:
        with torch.no_grad():
            kernel.assign(NEW_KERNEL)
    else:
        kernel.assign(NEW_KERNEL)
    model.layers[1].bias.assign_add(np.array([0.5], "float32"))
    out["assigned"] = [np.asarray(w) for w in model.get_weights()]
    out["second"] = float(model.train_on_batch(X, Y))
    out["weights"] = [np.asarray(w) for w in model.get_weights()]
    out["model"] = model
    return out


@pytest.mark.parametrize("no_grad", [False, True], ids=["grad", "no_grad"])
def test_assign_after_the_optimizer_is_built_is_trained_from(keras_ref, no_grad):
    """The second step starts from the assigned values in both; tritonnn's kernel stays a view of the optimizer's
    flat buffer, which holds the assigned values at once (not only after the optimizer re-attaches a replaced
    parameter at its next step)."""
    ref = _train_with_assign(keras_ref, no_grad)
    got = _train_with_assign(tk, no_grad)
    model = got.pop("model")
    ref.pop("model")
    assert_same(ref, got)
    opt = model.optimizer
    kernel = model.layers[0].kernel
    flat = opt.flat_param
    assert kernel.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
    kernel.assign(np.zeros((3, 4), "float32"))
    start = (kernel.data_ptr() - flat.data_ptr()) // flat.element_size()
    assert kernel.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
    assert torch.equal(flat[start : start + 12], torch.zeros(12))


# ---- copies --------------------------------------------------------------------------------------------------------


def _trained_model(fit: bool = True) -> Any:
    """A model whose weights are views of an optimizer's flat buffers (after ``fit``, or a standalone optimizer's
    ``apply``: a fitted model keeps its last loss's graph, which ``deepcopy`` and ``pickle`` refuse)."""
    model = tk.Sequential([tk.Input((3,)), tk.layers.Dense(4, kernel_constraint="non_neg"), tk.layers.Dense(1)])
    if fit:
        model.compile(optimizer="adam", loss="mse")
        model.fit(X, Y, epochs=1, verbose=0)
    else:
        optimizer = tk.optimizers.Adam(0.1)
        optimizer.apply([torch.ones_like(w) for w in model.trainable_weights], model.trainable_weights)
        assert all(getattr(w, "_tritonnn_flat_grad", False) for w in model.weights)
    return model


def _same_variables(a: Any, b: Any, copied: bool = True) -> None:
    assert [type(w) for w in b.weights] == [tk.Variable] * len(a.weights)
    assert weight_table(b) == weight_table(a)
    for wa, wb in zip(a.weights, b.weights, strict=True):
        assert torch.equal(wa.detach(), wb.detach())
        assert wa.untyped_storage().data_ptr() != wb.untyped_storage().data_ptr()
        assert type(wb.constraint) is type(wa.constraint)
        if copied:  # the original's optimizer owns the original's .grad, not the copy's
            assert not getattr(wb, "_tritonnn_flat_grad", False)
            assert wb.untyped_storage().nbytes() == wb.numel() * wb.element_size()  # its own elements only


def test_deepcopy_and_pickle_keep_variables(keras_ref):
    model = _trained_model(fit=False)
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        _same_variables(model, copied)
        np.testing.assert_allclose(copied.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
        copied.compile(optimizer="sgd", loss="mse")
        copied.fit(X, Y, epochs=1, verbose=0)  # a new optimizer builds over the copies
        assert all(getattr(w, "_tritonnn_flat_grad", False) for w in copied.weights)
    layer = keras_ref.layers.Dense(2, name="d")
    layer.build((None, 3))
    ours = tk.layers.Dense(2, name="d")
    ours.build((None, 3))
    assert [w.path for w in copy.deepcopy(ours).weights] == [w.path for w in copy.deepcopy(layer).weights]
    v = tk.Variable(np.arange(3, dtype="float32"), name="v", aggregation="sum", trainable=False)
    for c in (copy.deepcopy(v), pickle.loads(pickle.dumps(v))):
        assert (type(c), c.name, c.path, c.aggregation, c.trainable) == (tk.Variable, "v", "v", "sum", False)
        assert c.numpy().tolist() == [0.0, 1.0, 2.0]


def test_state_dict_saving_and_clone_keep_variables(tmp_path):
    model = _trained_model()
    state = model.state_dict()
    assert all(type(t) is torch.Tensor for t in state.values())  # plain tensors, as torch's state_dict holds
    fresh = tk.Sequential([tk.Input((3,)), tk.layers.Dense(4), tk.layers.Dense(1)])
    fresh.load_state_dict(state)
    assert all(isinstance(w, tk.Variable) for w in fresh.weights)
    np.testing.assert_allclose(fresh.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
    model.save(str(tmp_path / "m.keras"))
    loaded = tk.saving.load_model(str(tmp_path / "m.keras"))
    _same_variables(model, loaded, copied=False)
    loaded.fit(X, Y, epochs=1, verbose=0)  # the loaded optimizer trains the loaded Variables
    assert (
        loaded.layers[0].kernel.untyped_storage().data_ptr() == loaded.optimizer.flat_param.untyped_storage().data_ptr()
    )
    clone = tk.models.clone_model(model)
    assert [w.path for w in clone.weights] == [w.path for w in model.weights]
    assert all(isinstance(w, tk.Variable) for w in clone.weights)


# ---- keras.ops.convert_to_numpy ------------------------------------------------------------------------------------


def test_convert_to_numpy_bfloat16_matches_keras(keras_ref):
    values = [1.0, 2.5, -3.0078125]

    def program(K: Any) -> dict[str, Any]:
        t = torch.tensor(values, dtype=torch.bfloat16)
        return {
            "tensor": K.ops.convert_to_numpy(t),
            "list": K.ops.convert_to_numpy([t, t]),
            "variable": K.Variable(t, dtype="bfloat16").numpy(),
            "float16": K.ops.convert_to_numpy(t.to(torch.float16)),
        }

    ref, got = program(keras_ref), program(tk)
    assert_same(ref, got)
    assert str(got["tensor"].dtype) == "bfloat16"


def test_convert_to_numpy_bfloat16_without_ml_dtypes(monkeypatch):
    """tritonnn does not need ml_dtypes: without it a bfloat16 tensor comes back as float32, as it did."""
    monkeypatch.setattr(ops, "_ML_BFLOAT16", None)
    out = ops.convert_to_numpy(torch.tensor([1.0, 2.5], dtype=torch.bfloat16))
    assert out.dtype == np.float32 and out.tolist() == [1.0, 2.5]
    assert tk.Variable(np.ones(2, "float32"), dtype="bfloat16").numpy().dtype == np.float32
