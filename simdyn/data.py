"""The synthetic data model D_orig (Xue et al. 2023, section 3.1) and its augmentations.

Points are stored sparsely, in the coordinates of the bias-folded input x~ = [1; x] in R^D,
D = d + 1: coordinate 0 is the bias v_0, coordinates 1..K are the features v_1..v_K, the rest
noise. A point is a dense ``features`` block on coordinates 0..K plus ``s`` noise entries
(``noise_idx`` in [1, d], ``noise_val``); basis noise has s = 1, Gaussian noise s = d (all noise
coordinates). Everything is a pure function of a PRNG key with static shapes, so it jits and vmaps.

Randomness: every draw uses ``jax.random.fold_in(key, PURPOSE)`` with a fixed purpose number, so
a seed's data never depends on how many other things were drawn before it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from simdyn.config import DataConfig

Array = jax.Array

# Purposes for fold_in: fixed forever so results reproduce across versions.
_LABELS, _NOISE, _AUG_NOISE, _AUG_JITTER, _AUG_SUBSPACE, _ORIG_NOISE, _BALANCE_REM = range(7)


class Labels(NamedTuple):
    """Latent variables of each original. Shapes (...,)."""

    y: Array  # class, +-1
    y_sub: Array  # subclass, +-1
    k: Array  # index of the irrelevant feature, in 3..K (x~ coordinate k)
    rho: Array  # sign of the irrelevant feature, +-1


class Points(NamedTuple):
    """Sparse bias-folded points x~. Leading shape (...) is shared by all fields.

    features: (..., K + 1) coordinates 0..K of x~ (bias, v_1..v_K).
    noise_idx: (..., s) int32 x~ coordinates of the noise entries, in [1, d].
    noise_val: (..., s) their values (may hit a feature coordinate: they add).
    """

    features: Array
    noise_idx: Array
    noise_val: Array


class TrainingSet(NamedTuple):
    """The m augmentations of n originals.

    points: Points with leading shape (n, m).
    labels: Labels with shape (n,).
    originals: Points with leading shape (n,): u + xi, the un-augmented originals (the original
      xi never enters training under the standard augmentation; A' centres on it).
    """

    points: Points
    labels: Labels
    originals: Points


class TestSet(NamedTuple):
    """Fresh, never-augmented draws from D_orig: Points (n_test,) and Labels (n_test,)."""

    points: Points
    labels: Labels


def randint32(key: Array, shape: tuple[int, ...], lo: int, hi: int) -> Array:
    """Uniform integers in [lo, hi) as int32: explicit dtype, so the draw is the same with and
    without jax_enable_x64."""
    return jax.random.randint(key, shape, lo, hi, dtype=jnp.int32)


def without_replacement(key: Array, n: int, count: int) -> Array:
    """``count`` distinct integers from [0, n), int32 (a prefix of a random permutation)."""
    return jax.random.permutation(key, jnp.arange(n, dtype=jnp.int32))[:count]


def _pm1(key: Array, shape: tuple[int, ...]) -> Array:
    # A float32 threshold keeps the signs identical with and without jax_enable_x64.
    return 2 * jax.random.bernoulli(key, jnp.float32(0.5), shape).astype(jnp.int32) - 1


def sample_labels(key: Array, cfg: DataConfig, n: int, balanced: bool) -> Labels:
    """Latent labels for n originals; ``balanced`` enumerates the 8 (K-2) combinations."""
    num_irr = cfg.K - 2
    if not balanced:
        kk = jax.random.fold_in(key, 0)
        y, y_sub, rho = (_pm1(jax.random.fold_in(kk, j), (n,)) for j in range(3))
        k = randint32(jax.random.fold_in(kk, 3), (n,), 3, cfg.K + 1)
        return Labels(y, y_sub, k, rho)
    c = cfg.num_combinations
    full, rem = divmod(n, c)
    combos = jnp.tile(jnp.arange(c, dtype=jnp.int32), full)
    if rem:
        # The remainder is as balanced as n allows: distinct combinations, drawn at random.
        extra = without_replacement(jax.random.fold_in(key, _BALANCE_REM), c, rem)
        combos = jnp.concatenate([combos, extra])
    y = 1 - 2 * (combos % 2)
    y_sub = 1 - 2 * ((combos // 2) % 2)
    rho = 1 - 2 * ((combos // 4) % 2)
    k = 3 + (combos // 8) % num_irr
    return Labels(
        y.astype(jnp.int32), y_sub.astype(jnp.int32), k.astype(jnp.int32), rho.astype(jnp.int32)
    )


def feature_block(labels: Labels, cfg: DataConfig, dtype=jnp.float32) -> Array:
    """u~ on coordinates 0..K: [1, y phi_1, y_sub phi_2 + mu, ..., rho phi_k at k, ...].

    Returns (..., K + 1).
    """
    phi = jnp.asarray(cfg.phi, dtype)
    shape = labels.y.shape
    onehot_k = jax.nn.one_hot(labels.k, cfg.K + 1, dtype=dtype)  # (..., K+1), hot at k
    irr = onehot_k * (labels.rho[..., None] * jnp.concatenate([jnp.zeros(1, dtype), phi]))
    base = jnp.zeros(shape + (cfg.K + 1,), dtype)
    base = base.at[..., 0].set(1.0)
    base = base.at[..., 1].set(labels.y * phi[0])
    base = base.at[..., 2].set(labels.y_sub * phi[1] + cfg.mu)
    return base + irr


def sample_noise(
    key: Array,
    cfg: DataConfig,
    shape: tuple[int, ...],
    *,
    distinct: bool = False,
    dtype=jnp.float32,
) -> tuple[Array, Array]:
    """Noise entries for points of leading shape ``shape``.

    basis: xi = sigma_xi e_j, j uniform over the d input coordinates (may be a feature one);
      ``distinct`` draws the prod(shape) coordinates without replacement outside the feature
      block (the theorems' good event).
    gaussian: xi ~ N(0, sigma_xi^2 / d I), stored as all d coordinates.

    Returns (idx, val), each shape + (s,).
    """
    if cfg.noise == "gaussian":
        idx = jnp.broadcast_to(jnp.arange(1, cfg.d + 1, dtype=jnp.int32), shape + (cfg.d,))
        val = jax.random.normal(key, shape + (cfg.d,), dtype) * (cfg.sigma_xi / cfg.d**0.5)
        return idx, val
    count = 1
    for s in shape:
        count *= s
    if distinct:
        j = without_replacement(key, cfg.d - cfg.K, count) + cfg.K + 1
    else:
        j = randint32(key, (count,), 1, cfg.d + 1)
    idx = j.astype(jnp.int32).reshape(shape + (1,))
    val = jnp.full(shape + (1,), cfg.sigma_xi, dtype)
    return idx, val


def augment(
    key: Array,
    originals: Points,
    labels: Labels,
    cfg: DataConfig,
    m: int,
    *,
    distinct: bool = False,
    dtype=jnp.float32,
) -> Points:
    """Draw m augmentations of each original (leading shape (b,)) -> Points (b, m).

    standard (A): u + xi', xi' a fresh noise draw; the original xi is dropped.
    imperfect (A', Def. 5.3): u + zeta' v_1 + zeta'' v_2 + xi', xi' ~ N(xi, Sigma_xi), with
      Sigma_xi = aug_noise_scale^2 * (projector on aug_noise_rank random noise coordinates of
      that original); rank 0 keeps xi exactly.
    """
    b = labels.y.shape[0]
    u = feature_block(labels, cfg, dtype)  # (b, K+1)
    feats = jnp.broadcast_to(u[:, None, :], (b, m, cfg.K + 1))
    if cfg.augmentation == "standard":
        idx, val = sample_noise(
            jax.random.fold_in(key, _AUG_NOISE), cfg, (b, m), distinct=distinct, dtype=dtype
        )
        return Points(feats, idx, val)
    jitter = jax.random.normal(jax.random.fold_in(key, _AUG_JITTER), (b, m, 2), dtype)
    jitter = jitter * jnp.asarray([cfg.aug_sigma_class, cfg.aug_sigma_sub], dtype)
    feats = feats.at[..., 1:3].add(jitter)
    idx = jnp.broadcast_to(originals.noise_idx[:, None, :], (b, m) + originals.noise_idx.shape[1:])
    val = jnp.broadcast_to(originals.noise_val[:, None, :], idx.shape).astype(dtype)
    r = cfg.aug_noise_rank
    if r:
        kk = jax.random.fold_in(key, _AUG_SUBSPACE)
        sub = randint32(kk, (b, 1, r), cfg.K + 1, cfg.d + 1)
        sub = jnp.broadcast_to(sub, (b, m, r))
        z = jax.random.normal(jax.random.fold_in(key, _AUG_NOISE), (b, m, r), dtype)
        idx = jnp.concatenate([idx, sub], axis=-1)
        val = jnp.concatenate([val, cfg.aug_noise_scale * z], axis=-1)
    return Points(feats, idx, val)


def sample_originals(
    key: Array, cfg: DataConfig, n: int, balanced: bool, dtype=jnp.float32
) -> tuple[Points, Labels]:
    """n originals u + xi of D_orig: Points (n,), Labels (n,)."""
    labels = sample_labels(jax.random.fold_in(key, _LABELS), cfg, n, balanced)
    idx, val = sample_noise(jax.random.fold_in(key, _ORIG_NOISE), cfg, (n,), dtype=dtype)
    return Points(feature_block(labels, cfg, dtype), idx, val), labels


def sample_training_set(key: Array, cfg: DataConfig, dtype=jnp.float32) -> TrainingSet:
    """The training set: n originals (balanced or i.i.d.) and their m augmentations each."""
    originals, labels = sample_originals(key, cfg, cfg.n, cfg.sampling == "balanced", dtype)
    distinct = cfg.noise_placement == "good_event"
    pts = augment(
        jax.random.fold_in(key, _NOISE),
        originals,
        labels,
        cfg,
        cfg.m,
        distinct=distinct,
        dtype=dtype,
    )
    return TrainingSet(pts, labels, originals)


def sample_test_set(
    key: Array, cfg: DataConfig, n: int | None = None, dtype=jnp.float32
) -> TestSet:
    """Fresh i.i.d. draws from D_orig, never augmented."""
    pts, labels = sample_originals(key, cfg, cfg.n_test if n is None else n, False, dtype)
    return TestSet(pts, labels)


def draw_minibatch(
    key: Array,
    ts: TrainingSet,
    cfg: DataConfig,
    batch_size: int,
    fresh_augmentations: bool,
    dtype=jnp.float32,
) -> tuple[Points, Array]:
    """A minibatch of ``batch_size`` originals drawn without replacement, with their fixed views
    (or ``cfg.m`` fresh augmentations of them). Returns (points (B, m, ...), y (B,))."""
    idx = without_replacement(jax.random.fold_in(key, 0), cfg.n, batch_size)
    labels = jax.tree.map(lambda a: a[idx], ts.labels)
    if fresh_augmentations:
        originals = jax.tree.map(lambda a: a[idx], ts.originals)
        pts = augment(jax.random.fold_in(key, 1), originals, labels, cfg, cfg.m, dtype=dtype)
    else:
        pts = jax.tree.map(lambda a: a[idx], ts.points)
    return pts, labels.y


def to_dense(points: Points, d: int) -> Array:
    """Dense x~ of shape (..., d + 1). The reference form; O(D) memory per point."""
    lead = points.features.shape[:-1]
    k1 = points.features.shape[-1]
    flat_f = points.features.reshape((-1, k1))
    flat_i = points.noise_idx.reshape((flat_f.shape[0], -1))
    flat_v = points.noise_val.reshape((flat_f.shape[0], -1))
    x = jnp.zeros((flat_f.shape[0], d + 1), flat_f.dtype).at[:, :k1].set(flat_f)
    rows = jnp.arange(flat_f.shape[0])[:, None]
    x = x.at[rows, flat_i].add(flat_v)
    return x.reshape(lead + (d + 1,))


def embed(theta: Array, points: Points) -> Array:
    """f(x) = Theta x~ for sparse points, O(p (K + 1 + s)) per point.

    theta: (p, D). Returns (..., p).
    """
    k1 = points.features.shape[-1]
    f = points.features @ theta[:, :k1].T
    cols = jnp.take(theta, points.noise_idx, axis=1)  # (p, ..., s)
    return f + jnp.einsum("p...s,...s->...p", cols, points.noise_val)
