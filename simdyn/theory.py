"""Closed-form predictions for the linear contrastive learner of Xue et al. (ICML 2023).

Everything here is a reference for the simulator: exact minimizers, spectra and dynamics, float64.

Conventions (THEORY.md sections 3-5). Inputs are bias-folded: x~ = [1; x] in R^D, D = d + 1,
coordinate 0 is the bias direction v_0, coordinates 1..K the features v_1..v_K, the rest noise.
Theta = [b W] in R^{p x D} and, with G = Theta^T Theta,

    L(Theta) = Tr(-2 G P + G Q G Q),      grad = -4 Theta P + 4 (Theta Q Theta^T)(Theta Q),

Q = M (second moment of the training points), P in {M+ (SCL), M~ (UCL), beta M+ + (1-beta) M~}.

Two kinds of functions:

* decompositions of a sampled instance (:func:`min_norm_minimizer`, :func:`psd_pinv`, ...) use
  numpy ``eigh`` in float64; they run once per instance, never in a training loop;
* formulas (:func:`loss_value`, the spectral predictions, growth rates) use ``jax.numpy`` and work
  under ``jit``/``vmap``; they compute in whatever dtype they are given (enable jax x64 for
  float64; this module never flips that switch).

Why whitening: with S = Q^{1/2} and H = S G S the loss is ||H - C||_F^2 - ||C||_F^2 with
C = S^+ P S^+, so the global minimizers are H = [C]_p (Eckart-Young, Lemma B.2) and the norm of
Theta is ||Theta||_F^2 = Tr G = Tr(H Q^+). The min-norm minimizer thus is the top-p part of C,
with a tie across the p-th place resolved by the cheapest directions in the Q^+ metric.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from simdyn import safe_linalg
from simdyn.config import ConfigError

Array = jax.Array

# Round-off safety factor of the default eigenvalue cut-off (see `default_rtol`).
_RTOL_FACTOR = 10.0


# --------------------------------------------------------------------------------------------
# PSD linear algebra (numpy, float64)
# --------------------------------------------------------------------------------------------


class PSDRange(NamedTuple):
    """Range of a PSD matrix: eigenpairs above the cut-off, eigenvalues descending.

    values: (r,) positive eigenvalues; vectors: (D, r) orthonormal; cutoff: the absolute
    threshold used; rtol: the relative threshold used (cutoff = rtol * lambda_max).
    """

    values: np.ndarray
    vectors: np.ndarray
    cutoff: float
    rtol: float


def _as_float64(A: ArrayLike, name: str) -> tuple[np.ndarray, float]:
    """float64 copy of A and the machine epsilon of A's own dtype (its round-off level)."""
    arr = np.asarray(A)
    if np.issubdtype(arr.dtype, np.floating):
        eps = float(np.finfo(arr.dtype).eps)
    else:
        eps = float(np.finfo(np.float64).eps)
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"invalid {name}: must contain only finite numbers")
    return arr, eps


def _as_symmetric(A: ArrayLike, name: str) -> tuple[np.ndarray, float]:
    """Symmetrised float64 square matrix (eigh only reads one triangle; average both)."""
    arr, eps = _as_float64(A, name)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ConfigError(f"invalid {name}: must be a square matrix, got shape {arr.shape}")
    return 0.5 * (arr + arr.T), eps


def default_rtol(D: int, eps: float = float(np.finfo(np.float64).eps)) -> float:
    """Default relative eigenvalue cut-off ``10 * D * eps``.

    Why: a backward-stable ``eigh`` of a D x D PSD matrix returns eigenvalues with absolute error
    up to about D * eps * lambda_max, so a mathematically-zero eigenvalue shows up anywhere below
    that; the factor 10 is headroom. Genuine small eigenvalues of the model sit far above it: the
    noise eigenvalues sigma_xi^2/(mn) of M are about 1/5000 of lambda_max in the paper's figure
    settings, against ~1e-12 for D = 3001 in float64. ``eps`` is that of the input's dtype, since
    that is the round-off the input carries (float32 inputs give a much coarser cut-off).
    """
    return _RTOL_FACTOR * D * eps


def symmetric_eigh(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending eigenpairs (w, V) of the symmetric matrix a (float64 numpy), robustly.

    a is symmetrised first. numpy's ``eigh`` (LAPACK syevd) occasionally reports "did not
    converge" on finite, symmetric, highly degenerate matrices (seen on one FS-dim instance in
    4000); the fallback is scipy's MRRR driver (syevr), which has no such failure there.
    """
    a = 0.5 * (a + a.T)
    try:
        return np.linalg.eigh(a)
    except np.linalg.LinAlgError:
        import scipy.linalg

        return scipy.linalg.eigh(a, driver="evr")


def psd_range(Q: ArrayLike, rtol: float | None = None) -> PSDRange:
    """Eigenpairs of the PSD matrix Q (D x D) with eigenvalue > rtol * lambda_max(Q).

    rtol defaults to :func:`default_rtol` (D, eps of Q's dtype). Negative eigenvalues (round-off
    of a PSD matrix) are always discarded.
    """
    Q64, eps = _as_symmetric(Q, "Q")
    D = Q64.shape[0]
    if rtol is None:
        rtol = default_rtol(D, eps)
    w, V = symmetric_eigh(Q64)
    lam_max = max(float(w[-1]), 0.0) if D else 0.0
    cutoff = rtol * lam_max
    keep = w > cutoff if lam_max > 0 else np.zeros(D, bool)
    return PSDRange(w[keep][::-1].copy(), V[:, keep][:, ::-1].copy(), cutoff, float(rtol))


def numerical_rank(Q: ArrayLike, rtol: float | None = None) -> int:
    """Number of eigenvalues of the PSD matrix Q above rtol * lambda_max (see default_rtol)."""
    return int(psd_range(Q, rtol).values.shape[0])


def psd_pinv(Q: ArrayLike, rtol: float | None = None) -> np.ndarray:
    """Moore-Penrose pseudo-inverse Q^+ (D x D) of a PSD matrix with the default_rtol cut-off."""
    w, V, _, _ = psd_range(Q, rtol)
    return (V / w) @ V.T


def psd_sqrt(Q: ArrayLike, rtol: float | None = None) -> np.ndarray:
    """PSD square root Q^{1/2} (D x D); eigenvalues under the cut-off are set to zero."""
    w, V, _, _ = psd_range(Q, rtol)
    return (V * np.sqrt(w)) @ V.T


def psd_sqrt_pinv(Q: ArrayLike, rtol: float | None = None) -> np.ndarray:
    """(Q^{1/2})^+ = (Q^+)^{1/2} (D x D) of a PSD matrix, same cut-off as :func:`psd_pinv`."""
    w, V, _, _ = psd_range(Q, rtol)
    return (V / np.sqrt(w)) @ V.T


# --------------------------------------------------------------------------------------------
# Whitened problem and the min-norm global minimizer (Lemma B.2)
# --------------------------------------------------------------------------------------------


class _Whitened(NamedTuple):
    """C = S^+ P S^+ written in the eigenbasis of Q's range (r x r), plus its eigenpairs."""

    q_values: np.ndarray  # (r,) eigenvalues of Q kept
    q_vectors: np.ndarray  # (D, r)
    C: np.ndarray  # (r, r)
    lam: np.ndarray  # (r,) eigenvalues of C, descending
    U: np.ndarray  # (r, r) eigenvectors of C, same order
    rank: int  # numerical rank of C
    rtol: float


