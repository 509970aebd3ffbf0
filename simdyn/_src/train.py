"""Training: ``make_train(config) -> train(seed_key, hparams) -> Trajectory`` for ONE seed.

The per-seed function is pure; :func:`simdyn.simulate` runs ``jit(vmap(train))`` over seed keys,
so the compiled program is ``jit(vmap(scan(step)))`` with the seed axis outermost.

A seed's randomness: ``seed_key = fold_in(base_key, seed_index)``, then ``fold_in(seed_key,
purpose)`` for the training data, the init, the minibatches (``fold_in(batch_key, step)``) and
the probe test set. Nothing depends on how many seeds are run together.

Full-batch GD uses the exact gradient of the registered representation (:mod:`simdyn.objectives`:
structured, dense, projected or sample) that ``train.backend`` resolves to. Minibatch SGD forms
the loss's pairs inside the batch of originals (SimCLR/SupCon practice), with the fixed m
augmentations or fresh ones every step (:func:`simdyn.objectives.sample.minibatch_gradient`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar, overload

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simdyn import objectives
from simdyn.config import Config, ConfigError
from simdyn.data import TestSet, TrainingSet, sample_test_set, sample_training_set
from simdyn.initialization import init_theta
from simdyn.loop import LoopResult, Record, record_for, run_loop
from simdyn.losses import loss_beta
from simdyn.metrics import feature_alignment, probe_accuracy
from simdyn.objectives.base import Objective
from simdyn.objectives.sample import minibatch_gradient
from simdyn.seeds import step_key, streams

Array = jax.Array
R = TypeVar("R")


class HyperParams(NamedTuple):
    """Numeric hyper-parameters that can vary inside one compiled program.

    They are traced arrays, not static config fields, so one compiled program runs every value:
    :func:`simdyn.simulate` takes ``hparams=`` with scalar fields (shared by all seeds) or
    ``(num_seeds,)`` fields (one value per seed), and a field left ``None`` there keeps the
    config's value. :func:`default_hparams` gives a config's own values.

    Attributes:
      lr: () learning rate, > 0 (``train.lr``).
      beta: () weight of the SCL term in the loss, in [0, 1]: 1 for ``scl``, 0 for ``ucl``,
        ``train.beta`` for ``joint`` (only ``joint`` may vary it).
      sigma_0: () init scale, >= 0: Theta_0 entries ~ N(0, sigma_0^2 / d) (``model.sigma_0``).

    Examples:
      >>> import jax.numpy as jnp
      >>> import simdyn
      >>> hp = simdyn.HyperParams(lr=jnp.asarray(0.1), beta=jnp.asarray(1.0),
      ...                         sigma_0=jnp.asarray(1e-3))
      >>> hp._fields
      ('lr', 'beta', 'sigma_0')
      >>> float(hp._replace(lr=jnp.asarray(0.5)).lr)
      0.5
    """

    lr: Array
    beta: Array
    sigma_0: Array


def default_hparams(config: Config) -> HyperParams:
    """The hyper-parameters a config trains with (what :func:`simdyn.simulate` uses by default).

    Args:
      config: the run's configuration.

    Returns:
      The ``HyperParams`` of () arrays in ``train.dtype`` holding ``train.lr``, the loss's SCL
      weight (1 for ``scl``, 0 for ``ucl``, ``train.beta`` for ``joint``) and
      ``model.sigma_0``.

    Examples:
      >>> import simdyn
      >>> config = simdyn.preset("fig2a").replace(loss="joint", beta=0.25)
      >>> hp = simdyn.default_hparams(config)
      >>> [round(float(value), 6) for value in hp]  # lr, beta, sigma_0
      [0.05, 0.25, 0.001]
      >>> hp.lr.shape, hp.lr.dtype
      ((), dtype('float32'))
      >>> float(simdyn.default_hparams(config.replace(loss="ucl")).beta)  # UCL: beta = 0
      0.0
    """
    dtype = jnp.dtype(config.train.dtype)
    return HyperParams(
        lr=jnp.asarray(config.train.lr, dtype),
        beta=jnp.asarray(loss_beta(config.train.loss, config.train.beta), dtype),
        sigma_0=jnp.asarray(config.model.sigma_0, dtype),
    )


class Trajectory(NamedTuple):
    """What one seed's run records (the result of :func:`make_train`'s ``train``).

    R = steps / log_every + 1 recorded steps (0, log_every, ..., steps); Q probe steps (0,
    probe_every, ..., steps; only the last step when probe_every = 0, none when -1). Under
    :func:`simdyn.simulate` every field gains a leading seed axis.

    Attributes:
      alignment: (R, K + 1) ||Theta_t v_j||, j = 0 (bias) .. K.
      loss: (R,) full training loss at the recorded steps.
      probe_class: (Q,) linear-probe accuracy for y on fresh test data.
      probe_subclass: (Q,) linear-probe accuracy for y_sub within each class.
      diverged: () bool, the seed's loss or Theta became non-finite or exceeded the threshold.
      diverged_step: () int32, first recorded step where that was seen (-1 if never).
      theta: (p, d + 1) final Theta if ``train.save_theta`` else (0,).

    Examples:
      >>> import jax, simdyn
      >>> config = simdyn.preset("fig2a").replace(n=8, d=16, steps=4, log_every=2,
      ...                                         probe_every=4, save_theta=True)
      >>> train = simdyn.make_train(config)
      >>> traj = jax.eval_shape(train, jax.random.key(0), simdyn.default_hparams(config))
      >>> traj._fields
      ('alignment', 'loss', 'probe_class', 'probe_subclass', 'diverged', 'diverged_step', 'theta')
      >>> traj.alignment.shape, traj.loss.shape, traj.probe_class.shape  # R = 3, K = 4, Q = 2
      ((3, 5), (3,), (2,))
      >>> traj.diverged.dtype, traj.diverged_step.dtype, traj.theta.shape  # theta: (p, d + 1)
      (dtype('bool'), dtype('int32'), (3, 17))
    """

    alignment: Array | np.ndarray
    loss: Array | np.ndarray
    probe_class: Array | np.ndarray
    probe_subclass: Array | np.ndarray
    diverged: Array | np.ndarray
    diverged_step: Array | np.ndarray
    theta: Array | np.ndarray


def trajectory_of(out: LoopResult, dtype) -> Trajectory:
    """A :class:`Trajectory` from the loop's result (alignment observable, optional probe)."""
    empty = jnp.zeros((0,), dtype)
    pc, ps = out.probed.get("probe", (empty, empty))
    theta = empty if out.final is None else out.final
    return Trajectory(
        out.observed["alignment"], out.loss, pc, ps, out.diverged, out.diverged_step, theta
    )


