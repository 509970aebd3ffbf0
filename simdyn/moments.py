"""Exact representations of the training objective's moment matrices and their products.

Over the N = m n augmented points x~ (bias folded, D = d + 1):

    M   = (1/N) sum_i x~_i x~_i^T                  second moment
    M+  = (1/2) sum_c xbar_c xbar_c^T              class means (SCL)
    M~  = (1/n) sum_i xbar_i xbar_i^T              per-original means (UCL)
    P   = beta M+ + (1 - beta) M~                  (beta = 1: SCL, 0: UCL)

Two representations give Theta M and Theta P:

* :class:`DenseMoments` - D x D matrices, O(p D^2) per product. The reference matrix form.
* :class:`StructuredMoments` - exact structure of basis noise (one noise coordinate per point):
  M is an ARROW matrix (dense (K+1)x(K+1) block on the feature block F, a (K+1) x D coupling,
  and a diagonal); M+ is rank 2 with dense factors xbar_c; M~ has sparse factors (K+1+m s
  non-zeros per original). Products cost O(p (K+1) D + p n (K+1+m s)) and memory is
  O((K+1) D + n (K+1+m s)) per seed; no D x D array is ever formed.

Both are built straight from sparse :class:`~simdyn.data.Points` and are tested against each
other and against the per-point sample form.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from simdyn.data import Labels, Points, to_dense

Array = jax.Array


def class_weights(y: Array, dtype) -> Array:
    """(2,) weights of classes (+1, -1) in the SCL positive term: 1/2 each when both occur.

    In a minibatch that holds one class only, that class gets weight 1 (positives are formed
    inside the batch; an absent class contributes nothing).
    """
    present = jnp.stack([jnp.any(y == 1), jnp.any(y == -1)]).astype(dtype)
    return present / jnp.maximum(present.sum(), 1.0)


def _class_onehot(y: Array, dtype) -> Array:
    """(n, 2) indicator of y == +1, y == -1."""
    return jnp.stack([y == 1, y == -1], axis=-1).astype(dtype)


class DenseMoments(NamedTuple):
    """M, M+ and M~ as dense (D, D) matrices."""

    m: Array
    m_plus: Array
    m_tilde: Array


class StructuredMoments(NamedTuple):
    """Exact factored form of the moments for sparse points.

    M = E_F^T a E_F + E_F^T c + c^T E_F + diag(diag), with E_F the (K+1) x D selector of the
    feature block:
      a: (K+1, K+1) = (1/N) sum f f^T over the feature parts f.
      c: (K+1, D)   = (1/N) sum f (noise part)^T  (cross terms; noise may hit F coordinates).
      diag: (D,)    = (1/N) sum (noise part)^2 elementwise. Exact only when each point has one
                      noise entry, or its entries sit on distinct coordinates with no cross terms
                      between them, which is what ``supports_structured`` guarantees.
    M+ = (1/2) sum_c w_c' xbar_c xbar_c^T with class_means (2, D) pre-scaled by sqrt(weight).
    M~ = (1/n) sum_i xbar_i xbar_i^T with the xbar_i sparse: orig_features (n, K+1),
      orig_noise_idx (n, m s), orig_noise_val (n, m s) (already divided by m and by sqrt(n)).
    """

    a: Array
    c: Array
    diag: Array
    class_means: Array
    orig_features: Array
    orig_noise_idx: Array
    orig_noise_val: Array


def dense_moments(points: Points, labels: Labels, d: int) -> DenseMoments:
    """Reference dense moments from points (n, m) and labels (n,)."""
    x = to_dense(points, d)  # (n, m, D)
    n, m, dd = x.shape
    flat = x.reshape((n * m, dd))
    m_mat = flat.T @ flat / (n * m)
    xbar_i = x.mean(axis=1)  # (n, D)
    m_tilde = xbar_i.T @ xbar_i / n
    onehot = _class_onehot(labels.y, x.dtype)  # (n, 2)
    xbar_c = (onehot.T @ xbar_i) / jnp.maximum(onehot.sum(0), 1.0)[:, None]  # (2, D)
    w = class_weights(labels.y, x.dtype)
    m_plus = (xbar_c * w[:, None]).T @ xbar_c
    return DenseMoments(m_mat, m_plus, m_tilde)


def structured_moments(points: Points, labels: Labels, d: int) -> StructuredMoments:
    """Arrow / factored moments from sparse points (n, m); never forms a D x D array."""
    f = points.features  # (n, m, K+1)
    n, m, k1 = f.shape
    dtype = f.dtype
    big_n = n * m
    ff = f.reshape((big_n, k1))
    idx = points.noise_idx.reshape((big_n, -1))
    val = points.noise_val.reshape((big_n, -1))
    a = ff.T @ ff / big_n
    # Cross term: column idx of c gathers f * val / N (scatter-add handles repeated coords).
    contrib = (ff[:, :, None] * val[:, None, :]) / big_n  # (N, K+1, s)
    c = jnp.zeros((k1, d + 1), dtype)
    c = c.at[:, idx.reshape(-1)].add(jnp.moveaxis(contrib, 1, 0).reshape((k1, -1)))
    diag = jnp.zeros((d + 1,), dtype).at[idx.reshape(-1)].add((val**2).reshape(-1) / big_n)

    # Per-original means xbar_i: features mean and the m s noise entries scaled by 1/m.
    s = idx.shape[-1]
    scale_n = 1.0 / jnp.sqrt(jnp.asarray(n, dtype))
    orig_features = f.mean(axis=1) * scale_n
    orig_idx = points.noise_idx.reshape((n, m * s))
    orig_val = points.noise_val.reshape((n, m * s)) / m * scale_n

    # Class means, dense (2, D): sum over the originals of the class / count.
    onehot = _class_onehot(labels.y, dtype)  # (n, 2)
    counts = jnp.maximum(onehot.sum(0), 1.0)  # (2,)
    feat_c = onehot.T @ f.mean(axis=1) / counts[:, None]  # (2, K+1)
    means = jnp.zeros((2, d + 1), dtype).at[:, :k1].set(feat_c)
    noise_mean = points.noise_val.reshape((n, m * s)) / m
    per_point = (onehot[:, None, :] / counts) * noise_mean[..., None]  # (n, m s, 2)
    means = means.at[:, orig_idx.reshape(-1)].add(per_point.reshape((-1, 2)).T)
    w = class_weights(labels.y, dtype)
    class_means = means * jnp.sqrt(w)[:, None]
    return StructuredMoments(a, c, diag, class_means, orig_features, orig_idx, orig_val)


def _sparse_rows_times(theta: Array, feats: Array, idx: Array, val: Array) -> Array:
    """Theta X^T for sparse rows X (r, D) given as feats (r, K+1), idx/val (r, t). -> (p, r)."""
    k1 = feats.shape[-1]
    return theta[:, :k1] @ feats.T + jnp.einsum("prt,rt->pr", theta[:, idx], val)


def _times_sparse_rows(g: Array, feats: Array, idx: Array, val: Array, dim: int) -> Array:
    """G X for sparse rows X (r, D) and G (p, r). -> (p, D) (scatter-add of the noise part)."""
    k1 = feats.shape[-1]
    out = jnp.zeros((g.shape[0], dim), g.dtype).at[:, :k1].set(g @ feats)
    contrib = g[:, :, None] * val[None, :, :]  # (p, r, t)
    return out.at[:, idx.reshape(-1)].add(contrib.reshape((g.shape[0], -1)))


class Products(NamedTuple):
    """Theta M, Theta M+, Theta M~, each (p, D)."""

    theta_m: Array
    theta_m_plus: Array
    theta_m_tilde: Array


def dense_products(
    mom: DenseMoments, theta: Array, *, plus: bool = True, tilde: bool = True
) -> Products:
    """Theta M, Theta M+, Theta M~ for dense moments; a product not asked for is zeros."""
    zeros = jnp.zeros_like(theta)
    return Products(
        theta @ mom.m,
        theta @ mom.m_plus if plus else zeros,
        theta @ mom.m_tilde if tilde else zeros,
    )


def structured_products(
    mom: StructuredMoments, theta: Array, *, plus: bool = True, tilde: bool = True
) -> Products:
    """Exact Theta M, Theta M+, Theta M~ in O(p (K+1) D + p n (K+1+m s)).

    plus / tilde (static): compute Theta M+ / Theta M~ (else zeros). A loss with a static weight
    (SCL: beta = 1, UCL: beta = 0) skips the product it multiplies by zero; for SCL that is the
    gathers and scatter-adds of Theta M~, the bulk of the step.
    """
    k1 = mom.a.shape[0]
    theta_f = theta[:, :k1]  # (p, K+1)
    # Arrow: Theta M = (Theta_F a) E_F + Theta_F c + (Theta c^T) E_F + Theta diag.
    tm = theta * mom.diag[None, :] + theta_f @ mom.c
    tm = tm.at[:, :k1].add(theta_f @ mom.a + theta @ mom.c.T)
    zeros = jnp.zeros_like(theta)
    tmp = (theta @ mom.class_means.T) @ mom.class_means if plus else zeros  # rank 2
    if not tilde:
        return Products(tm, tmp, zeros)
    proj = _sparse_rows_times(theta, mom.orig_features, mom.orig_noise_idx, mom.orig_noise_val)
    tmt = _times_sparse_rows(
        proj, mom.orig_features, mom.orig_noise_idx, mom.orig_noise_val, theta.shape[1]
    )
    return Products(tm, tmp, tmt)


def products(
    mom: DenseMoments | StructuredMoments, theta: Array, *, plus: bool = True, tilde: bool = True
) -> Products:
    """Dispatch on the representation (plus / tilde: see :func:`structured_products`)."""
    if isinstance(mom, StructuredMoments):
        return structured_products(mom, theta, plus=plus, tilde=tilde)
    return dense_products(mom, theta, plus=plus, tilde=tilde)


def structured_to_dense(mom: StructuredMoments) -> DenseMoments:
    """Expand the structured form to dense matrices (tests and small instances only)."""
    k1, dim = mom.c.shape
    m_mat = jnp.diag(mom.diag)
    m_mat = m_mat.at[:k1, :].add(mom.c)
    m_mat = m_mat.at[:, :k1].add(mom.c.T)
    m_mat = m_mat.at[:k1, :k1].add(mom.a)
    m_plus = mom.class_means.T @ mom.class_means
    n = mom.orig_features.shape[0]
    xbar = jnp.zeros((n, dim), mom.a.dtype).at[:, :k1].set(mom.orig_features)
    xbar = xbar.at[jnp.arange(n)[:, None], mom.orig_noise_idx].add(mom.orig_noise_val)
    return DenseMoments(m_mat, m_plus, xbar.T @ xbar)