def _whiten(P: ArrayLike, Q: ArrayLike, rtol: float | None, colsp_tol: float | None) -> _Whitened:
    P64, _ = _as_symmetric(P, "P")
    rng = psd_range(Q, rtol)
    w, V = rng.values, rng.vectors
    if P64.shape != (V.shape[0], V.shape[0]):
        raise ConfigError(f"invalid P: shape {P64.shape} must match Q's {(V.shape[0],) * 2}")
    # Why sqrt: a true direction of Q with eigenvalue just under the cut-off (relative rtol)
    # can carry P-mass of relative size ~sqrt(rtol) when P, Q come from the same data.
    if colsp_tol is None:
        colsp_tol = max(1e-6, 10.0 * math.sqrt(rng.rtol))
    p_norm = float(np.linalg.norm(P64))
    PV = P64 @ V
    if p_norm > 0:
        leak = float(np.linalg.norm(P64 - V @ (V.T @ P64))) / p_norm
        if leak > colsp_tol:
            raise ConfigError(
                f"invalid P: colsp(P) must lie in colsp(Q) (relative leak {leak:.3g} > "
                f"colsp_tol {colsp_tol:.3g}); Lemma B.2 needs colsp(P) in colsp(Q)"
            )
    isq = 1.0 / np.sqrt(w)
    C = isq[:, None] * (V.T @ PV) * isq[None, :]
    C = 0.5 * (C + C.T)
    lam, U = symmetric_eigh(C)
    lam, U = lam[::-1].copy(), U[:, ::-1].copy()
    r = lam.shape[0]
    if r == 0 or lam[0] <= 0:
        rank = 0
    else:
        rank = int(np.sum(lam > rng.rtol * lam[0]))
    return _Whitened(w, V, C, lam, U, rank, rng.rtol)


class MinNormSolution(NamedTuple):
    """Minimum-Frobenius-norm global minimizer of L for a given p.

    gram: (D, D) G = W^T W. factor: (p, D) W (rows past selected_rank are zero).
    eigenvalues: (rank C,) positive eigenvalues of C = S^+ P S^+ (= those of Q^+ P), descending.
    selected_rank: number of eigen-directions kept, min(p, rank P).
    tied: whether eigenvalues tied across the p-th place and the tie was resolved by norm.
    tie_dim: size of the tied eigenvalue group (0 if not tied).
    tie_gap: when tied, the gap between the last selected and the first rejected eigenvalue of
      E^T Q^+ E (relative to the largest); near 0 means the min-norm choice is itself not unique.
    """

    gram: np.ndarray
    factor: np.ndarray
    eigenvalues: np.ndarray
    selected_rank: int
    tied: bool
    tie_dim: int = 0
    tie_gap: float = float("nan")


def min_norm_minimizer(
    P: ArrayLike,
    Q: ArrayLike,
    p: int,
    *,
    tie_tol: float = 1e-6,
    rtol: float | None = None,
    colsp_tol: float | None = None,
) -> MinNormSolution:
    """Minimum-norm global minimizer of Tr(-2 G P + G Q G Q) over G = W^T W, W in R^{p x D}.

    P, Q: (D, D) PSD with colsp(P) in colsp(Q) (checked; ConfigError naming P otherwise).

    * p >= rank P: G = Q^+ P Q^+.
    * p < rank P: whiten (S = Q^{1/2}, C = S^+ P S^+), keep the top-p eigenpairs,
      G = S^+ [C]_p S^+.
    * Tie across the p-th place, i.e. eigenvalues with |lambda_i - lambda_p| <= tie_tol *
      lambda_1 on both sides of p: every top-p choice is a global minimizer; inside the tied
      eigenspace E the norm Tr(H Q^+) is smallest for the eigenvectors of E^T Q^+ E with the
      SMALLEST eigenvalues (the largest-Q directions), which fill the remaining slots. On that
      subspace the compression of C is used, which is exact for an exact tie; for a near tie
      the loss exceeds the minimum by at most slots * (lambda_max^2 - lambda_min^2) over the
      tied group, i.e. <= 2 p tie_tol lambda_1^2.

    tie_tol matters outside the theorems' regime: finite samples turn exact ties into near ties
    whose ordering GD cannot resolve in practice, and the predicted minimizer can then jump
    when tie_tol crosses an eigenvalue gap (see :func:`tie_scan`). rtol is the cut-off of Q's
    range (:func:`default_rtol`) and of C's rank; colsp_tol the allowed relative leak of P
    outside colsp(Q) (default max(1e-6, 10 sqrt(rtol))).
    """
    if int(p) != p or p < 1:
        raise ConfigError(f"invalid p: must be a positive integer, got {p!r}")
    p = int(p)
    wh = _whiten(P, Q, rtol, colsp_tol)
    w, V, lam, U, rank = wh.q_values, wh.q_vectors, wh.lam, wh.U, wh.rank
    D = V.shape[0]
    tied, tie_dim, tie_gap = False, 0, float("nan")
    if p >= rank:
        basis, h = U[:, :rank], lam[:rank]
    else:
        lam_p, tol = lam[p - 1], tie_tol * lam[0]
        group = np.flatnonzero(np.abs(lam[:rank] - lam_p) <= tol)
        g0, g1 = int(group[0]), int(group[-1]) + 1  # lam sorted: the group is contiguous
        if g1 > p:
            tied, tie_dim = True, g1 - g0
            slots = p - g0
            E = U[:, g0:g1]
            # Norm cost of a whitened direction u is u^T Q^+ u; Q^+ = diag(1/w) in this basis.
            cost, Y = symmetric_eigh(E.T @ (E / w[:, None]))
            F = E @ Y[:, :slots]
            h_t, Z = symmetric_eigh(F.T @ wh.C @ F)
            basis = np.hstack([U[:, :g0], F @ Z])
            h = np.concatenate([lam[:g0], np.maximum(h_t, 0.0)])
            tie_gap = float((cost[slots] - cost[slots - 1]) / cost[-1])
        else:
            basis, h = U[:, :p], lam[:p]
    k = basis.shape[1]
    factor = np.zeros((p, D))
    # W = diag(sqrt h) B^T S^+ with S^+ = V diag(w^{-1/2}) V^T restricted to the range.
    factor[:k] = (np.sqrt(h)[:, None] * basis.T / np.sqrt(w)[None, :]) @ V.T
    gram = factor.T @ factor
    return MinNormSolution(gram, factor, lam[:rank].copy(), k, tied, tie_dim, tie_gap)


