"""``docs/keras_differences.md`` and the suite agree: every id the document lists is used by a comparison here,
every id a comparison names is listed (``differences.deliberate`` fails otherwise), and the parser reads the table.
Also: importing and running real Keras leaves torch's process-wide state as the rest of the suite expects.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from .conftest import restore_rng_state, restore_torch_global_state, rng_state, torch_global_state
from .differences import DELIBERATE, parse

HERE = Path(__file__).resolve().parent


def ids_named_by_the_suite() -> set[str]:
    """The ids passed as string literals to ``deliberate(...)`` / ``differences.deliberate(...)`` in this folder."""
    names: set[str] = set()
    for path in HERE.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        # An alias would hide its calls from this search (and make a used id look unused).
        assert not re.search(r"import\s+deliberate\s+as\b", text), f"{path.name}: import deliberate under its name"
        names |= set(re.findall(r"""deliberate\(\s*["']([^"']+)["']\s*\)""", text))
    return names


def test_every_listed_difference_is_used_and_every_used_one_is_listed():
    used = ids_named_by_the_suite()
    assert used, "no comparison names a deliberate difference: the search above is broken"
    assert sorted(set(DELIBERATE) - used) == [], "listed in docs/keras_differences.md but used by no comparison"
    assert sorted(used - set(DELIBERATE)) == [], "named by a comparison but not listed in docs/keras_differences.md"


def test_the_table_parser():
    text = "| id | what | why |\n| --- | --- | --- |\n| `a.b-c` | Keras x | tritonnn y |\n| not an id | x | y |\n"
    assert parse(text) == {"a.b-c": "Keras x | tritonnn y"}
    try:
        parse(text + "| `a.b-c` | again | twice |\n")
    except ValueError as e:
        assert "twice" in str(e)
    else:
        raise AssertionError("an id listed twice must be refused")


def test_keras_leaves_torch_global_state_alone(keras_ref):
    """What Keras changes in torch's global state while it trains (the RNG, at least) is put back by the helper the
    fixtures use, and nothing else is left changed."""
    before, rngs = torch_global_state(), rng_state()
    model = keras_ref.Sequential([keras_ref.Input((3,)), keras_ref.layers.Dense(2), keras_ref.layers.Dropout(0.5)])
    model.compile("adam", "mse")
    model.fit(np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"), epochs=1, verbose=0)
    keras_ref.utils.set_random_seed(123)
    restore_torch_global_state(before)
    restore_rng_state(rngs)
    assert torch_global_state() == before
    assert torch.equal(torch.get_rng_state(), rngs["torch"])
