"""The exact expected minibatch objective (simdyn._src.minibatch_objective) against simdyn's own
in-batch loss averaged over ALL C(n, B) batches, the full loss at B = n, autodiff, negative
controls, and (slow) simdyn SGD ending near the expected objective's minimizer."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simdyn
from simdyn import Config, DataConfig, ModelConfig, TrainConfig
from simdyn._src.minibatch_objective import (
    class_mean_coefficients,
    expected_minibatch_grad,
    expected_minibatch_loss,
    expected_minibatch_objective,
    hypergeometric_pmf,
    variance_coefficient,
)
from simdyn._src.reference_gd import expected_objective_minimizer
from simdyn._src.train import init_theta
from simdyn.data import embed, to_dense
from simdyn.losses import matrix_gradient, matrix_loss, sample_loss
from simdyn.moments import dense_moments
from simdyn.seeds import INIT, seed_key
from simdyn.theory import loss_value, min_norm_minimizer

RTOL = 1e-10
N, M, D, P = 6, 2, 4, 3
LABELS = {
    "4+2-": np.array([1, 1, -1, 1, -1, 1]),
    "5+1-": np.array([1, 1, 1, -1, 1, 1]),  # a singleton class (n_c = 1)
}
BETAS = (0.0, 1.0, 0.25)


def _instance(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, M, D)) + np.array([1.0, 0.5, 0.0, -0.3])  # non-centred points
    theta = rng.normal(size=(P, D)) * 0.7
    return jnp.asarray(x), jnp.asarray(theta)


def _enumerated(x, y, theta, batch_size, beta):
    """Exact average of simdyn's in-batch loss (and its gradient) over all C(n, B) batches."""

    def batch_loss(th, idx):
        return sample_loss(x[idx] @ th.T, jnp.asarray(y)[idx], beta)

    batches = jnp.asarray(list(itertools.combinations(range(x.shape[0]), batch_size)))
    vals, grads = jax.vmap(jax.value_and_grad(batch_loss), in_axes=(None, 0))(theta, batches)
    return float(np.mean(vals)), np.mean(np.asarray(grads), axis=0)


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.mark.slow
@pytest.mark.parametrize("labels", sorted(LABELS))
@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
@pytest.mark.parametrize("beta", BETAS)
def test_expectation_equals_enumeration_over_all_batches(labels, batch_size, beta):
    x, theta = _instance()
    y = LABELS[labels]
    obj = expected_minibatch_objective(x, y, batch_size, beta)
    want, want_grad = _enumerated(x, y, theta, batch_size, beta)
    got = float(expected_minibatch_loss(obj, theta))
    assert abs(got - want) <= RTOL * abs(want)
    # E_B[grad L_B] = grad L_exp: the closed-form gradient against the enumerated average too.
    assert _rel(expected_minibatch_grad(obj, theta), want_grad) <= RTOL


@pytest.mark.slow
def test_enumeration_on_a_simdyn_training_set_through_embed():
    """Sparse simdyn points through ``embed`` (exactly _minibatch_grad's batch loss)."""
    cfg = Config(
        DataConfig(n=8, m=2, d=20, K=3, phi=(1.0, 0.8, 0.9), mu=0.5, sigma_xi=1.0),
        ModelConfig(p=3, sigma_0=0.5),
        TrainConfig(loss="joint", beta=0.25, batch_size=3, dtype="float64"),
    )
    ts = simdyn.seed_training_set(cfg, 0)
    theta = init_theta(jax.random.key(1), 3, cfg.data.d, jnp.asarray(1.0), True, jnp.float64)
    beta, bsz = 0.25, 3
    obj = expected_minibatch_objective(to_dense(ts.points, cfg.data.d), ts.labels.y, bsz, beta)

    def batch_loss(idx):
        pts = jax.tree.map(lambda a: a[idx], ts.points)
        return sample_loss(embed(theta, pts), ts.labels.y[idx], beta)

    batches = jnp.asarray(list(itertools.combinations(range(cfg.data.n), bsz)))
    want = float(np.mean(jax.vmap(batch_loss)(batches)))
    assert abs(float(expected_minibatch_loss(obj, theta)) - want) <= RTOL * abs(want)


