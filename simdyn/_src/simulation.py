"""``simulate(config, seeds, key)``: many seeds of one config as a labelled ``xarray.Dataset``.

Each seed trains with :func:`simdyn.make_train` (``jit(vmap(train))``), run over seeds by the
seed engine (:mod:`simdyn.engine`: keys, chunks, devices, resumable checkpoints; see there for
what stays bit-identical under another layout). This module owns what is specific to the fast
path: the compiled program per config, the memory-based chunk size, the hyper-parameter
broadcasting, and the dataset's labels, save and load. No maths lives here.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from simdyn import objectives
from simdyn._src.preflight import check_resources, host_available_bytes
from simdyn._src.train import (
    HyperParams,
    Trajectory,
    default_hparams,
    fresh_test_set_of,
    make_train,
    training_set_of,
)
from simdyn.chunking import auto_chunk_size
from simdyn.config import Config, ConfigError, ResultFileError
from simdyn.data import TestSet, TrainingSet
from simdyn.engine import (
    Layout,
    environment_attrs,
    run_per_seed,
    write_atomic,
)
from simdyn.losses import STATIC_BETA
from simdyn.seeds import as_key, key_data, seed_key

Array = jax.Array


TRAJ_DIMS = {
    "alignment": ("run", "step", "feature"),
    "loss": ("run", "step"),
    "probe_class": ("run", "probe_step"),
    "probe_subclass": ("run", "probe_step"),
    "diverged": ("run",),
    "diverged_step": ("run",),
    "theta": ("run", "row", "col"),
}


# --- a seed's data -------------------------------------------------------------------------
# Jitted once per config: called eagerly, JAX would compile every primitive separately.
_training_set_of = jax.jit(training_set_of, static_argnums=0)
_fresh_test_set_of = jax.jit(fresh_test_set_of, static_argnums=(0, 2))


def seed_training_set(config: Config, seed: int, key: int | Array = 0) -> TrainingSet:
    """The training set that seed ``seed`` of ``simulate(config, key=key)`` trains on.

    Closed forms (:mod:`simdyn.theory`) computed on it refer to exactly that seed's data.

    Args:
      config: the run's configuration.
      seed: the seed index, as in ``simulate(config, seeds=...)``.
      key: the base key (or int) passed to :func:`simulate`.

    Returns:
      The seed's ``simdyn.data.TrainingSet`` in ``train.dtype``: points with leading shape
      (n, m) (n originals, m augmentations each), labels (n,), originals (n,).

    Examples:
      >>> import simdyn
      >>> config = simdyn.preset("fig2a").replace(n=8, d=16)
      >>> ts = simdyn.seed_training_set(config, seed=3)
      >>> ts.points.features.shape, ts.labels.y.shape  # (n, m, K + 1), (n,)
      ((8, 5, 5), (8,))
    """
    return _training_set_of(config, seed_key(key, seed))


def seed_test_set(config: Config, seed: int, key: int | Array = 0, n: int | None = None) -> TestSet:
    """The fresh test set of that seed's probes (``n`` points instead of data.n_test if given).

    Args:
      config: the run's configuration.
      seed: the seed index, as in ``simulate(config, seeds=...)``.
      key: the base key (or int) passed to :func:`simulate`.
      n: the number of test points; default ``data.n_test``.

    Returns:
      The seed's ``simdyn.data.TestSet`` of ``n`` points, in ``train.dtype``.

    Examples:
      >>> import simdyn
      >>> config = simdyn.preset("fig2a").replace(n=8, d=16)
      >>> test = simdyn.seed_test_set(config, seed=3, n=6)
      >>> test.points.features.shape  # (n, K + 1)
      (6, 5)
    """
    return _fresh_test_set_of(config, seed_key(key, seed), n)


# --- compiled programs -----------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _train_fn(config: Config) -> Callable[[Array, HyperParams], Trajectory]:
    """One seed's ``make_train(config)``, cached: the seed engine keys its compiled program by
    the function's identity, so repeated runs of one config (chunks, resumes, tests) reuse it."""
    return make_train(config)


