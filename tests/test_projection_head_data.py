"""The projection-head paper's samplers against their population moments (Monte Carlo).

Tolerance: each moment entry is a mean of n products, each bounded by B = (max phi + 4 sigma)^2
in practice and with variance at most E[x^4] <= 3 (phi^2 + sigma^2)^2; five standard errors,
5 sqrt(3) (phi^2 + sigma^2) / sqrt(n) per entry, make a false failure a < 1e-6 event per entry.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simdyn.papers.projection_head import closed_forms as cf
from simdyn.papers.projection_head import data

PHI = np.array([1.0, 0.8, 1.5, 0.5])
ALPHA = np.array([0.0, 0.5, 0.25, 1.0])
SIGMA = 0.3
N = 200_000


def _tolerance(m: np.ndarray) -> np.ndarray:
    return 5.0 * np.sqrt(3.0) * np.sqrt(np.outer(m, m)) / np.sqrt(N)


@pytest.mark.slow
def test_augmentations_match_the_population_moments_of_def_3_2():
    key = jax.random.key(0)
    x = data.sample_inputs(jax.random.fold_in(key, 0), N, PHI, jnp.float64)
    pair = data.positive_pairs(jax.random.fold_in(key, 1), x, ALPHA, SIGMA)
    a, b = np.asarray(pair.first), np.asarray(pair.second)
    m, m_plus = cf.population_moments(PHI, ALPHA, SIGMA)
    second = a.T @ a / N  # E[A(x) A(x)^T] = diag(M)
    cross = a.T @ b / N  # E[A(x) A'(x)^T] = diag(M+)
    tol = _tolerance(m)
    assert np.all(np.abs(second - np.diag(m)) <= tol)
    assert np.all(np.abs(cross - np.diag(m_plus)) <= tol)


def test_the_sign_flip_reading_is_a_different_augmentation():
    """Near miss: App. A.2's (1 - 2 alpha)^2 moment is that of a sign FLIP; at alpha = 0.5 it
    gives 0 where Def. 3.2 gives phi^2 / 4, and at alpha = 1 it keeps the feature."""
    key = jax.random.key(1)
    x = data.sample_inputs(jax.random.fold_in(key, 0), N, PHI, jnp.float64)
    k1, k2 = jax.random.split(jax.random.fold_in(key, 1))
    a = np.asarray(data.augment_flip(k1, x, ALPHA, SIGMA))
    b = np.asarray(data.augment_flip(k2, x, ALPHA, SIGMA))
    cross = np.diag(a.T @ b / N)
    m, m_plus = cf.population_moments(PHI, ALPHA, SIGMA)
    tol = np.diag(_tolerance(m))
    np.testing.assert_array_less(np.abs(cross - (1 - 2 * ALPHA) ** 2 * PHI**2), tol)
    wrong = np.abs(cross - m_plus) > tol
    assert wrong.tolist() == [False, True, True, True]  # they agree only where alpha = 0


@pytest.mark.slow
def test_supervised_data_is_balanced_and_downstream_labels_follow_j_star():
    s = data.sample_supervised(jax.random.key(2), 400, 5, rest_scale=1e-3)
    x = np.asarray(s.x)
    assert x.shape == (400, 5)
    combos, counts = np.unique(x[:, :2], axis=0, return_counts=True)
    assert combos.shape == (4, 2) and np.all(counts == 100)
    np.testing.assert_array_equal(x[:, 0], np.asarray(s.y))
    np.testing.assert_array_equal(x[:, 1], np.asarray(s.y_sub))
    np.testing.assert_allclose(np.abs(x[:, 2:]), 1e-3)
    ds = data.sample_downstream(jax.random.key(3), 1000, [1.0, 0.5, 2.0], j_star=1)
    np.testing.assert_array_equal(np.asarray(ds.y), np.sign(np.asarray(ds.x)[:, 1]))
    np.testing.assert_allclose(
        np.abs(np.asarray(ds.x)), np.broadcast_to([1.0, 0.5, 2.0], (1000, 3))
    )
    with pytest.raises(ValueError, match="multiple of 4"):
        data.sample_supervised(jax.random.key(4), 10, 5)
