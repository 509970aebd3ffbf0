"""The statistics behind ``simdyn verify`` on synthetic inputs with known answers (fast, no JAX)."""

import math

import numpy as np
import pytest
from scipy import stats

from simdyn.verify.common import ClaimOutcome
from simdyn.verify.report import evaluate, format_table, to_json
from simdyn.verify.stats import (
    ALPHA,
    binomial_p_values,
    clopper_pearson,
    combine,
    fit_log_log,
    fraction_test,
    holm,
    slope_test,
    verdict,
)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 64), (64, 64), (1, 200)])
def test_clopper_pearson_matches_scipy_exact_interval(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    lo, hi = clopper_pearson(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-12)
    assert hi == pytest.approx(ci.high, abs=1e-12)


def test_binomial_p_values_are_the_one_sided_exact_tails():
    # P(X >= 60 | n=64, 0.9) and P(X <= 60 | n=64, 0.9), straight from the binomial pmf.
    pmf = stats.binom.pmf(np.arange(65), 64, 0.9)
    p_hold, p_fail = binomial_p_values(60, 64, 0.9)
    assert p_hold == pytest.approx(pmf[60:].sum(), rel=1e-9)
    assert p_fail == pytest.approx(pmf[:61].sum(), rel=1e-9)


def _fraction(k: int, n: int, threshold: float = 0.9):
    passed = np.arange(n) < k
    return fraction_test("t", passed, threshold, statistic="s", rule="r")


def test_fraction_verdicts_true_false_and_underpowered():
    # All 64 units pass: P(all pass | pi = 0.9) = 0.9^64 = 1.2e-3 < alpha -> holds.
    true_claim = _fraction(64, 64)
    assert true_claim.p_hold == pytest.approx(0.9**64)
    assert verdict(true_claim.p_hold, true_claim.p_fail) == "holds"
    # 30 of 64 pass: far below 0.9 -> fails.
    false_claim = _fraction(30, 64)
    assert verdict(false_claim.p_hold, false_claim.p_fail) == "fails"
    # 10 of 10 pass: 0.9^10 = 0.35, cannot distinguish 1.0 from 0.9 -> inconclusive.
    small = _fraction(10, 10)
    assert small.ci[0] < 0.9 < small.ci[1] or small.ci[1] == 1.0
    assert verdict(small.p_hold, small.p_fail) == "inconclusive"


def test_invalid_units_count_as_failures():
    passed = np.ones(40, bool)
    valid = np.ones(40, bool)
    valid[:8] = False  # 20% diverged or never crossed: failures, not exclusions
    t = fraction_test("t", passed, 0.9, statistic="s", rule="r", valid=valid)
    assert (t.n_units, t.n_excluded, t.estimate) == (40, 8, 0.8)
    # Dropping them would give 32/32 and p_hold = 0.9^32 = 0.034 < alpha: a false "holds".
    assert verdict(t.p_hold, t.p_fail) != "holds"
    assert t.p_hold > ALPHA


def test_scope_drops_units_without_counting_them_as_excluded():
    passed = np.array([True] * 10 + [False] * 10)
    scope = np.array([True] * 10 + [False] * 10)
    t = fraction_test("t", passed, 0.5, statistic="s", rule="r", scope=scope)
    assert (t.n_units, t.n_excluded, t.estimate) == (10, 0, 1.0)


def test_holm_on_known_p_values():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> cummax.
    adj = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    # 0.5 * 2 = 1.0; 0.9 * 1 = 0.9 is raised to 1.0 by the step-down monotonicity.
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.01, 0.2]), [0.02, 0.2])
    assert holm([]).size == 0


def test_combine_is_intersection_union_and_bonferroni():
    a, b = _fraction(64, 64), _fraction(30, 64)
    p_hold, p_fail = combine([a, b])
    assert p_hold == max(a.p_hold, b.p_hold)
    assert p_fail == pytest.approx(min(1.0, 2 * min(a.p_fail, b.p_fail)))


def _power_law(slope: float, noise: float, n_per_x: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)  # fixed key
    x = np.repeat(np.geomspace(1e-3, 1e-1, 5), n_per_x)
    y = 3.0 * x**slope * np.exp(noise * rng.standard_normal(x.size))
    return x, y


def test_slope_fit_recovers_an_exact_power_law():
    x = np.geomspace(1e-3, 1.0, 7)
    fit = fit_log_log(x, 2.5 * x**1.7)
    assert fit.slope == pytest.approx(1.7, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(2.5), abs=1e-12)
    lin = fit_log_log(x, 4.0 - 3.0 * np.log(x), log_y=False)
    assert lin.slope == pytest.approx(-3.0, abs=1e-12)


