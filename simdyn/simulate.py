"""Seeds, chunking, sharding, result assembly and resumable checkpoints. No maths lives here.

``simulate(config, seeds, key)`` trains every seed with ``jit(vmap(train))`` in chunks:

* Seed ``i``'s key is ``fold_in(key, i)`` whatever the chunk size, device count or process
  count, so each seed's random inputs are bit-identical under any layout.
* ``chunk_size`` is seeds per device per compiled call; a call covers ``chunk_size * devices``
  seeds, the seed axis split over a 1-D device mesh (:mod:`simdyn.distributed`). The last call
  is padded with extra seed indices (results dropped, real seeds never dropped) so one compiled
  program serves every call. With the same ``chunk_size`` each device runs the very program a
  single device runs, so results match a one-device run; see docs/reliability.md for what may
  still differ (XLA may pick other kernels for other batch sizes).
* Under ``jax.distributed`` each process owns a contiguous block of seeds and the blocks are
  gathered at the end, so every process returns the full dataset.
* With ``checkpoint_dir`` every finished chunk is written atomically (tmp file + rename) with a
  SHA-256 sidecar, next to a manifest of the run (config, key, seeds, hyper-parameters, layout,
  versions). Rerunning with the same folder resumes; a different run is refused; a chunk whose
  checksum, identity or shapes do not match is reported and recomputed, never used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.sharding import PartitionSpec

from simdyn import distributed
from simdyn.config import Config, ConfigError
from simdyn.cost import memory_per_seed
from simdyn.data import TestSet, TrainingSet
from simdyn.losses import STATIC_BETA
from simdyn.train import (
    HyperParams,
    Trajectory,
    default_hparams,
    fresh_test_set_of,
    make_train,
    resolve_backend,
    training_set_of,
)

Array = jax.Array

RESULT_FORMAT = 2
CHUNK_FORMAT = 1
MANIFEST = "manifest.json"

_TRAJ_DIMS = {
    "alignment": ("run", "step", "feature"),
    "loss": ("run", "step"),
    "probe_class": ("run", "probe_step"),
    "probe_subclass": ("run", "probe_step"),
    "diverged": ("run",),
    "diverged_step": ("run",),
    "theta": ("run", "row", "col"),
}


# --- keys ------------------------------------------------------------------------------------
def as_key(key: int | Array) -> Array:
    """A typed PRNG key from an int seed or an existing key."""
    if isinstance(key, bool):
        raise ConfigError(f"invalid key={key!r}: must be a non-negative integer")
    if isinstance(key, int | np.integer):
        if not 0 <= key < 2**63:
            raise ConfigError(f"invalid key={key}: must be an integer in [0, 2**63 - 1]")
        return jax.random.key(int(key))
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))


def seed_keys(key: Array, seed_indices: Array) -> Array:
    """fold_in(key, i) for each seed index: a seed's stream never depends on batching."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(seed_indices, jnp.uint32))


def seed_key(key: int | Array, seed: int) -> Array:
    """The key of seed ``seed`` of ``simulate(..., key=key)``."""
    return seed_keys(as_key(key), np.asarray([seed]))[0]


# Jitted once per config: called eagerly, JAX would compile every primitive separately.
_training_set_of = jax.jit(training_set_of, static_argnums=0)
_fresh_test_set_of = jax.jit(fresh_test_set_of, static_argnums=(0, 2))


def seed_training_set(config: Config, seed: int, key: int | Array = 0) -> TrainingSet:
    """The training set that seed ``seed`` of ``simulate(config, key=key)`` trains on.

    Closed forms (:mod:`simdyn.theory`) computed on it refer to exactly that seed's data.
    """
    return _training_set_of(config, seed_key(key, seed))


def seed_test_set(config: Config, seed: int, key: int | Array = 0, n: int | None = None) -> TestSet:
    """The fresh test set of that seed's probes (``n`` points instead of data.n_test if given)."""
    return _fresh_test_set_of(config, seed_key(key, seed), n)


def key_data(key: Array) -> list[int]:
    return [int(v) for v in np.asarray(jax.random.key_data(key)).ravel()]


