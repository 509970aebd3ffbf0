"""Sample form == pairwise form == matrix form (dense and structured) == autodiff gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simdyn import DataConfig
from simdyn.data import embed, sample_training_set, to_dense
from simdyn.losses import (
    gradient_from_products,
    loss_from_products,
    matrix_gradient,
    matrix_loss,
    pairwise_loss,
    sample_loss,
)
from simdyn.moments import (
    dense_moments,
    products,
    structured_moments,
    structured_to_dense,
)

# d = 6 with N = 60 points forces repeated noise coordinates and hits on feature coordinates.
CASES = [
    DataConfig(n=20, m=3, d=6, K=4, phi=(1.0, 2.0, 0.5, 0.7), mu=0.3, sigma_xi=1.5),
    DataConfig(
        n=16,
        m=2,
        d=40,
        K=3,
        phi=(0.8, 1.0, 1.2),
        mu=0.0,
        sigma_xi=1.0,
        sampling="balanced",
        noise_placement="good_event",
    ),
    DataConfig(
        n=10, m=4, d=12, K=5, phi=(0.5, 1.5, 1.0, 2.0, 0.3), mu=-1.0, sigma_xi=2.0, noise="gaussian"
    ),
    DataConfig(
        n=12,
        m=4,
        d=30,
        K=3,
        phi=(1.0, 1.0, 1.0),
        mu=0.5,
        augmentation="imperfect",
        aug_noise_rank=2,
        aug_noise_scale=0.7,
    ),
]
BETAS = [0.0, 1.0, 0.3]


def _instance(cfg, seed):
    key = jax.random.key(seed)
    ts = sample_training_set(key, cfg, dtype=jnp.float64)
    theta = jax.random.normal(jax.random.fold_in(key, 99), (3, cfg.d + 1), jnp.float64) * 0.7
    return ts, theta


def _manual_moments(ts, d):
    """Independent numpy build of M, M+, M~ straight from the THEORY.md definitions."""
    x = np.asarray(to_dense(ts.points, d))
    n, m, dim = x.shape
    flat = x.reshape(n * m, dim)
    big_m = sum(np.outer(v, v) for v in flat) / (n * m)
    xbar_i = x.mean(axis=1)
    m_tilde = sum(np.outer(v, v) for v in xbar_i) / n
    y = np.asarray(ts.labels.y)
    m_plus = sum(0.5 * np.outer(xbar_i[y == c].mean(0), xbar_i[y == c].mean(0)) for c in (1, -1))
    return big_m, m_plus, m_tilde


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CASES, ids=["collisions", "good_event", "gaussian", "imperfect"])
def test_dense_moments_match_definition(cfg):
    ts, _ = _instance(cfg, 0)
    mom = dense_moments(ts.points, ts.labels, cfg.d)
    for got, want in zip(mom, _manual_moments(ts, cfg.d), strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg",
    [CASES[0], pytest.param(CASES[1], marks=pytest.mark.slow)],
    ids=["collisions", "good_event"],
)
def test_structured_moments_equal_dense(cfg):
    for seed in range(3):
        ts, theta = _instance(cfg, seed)
        dense = dense_moments(ts.points, ts.labels, cfg.d)
        struct = structured_moments(ts.points, ts.labels, cfg.d)
        for got, want in zip(structured_to_dense(struct), dense, strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-13)
        for got, want in zip(products(struct, theta), products(dense, theta), strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-11, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CASES, ids=["collisions", "good_event", "gaussian", "imperfect"])
@pytest.mark.parametrize("beta", BETAS)
def test_all_loss_forms_agree(cfg, beta):
    ts, theta = _instance(cfg, 1)
    emb = embed(theta, ts.points)
    y = ts.labels.y
    pair = pairwise_loss(emb, y, beta)
    samp = sample_loss(emb, y, beta)
    mom = dense_moments(ts.points, ts.labels, cfg.d)
    p_mat = beta * mom.m_plus + (1 - beta) * mom.m_tilde
    mat = matrix_loss(theta, mom.m, p_mat)
    prod = loss_from_products(theta, products(mom, theta), beta)
    np.testing.assert_allclose(samp, pair, rtol=1e-11)
    np.testing.assert_allclose(mat, pair, rtol=1e-11)
    np.testing.assert_allclose(prod, pair, rtol=1e-11)


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CASES, ids=["collisions", "good_event", "gaussian", "imperfect"])
@pytest.mark.parametrize("beta", BETAS)
def test_closed_form_gradient_equals_autodiff(cfg, beta):
    ts, theta = _instance(cfg, 2)
    y = ts.labels.y
    auto = jax.grad(lambda t: pairwise_loss(embed(t, ts.points), y, beta))(theta)
    mom = dense_moments(ts.points, ts.labels, cfg.d)
    p_mat = beta * mom.m_plus + (1 - beta) * mom.m_tilde
    np.testing.assert_allclose(matrix_gradient(theta, mom.m, p_mat), auto, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        gradient_from_products(theta, products(mom, theta), beta), auto, rtol=1e-10, atol=1e-12
    )
    if cfg.noise == "basis" and cfg.augmentation == "standard":
        struct = structured_moments(ts.points, ts.labels, cfg.d)
        np.testing.assert_allclose(
            gradient_from_products(theta, products(struct, theta), beta),
            auto,
            rtol=1e-10,
            atol=1e-12,
        )


def test_pairwise_loss_literal_small_case():
    """Hand-checkable: one original per class, m = 2, p = 1."""
    emb = jnp.array([[[1.0], [2.0]], [[3.0], [-1.0]]])  # (n=2, m=2, p=1)
    y = jnp.array([1, -1])
    vals = np.array([1.0, 2.0, 3.0, -1.0])
    neg = np.mean(np.outer(vals, vals) ** 2)
    pos_ucl = np.mean([np.mean(np.outer(v, v)) for v in ([1.0, 2.0], [3.0, -1.0])])
    # Each class holds one original here, so SCL positives equal UCL positives.
    for beta in (0.0, 1.0, 0.5):
        np.testing.assert_allclose(pairwise_loss(emb, y, beta), -2 * pos_ucl + neg, rtol=1e-12)
