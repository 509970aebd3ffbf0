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
