"""Theta_0: the paper's initialisation of the linear encoder (also the first layer of
:mod:`simdyn.encoders`, so a linear encoder starts at the fast path's Theta_0 bit for bit)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def init_theta(key: Array, p: int, d: int, sigma_0: float | Array, bias: bool, dtype) -> Array:
    """Theta_0 entries ~ N(0, sigma_0^2 / d); the bias column is 0 when the bias is off.

    Args:
      key: the PRNG key of the init stream.
      p: output dimension (rows of Theta).
      d: input dimension; Theta has d + 1 columns, column 0 the bias.
      sigma_0: init scale, a float or a () array (traced under a hyper-parameter sweep).
      bias: whether the bias is learned; if not, column 0 is 0.
      dtype: the array dtype (float32 or float64).

    Returns:
      Theta_0, a (p, d + 1) array of ``dtype``.

    Examples:
      >>> import jax, jax.numpy as jnp, simdyn
      >>> key = jax.random.key(0)
      >>> theta = simdyn.init_theta(key, 3, 16, 0.5, False, jnp.float32)
      >>> theta.shape, theta.dtype, theta[:, 0].tolist()  # (p, d + 1); no bias: column 0 is 0
      ((3, 17), dtype('float32'), [0.0, 0.0, 0.0])
      >>> bool(jnp.allclose(simdyn.init_theta(key, 3, 16, 1.0, False, jnp.float32), 2 * theta))
      True
    """
    theta = jax.random.normal(key, (p, d + 1), dtype) * (sigma_0 / jnp.sqrt(jnp.asarray(d, dtype)))
    return theta if bias else theta.at[:, 0].set(0.0)
