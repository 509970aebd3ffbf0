"""CC-unlearn (section 4.3, experiment/conjecture): GD learns v_2 early, then unlearns it.

Claim: ||W_t v_2|| rises, peaks, then decays to the min-norm value; the same for SGD. Design:
the CC-early runs (SCL, mu = 1, sigma_0 sweep, every unit its own seed; memoised, so no extra
training) plus the min-norm SCL minimizer of each unit's own training set.

Pre-registered per-unit statistic (FRACTION, holds if P(pass) > PASS_FRACTION, exact binomial;
a fraction because the statement is an experimental observation over random inits, not a
theorem exact on an event):

* GD ``rise-peak``: pass if peak = max_t ||W_t v_2|| >= OMEGA_LEVEL (it rose) and the peak is
  at 0 < t_peak <= T/2 (it peaked inside the run). Every unit.
* GD ``decay-to-min-norm``: pass if | ||W_T v_2|| - min-norm value | <= tol = TOL_FACTOR
  (kernel_bound + peak exp(-4 eta q_min (T - t_peak))), q_min the smallest eigenvalue of M on
  the (bias, v_2) plane: near the minimizer the v_2 part relaxes at the linearised rate 4 eta q
  of that block (THEORY.md section 5; checked against the runs). Tested only where it can tell
  the min-norm value from zero: units whose frozen-kernel part TOL_FACTOR x kernel_bound (set
  by sigma_0, before any run) is <= min-norm value / DISCRIMINATION. Near-miss control: the
  same rule against 0 (total collapse) on those units must fail.
* SGD ``rise-peak-decay``: same rise and peak conditions; constant-step SGD hovers at a noise
  floor above the min-norm value, so "decays" is: the mean over the last quarter of the steps
  is <= peak / UNLEARN_RATIO. The floor is reported next to the min-norm value.

Negative control: the same statistic on the mu = 0 runs (the theorem's mechanism switched off:
v_2 never rises) must fail; GD's on the GD runs, SGD's on SGD runs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simdyn import theory
from simdyn.papers.which_features import cc_early, common, simulators
from simdyn.papers.which_features.cc_early import DESIGNS as EARLY_DESIGNS
from simdyn.papers.which_features.cc_early import Design
from simdyn.papers.which_features.instances import alignment
from simdyn.papers.which_features.runs import Runs
from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo, Scale
from simdyn.verify.stats import TestResult, fraction_test

INFO = ClaimInfo(
    id="CC-unlearn",
    source="Sec 4.3 (experiment)",
    statement="GD later unlearns v_2: ||W_t v_2|| rises, peaks, decays to the min-norm value; "
    "same for SGD",
    control="same statistic with mu = 0 (no early rise): must fail",
)

PASS_FRACTION = 0.9
OMEGA_LEVEL = cc_early.OMEGA_LEVEL
TOL_FACTOR = 10.0
UNLEARN_RATIO = 4.0
DISCRIMINATION = 4.0  # decay tested where the tolerance's design part <= min-norm value / 4
RISE_RULE = f"pass if peak >= {OMEGA_LEVEL:g} and 0 < t_peak <= T/2"
DECAY_RULE = (
    f"pass if |final - min-norm| <= tol (derived); units with {TOL_FACTOR:g} kernel_bound "
    f"<= min-norm / {DISCRIMINATION:g} only"
)

DESIGNS: dict[Scale, Design] = dict(EARLY_DESIGNS)


def min_norm_v2(design: Design, seeds: list[int], key: int, mu: float) -> np.ndarray:
    """Min-norm SCL ||W v_2|| of each unit's training set."""
    data = cc_early.config(design, mu).data
    out = []
    for c in common.unit_moments(data, seeds, key, design.K):
        out.append(alignment(theory.min_norm_minimizer(c.m_plus, c.m, design.p).factor, 2)[2])
    return np.asarray(out)


def plane_q_min(design: Design, mu: float) -> float:
    """Smallest eigenvalue of M on the (bias, v_2) plane: [[1, mu], [mu, phi_2^2 + mu^2]] + s."""
    s = design.sigma_xi**2 / (design.m * design.n)
    block = np.array([[1.0, mu], [mu, 1.0 + mu**2]])
    return float(np.linalg.eigvalsh(block)[0]) + s