def tie_scan(
    P: ArrayLike, Q: ArrayLike, p: int, tie_tols: tuple[float, ...] = (0.0, 1e-9, 1e-6, 1e-3, 1e-1)
) -> list[tuple[float, MinNormSolution]]:
    """Min-norm solutions for several tie tolerances: how much the prediction depends on it."""
    return [(t, min_norm_minimizer(P, Q, p, tie_tol=t)) for t in tie_tols]


def min_loss(P: ArrayLike, Q: ArrayLike, p: int, *, rtol: float | None = None) -> float:
    """Global minimum -sum_{i <= min(p, rank P)} lambda_i(Q^+ P)^2 (Lemma B.2)."""
    wh = _whiten(P, Q, rtol, None)
    return -float(np.sum(wh.lam[: min(int(p), wh.rank)] ** 2))


class MinimizerResidual(NamedTuple):
    """Relative residuals of the global-minimizer conditions in whitened coordinates.

    stationarity: ||H C - H^2||_F / lambda_1^2 (zero iff H's range is C-invariant with H = C
      there, i.e. H is a sum of eigen-projections of C weighted by their eigenvalues).
    loss_gap: (L(Theta) - min_loss) / lambda_1^2 (can be negative only if rank Theta > p).
    """

    stationarity: float
    loss_gap: float


def minimizer_residuals(
    Theta: ArrayLike, P: ArrayLike, Q: ArrayLike, p: int, *, rtol: float | None = None
) -> MinimizerResidual:
    """Both global-minimizer residuals of Theta (rows x D), see :class:`MinimizerResidual`."""
    T64, _ = _as_float64(Theta, "Theta")
    wh = _whiten(P, Q, rtol, None)
    if T64.ndim != 2 or T64.shape[1] != wh.q_vectors.shape[0]:
        raise ConfigError(
            f"invalid Theta: must have shape (rows, {wh.q_vectors.shape[0]}), got {T64.shape}"
        )
    TS = (T64 @ wh.q_vectors) * np.sqrt(wh.q_values)[None, :]  # Theta S in the range basis
    H = TS.T @ TS
    scale = wh.lam[0] ** 2 if wh.rank else 1.0
    stat = float(np.linalg.norm(H @ wh.C - H @ H)) / scale
    # L = ||H - C||^2 - ||C||^2 and min = -sum_{i<=p} lam_i^2, so the gap is
    # ||H - C||^2 - sum_{i>p} lam_i^2 (no cancellation against ||C||^2).
    gap = float(np.linalg.norm(H - wh.C) ** 2 - np.sum(wh.lam[min(int(p), wh.rank) :] ** 2))
    return MinimizerResidual(stat, gap / scale)


def minimizer_residual(
    Theta: ArrayLike, P: ArrayLike, Q: ArrayLike, p: int, *, rtol: float | None = None
) -> float:
    """max(stationarity, sqrt|loss gap|): a first-order distance to the global-minimizer set.

    Why sqrt: the loss is quadratic around a minimizer, so sqrt(gap) scales like the error in G.
    """
    res = minimizer_residuals(Theta, P, Q, p, rtol=rtol)
    return max(res.stationarity, math.sqrt(abs(res.loss_gap)))


def is_global_minimizer(
    Theta: ArrayLike, P: ArrayLike, Q: ArrayLike, p: int, atol: float = 1e-6
) -> bool:
    """Whether Theta^T Theta Q = [Q^+ P]_p for some top-p choice (Lemma B.2), up to atol.

    Checked in whitened coordinates: the loss reaches min_loss AND H C = H^2. Every choice inside
    a tied eigenspace passes; components of Theta on ker Q are free (they do not change L).
    """
    res = minimizer_residuals(Theta, P, Q, p)
    return bool(res.stationarity <= atol and math.sqrt(abs(res.loss_gap)) <= atol)


# --------------------------------------------------------------------------------------------
# Loss, gradient and distances (jax.numpy: jit/vmap-able)
# --------------------------------------------------------------------------------------------


def loss_value(Theta: Array | np.ndarray, P: Array | np.ndarray, Q: Array | np.ndarray) -> Array:
    """L(Theta) = -2 Tr(Theta P Theta^T) + ||Theta Q Theta^T||_F^2. Theta: (p, D); P, Q: (D, D).

    numpy inputs: the products are numpy's (float64), the trace and sum JAX's.

    Same as Tr(-2 G P + G Q G Q) with G = Theta^T Theta, computed on p x p matrices.
    """
    A = Theta @ Q @ Theta.T
    return -2.0 * jnp.trace(Theta @ P @ Theta.T) + jnp.sum(A * A)


def loss_grad(Theta: Array, P: Array, Q: Array) -> Array:
    """Gradient -4 Theta P + 4 (Theta Q Theta^T)(Theta Q), shape (p, D)."""
    TQ = Theta @ Q
    return -4.0 * Theta @ P + 4.0 * (TQ @ Theta.T) @ TQ


def gram_distance(Theta: Array, factor: Array) -> Array:
    """||Theta^T Theta - W^T W||_F for Theta (p, D) and W = factor (q, D), without D x D arrays.

    Why QR: with Z = [Theta; W] = R^T Q^T (thin QR of Z^T), Theta^T Theta - W^T W = Q R J R^T Q^T
    with J = diag(I, -I), so the norm is ||R J R^T||_F, free of the cancellation of the expanded
    trace identity.
    """
    Z = jnp.concatenate([Theta, factor], axis=0)
    R = safe_linalg.qr_r(Z.T)
    sign = jnp.concatenate([jnp.ones(Theta.shape[0], Z.dtype), -jnp.ones(factor.shape[0], Z.dtype)])
    return jnp.linalg.norm((R * sign[None, :]) @ R.T)


def distance_to_min_norm(Theta: Array, solution: MinNormSolution | Array) -> Array:
    """||Theta^T Theta - gram||_F to a MinNormSolution (or to the gram of a given factor)."""
    factor = solution.factor if isinstance(solution, MinNormSolution) else solution
    return gram_distance(jnp.asarray(Theta), jnp.asarray(factor))


def feature_alignment(Theta: Array, K: int) -> Array:
    """||Theta v_j|| for j = 0..K (index 0 = bias = ||b||). Theta: (p, D) -> (K+1,)."""
    return jnp.linalg.norm(Theta[:, : K + 1], axis=0)


# --------------------------------------------------------------------------------------------
# Theorem 4.3: an SCL minimizer that keeps the subclass feature
# --------------------------------------------------------------------------------------------


class NoncollapsingSolution(NamedTuple):
    """gram (D, D) = M^+ M+ M^+ + a a^T, factor (p, D) with factor^T factor = gram, a (D,)."""

    gram: np.ndarray
    factor: np.ndarray
    a: np.ndarray


