"""Figs 1 (left, right), 2 (left) and 5 of Xue, Gan, Ni, Joshi, Mirzasoleiman, "Investigating the
Benefits of Projection Head for Representation Learning" (ICLR 2024), at many seeds, with the
spread across seeds and the closed forms overlaid.

The paper shows single runs; this script trains every seed through simdyn's loop and seed engine
(:func:`simdyn.papers.projection_head.nonlinear.simulate`, :func:`simdyn.papers.projection_head.
linear.simulate_sweep`: seed i starts from ``jax.random.fold_in(key, i)``) and plots, per feature,
the median across seeds of the per-seed normalised weight with its 10-90% quantile band.

Figures (the first argument; ``all`` runs the four):

* ``fig1-left`` (App. C.1, CL setting 1): d = 5, p = 20, phi = 1, alpha = (0, 0.25, 0.5, 0.75,
  1), sigma = 0.01, lr 0.05; ``fig1-right`` (CL setting 2): d = 9, p = 20, phi_i = 3.2 / 2^i,
  sigma = 0.1, lr 0.01, equal alphas (the paper does not give their value: 0 here; Thm 3.5's
  normalised weights do not depend on it). Both: the two-layer fully connected symmetrized-ReLU
  network (``model="dense"``), the spectral loss on two augmentations per input, momentum SGD
  0.9. Plotted: ||f_l(e_i)|| / max_k ||f_l(e_k)|| per seed, l = 1 (encoder) and 2 (after the
  head), and Thm 3.5's gamma_i^l on the kept features, normalised the same way
  (:func:`simdyn.papers.projection_head.closed_forms.feature_weights`). Thm 3.5 is a statement
  about the LINEAR two-layer model; for this nonlinear network the paper's theory is
  qualitative (Thm 3.8: a feature the head drops can survive in the encoder), so the overlay is
  the linear model's prediction, not this network's.
* ``fig2-left`` (App. C.1, SCL): Def. 4.1 data x = [y, y_sub, rest], rest uniform on {+-0.001},
  d = 5, p = 20, lr 0.01, the supervised spectral loss L_SCL (positives: two independent inputs
  of one class). The paper's sigma = 0.1 has no counterpart: simdyn's L_SCL (like Sec. 4.2's
  definition) has no augmentation, so no noise is added. Overlay: the linear model's Thm 3.5
  weights for L_SCL's moments (M = diag(1, 1, 1e-6, 1e-6, 1e-6), M+ = diag(1, 0, 0, 0, 0): only
  the class feature is kept, by both layers); Thm 4.2 (diagonal network) is qualitative: the
  subclass feature's weight after the head -> 0, before it >= sqrt(b0).
* ``fig5`` (App. B): r_l = sum_j c_j^(2l/L) phihat_j^2 / (c_j*^(2l/L) phihat_j*^2), l = 1..12,
  c_j* in {0.45, 0.5, 0.55, 0.6}. (a) The setting as the paper states it (L = 12, phihat_j = 1
  for j <= 9 and 0.1 for j = 10, j* = 9, c_j = 0.4 for j <= 8, c_10 = 0.6, reading the printed
  "c_j = 0.6 for all j <= 10" as j = 10; dashed: 100 features j >= 10 at 0.6) through
  :func:`simdyn.papers.projection_head.claims_linear.fig5_curves`, with trained 12-layer linear
  networks (population loss, balanced orthogonal init, data phi = 1, sigma = 0, alpha_j = 1 - c_j
  so that Thm 3.5's c_j = gamma_j^2 are the stated ones) against it. (b) A reconstruction that
  gives the figure's U shapes: exponent 2l instead of 2l/L (c_j read as the weight of ONE layer,
  ||f_l(e_j)|| = c_j^l) and phihat_j = 0.5 for j <= 8, everything else as stated.

Choices the paper leaves open (simdyn's; the same for the three trained nonlinear figures): fresh
data every step (momentum SGD on the population loss) with n = 128 originals per step (m = 2
augmentations each for CL), W_1 ~ N(0, sigma_0^2 / d), W_2 ~ N(0, sigma_0^2 / p) with sigma_0 =
1/sqrt(3) (the standard deviation of PyTorch's default U(+-1/sqrt(fan_in)) init), thresholds
b = 0 at init (trained), float32, 1000 steps (2000 for Fig. 1 right, whose weak features learn
slowly at lr 0.01). Each figure also trains a few alternatives (``VARIANTS``: sigma_0 = 0.1,
b_init = 0.05, n = 512) at 32 seeds and draws their medians, so what hinges on a choice is
visible (not with --quick: each is one more compile).

Outputs, into ``--out`` (default ``runs/projection_head_figures`` at the repository root, which
git ignores; nothing else is written): ``NAME.png`` and ``NAME.json`` (the plotted numbers:
medians, 10/90% quantiles, closed forms, the settings, the key, seed and diverged counts,
runtime).

Run: ``python -m experiments.projection_head_figures {fig1-left,fig1-right,fig2-left,fig5,all}
[--quick] [--seeds N] [--key K] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot

import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import simdyn  # noqa: E402
from simdyn.config import ConfigError  # noqa: E402
from simdyn.papers.projection_head import closed_forms as cf  # noqa: E402
from simdyn.papers.projection_head import linear as lin  # noqa: E402
from simdyn.papers.projection_head import nonlinear as nl  # noqa: E402
from simdyn.papers.projection_head.claims_linear import fig5_curves  # noqa: E402

FIGURES = ("fig1-left", "fig1-right", "fig2-left", "fig5")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "runs" / "projection_head_figures"
DEFAULT_SEEDS = {"full": 1000, "quick": 4}
VARIANT_SEEDS = {"full": 32, "quick": 0}  # --quick trains no variants
QUANTILES = (0.1, 0.9)
DPI = 110
C_PRE, C_POST, C_THEORY = "tab:blue", "tab:orange", "black"

# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------

SIGMA_0 = float(1.0 / np.sqrt(3.0))  # the std of PyTorch's default U(+-1/sqrt(fan_in)) init
_DENSE = dict(
    model="dense",
    form="sample",
    data="fresh",
    p=20,
    n=128,
    m=2,
    momentum=0.9,
    sigma_0=SIGMA_0,
    b_init=0.0,
    dtype="float32",
)
FIG1_RIGHT_PHI = tuple(3.2 / 2**i for i in range(1, 10))
RUNS: dict[str, nl.NonlinearRun] = {
    "fig1-left": nl.NonlinearRun(
        loss="cl",
        phi=(1.0,) * 5,
        alpha=(0.0, 0.25, 0.5, 0.75, 1.0),
        sigma=0.01,
        lr=0.05,
        steps=1000,
        log_every=100,
        **_DENSE,
    ),
    "fig1-right": nl.NonlinearRun(
        loss="cl",
        phi=FIG1_RIGHT_PHI,
        alpha=(0.0,) * 9,
        sigma=0.1,
        lr=0.01,
        steps=2000,
        log_every=200,
        **_DENSE,
    ),
    "fig2-left": nl.NonlinearRun(
        loss="scl", d_supervised=5, rest_scale=1e-3, lr=0.01, steps=1000, log_every=100, **_DENSE
    ),
}
THEORY_LABEL = {
    "fig1-left": "Thm 3.5, linear model (gamma_i^l, normalised)",
    "fig1-right": "Thm 3.5, linear model (gamma_i^l, normalised)",
    "fig2-left": "Thm 3.5 form, linear model, L_SCL moments\n(only the class feature kept)",
}
QUICK = dict(n=16, steps=40, log_every=10)  # --quick: seconds, for tests and smoke runs
VARIANTS: tuple[dict[str, Any], ...] = ({"sigma_0": 0.1}, {"b_init": 0.05}, {"n": 512})
VARIANT_MARKERS = ("^", "v", "s")

# Fig. 5 (App. B)
FIG5_LAYERS = 12
FIG5_C_STARS = (0.45, 0.5, 0.55, 0.6)
FIG5_J_STAR = 8  # j* = 9, 0-based
FIG5_MANY = 100  # the dashed variant: 100 features j >= 10 at c = 0.6
FIG5_RECON_PHIHAT_LOW = 0.5  # the reconstruction's phihat_j, j <= 8
FIG5_TRAIN = lin.LinearRun(
    phi=(1.0,) * 10,
    alpha=(0.6,) * 8 + (0.4, 0.4),  # replaced per c_j* (fig5_alpha)
    sigma=0.0,
    p=10,
    layers=FIG5_LAYERS,
    sigma_0=0.95,
    lr=0.02,
    steps=1000,
    log_at=(0, 1000),
    balanced_init=True,
    init="orthogonal",
    dtype="float64",
)
FIG5_TRAIN_QUICK = dict(steps=200, log_at=(0, 200))


def quick_run(run: nl.NonlinearRun) -> nl.NonlinearRun:
    """The --quick version of a figure's run (fewer steps, smaller batches)."""
    return dataclasses.replace(run, **QUICK)


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------


