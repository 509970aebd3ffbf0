"""The dense matrix form: M, M+ and M~ as D x D matrices (any noise, any augmentation).

The reference form: G = -4 Theta P + 4 (Theta M Theta^T)(Theta M) with P = beta M+ +
(1 - beta) M~. Cost per seed-step (notation of :mod:`simdyn.cost`): three (p x D)(D x D)
products, then G:

    flops   = 6 p D^2 + 4 p^2 D + 8 p D
    bytes   = w (3 D^2 + 14 p D)        (the three moment matrices dominate)
    indexed = 0
"""

from __future__ import annotations

from typing import ClassVar

from simdyn.config import Config
from simdyn.cost import StepCost
from simdyn.moments import dense_moments
from simdyn.objectives.base import MomentObjective, common_memory, itemsize, pytree_dataclass


@pytree_dataclass(data=("moments", "beta"), meta=("weight",))
class DenseObjective(MomentObjective):
    """The dense moments (:class:`simdyn.moments.DenseMoments`) of one seed."""

    name: ClassVar[str] = "dense"
    moments_of = staticmethod(dense_moments)

    @classmethod
    def step_cost(cls, config: Config) -> StepCost:
        p, dim, w = config.model.p, config.data.d + 1, itemsize(config)
        flops = 6 * p * dim**2 + 4 * p**2 * dim + 8 * p * dim
        return StepCost(flops, w * (3 * dim**2 + 14 * p * dim), 0.0)

    @classmethod
    def memory_per_seed(cls, config: Config) -> int:
        """Keeps 3 D^2 and forms the dense (N, D) data while building."""
        dim = config.data.d + 1
        extra = 3 * dim**2 + config.data.num_points * dim
        return int(itemsize(config) * (common_memory(config) + extra))
