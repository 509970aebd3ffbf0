"""JOINT (Thm 6.1): ||W v_1||, ||W v_2|| at convergence of beta SCL + (1 - beta) UCL against beta.

Preset ``joint``: K = p = 4, phi = (0.5, 1, 1, 1), mu = 0, n = 160 balanced originals, m = 2,
d = 2000, sigma_xi = 1, good event, sigma_0 = 0.001, eta = 0.05. There SCL alone collapses the
subclass (||W v_2|| = 0, Thm 4.4) and UCL alone suppresses the class feature (phi_1^2 = 0.25 is
not among the top p = 4 of L = [1, .25, 1, .5, .5], Thm 5.1); Thm 6.1 says the joint loss keeps
both for EVERY beta in (0, 1): ||W v_1|| = phi_1/(phi_1^2 + s) ~ 1/phi_1 and ||W v_2|| =
sqrt(1 - beta) phi_2/(phi_2^2 + s) ~ sqrt(1 - beta)/phi_2 (``theory.predicted_alignment_joint``).
The endpoints beta = 0 (pure UCL) and beta = 1 (pure SCL) are run too and drawn with their own
predictions (``predicted_alignment_ucl`` / ``_scl``): the prediction jumps at both ends.

GD near the ends is slow: for small beta the v_1 mode (P-eigenvalue ~ phi_1^2) grows last and
has to displace an irrelevant feature whose eigenvalue in the whitened problem is only beta
below its own; the JSON reports each point's late change (convergence check).

All betas (and seeds) run in one compiled program (``_common.gd_runs``, the same GD as
``simulate``). Run: ``python -m experiments.joint_beta_sweep [--quick|--tiny] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import _common as common
from simdyn import Config, preset, theory

NAME = "joint_beta_sweep"

# Per size: preset overrides, the interior betas, seeds.
SIZES = {
    "tiny": ({"n": 32, "d": 300, "steps": 1000, "log_every": 50}, (0.5,), 2),
    "quick": ({"steps": 3000, "log_every": 50}, (0.1, 0.3, 0.5, 0.7, 0.9), 4),
    "full": (
        {"steps": 6000, "log_every": 50},
        (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
        16,
    ),
}


def loss_config(base: Config, beta: float, phi_1: float | None = None) -> Config:
    """UCL at beta = 0, SCL at beta = 1, the joint loss in between (optionally a new phi_1)."""
    over: dict = {} if phi_1 is None else {"phi": (phi_1,) + base.data.phi[1:]}
    if beta <= 0.0:
        return base.replace(loss="ucl", **over)
    if beta >= 1.0:
        return base.replace(loss="scl", **over)
    return base.replace(loss="joint", beta=beta, **over)


_PRED = {
    "ucl": jax.jit(theory.predicted_alignment_ucl),
    "scl": jax.jit(theory.predicted_alignment_scl),
    "joint": jax.jit(theory.predicted_alignment_joint),
}


def predicted(config: Config) -> np.ndarray:
    """Min-norm ||W v_j||, j = 0..K, for the config's loss (good-event closed forms)."""
    dc, p, t = config.data, config.model.p, config.train
    args = (dc.phi, dc.mu, dc.sigma_xi, dc.m, dc.n, p)
    if t.loss == "ucl":
        return np.asarray(_PRED["ucl"](*args))
    if t.loss == "scl":
        return np.asarray(_PRED["scl"](*args))
    return np.asarray(_PRED["joint"](*args, t.beta))


def run_grid(configs: list[Config], seeds: int, key: int) -> dict:
    """Final ||W v_1||, ||W v_2|| of each config (bands over seeds) and the convergence check."""
    base = configs[0]
    steps = np.asarray(base.train.record_steps)
    runs = common.gd_runs(configs, seeds, key, steps, common.alignment_observer(base.data.K))
    align = runs.observed  # (C, S, R, K+1)
    out = {"final": align[:, :, -1, 1:3], "diverged": runs.diverged}
    out["bands"] = [
        [common.seed_band(align[c, :, -1, j], runs.diverged[c]) for j in (1, 2)]
        for c in range(len(configs))
    ]
    out["late_change"] = np.asarray(
        [
            [common.late_change(align[c, ~runs.diverged[c], :, j]) for j in (1, 2)]
            for c in range(len(configs))
        ]
    )
    return out


def main(argv: list[str] | None = None) -> dict:
    args, size, timer = common.start(__doc__, argv)
    overrides, interior, default_seeds = SIZES[size]
    seeds = common.seed_count(args, default_seeds)
    base = preset("joint").replace(**overrides)
    betas = np.asarray((0.0,) + tuple(interior) + (1.0,))
    configs = [loss_config(base, float(b)) for b in betas]
    res = run_grid(configs, seeds, args.key)
    pred = np.stack([predicted(c) for c in configs])  # (B, K+1)
    fine = np.linspace(0.005, 0.995, 199)
    fine_pred = np.stack([predicted(loss_config(base, float(b))) for b in fine])

    fig, ax = plt.subplots(figsize=(7, 4.6))
    n_div = int(res["diverged"].sum())
    for j, color in ((1, common.C_V1), (2, common.C_V2)):
        bands = [b[j - 1] for b in res["bands"]]
        med = np.array([b.median for b in bands])
        lo = np.array([b.lo for b in bands])
        hi = np.array([b.hi for b in bands])
        yerr = np.stack([med - lo, hi - med])
        label = f"||W v{j}|| GD (median, 5-95%, {seeds} seeds"
        label += f", {n_div} diverged excl.)" if n_div else ")"
        ax.errorbar(betas, med, yerr=yerr, fmt="o", color=color, capsize=3, label=label)
        ax.plot(fine, fine_pred[:, j], color=color, ls="--", lw=1.2)
        ax.plot(betas[[0, -1]], pred[[0, -1], j], "s", mfc="none", color=common.C_THEORY, ms=9)
    ax.plot([], [], color="gray", ls="--", label="min-norm joint (Thm 6.1)")
    ax.plot(
        [], [], "s", mfc="none", color=common.C_THEORY, label="min-norm UCL (beta=0) / SCL (beta=1)"
    )
    ax.set_xlabel("beta (weight of SCL; 0 = UCL, 1 = SCL)")
    ax.set_ylabel("||W v_j|| at convergence")
    dc = base.data
    ax.set_title(
        f"beta SCL + (1-beta) UCL: K = p = {dc.K}, phi = {dc.phi}, n = {dc.n}, "
        f"{base.train.steps} steps ({size} run)",
        fontsize=9,
    )
    ax.legend(fontsize=7.5, loc="center right")
    fig.tight_layout()
    meta = {
        **common.run_meta(size, args.key, seeds, base),
        "betas": betas,
        "pred_v1_v2": pred[:, 1:3],
        "median_v1_v2": [[b.median for b in bb] for bb in res["bands"]],
        "late_change_v1_v2": res["late_change"],
        "diverged": n_div,
        "runtime_s": timer(),
    }
    arrays = {"betas": betas, "final_v1_v2": res["final"], "pred": pred}
    return common.finish(args.out, NAME, size, fig, arrays, meta)


if __name__ == "__main__":
    main()
