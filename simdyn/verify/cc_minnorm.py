"""CC-minnorm (Thm 4.4, 4.7): the min-norm SCL minimizer collapses the subclass.

Claim: ||W v_2|| = 0 when mu = 0 and O(sigma_xi / sqrt(mn)) when mu != 0, while ||W v_1|| =
Theta(1) (about 1/phi_1) and rank W = 2. Design: balanced good-event instances over a sweep of
n (m = 2, so x = sigma_xi / sqrt(mn) shrinks), ``seeds`` instances per size, min-norm minimizer
of each sampled instance in float64 (:func:`simdyn.theory.min_norm_minimizer` on the moments
restricted to the used coordinates, exact). Pre-registered sub-tests:

* ``collapse-mu0`` (FRACTION): pass if ||W v_2|| <= EXACT_ZERO * ||W v_1|| (float64 round-off of
  an eigendecomposition of size r ~ mn is ~ r eps cond(M) < 1e-10).
* ``scaling-mu{mu}`` (SLOPE), one per mu != 0 of the sweep (Thm 4.7): log ||W v_2|| on log x;
  O(x) means it decays at least linearly, i.e. slope >= O_SLOPE_MIN (1 - 0.1 margin). (The
  exact value mu s / det, s = x^2, has slope ~2.)
* ``v1-about-1/phi1`` (FRACTION): pass if |phi_1 ||W v_1|| - 1| <= ABOUT_TOL (every mu).
* ``rank-2`` (FRACTION): pass if W has exactly 2 singular values above RANK_RTOL * max.
* ``closed-form`` (FRACTION): pass if every ||W v_j|| matches theory.predicted_alignment_scl to
  CLOSED_FORM_TOL (1 + value): ties the sampled instances to the good-event formula.

Each FRACTION sub-test holds if the exact binomial test gives P(pass) > PASS_FRACTION.
Negative control: the same collapse and scaling statistics applied to the class feature v_1
(the wrong feature): it is learnt, so both must fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from simdyn import theory
from simdyn.config import DataConfig
from simdyn.verify import common
from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo, Scale
from simdyn.verify.instances import alignment
from simdyn.verify.stats import TestResult, fraction_test, slope_test

INFO = ClaimInfo(
    id="CC-minnorm",
    source="Thm 4.4, 4.7",
    statement="min-norm SCL: ||W v_2|| = 0 (mu=0) / O(sigma_xi/sqrt(mn)) (mu!=0); "
    "||W v_1|| ~ 1/phi_1; rank 2",
    control="collapse and O(x) statistics applied to v_1 (wrong feature): must fail",
)

PASS_FRACTION = 0.9
EXACT_ZERO = 1e-8
O_SLOPE_MIN = 0.9
ABOUT_TOL = 0.1
RANK_RTOL = 1e-8
CLOSED_FORM_TOL = 1e-6


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
            rows["rank"].append(int(np.sum(sv > RANK_RTOL * sv.max())))
            rows["pred"].append(pred)
    return {k: np.asarray(v) for k, v in rows.items()}


def check(design: Design) -> None:
    """Raise ValueError unless mus is 0 followed by non-zero values."""
    if design.mus[0] != 0.0 or len(design.mus) < 2 or 0.0 in design.mus[1:]:
        raise ValueError(f"CC-minnorm mus: must be 0 then non-zero values, got {design.mus}")


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
    return fraction_test(
        "collapse-mu0",
        u.mu0["align"][:, 2] <= EXACT_ZERO * u.mu0["align"][:, 1],
        PASS_FRACTION,
        statistic="||W v_2|| / ||W v_1|| of the min-norm SCL minimizer, mu = 0",
        rule=f"pass if <= {EXACT_ZERO:g}; holds if P(pass) > {PASS_FRACTION}",
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
    return fraction_test(
        "v1-about-1/phi1",
        np.abs(design.phi[0] * u.both["align"][:, 1] - 1.0) <= ABOUT_TOL,
        PASS_FRACTION,
        statistic="phi_1 ||W v_1|| (every mu)",
        rule=f"pass if within {ABOUT_TOL:g} of 1; holds if P(pass) > {PASS_FRACTION}",
        valid=_valid(u.both["align"]),
        data={"w_v1": u.both["align"][:, 1]},
    )


def _rank(design: Design, u: Sweeps) -> TestResult:
    return fraction_test(
        "rank-2",
        u.both["rank"] == 2,
        PASS_FRACTION,
        statistic=f"numerical rank of W (singular values > {RANK_RTOL:g} max)",
        rule=f"pass if rank == 2; holds if P(pass) > {PASS_FRACTION}",
        valid=_valid(u.both["align"]),
        data={"rank": u.both["rank"]},
    )


def _closed_form_error(u: Sweeps) -> np.ndarray:
    return common.relative_error(u.both["align"], u.both["pred"])


def _closed_form(design: Design, u: Sweeps) -> TestResult:
    err = _closed_form_error(u)
    return fraction_test(
        "closed-form",
        err <= CLOSED_FORM_TOL,
        PASS_FRACTION,
        statistic="max_j |W v_j - predicted_alignment_scl_j| / (1 + predicted)",
        rule=f"pass if <= {CLOSED_FORM_TOL:g}; holds if P(pass) > {PASS_FRACTION}",
        valid=_valid(u.both["align"]),
        data={"error": err},
    )


def _collapse_of_v1(design: Design, u: Sweeps) -> TestResult:
    return fraction_test(
        "control:collapse-of-v1",
        u.mu0["align"][:, 1] <= EXACT_ZERO / design.phi[0],
        PASS_FRACTION,
        statistic="||W v_1|| (wrong feature) of the min-norm SCL minimizer, mu = 0",
        rule=f"pass if <= {EXACT_ZERO:g}/phi_1; holds if P(pass) > {PASS_FRACTION}",
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
    stream="CC-minnorm",
    check=check,
    rows=(
        Row(
            measure=measure,
            rules=(
                Rule(
                    "collapse-mu0",
                    f"mu = 0: ||W v_2|| <= {EXACT_ZERO:g} ||W v_1|| on a "
                    f"fraction > {PASS_FRACTION} of instances",
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
                    f"|phi_1 ||W v_1|| - 1| <= {ABOUT_TOL:g} on a fraction > {PASS_FRACTION}",
                    _about,
                ),
                Rule(
                    "rank-2",
                    f"rank W = 2 (singular values > {RANK_RTOL:g} max) on a "
                    f"fraction > {PASS_FRACTION}",
                    _rank,
                ),
                Rule(
                    "closed-form",
                    f"every ||W v_j|| within {CLOSED_FORM_TOL:g} (1 + value) of "
                    f"predicted_alignment_scl on a fraction > {PASS_FRACTION}",
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
