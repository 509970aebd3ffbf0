"""FIG6 (Fig. 6's term ratio): holds on the reference, its controls fail, and planted faults
(a wrong closed form, a 10% error in the gradient's quartic term, a sqrt(d) init scale, the
2% corruption) fail it."""

from __future__ import annotations

import numpy as np
import pytest

from simdyn import theory
from simdyn.papers.which_features import fig6, simulators
from simdyn.verify.claim import evaluate
from simdyn.verify.stats import ALPHA

KEY = 5  # a development key (the confirmatory keys are hash-derived and never used here)


def _row(sim=simulators.REFERENCE):
    with simulators.use(sim):
        (row,) = evaluate(fig6.CLAIM, fig6.DESIGNS["small"], KEY)
    return {t.name: t for t in row.tests}, {t.name: t for t in row.controls}


@pytest.fixture(scope="module")
def reference():
    return _row()


@pytest.mark.slow  # CI's `simdyn verify --quick --expect` checks the row and its controls
def test_holds_on_the_reference_and_every_control_fails(reference):
    tests, controls = reference
    assert set(tests) == {
        "ratio-at-min-norm",
        "ratio-at-gd-endpoint",
        "init-ratio-scale",
        "init-ratio-sigma0-squared",
        "v2-peak-while-falling",
    }
    for t in tests.values():
        assert t.p_hold <= ALPHA and t.p_fail > ALPHA, t.name
    for c in controls.values():
        assert c.p_fail <= ALPHA, c.name
    assert tests["ratio-at-min-norm"].failures == 0
    assert tests["ratio-at-gd-endpoint"].failures == 0


@pytest.mark.slow
def test_a_wrong_closed_form_fails_the_stationarity_rule(monkeypatch):
    # The min-norm factor 1% too large (r = 1/1.01^2 there): not a stationary point.
    right = theory.min_norm_minimizer

    def wrong(P, Q, p, **kw):
        sol = right(P, Q, p, **kw)
        return sol._replace(factor=1.01 * sol.factor)

    monkeypatch.setattr(theory, "min_norm_minimizer", wrong)
    tests, _ = _row()
    assert tests["ratio-at-min-norm"].p_fail == 0.0
    assert tests["ratio-at-min-norm"].failures == fig6.DESIGNS["small"].seeds


@pytest.mark.slow
def test_a_ten_percent_error_in_the_quartic_gradient_term_fails_the_endpoint_rule():
    # GD then stops where term1 = 1.1 x term2: r_T = 1.1, far outside the relaxation bound.
    tests, _ = _row(simulators.by_name("grad-term-x1.1"))
    endpoint = tests["ratio-at-gd-endpoint"]
    assert endpoint.p_fail == 0.0
    assert np.allclose(endpoint.data["r_minus_1"], 0.1, atol=1e-3)


@pytest.mark.slow
def test_an_init_scale_fault_and_the_two_percent_corruption_fail_the_row():
    tests, _ = _row(simulators.by_name("init-x-sqrt-d"))
    assert tests["init-ratio-scale"].p_fail <= ALPHA  # r_0 sigma_0^2 is d = 120 times smaller
    tests, _ = _row(simulators.by_name("corrupt-2%"))
    endpoint = tests["ratio-at-gd-endpoint"]
    assert endpoint.p_fail == 0.0
    corrupted = simulators.by_name("corrupt-2%").corrupted(range(fig6.DESIGNS["small"].seeds))
    assert endpoint.failures == 2 * int(corrupted.sum())  # each seed runs at both sigma_0
