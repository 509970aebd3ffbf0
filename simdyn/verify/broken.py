"""Broken simulators a paper declares for ``simdyn verify --self-test --paper NAME``.

A paper's claims module may expose ``BROKEN``, a tuple of :class:`BrokenSimulator`: each names a
near-miss fault (a bug a real implementation could ship) and plants it for the duration of a
``with`` block, typically by replacing an attribute of one of the paper's own modules
(:func:`patched`). The claims keep predicting with the paper's closed forms; only the simulator
is broken. The self-test (:func:`simdyn.verify.selftest.run_planted`) runs the paper's claims on
the reference and then inside each fault's block, and requires each fault to be caught: some
row that holds on the reference must fail under it.

This module is part of the verifier framework a paper may import (beside
:mod:`simdyn.verify.claim`, :mod:`simdyn.verify.stats` and :mod:`simdyn.verify.common`); it
imports no paper and nothing heavy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

Change = tuple[object, str, object]  # (owner, attribute name, the value planted there)


@dataclass(frozen=True)
class BrokenSimulator:
    """One deliberately broken simulator of a paper.

    name: a short id (the self-test's table names it); fault: the bug in words; plant: called
    with no argument, returns a fresh context manager inside which the fault is in effect (and
    outside which the paper's code is exactly the reference again); paper: the registered paper
    that declares it, set by :func:`simdyn.verify.registry.broken_simulators` (None: unknown).
    A broken paper module reaches only that paper's claims, so the self-test runs only those
    under it; the other papers' rows keep their reference outcomes.
    """

    name: str
    fault: str
    plant: Callable[[], AbstractContextManager[object]]
    paper: str | None = None


@contextlib.contextmanager
def patched(changes: Sequence[Change], reset: Sequence[Callable[[], None]] = ()) -> Iterator[None]:
    """Set each ``(owner, attribute, value)`` of ``changes`` inside the block, restoring every
    original value afterwards (even on error).

    ``reset``: functions called before the changes are made and after they are undone, e.g. the
    ``cache_clear`` of a cache of compiled programs, so that neither the broken code reuses what
    the reference compiled nor the reference what the broken code compiled.
    """
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in changes]
    for fn in reset:
        fn()
    try:
        for owner, name, value in changes:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(originals):
            setattr(owner, name, value)
        for fn in reset:
            fn()


def planting(
    *changes: Change, reset: Sequence[Callable[[], None]] = ()
) -> Callable[[], AbstractContextManager[None]]:
    """A :attr:`BrokenSimulator.plant` that applies :func:`patched` with these changes."""
    frozen = tuple(changes)
    resets = tuple(reset)

    def plant() -> AbstractContextManager[None]:
        return patched(frozen, resets)

    return plant


_active: list[str] = []  # names of the broken simulators planted now, innermost last


@contextlib.contextmanager
def planted(sim: BrokenSimulator) -> Iterator[None]:
    """``sim.plant()``, recording ``sim.name`` as :func:`active_name` inside the block (so that
    worker processes, :mod:`simdyn.verify.parallel`, can plant the same simulator)."""
    with sim.plant():
        _active.append(sim.name)
        try:
            yield
        finally:
            _active.pop()


def active_name() -> str | None:
    """The name of the broken simulator planted by :func:`planted` now, or None."""
    return _active[-1] if _active else None
