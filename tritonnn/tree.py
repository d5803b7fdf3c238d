"""Keras 3's ``keras.tree``: nested structures of lists, tuples, namedtuples and dicts, flattened, mapped and rebuilt.

The rules are Keras' (its optree-based implementation): ``None`` is a leaf, as are strings and every object that is
not a list, tuple, namedtuple or mapping; a ``dict`` (and a ``defaultdict``) is walked in sorted key order and
rebuilt with its keys sorted; an ``OrderedDict`` keeps its order; a namedtuple is walked by field.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any


class MAP_TO_NONE:  # noqa: N801 - Keras' name
    """Returned by a ``traverse`` function to put ``None`` in the result (``None`` itself means: go on)."""


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def is_nested(structure: Any) -> bool:
    """Whether ``structure`` is a list, tuple, namedtuple or dict (not a leaf)."""
    return isinstance(structure, (list, tuple, dict))


def _children(x: Any) -> tuple[list[Any], list[Any]]:
    """(children, their path entries) of a node."""
    if isinstance(x, collections.OrderedDict):
        keys = list(x)
    elif isinstance(x, dict):
        keys = sorted(x)
    elif _is_namedtuple(x):
        return list(x), list(range(len(x)))
    else:
        return list(x), list(range(len(x)))
    return [x[k] for k in keys], keys


def _rebuild(like: Any, children: list[Any], keep_order: bool = False) -> Any:
    """A node like ``like`` holding ``children`` (in walk order: a dict's sorted keys). A rebuilt dict has its keys
    sorted, or, with ``keep_order`` (``map_structure``, as Keras' does), in ``like``'s own order."""
    if isinstance(like, collections.OrderedDict):
        return type(like)(zip(list(like), children, strict=True))
    if isinstance(like, dict):
        by_key = dict(zip(sorted(like), children, strict=True))
        keys = list(like) if keep_order else sorted(like)
        if isinstance(like, collections.defaultdict):
            out: dict = collections.defaultdict(like.default_factory)
        else:
            out = type(like)()
        out.update((k, by_key[k]) for k in keys)
        return out
    if _is_namedtuple(like):
        return type(like)(*children)
    if isinstance(like, tuple):
        return tuple(children) if type(like) is tuple else type(like)(children)
    return type(like)(children) if type(like) is not list else list(children)


def _walk(x: Any, path: tuple, is_leaf: Callable[[Any], bool] | None) -> Iterator[tuple[tuple, Any]]:
    if (is_leaf is not None and is_leaf(x)) or not is_nested(x):
        yield path, x
        return
    children, keys = _children(x)
    for key, child in zip(keys, children, strict=True):
        yield from _walk(child, (*path, key), is_leaf)


def flatten(structure: Any) -> list[Any]:
    """The leaves, in order."""
    return [leaf for _, leaf in _walk(structure, (), None)]


def flatten_with_path(structure: Any) -> list[tuple[tuple, Any]]:
    """``(path, leaf)`` pairs; a path is the tuple of indices and keys from the root."""
    return list(_walk(structure, (), None))


def _same_structure(a: Any, b: Any) -> None:
    if not is_nested(a) and not is_nested(b):
        return
    if is_nested(a) != is_nested(b) or _kind(a) != _kind(b):
        raise ValueError("Structures don't have the same nested structure.")
    ca, ka = _children(a)
    cb, kb = _children(b)
    if ka != kb:
        raise ValueError("Structures don't have the same nested structure.")
    for x, y in zip(ca, cb, strict=True):
        _same_structure(x, y)


def _kind(x: Any) -> Any:
    if isinstance(x, dict):
        return "ordered" if isinstance(x, collections.OrderedDict) else "dict"
    return type(x)


def map_structure(func: Callable[..., Any], *structures: Any, none_is_leaf: bool = True) -> Any:
    """``func`` applied leaf by leaf over structures of the same shape, in the shape of the first."""
    if not structures:
        raise ValueError("Must provide at least one structure")

    def go(*nodes: Any) -> Any:
        # The first structure's shape decides: where it has a leaf, the others' values there (leaves or whole
        # sub-structures) are passed to func; where it nests, the others must nest alike.
        first = nodes[0]
        if first is None and not none_is_leaf:
            return None
        if not is_nested(first):
            return func(*nodes)
        keys = _children(first)[1]
        for other in nodes[1:]:
            if not is_nested(other) or _kind(other) != _kind(first) or _children(other)[1] != keys:
                raise ValueError("Structures don't have the same nested structure.")
        children = [_children(n)[0] for n in nodes]
        return _rebuild(first, [go(*group) for group in zip(*children, strict=True)], keep_order=True)

    return go(*structures)


def map_structure_up_to(shallow_structure: Any, func: Callable[..., Any], *structures: Any) -> Any:
    """``func`` applied to the sub-structures of ``structures`` at the leaves of ``shallow_structure``."""
    if not structures:
        raise ValueError("Must provide at least one structure")

    def go(shallow: Any, *nodes: Any) -> Any:
        if not is_nested(shallow):
            return func(*nodes)
        keys = _children(shallow)[1]
        for n in nodes:
            if not is_nested(n) or _children(n)[1] != keys:
                raise ValueError("Structures don't have the same nested structure.")
        children = [_children(n)[0] for n in nodes]
        return _rebuild(shallow, [go(s, *group) for s, *group in zip(_children(shallow)[0], *children, strict=True)])

    return go(shallow_structure, *structures)


def assert_same_structure(a: Any, b: Any) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` nest the same containers the same way."""
    _same_structure(a, b)


def assert_same_paths(a: Any, b: Any) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same set of leaf paths."""
    pa, pb = {p for p, _ in _walk(a, (), None)}, {p for p, _ in _walk(b, (), None)}
    if pa != pb:
        message = "`a` and `b` don't have the same paths."
        if pa - pb:
            message += f"\nPaths in `a` missing in `b`:\n{pa - pb}"
        if pb - pa:
            message += f"\nPaths in `b` missing in `a`:\n{pb - pa}"
        raise ValueError(message)


def pack_sequence_as(structure: Any, flat_sequence: Any) -> Any:
    """``flat_sequence``'s items put back in the shape of ``structure``."""
    items = list(flat_sequence)
    needed = len(flatten(structure))
    if len(items) != needed:
        raise ValueError(
            f"Expected {needed} leaves to fill the structure, but received {len(items)}: the flat sequence must have "
            "one item per leaf"
        )
    it = iter(items)

    def go(node: Any) -> Any:  # rebuilt with a dict's keys sorted, as Keras' unflatten does
        if not is_nested(node):
            return next(it)
        return _rebuild(node, [go(c) for c in _children(node)[0]])

    return go(structure)


def traverse(func: Callable[[Any], Any], structure: Any, top_down: bool = True) -> Any:
    """Visit every node (containers and leaves); a non-None result replaces that node (``MAP_TO_NONE``: None).
    Top-down, a replaced node's children are not visited."""

    def children_traversed(node: Any) -> Any:
        if not is_nested(node):
            return node
        return _rebuild(node, [traverse(func, c, top_down) for c in _children(node)[0]])

    if top_down:
        out = func(structure)
        if out is None:
            return children_traversed(structure)
    else:
        done = children_traversed(structure)
        out = func(done)
        if out is None:
            return done
    return None if out is MAP_TO_NONE else out


def lists_to_tuples(structure: Any) -> Any:
    """Every list in ``structure`` made a tuple."""
    return traverse(lambda x: tuple(x) if isinstance(x, list) else None, structure, top_down=False)


def map_shape_structure(func: Callable[[Any], Any], structure: Any) -> Any:
    """``func`` applied to every shape (a list or tuple of ints and Nones) in ``structure``."""

    def is_shape(x: Any) -> bool:
        return isinstance(x, (list, tuple)) and all(isinstance(e, (int, type(None))) for e in x)

    def go(node: Any) -> Any:
        if is_shape(node) or not is_nested(node):
            return func(node)
        return _rebuild(node, [go(c) for c in _children(node)[0]])

    return go(structure)
