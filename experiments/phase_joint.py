"""Phase diagram of the joint loss beta SCL + (1 - beta) UCL over (beta, phi_1^2).

The ``joint`` preset (K = p = 4, phi_2 = phi_3 = phi_4 = 1, mu = 0, balanced good event) with
the class strength phi_1 varied and beta in [0, 1] (0 = pure UCL, 1 = pure SCL). Colour:
||W v_1|| phi_1 (1 = the class feature is learnt at its min-norm size, 0 = suppressed) and
||W v_2|| phi_2 (sqrt(1 - beta) when the subclass is kept, 0 when collapsed) at the end of GD,
median over seeds; next to each, the same quantity for the min-norm minimizer
(``theory.predicted_alignment_joint``, ``_ucl`` at beta = 0, ``_scl`` at beta = 1).
The dashed line phi_1^2 = 0.5 is the FS-dim threshold of this instance (``theory.
fs_dim_suppressed``: below it UCL suppresses v_1, and the JOINT condition of Thm 6.1 holds).

All cells run in one compiled program (``_common.gd_runs``, the same GD as ``simulate``); the
runner is shared with ``joint_beta_sweep``. Run: ``python -m experiments.phase_joint
[--quick|--tiny] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import _common as common
from experiments.joint_beta_sweep import loss_config, predicted, run_grid
from simdyn import preset, theory

NAME = "phase_joint"

# Per size: preset overrides, betas (endpoints = pure losses), phi_1^2 values, seeds.
SIZES = {
    "tiny": ({"n": 32, "d": 300, "steps": 1000, "log_every": 50}, (0.0, 0.5), (0.25, 0.8), 1),
    "quick": (
        {"steps": 3000, "log_every": 50},
        (0.0, 0.25, 0.5, 0.75, 1.0),
        (0.1, 0.25, 0.4, 0.6, 0.8),
        2,
    ),
    "full": (
        {"steps": 6000, "log_every": 50},
        (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
        (0.1, 0.2, 0.3, 0.4, 0.45, 0.55, 0.6, 0.7, 0.8, 0.9),
        4,
    ),
}


def main(argv: list[str] | None = None) -> dict:
    args, size, timer = common.start(__doc__, argv)
    overrides, betas, phi1_sq, default_seeds = SIZES[size]
    seeds = common.seed_count(args, default_seeds)
    base = preset("joint").replace(**overrides)
    betas, phi1_sq = np.asarray(betas), np.asarray(phi1_sq)
    configs = [loss_config(base, float(b), float(np.sqrt(f2))) for f2 in phi1_sq for b in betas]
    res = run_grid(configs, seeds, args.key)
    shape = (len(phi1_sq), len(betas))
    med = np.array([[b.median for b in bb] for bb in res["bands"]]).reshape(shape + (2,))
    pred = np.stack([predicted(c)[1:3] for c in configs]).reshape(shape + (2,))
    scale = np.stack([np.sqrt(phi1_sq), np.full(len(phi1_sq), base.data.phi[1])], axis=-1)
    sim_n = med * scale[:, None, :]  # ||W v_1|| phi_1, ||W v_2|| phi_2
    pred_n = pred * scale[:, None, :]
    n_div = int(res["diverged"].sum())
    K, p = base.data.K, base.model.p
    threshold = [
        bool(
            jax.jit(theory.fs_dim_suppressed, static_argnums=1)(
                (float(np.sqrt(f2)),) + base.data.phi[1:], K, p
            )
        )
        for f2 in phi1_sq
    ]

    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True, sharey=True)
    xe = np.arange(len(betas) + 1) - 0.5
    ye = np.arange(len(phi1_sq) + 1) - 0.5
    titles = [
        ["||W v1|| phi_1: GD (median)", "||W v1|| phi_1: min-norm"],
        ["||W v2|| phi_2: GD (median)", "||W v2|| phi_2: min-norm"],
    ]
    for row, j in enumerate((0, 1)):
        for col, data in enumerate((sim_n[..., j], pred_n[..., j])):
            ax = axes[row, col]
            im = ax.pcolormesh(xe, ye, data, vmin=0.0, vmax=1.1, cmap="viridis")
            for (iy, ix), v in np.ndenumerate(data):
                ax.text(
                    ix,
                    iy,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="k" if v > 0.6 else "w",
                )
            # FS-dim threshold phi_1^2 = 0.5 between the rows that straddle it.
            cut = [i for i in range(1, len(threshold)) if threshold[i - 1] != threshold[i]]
            for i in cut:
                ax.axhline(i - 0.5, color="red", ls="--", lw=1.2)
            ax.set_title(titles[row][col], fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in axes[1]:
        ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas], fontsize=7)
        ax.set_xlabel("beta (0 = UCL, 1 = SCL)")
    for ax in axes[:, 0]:
        ax.set_yticks(range(len(phi1_sq)), [f"{f:g}" for f in phi1_sq], fontsize=7)
        ax.set_ylabel("phi_1^2")
    div_txt = f", {n_div} diverged runs excluded" if n_div else ""
    fig.suptitle(
        f"Joint loss phase diagram: K = p = {K}, n = {base.data.n}, {base.train.steps} GD steps, "
        f"{seeds} seeds/cell{div_txt} ({size} run); red: FS-dim threshold of UCL",
        fontsize=9.5,
    )
    fig.tight_layout()
    meta = {
        **common.run_meta(size, args.key, seeds, base),
        "betas": betas,
        "phi1_sq": phi1_sq,
        "diverged": n_div,
        "max_late_change": float(np.nanmax(res["late_change"])),
        "max_abs_error_normalised": float(np.nanmax(np.abs(sim_n - pred_n))),
        # Without the pure-UCL column, where v_1 near the FS-dim threshold is not unlearnt.
        "max_abs_error_normalised_beta_gt_0": float(
            np.nanmax(np.abs(sim_n - pred_n)[:, betas > 0])
        ),
        "runtime_s": timer(),
    }
    arrays = {
        "betas": betas,
        "phi1_sq": phi1_sq,
        "median_v1_v2": med,  # (F, B, 2)
        "pred_v1_v2": pred,
        "late_change": res["late_change"].reshape(shape + (2,)),
    }
    return common.finish(args.out, NAME, size, fig, arrays, meta)


if __name__ == "__main__":
    main()
