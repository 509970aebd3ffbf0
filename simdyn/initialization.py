"""Theta_0: the paper's initialisation of the linear encoder (also the first layer of
:mod:`simdyn.encoders`, so a linear encoder starts at the fast path's Theta_0 bit for bit)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def init_theta(key: Array, p: int, d: int, sigma_0: float | Array, bias: bool, dtype) -> Array:
    """Theta_0 entries ~ N(0, sigma_0^2 / d); the bias column is 0 when the bias is off."""
    theta = jax.random.normal(key, (p, d + 1), dtype) * (sigma_0 / jnp.sqrt(jnp.asarray(d, dtype)))
    return theta if bias else theta.at[:, 0].set(0.0)
