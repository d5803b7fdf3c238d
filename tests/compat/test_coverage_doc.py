"""docs/keras_coverage.md is what tools/keras_coverage.py makes from the installed Keras and tritonnn (so the table
cannot claim a name tritonnn lacks), and the "not for MLPs" list names only things Keras has."""

from __future__ import annotations

import fnmatch
import importlib.util
from pathlib import Path

import pytest

import tritonnn

TOOL = Path(__file__).resolve().parents[2] / "tools" / "keras_coverage.py"


@pytest.fixture(scope="module")
def coverage():
    spec = importlib.util.spec_from_file_location("keras_coverage", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_doc_is_up_to_date(keras_ref, coverage):
    expected = coverage.render(keras_ref, tritonnn)
    current = coverage.DOC.read_text(encoding="utf-8") if coverage.DOC.exists() else ""
    assert current == expected, "docs/keras_coverage.md is out of date: run `python tools/keras_coverage.py`"


def test_every_not_for_mlps_entry_matches_a_keras_name_and_gives_a_reason(keras_ref, coverage):
    stale = []
    for module, entries in coverage.NOT_FOR_MLPS.items():
        assert module in coverage.MODULES
        names = [n for n in dir(coverage._module(keras_ref, module)) if not n.startswith("_")]
        for pattern, reason in entries.items():
            assert reason.strip(), f"{module}:{pattern} has no reason"
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                stale.append(f"{module or '<top>'}:{pattern}")
    assert not stale, f"NOT_FOR_MLPS entries that match no Keras name: {stale}"


def test_a_present_name_is_never_called_not_for_mlps(keras_ref, coverage):
    rows = {name: status for name, status, _ in coverage.table(keras_ref, tritonnn)}
    assert rows["keras.layers.GlobalAveragePooling1D"] == "✓"  # matched by "*Pool*", but tritonnn has it
    assert rows["keras.layers.Conv2D"] == "not for MLPs"
    assert rows["keras.constraints.max_norm"] == "✓" and rows["keras.regularizers.l2"] == "✓"
