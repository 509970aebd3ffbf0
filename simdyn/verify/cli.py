"""``simdyn verify``: run the selected claims, print the table, write report.json / report.md."""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time

from simdyn.config import ConfigError


def run_verify(args: argparse.Namespace) -> int:
    """Entry point called by ``simdyn.cli`` (args: claims, seeds, quick, out, key).

    Returns 0 when every negative control failed as it must (whatever the claims' verdicts),
    1 when some control did not fail (the pipeline cannot be trusted).
    """
    import jax

    import simdyn
    from simdyn.verify import report
    from simdyn.verify.registry import resolve_claims, run_claim
    from simdyn.verify.runs import clear_memo

    simdyn.enable_x64()  # before anything is built: closed-form comparisons run in float64
    claims = resolve_claims(getattr(args, "claims", None))
    scale = "quick" if getattr(args, "quick", True) else "full"
    key = int(getattr(args, "key", 0))
    if key < 0:
        raise ConfigError(f"invalid --key {key}: must be a non-negative integer")
    seeds = getattr(args, "seeds", None)
    out = getattr(args, "out", "verify-report")
    clear_memo()
    start = time.perf_counter()
    outcomes = []
    for claim in claims:
        t0 = time.perf_counter()
        print(f"[verify] {claim} ({scale}) ...", file=sys.stderr, flush=True)
        outcomes.extend(run_claim(claim, scale, key, seeds))
        print(f"[verify] {claim} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    wall = time.perf_counter() - start
    rows = report.evaluate(outcomes)
    meta = {
        "scale": scale,
        "claims": claims,
        "key": key,
        "seeds_override": seeds,
        "wall_seconds": wall,
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "simdyn_version": simdyn.__version__,
        "jax_version": jax.__version__,
        "platform": jax.default_backend(),
        "python": platform.python_version(),
    }
    print(report.format_table(rows))
    print()
    print(report.format_details(rows))
    jpath, mpath = report.write(rows, meta, out)
    print(f"\n{len(claims)} claims, {len(rows)} rows in {wall:.1f} s; wrote {jpath} and {mpath}")
    clear_memo()
    return 0 if all(r.control_ok for r in rows) else 1
