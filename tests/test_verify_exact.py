"""Exact statements are checked on every instance: the zero-failure rule, its derived round-off
tolerances, the exclusion cap, power after Holm, and the ``corrupt-2%`` broken simulator that a
pass-fraction rule would let through.

Known answers come from hand counts, exact binomial tails and independent computations (numpy
eigenvalues of a sampled instance, the loss evaluated directly), never from the code under test.
"""

import dataclasses

import numpy as np
import pytest
from scipy import stats

from simdyn import theory
from simdyn.papers.which_features import common, simulators
from simdyn.papers.which_features.instances import compressed_moments, instance, sample_instances
from simdyn.papers.which_features.runs import clear_memo
from simdyn.verify import report
from simdyn.verify.blas import blas_threads
from simdyn.verify.claim import evaluate
from simdyn.verify.common import ClaimOutcome
from simdyn.verify.registry import declaration
from simdyn.verify.stats import (
    ALPHA,
    MAX_DIVERGED_FRACTION,
    exact_test,
    fraction_power,
    fraction_test,
    roundoff_tolerance,
    slope_test,
    verdict,
)

# --- the zero-failure rule ---------------------------------------------------------------------


def _exact(failing: int, n: int = 50, **kw):
    return exact_test("t", np.arange(n) >= failing, statistic="s", rule="r", **kw)


def test_one_failing_instance_in_fifty_fails_an_exact_test_but_not_a_fraction_test():
    t = _exact(1)
    assert (t.failures, t.n_units, t.kind) == (1, 50, "exact")
    assert t.data["failing_units"] == [0]
    assert verdict(t.p_hold, t.p_fail) == "fails"
    none = _exact(0)
    assert none.failures == 0 and verdict(none.p_hold, none.p_fail) == "holds"
    # The old rule on the same units: 49 of 50 against P(pass) > 0.9 holds, since
    # P(X >= 49 | 50, 0.9) = 0.9^50 + 50 * 0.1 * 0.9^49 = 0.034 < alpha.
    old = fraction_test("t", np.arange(50) >= 1, 0.9, statistic="s", rule="r")
    assert old.p_hold == pytest.approx(0.9**50 + 50 * 0.1 * 0.9**49, rel=1e-9)
    assert verdict(old.p_hold, old.p_fail) == "holds"


def test_invalid_units_fail_an_exact_test_and_an_empty_one_does_not_hold():
    valid = np.ones(50, bool)
    valid[7] = False  # diverged: a failure, not an exclusion that lets the rest speak
    t = _exact(0, valid=valid)
    assert (t.failures, t.n_excluded, t.data["failing_units"]) == (1, 1, [7])
    assert verdict(t.p_hold, t.p_fail) == "fails"
    empty = _exact(0, scope=np.zeros(50, bool))
    assert empty.n_units == 0 and verdict(empty.p_hold, empty.p_fail) != "holds"


def test_report_counts_failures_of_exact_rows():
    row = ClaimOutcome("X", "src", "design", (_exact(2),), (_exact(50),), "control")
    (r,) = report.evaluate([row])
    assert r.verdict == "fails" and r.control_ok
    assert "2 of 50 fail" in report.format_table([r])


# --- derived round-off tolerances --------------------------------------------------------------


