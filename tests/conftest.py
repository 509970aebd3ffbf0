"""Test-session setup: 64-bit JAX so the exactness tests can compare in float64.

Library code passes dtypes explicitly, so float32 runs behave the same with x64 on; the
float32-default behaviour of the CLI is exercised in a subprocess (tests/test_cli.py).
"""

import jax

jax.config.update("jax_enable_x64", True)


def pytest_collection_modifyitems(config, items):
    """Slow-tier tests get a longer time limit than the default suite's (pyproject.toml)."""
    import pytest

    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(3600))


def pytest_configure(config):
    """``simdyn verify`` runs one process by default in tests: many tests monkeypatch the
    verifier or register a toy paper in this process, which worker processes would not see.
    Tests of the workers pass ``--jobs`` explicitly (tests/test_verify_parallel.py). Nor does
    it keep compiled programs in the user's cache by default (a process-wide JAX setting that
    would reach every later test); its test passes ``--compile-cache DIR``."""
    from simdyn.verify import compile_cache, parallel

    real_dir = compile_cache.cache_dir

    def no_default_cache(value):
        return None if value in (None, "auto") else real_dir(value)

    no_default_cache.__wrapped__ = real_dir  # type: ignore[attr-defined]
    compile_cache.cache_dir = no_default_cache

    real = parallel.default_jobs

    def one_process() -> int:
        return 1

    one_process.__wrapped__ = real  # type: ignore[attr-defined]  # its own test calls the rule
    parallel.default_jobs = one_process
