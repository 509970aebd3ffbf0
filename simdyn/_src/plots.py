"""Figures of result datasets (matplotlib, Agg backend: works headless; no JAX).

:func:`plot_alignment` draws what ``simdyn show FILE --plot OUT.png`` writes: for every feature
v_j, the across-seed median of ||W_t v_j|| over the recorded steps with its 5-95% band, diverged
seeds excluded, on a log step axis, with the min-norm closed form of each ||W v_j|| as a dashed
level where the run's config gives one (:func:`closed_form_levels`).
"""

from __future__ import annotations

import os
import warnings
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
    values = np.asarray(levels, np.float64)
    return values if np.all(np.isfinite(values)) else None


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
    closed-form levels for a simulate result, :func:`plot_sweep` for a sweep.

    Args:
      ds: a result dataset.
      out: the PNG to write.
      title: a title prefix (e.g. the file name).

    Returns:
      The PNG's path.
    """
    if _sweep_names(ds):
        return plot_sweep(ds, out, title=title)
    return plot_alignment(ds, out, title=title, levels=closed_form_levels(ds))


def _sweep_names(ds) -> list[str]:
    import json

    return list(json.loads(ds.attrs.get("sweep", "[]") or "[]")) if hasattr(ds, "attrs") else []


def sweep_bands(ds) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """What :func:`plot_sweep` draws, as numbers: the swept field on the x axis, its values,
    and for ``peak`` and ``peak_step`` (:func:`simdyn.summary.peak_stats`) the 5% / median /
    95% across kept seeds, shape (3, *other grid fields, x, feature); NaN where every seed of a
    point diverged.

    Args:
      ds: a sweep result.

    Returns:
      (field, x values, {"peak": bands, "peak_step": bands}).
    """
    from simdyn.summary import peak_stats

    names = _sweep_names(ds)
    if not names:
        raise ConfigError("not a sweep result: it has no 'sweep' attribute naming grid fields")
    field, others = names[0], names[1:]
    stats = peak_stats(ds).transpose(*others, field, "seed", "feature")
    out = {}
    for name in ("peak", "peak_step"):
        values = np.asarray(stats[name].values, np.float64)
        axis = values.ndim - 2  # seed
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points stay NaN
            out[name] = np.nanquantile(values, [0.05, 0.5, 0.95], axis=axis)
    return field, np.asarray(ds[field].values, np.float64), out


def sweep_theory(ds) -> dict[str, np.ndarray] | None:
    """:func:`simdyn.theory.predicted_peak` at every value of a one-field sweep over lr or
    sigma_0: ``{"peak": (x, feature), "step": (x, feature)}``, or None where it does not apply
    (another loss or optimizer, several grid fields, no config).

    Args:
      ds: a sweep result.

    Returns:
      The predicted peaks and steps, or None.
    """
    from simdyn import theory
    from simdyn.config import Config

    names = _sweep_names(ds)
    if len(names) != 1 or names[0] not in ("lr", "sigma_0") or not ds.attrs.get("config"):
        return None
    base = Config.from_json(ds.attrs["config"])
    peaks, steps = [], []
    for value in np.asarray(ds[names[0]].values, np.float64):
        try:
            pred = theory.predicted_peak(base.replace(**{names[0]: float(value)}))
        except ConfigError:
            return None
        peaks.append(pred.peak)
        steps.append(pred.step)
    return {"peak": np.asarray(peaks), "step": np.asarray(steps)}


def plot_sweep(ds, out: str | os.PathLike, title: str | None = None) -> Path:
    """Write a PNG of a sweep: against the first grid field, each feature's peak of ||W_t v_j||
    over the steps (left) and the step of that peak (right), median and 5-95% band across kept
    seeds; one line style per value of any further grid field; where it applies, the theory's
    peak and its step (:func:`sweep_theory`) as dashed lines with crosses. A log x axis when the
    values are positive and span more than a factor 10.

    Args:
      ds: a sweep result.
      out: the PNG to write.
      title: a title prefix (e.g. the file name).

    Returns:
      The PNG's path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    field, x, bands = sweep_bands(ds)
    names = _sweep_names(ds)
    others = names[1:]
    combos = list(np.ndindex(*(ds.sizes[n] for n in others))) or [()]
    styles = ["-", "--", ":", "-."]
    features = [int(f) for f in ds["feature"].values if int(f) > 0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    cmap = plt.get_cmap("tab10")
    for ci, combo in enumerate(combos[: len(styles)]):
        suffix = ", ".join(
            f"{n}={float(ds[n].values[i]):g}" for n, i in zip(others, combo, strict=True)
        )
        for ai, key in enumerate(("peak", "peak_step")):
            b = bands[key][(slice(None), *combo)]  # (3, x, feature)
            for fi, f in enumerate(features):
                color = cmap(fi % 10)
                label = feature_label(f) + (f" ({suffix})" if suffix else "")
                axes[ai].plot(x, b[1, :, f], styles[ci], color=color, marker="o", ms=3, label=label)
                axes[ai].fill_between(x, b[0, :, f], b[2, :, f], color=color, alpha=0.2, lw=0)
    theory_lines = sweep_theory(ds)
    if theory_lines is not None:
        for ai, key in enumerate(("peak", "step")):
            for fi, f in enumerate(features):
                values = theory_lines[key][:, f]
                if np.all(np.isnan(values)):
                    continue
                axes[ai].plot(x, values, "x--", color=cmap(fi % 10), lw=1, ms=6)
        axes[0].plot([], [], "kx--", lw=1, label="theory: escape path (predicted_peak)")
    spans = np.all(x > 0) and x.max() / x.min() > 10
    whats = ("peak of ||W_t v_j|| over the steps", "step of the peak")
    for ax, what in zip(axes, whats, strict=True):
        if spans:
            ax.set_xscale("log")
        ax.set_xlabel(field)
        ax.set_ylabel(f"{what} (median, 5-95% band)")
    diverged = int(np.asarray(ds["diverged"].values).sum())
    runs = int(np.asarray(ds["diverged"].values).size)
    excl = f", {diverged} of {runs} runs diverged and excl." if diverged else f", {runs} runs"
    fig.suptitle(f"{title + ': ' if title else ''}sweep over {field}{excl}", fontsize=10)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


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
