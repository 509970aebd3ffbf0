"""The training loop, once: ``run_loop`` scans optimizer steps and records what a :class:`Record`
spec asks for, with divergence flags. Every simdyn training path runs through it.

A run is ``params_{t+1} = optimizer(params_t, direction(params_t, t))`` for ``t < steps``. At the
log steps the loop evaluates the full objective (recorded as ``loss``, and checked together with
the parameters for divergence) and the spec's observables; at the probe steps, the spec's probes.
Everything is a pure function of its inputs: wrap ``run_loop`` in ``vmap`` over seeds and ``jit``
and the program is ``jit(vmap(scan(step)))`` with the seed axis outermost.

Observables and probes are ``fn(params, context) -> pytree``: ``context`` is whatever the caller
passes (a seed's test set, its moments); the loop never looks inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simdyn.config import ConfigError

Array = jax.Array
PyTree = Any
Observable = Callable[[PyTree, Any], PyTree]


def _named(name: str, fns: Mapping[str, Observable] | None) -> tuple[tuple[str, Observable], ...]:
    items = tuple((fns or {}).items())
    for key, fn in items:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"invalid Record.{name} key {key!r}: must be a non-empty string")
        if not callable(fn):
            raise ConfigError(f"invalid Record.{name}[{key!r}]: must be fn(params, context)")
    return items


@dataclass(frozen=True)
class Record:
    """What :func:`run_loop` records (keyword-only; checked against ``steps`` by the loop).

    Args:
      every: log at steps 0, every, 2 every, ..., steps (``steps`` a multiple of ``every``).
      at: alternatively, explicit log steps: sorted, distinct, in [0, steps]. Give one of
        ``every`` and ``at``, or neither (then nothing is logged and divergence is checked at
        the last step only).
      loss: record the full objective at the log steps (it is also the divergence check).
      observables: ``{name: fn(params, context)}`` recorded at the log steps.
      probe_every: probes at steps 0, probe_every, ..., steps; a multiple of ``every``.
      probes: ``{name: fn(params, context)}`` recorded at the probe steps (needs probe_every).
      final: return the final parameters.

    A spec that records nothing, probes without a schedule (or a schedule without probes), or
    steps that do not fit the run, is a :class:`simdyn.ConfigError`.

    Example:
      >>> from simdyn.loop import Record
      >>> Record(every=10, observables={"norm": lambda theta, ctx: abs(theta).sum()}).every
      10
    """

    every: int | None = None
    at: tuple[int, ...] | None = None
    loss: bool = True
    observables: Mapping[str, Observable] = field(default_factory=dict)
    probe_every: int | None = None
    probes: Mapping[str, Observable] = field(default_factory=dict)
    final: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "observables", dict(_named("observables", self.observables)))
        object.__setattr__(self, "probes", dict(_named("probes", self.probes)))
        if self.every is not None and self.at is not None:
            raise ConfigError("invalid Record: give one of every= and at=, not both")
        if self.every is not None and (isinstance(self.every, bool) or int(self.every) < 1):
            raise ConfigError(f"invalid Record.every={self.every!r}: must be an integer >= 1")
        if self.at is not None:
            at = tuple(int(s) for s in self.at)
            if not at or min(at) < 0 or any(b <= a for a, b in zip(at, at[1:], strict=False)):
                raise ConfigError(f"invalid Record.at={self.at!r}: sorted distinct steps >= 0")
            object.__setattr__(self, "at", at)
        logs = self.every is not None or self.at is not None
        if (self.loss or self.observables) and not logs:
            raise ConfigError("invalid Record: loss/observables need log steps (every= or at=)")
        if bool(self.probes) != (self.probe_every is not None):
            raise ConfigError("invalid Record: probes= and probe_every= go together")
        if self.probe_every is not None:
            if self.every is None or self.probe_every < 1 or self.probe_every % self.every:
                raise ConfigError(
                    f"invalid Record.probe_every={self.probe_every!r}: must be a positive "
                    f"multiple of every={self.every!r}"
                )
        if not (self.loss and logs) and not self.observables and not self.probes:
            if not self.final:
                raise ConfigError("invalid Record: it records nothing (no log, probe or final)")

    def log_steps(self, steps: int) -> np.ndarray:
        """The log steps of a ``steps``-step run, (R,) int64 (checked)."""
        if self.every is not None:
            if steps % self.every:
                raise ConfigError(
                    f"invalid Record.every={self.every}: steps={steps} must be a multiple"
                )
            return np.arange(0, steps + 1, self.every, dtype=np.int64)
        if self.at is not None:
            if self.at[-1] > steps:
                raise ConfigError(f"invalid Record.at={self.at}: steps must be <= {steps}")
            return np.asarray(self.at, np.int64)
        return np.zeros((0,), np.int64)

    def probe_steps(self, steps: int) -> np.ndarray:
        """The probe steps of a ``steps``-step run, (Q,) int64 (checked)."""
        if self.probe_every is None:
            return np.zeros((0,), np.int64)
        if steps % self.probe_every:
            raise ConfigError(
                f"invalid Record.probe_every={self.probe_every}: steps={steps} must be a multiple"
            )
        return np.arange(0, steps + 1, self.probe_every, dtype=np.int64)


class LoopResult(NamedTuple):
    """What :func:`run_loop` returns (R log steps, Q probe steps).

    Attributes:
      loss: (R,) the objective at the log steps ((0,) when not recorded).
      observed: ``{name: (R, ...)}``, the observables at the log steps.
      probed: ``{name: (Q, ...)}``, the probes at the probe steps.
      diverged: () bool, non-finite or too large parameters or loss at a check.
      diverged_step: () int32, first check step where that was seen (-1 if never).
      final: the final parameters, or None unless ``Record.final``.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> import simdyn
      >>> out = simdyn.run_loop(jnp.ones(2), lambda x, t: 2 * x, optax.sgd(0.25), steps=2,
      ...                       record=simdyn.Record(every=1, final=True), loss=lambda x: x @ x)
      >>> out.loss.shape, bool(out.diverged), out.final.tolist()
      ((3,), False, [0.25, 0.25])
    """

    loss: Array
    observed: dict[str, PyTree]
    probed: dict[str, PyTree]
    diverged: Array
    diverged_step: Array
    final: PyTree | None


class _State(NamedTuple):
    params: PyTree
    opt_state: optax.OptState
    step: Array
    diverged: Array
    diverged_step: Array


def _stack_first(first: PyTree, rest: PyTree) -> PyTree:
    """Prepend one record (step 0) to the scanned records (any leading block shape)."""
    return jax.tree.map(
        lambda a, b: jnp.concatenate([a[None], b.reshape((-1, *a.shape))]), first, rest
    )


def run_loop(
    params0: PyTree,
    direction: Callable[[PyTree, Array], PyTree],
    optimizer: optax.GradientTransformation,
    *,
    steps: int,
    record: Record,
    loss: Callable[[PyTree], Array] | None = None,
    context: Any = None,
    divergence_threshold: float = float("inf"),
) -> LoopResult:
    """Run ``steps`` optimizer steps from ``params0`` and record what ``record`` asks for.

    Args:
      params0: initial parameters (any pytree of float arrays).
      direction: ``direction(params, step) -> gradient`` (a pytree like params): the full
        gradient for GD, a minibatch gradient (keyed by ``step``) for SGD.
      optimizer: an optax transformation; ``optax.sgd(lr)`` is the paper's (S)GD.
      steps: number of steps, >= 0.
      record: the :class:`Record` spec.
      loss: ``loss(params) -> ()`` the full objective, needed when ``record.loss``.
      context: passed to every observable and probe as their second argument.
      divergence_threshold: a run is flagged once its loss or any parameter is non-finite or
        max |param| exceeds this, at a log step (at the last step when nothing is logged).

    Returns:
      A :class:`LoopResult`: the recorded loss, observables and probes, the divergence flag and
      step, and the final parameters when ``record.final``. Pure: jit- and vmap-compatible.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from simdyn.loop import Record, run_loop
      >>> out = run_loop(jnp.ones(2), lambda x, t: 2 * x, optax.sgd(0.25), steps=4,
      ...                record=Record(every=2), loss=lambda x: jnp.sum(x**2))
      >>> out.loss.tolist()  # x halves every step: 2, 2/16, 2/256
      [2.0, 0.125, 0.0078125]
    """
    if isinstance(steps, bool) or int(steps) < 0:
        raise ConfigError(f"invalid steps={steps!r}: must be an integer >= 0")
    if record.loss and loss is None:
        raise ConfigError("run_loop: Record(loss=True) needs the loss= function")
    hooks = _hooks(direction, optimizer, record, loss, context, divergence_threshold)
    s = _State(
        params0,
        optimizer.init(params0),
        jnp.zeros((), jnp.int32),
        jnp.zeros((), bool),
        jnp.full((), -1, jnp.int32),
    )
    probed: dict = {}
    if record.every is not None:
        s, value, observed, probed = _scan_every(hooks, s, record, steps)
    elif record.at is not None:
        s, value, observed = _scan_at(hooks, s, record.log_steps(steps), steps)
    else:
        s = hooks.check(jax.lax.fori_loop(0, steps, hooks.step, s), None)
        value, observed = None, {}
    return LoopResult(
        jnp.zeros((0,)) if value is None else value,
        observed,
        probed,
        s.diverged,
        s.diverged_step,
        s.params if record.final else None,
    )


class _Hooks(NamedTuple):
    """The loop's pieces for one run: a step, a divergence check, a log and a probe."""

    step: Callable[[Any, _State], _State]
    check: Callable[[_State, Array | None], _State]
    log: Callable[[_State], tuple[_State, tuple[Array | None, dict]]]
    probe: Callable[[_State], dict]


