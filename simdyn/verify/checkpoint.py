"""One finished claim's outcomes on disk, so that an interrupted verify run resumes from them.

The folder is chosen by ``simdyn verify`` (keyed by scale, key, seeds and the code's commit);
each claim is one pickle, written atomically: a run killed mid-write leaves no half file under
the final name. Worker processes (:mod:`simdyn.verify.parallel`) write here too, claim by claim.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from simdyn.verify.common import ClaimOutcome


def path(folder: Path, claim: str) -> Path:
    """Where ``claim``'s outcomes are kept in ``folder``."""
    return folder / f"{claim}.pkl"


def save(folder: Path, claim: str, rows: list[ClaimOutcome]) -> None:
    """Keep ``claim``'s outcomes (atomically)."""
    target = path(folder, claim)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(rows))
    tmp.replace(target)


def load(folder: Path, claim: str) -> list[ClaimOutcome] | None:
    """``claim``'s kept outcomes, or None if it has none."""
    target = path(folder, claim)
    return pickle.loads(target.read_bytes()) if target.exists() else None
