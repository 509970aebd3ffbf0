"""Field-by-field comparison of two ``simdyn verify`` reports (report.json or report.json.gz).

Two runs of the same rules under the same key must agree on every recorded number: verdicts,
p-values, estimates, intervals, per-unit data and notes. This is how a refactor that moves code
(a paper into its package, a module split) shows that it changed no result: run the same claims
at the same scale and key before and after, and compare. Only what a run cannot reproduce is
skipped: timings (``seconds``, ``wall_seconds``, ``finished``) and where the run came from
(``rules_commit``, ``resumed_claims``, ``jobs``).

Run it::

    python -m simdyn.verify.compare BEFORE/report.json AFTER/report.json

It prints each differing field by its path and exits 0 when there is none, 1 otherwise.

Example:
  >>> a = {"meta": {"key": 1, "wall_seconds": 3.0}, "rows": [{"claim": "X", "p_hold": 0.5}]}
  >>> b = {"meta": {"key": 1, "wall_seconds": 9.0}, "rows": [{"claim": "X", "p_hold": 0.25}]}
  >>> differences(a, b)
  ['rows[0].p_hold: 0.5 != 0.25']
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# What a rerun cannot reproduce: timings and provenance, never a result.
UNREPRODUCIBLE = frozenset(
    {"seconds", "wall_seconds", "finished", "rules_commit", "resumed_claims", "jobs"}
)


def load(path: str | Path) -> dict[str, Any]:
    """A report written by ``simdyn verify`` (``.json``, or gzip-compressed ``.json.gz``)."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt") as f:
        return json.load(f)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Every field where ``a`` and ``b`` differ (exactly: numbers bit for bit, NaN equal to NaN),
    by its path, skipping the keys in :data:`UNREPRODUCIBLE`.

    Args:
        a, b: two parsed reports (or parts of them). path: the prefix for the paths printed.

    Returns:
        One line per difference: ``"path: a != b"``, or a key or list length present on one side.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k in UNREPRODUCIBLE:
                continue
            where = f"{path}.{k}" if path else k
            if k not in a or k not in b:
                out.append(f"{where}: only in the {'second' if k not in a else 'first'} report")
            else:
                out += differences(a[k], b[k], where)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)} items"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{path}[{i}]")]
    return [] if _same(a, b) else [f"{path}: {a!r} != {b!r}"]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m simdyn.verify.compare FIRST/report.json SECOND/report.json")
        return 2
    found = differences(load(args[0]), load(args[1]))
    for line in found[:200]:
        print(line)
    if len(found) > 200:
        print(f"... and {len(found) - 200} more")
    print(f"{len(found)} differing fields" if found else "identical (timings and provenance aside)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