def test_roundoff_tolerance_is_safety_times_dim_eps_cond():
    eps = np.finfo(np.float64).eps
    assert roundoff_tolerance(52, 120.0) == pytest.approx(100 * 52 * eps * 120)
    with pytest.raises(ValueError):
        roundoff_tolerance(0, 10.0)
    with pytest.raises(ValueError):
        roundoff_tolerance(5, 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("mu,sampling", [(0.0, "balanced"), (1.0, "balanced"), (0.0, "iid")])
def test_good_event_cond_bounds_the_condition_number_of_sampled_instances(mu, sampling):
    phi = (0.8, 1.0, 1.2, 0.7)
    data = common.good_event_data(16, 2, 400, phi, 1.0, mu=mu, sampling=sampling)
    bound = common.good_event_cond(phi, 1.0, 2, 16, mu)
    sets = sample_instances(data, [0, 1, 2], key=5)
    for u in range(3):
        c = compressed_moments(instance(sets, u), len(phi))
        lam = np.linalg.eigvalsh(c.m)
        nonzero = lam[lam > 1e-12 * lam.max()]
        assert nonzero.max() / nonzero.min() <= bound
        # ... and the smallest non-zero eigenvalue is the noise level s, so the bound is tight
        # up to the trace-vs-largest-eigenvalue factor (< 5 here).
        assert nonzero.min() == pytest.approx(1.0 / 32, rel=1e-9)
        assert bound < 5 * nonzero.max() / nonzero.min()


# --- exclusion cap and power after Holm -------------------------------------------------------


def test_verdict_is_inconclusive_above_the_exclusion_cap():
    assert verdict(0.0, 1.0, MAX_DIVERGED_FRACTION) == "holds"
    assert verdict(0.0, 1.0, MAX_DIVERGED_FRACTION + 0.01) == "inconclusive"
    assert verdict(1.0, 0.0, 0.5) == "inconclusive"


def _slope(dropped: int, n: int = 40):
    """A slope test of an exact law y = x (slope 1, inside [0.9, 1.1]) on n points, the first
    ``dropped`` of them invalid (dropped from the fit)."""
    x = np.geomspace(0.01, 1.0, n)
    y = x * (1 + 0.01 * np.cos(np.arange(n)))
    valid = np.arange(n) >= dropped
    return slope_test("s", x, y, 0.9, 1.1, statistic="s", rule="r", valid=valid)


def test_the_cap_limits_units_dropped_from_a_slope_not_failures_counted_by_a_fraction():
    few, many = _slope(4), _slope(5)  # 4 of 40 = 10% (at the cap), 5 of 40 = 12.5% (over it)
    assert verdict(few.p_hold, few.p_fail, few.dropped_fraction) == "holds"
    assert verdict(many.p_hold, many.p_fail) == "holds"  # the fit alone would hold ...
    assert verdict(many.p_hold, many.p_fail, many.dropped_fraction) == "inconclusive"  # ... capped
    # A fraction test drops nothing: 20% diverged units are failures, and they can make it fail.
    valid = np.arange(100) >= 20
    t = fraction_test("t", np.ones(100, bool), 0.9, statistic="s", rule="r", valid=valid)
    assert t.dropped_fraction == 0.0 and t.excluded_fraction == pytest.approx(0.2)
    assert verdict(t.p_hold, t.p_fail, t.dropped_fraction) == "fails"


def test_a_capped_sub_test_blocks_holds_but_another_sub_test_still_fails_the_row():
    capped_only = ClaimOutcome("X", "s", "d", (_slope(5),), (_exact(50),), "c")
    with_failure = ClaimOutcome("Y", "s", "d", (_slope(5), _exact(1)), (_exact(50),), "c")
    clean = ClaimOutcome("Z", "s", "d", (_slope(4), _exact(0)), (_exact(50),), "c")
    rows = report.evaluate([capped_only, with_failure, clean])
    assert [r.verdict for r in rows] == ["inconclusive", "fails", "holds"]
    assert rows[0].sub_verdicts == ("inconclusive",)


def test_power_is_stated_at_the_worst_case_holm_level():
    # Two rows (a Holm family of 4 p-values), the first with 2 sub-tests: its fraction tests
    # face alpha / (2 * 4) in the worst case.
    t1 = fraction_test("a", np.ones(1000, bool), 0.9, statistic="s", rule="r")
    t2 = fraction_test("b", np.ones(1000, bool), 0.9, statistic="s", rule="r")
    rows = report.evaluate(
        [
            ClaimOutcome("X", "s", "d", (t1, t2), (), "c"),
            ClaimOutcome("Y", "s", "d", (_exact(0),), (), "c"),
        ]
    )
    level = ALPHA / 8
    # Independent computation: the largest rejecting count at that level, then the pass rate
    # at which P(K <= k_c) = 0.8.
    k = np.arange(1001)
    k_c = int(k[stats.binom.cdf(k, 1000, 0.9) <= level].max())
    lo, hi = 0.5, 0.9
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if stats.binom.cdf(k_c, 1000, mid) >= 0.8 else (lo, mid)
    assert rows[0].outcome.tests[0].power == (
        f"fails at P(pass) <= {lo:.3g} (80% power at alpha {level:.2g})"
    )
    # Stricter than the unadjusted figure.
    assert 0.9 - fraction_power(1000, 0.9, level) < 0.9 - fraction_power(1000, 0.9, ALPHA)


# --- the corrupt-2% simulator ------------------------------------------------------------------


def test_corrupt_seeds_are_one_in_every_fifty_consecutive():
    sim = simulators.by_name("corrupt-2%")
    for start in (0, 13, 977):
        assert sim.corrupted(range(start, start + 50)).sum() == 1
    assert sim.corrupted(range(1000)).mean() == pytest.approx(0.02)
    assert not simulators.REFERENCE.corrupted(range(100)).any()


@pytest.mark.slow
def test_corrupt_instances_scale_noise_of_the_chosen_seeds_only():
    data = common.good_event_data(8, 2, 200, (1.0, 1.0, 1.0), 1.0)
    seeds = list(range(20, 30))
    ref = sample_instances(data, seeds, key=1)
    with simulators.use(simulators.by_name("corrupt-2%")):
        bad = sample_instances(data, seeds, key=1)
    hit = seeds.index(25)
    for u in range(len(seeds)):
        factor = 1 / 3 if u == hit else 1.0
        np.testing.assert_array_equal(bad.points.noise_val[u], ref.points.noise_val[u] * factor)
        np.testing.assert_array_equal(bad.points.features[u], ref.points.features[u])


@pytest.mark.slow
def test_corrupted_endpoint_loss_is_the_loss_of_the_scaled_minimizer():
    data = common.good_event_data(8, 2, 200, (1.0, 1.0, 1.0), 1.0)
    c = compressed_moments(instance(sample_instances(data, [0], key=2), 0), 3)
    theta = theory.min_norm_minimizer(c.m_plus, c.m, 3).factor
    loss = float(theory.loss_value(theta, c.m_plus, c.m))
    scaled = float(theory.loss_value(1.1 * theta, c.m_plus, c.m))
    align = np.ones((2, 3, 4))
    losses = np.full((2, 3), loss)
    a, l_out, t = simulators.corrupt_endpoints(
        align, losses, np.stack([theta, theta]), np.array([False, True])
    )
    assert l_out[1, -1] == pytest.approx(scaled, rel=1e-9)
    assert l_out[0, -1] == loss and np.all(l_out[:, :-1] == loss)
    np.testing.assert_allclose(a[1, -1], 1.1)
    np.testing.assert_allclose(t[1], 1.1 * theta)
    np.testing.assert_array_equal(t[0], theta)


def _exact_designs() -> dict[str, tuple]:
    """The exact rows at the smallest sizes with >= 50 instances each: (claim, design)."""
    cm = declaration("CC-minnorm").designs["small"]
    ce = declaration("CC-exists").designs["small"]
    fs = dataclasses.replace(declaration("FS-dim").designs["small"], seeds=13)  # 4 x 13 = 52
    jt = dataclasses.replace(declaration("JOINT").designs["small"], seeds=17)  # 3 x 17 = 51
    ct = dataclasses.replace(declaration("CC-train").designs["small"], seeds=50)

    def only_first_row(claim_id: str):
        claim = declaration(claim_id)
        return dataclasses.replace(claim, rows=claim.rows[:1])

    ml = declaration("MINLOSS")
    return {
        "CC-minnorm": (
            declaration("CC-minnorm"),
            dataclasses.replace(cm, sizes=(16, 32), mus=(0.0, 0.5), seeds=50),
        ),
        "CC-exists": (
            only_first_row("CC-exists"),
            dataclasses.replace(ce, sizes=(16, 32), seeds=25),
        ),
        "FS-dim": (only_first_row("FS-dim"), fs),
        "FS-aug": (
            declaration("FS-aug"),
            dataclasses.replace(declaration("FS-aug").designs["small"], seeds=50),
        ),
        "JOINT": (only_first_row("JOINT"), jt),
        "CC-train": (declaration("CC-train"), ct),
        "MINLOSS": (
            ml,
            dataclasses.replace(ml.designs["small"], cc_train=ct, fs_dim=fs, joint=jt),
        ),
    }


EXACT_KINDS = ("exact", "deterministic")
CLOSED_FORM_CLAIMS = ("CC-minnorm", "CC-exists", "FS-dim", "FS-aug", "JOINT")
GD_CLAIMS = ("CC-train", "MINLOSS")


def _rows(claim_id: str, sim: simulators.Simulator) -> list[report.RowResult]:
    claim, design = _exact_designs()[claim_id]
    clear_memo()
    with simulators.use(sim), blas_threads(1):
        rows = report.evaluate(evaluate(claim, design, 3))
    clear_memo()
    return rows


def _assert_exact_rows_caught(claim_id: str) -> None:
    rows = _rows(claim_id, simulators.by_name("corrupt-2%"))
    exact_rows = [r for r in rows if any(t.kind == "exact" for t in r.outcome.tests)]
    assert exact_rows, claim_id
    for r in exact_rows:
        # The row covers >= 50 instances (its widest exact sub-test sees all of them).
        assert max(t.n_units for t in r.outcome.tests if t.kind == "exact") >= 50
        failing = [t for t in r.outcome.tests if t.kind in EXACT_KINDS and t.failures]
        assert failing, f"{r.outcome.claim}: no exact sub-test saw the corrupted seed"
        # One corrupted seed per 50: a handful of failing instances, never most of them.
        assert all(t.failures <= 0.1 * t.n_units + 1 for t in failing)
        assert r.verdict == "fails", r.outcome.claim


@pytest.mark.slow  # compile-heavy (a claim's design under a fault); CI runs the slow tier too
@pytest.mark.parametrize("claim_id", CLOSED_FORM_CLAIMS)
def test_each_exact_closed_form_row_fails_under_two_percent_corruption(claim_id):
    _assert_exact_rows_caught(claim_id)


@pytest.mark.slow
@pytest.mark.parametrize("claim_id", GD_CLAIMS)
def test_each_exact_gd_row_fails_under_two_percent_corruption(claim_id):
    _assert_exact_rows_caught(claim_id)


@pytest.mark.slow
@pytest.mark.parametrize("claim_id", CLOSED_FORM_CLAIMS + GD_CLAIMS)
def test_exact_rows_have_zero_failures_under_the_reference(claim_id):
    for r in _rows(claim_id, simulators.REFERENCE):
        for t in r.outcome.tests:
            if t.kind in EXACT_KINDS:
                assert t.failures == 0, (r.outcome.claim, t.name)


def test_each_paper_is_its_own_holm_family():
    # Rows of two papers evaluated together must get exactly the verdicts and adjusted p-values
    # each paper gets alone (a paper's report must not depend on what ran beside it), while
    # rows of one paper share the family: adding rows to it moves its adjusted p-values.
    def row(name: str, passing: int, paper: str) -> ClaimOutcome:
        # A fraction test (P(pass) > 0.9) with p-values strictly between 0 and 1.
        t = fraction_test("t", np.arange(60) < passing, 0.9, statistic="s", rule="r")
        outcome = ClaimOutcome(name, "s", "d", (t,), (_exact(50),), "c")
        return dataclasses.replace(outcome, paper=paper)

    first = [row(f"A{i}", 58 + i % 2, "first") for i in range(3)]
    second = [row(f"B{i}", 57 + i % 3, "second") for i in range(4)]
    assert 0 < first[0].tests[0].p_hold < 1
    mixed = [first[0], second[0], first[1], second[1], second[2], first[2], second[3]]
    together = {r.outcome.claim: r for r in report.evaluate(mixed)}
    assert [r.outcome.claim for r in report.evaluate(mixed)] == [o.claim for o in mixed]
    for alone in (report.evaluate(first), report.evaluate(second)):
        for r in alone:
            t = together[r.outcome.claim]
            assert (t.verdict, t.p_hold_adj, t.p_fail_adj, t.control_p_fail_adj) == (
                r.verdict,
                r.p_hold_adj,
                r.p_fail_adj,
                r.control_p_fail_adj,
            )
    pooled = report.evaluate([dataclasses.replace(o, paper="first") for o in mixed])
    assert pooled[0].p_hold_adj > together["A0"].p_hold_adj  # one family: more tests, larger
