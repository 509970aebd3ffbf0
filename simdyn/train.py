"""Training: ``make_train(config) -> train(seed_key, hparams) -> Trajectory`` for ONE seed.

The per-seed function is pure; :func:`simdyn.simulate` runs ``jit(vmap(train))`` over seed keys,
so the compiled program is ``jit(vmap(scan(step)))`` with the seed axis outermost.

A seed's randomness: ``seed_key = fold_in(base_key, seed_index)``, then ``fold_in(seed_key,
purpose)`` for the training data, the init, the minibatches (``fold_in(batch_key, step)``) and
the probe test set. Nothing depends on how many seeds are run together.

Full-batch GD uses the exact closed-form gradient -4 Theta P + 4 (Theta M Theta^T)(Theta M) on
a moment representation chosen by ``train.backend`` (``structured`` for basis noise, ``dense``
matrix form otherwise, or ``sample``: autodiff of the per-point loss). Minibatch SGD forms the
loss's pairs inside the batch of originals (SimCLR/SupCon practice), with the fixed m
augmentations or fresh ones every step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from simdyn.config import Config, ConfigError
from simdyn.cost import choose_backend
from simdyn.data import (
    Points,
    TestSet,
    TrainingSet,
    augment,
    embed,
    sample_test_set,
    sample_training_set,
    without_replacement,
)
from simdyn.loop import LoopResult, record_for, run_loop
from simdyn.losses import (
    STATIC_BETA,
    gradient_from_products,
    loss_beta,
    loss_from_products,
    sample_loss,
)
from simdyn.metrics import feature_alignment, probe_accuracy
from simdyn.moments import dense_moments, products, structured_moments
from simdyn.projected import loss_and_grad as projected_loss_and_grad
from simdyn.projected import projected_objective
from simdyn.seeds import step_key, streams

Array = jax.Array


class HyperParams(NamedTuple):
    """Numeric hyper-parameters that can vary inside one compiled program (scalars)."""

    lr: Array
    beta: Array
    sigma_0: Array


def default_hparams(config: Config) -> HyperParams:
    dtype = jnp.dtype(config.train.dtype)
    return HyperParams(
        lr=jnp.asarray(config.train.lr, dtype),
        beta=jnp.asarray(loss_beta(config.train.loss, config.train.beta), dtype),
        sigma_0=jnp.asarray(config.model.sigma_0, dtype),
    )


class Trajectory(NamedTuple):
    """What one seed's run records. R = len(record_steps), Q = len(probe_steps).

    alignment: (R, K + 1) ||Theta_t v_j||, j = 0 (bias) .. K.
    loss: (R,) full training loss at the recorded steps.
    probe_class: (Q,) linear-probe accuracy for y on fresh test data.
    probe_subclass: (Q,) linear-probe accuracy for y_sub within each class.
    diverged: () bool, the seed's loss or Theta became non-finite or exceeded the threshold.
    diverged_step: () int32, first recorded step where that was seen (-1 if never).
    theta: (p, d + 1) final Theta if ``train.save_theta`` else (0,).
    """

    alignment: Array
    loss: Array
    probe_class: Array
    probe_subclass: Array
    diverged: Array
    diverged_step: Array
    theta: Array


def trajectory_of(out: LoopResult, dtype) -> Trajectory:
    """A :class:`Trajectory` from the loop's result (alignment observable, optional probe)."""
    empty = jnp.zeros((0,), dtype)
    pc, ps = out.probed.get("probe", (empty, empty))
    theta = empty if out.final is None else out.final
    return Trajectory(
        out.observed["alignment"], out.loss, pc, ps, out.diverged, out.diverged_step, theta
    )


def training_set_of(config: Config, seed_key: Array) -> TrainingSet:
    """The training set a seed with key ``seed_key`` trains on (training dtype)."""
    return sample_training_set(streams(seed_key).data, config.data, jnp.dtype(config.train.dtype))


def fresh_test_set_of(config: Config, seed_key: Array, n: int | None = None) -> TestSet:
    """The fresh test set (``n`` points, default data.n_test) that seed's probes use."""
    return sample_test_set(streams(seed_key).test, config.data, n, jnp.dtype(config.train.dtype))


def resolve_backend(config: Config) -> str:
    """The representation ``auto`` picks: full batch, the exact path that the cost model
    (:func:`simdyn.cost.choose_backend`) finds cheapest per step; minibatch SGD, ``sample``."""
    t = config.train
    if t.backend != "auto":
        return t.backend
    if not t.full_batch:
        return "sample"
    return choose_backend(config)


def make_optimizer(name: str, lr: Array, momentum: float) -> optax.GradientTransformation:
    """An optax optimiser; ``sgd`` is the paper's plain (S)GD: Theta <- Theta - lr * g."""
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=momentum)
    if name == "nesterov":
        return optax.sgd(lr, momentum=momentum, nesterov=True)
    if name in ("adam", "adamw", "rmsprop", "adagrad"):
        return getattr(optax, name)(lr)
    raise ConfigError(f"invalid train.optimizer={name!r}")


def init_theta(key: Array, p: int, d: int, sigma_0: Array, bias: bool, dtype) -> Array:
    """Theta_0 entries ~ N(0, sigma_0^2 / d); the bias column is 0 when the bias is off."""
    theta = jax.random.normal(key, (p, d + 1), dtype) * (sigma_0 / jnp.sqrt(jnp.asarray(d, dtype)))
    return theta if bias else theta.at[:, 0].set(0.0)


