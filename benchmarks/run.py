"""simdyn benchmark harness: full-batch GD steps per second, FLOP/s, memory, compile time.

    python benchmarks/run.py            # default run (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick    # smoke run (under a minute)
    python benchmarks/run.py --e2e      # also time `simdyn simulate fig2a --seeds 1024`

Plain script, not a test. Every figure is measured in THIS run, side by side, so ratios are
meaningful on a shared machine even when absolute numbers are not. Method:

* the "GD step" is Theta <- Theta - lr G(Theta) with simdyn's exact gradient for a backend
  (the functions train.full_objective uses), vmapped over seeds inside one ``simdyn.run_loop``
  of ``steps`` steps (final Theta only): ``jit(vmap(scan(step)))``. Data sampling and moment
  building are a separate jitted call and are not timed; compile time is measured separately
  (lower + compile) and never included in run time;
* each timing is the median of ``repeats`` runs after one warm-up run;
* peers run the same algorithm on the same moments (benchmarks/peers.py) and their final Theta
  is checked against simdyn's;
* FLOP/s = hand-counted FLOPs (each representation's step_cost, simdyn.objectives) x
  seed-steps / seconds; bytes likewise;
* matmul peaks (XLA and BLAS, float32 2048^2) and memory bandwidth are measured in the same run.

Results go to stdout and to ``--out`` (markdown + JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402

import simdyn  # noqa: E402
from simdyn import (  # noqa: E402
    chunking,  # noqa: E402
    default_hparams,
    init_theta,
    make_train,
    objectives,  # noqa: E402
    preset,
)
from simdyn.config import Config  # noqa: E402
from simdyn.cost import estimated_seconds  # noqa: E402
from simdyn.data import sample_training_set  # noqa: E402
from simdyn.losses import loss_beta  # noqa: E402
from simdyn.seeds import streams  # noqa: E402

GiB = 1 << 30
HOST_MEMORY = 24 * GiB  # the development machine's RAM, the question the memory table answers
# Seeds per vmapped group in the lax.map variant: between the best group sizes measured at 256
# seeds (4) and at 1024 seeds (16) among 4, 16, 64 at fig2a.
BATCH = 8
CHUNKED = "simdyn structured, static SCL weight, vmapped chunks of {chunk} (as simulate runs it)"
CHUNKED_PEER = "torch vmap structured, static SCL weight, vmapped chunks of {chunk}"
# The same for the static SCL step, whose working set (~0.3 MB a seed: moments plus Theta
# temporaries) fits about 3 seeds in this machine's 1 MiB L2; 2 and 4 measured best of 1-8.
STATIC_BATCH = 4

# ------------------------------------------------------------------------------------ timing


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of fn() (which must block until done) after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def block(x):
    return jax.block_until_ready(x)


# ---------------------------------------------------------------------- the simdyn kernel


def simdyn_programs(config: Config, backend: str, steps: int, static: float | None = None):
    """(setup(keys) -> (objective, theta0), run(objective, theta0) -> theta): setup vmapped
    over seeds; the objective is ``backend``'s registered one (:mod:`simdyn.objectives`), a
    pytree, so the setup's output feeds the vmapped run."""
    lr = jnp.asarray(config.train.lr, jnp.dtype(config.train.dtype))

    def setup(key):
        return _setup_one(config, backend, key, static)

    def run_one(objective, theta0):
        out = simdyn.run_loop(
            theta0,
            lambda theta, _: objective.loss_and_grad(theta)[1],
            optax.sgd(lr),
            steps=steps,
            record=simdyn.Record(loss=False, final=True),
        )
        return out.final

    return jax.jit(jax.vmap(setup)), run_one


def seed_keys(num_seeds: int):
    base = jax.random.key(0)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_seeds, dtype=jnp.uint32))


def measure_simdyn(
    config: Config,
    backend: str,
    seeds: int,
    steps: int,
    repeats: int,
    batch: int | None = None,
    static: float | None = None,
    chunk: int | None = None,
) -> dict:
    """jit(vmap(scan)) over ``seeds`` seeds: compile s, run s, seed-steps/s, FLOP/s, memory.

    ``batch``: instead of one vmap over all seeds, ``lax.map(..., batch_size=batch)``: a loop
    over groups of ``batch`` vmapped seeds inside the same compiled program, so each group's
    working set stays in cache (see benchmarks/README.md).
    ``chunk``: as ``simulate`` runs it on the CPU: one program vmapped over ``chunk`` seeds,
    called on consecutive chunks (the seeds are cut to a multiple of ``chunk``).
    """
    if chunk is not None:
        seeds = max(chunk, seeds // chunk * chunk)
    setup, run_one = simdyn_programs(config, backend, steps, static)
    state, theta0 = block(setup(seed_keys(seeds)))
    if batch is None:
        program = jax.jit(jax.vmap(run_one))
    else:
        program = jax.jit(lambda s, t: jax.lax.map(lambda a: run_one(*a), (s, t), batch_size=batch))
    parts = [(state, theta0)]
    if chunk is not None:
        parts = [
            jax.tree.map(lambda x, i=i: x[i : i + chunk], (state, theta0))
            for i in range(0, seeds, chunk)
        ]
    start = time.perf_counter()
    compiled = program.lower(*parts[0]).compile()
    compile_s = time.perf_counter() - start
    out = {}

    def run_all():
        thetas = [block(compiled(*part)) for part in parts]
        out["theta"] = thetas[0] if len(thetas) == 1 else jnp.concatenate(thetas)

    run_s = median_seconds(run_all, repeats)
    mem = compiled.memory_analysis()
    xla_bytes = None
    if mem is not None:
        xla_bytes = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
    res = _rates(config, backend, seeds, steps, run_s)
    res.update(compile_s=compile_s, xla_program_bytes=xla_bytes, batch=batch, chunk=chunk)
    res["_theta"], res["_state"], res["_theta0"] = out["theta"], state, theta0
    return res


def _rates(config: Config, backend: str, seeds: int, steps: int, run_s: float) -> dict:
    cost = objectives.get(backend).step_cost(config)
    seed_steps = seeds * steps
    return {
        "seeds": seeds,
        "steps": steps,
        "run_s": run_s,
        "seed_steps_per_s": seed_steps / run_s,
        "us_per_seed_step": 1e6 * run_s / seed_steps,
        "gflops": cost.flops * seed_steps / run_s / 1e9,
        "gbytes": cost.bytes * seed_steps / run_s / 1e9,
        "flops_per_seed_step": cost.flops,
    }


# ------------------------------------------------------------------------------ machine


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / GiB, 1),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "jax_backend": jax.default_backend(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": os.getloadavg(),
    }
    try:
        import jaxlib
        import torch

        info["jaxlib"] = jaxlib.__version__
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    return info


