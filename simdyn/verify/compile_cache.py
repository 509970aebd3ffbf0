"""A persistent cache of compiled XLA programs for ``simdyn verify`` (``--compile-cache``).

Much of a quick verify run is compiling: dozens of distinct programs, one per design point and
representation. JAX can keep each compiled program on disk, keyed by the program itself, its
compile options and the jax/jaxlib version and backend, so a second run of the same claims loads
them instead of compiling. A cached program is the same executable, so results are bit-identical
with and without the cache (tests/test_verify_parallel.py compares two runs); a program that
changes (a broken simulator, an edited claim) has another key and compiles afresh.

Example:
  >>> cache_dir("none") is None
  True
  >>> str(cache_dir("/tmp/xla"))
  '/tmp/xla'
"""

from __future__ import annotations

import os
from pathlib import Path

MIN_COMPILE_SECONDS = 0.1  # programs faster to compile than to read back are not worth a file


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/simdyn/xla`` (``~/.cache/simdyn/xla`` without XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "simdyn" / "xla"


def cache_dir(value: str | None) -> Path | None:
    """``--compile-cache``: ``auto``/None (:func:`default_dir`), ``none`` (off) or a folder."""
    if value is None or value == "auto":
        return default_dir()
    if value == "none":
        return None
    return Path(value)


def enable(folder: Path | None) -> None:
    """Keep compiled programs in ``folder`` from now on in this process (None: leave JAX as it
    is). Worker processes call it with the parent's folder (:mod:`simdyn.verify.parallel`)."""
    if folder is None:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)


def current() -> Path | None:
    """The folder this process keeps compiled programs in, or None."""
    import jax

    value = jax.config.jax_compilation_cache_dir  # type: ignore[attr-defined]  # untyped flag
    return Path(value) if value else None
