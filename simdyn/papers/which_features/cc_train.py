"""CC-train (Prop. 4.2): every SCL minimizer maps same-class training points to one embedding.

Pre-registered statistic: the within-class spread of the training embeddings,

    r = max_i ||f(x_i) - fbar_{y_i}|| / ||fbar_+ - fbar_-||      (fbar_c: class mean embedding),

zero for an exactly collapsed minimizer. Two routes to SCL minimizers, each EXACT: checked on
every instance, holding only with zero failing instances (the proposition is exact, and each
tolerance below is a derived bound, not a typical size):

* ``gd-endpoints``: full-batch GD, float64, balanced good-event data (mu = 1) and i.i.d. labels
  (mu = 0); a unit passes if r <= r_tol with r_tol = TOL_FACTOR x (frozen init part
  kernel_bound(sigma_0, p, d) * max_i ||x~_i|| + escape/relaxation residual of the class mode,
  relaxation(eta, phi_1^2 + s, T - escape)) / ||fbar_+ - fbar_-||: Theta's rows beyond
  rank M+ never leave their init scale, and everything else has relaxed by T.
* ``random-minimizers`` (DETERMINISTIC, largest error against a derived tolerance, no p-value):
  random members of the minimizer set (Lemma B.2): Theta = R [W*; c g^T] with W* the min-norm
  factor, g a random unit vector of ker M, c ~ U(0, 10), R a random rotation; every instance
  must have Theta a global minimizer (residual <= sqrt(tol)) and r <= tol, tol = the derived
  float64 round-off :func:`roundoff_tol` (common.good_event_roundoff: 100 r eps cond(M) with
  r = mn + K + 1 and cond(M) <= tr M / s, ~6e-10 at the quick design; a residual
  max(stationarity, sqrt|loss gap|) carries sqrt of it). True by construction up to round-off
  (the added row lies in ker M), so it checks the closed forms, not the theorem.

Negative control: the same pipeline on GD endpoints of UCL (the proposition's premise, the SCL
loss, violated): UCL keeps instance information, so r is O(1) and the test must fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from simdyn import theory
from simdyn.config import Config, DataConfig, LossName, ModelConfig, Sampling, TrainConfig
from simdyn.papers.which_features import common
from simdyn.papers.which_features.common import STREAMS
from simdyn.papers.which_features.instances import (
    compressed_moments,
    embed_points,
    instance,
    sample_instances,
)
from simdyn.papers.which_features.runs import run as run_gd
from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo, Scale
from simdyn.verify.stats import TestResult, deterministic_test, exact_test

INFO = ClaimInfo(
    id="CC-train",
    source="Prop 4.2",
    statement="every SCL minimizer maps same-class training points to the same embedding",
    control="same statistic on UCL endpoints (SCL premise violated): must fail",
)

TOL_FACTOR = 10.0  # safety factor on the derived GD residual


@dataclass(frozen=True)
class Design:
    """Points: (mu, sampling) pairs; ``seeds`` units per point, each its own training set."""

    n: int = 32
    m: int = 2
    d: int = 2000
    K: int = 4
    sigma_xi: float = 1.0
    p: int = 3
    sigma_0: float = 1e-3
    lr: float = 0.05
    steps: int = 1000
    points: tuple[tuple[float, Sampling], ...] = ((1.0, "balanced"), (0.0, "iid"))
    seeds: int = 32


DESIGNS: dict[Scale, Design] = {
    "small": Design(n=16, d=300, steps=400, points=((1.0, "balanced"),), seeds=48),
    "quick": Design(steps=500, seeds=32),
    # The thousands-of-seeds design: quick sizes, >= 1000 independent units per design point.
    "full": Design(steps=500, seeds=1000),
}


def config(design: Design, mu: float, sampling: Sampling, loss: LossName = "scl") -> Config:
    """The GD config of one design point (shared with MINLOSS)."""
    return Config(
        DataConfig(
            n=design.n,
            m=design.m,
            d=design.d,
            K=design.K,
            phi=(1.0,) * design.K,
            mu=mu,
            sigma_xi=design.sigma_xi,
            sampling=sampling,
            noise_placement="good_event",
            n_test=4,
        ),
        ModelConfig(p=design.p, sigma_0=design.sigma_0),
        TrainConfig(
            loss=loss,
            lr=design.lr,
            steps=design.steps,
            log_every=design.steps,
            probe_every=-1,
            dtype="float64",
            save_theta=True,
        ),
    )


def roundoff_tol(design: Design) -> float:
    """The derived round-off tolerance of the closed forms (module docs), worst design point."""
    phi = (1.0,) * design.K
    return max(
        common.good_event_roundoff(phi, design.sigma_xi, design.m, design.n, mu)
        for mu, _ in design.points
    )


def class_spread(emb: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(r, ||fbar_+ - fbar_-||) for embeddings emb (n, m, p) of originals with classes y (n,)."""
    n, m, p = emb.shape
    flat = emb.reshape(n * m, p)
    yy = np.repeat(y, m)
    mean_p, mean_m = flat[yy == 1].mean(0), flat[yy == -1].mean(0)
    dev = np.where((yy == 1)[:, None], flat - mean_p, flat - mean_m)
    sep = float(np.linalg.norm(mean_p - mean_m))
    return float(np.linalg.norm(dev, axis=1).max() / sep), sep


