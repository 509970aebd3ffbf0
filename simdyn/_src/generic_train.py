"""Generic training: any encoder (:mod:`simdyn.encoders`) with any contrastive loss, by autodiff.

``make_generic_train(config, encoder, loss) -> train(seed_key) -> GenericTrajectory`` for ONE
seed; :func:`simdyn.run_generic` / ``simulate_generic`` hand it to the seed
engine, which runs ``jit(vmap(train))`` over seed keys, so the compiled program is
``jit(vmap(scan(step)))`` with the seed axis outermost, as in :mod:`simdyn._src.train`. This module
is the trainer only: it imports neither the seed engine nor result I/O.

Same data, same keys: a seed's training set, init, minibatches and probe test set come from the
streams of :mod:`simdyn.seeds`, as in :mod:`simdyn._src.train`. A linear
encoder with the spectral loss therefore reproduces :func:`simdyn.make_train` step for step
(tested to ~1e-10 in float64); that fast path stays the default wherever it applies. This one is
the slow, general reference for nonlinear encoders and NCE losses.

Recorded (:class:`simdyn.Trajectory`'s fields plus ||W_1||_F): the alignment of the FIRST
layer with each feature (norm of its column j, j = 0 bias .. K), the full training loss, linear
probes (class; subclass within class) on the test representations, divergence flags, and the
final first-layer matrix when ``train.save_theta``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simdyn._src.nce_losses import joint_nce
from simdyn._src.train import (
    Trajectory,
    make_optimizer,
    training_dtype,
    trajectory_of,
)
from simdyn.config import Config, ConfigError
from simdyn.data import TestSet, draw_minibatch, sample_test_set, sample_training_set
from simdyn.encoders import SparseEncoder, first_layer, init_encoder
from simdyn.loop import record_for, run_loop
from simdyn.losses import loss_beta, sample_loss
from simdyn.metrics import ProbeAccuracy, feature_alignment, probe_accuracy_from_embeddings
from simdyn.objectives.encoder import EncoderRepresentation
from simdyn.seeds import step_key, streams

Array = jax.Array
LossFamily = Literal["spectral", "nce"]


@dataclass(frozen=True)
class ContrastiveLoss:
    """A contrastive loss on views: ``loss(z, y)`` with embeddings ``z`` (n, m, p) of n
    originals' m views and class labels ``y`` (n,), a scalar.

    Attributes:
      family: ``spectral`` (HaoChen et al., the paper's loss: :func:`simdyn.losses.sample_loss`)
        or ``nce`` (SupCon / InfoNCE, :mod:`simdyn._src.nce_losses`).
      beta: weight of the supervised term: 1 = SCL / SupCon, 0 = UCL / InfoNCE, in between
        the joint loss beta * supervised + (1 - beta) * unsupervised; in [0, 1].
      temperature: NCE only: tau > 0.
      cosine: NCE only: cosine similarities (as in SimCLR and SupCon) instead of dot products.

    Raises:
      ConfigError: a family other than spectral / nce, beta outside [0, 1], temperature <= 0.

    Examples:
      >>> import jax.numpy as jnp
      >>> from simdyn import ContrastiveLoss
      >>> loss = ContrastiveLoss("nce", beta=0.0, temperature=0.5)
      >>> loss.name
      'nce:infonce'
      >>> z = jnp.arange(24.0).reshape(4, 2, 3) / 24  # 4 originals, 2 views, p = 3
      >>> y = jnp.array([1, 1, -1, -1])
      >>> bool(jnp.isfinite(loss(z, y))), loss(z, y).shape
      (True, ())
    """

    family: LossFamily = "spectral"
    beta: float = 1.0
    temperature: float = 0.5
    cosine: bool = True

    def __post_init__(self) -> None:
        if self.family not in ("spectral", "nce"):
            raise ConfigError(f"invalid family={self.family!r}: must be 'spectral' or 'nce'")
        if not 0.0 <= float(self.beta) <= 1.0:
            raise ConfigError(f"invalid beta={self.beta!r}: must be in [0, 1]")
        if not float(self.temperature) > 0.0:
            raise ConfigError(f"invalid temperature={self.temperature!r}: must be > 0")

    def __call__(self, z: Array, y: Array) -> Array:
        if self.family == "spectral":
            return sample_loss(z, y, self.beta)
        return joint_nce(z, y, self.beta, self.temperature, self.cosine)

    @property
    def name(self) -> str:
        sup, unsup = ("scl", "ucl") if self.family == "spectral" else ("supcon", "infonce")
        if self.beta == 1.0:
            return f"{self.family}:{sup}"
        if self.beta == 0.0:
            return f"{self.family}:{unsup}"
        return f"{self.family}:joint(beta={self.beta:g})"


def loss_for(config: Config, family: LossFamily = "spectral", temperature: float = 0.5):
    """The ``family`` loss with the supervision of ``config.train.loss`` (scl/ucl/joint, beta)."""
    beta = float(loss_beta(config.train.loss, config.train.beta))
    return ContrastiveLoss(family, beta, temperature)


def _check(config: Config, encoder: SparseEncoder, loss: ContrastiveLoss) -> None:
    t, dcfg = config.train, config.data
    dtype = training_dtype(config)
    if encoder.d != dcfg.d:
        raise ConfigError(f"invalid encoder.d={encoder.d}: must equal data.d={dcfg.d}")
    if jnp.dtype(encoder.param_dtype) != dtype:
        raise ConfigError(
            f"invalid encoder.param_dtype={jnp.dtype(encoder.param_dtype)}: must equal "
            f"train.dtype={t.dtype} (build it with simdyn.encoders.make_encoder(config))"
        )
    if loss.family == "nce" and dcfg.m < 2:
        raise ConfigError(f"invalid data.m={dcfg.m}: NCE losses need m >= 2 views per original")


class GenericTrajectory(NamedTuple):
    """:class:`simdyn.Trajectory`'s fields (alignment = FIRST layer's columns) plus
    first_layer_norm: (R,) ||W_1||_F, bias column included, at the recorded steps (a scale for
    scale-free statements: NCE losses with cosine similarities do not fix ||W_1||)."""

    alignment: Array | np.ndarray
    loss: Array | np.ndarray
    probe_class: Array | np.ndarray
    probe_subclass: Array | np.ndarray
    diverged: Array | np.ndarray
    diverged_step: Array | np.ndarray
    theta: Array | np.ndarray
    first_layer_norm: Array | np.ndarray

    def core(self) -> Trajectory:
        """The fields shared with the fast path's Trajectory."""
        return Trajectory(*self[: len(Trajectory._fields)])


