"""Shared statistics of ``simdyn verify``: exact binomial tests, scaling-law slopes, Holm, verdicts.

Every sub-test of a claim reduces to one of three pre-registered forms:

* an EXACT test (:func:`exact_test`, :func:`deterministic_test`), for a statement that is exact
  on its event (a closed form, a construction, a minimizer, a GD endpoint against a derived
  bound): checked on every instance, it holds only with ZERO failing instances and reports the
  failure count. No p-value is involved (p_hold 0 or 1). Its round-off tolerances come from
  :func:`roundoff_tolerance`.
* a FRACTION test, only for a statement that is itself probabilistic (a probe on random test
  points, GD from a random init against an approximate model, SGD): each independent unit (one
  seed of one design point) passes or not; the claim holds if the pass probability pi exceeds
  ``threshold``. p_hold is the exact one-sided binomial
  p-value of H0: pi <= threshold, p_fail that of H0: pi >= threshold (scipy ``binomtest``); the
  reported interval is the exact two-sided Clopper-Pearson interval.
* a SLOPE test: a scaling law log y = a + b log x fitted by least squares over all units; the claim
  holds if b lies in [lo, hi]. Its standard error is robust (the larger of the classical and the
  HC3 heteroskedasticity-consistent one, :func:`fit_log_log`). p_hold is the two-one-sided-tests
  (TOST) p-value of H0: b outside
  [lo, hi]; p_fail the p-value of H0: b inside [lo, hi] (the smaller one-sided p-value, doubled
  when both sides are finite). The interval is the t-interval of the slope.

Decisions use only p-values: a claim holds when its Holm-adjusted p_hold <= alpha, fails when its
Holm-adjusted p_fail <= alpha, and is inconclusive otherwise (the interval straddles the
threshold: underpowered). A sub-test that dropped more than MAX_DIVERGED_FRACTION of its units
(diverged, non-finite, never crossing) from its estimate is inconclusive whatever its p-values
(:func:`verdict` enforces it; :func:`capped` makes it undecided inside its row, whose other
sub-tests still decide). Fraction and exact tests drop nothing: they count such units as
failures (:attr:`TestResult.dropped_fraction`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from scipy import stats

Verdict = Literal["holds", "fails", "inconclusive"]

ALPHA = 0.05  # family-wise error rate of the claims' verdicts (Holm over the claims)
MAX_DIVERGED_FRACTION = 0.1  # more excluded (diverged / non-finite) units: inconclusive

# Float64 round-off of the closed forms (see roundoff_tolerance for the derivation).
FLOAT64_EPS = float(np.finfo(np.float64).eps)
ROUNDOFF_SAFETY = 100.0


def roundoff_tolerance(dim: int, cond: float) -> float:
    """Relative float64 round-off bound of a closed form built from eigendecompositions.

    Derivation. A backward-stable symmetric eigensolver (LAPACK ``syevd``) applied to an r x r
    PSD matrix A returns the exact eigenpairs of A + E with ||E|| <= c r eps ||A|| (Golub & Van
    Loan, Matrix Computations, 4th ed., section 8.1.2 and 8.6), c a modest constant; forming A
    from N <= r rank-one terms adds at most N eps ||A|| more. A closed form that divides by (or
    takes inverse square roots of) eigenvalues down to lambda_min turns that absolute error into
    a relative error of at most r eps cond, cond = lambda_max / lambda_min; the min-norm factor
    (W^T W = S^+ [C]_p S^+, S = Q^{1/2}) applies two inverse square roots and one product, and
    the quantities compared (||W v_j||, ratios, residuals) add at most another factor 2. So the
    relative error is <= 4 (c + 1) r eps cond; ROUNDOFF_SAFETY = 100 covers c <= 24. The
    verifier's designs are good-event instances, where cond has a closed-form bound from the
    config (:func:`simdyn.verify.common.good_event_cond`).

    Args:
        dim: r, the size of the matrices eigendecomposed (the used coordinates).
        cond: an upper bound on lambda_max / lambda_min (non-zero eigenvalues) of those matrices.

    Returns:
        ROUNDOFF_SAFETY * dim * eps * cond (dimensionless; scale it by the compared quantity).
    """
    if dim < 1 or not cond >= 1.0:
        raise ValueError(f"roundoff_tolerance: need dim >= 1 and cond >= 1, got {dim}, {cond}")
    return ROUNDOFF_SAFETY * dim * FLOAT64_EPS * float(cond)


@dataclass(frozen=True)
class TestResult:
    """One pre-registered sub-test of a claim.

    name: short id; statistic: what is measured per unit; rule: the decision rule in words;
    estimate: pass fraction, fitted slope, or (exact tests) the worst error / failure count;
    ci: (lo, hi) 95% interval; threshold: the number the rule compares with (text, e.g. "> 0.9"
    or "in [0.9, 1.1]"); p_hold / p_fail: unadjusted p-values (see module docs); n_units: units
    used; n_excluded: units excluded as diverged or non-finite (never averaged in); data:
    per-unit arrays behind the verdict (JSON-able); power: the smallest detectable deviation in
    words (for fraction tests :func:`with_power_after_holm` restates it at the Holm-adjusted
    alpha); failures: the number of failing instances of an exact test (None otherwise);
    pass_threshold: a fraction test's threshold as a number (None otherwise).
    """

    name: str
    statistic: str
    rule: str
    kind: Literal["fraction", "slope", "mean", "deterministic", "exact"]
    estimate: float
    ci: tuple[float, float]
    threshold: str
    p_hold: float
    p_fail: float
    n_units: int
    n_excluded: int
    data: dict[str, Any] = field(default_factory=dict)
    power: str = ""
    failures: int | None = None  # exact tests: failing instances (invalid ones included)
    pass_threshold: float | None = None  # fraction tests: the pass rate the rule compares with

    @property
    def excluded_fraction(self) -> float:
        """Fraction of the test's units excluded as diverged or non-finite (1 when it has none).

        Fraction and exact tests keep their invalid units in ``n_units`` (as failures); slope
        and mean tests leave them out of it.
        """
        kept_in = self.kind in ("fraction", "exact")
        total = self.n_units if kept_in else self.n_units + self.n_excluded
        return self.n_excluded / total if total else 1.0

    @property
    def dropped_fraction(self) -> float:
        """Fraction of the test's units DROPPED from its estimate (what the exclusion cap limits).

        Slope and mean tests drop excluded units, so a large exclusion can bias what is left.
        Fraction, exact and deterministic tests drop nothing: their invalid units count as
        failures, which can never make a test hold, and a failure caused by them (a simulation
        that diverges or never crosses where the theory says it does) is a real failure.
        """
        if self.kind in ("fraction", "exact", "deterministic"):
            return 0.0
        return self.excluded_fraction


# --------------------------------------------------------------------------------------------
# Exact binomial
# --------------------------------------------------------------------------------------------


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided Clopper-Pearson interval for a binomial proportion k / n."""
    if n <= 0:
        return (0.0, 1.0)
    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def binomial_p_values(k: int, n: int, threshold: float) -> tuple[float, float]:
    """(p_hold, p_fail): exact one-sided p-values of H0: pi <= threshold and H0: pi >= threshold."""
    if n <= 0:
        return 1.0, 1.0
    p_hold = float(stats.binomtest(k, n, threshold, alternative="greater").pvalue)
    p_fail = float(stats.binomtest(k, n, threshold, alternative="less").pvalue)
    return p_hold, p_fail