def gd_tolerance(design: Design, max_norm: float, separation: float) -> float:
    """r_tol of one GD endpoint (see module docs)."""
    s = design.sigma_xi**2 / (design.m * design.n)
    a_class = 1.0 + s  # phi_1 = 1: the smaller M+ eigenvalue phi_1^2 + s
    x = common.init_amplitude(design.sigma_0, design.p, design.d)
    t_esc = common.escape_steps(design.lr, a_class, x)
    residual = common.relaxation(design.lr, a_class, design.steps - t_esc)
    frozen = common.kernel_bound(design.sigma_0, design.p, design.d) * max_norm
    return TOL_FACTOR * (frozen + residual) / separation


def _random_minimizer(c, p: int, rng: np.random.Generator) -> np.ndarray:
    """A random global SCL minimizer on the instance's kept coordinates (p, r)."""
    sol = theory.min_norm_minimizer(c.m_plus, c.m, p)
    vecs = theory.psd_range(c.m).vectors
    g = rng.standard_normal(c.m.shape[0])
    g -= vecs @ (vecs.T @ g)
    g *= rng.uniform(0.0, 10.0) / np.linalg.norm(g)
    factor = sol.factor.copy()
    factor[sol.selected_rank] = g
    rot, _ = np.linalg.qr(rng.standard_normal((p, p)))
    return rot @ factor


def gd_units(
    design: Design, key: int, loss: LossName = "scl", num_points: int | None = None
) -> list[common.GDGroup]:
    """GD runs of the first ``num_points`` design points (memoised; MINLOSS reuses them)."""
    groups = []
    s = design.sigma_xi**2 / (design.m * design.n)
    for j, (mu, sampling) in enumerate(design.points[:num_points]):
        seeds = common.units_seeds(len(design.points), design.seeds)[j]
        cfg = config(design, mu, sampling, loss)
        u = len(seeds)
        beta = np.full(u, 1.0 if loss == "scl" else 0.0)
        # Slowest selected mode: SCL the class mode phi_1^2 + s; UCL the p-th of L (= 1 here).
        groups.append(common.GDGroup(cfg, seeds, run_gd(cfg, seeds, key), beta, np.full(u, 1 + s)))
    return groups


def _endpoints(
    design: Design, loss: LossName, key: int, num_points: int | None = None
) -> dict[str, np.ndarray]:
    r, tol, div = [], [], []
    for cfg, seeds, runs, _, _ in gd_units(design, key, loss, num_points):
        sets = sample_instances(cfg.data, seeds, key)
        for u in range(len(seeds)):
            ts = instance(sets, u)
            emb = embed_points(runs.theta[u], ts.points)
            x_norm = np.sqrt(
                (np.asarray(ts.points.features) ** 2).sum(-1)
                + (np.asarray(ts.points.noise_val) ** 2).sum(-1)
            )
            r_unit, sep = class_spread(emb, np.asarray(ts.labels.y))
            r.append(r_unit)
            tol.append(gd_tolerance(design, float(x_norm.max()), sep))
            div.append(bool(runs.diverged[u]))
    return {"r": np.asarray(r), "tol": np.asarray(tol), "diverged": np.asarray(div)}