def noncollapsing_scl_minimizer(
    M: ArrayLike,
    M_plus: ArrayLike,
    subclass_coord: int = 2,
    *,
    p: int | None = None,
    scale: float | None = None,
    rtol: float | None = None,
) -> NoncollapsingSolution:
    """Thm 4.3: a global SCL minimizer with ||W v_2|| = Omega(1).

    Why it works for any M: for a in ker M, (G + a a^T) M = G M, so adding a a^T to the min-norm
    gram M^+ M+ M^+ leaves L unchanged, and [M^+ M+]_p = M^+ M+ once p >= rank M+ + 1.
    a = scale * l_perp with l_perp = (I - Pi_M) v_sub (v_sub = e_{subclass_coord}).
    scale=None takes 1/||l_perp||^2, so v_sub^T a = 1 exactly and ||W v_sub|| >= 1 for every M;
    the paper's scale = mn/sigma_xi^2 gives v_sub^T a = e_2^T (F + sI)^{-1} e_2 (= 1/(phi_2^2 + s)
    when mu = 0) on a balanced good-event instance, F the feature second moment,
    s = sigma_xi^2/(mn). p (default rank M+ + 1) is the number of rows of the factor.
    Raises ConfigError if v_sub lies in colsp(M) (then no such a exists).
    """
    M64, _ = _as_symmetric(M, "M")
    D = M64.shape[0]
    base = min_norm_minimizer(M_plus, M64, D, rtol=rtol)
    k = base.selected_rank
    if p is None:
        p = k + 1
    if p < k + 1:
        raise ConfigError(f"invalid p: must be >= rank(M_plus) + 1 = {k + 1}, got {p}")
    V = psd_range(M64, rtol).vectors
    v = np.zeros(D)
    v[subclass_coord] = 1.0
    l_perp = v - V @ (V.T @ v)
    nrm2 = float(l_perp @ l_perp)
    if nrm2 <= 1e-24:
        raise ConfigError(
            "invalid M: v_sub must not lie in colsp(M) (else no a in ker M has a^T v_sub != 0)"
        )
    a = l_perp * (1.0 / nrm2 if scale is None else float(scale))
    factor = np.zeros((p, D))
    factor[:k] = base.factor[:k]
    factor[k] = a
    return NoncollapsingSolution(factor.T @ factor, factor, a)


# --------------------------------------------------------------------------------------------
# Spectra and min-norm feature alignments under the good event (THEORY.md section 5)
# --------------------------------------------------------------------------------------------
#
# Derivation (exact for finite m, n). Balanced originals, m augmentations each, N = mn points,
# noise sigma_xi e_j at N distinct coordinates outside the feature block ("good event"). In the
# coordinates spanned by the data, X = [Phi, sigma_xi I_N] (N x (K+1+N)), Phi the N x (K+1)
# feature rows [1, u], Phi^T Phi = N F with F the feature second moment below, and s :=
# sigma_xi^2/(mn). X has full row rank, hence:
#   * M = X^T X/N: eigenvalues eig(F) + s and s (multiplicity N-K-1).
#   * C = S^+ P S^+ is unitarily N B when P = X^T B X, so C is the projector on the class
#     indicators (SCL, rank 2), on the instance indicators E (UCL, rank n), and has eigenvalues
#     1 (class span), 1-beta (E minus class span), 0 (joint).
#   * A whitened direction coming from sample vector z costs N z^T (X X^T)^{-1} z in norm, and
#     W v_j = sqrt(N) sum_k z_k z_k^T (XX^T)^{-1} Phi e_j. Because (X X^T)^{-1} Phi =
#     Phi (F + sI)^{-1}/N, everything reduces to the (K+1)-dim "h-space" z = Phi F^{-1/2} h/sqrt N:
#       cost(h) = h^T (F + sI)^{-1} h / N,      ||W v_j||^2 = sum_k w_k ((A h_k)_j)^2,
#     A = F^{1/2} (F + sI)^{-1}, w_k the C-eigenvalue (1 or 1-beta) of selected direction h_k;
#     directions of E outside colsp(Phi) cost 1/sigma_xi^2 (the most) and align with no feature.
#   * SCL: class span = Phi span{e_0, e_1}: h = F^{1/2} e_0/||.||, e_1, weight 1.
#   * UCL: colsp(Phi) is inside the tied space E: pick the top-p eigenvectors of F (cheapest).
#   * joint: class span with weight 1, then p-2 of the tied 1-beta space F^{1/2}{e_0,e_1}^perp,
#     the cheapest in the (F + sI)^{-1} metric, with weight 1-beta.
# F = [[1, ., mu], [., phi_1^2, .], [mu, ., phi_2^2 + mu^2]] on coordinates (0, 1, 2) and
# phi_k^2/(K-2) on k >= 3: a 2x2 "plane" block (bias, v_2) plus a diagonal. With mu = 0 the
# formulas reduce to ||W v_j|| = sqrt(L_j)/(L_j + s) for every kept coordinate, e.g.
# phi_1/(phi_1^2 + sigma_xi^2/(mn)) for v_1 ("about 1/phi_1").
#
# Exact ties between distinct modes (a measure-zero set) make the min-norm solution non-unique;
# the functions below break them deterministically in favour of the earlier mode in the order
# [v_1, plane top, plane bottom, v_3, ..., v_K] (UCL) / [plane remainder, v_3, ..., v_K] (joint),
# i.e. suppression is only predicted when it is strict.


def noise_level(sigma_xi: ArrayLike, m: ArrayLike, n: ArrayLike) -> Array:
    """s = sigma_xi^2/(m n): the noise eigenvalue of M (Assumption 3.3 wants it o(1))."""
    return jnp.asarray(sigma_xi) ** 2 / (jnp.asarray(m) * jnp.asarray(n))


def _check_K(phi: Array, K: int | None = None) -> int:
    k_phi = phi.shape[-1]
    if K is not None and K != k_phi:
        raise ConfigError(f"invalid phi: must hold K = {K} strengths phi_1..phi_K, got {k_phi}")
    if k_phi < 3:
        raise ConfigError(f"invalid phi: the data model needs K >= 3 features, got {k_phi}")
    return k_phi


def feature_spectrum_L(phi: ArrayLike, K: int) -> Array:
    """L = [1, phi_1^2, phi_2^2, phi_3^2/(K-2), ..., phi_K^2/(K-2)], shape (K+1,) (mu = 0)."""
    phi = jnp.asarray(phi)
    _check_K(phi, K)
    sq = phi**2
    return jnp.concatenate([jnp.ones((1,), sq.dtype), sq[:2], sq[2:] / (K - 2)])


def feature_second_moment(phi: ArrayLike, mu: ArrayLike = 0.0) -> Array:
    """F = E[f f^T] of f = [1; u] over the balanced originals, shape (K+1, K+1).

    diag(L) plus the subclass mean: F[0,2] = F[2,0] = mu, F[2,2] = phi_2^2 + mu^2.
    """
    phi = jnp.asarray(phi)
    K = _check_K(phi)
    F = jnp.diag(feature_spectrum_L(phi, K))
    mu = jnp.asarray(mu, F.dtype)
    return F.at[0, 2].set(mu).at[2, 0].set(mu).at[2, 2].add(mu**2)