def measure_peaks(repeats: int) -> dict:
    """Matmul peaks (float32 2048^2: XLA, NumPy BLAS, torch), bandwidth, gather/scatter cost."""
    n = 2048
    flops = 2 * n**3
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    peaks = {"xla_matmul_gflops": flops / median_seconds(lambda: block(mm(a)), repeats) / 1e9}
    an = np.asarray(a)
    peaks["numpy_matmul_gflops"] = flops / median_seconds(lambda: an @ an, repeats) / 1e9
    if jax.default_backend() != "cpu":
        peaks["torch_matmul_gflops"] = None  # CPU peers are not run on an accelerator
    try:
        import torch

        if jax.default_backend() != "cpu":
            raise ImportError
        at = torch.from_numpy(an)
        peaks["torch_matmul_gflops"] = flops / median_seconds(lambda: at @ at, repeats) / 1e9
    except ImportError:
        pass
    x = jnp.ones((1 << 24,), jnp.float32)  # 64 MiB: far beyond the caches
    axpy = jax.jit(lambda v: v * 1.0001 + 1.0)
    peaks["xla_stream_gbs"] = 2 * x.nbytes / median_seconds(lambda: block(axpy(x)), repeats) / 1e9
    xn = np.asarray(x)
    peaks["numpy_stream_gbs"] = 2 * xn.nbytes / median_seconds(lambda: xn * 1.0001, repeats) / 1e9
    # The same read + write on 1 MiB that stays in cache (a seed's moments are ~0.1-1 MB).
    xc, yc = np.ones((1 << 18,), np.float32), np.empty((1 << 18,), np.float32)

    def cached(reps: int = 200) -> None:
        for _ in range(reps):
            np.multiply(xc, 1.0001, out=yc)

    peaks["cache_stream_gbs"] = 200 * 2 * xc.nbytes / median_seconds(cached, repeats) / 1e9
    # Vmapped gather and scatter-add of data-dependent columns, as in the structured step.
    seeds, p, dim, count = 128, 3, 2001, 5000
    idx = jax.random.randint(jax.random.key(0), (seeds, count), 1, dim)
    vals = jnp.ones((seeds, p, count), jnp.float32)
    theta = jnp.ones((seeds, p, dim), jnp.float32)
    gather = jax.jit(jax.vmap(lambda i, t: t[:, i]))
    scatter = jax.jit(jax.vmap(lambda i, g: jnp.zeros((p, dim), jnp.float32).at[:, i].add(g)))
    elems = seeds * p * count
    peaks["gather_ns"] = 1e9 * median_seconds(lambda: block(gather(idx, theta)), repeats) / elems
    peaks["scatter_ns"] = 1e9 * median_seconds(lambda: block(scatter(idx, vals)), repeats) / elems
    # The step's own matmul shape: Theta_F (p, K+1) against the (K+1, D) coupling, vmapped over
    # seeds (tiny per-seed products: far below the 2048^2 peak on a CPU).
    k1 = 5
    a_small = jnp.ones((seeds, p, k1), jnp.float32)
    c_small = jnp.ones((seeds, k1, dim), jnp.float32)
    small = jax.jit(jax.vmap(lambda x, y: x @ y))
    small_s = median_seconds(lambda: block(small(a_small, c_small)), repeats)
    peaks["small_matmul_gflops"] = 2 * seeds * p * k1 * dim / small_s / 1e9
    return peaks


# ---------------------------------------------------------------------------- peers


