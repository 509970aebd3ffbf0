"""Closed forms of Xue et al., ICLR 2024 ("Investigating the Benefits of Projection Head for
Representation Learning"), in float64 numpy.

The setting (docs: the paper's Def. 3.1-3.2): inputs with independent coordinates x_i = s_i phi_i,
an augmentation that re-draws the sign of coordinate i with probability alpha_i and adds noise
of variance sigma^2, and the spectral contrastive loss of a linear model W = W2 W1 (encoder W1,
head W2). Its population moments are diagonal,

    M  = diag(phi_i^2 + sigma^2)          (second moment of an augmented input)
    M+ = diag((1 - alpha_i)^2 phi_i^2)    (the positive-pair moment, Def. 3.2 as written)

so the loss is -2 Tr(W M+ W^T) + ||W M W^T||_F^2, and every statement below follows from the
min-norm minimizer of that loss and its balanced factorisation:

* :func:`balanced_factorization` (Thm 3.3): W = U S V^T gives W1 = S^(1/2) V^T, W2 = U S^(1/2),
  the factorisation with W1 W1^T = W2^T W2 and the smallest ||W1^T W1||_F^2 + ||W2^T W2||_F^2.
* :func:`feature_weights` (Thm 3.5): beta_i = (1 - alpha_i)^2 phi_i^2 / (phi_i^2 + sigma^2) ranks
  the features; the top min(d, p) are kept with ||f_l(e_i)|| = gamma_i^l, gamma_i =
  sqrt((1 - alpha_i) phi_i / (phi_i^2 + sigma^2)), the rest get 0. L layers (App. B):
  ||f_l(e_i)|| = c_i^(l / L) with c_i = gamma_i^2.
* :func:`sample_complexity` and :func:`delta` (Thm 3.6): the hard-margin indicator
  r_l = sum_j ||f_l(e_j)||^2 phihat_j^2 / (||f_l(e_j*)||^2 phihat_j*^2) of a downstream task
  whose label is sign(x_j*), and Delta, whose sign is that of r_1 - r_2.
* :func:`corollary_example` (Cor. 3.7): parameter sets of each of the three examples, in which
  Delta < 0 (the encoder's representation needs fewer samples than the head's).

Everything is a pure function of its arguments; shapes are (d,) per-feature vectors unless said.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from simdyn.config import ConfigError


def _vector(name: str, value: ArrayLike) -> np.ndarray:
    a = np.asarray(value, np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ConfigError(f"invalid {name}: must be a non-empty 1-d array of finite numbers")
    return a


def population_moments(
    phi: ArrayLike, alpha: ArrayLike, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """The diagonals of M and M+ (Def. 3.2 as written: a re-drawn sign, not a flipped one).

    Args:
      phi: (d,) feature magnitudes.
      alpha: (d,) re-draw probabilities in [0, 1].
      sigma: the noise standard deviation.

    Returns:
      (m, m_plus): (d,) diag(M) = phi^2 + sigma^2 and diag(M+) = (1 - alpha)^2 phi^2.

    Example:
      >>> m, mp = population_moments([1.0, 2.0], [0.0, 1.0], 0.5)
      >>> m.tolist(), mp.tolist()
      ([1.25, 4.25], [1.0, 0.0])
    """
    phi, alpha = _vector("phi", phi), _vector("alpha", alpha)
    if phi.shape != alpha.shape or np.any((alpha < 0) | (alpha > 1)):
        raise ConfigError("invalid alpha: must be one value in [0, 1] per feature (as many as phi)")
    return phi**2 + float(sigma) ** 2, (1.0 - alpha) ** 2 * phi**2


class Factorization(NamedTuple):
    """W = W2 W1: w1 (p, d) the encoder, w2 (p, p) the head."""

    w1: np.ndarray
    w2: np.ndarray


def balanced_factorization(w: ArrayLike) -> Factorization:
    """Thm 3.3: the balanced factorisation of W (p, d): W1 = S^(1/2) V^T, W2 = U S^(1/2).

    Args:
      w: (p, d) the end-to-end linear map W2 W1.

    Returns:
      The factorisation with W1 W1^T = W2^T W2 = S (the singular values of W, padded with zeros
      to p), which has the smallest ||W1^T W1||_F^2 + ||W2^T W2||_F^2 among all W2 W1 = W.

    Example:
      >>> w = np.array([[2.0, 0.0], [0.0, 0.5]])
      >>> f = balanced_factorization(w)
      >>> np.allclose(f.w2 @ f.w1, w), np.allclose(f.w1 @ f.w1.T, f.w2.T @ f.w2)
      (True, True)
    """
    w = np.asarray(w, np.float64)
    p, d = w.shape
    u, s, vt = np.linalg.svd(w, full_matrices=True)
    k = min(p, d)
    root = np.zeros((p, p))
    root[np.arange(k), np.arange(k)] = np.sqrt(s)
    w1 = root[:, :k] @ vt[:k]  # (p, d): rows past k are zero
    w2 = u @ root
    return Factorization(w1, w2)


def factorization_cost(f: Factorization) -> float:
    """||W1^T W1||_F^2 + ||W2^T W2||_F^2, the quantity Thm 3.3 minimises over factorisations."""
    return float(np.sum((f.w1.T @ f.w1) ** 2) + np.sum((f.w2.T @ f.w2) ** 2))


class FeatureWeights(NamedTuple):
    """Thm 3.5 / App. B for one parameter set.

    beta: (d,) the ranking score. gamma: (d,) the encoder weight of a kept feature. kept: (d,)
    bool, the top min(d, p) features by beta (ties broken by the lower index). weights: (L, d)
    ||f_l(e_i)|| for l = 1..L (0 for features not kept).
    """

    beta: np.ndarray
    gamma: np.ndarray
    kept: np.ndarray
    weights: np.ndarray


def feature_weights(
    phi: ArrayLike, alpha: ArrayLike, sigma: float, p: int, layers: int = 2
) -> FeatureWeights:
    """Thm 3.5 (two layers) and App. B (L layers): which features are kept and their weights.

    Args:
      phi, alpha, sigma: the data (:func:`population_moments`).
      p: the embedding width.
      layers: L, the number of linear layers (2: encoder and head).

    Returns:
      :class:`FeatureWeights` with ||f_l(e_i)|| = c_i^(l/L), c_i = gamma_i^2 (for L = 2:
      gamma_i after the encoder and gamma_i^2 after the head).

    Example:
      >>> fw = feature_weights([1.0, 1.0, 1.0], [0.0, 0.5, 1.0], 0.0, p=2)
      >>> fw.kept.tolist(), np.round(fw.weights, 4).tolist()
      ([True, True, False], [[1.0, 0.7071, 0.0], [1.0, 0.5, 0.0]])
    """
    if int(p) != p or p < 1 or int(layers) != layers or layers < 1:
        raise ConfigError(f"invalid p={p!r} or layers={layers!r}: must be integers >= 1")
    m, m_plus = population_moments(phi, alpha, sigma)
    phi_abs = np.abs(_vector("phi", phi))
    alpha_v = _vector("alpha", alpha)
    beta = m_plus / m
    gamma = np.sqrt((1.0 - alpha_v) * phi_abs / m)
    order = np.argsort(-beta, kind="stable")
    kept = np.zeros(beta.shape, bool)
    kept[order[: min(beta.size, int(p))]] = True
    kept &= beta > 0  # a destroyed feature (alpha = 1) is never learnt
    c = gamma**2
    level = np.arange(1, int(layers) + 1)[:, None] / int(layers)
    weights = np.where(kept[None, :], c[None, :] ** level, 0.0)
    return FeatureWeights(beta, gamma, kept, weights)


def min_norm_end_to_end(phi: ArrayLike, alpha: ArrayLike, sigma: float, p: int) -> np.ndarray:
    """The min-norm global minimizer W (p, d) of -2 Tr(W M+ W^T) + ||W M W^T||_F^2 (diagonal M,
    M+): row k carries the k-th kept feature with weight (1 - alpha_i) phi_i / (phi_i^2 + sigma^2)
    = gamma_i^2, the remaining rows are zero."""
    fw = feature_weights(phi, alpha, sigma, p)
    d = fw.beta.size
    w = np.zeros((int(p), d))
    for row, i in enumerate(np.flatnonzero(fw.kept)):
        w[row, i] = fw.gamma[i] ** 2
    return w


def sample_complexity(weights: ArrayLike, phihat: ArrayLike, j_star: int) -> np.ndarray:
    """Thm 3.6: r_l = sum_j w_lj^2 phihat_j^2 / (w_lj*^2 phihat_j*^2) per layer.

    Args:
      weights: (L, d) or (d,) feature weights ||f_l(e_j)||.
      phihat: (d,) the downstream magnitudes.
      j_star: index of the downstream label's coordinate.

    Returns:
      (L,) r_l (inf where the label's feature has weight 0: no margin).
    """
    w = np.atleast_2d(np.asarray(weights, np.float64))
    ph = _vector("phihat", phihat)
    num = np.sum(w**2 * ph**2, axis=1)
    den = w[:, j_star] ** 2 * ph[j_star] ** 2
    with np.errstate(divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)


def delta(
    phi: ArrayLike, alpha: ArrayLike, sigma: float, p: int, phihat: ArrayLike, j_star: int
) -> float:
    """Thm 3.6's Delta = sum over kept j != j* of phihat_j^2 (g_j^2/g*^2 - g_j^4/g*^4), with
    g = gamma; Delta < 0 means r_1 < r_2 (the encoder's representation is the better one).
    Equals phihat_j*^2 (r_1 - r_2) (:func:`sample_complexity`)."""
    fw = feature_weights(phi, alpha, sigma, p)
    ph = _vector("phihat", phihat)
    if not fw.kept[j_star]:
        raise ConfigError(
            f"invalid j_star={j_star}: must be a kept feature, one of "
            f"{np.flatnonzero(fw.kept).tolist()} (a dropped one has r_l infinite)"
        )
    g2 = fw.gamma**2 / fw.gamma[j_star] ** 2
    sel = fw.kept & (np.arange(ph.size) != j_star)
    return float(np.sum(ph[sel] ** 2 * (g2[sel] - g2[sel] ** 2)))


class Example(NamedTuple):
    """A parameter set of Cor. 3.7: phi, alpha (d,), sigma, p, phihat (d,), j_star."""

    phi: np.ndarray
    alpha: np.ndarray
    sigma: float
    p: int
    phihat: np.ndarray
    j_star: int


def corollary_example(case: Literal[1, 2, 3], rng: np.random.Generator, d: int = 6) -> Example:
    """A random parameter set satisfying case 1, 2 or 3 of Cor. 3.7 (then Delta < 0).

    1. all magnitudes 1 and alpha_j* the p-th smallest alpha;
    2. equal alphas, p >= 2, every phi_i <= sigma, phi_j* the p-th largest;
    3. equal alphas, p >= 2, phi_j* > max(phi_i, sigma / phi_i) for every i != j*.

    Args:
      case: which example.
      rng: the random generator (numpy).
      d: the number of features (>= 3).

    Returns:
      An :class:`Example` (downstream magnitudes phihat = 1, as in the corollary).
    """
    if d < 3:
        raise ConfigError(f"invalid d={d}: the examples need d >= 3")
    p = int(rng.integers(2, d))  # 2 <= p < d, so some feature is dropped
    phihat = np.ones(d)
    if case == 1:
        alpha = np.sort(rng.uniform(0.0, 0.9, d))
        alpha = alpha + np.arange(d) * 1e-3  # distinct
        rng.shuffle(alpha)
        j_star = int(np.argsort(alpha)[p - 1])
        return Example(np.ones(d), alpha, float(rng.uniform(0.1, 1.0)), p, phihat, j_star)
    alpha = np.full(d, float(rng.uniform(0.0, 0.9)))
    if case == 2:
        sigma = float(rng.uniform(0.5, 2.0))
        # distinct magnitudes, all below sigma
        phi = sigma * rng.permutation(np.linspace(0.1, 0.9, d) + rng.uniform(0.0, 0.05, d))
        j_star = int(np.argsort(-phi)[p - 1])
        return Example(phi, alpha, sigma, p, phihat, j_star)
    if case == 3:
        sigma = float(rng.uniform(0.1, 1.0))
        phi = rng.uniform(0.5, 1.5, d)
        j_star = int(rng.integers(d))
        others = np.delete(phi, j_star)
        phi[j_star] = 1.05 * max(others.max(), float(np.max(sigma / others)))
        return Example(phi, alpha, sigma, p, phihat, j_star)
    raise ConfigError(f"invalid case={case!r}: must be 1, 2 or 3")
