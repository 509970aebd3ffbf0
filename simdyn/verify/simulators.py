"""The simulator ``simdyn verify`` checks, and the deliberately broken ones of ``--self-test``.

Every GD/SGD run (:mod:`simdyn.verify.runs`) and every sampled instance
(:mod:`simdyn.verify.instances`) of the verifier goes through the *active* :class:`Simulator`.
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

from simdyn.config import Config, DataConfig
from simdyn.data import TrainingSet, sample_training_set
from simdyn.losses import gradient_from_products, loss_from_products
from simdyn.moments import StructuredMoments, structured_moments, structured_products
from simdyn.objectives.base import pytree_dataclass
from simdyn.seeds import streams
from simdyn.train import ObjectiveFactory

Array = jax.Array
Sampler = Callable[[Array, DataConfig, object], TrainingSet]


@dataclass(frozen=True)
class Simulator:
    """What the verifier runs. name: id; fault: the bug in words ('' for the reference).

    lr_factor / init_factor(config): hidden multipliers of eta and sigma_0; objective: the
    full-batch objective factory handed to :func:`simdyn.make_train`; sampler: ``(data_key,
    data_config, dtype) -> TrainingSet`` for training and instances; oracle: replace training by
    the instance's min-norm minimizer from step 1 on.
    """

    name: str
    fault: str = ""
    lr_factor: float = 1.0
    init_factor: Callable[[Config], float] | None = None
    objective: ObjectiveFactory | None = None
    sampler: Sampler | None = None
    oracle: bool = False

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
)


def by_name(name: str) -> Simulator:
    for sim in (REFERENCE, *BROKEN):
        if sim.name == name:
            return sim
    raise KeyError(f"unknown simulator {name!r}: one of {[s.name for s in (REFERENCE, *BROKEN)]}")
