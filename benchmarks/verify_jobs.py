"""Wall time of ``simdyn verify`` with one process against ``--jobs N`` worker processes.

Both runs check the same claims at the same scale and key, one after the other, alternating
which goes first on each repeat, so that a change of the machine's load hits both alike; the
ratio of their medians is the figure to read. Each run is a fresh ``python -m simdyn verify``
process (start-up, imports and compilation included, as a user sees it), and its report.json
is compared with the one-process run's field by field (:mod:`simdyn.verify.compare`): the
verdicts must not depend on ``--jobs``.

Run it (writes OUT/verify_jobs.md and .json; nothing else)::

    python benchmarks/verify_jobs.py --out benchmarks/results/DATE --jobs 2 --repeats 1 \
        [--paper all] [--claims CC-early,FS-dim,...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(args: list[str], out: Path) -> float:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "simdyn", "verify", "--quick", *args, "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for verify_jobs.md/.json")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs (default 1)")
    parser.add_argument("--paper", default="all", help="--paper of the runs (default all)")
    parser.add_argument("--claims", default=None, help="--claims of the runs (default all)")
    args = parser.parse_args(argv)
    common = ["--paper", args.paper] + (["--claims", args.claims] if args.claims else [])
    times: dict[str, list[float]] = {"1": [], str(args.jobs): []}
    load: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = ["1", str(args.jobs)] if repeat % 2 == 0 else [str(args.jobs), "1"]
            for jobs in order:
                load.append(os.getloadavg()[0])
                folder = Path(tmp) / f"r{repeat}-j{jobs}"
                times[jobs].append(_run([*common, "--jobs", jobs], folder))
                print(f"jobs {jobs}: {times[jobs][-1]:.1f} s", flush=True)
            # The documented command-line comparison (exit 1 and the differing fields).
            one = Path(tmp) / f"r{repeat}-j1" / "report.json"
            many = Path(tmp) / f"r{repeat}-j{args.jobs}" / "report.json"
            check = [sys.executable, "-m", "simdyn.verify.compare", str(one), str(many)]
            if subprocess.run(check).returncode != 0:
                return 1
    median = {j: statistics.median(t) for j, t in times.items()}
    result = {
        "command": " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_1min_at_each_start": load,
        "seconds": times,
        "median_seconds": median,
        "ratio_one_over_many": median["1"] / median[str(args.jobs)],
        "reports_identical": True,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verify_jobs.json").write_text(json.dumps(result, indent=1))
    (out / "verify_jobs.md").write_text(
        f"# simdyn verify --jobs {args.jobs} against one process\n\n"
        f"Command: `{result['command']}`; started {result['started']}; {result['machine']}; "
        f"1-minute load at each run's start: {', '.join(f'{x:.1f}' for x in load)}.\n\n"
        f"| jobs | wall seconds (each run) | median |\n|---|---|---|\n"
        + "".join(
            f"| {j} | {', '.join(f'{s:.1f}' for s in t)} | {median[j]:.1f} |\n"
            for j, t in times.items()
        )  # fmt: skip
        + f"\nOne process / {args.jobs} processes: {result['ratio_one_over_many']:.2f}x; the "
        "reports are identical field by field.\n"
    )
    print(f"ratio {result['ratio_one_over_many']:.2f}; wrote {out / 'verify_jobs.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