@pytest.mark.slow
@pytest.mark.parametrize("beta", BETAS)
def test_full_batch_reduces_to_the_full_loss(beta):
    x, theta = _instance(1)
    y = LABELS["4+2-"]
    obj = expected_minibatch_objective(x, y, N, beta)
    mom = dense_moments(_as_points(x), _as_labels(y), D - 1)
    p_full = beta * mom.m_plus + (1 - beta) * mom.m_tilde
    assert float(obj.var_coef) == 0.0
    np.testing.assert_allclose(obj.p_exp, p_full, rtol=0, atol=1e-14)
    np.testing.assert_allclose(obj.m, mom.m, rtol=0, atol=1e-14)
    want = float(matrix_loss(theta, mom.m, p_full))
    assert abs(float(expected_minibatch_loss(obj, theta)) - want) <= RTOL * abs(want)
    assert _rel(expected_minibatch_grad(obj, theta), matrix_gradient(theta, mom.m, p_full)) <= RTOL


def _as_points(x):
    """Dense (n, m, D) points as simdyn Points with every coordinate a 'noise' entry (exact)."""
    n, m, dim = x.shape
    idx = jnp.broadcast_to(jnp.arange(dim, dtype=jnp.int32), (n, m, dim))
    return simdyn.data.Points(jnp.zeros((n, m, 1), x.dtype), idx, x)


def _as_labels(y):
    y = jnp.asarray(y, jnp.int32)
    return simdyn.data.Labels(y, y, y, y)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 2, 4, 6])
@pytest.mark.parametrize("beta", BETAS)
def test_gradient_matches_autodiff(batch_size, beta):
    x, theta = _instance(2)
    obj = expected_minibatch_objective(x, LABELS["5+1-"], batch_size, beta)
    auto = jax.grad(lambda th: expected_minibatch_loss(obj, th))(theta)
    assert _rel(expected_minibatch_grad(obj, theta), auto) <= RTOL


def test_coefficients():
    for n_pos, n_neg in ((4, 2), (5, 1), (3, 3), (6, 0)):
        n = n_pos + n_neg
        for b in range(1, n + 1):
            assert abs(hypergeometric_pmf(n, n_pos, b).sum() - 1.0) < 1e-15
        alpha, gamma = class_mean_coefficients(n_pos, n_neg, n)
        want = (0.5, 0.5) if n_neg else (1.0, 0.0)
        np.testing.assert_allclose(alpha, want, rtol=0, atol=1e-15)
        np.testing.assert_allclose(gamma, 0.0, rtol=0, atol=1e-15)
    assert variance_coefficient(6, 1) == 1.0 and variance_coefficient(6, 6) == 0.0
    assert variance_coefficient(16, 8) == pytest.approx(8 / (8 * 15), rel=1e-15)
    # B = 1, both classes present in the data: the batch is one class, weight 1, no spread.
    alpha, gamma = class_mean_coefficients(4, 2, 1)
    np.testing.assert_allclose(alpha, (4 / 6, 2 / 6), rtol=1e-15)
    np.testing.assert_allclose(gamma, (4 / 6 * 1.0, 2 / 6 * 1.0), rtol=1e-15)
    with pytest.raises(ValueError, match="batch_size"):
        variance_coefficient(6, 7)


@pytest.mark.slow
@pytest.mark.parametrize("beta", BETAS)
def test_negative_controls_in_batch_effects_matter(beta):
    """The full loss, and an objective that drops either in-batch effect, all miss the exact
    enumerated expectation by far more than the tolerance."""
    x, theta = _instance()
    y, bsz = LABELS["4+2-"], 3
    obj = expected_minibatch_objective(x, y, bsz, beta)
    full = expected_minibatch_objective(x, y, N, beta)
    want, _ = _enumerated(x, y, theta, bsz, beta)
    full_loss = float(expected_minibatch_loss(full, theta))
    assert abs(full_loss - want) > 1e-3 * abs(want)
    no_var = obj._replace(var_coef=jnp.zeros(()))
    assert abs(float(expected_minibatch_loss(no_var, theta)) - want) > 1e-3 * abs(want)
    if beta > 0:  # SCL class means: using the full-data M+ in place of E[M+_B]
        full_mplus = obj._replace(p_exp=beta * full.m_plus_exp + (1 - beta) * obj.m_tilde)
        got = float(expected_minibatch_loss(full_mplus, theta))
        assert abs(got - want) > 1e-4 * abs(want)


