"""engine.run_per_seed: the engine assembles the seed program (vmap, sharding, empty shapes)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simdyn.engine import empty_result, run_per_seed, run_seeds, shard_seeds
from simdyn.seeds import as_key


class Out(NamedTuple):
    value: jax.Array  # ()
    path: jax.Array  # (3,)


def per_seed(key: jax.Array, scale: jax.Array) -> Out:
    x = jax.random.normal(key, (3,), jnp.float64) * scale
    return Out(jnp.sum(x**2), jnp.cumsum(x))


def test_matches_a_hand_assembled_program_and_does_not_depend_on_chunking():
    seeds = np.arange(7)
    ours, layout = run_per_seed(per_seed, as_key(3), seeds, 0.5, chunk_size=3, devices=1)
    assert layout.chunk_size == 3
    empty = empty_result(per_seed, 0.5, False)
    assert empty.value.shape == (0,) and empty.path.shape == (0, 3)
    ref, _ = run_seeds(
        lambda devices: shard_seeds(jax.vmap(per_seed, in_axes=(0, None)), devices, False),
        as_key(3),
        seeds,
        0.5,
        False,
        empty=empty,
        chunk_size=7,
        devices=1,
    )
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    # seed i's result is per_seed(fold_in(key, i)) alone
    one = per_seed(jax.random.fold_in(as_key(3), 4), 0.5)
    np.testing.assert_array_equal(ours.path[4], np.asarray(one.path))


def test_per_run_hyper_parameters():
    scales = np.array([1.0, 2.0, 0.0, 3.0])
    out, _ = run_per_seed(per_seed, as_key(1), np.arange(4), scales, True, chunk_size=2, devices=1)
    base, _ = run_per_seed(per_seed, as_key(1), np.arange(4), 1.0, chunk_size=4, devices=1)
    np.testing.assert_allclose(out.value, base.value * scales**2, rtol=1e-12)