def _hooks(direction, optimizer, record: Record, loss, context, threshold: float) -> _Hooks:
    def step(_, s: _State) -> _State:
        g = direction(s.params, s.step)
        updates, opt_state = optimizer.update(g, s.opt_state, s.params)
        return s._replace(
            params=optax.apply_updates(s.params, updates), opt_state=opt_state, step=s.step + 1
        )

    def check(s: _State, value: Array | None) -> _State:
        leaves = jax.tree.leaves(s.params)
        bad = ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))
        biggest = jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in leaves]))
        bad = bad | (biggest > threshold)
        if value is not None:
            bad = (~jnp.isfinite(value)) | bad
        newly = bad & ~s.diverged
        return s._replace(
            diverged=s.diverged | bad, diverged_step=jnp.where(newly, s.step, s.diverged_step)
        )

    def log(s: _State) -> tuple[_State, tuple[Array | None, dict]]:
        value = loss(s.params) if record.loss else None
        s = check(s, value)
        obs = {name: fn(s.params, context) for name, fn in record.observables.items()}
        return s, (value, obs)

    def probe(s: _State) -> dict:
        return {name: fn(s.params, context) for name, fn in record.probes.items()}

    return _Hooks(step, check, log, probe)


def _scan_every(hooks: _Hooks, s: _State, record: Record, steps: int):
    """Uniform schedule: a static ``every``-step inner loop per log, probes every k logs."""
    every = record.every
    assert every is not None  # run_loop sends only a uniform (every=) schedule here
    num_logs = len(record.log_steps(steps))

    def log_block(s: _State, _) -> tuple[_State, tuple[Array | None, dict]]:
        return hooks.log(jax.lax.fori_loop(0, every, hooks.step, s))

    s, first = hooks.log(s)
    probed: dict = {}
    if record.probes:
        assert record.probe_every is not None  # Record checks: probes come with probe_every
        per_probe = record.probe_every // every

        def probe_block(s: _State, _):
            s, recs = jax.lax.scan(log_block, s, None, length=per_probe)
            return s, (recs, hooks.probe(s))

        probe0 = hooks.probe(s)
        num_probes = len(record.probe_steps(steps))
        s, (recs, prs) = jax.lax.scan(probe_block, s, None, length=num_probes - 1)
        probed = _stack_first(probe0, prs)
    else:
        s, recs = jax.lax.scan(log_block, s, None, length=num_logs - 1)
    value, observed = _stack_first(first, recs)
    return s, value, observed, probed