def normalise(w: np.ndarray) -> np.ndarray:
    """Per-layer normalisation of feature weights: w (..., L, d) / max over d (NaN where the
    layer's largest weight is 0 or not finite)."""
    w = np.asarray(w, np.float64)
    top = np.max(w, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(top) & (top > 0), w / np.where(top > 0, top, 1.0), np.nan)


def closed_form(name: str) -> np.ndarray:
    """The overlay of a trained figure, (2, d): Thm 3.5's ||f_l(e_i)|| = gamma_i^l (l = 1, 2) on
    the kept features (0 on the rest) for the linear two-layer model with the figure's moments,
    normalised per layer."""
    if name == "fig2-left":
        # L_SCL of a linear model: M+ = E[x x+^T] over same-class pairs = diag(1, 0, ...), M =
        # E[x x^T] = diag(1, 1, r^2, ...): Def. 3.2's moments with phi = (1, 1, r, ...),
        # alpha = (0, 1, 1, ...), sigma = 0.
        run = RUNS[name]
        r = run.rest_scale
        phi = (1.0, 1.0) + (r,) * (run.d - 2)
        alpha = (0.0,) + (1.0,) * (run.d - 1)
        fw = cf.feature_weights(phi, alpha, 0.0, run.p)
    else:
        run = RUNS[name]
        fw = cf.feature_weights(run.phi, run.alpha, run.sigma, run.p)
    return normalise(fw.weights)