def full_objective(
    config: Config, ts: TrainingSet, beta: Array
) -> tuple[Callable[[Array], Array], Callable[[Array], tuple[Array, Array]]]:
    """(loss(theta), loss_and_grad(theta)) of the full training objective for the backend."""
    # Minibatch runs still record the FULL loss: use the cheapest exact full-batch path for it.
    backend = resolve_backend(config) if config.train.full_batch else choose_backend(config)
    if backend == "projected":
        obj = projected_objective(ts.points, ts.labels, config.data, beta)
        loss_and_grad = functools.partial(projected_loss_and_grad, obj)
        return (lambda theta: loss_and_grad(theta)[0]), loss_and_grad
    if backend in ("structured", "dense"):
        build = structured_moments if backend == "structured" else dense_moments
        mom = build(ts.points, ts.labels, config.data.d)
        # SCL and UCL have a static weight (train.beta is ignored for them): compile only the
        # product that weight keeps. beta * X + (1 - beta) * 0 is X exactly (the fused sums may
        # still round differently: 1 ulp of the loss seen in tests/test_train.py).
        static = STATIC_BETA.get(config.train.loss)
        weight = beta if static is None else static
        keep_plus, keep_tilde = static != 0.0, static != 1.0

        def loss_and_grad(theta: Array) -> tuple[Array, Array]:
            prods = products(mom, theta, plus=keep_plus, tilde=keep_tilde)
            return (
                loss_from_products(theta, prods, weight),
                gradient_from_products(theta, prods, weight),
            )

        return (lambda theta: loss_and_grad(theta)[0]), loss_and_grad

    def loss(theta: Array) -> Array:
        return sample_loss(embed(theta, ts.points), ts.labels.y, beta)

    return loss, jax.value_and_grad(loss)


def _minibatch_grad(
    config: Config, ts: TrainingSet, beta: Array
) -> Callable[[Array, Array], Array]:
    """grad(theta, key) of the in-batch loss on a minibatch of originals."""
    dcfg, bsz = config.data, config.train.batch_size
    dtype = jnp.dtype(config.train.dtype)

    def batch_loss(theta: Array, pts: Points, y: Array) -> Array:
        return sample_loss(embed(theta, pts), y, beta)

    def grad(theta: Array, key: Array) -> Array:
        idx = without_replacement(jax.random.fold_in(key, 0), dcfg.n, bsz)
        labels = jax.tree.map(lambda a: a[idx], ts.labels)
        if config.train.fresh_augmentations:
            originals = jax.tree.map(lambda a: a[idx], ts.originals)
            pts = augment(jax.random.fold_in(key, 1), originals, labels, dcfg, dcfg.m, dtype=dtype)
        else:
            pts = jax.tree.map(lambda a: a[idx], ts.points)
        return jax.grad(batch_loss)(theta, pts, labels.y)

    return grad


ObjectiveFactory = Callable[
    [Config, TrainingSet, Array],
    tuple[Callable[[Array], Array], Callable[[Array], tuple[Array, Array]]],
]
TrainingSetFactory = Callable[[Config, Array], TrainingSet]


def make_train(
    config: Config,
    *,
    objective: ObjectiveFactory | None = None,
    training_set: TrainingSetFactory | None = None,
) -> Callable[[Array, HyperParams], Trajectory]:
    """Build the per-seed training function for a (static) config.

    Args:
      config: the run's static configuration.
      objective: ``(config, training_set, beta) -> (loss, loss_and_grad)`` of the full-batch
        objective; default :func:`full_objective` (the exact representation ``train.backend``
        picks). An extension point: ``simdyn verify --self-test`` passes deliberately broken
        objectives through it.
      training_set: ``(config, seed_key) -> TrainingSet``; default :func:`training_set_of`.

    Returns ``train(seed_key, hparams) -> Trajectory``; pure, jit- and vmap-compatible.
    """
    objective = full_objective if objective is None else objective
    training_set = training_set_of if training_set is None else training_set
    t, dcfg, mcfg = config.train, config.data, config.model
    dtype = jnp.dtype(t.dtype)
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ConfigError(
            "train.dtype='float64' needs 64-bit JAX: call simdyn.enable_x64() "
            "(or set JAX_ENABLE_X64=1) before building the run"
        )
    spec = record_for(
        t,
        {"alignment": lambda theta, test: feature_alignment(theta, dcfg.K)},
        {"probe": lambda theta, test: probe_accuracy(theta, test)},
    )

    def train(seed_key: Array, hp: HyperParams) -> Trajectory:
        ts = training_set(config, seed_key)
        keys = streams(seed_key)
        full_loss, full_loss_and_grad = objective(config, ts, hp.beta)
        batch_grad = None if t.full_batch else _minibatch_grad(config, ts, hp.beta)
        theta0 = init_theta(keys.init, mcfg.p, dcfg.d, hp.sigma_0, mcfg.bias, dtype)

        def direction(theta: Array, step: Array) -> Array:
            if batch_grad is None:
                g = full_loss_and_grad(theta)[1]
            else:
                g = batch_grad(theta, step_key(keys.batch, step))
            return g if mcfg.bias else g.at[:, 0].set(0.0)

        out = run_loop(
            theta0,
            direction,
            make_optimizer(t.optimizer, hp.lr, t.momentum),
            steps=t.steps,
            record=spec,
            loss=full_loss,
            context=fresh_test_set_of(config, seed_key) if spec.probes else None,
            divergence_threshold=t.divergence_threshold,
        )
        return trajectory_of(out, dtype)

    return train
