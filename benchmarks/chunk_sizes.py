"""End to end ``simdyn.simulate`` of one preset at several CPU chunk sizes, side by side.

    python benchmarks/chunk_sizes.py [--preset fig2a] [--seeds 256] [--chunks auto,64,32,16,8]

Plain script, not a test. Each chunk size runs twice in alternating rounds: the first call of a
chunk size compiles its program (``cold``), the second reuses it (``warm``), so the two columns
separate compile time from run time. ``auto`` is :func:`simdyn.chunking.auto_chunk_size`.
Every chunk size's dataset must equal the first one's: a seed's result may not depend on the
chunking (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import datetime
import os
import time

import numpy as np

import simdyn
from simdyn import chunking as sim
from simdyn import preset


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="fig2a")
    ap.add_argument("--seeds", type=int, default=256)
    ap.add_argument("--chunks", default="auto,64,32,16,8")
    args = ap.parse_args(argv)
    cfg = preset(args.preset)
    auto = sim.auto_chunk_size(cfg, args.seeds)
    chunks = [auto if c == "auto" else int(c) for c in args.chunks.split(",")]
    print(
        f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {args.preset}, "
        f"{args.seeds} seeds x {cfg.train.steps} steps, load {os.getloadavg()[0]:.2f}; "
        f"auto chunk {auto} (last-level cache {sim.last_level_cache_bytes() >> 20} MiB)"
    )
    simdyn.simulate(cfg.replace(steps=cfg.train.log_every), seeds=2)  # first-use costs
    seconds: dict[int, list[float]] = {}
    first = {}
    for _ in range(2):
        for c in chunks:
            start = time.perf_counter()
            ds = simdyn.simulate(cfg, seeds=args.seeds, chunk_size=c)
            seconds.setdefault(c, []).append(time.perf_counter() - start)
            first.setdefault(c, ds)
    ref = first[chunks[0]]
    ok = True
    for c in chunks:
        same = all(np.array_equal(first[c][v].values, ref[v].values) for v in ref.data_vars)
        ok &= same
        cold, warm = seconds[c]
        rate = args.seeds * cfg.train.steps / warm
        print(
            f"chunk {c:4d}{' (auto)' if c == auto else '':7s}: cold {cold:6.1f} s, warm "
            f"{warm:6.1f} s ({rate:,.0f} seed-steps/s), identical to chunk {chunks[0]}: {same}"
        )
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
