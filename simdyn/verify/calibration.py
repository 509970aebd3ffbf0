"""Null calibration: the reference simulator at many fresh keys, and each row's verdict rates.

A verifier's false alarms are measured, not assumed: with the unbroken simulator every row whose
claim is true should hold or be inconclusive, and fail at most as often as its level alpha. This
module runs every claim at one scale under each of a list of keys (keys no development run
used), records each row's verdict, its controls' verdict and its sub-tests' verdicts per key
(one JSON file per key, written atomically, so an interrupted calibration resumes where it
stopped), and summarizes the rates of ``holds``, ``fails`` and ``inconclusive`` per row with
exact Clopper-Pearson intervals.

A row's FALSE-FAIL rate counts only rows whose claim is true on the reference simulator. Rows
that the committed confirmatory run found to fail (a finding, e.g. JOINT [SGD] at beta = 0.25)
are listed with their rates but are not false fails. A row whose observed false-fail rate is
above its alpha is a defect of the verifier and is flagged.

Run it (the report under experiments/verify-null/ came from this command)::

    python -m simdyn.verify.calibration --scale quick --keys 900001-900020 --out DIR
    python -m simdyn.verify.calibration --summarize DIR [--findings experiments/verify-full]

Everything is written under DIR; progress goes to the ``progress`` callback (stderr from the
command line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simdyn.verify.stats import ALPHA, clopper_pearson


def parse_keys(text: str) -> list[int]:
    """``"a-b"`` (inclusive) or ``"k1,k2,..."`` -> sorted distinct non-negative keys."""
    keys: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = (int(v) for v in part.split("-", 1))
            keys.update(range(lo, hi + 1))
        elif part:
            keys.add(int(part))
    if not keys or min(keys) < 0:
        from simdyn.config import ConfigError

        raise ConfigError(f"invalid --keys {text!r}: need non-negative integers, e.g. 1-20")
    return sorted(keys)


def run_key(key: int, scale: str, claims: Sequence[str]) -> dict[str, Any]:
    """Every claim at ``scale`` under ``key``: per row its verdicts (JSON-able)."""
    from simdyn.verify import report
    from simdyn.verify.registry import clear_caches, run_claim

    start = time.perf_counter()
    clear_caches()
    outcomes = [o for claim in claims for o in run_claim(claim, scale, key)]  # type: ignore[arg-type]
    rows = report.evaluate(outcomes)
    clear_caches()
    return {
        "key": key,
        "scale": scale,
        "seconds": time.perf_counter() - start,
        "rows": [
            {
                "claim": r.outcome.claim,
                "verdict": r.verdict,
                "control_verdict": r.control_verdict,
                "sub_tests": [t.name for t in r.outcome.tests],
                "sub_verdicts": list(r.sub_verdicts),
            }
            for r in rows
        ],
    }


def calibrate(
    keys: Sequence[int],
    scale: str,
    out: Path,
    claims: Sequence[str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Path]:
    """Run :func:`run_key` for every key without a finished file in ``out``; returns the files."""
    from simdyn.verify.registry import resolve_claims

    chosen = resolve_claims(list(claims) if claims else None)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, key in enumerate(keys):
        path = out / f"key-{key}.json"
        files.append(path)
        if path.exists():
            progress(f"key {key}: done earlier ({path})")
            continue
        progress(f"key {key} ({i + 1} of {len(keys)}) ...")
        result = run_key(key, scale, chosen)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, path)  # atomic: a killed run never leaves a partial key file
        progress(f"key {key}: {result['seconds']:.0f} s")
    return files


def findings(folder: Path | None) -> set[str]:
    """Rows the confirmatory report in ``folder`` (report.json.gz or report.json) found to fail."""
    if folder is None:
        return set()
    import gzip

    for name, opener in (("report.json.gz", gzip.open), ("report.json", open)):
        path = folder / name
        if path.exists():
            with opener(path, "rt") as fh:
                report = json.load(fh)
            return {row["claim"] for row in report["rows"] if row.get("verdict") == "fails"}
    return set()


def summarize(folder: Path, known_failures: set[str], alpha: float = ALPHA) -> tuple[str, bool]:
    """The calibration table (markdown) from the key files in ``folder``, and whether every true
    row's observed false-fail rate is <= alpha."""
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("key-*.json"))]
    if not runs:
        from simdyn.config import ConfigError

        raise ConfigError(f"no key-*.json files in {folder}: run the calibration first")
    order: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    controls: dict[str, int] = {}
    for run in runs:
        for row in run["rows"]:
            name = row["claim"]
            if name not in counts:
                order.append(name)
                counts[name] = {"holds": 0, "fails": 0, "inconclusive": 0}
                controls[name] = 0
            counts[name][row["verdict"]] += 1
            controls[name] += row["control_verdict"] == "fails"
    n = len(runs)
    lines = [
        f"{n} keys ({', '.join(str(r['key']) for r in runs)}), scale {runs[0]['scale']}; "
        f"{sum(r['seconds'] for r in runs):.0f} s of claims in all.",
        "",
        "| row | holds | inconclusive | fails [95% CI] | controls fail | false-fail rate |",
        "|---|---|---|---|---|---|",
    ]
    ok = True
    for name in order:
        c = counts[name]
        lo, hi = clopper_pearson(c["fails"], n)
        rate = c["fails"] / n
        if name in known_failures:
            judged = "a finding of the confirmatory run (not a false fail)"
        elif rate <= alpha:
            judged = f"{rate:.3g} <= {alpha:g}: ok"
        else:
            judged = f"**{rate:.3g} > {alpha:g}: defect**"
            ok = False
        lines.append(
            f"| {name} | {c['holds']} | {c['inconclusive']} | {c['fails']} [{lo:.3f}, {hi:.3f}] "
            f"| {controls[name]} of {n} | {judged} |"
        )
    return "\n".join(lines), ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simdyn.verify.calibration",
        description="Null calibration of simdyn verify: every claim at many fresh keys.",
    )
    parser.add_argument("--scale", default="quick", choices=("small", "quick", "full"))
    parser.add_argument("--keys", default="900001-900020", help="a-b or k1,k2,... (fresh keys)")
    parser.add_argument("--claims", default=None, help="comma-separated claim ids (default all)")
    parser.add_argument("--out", default=None, help="folder for key-*.json (resumable)")
    parser.add_argument("--summarize", default=None, help="print the table of a finished folder")
    parser.add_argument("--findings", default=None, help="a confirmatory report's folder")
    args = parser.parse_args(argv)
    if args.summarize:
        known = findings(Path(args.findings) if args.findings else None)
        table, ok = summarize(Path(args.summarize), known)
        print(table)
        return 0 if ok else 1
    if args.out is None:
        parser.error("--out is required unless --summarize is given")
    import simdyn

    simdyn.enable_x64()
    claims = args.claims.split(",") if args.claims else None
    calibrate(
        parse_keys(args.keys), args.scale, Path(args.out), claims,
        progress=lambda msg: print(f"[calibration] {msg}", file=sys.stderr, flush=True),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
