"""The projection-head paper's closed forms against brute force (float64 numpy).

* Thm 3.3: no factorisation W2 W1 = W found by a numerical search beats the balanced one (over
  invertible middle matrices, and over all (W1, W2) with W2 W1 = W for a rank-deficient W).
* Thm 3.5: the end-to-end min-norm minimizer from the first paper's independent solver
  (simdyn.theory.min_norm_minimizer on the diagonal moments), and GD on the two-layer loss from
  a small balanced init, give the predicted kept features and weights gamma_i, gamma_i^2.
* Thm 3.6: r_l equals (radius / margin)^2 of a hard-margin SVM trained on every point of the
  downstream cube (on the diagonal feature weights, and on each layer's actual p-dimensional
  representation of a rotated global minimizer), and sign(Delta) = sign(r_1 - r_2).
* Cor. 3.7: each example's constructor gives Delta < 0 on many random draws.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

from simdyn import theory
from simdyn.papers.projection_head import closed_forms as cf


def test_moments_follow_def_3_2_not_the_sign_flip_reading():
    m, mp = cf.population_moments([1.0, 1.0, 1.0], [0.0, 0.5, 1.0], 0.1)
    np.testing.assert_allclose(m, 1.01)
    # a re-drawn sign keeps E[s | x] = (1 - alpha) s: alpha = 1 destroys the feature, alpha = 0.5
    # keeps a quarter of the moment (the appendix's (1 - 2 alpha)^2 would give 0 and 1)
    np.testing.assert_allclose(mp, [1.0, 0.25, 0.0])


@pytest.mark.parametrize("shape", [(3, 5), (4, 4), (3, 2)])
def test_balanced_factorization_is_the_cheapest(shape):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape)
    f = cf.balanced_factorization(w)
    np.testing.assert_allclose(f.w2 @ f.w1, w, atol=1e-12)
    np.testing.assert_allclose(f.w1 @ f.w1.T, f.w2.T @ f.w2, atol=1e-12)
    best = cf.factorization_cost(f)
    p = shape[0]

    def cost(g_flat: np.ndarray) -> float:  # W1' = G W1, W2' = W2 G^-1: every factorisation
        g = g_flat.reshape(p, p)
        try:
            gi = np.linalg.inv(g)
        except np.linalg.LinAlgError:
            return np.inf
        return cf.factorization_cost(cf.Factorization(g @ f.w1, f.w2 @ gi))

    found = []
    for _ in range(6):
        start = np.eye(p) + 0.5 * rng.standard_normal((p, p))
        res = minimize(cost, start.ravel(), method="Nelder-Mead", options={"maxiter": 4000})
        found.append(res.fun)
        # every factorisation tried along the way costs at least the balanced one
        assert cost(start.ravel()) >= best - 1e-9
    assert min(found) >= best - 1e-6 * best
    assert min(found) <= best * (1 + 1e-3)  # the search reaches it: the bound is attained


def _cases():
    yield [1.0, 0.8, 0.6, 0.4, 0.2], [0.0, 0.1, 0.5, 0.3, 1.0], 0.3, 3
    yield [2.0, 1.0, 0.5, 1.5], [0.2, 0.2, 0.2, 0.9], 1.0, 2
    yield [1.0, 1.0, 1.0], [0.0, 0.25, 0.75], 0.1, 5  # p > d: every live feature kept


@pytest.mark.parametrize("phi, alpha, sigma, p", list(_cases()))
def test_feature_weights_match_the_first_papers_min_norm_solver(phi, alpha, sigma, p):
    fw = cf.feature_weights(phi, alpha, sigma, p)
    m, mp = cf.population_moments(phi, alpha, sigma)
    sol = theory.min_norm_minimizer(np.diag(mp), np.diag(m), p)
    end_to_end = np.sqrt(np.maximum(np.diag(sol.gram), 0.0))  # ||W e_i||
    np.testing.assert_allclose(end_to_end, fw.weights[1], atol=1e-10)
    assert np.array_equal(end_to_end > 1e-8, fw.kept)
    w = cf.min_norm_end_to_end(phi, alpha, sigma, p)
    np.testing.assert_allclose(w.T @ w, sol.gram, atol=1e-10)
    # encoder weight = sqrt(head weight) for kept features
    np.testing.assert_allclose(fw.weights[0] ** 2, fw.weights[1], atol=1e-14)


def test_gd_from_a_small_balanced_init_reaches_the_predicted_layer_weights():
    """Two-layer GD from a small balanced init (W2^T W2 = W1 W1^T), p = 2 of 3 live features.

    The head's output converges to gamma_i^2 exactly (a global minimum); the encoder matches
    gamma_i up to the imbalance W1 W1^T - W2^T W2 that discrete GD accumulates (PH-balance:
    O(eta^2) per step), measured here and used as the tolerance. W2 is full rank (p = 2 kept),
    so no part of W1 escapes the head: the dropped and destroyed features go to 0 in both."""
    phi, alpha, sigma, p = np.array([1.0, 0.9, 0.7, 0.5]), np.array([0.0, 0.2, 0.4, 1.0]), 0.3, 2
    m, mp = cf.population_moments(phi, alpha, sigma)
    rng = np.random.default_rng(3)
    w1 = 0.05 * rng.standard_normal((p, phi.size))
    evals, evecs = np.linalg.eigh(w1 @ w1.T)
    w2 = evecs @ np.diag(np.sqrt(np.maximum(evals, 0.0))) @ evecs.T  # W2^T W2 = W1 W1^T
    lr = 0.05
    for _ in range(5000):
        w = w2 @ w1
        g = -4.0 * w * mp + 4.0 * (w * m) @ w.T @ (w * m)  # dL/dW for diagonal M, M+
        w1, w2 = w1 - lr * w2.T @ g, w2 - lr * g @ w1.T
    fw = cf.feature_weights(phi, alpha, sigma, p)
    assert fw.kept.tolist() == [True, True, False, False]
    enc = np.linalg.norm(w1, axis=0)
    head = np.linalg.norm(w2 @ w1, axis=0)
    imbalance = np.abs(w1 @ w1.T - w2.T @ w2).max()
    assert imbalance < 0.01
    np.testing.assert_allclose(head[fw.kept], fw.weights[1][fw.kept], rtol=1e-9)
    np.testing.assert_allclose(enc[fw.kept], fw.weights[0][fw.kept], atol=imbalance)
    assert np.all(head[~fw.kept] < 1e-9) and np.all(enc[~fw.kept] < 1e-9)


def _svm_ratio(weights: np.ndarray, phihat: np.ndarray, j_star: int) -> float:
    """(radius / margin)^2 of the hard-margin SVM (no bias: the data are symmetric) on all 2^d
    points z = diag(weights) x, x in {+-phihat}, labelled sign(x_j*)."""
    d = phihat.size
    xs = np.array(list(itertools.product((-1.0, 1.0), repeat=d))) * phihat
    z = xs * weights
    y = np.sign(xs[:, j_star])
    cons = {"type": "ineq", "fun": lambda v: y * (z @ v) - 1.0, "jac": lambda v: y[:, None] * z}
    start = np.zeros(d)
    start[j_star] = 2.0 / (weights[j_star] * phihat[j_star])
    res = minimize(
        lambda v: v @ v,
        start,
        jac=lambda v: 2 * v,
        constraints=[cons],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert res.success, res.message
    margin = 1.0 / np.linalg.norm(res.x)
    radius = np.max(np.linalg.norm(z, axis=1))
    return float((radius / margin) ** 2)


@pytest.mark.parametrize("seed", range(4))
def test_sample_complexity_is_the_svm_radius_margin_ratio(seed):
    rng = np.random.default_rng(seed)
    d = 5
    phi = rng.uniform(0.3, 1.5, d)
    alpha = rng.uniform(0.0, 0.6, d)
    sigma, p = 0.5, 4
    phihat = rng.uniform(0.5, 1.5, d)
    fw = cf.feature_weights(phi, alpha, sigma, p)
    j_star = int(np.flatnonzero(fw.kept)[rng.integers(fw.kept.sum())])
    r = cf.sample_complexity(fw.weights, phihat, j_star)
    for layer in range(2):
        w = fw.weights[layer]
        live = w > 0
        brute = _svm_ratio(w[live], phihat[live], int(np.sum(live[:j_star])))
        assert r[layer] == pytest.approx(brute, rel=1e-5)
    dl = cf.delta(phi, alpha, sigma, p, phihat, j_star)
    assert dl == pytest.approx(phihat[j_star] ** 2 * (r[0] - r[1]), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("case", [1, 2, 3])
def test_each_corollary_example_has_negative_delta(case):
    rng = np.random.default_rng(case)
    for _ in range(200):
        ex = cf.corollary_example(case, rng, d=int(rng.integers(3, 9)))
        fw = cf.feature_weights(ex.phi, ex.alpha, ex.sigma, ex.p)
        assert fw.kept[ex.j_star], ex
        dl = cf.delta(ex.phi, ex.alpha, ex.sigma, ex.p, ex.phihat, ex.j_star)
        assert dl < 0, ex
        r = cf.sample_complexity(fw.weights, ex.phihat, ex.j_star)
        assert r[0] < r[1]


def test_a_near_miss_of_example_2_can_have_positive_delta():
    """Control: example 2 with phi_j* the LARGEST instead of the p-th largest (every other kept
    feature then has a smaller gamma) gives Delta > 0: the corollary's condition matters."""
    phi, alpha, sigma, p = np.array([0.9, 0.6, 0.5, 0.3]), np.full(4, 0.1), 1.0, 3
    dl = cf.delta(phi, alpha, sigma, p, np.ones(4), j_star=0)
    assert dl > 0
    assert cf.delta(phi, alpha, sigma, p, np.ones(4), j_star=2) < 0


