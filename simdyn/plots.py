"""Figures of result datasets (matplotlib, Agg backend: works headless; no JAX).

:func:`plot_alignment` draws what ``simdyn show FILE --plot OUT.png`` writes: for every feature
v_j, the across-seed median of ||W_t v_j|| over the recorded steps with its 5-95% band, diverged
seeds excluded, on a log step axis.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from simdyn.config import ConfigError

_SEED_DIMS = ("seed", "step", "feature")


def alignment_bands(ds) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(steps (R,), bands (3, R, F) = 5% / median / 95%, kept seeds, diverged seeds)."""
    align = ds["alignment"]
    if tuple(align.dims) != _SEED_DIMS:
        raise ConfigError(
            f"cannot plot alignment with dims {tuple(align.dims)}: --plot needs a simulate "
            "result (seed, step, feature); a sweep result has one more grid dimension"
        )
    values = np.asarray(align.values, np.float64)
    bad = np.asarray(ds["diverged"].values, bool) if "diverged" in ds else np.zeros(len(values))
    bad = bad | ~np.all(np.isfinite(values.reshape(values.shape[0], -1)), axis=1)
    kept = values[~bad]
    if kept.shape[0] == 0:
        raise ConfigError("cannot plot: every seed diverged")
    bands = np.quantile(kept, [0.05, 0.5, 0.95], axis=0)
    return np.asarray(ds["step"].values), bands, int(kept.shape[0]), int(bad.sum())


def plot_alignment(ds, out: str | os.PathLike, title: str | None = None) -> Path:
    """Write a PNG: median and 5-95% band of ||W_t v_j|| over steps for every feature j."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, bands, kept, diverged = alignment_bands(ds)
    features = [int(f) for f in ds["feature"].values]
    x = np.where(steps > 0, steps, np.nan)  # step 0 (init) has no place on a log axis
    fig, ax = plt.subplots(figsize=(7, 4.2))
    cmap = plt.get_cmap("tab10")
    for i, f in enumerate(features):
        color = cmap(i % 10)
        ax.plot(x, bands[1, :, i], color=color, label=f"||W v{f}||")
        ax.fill_between(x, bands[0, :, i], bands[2, :, i], color=color, alpha=0.25, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("||W_t v_j|| (median, 5-95% band)")
    seeds = f"{kept} seed{'s' if kept != 1 else ''}"
    seeds += f", {diverged} diverged excl." if diverged else ""
    ax.set_title(f"{title + ': ' if title else ''}feature alignment ({seeds})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
