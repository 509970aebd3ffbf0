"""The exact expected minibatch objective E_B[L_B(Theta)] of simdyn's minibatch SGD.

simdyn's SGD (:func:`simdyn.objectives.sample.minibatch_gradient`, fixed augmentations) draws
B of the n originals uniformly without replacement each step and evaluates
:func:`simdyn.losses.sample_loss` on the batch's B m augmented points, i.e. the pairs are formed
INSIDE the batch. With A = Theta^T Theta, G_i = (1/m) sum_a x_ia x_ia^T (D, D) and
xbar_i = (1/m) sum_a x_ia (D,), the in-batch loss of a batch S is

    L_S = -2 Tr(A P_S) + Tr(A M_S A M_S),   P_S = beta M+_S + (1 - beta) M~_S,
    M_S  = (1/B) sum_{i in S} G_i,
    M~_S = (1/B) sum_{i in S} xbar_i xbar_i^T,
    M+_S = sum_c w_c(S) xbar_c(S) xbar_c(S)^T,   xbar_c(S) = mean of xbar_i over i in S, y_i = c,

with simdyn's class weights (:func:`simdyn.moments.class_weights`): w_c = 1/2 when both classes
are in the batch, 1 for the only class present, 0 for an absent class (whose mean is never
used). L_S is linear in P_S and quadratic in M_S, so the expectation over the uniform
without-replacement batch distribution is exactly

    L_exp(Theta) = -2 Tr(A P_exp) + Tr(A M A M) + c (1/n) sum_i Tr(A (G_i - M) A (G_i - M)),

    c     = (n - B) / (B (n - 1))        (finite-population covariance of a sample mean:
                                          Cov(mean of B of n) = c * (1/n) sum_i (z_i - zbar)^2)
    P_exp = beta E[M+_S] + (1 - beta) M~ (UCL positives are unbiased: E[M~_S] = M~)
    E[M+_S] = sum_c alpha_c mu_c mu_c^T + gamma_c Sigma_c,

where mu_c and Sigma_c = (1/n_c) sum_{i in c} (xbar_i - mu_c)(xbar_i - mu_c)^T are the class-c
mean and population covariance of the per-original means over the whole training set, and with
k_c ~ Hypergeometric(n, n_c, B) the batch count of class c (given k_c = k >= 1, the class-c
members of the batch are a uniform k-subset of the class, so E[xbar_c xbar_c^T | k] =
mu_c mu_c^T + f(n_c, k) Sigma_c, f(n_c, k) = (n_c - k) / (k (n_c - 1)), f = 0 when n_c = 1):

    alpha_c = E[w_c(k_c)],   gamma_c = E[w_c(k_c) f(n_c, k_c)],
    w_c(k) = 0 (k = 0), 1 (k = B), 1/2 (0 < k < B).

alpha_c and gamma_c are computed by summing exactly over the hypergeometric distribution
(finite sums with integer binomials; no Monte Carlo). At B = n: c = 0, alpha = (1/2, 1/2),
gamma = 0, and L_exp is the full loss of :mod:`simdyn.losses`.

The variance term is kept in factored form through the points (n, m, D), O(n m D) memory: with
E_i = X_i Theta^T (m, p), Theta G_i Theta^T = E_i^T E_i / m, so no (n, D, D) array is formed.

Everything is float64; build the objective with JAX 64-bit enabled (``simdyn.enable_x64()``).
"""

from __future__ import annotations

from math import comb
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from simdyn.config import ConfigError

Array = jax.Array


class ExpectedMinibatchObjective(NamedTuple):
    """Moment form of E_B[L_B] for batches of B of the n originals (see the module docstring).

    m: (D, D) full second moment M = (1/n) sum_i G_i.
    p_exp: (D, D) beta E[M+_B] + (1 - beta) M~.
    m_plus_exp: (D, D) E[M+_B], the expected in-batch SCL positive matrix.
    m_tilde: (D, D) M~ = (1/n) sum_i xbar_i xbar_i^T (= E[M~_B]).
    points: (n, m, D) the dense augmented points x_ia (the G_i of the variance term).
    var_coef: () c = (n - B) / (B (n - 1)) (0 when B = n).
    alpha: (2,) coefficients of mu_c mu_c^T in E[M+_B], classes (+1, -1).
    gamma: (2,) coefficients of Sigma_c in E[M+_B], classes (+1, -1).
    """

    m: Array
    p_exp: Array
    m_plus_exp: Array
    m_tilde: Array
    points: Array
    var_coef: Array
    alpha: Array
    gamma: Array


def variance_coefficient(n: int, batch_size: int) -> float:
    """c = (n - B) / (B (n - 1)): Cov of the mean of B of n without replacement over the
    population covariance (1/n normalised). 0 for B = n; 1 for B = 1 (n > 1)."""
    _check_batch(n, batch_size)
    if n == 1:
        return 0.0
    return (n - batch_size) / (batch_size * (n - 1))


def _check_batch(n: int, batch_size: int) -> None:
    if int(batch_size) != batch_size or not 1 <= batch_size <= n:
        raise ConfigError(f"invalid batch_size={batch_size!r}: must be an integer in [1, n={n}]")


def hypergeometric_pmf(n: int, n_c: int, batch_size: int) -> np.ndarray:
    """(B + 1,) P(k_c = k), k = 0..B: class-c count in a uniform B-subset of n (n_c of class c).

    Exact integer binomials divided once, so each entry is correctly rounded."""
    _check_batch(n, batch_size)
    total = comb(n, batch_size)
    return np.array(
        [comb(n_c, k) * comb(n - n_c, batch_size - k) / total for k in range(batch_size + 1)],
        np.float64,
    )