# --- memory ----------------------------------------------------------------------------------
def bytes_per_seed(config: Config) -> int:
    """A deliberately generous estimate of one seed's device memory in the vmapped program:
    twice :func:`simdyn.cost.memory_per_seed` of the path ``auto`` resolves to."""
    return 2 * memory_per_seed(config, resolve_backend(config))


def available_memory() -> int:
    """Free memory of the first local device (bytes); host RAM for the CPU."""
    dev = jax.local_devices()[0]
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


# On the CPU a vmapped chunk larger than this stops paying (the step is memory-bound, and
# bigger chunks fall out of cache): benchmarks/README.md measured fig2a at 1024 seeds in 627 s
# as one chunk vs 171 s in chunks of 64.
CPU_MAX_CHUNK = 64


def auto_chunk_size(config: Config, num_seeds: int, fraction: float = 0.25) -> int:
    """Largest per-device chunk that fits ``fraction`` of free memory, at most num_seeds.

    Capped at ``CPU_MAX_CHUNK`` on the CPU and 4096 on accelerators.
    """
    fit = int(fraction * available_memory() // max(bytes_per_seed(config), 1))
    cap = CPU_MAX_CHUNK if jax.default_backend() == "cpu" else 4096
    return int(max(1, min(num_seeds, fit, cap)))


# --- compiled programs -----------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _compiled_runner(
    config: Config, num_devices: int = 1, per_run_hparams: bool = False
) -> Callable[[Array, HyperParams], Trajectory]:
    """``jit(vmap(train))`` over (keys (G,), hparams () or (G,)), split over ``num_devices``.

    Cached: repeated runs of one config (chunks, resumes, tests) reuse the compiled program.
    """
    hp_axis = 0 if per_run_hparams else None
    batched = jax.vmap(make_train(config), in_axes=(0, hp_axis))
    if num_devices == 1:
        return jax.jit(batched)
    # shard_map, not sharding propagation: each device provably runs the one-device program on
    # its block of seeds, with no collectives (seeds never interact).
    seeds = PartitionSpec(distributed.SEED_AXIS)
    return jax.jit(
        jax.shard_map(
            batched,
            mesh=distributed.seed_mesh(num_devices),
            in_specs=(seeds, seeds if per_run_hparams else PartitionSpec()),
            out_specs=seeds,
        )
    )


def _empty_trajectory(config: Config) -> Trajectory:
    """Zero-run numpy Trajectory with the right trailing shapes and dtypes."""
    hp = default_hparams(config)
    shapes = jax.eval_shape(make_train(config), jax.random.key(0), hp)
    return jax.tree.map(lambda s: np.zeros((0, *s.shape), s.dtype), shapes)


# --- environment -----------------------------------------------------------------------------
def environment_attrs() -> dict[str, Any]:
    """Versions and numerics switches recorded in every result and chunk file."""
    import jaxlib

    from simdyn import __version__

    return {
        "simdyn_version": __version__,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "jax_enable_x64": int(bool(jax.config.jax_enable_x64)),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "platform": jax.default_backend(),
        "device": str(jax.local_devices()[0].device_kind),
        "python": platform.python_version(),
        "result_format": RESULT_FORMAT,
    }


def _versions() -> dict[str, Any]:
    env = environment_attrs()
    keep = ("simdyn_version", "jax_version", "jaxlib_version", "jax_enable_x64", "platform")
    return {k: env[k] for k in keep}


