"""What the first paper's claim modules share: seed streams, unit seeds, GD tolerances derived
from theory, and small helpers over units. (The verifier framework's shared records are
:mod:`simdyn.verify.common`; the names claim modules use from it are re-exported here.)

GD tolerances (why a GD endpoint may differ from the closed form after T steps):

* frozen kernel part: Theta's component on ker M never moves (THEORY.md section 5), so a feature
  direction with a part in ker M keeps ||Theta_0 u|| ~ sigma_0 sqrt(chi2_p / d) there;
  :func:`kernel_bound` is its 99.9% quantile.
* tie resolution: inside a tied eigenspace every point is a global minimizer, so GD keeps what
  the early phase left: a mode of P-eigenvalue a_lose that lost the last slot to a_win grew from
  the init scale x = sigma_0 sqrt(p / d) by (1 + 4 eta a_lose)^t while the winner needed
  t = ln(1/x) / ln(1 + 4 eta a_win) steps to saturate, leaving x^kappa with
  kappa = 1 - ln(1 + 4 eta a_lose) / ln(1 + 4 eta a_win) (:func:`tie_exponent`).
* relaxation: near a minimizer a mode of P-eigenvalue a relaxes like exp(-8 eta a t) (the
  logistic :func:`simdyn.theory.mode_gradient_flow`); the slowest modes are the noise directions,
  a ~ s = sigma_xi^2 / (m n) (:func:`relaxation`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from scipy import stats

from simdyn.config import Config, DataConfig, Sampling
from simdyn.data import TrainingSet
from simdyn.papers.which_features.instances import (
    Compressed,
    compressed_moments,
    instance,
    sample_instances,
)
from simdyn.papers.which_features.runs import Runs

# Re-exported: claim modules reach the framework's records through this module too.
from simdyn.verify.common import SCALES as SCALES
from simdyn.verify.common import ClaimInfo as ClaimInfo
from simdyn.verify.common import ClaimOutcome as ClaimOutcome
from simdyn.verify.common import Scale as Scale
from simdyn.verify.common import stream_key as numbered_stream_key
from simdyn.verify.stats import roundoff_tolerance


class GDGroup(NamedTuple):
    """Full-batch GD runs of one config, as a claim module trained them (MINLOSS reuses them).

    seeds: (U,) seed per unit; beta: (U,) SCL weight per unit; a_slow: (U,) P-eigenvalue of
    the slowest selected feature mode (sets how far GD has converged after T steps).
    """

    config: Config
    seeds: list[int]
    runs: Runs
    beta: np.ndarray
    a_slow: np.ndarray


# One seed allocator. Each claim that owns a design draws from its own stream, integer key
# ``key * STREAM_COUNT + STREAMS[owner]`` (a bijection of (key, owner)), so no two designs share
# random streams even where their seed indices coincide. Within a stream, a claim's design points
# take disjoint seed ranges (units_seeds offsets). CC-unlearn and MINLOSS own no design: they
# apply other statistics to the units of CC-early and of CC-train / FS-dim / JOINT.
STREAMS: dict[str, int] = {
    "CC-train": 0,
    "CC-exists": 1,
    "CC-minnorm": 2,
    "CC-early": 3,
    "FS-dim": 4,
    "FS-aug": 5,
    "JOINT": 6,
    "GOOD-EVENT": 7,
    "SGD-OBJ": 8,
    "REPR": 9,
    "FIG6": 10,
    "FS-tie": 11,
    "CC-probe-GD": 12,
}


def stream_key(owner: str, key: int) -> int:
    """The integer key of ``owner``'s stream (:data:`STREAMS`) under the verify base key ``key``."""
    if owner not in STREAMS:
        raise KeyError(f"no seed stream for {owner!r}: must be one of {list(STREAMS)}")
    return numbered_stream_key(STREAMS[owner], key)


def units_seeds(num_points: int, per_point: int, offset: int = 0) -> list[list[int]]:
    """Distinct seed indices for each design point (units never share a training set)."""
    return [
        list(range(offset + i * per_point, offset + (i + 1) * per_point)) for i in range(num_points)
    ]


def init_scale(sigma_0: float, p: int, d: int, quantile: float) -> float:
    """Quantile of ||Theta_0 u|| for a unit vector u: Theta_0 u ~ N(0, sigma_0^2/d I_p)."""
    return sigma_0 * math.sqrt(float(stats.chi2.ppf(quantile, p)) / d)


def kernel_bound(sigma_0: float, p: int, d: int) -> float:
    """99.9% bound on the frozen kernel part ||Theta_0 u|| of a unit direction u."""
    return init_scale(sigma_0, p, d, 0.999)


def init_amplitude(sigma_0: float, p: int, d: int) -> float:
    """Typical init scale x = sigma_0 sqrt(p / d) of a mode (Thm 4.5's sigma_0 sqrt(p/d))."""
    return sigma_0 * math.sqrt(p / d)