class _Modes(NamedTuple):
    G: Array  # (K+1, K+1) orthonormal eigenvectors of F: [g+, e_1, g-, e_3, ..., e_K]
    ev: Array  # (K+1,) eigenvalues in the same order
    A: Array  # F^{1/2} (F + sI)^{-1}
    R: Array  # (F + sI)^{-1}
    u0: Array  # F^{1/2} e_0 / ||F^{1/2} e_0|| (the class-span direction of the bias)
    t: Array  # unit vector of the (0, 2) plane orthogonal to u0


def _modes(phi: ArrayLike, mu: ArrayLike, s: ArrayLike) -> _Modes:
    """Closed-form eigen-decomposition of F (2x2 plane block + diagonal), jit-able."""
    phi = jnp.asarray(phi)
    K = _check_K(phi)
    L = feature_spectrum_L(phi, K)
    mu = jnp.asarray(mu, L.dtype)
    a, b, c = 1.0, mu, L[2] + mu**2
    # Jacobi angle: (cos th, sin th) is the top eigenvector of [[a, b], [b, c]]; with b = 0 it is
    # e_0 if a >= c else e_2, so mu = 0 reproduces the coordinate axes.
    th = 0.5 * jnp.arctan2(2.0 * b, a - c)
    half = jnp.sqrt(((a - c) / 2.0) ** 2 + b**2)
    lam_p, lam_m = (a + c) / 2.0 + half, jnp.maximum((a + c) / 2.0 - half, 0.0)
    G = jnp.eye(K + 1, dtype=L.dtype)
    gp = jnp.zeros(K + 1, L.dtype).at[0].set(jnp.cos(th)).at[2].set(jnp.sin(th))
    gm = jnp.zeros(K + 1, L.dtype).at[0].set(-jnp.sin(th)).at[2].set(jnp.cos(th))
    G = G.at[:, 0].set(gp).at[:, 2].set(gm)
    ev = L.at[0].set(lam_p).at[2].set(lam_m)
    s = jnp.asarray(s, L.dtype)
    A = (G * (jnp.sqrt(ev) / (ev + s))) @ G.T
    R = (G / (ev + s)) @ G.T
    f0 = (G * jnp.sqrt(ev)) @ G[0]  # F^{1/2} e_0, lives in the (0, 2) plane
    u0 = f0 / jnp.linalg.norm(f0)
    t = jnp.zeros(K + 1, L.dtype).at[0].set(-u0[2]).at[2].set(u0[0])
    return _Modes(G, ev, A, R, u0, t)


def _top_mask(scores: Array, slots: ArrayLike, priority: Array) -> Array:
    """Boolean mask of the `slots` largest scores; exact ties go to the lower priority value."""
    gt = scores[None, :] > scores[:, None]
    tie = (scores[None, :] == scores[:, None]) & (priority[None, :] < priority[:, None])
    rank = jnp.sum(gt | tie, axis=1)
    return rank < jnp.asarray(slots)


def _alignment(A: Array, H: Array, weights: Array) -> Array:
    """||W v_j|| = sqrt(sum_k w_k ((A h_k)_j)^2) for modes H = [h_1 ... h_k] (K+1, k)."""
    return jnp.sqrt(jnp.maximum((A @ H) ** 2 @ weights, 0.0))


def m_eigenvalues_feature_block(
    phi: ArrayLike, mu: ArrayLike, sigma_xi: ArrayLike, m: ArrayLike, n: ArrayLike
) -> Array:
    """Non-noise eigenvalues of M (and of M~): eig(F) + s, descending, shape (K+1,).

    The other non-zero eigenvalues of M are s = sigma_xi^2/(mn) (multiplicity mn - K - 1),
    those of M~ are s (multiplicity n - K - 1). mu = 0: L + s, as in THEORY.md section 5.
    """
    phi = jnp.asarray(phi)
    s = noise_level(sigma_xi, m, n)
    modes = _modes(phi, mu, s)
    return jnp.sort(modes.ev)[::-1] + s


def scl_plus_eigenvalues(
    mu: ArrayLike, phi_1: ArrayLike, sigma_xi: ArrayLike, m: ArrayLike, n: ArrayLike
) -> tuple[Array, Array]:
    """Non-zero eigenvalues of M+: a_1 = 1 + mu^2 + s (bias + mu v_2), a_2 = phi_1^2 + s (class).

    Why: M+ = (1/2) sum_c xbar_c xbar_c^T with xbar_c = [1, c phi_1, mu, 0, ...] + a class-noise
    part of squared norm 2 s orthogonal to everything else; the 2x2 Gram matrix of the two class
    means has eigenvalues (|xbar|^2 +- <xbar_+, xbar_->)/2.
    """
    s = noise_level(sigma_xi, m, n)
    return 1.0 + jnp.asarray(mu) ** 2 + s, jnp.asarray(phi_1) ** 2 + s


def predicted_alignment_scl(
    phi: ArrayLike,
    mu: ArrayLike,
    sigma_xi: ArrayLike,
    m: ArrayLike,
    n: ArrayLike,
    p: ArrayLike = 3,
) -> Array:
    """Min-norm SCL ||W v_j||, j = 0..K (good event, balanced, p >= 2; NaN if p < 2).

    ||W v_1|| = phi_1/(phi_1^2 + s); with mu = 0: ||b|| = 1/(1 + s), ||W v_2|| = 0; with mu != 0:
    ||b|| = (phi_2^2 + s)/det, ||W v_2|| = mu s/det, det = (1 + s)(phi_2^2 + mu^2 + s) - mu^2
    (class collapse up to O(s), Thm 4.4/4.7); ||W v_k|| = 0 for k >= 3.
    """
    phi = jnp.asarray(phi)
    s = noise_level(sigma_xi, m, n)
    md = _modes(phi, mu, s)
    e1 = jnp.zeros_like(md.u0).at[1].set(1.0)
    out = _alignment(md.A, jnp.stack([md.u0, e1], axis=1), jnp.ones(2, md.A.dtype))
    return jnp.where(jnp.asarray(p) >= 2, out, jnp.nan)


def predicted_alignment_ucl(
    phi: ArrayLike, mu: ArrayLike, sigma_xi: ArrayLike, m: ArrayLike, n: ArrayLike, p: ArrayLike
) -> Array:
    """Min-norm UCL ||W v_j||, j = 0..K (good event, balanced, p <= n).

    Keeps the top-p eigenvectors of F (with mu = 0: the p largest entries of L, Thm 5.1), each
    kept coordinate with ||W v_j|| = sqrt(L_j)/(L_j + s), the others exactly 0. For p >= K+1
    every feature is kept. Ties: see the module note (v_1 wins exact ties).
    """
    phi = jnp.asarray(phi)
    s = noise_level(sigma_xi, m, n)
    md = _modes(phi, mu, s)
    K = phi.shape[-1]
    priority = jnp.array([1, 0] + list(range(2, K + 1)))  # v_1 first, then plane top, ...
    mask = _top_mask(md.ev, p, priority)
    return _alignment(md.A, md.G, mask.astype(md.A.dtype))


