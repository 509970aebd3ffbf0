"""CC-minnorm (Thm 4.4, 4.7): the min-norm SCL minimizer collapses the subclass.

Claim: ||W v_2|| = 0 when mu = 0 and O(sigma_xi / sqrt(mn)) when mu != 0, while ||W v_1|| =
Theta(1) (about 1/phi_1) and rank W = 2. Design: balanced good-event instances over a sweep of
n (m = 2, so x = sigma_xi / sqrt(mn) shrinks), ``seeds`` instances per size, min-norm minimizer
of each sampled instance in float64 (:func:`simdyn.theory.min_norm_minimizer` on the moments
restricted to the used coordinates, exact). Pre-registered sub-tests:

Every sub-test except the slopes is EXACT on the good event (balanced originals, distinct noise
coordinates off the feature block, which every instance here has): it is checked on every
instance and holds only with zero failures (:func:`simdyn.verify.stats.exact_test`). Its
round-off tolerance ``tol`` is derived, not chosen: :func:`roundoff_tol` = the largest
:func:`simdyn.verify.common.good_event_roundoff` over the design's sizes and mus (100 r eps
cond(M), r = mn + K + 1, cond(M) <= tr M / s; ~1.4e-8 at the quick design's n = 128, mu = 2).

* ``collapse-mu0`` (EXACT): pass if ||W v_2|| <= tol * ||W v_1|| (the exact value is 0).
* ``scaling-mu{mu}`` (SLOPE), one per mu != 0 of the sweep (Thm 4.7): log ||W v_2|| on log x;
  O(x) means it decays at least linearly, i.e. slope >= O_SLOPE_MIN (1 - 0.1 margin). (The
  exact value mu s / det, s = x^2, has slope ~2.)
* ``v1-about-1/phi1`` (EXACT): pass if |phi_1 ||W v_1|| - 1| <= ABOUT_TOL (every mu; the exact
  value 1/sqrt(phi_1^2 + s) is within 2% of 1/phi_1 at every size, so ABOUT_TOL is a margin on
  a deterministic number, not a rate).
* ``rank-2`` (EXACT): pass if W has exactly 2 singular values above tol * max.
* ``closed-form`` (EXACT): pass if every ||W v_j|| matches theory.predicted_alignment_scl to
  tol (1 + value): ties the sampled instances to the good-event formula.
Negative control: the same collapse and scaling statistics applied to the class feature v_1
(the wrong feature): it is learnt, so both must fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from simdyn import theory
from simdyn.config import ConfigError, DataConfig
from simdyn.papers.which_features import common
from simdyn.papers.which_features.common import STREAMS
from simdyn.papers.which_features.instances import alignment
from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo, Scale
from simdyn.verify.stats import TestResult, exact_test, slope_test

INFO = ClaimInfo(
    id="CC-minnorm",
    source="Thm 4.4, 4.7",
    statement="min-norm SCL: ||W v_2|| = 0 (mu=0) / O(sigma_xi/sqrt(mn)) (mu!=0); "
    "||W v_1|| ~ 1/phi_1; rank 2",
    control="collapse and O(x) statistics applied to v_1 (wrong feature): must fail",
)

O_SLOPE_MIN = 0.9
ABOUT_TOL = 0.1


@dataclass(frozen=True)
class Design:
    """Size sweep n in ``sizes`` (multiples of 8 (K - 2): exactly balanced), d = d_factor m n."""

    sizes: tuple[int, ...] = (16, 32, 64, 128)
    m: int = 2
    d_factor: int = 10
    K: int = 4
    phi: tuple[float, ...] = (1.25, 1.0, 1.0, 1.0)
    mus: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)  # mus[0] = 0 (Thm 4.4), the rest Thm 4.7
    sigma_xi: float = 1.0
    p: int = 3
    seeds: int = 16


DESIGNS: dict[Scale, Design] = {
    "small": Design(sizes=(16, 32, 48), seeds=16),
    "quick": Design(),
    # The thousands-of-seeds design: quick sizes, >= 1000 independent units per design point.
    "full": Design(seeds=1000),
}


def roundoff_tol(design: Design) -> float:
    """The design's derived round-off tolerance: the largest good_event_roundoff over its
    sizes and mus (module docs)."""
    return max(
        common.good_event_roundoff(design.phi, design.sigma_xi, design.m, n, mu)
        for n in design.sizes
        for mu in design.mus
    )


def data_config(design, n: int, mu: float) -> DataConfig:
    """Balanced good-event data of one size (shared with CC-exists)."""
    d = design.d_factor * design.m * n + design.K
    return common.good_event_data(n, design.m, d, design.phi, design.sigma_xi, mu=mu, n_test=400)


def _sweep(design: Design, mu: float, key: int, offset: int) -> dict[str, np.ndarray]:
    """Min-norm SCL alignments, rank, prediction and x = sigma_xi/sqrt(mn) for every unit."""
    rows: dict[str, list] = {"x": [], "align": [], "rank": [], "pred": []}
    seeds = common.units_seeds(len(design.sizes), design.seeds, offset)
    for n, unit_seeds in zip(design.sizes, seeds, strict=True):
        pred = np.asarray(
            theory.predicted_alignment_scl(design.phi, mu, design.sigma_xi, design.m, n, design.p)
        )
        for c in common.unit_moments(data_config(design, n, mu), unit_seeds, key, design.K):
            sol = theory.min_norm_minimizer(c.m_plus, c.m, design.p)
            sv = np.linalg.svd(sol.factor, compute_uv=False)
            rows["x"].append(design.sigma_xi / math.sqrt(design.m * n))
            rows["align"].append(alignment(sol.factor, design.K))
            rows["rank"].append(int(np.sum(sv > roundoff_tol(design) * sv.max())))
            rows["pred"].append(pred)
    return {k: np.asarray(v) for k, v in rows.items()}


def check(design: Design) -> None:
    """Raise ConfigError unless mus is 0 followed by non-zero values."""
    if design.mus[0] != 0.0 or len(design.mus) < 2 or 0.0 in design.mus[1:]:
        raise ConfigError(f"invalid CC-minnorm mus={design.mus}: must be 0 then non-zero values")


class Sweeps(NamedTuple):
    """Per-unit arrays (x, align (U, K+1), rank, pred) of the mu = 0 sweep, of each mu != 0 and
    of all of them together (distinct seeds per mu: the pooled sub-tests need independent units).
    """

    mu0: dict[str, np.ndarray]
    nonzero: list[tuple[float, dict[str, np.ndarray]]]
    both: dict[str, np.ndarray]


def measure(design: Design, key: int) -> Sweeps:
    per_mu = len(design.sizes) * design.seeds
    sweeps = [_sweep(design, mu, key, i * per_mu) for i, mu in enumerate(design.mus)]
    both = {k: np.concatenate([sw[k] for sw in sweeps]) for k in sweeps[0]}
    return Sweeps(sweeps[0], list(zip(design.mus[1:], sweeps[1:], strict=True)), both)


def _valid(align: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(align), axis=1)


def _collapse(design: Design, u: Sweeps) -> TestResult:
    tol = roundoff_tol(design)
    return exact_test(
        "collapse-mu0",
        u.mu0["align"][:, 2] <= tol * u.mu0["align"][:, 1],
        statistic="||W v_2|| / ||W v_1|| of the min-norm SCL minimizer, mu = 0",
        rule=f"pass if <= {tol:.2g} (derived round-off); holds iff every instance passes",
        valid=_valid(u.mu0["align"]),
        data={"w_v2": u.mu0["align"][:, 2], "w_v1": u.mu0["align"][:, 1]},
    )


def _scaling(design: Design, u: Sweeps) -> list[TestResult]:
    return [
        slope_test(
            f"scaling-mu{mu:g}",
            sw["x"],
            sw["align"][:, 2],
            O_SLOPE_MIN,
            math.inf,
            statistic=f"slope of log ||W v_2|| on log(sigma_xi/sqrt(mn)), mu = {mu:g}",
            rule=f"O(x): holds if the slope is significantly >= {O_SLOPE_MIN}",
        )
        for mu, sw in u.nonzero
    ]


def _about(design: Design, u: Sweeps) -> TestResult:
    return exact_test(
        "v1-about-1/phi1",
        np.abs(design.phi[0] * u.both["align"][:, 1] - 1.0) <= ABOUT_TOL,
        statistic="phi_1 ||W v_1|| (every mu)",
        rule=f"pass if within {ABOUT_TOL:g} of 1; holds iff every instance passes",
        valid=_valid(u.both["align"]),
        data={"w_v1": u.both["align"][:, 1]},
    )


def _rank(design: Design, u: Sweeps) -> TestResult:
    return exact_test(
        "rank-2",
        u.both["rank"] == 2,
        statistic=f"numerical rank of W (singular values > {roundoff_tol(design):.2g} max)",
        rule="pass if rank == 2; holds iff every instance passes",
        valid=_valid(u.both["align"]),
        data={"rank": u.both["rank"]},
    )


def _closed_form_error(u: Sweeps) -> np.ndarray:
    return common.relative_error(u.both["align"], u.both["pred"])


def _closed_form(design: Design, u: Sweeps) -> TestResult:
    err = _closed_form_error(u)
    tol = roundoff_tol(design)
    return exact_test(
        "closed-form",
        err <= tol,
        statistic="max_j |W v_j - predicted_alignment_scl_j| / (1 + predicted)",
        rule=f"pass if <= {tol:.2g} (derived round-off); holds iff every instance passes",
        valid=_valid(u.both["align"]),
        data={"error": err},
    )


def _collapse_of_v1(design: Design, u: Sweeps) -> TestResult:
    tol = roundoff_tol(design)
    return exact_test(
        "control:collapse-of-v1",
        u.mu0["align"][:, 1] <= tol / design.phi[0],
        statistic="||W v_1|| (wrong feature) of the min-norm SCL minimizer, mu = 0",
        rule=f"pass if <= {tol:.2g}/phi_1; holds iff every instance passes",
    )


def _scaling_of_v1(design: Design, u: Sweeps) -> TestResult:
    return slope_test(
        "control:scaling-of-v1",
        np.concatenate([sw["x"] for _, sw in u.nonzero]),
        np.concatenate([sw["align"][:, 1] for _, sw in u.nonzero]),
        O_SLOPE_MIN,
        math.inf,
        statistic="slope of log ||W v_1|| (wrong feature) on log x, every mu != 0",
        rule=f"holds if the slope is significantly >= {O_SLOPE_MIN}",
    )


def describe(design: Design, u: Sweeps) -> RowText:
    fits = ", ".join(
        f"mu={mu:g}: {t.estimate:.3f}"
        for mu, t in zip(design.mus[1:], _scaling(design, u), strict=True)
    )
    return RowText(
        summary=f"closed form, n x mu sweep, {len(design.mus) * len(design.sizes) * design.seeds} "
        "units",
        design=(
            f"closed-form min-norm SCL on balanced good-event instances, K={design.K} "
            f"phi={design.phi} m={design.m} n in {design.sizes} (d={design.d_factor}mn+K), "
            f"sigma_xi={design.sigma_xi:g} p={design.p}, mu in {design.mus}; "
            f"{design.seeds} seeds/size"
        ),
        notes=(
            f"fitted slope of ||W v_2|| vs sigma_xi/sqrt(mn): {fits} (exact "
            "min-norm value mu s/det, s = sigma_xi^2/(mn), has slope -> 2): the O(.) bound "
            "holds with room; max |W v_j - closed form| = "
            f"{np.nanmax(_closed_form_error(u)):.1e}",
        ),
    )


CLAIM = Claim(
    info=INFO,
    designs=DESIGNS,
    stream=STREAMS["CC-minnorm"],
    check=check,
    rows=(
        Row(
            measure=measure,
            rules=(
                Rule(
                    "collapse-mu0",
                    "mu = 0: ||W v_2|| <= tol ||W v_1|| on EVERY instance (tol: derived "
                    "float64 round-off, roundoff_tol)",
                    _collapse,
                ),
                Rule(
                    "scaling-mu{mu}",
                    f"each mu != 0: slope of log ||W v_2|| on log "
                    f"(sigma_xi/sqrt(mn)) significantly >= {O_SLOPE_MIN}",
                    _scaling,
                ),
                Rule(
                    "v1-about-1/phi1",
                    f"|phi_1 ||W v_1|| - 1| <= {ABOUT_TOL:g} on every instance",
                    _about,
                ),
                Rule(
                    "rank-2",
                    "rank W = 2 (singular values > tol max) on every instance",
                    _rank,
                ),
                Rule(
                    "closed-form",
                    "every ||W v_j|| within tol (1 + value) of predicted_alignment_scl on "
                    "every instance",
                    _closed_form,
                ),
            ),
            controls=(
                Rule(
                    "control:collapse-of-v1",
                    "(wrong feature) the collapse statistic on v_1",
                    _collapse_of_v1,
                ),
                Rule(
                    "control:scaling-of-v1", "(wrong feature) the O(x) slope on v_1", _scaling_of_v1
                ),
            ),
            describe=describe,
        ),
    ),
)
