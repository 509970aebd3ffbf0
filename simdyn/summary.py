"""Text summaries of result datasets: median and 5-95% band across (non-diverged) seeds.

Diverged seeds (``diverged`` flag, see :class:`simdyn.Trajectory`) stay in the datasets
but every statistic here excludes them and says how many it excluded; other modules use
:func:`kept_seeds` / :func:`mask_diverged` for the same rule.
"""

from __future__ import annotations

import json
from typing import cast

import numpy as np
import xarray as xr

from simdyn.config import ConfigError


def summary_steps(steps: np.ndarray, count: int = 8) -> list[int]:
    """A few recorded steps, roughly log-spaced, always including the first and the last."""
    steps = np.asarray(steps)
    if len(steps) <= count:
        return [int(s) for s in steps]
    targets = np.unique(np.round(np.geomspace(1, len(steps) - 1, count - 1)).astype(int))
    picked = sorted({0, *targets.tolist(), len(steps) - 1})
    return [int(steps[i]) for i in picked]


def kept_seeds(ds: xr.Dataset) -> xr.Dataset:
    """The seeds that did not diverge (diverged ones are excluded from every statistic).

    For one run (``diverged`` has dims (seed,)). For a sweep, select a grid point first
    (``ds.sel(lr=0.05)``) or use :func:`mask_diverged`.
    """
    if "diverged" not in ds:
        raise ConfigError("dataset has no 'diverged' variable: not a simdyn result")
    if ds["diverged"].dims != ("seed",):
        raise ConfigError(
            f"kept_seeds needs diverged with dims ('seed',), got {ds['diverged'].dims}: select "
            "one grid point first (e.g. ds.sel(lr=0.05)) or use mask_diverged"
        )
    return ds.sel(seed=~ds["diverged"].values.astype(bool))


def num_excluded(ds: xr.Dataset) -> int:
    """How many runs (seeds, or seed x grid point) are flagged diverged and excluded."""
    return int(ds["diverged"].values.sum())


def mask_diverged(ds: xr.Dataset) -> xr.Dataset:
    """Every per-run variable set to NaN where its run diverged (any dims: sweeps too).

    Use NaN-skipping reductions afterwards (xarray's default ``skipna``).
    """
    keep = ~ds["diverged"].astype(bool)
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if name in ("diverged", "diverged_step") or not set(keep.dims) <= set(var.dims):
            continue
        if np.issubdtype(var.dtype, np.floating):
            out[name] = var.where(keep)
    return out