def fig5_alpha(c_star: float) -> tuple[float, ...]:
    """Data realising Fig. 5's stated c_j (phi = 1, sigma = 0: c_j = gamma_j^2 = 1 - alpha_j)."""
    c = np.array([0.4] * 8 + [c_star] + [0.6])
    return tuple(float(a) for a in 1.0 - c)


def fig5_phihat() -> np.ndarray:
    """(10,) Fig. 5's stated downstream magnitudes: 1 for j <= 9, 0.1 for j = 10."""
    return np.array([1.0] * 9 + [0.1])


def fig5_reconstructed(c_star: float, layers: int = FIG5_LAYERS) -> np.ndarray:
    """(L,) r_l of the reconstruction: ||f_l(e_j)|| = c_j^l (exponent 2l in r_l, not 2l/L),
    c = (0.4 x 8, c_star, 0.6), phihat = (0.5 x 8, 1, 0.1), j* = 9."""
    c = np.array([0.4] * 8 + [c_star] + [0.6])
    phihat = np.array([FIG5_RECON_PHIHAT_LOW] * 8 + [1.0, 0.1])
    level = np.arange(1, layers + 1)[:, None]
    return cf.sample_complexity(c[None, :] ** level, phihat, FIG5_J_STAR)


# --------------------------------------------------------------------------------------------
# Trained figures (1 left, 1 right, 2 left)
# --------------------------------------------------------------------------------------------


def _band(values: np.ndarray, bad: np.ndarray) -> dict[str, Any]:
    """Median and 10/90% quantiles across axis 0 of the seeds not flagged ``bad``."""
    kept = values[~bad]
    if kept.shape[0] == 0:
        nan = np.full(values.shape[1:], np.nan)
        return {"median": nan, "q10": nan, "q90": nan, "kept": 0}
    lo, med, hi = np.quantile(kept, [QUANTILES[0], 0.5, QUANTILES[1]], axis=0)
    return {"median": med, "q10": lo, "q90": hi, "kept": int(kept.shape[0])}


def _diverged(out: nl.Trajectory) -> np.ndarray:
    """Per seed: flagged by the loop, or any non-finite recorded weight."""
    flat = out.weights.reshape(out.weights.shape[0], -1)
    return np.asarray(out.diverged, bool) | ~np.all(np.isfinite(flat), axis=1)


def _labels(name: str) -> tuple[list[str], str]:
    if name == "fig1-left":
        return [f"{a:g}" for a in RUNS[name].alpha], "alpha_i (disruption by augmentation)"
    if name == "fig1-right":
        return [f"{v:.3g}" for v in FIG1_RIGHT_PHI], "phi_i (strength of feature i)"
    return ["class", "subclass", "noise", "noise", "noise"], "input coordinate"