def predicted_alignment_joint(
    phi: ArrayLike,
    mu: ArrayLike,
    sigma_xi: ArrayLike,
    m: ArrayLike,
    n: ArrayLike,
    p: ArrayLike,
    beta: ArrayLike,
) -> Array:
    """Min-norm joint (beta SCL + (1-beta) UCL) ||W v_j||, j = 0..K (good event, p >= 2).

    The class span (bias, v_1) is kept with weight 1; the p-2 remaining slots go to the cheapest
    directions of the tied (1-beta) space, with weight 1-beta. With mu = 0: ||W v_1|| =
    phi_1/(phi_1^2 + s) always, and ||W v_j|| = sqrt(1-beta) sqrt(L_j)/(L_j + s) for the p-2
    largest of {phi_2^2, phi_k^2/(K-2)} (Thm 6.1), 0 for the others.
    """
    phi = jnp.asarray(phi)
    s = noise_level(sigma_xi, m, n)
    md = _modes(phi, mu, s)
    K = phi.shape[-1]
    dt = md.A.dtype
    e1 = jnp.zeros(K + 1, dt).at[1].set(1.0)
    strict = _alignment(md.A, jnp.stack([md.u0, e1], axis=1), jnp.ones(2, dt)) ** 2
    # Tied modes: t (the plane remainder) and e_3..e_K; both diagonalise the compression of R.
    tied_H = jnp.concatenate([md.t[:, None], jnp.eye(K + 1, dtype=dt)[:, 3:]], axis=1)
    cost = jnp.einsum("ik,ij,jk->k", tied_H, md.R, tied_H)
    mask = _top_mask(1.0 / cost, jnp.asarray(p) - 2, jnp.arange(K - 1))
    weights = (1.0 - jnp.asarray(beta, dt)) * mask.astype(dt)
    tied = _alignment(md.A, tied_H, weights) ** 2
    return jnp.where(jnp.asarray(p) >= 2, jnp.sqrt(strict + tied), jnp.nan)


def ucl_full_rank_alignment(feature_moment: ArrayLike, s: ArrayLike) -> Array:
    """Min-norm UCL ||W v_j|| when p >= rank M~ (= n), for ANY good-event instance.

    feature_moment: empirical F^ = Phi^T Phi / N, (K+1, K+1), need not be balanced. Then
    G = M^+ M~ M^+ and ||W v_j||^2 = e_j^T F^ (F^ + sI)^{-2} e_j (same derivation as above with
    the whole instance space E selected).
    """
    F = jnp.asarray(feature_moment)
    Ri = safe_linalg.inv(F + jnp.asarray(s, F.dtype) * jnp.eye(F.shape[0], dtype=F.dtype))
    return jnp.sqrt(jnp.maximum(jnp.diag(Ri @ F @ Ri), 0.0))


def cc_early_condition(mu: ArrayLike, phi_1: ArrayLike) -> Array:
    """Thm 4.5's sufficient condition 1 + mu^2 > phi_1^2 (bool array; usable as a bool)."""
    return 1.0 + jnp.asarray(mu) ** 2 > jnp.asarray(phi_1) ** 2


def fs_dim_suppressed(phi: ArrayLike, K: int, p: ArrayLike) -> Array:
    """Thm 5.1 (mu = 0): phi_1^2 is not among the top p entries of L.

    Ties: suppression is strict, i.e. True iff at least p OTHER entries of L (bias included)
    are strictly larger than phi_1^2 (an exact tie makes the min-norm solution non-unique;
    consistent with :func:`predicted_alignment_ucl`).
    """
    L = feature_spectrum_L(phi, K)
    n_above = jnp.sum(L > L[1])
    return n_above >= jnp.asarray(p)


def joint_condition(phi: ArrayLike, K: int, p: ArrayLike) -> Array:
    """THEORY JOINT row (mu = 0): UCL suppresses v_1 (fs_dim_suppressed) AND phi_2^2 is among
    the top p-2 of {phi_2^2, phi_k^2/(K-2)} (strict for suppression, ties in favour of phi_2^2).

    Under it the min-norm joint minimizer keeps v_1 and v_2 (predicted_alignment_joint).
    """
    L = feature_spectrum_L(phi, K)
    v2_kept = jnp.sum(L[3:] > L[2]) < jnp.asarray(p) - 2
    return fs_dim_suppressed(phi, K, p) & v2_kept


def fs_aug_prediction(
    feature_moment: ArrayLike,
    sigma_xi: ArrayLike,
    m: ArrayLike,
    n: ArrayLike,
    p: ArrayLike,
    *,
    imperfect: bool | ArrayLike,
) -> Array:
    """Thm 5.4: predicted min-norm UCL ||W v_1||.

    imperfect (A' of Def. 5.3, K = omega(n^2), p >= n): 0. Standard augmentation with p >= n:
    the exact good-event value from :func:`ucl_full_rank_alignment` (= phi_1/(phi_1^2 + s) when
    v_1 is uncorrelated with every other feature in the sample, about 1/phi_1). Standard with
    p < n is outside the theorem: NaN.
    """
    s = noise_level(sigma_xi, m, n)
    v1 = ucl_full_rank_alignment(feature_moment, s)[1]
    standard = jnp.where(jnp.asarray(p) >= jnp.asarray(n), v1, jnp.nan)
    return jnp.where(jnp.asarray(imperfect), jnp.zeros_like(v1), standard)


# --------------------------------------------------------------------------------------------
# Early-phase growth (linear regime, dTheta ~ 4 eta Theta P)
# --------------------------------------------------------------------------------------------


def early_growth_factor(eta: ArrayLike, a: ArrayLike, t: ArrayLike) -> Array:
    """(1 + 4 eta a)^t: growth of a mode of P-eigenvalue a over t GD steps while G is small."""
    return (1.0 + 4.0 * jnp.asarray(eta) * jnp.asarray(a)) ** jnp.asarray(t)


def predicted_escape_time(
    eta: ArrayLike, a: ArrayLike, init_scale: ArrayLike, target: ArrayLike
) -> Array:
    """Steps t (real) with init_scale (1 + 4 eta a)^t = target, i.e. log(target/init)/log(1+4ea).

    init_scale is the mode's initial amplitude (sigma_0 sqrt(p/d) for the paper's init); only
    meaningful while the cubic term is negligible (target well below the mode's fixed point).
    """
    return jnp.log(jnp.asarray(target) / jnp.asarray(init_scale)) / jnp.log1p(
        4.0 * jnp.asarray(eta) * jnp.asarray(a)
    )


