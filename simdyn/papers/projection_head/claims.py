"""The projection-head paper's claims, as ``simdyn verify --paper projection-head`` runs them:
the linear-model claims, then the nonlinear ones (each module's declared order); and its broken
simulators, as ``simdyn verify --self-test --paper projection-head`` runs them
(:mod:`simdyn.papers.projection_head.broken`)."""

from __future__ import annotations

from simdyn.papers.projection_head.broken import BROKEN
from simdyn.papers.projection_head.claims_linear import CLAIMS as LINEAR
from simdyn.papers.projection_head.claims_nonlinear import CLAIMS as NONLINEAR
from simdyn.verify.claim import Claim

CLAIMS: tuple[Claim, ...] = LINEAR + NONLINEAR

__all__ = ["BROKEN", "CLAIMS"]