def _relerr(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def measure_peer(
    name: str,
    kind: str,
    ref: dict,
    config: Config,
    seeds: int,
    steps: int,
    reps,
    chunk: int | None = None,
):
    """Run a peer on the first ``seeds`` seeds of the simdyn measurement ``ref`` (same backend).

    ``chunk`` (torch-vmap): vmapped over consecutive chunks of ``chunk`` seeds, as ``ref`` was.
    """
    beta = float(loss_beta(config.train.loss, config.train.beta))
    lr = float(config.train.lr)
    # The peers take the moments themselves (the objective pytree minus its weights).
    state = jax.tree.map(lambda x: np.asarray(x)[:seeds], tuple(ref["_state"].moments))
    theta0 = np.asarray(ref["_theta0"])[:seeds]
    if name == "torch-vmap":
        import torch

        run_all = peers.torch_vmap(kind)
        mom, th0 = peers.to_torch(state), peers.to_torch((theta0,))[0]
        size = chunk or seeds

        def run(mom, th0, beta, lr, steps):
            cut = [(tuple(m[i : i + size] for m in mom), th0[i : i + size])
                   for i in range(0, th0.shape[0], size)]  # fmt: skip
            return torch.cat([run_all(m, t, beta, lr, steps) for m, t in cut])

        out = {}
        # Intra-op threads: 1 and all cores, keep the faster (on a loaded 2-core machine torch's
        # OpenMP pool can be 30x slower with 2 threads than with 1).
        best = None
        for threads in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            run(mom, th0, beta, lr, 1)  # first call (vmap tracing / allocator warm-up)
            compile_s = time.perf_counter() - start
            run_s = median_seconds(
                lambda: out.__setitem__("t", run(mom, th0, beta, lr, steps)), reps
            )
            if best is None or run_s < best[0]:
                best = (run_s, compile_s, threads, out["t"].numpy())
        run_s, compile_s, threads, final = best
    elif name == "numpy-loop":
        run = peers.numpy_loop(kind)
        out = {}
        compile_s = 0.0
        run_s = median_seconds(
            lambda: out.__setitem__("t", run(state, theta0, beta, lr, steps)), reps
        )
        final = out["t"]
    else:  # jax-per-seed: jit of ONE seed's scan, Python loop over seeds
        backend = kind
        _, run_one = simdyn_programs(config, backend, steps)
        one = jax.jit(run_one)
        per_seed = [
            (jax.tree.map(lambda x, i=i: x[i], ref["_state"]), ref["_theta0"][i])
            for i in range(seeds)
        ]
        start = time.perf_counter()
        one.lower(*per_seed[0]).compile()
        compile_s = time.perf_counter() - start
        out = {}
        run_s = median_seconds(
            lambda: out.__setitem__("t", [block(one(s, t)) for s, t in per_seed]), reps
        )
        final = np.stack([np.asarray(t) for t in out["t"]])
    res = _rates(config, kind.removesuffix("-scl"), seeds, steps, run_s)
    res["compile_s"] = compile_s
    if name == "torch-vmap":
        res["threads"] = threads
    res["check_relerr"] = None
    if ref["steps"] == steps:
        res["check_relerr"] = _relerr(final, np.asarray(ref["_theta"])[:seeds])
    return res


# ------------------------------------------------------------------------------ memory


def memory_probe(impl: str, seeds: int) -> int:
    """Run one implementation on ``seeds`` fig2a seeds (2 steps); return the process's max RSS."""
    config = preset("fig2a")
    if impl.startswith("simdyn-"):
        backend = impl.split("-", 1)[1]
        _, run_one = simdyn_programs(config, backend, 2)
        # Setup and run in ONE program, as simulate runs them: the build temporaries count.
        whole = jax.jit(jax.vmap(lambda k: run_one(*_setup_one(config, backend, k))))
        block(whole(seed_keys(seeds)))
    else:
        import torch

        kind = impl.split("-", 1)[1]
        d = config.data
        dim, k1, p = d.d + 1, d.K + 1, config.model.p
        if kind == "dense":
            mom = tuple(torch.randn(seeds, dim, dim) * 1e-3 for _ in range(3))
        else:
            mom = (
                torch.randn(seeds, k1, k1),
                torch.randn(seeds, k1, dim),
                torch.rand(seeds, dim),
                torch.randn(seeds, 2, dim),
                torch.randn(seeds, d.n, k1),
                torch.randint(1, dim, (seeds, d.n, d.m)),
                torch.randn(seeds, d.n, d.m),
            )
        peers.torch_vmap(kind)(mom, torch.randn(seeds, p, dim) * 1e-3, 1.0, 1e-3, 2)
    return peak_rss()


def peak_rss() -> int:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries ru_maxrss over
    fork and execve, so a probe started from a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _setup_one(config: Config, backend: str, key, static: float | None = None):
    """One seed's (objective, Theta_0). static: the SCL weight as a compile-time constant (what
    simdyn builds for loss='scl' / 'ucl': only the products it keeps are computed); None: the
    same weight as a traced beta with every product computed (the SCL step before static
    weights), for the moment forms that have a static weight."""
    dtype = jnp.dtype(config.train.dtype)
    beta = jnp.asarray(loss_beta(config.train.loss, config.train.beta), dtype)
    ts = sample_training_set(streams(key).data, config.data, dtype)
    theta0 = init_theta(
        streams(key).init,
        config.model.p,
        config.data.d,
        jnp.asarray(config.model.sigma_0, dtype),
        config.model.bias,
        dtype,
    )
    objective = objectives.get(backend).build(config, ts, beta)
    if static is None and getattr(objective, "weight", None) is not None:
        objective = dataclasses.replace(objective, weight=None)
    return objective, theta0


def measure_memory(impls: dict[str, tuple[int, int]]) -> list[dict]:
    """Per-seed memory = (maxRSS(S2) - maxRSS(S1)) / (S2 - S1), each in a fresh process."""
    rows = []
    for impl, (s1, s2) in impls.items():
        rss = []
        for s in (s1, s2):
            cmd = [sys.executable, __file__, "--memory-probe", impl, str(s)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rss.append(int(out.strip().splitlines()[-1]))
        per_seed = (rss[1] - rss[0]) / (s2 - s1)
        base = rss[0] - s1 * per_seed
        rows.append(
            {
                "impl": impl,
                "seeds": (s1, s2),
                "rss_bytes": rss,
                "per_seed_bytes": per_seed,
                "base_bytes": base,
                "max_seeds_24gib": int((HOST_MEMORY - base) // per_seed) if per_seed > 0 else None,
            }
        )
    return rows


# ------------------------------------------------------------------------------ sections


def section_fig2a(args, peaks) -> dict:
    """The headline table: fig2a size, every simdyn path and every peer, one run."""
    cfg = preset("fig2a")
    q = args.quick
    s_big, t_big = (32, 10) if q else (256, 40)
    s_dense, t_dense = (2, 2) if q else (8, 5)
    if args.gpu and not q:  # (--gpu --quick: a dry run of the accelerator path, small sizes)
        s_big, t_big, s_dense, t_dense = 4096, 100, 64, 10
    reps = args.repeats
    rows = {}
    rows["simdyn structured"] = measure_simdyn(cfg, "structured", s_big, t_big, reps)
    rows["simdyn structured, static SCL weight"] = measure_simdyn(
        cfg, "structured", s_big, t_big, reps, static=1.0
    )
    # What simulate runs on the CPU: the static SCL step in cache-resident chunks of seeds (an
    # accelerator run's chunk is not the CPU cap, so that row is CPU-only).
    chunk = chunking.cpu_chunk_cap(cfg)
    if not args.gpu:
        rows[CHUNKED.format(chunk=chunk)] = measure_simdyn(
            cfg, "structured", s_big, t_big, reps, static=1.0, chunk=chunk
        )
    rows[f"simdyn structured, lax.map batches of {BATCH}"] = measure_simdyn(
        cfg, "structured", s_big, t_big, reps, batch=BATCH
    )
    rows[f"simdyn structured, static SCL weight, lax.map batches of {STATIC_BATCH}"] = (
        measure_simdyn(cfg, "structured", s_big, t_big, reps, batch=STATIC_BATCH, static=1.0)
    )
    rows["simdyn sample"] = measure_simdyn(cfg, "sample", s_big, t_big // 2, reps)
    rows["simdyn dense"] = measure_simdyn(cfg, "dense", s_dense, t_dense, reps)
    rows["simdyn projected"] = measure_simdyn(cfg, "projected", s_dense, t_dense, reps)
    ref_s, ref_d = rows["simdyn structured"], rows["simdyn dense"]
    if args.gpu:  # the CPU peers answer a CPU question; on an accelerator report simdyn alone
        for r in rows.values():
            r["pct_xla_peak"] = 100 * r["gflops"] / peaks["xla_matmul_gflops"]
            r["pct_blas_peak"] = None
        return rows
    if peers_available():
        rows["torch vmap structured"] = measure_peer(
            "torch-vmap", "structured", ref_s, cfg, s_big, t_big, reps
        )
        rows["torch vmap structured, static SCL weight"] = measure_peer(
            "torch-vmap",
            "structured-scl",
            rows["simdyn structured, static SCL weight"],
            cfg,
            s_big,
            t_big,
            reps,
        )
        mine = rows[CHUNKED.format(chunk=chunk)]
        rows[CHUNKED_PEER.format(chunk=chunk)] = measure_peer(
            "torch-vmap", "structured-scl", mine, cfg, mine["seeds"], t_big, reps, chunk=chunk
        )
        rows["torch vmap dense"] = measure_peer(
            "torch-vmap", "dense", ref_d, cfg, s_dense, t_dense, reps
        )
    s_np = 2 if q else 4
    rows["numpy loop structured"] = measure_peer(
        "numpy-loop", "structured", ref_s, cfg, s_np, t_big, max(1, reps // 2)
    )
    rows["numpy loop dense"] = measure_peer(
        "numpy-loop", "dense", ref_d, cfg, min(s_np, s_dense), t_dense, max(1, reps // 2)
    )
    rows["jax per-seed jit loop structured"] = measure_peer(
        "jax-per-seed", "structured", ref_s, cfg, min(s_big, 8 if q else 32), t_big, reps
    )
    for r in rows.values():
        r["pct_xla_peak"] = 100 * r["gflops"] / peaks["xla_matmul_gflops"]
        r["pct_blas_peak"] = 100 * r["gflops"] / peaks["numpy_matmul_gflops"]
    return rows


def peers_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def section_scaling(args) -> dict:
    """Seed-steps/s against seeds, d, p and N (fig2a otherwise)."""
    cfg = preset("fig2a")
    q = args.quick
    out = {"seeds": [], "d": [], "p": [], "n": []}
    budget = 2000 if q else 20000  # seed-steps per measurement (fewer steps for more seeds)
    seed_grid = (1, 64) if q else (1, 4, 16, 64, 256, 1024, 4096)
    if args.gpu and not q:
        seed_grid, budget = (1, 64, 1024, 4096, 16384), 400000
    for s in seed_grid:
        steps = max(2, min(200, budget // s))
        out["seeds"].append(measure_simdyn(cfg, "structured", s, steps, 1))
        if s > BATCH:
            out["seeds"].append(measure_simdyn(cfg, "structured", s, steps, 1, batch=BATCH))
    if q:  # smoke run: the seed sweep's two points only
        return out
    for d in (500, 1000, 2000, 4000, 8000):
        c = cfg.replace(d=d)
        for backend, s, t in (("structured", 64, 40), ("dense", 2, 3)):
            if backend == "dense" and d > 2000:
                continue  # three D x D matrices per seed: 0.2-0.8 GB, minutes per point
            r = measure_simdyn(c, backend, s, t, 1)
            r.update(d=d, backend=backend)
            out["d"].append(r)
    for p in (1, 3, 10, 30, 100, 300):
        c = cfg.replace(p=p)
        for backend, s, t in (("structured", 32 if p <= 30 else 8, 20), ("dense", 2, 2)):
            r = measure_simdyn(c, backend, s, t, 1)
            r.update(p=p, backend=backend)
            out["p"].append(r)
    for n in (40, 100, 300, 1000, 3000):
        c = cfg.replace(n=n)
        for backend in ("structured", "sample", "projected"):
            if backend == "projected" and c.data.num_points > 1000:
                continue
            s, t = (64, 20) if backend != "projected" else (8, 10)
            r = measure_simdyn(c, backend, s, t, 1)
            r.update(n=n, N=c.data.num_points, backend=backend)
            out["n"].append(r)
    return out


def section_cost_model(args) -> list[dict]:
    """Measured vs modelled time per seed-step for every applicable path on a few configs."""
    q = args.quick
    configs = {
        "fig2a": preset("fig2a"),
        "fig4a": preset("fig4a"),
        "fig4b": preset("fig4b"),
        "fig4a gaussian": preset("fig4a").replace(noise="gaussian", noise_placement="iid"),
        "fig2a gaussian": preset("fig2a").replace(noise="gaussian"),
    }
    if q:
        configs = {"fig4a": configs["fig4a"]}
    rows = []
    for name, cfg in configs.items():
        measured = {}
        for backend in objectives.applicable(cfg):
            if q and backend == "dense":
                continue
            cost = objectives.get(backend).step_cost(cfg)
            heavy = cost.flops > 2e7 or cost.indexed > 1e6 or cost.bytes > 2e7
            if heavy and name == "fig2a gaussian" and backend == "sample":
                continue  # N p D gathers: tens of ms per seed-step; the model already says no
            # About 0.3 s of modelled work per timed run (the model is within ~5x), 3 repeats.
            s = 2 if heavy else 16
            t = int(min(200, max(2, (0.1 if q else 0.3) / (s * estimated_seconds(cost)))))
            r = measure_simdyn(cfg, backend, s, t, 1 if q else 3)
            measured[backend] = r["us_per_seed_step"]
            rows.append(
                {
                    "config": name,
                    "seeds": s,
                    "steps": t,
                    "backend": backend,
                    "measured_us": r["us_per_seed_step"],
                    "model_us": 1e6 * estimated_seconds(cost),
                    "compile_s": r["compile_s"],
                }
            )
        chosen = objectives.choose(cfg)
        fastest = min(measured, key=measured.get)
        for row in rows:
            if row["config"] == name:
                row["chosen"] = row["backend"] == chosen
                row["fastest"] = row["backend"] == fastest
    return rows


ROOFLINE_CONFIGS = ("fig2a", "fig4a", "fig4b")


def section_roofline(args, peaks: dict) -> list[dict]:
    """Per backend at the fig2a and fig4 sizes (joint loss, beta = 0.5: every product is
    computed, so the hand counts are exact): FLOPs, bytes and gathered/scattered elements per
    seed-step (hand count beside XLA's count), the time each ceiling of THIS run allows for
    them, the measured time, which ceiling binds (the largest of the three) and the fraction
    of it reached (bound time / measured time)."""
    q = args.quick
    names = ("fig4a",) if q else ROOFLINE_CONFIGS
    rows = []
    for name in names:
        cfg = preset(name).replace(loss="joint", beta=0.5)
        for backend in objectives.applicable(cfg):
            cost = objectives.get(backend).step_cost(cfg)
            heavy = cost.flops > 2e7 or cost.indexed > 1e6 or cost.bytes > 2e7
            if q and backend == "dense":
                continue
            s = 2 if heavy else (16 if q else 64)
            t = int(min(200, max(2, (0.1 if q else 0.3) / (s * estimated_seconds(cost)))))
            measured = measure_simdyn(cfg, backend, s, t, 1 if q else 3)["us_per_seed_step"]
            xla = objectives.xla_step_cost(backend, cfg)
            per_indexed_us = 0.5e-3 * (peaks["gather_ns"] + peaks["scatter_ns"])
            ceilings = {  # microseconds per seed-step if that ceiling alone bound the step
                "matmul peak": cost.flops / (peaks["xla_matmul_gflops"] * 1e3),
                "cache stream": cost.bytes / (peaks["cache_stream_gbs"] * 1e3),
                "gather/scatter": cost.indexed * per_indexed_us,
            }
            binding = max(ceilings, key=ceilings.get)
            dram_us = cost.bytes / (peaks["xla_stream_gbs"] * 1e3)
            small_us = cost.flops / (peaks["small_matmul_gflops"] * 1e3)
            rows.append(
                {
                    "config": name,
                    "backend": backend,
                    "seeds": s,
                    "steps": t,
                    "flops": cost.flops,
                    "xla_flops": xla["flops"],
                    "bytes": cost.bytes,
                    "xla_bytes": xla["bytes accessed"],
                    "indexed": cost.indexed,
                    "ceiling_us": ceilings,
                    "measured_us": measured,
                    "binding": binding,
                    "fraction": ceilings[binding] / measured,
                    "dram_stream_us": dram_us,
                    "small_matmul_us": small_us,
                }
            )
            print(f"[bench] roofline {name} {backend}: {measured:.1f} us", flush=True)
    return rows


def section_compile(args) -> list[dict]:
    """Compile time of simulate's real program jit(vmap(make_train)) vs steps and vs seeds."""
    cfg = preset("fig2a")
    grid = [(64, 10), (64, 100), (64, 1000), (1, 100), (1024, 100)]
    if args.quick:
        return []  # one make_train compile alone is ~6 s: not in the smoke run
    rows = []
    for seeds, steps in grid:
        c = cfg.replace(steps=steps, log_every=steps // 10 if steps >= 10 else 1)
        program = jax.jit(jax.vmap(make_train(c), in_axes=(0, None)))
        lowered = program.lower(seed_keys(seeds), default_hparams(c))
        start = time.perf_counter()
        lowered.compile()
        rows.append({"seeds": seeds, "steps": steps, "compile_s": time.perf_counter() - start})
    return rows


def section_e2e(args) -> dict:
    out = Path(args.out) / "e2e_fig2a.nc"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["simdyn", "simulate", "fig2a", "--seeds", "1024", "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.exists():
        out.unlink()
    return {
        "command": " ".join(cmd[:-1] + ["/tmp/x.nc"]),
        "wall_s": wall,
        "rc": proc.returncode,
        "tail": (proc.stdout + proc.stderr)[-400:],
    }


# ------------------------------------------------------------------------------- report


def fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return str(x)


def roofline_lines(rows: list[dict], peaks: dict) -> list[str]:
    """The roofline table (see section_roofline)."""
    lines = [
        "",
        "### Roofline: each backend against the ceilings of this run (joint loss, beta = 0.5)",
        "",
        f"Ceilings (upper bounds): XLA matmul peak {fmt(peaks['xla_matmul_gflops'])} GFLOP/s "
        "(2048^2), cache-resident stream "
        f"{fmt(peaks['cache_stream_gbs'])} GB/s (1 MiB read + write), gather/scatter "
        f"{fmt(0.5 * (peaks['gather_ns'] + peaks['scatter_ns']))} ns per element. Each ceiling's "
        "column is the time per seed-step it alone would allow for the hand-counted work; the "
        "binding one is the largest; fraction = that time / measured time. Beside them, not "
        "bounds: the rate XLA reaches on the structured step's own small matmul shape, "
        f"(p, K+1) x (K+1, D) vmapped ({fmt(peaks['small_matmul_gflops'])} GFLOP/s; larger "
        "shapes, e.g. the projected form's r x r, run faster), and DRAM streaming (XLA, "
        f"{fmt(peaks['xla_stream_gbs'])} GB/s on 64 MiB), slower than measured wherever a "
        "seed's working set stays in cache.",
        "",
        "| config | backend | MFLOP (hand / XLA) | MB (hand / XLA) | indexed k | matmul peak us | "
        "cache stream us | gather/scatter us | measured us | binds | fraction | "
        "small-matmul us | DRAM us |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r["ceiling_us"]
        lines.append(
            f"| {r['config']} | {r['backend']} | {fmt(r['flops'] / 1e6)} / "
            f"{fmt(r['xla_flops'] / 1e6)} | {fmt(r['bytes'] / 1e6)} / {fmt(r['xla_bytes'] / 1e6)}"
            f" | {fmt(r['indexed'] / 1e3)} | {fmt(c['matmul peak'])} | {fmt(c['cache stream'])} | "
            f"{fmt(c['gather/scatter'])} | {fmt(r['measured_us'])} | {r['binding']} | "
            f"{fmt(r['fraction'])} | {fmt(r['small_matmul_us'])} | {fmt(r['dram_stream_us'])} |"
        )
    return lines


def report(results: dict) -> str:
    info, peaks = results["machine"], results["peaks"]
    lines = [
        f"Run: `{results['command']}` on {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; "
        f"Python {info['python']}, jax {info['jax']} ({info['jax_backend']}), "
        f"numpy {info['numpy']}, torch {info.get('torch')}; load average at start "
        f"{tuple(round(x, 1) for x in info['loadavg_start'])}, at end "
        f"{tuple(round(x, 1) for x in results['loadavg_end'])} (shared machine).",
        "",
        "### Ceilings measured in this run",
        "",
        "| XLA matmul f32 2048^2 | NumPy BLAS f32 2048^2 | torch f32 2048^2 | XLA stream | "
        "NumPy stream | NumPy stream 1 MiB (cache) | vmapped gather | vmapped scatter-add | "
        "small batched matmul |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {fmt(peaks['xla_matmul_gflops'])} GFLOP/s | {fmt(peaks['numpy_matmul_gflops'])} GFLOP/s"
        f" | {fmt(peaks.get('torch_matmul_gflops'))} GFLOP/s | {fmt(peaks['xla_stream_gbs'])} GB/s"
        f" | {fmt(peaks['numpy_stream_gbs'])} GB/s | {fmt(peaks.get('cache_stream_gbs'))} GB/s"
        f" | {fmt(peaks['gather_ns'])} ns/elem"
        f" | {fmt(peaks['scatter_ns'])} ns/elem | {fmt(peaks.get('small_matmul_gflops'))} "
        "GFLOP/s |",
    ]
    if "fig2a" in results:
        rows = results["fig2a"]
        lines += [
            "",
            "### Full-batch GD step at the Fig. 1/2a size (n=1000, m=5, d=2000, K=4, p=3, float32)",
            "",
            "| implementation | seeds | steps | compile s | run s | seed-steps/s | us/seed-step | "
            "GFLOP/s | % XLA peak | % BLAS peak | GB/s | max rel. diff vs simdyn |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in rows.items():
            label = (
                f"{name} ({r['threads']} thread{'s' * (r['threads'] > 1)})"
                if "threads" in r
                else name
            )
            lines.append(
                f"| {label} | {r['seeds']} | {r['steps']} | {fmt(r['compile_s'])} | "
                f"{fmt(r['run_s'])} | {fmt(r['seed_steps_per_s'])} | "
                f"{fmt(r['us_per_seed_step'])} | "
                f"{fmt(r['gflops'])} | {fmt(r['pct_xla_peak'])} | {fmt(r['pct_blas_peak'])} | "
                f"{fmt(r['gbytes'])} | {fmt(r.get('check_relerr'))} |"
            )
        lines += ["", "Targets (ratios from the table above):", ""]
        best_name = max(
            (k for k in rows if k.startswith("simdyn structured")),
            key=lambda k: rows[k]["seed_steps_per_s"],
        )
        best = rows[best_name]["seed_steps_per_s"]
        lines.append(f"simdyn below = its fastest row: {best_name}.")
        lines.append("")
        if "numpy loop dense" not in rows:  # accelerator run: no CPU peers
            rows = {}
        for peer in ("torch vmap structured", "torch vmap dense"):
            if peer in rows:
                ratio = best / rows[peer]["seed_steps_per_s"]
                lines.append(
                    f"- simdyn vs {peer}: {ratio:.2f}x "
                    f"({'met' if ratio >= 2 else 'NOT met'}: target >= 2x)"
                )
        if "torch vmap dense" in rows:
            ratio = (
                rows["simdyn dense"]["seed_steps_per_s"]
                / rows["torch vmap dense"]["seed_steps_per_s"]
            )
            lines.append(f"- same algorithm, dense: simdyn dense vs torch vmap dense: {ratio:.2f}x")
        same = (
            ("structured (traced beta)", "simdyn structured", "torch vmap structured"),
            (
                "structured, static SCL weight",
                "simdyn structured, static SCL weight",
                "torch vmap structured, static SCL weight",
            ),
        )
        chunked = [r for r in rows if r.startswith(CHUNKED.split("{")[0])]
        if chunked:
            chunk = rows[chunked[0]]["chunk"]
            same += (
                (
                    f"static SCL weight in chunks of {chunk}",
                    CHUNKED.format(chunk=chunk),
                    CHUNKED_PEER.format(chunk=chunk),
                ),
            )
            if "simdyn structured" in rows:
                ratio = (
                    rows[chunked[0]]["seed_steps_per_s"]
                    / rows["simdyn structured"]["seed_steps_per_s"]
                )
                lines.append(
                    f"- simulate's step ({chunked[0]}) vs the traced-beta structured step: "
                    f"{ratio:.2f}x ({'met' if ratio >= 3 else 'NOT met'}: target >= 3x)"
                )
        for label, mine, peer in same:
            if peer in rows and mine in rows:
                ratio = rows[mine]["seed_steps_per_s"] / rows[peer]["seed_steps_per_s"]
                lines.append(
                    f"- same algorithm, {label}: {mine} vs {peer}: {ratio:.2f}x "
                    f"({'met' if ratio >= 2 else 'NOT met'}: target >= 2x)"
                )
        if "simdyn structured" in rows:
            ratio = best / rows["simdyn structured"]["seed_steps_per_s"]
            lines.append(
                f"- fastest simdyn step vs the traced-beta structured step (the step before this "
                f"round, same run): {ratio:.2f}x ({'met' if ratio >= 3 else 'NOT met'}: "
                "target >= 3x)"
            )
        for peer in ("numpy loop structured", "numpy loop dense"):
            if peer not in rows:
                continue
            r = rows[peer]
            t1024 = 1024 / r["seed_steps_per_s"]  # seconds per step for 1024 seeds
            ratio = best / r["seed_steps_per_s"]
            lines.append(
                f"- simdyn vs {peer} at 1024 seeds: {ratio:.0f}x "
                f"({'met' if ratio >= 100 else 'NOT met'}: target >= 100x; numpy measured on "
                f"{r['seeds']} seeds and extrapolated linearly: {t1024:.2f} s per step for "
                "1024 seeds)"
            )
        r = rows.get("jax per-seed jit loop structured")
        if r:
            ratio = best / r["seed_steps_per_s"]
            lines.append(f"- simdyn (vmap) vs per-seed jitted JAX loop: {ratio:.1f}x")
    if "scaling" in results:
        sc = results["scaling"]
        lines += [
            "",
            "### Scaling: seeds (structured, fig2a)",
            "",
            "| seeds | program | steps | seed-steps/s | us/seed-step | GFLOP/s | "
            "GB/s (hand count) | compile s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in sc["seeds"]:
            program = "vmap" if r["batch"] is None else f"lax.map, batches of {r['batch']}"
            lines.append(
                f"| {r['seeds']} | {program} | {r['steps']} | {fmt(r['seed_steps_per_s'])} | "
                f"{fmt(r['us_per_seed_step'])} | {fmt(r['gflops'])} | {fmt(r['gbytes'])} | "
                f"{fmt(r['compile_s'])} |"
            )
        for key, label in (("d", "d"), ("p", "p"), ("n", "n (N = 5 n)")):
            if not sc[key]:
                continue
            lines += [
                "",
                f"### Scaling: {label} (fig2a otherwise)",
                "",
                f"| {key} | backend | seeds | steps | seed-steps/s | us/seed-step | GFLOP/s | "
                "% XLA peak | GB/s |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for r in sc[key]:
                lines.append(
                    f"| {r[key]} | {r['backend']} | {r['seeds']} | {r['steps']} | "
                    f"{fmt(r['seed_steps_per_s'])} | {fmt(r['us_per_seed_step'])} | "
                    f"{fmt(r['gflops'])} | {fmt(100 * r['gflops'] / peaks['xla_matmul_gflops'])} | "
                    f"{fmt(r['gbytes'])} |"
                )
    if "cost_model" in results:
        lines += [
            "",
            "### Cost model check: modelled vs measured time per seed-step",
            "",
            "| config | backend | seeds x steps | measured us | modelled us | chosen by auto | "
            "fastest measured |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results["cost_model"]:
            lines.append(
                f"| {r['config']} | {r['backend']} | {r['seeds']} x {r['steps']} | "
                f"{fmt(r['measured_us'])} | "
                f"{fmt(r['model_us'])} | {'yes' if r['chosen'] else ''} | "
                f"{'yes' if r['fastest'] else ''} |"
            )
    if results.get("roofline"):
        lines += roofline_lines(results["roofline"], peaks)
    if "memory" in results:
        lines += [
            "",
            "### Memory per seed at fig2a (max RSS of fresh processes, float32)",
            "",
            "| implementation | seeds (S1, S2) | max RSS S1, S2 (MiB) | per seed (MiB) | "
            "hand count (MiB) | XLA buffers per seed (MiB) | seeds that fit in 24 GiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results["memory"]:
            backend = r["impl"].split("-", 1)[1]
            hand = objectives.get(backend).memory_per_seed(preset("fig2a")) / 2**20
            xla = r.get("xla_per_seed")
            lines.append(
                f"| {r['impl']} | {r['seeds']} | {r['rss_bytes'][0] / 2**20:,.0f}, "
                f"{r['rss_bytes'][1] / 2**20:,.0f} | {r['per_seed_bytes'] / 2**20:.3g} | "
                f"{hand:.3g} | {fmt(xla / 2**20 if xla else None)} | "
                f"{fmt(r['max_seeds_24gib'])} |"
            )
    if results.get("compile"):
        lines += [
            "",
            "### Compile time of simulate's program (fig2a, jit(vmap(make_train)))",
            "",
            "| seeds | steps | compile s |",
            "|---|---|---|",
        ]
        for r in results["compile"]:
            lines.append(f"| {r['seeds']} | {r['steps']} | {fmt(r['compile_s'])} |")
    if "e2e" in results:
        e = results["e2e"]
        lines += ["", f"End to end: `{e['command']}`: {e['wall_s']:.1f} s wall (rc {e['rc']})."]
    return "\n".join(lines) + "\n"


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list | tuple):
        return [_strip(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    parser.add_argument("--e2e", action="store_true", help="also time simulate fig2a 1024 seeds")
    parser.add_argument(
        "--gpu", action="store_true", help="accelerator run (benchmarks/gpu.sh): simdyn only"
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the subprocess memory probes"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per point (median)")
    parser.add_argument(
        "--sections",
        default="fig2a,cost,roofline,scaling,compile,memory",
        help="comma-separated subset of fig2a,cost,roofline,scaling,compile,memory (peaks always "
        "run)",
    )
    parser.add_argument(
        "--out",
        default="runs/benchmarks",
        help="folder for results .md/.json (default runs/benchmarks, git-ignored; committed "
        "results live in benchmarks/results/ and are written only when named here)",
    )
    parser.add_argument(
        "--memory-probe", nargs=2, metavar=("IMPL", "SEEDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(memory_probe(args.memory_probe[0], int(args.memory_probe[1])))
        return
    if args.gpu and jax.default_backend() == "cpu":
        raise SystemExit("--gpu: JAX sees no accelerator (jax.default_backend() == 'cpu')")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    sections = set(args.sections.split(","))
    start = time.perf_counter()
    results = {
        "command": "python benchmarks/run.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
    }
    print(f"[bench] machine: {results['machine']}", flush=True)
    results["peaks"] = measure_peaks(args.repeats)
    print(f"[bench] peaks: {results['peaks']}", flush=True)
    # The timed sections, in order: (--sections name, results key, label, how it runs).
    timed = (
        ("fig2a", "fig2a", "fig2a", lambda: section_fig2a(args, results["peaks"])),
        ("cost", "cost_model", "cost model", lambda: section_cost_model(args)),
        ("roofline", "roofline", "roofline", lambda: section_roofline(args, results["peaks"])),
        ("scaling", "scaling", "scaling", lambda: section_scaling(args)),
        ("compile", "compile", "compile", lambda: section_compile(args)),
    )
    for name, key, label, run in timed:
        if name in sections:
            results[key] = run()
            print(f"[bench] {label} done", round(time.perf_counter() - start), "s", flush=True)
    if "memory" in sections and not args.no_memory and not args.quick and not args.gpu:
        impls = {
            "simdyn-structured": (64, 1088),
            "simdyn-dense": (1, 4),
            "torch-structured": (64, 1088),
            "torch-dense": (1, 4),
        }
        if not peers_available():
            impls = {k: v for k, v in impls.items() if not k.startswith("torch")}
        results["memory"] = measure_memory(impls)
        for r in results["memory"]:
            name = "simdyn " + r["impl"].split("-", 1)[1]
            if r["impl"].startswith("simdyn") and name in results.get("fig2a", {}):
                f = results["fig2a"][name]
                if f.get("xla_program_bytes"):
                    r["xla_per_seed"] = f["xla_program_bytes"] / f["seeds"]
        print("[bench] memory done", round(time.perf_counter() - start), "s", flush=True)
    if args.e2e:
        results["e2e"] = section_e2e(args)
    results["loadavg_end"] = os.getloadavg()
    results["total_s"] = time.perf_counter() - start
    text = report(results) + f"\nTotal benchmark time: {results['total_s']:.0f} s.\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu" if args.gpu else ("quick" if args.quick else "latest")
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps(_strip(results), indent=1, default=str))


if __name__ == "__main__":
    main()
