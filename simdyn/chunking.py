"""How many seeds one compiled call runs: from free memory, the CPU's cache and the memory per
seed that the run's representation states (:mod:`simdyn.objectives`).

``simulate``, ``sweep`` and the command line take their default ``chunk_size`` from
:func:`auto_chunk_size`. A seed's results never depend on the chunk size (seed i's key is
``fold_in(key, i)``); only speed and memory do.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from simdyn import objectives
from simdyn.config import Config


def bytes_per_seed(config: Config) -> int:
    """A deliberately generous estimate of one seed's device memory in the vmapped program:
    twice the ``memory_per_seed`` of the representation the run resolves to."""
    return 2 * objectives.get(objectives.resolve(config)).memory_per_seed(config)


def available_memory() -> int:
    """Free memory of the first local device (bytes); host RAM for the CPU."""
    dev = jax.local_devices()[0]
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


# On the CPU a vmapped chunk larger than this stops paying (the step is memory-bound, and
# bigger chunks fall out of cache): benchmarks/README.md measured fig2a at 1024 seeds in 627 s
# as one chunk vs 171 s in chunks of 64.
CPU_MAX_CHUNK = 64
# The CPU step is bound by memory traffic (benchmarks/README.md, roofline), so the chunk is the
# one whose working set (chunk x the representation's memory_per_seed, the cost model's count)
# fits the last-level cache, rather than a fixed number. Measured with
# benchmarks/chunk_sizes.py (fig2a, 652 kB per seed, 32 MiB L3): the resulting 25 was 3% faster
# than 64 at 1024 seeds and level with it at 256 seeds (where 16-32 were 10-15% faster); seeds
# are bit-identical across chunk sizes there. Half the cache: two cores share it, and XLA's
# temporaries need room. The cap applies only where at least CACHE_MIN_CHUNK seeds fit;
# larger seeds are not cache-resident at any useful chunk, and CPU_MAX_CHUNK stands.
CPU_CACHE_FRACTION = 0.5
CACHE_MIN_CHUNK = 8
DEFAULT_LAST_LEVEL_CACHE = 32 << 20


def last_level_cache_bytes() -> int:
    """Size of the CPU's last-level cache (bytes), from sysconf or sysfs; 32 MiB if unknown."""
    for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        try:
            size = int(os.sysconf(name))
        except (ValueError, OSError, AttributeError):
            size = 0
        if size > 0:
            return size
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = f.read_text().strip().upper()
        factor = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        digits = text.rstrip("KM")
        if digits.isdigit():
            sizes.append(int(digits) * factor)
    return max(sizes, default=DEFAULT_LAST_LEVEL_CACHE)


def cpu_chunk_cap(config: Config) -> int:
    """Seeds per CPU chunk that keep its working set in CPU_CACHE_FRACTION of the last-level
    cache (at most CPU_MAX_CHUNK); CPU_MAX_CHUNK where fewer than CACHE_MIN_CHUNK seeds fit."""
    per_seed = max(objectives.get(objectives.resolve(config)).memory_per_seed(config), 1)
    fit = int(CPU_CACHE_FRACTION * last_level_cache_bytes() // per_seed)
    return CPU_MAX_CHUNK if fit < CACHE_MIN_CHUNK else min(fit, CPU_MAX_CHUNK)


def auto_chunk_size(config: Config, num_seeds: int, fraction: float = 0.25) -> int:
    """Largest per-device chunk that fits ``fraction`` of free memory, at most num_seeds.

    Capped at :func:`cpu_chunk_cap` on the CPU (the cache-resident chunk of the cost model's
    memory per seed) and at 4096 on accelerators.
    """
    fit = int(fraction * available_memory() // max(bytes_per_seed(config), 1))
    cap = cpu_chunk_cap(config) if jax.default_backend() == "cpu" else 4096
    return int(max(1, min(num_seeds, fit, cap)))