def training_dtype(config: Config) -> np.dtype:
    """The dtype a run trains in (``train.dtype``), checked against JAX's mode.

    Raises:
      ConfigError: ``train.dtype='float64'`` while JAX runs 32-bit (call
        :func:`simdyn.enable_x64` first): JAX would silently train in float32.
    """
    dtype = jnp.dtype(config.train.dtype)
    if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ConfigError(
            "train.dtype='float64' needs 64-bit JAX: call simdyn.enable_x64() "
            "(or set JAX_ENABLE_X64=1) before building the run"
        )
    return dtype


def training_set_of(config: Config, seed_key: Array) -> TrainingSet:
    """The training set a seed with key ``seed_key`` trains on (training dtype)."""
    return sample_training_set(streams(seed_key).data, config.data, jnp.dtype(config.train.dtype))


def fresh_test_set_of(config: Config, seed_key: Array, n: int | None = None) -> TestSet:
    """The fresh test set (``n`` points, default data.n_test) that seed's probes use."""
    return sample_test_set(streams(seed_key).test, config.data, n, jnp.dtype(config.train.dtype))


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


def full_objective(config: Config, ts: TrainingSet, beta: Array) -> Objective:
    """The full training objective of one seed (:mod:`simdyn.objectives`): the representation
    ``train.backend`` resolves to; for minibatch SGD, which records the FULL loss, the cheapest
    exact full-batch one."""
    return objectives.get(objectives.full_batch_name(config)).build(config, ts, beta)


