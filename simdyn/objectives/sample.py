"""The sample form: autodiff of the per-point loss (any data; also SGD's in-batch loss).

Embeds the N = m n training points, forms the (p x p) second moment and the per-original and
per-class means (:func:`simdyn.losses.sample_loss`), and differentiates. Cost per seed-step
(notation of :mod:`simdyn.cost`; the backward pass roughly doubles the forward work and
scatters the noise columns' gradient back):

    flops   = N p (4 k1 + 7 s + 6 p + 6) + 12 n p + 2 p D    (7 s: multiply-add forward,
              multiply and scatter-add backward, and the bounds masks of the gather)
    bytes   = w (N (k1 + s) + 12 N p + 6 N s p + 8 p D) + 4 N s
    indexed = 2 N s p
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp

from simdyn.config import Config
from simdyn.cost import StepCost
from simdyn.data import Points, TrainingSet, draw_minibatch, embed
from simdyn.losses import sample_loss
from simdyn.objectives.base import ExactForm, common_memory, itemsize, pytree_dataclass

Array = jax.Array


@pytree_dataclass(data=("points", "y", "beta"))
class SampleObjective(ExactForm):
    """points: the seed's training points (n, m, ...); y: labels (n,); beta: SCL weight."""

    points: Points
    y: Array
    beta: Array
    name: ClassVar[str] = "sample"
    minibatch: ClassVar[bool] = True  # the batch loss is differentiated per point

    @classmethod
    def build(cls, config: Config, ts: TrainingSet, beta: Array) -> SampleObjective:
        return cls(ts.points, ts.labels.y, beta)

    def loss(self, theta: Array) -> Array:
        return sample_loss(embed(theta, self.points), self.y, self.beta)

    def loss_and_grad(self, theta: Array) -> tuple[Array, Array]:
        return jax.value_and_grad(self.loss)(theta)

    @classmethod
    def step_cost(cls, config: Config) -> StepCost:
        data, p, w = config.data, config.model.p, itemsize(config)
        k1, n, big_n, s, dim = data.K + 1, data.n, data.num_points, data.noise_nnz, data.d + 1
        flops = big_n * p * (4 * k1 + 7 * s + 6 * p + 6) + 12 * n * p + 2 * p * dim
        nbytes = (
            w * (big_n * (k1 + s) + 12 * big_n * p + 6 * big_n * s * p + 8 * p * dim)
            + 4 * big_n * s
        )
        return StepCost(flops, nbytes, 2 * big_n * s * p)

    @classmethod
    def memory_per_seed(cls, config: Config) -> int:
        """Keeps about 12 N p activations and 3 N s p gathered noise columns."""
        data, p = config.data, config.model.p
        extra = 12 * data.num_points * p + 3 * data.num_points * data.noise_nnz * p
        return int(itemsize(config) * (common_memory(config) + extra))


def minibatch_gradient(
    config: Config, ts: TrainingSet, beta: Array
) -> Callable[[Array, Array], Array]:
    """``grad(theta, key)`` of SGD's in-batch loss: the sample form on a minibatch of
    ``train.batch_size`` originals (:func:`simdyn.data.draw_minibatch`), pairs and class means
    formed inside the batch (SimCLR / SupCon practice)."""
    t, dtype = config.train, jnp.dtype(config.train.dtype)

    def batch_loss(theta: Array, pts: Points, y: Array) -> Array:
        return sample_loss(embed(theta, pts), y, beta)

    def grad(theta: Array, key: Array) -> Array:
        assert t.batch_size is not None  # only SGD (a set train.batch_size) builds this
        pts, y = draw_minibatch(key, ts, config.data, t.batch_size, t.fresh_augmentations, dtype)
        return jax.grad(batch_loss)(theta, pts, y)

    return grad
