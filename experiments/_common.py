"""Shared plumbing of the experiment scripts: CLI, seed bands, GD paths that keep Theta, output.

Everything here uses only simdyn's public API (``simulate``, presets, configs, ``make_train``
with its ``Recording``, the key protocol of ``simdyn.seeds``, the seed engine, and the public
modules ``simdyn.data``, ``simdyn.moments``, ``simdyn.theory``). :func:`gd_runs` runs a whole
grid of configs in one compiled program (``simulate`` compiles once per config, seconds each on
2 CPU cores) through ``simdyn.make_train``'s extension points, recording any observable
``fn(theta, (moments, beta))`` of Theta; tests/test_experiments.py ties its alignments to
``simulate``'s and its outputs on fixed keys to recorded ones, bit for bit.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")  # scripts run headless; must precede pyplot

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import simdyn  # noqa: E402
from simdyn import (  # noqa: E402
    engine,  # noqa: E402
    init_theta,
    seed_training_set,
)
from simdyn.config import Config, ConfigError  # noqa: E402
from simdyn.data import (  # noqa: E402
    Points,
    TrainingSet,
    feature_block,
    sample_training_set,
)
from simdyn.losses import loss_beta  # noqa: E402
from simdyn.metrics import feature_alignment  # noqa: E402
from simdyn.moments import (  # noqa: E402
    DenseMoments,
    StructuredMoments,
    dense_moments,
)
from simdyn.seeds import as_key, streams  # noqa: E402
from simdyn.theory import min_norm_minimizer  # noqa: E402

Array = jax.Array

EXPERIMENTS_DIR = Path(__file__).resolve().parent
RUNS_DIR = EXPERIMENTS_DIR.parent / "runs"  # default output root; /runs/ is git-ignored
SIZES = ("tiny", "quick", "full")
DPI = 100

# Colours of the features across all figures (v_1 class, v_2 subclass).
C_V1, C_V2, C_THEORY = "tab:blue", "tab:orange", "black"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def make_parser(description: str) -> argparse.ArgumentParser:
    """The common CLI: --quick / --tiny (sizes), --out DIR, --seeds N, --key K."""
    ap = argparse.ArgumentParser(description=description)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small run (< ~1 min on 2 CPU cores)")
    size.add_argument("--tiny", action="store_true", help="smallest run (tests, seconds)")
    ap.add_argument(
        "--out",
        default=None,
        help="output folder: writes OUT/figures/NAME.png and OUT/data/NAME.{npz,json} "
        "(default: runs/NAME at the repository root, git-ignored; pass --out experiments to "
        "rewrite the committed figures and data)",
    )
    ap.add_argument("--seeds", type=int, default=None, help="override the size's seed count")
    ap.add_argument("--key", type=int, default=0, help="base PRNG key (seed i: fold_in(key, i))")
    return ap


def size_of(args: argparse.Namespace) -> str:
    return "tiny" if args.tiny else "quick" if args.quick else "full"


def start(doc: str, argv: list[str] | None) -> tuple[argparse.Namespace, str, Timer]:
    """Every script's preamble: parse the common CLI (description = the doc's first line),
    switch JAX to float64 (the theory needs it; training keeps its config's dtype), start the
    clock. Returns (args, size, timer)."""
    args = make_parser(doc.splitlines()[0]).parse_args(argv)
    simdyn.enable_x64()
    return args, size_of(args), Timer()


def seed_count(args: argparse.Namespace, default: int) -> int:
    n = default if args.seeds is None else args.seeds
    if n < 1:
        raise ConfigError(f"invalid --seeds={n}: must be >= 1")
    return n


# --------------------------------------------------------------------------------------------
# Seed statistics
# --------------------------------------------------------------------------------------------


class Band(NamedTuple):
    """Across-seed summary of values (S, ...) over the kept (non-diverged) seeds.

    lo, median, hi, mean: (...) the 5% / 50% / 95% quantiles and the mean (NaN if no seed kept).
    kept, diverged: seed counts.
    """

    lo: np.ndarray
    median: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    kept: int
    diverged: int


def seed_band(values: np.ndarray, diverged: np.ndarray | None = None) -> Band:
    """5-95% band, median and mean across axis 0, diverged seeds excluded (never averaged in)."""
    values = np.asarray(values, np.float64)
    bad = np.zeros(values.shape[0], bool) if diverged is None else np.asarray(diverged, bool)
    # A seed with any non-finite value is treated as diverged even if the flag missed it.
    bad = bad | ~np.all(np.isfinite(values.reshape(values.shape[0], -1)), axis=1)
    kept = values[~bad]
    if kept.shape[0] == 0:
        nan = np.full(values.shape[1:], np.nan)
        return Band(nan, nan, nan, nan, 0, int(bad.sum()))
    lo, med, hi = np.quantile(kept, [0.05, 0.5, 0.95], axis=0)
    return Band(lo, med, hi, kept.mean(axis=0), int(kept.shape[0]), int(bad.sum()))


def plot_band(ax, x, band: Band, color: str, label: str, *, center: str = "median", **kw) -> None:
    """Median (or mean) line + shaded 5-95% band; the label carries the seed counts."""
    y = band.median if center == "median" else band.mean
    tag = f"{label} ({center}, 5-95%, {band.kept} seeds"
    tag += f", {band.diverged} diverged excl.)" if band.diverged else ")"
    ax.plot(x, y, color=color, label=tag, **kw)
    ax.fill_between(x, band.lo, band.hi, color=color, alpha=0.25, lw=0)


def late_change(traj: np.ndarray, frac: float = 0.8) -> float:
    """Convergence check: max over seeds of |a(T) - a(frac T)| / max(|a(T)|, 1e-3).

    traj: (S, R) a quantity at the R recorded steps (diverged seeds already removed).
    """
    traj = np.asarray(traj, np.float64)
    if traj.size == 0:
        return float("nan")
    i = int(round(frac * (traj.shape[1] - 1)))
    end = traj[:, -1]
    return float(np.max(np.abs(end - traj[:, i]) / np.maximum(np.abs(end), 1e-3)))


# --------------------------------------------------------------------------------------------
# Data and exact instance predictions
# --------------------------------------------------------------------------------------------


# Jitted entry point: called eagerly, JAX compiles every primitive separately (~0.2 s each on a
# loaded 2-core machine, dozens per call); one program per config is much cheaper.
_dense_moments = jax.jit(dense_moments, static_argnums=(2,))


def _as_f64(points: Points) -> Points:
    return jax.tree.map(
        lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, points
    )


def instance_moments(config: Config, key: int, seed: int) -> DenseMoments:
    """Dense float64 M, M+, M~ (numpy) of the training set seed ``seed`` actually trains on.

    Sampled in the training dtype (so the instance is the simulated one), then cast: the theory
    needs float64 because the noise eigenvalues sigma_xi^2/(mn) sit near float32 round-off of M.
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeError("instance_moments needs simdyn.enable_x64() first")
    ts = seed_training_set(config, seed, key)
    mom = _dense_moments(_as_f64(ts.points), ts.labels, config.data.d)
    return DenseMoments(*(np.asarray(a, np.float64) for a in mom))


def instance_min_norm_alignment(
    config: Config, key: int, seed: int, beta: float, p: int | None = None
) -> np.ndarray:
    """||W v_j||, j = 0..K, of the exact min-norm global minimizer of seed ``seed``'s instance.

    P = beta M+ + (1 - beta) M~ (beta = 1 SCL, 0 UCL), Q = M; simdyn.theory.min_norm_minimizer
    with its default tie tolerance. This is the prediction for THIS sampled training set, valid
    outside the good event too (where the closed-form spectra only approximate it).
    """
    mom = instance_moments(config, key, seed)
    P = beta * mom.m_plus + (1.0 - beta) * mom.m_tilde
    sol = min_norm_minimizer(P, mom.m, config.model.p if p is None else p)
    return np.linalg.norm(sol.factor[:, : config.data.K + 1], axis=0)


# --------------------------------------------------------------------------------------------
# Full-batch GD over many configs and seeds in one compiled program, recording anything
# --------------------------------------------------------------------------------------------

Observe = Callable[[Array, tuple[DenseMoments | StructuredMoments, Array]], Any]

# Fields that may differ between the configs of one gd_runs call: numbers the program can take as
# traced values (data strengths via the feature block, GD hyper-parameters) and p (via row masks).
_CELL_FIELDS = ("phi", "mu", "lr", "beta", "loss", "sigma_0", "p")


class _Strengths(NamedTuple):
    """Duck-typed stand-in for DataConfig in simdyn.data.feature_block, with traced phi and mu."""

    phi: Array
    mu: Array
    K: int


class Runs(NamedTuple):
    """gd_runs output: observed (C, S, T, ...) pytree; diverged (C, S) bool."""

    observed: Any
    diverged: np.ndarray


def _structure_key(config: Config, base: Config) -> Config:
    return config.replace(
        **{
            "phi": base.data.phi,
            "mu": base.data.mu,
            "lr": base.train.lr,
            "train.beta": base.train.beta,
            "loss": base.train.loss,
            "sigma_0": base.model.sigma_0,
            "p": base.model.p,
        }
    )


def _run_config(base: Config, p_max: int, steps: int) -> Config:
    """The one config make_train builds every cell from: p_max rows, the last record step as
    its length, the joint loss (so the objective takes the cell's beta as a traced weight) and
    gd_runs' exact moment form (structured where it applies, else dense)."""
    exact_structured = simdyn.objectives.get("structured").applies(base)
    return base.replace(
        p=p_max,
        steps=max(steps, 1),  # a config has >= 1 step; none runs after the last record
        log_every=1,
        probe_every=-1,
        loss="joint",
        backend="structured" if exact_structured else "dense",
    )


def _cell_training_set(config: Config, seed_key: Array, phi: Array, mu: Array) -> TrainingSet:
    """The seed's training set with its feature block rebuilt from the cell's (traced) phi and
    mu: labels and noise do not depend on them, and under the standard augmentation every
    augmentation carries exactly the block, so this is what ``simulate`` samples for the cell.

    points: (n, m, ...) as sampled; features (n, m, K + 1) and the originals' (n, K + 1) replaced.
    """
    dcfg, dtype = config.data, jnp.dtype(config.train.dtype)
    ts = sample_training_set(streams(seed_key).data, dcfg, dtype)
    if dcfg.augmentation != "standard":
        return ts  # gd_runs refuses varying phi/mu here: the cell's are the config's
    u = feature_block(ts.labels, _Strengths(phi, mu, dcfg.K), dtype)  # (n, K + 1)
    features = jnp.broadcast_to(u[:, None], ts.points.features.shape)
    return ts._replace(
        points=ts.points._replace(features=features),
        originals=ts.originals._replace(features=u),
    )


def _masked_init(config: Config, seed_key: Array, hp: simdyn.HyperParams, rows: Array) -> Array:
    """make_train's init, (p_max, d + 1), with rows >= the cell's p zeroed (rows: (p_max,) 0/1):
    zero rows stay zero under GD, so this is the p-row model."""
    m, dtype = config.model, jnp.dtype(config.train.dtype)
    theta0 = init_theta(streams(seed_key).init, m.p, config.data.d, hp.sigma_0, m.bias, dtype)
    return theta0 * rows[:, None]


def _moments_and_beta(config: Config, seed_key: Array, objective: Any) -> tuple[Any, Array]:
    """The observers' context: the seed's moments and its SCL weight (a moment objective's)."""
    return objective.moments, objective.beta


def _observed_and_diverged(out: simdyn.LoopResult) -> tuple[Any, Array]:
    return out.observed["o"], out.diverged


def gd_runs(
    configs: Sequence[Config],
    seeds: int | Sequence[int],
    key: int,
    record_steps: Sequence[int],
    observe: Observe,
) -> Runs:
    """Full-batch GD of every (config, seed) pair in ONE compiled program: each pair is one run
    of ``simdyn.make_train`` (built per pair, its data and init factories closing over the
    pair's traced cell values), and the pairs are the runs of the seed engine
    (``simdyn.engine.run_per_seed``) in one call; it records ``observe(theta, (moments, beta))``
    at ``record_steps`` (sorted, distinct, in [0, steps]) through a ``simdyn.Recording``.

    Returns:
      ``Runs``: observed, the observations stacked (C configs, S seeds, T record steps, ...);
      diverged (C, S) bool.

    The configs may differ only in phi, mu, lr, beta/loss, sigma_0 and p (``_CELL_FIELDS``):
    one compile serves a whole phase diagram. How each is handled, and why it is exact:

    * data: seed i's training set is sampled once from configs[0].data (labels and noise do not
      depend on phi or mu), then its feature block is rebuilt with simdyn.data.feature_block from
      the config's (traced) phi and mu; under the standard augmentation every augmentation
      carries exactly that block, so the points equal what ``simulate`` samples for the config.
      Varying phi/mu is refused for the imperfect augmentation (its jitter is added on top).
    * p: Theta has max(p) rows and rows >= p start at 0. Zero rows stay exactly zero under GD
      (row i of -4 Theta P + 4 (Theta M Theta^T)(Theta M) vanishes when Theta_i = 0), so this is
      the p-row model; its init is the first p rows of a max(p)-row draw (same distribution as
      ``simulate``'s p-row draw, not the same numbers unless p = max(p)).
    * loss/beta: make_train runs the joint loss with the cell's SCL weight as a traced beta
      (1 for SCL, 0 for UCL), so one program serves every loss; ``simulate`` fixes SCL/UCL's
      weight at compile time, which may round the last bit differently.
    * gradient, moment representation (structured for basis noise + standard augmentation,
      else dense) and the update theta - lr * grad are make_train's with ``optimizer='sgd'``;
      tests/test_experiments.py checks the alignments against ``simulate``.

    A run is flagged ``diverged`` (and must be excluded) if at a recorded step Theta is
    non-finite or max |Theta| exceeds train.divergence_threshold (simulate also checks the loss).
    """
    if not configs:
        raise ConfigError("gd_runs: needs at least one config")
    base = configs[0]
    t, dcfg = base.train, base.data
    if not t.full_batch or t.optimizer != "sgd":
        raise ConfigError("gd_runs: needs full-batch plain GD (batch_size=None, optimizer='sgd')")
    for c in configs[1:]:
        if _structure_key(c, base) != base:
            raise ConfigError(f"gd_runs: configs may differ only in {_CELL_FIELDS}")
    vary_features = any((c.data.phi, c.data.mu) != (dcfg.phi, dcfg.mu) for c in configs)
    if vary_features and dcfg.augmentation != "standard":
        raise ConfigError("gd_runs: phi/mu may vary only with augmentation='standard'")
    steps = np.asarray(record_steps, np.int64)
    if steps.size == 0 or np.any(np.diff(steps) <= 0) or steps[0] < 0 or steps[-1] > t.steps:
        raise ConfigError(
            f"invalid record_steps={list(steps)}: sorted, distinct, in [0, steps={t.steps}]"
        )
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    p_max = max(c.model.p for c in configs)
    # Cell parameters as host arrays (one transfer; eager jnp ops would each compile). The
    # numbers are default_hparams' (lr, loss_beta(loss, beta), sigma_0) cast to the train dtype.
    np_dtype = np.dtype(t.dtype)
    cells = {
        "phi": np.asarray([c.data.phi for c in configs], np_dtype),
        "mu": np.asarray([c.data.mu for c in configs], np_dtype),
        "lr": np.asarray([c.train.lr for c in configs], np_dtype),
        "beta": np.asarray([loss_beta(c.train.loss, c.train.beta) for c in configs], np_dtype),
        "sigma_0": np.asarray([c.model.sigma_0 for c in configs], np_dtype),
        "rows": np.asarray([np.arange(p_max) < c.model.p for c in configs], np_dtype),
    }
    run_config = _run_config(base, p_max, int(steps[-1]))
    record = simdyn.Record(at=tuple(steps.tolist()), loss=False, observables={"o": observe})
    recording = simdyn.Recording(record, _observed_and_diverged, _moments_and_beta)

    def one(seed_key: Array, cell: dict[str, Array]) -> tuple[Any, Array]:
        # make_train is built per cell, inside the vmapped function: its factories close over
        # the cell's traced phi, mu and row mask (one compiled program for the whole grid).
        train = simdyn.make_train(
            run_config,
            training_set=lambda c, k: _cell_training_set(c, k, cell["phi"], cell["mu"]),
            init=lambda c, k, hp: _masked_init(c, k, hp, cell["rows"]),
            recording=recording,
        )
        return train(seed_key, simdyn.HyperParams(cell["lr"], cell["beta"], cell["sigma_0"]))

    # The C x S (config, seed) pairs are the engine's runs, in one flat vmap (compiles faster
    # than nested vmaps); run r = (config r // S, seed r % S) gets simulate's key fold_in(key, s).
    num_c, num_s = len(configs), len(seed_list)
    flat = {k: np.repeat(v, num_s, axis=0) for k, v in cells.items()}
    idx = np.tile(np.asarray(seed_list, np.int64), num_c)
    (recs, bad), _ = engine.run_per_seed(
        one,
        as_key(key),
        idx,
        flat,
        True,
        chunk_size=len(idx),
        devices=1,
    )
    unflat = lambda a: np.asarray(a).reshape((num_c, num_s) + a.shape[1:])
    return Runs(jax.tree.map(unflat, recs), unflat(bad))


def alignment_observer(K: int) -> Observe:
    """observe(theta, ...) -> ||Theta v_j||, j = 0..K, shape (K + 1,)."""
    return lambda theta, context: feature_alignment(theta, K)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


class Outputs(NamedTuple):
    png: Path
    npz: Path
    json: Path


def write_outputs(
    out: str | Path, name: str, fig, arrays: dict[str, Any], meta: dict[str, Any]
) -> Outputs:
    """Save OUT/figures/NAME.png (dpi 100), OUT/data/NAME.npz (arrays) and NAME.json (meta)."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    png = out / "figures" / f"{name}.png"
    npz = out / "data" / f"{name}.npz"
    js = out / "data" / f"{name}.json"
    fig.savefig(png, dpi=DPI)
    plt.close(fig)
    np.savez_compressed(npz, **{k: np.asarray(v) for k, v in arrays.items()})
    meta = {"simdyn_version": simdyn.__version__, "jax_version": jax.__version__, **meta}
    js.write_text(json.dumps(meta, indent=1, sort_keys=True, default=_json_default) + "\n")
    return Outputs(png, npz, js)


def default_out(name: str) -> Path:
    """Where a script writes when no --out is given: REPO/runs/NAME (git-ignored), never the
    committed experiments/figures and experiments/data."""
    return RUNS_DIR / name


def run_meta(size: str, key: int, seeds: int, base: Config) -> dict[str, Any]:
    """The first entries of a grid script's metadata: run size, key, seeds per cell, base config."""
    return {"size": size, "key": key, "seeds": seeds, "base_config": base}


def finish(
    out: str | Path | None,
    name: str,
    size: str,
    fig,
    arrays: dict[str, Any],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Write the outputs (to ``default_out(name)`` when ``out`` is None), say where they went,
    and return what every script's main returns."""
    paths = write_outputs(default_out(name) if out is None else out, name, fig, arrays, meta)
    print(f"{name}: {size} run in {meta['runtime_s']} s -> {paths.png}")
    return {"paths": paths, "meta": meta}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | jax.Array):
        return np.asarray(obj).tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Config):
        return json.loads(obj.to_json())
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


class Timer:
    """Wall-clock seconds since creation (reported in each script's JSON)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return round(time.perf_counter() - self.start, 2)


def stable_lr(a_max: float, lr: float = 0.05, lr_times_a: float = 0.1) -> float:
    """min(lr, lr_times_a / a_max): keep eta * (largest P eigenvalue) fixed for large features.

    Why: a mode of P-eigenvalue a follows c <- c (1 + 4 eta a - 4 eta q^2 c^2); linearised at
    its fixed point the factor is 1 - 8 eta a, so GD is stable and monotone for eta a < 1/8.
    eta a <= 0.1 keeps 1 - 8 eta a >= 0.2.
    """
    return float(min(lr, lr_times_a / a_max))