ObjectiveFactory = Callable[[Config, TrainingSet, Array], Objective]
TrainingSetFactory = Callable[[Config, Array], TrainingSet]
InitFactory = Callable[[Config, Array, HyperParams], Array]
ContextFactory = Callable[[Config, Array, Objective], Any]


def init_of(config: Config, seed_key: Array, hp: HyperParams) -> Array:
    """Theta_0, (p, d + 1), of the seed with key ``seed_key`` (its init stream, ``hp.sigma_0``)."""
    dcfg, mcfg = config.data, config.model
    dtype = jnp.dtype(config.train.dtype)
    return init_theta(streams(seed_key).init, mcfg.p, dcfg.d, hp.sigma_0, mcfg.bias, dtype)


def _no_context(config: Config, seed_key: Array, objective: Objective) -> None:
    return None


@dataclass(frozen=True)
class Recording(Generic[R]):
    """What :func:`make_train`'s run records and returns: its extension point for recording
    other quantities than a :class:`Trajectory` (the experiments record Theta itself, or
    observables of the seed's moments).

    Attributes:
      record: the loop's :class:`simdyn.Record` spec; its steps must fit ``train.steps``.
      result: ``result(loop_result) -> R``, what ``train`` returns, from the
        :class:`simdyn.LoopResult` (R log steps: ``observed[name]`` is (R, ...)).
      context: ``context(config, seed_key, objective) -> c``, the second argument of every
        observable and probe (``objective`` is the seed's full objective, e.g. a moment form
        with ``.moments`` and ``.beta``); default None.

    Examples:
      >>> import jax, simdyn
      >>> config = simdyn.preset("fig2a").replace(n=8, d=16, steps=4, probe_every=-1)
      >>> norm = {"norm": lambda theta, ctx: jax.numpy.linalg.norm(theta)}
      >>> recording = simdyn.Recording(
      ...     simdyn.Record(at=(0, 4), loss=False, observables=norm),
      ...     result=lambda out: out.observed["norm"])
      >>> train = simdyn.make_train(config, recording=recording)
      >>> jax.eval_shape(train, jax.random.key(0), simdyn.default_hparams(config)).shape
      (2,)
    """

    record: Record
    result: Callable[[LoopResult], R]
    context: ContextFactory = _no_context


def trajectory_recording(config: Config) -> Recording[Trajectory]:
    """:func:`make_train`'s default :class:`Recording`: a :class:`Trajectory` (alignments and
    loss every ``log_every`` steps, probes on the seed's fresh test set, final Theta)."""
    spec = record_for(
        config.train,
        {"alignment": lambda theta, test: feature_alignment(theta, config.data.K)},
        {"probe": lambda theta, test: probe_accuracy(theta, test)},
    )

    def test_set(config: Config, seed_key: Array, objective: Objective) -> TestSet | None:
        return fresh_test_set_of(config, seed_key) if spec.probes else None

    dtype = jnp.dtype(config.train.dtype)
    return Recording(spec, lambda out: trajectory_of(out, dtype), test_set)


@overload
def make_train(
    config: Config,
    *,
    objective: ObjectiveFactory | None = None,
    training_set: TrainingSetFactory | None = None,
    init: InitFactory | None = None,
    recording: None = None,
) -> Callable[[Array, HyperParams], Trajectory]: ...


