"""A claim, declared: its designs, the units each table row measures, and that row's rules.

A claim module computes nothing at import and has no ``run`` of its own: it declares

    CLAIM = Claim(info=INFO, designs=DESIGNS, stream=2, rows=(Row(...), ...))

where each :class:`Row` names a ``measure(design, key) -> units`` function (the row's units:
closed forms, GD runs, instances) and the pre-registered :class:`Rule` s and controls applied to
those units. :func:`evaluate` is the one runner: it derives the claim's seed stream, measures
each row's units once (rows that name the same measure share them), applies every rule and
control, and assembles the :class:`~simdyn.verify.common.ClaimOutcome` rows. ``simdyn verify
--rules`` prints the declarations (the pre-registration) without running anything.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simdyn.verify.common import ClaimInfo, ClaimOutcome, Scale, stream_key
from simdyn.verify.stats import TestResult

Units = Any  # what a row's measure returns: per-unit arrays, runs, fits (module-specific)
Evaluate = Callable[[Any, Units], TestResult | Sequence[TestResult]]


@dataclass(frozen=True)
class Rule:
    """One pre-registered sub-test (or negative control) of a row.

    name: the sub-test's name in the report; a ``{...}`` part marks a rule that yields one test
    per design point (``"scaling-mu{mu}"`` yields ``scaling-mu0.5``, ...; the part may be empty
    where a design has a single point).
    decides: the decision rule in words, thresholds included (what ``--rules`` lists).
    evaluate: ``(design, units) -> TestResult`` or a sequence of them, one per design point.
    """

    name: str
    decides: str
    evaluate: Evaluate

    def matches(self, test_name: str) -> bool:
        """Whether a test of this name may come from this rule (``{...}`` matches any text)."""
        parts = re.split(r"\{[^}]*\}", self.name)
        return re.fullmatch(".*".join(re.escape(p) for p in parts), test_name) is not None

    def apply(self, design: Any, units: Units) -> tuple[TestResult, ...]:
        out = self.evaluate(design, units)
        results = (out,) if isinstance(out, TestResult) else tuple(out)
        for result in results:
            if not self.matches(result.name):
                raise ValueError(f"rule {self.name!r} produced a test named {result.name!r}")
        return results


@dataclass(frozen=True)
class RowText:
    """What a row says besides its tests: a few words for the table, the design in one line,
    what else was seen, and any extra data for the report."""

    summary: str
    design: str
    notes: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One row of the verification table.

    measure: ``(design, stream key) -> units``. rules / controls: applied to the units; every
    control must come out ``fails``. describe: ``(design, units) -> RowText``. variant: ``""``
    for the claim itself, ``"GD"``, ``"SGD"``, ...; claim / source / control override the
    claim's id, source and control text (rows such as ``CC-probe`` or ``FS-dim rate``).
    """

    measure: Callable[[Any, int], Units]
    rules: tuple[Rule, ...]
    controls: tuple[Rule, ...]
    describe: Callable[[Any, Units], RowText]
    variant: str = ""
    claim: str | None = None
    source: str | None = None
    control: str | Callable[[Any], str] | None = None


@dataclass(frozen=True)
class Claim:
    """A claim of THEORY.md: what it says, its designs per scale and its table rows.

    stream: the number (in [0, :data:`~simdyn.verify.common.STREAM_COUNT`)) of the seed stream
    the claim owns, unique within its paper; ``None`` for a claim that applies its statistics to
    other claims' units (it derives their streams).
    check: validates a design before anything runs (raises ``ConfigError``).
    """

    info: ClaimInfo
    designs: Mapping[Scale, Any]
    rows: tuple[Row, ...]
    stream: int | None = None
    check: Callable[[Any], None] | None = None

    @property
    def id(self) -> str:
        return self.info.id

    def row_id(self, row: Row) -> str:
        """The table id of one of its rows: ``row.claim`` if given, else ``"ID [variant]"``."""
        return self.info.row_id(row.variant) if row.claim is None else row.claim


def evaluate(claim: Claim, design: Any, key: int) -> list[ClaimOutcome]:
    """Run one claim's design under the verify base key ``key``: its rows in order.

    A row's seconds are those of its own work: its measure (unless an earlier row already
    measured the same units) and its rules.
    """
    if claim.check is not None:
        claim.check(design)
    key = key if claim.stream is None else stream_key(claim.stream, key)
    measured: dict[Callable, Units] = {}
    outcomes = []
    for row in claim.rows:
        start = time.perf_counter()
        if row.measure not in measured:
            measured[row.measure] = row.measure(design, key)
        units = measured[row.measure]
        tests = tuple(t for rule in row.rules for t in rule.apply(design, units))
        controls = tuple(t for rule in row.controls for t in rule.apply(design, units))
        text = row.describe(design, units)
        outcome = claim.info.outcome(
            variant=row.variant,
            claim=row.claim,
            source=row.source,
            control=row.control(design) if callable(row.control) else row.control,
            summary=text.summary,
            design=text.design,
            tests=tests,
            controls=controls,
            notes=text.notes,
            extra=text.extra,
            start=start,
        )
        outcomes.append(outcome)
    return outcomes


def describe_rules(claim: Claim) -> list[str]:
    """The claim's pre-registration in lines: each row, its rules and its controls."""
    lines = [f"{claim.id} ({claim.info.source}): {claim.info.statement}"]
    for row in claim.rows:
        lines.append(f"  row {claim.row_id(row)}")
        lines += [f"    rule    {r.name}: {r.decides}" for r in row.rules]
        lines += [f"    control {r.name}: {r.decides}" for r in row.controls]
    return lines
