"""The structured form: exact moments of basis-noise data without a D x D matrix.

M is an arrow (feature block, a coupling of the K + 1 feature coordinates to every coordinate,
a diagonal), M+ has rank 2 (the class means), and Theta M~ is a gather and a scatter-add over
each original's m s noise entries (:func:`simdyn.moments.structured_products`). Exact when each
point has one basis-noise entry and augmentations are standard masks.

Cost per seed-step (notation of :mod:`simdyn.cost`): 2 products with the (k1, D) coupling,
the diagonal, a (k1 x k1) block; rank-2 M+; sparse M~; then G:

    flops   = p D (18 + 4 k1) + 4 p^2 D + 2 p k1^2 + 2 p k1 + 4 p n (k1 + q)
    bytes   = w ((k1 + 3) D + n (k1 + q)) + 4 n q + w (20 p D + 4 p n q)
    indexed = 2 p n q
"""

from __future__ import annotations

from typing import ClassVar

from simdyn.config import Config, DataConfig
from simdyn.cost import StepCost
from simdyn.moments import structured_moments
from simdyn.objectives.base import MomentObjective, common_memory, itemsize, pytree_dataclass


def supports_structured(data: DataConfig) -> bool:
    """Whether the exact arrow-structured moments apply: one basis noise vector per point
    (basis noise and the standard augmentation)."""
    return data.noise == "basis" and data.augmentation == "standard"


@pytree_dataclass(data=("moments", "beta"), meta=("weight",))
class StructuredObjective(MomentObjective):
    """The structured moments (:class:`simdyn.moments.StructuredMoments`) of one seed."""

    name: ClassVar[str] = "structured"
    moments_of = staticmethod(structured_moments)

    @classmethod
    def applies(cls, config: Config) -> bool:
        return supports_structured(config.data)

    @classmethod
    def step_cost(cls, config: Config) -> StepCost:
        data, p, w = config.data, config.model.p, itemsize(config)
        dim, k1, n, q = data.d + 1, data.K + 1, data.n, data.m * data.noise_nnz
        flops = (
            p * dim * (18 + 4 * k1) + 4 * p**2 * dim + 2 * p * k1**2 + 2 * p * k1
        ) + 4 * p * n * (k1 + q)
        nbytes = (
            w * ((k1 + 3) * dim + n * (k1 + q)) + 4 * n * q + w * (20 * p * dim + 4 * p * n * q)
        )
        return StepCost(flops, nbytes, 2 * p * n * q)

    @classmethod
    def memory_per_seed(cls, config: Config) -> int:
        """Keeps (k1 + 4) D + n (k1 + 2 q) and the p n q gathered noise products twice."""
        data, p = config.data, config.model.p
        k1, q = data.K + 1, data.m * data.noise_nnz
        extra = (k1 + 4) * (data.d + 1) + data.n * (k1 + 2 * q) + 2 * p * data.n * q
        return int(itemsize(config) * (common_memory(config) + extra))