def _rise(design: Design, runs: Runs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(peak of ||W_t v_2||, its step, rose: peak >= OMEGA_LEVEL at 0 < t_peak <= T/2) per unit."""
    v2 = runs.alignment[:, :, 2]
    peak, t_peak = v2.max(axis=1), runs.steps[v2.argmax(axis=1)].astype(float)
    rose = (peak >= OMEGA_LEVEL) & (t_peak > 0) & (t_peak <= design.steps / 2)
    return peak, t_peak, rose


@simulators.memoised
def _min_norm(design: Design, key: int) -> np.ndarray:
    """The units' min-norm ||W v_2|| at the design's mu (memoised: both rows compare to it)."""
    seeds, _ = cc_early.units(design)
    return min_norm_v2(design, seeds, key, design.mu)


def _early_key(key: int) -> int:
    return common.stream_key(cc_early.CLAIM.id, key)  # CC-early's units, another statistic


class GDUnits(NamedTuple):
    """Per unit: sigma_0, min-norm value; the CC-early GD runs, its mu = 0 runs and their
    min-norm values."""

    sig: np.ndarray
    target: np.ndarray
    runs: Runs
    control_runs: Runs
    control_target: np.ndarray


class SGDUnits(NamedTuple):
    """Per unit: sigma_0, min-norm value; the CC-early SGD runs and its mu = 0 SGD runs."""

    sig: np.ndarray
    target: np.ndarray
    runs: Runs
    control_runs: Runs


def measure_gd(design: Design, key: int) -> GDUnits:
    key = _early_key(key)
    seeds, sig = cc_early.units(design)
    return GDUnits(
        sig,
        _min_norm(design, key),
        cc_early.sweep(design, key),
        cc_early.sweep(design, key, mu=0.0),
        min_norm_v2(design, seeds, key, 0.0),
    )


def measure_sgd(design: Design, key: int) -> SGDUnits:
    key = _early_key(key)
    return SGDUnits(
        cc_early.units(design)[1],
        _min_norm(design, key),
        cc_early.sweep(design, key, batch=design.sgd_batch),
        cc_early.sweep(design, key, mu=0.0, batch=design.sgd_batch),
    )


def _gd_pass(design: Design, runs: Runs, sig: np.ndarray, target: np.ndarray):
    peak, t_peak, rose = _rise(design, runs)
    final = runs.alignment[:, -1, 2]
    q_min = plane_q_min(design, design.mu)
    kernel = np.array([common.kernel_bound(s, design.p, design.d) for s in sig])
    decay = np.exp(-4 * design.lr * q_min * (design.steps - t_peak))
    tol = TOL_FACTOR * (kernel + peak * decay)
    return (
        rose,
        np.abs(final - target) <= tol,
        {
            "peak": peak,
            "t_peak": t_peak,
            "final": final,
            "min_norm": target,
            "tol": tol,
            "discriminating": TOL_FACTOR * kernel <= target / DISCRIMINATION,
        },
    )


def _sgd_pass(design: Design, runs: Runs):
    peak, t_peak, ok = _rise(design, runs)
    floor = common.last_quarter_mean(runs.alignment, 2)
    return ok & (floor <= peak / UNLEARN_RATIO), {"peak": peak, "t_peak": t_peak, "floor": floor}


def _test(name: str, passed, runs: Runs, data, rule: str, statistic: str) -> TestResult:
    return fraction_test(
        name,
        passed,
        PASS_FRACTION,
        valid=~runs.diverged,
        statistic=statistic,
        rule=rule + f"; holds if P(pass) > {PASS_FRACTION}",
        data=data,
    )


def _decay_test(
    name: str, passed: np.ndarray, sel: np.ndarray, runs: Runs, statistic: str, rule: str
) -> TestResult:
    """A FRACTION test on the decay units ``sel`` only (those that can tell min-norm from 0)."""
    return fraction_test(
        name,
        passed[sel],
        PASS_FRACTION,
        valid=~runs.diverged[sel],
        statistic=statistic,
        rule=rule + f"; holds if P(pass) > {PASS_FRACTION}",
    )


# --- row CC-unlearn: the CC-early GD runs against each unit's min-norm value -------------------


def _rise_peak(design: Design, u: GDUnits) -> TestResult:
    rose, _, data = _gd_pass(design, u.runs, u.sig, u.target)
    return _test("rise-peak", rose, u.runs, data, RISE_RULE, "GD: peak of ||W_t v_2|| and its step")


def _decay_to_min_norm(design: Design, u: GDUnits) -> TestResult:
    _, decayed, data = _gd_pass(design, u.runs, u.sig, u.target)
    return _decay_test(
        "decay-to-min-norm",
        decayed,
        data["discriminating"],
        u.runs,
        "| ||W_T v_2|| - min-norm value | on the decay units",
        DECAY_RULE,
    )


def _gd_mu0(design: Design, u: GDUnits) -> TestResult:
    rose, decayed, _ = _gd_pass(design, u.control_runs, u.sig, u.control_target)
    return _test(
        "control:mu=0",
        rose & decayed,
        u.control_runs,
        None,
        RISE_RULE + " and |final - min-norm| <= tol",
        "GD rise-peak-decay with mu = 0",
    )


def _decay_to_zero(design: Design, u: GDUnits) -> TestResult:
    _, _, data = _gd_pass(design, u.runs, u.sig, u.target)
    return _decay_test(
        "control:decay-to-zero",
        np.abs(data["final"]) <= data["tol"],
        data["discriminating"],
        u.runs,
        "|final - 0| on the decay units (total collapse predicted)",
        DECAY_RULE.replace("min-norm|", "0|"),
    )


def describe_gd(design: Design, u: GDUnits) -> RowText:
    _, _, data = _gd_pass(design, u.runs, u.sig, u.target)
    sel = data["discriminating"]
    return RowText(
        summary=f"SCL GD, sigma_0 sweep, {u.sig.size} units",
        design=(
            f"the CC-early GD runs (SCL mu={design.mu:g} n={design.n} d={design.d} "
            f"T={design.steps}, sigma_0 in {design.sigma_0s}, {design.seeds} seeds each) + "
            "min-norm SCL of each unit's training set"
        ),
        notes=(
            f"GD: median peak {np.median(data['peak']):.3f} at step "
            f"{np.median(data['t_peak']):.0f}; median |final - min-norm| "
            f"{np.median(np.abs(data['final'] - u.target)):.1e} (min-norm value "
            f"{np.median(u.target):.4f}, median tol {np.median(data['tol']):.1e}); decay "
            f"tested on {int(sel.sum())} of {sel.size} units (sigma_0 in "
            f"{sorted({float(s) for s in u.sig[sel]}, reverse=True)})",
        ),
    )


# --- row CC-unlearn [SGD]: rise, peak and decay to a noise floor (the CC-early SGD runs) -------

SGD_RULE = (
    f"pass if peak >= {OMEGA_LEVEL:g}, 0 < t_peak <= T/2 and last-quarter mean <= "
    f"peak/{UNLEARN_RATIO:g}"
)


def _rise_peak_decay(design: Design, u: SGDUnits) -> TestResult:
    ok, data = _sgd_pass(design, u.runs)
    return _test(
        "rise-peak-decay",
        ok,
        u.runs,
        data,
        SGD_RULE,
        "SGD: peak of ||W_t v_2||, its step, and the last-quarter mean",
    )


def _sgd_mu0(design: Design, u: SGDUnits) -> TestResult:
    ok, _ = _sgd_pass(design, u.control_runs)
    return _test(
        "control:mu=0", ok, u.control_runs, None, SGD_RULE, "SGD rise-peak-decay with mu = 0"
    )


def describe_sgd(design: Design, u: SGDUnits) -> RowText:
    _, data = _sgd_pass(design, u.runs)
    return RowText(
        summary=f"SCL SGD batch {design.sgd_batch}, {u.sig.size} units",
        design=f"the CC-early SGD runs (batch {design.sgd_batch}/{design.n})",
        notes=(
            f"SGD: median peak {np.median(data['peak']):.3f}, median last-quarter floor "
            f"{np.median(data['floor']):.4f} vs min-norm {np.median(u.target):.4f}: SGD "
            "unlearns down to a noise floor, not to the min-norm value",
        ),
    )


CLAIM = Claim(
    info=INFO,
    designs=DESIGNS,
    stream=None,  # CC-early's units and seed stream (derived in the measures)
    rows=(
        Row(
            measure=measure_gd,
            rules=(
                Rule(
                    "rise-peak",
                    f"peak_t ||W_t v_2|| >= {OMEGA_LEVEL:g} at 0 < t_peak <= T/2 on a fraction "
                    f"> {PASS_FRACTION}",
                    _rise_peak,
                ),
                Rule(
                    "decay-to-min-norm",
                    f"||W_T v_2|| within tol = {TOL_FACTOR:g} (kernel_bound + peak "
                    "exp(-4 eta q_min (T - t_peak))) of the min-norm value on a fraction > "
                    f"{PASS_FRACTION} of the units with {TOL_FACTOR:g} kernel_bound <= "
                    f"min-norm / {DISCRIMINATION:g}",
                    _decay_to_min_norm,
                ),
            ),
            controls=(
                Rule("control:mu=0", "rise-peak and decay together on the mu = 0 runs", _gd_mu0),
                Rule(
                    "control:decay-to-zero",
                    "the decay rule against 0 (total collapse) on the decay units",
                    _decay_to_zero,
                ),
            ),
            describe=describe_gd,
        ),
        Row(
            measure=measure_sgd,
            rules=(
                Rule(
                    "rise-peak-decay",
                    f"peak >= {OMEGA_LEVEL:g} at 0 < t_peak <= T/2 and last-quarter mean <= "
                    f"peak / {UNLEARN_RATIO:g} on a fraction > {PASS_FRACTION}",
                    _rise_peak_decay,
                ),
            ),
            controls=(Rule("control:mu=0", "the same rule on the mu = 0 SGD runs", _sgd_mu0),),
            describe=describe_sgd,
            variant="SGD",
            source=INFO.source,
            control=INFO.control + " (SGD runs)",
        ),
    ),
)