def test_minimizer_gd_converges():
    x, _ = _instance(3)
    obj = expected_minibatch_objective(x, LABELS["4+2-"], 3, 0.25)
    theta0 = jax.random.normal(jax.random.key(0), (P, D), jnp.float64) * 0.01
    res = expected_objective_minimizer(obj, theta0, 0.01, 20000)
    assert float(res.grad_norm) < 1e-8
    assert float(res.loss) < float(expected_minibatch_loss(obj, theta0))


@pytest.mark.slow
def test_sgd_ends_near_the_expected_objective_minimizer():
    """simdyn SGD (B = 8 of n = 16, beta = 0.25, float64, lr 0.02) ends near GD's limit on
    L_exp from the same init, not near the full loss's min-norm minimizer.

    p = D = 41 >= rank P, so the full-loss minimizer's Gram is unique on range(M) (the p = 4
    joint preset has tied eigenvalues, and there the Gram of a minimizer is not unique)."""
    simdyn.enable_x64()
    lr, steps, bsz, beta = 0.02, 20000, 8, 0.25
    # The joint preset's data model at a size whose float64 relaxation is cheap.
    cfg = simdyn.preset("joint").replace(n=16, d=40, p=41, dtype="float64", probe_every=-1)
    cfg = cfg.replace(beta=beta, lr=lr, steps=steps, log_every=steps, batch_size=bsz)
    cfg = cfg.replace(save_theta=True)
    data = cfg.data
    ds = simdyn.simulate(cfg, [0], 0)
    theta_sgd = jnp.asarray(ds.theta.values[0])
    ts = simdyn.seed_training_set(cfg, 0, 0)
    obj = expected_minibatch_objective(to_dense(ts.points, data.d), ts.labels.y, bsz, beta)
    theta0 = init_theta(
        jax.random.fold_in(seed_key(0, 0), INIT),
        41,
        data.d,
        jnp.asarray(0.001),
        True,
        jnp.float64,
    )
    res = expected_objective_minimizer(obj, theta0, lr, steps)
    mom = dense_moments(ts.points, ts.labels, data.d)
    p_full = np.asarray(beta * mom.m_plus + (1 - beta) * mom.m_tilde)
    sol = min_norm_minimizer(p_full, np.asarray(mom.m), 41)
    gram = np.asarray(theta_sgd.T @ theta_sgd)
    d_exp = _rel(gram, res.theta.T @ res.theta)
    d_full = _rel(gram, sol.gram)
    l_full_exp = float(loss_value(res.theta, jnp.asarray(p_full), mom.m))
    l_full_min = float(loss_value(jnp.asarray(sol.factor), jnp.asarray(p_full), mom.m))
    print(
        f"grad_norm={float(res.grad_norm):.2e} d(SGD, exp-min)={d_exp:.4g} "
        f"d(SGD, full min-norm)={d_full:.4g} L_full(exp-min)={l_full_exp:.6g} "
        f"L_full(min-norm)={l_full_min:.6g} L_exp(exp-min)={float(res.loss):.6g} "
        f"L_exp(min-norm)={float(expected_minibatch_loss(obj, jnp.asarray(sol.factor))):.6g}"
    )
    assert float(res.grad_norm) < 1e-6
    assert not sol.tied
    assert d_exp < 0.05 and d_full > 0.2 and d_exp < 0.1 * d_full
    assert l_full_min < l_full_exp  # each point minimizes its own objective
    assert float(res.loss) < float(expected_minibatch_loss(obj, jnp.asarray(sol.factor)))
