"""GD/SGD runs for the verification designs: many seeds and hyper-parameters in one program.

``run(config, seeds, key, hparams)`` is ``jit(vmap(make_train(config)))`` over (seed key,
hyper-parameters) pairs, so a sweep of sigma_0 / lr / beta across units costs one compilation
(numeric hyper-parameters are traced arrays, see :class:`simdyn.HyperParams`). Seed i's key
is ``fold_in(key, i)`` exactly as in :func:`simdyn.simulate`, so a unit's training data is the
instance :func:`simdyn.papers.which_features.instances.sample_instances` returns for the same seed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simdyn import HyperParams, Trajectory, make_train
from simdyn._src.progress import progress_bar
from simdyn.chunking import available_memory, bytes_per_seed
from simdyn.config import Config
from simdyn.engine import run_per_seed
from simdyn.losses import loss_beta
from simdyn.papers.which_features import simulators
from simdyn.papers.which_features.simulators import Simulator
from simdyn.seeds import as_key, seed_keys, streams


class Runs(NamedTuple):
    """Stacked trajectories of U units (numpy). See :class:`simdyn.Trajectory`.

    alignment (U, R, K+1), loss (U, R), probe_subclass (U, Q), diverged (U,), theta (U, p, D) or
    (U, 0), steps (R,) the recorded steps, seeds (U,), hparams: HyperParams of (U,) arrays.
    """

    alignment: np.ndarray
    loss: np.ndarray
    probe_subclass: np.ndarray
    diverged: np.ndarray
    theta: np.ndarray
    steps: np.ndarray
    seeds: np.ndarray
    hparams: HyperParams


@functools.lru_cache(maxsize=16)
def _train(config: Config, sim: Simulator):
    """One unit's training function; cached, so the seed engine's compiled program (keyed by
    the function's identity) serves every chunk and every call with this config."""
    return make_train(config, objective=sim.objective, training_set=sim.training_set_factory())


_MEMO: dict[tuple, Runs] = {}
_MEMO_SIZE = 16


def _columns_key(*cols) -> tuple:
    return tuple(None if c is None else tuple(float(v) for v in c) for c in cols)


def run(
    config: Config,
    seeds: Sequence[int],
    key: int,
    *,
    lr: Sequence[float] | np.ndarray | None = None,
    beta: Sequence[float] | np.ndarray | None = None,
    sigma_0: Sequence[float] | np.ndarray | None = None,
) -> Runs:
    """Train every unit u = (seeds[u], lr[u], beta[u], sigma_0[u]); missing -> config values.

    Results are memoised per (config, seeds, key, hyper-parameters): claims that share a design
    (e.g. CC-early and CC-unlearn) train once.
    """
    sim = simulators.active()
    memo_key = (
        sim.name,
        config,
        tuple(int(s) for s in seeds),
        int(key),
        _columns_key(lr, beta, sigma_0),
    )
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    out = _run(config, seeds, key, lr, beta, sigma_0, sim)
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[memo_key] = out
    return out


def clear_memo() -> None:
    """Forget memoised runs and intermediates (tests; a new verify session)."""
    _MEMO.clear()
    simulators.clear_memoised()


def _run(config, seeds, key, lr, beta, sigma_0, sim: Simulator) -> Runs:
    seeds = np.asarray(list(seeds), np.int64)
    u = seeds.size
    dtype = jnp.dtype(config.train.dtype)
    default_beta = loss_beta(config.train.loss, config.train.beta)

    def column(values, default):
        arr = np.full(u, default, float) if values is None else np.asarray(values, float)
        if arr.shape != (u,):
            raise RuntimeError(f"hyper-parameter column: expected shape ({u},), got {arr.shape}")
        return jnp.asarray(arr, dtype)

    # The simulator's hidden faults scale what it is told (the verifier predicts with the nominal).
    hp = HyperParams(
        lr=column(lr, config.train.lr) * sim.lr_factor,
        beta=column(beta, default_beta),
        sigma_0=column(sigma_0, config.model.sigma_0) * sim.sigma_0_factor(config),
    )
    if sim.oracle:
        keys = seed_keys(as_key(key), seeds)
        traj = jax.tree.map(np.asarray, oracle_trajectories(config, keys, hp))
    else:
        traj = _chunked(config, sim, as_key(key), seeds, hp)
    alignment, loss, theta = simulators.corrupt_endpoints(
        traj.alignment, traj.loss, traj.theta, sim.corrupted(seeds)
    )
    return Runs(
        alignment,
        loss,
        traj.probe_subclass,
        traj.diverged.astype(bool) | ~np.all(np.isfinite(alignment), axis=(1, 2)),
        theta,
        np.asarray(config.train.record_steps),
        seeds,
        jax.tree.map(np.asarray, hp._replace(lr=hp.lr / sim.lr_factor)),
    )


UNIT_CHUNK = 512  # units per compiled call: bounds memory at the full design's 5000-unit sweeps
CHUNK_MEMORY_FRACTION = 0.25  # of the free memory, for one chunk's (generously counted) seeds


def unit_chunk(config: Config) -> int:
    """Units per compiled call: UNIT_CHUNK, fewer where that many seeds would not fit in
    CHUNK_MEMORY_FRACTION of free memory (CC-early [p,d]'s p = 500 point: 8 MB of Theta per
    seed; 512 of them peaked at 20.7 GB). Results do not depend on the chunk (the engine)."""
    fit = int(CHUNK_MEMORY_FRACTION * available_memory() // max(bytes_per_seed(config), 1))
    return max(1, min(UNIT_CHUNK, fit))


def _chunked(config: Config, sim: Simulator, key: jax.Array, seeds, hp: HyperParams) -> Trajectory:
    """The units through the seed engine (:func:`simdyn.engine.run_per_seed`), at most UNIT_CHUNK
    per compiled call: one compilation serves every chunk, and a unit's result depends only on
    its own key and hyper-parameters, never on which chunk it ran in. Several chunks (the full
    design): progress per chunk with an ETA (plain lines in a log)."""
    u = len(seeds)
    chunk = unit_chunk(config)
    report = progress_bar(f"verify: training {u} units", unit="units") if u > chunk else None
    traj, _ = run_per_seed(
        _train(config, sim),
        key,
        seeds,
        hp,
        True,
        chunk_size=chunk,
        devices=1,
        progress=report,
    )
    return traj


def oracle_trajectories(config: Config, keys: jax.Array, hp: HyperParams) -> Trajectory:
    """The ``oracle-minimizer`` fault: Theta_0 at step 0, the instance's min-norm minimizer after.

    Per unit: the exact moments of its training set on the used coordinates, the min-norm
    minimizer of P = beta M+ + (1 - beta) M~ for M (float64 numpy), its alignment, loss and
    subclass probe recorded at every later step.
    """
    from simdyn import theory
    from simdyn._src.train import fresh_test_set_of, init_theta, training_set_of
    from simdyn.metrics import feature_alignment, probe_accuracy
    from simdyn.papers.which_features.instances import compressed_moments, expand

    t, dcfg = config.train, config.data
    dtype = jnp.dtype(t.dtype)
    steps = np.asarray(t.record_steps)
    rows = []
    for u in range(keys.shape[0]):
        ts = training_set_of(config, keys[u])
        comp = compressed_moments(ts, dcfg.K)
        b = float(hp.beta[u])
        sol = theory.min_norm_minimizer(
            b * comp.m_plus + (1 - b) * comp.m_tilde, comp.m, config.model.p
        )
        theta = jnp.asarray(expand(np.asarray(sol.factor), comp.cols, dcfg.d), dtype)
        theta0 = init_theta(
            streams(keys[u]).init,
            config.model.p,
            dcfg.d,
            hp.sigma_0[u],
            config.model.bias,
            dtype,
        )
        align = np.repeat(np.asarray(feature_alignment(theta, dcfg.K))[None], steps.size, 0)
        align[0] = np.asarray(feature_alignment(theta0, dcfg.K))
        loss = float(
            theory.loss_value(
                np.asarray(sol.factor), b * comp.m_plus + (1 - b) * comp.m_tilde, comp.m
            )
        )
        n_probe = len(t.probe_steps) if t.probe_every >= 0 else 0
        sub = (
            float(probe_accuracy(theta, fresh_test_set_of(config, keys[u])).subclass_acc)
            if n_probe
            else 0.0
        )
        rows.append(
            Trajectory(
                align,
                np.full(steps.size, loss),
                np.full(n_probe, 0.0),
                np.full(n_probe, sub),
                np.asarray(False),
                np.asarray(-1, np.int32),
                np.asarray(theta) if t.save_theta else np.zeros((0,)),
            )
        )
    return jax.tree.map(lambda *a: np.stack(a), *rows)