def _scan_at(hooks: _Hooks, s: _State, log_steps: np.ndarray, steps: int):
    """Explicit log steps: a scan over the gaps between them, then the steps after the last."""
    gaps = jnp.asarray(np.diff(np.concatenate([[0], log_steps])), jnp.int32)

    def gap_block(s: _State, gap: Array) -> tuple[_State, tuple[Array | None, dict]]:
        return hooks.log(jax.lax.fori_loop(0, gap, hooks.step, s))

    s, (value, observed) = jax.lax.scan(gap_block, s, gaps)
    s = jax.lax.fori_loop(0, steps - int(log_steps[-1]), hooks.step, s)
    return s, value, observed


def record_for(
    train: Any,
    observables: Mapping[str, Observable],
    probes: Mapping[str, Observable],
) -> Record:
    """The :class:`Record` a :class:`simdyn.TrainConfig` asks for: log every ``log_every``
    steps, probes every ``probe_every`` (0: at step 0 and the last step; -1: never), the final
    parameters when ``save_theta``."""
    probe_every = None if train.probe_every < 0 else (train.probe_every or train.steps)
    return Record(
        every=train.log_every,
        observables=observables,
        probe_every=probe_every,
        probes=probes if probe_every is not None else {},
        final=train.save_theta,
    )
