"""``keras.tree`` against Keras: the same structures flattened, mapped, packed, traversed and compared give the
same results and the same errors."""

from __future__ import annotations

import collections
from typing import Any

import pytest

import tritonnn

Point = collections.namedtuple("Point", ["x", "y"])
STRUCTURES = {
    "leaf": 3,
    "none": None,
    "string": "abc",
    "list": [1, None, "s"],
    "tuple": (1, (2, 3)),
    "dict-unsorted": {"b": [1, (2, None)], "a": 3},
    "ordered": collections.OrderedDict([("z", 1), ("a", [2, 3])]),
    "defaultdict": collections.defaultdict(list, {"k": 1, "c": (2,)}),
    "namedtuple": Point(x=[1, 2], y={"q": 3}),
    "deep": [{"x": (1, [2, {"y": 3}])}, [], ()],
    "shapes": {"a": (None, 3), "b": [(2, 4), [5, None]]},
}


def _ops(K: Any, s: Any) -> list[Any]:
    t = K.tree
    out: list[Any] = [t.is_nested(s), t.flatten(s), t.flatten_with_path(s)]
    out.append(t.map_structure(lambda v: ("leaf", v), s))
    n = len(t.flatten(s))
    out.append(t.pack_sequence_as(s, list(range(n))))
    out.append(t.lists_to_tuples(s))
    out.append(t.traverse(lambda v: None, s))
    out.append(t.traverse(lambda v: t.MAP_TO_NONE if v == 3 else None, s))
    out.append(t.traverse(lambda v: "cut" if isinstance(v, list) else None, s, top_down=True))
    out.append(t.traverse(lambda v: len(v) if isinstance(v, tuple) else None, s, top_down=False))
    out.append(t.map_shape_structure(lambda v: ("shape", v), s))
    return out


def _typed(x: Any) -> Any:
    """A value with its container types spelled out (== alone does not tell a list from a tuple, an OrderedDict
    from a dict, or a dict's key order)."""
    if isinstance(x, dict):
        return (type(x).__name__, [(k, _typed(v)) for k, v in x.items()])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_typed(v) for v in x])
    return x


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_tree_ops_match_keras(keras_ref, name):
    s = STRUCTURES[name]
    assert _typed(_ops(tritonnn, s)) == _typed(_ops(keras_ref, s))


def test_two_structures_and_errors_match_keras(keras_ref):
    a, b = {"p": [1, 2], "q": (3,)}, {"q": (30,), "p": [10, 20]}
    outcomes = []
    for K in (keras_ref, tritonnn):
        t = K.tree
        got = [_typed(t.map_structure(lambda u, v: u + v, a, b)), t.assert_same_structure(a, b)]
        got.append(_typed(t.map_structure_up_to({"p": None, "q": None}, lambda v: len(v), a)))
        got.append(_typed(t.map_structure(lambda u, v: (u, v), [1, 2], [1, [2]])))  # the first's leaves decide
        for args in (
            ("map_structure", lambda u, v: u, [1, [2]], [1, 2]),
            ("map_structure", lambda u, v: u, [1, 2], [1, 2, 3]),
            ("map_structure", lambda u, v: u, [1, 2], (1, 2)),
            ("assert_same_structure", [1, 2], (1, 2)),
            ("assert_same_structure", {"a": 1}, {"b": 1}),
            ("assert_same_paths", {"a": 1}, {"b": 1}),
            ("map_structure", lambda v: v),
        ):
            try:
                getattr(t, args[0])(*args[1:])
                got.append("ok")
            except (ValueError, TypeError) as e:
                got.append(type(e).__name__)
        t.assert_same_paths([1, (2, 3)], (4, [5, 6]))
        outcomes.append(got)
    assert outcomes[1] == outcomes[0]
