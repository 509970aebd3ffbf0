"""``simdyn verify``: every claim of the paper (THEORY.md section 6) checked statistically.

One module per claim (design, pre-registered statistic and decision rule, negative control);
:mod:`~simdyn.verify.stats` holds the shared statistics, :mod:`~simdyn.verify.report` the Holm
correction, verdicts and report files, :mod:`~simdyn.verify.cli` the command.
"""

from __future__ import annotations

from simdyn.verify.registry import CLAIM_IDS, resolve_claims, run_claim

__all__ = ["CLAIM_IDS", "resolve_claims", "run_claim"]
