"""Side by side, one run: the fig2a SCL GD step with a traced beta (all three products, what
simdyn ran before) and with the static SCL weight (Theta M~ not computed, what
``train.full_objective`` now compiles for loss='scl').

    python benchmarks/static_weights.py [--seeds 256] [--steps 40] [--rounds 3]

Plain script, not a test. The two programs alternate ``rounds`` times (median of ``repeats``
timed runs each, compile excluded) so machine noise hits both; the final Theta of the two must
agree exactly (beta X + (1 - beta) Y with beta = 1 is X).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402

from simdyn import preset  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=256)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    cfg = preset("fig2a")
    rates: dict[str, list[float]] = {"traced beta": [], "static SCL weight": []}
    thetas = {}
    for _ in range(args.rounds):
        for name, static in (("traced beta", None), ("static SCL weight", 1.0)):
            res = run.measure_simdyn(
                cfg, "structured", args.seeds, args.steps, args.repeats, static=static
            )
            rates[name].append(res["seed_steps_per_s"])
            thetas[name] = np.asarray(res["_theta"])
    same = np.array_equal(thetas["traced beta"], thetas["static SCL weight"])
    print(f"# {datetime.date.today()} fig2a SCL structured GD step, {args.seeds} seeds x "
          f"{args.steps} steps, float32, {args.rounds} alternating rounds")  # fmt: skip
    for name, r in rates.items():
        print(
            f"{name:>18}: median {statistics.median(r):,.0f} seed-steps/s  (rounds: "
            + ", ".join(f"{v:,.0f}" for v in r)
            + ")"
        )
    ratio = statistics.median(rates["static SCL weight"]) / statistics.median(rates["traced beta"])
    print(f"ratio static / traced: {ratio:.2f}x; final Theta identical: {same}")
    if not same:
        raise SystemExit("the static-weight step changed the trajectory")


if __name__ == "__main__":
    main()
