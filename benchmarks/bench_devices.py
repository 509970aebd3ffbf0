"""Throughput of ``simulate`` vs the number of devices the seed axis is split over.

Each device count runs in a fresh subprocess (``--xla_force_host_platform_device_count`` must be
set before JAX starts). On a CPU host the "devices" are simulated: they share the host's cores,
so this measures the overhead and the parallel slack of the sharded program, not extra hardware.
On a multi-GPU host pass ``--real`` to use the real local devices instead.

    python benchmarks/bench_devices.py --devices 1 2 4 --seeds 64 --steps 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = """
import json, sys, time
import jax
from simdyn import apply_overrides, preset, simulate
args = json.loads(sys.argv[1])
cfg = apply_overrides(preset("fig1"), args["sets"])
seeds, devices = args["seeds"], args["devices"]
chunk = -(-seeds // devices)  # all seeds in one call
simulate(cfg, seeds, 0, chunk_size=chunk, devices=devices)  # compile
times = []
for _ in range(args["repeats"]):
    start = time.perf_counter()
    ds = simulate(cfg, seeds, 0, chunk_size=chunk, devices=devices)
    times.append(time.perf_counter() - start)
best = sorted(times)[len(times) // 2]
print(json.dumps({"devices": devices, "median_s": best,
                  "seed_steps_per_s": seeds * cfg.train.steps / best,
                  "platform": jax.default_backend(), "local_devices": jax.local_device_count()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--real", action="store_true", help="use real devices (GPU/TPU host)")
    parser.add_argument(
        "--set", action="append", default=[], help="config override, e.g. n=200 (fig1 base)"
    )
    args = parser.parse_args()
    sets = {"n": 200, "m": 2, "d": 400, "steps": args.steps, "log_every": 10, "probe_every": -1}
    for item in args.set:
        k, _, v = item.partition("=")
        sets[k] = v
    rows = []
    for n in args.devices:
        env = dict(os.environ)
        if not args.real:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
            env["JAX_PLATFORMS"] = "cpu"
        payload = json.dumps(
            {"sets": sets, "seeds": args.seeds, "devices": n, "repeats": args.repeats}
        )
        out = subprocess.run(
            [sys.executable, "-c", CHILD, payload], env=env, capture_output=True, text=True
        )
        if out.returncode:
            sys.exit(out.stderr)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]["seed_steps_per_s"]
    print(f"config: fig1 with {sets}; {args.seeds} seeds, all in one call per run")
    print("| devices | median wall (s) | seed-steps/s | vs first |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['devices']} | {r['median_s']:.3f} | {r['seed_steps_per_s']:,.0f} | "
            f"{r['seed_steps_per_s'] / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
