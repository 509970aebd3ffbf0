"""The key protocol, defined once: how a run's base key becomes each seed's random streams.

Seed ``i`` of a run with base key ``key`` has the key ``fold_in(key, i)``, whatever the chunk,
device or process it runs on; its streams are ``fold_in(seed_key, purpose)`` with one fixed
purpose number each (below), and a minibatch step ``t`` draws from ``fold_in(batch, t)``. Nothing
is split and carried across seeds, so a seed's inputs never depend on which seeds run beside it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from simdyn.config import ConfigError

Array = jax.Array

# fold_in purposes of a seed key: fixed forever (changing one changes every result).
DATA, INIT, BATCH, TEST = 0, 1, 2, 3


class Streams(NamedTuple):
    """A seed's four keys: training set, initialisation, minibatches, probe test set."""

    data: Array
    init: Array
    batch: Array
    test: Array


def as_key(key: int | Array) -> Array:
    """A typed PRNG key from an int in [0, 2**63) or an existing (typed or raw uint32) key.

    Example:
      >>> from simdyn.seeds import as_key, key_data
      >>> key_data(as_key(7))
      [0, 7]
    """
    if isinstance(key, bool):
        raise ConfigError(f"invalid key={key!r}: must be a non-negative integer")
    if isinstance(key, int | np.integer):
        if not 0 <= key < 2**63:
            raise ConfigError(f"invalid key={key}: must be an integer in [0, 2**63 - 1]")
        return jax.random.key(int(key))
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))


def seed_keys(key: Array, seed_indices: ArrayLike) -> Array:
    """``fold_in(key, i)`` for each seed index i: (S,) keys. Works under jit."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(seed_indices, jnp.uint32))


def seed_key(key: int | Array, seed: int) -> Array:
    """The key of seed ``seed`` of a run with base key ``key`` (an int or a key).

    Example:
      >>> from simdyn.seeds import seed_key, key_data
      >>> key_data(seed_key(0, 3)) == key_data(seed_key(0, 3))
      True
    """
    return seed_keys(as_key(key), np.asarray([seed]))[0]


def streams(seed_key: Array) -> Streams:
    """A seed's data, init, batch and test keys (``fold_in(seed_key, purpose)``)."""
    return Streams(*(jax.random.fold_in(seed_key, p) for p in (DATA, INIT, BATCH, TEST)))


def step_key(batch_key: Array, step: Array) -> Array:
    """The minibatch key of step ``step`` (``fold_in(batch_key, step)``)."""
    return jax.random.fold_in(batch_key, step)


def key_data(key: Array) -> list[int]:
    """A key's raw uint32 words as ints (what results and manifests record)."""
    return [int(v) for v in np.asarray(jax.random.key_data(key)).ravel()]
