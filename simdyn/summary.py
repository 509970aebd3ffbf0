"""Text summaries of result datasets: median and 5-95% band across (non-diverged) seeds."""

from __future__ import annotations

import numpy as np
import xarray as xr


def summary_steps(steps: np.ndarray, count: int = 8) -> list[int]:
    """A few recorded steps, roughly log-spaced, always including the first and the last."""
    steps = np.asarray(steps)
    if len(steps) <= count:
        return [int(s) for s in steps]
    targets = np.unique(np.round(np.geomspace(1, len(steps) - 1, count - 1)).astype(int))
    picked = sorted({0, *targets.tolist(), len(steps) - 1})
    return [int(steps[i]) for i in picked]


def kept_seeds(ds: xr.Dataset) -> xr.Dataset:
    """Seeds that did not diverge (diverged ones are excluded from every statistic)."""
    return ds.sel(seed=~ds["diverged"].values)


def band(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(5%, median, 95%) along ``axis``."""
    q = np.quantile(values, [0.05, 0.5, 0.95], axis=axis)
    return q[0], q[1], q[2]


def format_summary(ds: xr.Dataset, count: int = 8) -> str:
    """Table: per step, median [5%, 95%] of ||Theta v_j|| and the loss across kept seeds."""
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
    med = kept["alignment"].median("seed")
    peaks = [
        f"v{f}: {float(med.sel(feature=f).max()):.3g} at step "
        f"{int(med['step'][int(med.sel(feature=f).argmax())])}"
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
