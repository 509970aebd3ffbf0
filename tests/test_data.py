"""Data generator statistics: balance, noise models, augmentations."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simdyn import DataConfig
from simdyn.data import (
    augment,
    embed,
    feature_block,
    sample_test_set,
    sample_training_set,
    to_dense,
)

KEY = jax.random.key(1234)


@pytest.mark.slow
def test_exact_balance_enumerates_every_combination_equally():
    cfg = DataConfig(n=48, m=2, d=200, K=5, phi=(1.0,) * 5, sampling="balanced")
    ts = sample_training_set(KEY, cfg)
    lab = np.stack([np.asarray(a) for a in ts.labels], axis=1)
    combos = {tuple(r) for r in lab}
    expected = set(itertools.product((1, -1), (1, -1), range(3, 6), (1, -1)))
    assert {(a, b, c, d) for a, b, c, d in combos} == expected
    counts = {tuple(r): 0 for r in lab}
    for r in lab:
        counts[tuple(r)] += 1
    assert set(counts.values()) == {48 // 24}


def test_balance_with_remainder_uses_distinct_extra_combinations():
    cfg = DataConfig(n=30, m=1, d=100, K=4, phi=(1.0,) * 4, sampling="balanced")
    lab = np.stack([np.asarray(a) for a in sample_training_set(KEY, cfg).labels], axis=1)
    _, counts = np.unique(lab, axis=0, return_counts=True)
    # 16 combinations, n = 30: every combination once, 14 of them twice.
    assert len(counts) == 16 and sorted(counts) == [1, 1] + [2] * 14


def test_features_follow_the_data_model():
    cfg = DataConfig(n=64, m=3, d=300, K=5, phi=(0.8, 1.5, 2.0, 3.0, 0.5), mu=0.7)
    ts = sample_training_set(KEY, cfg)
    f = np.asarray(ts.points.features)  # (n, m, K+1)
    y, ys, k, rho = (np.asarray(a) for a in ts.labels)
    np.testing.assert_allclose(f[..., 0], 1.0)
    np.testing.assert_allclose(f[:, 0, 1], y * 0.8, rtol=1e-6)
    np.testing.assert_allclose(f[:, 0, 2], ys * 1.5 + 0.7, rtol=1e-6)
    phi = np.array(cfg.phi)
    for i in range(cfg.n):
        irr = f[i, 0, 3:]
        expected = np.zeros(cfg.K - 2)
        expected[k[i] - 3] = rho[i] * phi[k[i] - 1]
        np.testing.assert_allclose(irr, expected, rtol=1e-6)


@pytest.mark.slow
def test_standard_augmentation_keeps_u_and_redraws_noise():
    cfg = DataConfig(n=200, m=4, d=5000, K=4, phi=(1.0,) * 4)
    ts = sample_training_set(KEY, cfg)
    f = np.asarray(ts.points.features)
    np.testing.assert_array_equal(f, np.broadcast_to(f[:, :1], f.shape))  # u kept exactly
    np.testing.assert_array_equal(f[:, 0], np.asarray(ts.originals.features))
    idx = np.asarray(ts.points.noise_idx)[..., 0]
    orig = np.asarray(ts.originals.noise_idx)[:, 0]
    # Fresh draws over d = 5000 coordinates: P(an augmentation repeats the original's) = 1/d, so
    # across 800 augmentations we expect 0.16 repeats; more than 5 would be p < 1e-6.
    assert (idx == orig[:, None]).sum() <= 5
    # And the m augmentations of one original differ from each other (same bound).
    assert sum((idx[:, a] == idx[:, b]).sum() for a in range(4) for b in range(a)) <= 5


def test_basis_noise_is_uniform_over_all_d_coordinates():
    cfg = DataConfig(n=2000, m=5, d=20, K=4, phi=(1.0,) * 4, sigma_xi=2.0)
    ts = sample_training_set(KEY, cfg)
    idx = np.asarray(ts.points.noise_idx).ravel()
    np.testing.assert_array_equal(np.asarray(ts.points.noise_val), 2.0)
    assert idx.min() >= 1 and idx.max() <= cfg.d
    counts = np.bincount(idx - 1, minlength=cfg.d)
    # Chi-square goodness of fit against uniform; reject at alpha = 1e-4 (fixed key).
    assert stats.chisquare(counts).pvalue > 1e-4
    # The noise hits feature coordinates too (the paper's model allows it).
    assert counts[: cfg.K].sum() > 0


def test_good_event_noise_is_distinct_and_outside_features():
    cfg = DataConfig(
        n=24,
        m=2,
        d=200,
        K=3,
        phi=(0.8, 1.0, 0.5),
        mu=0.0,
        sampling="balanced",
        noise_placement="good_event",
    )
    idx = np.asarray(sample_training_set(KEY, cfg).points.noise_idx).ravel()
    assert len(np.unique(idx)) == cfg.n * cfg.m
    assert idx.min() >= cfg.K + 1 and idx.max() <= cfg.d


@pytest.mark.slow
def test_gaussian_noise_has_variance_sigma2_over_d():
    cfg = DataConfig(n=100, m=4, d=250, K=4, phi=(1.0,) * 4, sigma_xi=3.0, noise="gaussian")
    vals = np.asarray(sample_training_set(KEY, cfg).points.noise_val)
    assert vals.shape == (100, 4, 250)
    var = vals.var()
    # 100 000 samples: the sample variance has relative sd sqrt(2 / 1e5) = 0.45%; allow 5 sd.
    assert abs(var / (9.0 / 250) - 1) < 5 * np.sqrt(2 / vals.size)
    assert abs(vals.mean()) < 5 * np.sqrt(9.0 / 250 / vals.size)


@pytest.mark.slow
def test_imperfect_augmentation_jitters_class_and_subclass_only():
    cfg = DataConfig(
        n=400,
        m=4,
        d=300,
        K=4,
        phi=(1.0,) * 4,
        augmentation="imperfect",
        aug_sigma_class=0.3,
        aug_sigma_sub=0.2,
        aug_noise_rank=2,
        aug_noise_scale=0.5,
    )
    ts = sample_training_set(KEY, cfg)
    f = np.asarray(ts.points.features)
    u = np.asarray(ts.originals.features)
    np.testing.assert_array_equal(f[..., 0], 1.0)
    np.testing.assert_array_equal(f[..., 3:], np.broadcast_to(u[:, None, 3:], f[..., 3:].shape))
    jit1 = (f[..., 1] - u[:, None, 1]).ravel()
    jit2 = (f[..., 2] - u[:, None, 2]).ravel()
    # 1600 draws: the sample sd has relative sd ~ 1/sqrt(2*1600) = 1.8%; allow 5 sd (9%).
    assert abs(jit1.std() / 0.3 - 1) < 0.09 and abs(jit2.std() / 0.2 - 1) < 0.09
    idx = np.asarray(ts.points.noise_idx)
    val = np.asarray(ts.points.noise_val)
    # Centred on the original's xi: the first entry is the original noise, kept exactly.
    np.testing.assert_array_equal(idx[..., 0], np.broadcast_to(ts.originals.noise_idx, (400, 4)))
    np.testing.assert_array_equal(val[..., 0], cfg.sigma_xi)
    # Rank-2 perturbation: two coordinates per original, shared by its m augmentations.
    np.testing.assert_array_equal(
        idx[:, :, 1:], np.broadcast_to(idx[:, :1, 1:], idx[:, :, 1:].shape)
    )
    assert abs(val[..., 1:].std() / 0.5 - 1) < 0.09


@pytest.mark.slow
def test_to_dense_and_embed_agree_with_collisions():
    cfg = DataConfig(n=50, m=3, d=6, K=4, phi=(1.0, 2.0, 0.5, 0.7), mu=0.3)
    ts = sample_training_set(KEY, cfg, dtype=jnp.float64)
    x = np.asarray(to_dense(ts.points, cfg.d))
    # Manual dense build, point by point.
    f = np.asarray(ts.points.features)
    idx = np.asarray(ts.points.noise_idx)
    val = np.asarray(ts.points.noise_val)
    manual = np.zeros((50, 3, 7))
    manual[..., :5] = f
    for i in range(50):
        for a in range(3):
            manual[i, a, idx[i, a, 0]] += val[i, a, 0]
    np.testing.assert_array_equal(x, manual)
    theta = jax.random.normal(KEY, (3, 7), jnp.float64)
    np.testing.assert_allclose(
        np.asarray(embed(theta, ts.points)), manual @ np.asarray(theta).T, rtol=1e-12, atol=1e-12
    )


def test_test_set_is_fresh_unaugmented_and_iid():
    cfg = DataConfig(n=24, m=2, d=400, K=3, phi=(1.0,) * 3, sampling="balanced", n_test=500)
    test = sample_test_set(KEY, cfg)
    assert test.points.features.shape == (500, 4)
    np.testing.assert_array_equal(test.points.features, feature_block(test.labels, cfg))
    # i.i.d. labels: y is +-1 with p = 1/2; 500 draws -> |mean| < 5 sd = 5 / sqrt(500).
    assert abs(float(np.mean(test.labels.y))) < 5 / np.sqrt(500)


@pytest.mark.slow
@pytest.mark.parametrize("augmentation", ["standard", "imperfect"])
def test_data_is_a_pure_function_of_the_key(augmentation):
    cfg = DataConfig(n=20, m=2, d=50, K=3, phi=(1.0,) * 3, augmentation=augmentation)
    run = jax.jit(lambda k: sample_training_set(k, cfg))
    a, b = run(KEY), run(KEY)
    eager = sample_training_set(KEY, cfg)
    for x, y, z in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(eager), strict=True):
        np.testing.assert_array_equal(x, y)  # same program, same key: bit-identical
        # Eager vs jit: XLA may fuse a multiply-add, so floats agree to one float32 ulp.
        np.testing.assert_allclose(x, z, rtol=2e-7, atol=0)


def test_fresh_augment_shapes():
    cfg = DataConfig(n=20, m=3, d=50, K=3, phi=(1.0,) * 3)
    ts = sample_training_set(KEY, cfg)
    pts = augment(jax.random.key(5), ts.originals, ts.labels, cfg, 3)
    assert pts.features.shape == (20, 3, 4) and pts.noise_idx.shape == (20, 3, 1)
