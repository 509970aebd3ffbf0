"""CC-early (Thm 4.5): early in GD, the subclass feature is learnt before it is collapsed.

Claim: if 1 + mu^2 > phi_1^2 and sigma_0 sqrt(p/d) = o(1), GD reaches ||W_t v_2|| = Omega(1)
at t = O(ln((1/sigma_0) sqrt(d/p))). A sufficient condition: where it fails the region is mapped
(reported, not asserted). Design: SCL, K = 4, phi = 1, mu = 1 (1 + mu^2 = 2 > phi_1^2 = 1),
balanced good-event data, float64, recorded every step, sigma_0 swept over several decades so
x = sigma_0 sqrt(p/d) -> 0 (each unit its own seed; sigma_0 is a traced hyper-parameter).

Pre-registered sub-tests, with peak = max_t ||W_t v_2|| and t* = first step with
||W_t v_2|| >= OMEGA_LEVEL. The per-unit rules are FRACTION tests because Thm 4.5 is itself
probabilistic: it holds with probability 1 - O(m^2 n^2 / d + 1/poly(p)) over the random init
(Lemmas G.6-G.8), and the time and peak rules compare with approximate (escape-path) models:

* ``Omega(1)-level`` (FRACTION): pass if peak >= OMEGA_LEVEL; holds if P(pass) > PASS_FRACTION.
* ``Omega(1)-scaling`` (SLOPE): the peak must not decay as x -> 0: slope of log peak on log x
  significantly <= SLOPE_MARGIN.
* ``time-O(ln)`` (SLOPE, linear in log): t* on ln x; the early phase grows the top M+ mode
  (eigenvalue a_1 = 1 + mu^2 + s) like (1 + 4 eta a_1)^t from x, so t* = c - ln x / ln(1 + 4 eta
  a_1): the slope must lie in [-TIME_FACTOR, -1/TIME_FACTOR] / ln(1 + 4 eta a_1).

* ``peak`` (FRACTION): the peak against its prediction. From a small init GD follows the top
  M+ mode's escape path: the rank-one reduction Theta = c theta^T started at ||Theta_0 u_1|| u_1
  (:func:`simdyn.theory.rank_one_escape`, each unit's own moments and Theta_0). v_2 rises with
  u_1, then the quartic term turns the saturating row through M toward the bias, away from v_2:
  pass if |peak / predicted - 1| <= PEAK_TOLERANCE. Near-miss controls: the path at 1.5 eta (~3%
  off) and the one-mode saturation sqrt(a_1) / (u_1^T M u_1) |<u_1, v_2>| (~16% high, the
  linear-regime answer) must fail. SGD's peak is reported against GD's prediction, not tested.
* ``probe-at-t*`` (FRACTION, the third bullet): a subclass-given-class linear probe on fresh
  test embeddings at t* is accurate, >= PROBE_LEVEL (never crossing: fail). Near-miss control:
  the same probe at step 0 (a random Theta_0 already separates y_sub on some seeds; the claim
  is that learning makes it reliable) must fail. Seen: the probe stays accurate after v_2 decays
  (||W_T v_2|| ~ 0.008 at T): the test points' fresh noise coordinates keep init-scale weights,
  so accuracy at t* is necessary, not specific to t*.

Rows: ``CC-early`` (full-batch GD) and ``CC-early [SGD]`` (minibatch SGD, batch n/2, same tests).
Negative control: the same level test with mu = 0, where v_2 has no component in colsp(M+)
(coefficient mu / sqrt(1 + mu^2 + s) = 0), must fail; the SGD row's control runs SGD with mu = 0
(a minibatch's subclass mix is not balanced, so SGD's v_2 does get small kicks: the control checks
they stay below the level). Map: 1 + mu^2 < phi_1^2 (MAP_POINT),
peaks reported only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import special

from simdyn import theory
from simdyn.config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig
from simdyn.papers.which_features import simulators
from simdyn.papers.which_features.common import STREAMS
from simdyn.papers.which_features.runs import Runs
from simdyn.papers.which_features.runs import run as run_gd
from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo, Scale
from simdyn.verify.stats import TestResult, fraction_test, slope_test

INFO = ClaimInfo(
    id="CC-early",
    source="Thm 4.5",
    statement="if 1+mu^2 > phi_1^2, GD reaches ||W_t v_2|| = Omega(1) at t = "
    "O(ln((1/sigma_0) sqrt(d/p)))",
    control="same level test with mu = 0 (v_2 outside colsp(M+)): must fail",
)

PASS_FRACTION = 0.9
OMEGA_LEVEL = 0.1
SLOPE_MARGIN = 0.1
# Rate: Thm 4.5's t = O(ln 1/x) with the early-growth rate ln(1 + 4 eta a_1): slope within +-10%.
RATE_MARGIN = 0.10
# Time: t* may exceed the pure-exponential prediction by the ceiling (< 1 step) and the
# logistic slow-down near the level (level / saturation ~ 0.25: < 0.1 step), and be earlier by
# the non-growing modes' share of ||W_0 v_2|| (same order as the grown part only for t* < 1).
TIME_TOLERANCE = 2.0
# Thm 4.5's third bullet: at t* a linear probe recovers y_sub given y "with probability 1 - o(1)":
# accuracy >= PROBE_LEVEL (as CC-exists' subclass probe), on PROBE_TEST_POINTS fresh test points.
PROBE_LEVEL = 0.9
PROBE_TEST_POINTS = 200
# Peak: the rank-one escape path (see :func:`escape`) leaves out the modes GD has not grown yet.
# At the peak they trail the top mode by x^(1 - ln(1 + 4 eta a_2) / ln(1 + 4 eta a_1)) (0.079
# at the largest sigma_0 here, <= 0.01 from the next one down) times their initial ratio to it,
# and, being M-orthogonal to the path to leading order, enter the peak quadratically: ~0.6% at
# the largest sigma_0 for an initial ratio of 1. The discrete orbit's phase is the unit's own
# (its ||Theta_0 u_1||). 2% allows initial ratios up to ~1.8 at the largest sigma_0; the
# fraction rule takes the tail. The near misses: 1.5 eta moves the peak by ~3%, the one-mode
# saturation (the linear regime's top mode at its own fixed point) is ~16% high.
PEAK_TOLERANCE = 0.02
PEAK_CHUNK = 256  # units whose (r, r) moments are stacked at once (r = K + 1 + m n = 133 here)
MAP_POINT = (0.5, 1.5)  # (mu, phi_1): 1 + mu^2 = 1.25 < phi_1^2 = 2.25


@dataclass(frozen=True)
class Design:
    n: int = 64
    m: int = 2
    d: int = 2000
    K: int = 4
    mu: float = 1.0
    sigma_xi: float = 1.0
    p: int = 3
    lr: float = 0.05
    steps: int = 300
    sigma_0s: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
    seeds: int = 24  # 120 units; CC-unlearn decay on 72: 0.9^72 = 5e-4 decides after Holm
    sgd_batch: int = 32
    map_seeds: int = 8
    # The CC-early [p,d] row (Thm 4.5's sqrt(d/p)): sigma_0 fixed, x = sigma_0 sqrt(p/d) moved by
    # the embedding size p (up to Fig. 2b's p = 500) and the input dimension d alone. T covers
    # the latest peak (t* ~ 20 at the smallest x, the peak ~10 steps later).
    pd_points: tuple[tuple[int, int], ...] = (
        (3, 500),
        (3, 2000),
        (3, 8000),
        (30, 2000),
        (500, 2000),
    )
    pd_sigma_0: float = 1e-2
    pd_steps: int = 48
    pd_seeds: int = 24


DESIGNS: dict[Scale, Design] = {
    "small": Design(
        n=16,
        d=300,
        steps=200,
        sigma_0s=(1e-1, 1e-3, 1e-5),
        seeds=2,
        sgd_batch=8,
        map_seeds=0,
        pd_points=((3, 300), (3, 1200), (12, 300)),
        pd_seeds=2,
    ),
    "quick": Design(),
    # The thousands-of-seeds design: quick sizes, >= 1000 independent units per design point.
    "full": Design(seeds=1000, pd_seeds=1000),
}


def config(
    design: Design, mu: float | None = None, phi_1: float = 1.0, batch_size: int | None = None
) -> Config:
    """The (S)GD config (shared with CC-unlearn)."""
    return Config(
        DataConfig(
            n=design.n,
            m=design.m,
            d=design.d,
            K=design.K,
            phi=(phi_1,) + (1.0,) * (design.K - 1),
            mu=design.mu if mu is None else mu,
            sigma_xi=design.sigma_xi,
            sampling="balanced",
            noise_placement="good_event",
            n_test=PROBE_TEST_POINTS,
        ),
        ModelConfig(p=design.p, sigma_0=design.sigma_0s[0]),
        TrainConfig(
            loss="scl",
            lr=design.lr,
            steps=design.steps,
            log_every=1,
            probe_every=1,  # a subclass probe at every step: Thm 4.5's third bullet at t*
            dtype="float64",
            batch_size=batch_size,
        ),
    )


def units(design: Design, offset: int = 0) -> tuple[list[int], np.ndarray]:
    """(seeds, sigma_0 per unit): every unit its own seed."""
    sig = np.repeat(design.sigma_0s, design.seeds)
    return list(range(offset, offset + sig.size)), sig


def sweep(design: Design, key: int, mu: float | None = None, batch: int | None = None) -> Runs:
    """The sigma_0 sweep runs (memoised: CC-unlearn reuses them)."""
    seeds, sig = units(design)
    return run_gd(config(design, mu, batch_size=batch), seeds, key, sigma_0=sig)


def first_crossing(traj: np.ndarray, steps: np.ndarray, level: float) -> np.ndarray:
    """First recorded step where traj (units, R) >= level; NaN if never."""
    hit = traj >= level
    idx = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), steps[idx].astype(float), np.nan)


class Escape(NamedTuple):
    """Per unit (U,): what Thm 4.5's mechanism predicts from its training set and Theta_0.

    a_1: top eigenvalue of M+ (eigenvector u_1). amp: ||Theta_0 u_1||, the grown mode's initial
    size. v2_share: |<u_1, v_2>|. saturation: the one-mode saturation of ||W v_2||, sqrt(a_1) /
    (u_1^T M u_1) |<u_1, v_2>| (u_1 grown to its own fixed point, its rotation ignored).
    peak, peak_fast: max_t |theta_t[v_2]| on the rank-one escape path at eta and 1.5 eta.
    """

    a_1: np.ndarray
    amp: np.ndarray
    v2_share: np.ndarray
    saturation: np.ndarray
    peak: np.ndarray
    peak_fast: np.ndarray


def escape(design: Design, seeds: list[int], sig: np.ndarray, key: int) -> Escape:
    """Each unit's own exact moments (compressed) and Theta_0.

    The peak: from a small init GD follows the top M+ mode's escape path
    (:func:`simdyn.theory.rank_one_escape`) from theta_0 = ||Theta_0 u_1|| u_1, on the unit's own
    exact M+ and M, for the run's T steps. Along it v_2 first grows with u_1, then the quartic
    term turns the saturating row, through M, away from v_2 (toward the bias): the peak is where
    the two balance. Units are batched PEAK_CHUNK at a time (their (r, r) moments stacked).
    """
    from simdyn import init_theta
    from simdyn.papers.which_features.instances import (
        compressed_moments,
        instance,
        sample_instances,
    )
    from simdyn.seeds import as_key, seed_keys, streams

    batch = sample_instances(config(design).data, seeds, key)
    keys = seed_keys(as_key(key), np.asarray(seeds))
    out = np.full((6, len(seeds)), np.nan)
    for lo in range(0, len(seeds), PEAK_CHUNK):
        part = range(lo, min(lo + PEAK_CHUNK, len(seeds)))
        comps = [compressed_moments(instance(batch, u), design.K) for u in part]
        for u, comp in zip(part, comps, strict=True):
            evals, evecs = theory.symmetric_eigh(comp.m_plus)
            a_1, u_1 = float(evals[-1]), evecs[:, -1]
            theta0 = init_theta(
                streams(keys[u]).init,
                design.p,
                design.d,
                float(sig[u]),
                True,
                np.float64,
            )
            share = abs(u_1[2])
            out[:4, u] = (
                a_1,
                np.linalg.norm(np.asarray(theta0)[:, comp.cols] @ u_1),
                share,
                math.sqrt(a_1) / float(u_1 @ comp.m @ u_1) * share,
            )
        # Stack the instances of one size r (all of them on the good event) into one batch.
        for r in {c.cols.size for c in comps}:
            idx = [i for i, c in enumerate(comps) if c.cols.size == r]
            units = [part[i] for i in idx]
            p_plus = np.stack([comps[i].m_plus for i in idx])
            m = np.stack([comps[i].m for i in idx])
            for row, eta in ((4, design.lr), (5, 1.5 * design.lr)):
                path = theory.rank_one_escape(p_plus, m, out[1, units], eta, design.steps)
                out[row, units] = np.abs(path[:, :, 2]).max(axis=0)
    return Escape(*out)


def predicted_crossing(design: Design, esc: Escape) -> np.ndarray:
    """Thm 4.5's mechanism per unit: the first step with ||W_t v_2|| >= OMEGA_LEVEL.

    Early GD grows Theta_t u_1 = (1 + 4 eta a_1)^t Theta_0 u_1 along the top eigenvector u_1 of
    M+ (a_1 its eigenvalue), and v_2 is reached only through it: ||W_t v_2|| ~ (1 + 4 eta a_1)^t
    ||Theta_0 u_1|| |<u_1, v_2>|. With the unit's own training set (u_1, a_1 from its exact
    moments) and its own Theta_0 (:func:`escape`; amp x sqrt(d) is the near-miss control), the
    crossing is t_pred = ceil(ln(level / (||Theta_0 u_1|| |<u_1, v_2>|)) /
    ln(1 + 4 eta a_1)).
    """
    rate = np.log1p(4 * design.lr * esc.a_1)
    return np.ceil(np.log(OMEGA_LEVEL / (esc.amp * esc.v2_share)) / rate)


class Prediction(NamedTuple):
    """What both rows test against, per unit (U,): sigma_0, the escape path, t_pred and its
    near miss t_pred_init (Theta_0 x sqrt(d)); rate = ln(1 + 4 eta a_1) of the population M+."""

    sig: np.ndarray
    esc: Escape
    t_pred: np.ndarray
    t_pred_init: np.ndarray
    rate: float


@simulators.memoised
def predict(design: Design, key: int) -> Prediction:
    """The units' predictions under the claim's stream key (memoised: the SGD row reuses GD's)."""
    seeds, sig = units(design)
    a_1 = float(theory.scl_plus_eigenvalues(design.mu, 1.0, design.sigma_xi, design.m, design.n)[0])
    esc = escape(design, seeds, sig, key)
    # Near-miss control: Theta_0 x sqrt(d). Theta_0 is linear in sigma_0, so only amp scales.
    t_pred_init = predicted_crossing(design, esc._replace(amp=esc.amp * math.sqrt(design.d)))
    return Prediction(
        sig, esc, predicted_crossing(design, esc), t_pred_init, math.log1p(4 * design.lr * a_1)
    )


class Sweep(NamedTuple):
    """One row's units: its (S)GD runs (tag "GD" / "SGD"), the same runs with mu = 0 (the
    control), the predictions, and (GD row only) the map's peaks and its note."""

    tag: str
    runs: Runs
    control_runs: Runs
    pred: Prediction
    map_peak: np.ndarray | None = None
    map_note: str = ""


def measure_gd(design: Design, key: int) -> Sweep:
    pred = predict(design, key)
    gd, control = sweep(design, key), sweep(design, key, mu=0.0)
    return Sweep("GD", gd, control, pred, *_map(design, key))


def measure_sgd(design: Design, key: int) -> Sweep:
    # The SGD row's control runs SGD too (same batches' mechanism, mu = 0).
    return Sweep(
        "SGD",
        sweep(design, key, batch=design.sgd_batch),
        sweep(design, key, mu=0.0, batch=design.sgd_batch),
        predict(design, key),
    )


class Crossing(NamedTuple):
    """Per unit (U,) of one sweep: sigma_0, peak_t ||W_t v_2||, x = sigma_0 sqrt(p/d), t*, valid
    (not diverged), crossed (valid, t* finite) and the subclass probe at t* (NaN: no t*)."""

    sig: np.ndarray
    peak: np.ndarray
    x: np.ndarray
    t_star: np.ndarray
    valid: np.ndarray
    crossed: np.ndarray
    probe: np.ndarray


def crossing(design: Design, runs: Runs, sig: np.ndarray) -> Crossing:
    v2 = runs.alignment[:, :, 2]
    t_star = first_crossing(v2, runs.steps, OMEGA_LEVEL)
    # Diverged or never-crossing units count as failures, never as exclusions.
    valid = ~runs.diverged
    crossed = valid & np.isfinite(t_star)
    # Probes are recorded at every step (probe_every=1), so probe index = step index.
    if runs.probe_subclass.shape[1] != runs.steps.size:
        raise RuntimeError("CC-early needs a probe at every recorded step (probe_every=1)")
    at = np.where(crossed, np.nan_to_num(t_star), 0).astype(int)
    probe = np.where(crossed, runs.probe_subclass[np.arange(at.size), at], np.nan)
    x = sig * math.sqrt(design.p / design.d)
    return Crossing(sig, v2.max(axis=1), x, t_star, valid, crossed, probe)


def _level_test(c: Crossing, tag: str) -> TestResult:
    return fraction_test(
        "Omega(1)-level",
        c.valid & (c.peak >= OMEGA_LEVEL),
        PASS_FRACTION,
        statistic=f"peak_t ||W_t v_2|| ({tag})",
        rule=f"pass if >= {OMEGA_LEVEL:g}; holds if P(pass) > {PASS_FRACTION}",
        data={"sigma_0": c.sig, "peak": c.peak},
    )


def _scaling_test(c: Crossing, tag: str) -> TestResult:
    return slope_test(
        "Omega(1)-scaling",
        c.x,
        c.peak,
        -math.inf,
        SLOPE_MARGIN,
        valid=c.valid,
        statistic=f"slope of log peak ||W_t v_2|| on log(sigma_0 sqrt(p/d)) ({tag})",
        rule=f"Omega(1) as x -> 0: holds if the slope is significantly <= {SLOPE_MARGIN:g}",
    )


def _rate_test(c: Crossing, tag: str, rate: float, name: str = "rate") -> TestResult:
    return slope_test(
        name,
        c.x,
        c.t_star,
        -(1 + RATE_MARGIN) / rate,
        -(1 - RATE_MARGIN) / rate,
        valid=c.crossed,
        log_y=False,
        statistic=f"slope of t* (first step with ||W_t v_2|| >= {OMEGA_LEVEL:g}) on ln x "
        f"({tag}); units that never cross are failures in 'time'",
        rule=f"TOST: slope within +-{RATE_MARGIN:.0%} of -1/ln(1 + 4 eta a_1) = "
        f"{-1 / rate:.3f}: [{-(1 + RATE_MARGIN) / rate:.3f}, {-(1 - RATE_MARGIN) / rate:.3f}]",
        data={"t_star": c.t_star},
    )


def _time_test(c: Crossing, tag: str, t_pred: np.ndarray, name: str = "time") -> TestResult:
    return fraction_test(
        name,
        c.crossed & (np.abs(c.t_star - t_pred) <= TIME_TOLERANCE),
        PASS_FRACTION,
        statistic=f"t* - t_pred per unit, t_pred from its own Theta_0 and M+ ({tag})",
        rule=f"pass if |t* - t_pred| <= {TIME_TOLERANCE:g} steps (never crossing: fail); "
        f"holds if P(pass) > {PASS_FRACTION}",
        data={"t_star": c.t_star, "t_pred": t_pred},
    )


def _probe_test(c: Crossing, tag: str) -> TestResult:
    return fraction_test(
        "probe-at-t*",
        c.crossed & (c.probe >= PROBE_LEVEL),
        PASS_FRACTION,
        statistic=f"subclass-given-class linear-probe accuracy at t* ({tag}), "
        f"{PROBE_TEST_POINTS} fresh test points",
        rule=f"pass if >= {PROBE_LEVEL:g} (never crossing: fail); holds if P(pass) > "
        f"{PASS_FRACTION}",
        data={"probe": c.probe},
    )


def _tests(
    design: Design, runs: Runs, sig: np.ndarray, tag: str, t_pred: np.ndarray, rate: float
) -> tuple[TestResult, ...]:
    """The level, scaling, rate, time and probe sub-tests of one sweep."""
    c = crossing(design, runs, sig)
    return (
        _level_test(c, tag),
        _scaling_test(c, tag),
        _rate_test(c, tag, rate),
        _time_test(c, tag, t_pred),
        _probe_test(c, tag),
    )


def _peak_test(runs: Runs, predicted: np.ndarray, tag: str, name: str, what: str) -> TestResult:
    """Per unit |peak / predicted - 1| <= PEAK_TOLERANCE (diverged: fail)."""
    peak = runs.alignment[:, :, 2].max(axis=1)
    rel = peak / predicted - 1.0
    return fraction_test(
        name,
        ~runs.diverged & (np.abs(rel) <= PEAK_TOLERANCE),
        PASS_FRACTION,
        statistic=f"max_t ||W_t v_2|| against {what} ({tag})",
        rule=f"pass if |peak / predicted - 1| <= {PEAK_TOLERANCE:.0%}; holds if P(pass) > "
        f"{PASS_FRACTION}",
        data={"peak": peak, "predicted": predicted},
    )


def _probe_test_step0(runs: Runs, tag: str) -> TestResult:
    """Near-miss control of ``probe-at-t*``: the same probe on Theta_0 (before any learning)."""
    probe = runs.probe_subclass[:, 0]
    return fraction_test(
        "control:probe-at-step-0",
        probe >= PROBE_LEVEL,
        PASS_FRACTION,
        statistic=f"subclass probe accuracy at step 0 ({tag}): the accuracy is not learnt",
        rule=f"(wrong) pass if >= {PROBE_LEVEL:g}; holds if P(pass) > {PASS_FRACTION}",
        data={"probe": probe},
    )


def _control(design: Design, runs: Runs, sig: np.ndarray) -> TestResult:
    peak = runs.alignment[:, :, 2].max(axis=1)
    return fraction_test(
        "control:mu=0-level",
        ~runs.diverged & (peak >= OMEGA_LEVEL),
        PASS_FRACTION,
        statistic="peak_t ||W_t v_2|| with mu = 0",
        rule=f"(wrong) pass if >= {OMEGA_LEVEL:g}; holds if P(pass) > {PASS_FRACTION}",
        data={"sigma_0": sig, "peak": peak},
    )


def _map(design: Design, key: int) -> tuple[np.ndarray, str]:
    """Peaks where Thm 4.5's condition fails (MAP_POINT): reported, never asserted."""
    mu_map, phi_map = MAP_POINT
    map_peak = np.full(0, np.nan)
    if design.map_seeds:
        map_runs = run_gd(
            config(design, mu_map, phi_1=phi_map),
            list(range(10**6, 10**6 + design.map_seeds)),
            key,
            sigma_0=np.full(design.map_seeds, 1e-3),
        )
        map_peak = map_runs.alignment[:, :, 2].max(axis=1)
    map_median = float(np.median(map_peak)) if map_peak.size else math.nan
    map_frac = float(np.mean(map_peak >= OMEGA_LEVEL)) if map_peak.size else math.nan
    return map_peak, (
        f"map (condition violated: mu={mu_map:g}, phi_1={phi_map:g}, sigma_0=1e-3, "
        f"{design.map_seeds} seeds): median peak {map_median:.3f}, fraction >= "
        f"{OMEGA_LEVEL:g}: {map_frac:.2f} (not asserted)"
    )


# --- the rules and controls, on either row's Sweep ---------------------------------------------


def _crossing_of(design: Design, u: Sweep) -> Crossing:
    return crossing(design, u.runs, u.pred.sig)


def _level(design: Design, u: Sweep) -> TestResult:
    return _level_test(_crossing_of(design, u), u.tag)


def _scaling(design: Design, u: Sweep) -> TestResult:
    return _scaling_test(_crossing_of(design, u), u.tag)


def _rate(design: Design, u: Sweep) -> TestResult:
    return _rate_test(_crossing_of(design, u), u.tag, u.pred.rate)


def _time(design: Design, u: Sweep) -> TestResult:
    return _time_test(_crossing_of(design, u), u.tag, u.pred.t_pred)


def _probe(design: Design, u: Sweep) -> TestResult:
    return _probe_test(_crossing_of(design, u), u.tag)


def _peak(design: Design, u: Sweep) -> TestResult:
    return _peak_test(u.runs, u.pred.esc.peak, u.tag, "peak", "its escape-path prediction")


def _mu0_level(design: Design, u: Sweep) -> TestResult:
    return _control(design, u.control_runs, u.pred.sig)


def _rate_for_fast(design: Design, u: Sweep) -> TestResult:
    wrong_rate = math.log1p(1.5 * math.expm1(u.pred.rate))  # ln(1 + 4 (1.5 eta) a_1)
    return _rate_test(_crossing_of(design, u), u.tag, wrong_rate, "control:rate-for-1.5eta")


def _time_for_init(design: Design, u: Sweep) -> TestResult:
    c = _crossing_of(design, u)
    return _time_test(c, u.tag, u.pred.t_pred_init, "control:time-for-init-x-sqrt-d")


def _probe_step0(design: Design, u: Sweep) -> TestResult:
    return _probe_test_step0(u.runs, u.tag)


def _peak_fast(design: Design, u: Sweep) -> TestResult:
    return _peak_test(
        u.runs, u.pred.esc.peak_fast, u.tag, "control:peak-for-1.5eta", "the 1.5 eta path"
    )


def _peak_saturation(design: Design, u: Sweep) -> TestResult:
    return _peak_test(
        u.runs,
        u.pred.esc.saturation,
        u.tag,
        "control:peak-one-mode-saturation",
        "one-mode saturation",
    )


# --- CC-early [p,d]: Thm 4.5's sqrt(d/p), with Fig. 2b's p = 500 ------------------------------

PD_SEED_OFFSET = 3 * 10**6  # the [p,d] units' seeds: disjoint from the sweep's and the map's
PD_POINT_STRIDE = 10**5


def pd_design(design: Design, p: int, d: int) -> Design:
    """The design of one (p, d) point: sigma_0 = pd_sigma_0, T = pd_steps."""
    return dataclasses.replace(
        design, p=p, d=d, steps=design.pd_steps, sigma_0s=(design.pd_sigma_0,)
    )


def log_amplitude_offset(p: int) -> float:
    """E ln(||g|| / sqrt(p)) for g ~ N(0, I_p): (psi(p/2) + ln(2/p)) / 2.

    ||Theta_0 u_1|| = sigma_0 sqrt(p/d) ||g|| / sqrt(p), so the crossing time's expected log
    amplitude is ln x plus this offset (-0.18 at p = 3, -0.001 at p = 500): without it the p = 3
    points would sit ~0.5 step late and tilt the slope on ln x by ~8%, inside the 10% margin.
    """
    return 0.5 * (float(special.digamma(p / 2)) + math.log(2 / p))


class PDUnits(NamedTuple):
    """Per unit (U,) of the [p,d] row: p, d, x_eff = sigma_0 sqrt(p/d) exp(offset(p)), t*,
    peak_t ||W_t v_2||, diverged, and the escape-path predictions (t_pred, its near miss with
    the init amplitude's p-dependence left out, and the peak)."""

    p: np.ndarray
    d: np.ndarray
    x_eff: np.ndarray
    t_star: np.ndarray
    peak: np.ndarray
    diverged: np.ndarray
    t_pred: np.ndarray
    t_pred_no_p: np.ndarray
    peak_pred: np.ndarray


def measure_pd(design: Design, key: int) -> PDUnits:
    cols: dict[str, list] = {f: [] for f in PDUnits._fields}
    p_ref = min(p for p, _ in design.pd_points)
    for i, (p, d) in enumerate(design.pd_points):
        dp = pd_design(design, p, d)
        lo = PD_SEED_OFFSET + i * PD_POINT_STRIDE
        seeds = list(range(lo, lo + design.pd_seeds))
        sig = np.full(len(seeds), design.pd_sigma_0)
        runs = run_gd(config(dp).replace(probe_every=-1), seeds, key, sigma_0=sig)
        esc = escape(dp, seeds, sig, key)
        v2 = runs.alignment[:, :, 2]
        x = design.pd_sigma_0 * math.sqrt(p / d) * math.exp(log_amplitude_offset(p))
        no_p = esc._replace(amp=esc.amp * math.sqrt(p_ref / p))
        for name, value in (
            ("p", np.full(len(seeds), p)),
            ("d", np.full(len(seeds), d)),
            ("x_eff", np.full(len(seeds), x)),
            ("t_star", first_crossing(v2, runs.steps, OMEGA_LEVEL)),
            ("peak", v2.max(axis=1)),
            ("diverged", runs.diverged),
            ("t_pred", predicted_crossing(dp, esc)),
            ("t_pred_no_p", predicted_crossing(dp, no_p)),
            ("peak_pred", esc.peak),
        ):
            cols[name].append(np.asarray(value))
    return PDUnits(**{k: np.concatenate(v) for k, v in cols.items()})


def _pd_crossed(u: PDUnits) -> np.ndarray:
    return ~u.diverged & np.isfinite(u.t_star)


def _pd_level(design: Design, u: PDUnits) -> TestResult:
    return fraction_test(
        "Omega(1)-level",
        _pd_crossed(u),
        PASS_FRACTION,
        statistic=f"||W_t v_2|| reaches {OMEGA_LEVEL:g} within T = {design.pd_steps} steps",
        rule=f"pass if it crosses (diverged: fail); holds if P(pass) > {PASS_FRACTION}",
        data={"p": u.p, "d": u.d, "peak": u.peak},
    )


def _pd_rate(design: Design, u: PDUnits, x: np.ndarray, name: str, what: str) -> TestResult:
    rate = math.log1p(
        4
        * design.lr
        * float(theory.scl_plus_eigenvalues(design.mu, 1.0, design.sigma_xi, design.m, design.n)[0])
    )
    lo, hi = -(1 + RATE_MARGIN) / rate, -(1 - RATE_MARGIN) / rate
    return slope_test(
        name,
        x,
        u.t_star,
        lo,
        hi,
        valid=_pd_crossed(u),
        log_y=False,
        statistic=f"slope of t* on ln {what}, sigma_0 = {design.pd_sigma_0:g} fixed, (p, d) in "
        f"{design.pd_points}",
        rule=f"TOST: slope within +-{RATE_MARGIN:.0%} of -1/ln(1 + 4 eta a_1): [{lo:.3f}, "
        f"{hi:.3f}]",
        data={"p": u.p, "d": u.d},
    )


def _pd_sqrt_rate(design: Design, u: PDUnits) -> TestResult:
    return _pd_rate(design, u, u.x_eff, "rate-in-sqrt(p/d)", "(sigma_0 sqrt(p/d) e^offset(p))")


def _pd_linear_rate(design: Design, u: PDUnits) -> TestResult:
    # x with p/d instead of its square root: the slope on it is half the true one.
    x_wrong = u.x_eff**2 / design.pd_sigma_0
    return _pd_rate(design, u, x_wrong, "control:rate-in-p/d", "(sigma_0 (p/d) e^2offset(p))")


def _pd_time(design: Design, u: PDUnits, t_pred: np.ndarray, name: str, what: str) -> TestResult:
    return fraction_test(
        name,
        _pd_crossed(u) & (np.abs(u.t_star - t_pred) <= TIME_TOLERANCE),
        PASS_FRACTION,
        statistic=f"t* - t_pred per unit, t_pred from {what}",
        rule=f"pass if |t* - t_pred| <= {TIME_TOLERANCE:g} steps (never crossing: fail); holds "
        f"if P(pass) > {PASS_FRACTION}",
        data={"p": u.p, "d": u.d, "t_star": u.t_star, "t_pred": t_pred},
    )


def _pd_time_own(design: Design, u: PDUnits) -> TestResult:
    return _pd_time(design, u, u.t_pred, "time", "its own Theta_0 (p x d) and M+")


def _pd_time_no_p(design: Design, u: PDUnits) -> TestResult:
    return _pd_time(
        design,
        u,
        u.t_pred_no_p,
        "control:time-without-sqrt(p)",
        "an init amplitude without its sqrt(p) growth (scaled to the smallest p)",
    )


def _pd_peak(design: Design, u: PDUnits) -> TestResult:
    rel = u.peak / u.peak_pred - 1.0
    return fraction_test(
        "peak",
        ~u.diverged & (np.abs(rel) <= PEAK_TOLERANCE),
        PASS_FRACTION,
        statistic="max_t ||W_t v_2|| against its escape-path prediction, every (p, d)",
        rule=f"pass if |peak / predicted - 1| <= {PEAK_TOLERANCE:.0%}; holds if P(pass) > "
        f"{PASS_FRACTION}",
        data={"p": u.p, "d": u.d, "peak": u.peak, "predicted": u.peak_pred},
    )


def describe_pd(design: Design, u: PDUnits) -> RowText:
    parts = []
    for p, d in design.pd_points:
        at = (u.p == p) & (u.d == d)
        parts.append(
            f"(p={p}, d={d}): median t* {np.nanmedian(u.t_star[at]):.0f} (predicted "
            f"{np.nanmedian(u.t_pred[at]):.0f}), median peak {np.median(u.peak[at]):.3f}"
        )
    return RowText(
        summary=f"SCL GD, (p, d) sweep incl. p = 500, {u.p.size} units",
        design=(
            f"as CC-early, sigma_0 = {design.pd_sigma_0:g}, T = {design.pd_steps}, (p, d) in "
            f"{design.pd_points}, {design.pd_seeds} seeds each (Fig. 2b's p = 500 at this "
            "row's n, m: its n = 1000, m = 5 instance costs ~1e9 flops per step)"
        ),
        notes=("; ".join(parts),),
    )


def describe_gd(design: Design, u: Sweep) -> RowText:
    esc = u.pred.esc
    assert u.map_peak is not None  # the GD row's sweep carries the map
    return RowText(
        summary=f"SCL GD, sigma_0 sweep, {u.pred.sig.size} units",
        design=(
            f"SCL GD float64, K={design.K} phi=1 mu={design.mu:g} balanced good-event "
            f"n={design.n} m={design.m} d={design.d} p={design.p} eta={design.lr:g} "
            f"T={design.steps}, sigma_0 in {design.sigma_0s}, {design.seeds} seeds each"
        ),
        notes=(
            f"median peak ||W_t v_2|| {np.median(u.runs.alignment[:, :, 2].max(1)):.3f} "
            f"(escape-path prediction {np.median(esc.peak):.3f}, one-mode saturation "
            f"{np.median(esc.saturation):.3f}); {u.map_note}",
        ),
        extra={"map_peak": u.map_peak.tolist()},
    )


def describe_sgd(design: Design, u: Sweep) -> RowText:
    """``CC-early [SGD]``: GD's tests on minibatch SGD; its peak is reported against GD's."""
    sgd_peak = u.runs.alignment[:, :, 2].max(axis=1)
    control_peak = _mu0_level(design, u).data["peak"]
    return RowText(
        summary=f"SCL SGD batch {design.sgd_batch}, {u.pred.sig.size} units",
        design=f"as CC-early, minibatch SGD batch {design.sgd_batch}/{design.n} originals",
        notes=(
            f"median peak ||W_t v_2|| {np.median(sgd_peak):.3f}, median ratio to GD's "
            f"escape-path peak {np.median(sgd_peak / u.pred.esc.peak):.3f}"
            " (reported, not asserted: SGD's minibatch noise moves its peak by a few %); mu = 0 "
            f"control: median peak {np.median(control_peak):.3f}, max "
            f"{max(v for v in control_peak if v is not None):.3f} (minibatch "
            "subclass imbalance kicks v_2 even at mu = 0)",
        ),
    )


def check(design: Design) -> None:
    """Raise ConfigError unless the design meets Thm 4.5's condition (phi_1 = 1)."""
    if not bool(theory.cc_early_condition(design.mu, 1.0)):
        raise ConfigError(
            f"invalid CC-early design.mu={design.mu}: must meet Thm 4.5's condition "
            "1 + mu^2 > phi_1^2 (phi_1 = 1)"
        )


_RULES = (
    Rule(
        "Omega(1)-level",
        f"peak_t ||W_t v_2|| >= {OMEGA_LEVEL:g} on a fraction > {PASS_FRACTION}",
        _level,
    ),
    Rule(
        "Omega(1)-scaling",
        f"slope of log peak on log(sigma_0 sqrt(p/d)) significantly <= {SLOPE_MARGIN:g}",
        _scaling,
    ),
    Rule(
        "rate",
        f"slope of t* on ln x within +-{RATE_MARGIN:.0%} of -1/ln(1 + 4 eta a_1) (TOST)",
        _rate,
    ),
    Rule(
        "time",
        f"|t* - t_pred| <= {TIME_TOLERANCE:g} steps, t_pred from the unit's own Theta_0 and M+ "
        f"(never crossing: fail), on a fraction > {PASS_FRACTION}",
        _time,
    ),
    Rule(
        "probe-at-t*",
        f"subclass probe accuracy at t* >= {PROBE_LEVEL:g} (never crossing: fail) on a "
        f"fraction > {PASS_FRACTION}",
        _probe,
    ),
)
_CONTROLS = (
    Rule("control:mu=0-level", "the level test on the mu = 0 runs", _mu0_level),
    Rule(
        "control:rate-for-1.5eta",
        "the rate test against -1/ln(1 + 4 (1.5 eta) a_1)",
        _rate_for_fast,
    ),
    Rule(
        "control:time-for-init-x-sqrt-d",
        "the time test against t_pred from Theta_0 x sqrt(d)",
        _time_for_init,
    ),
    Rule("control:probe-at-step-0", "the probe test at step 0 (before learning)", _probe_step0),
)

CLAIM = Claim(
    info=INFO,
    designs=DESIGNS,
    stream=STREAMS["CC-early"],
    check=check,
    rows=(
        Row(
            measure=measure_gd,
            rules=(
                *_RULES,
                Rule(
                    "peak",
                    f"|max_t ||W_t v_2|| / escape-path peak - 1| <= {PEAK_TOLERANCE:.0%} on a "
                    f"fraction > {PASS_FRACTION}",
                    _peak,
                ),
            ),
            controls=(
                *_CONTROLS,
                Rule(
                    "control:peak-for-1.5eta", "the peak test against the 1.5 eta path", _peak_fast
                ),
                Rule(
                    "control:peak-one-mode-saturation",
                    "the peak test against sqrt(a_1) / (u_1^T M u_1) |<u_1, v_2>|",
                    _peak_saturation,
                ),
            ),
            describe=describe_gd,
        ),
        Row(
            measure=measure_pd,
            rules=(
                Rule(
                    "Omega(1)-level",
                    f"||W_t v_2|| crosses {OMEGA_LEVEL:g} within T on a fraction > {PASS_FRACTION}",
                    _pd_level,
                ),
                Rule(
                    "rate-in-sqrt(p/d)",
                    f"slope of t* on ln(sigma_0 sqrt(p/d)) (+ E ln of the init's chi_p factor) "
                    f"within +-{RATE_MARGIN:.0%} of -1/ln(1 + 4 eta a_1) (TOST), sigma_0 fixed",
                    _pd_sqrt_rate,
                ),
                Rule(
                    "time",
                    f"|t* - t_pred| <= {TIME_TOLERANCE:g} steps on a fraction > {PASS_FRACTION}",
                    _pd_time_own,
                ),
                Rule(
                    "peak",
                    f"|peak / escape-path peak - 1| <= {PEAK_TOLERANCE:.0%} on a fraction > "
                    f"{PASS_FRACTION}",
                    _pd_peak,
                ),
            ),
            controls=(
                Rule("control:rate-in-p/d", "the rate test on ln(sigma_0 p/d)", _pd_linear_rate),
                Rule(
                    "control:time-without-sqrt(p)",
                    "the time test with the init amplitude's sqrt(p) growth left out",
                    _pd_time_no_p,
                ),
            ),
            describe=describe_pd,
            variant="p,d",
            source="Thm 4.5 (sqrt(d/p)); Fig. 2b's p = 500",
            control="the rate on ln(sigma_0 p/d), and t* without the init's sqrt(p): must fail",
        ),
        Row(
            measure=measure_sgd,
            rules=_RULES,
            controls=_CONTROLS,
            describe=describe_sgd,
            variant="SGD",
            control=INFO.control + " (SGD runs)",
        ),
    ),
)
