"""The projected form: the loss restricted to the span of the training data.

GD only moves Theta inside Theta_0 + span(data) (:mod:`simdyn.projected`): the step works on
Theta_r = Theta U (p x r) with the r x r moments of the projected points and lifts the gradient
back, never forming a D x D matrix. Exact for any noise; r = :func:`simdyn.cost.projected_rank`.

Cost per seed-step (notation of :mod:`simdyn.cost`): two (p x r)(r x r) products, G_r, then
lift to (p, D) and update; coordinate basis: a gather and a scatter of p r entries; QR basis
(Gaussian noise): two (p x D)(D x r) products:

    flops   = 4 p r^2 + 4 p^2 r + 5 p r + 2 p D              (+ 4 p D r with a QR basis)
    bytes   = w (2 r^2 + 10 p r + 4 p D)                      (+ w 2 D r with a QR basis)
    indexed = 2 p r                                           (0 with a QR basis)
"""

from __future__ import annotations

from typing import ClassVar

import jax

from simdyn.config import Config
from simdyn.cost import StepCost, projected_rank
from simdyn.data import TrainingSet
from simdyn.objectives.base import ExactForm, common_memory, itemsize, pytree_dataclass
from simdyn.projected import ProjectedMoments, loss_and_grad, projected_moments

Array = jax.Array


@pytree_dataclass(data=("moments",))
class ProjectedObjective(ExactForm):
    """moments: the seed's basis U and projected moments M_r, P_r (beta folded into P_r)."""

    moments: ProjectedMoments
    name: ClassVar[str] = "projected"

    @classmethod
    def build(cls, config: Config, ts: TrainingSet, beta: Array) -> ProjectedObjective:
        return cls(projected_moments(ts.points, ts.labels, config.data, beta))

    def loss_and_grad(self, theta: Array) -> tuple[Array, Array]:
        return loss_and_grad(self.moments, theta)

    @classmethod
    def step_cost(cls, config: Config) -> StepCost:
        data, p, w = config.data, config.model.p, itemsize(config)
        r, dim = projected_rank(data), data.d + 1
        flops = 4 * p * r**2 + 4 * p**2 * r + 5 * p * r + 2 * p * dim
        nbytes = w * (2 * r**2 + 10 * p * r + 4 * p * dim)
        if data.noise == "gaussian":
            return StepCost(flops + 4 * p * dim * r, nbytes + w * 2 * dim * r, 0.0)
        return StepCost(flops, nbytes, 2 * p * r)

    @classmethod
    def memory_per_seed(cls, config: Config) -> int:
        """Keeps 2 r^2 (M_r, P_r) and forms the projected data (N, r) about three times while
        building (plus the dense data and U for a QR basis)."""
        data = config.data
        r, dim, big_n = projected_rank(data), data.d + 1, data.num_points
        extra = 2 * r**2 + 3 * big_n * r + r
        if data.noise == "gaussian":
            extra += big_n * dim + 2 * dim * r
        return int(itemsize(config) * (common_memory(config) + extra))
