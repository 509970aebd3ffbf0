"""What every claim module shares: run scale, the claim's description and its outcome record,
and the integer key of a claim's seed stream.

A claim module declares ``INFO`` (:class:`ClaimInfo`), ``DESIGNS`` (one design per
:data:`Scale`) and ``CLAIM`` (:class:`simdyn.verify.claim.Claim`: the designs and the table rows,
each a measure plus its pre-registered rules and controls; the claim itself first, then any
extension rows such as the SGD version). Its thresholds are module-level constants next to the
docstring that states the pre-registered decision rule. This module is part of the verifier
framework a paper may import; it knows no paper.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from simdyn.config import ConfigError
from simdyn.verify.stats import TestResult

Scale = Literal["small", "quick", "full"]
SCALES: tuple[Scale, ...] = ("small", "quick", "full")


# Variants that test simdyn's own extensions, not the paper: the paper states no SGD theorem
# (THEORY.md section 4: simdyn defines its SGD), so an SGD row of a theorem is labelled as an
# extension of that theorem, never as the theorem itself.
EXTENSION_VARIANTS = ("SGD",)


def variant_source(source: str, variant: str) -> str:
    """The source column of a claim's variant row.

    Args:
        source: the paper's source of the claim ("Thm 6.1"). variant: "" (the claim itself),
            "GD" (the paper's own training) or an extension in EXTENSION_VARIANTS.

    Returns:
        ``source`` for the claim, ``"source (GD)"`` for the paper's GD, and
        ``"simdyn extension (SGD) of source"`` for an extension.
    """
    if not variant:
        return source
    if variant in EXTENSION_VARIANTS:
        return f"simdyn extension ({variant}) of {source}"
    return f"{source} ({variant})"


@dataclass(frozen=True)
class ClaimInfo:
    """id, paper source, the claim in words, and the negative control in words."""

    id: str
    source: str
    statement: str
    control: str

    def row_id(self, variant: str = "") -> str:
        """The table id of this claim's row: ``"ID [variant]"`` for a variant, else ``"ID"``."""
        return f"{self.id} [{variant}]" if variant else self.id

    def outcome(
        self,
        *,
        variant: str = "",
        claim: str | None = None,
        source: str | None = None,
        control: str | None = None,
        start: float | None = None,
        **fields,
    ) -> ClaimOutcome:
        """A row of this claim: id :meth:`row_id` and source ``"source (variant)"`` for a
        variant (unless ``claim`` / ``source`` are given), this claim's control unless
        ``control`` is given, and the seconds since ``start`` (``time.perf_counter()``);
        ``fields``: the rest of :class:`ClaimOutcome`."""
        if start is not None:
            fields["seconds"] = time.perf_counter() - start
        default_source = variant_source(self.source, variant)
        return ClaimOutcome(
            claim=self.row_id(variant) if claim is None else claim,
            source=default_source if source is None else source,
            control=self.control if control is None else control,
            **fields,
        )


@dataclass(frozen=True)
class ClaimOutcome:
    """The tests of one row of the verification table (a claim or an extension of it).

    tests: the pre-registered sub-tests (all must hold: intersection-union).
    controls: the same pipeline fed a deliberately wrong prediction; must come out ``fails``.
    design: one line on configs, sweeps and seeds; summary: a few words of it for the table;
    notes: what else was seen. paper: the registered paper whose claim produced the row (set by
    :func:`simdyn.verify.registry.run_claim`; each paper is its own Holm family).
    """

    claim: str
    source: str
    design: str
    tests: tuple[TestResult, ...]
    controls: tuple[TestResult, ...]
    control: str
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    summary: str = ""
    extra: dict = field(default_factory=dict)
    paper: str = ""


STREAM_COUNT = 16  # streams per base key: a paper numbers its claims' streams below this


def stream_key(stream: int, key: int) -> int:
    """The integer key of seed stream number ``stream`` under the verify base key ``key``:
    ``key * STREAM_COUNT + stream``, a bijection of (key, stream), so no two streams of one key
    and no two keys share random inputs.

    Args:
        stream: the stream's number in [0, STREAM_COUNT) (a paper's claim declares it).
        key: the verify base key, an integer in [0, 2**58).

    Returns:
        The stream's integer key.

    Example:
        >>> stream_key(3, 2)
        35
    """
    if not 0 <= int(stream) < STREAM_COUNT:
        raise ConfigError(f"invalid stream={stream}: must be an integer in [0, {STREAM_COUNT})")
    if not 0 <= int(key) < 2**58:
        raise ConfigError(f"invalid key={key}: must be an integer in [0, 2**58)")
    return int(key) * STREAM_COUNT + int(stream)