def test_min_norm_factorisation_over_all_factorisations_of_a_rank_deficient_w():
    """Thm 3.3 where W (p = 3, rank 2) has factorisations that no invertible middle matrix
    reaches: SLSQP over (W1, W2) with the constraint W2 W1 = W, from several starts. Nothing
    beats the balanced cost 2 ||W||_F^2, the search reaches it, and every factorisation met
    obeys cost = 2 ||W||_F^2 + ||W1 W1^T - W2^T W2||_F^2 (the proof's identity)."""
    rng = np.random.default_rng(4)
    p, d = 3, 4
    w = rng.standard_normal((p, 2)) @ rng.standard_normal((2, d))
    f = cf.balanced_factorization(w)
    best = cf.factorization_cost(f)
    assert best == pytest.approx(2 * np.sum(w**2), rel=1e-12)
    np.testing.assert_allclose(f.w2 @ f.w1, w, atol=1e-12)

    def split(x):
        return x[: p * d].reshape(p, d), x[p * d :].reshape(p, p)

    def cost(x):
        w1, w2 = split(x)
        return cf.factorization_cost(cf.Factorization(w1, w2))

    cons = {"type": "eq", "fun": lambda x: (split(x)[1] @ split(x)[0] - w).ravel()}
    found = []
    for _ in range(5):
        g = np.eye(p) + 0.3 * rng.standard_normal((p, p))
        w1 = g @ f.w1 + 0.3 * rng.standard_normal((p, d))  # rows outside W's row space too
        w2 = w @ np.linalg.pinv(w1)  # W2 W1 = W exactly when W1 keeps W's row space
        x0 = np.concatenate([w1.ravel(), w2.ravel()])
        res = minimize(cost, x0, constraints=[cons], method="SLSQP",
                       options={"ftol": 1e-14, "maxiter": 2000})  # fmt: skip
        w1, w2 = split(res.x)
        assert np.linalg.norm(w2 @ w1 - w) <= 1e-7
        gap = np.sum((w1 @ w1.T - w2.T @ w2) ** 2)
        assert res.fun == pytest.approx(2 * np.sum((w2 @ w1) ** 2) + gap, rel=1e-9)
        found.append(res.fun)
    assert min(found) >= best * (1 - 1e-6)
    assert min(found) <= best * (1 + 1e-3)  # SLSQP's accuracy under p d equality constraints


