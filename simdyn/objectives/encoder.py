"""Autodiff through a flax encoder: any :class:`simdyn.encoders.SparseEncoder` (linear map or
ReLU MLP, optional head and normalisation) with any contrastive loss on its projections.

Unlike the linear forms this representation is parameterised by a model, so the registry
holds :class:`EncoderRepresentation` and a run builds one from its encoder and loss
(``objectives.get("encoder")(encoder, loss)``). ``auto`` never picks it: it is the slow,
general reference the generic path (:mod:`simdyn._src.generic_train`) trains with. Its step cost is
XLA's own count for the compiled full-batch gradient (``cost_analysis``), not a hand count.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp

from simdyn.config import Config
from simdyn.cost import StepCost
from simdyn.data import Points, TrainingSet, sample_training_set
from simdyn.encoders import SparseEncoder, init_encoder
from simdyn.objectives.base import common_memory, itemsize, pytree_dataclass

Array = jax.Array
ViewLoss = Callable[[Array, Array], Array]  # (z (n, m, p'), y (n,)) -> scalar


@pytree_dataclass(data=("points", "y"), meta=("encoder", "view_loss"))
class EncoderObjective:
    """points: the seed's training points (n, m, ...); y: labels (n,); encoder: the flax
    module; view_loss: the loss on its projections. Parameters are the encoder's param dict."""

    points: Points
    y: Array
    encoder: SparseEncoder
    view_loss: ViewLoss

    def batch_loss(self, params: dict, points: Points, y: Array) -> Array:
        """The loss on any points (a minibatch, or the whole training set)."""
        # flax types apply() as ``out | (out, state)``; without mutable= it returns ``out``
        out = self.encoder.apply(params, points)
        return self.view_loss(out.projection, y)  # type: ignore[union-attr]

    def loss(self, params: dict) -> Array:
        return self.batch_loss(params, self.points, self.y)

    def loss_and_grad(self, params: dict) -> tuple[Array, dict]:
        return jax.value_and_grad(self.loss)(params)


@dataclasses.dataclass(frozen=True)
class EncoderRepresentation:
    """The encoder representation for one model: ``encoder`` and ``view_loss``."""

    encoder: SparseEncoder
    view_loss: ViewLoss
    name: ClassVar[str] = "encoder"

    def applies(self, config: Config) -> bool:
        return self.encoder.d == config.data.d

    def build(self, config: Config, ts: TrainingSet, beta: Array | None = None) -> EncoderObjective:
        """``beta`` is not used: the view loss carries its own weight."""
        return EncoderObjective(ts.points, ts.labels.y, self.encoder, self.view_loss)

    def _abstract(self, config: Config) -> tuple[dict, TrainingSet]:
        dtype = jnp.dtype(config.train.dtype)
        key = jax.random.key(0)
        ts = jax.eval_shape(lambda k: sample_training_set(k, config.data, dtype), key)
        params = jax.eval_shape(lambda k, pts: init_encoder(self.encoder, k, pts), key, ts.points)
        return params, ts

    def step_cost(self, config: Config) -> StepCost:
        """XLA's FLOPs and bytes accessed for one full-batch gradient (gathers are in bytes)."""
        params, ts = self._abstract(config)
        grad = lambda prm, t: jax.grad(self.build(config, t).loss)(prm)  # noqa: E731
        cost = jax.jit(grad).lower(params, ts).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        assert cost is not None, "XLA gave no cost analysis for this module"
        return StepCost(float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0)), 0.0)

    def memory_per_seed(self, config: Config) -> int:
        """Hand count: four copies of the parameters (value, gradient, two optimiser slots) and
        three of every layer's activations over the N training points."""
        params, _ = self._abstract(config)
        num_params = sum(math.prod(p.shape) for p in jax.tree.leaves(params))
        widths = sum(self.encoder.widths) + sum(self.encoder.head)
        extra = 4 * num_params + 3 * config.data.num_points * widths
        return int(itemsize(config) * (common_memory(config) + extra))
