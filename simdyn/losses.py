"""Spectral contrastive losses (HaoChen et al. 2021) as used by Xue et al. (2023), sections 3.4, 6.

    L_UCL   = -2 E_{i, x, x+ in A_i}[f(x)^T f(x+)] + E_{x, x-}[(f(x)^T f(x-))^2]
    L_SCL   = -2 E_{c, x, x+ in S_c}[f(x)^T f(x+)] + E_{x, x-}[(f(x)^T f(x-))^2]
    L_joint = beta L_SCL + (1 - beta) L_UCL

Three forms of the same function:

* :func:`pairwise_loss` - the literal double sums over pairs of embeddings (reference, O(N^2 p)).
* :func:`sample_loss` - the same expectations regrouped per point, O(N p^2) on embeddings.
* :func:`matrix_loss` - Tr(-2 Theta^T Theta P + Theta^T Theta M Theta^T Theta M), with
  :func:`matrix_gradient` = -4 Theta P + 4 (Theta M Theta^T)(Theta M).

``beta`` is 1 for SCL and 0 for UCL, so one code path covers all three losses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from simdyn.config import ConfigError
from simdyn.moments import Products, class_weights

Array = jax.Array


# The losses whose SCL weight is fixed by their name (train.beta is used only by "joint").
STATIC_BETA: dict[str, float] = {"scl": 1.0, "ucl": 0.0}


def loss_beta(loss: str, beta: float | Array) -> float | Array:
    """Weight of the SCL term for a loss name."""
    if loss in STATIC_BETA:
        return STATIC_BETA[loss]
    if loss == "joint":
        return beta
    raise ConfigError(f"invalid loss={loss!r}: must be one of ('scl', 'ucl', 'joint')")


def pairwise_loss(emb: Array, y: Array, beta: float | Array) -> Array:
    """Literal pair sums. emb: (n, m, p) embeddings of the m augmentations of n originals; y: (n,).

    Positives (UCL): original uniform, x, x+ uniform among its m (x = x+ allowed).
    Positives (SCL): class uniform among those present, x, x+ uniform among the class's points.
    Negatives: x, x- uniform over all N points (identical pairs included).
    """
    n, m, p = emb.shape
    flat = emb.reshape((n * m, p))
    gram = flat @ flat.T  # (N, N)
    negatives = jnp.mean(gram**2)
    same_orig = jnp.repeat(jnp.repeat(jnp.eye(n, dtype=emb.dtype), m, 0), m, 1)
    pos_ucl = jnp.sum(gram * same_orig) / (n * m * m)
    yy = jnp.repeat(y, m)
    w = class_weights(y, emb.dtype)
    pos_scl: float | Array = 0.0
    for ci, c in enumerate((1, -1)):
        mask = (yy == c).astype(emb.dtype)
        cnt = jnp.maximum(mask.sum(), 1.0)
        pos_scl = pos_scl + w[ci] * (mask @ gram @ mask) / cnt**2
    positives = beta * pos_scl + (1 - beta) * pos_ucl
    return -2 * positives + negatives


def sample_loss(emb: Array, y: Array, beta: float | Array) -> Array:
    """Per-point form of the same expectations, O(N p^2). emb: (n, m, p); y: (n,)."""
    n, m, p = emb.shape
    flat = emb.reshape((n * m, p))
    cov = flat.T @ flat / (n * m)  # (p, p): E[(f^T f-)^2] = ||cov||_F^2
    negatives = jnp.sum(cov**2)
    mean_i = emb.mean(axis=1)  # (n, p)
    pos_ucl = jnp.mean(jnp.sum(mean_i**2, axis=-1))
    onehot = jnp.stack([y == 1, y == -1], axis=-1).astype(emb.dtype)  # (n, 2)
    mean_c = onehot.T @ mean_i / jnp.maximum(onehot.sum(0), 1.0)[:, None]  # (2, p)
    pos_scl = jnp.sum(class_weights(y, emb.dtype) * jnp.sum(mean_c**2, axis=-1))
    positives = beta * pos_scl + (1 - beta) * pos_ucl
    return -2 * positives + negatives


def matrix_loss(theta: Array, m: Array, p_mat: Array) -> Array:
    """Tr(-2 Theta^T Theta P + Theta^T Theta M Theta^T Theta M) for dense M, P (D, D)."""
    tmt = theta @ m @ theta.T
    return -2 * jnp.trace(theta @ p_mat @ theta.T) + jnp.sum(tmt**2)


def loss_from_products(theta: Array, prods: Products, beta: float | Array) -> Array:
    """Matrix-form loss from the products Theta M, Theta M+, Theta M~ (any representation)."""
    theta_p = beta * prods.theta_m_plus + (1 - beta) * prods.theta_m_tilde
    tmt = prods.theta_m @ theta.T
    return -2 * jnp.sum(theta_p * theta) + jnp.sum(tmt**2)


def gradient_from_products(theta: Array, prods: Products, beta: float | Array) -> Array:
    """Closed-form gradient -4 Theta P + 4 (Theta M Theta^T)(Theta M). Returns (p, D)."""
    theta_p = beta * prods.theta_m_plus + (1 - beta) * prods.theta_m_tilde
    tmt = prods.theta_m @ theta.T
    return -4 * theta_p + 4 * tmt @ prods.theta_m


def matrix_gradient(theta: Array, m: Array, p_mat: Array) -> Array:
    """Closed-form gradient for dense M, P."""
    tm = theta @ m
    return -4 * theta @ p_mat + 4 * (tm @ theta.T) @ tm
