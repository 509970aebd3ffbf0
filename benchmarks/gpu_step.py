"""fig2a full-batch GD step on an accelerator at many seeds: seed-steps/s and memory per seed.

    python benchmarks/gpu_step.py --seeds 1000 10000 100000 --steps 500 --out DIR
    python benchmarks/gpu_step.py --seeds 8 16 32 --steps 20 --out DIR      # CPU smoke sizes

Run by benchmarks/gpu.sh (issue 16). The kernel is benchmarks/run.py's, so the numbers compare
with its tables: Theta <- Theta - lr G(Theta) with simdyn's exact gradient of ``--backend``
(default structured, what ``backend="auto"`` picks at fig2a), ``steps`` steps in one
``simdyn.run_loop``, vmapped over seeds, jitted: ``jit(vmap(scan(step)))`` on ``preset("fig2a")``.
Per seed count, ascending:

* setup (data sampling and moment building, not timed) runs as one jitted ``lax.map`` over
  groups of at most ``--setup-batch`` vmapped seeds, so its temporaries stay small;
* the step program is compiled first (lower + compile: the warm-up, reported as compile s),
  then timed once, and again while the time budget allows; run s is the fastest timed run;
* memory per seed: ``(peak_bytes_in_use after the run - bytes_in_use before the setup) /
  seeds`` from ``jax.devices()[0].memory_stats()`` where the backend reports it (GPU: yes,
  CPU: no). The peak never resets, but the sizes ascend and the previous size's arrays are
  freed first, so each size's peak is its own. Beside it: XLA's buffer assignment of the step
  program (``compiled.memory_analysis()``) and the hand count
  ``memory_per_seed`` of the representation (:mod:`simdyn.objectives`);
* checks: every final Theta is finite, and the first seeds' final Theta agrees with the same
  seeds at the smallest size (same keys; only the vmap width differs).

``--budget-s``: when the next size's 500-step run (extrapolated from the previous size) would
not fit in what is left, its steps are cut to fit (at least ``--min-steps``) and the row says
so; a size that cannot fit at all, or whose memory (extrapolated) exceeds 90 % of the device's,
is skipped with its reason. The JSON and markdown are rewritten after every size, so a run
stopped by a timeout keeps the sizes it finished.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402  (benchmarks/run.py: the timed kernel and its setup)

from simdyn import objectives, preset  # noqa: E402

MiB = 1 << 20
CHECK_SEEDS = 8  # seeds compared across sizes


def device_memory() -> dict | None:
    """The default device's allocator statistics (None where the backend reports none)."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 (backends without the call raise various errors)
        return None
    return dict(stats) if stats else None


def machine() -> dict:
    dev = jax.devices()[0]
    mem = device_memory() or {}
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": getattr(dev, "device_kind", "?"),
        "device_bytes_limit": mem.get("bytes_limit"),
        "host_cores": os.cpu_count(),
        "xla_python_client_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
    }


