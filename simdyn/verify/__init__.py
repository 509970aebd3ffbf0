"""``simdyn verify``: the registered papers' claims checked statistically.

The verifier framework: :mod:`~simdyn.verify.claim` (declarations and the one runner),
:mod:`~simdyn.verify.stats` (the shared statistics), :mod:`~simdyn.verify.report` (Holm
correction, verdicts, report files), :mod:`~simdyn.verify.registry` (the papers and their
claims), :mod:`~simdyn.verify.cli` (the command). Each paper's claims live in its package under
:mod:`simdyn.papers`; importing this package imports none of them.
"""

from __future__ import annotations

from typing import Any

from simdyn.verify.registry import resolve_claims, run_claim

__all__ = ["CLAIM_IDS", "resolve_claims", "run_claim"]


def __getattr__(name: str) -> Any:
    # The default paper's claim ids, computed (and the paper imported) on first use.
    if name == "CLAIM_IDS":
        from simdyn.verify import registry

        return registry.CLAIM_IDS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