def class_mean_coefficients(n_pos: int, n_neg: int, batch_size: int) -> tuple[np.ndarray, ...]:
    """(alpha, gamma), each (2,) for classes (+1, -1): E[M+_B] = sum_c alpha_c mu_c mu_c^T +
    gamma_c Sigma_c, summed exactly over the hypergeometric class counts.

    w_c(k) is simdyn's in-batch class weight (0 if class c is absent, 1 if it is the only class,
    1/2 otherwise) and f(n_c, k) = (n_c - k) / (k (n_c - 1)) the finite-population factor of a
    class mean over k of the n_c class members (0 when n_c = 1, where k = 1 = n_c).
    """
    n = n_pos + n_neg
    alpha, gamma = np.zeros(2), np.zeros(2)
    for ci, n_c in enumerate((n_pos, n_neg)):
        pmf = hypergeometric_pmf(n, n_c, batch_size)
        for k in range(1, batch_size + 1):
            if pmf[k] == 0.0:
                continue
            w = 1.0 if k == batch_size else 0.5
            f = 0.0 if n_c == 1 else (n_c - k) / (k * (n_c - 1))
            alpha[ci] += pmf[k] * w
            gamma[ci] += pmf[k] * w * f
    return alpha, gamma


def expected_minibatch_objective(
    points_dense: ArrayLike, y: ArrayLike, batch_size: int, beta: float
) -> ExpectedMinibatchObjective:
    """Exact E_B[L_B] over uniform without-replacement batches of ``batch_size`` originals.

    points_dense: (n, m, D) the fixed augmentations (e.g. ``simdyn.data.to_dense(ts.points, d)``).
    y: (n,) classes in {+1, -1}.
    batch_size: B, 1 <= B <= n.
    beta: weight of SCL (1 = SCL, 0 = UCL, in between = joint), as in :mod:`simdyn.losses`.
    """
    x = np.asarray(points_dense, np.float64)
    yv = np.asarray(y)
    n, m, _ = x.shape
    _check_batch(n, batch_size)
    flat = x.reshape((n * m, -1))
    m_mat = flat.T @ flat / (n * m)
    xbar = x.mean(axis=1)  # (n, D)
    m_tilde = xbar.T @ xbar / n
    alpha, gamma = class_mean_coefficients(int(np.sum(yv == 1)), int(np.sum(yv == -1)), batch_size)
    m_plus = np.zeros_like(m_mat)
    for ci, c in enumerate((1, -1)):
        xc = xbar[yv == c]
        if xc.shape[0] == 0:
            continue
        mu = xc.mean(axis=0)
        dev = xc - mu
        m_plus += alpha[ci] * np.outer(mu, mu) + gamma[ci] * (dev.T @ dev / xc.shape[0])
    p_exp = beta * m_plus + (1 - beta) * m_tilde
    return ExpectedMinibatchObjective(
        jnp.asarray(m_mat),
        jnp.asarray(p_exp),
        jnp.asarray(m_plus),
        jnp.asarray(m_tilde),
        jnp.asarray(x),
        jnp.asarray(variance_coefficient(n, batch_size), jnp.float64),
        jnp.asarray(alpha),
        jnp.asarray(gamma),
    )


def _per_original_grams(obj: ExpectedMinibatchObjective, theta: Array) -> tuple[Array, Array]:
    """(emb (n, m, p) = X_i Theta^T, H (n, p, p) = Theta G_i Theta^T)."""
    emb = obj.points @ theta.T
    h = jnp.einsum("iap,iaq->ipq", emb, emb) / obj.points.shape[1]
    return emb, h


def variance_term(obj: ExpectedMinibatchObjective, theta: Array) -> Array:
    """c (1/n) sum_i ||Theta (G_i - M) Theta^T||_F^2 = E[Tr(A M_B A M_B)] - Tr(A M A M)."""
    _, h = _per_original_grams(obj, theta)
    t = theta @ obj.m @ theta.T
    return obj.var_coef * jnp.mean(jnp.sum((h - t) ** 2, axis=(1, 2)))


def expected_minibatch_loss(obj: ExpectedMinibatchObjective, theta: Array) -> Array:
    """L_exp(Theta) = -2 Tr(Theta P_exp Theta^T) + ||Theta M Theta^T||_F^2 + variance term.

    theta: (p, D). Returns a scalar."""
    t = theta @ obj.m @ theta.T
    return -2 * jnp.sum((theta @ obj.p_exp) * theta) + jnp.sum(t**2) + variance_term(obj, theta)


def expected_minibatch_grad(obj: ExpectedMinibatchObjective, theta: Array) -> Array:
    """Closed-form gradient of L_exp, (p, D):

    -4 Theta P_exp + 4 (Theta M Theta^T)(Theta M) + 4 c (1/n) sum_i (H_i - T) Theta (G_i - M),
    with H_i = Theta G_i Theta^T, T = Theta M Theta^T; since sum_i (H_i - T) = 0 the last term
    is 4 c (1/n) sum_i (H_i - T) E_i^T X_i / m with E_i = X_i Theta^T.
    """
    tm = theta @ obj.m
    t = tm @ theta.T
    emb, h = _per_original_grams(obj, theta)
    n, m = obj.points.shape[:2]
    # sum_i (H_i - T) E_i^T X_i / m, contracted without forming (n, p, D) intermediates twice.
    weighted = jnp.einsum("ipq,iaq->iap", h - t, emb)  # (n, m, p): rows (H_i - T) e_ia
    var_grad = jnp.einsum("iap,iad->pd", weighted, obj.points) / (n * m)
    return -4 * theta @ obj.p_exp + 4 * t @ tm + 4 * obj.var_coef * var_grad