def mode_gradient_flow(a: ArrayLike, q: ArrayLike, u0: ArrayLike, t: ArrayLike) -> Array:
    """Squared amplitude u = c^2 of one decoupled mode under gradient flow at time t.

    dc/dt = 4 c (a - q^2 c^2)  =>  du/dt = 8 u (a - q^2 u), a logistic equation:
    u(t) = u0 / (e^{-8 a t} + q^2 u0 (1 - e^{-8 a t})/a)  ->  a/q^2 (= (Q^+ P Q^+)_kk).
    a = 0 is the limit u0/(1 + 8 q^2 u0 t). GD with step eta tracks it at time t = steps * eta.
    """
    a, q, u0, t = (jnp.asarray(v) for v in (a, q, u0, t))
    x = -8.0 * a * t
    safe_a = jnp.where(a == 0, 1.0, a)
    ratio = jnp.where(a == 0, 8.0 * t, -jnp.expm1(x) / safe_a)  # (1 - e^{-8at})/a
    return u0 / (jnp.exp(x) + q**2 * u0 * ratio)


def rank_one_escape(
    P: ArrayLike, Q: ArrayLike, amplitude: ArrayLike, eta: float, steps: int
) -> np.ndarray:
    """GD's escape from a tiny init along P's top eigenvector, in the exact rank-one reduction.

    For Theta = c theta^T with ||c|| = 1, GD on L(Theta) = Tr(-2 G P + G Q G Q) keeps c and moves
    the row theta by theta <- theta + 4 eta (theta P - (theta Q theta^T) theta Q): the same map on
    L(theta) = -2 theta P theta^T + (theta Q theta^T)^2. From a small init, every mode but P's
    top one (eigenvalue a_1, eigenvector u_1) is outgrown by a factor (1 + 4 eta a_1)^t /
    (1 + 4 eta a_2)^t, so Theta_t approaches this path, started at theta_0 = amplitude u_1. The
    path is the nonlinear part the linear regime misses: saturation of the top mode and its
    rotation, through Q, away from u_1 (two or more coupled coordinates).

    P, Q: (..., r, r) symmetric (a batch of instances); amplitude: (...,) the grown mode's
    initial size ||Theta_0 u_1|| (it fixes the discrete orbit's phase). Returns (steps + 1, ...,
    r): theta_t for t = 0..steps (the sign of u_1 is arbitrary; use |theta_t|).
    """
    P64, _ = _as_float64(P, "P")
    Q64, _ = _as_float64(Q, "Q")
    amp = np.asarray(amplitude, np.float64)
    if P64.shape != Q64.shape or P64.shape[-1] != P64.shape[-2]:
        raise ConfigError(
            f"invalid P, Q: must be (..., r, r) of one shape, got {P64.shape}, {Q64.shape}"
        )
    if amp.shape != P64.shape[:-2]:
        raise ConfigError(f"invalid amplitude: must have shape {P64.shape[:-2]}, got {amp.shape}")
    if steps < 0:
        raise ConfigError(f"invalid steps: must be >= 0, got {steps}")
    theta = amp[..., None] * np.linalg.eigh(P64)[1][..., -1]
    out = [theta]
    for _ in range(steps):
        tq = np.einsum("...i,...ij->...j", theta, Q64)
        tp = np.einsum("...i,...ij->...j", theta, P64)
        quad = np.einsum("...i,...i->...", tq, theta)[..., None]
        theta = theta + 4.0 * eta * (tp - quad * tq)
        out.append(theta)
    return np.stack(out)


def population_scl_moments(data) -> tuple[np.ndarray, np.ndarray]:
    """(M+, M) of the population in the feature basis [bias, v_1, ..., v_K], float64 numpy.

    M+ = (1/2) sum_{c = +-1} xbar_c xbar_c^T with xbar_c = [1, c phi_1, mu, 0, ...] (its
    non-zero eigenvalues are :func:`scl_plus_eigenvalues` without the class noise s), and
    M = F + s I (:func:`feature_second_moment`, s = :func:`noise_level`). Computed in numpy, so
    float64 whatever jax_enable_x64 says: near the stability limit a discrete GD path is
    sensitive to float32 rounding.

    Args:
      data: a :class:`simdyn.DataConfig`.

    Returns:
      (P, Q), each (K+1, K+1).
    """
    K = data.K
    phi = np.asarray(data.phi, np.float64)
    s = data.sigma_xi**2 / (data.m * data.n)
    L = np.concatenate([[1.0], phi[:2] ** 2, phi[2:] ** 2 / (K - 2)])
    Q = np.diag(L) + s * np.eye(K + 1)
    Q[0, 2] = Q[2, 0] = data.mu
    Q[2, 2] += data.mu**2
    x_plus = np.zeros(K + 1)
    x_plus[[0, 1, 2]] = 1.0, phi[0], data.mu
    x_minus = x_plus * np.where(np.arange(K + 1) == 1, -1.0, 1.0)
    P = 0.5 * (np.outer(x_plus, x_plus) + np.outer(x_minus, x_minus))
    return P, Q


class PeakPrediction(NamedTuple):
    """The population escape path's peak of ||W_t v_j|| per feature j = 0..K (j = 0 the bias):
    ``peak`` and ``step`` (K+1,), NaN for features the path does not reach (they grow through
    other modes); ``path``: the path's |theta_t| per step and feature, (steps + 1, K+1)."""

    peak: np.ndarray
    step: np.ndarray
    path: np.ndarray


def predicted_peak(config) -> PeakPrediction:
    """One call: where and when full-batch SCL GD from a small init peaks, per feature.

    From a small init GD first grows the top mode of M+ (eigenvalue 1 + mu^2, direction bias +
    mu v_2), and Theta_t stays close to rank one along :func:`rank_one_escape`'s path: the row
    rises along u_1 until the quartic term turns it, through M, toward the bias; v_2 (with
    mu > 0) rises and falls with it (docs/theory.md, CC-early). This evaluates that path on the
    population moments of ``config``'s data in the feature basis [bias, v_1, ..., v_K]:
    M+ = (1/2) sum_c xbar_c xbar_c^T with xbar_c = [1, c phi_1, mu, 0, ...] and
    M = F + s I (:func:`population_scl_moments`), started at the typical
    ||Theta_0 u_1|| = sigma_0 sqrt(p / d), for ``train.steps`` steps of size ``train.lr``.
    Sampling noise of one training set, the init's phase and the noise modes are left out, so a
    seed deviates from it by a little (fig2a, 32 seeds: median peak of ||W v_2|| 0.343 at step
    31 for lr = 0.05, predicted 0.343 at step 30).

    Args:
      config: a :class:`simdyn.Config` with train.loss = "scl", full-batch plain GD
        (optimizer "sgd", no batch_size) and a learnt bias.

    Returns:
      A :class:`PeakPrediction`.

    Raises:
      ConfigError: naming the field when the config is outside that setting.
    """
    t, d = config.train, config.data
    if t.loss != "scl":
        raise ConfigError(f"predicted_peak: train.loss={t.loss!r}: only 'scl' is derived")
    if t.optimizer != "sgd" or t.batch_size is not None:
        raise ConfigError(
            "predicted_peak: needs full-batch plain GD (train.optimizer='sgd', "
            f"train.batch_size=None), got optimizer={t.optimizer!r}, batch_size={t.batch_size}"
        )
    if not config.model.bias:
        raise ConfigError("predicted_peak: model.bias=False: the path is derived with a bias")
    P, Q = population_scl_moments(d)
    amp = config.model.sigma_0 * math.sqrt(config.model.p / d.d)
    path = np.abs(rank_one_escape(P, Q, amp, t.lr, t.steps))
    reached = path.max(axis=0) > 0
    peak = np.where(reached, path.max(axis=0), np.nan)
    step = np.where(reached, path.argmax(axis=0).astype(np.float64), np.nan)
    return PeakPrediction(peak, step, path)