# --- datasets --------------------------------------------------------------------------------
def trajectories_to_dataset(
    config: Config,
    traj: Trajectory,
    seeds: Sequence[int] | np.ndarray,
    attrs: dict[str, Any] | None = None,
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
        for name, dims in TRAJ_DIMS.items()
        if name != "theta" or t.save_theta
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds["alignment"].attrs["description"] = "||Theta_t v_j||, feature 0 = bias"
    ds["diverged"].attrs["description"] = (
        "non-finite loss/Theta or |Theta| > train.divergence_threshold at a recorded step; "
        "such seeds are kept here and excluded from every statistic (simdyn show, the summaries)"
    )
    ds.attrs["config"] = config.to_json()
    ds.attrs["backend"] = objectives.resolve(config)
    ds.attrs.update(attrs or {})
    return ds


CHECKSUM_ATTR = "data_sha256"


def data_checksum(ds: xr.Dataset) -> str:
    """SHA-256 of a result's content: every data variable and coordinate (name, dtype, shape,
    bytes, in name order) and every global attribute but the checksum itself (the config, the
    key, the grid names...).

    Byte order is normalised to little-endian and attributes to JSON, so the digest is a
    property of the values, not of the file layout; :func:`save` records it and :func:`load`
    recomputes it.

    Args:
      ds: a result dataset.

    Returns:
      The hex digest.
    """
    h = hashlib.sha256()
    attrs = {str(k): _plain(v) for k, v in ds.attrs.items() if k != CHECKSUM_ATTR}
    h.update(json.dumps(attrs, sort_keys=True).encode())
    for kind, table in (("var", ds.data_vars), ("coord", ds.coords)):
        for name in sorted(map(str, table)):
            a = np.asarray(table[name].values)
            if a.dtype.kind == "O":
                a = np.asarray([str(v) for v in a.ravel()]).reshape(a.shape)
            a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
            h.update(f"{kind}:{name}:{a.dtype.str}:{a.shape};".encode())
            # numpy's stubs give ndarray __buffer__ only for Python >= 3.12; it has the protocol
            h.update(memoryview(a.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """An attribute as plain JSON-able Python (numpy scalars and arrays as numbers and lists)."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


# A result file ends with the SHA-256 of all its bytes before this trailer; HDF5 ignores bytes
# past its end-of-file address, so any netCDF reader still opens the file.
TRAILER_MAGIC = b"\nsimdyn-sha256:"
TRAILER_SIZE = len(TRAILER_MAGIC) + 64 + 1


def save(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write a result dataset atomically (.nc, h5netcdf), with two checksums.

    The file is written under a temporary name in the same folder and then renamed, so ``path``
    is complete or absent, never partial. Without ``overwrite`` an existing ``path`` is refused,
    also one that appears while writing (the final step is a hard link, which never replaces).
    The ``data_sha256`` attribute is the checksum of the dataset's content
    (:func:`data_checksum`), and the file ends with the SHA-256 of its own bytes, so that
    :func:`load` refuses a damaged file before parsing it.

    Args:
      ds: the dataset (``simulate``/``sweep`` output).
      path: the .nc file to write; its folder must exist.
      overwrite: replace an existing file (default: refuse).

    Returns:
      None; ``path`` then holds the complete file.

    Raises:
      ConfigError: a folder, a missing folder, or an existing file without ``overwrite``.

    Examples:
      >>> import pathlib, tempfile
      >>> import simdyn
      >>> config = simdyn.preset("fig2a").replace(n=8, d=16, steps=2, log_every=1,
      ...                                         probe_every=-1)
      >>> ds = simdyn.simulate(config, seeds=2)
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = pathlib.Path(folder) / "run.nc"
      ...     simdyn.save(ds, path)
      ...     back = simdyn.load(path)
      >>> bool((back["alignment"] == ds["alignment"]).all()), "data_sha256" in back.attrs
      (True, True)
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"invalid output path {p}: it is a folder, expected a .nc file name")
    if not p.parent.exists():
        raise ConfigError(f"invalid output path {p}: folder {p.parent} does not exist")
    if not overwrite and (p.exists() or p.is_symlink()):
        raise ConfigError(f"invalid output path {p}: the file exists (pass overwrite=True)")
    ds = ds.assign_attrs({CHECKSUM_ATTR: data_checksum(ds)})
    part = p.with_name(f".{p.name}.part-{os.getpid()}")
    try:
        write_atomic(ds, part)
        _append_trailer(part)
        if overwrite:
            os.replace(part, p)
            return
        try:
            os.link(part, p)  # atomic and never replaces an existing file
        except FileExistsError:
            raise ConfigError(
                f"invalid output path {p}: the file appeared while writing; not replaced (the "
                "result is not saved)"
            ) from None
        except OSError:  # a file system without hard links: check, then rename
            if p.exists():
                raise ConfigError(f"invalid output path {p}: the file exists") from None
            os.replace(part, p)
    finally:
        if part.exists():
            part.unlink()


def _file_sha256(f, size: int) -> str:
    h = hashlib.sha256()
    f.seek(0)
    left = size
    while left > 0:
        block = f.read(min(left, 1 << 20))
        if not block:
            break
        h.update(block)
        left -= len(block)
    return h.hexdigest()


def _append_trailer(path: Path) -> None:
    """Append TRAILER_MAGIC, the SHA-256 of the file's bytes and a newline; fsync."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        digest = _file_sha256(f, size)
        f.seek(size)
        f.write(TRAILER_MAGIC + digest.encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())


def _check_trailer(path: Path) -> bool:
    """True if the file ends with a valid trailer, False if it has none (an older file);
    ResultFileError if its bytes do not match the trailer's SHA-256."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size < TRAILER_SIZE:
            return False
        f.seek(size - TRAILER_SIZE)
        tail = f.read(TRAILER_SIZE)
        if not tail.startswith(TRAILER_MAGIC):
            return False
        recorded = tail[len(TRAILER_MAGIC) : -1].decode("ascii", "replace")
        if _file_sha256(f, size - TRAILER_SIZE) != recorded:
            raise ResultFileError(
                f"{path} is corrupted: its bytes do not match the SHA-256 recorded at its end "
                "when it was written; do not use it: restore a copy or rerun the command that "
                "wrote it"
            )
    return True


_RESULT_VARS = ("alignment", "loss", "probe_class", "probe_subclass", "diverged", "diverged_step")


def load(path: str | os.PathLike) -> xr.Dataset:
    """Load a result file and check that it is a consistent simdyn result.

    Args:
      path: a .nc file written by :func:`save` (or the command line).

    Returns:
      The ``xarray.Dataset`` as :func:`simulate` returned it: dims (seed, step, feature,
      probe_step), the config and run attributes, loaded into memory (the file is closed).

    Raises:
      FileNotFoundError: there is no file at ``path``.
      ResultFileError: the file is unreadable, not a simdyn result, incomplete or corrupted
        (a ``ConfigError``).

    Examples:
      >>> import pathlib, tempfile
      >>> import simdyn
      >>> config = simdyn.preset("fig2a").replace(n=8, d=16, steps=2, log_every=1,
      ...                                         probe_every=-1)
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = pathlib.Path(folder) / "run.nc"
      ...     simdyn.save(simdyn.simulate(config, seeds=2), path)
      ...     ds = simdyn.load(path)
      >>> ds["alignment"].dims, ds["alignment"].shape
      (('seed', 'step', 'feature'), (2, 3, 5))
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no result file at {p}")
    _check_trailer(p)  # before parsing: damaged HDF5 metadata can hang the parser
    with _quiet_destructors():
        try:
            ds = xr.load_dataset(p, engine="h5netcdf")
        except Exception as err:  # noqa: BLE001 - h5py/netCDF raise many types for bad files
            raise ResultFileError(
                f"{p} is not a readable result file ({type(err).__name__}: {err})"
            ) from None
    if "config" not in ds.attrs or "alignment" not in ds:
        raise ResultFileError(f"{p} is not a simdyn result file (no config attribute/alignment)")
    try:
        config = Config.from_json(ds.attrs["config"])
    except (ConfigError, ValueError, TypeError) as err:
        raise ResultFileError(f"{p}: invalid config attribute: {err}") from None
    missing = [v for v in _RESULT_VARS if v not in ds]
    if missing:
        raise ResultFileError(f"{p} is not a complete simdyn result: missing variables {missing}")
    expect = {
        "step": len(config.train.record_steps),
        "feature": config.data.K + 1,
        "probe_step": len(config.train.probe_steps),
    }
    for dim, n in expect.items():
        if ds.sizes.get(dim, 0) != n:
            raise ResultFileError(
                f"{p}: dimension {dim} has size {ds.sizes.get(dim, 0)} but its config implies {n}"
            )
    if ds["diverged"].dtype != bool:
        raise ResultFileError(f"{p}: variable diverged has dtype {ds['diverged'].dtype}, not bool")
    _check_checksum(ds, p)
    return ds


@contextlib.contextmanager
def _quiet_destructors():
    """Silence "Exception ignored in ... __del__" tracebacks while reading: h5netcdf objects
    half-built from an unreadable file fail again when collected; the ResultFileError says it."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous


def _check_checksum(ds: xr.Dataset, p: Path) -> None:
    """Refuse a file whose numbers differ from those it was written with."""
    recorded = ds.attrs.get(CHECKSUM_ATTR)
    if recorded is None:
        warnings.warn(
            f"{p} has no {CHECKSUM_ATTR} attribute (written before simdyn recorded one): its "
            "numbers cannot be checked for corruption",
            stacklevel=3,
        )
        return
    if str(recorded) != data_checksum(ds):
        raise ResultFileError(
            f"{p} is corrupted: its numbers do not match the checksum recorded when it was "
            f"written ({CHECKSUM_ATTR}); do not use it: restore a copy or rerun the command "
            "that wrote it"
        )


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


def run_identity(
    kind: str, config: Config, kd: list[int], seeds: list[int], **extra: Any
) -> dict[str, Any]:
    """What a checkpointed run is, for the engine's manifest (a resumed run must match it):
    its kind (simulate, sweep, generic), config, base key data ``kd``, seeds, and the kind's
    own JSON-able entries (hyper-parameters, grid, encoder and loss)."""
    config_json = json.loads(config.to_json())
    return {"kind": kind, "config": config_json, "key": kd, "seeds": seeds, **extra}


def run_batched(
    config: Config,
    key: Array,
    seeds: np.ndarray,
    hparams: HyperParams,
    per_run_hparams: bool,
    *,
    chunk_size: int | None = None,
    **engine: Any,
) -> tuple[Trajectory, Layout]:
    """Train runs ``r = 0..R-1`` (seed ``seeds[r]``, hparams row ``r`` or shared) of ``config``
    through the seed engine (:func:`simdyn.engine.run_per_seed`; ``engine`` are its keywords:
    devices, checkpoint_dir, identity, progress). ``chunk_size`` None: from free memory."""
    return run_per_seed(
        _train_fn(config),
        key,
        seeds,
        hparams,
        per_run_hparams,
        chunk_size=(lambda n: auto_chunk_size(config, n)) if chunk_size is None else chunk_size,
        dims=TRAJ_DIMS,
        **engine,
    )


def resolve_progress(
    progress: bool | Callable[[int, int, float], None], desc: str = "simulate"
) -> Callable[[int, int, float], None] | None:
    """True -> :func:`simdyn._src.progress.progress_bar` on stderr (process 0 only: a tqdm bar on a
    terminal, plain lines in a log); a callable is used as is; False/None -> no reporting."""
    if progress is True:
        from simdyn._src.progress import progress_bar

        return progress_bar(desc) if jax.process_index() == 0 else None
    return progress or None


def seed_list_from(
    seeds: int | Sequence[int], config: Config | None = None, runs_per_seed: int = 1
) -> list[int]:
    """Seed indices from a count (0..seeds-1) or an explicit list (distinct, >= 0).

    With ``config``, a count whose result cannot fit in the host's memory is refused before
    anything is allocated (:func:`simdyn._src.preflight.check_resources`).
    """
    if isinstance(seeds, bool):
        raise ConfigError(f"invalid seeds={seeds!r}: must be a count >= 1 or a list of indices")
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ConfigError(f"invalid seeds={seeds}: must be >= 1")
        if config is not None:
            check_resources(
                config,
                int(seeds),
                free_memory=host_available_bytes(),
                runs_per_seed=runs_per_seed,
                option="seeds",
            )
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
      progress: True for a progress bar on stderr (:func:`simdyn._src.progress.progress_bar`), or
        a callback(done, total, elapsed_s).

    Returns:
      An ``xarray.Dataset`` with dims (seed, step, feature, probe_step): alignment (seed, step,
      feature = K + 1), loss (seed, step), probe_class and probe_subclass (seed, probe_step),
      diverged and diverged_step (seed,), plus the config, key and hyper-parameters as
      attributes. Under jax.distributed every process returns the full dataset (write it from
      process 0).

    Examples:
      >>> import simdyn
      >>> config = simdyn.preset("fig2a").replace(n=8, d=16, steps=2, log_every=1,
      ...                                         probe_every=-1)
      >>> ds = simdyn.simulate(config, seeds=2)
      >>> ds["alignment"].dims, ds["alignment"].shape  # steps 0, 1, 2; bias + K features
      (('seed', 'step', 'feature'), (2, 3, 5))
      >>> ds["loss"].shape, int(ds.attrs["num_diverged"])
      ((2, 3), 0)
    """
    if not isinstance(config, Config):
        raise ConfigError(f"invalid config of type {type(config).__name__}: must be a Config")
    seed_list = seed_list_from(seeds, config)
    base = as_key(key)
    hp, per_run = broadcast_hparams(config, hparams, len(seed_list))
    kd = key_data(base)
    identity = run_identity("simulate", config, kd, seed_list, hparams=_hparams_json(hp))
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