@pytest.mark.parametrize("seed", range(3))
def test_sample_complexity_is_the_svm_ratio_of_the_actual_representation(seed):
    """Thm 3.6 against a hard-margin SVM on each layer's actual (p-dim, rotated) representation
    f_1(x) = W1 x and f_2(x) = W2 W1 x of a global minimizer's balanced factorisation (W = R W*,
    R a random rotation), over every point of the downstream cube: (radius / margin)^2 = r_l."""
    rng = np.random.default_rng(10 + seed)
    d, p = 5, 4
    phi, alpha, sigma = rng.uniform(0.5, 1.5, d), rng.uniform(0.0, 0.6, d), 0.6
    phihat = rng.uniform(0.5, 1.5, d)
    fw = cf.feature_weights(phi, alpha, sigma, p)
    j_star = int(np.flatnonzero(fw.kept)[rng.integers(fw.kept.sum())])
    rot, _ = np.linalg.qr(rng.standard_normal((p, p)))
    f = cf.balanced_factorization(rot @ cf.min_norm_end_to_end(phi, alpha, sigma, p))
    xs = np.array(list(itertools.product((-1.0, 1.0), repeat=d))) * phihat
    y = np.sign(xs[:, j_star])
    r = cf.sample_complexity(fw.weights, phihat, j_star)
    for layer, m in enumerate((f.w1, f.w2 @ f.w1)):
        z = xs @ m.T  # (2^d, p): the representation itself
        g = y[:, None] * z
        q = g @ g.T
        # the SVM's dual, min 1/2 a^T Q a - sum a over a >= 0, then the primal v = G^T a
        # rescaled to be exactly feasible (min margin 1): its ratio bounds the optimum above
        res = minimize(lambda a, q=q: 0.5 * a @ q @ a - a.sum(), np.zeros(y.size),
                       jac=lambda a, q=q: q @ a - 1.0, method="L-BFGS-B",
                       bounds=[(0, None)] * y.size,
                       options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 5000})  # fmt: skip
        v = g.T @ res.x
        v /= np.min(g @ v)
        ratio = (np.max(np.linalg.norm(z, axis=1)) * np.linalg.norm(v)) ** 2
        assert ratio == pytest.approx(r[layer], rel=1e-6)
