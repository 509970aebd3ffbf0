"""LAPACK-backed linear algebra that stays safe under ``vmap`` on the CPU.

Why this module exists: jaxlib's CPU LAPACK kernels (LU ``getrf``, Cholesky, QR, eigh, ...)
split a *batched* call over XLA's intra-op thread pool and then block the calling thread until
the pieces finish (``jax::ParallelBatchMap`` waiting on a ``BlockingCounter``). When XLA's thunk
executor starts as many independent batched LAPACK calls as the pool has threads, each from a
pool thread, every pool thread blocks waiting for work that only a pool thread could run: the
process deadlocks at 0% CPU. simdyn's probe runs three independent ridge solves per seed, and
``vmap`` over seeds batches each of them, so on a 2-core machine (a 2-thread pool) a run with a
(p + 1) x (p + 1) solve large enough for jaxlib to parallelise (p >= 70 here) hung forever
(issue 29; ``docs/reliability.md`` has the minimal program and the upstream report).

The cure is to never hand jaxlib a batched LAPACK call on the CPU: under ``vmap`` the functions
below loop over the batch with ``lax.map``, so every LAPACK call sees one matrix and runs
on its calling thread. Each matrix goes through exactly the LAPACK routine an unbatched call
uses, so results are bit-identical to the batched call (``tests/test_safe_linalg.py``). On
accelerators the batch is handed to the native batched kernel as usual.

Every LAPACK-backed ``jnp.linalg`` call in simdyn's traced code goes through this module
(``tests/test_safe_linalg.py`` checks the source tree for stray ones).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array


def _loop_on_cpu(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (positional array arguments) whose ``vmap`` is a sequential loop on the CPU."""
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def _rule(axis_size: int, in_batched: list[bool], *args: Array) -> tuple[Any, Any]:
        def one(batched_args: tuple[Array, ...]) -> Any:
            it = iter(batched_args)
            full = [next(it) if b else a for a, b in zip(args, in_batched, strict=True)]
            return wrapped(*full)

        mapped = tuple(a for a, b in zip(args, in_batched, strict=True) if b)
        if jax.default_backend() == "cpu":
            out = jax.lax.map(one, mapped)
        else:
            out = jax.vmap(one)(mapped)
        return out, jax.tree.map(lambda _: True, out)

    @functools.wraps(fn)
    def call(*args: Array) -> Any:
        return wrapped(*args)

    return call


@_loop_on_cpu
def solve(a: Array, b: Array) -> Array:
    """``jnp.linalg.solve(a, b)``: a (n, n), b (n,) or (n, k)."""
    return jnp.linalg.solve(a, b)


@_loop_on_cpu
def inv(a: Array) -> Array:
    """``jnp.linalg.inv(a)``: a (n, n)."""
    return jnp.linalg.inv(a)


@_loop_on_cpu
def qr_r(a: Array) -> Array:
    """R of the thin QR of a (m, n): ``jnp.linalg.qr(a, mode="r")``, (min(m, n), n)."""
    return jnp.linalg.qr(a, mode="r")


@_loop_on_cpu
def qr_q(a: Array) -> Array:
    """Q of the thin QR of a (m, n): ``jnp.linalg.qr(a, mode="reduced")[0]``, (m, min(m, n))."""
    return jnp.linalg.qr(a, mode="reduced")[0]


@_loop_on_cpu
def eigh(a: Array) -> tuple[Array, Array]:
    """``jnp.linalg.eigh(a)`` of a symmetric a (n, n): eigenvalues (n,) ascending, vectors."""
    return tuple(jnp.linalg.eigh(a))