def tie_exponent(eta: float, a_lose: float, a_win: float) -> float:
    """kappa = 1 - ln(1 + 4 eta a_lose) / ln(1 + 4 eta a_win) (see module docs)."""
    return 1.0 - math.log1p(4 * eta * a_lose) / math.log1p(4 * eta * a_win)


def relaxation(eta: float, a: float, steps: float) -> float:
    """exp(-8 eta a steps): what is left of a deviation of a mode of P-eigenvalue a."""
    return math.exp(-8.0 * eta * a * max(steps, 0.0))


def escape_steps(eta: float, a: float, x: float, target: float = 1.0) -> float:
    """GD steps for a mode of P-eigenvalue a to grow from x to ``target``."""
    return math.log(target / x) / math.log1p(4.0 * eta * a)


def good_event_data(
    n: int,
    m: int,
    d: int,
    phi: tuple[float, ...],
    sigma_xi: float,
    *,
    mu: float = 0.0,
    sampling: Sampling = "balanced",
    n_test: int = 4,
) -> DataConfig:
    """Data with the good event's noise placement (distinct coordinates off the feature block)."""
    return DataConfig(
        n=n,
        m=m,
        d=d,
        K=len(phi),
        phi=phi,
        mu=mu,
        sigma_xi=sigma_xi,
        sampling=sampling,
        noise_placement="good_event",
        n_test=n_test,
    )


def good_event_cond(
    phi: tuple[float, ...], sigma_xi: float, m: int, n: int, mu: float = 0.0
) -> float:
    """Upper bound on cond(M) = lambda_max / lambda_min (non-zero eigenvalues) of a good-event
    instance (distinct basis-noise coordinates off the feature block), from the config alone.

    lambda_max <= tr M = E||x~||^2 = 1 + mu^2 + phi_1^2 + phi_2^2 + mean_k phi_k^2 + sigma_xi^2
    (the mean over the irrelevant features k >= 3: each example carries one of them).
    lambda_min >= s = sigma_xi^2 / (m n): with X = [U | sigma_xi I_N] the N = m n augmented points
    on the used coordinates (features U, one distinct noise coordinate each), X X^T = U U^T +
    sigma_xi^2 I >= sigma_xi^2 I, and the non-zero eigenvalues of M = X^T X / N are those of
    X X^T / N. M+ and M~ are averages of the same points, so the whitened closed forms see no
    larger ratio.

    Args:
        phi: feature strengths (phi_1, phi_2, phi_3..phi_K). sigma_xi: noise scale.
        m, n: augmentations and originals. mu: the subclass mean.

    Returns:
        The bound (>= 1).
    """
    sq = [float(f) ** 2 for f in phi]
    irrelevant = sum(sq[2:]) / len(sq[2:]) if len(sq) > 2 else 0.0
    trace = 1.0 + mu**2 + sum(sq[:2]) + irrelevant + sigma_xi**2
    return max(1.0, trace / (sigma_xi**2 / (m * n)))


def good_event_roundoff(
    phi: tuple[float, ...], sigma_xi: float, m: int, n: int, mu: float = 0.0
) -> float:
    """The derived float64 round-off tolerance (relative) of the closed forms of one good-event
    design: :func:`simdyn.verify.stats.roundoff_tolerance` with r = m n + K + 1 used coordinates
    (bias, K features, one noise coordinate per augmented point) and :func:`good_event_cond`.

    Args:
        phi, sigma_xi, m, n, mu: the design (K = len(phi)).

    Returns:
        The relative tolerance; scale it by the compared quantity.
    """
    dim = m * n + len(phi) + 1
    return roundoff_tolerance(dim, good_event_cond(phi, sigma_xi, m, n, mu))


def unit_instances(data: DataConfig, seeds: list[int], key: int) -> Iterator[TrainingSet]:
    """The training set of each seed's unit, in seed order."""
    sets = sample_instances(data, seeds, key)
    for u in range(len(seeds)):
        yield instance(sets, u)


def unit_moments(data: DataConfig, seeds: list[int], key: int, K: int) -> Iterator[Compressed]:
    """The compressed moments (first K features kept) of each seed's training set, in seed order."""
    for ts in unit_instances(data, seeds, key):
        yield compressed_moments(ts, K)


def float_arrays(rows: dict[str, list]) -> dict[str, np.ndarray]:
    """Per-unit lists collected in a loop, as float arrays."""
    return {k: np.asarray(v, float) for k, v in rows.items()}


def relative_error(values: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """max_j |values_j - predicted_j| / (1 + predicted_j) of each unit (row)."""
    return np.max(np.abs(values - predicted) / (1 + predicted), axis=1)


def last_quarter_mean(alignment: np.ndarray, feature: int | slice) -> np.ndarray:
    """(U, ...) mean of alignment (U, steps, K + 1) over the last quarter of the recorded steps."""
    quarter = max(1, alignment.shape[1] // 4)
    return alignment[:, -quarter:, feature].mean(axis=1)
