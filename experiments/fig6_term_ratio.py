"""Fig. 6 of Xue et al. (2023): ||term1||_F / ||term2||_F and ||W_t v_2|| against epoch, SCL.

The GD step is Theta <- Theta + eta (term1 + term2) with term1 = 4 Theta M+ (the "learning"
term) and term2 = -4 Theta M Theta^T Theta M (the "norm-control" term). Fig. 1 setting (preset
``fig6``: p = 3, 500 epochs), every step recorded by :func:`experiments._common.gd_runs` (the
same GD as ``simulate``), products from ``simdyn.moments.products``.

Closed-form overlays:

* ratio: early on Theta is tiny, term2 is cubic and the ratio ~ 1/||Theta||^2 is huge; any
  stationary point has term1 + term2 = 0, i.e. ratio = 1 (drawn), and GD's limit is one.
* ||W_t v_2||: the early-growth prediction sigma_0 sqrt(p/d) (1 + 4 eta a_1)^t (fig2's formula,
  Thm 4.5) and the min-norm value (``theory.predicted_alignment_scl``, Thm 4.7).

Run: ``python -m experiments.fig6_term_ratio [--quick|--tiny] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import _common as common
from experiments.fig2_alignment import early_growth
from simdyn import preset, theory
from simdyn.metrics import feature_alignment
from simdyn.moments import products

NAME = "fig6_term_ratio"

SIZES = {
    "tiny": ({"n": 200, "d": 400, "steps": 150}, 2),
    "quick": ({}, 8),
    "full": ({}, 64),
}


def term_ratio_observer(K: int):
    """observe(theta, (moments, beta)) -> (||term1||_F / ||term2||_F, ||Theta v_j||_{j=0..K})."""

    def observe(theta, context):
        mom, beta = context
        prods = products(mom, theta)
        theta_p = beta * prods.theta_m_plus + (1.0 - beta) * prods.theta_m_tilde
        term1 = 4.0 * theta_p
        term2 = -4.0 * (prods.theta_m @ theta.T) @ prods.theta_m
        ratio = jnp.linalg.norm(term1) / jnp.linalg.norm(term2)
        return ratio, feature_alignment(theta, K)

    return observe


def main(argv: list[str] | None = None) -> dict:
    args, size, timer = common.start(__doc__, argv)
    overrides, default_seeds = SIZES[size]
    config = preset("fig6").replace(**overrides)
    dc = config.data
    seeds = common.seed_count(args, default_seeds)
    steps = np.arange(config.train.steps + 1)
    runs = common.gd_runs([config], seeds, args.key, steps, term_ratio_observer(dc.K))
    ratio, align = runs.observed[0][0], runs.observed[1][0]  # (S, T), (S, T, K+1)
    div = runs.diverged[0]
    b_ratio = common.seed_band(ratio, div)
    b_v2 = common.seed_band(align[:, :, 2], div)
    growth = early_growth(config, steps)["v2"]
    pred = np.asarray(
        jax.jit(theory.predicted_alignment_scl)(
            dc.phi, dc.mu, dc.sigma_xi, dc.m, dc.n, config.model.p
        )
    )

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    x = steps[1:]

    def tail(b):
        return type(b)(b.lo[1:], b.median[1:], b.hi[1:], b.mean[1:], b.kept, b.diverged)

    common.plot_band(ax1, x, tail(b_ratio), "tab:green", "||term1|| / ||term2||")
    ax1.axhline(1.0, color=common.C_THEORY, ls="--", lw=1, label="stationarity: ratio = 1")
    ax1.set_yscale("log")
    ax1.set_ylabel("||4 Theta M+||_F / ||4 Theta M Theta^T Theta M||_F")
    common.plot_band(ax2, x, tail(b_v2), common.C_V2, "||W v2||")
    ok = growth[1:] < 0.3
    ax2.plot(x[ok], growth[1:][ok], color=common.C_THEORY, ls="-.", label="early growth (Thm 4.5)")
    ax2.axhline(pred[2], color=common.C_THEORY, ls=":", label=f"min-norm {pred[2]:.2g} (Thm 4.7)")
    ax2.set_yscale("log")
    ax2.set_ylabel("||W_t v_2||")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("epoch (full-batch GD step)")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Fig. 6: SCL, p = {config.model.p}, n = {dc.n}, d = {dc.d} ({size} run)", fontsize=11
    )
    fig.tight_layout()
    med = b_v2.median
    meta = {
        "size": size,
        "key": args.key,
        "config": config,
        "seeds": seeds,
        "diverged": int(div.sum()),
        "min_norm_formula": pred,
        "median_ratio_final": float(b_ratio.median[-1]),
        "median_v2_peak": float(np.nanmax(med)),
        "median_v2_peak_step": int(steps[int(np.nanargmax(med))]),
        "median_ratio_at_v2_peak": float(b_ratio.median[int(np.nanargmax(med))]),
        "runtime_s": timer(),
    }
    arrays = {
        "steps": steps,
        "ratio_band": np.stack([b_ratio.lo, b_ratio.median, b_ratio.hi]),
        "v2_band": np.stack([b_v2.lo, b_v2.median, b_v2.hi]),
        "growth_v2": growth,
    }
    return common.finish(args.out, NAME, size, fig, arrays, meta)


if __name__ == "__main__":
    main()