# --------------------------------------------------------------------------------------------
# Exact GD references (numpy, float64)
# --------------------------------------------------------------------------------------------


def _np_grad(Theta: np.ndarray, P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    TQ = Theta @ Q
    return -4.0 * Theta @ P + 4.0 * (TQ @ Theta.T) @ TQ


def gd_reference_trajectory(
    Theta0: ArrayLike,
    P: ArrayLike,
    Q: ArrayLike,
    eta: float,
    steps: int,
    record_every: int = 1,
) -> np.ndarray:
    """Plain float64 loop Theta <- Theta - eta grad L(Theta); the slow reference.

    Returns (T, p, D): Theta_t for t = 0, record_every, 2 record_every, ... <= steps
    (T = steps // record_every + 1; Theta_0 included).
    """
    Theta, _ = _as_float64(Theta0, "Theta0")
    P64, _ = _as_float64(P, "P")
    Q64, _ = _as_float64(Q, "Q")
    if record_every < 1:
        raise ConfigError(f"invalid record_every: must be >= 1, got {record_every}")
    out = [Theta.copy()]
    for t in range(1, steps + 1):
        Theta = Theta - eta * _np_grad(Theta, P64, Q64)
        if t % record_every == 0:
            out.append(Theta.copy())
    return np.stack(out)


def commuting_mode_solution(
    Theta0: ArrayLike,
    P: ArrayLike,
    Q: ArrayLike,
    eta: float,
    steps: int,
    record_every: int = 1,
    *,
    basis: ArrayLike | None = None,
    atol: float = 1e-10,
) -> np.ndarray:
    """Exact GD by decoupled scalar recursions, (T, p, D) as :func:`gd_reference_trajectory`.

    Case covered: P = U diag(a) U^T and Q = U diag(q) U^T share the orthonormal eigenbasis U
    (``basis``, default identity: P, Q diagonal), and the columns theta_k of Theta0 U are mutually
    orthogonal (e.g. p = 1 with a single non-zero coordinate, or at most one non-zero entry per
    row and column). Then (Theta Q Theta^T)(Theta Q) U e_k = q_k^2 ||theta_k||^2 theta_k, so every
    column keeps its direction and columns stay orthogonal; the amplitude c_k of
    theta_k = c_k theta_k(0)/||theta_k(0)|| follows exactly
        c <- c (1 + 4 eta a_k - 4 eta q_k^2 c^2)
    (gradient flow: :func:`mode_gradient_flow`). ConfigError if the case does not apply.
    """
    T0, _ = _as_float64(Theta0, "Theta0")
    P64, _ = _as_float64(P, "P")
    Q64, _ = _as_float64(Q, "Q")
    D = P64.shape[0]
    U = np.eye(D) if basis is None else _as_float64(basis, "basis")[0]
    scale = max(1.0, float(np.abs(P64).max()), float(np.abs(Q64).max()))
    if np.abs(U.T @ U - np.eye(D)).max() > atol:
        raise ConfigError("invalid basis: must be orthonormal (U^T U = I)")
    Pd, Qd = U.T @ P64 @ U, U.T @ Q64 @ U
    a, q = np.diag(Pd).copy(), np.diag(Qd).copy()
    if np.abs(Pd - np.diag(a)).max() > atol * scale:
        raise ConfigError("invalid P: must be diagonal in the given basis")
    if np.abs(Qd - np.diag(q)).max() > atol * scale:
        raise ConfigError("invalid Q: must be diagonal in the given basis")
    cols = T0 @ U
    c0 = np.linalg.norm(cols, axis=0)
    gram = cols.T @ cols
    off = gram - np.diag(np.diag(gram))
    if np.abs(off).max(initial=0.0) > atol * max(1.0, float(np.abs(gram).max(initial=0.0))):
        raise ConfigError(
            "invalid Theta0: the columns of Theta0 @ basis must be mutually orthogonal"
        )
    dirs = np.divide(cols, c0[None, :], out=np.zeros_like(cols), where=c0[None, :] > 0)
    c = c0.copy()
    out = [c.copy()]
    for t in range(1, steps + 1):
        c = c * (1.0 + 4.0 * eta * a - 4.0 * eta * q**2 * c**2)
        if t % record_every == 0:
            out.append(c.copy())
    amps = np.stack(out)  # (T, D)
    return np.einsum("pk,tk,jk->tpj", dirs, amps, U)


def mode_table(P: ArrayLike, Q: ArrayLike, basis: ArrayLike | None = None) -> np.ndarray:
    """(D, 3) rows [a_k, q_k, a_k/q_k^2 (0 if q_k = 0)] of commuting P, Q in ``basis``.

    a_k/q_k^2 is the fixed point of the mode's squared amplitude (the diagonal of Q^+ P Q^+).
    """
    P64, _ = _as_float64(P, "P")
    Q64, _ = _as_float64(Q, "Q")
    U = np.eye(P64.shape[0]) if basis is None else _as_float64(basis, "basis")[0]
    a, q = np.diag(U.T @ P64 @ U), np.diag(U.T @ Q64 @ U)
    fp = np.divide(a, q**2, out=np.zeros_like(a), where=q != 0)
    return np.stack([a, q, fp], axis=1)


__all__ = [
    "MinNormSolution",
    "MinimizerResidual",
    "NoncollapsingSolution",
    "PSDRange",
    "cc_early_condition",
    "commuting_mode_solution",
    "default_rtol",
    "distance_to_min_norm",
    "early_growth_factor",
    "feature_alignment",
    "feature_second_moment",
    "feature_spectrum_L",
    "fs_aug_prediction",
    "fs_dim_suppressed",
    "gd_reference_trajectory",
    "gram_distance",
    "is_global_minimizer",
    "joint_condition",
    "loss_grad",
    "loss_value",
    "m_eigenvalues_feature_block",
    "min_loss",
    "min_norm_minimizer",
    "minimizer_residual",
    "minimizer_residuals",
    "mode_gradient_flow",
    "mode_table",
    "noise_level",
    "noncollapsing_scl_minimizer",
    "numerical_rank",
    "predicted_alignment_joint",
    "predicted_alignment_scl",
    "predicted_alignment_ucl",
    "predicted_escape_time",
    "psd_pinv",
    "psd_range",
    "psd_sqrt",
    "psd_sqrt_pinv",
    "rank_one_escape",
    "scl_plus_eigenvalues",
    "tie_scan",
    "ucl_full_rank_alignment",
]
