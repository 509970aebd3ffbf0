"""Claims run side by side in worker processes (``simdyn verify --jobs N``).

Much of a verify run is XLA compiling many small programs, and one compilation runs on one core;
claims are independent, so running several at once in separate processes uses the other
cores. A task is a group of claims that reuse each other's memoised runs (a paper's
``SHARED_RUNS``, :func:`simdyn.verify.registry.shared_run_groups`), so nothing trains twice;
tasks are handed out longest-first (by typical seconds, :mod:`simdyn.verify.eta`) so that a
long one does not start last.

A claim's outcomes do not depend on ``jobs``: they are a function of (claim, scale, key, seeds)
alone. Each claim derives its seed streams from the key, and what claims share in one process
(memoised runs, e.g. the SGD endpoints one claim trains and another reuses) is only a cache.
Workers are started with ``spawn``: JAX is not fork-safe. A broken simulator of the self-test is
planted in each worker by name (:func:`simdyn.verify.broken.active_name`), and a worker forgets
its memoised runs whenever the planted simulator changes, as the single process does.

Example:
  >>> order_by_cost([["FS-tie"], ["not-timed"], ["CC-early", "CC-unlearn"]], "quick")
  [('CC-early', 'CC-unlearn'), ('FS-tie',), ('not-timed',)]
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from simdyn.config import ConfigError
from simdyn.verify.common import ClaimOutcome

MAX_AUTO_JOBS = 4  # each worker holds its own compiled programs and arrays (GBs at --full)


def default_jobs() -> int:
    """Workers for ``--jobs auto``: the CPU's cores (at most :data:`MAX_AUTO_JOBS`) when JAX runs
    on the CPU; 1 on an accelerator, which processes would have to share."""
    import jax

    if jax.default_backend() != "cpu":
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_JOBS))


def parse_jobs(value: str | int | None) -> int:
    """``--jobs``: a positive integer, or ``auto`` / None (:func:`default_jobs`).

    Raises:
      ConfigError: anything else.
    """
    if value is None or value == "auto":
        return default_jobs()
    try:
        jobs = int(value)
    except (TypeError, ValueError):
        jobs = 0
    if isinstance(value, bool) or jobs < 1:
        raise ConfigError(f"invalid --jobs {value!r}: must be a positive integer or 'auto'")
    return jobs


def order_by_cost(groups: Sequence[Sequence[str]], scale: str) -> list[tuple[str, ...]]:
    """``groups`` longest-first by their claims' summed typical seconds at ``scale`` (a claim
    with no typical time counts as 0; ties keep their order)."""
    from simdyn.verify.eta import TYPICAL_SECONDS

    typical = TYPICAL_SECONDS.get(scale, {})
    return sorted((tuple(g) for g in groups), key=lambda g: -sum(typical.get(c, 0.0) for c in g))


def run_parallel(
    claims: Sequence[str],
    scale: str,
    key: int,
    seeds: int | None,
    jobs: int,
    on_done: Callable[[str, list[ClaimOutcome], float], None],
    checkpoints: Path | None = None,
) -> dict[str, list[ClaimOutcome]]:
    """Run ``claims`` in up to ``jobs`` worker processes, one task per group of claims that
    share runs (:func:`simdyn.verify.registry.shared_run_groups`); ``on_done(claim, rows,
    seconds)`` is called in this process for each claim as its group finishes. A worker saves
    each claim into ``checkpoints`` (:mod:`simdyn.verify.checkpoint`) as soon as it finishes, so
    an interrupted run loses no finished claim.

    Returns:
      claim id -> its outcomes (the caller restores the declared order).
    """
    from simdyn.verify import compile_cache
    from simdyn.verify.broken import active_name
    from simdyn.verify.registry import PAPERS, shared_run_groups

    planted = active_name()
    groups = order_by_cost(shared_run_groups(claims), scale)
    results: dict[str, list[ClaimOutcome]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=max(1, min(jobs, len(groups))),
        mp_context=context,
        initializer=_start,
        initargs=(dict(PAPERS), compile_cache.current()),
    ) as pool:
        pending: dict[Future, tuple[str, ...]] = {
            pool.submit(_run_group, group, scale, key, seeds, planted, checkpoints): group
            for group in groups
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.pop(future)
                    for claim, rows, seconds in future.result():
                        results[claim] = rows
                        on_done(claim, rows, seconds)
        except BaseException:
            # A failed claim or a Ctrl-C: drop the groups not started and stop the workers now
            # (a worker inside a compilation would see its own interrupt only when that ends);
            # finished claims were saved by their workers, so a rerun resumes from them.
            pool.shutdown(wait=False, cancel_futures=True)
            for child in multiprocessing.active_children():
                child.terminate()
            raise
    return results


# --- in the worker process -------------------------------------------------------------------

_planted_here: list[str | None] = [None]  # the simulator this worker's caches were built under


def _start(papers: dict[str, str], cache: Path | None) -> None:
    import simdyn
    from simdyn.verify import compile_cache, registry

    simdyn.enable_x64()  # as the parent: the designs train in float64
    compile_cache.enable(cache)  # the parent's compiled-program cache, if any
    # The parent's registered papers, a paper registered at run time included (the parent's
    # sys.path, which spawn hands to the worker, makes its module importable).
    registry.PAPERS.update(papers)


def _run_group(
    group: Sequence[str],
    scale: str,
    key: int,
    seeds: int | None,
    planted: str | None,
    checkpoints: Path | None,
) -> list[tuple[str, list[ClaimOutcome], float]]:
    """A group's claims in a worker, in order, inside the broken simulator ``planted`` (None:
    the reference); each saved into ``checkpoints`` as it finishes."""
    from simdyn.verify import checkpoint
    from simdyn.verify.registry import broken_simulators, clear_caches, run_claim

    if planted != _planted_here[0]:
        clear_caches()  # nothing memoised under one simulator is reused under another
        _planted_here[0] = planted
    inside: contextlib.AbstractContextManager = contextlib.nullcontext()
    if planted is not None:
        by_name = {sim.name: sim for sim in broken_simulators("all")}
        inside = by_name[planted].plant()
    out = []
    with inside:
        for claim in group:
            start = time.perf_counter()
            rows = run_claim(claim, scale, key, seeds)  # type: ignore[arg-type]
            if checkpoints is not None:
                checkpoint.save(checkpoints, claim, rows)
            out.append((claim, rows, time.perf_counter() - start))
    return out