def _gd_test(name: str, res: dict[str, np.ndarray]) -> TestResult:
    return exact_test(
        name,
        res["r"] <= res["tol"],
        valid=~res["diverged"] & np.isfinite(res["r"]),
        statistic="within-class spread r of GD-endpoint training embeddings",
        rule=f"pass if r <= r_tol (derived, x{TOL_FACTOR:g}); holds iff every unit passes",
        data={"r": res["r"], "r_tol": res["tol"]},
    )


class Units(NamedTuple):
    """SCL GD endpoints (every point), UCL GD endpoints (first point: the control) and the random
    exact minimizers' r and minimizer residual (U,) per instance."""

    scl: dict[str, np.ndarray]
    ucl: dict[str, np.ndarray]
    r_exact: np.ndarray
    residual: np.ndarray


def measure(design: Design, key: int) -> Units:
    scl = _endpoints(design, "scl", key)
    ucl = _endpoints(design, "ucl", key, num_points=1)  # one point suffices for the control
    rng = np.random.default_rng(key)
    r_exact, resid = [], []
    for j, (mu, sampling) in enumerate(design.points):
        seeds = common.units_seeds(len(design.points), design.seeds)[j]
        data = config(design, mu, sampling).data
        sets = sample_instances(data, seeds, key)
        for u in range(len(seeds)):
            c = compressed_moments(instance(sets, u), design.K)
            theta = _random_minimizer(c, design.p, rng)
            r_exact.append(class_spread(c.x @ theta.T, c.y)[0])
            resid.append(theory.minimizer_residual(theta, c.m_plus, c.m, design.p))
    return Units(scl, ucl, np.asarray(r_exact), np.asarray(resid))


def _random_minimizers(design: Design, u: Units) -> TestResult:
    # Deterministic: no randomness to test, only round-off; the worst instance decides.
    tol = roundoff_tol(design)
    return deterministic_test(
        "random-minimizers",
        np.maximum(u.r_exact / tol, u.residual / math.sqrt(tol)),
        1.0,
        statistic="max(r / tol, minimizer residual / sqrt(tol)) of random global SCL "
        "minimizers (min-norm + random ker M row, rotated), worst instance",
        rule=f"holds iff every instance has residual <= {math.sqrt(tol):.2g} and r <= "
        f"{tol:.2g} (derived float64 round-off)",
        data={"r": u.r_exact, "minimizer_residual": u.residual},
    )


def describe(design: Design, u: Units) -> RowText:
    points = ", ".join(f"mu={mu:g}/{s}" for mu, s in design.points)
    return RowText(
        summary=f"SCL GD + minimizers, {len(design.points) * design.seeds} units",
        design=(
            f"SCL GD float64, K={design.K} phi=1 n={design.n} m={design.m} d={design.d} "
            f"p={design.p} sigma_0={design.sigma_0:g} eta={design.lr:g} T={design.steps}; "
            f"{points}; {design.seeds} seeds/point"
        ),
        notes=(
            f"median r: SCL GD {np.nanmedian(u.scl['r']):.2e} (median r_tol "
            f"{np.nanmedian(u.scl['tol']):.2e}), random minimizers {np.nanmedian(u.r_exact):.2e}, "
            f"UCL GD {np.nanmedian(u.ucl['r']):.2e}",
        ),
    )


CLAIM = Claim(
    info=INFO,
    designs=DESIGNS,
    stream=STREAMS["CC-train"],
    rows=(
        Row(
            measure=measure,
            rules=(
                Rule(
                    "gd-endpoints",
                    f"GD endpoint's within-class spread r <= r_tol (derived, x{TOL_FACTOR:g}) on "
                    "every unit (diverged units fail)",
                    lambda design, u: _gd_test("gd-endpoints", u.scl),
                ),
                Rule(
                    "random-minimizers",
                    "every random exact minimizer: residual <= sqrt(tol) and r <= tol (tol: "
                    "derived float64 round-off, roundoff_tol; deterministic)",
                    _random_minimizers,
                ),
            ),
            controls=(
                Rule(
                    "control:ucl-endpoints",
                    "(premise violated) the GD-endpoint rule on UCL endpoints",
                    lambda design, u: _gd_test("control:ucl-endpoints", u.ucl),
                ),
            ),
            describe=describe,
        ),
    ),
)
