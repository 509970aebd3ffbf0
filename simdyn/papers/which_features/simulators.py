"""The simulator ``simdyn verify`` checks, and the deliberately broken ones of ``--self-test``.

Every GD/SGD run (:mod:`simdyn.papers.which_features.runs`) and every sampled instance
(:mod:`simdyn.papers.which_features.instances`) of the verifier goes through the *active*
:class:`Simulator`.
The reference simulator is simdyn itself. A broken simulator changes one thing a real bug could
change, while the verifier keeps predicting with the nominal settings; ``simdyn verify
--self-test`` runs the claims under each and reports which rows caught it. A broken simulator
that every row lets through is a defect of the verifier.

The faults are near misses, each of a kind a real implementation could ship:

* ``step-x1.5``: the optimiser uses 1.5 eta (a step-size or loss-scaling slip).
* ``init-x-sqrt-d``: Theta_0 entries ~ N(0, sigma_0^2) instead of N(0, sigma_0^2 / d).
* ``grad-term-x1.1``: the gradient's quartic term 4 (Theta M Theta^T)(Theta M) is 10% too large
  while the recorded loss is exact (a gradient inconsistent with its loss).
* ``data-shared-noise``: every augmentation of an original reuses one noise draw instead of a
  fresh xi' each (a data-model error; closed forms of the sampled instance see it too).
* ``fast-path-no-noise-P``: the structured fast path drops the noise part of the class means
  and of the per-original means, so P (M+ or M~) misses its sigma_xi^2/(mn)-sized noise block.
* ``oracle-minimizer``: a "simulator" that jumps to the instance's closed-form min-norm
  minimizer after step 0 (right endpoints, no dynamics).
* ``corrupt-2%``: right on 49 of every 50 seeds, wrong on the rest (seed index = 25 mod 50, so
  every run of 50 consecutive seeds holds one): those seeds' sampled instances carry noise
  values scaled by CORRUPT_NOISE (a sigma_xi slip), and their GD/SGD endpoints (last recorded
  alignment, final loss, final Theta) are those of CORRUPT_THETA x Theta_T. A rule that judges
  an exact statement by a pass fraction (> 0.9) lets this through; a zero-failure rule must not.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from simdyn._src.train import ObjectiveFactory
from simdyn.config import Config, DataConfig
from simdyn.data import TrainingSet, sample_training_set
from simdyn.losses import gradient_from_products, loss_from_products
from simdyn.moments import StructuredMoments, structured_moments, structured_products
from simdyn.objectives.base import pytree_dataclass
from simdyn.seeds import streams

Array = jax.Array
Sampler = Callable[[Array, DataConfig, object], TrainingSet]


@dataclass(frozen=True)
class Simulator:
    """What the verifier runs. name: id; fault: the bug in words ('' for the reference).

    lr_factor / init_factor(config): hidden multipliers of eta and sigma_0; objective: the
    full-batch objective factory handed to :func:`simdyn.make_train`; sampler: ``(data_key,
    data_config, dtype) -> TrainingSet`` for training and instances; oracle: replace training by
    the instance's min-norm minimizer from step 1 on; corrupt: ``seed index -> bool``, the seeds
    whose instances and endpoints :func:`corrupt_instances` and :func:`corrupt_endpoints` alter.
    """

    name: str
    fault: str = ""
    lr_factor: float = 1.0
    init_factor: Callable[[Config], float] | None = None
    objective: ObjectiveFactory | None = None
    sampler: Sampler | None = None
    oracle: bool = False
    corrupt: Callable[[int], bool] | None = None

    def corrupted(self, seeds) -> np.ndarray:
        """(len(seeds),) bool: which seed indices this simulator corrupts (none by default)."""
        seeds = [int(s) for s in seeds]
        if self.corrupt is None:
            return np.zeros(len(seeds), bool)
        return np.array([self.corrupt(s) for s in seeds], bool)

    def sample(self, data_key: Array, data: DataConfig, dtype) -> TrainingSet:
        """The training set for the key already folded to the seed's data stream."""
        fn = sample_training_set if self.sampler is None else self.sampler
        return fn(data_key, data, dtype)

    def training_set_factory(self) -> Callable[[Config, Array], TrainingSet] | None:
        """The ``training_set`` hook for :func:`simdyn.make_train` (None: simdyn's own)."""
        if self.sampler is None:
            return None

        def training_set(config: Config, seed_key: Array) -> TrainingSet:
            key = streams(seed_key).data
            return self.sample(key, config.data, jnp.dtype(config.train.dtype))

        return training_set

    def sigma_0_factor(self, config: Config) -> float:
        return 1.0 if self.init_factor is None else float(self.init_factor(config))


