"""GD/SGD runs for the verification designs: many seeds and hyper-parameters in one program.

``run(config, seeds, key, hparams)`` is ``jit(vmap(make_train(config)))`` over (seed key,
hyper-parameters) pairs, so a sweep of sigma_0 / lr / beta across units costs one compilation
(numeric hyper-parameters are traced arrays, see :class:`simdyn.train.HyperParams`). Seed i's key
is ``fold_in(key, i)`` exactly as in :func:`simdyn.simulate`, so a unit's training data is the
instance :func:`simdyn.verify.instances.sample_instances` returns for the same seed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simdyn.config import Config
from simdyn.simulate import as_key, seed_keys
from simdyn.train import HyperParams, make_train


class Runs(NamedTuple):
    """Stacked trajectories of U units (numpy). See :class:`simdyn.train.Trajectory`.

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
def _program(config: Config):
    return jax.jit(jax.vmap(make_train(config), in_axes=(0, 0)))


_MEMO: dict[tuple, Runs] = {}
_MEMO_SIZE = 16


def _columns_key(*cols) -> tuple:
    return tuple(None if c is None else tuple(float(v) for v in c) for c in cols)


def run(
    config: Config,
    seeds: Sequence[int],
    key: int,
    *,
    lr: Sequence[float] | None = None,
    beta: Sequence[float] | None = None,
    sigma_0: Sequence[float] | None = None,
) -> Runs:
    """Train every unit u = (seeds[u], lr[u], beta[u], sigma_0[u]); missing -> config values.

    Results are memoised per (config, seeds, key, hyper-parameters): claims that share a design
    (e.g. CC-early and CC-unlearn) train once.
    """
    memo_key = (config, tuple(int(s) for s in seeds), int(key), _columns_key(lr, beta, sigma_0))
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    out = _run(config, seeds, key, lr, beta, sigma_0)
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[memo_key] = out
    return out


def clear_memo() -> None:
    """Forget memoised runs (tests; a new verify session)."""
    _MEMO.clear()


def _run(config, seeds, key, lr, beta, sigma_0) -> Runs:
    seeds = np.asarray(list(seeds), np.int64)
    u = seeds.size
    dtype = jnp.dtype(config.train.dtype)
    default_beta = {"scl": 1.0, "ucl": 0.0}.get(config.train.loss, config.train.beta)

    def column(values, default):
        arr = np.full(u, default, float) if values is None else np.asarray(values, float)
        if arr.shape != (u,):
            raise ValueError(f"hyper-parameter column: expected shape ({u},), got {arr.shape}")
        return jnp.asarray(arr, dtype)

    hp = HyperParams(
        lr=column(lr, config.train.lr),
        beta=column(beta, default_beta),
        sigma_0=column(sigma_0, config.model.sigma_0),
    )
    traj = _program(config)(seed_keys(as_key(key), seeds), hp)
    traj = jax.tree.map(np.asarray, traj)
    return Runs(
        traj.alignment,
        traj.loss,
        traj.probe_subclass,
        traj.diverged.astype(bool) | ~np.all(np.isfinite(traj.alignment), axis=(1, 2)),
        traj.theta,
        np.asarray(config.train.record_steps),
        seeds,
        jax.tree.map(np.asarray, hp),
    )
