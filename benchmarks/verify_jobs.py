"""Wall time of ``simdyn verify``: one process against ``--jobs N``, and a cold against a warm
``--compile-cache``.

Four runs of the same claims at the same scale and key, one after the other, each a fresh
``python -m simdyn verify`` process (start-up, imports and compilation included, as a user sees
it):

1. ``--jobs 1 --compile-cache none``  (the one-process baseline)
2. ``--jobs N --compile-cache none``  (worker processes)
3. ``--jobs N --compile-cache DIR``   (an empty cache: compiles and writes)
4. ``--jobs N --compile-cache DIR``   (the same cache again: loads)

With ``--repeats R`` the four are repeated, rotating which goes first, so that a change of the
machine's load hits all alike; read the ratios of the medians. Every run's report.json is
compared with run 1's field by field (``python -m simdyn.verify.compare``): neither the
workers nor the cache may change a result.

Run it (writes OUT/verify_jobs.md and .json; nothing else)::

    python benchmarks/verify_jobs.py --out benchmarks/results/DATE --jobs 2 \
        [--repeats 1] [--paper all] [--claims CC-early,FS-dim,...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
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
    parser.add_argument("--repeats", type=int, default=1, help="rounds of four runs (default 1)")
    parser.add_argument("--paper", default="all", help="--paper of the runs (default all)")
    parser.add_argument("--claims", default=None, help="--claims of the runs (default all)")
    args = parser.parse_args(argv)

    common = ["--paper", args.paper] + (["--claims", args.claims] if args.claims else [])
    n = str(args.jobs)
    names = [
        "1 process",
        f"{n} processes",
        f"{n} processes, cold cache",
        f"{n} processes, warm cache",
    ]
    times: dict[str, list[float]] = {name: [] for name in names}
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    load: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            cache = Path(tmp) / f"xla-{repeat}"
            shutil.rmtree(cache, ignore_errors=True)
            runs = {
                names[0]: ["--jobs", "1", "--compile-cache", "none"],
                names[1]: ["--jobs", n, "--compile-cache", "none"],
                names[2]: ["--jobs", n, "--compile-cache", str(cache)],
                names[3]: ["--jobs", n, "--compile-cache", str(cache)],
            }
            # Rotate the uncached pair; the cold run must precede the warm one.
            order = [names[0], names[1]] if repeat % 2 == 0 else [names[1], names[0]]
            for name in [*order, names[2], names[3]]:
                load.append(os.getloadavg()[0])
                folder = Path(tmp) / f"r{repeat}-{names.index(name)}"
                times[name].append(_run([*common, *runs[name]], folder))
                print(f"{name}: {times[name][-1]:.1f} s", flush=True)
            base = Path(tmp) / f"r{repeat}-0" / "report.json"
            for i in range(1, 4):
                other = Path(tmp) / f"r{repeat}-{i}" / "report.json"
                check = [sys.executable, "-m", "simdyn.verify.compare", str(base), str(other)]
                if subprocess.run(check, stdout=subprocess.DEVNULL).returncode != 0:
                    print(f"run {names[i]!r} differs from the one-process run")
                    return 1
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "command": " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "started": started,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "load_1min_at_each_start": load,
        "seconds": times,
        "median_seconds": median,
        "reports_identical": True,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verify_jobs.json").write_text(json.dumps(result, indent=1))
    rows = "".join(
        f"| {name} | {', '.join(f'{s:.1f}' for s in t)} | {median[name]:.1f} | "
        f"{median[names[0]] / median[name]:.2f}x |\n"
        for name, t in times.items()
    )
    (out / "verify_jobs.md").write_text(
        f"# simdyn verify: worker processes and the compile cache\n\n"
        f"Command: `{result['command']}`; started {result['started']}; {result['machine']}; "
        f"1-minute load at each run's start: {', '.join(f'{x:.1f}' for x in load)}.\n\n"
        "| run | wall seconds (each) | median | speed-up over 1 process |\n|---|---|---|---|\n"
        + rows
        + "\nEvery report is identical to the one-process run's, field by field.\n"
    )
    print(f"wrote {out / 'verify_jobs.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