# Trajectory's fields, in order, then ||W_1||_F: checked here so the two can never drift apart.
if GenericTrajectory._fields != (*Trajectory._fields, "first_layer_norm"):
    raise RuntimeError("GenericTrajectory must list Trajectory's fields, then first_layer_norm")


def make_generic_train(
    config: Config, encoder: SparseEncoder, loss: ContrastiveLoss
) -> Callable[[Array], GenericTrajectory]:
    """Build the per-seed training function; pure, jit- and vmap-compatible.

    ``config`` gives the data, optimiser (``train.optimizer``, ``lr``, ``momentum``), steps,
    batching (``batch_size``, ``fresh_augmentations``), recording and dtype; ``config.train.loss``
    and ``beta`` are NOT used (the ``loss`` argument is the objective). Returns
    ``train(seed_key) -> GenericTrajectory`` (alignment of the first layer).
    """
    _check(config, encoder, loss)
    t, dcfg = config.train, config.data
    dtype = jnp.dtype(t.dtype)

    representation = EncoderRepresentation(encoder, loss)

    def probe(params: dict, test: TestSet) -> ProbeAccuracy:
        # flax types apply() as ``out | (out, state)``; without mutable= it returns ``out``
        z = encoder.apply(params, test.points).representation  # type: ignore[union-attr]
        return probe_accuracy_from_embeddings(z, test.labels)

    spec = record_for(
        t,
        {
            "alignment": lambda params, _: feature_alignment(first_layer(params), dcfg.K),
            "first_layer_norm": lambda params, _: jnp.linalg.norm(first_layer(params)),
        },
        {"probe": probe},
    )

    def train(seed_key: Array) -> GenericTrajectory:
        keys = streams(seed_key)
        ts = sample_training_set(keys.data, dcfg, dtype)
        params0 = init_encoder(encoder, keys.init, ts.points)
        full = representation.build(config, ts)

        def direction(params: dict, step: Array) -> dict:
            if t.full_batch:
                return jax.grad(full.loss)(params)
            assert t.batch_size is not None  # not full_batch: a minibatch size is set
            pts, y = draw_minibatch(
                step_key(keys.batch, step), ts, dcfg, t.batch_size, t.fresh_augmentations, dtype
            )
            return jax.grad(full.batch_loss)(params, pts, y)

        test = None
        if spec.probes:
            test = sample_test_set(keys.test, dcfg, dtype=dtype)
        out = run_loop(
            params0,
            direction,
            make_optimizer(t.optimizer, jnp.asarray(t.lr, dtype), t.momentum),
            steps=t.steps,
            record=spec,
            loss=full.loss,
            context=test,
            divergence_threshold=t.divergence_threshold,
        )
        if out.final is not None:
            out = out._replace(final=first_layer(out.final))
        return GenericTrajectory(*trajectory_of(out, dtype), out.observed["first_layer_norm"])

    return train