def train_figure(name: str, quick: bool, seeds: int, key: int) -> tuple[Any, dict[str, Any]]:
    """Train one of the nonlinear figures at ``seeds`` seeds (plus the variants) and draw it."""
    size = "quick" if quick else "full"
    run = quick_run(RUNS[name]) if quick else RUNS[name]
    out = nl.simulate(run, seeds, key)
    bad = _diverged(out)
    norm = normalise(out.weights)  # (S, R, 2, d)
    final = _band(norm[:, -1], bad)
    traj = _band(norm, bad)["median"]  # (R, 2, d): the median at every log step
    theory = closed_form(name)
    variants = []
    for change in VARIANTS if VARIANT_SEEDS[size] else ():
        vrun = dataclasses.replace(run, **change)
        vout = nl.simulate(vrun, VARIANT_SEEDS[size], key)
        vbad = _diverged(vout)
        vb = _band(normalise(vout.weights[:, -1]), vbad)
        variants.append(
            {
                "change": change,
                "seeds": VARIANT_SEEDS[size],
                "diverged": int(vbad.sum()),
                "median": vb["median"],
                "q10": vb["q10"],
                "q90": vb["q90"],
            }
        )
    labels, xlabel = _labels(name)
    fig, ax = plt.subplots(figsize=(10.0, 4.4))
    x = np.arange(len(labels))
    wid = 0.36
    for layer, (tag, color) in enumerate(
        (("pre (encoder, f1)", C_PRE), ("post (head, f2)", C_POST))
    ):
        pos = x + (layer - 0.5) * wid
        med = final["median"][layer]
        err = np.stack([med - final["q10"][layer], final["q90"][layer] - med])
        ax.bar(pos, med, wid, color=color, label=f"{tag}: median, 10-90% across seeds")
        ax.errorbar(pos, med, yerr=err, fmt="none", ecolor="0.25", capsize=2, lw=0.8)
        ax.scatter(
            pos,
            theory[layer],
            marker="_",
            s=260,
            color=C_THEORY,
            zorder=5,
            lw=2,
            label=THEORY_LABEL[name] if layer == 0 else None,
        )
        for v, mk in zip(variants, VARIANT_MARKERS[: len(variants)], strict=True):
            change = ", ".join(f"{a}={b:g}" for a, b in v["change"].items())
            ax.scatter(
                pos,
                v["median"][layer],
                marker=mk,
                s=14,
                color="0.35",
                zorder=6,
                label=f"median, {change} ({v['seeds']} seeds)" if layer == 0 else None,
            )
    ax.set_xticks(x, labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("||f_l(e_i)|| / max_k ||f_l(e_k)||")
    ax.set_ylim(0, 1.12)
    handles, texts = ax.get_legend_handles_labels()
    order = sorted(range(len(texts)), key=lambda i: not texts[i].startswith(("pre", "post")))
    ax.legend([handles[i] for i in order], [texts[i] for i in order], fontsize=7,
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # fmt: skip
    ax.set_title(_title(name, run, seeds, int(bad.sum()), key), fontsize=8)
    fig.tight_layout()
    meta = {
        "figure": name,
        "size": size,
        "key": key,
        "seeds": seeds,
        "seed_keys": "seed i: jax.random.fold_in(PRNGKey(key), i), i = 0..seeds-1",
        "diverged": int(bad.sum()),
        "setting": dataclasses.asdict(run),
        "features": labels,
        "layers": ["encoder f1 (pre-projection)", "after the head f2 (post-projection)"],
        "quantity": "per seed ||f_l(e_i)|| / max_k ||f_l(e_k)||, at the last step",
        "median": final["median"],
        "q10": final["q10"],
        "q90": final["q90"],
        "closed_form": theory,
        "closed_form_source": (
            "Thm 3.5 for the linear two-layer model with the figure's moments "
            "(closed_forms.feature_weights), normalised per layer; qualitative only for this "
            "nonlinear network"
        ),
        "log_steps": np.arange(0, run.steps + 1, run.log_every),
        "median_over_time": traj,
        "final_loss_median": float(np.median(out.loss[~bad, -1])) if (~bad).any() else None,
        "variants": variants,
    }
    if run.loss == "cl":
        fw = cf.feature_weights(run.phi, run.alpha, run.sigma, run.p)
        meta["linear_minimum_loss"] = float(-np.sum(fw.beta[fw.kept] ** 2))
    return fig, meta


def _title(name: str, run: nl.NonlinearRun, seeds: int, diverged: int, key: int) -> str:
    head = {
        "fig1-left": "Fig. 1 left (CL): phi = 1, alpha = (0, .25, .5, .75, 1), sigma = 0.01",
        "fig1-right": "Fig. 1 right (CL): phi_i = 3.2/2^i, equal alpha = 0, sigma = 0.1",
        "fig2-left": "Fig. 2 left (L_SCL): Def. 4.1 data, rest on +-0.001 (no noise)",
    }[name]
    return (
        f"{head}\ndense symmetrized-ReLU net d={run.d} p={run.p}, momentum SGD 0.9 lr={run.lr:g}, "
        f"{run.steps} steps, n={run.n} fresh/step, sigma_0={run.sigma_0:.3g}, b_init={run.b_init:g}"
        f"\n{seeds} seeds (fold_in(key={key}, i)), {diverged} diverged excluded"
    )


# --------------------------------------------------------------------------------------------
# Fig. 5
# --------------------------------------------------------------------------------------------


def fig5(quick: bool, seeds: int, key: int) -> tuple[Any, dict[str, Any]]:
    """App. B's r_l: the stated setting (formula and trained 12-layer linear networks) and the
    reconstruction."""
    size = "quick" if quick else "full"
    run = dataclasses.replace(FIG5_TRAIN, **FIG5_TRAIN_QUICK) if quick else FIG5_TRAIN
    points = [{"alpha": fig5_alpha(c)} for c in FIG5_C_STARS]
    out = lin.simulate_sweep(run, points, seeds, key)
    phihat = fig5_phihat()
    level = np.arange(1, FIG5_LAYERS + 1)
    written = {c: fig5_curves(c, many=1, layers=FIG5_LAYERS) for c in FIG5_C_STARS}
    written_many = {c: fig5_curves(c, many=FIG5_MANY, layers=FIG5_LAYERS) for c in FIG5_C_STARS}
    recon = {c: fig5_reconstructed(c) for c in FIG5_C_STARS}
    trained = []
    for k, c in enumerate(FIG5_C_STARS):
        w = out.weights[k * seeds : (k + 1) * seeds, -1]  # (S, L, d)
        bad = np.asarray(out.diverged[k * seeds : (k + 1) * seeds], bool)
        bad |= ~np.all(np.isfinite(w.reshape(seeds, -1)), axis=1)
        r = np.stack([cf.sample_complexity(wi, phihat, FIG5_J_STAR) for wi in w])  # (S, L)
        band = _band(r, bad)
        fw = cf.feature_weights(run.phi, fig5_alpha(c), run.sigma, run.p, run.layers)
        trained.append(
            {
                "c_star": c,
                "c_of_the_data": fw.gamma**2,
                "diverged": int(bad.sum()),
                "median": band["median"],
                "q10": band["q10"],
                "q90": band["q90"],
                "max_abs_deviation_from_formula": float(np.max(np.abs(r[~bad] - written[c])))
                if (~bad).any()
                else None,
            }
        )
    colors = plt.get_cmap("tab10")(np.arange(len(FIG5_C_STARS)))
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.3), sharey=True)
    ax = axes[0]
    for k, c in enumerate(FIG5_C_STARS):
        t = trained[k]
        ax.plot(level, written[c], color=colors[k], lw=1.5, label=f"c_j* = {c:g}")
        ax.plot(level, written_many[c], color=colors[k], lw=1, ls="--")
        ax.fill_between(level, t["q10"], t["q90"], color=colors[k], alpha=0.3, lw=0)
        ax.plot(
            level,
            t["median"],
            "o",
            ms=3.5,
            mfc="none",
            color=colors[k],
            label=f"trained: median, 10-90% ({seeds} seeds)" if k == 0 else None,
        )
    ax.set_title(
        "(a) as stated: L=12, phihat=(1 x9, 0.1), c=(0.4 x8, c_j*, 0.6)\n"
        f"dashed: {FIG5_MANY} features j>=10 at c=0.6; markers: trained 12-layer linear nets\n"
        f"(balanced orthogonal init, {run.steps} GD steps, key={key})",
        fontsize=8,
    )
    ax = axes[1]
    for k, c in enumerate(FIG5_C_STARS):
        ax.plot(level, recon[c], color=colors[k], lw=1.5, label=f"c_j* = {c:g}")
    ax.set_title(
        "(b) reconstruction (formula only): exponent 2l, not 2l/L\n"
        f"(||f_l(e_j)|| = c_j^l), phihat_j = {FIG5_RECON_PHIHAT_LOW:g} for j<=8, rest as stated",
        fontsize=8,
    )
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("layer index l")
        ax.set_xticks(level[1::2])
        ax.legend(fontsize=6.5, frameon=False, loc="best")
    axes[0].set_ylabel("sample complexity indicator r_l")
    fig.suptitle(
        "Fig. 5 (App. B): r_l = sum_j c_j^(2l/L) phihat_j^2 / (c_j*^(2l/L) phihat_j*^2)", fontsize=9
    )
    fig.tight_layout()
    meta = {
        "figure": "fig5",
        "size": size,
        "key": key,
        "seeds_per_c_star": seeds,
        "seed_keys": "run r = (c_j* index) * seeds + seed: jax.random.fold_in(PRNGKey(key), r)",
        "layers": level,
        "c_stars": FIG5_C_STARS,
        "as_written": {
            "setting": "L=12, phihat_j=1 (j<=9), 0.1 (j=10), j*=9, c_j=0.4 (j<=8), c_10=0.6",
            "formula": [written[c] for c in FIG5_C_STARS],
            "formula_many": {
                "features_j_ge_10": FIG5_MANY,
                "curves": [written_many[c] for c in FIG5_C_STARS],
            },
            "trained": trained,
            "training": dataclasses.asdict(run) | {"alpha": "1 - c_j per c_j* (fig5_alpha)"},
        },
        "reconstructed": {
            "setting": "r_l = sum_j c_j^(2l) phihat_j^2 / (c_j*^(2l) phihat_j*^2), c as stated, "
            f"phihat_j = {FIG5_RECON_PHIHAT_LOW} (j<=8), 1 (j*=9), 0.1 (j=10)",
            "curves": [recon[c] for c in FIG5_C_STARS],
            "argmin_layer": [int(np.argmin(recon[c])) + 1 for c in FIG5_C_STARS],
        },
    }
    return fig, meta


