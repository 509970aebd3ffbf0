"""Sweeps: grids of hyper-parameters in one compiled program, and lists of configs.

* :func:`sweep` runs every (grid point, seed) pair of a ``lr x beta x sigma_0`` grid as one
  batch of runs: the numeric hyper-parameters are traced arrays (:class:`HyperParams`), so the
  whole grid costs ONE compilation, and the runs are chunked, split over devices/processes and
  checkpointed exactly like :func:`simdyn.simulate` seeds.
* Grid points share seeds: run (g, i) uses seed key ``fold_in(key, i)`` for every g (common
  random numbers: two grid points differ only by their hyper-parameters, which sharpens
  comparisons between them).
* :func:`sweep_configs` runs several configs (shape-determining fields such as ``p`` or ``d``
  need one program each), each spread over all devices, with one checkpoint sub-folder each.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from simdyn._src.simulation import (
    broadcast_hparams,
    resolve_progress,
    run_attrs,
    run_batched,
    run_identity,
    seed_list_from,
    trajectories_to_dataset,
)
from simdyn._src.train import HyperParams, default_hparams
from simdyn.config import Config, ConfigError
from simdyn.seeds import as_key, key_data

GRID_FIELDS = ("lr", "beta", "sigma_0")


def validate_grid(config: Config, grid: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """Check a hyper-parameter grid; returns ``{field: [values]}`` in GRID_FIELDS order.

    lr > 0; beta in (0, 1) and only for ``train.loss='joint'`` (SCL/UCL fix beta to 1/0);
    sigma_0 >= 0. Values finite, distinct, at least one per field.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError(f"invalid grid={grid!r}: must map some of {GRID_FIELDS} to value lists")
    unknown = sorted(set(grid) - set(GRID_FIELDS))
    if unknown:
        raise ConfigError(
            f"invalid grid field(s) {unknown}: sweepable in one program are {list(GRID_FIELDS)} "
            "(vary other fields with sweep_configs)"
        )
    out: dict[str, list[float]] = {}
    for name in GRID_FIELDS:
        if name not in grid:
            continue
        raw = grid[name]
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence | np.ndarray):
            raise ConfigError(f"invalid grid {name}={raw!r}: must be a list of numbers")
        try:
            values = [float(v) for v in raw]
        except (TypeError, ValueError):
            raise ConfigError(f"invalid grid {name}={list(raw)!r}: must be numbers") from None
        if not values:
            raise ConfigError(f"invalid grid {name}=[]: give at least one value")
        if len(set(values)) != len(values):
            raise ConfigError(f"invalid grid {name}={values}: values must be distinct")
        ok = {
            "lr": lambda v: v > 0,
            "beta": lambda v: 0 < v < 1,
            "sigma_0": lambda v: v >= 0,
        }[name]
        allowed = {"lr": "> 0", "beta": "in (0, 1)", "sigma_0": ">= 0"}[name]
        bad = [v for v in values if not (math.isfinite(v) and ok(v))]
        if bad:
            raise ConfigError(f"invalid grid {name}={bad}: each value must be finite and {allowed}")
        if name == "beta" and config.train.loss != "joint":
            raise ConfigError(
                f"invalid grid beta with train.loss={config.train.loss!r}: beta is only used by "
                "loss='joint' (SCL is beta=1, UCL beta=0)"
            )
        out[name] = values
    return out


