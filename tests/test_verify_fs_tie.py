"""FS-tie (Rem. 5.2's tie case): the closed form matches brute force on every instance, the tie
broken the other way fails, and a closed form without the tie-break fails the row."""

from __future__ import annotations

import numpy as np
import pytest

from simdyn import theory
from simdyn.papers.which_features import fs_tie
from simdyn.verify.claim import evaluate

KEY = 5  # a development key (the confirmatory keys are hash-derived and never used here)


def _row():
    (row,) = evaluate(fs_tie.CLAIM, fs_tie.DESIGNS["small"], KEY)
    return {t.name: t for t in row.tests}, {t.name: t for t in row.controls}


@pytest.mark.slow
def test_holds_on_every_instance_and_the_other_tie_break_fails():
    tests, controls = _row()
    assert len(tests) == 9 and len(controls) == 2
    for t in tests.values():
        assert t.kind == "exact" and t.failures == 0 and t.p_hold == 0.0, t.name
    for c in controls.values():
        assert c.p_fail == 0.0 and c.failures == fs_tie.DESIGNS["small"].seeds, c.name
    # v_1 wins the last slot at delta < 0 and is suppressed at delta > 0
    assert np.min(tests["tie-break[v1-wins]"].data["w1"]) > 1.0
    assert np.max(tests["tie-break[v3-wins]"].data["w1"]) < 1e-6


def test_brute_force_orders_the_two_candidates_by_their_m_eigenvalues():
    # a diagonal toy: colsp(M~) = everything, the p largest eigenvalues of M win
    m = np.diag([3.0, 2.0, 1.0 + 1e-6, 1.0])
    (best, second), norms, defect = fs_tie.brute_force(m, np.eye(4), 3)
    assert defect == 0.0
    assert np.allclose(np.diag(best), [1 / 3, 1 / 2, 1 / (1 + 1e-6), 0.0])
    assert np.allclose(np.diag(second), [1 / 3, 1 / 2, 0.0, 1.0])
    assert norms[0] < norms[1]


@pytest.mark.slow
def test_a_closed_form_without_the_tie_break_fails(monkeypatch):
    # tie_tol = 0: the tie across the p-th place goes unseen and an arbitrary basis of the
    # eigenvalue-1 space fills the slots
    right = theory.min_norm_minimizer

    def no_tie_break(P, Q, p, **kw):
        return right(P, Q, p, tie_tol=0.0)

    monkeypatch.setattr(theory, "min_norm_minimizer", no_tie_break)
    tests, _ = _row()
    assert tests["tie-break[v1-wins]"].p_fail == 0.0
    assert tests["tie-break[v3-wins]"].p_fail == 0.0
    assert tests["min-norm[tie]"].p_fail == 0.0


@pytest.mark.parametrize("delta", [-1e-6, 0.0, 1e-6])
def test_the_points_tie_phi_1_squared_with_phi_3_squared(delta):
    p1, p2, p3 = fs_tie.phi(delta)
    assert p3**2 == pytest.approx(p1**2 * (1 + delta), rel=1e-12)
    assert bool(theory.fs_dim_suppressed((p1, p2, p3), 3, 3)) is (delta > 0)