# --------------------------------------------------------------------------------------------
# Command line and output
# --------------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | jax.Array):
        return np.asarray(obj).tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def write(out: Path, name: str, fig: Any, meta: dict[str, Any]) -> tuple[Path, Path]:
    """OUT/NAME.png and OUT/NAME.json (creating OUT); nothing else."""
    out.mkdir(parents=True, exist_ok=True)
    png, js = out / f"{name}.png", out / f"{name}.json"
    fig.savefig(png, dpi=DPI)
    plt.close(fig)
    meta = {"simdyn_version": simdyn.__version__, "jax_version": jax.__version__, **meta}
    js.write_text(json.dumps(meta, indent=1, default=_json_default) + "\n")
    return png, js


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("figure", choices=(*FIGURES, "all"), help="which figure (all: the four)")
    ap.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per figure (per c_j* for fig5); default 1000, --quick 4",
    )
    ap.add_argument("--key", type=int, default=0, help="base PRNG key: seed i uses fold_in(key, i)")
    ap.add_argument("--quick", action="store_true", help="short runs (seconds per figure)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run the chosen figure(s); returns {name: the JSON's content plus 'paths'}."""
    args = parse(argv)
    size = "quick" if args.quick else "full"
    seeds = DEFAULT_SEEDS[size] if args.seeds is None else args.seeds
    if seeds < 1:
        raise ConfigError(f"invalid --seeds={seeds}: must be >= 1")
    simdyn.enable_x64()
    out = DEFAULT_OUT if args.out is None else Path(args.out)
    names = FIGURES if args.figure == "all" else (args.figure,)
    results = {}
    for name in names:
        start = time.perf_counter()
        if name == "fig5":
            fig, meta = fig5(args.quick, seeds, args.key)
        else:
            fig, meta = train_figure(name, args.quick, seeds, args.key)
        meta["runtime_s"] = round(time.perf_counter() - start, 1)
        paths = write(out, name, fig, meta)
        print(f"{name}: {size}, {seeds} seeds, {meta['runtime_s']} s -> {paths[0]}")
        results[name] = {**meta, "paths": paths}
    return results


if __name__ == "__main__":
    main()