def sweep(
    config: Config,
    grid: Mapping[str, Sequence[float]],
    seeds: int | Sequence[int] = 16,
    key: int = 0,
    *,
    chunk_size: int | None = None,
    devices: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool | Callable[[int, int, float], None] = False,
) -> xr.Dataset:
    """Every seed at every point of a hyper-parameter grid, in one compiled program.

    The numeric hyper-parameters (lr, beta, sigma_0) are traced arrays, so the whole grid runs
    in one ``jit(vmap(scan(step)))`` program; seed i's key is ``fold_in(key, i)`` at every grid
    point, so the points differ only by their hyper-parameters.

    Args:
      config: the simulation; grid fields override its lr / beta / sigma_0.
      grid: e.g. ``{"lr": [0.01, 0.05], "beta": [0.25, 0.5, 0.75]}``: field -> values.
      seeds: a count S (seeds 0..S-1) or a list of distinct seed indices.
      key: the base key.
      chunk_size: runs (grid point x seed) per device per compiled call (default: by memory).
      devices: devices to shard the runs over (default: all).
      checkpoint_dir: makes the sweep resumable, as for :func:`simdyn.simulate`.
      progress: print, or call back ``(done, total, seconds)``, after every chunk.

    Returns:
      An ``xarray.Dataset`` with dims (*grid fields, seed, step, feature, probe_step).

    Raises:
      ConfigError: a grid field that is not lr / beta / sigma_0, or a value out of its range.

    Examples:
      >>> import simdyn
      >>> cfg = simdyn.preset("fig2a").replace(n=8, d=16, steps=4, log_every=2, probe_every=-1)
      >>> ds = simdyn.sweep(cfg, {"lr": [0.01, 0.02]}, seeds=2)
      >>> dict(ds["alignment"].sizes)
      {'lr': 2, 'seed': 2, 'step': 3, 'feature': 5}
    """
    if not isinstance(config, Config):
        raise ConfigError(f"invalid config of type {type(config).__name__}: must be a Config")
    values = validate_grid(config, grid)
    seed_list = seed_list_from(seeds, config, math.prod(len(v) for v in values.values()))
    base = as_key(key)
    names = list(values)
    points = list(itertools.product(*(values[n] for n in names)))
    num_seeds = len(seed_list)
    defaults = default_hparams(config)
    columns: dict[str, Any] = {}  # numpy columns: broadcast_hparams checks and converts them
    for name in HyperParams._fields:
        if name in values:
            idx = names.index(name)
            columns[name] = np.repeat([p[idx] for p in points], num_seeds)
        else:
            columns[name] = np.full(len(points) * num_seeds, float(getattr(defaults, name)))
    hp, _ = broadcast_hparams(config, HyperParams(**columns), len(points) * num_seeds)
    kd = key_data(base)
    identity = run_identity("sweep", config, kd, seed_list, grid=values)
    run_seeds = np.tile(np.asarray(seed_list, np.int64), len(points))
    traj, layout = run_batched(
        config,
        base,
        run_seeds,
        hp,
        True,
        chunk_size=chunk_size,
        devices=devices,
        checkpoint_dir=checkpoint_dir,
        identity=identity,
        progress=resolve_progress(progress, "sweep"),
    )
    flat = trajectories_to_dataset(config, traj, np.arange(len(run_seeds)))
    shape = [len(values[n]) for n in names] + [num_seeds]
    data_vars = {}
    for var_name, var in flat.data_vars.items():
        arr = var.values.reshape(shape + list(var.shape[1:]))
        data_vars[var_name] = ((*names, *var.dims), arr, var.attrs)
    coords = {n: np.asarray(values[n]) for n in names}
    coords |= {"seed": np.asarray(seed_list, np.int64)}
    coords |= {c: flat.coords[c].values for c in ("step", "feature", "probe_step")}
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(flat.attrs)
    ds.attrs.update(run_attrs(kd, default_hparams(config), layout))
    ds.attrs["hparams"] = json.dumps({"grid": values})
    ds.attrs["sweep"] = json.dumps(names)
    ds.attrs["num_diverged"] = int(ds["diverged"].sum())
    return ds


_SAFE_NAME = re.compile(r"[A-Za-z0-9_.=-]+")


def sweep_configs(
    configs: Mapping[str, Config],
    seeds: int | Sequence[int] = 16,
    key: int = 0,
    *,
    chunk_size: int | None = None,
    devices: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool | Callable[[int, int, float], None] = False,
) -> dict[str, xr.Dataset]:
    """``simulate`` each named config with the same seeds and key (one program per config),
    for fields that change shapes (p, n, d, ...), which one compiled program cannot sweep.

    Args:
      configs: name -> Config; names are folder names (letters, digits and _ . = -).
      seeds: a count S or a list of distinct seed indices, the same for every config.
      key: the base key, the same for every config.
      chunk_size: as :func:`simdyn.simulate`.
      devices: as :func:`simdyn.simulate` (each config's seeds are split over them).
      checkpoint_dir: each config resumes from its own sub-folder ``checkpoint_dir/<name>``.
      progress: as :func:`simdyn.simulate`.

    Returns:
      name -> the config's ``xarray.Dataset`` (as :func:`simdyn.simulate` returns it).

    Raises:
      ConfigError: an empty mapping, a name that is not a safe folder name, or a non-Config.

    Examples:
      >>> import simdyn
      >>> cfg = simdyn.preset("fig2a").replace(n=8, d=16, steps=4, log_every=2, probe_every=-1)
      >>> out = simdyn.sweep_configs({"p3": cfg, "p5": cfg.replace(p=5)}, seeds=2)
      >>> sorted(out), out["p5"].attrs["config"].count('"p": 5')
      (['p3', 'p5'], 1)
    """
    from simdyn._src.simulation import simulate

    if not isinstance(configs, Mapping) or not configs:
        raise ConfigError("invalid configs: must be a non-empty mapping name -> Config")
    for name, cfg in configs.items():
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or name in (".", ".."):
            raise ConfigError(
                f"invalid config name {name!r}: use letters, digits and _ . = - (a folder name)"
            )
        if not isinstance(cfg, Config):
            raise ConfigError(f"invalid configs[{name!r}]: must be a Config")
    out = {}
    for name, cfg in configs.items():
        sub = None if checkpoint_dir is None else os.path.join(checkpoint_dir, name)
        out[name] = simulate(
            cfg,
            seeds,
            key,
            chunk_size=chunk_size,
            devices=devices,
            checkpoint_dir=sub,
            progress=progress,
        )
        out[name].attrs["sweep_name"] = name
    return out
