"""``keras.utils.Config`` against Keras: the same program of attribute and item access, freezing, popping and
serialization gives the same values, errors and text."""

from __future__ import annotations

from typing import Any

import tritonnn


def _program(K: Any) -> list[Any]:
    out: list[Any] = []

    def attempt(fn):
        try:
            out.append(fn())
        except (AttributeError, ValueError, KeyError) as e:
            out.append(f"{type(e).__name__}: {e}")

    c = K.utils.Config(learning_rate=0.1, momentum=0.9)
    c.use_ema = True
    c["seed"] = 123
    out += [c.learning_rate, c["seed"], c.use_ema, c.get("nope", 7), "seed" in c, len(c), list(c), list(c.keys())]
    out += [list(c.values()), list(c.items()), c.as_dict(), c.to_json(), repr(c), c.frozen]
    attempt(lambda: c.learning_rat)  # close to a key: Keras suggests it
    attempt(lambda: c.nothing_like_it)
    c.freeze()
    out.append(c.frozen)
    attempt(lambda: setattr(c, "x", 1))
    attempt(lambda: c.__setitem__("x", 1))
    attempt(lambda: c.pop("seed"))
    attempt(lambda: c.update(a=1))
    attempt(lambda: c.__delitem__("seed"))
    c.unfreeze()
    out += [c.pop("seed"), c.pop("gone", None)]
    c.update({"a": 1}, b=2)
    del c["a"]
    out += [c.as_dict(), sorted(c)]
    attempt(lambda: c["missing"])
    return out


def test_config_behaves_as_keras(keras_ref):
    assert _program(tritonnn) == _program(keras_ref)