def band(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(5%, median, 95%) along ``axis``."""
    q = np.quantile(values, [0.05, 0.5, 0.95], axis=axis)
    return q[0], q[1], q[2]


def format_summary(ds: xr.Dataset, count: int = 8) -> str:
    """Table: per step, median [5%, 95%] of ||Theta v_j|| and the loss across kept seeds."""
    if ds["diverged"].ndim > 1:  # a sweep: one line per grid point
        return format_sweep_summary(ds)
    kept = kept_seeds(ds)
    total, n_kept = ds.sizes["seed"], kept.sizes["seed"]
    lines = [f"seeds: {total} run, {total - n_kept} diverged and excluded, {n_kept} summarised"]
    if n_kept == 0:
        return "\n".join(lines)
    steps = summary_steps(ds["step"].values, count)
    feats = [int(f) for f in ds["feature"].values]
    names = ["||b||" if f == 0 else f"||W v{f}||" for f in feats]
    header = f"{'step':>6} " + " ".join(f"{n:>24}" for n in names + ["loss"])
    lines += ["median [5%, 95%] across seeds", header]
    for s in steps:
        row = kept.sel(step=s)
        cells = []
        for f in feats:
            lo, med, hi = band(row["alignment"].sel(feature=f).values)
            cells.append(f"{med:9.3g} [{lo:.3g}, {hi:.3g}]")
        lo, med, hi = band(row["loss"].values)
        cells.append(f"{med:9.4g} [{lo:.4g}, {hi:.4g}]")
        lines.append(f"{s:>6} " + " ".join(f"{c:>24}" for c in cells))
    median = kept["alignment"].median("seed")
    peaks = [
        f"v{f}: {float(median.sel(feature=f).max()):.3g} at step "
        f"{int(median['step'][int(np.argmax(median.sel(feature=f).values))])}"
        for f in feats
        if f > 0
    ]
    lines.append("peak of the median ||W v_j||: " + ", ".join(peaks))
    if ds.sizes.get("probe_step", 0):
        lines.append("linear probes on fresh test data, median [5%, 95%]:")
        for s in ds["probe_step"].values:
            pc = band(kept["probe_class"].sel(probe_step=s).values)
            ps = band(kept["probe_subclass"].sel(probe_step=s).values)
            lines.append(
                f"  step {int(s):>6}: class {pc[1]:.3f} [{pc[0]:.3f}, {pc[2]:.3f}]  "
                f"subclass|class {ps[1]:.3f} [{ps[0]:.3f}, {ps[2]:.3f}]"
            )
    return "\n".join(lines)


def peak_stats(ds: xr.Dataset) -> xr.Dataset:
    """Each run's peak of ||W_t v_j|| over the recorded steps and the step where it is reached.

    Args:
      ds: a simulate or sweep result (``alignment`` with dims (*grid, seed, step, feature)).

    Returns:
      A Dataset with ``peak`` and ``peak_step`` of dims (*grid, seed, feature): NaN for runs
      that diverged (flagged, or any non-finite alignment); the first step of the maximum on
      ties.
    """
    align = ds["alignment"]
    # numpy's stubs type a ufunc's result as an ndarray; on a DataArray it is a DataArray
    finite_values = cast(xr.DataArray, np.isfinite(align))
    bad = ds["diverged"].astype(bool) | ~finite_values.all(("step", "feature"))
    finite = align.where(~bad, -np.inf)
    where = finite.argmax("step")
    steps = ds["step"].values[where.values]
    peak = finite.max("step").where(~bad)
    peak_step = xr.DataArray(steps.astype(np.float64), dims=where.dims, coords=where.coords)
    return xr.Dataset({"peak": peak, "peak_step": peak_step.where(~bad)})


def format_sweep_summary(ds: xr.Dataset) -> str:
    """One line per grid point: diverged runs excluded, final median loss and ||W v_j||."""
    names = json.loads(ds.attrs.get("sweep", "[]"))
    if not names:
        return format_summary(ds)
    last = int(ds["step"].values[-1])
    total = int(np.prod([ds.sizes[n] for n in names])) * ds.sizes["seed"]
    lines = [
        f"sweep over {names}: {total} runs, {num_excluded(ds)} diverged and excluded; "
        f"medians across kept seeds at step {last}"
    ]
    feats = [int(f) for f in ds["feature"].values if f > 0]
    header = (
        " ".join(f"{n:>10}" for n in names)
        + f" {'diverged':>9} {'loss':>11} "
        + " ".join(f"{f'||W v{f}||':>10}" for f in feats)
    )
    lines.append(header)
    for index in np.ndindex(*(ds.sizes[n] for n in names)):
        point = ds.isel(dict(zip(names, index, strict=True)))
        kept = kept_seeds(point)
        cells = [f"{float(point[n]):>10.4g}" for n in names]
        cells.append(f"{ds.sizes['seed'] - kept.sizes['seed']:>9d}")
        if kept.sizes["seed"] == 0:
            cells.append(f"{'(all diverged)':>11}")
        else:
            final = kept.sel(step=last)
            cells.append(f"{float(np.median(final['loss'].values)):>11.4g}")
            cells += [
                f"{float(np.median(final['alignment'].sel(feature=f).values)):>10.3g}"
                for f in feats
            ]
        lines.append(" ".join(cells))
    lines += _format_sweep_peaks(ds, names, feats)
    return "\n".join(lines)


def _format_sweep_peaks(ds: xr.Dataset, names: list[str], feats: list[int]) -> list[str]:
    """The sweep's peak block: per grid point and feature, the median over kept seeds of each
    run's peak of ||W_t v_j|| and of the step where it peaks."""
    peaks = peak_stats(ds)
    lines = [
        "peak of ||W v_j|| over the steps and its step: medians across kept seeds (peak @ step)",
        " ".join(f"{n:>10}" for n in names) + " " + " ".join(f"{f'||W v{f}||':>17}" for f in feats),
    ]
    for index in np.ndindex(*(ds.sizes[n] for n in names)):
        point = peaks.isel(dict(zip(names, index, strict=True)))
        cells = [f"{float(ds[n].values[i]):>10.4g}" for n, i in zip(names, index, strict=True)]
        for f in feats:
            value = point["peak"].sel(feature=f).values
            step = point["peak_step"].sel(feature=f).values
            if np.all(np.isnan(value)):
                cells.append(f"{'-':>17}")
            else:
                text = f"{np.nanmedian(value):.3g} @ {np.nanmedian(step):.0f}"
                cells.append(f"{text:>17}")
        lines.append(" ".join(cells))
    return lines


def _lr_hint(lr: float | None, swept: bool) -> str:
    if swept:
        return "a smaller step size should help: try smaller lr values in --grid"
    if lr is None:
        return "a smaller step size should help (--set lr=...)"
    return f"a smaller step size should help: try --set lr={lr / 10:g} (this run: lr={lr:g})"


def _config_lr(ds: xr.Dataset) -> float | None:
    try:
        return float(json.loads(ds.attrs["config"])["train"]["lr"])
    except (KeyError, TypeError, ValueError):
        return None


def divergence_verdict(ds: xr.Dataset) -> tuple[str, str]:
    """How a result's divergence should be reported: ("", "") when at most half of the runs at
    every grid point diverged, ("warning", message) when most did somewhere, ("error", message)
    when every run diverged.

    Args:
      ds: a simulate or sweep result (``diverged`` with dims (*grid, seed)).

    Returns:
      (level, message): level is "", "warning" or "error"; the message names the counts, the
      grid points, and suggests a smaller step size.
    """
    flags = np.asarray(ds["diverged"].values, bool)
    names = json.loads(ds.attrs.get("sweep", "[]")) if flags.ndim > 1 else []
    total, bad = flags.size, int(flags.sum())
    swept = "lr" in names
    lr = _config_lr(ds)
    if bad == total:
        steps = np.asarray(ds["diverged_step"].values)[flags] if "diverged_step" in ds else []
        first = f", the first at step {int(np.min(steps))}" if len(steps) else ""
        what = "runs" if names else "seeds"
        return "error", (
            f"all {total} {what} diverged (loss or Theta non-finite or above "
            f"train.divergence_threshold{first}); nothing is summarised; " + _lr_hint(lr, swept)
        )
    if not names:
        if 2 * bad > total:
            return "warning", (
                f"{bad} of {total} seeds diverged; the statistics describe only the "
                f"{total - bad} that did not, which may be a biased subset; " + _lr_hint(lr, False)
            )
        return "", ""
    per_seed = flags.reshape(-1, flags.shape[-1])
    seeds = per_seed.shape[1]
    most = []
    for index, row in zip(np.ndindex(*flags.shape[:-1]), per_seed, strict=True):
        if 2 * int(row.sum()) > seeds:
            point = ", ".join(
                f"{n}={float(ds[n].values[i]):g}" for n, i in zip(names, index, strict=True)
            )
            most.append(f"{point} ({int(row.sum())} of {seeds})")
    if not most:
        return "", ""
    shown = "; ".join(most[:6]) + (f"; and {len(most) - 6} more" if len(most) > 6 else "")
    return "warning", (
        f"most seeds diverged at {len(most)} grid point{'s' if len(most) > 1 else ''}: {shown}; "
        "their medians describe only the survivors; " + _lr_hint(lr, swept)
    )


def describe_origin(ds: xr.Dataset) -> str:
    """Where a result came from, in words: the preset and --set overrides recorded by the
    command line, else the nearest named preset and the fields that differ from it.

    Args:
      ds: a result dataset with a ``config`` attribute.

    Returns:
      e.g. ``"preset fig2a, --set lr=0.1"`` or ``"preset fig1 with steps=4, n=16"``.
    """
    from simdyn._src.presets import PRESETS
    from simdyn.config import Config

    preset = ds.attrs.get("preset")
    if preset:
        try:
            sets = [str(s) for s in json.loads(ds.attrs.get("overrides", "[]"))]
        except (TypeError, ValueError):
            sets = []
        return f"preset {preset}" + (", --set " + " --set ".join(sets) if sets else "")
    try:
        config = Config.from_json(ds.attrs["config"]).to_dict()
    except (KeyError, ConfigError, TypeError, ValueError):
        return "unknown config"
    best, best_diff = None, None
    for name, cfg in PRESETS.items():
        ref = cfg.to_dict()
        diff = [
            (f, config[s][f])
            for s in ("data", "model", "train")
            for f in config[s]
            if config[s][f] != ref[s].get(f)
        ]
        if best_diff is None or len(diff) < len(best_diff):
            best, best_diff = name, diff
    if not best_diff:
        return f"preset {best}"
    changed = ", ".join(f"{f}={_brief_value(v)}" for f, v in best_diff[:6])
    more = f" and {len(best_diff) - 6} more" if len(best_diff) > 6 else ""
    return f"preset {best} with {changed}{more} (nearest preset)"


def _brief_value(value) -> str:
    if isinstance(value, list | tuple) and len(value) > 4:
        return f"[{value[0]:g}, {value[1]:g}, ..., {value[-1]:g}] ({len(value)} values)"
    return json.dumps(value) if isinstance(value, list | tuple) else f"{value}"
