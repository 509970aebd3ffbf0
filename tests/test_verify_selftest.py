"""The verifier as code: verdict logic on inputs with known answers, the broken simulators do
what they claim, and the self-test's notion of "caught".

Known answers are derived here by hand (binomial counts, exact combinatorics, synthetic data
generated from a known law), never copied from the code under test.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import simdyn
from simdyn.papers.which_features import cc_early, good_event, simulators
from simdyn.papers.which_features.runs import Runs
from simdyn.verify import report, selftest
from simdyn.verify.common import ClaimOutcome
from simdyn.verify.stats import (
    ALPHA,
    deterministic_test,
    fraction_power,
    fraction_test,
    mean_test,
    verdict,
)


def _row(name: str, k: int, n: int) -> ClaimOutcome:
    t = fraction_test("t", np.arange(n) < k, 0.9, statistic="s", rule="r")
    c = fraction_test("c", np.zeros(n, bool), 0.9, statistic="s", rule="r")
    return ClaimOutcome(name, "src", "design", (t,), (c,), "control")


# --- verdict logic ----------------------------------------------------------------------------


def test_near_miss_rate_is_rejected_at_thousands_of_units():
    # True pass rate 0.85 against the threshold 0.9: 850 of 1000 -> P(K <= 850 | 0.9) ~ 1e-7.
    t = fraction_test("t", np.arange(1000) < 850, 0.9, statistic="s", rule="r")
    assert verdict(t.p_hold, t.p_fail) == "fails"
    assert t.p_fail == pytest.approx(stats.binom.cdf(850, 1000, 0.9))


def test_fraction_power_matches_a_simulation_of_the_test():
    n, thr = 200, 0.9
    delta = fraction_power(n, thr)
    assert 0 < delta < thr
    # At the rate thr - delta, the exact one-sided test rejects H0: pi >= thr in ~80% of draws.
    rng = np.random.default_rng(0)
    k = rng.binomial(n, thr - delta, size=4000)
    rejected = stats.binom.cdf(k, n, thr) <= ALPHA
    assert abs(rejected.mean() - 0.8) < 0.03
    # More units detect smaller deviations; one unit can never reject (P(K = 0 | 0.9) = 0.1).
    assert fraction_power(2000, thr) < delta
    assert fraction_power(1, thr) == thr


def test_deterministic_rows_hold_only_within_tolerance_and_nan_fails():
    ok = deterministic_test("d", [1e-12, 3e-9], 1e-8, statistic="s", rule="r")
    bad = deterministic_test("d", [1e-12, 2e-8], 1e-8, statistic="s", rule="r")
    nan = deterministic_test("d", [1e-12, np.nan], 1e-8, statistic="s", rule="r")
    assert verdict(ok.p_hold, ok.p_fail) == "holds"
    assert verdict(bad.p_hold, bad.p_fail) == "fails"
    assert verdict(nan.p_hold, nan.p_fail) == "fails"


def test_a_control_that_passes_is_not_vouched_for_by_one_that_fails():
    good = fraction_test("c1", np.zeros(100, bool), 0.9, statistic="s", rule="r")
    passing = fraction_test("c2", np.ones(100, bool), 0.9, statistic="s", rule="r")
    t = fraction_test("t", np.ones(100, bool), 0.9, statistic="s", rule="r")
    (row,) = report.evaluate([ClaimOutcome("A", "s", "d", (t,), (good, passing), "c")])
    assert not row.control_ok


def test_mean_equivalence_holds_inside_and_rejects_a_near_miss():
    # 4000 accuracies of mean 1/2, sd 0.03 (the Def 4.1 probe's spread): se 4.7e-4.
    acc = 0.5 + 0.03 * np.random.default_rng(0).standard_normal(4000)
    inside = mean_test("m", acc, 0.48, 0.52, statistic="s", rule="r")
    near = mean_test("m", acc, 0.52, 0.56, statistic="s", rule="r")  # chance + 0.04 +- 0.02
    assert verdict(inside.p_hold, inside.p_fail) == "holds"
    assert verdict(near.p_hold, near.p_fail) == "fails"
    # TOST p-value by hand: the larger of the two one-sided t-test p-values.
    se = acc.std(ddof=1) / math.sqrt(acc.size)
    expect = max(
        stats.t.sf((acc.mean() - 0.48) / se, 3999), stats.t.sf((0.52 - acc.mean()) / se, 3999)
    )
    assert inside.p_hold == pytest.approx(expect)
    # Too few units to decide: mean 1/2 but se 0.022 > the 0.02 margin (t = 0.9, 3 dof).
    few = mean_test("m", [0.45, 0.55, 0.47, 0.53], 0.48, 0.52, statistic="s", rule="r")
    assert verdict(few.p_hold, few.p_fail) == "inconclusive"


@pytest.mark.parametrize("rate", [0.0015, 0.05, 0.6])
def test_event_instances_give_the_log_ratio_tost_its_power_after_holm(rate):
    # A rate equal to its prediction must hold its log-ratio TOST at alpha / H, the last Holm
    # rank, in ~80% of draws at the size event_instances derives, at a rare and a common rate;
    # at a quarter of that size it cannot.
    margin = math.log(1.25)
    n = good_event.event_instances(rate, margin, cap=10**7, floor=1, power=0.8)
    level = ALPHA / good_event.HOLM_FAMILY
    k = np.random.default_rng(1).binomial(n, rate, size=2000)
    p_hold = np.array([good_event.log_ratio_tost(int(x), n, rate, margin)[0] for x in k])
    assert 0.72 < (p_hold <= level).mean() < 0.9
    k4 = np.random.default_rng(2).binomial(n // 4, rate, size=2000)
    few = np.array([good_event.log_ratio_tost(int(x), n // 4, rate, margin)[0] for x in k4])
    assert (few <= level).mean() < 0.2


def test_a_capped_point_widens_its_margin_to_what_its_size_decides():
    rate, margin = 0.0015, math.log(1.25)
    n = good_event.event_instances(rate, margin, cap=20_000, floor=1, power=0.8)
    assert n == 20_000
    wide = good_event.point_log_margin(rate, n, margin, 0.8)
    assert wide > margin
    k = np.random.default_rng(3).binomial(n, rate, size=2000)
    p_hold = np.array([good_event.log_ratio_tost(int(x), n, rate, wide)[0] for x in k])
    assert (p_hold <= ALPHA / good_event.HOLM_FAMILY).mean() > 0.72


def test_a_rate_twenty_times_too_high_fails_at_the_rarest_full_point():
    # The referee's case: at q = 0.002 (rate ~0.0014) an absolute margin of +-0.07 let a rate
    # 20x too high hold. The log-ratio TOST at the full design's size rejects 2x (capped, its
    # margin is ratio ~1.27).
    design = good_event.DESIGNS["full"]
    (n_pts, d, _), size = good_event.points(design)[0], good_event._event_sizes(design)[0]
    truth = 1.0 - good_event.good_event_probability(design.m * n_pts, d, good_event.K)
    power = good_event.point_power(len(good_event.points(design)))
    margin = good_event.point_log_margin(truth, size, design.event_log_margin, power)
    for factor in (20.0, 2.0):
        k = np.random.default_rng(4).binomial(size, factor * truth, size=200)
        p_fail = np.array([good_event.log_ratio_tost(int(x), size, truth, margin)[1] for x in k])
        assert (p_fail <= ALPHA / good_event.HOLM_FAMILY).mean() > 0.95, factor


def test_a_control_placed_by_control_z_fails_with_99_percent_power():
    # The nearest a control is placed: its log ratio CONTROL_Z log-rate SEs beyond the margin.
    n, truth, margin = 20_000, 0.01, math.log(1.25)
    se = good_event.log_rate_se(truth, n)
    wrong = truth * math.exp(margin + good_event.CONTROL_Z * se)
    k = np.random.default_rng(2).binomial(n, truth, size=2000)
    p_fail = np.array([good_event.log_ratio_tost(int(x), n, wrong, margin)[1] for x in k])
    assert (p_fail <= ALPHA / 90).mean() >= 0.98


def test_dispersion_inflates_the_cloglog_se_only_for_overdispersed_points():
    q = np.array([0.01, 0.03, 0.1, 0.3, 1.0])
    n = np.full(5, 1000)
    exact = np.round(n * -np.expm1(-0.5 * q)).astype(int)
    _, _, se_fit = good_event.cloglog_fit(q, exact, n)
    scattered = exact * np.array([1, 3, 1, 3, 1])  # rates off the curve by factors of 3
    _, _, se_wide = good_event.cloglog_fit(q, scattered, n)
    rate = -np.expm1(-0.5 * q)
    assert good_event.dispersion(exact, n, rate) == 1.0
    assert good_event.dispersion(scattered, n, rate) > 5
    assert se_wide > 2 * se_fit


def test_scope_names_the_design_points_where_a_failing_row_holds():
    def point(label: str, k: int) -> object:
        return fraction_test(f"t[{label}]", np.arange(1000) < k, 0.9, statistic="s", rule="r")

    ctrl = fraction_test("c", np.zeros(1000, bool), 0.9, statistic="s", rule="r")
    tests = (point("beta=0.25", 600), point("beta=0.5", 905), point("beta=0.75", 1000))
    (row,) = report.evaluate([ClaimOutcome("A", "s", "d", tests, (ctrl,), "c")])
    assert row.verdict == "fails"
    assert row.scope == "holds at beta=0.75; fails at beta=0.25; undecided at beta=0.5"
    (whole,) = report.evaluate([_row("B", 1000, 1000)])
    assert whole.scope == "all points"


def test_self_test_counts_only_rows_that_fail():
    ref = report.evaluate([_row("A", 100, 100), _row("B", 100, 100), _row("C", 10, 100)])
    assert [r.verdict for r in ref] == ["holds", "holds", "fails"]
    broken = report.evaluate([_row("A", 50, 100), _row("B", 91, 100), _row("C", 10, 100)])
    caught, weak = selftest.compare(ref, broken)
    assert caught == ("A",)  # B only became inconclusive; C failed on the reference already
    assert weak == ("B",)


# --- the non-crossing path ---------------------------------------------------------------------


def _fake_runs(v2: np.ndarray) -> Runs:
    u, r = v2.shape
    align = np.zeros((u, r, 5))
    align[:, :, 2] = v2
    hp = simdyn.HyperParams(np.zeros(u), np.zeros(u), np.zeros(u))
    probe = np.ones((u, r))  # an accurate subclass probe at every step
    return Runs(align, np.zeros((u, r)), probe, np.zeros(u, bool), np.zeros((u, 0)),
                np.arange(r), np.arange(u), hp)  # fmt: skip


def test_units_that_never_cross_count_as_failures():
    design = cc_early.DESIGNS["small"]
    sig = np.repeat(design.sigma_0s, 20)
    steps = np.arange(60)
    rate = 0.3
    t_pred = np.ceil(-np.log(sig) / rate)  # any prediction: the crossing itself is at issue
    v2 = np.where(steps[None, :] >= t_pred[:, None], 0.3, 0.0)
    v2[:, :] = np.where(np.arange(sig.size)[:, None] % 2 == 0, 0.0, v2)  # half never cross
    tests = {t.name: t for t in cc_early._tests(design, _fake_runs(v2), sig, "GD", t_pred, rate)}
    time_t = tests["time"]
    assert time_t.n_units == sig.size and time_t.estimate == pytest.approx(0.5)
    assert verdict(time_t.p_hold, time_t.p_fail) == "fails"  # not "inconclusive"
    probe_t = tests["probe-at-t*"]  # accurate wherever measured, but half never reach t*
    assert probe_t.n_units == sig.size and probe_t.estimate == pytest.approx(0.5)
    assert verdict(probe_t.p_hold, probe_t.p_fail) == "fails"


def test_peak_rule_accepts_its_prediction_and_rejects_a_near_miss():
    """CC-early's peak sub-test on known answers: peaks at the prediction hold; the same peaks
    against a prediction 3% off (the 1.5 eta path's distance) fail; diverged units count."""
    rng = np.random.default_rng(5)
    units, steps = 400, 50
    predicted = 0.343 * (1 + 0.004 * rng.standard_normal(units))  # within the tolerance
    v2 = np.minimum(np.linspace(0, 1, steps)[None, :], 1.0) * predicted[:, None]
    runs = _fake_runs(v2)
    ok = cc_early._peak_test(runs, predicted, "GD", "peak", "x")
    assert ok.n_units == units and verdict(ok.p_hold, ok.p_fail) == "holds"
    near = cc_early._peak_test(runs, predicted * 1.03, "GD", "control:peak", "x")
    assert verdict(near.p_hold, near.p_fail) == "fails"
    diverged = runs._replace(diverged=np.arange(units) % 4 == 0)  # a quarter diverged
    bad = cc_early._peak_test(diverged, predicted, "GD", "peak", "x")
    assert bad.estimate == pytest.approx(0.75) and verdict(bad.p_hold, bad.p_fail) == "fails"


# --- GOOD-EVENT: exact formula and regression --------------------------------------------------


def test_good_event_probability_by_enumeration():
    # 3 draws on {1..6}, all distinct and > 2: 4 * 3 * 2 of 6^3 sequences.
    assert good_event_probability_exact(3, 6, 2) == pytest.approx(24 / 216)
    assert good_event.good_event_probability(3, 6, 2) == pytest.approx(24 / 216)
    assert good_event.good_event_probability(5, 6, 2) == 0.0  # only 4 admissible coordinates


def good_event_probability_exact(num: int, d: int, k: int) -> float:
    import itertools

    ok = sum(
        len(set(s)) == num and min(s) > k for s in itertools.product(range(1, d + 1), repeat=num)
    )
    return ok / d**num


def test_cloglog_fit_recovers_a_known_slope():
    q = np.array([0.02, 0.06, 0.2, 0.6, 2.0])
    n = np.full(5, 10**6)
    for slope in (1.0, 1.3):
        rate = -np.expm1(-0.4 * q**slope)
        _, b, se = good_event.cloglog_fit(q, np.round(rate * n), n)
        assert b == pytest.approx(slope, abs=5e-3) and se < 0.01


def _rate_tests(fails, bad, collide, p_bad):
    """The CC-minnorm rate row's tests and controls on synthetic units (one array set per tag)."""
    pts = [
        good_event._Point(b, c, f, b, c, f, b, c, f)
        for f, b, c in zip(fails, bad, collide, strict=True)
    ]
    qs = [0.01 * 3**i for i in range(len(fails))]
    draws = good_event._Draws(qs, list(p_bad), pts, list(bad))
    row = good_event._Conclusion("cc", "w").row("X rate", "src")
    design = good_event.Design(seeds=len(fails[0]))
    results = [t for rule in (*row.rules, *row.controls) for t in rule.apply(design, draws)]
    return {t.name: t for t in results}, qs


def test_rate_row_implication_and_its_near_miss_on_known_units():
    rng = np.random.default_rng(5)
    n, p_bad = 4000, [0.01, 0.03, 0.09, 0.27, 0.6]
    bad = [rng.random(n) < pb for pb in p_bad]
    # Feature hits: a third of the bad events; the conclusion fails on half of the bad events,
    # among them some feature-hit-only instances (so "distinct noise => conclusion" is false).
    hit_only = [b & (rng.random(n) < 1 / 3) for b in bad]
    collide = [b & ~h for b, h in zip(bad, hit_only, strict=True)]
    fails = [b & (rng.random(n) < 0.5) for b in bad]
    tests, qs = _rate_tests(fails, bad, collide, p_bad)
    assert tests["good-event-implies"].p_hold == 0.0  # no failure off the bad event: holds
    assert tests["control:distinct-noise-implies"].p_fail == 0.0  # fails, as it must
    # The slope uses only the points where the bad event is rare (formula <= RARE_EVENT).
    assert tests["slope"].data["q"] == qs[:4]
    # One failure on a good-event instance breaks the implication.
    broken = [f.copy() for f in fails]
    broken[0][np.flatnonzero(~bad[0])[0]] = True
    tests, _ = _rate_tests(broken, bad, collide, p_bad)
    implied = tests["good-event-implies"]
    assert implied.p_fail == 0.0 and implied.data["per_point"][0] == 1


# --- the broken simulators do what they claim ---------------------------------------------------


@pytest.fixture(scope="module")
def x64():
    simdyn.enable_x64()


def _config():
    return cc_early.config(cc_early.DESIGNS["small"])


@pytest.mark.slow  # ~25 s: two compilations of the full program
def test_step_fault_equals_the_reference_run_at_1_5_eta(x64):
    from simdyn.papers.which_features.runs import clear_memo, run

    cfg = _config().replace(steps=20)
    clear_memo()
    with simulators.use(simulators.by_name("step-x1.5")):
        broken = run(cfg, [0, 1], 2)
    ref = run(cfg, [0, 1], 2, lr=[1.5 * cfg.train.lr] * 2)
    np.testing.assert_array_equal(broken.alignment, ref.alignment)
    assert broken.hparams.lr[0] == pytest.approx(cfg.train.lr)  # what the verifier is told


@pytest.mark.slow
def test_grad_fault_is_inconsistent_with_its_loss_and_the_reference_is_not(x64):
    cfg = _config()
    ts = simdyn.seed_training_set(cfg, seed=0, key=2)
    ts = jax.tree.map(jnp.asarray, ts)
    theta = jax.random.normal(jax.random.key(0), (cfg.model.p, cfg.data.d + 1), jnp.float64)
    beta = jnp.asarray(1.0)
    for name, consistent in (("reference", True), ("grad-term-x1.1", False)):
        obj = simulators.by_name(name).objective
        from simdyn._src.train import full_objective

        def grads(theta, obj=obj):
            built = (obj or full_objective)(cfg, ts, beta)
            return built.loss_and_grad(theta)[1], jax.grad(built.loss)(theta)

        g, g_auto = jax.jit(grads)(theta)
        err = float(jnp.linalg.norm(g - g_auto) / jnp.linalg.norm(g_auto))
        assert (err < 1e-10) == consistent, (name, err)


def test_shared_noise_fault_repeats_one_noise_draw_per_original(x64):
    data = _config().data
    key = jax.random.key(0)
    good = simulators.REFERENCE.sample(key, data, jnp.float64)
    bad = simulators.by_name("data-shared-noise").sample(key, data, jnp.float64)
    idx_good, idx_bad = np.asarray(good.points.noise_idx), np.asarray(bad.points.noise_idx)
    assert (idx_good[:, 0] != idx_good[:, 1]).any()
    assert (idx_bad[:, 0] == idx_bad[:, 1]).all()


@pytest.mark.slow
def test_oracle_fault_ends_at_the_min_norm_minimizer(x64):
    from simdyn import theory
    from simdyn.papers.which_features.instances import (
        compressed_moments,
        instance,
        sample_instances,
    )
    from simdyn.papers.which_features.runs import clear_memo, run

    cfg = _config().replace(steps=5)
    clear_memo()
    with simulators.use(simulators.by_name("oracle-minimizer")):
        out = run(cfg, [3], 2)
    comp = compressed_moments(instance(sample_instances(cfg.data, [3], 2), 0), cfg.data.K)
    sol = theory.min_norm_minimizer(comp.m_plus, comp.m, cfg.model.p)
    want = np.linalg.norm(np.asarray(sol.factor)[:, : cfg.data.K + 1], axis=0)
    np.testing.assert_allclose(out.alignment[0, -1], want, atol=1e-12)
    assert not math.isclose(out.alignment[0, 0, 1], want[1])  # step 0 is still the init


def test_every_fault_has_a_name_and_a_description():
    names = [s.name for s in simulators.BROKEN]
    assert len(set(names)) == len(names) >= 6
    assert all(s.fault for s in simulators.BROKEN)


@pytest.mark.slow  # compile-heavy; CI runs the slow tier too
def test_event_flags_match_the_instances_the_closed_forms_see():
    # The event sets' jitted sampler and the eager sample_instances path draw the same instances.
    simdyn.enable_x64()
    from simdyn.papers.which_features.instances import sample_instances

    seeds = range(10**7, 10**7 + 300)
    fast = good_event._event_flags(8, 2, 600, seeds, 5)
    data = good_event._data(8, 2, 600, (1.0,) * good_event.K)
    slow = good_event._bad_event(sample_instances(data, list(seeds), 5))
    assert 0 < slow.sum() < slow.size
    np.testing.assert_array_equal(fast, slow)
