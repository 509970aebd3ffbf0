"""``simdyn verify --self-test``: the verifier run against the deliberately broken simulators.

A broken simulator is CAUGHT when at least one row that holds under the reference simulator
(same claims, scale and key) comes out ``fails`` under it. A row that merely drops to
``inconclusive`` is reported but does not count: a verdict that cannot fail is what the
self-test exists to find. The broken simulators are those the selected papers' claims modules
declare as ``BROKEN`` (:class:`~simdyn.verify.broken.BrokenSimulator` s,
:func:`simdyn.verify.registry.broken_simulators`); every one must be caught, and the command
exits 1 otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simdyn.verify import report
from simdyn.verify.broken import BrokenSimulator, planted
from simdyn.verify.common import ClaimOutcome


@dataclass(frozen=True)
class FaultResult:
    """One broken simulator: the rows that caught it (fails) and those that only wavered."""

    simulator: str
    fault: str
    caught_by: tuple[str, ...]
    weakened: tuple[str, ...]
    seconds: float

    @property
    def caught(self) -> bool:
        return bool(self.caught_by)


def compare(
    reference: Sequence[report.RowResult], broken: Sequence[report.RowResult]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(rows holding on the reference that fail under the fault, those that become inconclusive)."""
    held = {r.outcome.claim for r in reference if r.verdict == "holds"}
    caught = tuple(
        r.outcome.claim for r in broken if r.outcome.claim in held and r.verdict == "fails"
    )
    weak = tuple(
        r.outcome.claim for r in broken if r.outcome.claim in held and r.verdict == "inconclusive"
    )
    return caught, weak


def run_planted(
    run_all: Callable[..., list[ClaimOutcome]],
    broken: Sequence[BrokenSimulator],
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[report.RowResult], list[FaultResult]]:
    """Run ``run_all`` (all selected claims) on the reference, then once inside each broken
    simulator's ``sim.plant()`` block (:func:`~simdyn.verify.broken.planted`, which worker
    processes see; a paper's declared ``BROKEN``).

    A simulator with its ``paper`` set runs only that paper's claims (``run_all(paper=...)``):
    its fault lives in that paper's modules, so the other papers' rows keep their reference
    outcomes (:func:`with_paper_replaced`); each paper is its own Holm family, so this changes
    no verdict.

    Returns the reference rows and one :class:`FaultResult` per broken simulator, caught by
    :func:`compare`'s rule.
    """
    return _run_faults(run_all, broken, planted, progress)


def with_paper_replaced(
    reference: Sequence[ClaimOutcome], fresh: Sequence[ClaimOutcome], paper: str
) -> list[ClaimOutcome]:
    """``reference`` with its rows of ``paper`` replaced by ``fresh`` (in their place)."""
    out: list[ClaimOutcome] = []
    placed = False
    for o in reference:
        if o.paper != paper:
            out.append(o)
        elif not placed:
            out += fresh
            placed = True
    return out if placed else [*out, *fresh]


def _run_faults(
    run_all: Callable[..., list[ClaimOutcome]],
    broken: Sequence[Any],
    inside: Callable[[Any], contextlib.AbstractContextManager],
    progress: Callable[[str], None],
) -> tuple[list[report.RowResult], list[FaultResult]]:
    """The reference run, then one run of ``run_all`` inside ``inside(sim)`` per broken
    simulator (each has ``name``, ``fault`` and optionally ``paper``), judged by
    :func:`compare`."""
    import time

    from simdyn.verify.registry import clear_caches

    clear_caches()
    progress("reference")
    reference_outcomes = run_all()
    reference = report.evaluate(reference_outcomes)
    results = []
    for sim in broken:
        progress(sim.name)
        clear_caches()
        start = time.perf_counter()
        paper = getattr(sim, "paper", None)
        with inside(sim):
            if paper is None:
                outcomes = run_all()
            else:
                fresh = run_all(paper=paper)
                outcomes = with_paper_replaced(reference_outcomes, fresh, paper)
        rows = report.evaluate(outcomes)
        caught, weak = compare(reference, rows)
        results.append(FaultResult(sim.name, sim.fault, caught, weak, time.perf_counter() - start))
    clear_caches()
    return reference, results


def format_results(results: Sequence[FaultResult]) -> str:
    """A table: simulator, fault, caught?, the rows that caught it."""
    head = ("broken simulator", "fault", "caught", "rows that fail", "rows only inconclusive")
    body = [
        (
            r.simulator,
            r.fault,
            "yes" if r.caught else "NO (!)",
            ", ".join(r.caught_by) or "-",
            ", ".join(r.weakened) or "-",
        )
        for r in results
    ]
    rows = [head, *body]
    widths = [max(len(row[j]) for row in rows) for j in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_markdown(results: Sequence[FaultResult]) -> str:
    lines = [
        "| broken simulator | fault | caught | rows that fail | rows only inconclusive |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.simulator} | {r.fault} | {'yes' if r.caught else 'NO'} | "
            f"{', '.join(r.caught_by) or '-'} | {', '.join(r.weakened) or '-'} |"
        )
    return "\n".join(lines) + "\n"
