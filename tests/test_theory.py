"""Tests of simdyn.theory: exact minimizers, closed-form spectra and alignments, GD references.

All checks run in float64. The good-event instances are built here from raw data (balanced
originals, distinct noise coordinates), independently of simdyn.data.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st

from simdyn import theory as th
from simdyn.config import ConfigError

jax.config.update("jax_enable_x64", True)


# --------------------------------------------------------------------------------------------
# Instance builders
# --------------------------------------------------------------------------------------------


def random_psd(rng: np.random.Generator, D: int, rank: int, spread: float = 3.0) -> np.ndarray:
    V = np.linalg.qr(rng.standard_normal((D, D)))[0][:, :rank]
    w = np.exp(rng.uniform(-math.log(spread), math.log(spread), rank))
    return (V * w) @ V.T


def random_instance(
    rng: np.random.Generator, D: int, rank_q: int, rank_p: int
) -> tuple[np.ndarray, np.ndarray]:
    """Q of rank rank_q, P = S B S with B PSD of rank rank_p on colsp(Q) (so colsp P in colsp Q)."""
    Q = random_psd(rng, D, rank_q)
    S = th.psd_sqrt(Q)
    Vq = th.psd_range(Q).vectors
    B = random_psd(rng, rank_q, rank_p)
    P = S @ Vq @ B @ Vq.T @ S
    return 0.5 * (P + P.T), Q


class Instance:
    """Balanced good-event training set in bias-folded coordinates (x~ = [1; u + noise])."""

    def __init__(self, phi, mu, sigma, m, reps, d=None, seed=0, combos=None):
        phi = np.asarray(phi, float)
        K = phi.shape[0]
        if combos is None:  # every (y, y_sub, k, rho) combination, `reps` times (Assumption 3.1)
            combos = list(itertools.product([1, -1], [1, -1], range(3, K + 1), [1, -1])) * reps
        combos = np.asarray(combos)
        n, N = combos.shape[0], m * combos.shape[0]
        D = K + 1 + N if d is None else d + 1
        rng = np.random.default_rng(seed)
        if d is None:
            coords = np.arange(K + 1, K + 1 + N)
        else:  # noise coordinates drawn without replacement outside the feature block
            coords = K + 1 + rng.permutation(d - K)[:N]
        feats = np.zeros((n, D))
        y, ysub, k, rho = combos.T
        feats[:, 0] = 1.0
        feats[:, 1] = y * phi[0]
        feats[:, 2] = ysub * phi[1] + mu
        feats[np.arange(n), k] += rho * phi[k - 1]
        X = np.repeat(feats, m, axis=0)
        X[np.arange(N), coords] += sigma
        self.X, self.n, self.N, self.K, self.D, self.m = X, n, N, K, D, m
        self.coords = coords
        self.y = np.repeat(y, m)
        self.F = feats[:, : K + 1].T @ feats[:, : K + 1] / n  # empirical feature second moment
        self.M = X.T @ X / N
        means = [X[self.y == c].mean(0) for c in (1, -1)]
        self.M_plus = 0.5 * sum(np.outer(v, v) for v in means)
        xbar = X.reshape(n, m, D).mean(1)
        self.M_tilde = xbar.T @ xbar / n

    def P(self, loss: str, beta: float = 0.5) -> np.ndarray:
        return {"scl": self.M_plus, "ucl": self.M_tilde}.get(
            loss, beta * self.M_plus + (1 - beta) * self.M_tilde
        )


def alignments(sol: th.MinNormSolution, K: int) -> np.ndarray:
    return np.sqrt(np.maximum(np.diag(sol.gram)[: K + 1], 0.0))


def lbfgs_minimizers(P, Q, p, starts, rng):
    """Independent minimizers: L-BFGS on the loss from random starts of given scales."""
    D = P.shape[0]

    def fun(x):
        T = x.reshape(p, D)
        TQ = T @ Q
        A = TQ @ T.T
        val = -2 * np.trace(T @ P @ T.T) + np.sum(A * A)
        return val, (-4 * T @ P + 4 * A @ TQ).ravel()

    out = []
    for scale in starts:
        x0 = scale * rng.standard_normal(p * D)
        res = scipy.optimize.minimize(
            fun,
            x0,
            jac=True,
            method="L-BFGS-B",
            options={"gtol": 1e-13, "ftol": 1e-16, "maxiter": 20000},
        )
        out.append(res.x.reshape(p, D))
    return out


# --------------------------------------------------------------------------------------------
# PSD helpers
# --------------------------------------------------------------------------------------------


def test_psd_pinv_keeps_small_real_eigenvalues_and_cuts_roundoff():
    rng = np.random.default_rng(0)
    D = 40
    V = np.linalg.qr(rng.standard_normal((D, D)))[0]
    w = np.zeros(D)
    w[:5] = [2.0, 1.0, 0.5, 1 / 5000, 1e-6]  # real but tiny, like sigma_xi^2/(mn)
    Q = (V * w) @ V.T  # the zero eigenvalues come out as ~1e-16 round-off
    assert th.numerical_rank(Q) == 5
    exact = (V[:, :5] / w[:5]) @ V[:, :5].T
    np.testing.assert_allclose(th.psd_pinv(Q), exact, rtol=0, atol=1e-6 * np.abs(exact).max())
    S = th.psd_sqrt(Q)
    np.testing.assert_allclose(S @ S, Q, atol=1e-13)
    proj = V[:, :5] @ V[:, :5].T
    np.testing.assert_allclose(th.psd_sqrt_pinv(Q) @ S, proj, atol=1e-7)
    # An explicit rtol above 1e-6 drops the smallest real eigenvalue; float32 round-off is coarser.
    assert th.numerical_rank(Q, rtol=1e-5) == 4
    assert th.default_rtol(D, np.finfo(np.float32).eps) > 1e-6
    assert th.numerical_rank(Q.astype(np.float32)) == 4


# --------------------------------------------------------------------------------------------
# Min-norm global minimizer
# --------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    D=st.integers(3, 9),
    data=st.data(),
)
def test_min_norm_is_global_minimizer_on_random_instances(seed, D, data):
    rank_q = data.draw(st.integers(1, D))
    rank_p = data.draw(st.integers(1, rank_q))
    p = data.draw(st.integers(1, rank_q + 1))
    P, Q = random_instance(np.random.default_rng(seed), D, rank_q, rank_p)
    sol = th.min_norm_minimizer(P, Q, p)
    assert sol.factor.shape == (p, D)
    assert sol.selected_rank == min(p, rank_p)
    assert sol.eigenvalues.shape == (rank_p,)
    np.testing.assert_allclose(sol.factor.T @ sol.factor, sol.gram, atol=1e-12)
    lmin = th.min_loss(P, Q, p)
    np.testing.assert_allclose(float(th.loss_value(sol.factor, P, Q)), lmin, rtol=1e-9, atol=1e-12)
    assert th.is_global_minimizer(sol.factor, P, Q, p)
    # Lemma B.2: G Q = [Q^+ P]_p, with eigenvalues of Q^+ P those of C.
    ev = np.sort(np.linalg.eigvals(th.psd_pinv(Q) @ P).real)[::-1][:rank_p]
    np.testing.assert_allclose(sol.eigenvalues, ev, rtol=1e-7, atol=1e-9)
    if p >= rank_p:
        Qp = th.psd_pinv(Q)
        np.testing.assert_allclose(sol.gram, Qp @ P @ Qp, atol=1e-8 * np.abs(sol.gram).max())
        assert not sol.tied


@pytest.mark.slow
@pytest.mark.parametrize("p, rank_p", [(2, 3), (3, 3), (4, 2)])
def test_min_norm_beats_independent_minimizers(p, rank_p):
    rng = np.random.default_rng(1)
    P, Q = random_instance(rng, 5, 4, rank_p)
    sol = th.min_norm_minimizer(P, Q, p)
    lmin = th.min_loss(P, Q, p)
    ref = np.linalg.norm(sol.factor)
    found = lbfgs_minimizers(P, Q, p, [1e-3, 1e-2, 0.1, 0.3, 1.0, 2.0] * 3, rng)
    for init in (1e-4, 1e-1):  # GD runs, small and large init
        T0 = init * rng.standard_normal((p, 5))
        found.append(th.gd_reference_trajectory(T0, P, Q, 0.02, 6000, record_every=6000)[-1])
    reached = [T for T in found if abs(float(th.loss_value(T, P, Q)) - lmin) < 1e-9 * abs(lmin)]
    assert len(reached) >= 0.8 * len(found)
    norms = np.array([np.linalg.norm(T) for T in reached])
    assert np.all(norms >= ref - 1e-6)
    assert np.min(norms) <= ref + 1e-3  # small inits come close to it
    for T in reached:
        assert th.is_global_minimizer(T, P, Q, p, atol=1e-4)


def test_tie_commuting_brute_force_picks_largest_q():
    """Q diagonal, Q^+ P = projector on coordinates 0..3 (4-fold tie), p = 2: brute force."""
    q = np.array([3.0, 0.5, 2.0, 1.0, 1.5, 0.0])
    Q = np.diag(q)
    P = np.diag(np.r_[q[:4], 0.0, 0.0])
    p = 2
    sol = th.min_norm_minimizer(P, Q, p)
    assert sol.tied and sol.tie_dim == 4
    np.testing.assert_allclose(sol.eigenvalues, np.ones(4), atol=1e-12)
    norms = {}
    for pair in itertools.combinations(range(4), p):
        T = np.zeros((p, 6))
        for r, i in enumerate(pair):
            T[r, i] = 1 / math.sqrt(q[i])  # G = sum e_i e_i^T / q_i, so G Q = projector
        assert th.is_global_minimizer(T, P, Q, p)  # every tied choice is a minimizer
        norms[pair] = np.linalg.norm(T) ** 2
    best = min(norms, key=norms.get)
    assert best == (0, 2)  # the two largest eigenvalues of Q inside the tied space
    assert abs(np.trace(sol.gram) - norms[best]) < 1e-12
    expected = np.diag([1 / 3, 0, 1 / 2, 0, 0, 0])
    np.testing.assert_allclose(sol.gram, expected, atol=1e-12)


def test_tie_noncommuting_matches_grassmann_brute_force():
    rng = np.random.default_rng(2)
    D, r, g, p = 6, 5, 3, 2
    Q = random_psd(rng, D, r, spread=4.0)
    rng_q = th.psd_range(Q)
    E = np.linalg.qr(rng.standard_normal((r, g)))[0]  # tied subspace in whitened coordinates
    S = th.psd_sqrt(Q)
    P = S @ rng_q.vectors @ E @ E.T @ rng_q.vectors.T @ S
    sol = th.min_norm_minimizer(P, Q, p)
    assert sol.tied and sol.tie_dim == g
    assert th.is_global_minimizer(sol.factor, P, Q, p)
    ref = np.trace(sol.gram)
    Sp = th.psd_sqrt_pinv(Q)
    Ed = rng_q.vectors @ E  # whitened tied directions as D-vectors

    def norm_of(z):
        F = np.linalg.qr(Ed @ z.reshape(g, p))[0]
        G = Sp @ F @ F.T @ Sp
        return np.trace(G)

    # Brute force over the Grassmannian Gr(p, E): random subspaces, then local polishing.
    vals = [norm_of(rng.standard_normal(g * p)) for _ in range(2000)]
    assert min(vals) >= ref - 1e-10
    best = min(
        scipy.optimize.minimize(
            norm_of,
            rng.standard_normal(g * p),
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000},
        ).fun
        for _ in range(8)
    )
    assert best >= ref - 1e-10 and best <= ref + 1e-7
    # And every L-BFGS minimizer (free kernel part, any tied choice) is at least as long.
    for T in lbfgs_minimizers(P, Q, p, [1e-2, 0.1, 1.0] * 3, rng):
        if th.is_global_minimizer(T, P, Q, p, atol=1e-5):
            assert np.linalg.norm(T) ** 2 >= ref - 1e-6


def test_tie_tolerance_controls_near_ties():
    """Near tie (1 vs 1 - 1e-4): tie_tol below the gap keeps the top eigenvector, above it
    resolves by norm; both are (near-)minimizers."""
    q = np.array([1.0, 4.0, 0.0])
    Q = np.diag(q)
    c = np.array([1.0, 1.0 - 1e-4])  # C eigenvalues; the second direction has the larger q
    P = np.diag(np.r_[c * q[:2], 0.0])
    strict = th.min_norm_minimizer(P, Q, 1, tie_tol=1e-6)
    loose = th.min_norm_minimizer(P, Q, 1, tie_tol=1e-3)
    assert not strict.tied and loose.tied
    np.testing.assert_allclose(np.diag(strict.gram), [1.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(np.diag(loose.gram), [0, c[1] / 4, 0], atol=1e-12)
    assert th.is_global_minimizer(strict.factor, P, Q, 1)
    gap = th.minimizer_residuals(loose.factor, P, Q, 1).loss_gap
    # Loss excess of the norm-resolved near tie: lambda_1^2 - lambda_2^2 (<= 2 p tie_tol).
    np.testing.assert_allclose(gap, 1 - c[1] ** 2, rtol=1e-9)
    scan = th.tie_scan(P, Q, 1, (1e-6, 1e-3))
    assert [s.tied for _, s in scan] == [False, True]


def test_colsp_precondition_raises():
    Q = np.diag([1.0, 1.0, 0.0])
    P = np.diag([1.0, 0.0, 0.1])
    with pytest.raises(ConfigError, match="invalid P: colsp"):
        th.min_norm_minimizer(P, Q, 2)
    with pytest.raises(ConfigError, match="invalid P: colsp"):
        th.min_loss(P, Q, 2)
    P_ok = np.diag([1.0, 0.0, 1e-14])  # round-off-sized leak is accepted
    th.min_norm_minimizer(P_ok, Q, 2)


def test_negative_controls_rejected():
    rng = np.random.default_rng(3)
    P, Q = random_instance(rng, 6, 5, 4)
    p = 2
    sol = th.min_norm_minimizer(P, Q, p)
    assert th.is_global_minimizer(sol.factor, P, Q, p)
    # Q^+ P Q^+ (rank 4 > p): stationary but below the rank-p minimum.
    full = th.min_norm_minimizer(P, Q, 4)
    assert not th.is_global_minimizer(full.factor, P, Q, p)
    assert th.minimizer_residuals(full.factor, P, Q, p).loss_gap < 0
    # A rescaled c Q^+ P Q^+ whose loss equals min_loss exactly: only stationarity rejects it.
    lam = full.eigenvalues
    c = 1 - math.sqrt(np.sum(lam[p:] ** 2) / np.sum(lam**2))
    fake = math.sqrt(c) * full.factor
    np.testing.assert_allclose(float(th.loss_value(fake, P, Q)), th.min_loss(P, Q, p), rtol=1e-12)
    assert not th.is_global_minimizer(fake, P, Q, p)
    assert th.minimizer_residuals(fake, P, Q, p).stationarity > 1e-3
    # Wrong eigen-choice (2nd and 3rd eigenvectors): stationary, loss too high.
    W3 = th.min_norm_minimizer(P, Q, 3).factor  # rows: the top-3 eigen-directions of C
    wrong = W3[[1, 2]]
    assert not th.is_global_minimizer(wrong, P, Q, p)
    assert th.minimizer_residuals(wrong, P, Q, p).stationarity < 1e-10
    # Perturbed and rescaled factors.
    assert not th.is_global_minimizer(sol.factor + 1e-3 * rng.standard_normal((p, 6)), P, Q, p)
    assert not th.is_global_minimizer(1.001 * sol.factor, P, Q, p)
    assert th.minimizer_residual(1.001 * sol.factor, P, Q, p) > 1e-4
    # A kernel component does not change the loss: still a global minimizer, larger norm.
    ker = np.linalg.eigh(Q)[1][:, 0]
    T = sol.factor + np.outer(rng.standard_normal(p), ker)
    assert th.is_global_minimizer(T, P, Q, p)
    assert np.linalg.norm(T) > np.linalg.norm(sol.factor)


def test_gd_from_small_init_converges_to_min_norm():
    rng = np.random.default_rng(4)
    D, p = 6, 3
    P, Q = random_instance(rng, D, 4, 2)
    P, Q = P / np.linalg.eigvalsh(Q).max(), Q / np.linalg.eigvalsh(Q).max()  # ||Q|| = 1
    sol = th.min_norm_minimizer(P, Q, p)
    assert np.linalg.eigvalsh(th.psd_pinv(Q) @ P @ th.psd_pinv(Q)).max() < 50
    base = rng.standard_normal((p, D)) / math.sqrt(D)
    finals = []
    for sigma0 in (1e-2, 1e-4):
        traj = th.gd_reference_trajectory(sigma0 * base, P, Q, 0.02, 3000, record_every=25)
        d = np.array([float(th.distance_to_min_norm(T, sol)) for T in traj])
        # Shrinks with steps: the end point is the closest, far below the start and step 100;
        # it then plateaus at the frozen kernel part of the init.
        assert d.min() >= (1 - 1e-3) * d[-1] and d[4] > 2 * d[-1] and d[0] > 50 * d[-1]
        finals.append(d[-1])
        assert th.is_global_minimizer(traj[-1], P, Q, p, atol=1e-4)
    assert finals[1] < finals[0] / 30  # and with the init scale (frozen kernel part ~ sigma_0)
    assert finals[1] < 1e-3 * np.linalg.norm(sol.gram)


# --------------------------------------------------------------------------------------------
# Good-event spectra and min-norm feature alignments
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mu", [0.0, 0.7])
def test_good_event_spectra(mu):
    phi, sigma, m = [0.8, 1.2, 0.9, 1.1], 1.5, 3
    inst = Instance(phi, mu, sigma, m, reps=1)
    s = sigma**2 / (m * inst.n)
    np.testing.assert_allclose(inst.F, th.feature_second_moment(jnp.array(phi), mu), atol=1e-14)
    feat = np.asarray(th.m_eigenvalues_feature_block(jnp.array(phi), mu, sigma, m, inst.n))
    ev = np.sort(np.linalg.eigvalsh(inst.M))[::-1]
    K = len(phi)
    np.testing.assert_allclose(np.sort(ev[: K + 1]), np.sort(feat), rtol=1e-12)
    np.testing.assert_allclose(ev[K + 1 : inst.N], s, rtol=1e-10)
    assert th.numerical_rank(inst.M) == inst.N
    evt = np.sort(np.linalg.eigvalsh(inst.M_tilde))[::-1]
    np.testing.assert_allclose(np.sort(evt[: K + 1]), np.sort(feat), rtol=1e-12)
    np.testing.assert_allclose(evt[K + 1 : inst.n], s, rtol=1e-10)
    a1, a2 = th.scl_plus_eigenvalues(mu, phi[0], sigma, m, inst.n)
    evp = np.sort(np.linalg.eigvalsh(inst.M_plus))[::-1]
    np.testing.assert_allclose(evp[:2], sorted([float(a1), float(a2)], reverse=True), rtol=1e-12)
    assert th.numerical_rank(inst.M_plus) == 2
    if mu == 0.0:
        L = th.feature_spectrum_L(jnp.array(phi), K)
        np.testing.assert_allclose(np.sort(feat), np.sort(np.asarray(L) + s), rtol=1e-12)
    # C is a projector (SCL, UCL) / has eigenvalues 1, 1, 1-beta (joint): the ties of section 5.
    for loss, expect in [
        ("scl", [1, 1]),
        ("ucl", [1] * inst.n),
        ("joint", [1, 1] + [0.7] * (inst.n - 2)),
    ]:
        sol = th.min_norm_minimizer(inst.P(loss, beta=0.3), inst.M, 3)
        np.testing.assert_allclose(sol.eigenvalues, expect, atol=1e-10)
        assert sol.tied == (loss != "scl")


@pytest.mark.parametrize("phi3_sq, learnt", [(0.3, True), (0.6, True), (0.7, False), (1.5, False)])
def test_theory_md_section1_example(phi3_sq, learnt):
    """UCL, K = p = 3, phi = (0.8, 1, phi_3), n = 24, m = 2, sigma = 1 (d = 3000 in THEORY.md;
    the min-norm solution lives on the data coordinates, so they suffice: see the next test)."""
    phi = [0.8, 1.0, math.sqrt(phi3_sq)]
    inst = Instance(phi, 0.0, 1.0, 2, reps=3)
    assert inst.n == 24
    sol = th.min_norm_minimizer(inst.M_tilde, inst.M, 3)
    al = alignments(sol, 3)
    if learnt:
        assert abs(al[1] - 1.21) < 0.005
        np.testing.assert_allclose(al[1], 0.8 / (0.64 + 1 / 48), rtol=1e-10)
    else:
        assert al[1] < 1e-10
    pred = th.predicted_alignment_ucl(jnp.array(phi), 0.0, 1.0, 2, 24, 3)
    np.testing.assert_allclose(al, pred, atol=1e-10)
    assert bool(th.fs_dim_suppressed(jnp.array(phi), 3, 3)) == (not learnt)
    assert th.is_global_minimizer(sol.factor, inst.M_tilde, inst.M, 3)


def test_restriction_to_data_coordinates_is_exact():
    phi = [0.8, 1.0, math.sqrt(0.6)]
    full = Instance(phi, 0.0, 1.0, 2, reps=1, d=200, seed=5)
    idx = np.r_[np.arange(4), np.sort(full.coords)]
    for loss, p in [("ucl", 3), ("scl", 3), ("joint", 4)]:
        P = full.P(loss, 0.4)
        big = th.min_norm_minimizer(P, full.M, p)
        small = th.min_norm_minimizer(P[np.ix_(idx, idx)], full.M[np.ix_(idx, idx)], p)
        embedded = np.zeros_like(big.gram)
        embedded[np.ix_(idx, idx)] = small.gram
        np.testing.assert_allclose(big.gram, embedded, atol=1e-10)
        assert big.tied == small.tied


@pytest.mark.slow
@pytest.mark.parametrize("mu", [0.0, 0.7])
@pytest.mark.parametrize("phi", [[0.8, 1.2, 0.9, 1.1], [1.3, 0.6, 1.0, 0.5]])
def test_predicted_alignments_match_min_norm(mu, phi):
    sigma, m = 1.5, 3
    inst = Instance(phi, mu, sigma, m, reps=1)
    K, n, ph = len(phi), inst.n, jnp.array(phi)
    sol = th.min_norm_minimizer(inst.M_plus, inst.M, 3)
    np.testing.assert_allclose(
        alignments(sol, K), th.predicted_alignment_scl(ph, mu, sigma, m, n), atol=1e-10
    )
    s = sigma**2 / (m * n)
    det = (1 + s) * (phi[1] ** 2 + mu**2 + s) - mu**2
    np.testing.assert_allclose(
        alignments(sol, K)[[0, 1, 2]],
        [(phi[1] ** 2 + s) / det, phi[0] / (phi[0] ** 2 + s), mu * s / det],
        rtol=1e-9,
        atol=1e-12,
    )
    for p in (1, 2, 3, 4, 6):
        sol = th.min_norm_minimizer(inst.M_tilde, inst.M, p)
        np.testing.assert_allclose(
            alignments(sol, K), th.predicted_alignment_ucl(ph, mu, sigma, m, n, p), atol=1e-9
        )
    for p, beta in itertools.product((3, 4, 5), (0.3, 0.8)):
        sol = th.min_norm_minimizer(inst.P("joint", beta), inst.M, p)
        np.testing.assert_allclose(
            alignments(sol, K),
            th.predicted_alignment_joint(ph, mu, sigma, m, n, p, beta),
            atol=1e-9,
        )


def test_joint_keeps_both_features_under_joint_condition():
    """JOINT row: SCL collapses (v_2 = 0) and UCL suppresses v_1; the joint min-norm keeps both,
    with ||W v_1|| = phi_1/(phi_1^2 + s) and ||W v_2|| = sqrt(1-beta) phi_2/(phi_2^2 + s)."""
    phi, K, p, sigma, m = [0.5, 1.0, 1.5, 1.5, 1.5], 5, 4, 1.0, 2
    ph = jnp.array(phi)
    L = np.asarray(th.feature_spectrum_L(ph, K))  # [1, .25, 1, .75, .75, .75]
    assert bool(th.joint_condition(ph, K, p)) and bool(th.fs_dim_suppressed(ph, K, p))
    inst = Instance(phi, 0.0, sigma, m, reps=1)
    s = sigma**2 / (m * inst.n)
    scl = alignments(th.min_norm_minimizer(inst.M_plus, inst.M, p), K)
    ucl = alignments(th.min_norm_minimizer(inst.M_tilde, inst.M, p), K)
    assert scl[2] < 1e-10 and ucl[1] < 1e-10
    for beta in (0.1, 0.5, 0.9):
        sol = th.min_norm_minimizer(inst.P("joint", beta), inst.M, p)
        assert sol.tied
        np.testing.assert_allclose(sol.eigenvalues[:3], [1, 1, 1 - beta], atol=1e-10)
        al = alignments(sol, K)
        np.testing.assert_allclose(al[1], phi[0] / (L[1] + s), rtol=1e-9)
        np.testing.assert_allclose(al[2], math.sqrt(1 - beta) * phi[1] / (L[2] + s), rtol=1e-9)
        assert th.is_global_minimizer(sol.factor, inst.P("joint", beta), inst.M, p)
    # Not the joint regime: p large enough that UCL keeps v_1 too.
    assert not bool(th.joint_condition(ph, K, 6))


def test_conditions_and_tie_rule():
    ph = jnp.array([0.8, 1.0, math.sqrt(0.64)])  # phi_3^2 = phi_1^2 exactly: v_1 wins the tie
    assert not bool(th.fs_dim_suppressed(ph, 3, 3))
    al = th.predicted_alignment_ucl(ph, 0.0, 1.0, 2, 24, 3)
    assert al[1] > 1 and al[3] == 0
    assert bool(th.fs_dim_suppressed(ph, 3, 2))  # bias and v_2 (L = 1) fill p = 2
    assert not bool(th.fs_dim_suppressed(ph, 3, 4))  # larger p removes the suppression
    assert bool(th.cc_early_condition(0.0, 0.9)) and not bool(th.cc_early_condition(0.5, 1.2))
    assert bool(th.cc_early_condition(1.0, 1.0))
    with pytest.raises(ConfigError, match="invalid phi"):
        th.feature_spectrum_L(jnp.array([1.0, 1.0, 1.0]), 4)


@pytest.mark.slow
def test_spectral_functions_jit_and_vmap():
    phi3 = jnp.linspace(0.2, 1.6, 7)
    phis = jnp.stack([jnp.full_like(phi3, 0.8), jnp.ones_like(phi3), jnp.sqrt(phi3)], axis=1)
    f = jax.jit(jax.vmap(lambda ph: th.predicted_alignment_ucl(ph, 0.0, 1.0, 2, 24, 3)))
    batched = f(phis)
    assert batched.dtype == jnp.float64
    for i in range(phis.shape[0]):
        np.testing.assert_allclose(
            batched[i], th.predicted_alignment_ucl(phis[i], 0.0, 1.0, 2, 24, 3), atol=1e-14
        )
    g = jax.jit(jax.vmap(lambda b: th.predicted_alignment_joint(phis[0], 0.3, 1.0, 2, 24, 4, b)))
    assert g(jnp.array([0.2, 0.5])).shape == (2, 4)
    h = jax.jit(jax.vmap(lambda ph: th.fs_dim_suppressed(ph, 3, 3)))
    np.testing.assert_array_equal(h(phis), np.asarray(phi3) > 0.64)


@pytest.mark.slow
def test_fs_aug_standard_augmentation_full_rank():
    """Thm 5.4, standard augmentation, p >= n: exact value on an UNBALANCED good-event instance
    (each original has its own irrelevant feature, K = n + 2)."""
    rng = np.random.default_rng(6)
    n, m, sigma = 6, 2, 1.0
    K = n + 2
    combos = np.stack(
        [rng.choice([-1, 1], n), rng.choice([-1, 1], n), 3 + np.arange(n), rng.choice([-1, 1], n)],
        axis=1,
    )
    combos[:2, 0] = [1, -1]  # both classes present
    inst = Instance(rng.uniform(0.5, 1.5, K), 0.0, sigma, m, reps=1, d=300, seed=7, combos=combos)
    s = sigma**2 / (m * n)
    for p in (n, n + 3):
        sol = th.min_norm_minimizer(inst.M_tilde, inst.M, p)
        assert not sol.tied
        np.testing.assert_allclose(
            alignments(sol, K), th.ucl_full_rank_alignment(inst.F, s), atol=1e-9
        )
        v1 = th.fs_aug_prediction(inst.F, sigma, m, n, p, imperfect=False)
        np.testing.assert_allclose(v1, alignments(sol, K)[1], atol=1e-9)
    assert np.isnan(th.fs_aug_prediction(inst.F, sigma, m, n, n - 1, imperfect=False))
    assert float(th.fs_aug_prediction(inst.F, sigma, m, n, n, imperfect=True)) == 0.0


# --------------------------------------------------------------------------------------------
# Theorem 4.3 construction
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mu", [0.0, 0.7])
def test_noncollapsing_scl_minimizer(mu):
    phi, sigma, m = [0.8, 1.2, 0.9, 1.1], 1.5, 3
    inst = Instance(phi, mu, sigma, m, reps=1)
    s = sigma**2 / (m * inst.n)
    lmin = th.min_loss(inst.M_plus, inst.M, 3)
    nc = th.noncollapsing_scl_minimizer(inst.M, inst.M_plus)
    assert nc.factor.shape == (3, inst.D)
    np.testing.assert_allclose(nc.factor.T @ nc.factor, nc.gram, atol=1e-12)
    np.testing.assert_allclose(inst.M @ nc.a, 0, atol=1e-12)  # a in ker M
    for p in (3, 5):
        T = np.vstack([nc.factor, np.zeros((p - 3, inst.D))])
        assert th.is_global_minimizer(T, inst.M_plus, inst.M, p)
        np.testing.assert_allclose(float(th.loss_value(T, inst.M_plus, inst.M)), lmin, rtol=1e-10)
    assert np.linalg.norm(nc.factor[:, 2]) >= 1.0 - 1e-12  # Omega(1); min norm has O(s)
    mn = alignments(th.min_norm_minimizer(inst.M_plus, inst.M, 3), 4)[2]
    assert mn <= abs(mu) * s + 1e-12
    # The paper's scale mn/sigma^2: v_2^T a = e_2^T (F + sI)^{-1} e_2 (= 1/(phi_2^2 + s), mu = 0).
    paper = th.noncollapsing_scl_minimizer(inst.M, inst.M_plus, scale=1 / s)
    F = np.asarray(th.feature_second_moment(jnp.array(phi), mu))
    np.testing.assert_allclose(paper.a[2], np.linalg.inv(F + s * np.eye(5))[2, 2], rtol=1e-9)
    if mu == 0.0:
        np.testing.assert_allclose(paper.a[2], 1 / (phi[1] ** 2 + s), rtol=1e-9)
    assert th.is_global_minimizer(paper.factor, inst.M_plus, inst.M, 3)
    with pytest.raises(ConfigError, match="invalid p:"):
        th.noncollapsing_scl_minimizer(inst.M, inst.M_plus, p=2)


def test_noncollapsing_raises_when_v2_in_colsp():
    M = np.eye(4)
    with pytest.raises(ConfigError, match="invalid M: v_sub"):
        th.noncollapsing_scl_minimizer(M, np.diag([1.0, 0.5, 0, 0]))


# --------------------------------------------------------------------------------------------
# Loss, GD references, closed-form dynamics
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_loss_value_grad_and_distance():
    rng = np.random.default_rng(8)
    P, Q = random_instance(rng, 7, 5, 3)
    T = rng.standard_normal((3, 7))
    G = T.T @ T
    direct = np.trace(-2 * G @ P + G @ Q @ G @ Q)
    np.testing.assert_allclose(float(th.loss_value(T, P, Q)), direct, rtol=1e-12)
    auto = jax.grad(lambda X: th.loss_value(X, jnp.asarray(P), jnp.asarray(Q)))(jnp.asarray(T))
    np.testing.assert_allclose(th.loss_grad(T, P, Q), auto, rtol=1e-10)
    W = rng.standard_normal((2, 7))
    np.testing.assert_allclose(
        float(th.gram_distance(T, W)), np.linalg.norm(G - W.T @ W), rtol=1e-12
    )
    sol = th.min_norm_minimizer(P, Q, 3)
    tiny = sol.factor + 1e-9 * rng.standard_normal((3, 7))
    np.testing.assert_allclose(
        float(th.distance_to_min_norm(tiny, sol)),
        np.linalg.norm(tiny.T @ tiny - sol.gram),
        rtol=1e-5,
    )
    assert float(th.distance_to_min_norm(sol.factor, sol)) < 1e-13


@pytest.mark.parametrize("rotated", [False, True])
def test_commuting_mode_solution_matches_gd_reference(rotated):
    rng = np.random.default_rng(9)
    D, p = 5, 3
    a = np.array([1.0, 0.6, 0.3, 0.0, 0.2])
    q = np.array([1.2, 0.8, 0.5, 0.0, 0.9])
    U = np.linalg.qr(rng.standard_normal((D, D)))[0] if rotated else np.eye(D)
    P, Q = U @ np.diag(a) @ U.T, U @ np.diag(q) @ U.T
    O = np.linalg.qr(rng.standard_normal((p, p)))[0]
    cols = np.zeros((p, D))
    cols[:, [0, 1, 4]] = O * np.array([1e-3, -2e-3, 5e-4])  # orthogonal columns
    T0 = cols @ U.T
    ref = th.gd_reference_trajectory(T0, P, Q, 0.05, 400, record_every=10)
    modes = th.commuting_mode_solution(
        T0, P, Q, 0.05, 400, record_every=10, basis=U if rotated else None
    )
    assert ref.shape == modes.shape == (41, p, D)
    np.testing.assert_allclose(modes, ref, atol=1e-12)
    # Converges to the fixed points a/q^2 = diag of Q^+ P Q^+ on the excited modes.
    amp2 = np.linalg.norm(ref[-1] @ U, axis=0) ** 2
    fp = th.mode_table(P, Q, U)[:, 2]
    np.testing.assert_allclose(amp2[[0, 1, 4]], fp[[0, 1, 4]], rtol=1e-6)
    bad = rng.standard_normal((p, D))
    with pytest.raises(ConfigError, match="invalid Theta0"):
        th.commuting_mode_solution(bad, P, Q, 0.05, 10, basis=U)
    with pytest.raises(ConfigError, match="invalid P: must be diagonal"):
        th.commuting_mode_solution(T0, P + 0.1 * np.ones((D, D)), Q, 0.05, 10, basis=U)


def test_gradient_flow_closed_form_and_early_growth():
    a, q, c0 = 0.7, 1.3, 1e-6
    P, Q = np.diag([a, 0.0]), np.diag([q, 0.0])
    T0 = np.array([[c0, 0.0]])
    for eta in (0.02, 0.005):
        steps = int(round(12.0 / eta))
        traj = th.commuting_mode_solution(T0, P, Q, eta, steps, record_every=steps // 4)
        u_gd = traj[:, 0, 0] ** 2
        t = eta * np.arange(0, steps + 1, steps // 4)
        u_flow = np.asarray(th.mode_gradient_flow(a, q, c0**2, t))
        err = np.max(np.abs(u_gd - u_flow) / (a / q**2))
        assert err < 0.7 * eta  # O(eta) discretisation error
    np.testing.assert_allclose(float(th.mode_gradient_flow(a, q, c0**2, 1e3)), a / q**2)
    np.testing.assert_allclose(
        float(th.mode_gradient_flow(0.0, q, 0.5, 2.0)), 0.5 / (1 + 8 * q**2 * 0.5 * 2.0)
    )
    # Linear regime: amplitude = init (1 + 4 eta a)^t, escape time to a small target.
    eta = 0.05
    traj = th.gd_reference_trajectory(T0, P, Q, eta, 200)[:, 0, 0]
    grow = np.asarray(th.early_growth_factor(eta, a, np.arange(201)))
    np.testing.assert_allclose(traj[:40], c0 * grow[:40], rtol=1e-7)  # c < 2e-4
    target = 1e-3  # far below the fixed point sqrt(a)/q ~ 0.64
    t_pred = float(th.predicted_escape_time(eta, a, c0, target))
    t_hit = int(np.argmax(traj >= target))
    assert math.ceil(t_pred) == t_hit


@pytest.mark.slow
def test_symmetric_eigh_matches_numpy_and_survives_the_nonconverging_instance():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 30))
    a = a + a.T
    w, v = th.symmetric_eigh(a)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(a), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(v @ np.diag(w) @ v.T, a, atol=1e-11)
    # The FS-dim instance on which numpy's eigh raised "Eigenvalues did not converge" (full
    # design, key 3, phi_3^2 = 0.7, seed 2420): other_minimizer must now return a minimizer.
    import simdyn
    from simdyn.papers.which_features import common, fs_dim
    from simdyn.papers.which_features.instances import (
        compressed_moments,
        instance,
        sample_instances,
    )

    simdyn.enable_x64()
    design = fs_dim.DESIGNS["quick"]
    sets = sample_instances(fs_dim.data_config(design, 0.7), [2420], common.stream_key("FS-dim", 3))
    c = compressed_moments(instance(sets, 0), fs_dim.K)
    other = fs_dim.other_minimizer(c, fs_dim.P)
    assert th.minimizer_residual(other, c.m_tilde, c.m, fs_dim.P) < 1e-6


# --------------------------------------------------------------------------------------------
# The rank-one escape path (Thm 4.5's peak)
# --------------------------------------------------------------------------------------------


def test_rank_one_escape_is_full_gd_from_a_rank_one_init():
    """Theta_0 = c theta_0^T with ||c|| = 1 and theta_0 on P's top eigenvector: the plain p x D
    GD loop stays rank one along c, and its row is the escape path (batched instances too)."""
    rng = np.random.default_rng(11)
    D, p, eta, steps = 7, 3, 0.05, 40  # short: round-off seeds the other modes, which grow
    paths, fulls = [], []
    Ps, Qs, amps = [], [], np.array([1e-4, 3e-3])
    for amp in amps:
        P, Q = random_instance(rng, D, 5, 3)
        c = rng.standard_normal(p)
        c /= np.linalg.norm(c)
        u1 = np.linalg.eigh(P)[1][:, -1]
        full = th.gd_reference_trajectory(np.outer(c, amp * u1), P, Q, eta, steps)
        fulls.append(np.einsum("p,tpd->td", c, full))  # the row along c
        np.testing.assert_allclose(
            full, np.einsum("p,td->tpd", c, fulls[-1]), rtol=1e-10, atol=1e-13
        )
        paths.append(th.rank_one_escape(P, Q, amp, eta, steps))
        Ps.append(P)
        Qs.append(Q)
    for path, row in zip(paths, fulls, strict=True):
        assert path.shape == (steps + 1, D)
        np.testing.assert_allclose(path, row, rtol=1e-10, atol=1e-14)
    batched = th.rank_one_escape(np.stack(Ps), np.stack(Qs), amps, eta, steps)
    np.testing.assert_allclose(batched, np.stack(paths, axis=1), rtol=1e-12, atol=1e-15)
    # Both reach O(1): the saturating, nonlinear part of the path is exercised, not just growth.
    assert min(np.abs(path).max() for path in paths) > 0.5


def test_rank_one_escape_saturates_like_the_scalar_mode_recursion():
    # Commuting diagonal P, Q: the top mode alone moves, c <- c (1 + 4 eta a - 4 eta q^2 c^2),
    # written out here, and settles at sqrt(a) / q.
    a, q = np.array([0.3, 2.0, 1.0]), np.array([1.5, 0.8, 2.0])
    path = th.rank_one_escape(np.diag(a), np.diag(q), 1e-3, 0.02, 800)
    c = 1e-3
    for _ in range(800):
        c = c * (1 + 4 * 0.02 * a[1] - 4 * 0.02 * q[1] ** 2 * c**2)
    assert abs(abs(path[-1, 1]) - c) < 1e-12
    assert abs(c - math.sqrt(a[1]) / q[1]) < 1e-9
    np.testing.assert_array_equal(path[:, [0, 2]], 0.0)


def test_rank_one_escape_rejects_bad_input():
    P = np.eye(3)
    with pytest.raises(ConfigError, match="invalid P, Q"):
        th.rank_one_escape(P, np.eye(4), 1e-3, 0.1, 5)
    with pytest.raises(ConfigError, match="invalid amplitude"):
        th.rank_one_escape(P, P, np.ones(2), 0.1, 5)
    with pytest.raises(ConfigError, match="invalid steps"):
        th.rank_one_escape(P, P, 1e-3, 0.1, -1)
