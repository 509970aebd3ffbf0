"""Seeds, chunking, result assembly and resumable checkpoints. No maths lives here.

``simulate(config, seeds, key)`` runs ``jit(vmap(train))`` over chunks of seeds. Seed ``i``'s key
is ``fold_in(key, i)`` whatever the chunking, so each seed's random inputs are identical for any
chunk size; the last chunk is padded with extra seed indices (and their results dropped) so one
compiled program serves every chunk.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from simdyn.config import Config, ConfigError
from simdyn.train import HyperParams, Trajectory, default_hparams, make_train, resolve_backend

Array = jax.Array

RESULT_FORMAT = 1


def as_key(key: int | Array) -> Array:
    """A typed PRNG key from an int seed or an existing key."""
    if isinstance(key, int | np.integer):
        if key < 0:
            raise ConfigError(f"invalid key={key}: must be a non-negative integer")
        return jax.random.key(int(key))
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))


def seed_keys(key: Array, seed_indices: Array) -> Array:
    """fold_in(key, i) for each seed index: a seed's stream never depends on batching."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(seed_indices, jnp.uint32))


def bytes_per_seed(config: Config) -> int:
    """A deliberately generous estimate of one seed's device memory in the vmapped program."""
    d, t, m = config.data, config.train, config.model
    dim = d.d + 1
    item = 8 if t.dtype == "float64" else 4
    s = d.noise_nnz
    pts = d.num_points * (d.K + 1 + 2 * s) + d.n_test * (d.K + 1 + 2 * s)
    theta = m.p * dim * 8  # theta, optimiser slots, gradient and product temporaries
    backend = resolve_backend(config)
    if backend == "dense":
        mom = 3 * dim * dim + d.num_points * dim
    elif backend == "structured":
        mom = (d.K + 4) * dim + 2 * d.n * (d.K + 1 + d.m * s) + m.p * d.num_points
    else:
        mom = 3 * m.p * d.num_points * max(1, min(s, 64)) + m.p * dim
    rec = len(t.record_steps) * (d.K + 2) + 2 * len(t.probe_steps)
    return int(2 * item * (pts + theta + mom + rec))


def available_memory() -> int:
    """Free memory of the default device (bytes); host RAM for the CPU."""
    dev = jax.devices()[0]
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


def auto_chunk_size(config: Config, num_seeds: int, fraction: float = 0.25) -> int:
    """Largest chunk that fits ``fraction`` of free memory, at most num_seeds (>= 1)."""
    fit = int(fraction * available_memory() // max(bytes_per_seed(config), 1))
    return int(max(1, min(num_seeds, fit, 4096)))


def _compiled_runner(config: Config) -> Callable[[Array, HyperParams], Trajectory]:
    return jax.jit(jax.vmap(make_train(config), in_axes=(0, None)))


def environment_attrs() -> dict[str, Any]:
    """Versions and numerics switches recorded in every result file."""
    import jaxlib

    from simdyn import __version__

    return {
        "simdyn_version": __version__,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "jax_enable_x64": int(bool(jax.config.jax_enable_x64)),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "platform": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "python": platform.python_version(),
        "result_format": RESULT_FORMAT,
    }


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
        "alignment": (("seed", "step", "feature"), np.asarray(traj.alignment)),
        "loss": (("seed", "step"), np.asarray(traj.loss)),
        "probe_class": (("seed", "probe_step"), np.asarray(traj.probe_class)),
        "probe_subclass": (("seed", "probe_step"), np.asarray(traj.probe_subclass)),
        "diverged": (("seed",), np.asarray(traj.diverged)),
        "diverged_step": (("seed",), np.asarray(traj.diverged_step)),
    }
    if t.save_theta:
        data_vars["theta"] = (("seed", "row", "col"), np.asarray(traj.theta))
    ds = xr.Dataset(data_vars, coords=coords)
    ds["alignment"].attrs["description"] = "||Theta_t v_j||, feature 0 = bias"
    ds.attrs["config"] = config.to_json()
    ds.attrs["backend"] = resolve_backend(config)
    ds.attrs.update(attrs or {})
    return ds


def _write_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a result dataset atomically (.nc, h5netcdf)."""
    _write_atomic(ds, Path(path))


def load(path: str | os.PathLike) -> xr.Dataset:
    """Load a result file and check that it is a simdyn result with a valid config."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no result file at {p}")
    ds = xr.load_dataset(p, engine="h5netcdf")
    if "config" not in ds.attrs or "alignment" not in ds:
        raise ConfigError(f"{p} is not a simdyn result file (no config attribute/alignment)")
    Config.from_json(ds.attrs["config"])  # validates
    return ds


def result_config(ds: xr.Dataset) -> Config:
    return Config.from_json(ds.attrs["config"])