def _clean(values: np.ndarray | Sequence[float]) -> list[float | None]:
    """JSON-able floats (NaN/inf -> None)."""
    out: list[float | None] = []
    for v in np.asarray(values, dtype=float).ravel():
        out.append(float(v) if math.isfinite(v) else None)
    return out


def _scoped_units(
    passed: np.ndarray,
    valid: np.ndarray | None,
    scope: np.ndarray | None,
    data: dict[str, Any] | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """Per-unit pass and validity flags (and data) restricted to ``scope``, checked to match."""
    passed = np.asarray(passed, bool).ravel()
    valid = np.ones_like(passed) if valid is None else np.asarray(valid, bool).ravel()
    if scope is not None:
        scope = np.asarray(scope, bool).ravel()
        if scope.shape != passed.shape:
            raise ValueError(f"passed {passed.shape} and scope {scope.shape} must match")
        data = {k: np.asarray(v, float).ravel()[scope] for k, v in (data or {}).items()}
        passed, valid = passed[scope], valid[scope]
    if passed.shape != valid.shape:
        raise ValueError(f"passed {passed.shape} and valid {valid.shape} must match")
    return passed, valid, data


def fraction_test(
    name: str,
    passed: np.ndarray,
    threshold: float,
    *,
    statistic: str,
    rule: str,
    valid: np.ndarray | None = None,
    scope: np.ndarray | None = None,
    data: dict[str, Any] | None = None,
) -> TestResult:
    """Fraction-of-units test. passed, valid, scope: (units,) bool.

    Units outside ``scope`` (design points the sub-test is not about) are dropped; units in
    scope but not ``valid`` (diverged, non-finite) count as FAILURES (and in ``n_excluded``,
    which reports how many there were): they are never silently dropped.
    """
    passed, valid, data = _scoped_units(passed, valid, scope, data)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: must be in (0, 1), got {threshold}")
    # Invalid units (diverged, non-finite, never crossing) stay in the denominator as failures.
    n = int(passed.size)
    k = int((passed & valid).sum())
    p_hold, p_fail = binomial_p_values(k, n, threshold)
    est = k / n if n else float("nan")
    payload = {"passed": passed.astype(int).tolist(), "valid": valid.astype(int).tolist()}
    payload.update({key: _clean(v) for key, v in (data or {}).items()})
    return TestResult(
        name=name,
        statistic=statistic,
        rule=rule,
        kind="fraction",
        estimate=est,
        ci=clopper_pearson(k, n),
        threshold=f"> {threshold:g}",
        p_hold=p_hold,
        p_fail=p_fail,
        n_units=n,
        n_excluded=int((~valid).sum()),
        data=payload,
        power=power_text(n, threshold, ALPHA),
        pass_threshold=threshold,
    )


def power_text(n: int, threshold: float, alpha: float) -> str:
    """The power of a fraction test of n units at level alpha, in words.

    Args:
        n: units. threshold: the pass rate compared with. alpha: the level it faces.

    Returns:
        "fails at P(pass) <= x (80% power at alpha a)".
    """
    rate = threshold - fraction_power(n, threshold, alpha)
    return f"fails at P(pass) <= {rate:.3g} (80% power at alpha {alpha:.2g})"


def with_power_after_holm(test: TestResult, alpha: float) -> TestResult:
    """``test`` with its power restated at ``alpha``, the level it faces after Holm.

    A sub-test's p_fail reaches its row's verdict multiplied by the row's number of sub-tests k
    (:func:`combine`) and then by at most m, the size of the Holm family (the first Holm step),
    so in the worst case it fails its row only when p_fail <= ALPHA / (k m). Its power must be
    stated at that alpha, not at ALPHA: for a fraction test the pass rate it rejects with 80%
    power; for a slope or mean test with a standard error, the distance outside its bounds at
    which it fails with 80% power, (t_{alpha / sides} + z_{0.8}) se (p_fail doubles the nearer
    one-sided p-value when both bounds are finite). Other tests are returned as is.

    Args:
        test: a sub-test of a row.
        alpha: the worst-case adjusted level, ALPHA / (k m).

    Returns:
        The test with ``power`` recomputed for fraction, slope and mean tests.
    """
    if test.kind == "fraction" and test.pass_threshold is not None:
        return replace(test, power=power_text(test.n_units, test.pass_threshold, alpha))
    fit = test.data.get("fit") if isinstance(test.data, dict) else None
    if test.kind in ("slope", "mean") and isinstance(fit, dict) and fit.get("se") is not None:
        se, dof, sides = float(fit["se"]), int(fit["dof"]), int(fit.get("sides", 2))
        if not (math.isfinite(se) and dof > 0):
            return test
        reach = (float(stats.t.isf(alpha / sides, dof)) + float(stats.norm.isf(0.2))) * se
        what = "slope" if test.kind == "slope" else "mean"
        return replace(
            test,
            power=f"{what} se {se:.2g}: fails at a {what} {reach:.2g} outside "
            f"{test.threshold} (80% power at alpha {alpha:.2g})",
        )
    return test


def fraction_power(n: int, threshold: float, alpha: float = ALPHA, power: float = 0.8) -> float:
    """Smallest delta such that a true pass rate threshold - delta is rejected with ``power``.

    Computed from the design alone (n units, the threshold) before any unit runs: the one-sided
    exact binomial test of H0: pi >= threshold at level ``alpha`` rejects when k <= k_c;
    delta solves P(K <= k_c | pi = threshold - delta) = power (bisection). Returns threshold
    (no detectable deviation) when the design is too small to ever reject.
    """
    if n <= 0:
        return threshold
    k = np.arange(n + 1)
    cdf = stats.binom.cdf(k, n, threshold)
    reject = k[cdf <= alpha]
    if reject.size == 0:
        return threshold
    k_c = int(reject.max())
    lo, hi = 0.0, threshold  # P(K <= k_c | pi) decreases in pi
    for _ in range(60):
        mid = (lo + hi) / 2
        if stats.binom.cdf(k_c, n, mid) >= power:
            lo = mid
        else:
            hi = mid
    return threshold - lo


def deterministic_test(
    name: str,
    errors: np.ndarray,
    tolerance: float,
    *,
    statistic: str,
    rule: str,
    data: dict[str, Any] | None = None,
) -> TestResult:
    """A closed form against a reference on fixed instances: holds iff max error <= tolerance.

    No p-value is involved: p_hold is 0 when it holds and 1 otherwise (p_fail the reverse), so a
    Holm family treats it as decided. Non-finite errors fail.
    """
    err = np.asarray(errors, float).ravel()
    worst = float(np.max(np.where(np.isfinite(err), err, np.inf))) if err.size else math.inf
    ok = worst <= tolerance
    failures = int(np.sum(~(np.isfinite(err) & (err <= tolerance))))
    payload = {"errors": _clean(err), "failing_units": np.flatnonzero(err > tolerance).tolist()}
    payload.update({key: _clean(v) for key, v in (data or {}).items()})
    return TestResult(
        name=name,
        statistic=statistic,
        rule=rule,
        kind="deterministic",
        estimate=worst,
        ci=(worst, worst),
        threshold=f"<= {tolerance:.3g}",
        p_hold=0.0 if ok else 1.0,
        p_fail=1.0 if ok else 0.0,
        n_units=int(err.size),
        n_excluded=0,
        data=payload,
        power=f"any error > {tolerance:.3g}",
        failures=failures,
    )


def exact_test(
    name: str,
    passed: np.ndarray,
    *,
    statistic: str,
    rule: str,
    valid: np.ndarray | None = None,
    scope: np.ndarray | None = None,
    data: dict[str, Any] | None = None,
) -> TestResult:
    """A statement exact on its event, checked on every instance: holds iff NO instance fails.

    passed, valid, scope: (units,) bool, as in :func:`fraction_test` (units outside ``scope``
    are dropped; invalid units in scope - diverged, non-finite - count as failures). No p-value
    is involved: p_hold is 0 with zero failures and 1 otherwise (p_fail the reverse), and an
    empty test (no unit in scope) does not hold. The estimate is the failure count, reported
    with the failing units' indices in ``data["failing_units"]``.

    Args:
        name: the sub-test's name. passed: per-unit pass flags. statistic, rule: in words.
        valid: per-unit validity (invalid units fail). scope: units the test is about.
        data: per-unit arrays to report (restricted to ``scope``).

    Returns:
        A TestResult of kind "exact" with ``failures`` set.
    """
    passed, valid, data = _scoped_units(passed, valid, scope, data)
    ok = passed & valid
    failures = int((~ok).sum())
    holds = passed.size > 0 and failures == 0
    payload: dict[str, Any] = {
        "passed": passed.astype(int).tolist(),
        "valid": valid.astype(int).tolist(),
        "failing_units": np.flatnonzero(~ok).tolist(),
    }
    payload.update({key: _clean(v) for key, v in (data or {}).items()})
    return TestResult(
        name=name,
        statistic=statistic,
        rule=rule,
        kind="exact",
        estimate=float(failures),
        ci=(float(failures), float(failures)),
        threshold="0 failures",
        p_hold=0.0 if holds else 1.0,
        p_fail=1.0 if holds else 0.0,
        n_units=int(passed.size),
        n_excluded=int((~valid).sum()),
        data=payload,
        power="fails on any failing instance",
        failures=failures,
    )


# --------------------------------------------------------------------------------------------
# Scaling laws
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares fit of log y = intercept + slope log x. se: standard error; dof: n - 2."""

    slope: float
    intercept: float
    se: float
    dof: int


def fit_log_log(x: np.ndarray, y: np.ndarray, log_y: bool = True) -> SlopeFit:
    """OLS of log y (or y itself when ``log_y`` is False) on log x; >= 3 points, 2 distinct x.

    The slope's standard error is the larger of the classical one and the HC3
    heteroskedasticity-consistent one (MacKinnon & White 1985): the units of a scaling law
    scatter differently at different x (a run near a threshold crossing is noisier), which the
    classical SE, assuming one common variance, understates. Taking the larger never claims more
    precision than either model supports.
    """
    lx = np.log(np.asarray(x, float))
    ly = np.log(np.asarray(y, float)) if log_y else np.asarray(y, float)
    if lx.size < 3 or np.ptp(lx) == 0:
        raise ValueError("fit_log_log: need >= 3 points with at least 2 distinct x")
    xc = lx - lx.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (ly - ly.mean()) / sxx)
    intercept = float(ly.mean() - slope * lx.mean())
    resid = ly - intercept - slope * lx
    dof = lx.size - 2
    classical = math.sqrt(max(float(resid @ resid), 0.0) / dof / sxx)
    return SlopeFit(slope, intercept, max(classical, hc3_slope_se(xc, resid)), dof)


def hc3_slope_se(xc: np.ndarray, resid: np.ndarray) -> float:
    """HC3 standard error of an OLS slope: sqrt(sum xc_i^2 e_i^2 / (1 - h_i)^2) / sum xc_i^2,
    with xc the centred regressor, e the residuals and h_i = 1/n + xc_i^2 / sum xc^2 the
    leverages (Long & Ervin 2000 recommend HC3 for small samples)."""
    sxx = float(xc @ xc)
    h = 1.0 / xc.size + xc**2 / sxx
    scaled = resid / np.maximum(1.0 - h, 1e-12)
    return math.sqrt(float(np.sum(xc**2 * scaled**2))) / sxx


def _t_sf(t: float, dof: int) -> float:
    """P(T > t) for Student t, with se = 0 (exact fits) handled as +-inf."""
    if math.isnan(t):
        return 1.0
    return float(stats.t.sf(t, dof))


def slope_p_values(fit: SlopeFit, lo: float, hi: float) -> tuple[float, float]:
    """(p_hold, p_fail) for the interval hypothesis slope in [lo, hi] (see module docs)."""

    def z(c: float) -> float:
        diff = fit.slope - c
        if fit.se == 0.0:
            return math.copysign(math.inf, diff) if diff != 0 else 0.0
        return diff / fit.se

    # H0: slope <= lo (rejected when the slope is clearly above lo), H0: slope >= hi.
    p_above_lo = _t_sf(z(lo), fit.dof) if math.isfinite(lo) else 0.0
    p_below_hi = _t_sf(-z(hi), fit.dof) if math.isfinite(hi) else 0.0
    p_hold = max(p_above_lo, p_below_hi)
    sides = []
    if math.isfinite(lo):
        sides.append(_t_sf(-z(lo), fit.dof))  # evidence that slope < lo
    if math.isfinite(hi):
        sides.append(_t_sf(z(hi), fit.dof))  # evidence that slope > hi
    p_fail = min(1.0, len(sides) * min(sides)) if sides else 1.0
    return p_hold, p_fail


def slope_test(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    lo: float,
    hi: float,
    *,
    statistic: str,
    rule: str,
    valid: np.ndarray | None = None,
    data: dict[str, Any] | None = None,
    log_y: bool = True,
) -> TestResult:
    """Scaling-law test: the slope of log y on log x lies in [lo, hi] (lo or hi may be inf).

    ``log_y=False`` fits y itself on log x (a logarithmic law such as t = O(ln 1/x)). Units with
    an invalid flag or non-positive / non-finite x (or y, for log y) are excluded.
    """
    x = np.asarray(x, float).ravel()
    y = np.asarray(y, float).ravel()
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & ((y > 0) if log_y else True)
    if valid is not None:
        ok &= np.asarray(valid, bool).ravel()
    payload = {"x": _clean(x), "y": _clean(y), "valid": ok.astype(int).tolist()}
    payload.update({key: _clean(v) for key, v in (data or {}).items()})
    bounds = f"in [{lo:g}, {hi:g}]"
    try:
        fit = fit_log_log(x[ok], y[ok], log_y)
    except ValueError:
        return TestResult(
            name,
            statistic,
            rule,
            "slope",
            float("nan"),
            (float("nan"),) * 2,
            bounds,
            1.0,
            1.0,
            int(ok.sum()),
            int((~ok).sum()),
            payload,
        )
    half = float(stats.t.ppf(0.975, fit.dof)) * fit.se
    p_hold, p_fail = slope_p_values(fit, lo, hi)
    sides = int(math.isfinite(lo)) + int(math.isfinite(hi))
    payload["fit"] = {"slope": fit.slope, "intercept": fit.intercept, "se": fit.se, "dof": fit.dof,
                      "sides": sides}  # fmt: skip
    return TestResult(
        name=name,
        statistic=statistic,
        rule=rule,
        kind="slope",
        estimate=fit.slope,
        ci=(fit.slope - half, fit.slope + half),
        threshold=bounds,
        p_hold=p_hold,
        p_fail=p_fail,
        n_units=int(ok.sum()),
        n_excluded=int((~ok).sum()),
        data=payload,
        # TOST at 80% power: a slope (z_alpha + z_0.2) se ~ 2.5 se outside the bounds fails.
        power=f"slope se {fit.se:.2g}: detects a slope {2.5 * fit.se:.2g} outside {bounds[3:]}",
    )


def mean_test(
    name: str,
    values: np.ndarray,
    lo: float,
    hi: float,
    *,
    statistic: str,
    rule: str,
    data: dict[str, Any] | None = None,
) -> TestResult:
    """Equivalence test of a mean: the mean of i.i.d. unit values lies in [lo, hi].

    The same interval hypotheses as a SLOPE test (TOST for p_hold, the nearer one-sided test,
    doubled, for p_fail), with the t statistic of the sample mean (dof n - 1). Non-finite
    values are excluded and counted.
    """
    v = np.asarray(values, float).ravel()
    ok = np.isfinite(v)
    payload: dict[str, Any] = {"values": _clean(v)}
    payload.update({key: _clean(x) for key, x in (data or {}).items()})
    n = int(ok.sum())
    bounds = f"in [{lo:g}, {hi:g}]"
    if n < 2:
        nan = float("nan")
        return TestResult(name, statistic, rule, "mean", nan, (nan, nan), bounds, 1.0, 1.0, n,
                          int((~ok).sum()), payload)  # fmt: skip
    mean = float(v[ok].mean())
    se = float(v[ok].std(ddof=1) / math.sqrt(n))
    fit = SlopeFit(mean, 0.0, se, n - 1)
    p_hold, p_fail = slope_p_values(fit, lo, hi)
    sides = int(math.isfinite(lo)) + int(math.isfinite(hi))
    payload["fit"] = {"se": se, "dof": n - 1, "sides": sides}
    half = float(stats.t.ppf(0.975, n - 1)) * se
    return TestResult(
        name=name,
        statistic=statistic,
        rule=rule,
        kind="mean",
        estimate=mean,
        ci=(mean - half, mean + half),
        threshold=bounds,
        p_hold=p_hold,
        p_fail=p_fail,
        n_units=n,
        n_excluded=int((~ok).sum()),
        data=payload,
        power=f"mean se {se:.2g}: detects a mean {2.8 * se:.2g} outside [{lo:g}, {hi:g}]",
    )


# --------------------------------------------------------------------------------------------
# Combining sub-tests, multiplicity, verdicts
# --------------------------------------------------------------------------------------------


def combine(tests: Sequence[TestResult]) -> tuple[float, float]:
    """(p_hold, p_fail) of "every sub-test holds".

    Intersection-union: the conjunction holds only if each part does, so its p_hold is the largest
    part's (valid without correction). It fails if any part fails: Bonferroni over the parts.
    """
    if not tests:
        return 1.0, 1.0
    p_hold = max(t.p_hold for t in tests)
    p_fail = min(1.0, len(tests) * min(t.p_fail for t in tests))
    return p_hold, p_fail


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as the input)."""
    p = np.asarray(p_values, float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adj_sorted = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adj_sorted = np.maximum.accumulate(adj_sorted)
    out = np.empty(m)
    out[order] = adj_sorted
    return out


def capped(test: TestResult, max_dropped: float = MAX_DIVERGED_FRACTION) -> TestResult:
    """``test`` made undecided (p_hold = p_fail = 1) if it dropped more than ``max_dropped`` of
    its units (:attr:`TestResult.dropped_fraction`), else ``test`` itself.

    Inside a row (:func:`combine`: every sub-test must hold) such a sub-test then blocks "holds"
    but cannot make the row fail; the row's other sub-tests still can.

    Args:
        test: a sub-test. max_dropped: the cap (MAX_DIVERGED_FRACTION).

    Returns:
        The test, with its p-values neutralised when over the cap.
    """
    if test.dropped_fraction <= max_dropped:
        return test
    return replace(test, p_hold=1.0, p_fail=1.0)


def verdict(
    p_hold_adj: float,
    p_fail_adj: float,
    excluded_fraction: float = 0.0,
    alpha: float = ALPHA,
    max_excluded: float = MAX_DIVERGED_FRACTION,
) -> Verdict:
    """holds / fails / inconclusive from Holm-adjusted p-values (see module docs).

    Args:
        p_hold_adj, p_fail_adj: Holm-adjusted p-values of "false" and "true".
        excluded_fraction: the fraction of the test's units dropped from its estimate
            (:attr:`TestResult.dropped_fraction`); above ``max_excluded`` the verdict is
            inconclusive whatever the p-values say: too many units are missing for the rest
            to speak for the design.
        alpha: the family-wise level. max_excluded: the cap (MAX_DIVERGED_FRACTION).

    Returns:
        "holds", "fails" or "inconclusive".
    """
    if excluded_fraction > max_excluded:
        return "inconclusive"
    if p_hold_adj <= alpha and p_fail_adj > alpha:
        return "holds"
    if p_fail_adj <= alpha and p_hold_adj > alpha:
        return "fails"
    return "inconclusive"
