"""Sampled training instances and their exact moments on the coordinates the data touches.

The closed forms of :mod:`simdyn.theory` need dense D x D moments and an ``eigh``; at the
theorems' sizes (d >> (mn)^2) that is far too slow for many seeds. Every training point lies in
the span of the feature block (x~ coordinates 0..K) and the noise coordinates the sample actually
uses, and M, M+, M~ vanish outside that span. So the moments restricted to those ``cols`` are the
full moments up to zero rows/columns, and every closed form (pseudo-inverses, min-norm
minimizers, minimum losses) restricted to them is exact: the min-norm factor is zero elsewhere.
:func:`compressed_moments` is tested against :func:`simdyn.moments.dense_moments` (the reference).

A seed's instance is ``sample_training_set(streams(fold_in(key, seed)).data, data)``, the
same one ``make_train`` trains on, so closed forms and GD runs of one seed share their data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simdyn.config import DataConfig
from simdyn.data import TrainingSet, sample_test_set
from simdyn.papers.which_features import simulators
from simdyn.seeds import as_key, seed_keys, streams


class Compressed(NamedTuple):
    """Moments of one instance on its used coordinates (float64 numpy).

    cols: (r,) x~ coordinates kept (0..K first, then the used noise coordinates, sorted).
    m, m_plus, m_tilde: (r, r) M, M+, M~ restricted to cols.
    x: (n, m, r) the dense points on cols. y: (n,) classes. y_sub: (n,) subclasses.
    """

    cols: np.ndarray
    m: np.ndarray
    m_plus: np.ndarray
    m_tilde: np.ndarray
    x: np.ndarray
    y: np.ndarray
    y_sub: np.ndarray


# Seeds per vmapped sampling call (fixed, so compiled ops are reused). Eager vmap costs a
# dispatch per op and call, so larger chunks are cheaper: 600 GOOD-EVENT instances took 0.89 s
# in chunks of 16 and 0.06 s in chunks of 200 (warm; the measurement is in
# verify_claim_seconds.md under benchmarks/results/), with identical instances.
CHUNK = 128


def _chunked(fn, seeds: Sequence[int], key: int):
    """fn(keys (CHUNK,)) over the seeds in fixed-size chunks (the last one padded), numpy out.

    Why vmap without jit, in fixed chunks: the per-op programs are cached by shape, so every call
    with the same data shapes (whatever the seed count, mu, phi or sigma_xi) reuses them; a jit
    per config and seed count compiled anew each time and dominated small runs.
    """
    seeds = [int(s) for s in seeds]
    parts = []
    for start in range(0, len(seeds), CHUNK):
        chunk = seeds[start : start + CHUNK]
        padded = chunk + [chunk[-1]] * (CHUNK - len(chunk))
        out = fn(seed_keys(as_key(key), np.asarray(padded)))
        keep = len(chunk)
        parts.append(jax.tree.map(lambda a, keep=keep: np.asarray(a)[:keep], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)


def sample_instances(data: DataConfig, seeds: Sequence[int], key: int) -> TrainingSet:
    """Training sets of the given seeds (leading axis = seed), exactly those ``make_train`` uses."""

    sim = simulators.active()  # a data-model fault changes the instances the closed forms see

    def one(k):
        return sim.sample(streams(k).data, data, jnp.float64)

    return simulators.corrupt_instances(_chunked(jax.vmap(one), seeds, key), sim.corrupted(seeds))


def instance(batch: TrainingSet, i: int) -> TrainingSet:
    """The i-th instance of a batch from :func:`sample_instances`."""
    return jax.tree.map(lambda a: a[i], batch)


def sample_tests(data: DataConfig, seeds: Sequence[int], key: int, n: int | None = None):
    """Fresh test sets per seed (the test stream of :mod:`simdyn.seeds`), numpy, leading seed."""

    def one(k):
        return sample_test_set(streams(k).test, data, n, jnp.float64)

    return _chunked(jax.vmap(one), seeds, key)


def compressed_moments(ts: TrainingSet, K: int) -> Compressed:
    """Exact M, M+, M~ of one instance on its used coordinates (see module docs).

    Mirrors :func:`simdyn.moments.dense_moments` (class weights included) on the kept columns.
    """
    feats = np.asarray(ts.points.features, np.float64)  # (n, m, K+1)
    idx = np.asarray(ts.points.noise_idx)  # (n, m, s)
    val = np.asarray(ts.points.noise_val, np.float64)
    n, m, _ = feats.shape
    used = np.unique(idx[idx > K])
    cols = np.concatenate([np.arange(K + 1), used]).astype(np.int64)
    pos = np.searchsorted(cols, idx)  # cols is sorted: 0..K then sorted used > K
    x = np.zeros((n, m, cols.size))
    x[..., : K + 1] = feats
    ii, jj, _ = np.indices(idx.shape)
    np.add.at(x, (ii, jj, pos), val)
    flat = x.reshape(n * m, -1)
    m_mat = flat.T @ flat / (n * m)
    xbar_i = x.mean(axis=1)
    m_tilde = xbar_i.T @ xbar_i / n
    y = np.asarray(ts.labels.y)
    onehot = np.stack([y == 1, y == -1], axis=-1).astype(np.float64)
    xbar_c = onehot.T @ xbar_i / np.maximum(onehot.sum(0), 1.0)[:, None]
    present = (onehot.sum(0) > 0).astype(np.float64)
    w = present / max(present.sum(), 1.0)
    m_plus = (xbar_c * w[:, None]).T @ xbar_c
    return Compressed(cols, m_mat, m_plus, m_tilde, x, y, np.asarray(ts.labels.y_sub))


def expand(factor: np.ndarray, cols: np.ndarray, d: int) -> np.ndarray:
    """A factor on the kept coordinates (p, r) as a full Theta (p, d + 1) (zero elsewhere)."""
    out = np.zeros((factor.shape[0], d + 1))
    out[:, cols] = factor
    return out


def alignment(factor: np.ndarray, K: int) -> np.ndarray:
    """||Theta v_j||, j = 0..K, of a factor whose first K + 1 columns are the feature block."""
    return np.linalg.norm(np.asarray(factor)[:, : K + 1], axis=0)


def embed_points(theta: np.ndarray, points) -> np.ndarray:
    """f(x) = Theta x~ for sparse points (numpy twin of :func:`simdyn.data.embed`).

    theta: (p, D). Returns (..., p).
    """
    theta = np.asarray(theta)
    feats = np.asarray(points.features)
    out = feats @ theta[:, : feats.shape[-1]].T
    cols = theta[:, np.asarray(points.noise_idx)]  # (p, ..., s)
    return out + np.einsum("p...s,...s->...p", cols, np.asarray(points.noise_val))