REFERENCE = Simulator("reference")

_ACTIVE: contextvars.ContextVar[Simulator] = contextvars.ContextVar("simulator", default=REFERENCE)


def active() -> Simulator:
    """The simulator verify runs now (the reference unless inside :func:`use`)."""
    return _ACTIVE.get()


_CACHES: list[dict] = []
_CACHE_SIZE = 4


def memoised(fn: Callable) -> Callable:
    """``fn`` memoised per (active simulator, arguments): rows of one claim share an expensive
    intermediate (predictions, closed forms), and a broken simulator never gets the reference's
    values. Arguments must be hashable; :func:`clear_memoised` forgets every cache."""
    cache: dict = {}
    _CACHES.append(cache)

    @functools.wraps(fn)
    def wrapper(*args):
        key = (active().name, *args)
        if key not in cache:
            if len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[key] = fn(*args)
        return cache[key]

    return wrapper


def clear_memoised() -> None:
    """Forget what every :func:`memoised` function holds."""
    for cache in _CACHES:
        cache.clear()


@contextlib.contextmanager
def use(sim: Simulator) -> Iterator[Simulator]:
    """Run the verifier's simulations with ``sim`` inside the block."""
    token = _ACTIVE.set(sim)
    try:
        yield sim
    finally:
        _ACTIVE.reset(token)


# --------------------------------------------------------------------------------------------
# The faults
# --------------------------------------------------------------------------------------------


@pytree_dataclass(data=("moments", "beta"), meta=("quartic",))
class _FaultyStructured:
    """The structured fast path with a fault in the gradient's quartic term (factor)."""

    moments: StructuredMoments
    beta: Array
    quartic: float

    def loss_and_grad(self, theta: Array) -> tuple[Array, Array]:
        prods = structured_products(self.moments, theta)
        g = gradient_from_products(theta, prods, self.beta)
        if self.quartic != 1.0:
            tm = prods.theta_m
            g = g + (self.quartic - 1.0) * 4.0 * (tm @ theta.T) @ tm
        return loss_from_products(theta, prods, self.beta), g

    def loss(self, theta: Array) -> Array:
        return self.loss_and_grad(theta)[0]


def _structured_objective(
    config: Config, ts: TrainingSet, beta: Array, *, quartic: float = 1.0, noisy_p: bool = True
) -> _FaultyStructured:
    """The structured fast path with an optional fault (quartic-term factor, noise-free P)."""
    mom = structured_moments(ts.points, ts.labels, config.data.d)
    if not noisy_p:
        k1 = mom.a.shape[0]
        mom = mom._replace(
            class_means=mom.class_means.at[:, k1:].set(0.0),
            orig_noise_val=jnp.zeros_like(mom.orig_noise_val),
        )
    return _FaultyStructured(mom, beta, quartic)


def _grad_term_objective(config: Config, ts: TrainingSet, beta: Array):
    return _structured_objective(config, ts, beta, quartic=1.1)


def _no_noise_p_objective(config: Config, ts: TrainingSet, beta: Array):
    return _structured_objective(config, ts, beta, noisy_p=False)


def _shared_noise_sampler(data_key: Array, data: DataConfig, dtype) -> TrainingSet:
    ts = sample_training_set(data_key, data, dtype)
    pts = ts.points
    first = lambda a: jnp.broadcast_to(a[:, :1], a.shape)  # augmentation 0's noise for all
    return ts._replace(
        points=pts._replace(noise_idx=first(pts.noise_idx), noise_val=first(pts.noise_val))
    )


