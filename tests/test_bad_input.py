"""Bad input through the public API: each gets a clear exception, before any kernel launches, whose message names
the argument, what was expected and what was received.

One test per bad input. Where tritonnn does not yet give such an error, the test is marked
``xfail(strict=True)`` with what is missing (and in which file), so it fails (XPASS) once the check is added.
"""

from __future__ import annotations

import ast
import glob
import os
import re
import textwrap

import numpy as np
import pytest
import torch

import tritonnn as keras
from tritonnn import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.RandomState(0)
X = RNG.normal(size=(12, 4)).astype("float32")
Y = RNG.randint(0, 3, size=12)


def _model(loss="sparse_categorical_crossentropy", compile=True, units=3, **compile_kw):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)])
    if compile:
        model.compile(optimizer="sgd", loss=loss, **compile_kw)
    return model


def _raises(exc, *fragments):
    """``pytest.raises(exc)`` whose message must contain every fragment (argument, expectation, received)."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


ENTRY_POINTS = {
    "fit": lambda m, x, y, **kw: m.fit(x, y, verbose=0, **kw),
    "evaluate": lambda m, x, y, **kw: m.evaluate(x, y, verbose=0, **kw),
    "train_on_batch": lambda m, x, y, **kw: m.train_on_batch(x, y, **kw),
    "test_on_batch": lambda m, x, y, **kw: m.test_on_batch(x, y, **kw),
}


# ---- data given to fit / evaluate / predict / train_on_batch -----------------------------------------------------


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_x_and_y_of_different_lengths(entry):
    with _raises(ValueError, "x has 12 samples", "y has 7 samples", "same number of samples"):
        ENTRY_POINTS[entry](_model(), X, Y[:7])


@pytest.mark.parametrize("entry", [*sorted(ENTRY_POINTS), "predict"])
def test_wrong_feature_dimension_for_a_built_model(entry):
    x = np.zeros((12, 5), "float32")
    with _raises(ValueError, "expected axis -1 of input shape to have value 4", "(12, 5)"):
        if entry == "predict":
            _model().predict(x, verbose=0)
        else:
            ENTRY_POINTS[entry](_model(), x, Y)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_float_labels_for_a_sparse_loss(entry):
    # Floats that hold whole numbers are class labels, as in Keras (its guides train on y.astype("float32")): the
    # same losses and metrics as the integers. A float that is not a whole number is refused, naming it.
    def run(y):
        keras.utils.set_random_seed(0)
        out = ENTRY_POINTS[entry](_model(metrics=["accuracy", "sparse_top_k_categorical_accuracy"]), X, y)
        return out.history if isinstance(out, keras.callbacks.History) else out

    assert run(Y.astype("float32")) == run(Y)
    y = Y.astype("float32")
    y[5] = 1.7
    with _raises(ValueError, "integer class labels", "1 non-integer value(s)", "e.g. 1.7"):
        ENTRY_POINTS[entry](_model(), X, y)


@pytest.mark.parametrize("label", [3, 17, -1])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_labels_outside_the_class_range(entry, label):
    y = Y.copy()
    y[5] = label
    with _raises(ValueError, "labels in [0, 3)", f"e.g. {label}"):
        ENTRY_POINTS[entry](_model(), X, y)


@pytest.mark.parametrize("width", [2, 4])
def test_one_hot_targets_of_the_wrong_width(width):
    y = np.eye(width, dtype="float32")[RNG.randint(0, width, size=12)]
    with _raises(ValueError, "`target`", "width 3", f"target.shape=(12, {width})", "output.shape=(12, 3)"):
        _model("categorical_crossentropy").fit(X, y, verbose=0)


def test_regression_targets_of_a_shape_that_does_not_broadcast():
    with _raises(ValueError, "mean_squared_error", "`y_true`", "broadcasts to y_pred's (12, 3)", "(12, 5)"):
        _model("mse").fit(X, np.zeros((12, 5), "float32"), verbose=0)


@pytest.mark.parametrize("entry", [*sorted(ENTRY_POINTS), "predict"])
def test_empty_data(entry):
    with _raises(ValueError, "non-empty", "0 samples"):
        if entry == "predict":
            _model().predict(X[:0], verbose=0)
        else:
            ENTRY_POINTS[entry](_model(), X[:0], Y[:0])


@pytest.mark.parametrize("batch_size", [0, -4, 2.5, True])
@pytest.mark.parametrize("entry", ["fit", "evaluate", "predict"])
def test_batch_size_not_positive(entry, batch_size):
    with _raises(ValueError, "`batch_size`", "positive integer", f"batch_size={batch_size!r}"):
        if entry == "predict":
            _model().predict(X, batch_size=batch_size, verbose=0)
        else:
            ENTRY_POINTS[entry](_model(), X, Y, batch_size=batch_size)


@pytest.mark.parametrize("split", [1.0, 1.5, -0.1])
def test_validation_split_outside_0_1(split):
    with _raises(ValueError, "`validation_split`", "[0, 1)", f"validation_split={split}"):
        _model().fit(X, Y, validation_split=split, verbose=0)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_training_or_evaluating_before_compile(entry):
    with _raises(ValueError, "compile()"):
        ENTRY_POINTS[entry](_model(compile=False), X, Y)


def test_fit_without_targets():
    with _raises(ValueError, "target data `y`", "y=None"):
        _model().fit(X, verbose=0)


def test_non_finite_inputs_pass_by_default_and_fail_under_the_opt_in_check():
    x = X.copy()
    x[3, 2] = np.nan
    history = _model().fit(x, Y, epochs=1, batch_size=12, verbose=0)  # off by default: no host sync per batch
    assert not np.isfinite(history.history["loss"][0])  # and the NaN shows in the logs
    keras.config.set_check_numerics(True)
    try:
        with _raises(ValueError, "`x`", "non-finite", "index (3, 2)", "nan"):
            _model().fit(x, Y, verbose=0)
        y = np.zeros((12, 3), "float32")
        y[0, 1] = np.inf
        with _raises(ValueError, "`y`", "non-finite", "index (0, 1)", "inf"):
            _model("mse").evaluate(X, y, verbose=0)
    finally:
        keras.config.set_check_numerics(False)


# ---- unknown strings: the message lists the valid names and the closest one -------------------------------------


@pytest.mark.parametrize(
    ("what", "make", "typo", "closest"),
    [
        ("activation", lambda s: keras.layers.Dense(3, activation=s), "rellu", "relu"),
        (
            "activation",
            lambda s: kernels.dense(torch.zeros(2, 4), torch.zeros(4, 3), activation=s),
            "sofplus",
            "softplus",
        ),
        ("loss", lambda s: _model(loss=s), "sparse_categorical_crossentopy", "sparse_categorical_crossentropy"),
        ("loss", lambda s: keras.losses.get(s), "msee", "mse"),
        ("metric", lambda s: _model(metrics=[s]), "acuracy", "accuracy"),
        ("optimizer", lambda s: _model(compile=False).compile(optimizer=s, loss="mse"), "adamm", "adam"),
        ("optimizer", lambda s: keras.optimizers.get(s), "rmsprob", "rmsprop"),
        ("initializer", lambda s: keras.layers.Dense(3, kernel_initializer=s), "glorot_unifrom", "glorot_uniform"),
        ("initializer", lambda s: keras.initializers.get(s), "he_normall", "he_normal"),
        ("regularizer", lambda s: keras.layers.Dense(3, kernel_regularizer=s), "l1_l2", "l1l2"),
    ],
)
def test_unknown_string_names_the_closest_and_the_valid_names(what, make, typo, closest):
    with pytest.raises(ValueError) as info:
        make(typo)
    msg = str(info.value)
    assert what in msg.lower() and repr(typo) in msg
    assert f"Did you mean {closest!r}?" in msg
    assert "Valid names:" in msg and repr(closest) in msg.split("Valid names:")[1]


# ---- layers ------------------------------------------------------------------------------------------------------


def test_dense_layer_called_on_another_feature_size():
    layer = keras.layers.Dense(3)
    layer(torch.zeros(2, 4))
    with _raises(ValueError, "dense", "expected axis -1 of input shape to have value 4", "(2, 5)"):
        layer(torch.zeros(2, 5))


def test_layer_normalization_called_on_another_feature_size():
    layer = keras.layers.LayerNormalization()
    layer(torch.zeros(2, 4))
    with _raises(ValueError, repr(layer.name), "sizes (4,)", "(2, 5)"):
        layer(torch.zeros(2, 5))


def test_embedding_index_out_of_range():
    with _raises(ValueError, "index out of range [0, 5)", "input_dim=5", "indices from 0 to 9"):
        keras.layers.Embedding(5, 2)(torch.tensor([[0, 9]]))


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda: keras.layers.Dense(0), ("`units`", "positive integer", "units=0")),
        (lambda: keras.layers.Dropout(1.0), ("`rate`", "between 0 and 1", "rate=1.0")),
        (lambda: keras.layers.Embedding(0, 2), ("input_dim=0",)),
    ],
)
def test_layer_constructor_arguments(make, fragments):
    with _raises(ValueError, *fragments):
        make()


# ---- kernel ops: shapes, dtypes, devices, strides, labels (checked on the host, before a launch) ----------------

META = "meta"  # a second device on any machine: tensors with shapes and dtypes but no data


@pytest.fixture
def no_launch(monkeypatch):
    """Any Triton launch fails the test: these errors must come before one."""
    import importlib

    # by module path: tritonnn.kernels.dense and .dropout are also the names of the op functions
    dense, dropout, norm, optim, xent = (
        importlib.import_module(f"tritonnn.kernels.{m}") for m in ("dense", "dropout", "norm", "optim", "xent")
    )

    class Forbidden:
        def __getitem__(self, grid):
            raise AssertionError("a kernel was launched before the bad input was rejected")

        def __getattr__(self, name):
            raise AssertionError("a kernel was launched before the bad input was rejected")

        def __call__(self, *args, **kwargs):
            raise AssertionError("a kernel was launched before the bad input was rejected")

    patched = 0
    for mod in (dense, dropout, norm, optim, xent):
        for name in dir(mod):
            if name.endswith("_kernel") and name.startswith("_"):
                monkeypatch.setattr(mod, name, Forbidden())
                patched += 1
    assert patched >= 9
    monkeypatch.setattr(dense, "_launcher", lambda *a, **k: Forbidden())  # dense caches its autotuned launchers
    return None


def test_dense_kernel_shapes(backend, no_launch):
    with _raises(ValueError, "dense", "x", "kernel.shape[0]=4", "x.shape=(2, 5)"):
        kernels.dense(torch.zeros(2, 5), torch.zeros(4, 3))
    with _raises(ValueError, "dense", "bias", "(3,)", "bias.shape=(4,)"):
        kernels.dense(torch.zeros(2, 4), torch.zeros(4, 3), torch.zeros(4))
    with _raises(ValueError, "dense", "kernel", "2-D", "kernel.shape=(4,)"):
        kernels.dense(torch.zeros(2, 4), torch.zeros(4))


def test_dense_kernel_dtypes(backend, no_launch):
    with _raises(ValueError, "dense", "x", "floating-point", "torch.int32"):
        kernels.dense(torch.zeros(2, 4, dtype=torch.int32), torch.zeros(4, 3))
    with _raises(ValueError, "dense", "kernel", "torch.float32", "kernel.dtype=torch.float64"):
        kernels.dense(torch.zeros(2, 4), torch.zeros(4, 3, dtype=torch.float64))


def test_dense_kernel_devices(backend, no_launch):
    with _raises(ValueError, "dense", "kernel", "x's device cpu", "kernel.device=meta"):
        kernels.dense(torch.zeros(2, 4), torch.zeros(4, 3, device=META))
    with _raises(ValueError, "dense", "bias", "x's device cpu", "bias.device=meta"):
        kernels.dense(torch.zeros(2, 4), torch.zeros(4, 3), torch.zeros(3, device=META))


def test_dense_kernel_dropout_arguments(backend, no_launch):
    with _raises(ValueError, "`rate`", "between 0 and 1", "rate=1.5"):
        kernels.dense(torch.zeros(2, 4), torch.zeros(4, 3), dropout_rate=1.5, dropout_seed=1)
    with _raises(ValueError, "seed", "[0, 2**63)", "seed=-1"):
        kernels.dense(torch.zeros(2, 4), torch.zeros(4, 3), dropout_rate=0.5, dropout_seed=-1)


@pytest.mark.parametrize("label", [3, 1000, -1, 2**40])
def test_cross_entropy_label_out_of_range_never_reaches_a_load(backend, no_launch, label):
    with _raises(ValueError, "softmax_cross_entropy", "labels in [0, 3)", f"e.g. {label}"):
        kernels.softmax_cross_entropy(torch.zeros(4, 3), torch.tensor([0, 1, label, 2]))


def test_cross_entropy_targets(backend, no_launch):
    with _raises(ValueError, "softmax_cross_entropy", "probability targets", "(2, 3)", "target.shape=(2, 4)"):
        kernels.softmax_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))
    with _raises(ValueError, "softmax_cross_entropy", "integer labels of shape (2,)", "target.shape=(2, 1, 1)"):
        kernels.softmax_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 1, 1, dtype=torch.int64))
    with _raises(ValueError, "softmax_cross_entropy", "integer labels or float probabilities", "torch.bool"):
        kernels.softmax_cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.bool))
    with _raises(ValueError, "softmax_cross_entropy", "logits", "2-D (N, C) float"):
        kernels.softmax_cross_entropy(torch.zeros(2, 3, dtype=torch.int64), torch.tensor([0, 1]))
    with _raises(ValueError, "softmax_cross_entropy", "reduction", "reduction='avg'"):
        kernels.softmax_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), reduction="avg")
    with _raises(ValueError, "softmax_cross_entropy", "label_smoothing", "[0, 1]", "label_smoothing=2"):
        kernels.softmax_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), label_smoothing=2)


def test_cross_entropy_devices(backend, no_launch):
    with _raises(ValueError, "softmax_cross_entropy", "target", "meta", "logits", "cpu"):
        kernels.softmax_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3, device=META))


def test_binary_cross_entropy_shapes(backend, no_launch):
    with _raises(ValueError, "binary_cross_entropy", "target", "(2, 3)", "target.shape=(2, 4)"):
        kernels.binary_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))


def test_binary_cross_entropy_devices(backend, no_launch):
    with _raises(ValueError, "binary_cross_entropy", "target", "device", "meta"):
        kernels.binary_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3, device=META))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_of_integers(backend, no_launch, op):
    with _raises(ValueError, op, "x", "floating-point", "torch.int64"):
        getattr(kernels, op)(torch.zeros(2, 3, dtype=torch.int64))


def test_layer_norm_arguments(backend, no_launch):
    with _raises(ValueError, "layer_norm", "gamma", "(3,)", "gamma.shape=(4,)"):
        kernels.layer_norm(torch.zeros(2, 3), torch.ones(4))
    with _raises(ValueError, "layer_norm", "x", "floating-point", "x.dtype=torch.int64"):
        kernels.layer_norm(torch.zeros(2, 3, dtype=torch.int64))
    with _raises(ValueError, "layer_norm", "beta", "x's device cpu", "beta.device=meta"):
        kernels.layer_norm(torch.zeros(2, 3), None, torch.zeros(3, device=META))
    with _raises(ValueError, "`epsilon`", "non-negative", "epsilon=-1"):
        kernels.layer_norm(torch.zeros(2, 3), epsilon=-1)
    with _raises(ValueError, "axis", "rank 2", "axis=2"):
        kernels.layer_norm(torch.zeros(2, 3), axis=2)


def test_dropout_arguments(backend, no_launch):
    with _raises(ValueError, "`rate`", "between 0 and 1", "rate=1.5"):
        kernels.dropout(torch.zeros(3), 1.5, 1)
    with _raises(ValueError, "dropout", "floating-point", "x.dtype=torch.int64"):
        kernels.dropout(torch.zeros(3, dtype=torch.int64), 0.5, 1)


def _adam(**over):
    bufs = dict(param=torch.zeros(8), grad=torch.zeros(8), m=torch.zeros(8), v=torch.zeros(8))
    kw = dict(step=1, lr=0.1)
    for k, v in over.items():
        (bufs if k in bufs else kw)[k] = v
    kernels.adam_(bufs.pop("param"), bufs.pop("grad"), bufs.pop("m"), bufs.pop("v"), **kw)


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        ({"grad": torch.zeros(7)}, ("adam_", "grad", "param's shape (8,)", "(7,)")),
        ({"v": torch.zeros(8, dtype=torch.float64)}, ("adam_", "v", "1-D float32", "torch.float64")),
        ({"grad": torch.zeros(16)[::2]}, ("adam_", "grad", "contiguous", "(8,)")),  # a stride-2 view
        ({"m": torch.zeros(2, 4)}, ("adam_", "m", "1-D", "(2, 4)")),
        ({"grad": torch.zeros(8, device=META)}, ("adam_", "grad", "on cpu", "on meta")),
    ],
)
def test_optimizer_update_buffers(backend, no_launch, bad, fragments):
    with _raises(ValueError, *fragments):
        _adam(**bad)


def test_optimizer_update_missing_state_and_unknown_rule(backend, no_launch):
    with _raises(ValueError, "sgd_", "momentum_buffer", "momentum_buffer=None"):
        kernels.sgd_(torch.zeros(8), torch.zeros(8), lr=0.1, momentum=0.9)
    with _raises(ValueError, "rule", "'adam'", "rule='adan'"):
        kernels.optimizer_update_("adan", torch.zeros(8), torch.zeros(8), lr=0.1)


def test_adam_step_must_be_positive(backend, no_launch):
    with _raises(ValueError, "adam_", "step", "1-based", "step=0"):
        _adam(step=0)


# ---- int64 offsets wherever an index can pass 2**31 ------------------------------------------------------------

# Exceptions, each with why it cannot overflow.
_BOUNDED = {
    ("_layer_norm_bwd_kernel", "pid * N"): "the (programs, N) partial sums: programs is a few hundred at most",
}


def _narrow_products(fn: ast.FunctionDef) -> list[str]:
    """Products of a 32-bit index derived from ``tl.program_id`` with a runtime size or stride (an element offset)
    or with the flat ``BLOCK``, that were not widened by ``.to(tl.int64)`` first. Code under ``if WIDE_INDEX:``'s
    ``else`` is skipped: the host sets WIDE_INDEX when the index can pass 2**31."""
    runtime = {a.arg for a in fn.args.args if a.annotation is None or "constexpr" not in ast.unparse(a.annotation)}

    def widened(node):
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "to"
            and bool(node.args)
            and ast.unparse(node.args[0]) == "tl.int64"
        )

    narrow: set[str] = set()

    def is_narrow(node) -> bool:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "program_id":
            return True
        if widened(node):
            return False
        if isinstance(node, ast.Name):
            return node.id in narrow
        if isinstance(node, ast.Subscript):
            return is_narrow(node.value)
        if isinstance(node, ast.BinOp):
            return is_narrow(node.left) or is_narrow(node.right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
            return any(is_narrow(a) for a in node.args)
        return False

    def scale(node) -> bool:
        return isinstance(node, ast.Name) and (node.id in runtime or node.id == "BLOCK")

    skipped: set[int] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "WIDE_INDEX":
            skipped |= {id(n) for stmt in node.orelse for n in ast.walk(stmt)}
    for _ in range(2):  # ast.walk is breadth-first, not source order: a second pass sees nested definitions
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if id(node) not in skipped and is_narrow(node.value):
                    narrow.add(node.targets[0].id)
    bad = []
    for node in ast.walk(fn):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and id(node) not in skipped:
            if (is_narrow(node.left) and scale(node.right)) or (is_narrow(node.right) and scale(node.left)):
                bad.append(ast.unparse(node))
    return sorted(set(bad))


def _jit_kernels() -> dict[str, ast.FunctionDef]:
    found = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "kernels", "*.py"))):
        tree = ast.parse(open(path).read())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any("jit" in ast.unparse(d) for d in node.decorator_list):
                found[node.name] = node
    return found


def _unbounded(name: str, fn: ast.FunctionDef) -> list[str]:
    return [p for p in _narrow_products(fn) if (name, p) not in _BOUNDED]


KERNELS = _jit_kernels()


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_offsets_are_int64_where_an_index_can_pass_2_31(name):
    assert _unbounded(name, KERNELS[name]) == []


def test_the_int64_offset_check_catches_a_32_bit_offset():
    """The checker itself: with every ``.to(tl.int64)`` removed, each row and flat kernel is flagged."""
    assert len(KERNELS) >= 8
    for name in ("_xent_fwd_kernel", "_softmax_fwd_kernel", "_bce_fwd_kernel", "_dropout_fwd_kernel",
                 "_layer_norm_fwd_kernel", "_optim_fwd_kernel", "_dense_fwd_kernel"):  # fmt: skip
        src = ast.unparse(KERNELS[name]).replace(".to(tl.int64)", "")
        assert _narrow_products(ast.parse(textwrap.dedent(src)).body[0]), name
