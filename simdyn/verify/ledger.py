"""The confirmatory key from the declared rules, and the ledger of every confirmatory run.

Forking paths are closed in two ways:

* **The key follows the rules.** :func:`rules_fingerprint` hashes what a confirmatory run is
  judged by: every claim's declared rows, rules and controls (``simdyn verify --rules``), its
  full-scale design, and the shared decision constants (alpha, the exclusion cap). The
  confirmatory key is derived from that hash (:func:`confirmatory_key`), so any change of a rule,
  a threshold or a design gives a new key by itself, one that no development run has used
  (development runs use small registered keys, which the derived key never equals).
* **Every confirmatory run is kept.** The ledger (a JSON list, committed beside the reports in
  ``experiments/verify-full/ledger.json``) holds one entry per run: date, rules fingerprint,
  key, rules commit, wall time and each row's verdict and controls' verdict. ``simdyn verify
  --full --ledger FILE`` appends the run it just made; :func:`pooled` reports, per row, every
  verdict it ever got, so a rule change cannot hide an earlier outcome. When a rule changes,
  the protocol is to run the old rules on the new key as well and keep both entries.

Example:
  >>> key = confirmatory_key("0" * 64)
  >>> 0 <= key < 2**58 and key not in (0, 1, 2, 3, 11)
  True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simdyn.config import ConfigError

KEY_BITS = 58  # stream keys are key * 16 + stream < 2**62 (simdyn.verify.common.stream_key)
RESERVED_KEYS = frozenset(range(1024))  # the small hand-picked keys of tests and development


def rules_text(claim_ids: Sequence[str] | None = None) -> str:
    """Everything a confirmatory run is judged by, as text (deterministic).

    Args:
      claim_ids: the claims (default: all registered claims).

    Returns:
      Per claim: its ``--rules`` lines and the repr of its full-scale design; then the shared
      decision constants.
    """
    from simdyn.verify import registry, stats
    from simdyn.verify.claim import describe_rules

    lines = []
    # The default paper's claims only when none are named: naming CLAIM_IDS imports that paper.
    for claim_id in claim_ids or registry.CLAIM_IDS:
        claim = registry.declaration(claim_id)
        lines += describe_rules(claim)
        lines.append(f"  design[full] {claim.designs['full']!r}")
    lines.append(f"alpha={stats.ALPHA!r} max_diverged_fraction={stats.MAX_DIVERGED_FRACTION!r}")
    return "\n".join(lines) + "\n"


def rules_fingerprint(claim_ids: Sequence[str] | None = None) -> str:
    """SHA-256 (hex) of :func:`rules_text`."""
    return hashlib.sha256(rules_text(claim_ids).encode()).hexdigest()


def confirmatory_key(fingerprint: str | None = None) -> int:
    """The confirmatory base key of a rules fingerprint (default: the current rules).

    Args:
      fingerprint: a :func:`rules_fingerprint` (64 hex digits).

    Returns:
      An integer in [1024, 2**58): the leading 58 bits of SHA-256("simdyn-confirmatory:" +
      fingerprint), moved out of the reserved development range.
    """
    fp = rules_fingerprint() if fingerprint is None else fingerprint
    digest = hashlib.sha256(f"simdyn-confirmatory:{fp}".encode()).digest()
    key = int.from_bytes(digest, "big") >> (256 - KEY_BITS)
    return key if key not in RESERVED_KEYS else key + len(RESERVED_KEYS)


def entry(report: Mapping[str, Any], fingerprint: str) -> dict[str, Any]:
    """A ledger entry of one report (``report.json``'s content).

    Args:
      report: the parsed report of a confirmatory run.
      fingerprint: the rules fingerprint the run was made under.

    Returns:
      ``{"date", "rules_fingerprint", "key", "rules_commit", "scale", "wall_seconds",
      "rows": {row id: [verdict, controls' verdict]}}``.
    """
    meta = report.get("meta", {})
    return {
        "date": meta.get("finished"),
        "rules_fingerprint": fingerprint,
        "key": meta.get("key"),
        "rules_commit": meta.get("rules_commit"),
        "scale": meta.get("scale"),
        "wall_seconds": meta.get("wall_seconds"),
        "rows": {r["claim"]: [r["verdict"], r["control_verdict"]] for r in report["rows"]},
    }


def load(path: str | Path) -> list[dict[str, Any]]:
    """The ledger's entries ([] for a missing file).

    Raises:
      ConfigError: the file is not a JSON list of entries.
    """
    p = Path(path)
    if not p.exists():
        return []
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"invalid ledger {p}: {err}") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) and "rows" in e for e in data):
        raise ConfigError(f"invalid ledger {p}: expected a JSON list of entries with 'rows'")
    return data


def append(path: str | Path, new: Mapping[str, Any]) -> None:
    """Append an entry to the ledger at ``path`` (atomic: a temporary file, then a rename).

    Raises:
      ConfigError: the ledger already holds a run with the same key and rules fingerprint.
    """
    p = Path(path)
    entries = load(p)
    for old in entries:
        if (
            old.get("key") == new["key"]
            and old.get("rules_fingerprint") == new["rules_fingerprint"]
        ):
            raise ConfigError(
                f"ledger {p} already holds the run with key {new['key']} under these rules"
            )
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps([*entries, dict(new)], indent=1) + "\n")
    tmp.replace(p)


def pooled(entries: Sequence[Mapping[str, Any]]) -> str:
    """The pooled picture as markdown: per row, its verdict in every confirmatory run.

    Args:
      entries: ledger entries, oldest first.

    Returns:
      A table with one column per run (key and rules commit) and one line per row id that any
      run had; ``-`` where a run had no such row. A verdict is shown as ``verdict/control``.
    """
    rows: list[str] = []
    for e in entries:
        rows += [r for r in e["rows"] if r not in rows]
    head = ["row", *(f"key {e['key']} ({str(e.get('rules_commit') or '?')[:7]})" for e in entries)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = []
        for e in entries:
            v = e["rows"].get(r)
            cells.append("-" if v is None else f"{v[0]}/{v[1]}")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simdyn.verify.ledger [LEDGER]``: print the pooled picture and the key the
    current rules would use."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    path = args[0] if args else "experiments/verify-full/ledger.json"
    fp = rules_fingerprint()
    sys.stdout.write(pooled(load(path)))
    sys.stdout.write(
        f"\ncurrent rules fingerprint {fp[:16]}..., confirmatory key {confirmatory_key(fp)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
