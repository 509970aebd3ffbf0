"""simdyn.safe_linalg: bit-identical to jnp.linalg, never a batched LAPACK call on the CPU.

The deadlock it avoids (issue 29) is a jaxlib defect: batched CPU LAPACK kernels block pool
threads waiting for work queued on the same pool. The minimal program is kept here as a test
(run in a subprocess with a time limit, since a deadlocked process cannot be interrupted).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simdyn import safe_linalg

PACKAGE = Path(__file__).resolve().parents[1] / "simdyn"


def _batch(key: jax.Array, b: int, n: int, dtype) -> jax.Array:
    x = jax.random.normal(key, (b, 3 * n, n), dtype)
    return jnp.einsum("bki,bkj->bij", x, x) + jnp.eye(n, dtype=dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_vmapped_calls_are_bit_identical_to_jnp_linalg(dtype):
    a = _batch(jax.random.key(0), 3, 7, dtype)
    rhs = jax.random.normal(jax.random.key(1), (3, 7), dtype)
    tall = jax.random.normal(jax.random.key(2), (3, 9, 4), dtype)
    pairs = [
        (jax.vmap(safe_linalg.solve)(a, rhs), jax.vmap(jnp.linalg.solve)(a, rhs)),
        (jax.vmap(safe_linalg.inv)(a), jnp.linalg.inv(a)),
        (jax.vmap(safe_linalg.qr_r)(tall), jnp.linalg.qr(tall, mode="r")),
        (jax.vmap(safe_linalg.qr_q)(tall), jnp.linalg.qr(tall, mode="reduced")[0]),
        (jax.vmap(safe_linalg.eigh)(a)[0], jnp.linalg.eigh(a)[0]),
        (jax.vmap(safe_linalg.eigh)(a)[1], jnp.linalg.eigh(a)[1]),
        # one operand batched, the other shared
        (jax.vmap(safe_linalg.solve, (0, None))(a, rhs[0]), jnp.linalg.solve(a, rhs[0])),
    ]
    for ours, ref in pairs:
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
    # and unbatched, per matrix
    for i in range(3):
        np.testing.assert_array_equal(
            np.asarray(safe_linalg.solve(a[i], rhs[i])), np.asarray(jnp.linalg.solve(a[i], rhs[i]))
        )


@pytest.mark.slow
def test_nested_vmap_and_jit():
    a = _batch(jax.random.key(3), 6, 5, jnp.float64).reshape(2, 3, 5, 5)
    rhs = jnp.ones((2, 3, 5), jnp.float64)
    ours = jax.jit(jax.vmap(jax.vmap(safe_linalg.solve)))(a, rhs)
    np.testing.assert_array_equal(
        np.asarray(ours), np.asarray(jnp.linalg.solve(a, rhs[..., None])[..., 0])
    )


def test_cpu_batch_is_a_loop_of_unbatched_lapack_calls():
    """Under vmap on the CPU the LAPACK custom call sees one matrix (no batch dimension)."""
    a = _batch(jax.random.key(4), 4, 6, jnp.float32)
    rhs = jnp.ones((4, 6), jnp.float32)
    hlo = jax.jit(jax.vmap(safe_linalg.solve)).lower(a, rhs).as_text()
    calls = [line for line in hlo.splitlines() if "getrf" in line]
    assert calls, "expected an LU custom call in the lowered program"
    assert all("4x6x6" not in line for line in calls), calls
    raw = jax.jit(jax.vmap(jnp.linalg.solve)).lower(a, rhs).as_text()
    assert any("4x6x6" in line for line in raw.splitlines() if "getrf" in line)


# Every LAPACK-backed jnp.linalg function; norm is not one of them.
_LAPACK = re.compile(
    r"jnp\.linalg\.(solve|inv|qr|eigh|eigvalsh|eig|eigvals|svd|svdvals|cholesky|lstsq|pinv|"
    r"det|slogdet|matrix_rank|matrix_power|tensorsolve|tensorinv)\b|jax\.scipy\.linalg|"
    r"lax\.linalg"
)


def test_no_stray_lapack_calls_in_traced_code():
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "safe_linalg.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _LAPACK.search(line.split("#")[0]):
                stray.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not stray, "use simdyn.safe_linalg instead:\n" + "\n".join(stray)


# Two independent batched solves whose operands come from matmuls: XLA's thunk executor starts
# both from pool threads, and with jaxlib's batched LAPACK kernel both block waiting for work
# queued on the same (2-thread, on this machine) pool. n = 100: large enough for jaxlib to split
# the batch (the hang was seen from n = 71 in simdyn's probe).
_REPRO = """
import jax, jax.numpy as jnp
{solve_import}
n, b = 100, 2
@jax.jit
def f(x1, x2, r):
    g1 = jnp.einsum("bki,bkj->bij", x1, x1)
    g2 = jnp.einsum("bki,bkj->bij", x2, x2)
    return solve(g1, r) + solve(g2, r)
k1, k2 = jax.random.split(jax.random.key(0))
x1 = jax.random.normal(k1, (b, 4 * n, n))
x2 = jax.random.normal(k2, (b, 4 * n, n))
r = jnp.ones((b, n, 1))
for i in range(300):
    f(x1 + i, x2, r).block_until_ready()
print("finished")
"""


def _run_repro(solve_import: str, timeout: float) -> bool:
    """True if the program finished within ``timeout`` seconds (False: it hung)."""
    code = textwrap.dedent(_REPRO.format(solve_import=solve_import))
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False
    assert out.returncode == 0, out.stderr[-2000:]
    return "finished" in out.stdout


@pytest.mark.slow
def test_safe_path_finishes_where_the_raw_path_deadlocks():
    safe = "from simdyn import safe_linalg\nsolve = jax.vmap(safe_linalg.solve)"
    assert _run_repro(safe, timeout=120), "the safe_linalg program did not finish in 120 s"


@pytest.mark.slow
def test_upstream_defect_is_still_present():
    """The raw program hangs (5 of 5 runs with jaxlib 0.10.2 on 2 cores). When this fails, a
    fixed jaxlib is installed: safe_linalg may then be retired for that version."""
    assert not _run_repro("solve = jnp.linalg.solve", timeout=30)
