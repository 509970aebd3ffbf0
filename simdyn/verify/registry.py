"""The claims in THEORY.md order, selection by id, and running one claim at a scale."""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Sequence
from typing import Any

from simdyn.config import ConfigError
from simdyn.verify.blas import blas_threads
from simdyn.verify.broken import BrokenSimulator
from simdyn.verify.claim import Claim, evaluate
from simdyn.verify.common import ClaimOutcome, Scale

# The papers ``simdyn verify`` checks: name -> the module whose ``CLAIMS`` (a tuple of
# :class:`~simdyn.verify.claim.Claim`, in the paper's order) it runs, and whose optional
# ``BROKEN`` (broken simulators for ``--self-test``) and ``clear_caches`` (forget memoised runs)
# the verifier uses. Adding a paper is one line here: the verifier imports the module only when
# the paper is selected, so the core never imports a paper.
PAPERS: dict[str, str] = {
    "which-features": "simdyn.papers.which_features.claims",
    "projection-head": "simdyn.papers.projection_head.claims",
}
DEFAULT_PAPER = "which-features"


def __getattr__(name: str) -> Any:
    # CLAIM_IDS (the default paper's claim ids, in order) is computed on first use: naming it
    # imports the default paper, which importing this module must not do.
    if name == "CLAIM_IDS":
        return tuple(_paper_declarations(DEFAULT_PAPER))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def clear_caches() -> None:
    """Call ``clear_caches`` of every registered paper already imported (a new verify session,
    a self-test's next simulator: no run memoised under one simulator is reused by another)."""
    import sys

    for name in PAPERS.values():
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "clear_caches"):
            module.clear_caches()


@functools.cache
def _paper_declarations(paper: str) -> dict[str, Claim]:
    """Claim id -> declaration of a registered paper (its CLAIMS module, imported once)."""
    if paper not in PAPERS:
        raise ConfigError(f"invalid --paper {paper!r}: must be one of {list(PAPERS)} or 'all'")
    claims = importlib.import_module(PAPERS[paper]).CLAIMS
    return {c.info.id: c for c in claims}


def broken_simulators(paper: str | None) -> tuple[BrokenSimulator, ...]:
    """The broken simulators of the selected papers, for ``--self-test``, each paper's in
    declared order: a registered paper's claims module's ``BROKEN`` (none if it declares none),
    each with its ``paper`` set to the paper's registered name."""
    out: list[BrokenSimulator] = []
    for name in papers(paper):
        _paper_declarations(name)
        declared = getattr(importlib.import_module(PAPERS[name]), "BROKEN", ())
        out += [dataclasses.replace(sim, paper=name) for sim in declared]
    return tuple(out)


def shared_run_groups(claim_ids: Sequence[str]) -> list[tuple[str, ...]]:
    """``claim_ids`` in groups that reuse each other's memoised runs, each in the given order.

    A registered paper's claims module may declare ``SHARED_RUNS``, a tuple of claim-id tuples
    whose claims train once for all of them (e.g. a claim that re-reads another's sweep).
    Overlapping groups merge; a claim in no group is a group of its own. Worker processes
    (:mod:`simdyn.verify.parallel`) run a group in one process so that nothing trains twice;
    the outcomes do not depend on the grouping.
    """
    import sys

    owner = {c: c for c in claim_ids}

    def root(c: str) -> str:
        while owner[c] != c:
            c = owner[c]
        return c

    for name in PAPERS.values():
        module = sys.modules.get(name)
        for group in getattr(module, "SHARED_RUNS", ()):
            chosen = [c for c in group if c in owner]
            for c in chosen[1:]:
                owner[root(c)] = root(chosen[0])
    groups: dict[str, list[str]] = {}
    for c in claim_ids:
        groups.setdefault(root(c), []).append(c)
    return [tuple(g) for g in groups.values()]


def papers(paper: str | None) -> list[str]:
    """The papers selected by ``paper`` (None: the default paper; 'all': every paper)."""
    if paper is None:
        return [DEFAULT_PAPER]
    if paper == "all":
        return list(PAPERS)
    _paper_declarations(paper)  # ConfigError naming the registered papers
    return [paper]


def paper_claim_ids(paper: str | None = None) -> list[str]:
    """The claim ids of the selected papers, each paper's in its declared order."""
    return [c for name in papers(paper) for c in _paper_declarations(name)]


def paper_of(claim_id: str) -> str:
    """The registered paper that declares ``claim_id`` (ConfigError if none does)."""
    for name in PAPERS:
        if claim_id in _paper_declarations(name):
            return name
    raise ConfigError(f"invalid claim {claim_id!r}: no registered paper declares it")


def resolve_claims(names: Sequence[str] | None, paper: str | None = None) -> list[str]:
    """Claim ids of the selected papers in declared order; ``None`` or empty names means all
    of them. Case-insensitive. ``paper``: None (the first paper), a name of PAPERS, or 'all'."""
    ids = paper_claim_ids(paper)
    if not names:
        return ids
    lookup = {c.lower(): c for c in ids}
    chosen = set()
    for name in names:
        for part in str(name).split(","):
            part = part.strip()
            if not part:
                continue
            if part.lower() not in lookup:
                raise ConfigError(f"invalid --claims {part!r}: must be one of {ids}")
            chosen.add(lookup[part.lower()])
    return [c for c in ids if c in chosen]


def with_seeds(design: Any, seeds: int | None) -> Any:
    """The design with every ``*seeds`` count set to ``seeds`` (nested designs too)."""
    if seeds is None:
        return design
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ConfigError(f"invalid --seeds {seeds!r}: must be an integer >= 2")
    changes = {}
    for f in dataclasses.fields(design):
        value = getattr(design, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = with_seeds(value, seeds)
        elif f.name.endswith("seeds") and isinstance(value, int):
            changes[f.name] = seeds
    return dataclasses.replace(design, **changes)


def run_claim(
    claim_id: str, scale: Scale = "quick", key: int = 0, seeds: int | None = None
) -> list[ClaimOutcome]:
    """Run one claim's experiment at a scale; returns its table rows (claim, then extensions).

    Needs 64-bit JAX (``simdyn.enable_x64()``): the designs train in float64.
    """
    import jax

    if not jax.config.read("jax_enable_x64"):
        raise ConfigError("simdyn verify needs 64-bit JAX: call simdyn.enable_x64() first")
    declared = declaration(claim_id)
    design = with_seeds(declared.designs[scale], seeds)
    paper = paper_of(claim_id)
    with blas_threads(1):
        return [dataclasses.replace(o, paper=paper) for o in evaluate(declared, design, key)]


def declaration(claim_id: str) -> Claim:
    """The claim's declaration (designs, rows, rules), from whichever paper declares it."""
    return _paper_declarations(paper_of(claim_id))[claim_id]