def measure(cfg, backend: str, seeds: int, steps: int, setup_batch: int, budget_left: float):
    """One row: setup, compile, timed runs, memory, final Theta (host copy of CHECK_SEEDS)."""
    base_in_use = (device_memory() or {}).get("bytes_in_use")
    setup_one, run_one = bench.simdyn_programs(cfg, backend, steps)
    del setup_one  # (the vmapped setup of run.py; here a lax.map over groups instead)
    setup = jax.jit(
        lambda keys: jax.lax.map(
            lambda k: bench._setup_one(cfg, backend, k), keys, batch_size=min(seeds, setup_batch)
        )
    )
    t0 = time.perf_counter()
    state, theta0 = bench.block(setup(bench.seed_keys(seeds)))
    setup_s = time.perf_counter() - t0

    program = jax.jit(jax.vmap(run_one))
    t0 = time.perf_counter()
    compiled = program.lower(state, theta0).compile()
    compile_s = time.perf_counter() - t0

    runs = []
    theta = None
    while True:
        del theta
        t0 = time.perf_counter()
        theta = bench.block(compiled(state, theta0))
        runs.append(time.perf_counter() - t0)
        left = budget_left - (setup_s + compile_s + sum(runs))
        if len(runs) >= 2 or runs[-1] * 1.5 > left:
            break
    mem = device_memory() or {}
    peak = mem.get("peak_bytes_in_use")
    xla = compiled.memory_analysis()
    xla_bytes = None
    if xla is not None:
        xla_bytes = xla.temp_size_in_bytes + xla.argument_size_in_bytes + xla.output_size_in_bytes
    finite = bool(jnp.isfinite(theta).all())
    head = np.asarray(theta[:CHECK_SEEDS])
    row = bench._rates(cfg, backend, seeds, steps, min(runs))
    row.update(
        backend=backend,
        setup_s=setup_s,
        compile_s=compile_s,
        runs_s=runs,
        finite=finite,
        peak_bytes=peak,
        base_bytes=base_in_use,
        measured_per_seed_bytes=(peak - (base_in_use or 0)) / seeds if peak else None,
        xla_program_bytes=xla_bytes,
        xla_per_seed_bytes=xla_bytes / seeds if xla_bytes else None,
        model_per_seed_bytes=objectives.get(backend).memory_per_seed(cfg),
    )
    del state, theta0, theta, compiled
    return row, head


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def report(res: dict) -> str:
    m = res["machine"]
    cfg = res["config"]
    lines = [
        f"# fig2a GD step at many seeds ({res['backend']}, {cfg})",
        "",
        f"`{res['command']}`; {m['date']}; jax {m['jax']}, backend {m['backend']}, "
        f"{m['device_kind']} ({', '.join(m['devices'])}), device memory limit "
        f"{fmt(m['device_bytes_limit'] and m['device_bytes_limit'] / 2**30)} GiB, "
        f"python {m['python']}, {m['host_cores']} host cores. "
        f"Hand count per seed-step: {fmt(res['flops_per_seed_step'])} FLOP, "
        f"{fmt(res['bytes_per_seed_step'])} B.",
        "",
        "| seeds | steps | setup s | compile s | run s (timed runs) | seed-steps/s | us/seed-step "
        "| GFLOP/s | GB/s (hand count) | MiB/seed measured (peak) | MiB/seed XLA buffers "
        "| MiB/seed cost model | finite | max rel. diff vs smallest | note |",
        "|" + "---|" * 15,
    ]
    for r in res["rows"]:
        if r.get("skipped"):
            lines.append(f"| {fmt(r['seeds'])} | - |" + " - |" * 12 + f" {r['skipped']} |")
            continue
        mib = lambda b: fmt(b / MiB) if b else "-"
        runs = ", ".join(f"{t:.3g}" for t in r["runs_s"])
        lines.append(
            f"| {fmt(r['seeds'])} | {r['steps']} | {fmt(r['setup_s'])} | {fmt(r['compile_s'])} "
            f"| {fmt(r['run_s'])} ({runs}) | {fmt(r['seed_steps_per_s'])} "
            f"| {fmt(r['us_per_seed_step'])} | {fmt(r['gflops'])} | {fmt(r['gbytes'])} "
            f"| {mib(r['measured_per_seed_bytes'])} | {mib(r['xla_per_seed_bytes'])} "
            f"| {mib(r['model_per_seed_bytes'])} | {'yes' if r['finite'] else 'NO'} "
            f"| {fmt(r.get('max_rel_diff_vs_smallest'))} | {r.get('note', '')} |"
        )
    lines += [
        "",
        "seed-steps/s = seeds x steps / run s (the fastest timed run after the compile). "
        "MiB/seed measured = (peak_bytes_in_use after the run - bytes_in_use before the setup) "
        "/ seeds, from `jax.devices()[0].memory_stats()` ('-': the backend reports none); "
        "XLA buffers = `compiled.memory_analysis()` (arguments + outputs + temporaries) of the "
        "step program / seeds; cost model = the representation's `memory_per_seed` "
        "(`simdyn.objectives`). Max rel. diff: the "
        f"first {CHECK_SEEDS} seeds' final Theta against the same seeds at the smallest size.",
        "",
        f"Total: {res['total_s']:.1f} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--steps", type=int, default=500, help="GD steps per timed run")
    parser.add_argument("--backend", default="structured", help="structured, sample, ...")
    parser.add_argument("--setup-batch", type=int, default=1024, help="seeds per setup group")
    parser.add_argument("--budget-s", type=float, default=150.0, help="time budget, all sizes")
    parser.add_argument("--min-steps", type=int, default=20, help="fewest steps when cut")
    parser.add_argument("--out", default="benchmarks/results/gpu_step", help="folder for .md/.json")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = preset("fig2a")
    cost = objectives.get(args.backend).step_cost(cfg)
    d = cfg.data
    res = {
        "command": "python benchmarks/gpu_step.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "backend": args.backend,
        "config": f"fig2a: n={d.n}, m={d.m}, d={d.d}, K={d.K}, p={cfg.model.p}, "
        f"{cfg.train.dtype}, lr={cfg.train.lr}",
        "flops_per_seed_step": cost.flops,
        "bytes_per_seed_step": cost.bytes,
        "rows": [],
    }
    print(f"[gpu_step] {res['machine']}", flush=True)
    limit = res["machine"]["device_bytes_limit"]
    prev = None
    ref = None
    for seeds in sorted(args.seeds):
        left = args.budget_s - (time.perf_counter() - start)
        steps, note = args.steps, ""
        per_seed = (prev or {}).get("measured_per_seed_bytes")
        per_seed = per_seed or objectives.get(args.backend).memory_per_seed(cfg)
        if limit and per_seed * seeds > 0.9 * limit:
            skip = f"skipped: {per_seed * seeds / 2**30:.1f} GiB (extrapolated) > 90 % of device"
        elif prev is not None:
            # one run of `steps` steps scaled linearly in seeds from the previous size; setup
            # and compile (mostly compile time, not linear in seeds) taken twice the previous
            per_step = prev["run_s"] / prev["steps"] * seeds / prev["seeds"]
            fixed = 2 * (prev["setup_s"] + prev["compile_s"])
            fit = int((left - fixed) / (1.2 * per_step)) if per_step > 0 else steps
            skip = None
            if fit < args.min_steps:
                need = fixed + args.min_steps * per_step
                skip = f"skipped: ~{need:.0f} s needed, {left:.0f} left"
            elif fit < steps:
                steps, note = fit, f"steps cut from {args.steps} to fit the budget"
        else:
            skip = None
        if skip:
            print(f"[gpu_step] {seeds} seeds {skip}", flush=True)
            res["rows"].append({"seeds": seeds, "skipped": skip})
            continue
        print(f"[gpu_step] {seeds} seeds x {steps} steps ...", flush=True)
        row, head = measure(cfg, args.backend, seeds, steps, args.setup_batch, left)
        if ref is None:
            ref = head
        k = min(len(ref), len(head))
        same_steps = not res["rows"] or steps == res["rows"][0].get("steps")
        row["max_rel_diff_vs_smallest"] = (
            float(np.max(np.abs(head[:k] - ref[:k])) / max(float(np.max(np.abs(ref[:k]))), 1e-30))
            if same_steps
            else None
        )
        row["note"] = note
        res["rows"].append(row)
        prev = row
        mib = {
            k: fmt(row[k] / MiB) if row[k] else "-"
            for k in ("measured_per_seed_bytes", "xla_per_seed_bytes", "model_per_seed_bytes")
        }
        print(
            f"[gpu_step] {seeds} seeds: {row['seed_steps_per_s']:,.0f} seed-steps/s, "
            f"compile {row['compile_s']:.2f} s, runs {row['runs_s']}, MiB/seed measured "
            f"{mib['measured_per_seed_bytes']}, XLA {mib['xla_per_seed_bytes']}, "
            f"model {mib['model_per_seed_bytes']}; finite {row['finite']}",
            flush=True,
        )
        res["total_s"] = time.perf_counter() - start
        (out / "gpu_step.json").write_text(json.dumps(res, indent=1, default=str))
        (out / "gpu_step.md").write_text(report(res))
    res["total_s"] = time.perf_counter() - start
    text = report(res)
    (out / "gpu_step.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "gpu_step.md").write_text(text)
    print(text, flush=True)
    if any(not r.get("finite", True) for r in res["rows"]):
        raise SystemExit("[gpu_step] non-finite Theta in some row")


if __name__ == "__main__":
    main()
