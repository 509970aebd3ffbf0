"""FS-tie (Rem. 5.2's tie case): inside UCL's tied eigenspace min norm keeps M's largest directions.

For UCL, Q^+ P = M^+ M~ is a projector: every non-zero eigenvalue of C = S^+ M~ S^+ is 1, so
every p-dimensional subspace of its eigenvalue-1 space E gives a global minimizer, and the
minimum-norm one takes the directions of the LARGEST eigenvalues of M (Rem. 5.2: the p largest
entries of L). The case this row tests is the tie of phi_1^2 with the p-th largest entry of L:
K = p = 3, phi_1 = 0.8, phi_2 = 1, phi_3^2 = phi_1^2 (1 + delta), so v_1 and v_3 compete for the
last slot (the bias and v_2, M-eigenvalues 1 + s, take the first two).

Brute force, independent of :func:`simdyn.theory.min_norm_minimizer`'s whitening and tie logic.
On a good-event balanced instance colsp(M~) is an invariant subspace of M (checked on every
instance: ||(I - Pi) M Pi||_F <= tol ||M||_F, Pi the projector on colsp(M~)), so E is spanned by
the eigenvectors u_i of M inside colsp(M~) (eigenvalues a_i, from R^T M R with R an orthonormal
basis of colsp(M~)), and the global minimizers built from p of them are W^T W = G_S =
sum_{i in S} u_i u_i^T / a_i with squared norm tr G_S = sum_{i in S} 1 / a_i. Every p-subset S of
the rank(M~) directions is enumerated (C(24, 3) = 2024 per instance at n = 24); the winner S* has
the smallest norm, the runner-up S' the next one.

Pre-registered sub-tests, EXACT (the statement is exact on the good event; every instance, zero
failures), tol = :func:`simdyn.verify.common.good_event_roundoff` (100 r eps cond(M), cond(M) <=
tr M / s from the config; ~2e-10 here):

* ``invariant[{point}]``: the precondition above.
* ``min-norm[{point}]``: ||W||_F^2 of theory.min_norm_minimizer equals tr G_S* within tol (relative)
  and W is a global minimizer (theory.minimizer_residual <= sqrt(tol), as FS-dim's residuals).
* ``tie-break[{point}]`` (near ties, delta = +-DELTA): the closed form's Gram matrix equals
  G_S* within tol / g of ||G_S*||_F, g = (tr G_S' - tr G_S*) / tr G_S* the instance's relative
  norm gap between the two candidates (brute force). Why tol / g: inside the tied space the
  closed form separates the candidates by an eigendecomposition whose two eigenvalues differ by
  g (relative), and a symmetric perturbation of relative size tol turns an eigenvector by at
  most tol / g (Davis-Kahan); the Gram matrix inherits it. DELTA = 1e-6 gives g ~ 4e-7, so the
  bound is ~6e-4 (measured errors ~3e-8), while choosing the wrong candidate moves the Gram by
  O(1): the tie-break is decided by the data, yet no practical GD run could resolve it (FS-dim's
  tie leftover). ||W v_1|| (0 when v_3 wins, delta > 0; about 1/phi_1 when v_1 wins) follows
  from the Gram and is reported.
* ``exact-tie[tie]`` (delta = 0): tr G_S' - tr G_S* <= tol tr G_S*: the minimum norm is attained
  by both choices (the min-norm minimizer is not unique; min_norm_minimizer returns one of them).

Negative control (a near miss): the tie broken the other way, S' (v_1 and v_3 swapped in the
last slot) as the prediction of the ``tie-break`` rule at the near-tie points: must fail.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from simdyn import theory
from simdyn.papers.which_features import common
from simdyn.papers.which_features.common import STREAMS
from simdyn.papers.which_features.instances import (
    alignment,
    compressed_moments,
    instance,
    sample_instances,
)
from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo, Scale
from simdyn.verify.stats import TestResult, exact_test

INFO = ClaimInfo(
    id="FS-tie",
    source="Rem 5.2 (tie case)",
    statement=(
        "UCL, mu = 0, phi_1^2 tied with the p-th largest entry of L: min norm picks inside the "
        "tied eigenspace by the largest eigenvalues of M (brute force over every p-subset); at "
        "an exact tie both choices have the minimum norm"
    ),
    control="the tie broken the other way (the runner-up subset) as the prediction: must fail",
)

DELTA = 1e-6
PHI_1 = 0.8
POINTS: tuple[tuple[str, float], ...] = (("v1-wins", -DELTA), ("v3-wins", DELTA), ("tie", 0.0))


@dataclass(frozen=True)
class Design:
    """Balanced good-event UCL instances, K = p = 3 (THEORY.md section 1's example)."""

    n: int = 24
    m: int = 2
    d: int = 300
    sigma_xi: float = 1.0
    p: int = 3
    seeds: int = 64  # per point


DESIGNS: dict[Scale, Design] = {
    "small": Design(seeds=6),
    "quick": Design(),
    "full": Design(seeds=1000),
}


def phi(delta: float) -> tuple[float, float, float]:
    """(phi_1, phi_2, phi_3) with phi_3^2 = phi_1^2 (1 + delta)."""
    return (PHI_1, 1.0, PHI_1 * float(np.sqrt(1.0 + delta)))


def tol(design: Design) -> float:
    """The derived round-off tolerance (module docs), largest over the points."""
    return max(
        common.good_event_roundoff(phi(dl), design.sigma_xi, design.m, design.n) for _, dl in POINTS
    )


def brute_force(m: np.ndarray, m_tilde: np.ndarray, p: int) -> tuple[list, np.ndarray, float]:
    """Every p-subset of M's eigen-directions inside colsp(M~), by norm.

    Args:
        m, m_tilde: (r, r) moments on the used coordinates. p: model rows.

    Returns:
        (Grams of the best and the runner-up subsets [(r, r), (r, r)], their squared norms (2,),
        the invariance defect ||(I - Pi) M Pi||_F / ||M||_F).
    """
    w, V = np.linalg.eigh(m_tilde)
    R = V[:, w > w.max() * m.shape[0] * np.finfo(float).eps * 10]
    pi = R @ R.T
    defect = float(np.linalg.norm(m @ pi - pi @ m @ pi) / np.linalg.norm(m))
    a, Y = np.linalg.eigh(R.T @ m @ R)
    U = R @ Y
    subsets = np.asarray(list(itertools.combinations(range(a.size), p)))
    norms = np.sum(1.0 / a[subsets], axis=1)
    order = np.argsort(norms)[:2]
    grams = [(U[:, s] / a[s]) @ U[:, s].T for s in subsets[order]]
    return grams, norms[order], defect


def measure(design: Design, key: int) -> dict[str, np.ndarray]:
    """Per instance (points in POINTS order, disjoint seeds): the closed form against brute
    force."""
    rows: dict[str, list] = {
        k: [] for k in ("defect", "norm_err", "residual", "gram_err", "other_err", "w1", "gap")
    }
    labels = []
    for (name, delta), seeds in zip(
        POINTS, common.units_seeds(len(POINTS), design.seeds), strict=True
    ):
        data = common.good_event_data(design.n, design.m, design.d, phi(delta), design.sigma_xi)
        sets = sample_instances(data, seeds, key)
        for u in range(len(seeds)):
            c = compressed_moments(instance(sets, u), 3)
            sol = theory.min_norm_minimizer(c.m_tilde, c.m, design.p)
            (best, second), norms, defect = brute_force(c.m, c.m_tilde, design.p)
            gram = sol.factor.T @ sol.factor
            res = theory.minimizer_residual(sol.factor, c.m_tilde, c.m, design.p)
            rows["defect"].append(defect)
            rows["norm_err"].append(abs(np.trace(gram) - norms[0]) / norms[0])
            rows["residual"].append(float(res))
            rows["gram_err"].append(np.linalg.norm(gram - best) / np.linalg.norm(best))
            rows["other_err"].append(np.linalg.norm(gram - second) / np.linalg.norm(second))
            rows["w1"].append(float(alignment(sol.factor, 3)[1]))
            rows["gap"].append((norms[1] - norms[0]) / norms[0])
            labels.append(name)
    out = common.float_arrays(rows)
    out["point"] = np.asarray(labels)
    return out


def _exact(name: str, passed, r, point: str, statistic: str, rule: str, data) -> TestResult:
    sel = r["point"] == point
    return exact_test(
        f"{name}[{point}]",
        passed,
        valid=np.isfinite(r["gram_err"]),
        scope=sel,
        statistic=statistic,
        rule=rule,
        data=data,
    )


def _invariant(design: Design, r: dict[str, np.ndarray]) -> list[TestResult]:
    t = tol(design)
    return [
        _exact(
            "invariant",
            r["defect"] <= t,
            r,
            name,
            "||(I - Pi) M Pi||_F / ||M||_F, Pi the projector on colsp(M~)",
            f"pass if <= {t:.2g}; holds iff every instance passes",
            {"defect": r["defect"]},
        )
        for name, _ in POINTS
    ]


def _min_norm(design: Design, r: dict[str, np.ndarray]) -> list[TestResult]:
    t = tol(design)
    passed = (r["norm_err"] <= t) & (r["residual"] <= np.sqrt(t))
    return [
        _exact(
            "min-norm",
            passed,
            r,
            name,
            "relative gap of ||W||_F^2 (closed form) to the brute-force minimum; its minimizer "
            "residual",
            f"pass if gap <= {t:.2g} and residual <= {np.sqrt(t):.2g}; every instance",
            {"norm_err": r["norm_err"], "residual": r["residual"]},
        )
        for name, _ in POINTS
    ]


def _tie_break(err: str, name: str):
    def evaluate(design: Design, r: dict[str, np.ndarray]) -> list[TestResult]:
        t = tol(design)
        out = []
        for point, delta in POINTS:
            if delta == 0.0:
                continue
            out.append(
                _exact(
                    name,
                    r[err] <= t / np.maximum(r["gap"], np.finfo(float).tiny),
                    r,
                    point,
                    "||G - G_S||_F / ||G_S||_F of the closed form's Gram against the brute-force "
                    + ("winner" if err == "gram_err" else "runner-up (tie broken the other way)")
                    + f" ({'v_3' if delta > 0 else 'v_1'} wins the last slot)",
                    f"pass if <= {t:.2g} / g (g the candidates' relative norm gap, Davis-Kahan)",
                    {err: r[err], "gap": r["gap"], "w1": r["w1"]},
                )
            )
        return out

    return evaluate


def _exact_tie(design: Design, r: dict[str, np.ndarray]) -> TestResult:
    t = tol(design)
    return _exact(
        "exact-tie",
        r["gap"] <= t,
        r,
        "tie",
        "relative norm gap between the best and the runner-up p-subsets",
        f"pass if <= {t:.2g} (both choices are min-norm); every instance",
        {"gap": r["gap"]},
    )


def describe(design: Design, r: dict[str, np.ndarray]) -> RowText:
    near = r["point"] != "tie"
    return RowText(
        summary=f"UCL K=p=3 ties, {len(POINTS)} points x {design.seeds} instances",
        design=(
            f"balanced good-event UCL, K = p = 3, phi = (0.8, 1, 0.8 sqrt(1 + delta)), delta in "
            f"{[d for _, d in POINTS]}, n={design.n} m={design.m} d={design.d} "
            f"sigma_xi={design.sigma_xi:g}, {design.seeds} instances per delta; brute force over "
            "every p-subset of M's eigen-directions in colsp(M~)"
        ),
        notes=(
            f"largest closed-form Gram error {np.max(r['gram_err'][near]):.1e}; ||W v_1|| median "
            f"{np.median(r['w1'][r['point'] == 'v1-wins']):.3g} (v1-wins), max "
            f"{np.max(r['w1'][r['point'] == 'v3-wins']):.1e} (v3-wins); near-tie norm gap "
            f"{np.median(r['gap'][near]):.1e} (median), exact-tie gap "
            f"{np.max(r['gap'][~near]):.1e} (max); tol {tol(design):.1e}",
        ),
    )


CLAIM = Claim(
    info=INFO,
    designs=DESIGNS,
    stream=STREAMS["FS-tie"],
    rows=(
        Row(
            measure=measure,
            rules=(
                Rule(
                    "invariant[{point}]",
                    "colsp(M~) is M-invariant to the derived round-off, every instance",
                    _invariant,
                ),
                Rule(
                    "min-norm[{point}]",
                    "||W||_F^2 of theory.min_norm_minimizer = brute-force minimum (round-off) and "
                    "W a global minimizer, every instance",
                    _min_norm,
                ),
                Rule(
                    "tie-break[{point}]",
                    "near ties (delta = +-1e-6): closed-form Gram = the brute-force winner's "
                    "within tol / (relative norm gap) (Davis-Kahan), every instance",
                    _tie_break("gram_err", "tie-break"),
                ),
                Rule(
                    "exact-tie[tie]",
                    "delta = 0: the best and runner-up subsets have the same norm (round-off), "
                    "every instance",
                    _exact_tie,
                ),
            ),
            controls=(
                Rule(
                    "control:tie-broken-other-way[{point}]",
                    "(near miss) the tie-break rule against the runner-up subset",
                    _tie_break("other_err", "control:tie-broken-other-way"),
                ),
            ),
            describe=describe,
        ),
    ),
)