# --- datasets --------------------------------------------------------------------------------
def trajectories_to_dataset(
    config: Config, traj: Trajectory, seeds: Sequence[int], attrs: dict[str, Any] | None = None
) -> xr.Dataset:
    """Label a stacked Trajectory (leading axis = seed) as an xarray Dataset."""
    t = config.train
    coords = {
        "seed": np.asarray(seeds, np.int64),
        "step": np.asarray(t.record_steps, np.int64),
        "feature": np.arange(config.data.K + 1),
        "probe_step": np.asarray(t.probe_steps, np.int64),
    }
    data_vars = {
        name: (("seed", *dims[1:]), np.asarray(getattr(traj, name)))
        for name, dims in _TRAJ_DIMS.items()
        if name != "theta" or t.save_theta
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds["alignment"].attrs["description"] = "||Theta_t v_j||, feature 0 = bias"
    ds["diverged"].attrs["description"] = (
        "non-finite loss/Theta or |Theta| > train.divergence_threshold at a recorded step; "
        "such seeds are kept here and excluded from every statistic (simdyn.summary.kept_seeds)"
    )
    ds.attrs["config"] = config.to_json()
    ds.attrs["backend"] = resolve_backend(config)
    ds.attrs.update(attrs or {})
    return ds


def _write_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_text_atomic(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a result dataset atomically (.nc, h5netcdf)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"invalid output path {p}: it is a folder, expected a .nc file name")
    if not p.parent.exists():
        raise ConfigError(f"invalid output path {p}: folder {p.parent} does not exist")
    _write_atomic(ds, p)


_RESULT_VARS = ("alignment", "loss", "probe_class", "probe_subclass", "diverged", "diverged_step")


def load(path: str | os.PathLike) -> xr.Dataset:
    """Load a result file and check that it is a consistent simdyn result (else ConfigError)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no result file at {p}")
    try:
        ds = xr.load_dataset(p, engine="h5netcdf")
    except Exception as err:  # noqa: BLE001 - h5py/netCDF raise many types for bad files
        raise ConfigError(
            f"{p} is not a readable result file ({type(err).__name__}: {err})"
        ) from None
    if "config" not in ds.attrs or "alignment" not in ds:
        raise ConfigError(f"{p} is not a simdyn result file (no config attribute/alignment)")
    try:
        config = Config.from_json(ds.attrs["config"])
    except (ConfigError, ValueError, TypeError) as err:
        raise ConfigError(f"{p}: invalid config attribute: {err}") from None
    missing = [v for v in _RESULT_VARS if v not in ds]
    if missing:
        raise ConfigError(f"{p} is not a complete simdyn result: missing variables {missing}")
    expect = {
        "step": len(config.train.record_steps),
        "feature": config.data.K + 1,
        "probe_step": len(config.train.probe_steps),
    }
    for dim, n in expect.items():
        if ds.sizes.get(dim, 0) != n:
            raise ConfigError(
                f"{p}: dimension {dim} has size {ds.sizes.get(dim, 0)} but its config implies {n}"
            )
    if ds["diverged"].dtype != bool:
        raise ConfigError(f"{p}: variable diverged has dtype {ds['diverged'].dtype}, not bool")
    return ds


def result_config(ds: xr.Dataset) -> Config:
    return Config.from_json(ds.attrs["config"])


# --- hyper-parameters ------------------------------------------------------------------------
def broadcast_hparams(
    config: Config, hparams: HyperParams | None, num_runs: int
) -> tuple[HyperParams, bool]:
    """(hparams, per_run): scalars shared by all runs, or every field a (num_runs,) array.

    A field given as a 1-D array of length ``num_runs`` makes every field per-run (the others
    broadcast). Values are checked: lr > 0, beta in [0, 1], sigma_0 >= 0, all finite.
    """
    base = default_hparams(config)
    if hparams is None:
        return base, False
    if not isinstance(hparams, HyperParams):
        raise ConfigError(f"invalid hparams={hparams!r}: must be simdyn.HyperParams or None")
    dtype = jnp.dtype(config.train.dtype)
    arrays = {}
    per_run = False
    for name, value in hparams._asdict().items():
        a = np.asarray(value if value is not None else getattr(base, name), dtype=np.float64)
        if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != num_runs):
            raise ConfigError(
                f"invalid hparams.{name} with shape {a.shape}: must be a scalar or have one "
                f"value per seed ({num_runs},)"
            )
        lo_ok = {"lr": a > 0, "beta": (a >= 0) & (a <= 1), "sigma_0": a >= 0}[name]
        if not np.all(np.isfinite(a)) or not np.all(lo_ok):
            allowed = {"lr": "> 0", "beta": "in [0, 1]", "sigma_0": ">= 0"}[name]
            bad = a[~(np.isfinite(a) & lo_ok)].ravel()[:3].tolist()
            raise ConfigError(f"invalid hparams.{name}={bad}: must be finite and {allowed}")
        if name == "beta" and value is not None and config.train.loss in STATIC_BETA:
            if not np.all(a == STATIC_BETA[config.train.loss]):
                raise ConfigError(
                    f"invalid hparams.beta with train.loss={config.train.loss!r}: beta is only "
                    "used by loss='joint' (SCL is beta=1, UCL beta=0)"
                )
        per_run |= a.ndim == 1
        arrays[name] = a
    if per_run:
        arrays = {k: np.broadcast_to(v, (num_runs,)) for k, v in arrays.items()}
    return HyperParams(**{k: jnp.asarray(v, dtype) for k, v in arrays.items()}), per_run


def _hparams_json(hp: HyperParams) -> dict[str, Any]:
    return {k: np.asarray(v, np.float64).tolist() for k, v in hp._asdict().items()}


# --- the chunked, sharded, resumable engine --------------------------------------------------
class Layout(NamedTuple):
    """How runs are split: ``chunk_size`` runs per device per call on ``devices`` devices."""

    chunk_size: int
    devices: int
    process_count: int


def _chunk_dataset(
    traj: Trajectory, positions: np.ndarray, seeds: np.ndarray, identity: str
) -> xr.Dataset:
    data_vars = {
        name: (dims, np.asarray(getattr(traj, name)))
        for name, dims in _TRAJ_DIMS.items()
        if np.ndim(getattr(traj, name)) == len(dims)  # theta is (run, 0) unless save_theta
    }
    ds = xr.Dataset(data_vars, coords={"run": positions, "seed": ("run", seeds)})
    ds.attrs.update(environment_attrs())
    ds.attrs["run_identity"] = identity
    ds.attrs["chunk_format"] = CHUNK_FORMAT
    return ds


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_chunk(
    path: Path, positions: np.ndarray, seeds: np.ndarray, identity: str, empty: Trajectory
) -> Trajectory | None:
    """The chunk's trajectory if the file is complete and belongs here; None (warned) else."""
    digest_path = path.with_name(path.name + ".sha256")
    if not path.exists():
        return None
    reason = None
    try:
        if not digest_path.exists():
            reason = "no checksum file (interrupted while finishing the chunk)"
        elif digest_path.read_text().strip() != _sha256(path):
            reason = "checksum mismatch (truncated or modified file)"
        else:
            ds = xr.load_dataset(path, engine="h5netcdf")
            if ds.attrs.get("run_identity") != identity:
                reason = "it belongs to a different run"
            elif not (
                np.array_equal(ds["run"].values, positions)
                and np.array_equal(ds["seed"].values, seeds)
            ):
                reason = "its seeds do not match the manifest"
            else:
                parts = {}
                for name in _TRAJ_DIMS:
                    ref = getattr(empty, name)
                    if name not in ds and ref.ndim != len(_TRAJ_DIMS[name]):
                        parts[name] = np.zeros((len(positions), *ref.shape[1:]), ref.dtype)
                        continue
                    a = ds[name].values
                    if a.shape[1:] != ref.shape[1:] or a.shape[0] != len(positions):
                        reason = f"variable {name} has shape {a.shape}"
                        break
                    parts[name] = a.astype(ref.dtype, copy=False)
                else:
                    return Trajectory(**parts)
    except Exception as err:  # noqa: BLE001 - any unreadable file is recomputed
        reason = f"unreadable ({type(err).__name__}: {err})"
    warnings.warn(f"checkpoint chunk {path} is not usable: {reason}; recomputing it", stacklevel=3)
    return None


def _prepare_checkpoint_dir(ckpt: Path, identity: dict[str, Any]) -> str:
    """Create or validate the folder's manifest; refuse a different run. Returns its digest."""
    if ckpt.exists() and not ckpt.is_dir():
        raise ConfigError(f"invalid checkpoint folder {ckpt}: it is a file")
    ckpt.mkdir(parents=True, exist_ok=True)
    manifest = ckpt / MANIFEST
    text = json.dumps(identity, sort_keys=True, indent=1)
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(
                f"checkpoint folder {ckpt} has an unreadable {MANIFEST}; use a new folder"
            ) from None
        new = json.loads(text)
        if old != new:
            diff = _diff_paths(old, new)
            details = "; ".join(
                f"{path}: folder has {_short(a)}, this run has {_short(b)}"
                for path, a, b in diff[:4]
            )
            raise ConfigError(
                f"checkpoint folder {ckpt} holds a different run (differs in "
                f"{[path for path, _, _ in diff]}: {details}); resume with the same settings "
                "or use a new folder"
            )
    else:
        _write_text_atomic(text, manifest)
    return hashlib.sha256(text.encode()).hexdigest()


def _diff_paths(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted paths (and both values) where two JSON trees differ, e.g. config.train.lr."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff_paths(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if old == new else [(prefix, old, new)]


def _short(value: Any, limit: int = 80) -> str:
    s = json.dumps(value, sort_keys=True)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def run_batched(
    config: Config,
    key: Array,
    seeds: np.ndarray,
    hparams: HyperParams,
    per_run_hparams: bool,
    *,
    chunk_size: int | None = None,
    devices: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    identity: dict[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[Trajectory, Layout]:
    """Train runs ``r = 0..R-1`` (seed ``seeds[r]``, hparams row ``r`` or shared).

    Returns the stacked numpy Trajectory (leading axis R, run order; identical on every
    process) and the layout used. ``identity`` (JSON-able) describes the runs for the
    checkpoint manifest; the layout and versions are added here.
    """
    seeds = np.asarray(seeds, np.int64)
    total = len(seeds)
    num_devices = distributed.resolve_devices(devices)
    nproc, pid = jax.process_count(), jax.process_index()
    block = distributed.process_block(total, pid, nproc)
    local = block.stop - block.start
    per_device = max(1, -(-local // num_devices))
    if chunk_size is None:
        chunk_size = auto_chunk_size(config, per_device)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise ConfigError(f"invalid chunk_size={chunk_size!r}: must be an integer >= 1")
    if chunk_size < 1:
        raise ConfigError(f"invalid chunk_size={chunk_size}: must be an integer >= 1")
    # Never pad a call beyond what one process needs (same clamp on every process).
    chunk_size = int(min(chunk_size, max(1, -(-block.size // num_devices))))
    layout = Layout(chunk_size, num_devices, nproc)
    per_call = chunk_size * num_devices

    manifest_id = ""
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None:
        full_identity = dict(identity or {}) | {
            "layout": layout._asdict(),
            "versions": _versions(),
            "format": CHUNK_FORMAT,
        }
        manifest_id = _prepare_checkpoint_dir(ckpt, full_identity)

    runner = _compiled_runner(config, num_devices, per_run_hparams)
    empty = _empty_trajectory(config)
    pad_seed = int(seeds.max()) + 1
    parts: list[Trajectory] = [empty]
    start_time = time.perf_counter()
    reused = chunks = 0
    for start in range(block.start, block.stop, per_call):
        chunks += 1
        positions = np.arange(start, min(start + per_call, block.stop))
        chunk_seeds = seeds[positions]
        path = ckpt / f"chunk_{start:08d}.nc" if ckpt is not None else None
        traj = None
        if path is not None:
            traj = _read_chunk(path, positions, chunk_seeds, manifest_id, empty)
            reused += traj is not None
        if traj is None:
            # Pad with extra seed indices (dropped below) so one program serves every call.
            n_pad = per_call - len(positions)
            padded = np.concatenate([chunk_seeds, pad_seed + np.arange(n_pad)])
            hp = hparams
            if per_run_hparams:
                rows = np.concatenate([positions, np.full(n_pad, positions[0])])
                hp = jax.tree.map(lambda a, rows=rows: a[rows], hparams)
            out = runner(seed_keys(key, padded), hp)
            keep = len(positions)
            traj = jax.tree.map(lambda a, keep=keep: np.asarray(a)[:keep], out)
            if path is not None:
                _write_atomic(_chunk_dataset(traj, positions, chunk_seeds, manifest_id), path)
                _write_text_atomic(_sha256(path), path.with_name(path.name + ".sha256"))
        parts.append(traj)
        if progress is not None:
            done = int(positions[-1]) + 1 - block.start
            progress(done, local, time.perf_counter() - start_time)
    if reused and progress is not None:  # a resumed run says what it did not recompute
        print(
            f"[simdyn] resumed from {ckpt}: reused {reused} of {chunks} chunks, "
            f"computed {chunks - reused}",
            file=sys.stderr,
        )
    mine = jax.tree.map(lambda *a: np.concatenate(a, axis=0), *parts)
    return distributed.gather_blocks(mine, local, block.size), layout


def _progress_printer(stream=sys.stderr) -> Callable[[int, int, float], None]:
    def show(done: int, total: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else float("nan")
        stream.write(f"\r[simdyn] {done}/{total} seeds  {elapsed:7.1f}s  {rate:8.2f} seeds/s")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


def resolve_progress(
    progress: bool | Callable[[int, int, float], None],
) -> Callable[[int, int, float], None] | None:
    """True -> a stderr printer (process 0 only); a callable is used as is."""
    if progress is True:
        return _progress_printer() if jax.process_index() == 0 else None
    return progress or None


def seed_list_from(seeds: int | Sequence[int]) -> list[int]:
    """Seed indices from a count (0..seeds-1) or an explicit list (distinct, >= 0)."""
    if isinstance(seeds, bool):
        raise ConfigError(f"invalid seeds={seeds!r}: must be a count >= 1 or a list of indices")
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ConfigError(f"invalid seeds={seeds}: must be >= 1")
        return list(range(int(seeds)))
    try:
        seed_list = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ConfigError(f"invalid seeds={seeds!r}: must be integers") from None
    if not seed_list or min(seed_list) < 0 or max(seed_list) >= 2**31:
        raise ConfigError("invalid seeds: must be a non-empty list of integers in [0, 2**31)")
    if len(set(seed_list)) != len(seed_list):
        raise ConfigError("invalid seeds: indices must be distinct")
    return seed_list


def simulate(
    config: Config,
    seeds: int | Sequence[int] = 16,
    key: int | Array = 0,
    *,
    chunk_size: int | None = None,
    hparams: HyperParams | None = None,
    devices: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool | Callable[[int, int, float], None] = False,
) -> xr.Dataset:
    """Run many seeds of one config; return an ``xarray.Dataset`` (see module docs).

    Args:
      config: the simulation.
      seeds: a count (seed indices 0..seeds-1) or explicit seed indices.
      key: base PRNG key or int; seed i uses fold_in(key, i).
      chunk_size: seeds per device per compiled call; default from free device memory.
      hparams: numeric hyper-parameters (lr, beta, sigma_0) overriding the config's: scalars
        for all seeds, or (num_seeds,) arrays (one value per seed; recorded as coordinates).
      devices: local devices to split the seed axis over (None = all local devices).
      checkpoint_dir: each finished chunk is written there atomically and a later call with the
        same folder resumes; a different config, key, seeds, hyper-parameters, layout or
        simdyn/JAX version is refused; damaged chunks are recomputed.
      progress: print progress to stderr, or a callback(done, total, elapsed_s).

    Returns a Dataset with dims (seed, step, feature, probe_step); under jax.distributed every
    process returns the full dataset (write it from process 0).
    """
    if not isinstance(config, Config):
        raise ConfigError(f"invalid config of type {type(config).__name__}: must be a Config")
    seed_list = seed_list_from(seeds)
    base = as_key(key)
    hp, per_run = broadcast_hparams(config, hparams, len(seed_list))
    kd = key_data(base)
    identity = {
        "kind": "simulate",
        "config": json.loads(config.to_json()),
        "key": kd,
        "seeds": seed_list,
        "hparams": _hparams_json(hp),
    }
    traj, layout = run_batched(
        config,
        base,
        np.asarray(seed_list),
        hp,
        per_run,
        chunk_size=chunk_size,
        devices=devices,
        checkpoint_dir=checkpoint_dir,
        identity=identity,
        progress=resolve_progress(progress),
    )
    ds = trajectories_to_dataset(config, traj, seed_list)
    if per_run:
        for name, values in hp._asdict().items():
            ds.coords[name] = ("seed", np.asarray(values))
    ds.attrs.update(run_attrs(kd, hp, layout))
    ds.attrs["num_diverged"] = int(ds["diverged"].sum())
    return ds


def run_attrs(kd: list[int], hp: HyperParams, layout: Layout) -> dict[str, Any]:
    """Attributes every result records: key, hyper-parameters, layout, environment."""
    return {
        "key": json.dumps(kd),
        "hparams": json.dumps(_hparams_json(hp)),
        "chunk_size": layout.chunk_size,
        "devices": layout.devices,
        "process_count": layout.process_count,
        **environment_attrs(),
    }