def _run_identity(config: Config, key_data: list[int], hparams: HyperParams) -> dict[str, Any]:
    return {
        "config": json.loads(config.to_json()),
        "key": key_data,
        "hparams": {k: float(v) for k, v in hparams._asdict().items()},
    }


def _progress_printer(stream=sys.stderr) -> Callable[[int, int, float], None]:
    def show(done: int, total: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else float("nan")
        stream.write(f"\r[simdyn] {done}/{total} seeds  {elapsed:7.1f}s  {rate:8.2f} seeds/s")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


def simulate(
    config: Config,
    seeds: int | Sequence[int] = 16,
    key: int | Array = 0,
    *,
    chunk_size: int | None = None,
    hparams: HyperParams | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool | Callable[[int, int, float], None] = False,
) -> xr.Dataset:
    """Run many seeds of one config; return an ``xarray.Dataset`` (see module docs).

    Args:
      config: the simulation.
      seeds: a count (seed indices 0..seeds-1) or explicit seed indices.
      key: base PRNG key or int; seed i uses fold_in(key, i).
      chunk_size: seeds per compiled call; default from free device memory.
      hparams: numeric hyper-parameters (lr, beta, sigma_0) overriding the config's.
      checkpoint_dir: if set, each finished chunk is written there atomically and a later call
        with the same directory resumes, skipping finished chunks; a different config, key or
        chunk layout is refused.
      progress: print progress to stderr, or a callback(done, total, elapsed_s).
    """
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ConfigError(f"invalid seeds={seeds}: must be >= 1")
        seed_list = list(range(int(seeds)))
    else:
        seed_list = [int(s) for s in seeds]
        if not seed_list or min(seed_list) < 0 or len(set(seed_list)) != len(seed_list):
            raise ConfigError("invalid seeds: must be distinct non-negative integers")
    base = as_key(key)
    hp = default_hparams(config) if hparams is None else hparams
    total = len(seed_list)
    if chunk_size is None:
        chunk_size = auto_chunk_size(config, total)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"invalid chunk_size={chunk_size!r}: must be an integer >= 1")
    chunk_size = min(chunk_size, total)
    runner = _compiled_runner(config)
    key_data = [int(v) for v in np.asarray(jax.random.key_data(base)).ravel()]

    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None:
        _prepare_checkpoint_dir(
            ckpt,
            _run_identity(config, key_data, hp) | {"seeds": seed_list, "chunk_size": chunk_size},
        )

    show = _progress_printer() if progress is True else (progress or None)
    parts: list[xr.Dataset] = []
    start_time = time.perf_counter()
    for start in range(0, total, chunk_size):
        chunk = seed_list[start : start + chunk_size]
        path = ckpt / f"chunk_{start:08d}.nc" if ckpt is not None else None
        if path is not None and path.exists():
            parts.append(xr.load_dataset(path, engine="h5netcdf"))
        else:
            # Pad the last chunk with extra indices so one compiled program serves all chunks.
            pad = chunk + [max(seed_list) + 1 + j for j in range(chunk_size - len(chunk))]
            traj = runner(seed_keys(base, np.asarray(pad)), hp)
            keep = len(chunk)
            traj = jax.tree.map(lambda a, keep=keep: np.asarray(a)[:keep], traj)
            part = trajectories_to_dataset(config, traj, chunk)
            if path is not None:
                _write_atomic(part, path)
            parts.append(part)
        if show:
            show(min(start + chunk_size, total), total, time.perf_counter() - start_time)
    ds = xr.concat(parts, dim="seed") if len(parts) > 1 else parts[0]
    ds.attrs = {}
    ds.attrs["config"] = config.to_json()
    ds.attrs["backend"] = resolve_backend(config)
    ds.attrs["key"] = json.dumps(key_data)
    ds.attrs["hparams"] = json.dumps({k: float(v) for k, v in hp._asdict().items()})
    ds.attrs["chunk_size"] = chunk_size
    ds.attrs["num_diverged"] = int(ds["diverged"].sum())
    ds.attrs.update(environment_attrs())
    return ds


def _prepare_checkpoint_dir(ckpt: Path, identity: dict[str, Any]) -> None:
    """Create or validate the checkpoint folder's manifest; refuse a different run."""
    ckpt.mkdir(parents=True, exist_ok=True)
    manifest = ckpt / "manifest.json"
    text = json.dumps(identity, sort_keys=True, indent=1)
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old != json.loads(text):
            diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            raise ConfigError(
                f"checkpoint folder {ckpt} holds a different run (differs in "
                f"{diff}); use a new folder or the same settings to resume"
            )
        return
    tmp = ckpt / f".manifest.json.tmp-{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, manifest)