def test_slope_test_true_slope_in_and_out_of_the_interval():
    x, y = _power_law(1.0, noise=0.05)
    inside = slope_test("s", x, y, 0.9, 1.1, statistic="s", rule="r")
    assert inside.ci[0] < 1.0 < inside.ci[1]
    assert verdict(inside.p_hold, inside.p_fail) == "holds"
    x, y = _power_law(2.0, noise=0.05)
    outside = slope_test("s", x, y, 0.9, 1.1, statistic="s", rule="r")
    assert not outside.ci[0] < 1.0 < outside.ci[1]
    assert verdict(outside.p_hold, outside.p_fail) == "fails"
    # One-sided O(x) claim: slope >= 0.9 holds for the slope-2 law.
    assert slope_test("s", x, y, 0.9, math.inf, statistic="s", rule="r").p_hold < ALPHA


def test_slope_test_underpowered_is_inconclusive_and_bad_points_are_excluded():
    x, y = _power_law(1.0, noise=2.0, n_per_x=1, seed=1)
    noisy = slope_test("s", x, y, 0.9, 1.1, statistic="s", rule="r")
    assert verdict(noisy.p_hold, noisy.p_fail) == "inconclusive"
    y = y.copy()
    y[0] = 0.0  # log undefined: excluded, never averaged in
    t = slope_test("s", x, y, 0.9, 1.1, statistic="s", rule="r")
    assert t.n_excluded == 1


def _outcome(name: str, test, control) -> ClaimOutcome:
    return ClaimOutcome(name, "src", "design", (test,), (control,), "control")


def test_evaluate_holm_verdicts_and_loud_flag_for_a_control_that_does_not_fail():
    rows = evaluate(
        [
            _outcome("A", _fraction(64, 64), _fraction(0, 64)),
            _outcome("B", _fraction(20, 64), _fraction(0, 64)),
            _outcome("C", _fraction(64, 64), _fraction(64, 64)),  # control passes: bad
        ]
    )
    assert [r.verdict for r in rows] == ["holds", "fails", "holds"]
    assert [r.control_ok for r in rows] == [True, True, False]
    # One Holm family of the rows' 6 p-values (p_hold, p_fail of each): B's p_fail (~1e-20)
    # comes first (x6), then A's and C's p_hold tie at 0.9^64: A's is second -> multiplier 5.
    assert rows[0].p_hold_adj == pytest.approx(5 * 0.9**64)
    text = format_table(rows)
    assert "NEGATIVE CONTROL DID NOT FAIL for: C" in text
    payload = to_json(rows, {"scale": "test"})
    assert [r["verdict"] for r in payload["rows"]] == ["holds", "fails", "holds"]


def test_slope_se_is_robust_to_unequal_scatter():
    # Log-log data whose scatter grows tenfold along x: the classical SE, assuming one variance,
    # covers the true slope well below 95% of the time; the robust SE (HC3, never below the
    # classical one) keeps the 95% t-interval's coverage near 95%.
    from scipy import stats as sps

    from simdyn.verify.stats import fit_log_log

    rng = np.random.default_rng(7)
    x = np.repeat(np.exp(np.linspace(0, 3, 8)), 5)
    sd = np.linspace(0.02, 0.4, x.size) ** 1.5 * 2
    covered_robust = covered_classic = 0
    trials = 2000
    for _ in range(trials):
        y = np.exp(0.5 * np.log(x) + rng.normal(0, sd))
        fit = fit_log_log(x, y)
        lx = np.log(x)
        resid = np.log(y) - fit.intercept - fit.slope * lx
        classic = np.sqrt(resid @ resid / fit.dof / ((lx - lx.mean()) @ (lx - lx.mean())))
        assert fit.se >= classic - 1e-15
        t = sps.t.ppf(0.975, fit.dof)
        covered_robust += abs(fit.slope - 0.5) <= t * fit.se
        covered_classic += abs(fit.slope - 0.5) <= t * classic
    assert covered_classic / trials < 0.92
    assert covered_robust / trials > 0.93


def test_slope_power_after_holm_is_the_distance_failed_with_80_percent():
    # The stated reach at the Holm level: a slope that far outside [lo, hi] makes p_fail <= alpha
    # in ~80% of draws of the estimate.
    import re

    from simdyn.verify.stats import SlopeFit, slope_p_values, slope_test, with_power_after_holm

    x = np.exp(np.linspace(0, 2, 30))
    y = np.exp(1.0 * np.log(x) + np.random.default_rng(3).normal(0, 0.1, x.size))
    test = slope_test("s", x, y, 0.8, 1.2, statistic="s", rule="r")
    alpha = 0.05 / 40
    stated = with_power_after_holm(test, alpha)
    assert "80% power" in stated.power and stated.power != test.power
    reach = float(re.search(r"fails at a slope ([0-9.e-]+) outside", stated.power).group(1))
    se, dof = test.data["fit"]["se"], test.data["fit"]["dof"]
    draws = np.random.default_rng(4).normal(1.2 + reach, se, 4000)
    fails = [slope_p_values(SlopeFit(b, 0.0, se, dof), 0.8, 1.2)[1] <= alpha for b in draws]
    assert 0.75 < np.mean(fails) < 0.85
