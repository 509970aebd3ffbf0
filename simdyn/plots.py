"""Figures of result datasets (matplotlib, Agg backend: works headless; no JAX).

:func:`plot_alignment` draws what ``simdyn show FILE --plot OUT.png`` writes: for every feature
v_j, the across-seed median of ||W_t v_j|| over the recorded steps with its 5-95% band, diverged
seeds excluded, on a log step axis, with the min-norm closed form of each ||W v_j|| as a dashed
level where the run's config gives one (:func:`closed_form_levels`).
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


def closed_form_levels(ds) -> np.ndarray | None:
    """Min-norm ||W v_j||, j = 0..K, for the run's loss (``simdyn.theory.predicted_alignment_*``
    of the config in ``ds.attrs``), or None when the file has no config or the closed form does
    not apply (a sweep, linear alignment without a closed form, NaN).

    These are the good-event, balanced-label values (docs/theory.md section 5): with i.i.d.
    labels or noise collisions a run's endpoint differs from them by O((mn)^2/d + 1/sqrt(n)).
    """
    text = ds.attrs.get("config") if hasattr(ds, "attrs") else None
    if not text:
        return None
    from simdyn import theory
    from simdyn.config import Config

    cfg = Config.from_json(text)
    d, t = cfg.data, cfg.train
    args = (d.phi, d.mu, d.sigma_xi, d.m, d.n, cfg.model.p)
    if t.loss == "scl":
        levels = theory.predicted_alignment_scl(*args)
    elif t.loss == "ucl":
        levels = theory.predicted_alignment_ucl(*args)
    else:
        levels = theory.predicted_alignment_joint(*args, t.beta)
    levels = np.asarray(levels, np.float64)
    return levels if np.all(np.isfinite(levels)) else None


def feature_label(feature: int) -> str:
    """The name of feature ``feature``'s alignment, as the summary tables print it: ``||b||``
    for feature 0 (the bias column), ``||W v_j||`` for j >= 1.

    Args:
      feature: j.

    Returns:
      The label.
    """
    return "||b||" if feature == 0 else f"||W v{feature}||"


def plot_result(ds, out: str | os.PathLike, title: str | None = None) -> Path:
    """The figure ``simdyn show FILE --plot OUT.png`` writes: :func:`plot_alignment` with the
    closed-form levels for a simulate result.

    Args:
      ds: a result dataset.
      out: the PNG to write.
      title: a title prefix (e.g. the file name).

    Returns:
      The PNG's path.
    """
    return plot_alignment(ds, out, title=title, levels=closed_form_levels(ds))


def plot_alignment(
    ds, out: str | os.PathLike, title: str | None = None, levels: np.ndarray | None = None
) -> Path:
    """Write a PNG: median and 5-95% band of ||W_t v_j|| over steps for every feature j, and
    ``levels[j]`` (e.g. :func:`closed_form_levels`) as a dashed line of the same colour."""
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
        ax.plot(x, bands[1, :, i], color=color, label=feature_label(f))
        ax.fill_between(x, bands[0, :, i], bands[2, :, i], color=color, alpha=0.25, lw=0)
        if levels is not None and f < len(levels):
            ax.axhline(levels[f], color=color, ls="--", lw=1, alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("||W_t v_j|| (median, 5-95% band)")
    seeds = f"{kept} seed{'s' if kept != 1 else ''}"
    seeds += f", {diverged} diverged excl." if diverged else ""
    ax.set_title(f"{title + ': ' if title else ''}feature alignment ({seeds})", fontsize=10)
    if levels is not None:
        ax.plot([], [], "k--", lw=1, label="min-norm closed form")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
