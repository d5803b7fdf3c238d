"""The four guide programs of ``guides.py``, each run with real Keras and with tritonnn: their dicts must match.

A part of a program that raised shows up as that part's difference (the rest still runs and is compared). Values
come after tens of optimizer steps (RMSprop and Adam divide by running gradient norms, which grow fp32 rounding
differences between the frameworks' kernels), so they are compared with rtol 1e-3, atol 1e-4; keys, counts,
shapes, names and file names must be equal.
"""

from __future__ import annotations

import pytest

import tritonnn

from .compare import assert_same
from .differences import deliberate
from .guides import PROGRAMS

RTOL, ATOL = 1e-3, 1e-4

# Keras' History shows the validation state under the training key of a metric whose result() is its own variable
# (the guide's CategoricalTruePositives-style counter, and the confusion counts summed in the imbalanced guide).
ALIASED = deliberate("metrics.history-train-entry-aliases-validation")
SKIPPED = {
    "training_and_evaluation": {"metric_subclass.history.correct_count": ALIASED},
    "imbalanced_classification": {"train.train_counts_total": ALIASED},
}


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_guide(keras_ref, program):
    ref = PROGRAMS[program](keras_ref)
    got = PROGRAMS[program](tritonnn)
    assert_same(ref, got, rtol=RTOL, atol=ATOL, what=program, deliberate=SKIPPED.get(program))
