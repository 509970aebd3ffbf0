"""The projected form of full-batch GD: train only the part of Theta on the span of the data.

Why the rest never moves. Every moment matrix is a sum of outer products of training points,
so colsp(M+), colsp(M~) and colsp(M) all lie in S = span{x~_1, ..., x~_N} (in fact colsp(P)
is inside colsp(M) = S: M+ and M~ are averages of outer products of MEANS of points, and a
mean of points lies in their span). The GD gradient

    G(Theta) = -4 Theta P + 4 (Theta M Theta^T)(Theta M)

is a sum of matrices of the form A P and B M, so every row of G lies in colsp(P) + colsp(M) = S
(P and M are symmetric: row space = column space). Hence for any orthonormal U (D x r) whose
columns span a space containing S, G (I - U U^T) = 0: the component Theta (I - U U^T) is frozen
at its init, and GD acts on Theta_r = Theta U (p x r) alone. The loss and gradient depend on
Theta only through Theta_r, because M = U M_r U^T and P = U P_r U^T with M_r = U^T M U,
P_r = U^T P U:

    G(Theta) = G_r(Theta_r) U^T,   G_r(Z) = -4 Z P_r + 4 (Z M_r Z^T)(Z M_r)     (p x r)
    L(Theta) = -2 Tr(Z P_r Z^T) + ||Z M_r Z^T||_F^2 with Z = Theta_r.

So one GD step costs O(p r^2) instead of O(p D^2), and Theta_t = Theta_0 + (Theta_{r,t} -
Theta_0 U) U^T reconstructs everything (the feature alignments ||Theta_t v_j|| included) exactly.
U needs only to CONTAIN S, so it may be larger than S (e.g. padded); exactness does not depend on
the rank of the data.

Two bases:

* :class:`CoordinateBasis` (sparse noise: basis noise, imperfect augmentation): every point is a
  combination of e_0..e_K (bias, features) and its noise coordinates, so U = the coordinate
  columns e_j for j in {0..K} and the distinct noise coordinates hit. U is a column selection:
  Theta_r = Theta[:, coords], no arithmetic, and Theta's other columns are untouched bit for bit.
  r must be static for jit/vmap, so the coordinates are padded to r_max = min(D, K + 1 + N s)
  with ZERO columns (``valid`` = False). A zero column of U gives zero rows and columns of
  M_r and P_r, hence a zero gradient column, and Theta_r's padded columns start at Theta_0 * 0 = 0
  and stay exactly 0 (tested).
* :class:`DenseBasis` (Gaussian noise: every point is dense): U from a Householder QR of the
  dense data X^T (D x N), r = min(D, N). QR gives an orthonormal U with X^T = U R, so
  range(U) contains S even when X is rank deficient. Building it costs O(D N^2) once per seed;
  moving between Theta and Theta_r costs O(p D r) per product.

Reference path: the dense matrix form (:func:`simdyn.moments.dense_moments`); tests tie the
projected, dense and structured trajectories together in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from simdyn import safe_linalg
from simdyn.config import DataConfig
from simdyn.data import Labels, Points, to_dense
from simdyn.losses import loss_from_products
from simdyn.moments import Products, dense_moments

Array = jax.Array


class CoordinateBasis(NamedTuple):
    """U = the columns e_{coords[j]} of the identity (zero where ``valid`` is False).

    coords: (r,) int32 sorted input coordinates, coords[:K+1] = 0..K (the feature block comes
      first because it holds the smallest coordinates); padded entries point at coordinate 0.
    valid: (r,) bool, False on padding columns.
    """

    coords: Array
    valid: Array


class DenseBasis(NamedTuple):
    """U: (D, r) with orthonormal columns spanning (at least) the data."""

    u: Array


Basis = CoordinateBasis | DenseBasis


class ProjectedMoments(NamedTuple):
    """The GD objective restricted to the data span.

    basis: U (see :data:`Basis`).
    m: (r, r) M_r = U^T M U.
    p_mat: (r, r) P_r = U^T (beta M+ + (1 - beta) M~) U.
    """

    basis: Basis
    m: Array
    p_mat: Array


def coordinate_basis(points: Points, d: int) -> CoordinateBasis:
    """Coordinates {0..K} and every noise coordinate hit, padded to r_max. points: (n, m)."""
    k1 = points.features.shape[-1]
    hit = points.noise_idx.reshape(-1)
    dim = d + 1
    r = min(dim, k1 + hit.shape[0])
    everything = jnp.concatenate([jnp.arange(k1, dtype=hit.dtype), hit])
    # Sorted and distinct; the sentinel `dim` fills the tail and marks padding.
    coords = jnp.unique(everything, size=r, fill_value=dim)
    valid = coords < dim
    return CoordinateBasis(jnp.where(valid, coords, 0).astype(jnp.int32), valid)


def dense_basis(points: Points, d: int) -> DenseBasis:
    """Orthonormal U (D, min(D, N)) with X^T = U R (Householder QR of the dense data)."""
    x = to_dense(points, d)
    flat = x.reshape((-1, x.shape[-1]))  # (N, D)
    u = safe_linalg.qr_q(flat.T)
    return DenseBasis(u)


def data_basis(points: Points, data: DataConfig) -> Basis:
    """Coordinates for sparse noise, QR for Gaussian; r = :func:`simdyn.cost.projected_rank`."""
    if data.noise == "gaussian":
        return dense_basis(points, data.d)
    return coordinate_basis(points, data.d)


def project_points(points: Points, basis: Basis, d: int) -> Array:
    """Z = X U: the points in the coordinates of U. points (...); returns (..., r)."""
    if isinstance(basis, DenseBasis):
        return to_dense(points, d) @ basis.u
    k1 = points.features.shape[-1]
    lead = points.features.shape[:-1]
    r = basis.coords.shape[0]
    # The padding sits after every real coordinate (sentinel D sorts last), so searching the
    # real coordinates finds each noise coordinate's column; coords[:K+1] = 0..K.
    keys = jnp.where(basis.valid, basis.coords, d + 1)
    pos = jnp.searchsorted(keys, points.noise_idx)
    flat_f = points.features.reshape((-1, k1))
    flat_pos = pos.reshape((flat_f.shape[0], -1))
    flat_val = points.noise_val.reshape((flat_f.shape[0], -1))
    z = jnp.zeros((flat_f.shape[0], r), flat_f.dtype).at[:, :k1].set(flat_f)
    z = z.at[jnp.arange(flat_f.shape[0])[:, None], flat_pos].add(flat_val)
    return z.reshape(lead + (r,))


def projected_moments(
    points: Points, labels: Labels, data: DataConfig, beta: Array
) -> ProjectedMoments:
    """U, M_r and P_r for training points (n, m) and labels (n,). Never forms a D x D array.

    The projected moments ARE the dense moments of the projected points Z = X U (M_r = Z^T Z / N
    and likewise for M+, M~), so they reuse the reference formulas of
    :func:`~simdyn.moments.dense_moments` on Z (stored as a dense "feature block" of width r).
    """
    basis = data_basis(points, data)
    z = project_points(points, basis, data.d)  # (n, m, r)
    r = z.shape[-1]
    empty_idx = jnp.zeros(z.shape[:-1] + (0,), jnp.int32)
    as_points = Points(z, empty_idx, jnp.zeros(z.shape[:-1] + (0,), z.dtype))
    mom = dense_moments(as_points, labels, r - 1)
    p_mat = beta * mom.m_plus + (1 - beta) * mom.m_tilde
    return ProjectedMoments(basis, mom.m, p_mat)


def reduce(theta: Array, basis: Basis) -> Array:
    """Theta_r = Theta U. theta (p, D) -> (p, r)."""
    if isinstance(basis, DenseBasis):
        return theta @ basis.u
    return jnp.where(basis.valid, theta[:, basis.coords], 0)


def lift(g: Array, basis: Basis, dim: int) -> Array:
    """G U^T: a (p, r) array back in input coordinates, (p, D); zero off the span."""
    if isinstance(basis, DenseBasis):
        return g @ basis.u.T
    g = jnp.where(basis.valid, g, 0)  # padding columns add 0 to coordinate 0: exact
    return jnp.zeros((g.shape[0], dim), g.dtype).at[:, basis.coords].add(g)


def reduced_loss_and_grad(obj: ProjectedMoments, theta_r: Array) -> tuple[Array, Array]:
    """(L, G_r) at Theta_r (p, r): two r x r products, O(p r^2 + p^2 r)."""
    theta_m = theta_r @ obj.m
    theta_p = theta_r @ obj.p_mat
    # loss/gradient_from_products combine beta Theta M+ + (1 - beta) Theta M~; P_r already is
    # that combination, so pass it in both slots (any beta then gives Theta P_r).
    prods = Products(theta_m, theta_p, theta_p)
    tmt = theta_m @ theta_r.T
    loss = loss_from_products(theta_r, prods, 1.0)
    grad = -4 * theta_p + 4 * tmt @ theta_m
    return loss, grad


def loss_and_grad(obj: ProjectedMoments, theta: Array) -> tuple[Array, Array]:
    """(L, G) for the full Theta (p, D): reduce, reduced gradient, lift. Exact."""
    loss, g = reduced_loss_and_grad(obj, reduce(theta, obj.basis))
    return loss, lift(g, obj.basis, theta.shape[1])


def feature_alignment(theta_r: Array, theta0: Array, basis: Basis, num_features: int) -> Array:
    """||Theta v_j|| for j = 0..K from Theta_r and the frozen init, without forming Theta.

    Theta v_j = Theta_0 v_j + (Theta_r - Theta_0 U) U^T v_j. Returns (K + 1,).
    """
    if isinstance(basis, CoordinateBasis):
        # U^T v_j = e_j and U e_j = v_j: the frozen part cancels exactly.
        return jnp.linalg.norm(theta_r[:, : num_features + 1], axis=0)
    rows = basis.u[: num_features + 1].T  # (r, K + 1): column j = U^T v_j
    cols = theta0[:, : num_features + 1] + (theta_r - reduce(theta0, basis)) @ rows
    return jnp.linalg.norm(cols, axis=0)
