"""The claims in THEORY.md order, selection by id, and running one claim at a scale."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from simdyn.config import ConfigError
from simdyn.verify.blas import blas_threads
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


def module(claim_id: str) -> ModuleType:
    return importlib.import_module(f"simdyn.verify.{_MODULES[claim_id]}")


def resolve_claims(names: Sequence[str] | None) -> list[str]:
    """Claim ids in THEORY.md order; ``None`` or empty means all. Case-insensitive."""
    if not names:
        return list(CLAIM_IDS)
    lookup = {c.lower(): c for c in CLAIM_IDS}
    chosen = set()
    for name in names:
        for part in str(name).split(","):
            part = part.strip()
            if not part:
                continue
            if part.lower() not in lookup:
                raise ConfigError(f"invalid --claims {part!r}: must be one of {list(CLAIM_IDS)}")
            chosen.add(lookup[part.lower()])
    return [c for c in CLAIM_IDS if c in chosen]


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
    """The claim's declaration (designs, rows, rules) from its module."""
    return module(claim_id).CLAIM