CORRUPT_PERIOD = 50  # one corrupted seed in every 50 consecutive ones: 2% of instances
CORRUPT_NOISE = 1.0 / 3.0  # noise values of a corrupted instance (sigma_xi / 3)
CORRUPT_THETA = 1.1  # a corrupted endpoint is that of 1.1 Theta_T


def corrupt_seed(seed: int) -> bool:
    """The ``corrupt-2%`` fault's seeds: index 25 mod CORRUPT_PERIOD."""
    return seed % CORRUPT_PERIOD == CORRUPT_PERIOD // 2


def corrupt_instances(batch: TrainingSet, mask: np.ndarray) -> TrainingSet:
    """Sampled instances (numpy, leading seed axis) with the noise values of the ``mask`` ed ones
    (training points and originals) scaled by CORRUPT_NOISE.

    Args:
        batch: instances from :func:`simdyn.papers.which_features.instances.sample_instances`.
        mask: (seeds,) bool, the corrupted ones.

    Returns:
        The batch with those instances altered (the others untouched).
    """
    if not mask.any():
        return batch

    def scaled(points):
        val = np.array(points.noise_val, copy=True)
        val[mask] *= CORRUPT_NOISE
        return points._replace(noise_val=val)

    return batch._replace(points=scaled(batch.points), originals=scaled(batch.originals))


def corrupt_endpoints(alignment, loss, theta, mask: np.ndarray):
    """Trajectories whose ``mask`` ed units end at c Theta_T, c = CORRUPT_THETA, instead of
    Theta_T: last recorded alignment and saved Theta times c, final loss times 2 c^2 - c^4.

    The loss factor is exact at a stationary point: L(c Theta) = c^2 A + c^4 B with A = -2
    tr(Theta^T Theta P) and B the quartic term, and stationarity along Theta gives 2 A + 4 B = 0,
    so L(c Theta) = L(Theta) (2 c^2 - c^4) (4.4% of |L| above the minimum at c = 1.1).

    Args:
        alignment: (U, R, K+1). loss: (U, R). theta: (U, p, D) or (U, 0). mask: (U,) bool.

    Returns:
        (alignment, loss, theta), copies with the masked units altered.
    """
    if not mask.any():
        return alignment, loss, theta
    alignment, loss, theta = (np.array(a, copy=True) for a in (alignment, loss, theta))
    c = CORRUPT_THETA
    alignment[mask, -1] *= c
    loss[mask, -1] *= 2 * c**2 - c**4
    if theta.ndim == 3 and theta.shape[-1]:
        theta[mask] *= c
    return alignment, loss, theta


BROKEN: tuple[Simulator, ...] = (
    Simulator("step-x1.5", "GD/SGD step size 1.5 eta", lr_factor=1.5),
    Simulator(
        "init-x-sqrt-d",
        "Theta_0 ~ N(0, sigma_0^2) instead of N(0, sigma_0^2 / d)",
        init_factor=lambda c: math.sqrt(c.data.d),
    ),
    Simulator(
        "grad-term-x1.1",
        "gradient's quartic term 10% too large, loss exact",
        objective=_grad_term_objective,
    ),
    Simulator(
        "data-shared-noise",
        "augmentations reuse one noise draw per original",
        sampler=_shared_noise_sampler,
    ),
    Simulator(
        "fast-path-no-noise-P",
        "structured path drops the noise part of M+ and M~",
        objective=_no_noise_p_objective,
    ),
    Simulator("oracle-minimizer", "jumps to the closed-form min-norm minimizer", oracle=True),
    Simulator(
        "corrupt-2%",
        "2% of seeds (index 25 mod 50): instance noise x1/3, endpoint 1.1 Theta_T",
        corrupt=corrupt_seed,
    ),
)


def by_name(name: str) -> Simulator:
    for sim in (REFERENCE, *BROKEN):
        if sim.name == name:
            return sim
    raise KeyError(f"unknown simulator {name!r}: one of {[s.name for s in (REFERENCE, *BROKEN)]}")