@overload
def make_train(
    config: Config,
    *,
    objective: ObjectiveFactory | None = None,
    training_set: TrainingSetFactory | None = None,
    init: InitFactory | None = None,
    recording: Recording[R],
) -> Callable[[Array, HyperParams], R]: ...


def make_train(
    config: Config,
    *,
    objective: ObjectiveFactory | None = None,
    training_set: TrainingSetFactory | None = None,
    init: InitFactory | None = None,
    recording: Recording[Any] | None = None,
) -> Callable[[Array, HyperParams], Any]:
    """Build the per-seed training function for a (static) config.

    Args:
      config: the run's static configuration.
      objective: ``(config, training_set, beta) -> Objective`` (``loss(theta)``,
        ``loss_and_grad(theta)``) of the full-batch objective; default :func:`full_objective`
        (the registered representation ``train.backend`` resolves to). An extension point:
        ``simdyn verify --self-test`` passes deliberately broken objectives through it.
      training_set: ``(config, seed_key) -> TrainingSet``; default :func:`training_set_of`.
      init: ``(config, seed_key, hparams) -> Theta_0`` (p, d + 1); default :func:`init_of`.
      recording: what the run records and returns (:class:`Recording`); default
        :func:`trajectory_recording`, a :class:`Trajectory`.

    The factories may close over traced values: built inside a vmapped per-seed function,
    ``make_train`` runs one grid cell's data or init (the experiments' ``gd_runs`` does this).

    Returns:
      The per-seed function ``train(seed_key, hparams) -> Trajectory`` (or the recording's
      result), which runs one seed from its () PRNG key and its :class:`HyperParams` (scalars);
      pure, jit- and vmap-compatible (:func:`simdyn.simulate` runs ``jit(vmap(train))`` over
      seed keys). The :class:`Trajectory` has R = steps / log_every + 1 recorded steps:
      alignment (R, K + 1), loss (R,).

    Raises:
      ConfigError: ``train.dtype='float64'`` while JAX runs 32-bit (call
        :func:`simdyn.enable_x64` first).

    Examples:
      >>> import jax, simdyn
      >>> config = simdyn.preset("fig2a").replace(n=8, d=16, steps=3, log_every=1,
      ...                                         probe_every=-1)
      >>> train = simdyn.make_train(config)
      >>> keys = jax.random.split(jax.random.key(0), 2)  # two seed keys
      >>> batched = jax.eval_shape(jax.vmap(train, in_axes=(0, None)), keys,
      ...                          simdyn.default_hparams(config))
      >>> batched.alignment.shape, batched.loss.shape, batched.diverged.shape  # (seed, R, K + 1)
      ((2, 4, 5), (2, 4), (2,))
    """
    objective = full_objective if objective is None else objective
    training_set = training_set_of if training_set is None else training_set
    init = init_of if init is None else init
    t, mcfg = config.train, config.model
    training_dtype(config)  # refuses float64 without 64-bit JAX, before any tracing
    recording = trajectory_recording(config) if recording is None else recording

    def train(seed_key: Array, hp: HyperParams) -> Any:
        ts = training_set(config, seed_key)
        keys = streams(seed_key)
        full = objective(config, ts, hp.beta)
        batch_grad = None if t.full_batch else minibatch_gradient(config, ts, hp.beta)
        theta0 = init(config, seed_key, hp)

        def direction(theta: Array, step: Array) -> Array:
            if batch_grad is None:
                g = full.loss_and_grad(theta)[1]
            else:
                g = batch_grad(theta, step_key(keys.batch, step))
            return g if mcfg.bias else g.at[:, 0].set(0.0)

        out = run_loop(
            theta0,
            direction,
            make_optimizer(t.optimizer, hp.lr, t.momentum),
            steps=t.steps,
            record=recording.record,
            loss=full.loss,
            context=recording.context(config, seed_key, full),
            divergence_threshold=t.divergence_threshold,
        )
        return recording.result(out)

    return train
