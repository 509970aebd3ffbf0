"""The claims in THEORY.md order, selection by id, and running one claim at a scale."""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from simdyn.config import ConfigError
from simdyn.verify.blas import blas_threads
from simdyn.verify.broken import BrokenSimulator
from simdyn.verify.claim import Claim, evaluate
from simdyn.verify.common import ClaimOutcome, Scale

_MODULES = {
    "CC-train": "cc_train",
    "CC-exists": "cc_exists",
    "CC-minnorm": "cc_minnorm",
    "CC-early": "cc_early",
    "CC-unlearn": "cc_unlearn",
    "FS-dim": "fs_dim",
    "FS-aug": "fs_aug",
    "JOINT": "joint",
    "SGD-OBJ": "sgd_objective",
    "MINLOSS": "minloss",
    "GOOD-EVENT": "good_event",
    "REPR": "representations",
    "FIG6": "fig6",
    "FS-tie": "fs_tie",
    "CC-probe-GD": "cc_probe_gd",
    "SGD-MIN": "sgd_min",
}
CLAIM_IDS: tuple[str, ...] = tuple(_MODULES)

# The papers ``simdyn verify`` checks: name -> the module whose ``CLAIMS`` (a tuple of
# :class:`~simdyn.verify.claim.Claim`) it runs; "" is the first paper, whose claim modules are
# listed above. Adding a paper is one line here: the verifier imports the module only when the
# paper is selected, so the core never imports a paper.
PAPERS: dict[str, str] = {
    "which-features": "",
    "projection-head": "simdyn.papers.projection_head.claims",
}
DEFAULT_PAPER = "which-features"


def module(claim_id: str) -> ModuleType:
    return importlib.import_module(f"simdyn.verify.{_MODULES[claim_id]}")


@functools.cache
def _paper_declarations(paper: str) -> dict[str, Claim]:
    """Claim id -> declaration of a registered paper (its CLAIMS module, imported once)."""
    if paper not in PAPERS:
        raise ConfigError(f"invalid --paper {paper!r}: must be one of {list(PAPERS)} or 'all'")
    if not PAPERS[paper]:
        return {c: module(c).CLAIM for c in CLAIM_IDS}
    claims = importlib.import_module(PAPERS[paper]).CLAIMS
    return {c.info.id: c for c in claims}


def broken_simulators(paper: str | None) -> tuple[BrokenSimulator, ...]:
    """The broken simulators of the selected papers, for ``--self-test``, each paper's in
    declared order: a registered paper's claims module's ``BROKEN`` (none if it declares none),
    and for the first paper :data:`simdyn.verify.simulators.BROKEN`, each planted by
    :func:`simdyn.verify.simulators.use`."""
    out: list[BrokenSimulator] = []
    for name in papers(paper):
        if not PAPERS[name]:
            from simdyn.verify import simulators

            out += [
                BrokenSimulator(s.name, s.fault, functools.partial(simulators.use, s))
                for s in simulators.BROKEN
            ]
        else:
            out += getattr(importlib.import_module(PAPERS[name]), "BROKEN", ())
    return tuple(out)


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
    with blas_threads(1):
        return evaluate(declared, design, key)


def declaration(claim_id: str) -> Claim:
    """The claim's declaration (designs, rows, rules), from whichever paper declares it."""
    if claim_id in _MODULES:
        return module(claim_id).CLAIM
    return _paper_declarations(paper_of(claim_id))[claim_id]
