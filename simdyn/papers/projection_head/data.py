"""The projection-head paper's data (Def. 3.1, 3.2, 4.1 and the downstream task of Sec. 3.1.3).

Pure JAX functions of a PRNG key; shapes in the docstrings (n samples, d coordinates).

* :func:`sample_inputs` (Def. 3.1): x_i = s_i phi_i with independent uniform signs s_i.
* :func:`augment` (Def. 3.2): for each coordinate independently, with probability alpha_i the
  sign is RE-DRAWN uniformly (so it survives with probability 1 - alpha_i / 2 and E[A(x) | x] =
  (1 - alpha) x); then Gaussian noise of variance sigma^2 is added. The appendix's moment
  (1 - 2 alpha)^2 phi^2 belongs to a sign FLIP with probability alpha instead
  (:func:`augment_flip`, kept only as the near-miss reading a check must reject).
* :func:`positive_pairs`: two independent augmentations of each input.
* :func:`sample_supervised` (Def. 4.1): x = [y, y_sub, rest], four balanced subclasses, the rest
  uniform on {+-rest_scale}.
* :func:`sample_downstream` (Sec. 3.1.3): x_i uniform on {+-phihat_i}, label sign(x_j*).

The population moments these sample from are
:func:`simdyn.papers.projection_head.closed_forms.population_moments`; the tests compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from simdyn.config import ConfigError

Array = jax.Array


def _signs(key: Array, shape: tuple[int, ...], dtype) -> Array:
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0).astype(dtype)


def sample_inputs(key: Array, n: int, phi: ArrayLike | Sequence[float], dtype=jnp.float32) -> Array:
    """Def. 3.1: n inputs x (n, d) with x_i = s_i phi_i, s_i uniform on {-1, +1}."""
    phi = jnp.asarray(phi, dtype)
    return _signs(key, (n, phi.shape[0]), dtype) * phi


def augment(key: Array, x: Array, alpha: ArrayLike | Sequence[float], sigma: float) -> Array:
    """Def. 3.2: re-draw the sign of coordinate i with probability alpha_i, add N(0, sigma^2).

    Args:
      key: PRNG key.
      x: (..., d) inputs.
      alpha: (d,) re-draw probabilities.
      sigma: noise standard deviation.

    Returns:
      (..., d) one augmentation of each input.
    """
    k_pick, k_sign, k_noise = jax.random.split(key, 3)
    alpha = jnp.asarray(alpha, x.dtype)
    redraw = jax.random.bernoulli(k_pick, alpha, x.shape)
    fresh = _signs(k_sign, x.shape, x.dtype) * jnp.abs(x)
    kept = jnp.where(redraw, fresh, x)
    return kept + sigma * jax.random.normal(k_noise, x.shape, x.dtype)


def augment_flip(key: Array, x: Array, alpha: ArrayLike | Sequence[float], sigma: float) -> Array:
    """The near-miss reading (App. A.2, eq. 3): FLIP the sign with probability alpha_i."""
    k_pick, k_noise = jax.random.split(key)
    flip = jax.random.bernoulli(k_pick, jnp.asarray(alpha, x.dtype), x.shape)
    return jnp.where(flip, -x, x) + sigma * jax.random.normal(k_noise, x.shape, x.dtype)


class PositivePairs(NamedTuple):
    """Two independent augmentations of the same inputs: first, second (n, d)."""

    first: Array
    second: Array


def positive_pairs(
    key: Array, x: Array, alpha: ArrayLike | Sequence[float], sigma: float
) -> PositivePairs:
    """Two independent Def. 3.2 augmentations of each row of x (n, d)."""
    k1, k2 = jax.random.split(key)
    return PositivePairs(augment(k1, x, alpha, sigma), augment(k2, x, alpha, sigma))


class Labelled(NamedTuple):
    """Inputs with labels: x (n, d); y, y_sub (n,) in {-1, +1} (y_sub: zeros where unused)."""

    x: Array
    y: Array
    y_sub: Array


def sample_supervised(
    key: Array, n: int, d: int, rest_scale: float = 1e-3, dtype=jnp.float32
) -> Labelled:
    """Def. 4.1: x = [y, y_sub, rest] (n, d), the four (y, y_sub) subclasses balanced (n a
    multiple of 4, in a random order), the rest uniform on {+-rest_scale}."""
    if n % 4 or d < 2:
        raise ConfigError(f"invalid n={n} or d={d}: n must be a multiple of 4 and d >= 2")
    k_perm, k_rest = jax.random.split(key)
    combos = jnp.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype)
    labels = jax.random.permutation(k_perm, jnp.tile(combos, (n // 4, 1)))
    rest = rest_scale * _signs(k_rest, (n, d - 2), dtype)
    return Labelled(jnp.concatenate([labels, rest], axis=1), labels[:, 0], labels[:, 1])


def sample_downstream(
    key: Array, n: int, phihat: ArrayLike | Sequence[float], j_star: int, dtype=jnp.float32
) -> Labelled:
    """Sec. 3.1.3: x_i uniform on {+-phihat_i} (n, d), label y = sign(x_j*) (no augmentation)."""
    phihat = jnp.asarray(phihat, dtype)
    x = _signs(key, (n, phihat.shape[0]), dtype) * phihat
    y = jnp.sign(x[:, j_star])
    return Labelled(x, y, jnp.zeros_like(y))
