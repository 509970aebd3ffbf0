"""REPR: every representation trains the same path; a fault inside one of them fails the row."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simdyn._src import simulation
from simdyn.objectives.structured import StructuredObjective
from simdyn.papers.which_features import representations as repr_claim
from simdyn.verify.claim import evaluate

KEY = 5  # a development key (the confirmatory keys are hash-derived and never used here)


@pytest.fixture()
def one_point():
    small = repr_claim.DESIGNS["small"]
    return dataclasses.replace(small, points=small.points[:1])  # scl-basis: all four apply


def _verdicts(design):
    simulation._train_fn.cache_clear()  # no program compiled before a fault was planted
    (row,) = evaluate(repr_claim.CLAIM, design, KEY)
    return row


@pytest.mark.slow  # CI's `simdyn verify --quick --expect` checks REPR holds
def test_clean_representations_agree_and_the_near_miss_is_rejected(one_point):
    row = _verdicts(one_point)
    tests = {t.name: t for t in row.tests}
    assert tests["same-trajectory[scl-basis]"].p_hold == 0.0
    assert tests["same-trajectory[scl-basis]"].estimate <= repr_claim.TOL
    assert all(t.p_hold == 0.0 for t in row.tests)
    assert all(t.p_fail == 0.0 for t in row.controls)  # every control fails
    assert set(tests["same-trajectory[scl-basis]"].data) >= {"structured", "dense", "sample"}


@pytest.mark.slow
def test_a_one_percent_fault_in_the_structured_gradient_fails_the_row(one_point, monkeypatch):
    clean = StructuredObjective.loss_and_grad

    def faulty(self, theta):
        loss, grad = clean(self, theta)
        return loss, grad * 1.01

    monkeypatch.setattr(StructuredObjective, "loss_and_grad", faulty)
    try:
        row = _verdicts(one_point)
    finally:
        simulation._train_fn.cache_clear()
    test = next(t for t in row.tests if t.name == "same-trajectory[scl-basis]")
    assert test.p_fail == 0.0 and test.estimate > repr_claim.TOL
    # the deviation is the structured form's alone
    assert np.max(test.data["structured"]) > repr_claim.TOL
    assert np.max(test.data["sample"]) <= repr_claim.TOL


def test_deviation_flags_non_finite_and_diverged_units():
    a = np.ones((2, 3, 4))
    loss = np.ones((2, 3))
    ok = np.zeros(2, bool)
    bad = a.copy()
    bad[1, 2, 0] = np.nan
    dev = repr_claim.deviation((bad, loss, ok), (a, loss, ok))
    assert dev[0] == 0.0 and dev[1] == np.inf
    dev = repr_claim.deviation((a, loss, np.array([False, True])), (a, loss, ok))
    assert dev[1] == np.inf
