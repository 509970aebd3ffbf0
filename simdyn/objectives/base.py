"""The interface every exact representation of the training objective implements.

A *representation* is a class (registered in :data:`simdyn.objectives.REGISTRY`) whose
classmethods say whether it is exact for a config and what one GD step costs, and whose
``build`` turns one seed's training set into an *objective*: a frozen dataclass registered as a
pytree (arrays are leaves, compile-time choices such as a static loss weight are metadata), so
objectives can be built under ``vmap`` and passed through ``jit``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar, dataclass_transform

import jax

from simdyn.config import Config
from simdyn.cost import StepCost
from simdyn.data import TrainingSet
from simdyn.losses import STATIC_BETA, gradient_from_products, loss_from_products
from simdyn.moments import DenseMoments, StructuredMoments, products

Array = jax.Array
T = TypeVar("T")


class Objective(Protocol):
    """One seed's full training loss L(Theta) and its exact gradient, Theta of shape (p, D)."""

    def loss(self, theta: Array) -> Array:
        """L(Theta), a scalar."""
        ...

    def loss_and_grad(self, theta: Array) -> tuple[Array, Array]:
        """(L(Theta), dL/dTheta of shape (p, D))."""
        ...


class Representation(Protocol):
    """A registered representation: a class with these classmethods (see the package doc)."""

    name: ClassVar[str]
    minibatch: ClassVar[bool]  # whether it can run a minibatch (SGD) step

    @classmethod
    def applies(cls, config: Config) -> bool:
        """Whether this representation is an exact full-batch path for ``config``."""
        ...

    @classmethod
    def build(cls, config: Config, ts: TrainingSet, beta: Array) -> Objective:
        """The objective of one seed's training set ``ts`` with SCL weight ``beta`` (traced;
        a loss with a static weight ignores it)."""
        ...

    @classmethod
    def step_cost(cls, config: Config) -> StepCost:
        """Hand-counted FLOPs, bytes and indexed elements of one GD step of one seed.

        Counts the joint loss's step (all three products). For loss='scl' / 'ucl' the compiled
        step skips Theta M~ / Theta M+, so the count is an upper bound there; ``auto`` is left
        on it so that committed runs keep their representations.
        """
        ...

    @classmethod
    def memory_per_seed(cls, config: Config) -> int:
        """Bytes one seed holds at the peak of the vmapped program (hand count, generous)."""
        ...


@dataclass_transform(frozen_default=True)  # tells type checkers the class becomes a dataclass
def pytree_dataclass(data: Sequence[str], meta: Sequence[str] = ()):
    """Decorator: a frozen dataclass registered as a pytree with ``data`` leaves and ``meta``
    static fields (what changes the compiled program)."""

    def wrap(cls: type[T]) -> type[T]:
        cls = dataclasses.dataclass(frozen=True)(cls)
        return jax.tree_util.register_dataclass(cls, data_fields=list(data), meta_fields=list(meta))

    return wrap


def static_weight(config: Config) -> float | None:
    """The compile-time SCL weight of ``config.train.loss`` (SCL 1, UCL 0), None for 'joint'."""
    return STATIC_BETA.get(config.train.loss)


def itemsize(config: Config) -> int:
    """Bytes per float of the run's dtype."""
    return 8 if config.train.dtype == "float64" else 4


def common_memory(config: Config) -> int:
    """Floats every representation holds per seed: the training and test points, Theta with
    its gradient, optimiser slot and product temporaries (8 p D), and the recorded values."""
    data, t, p = config.data, config.train, config.model.p
    k1, s = data.K + 1, data.noise_nnz
    points = (data.num_points + data.n + data.n_test) * (k1 + 2 * s)
    return points + 8 * p * (data.d + 1) + len(t.record_steps) * (k1 + 1)


def moment_loss_and_grad(
    moments: DenseMoments | StructuredMoments, theta: Array, beta: Array, weight: float | None
) -> tuple[Array, Array]:
    """(L, G) from the moment products, shared by the structured and dense forms.

    ``weight`` (static) replaces the traced ``beta`` for SCL (1) and UCL (0), and only the
    product it keeps is computed. beta * X + (1 - beta) * 0 is X exactly (the fused sums may
    still round differently: 1 ulp of the loss seen in tests/test_train.py).
    """
    prods = products(moments, theta, plus=weight != 0.0, tilde=weight != 1.0)
    w = beta if weight is None else weight
    return loss_from_products(theta, prods, w), gradient_from_products(theta, prods, w)


class _HasLossAndGrad(Protocol):
    def loss_and_grad(self, theta: Array) -> tuple[Array, Array]: ...


class ExactForm:
    """Mixin of a representation: exact for every config unless ``applies`` says otherwise, and
    ``loss`` is the first half of ``loss_and_grad``; full batch only unless a subclass says it
    differentiates a minibatch (``minibatch = True``)."""

    minibatch: ClassVar[bool] = False

    @classmethod
    def applies(cls, config: Config) -> bool:
        return True

    def loss(self: _HasLossAndGrad, theta: Array) -> Array:
        return self.loss_and_grad(theta)[0]


@pytree_dataclass(data=("moments", "beta"), meta=("weight",))
class MomentObjective(ExactForm):
    """A representation by moment matrices (structured or dense): a subclass sets
    ``moments_of(points, labels, d)``.

    moments: the seed's moments; beta: traced SCL weight; weight: static weight (SCL 1,
    UCL 0) or None for the joint loss.
    """

    moments: Any
    beta: Array
    weight: float | None
    moments_of: ClassVar[Callable[..., Any]]

    @classmethod
    def build(cls, config: Config, ts: TrainingSet, beta: Array) -> MomentObjective:
        moments = cls.moments_of(ts.points, ts.labels, config.data.d)
        return cls(moments, beta, static_weight(config))

    def loss_and_grad(self, theta: Array) -> tuple[Array, Array]:
        return moment_loss_and_grad(self.moments, theta, self.beta, self.weight)


def xla_step_cost(representation: type[Representation], config: Config) -> dict[str, float]:
    """XLA's own count of ONE GD step of one seed: ``flops`` and ``bytes accessed`` of
    (build + 2 steps) minus (build + 1 step), so data and moment building cancel.

    The unoptimised module is analysed: it needs no compilation and counts every operation the
    code asks for (its FLOPs equal the optimised module's here: optimisation only fuses), but
    its bytes are before fusion, so they overstate the traffic. The numbers do not depend on
    the values of Theta or beta. Used to check each ``step_cost`` (tests/test_objectives.py,
    benchmarks/run.py's roofline).
    """
    from simdyn.data import sample_training_set

    dtype = jax.numpy.dtype(config.train.dtype)
    ts = sample_training_set(jax.random.key(0), config.data, dtype)
    theta = jax.numpy.full((config.model.p, config.data.d + 1), 1e-3, dtype)
    beta = jax.numpy.asarray(0.7, dtype)

    def counts(num_steps: int) -> dict:
        def run(ts: TrainingSet, theta: Array) -> Array:
            objective = representation.build(config, ts, beta)
            for _ in range(num_steps):
                theta = theta - 0.05 * objective.loss_and_grad(theta)[1]
            return theta

        out = jax.jit(run).lower(ts, theta).cost_analysis()
        out = out[0] if isinstance(out, list) else out
        assert out is not None, "XLA gave no cost analysis for this module"
        return out

    one, two = counts(1), counts(2)
    return {k: float(two[k] - one[k]) for k in ("flops", "bytes accessed")}
