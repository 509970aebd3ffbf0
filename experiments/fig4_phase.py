"""Fig. 4 of Xue et al. (2023): ||W v_1|| at convergence against phi_K^2/(K-2), UCL (FS-dim).

Panels K = p = 3 (preset ``fig4a``) and K = p = 50 (``fig4b``); phi_1 = 0.8, phi_2 = 1, mu = 0,
d = 2000, every irrelevant feature of strength phi_k^2/(K-2) = x, x on a log grid in [1e-2, 1e1].
The paper does not give n, m, sigma_xi, eta, sigma_0; the presets' choices (simdyn/_src/presets.py):
exactly balanced originals (n = 96 for K = 3, 384 for K = 50, multiples of 8 (K-2)), m = 2,
sigma_xi = 1, the good event (distinct noise coordinates outside the feature block),
sigma_0 = 0.001. Step size: large x makes the largest P eigenvalue a_max = max(1, x) + O(s), so
eta = min(0.05, 0.1 / a_max) (``_common.stable_lr``: a mode is stable and monotone for
eta a < 1/8); the step count is fixed per size (3000 in the full run) and the convergence of
each point is reported (``late_change``: max relative change of ||W v_1|| over the last 20%).
The paper plots the mean of 10 runs; so does this (with the 5-95% band and the median).

Prediction: the min-norm UCL minimizer (Thm 5.1, ``theory.predicted_alignment_ucl``), a step
function: phi_1/(phi_1^2 + s) ~ 1/phi_1 while phi_1^2 = 0.64 is among the p largest entries of
L = [1, phi_1^2, phi_2^2, x, ..., x], 0 above the threshold x = 0.64 (both panels).

All points of a panel run in one compiled program (``_common.gd_runs``, the same GD as
``simulate``). Run: ``python -m experiments.fig4_phase [--quick|--tiny] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import _common as common
from simdyn import Config, preset, theory

NAME = "fig4_phase"

# Per size: for each panel (preset, overrides), the x grid size, seeds.
SIZES = {
    "tiny": ([("fig4a", {"n": 16, "d": 200, "steps": 1000, "log_every": 50})], 4, 2),
    "quick": (
        [
            ("fig4a", {"steps": 2000, "log_every": 50}),
            # n stays 384 = 8 (K - 2): fewer originals would not be exactly balanced (each
            # irrelevant feature in ~2 originals: the FS-aug regime, not Fig. 4's population).
            ("fig4b", {"d": 1000, "steps": 2000, "log_every": 50}),
        ],
        7,
        4,
    ),
    "full": ([("fig4a", {}), ("fig4b", {})], 13, 10),
}


def point_config(base: Config, x: float) -> Config:
    """base with every irrelevant feature at phi_k^2/(K-2) = x and the stable step size."""
    K = base.data.K
    phi = base.data.phi[:2] + (float(np.sqrt(x * (K - 2))),) * (K - 2)
    s = base.data.sigma_xi**2 / base.data.num_points
    return base.replace(phi=phi, lr=common.stable_lr(max(1.0, x) + s))


def predicted_v1(base: Config, xs: np.ndarray) -> np.ndarray:
    """Min-norm UCL ||W v_1|| (``theory.predicted_alignment_ucl``) at each x, vectorised."""
    dc, p, K = base.data, base.model.p, base.data.K

    def at(x):
        phi = jnp.concatenate([jnp.asarray(dc.phi[:2]), jnp.full((K - 2,), jnp.sqrt(x * (K - 2)))])
        return theory.predicted_alignment_ucl(phi, dc.mu, dc.sigma_xi, dc.m, dc.n, p)[1]

    return np.asarray(jax.jit(jax.vmap(at))(jnp.asarray(xs, jnp.float64)))


def run_panel(name: str, overrides: dict, xs: np.ndarray, seeds: int, key: int) -> dict:
    base = preset(name).replace(**overrides)
    configs = [point_config(base, float(x)) for x in xs]
    steps = np.asarray(base.train.record_steps)
    runs = common.gd_runs(configs, seeds, key, steps, common.alignment_observer(base.data.K))
    v1 = runs.observed[:, :, :, 1]  # (X, S, R)
    final = [common.seed_band(v1[i, :, -1], runs.diverged[i]) for i in range(len(xs))]
    change = [common.late_change(v1[i][~runs.diverged[i]]) for i in range(len(xs))]
    fine = np.geomspace(1e-2, 1e1, 400)
    return {
        "base": base,
        "configs": configs,
        "final_v1": v1[:, :, -1],
        "bands": final,
        "late_change": np.asarray(change),
        "diverged": runs.diverged,
        "fine_x": fine,
        "fine_pred": predicted_v1(base, fine),
        "pred": predicted_v1(base, xs),
    }


def main(argv: list[str] | None = None) -> dict:
    args, size, timer = common.start(__doc__, argv)
    panels_spec, num_x, default_seeds = SIZES[size]
    seeds = common.seed_count(args, default_seeds)
    xs = np.geomspace(1e-2, 1e1, num_x)
    panels = [run_panel(name, over, xs, seeds, args.key) for name, over in panels_spec]

    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 4.2), squeeze=False)
    arrays, meta = {"x": xs}, {"size": size, "key": args.key, "seeds": seeds, "panels": []}
    for tag, ax, pn in zip("ab"[: len(panels)], axes[0], panels, strict=True):
        base = pn["base"]
        mean = np.array([b.mean for b in pn["bands"]])
        med = np.array([b.median for b in pn["bands"]])
        lo = np.array([b.lo for b in pn["bands"]])
        hi = np.array([b.hi for b in pn["bands"]])
        n_div = int(pn["diverged"].sum())
        ax.fill_between(xs, lo, hi, color=common.C_V1, alpha=0.25, lw=0)
        label = f"GD, mean of {seeds} seeds (band 5-95%"
        label += f", {n_div} diverged excl.)" if n_div else ")"
        ax.plot(xs, mean, "o-", color=common.C_V1, label=label)
        ax.plot(xs, med, "x", color=common.C_V1, ms=5, label="GD, median")
        ax.plot(
            pn["fine_x"],
            pn["fine_pred"],
            color=common.C_THEORY,
            ls="--",
            label="min-norm (Thm 5.1)",
        )
        ax.axvline(base.data.phi[0] ** 2, color="gray", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlim(1e-2, 1e1)
        ax.set_xlabel("phi_K^2 / (K - 2)")
        ax.set_ylabel("||W v_1|| at convergence")
        dc = base.data
        ax.set_title(
            f"UCL, K = p = {dc.K}, n = {dc.n}, m = {dc.m}, d = {dc.d}, {base.train.steps} steps",
            fontsize=9,
        )
        ax.legend(fontsize=7.5)
        arrays[f"{tag}_final_v1"] = pn["final_v1"]  # (X, S)
        arrays[f"{tag}_band"] = np.stack([lo, med, hi, mean])  # (4, X)
        arrays[f"{tag}_pred"] = pn["pred"]
        arrays[f"{tag}_late_change"] = pn["late_change"]
        meta["panels"].append(
            {
                "base_config": base,
                "exactly_balanced": base.data.exactly_balanced,
                "lr": [c.train.lr for c in pn["configs"]],
                "diverged": n_div,
                "max_late_change": float(np.nanmax(pn["late_change"])),
                "late_change": pn["late_change"],
                "pred": pn["pred"],
                "mean_v1": mean,
            }
        )
    fig.suptitle(f"Fig. 4: feature suppression by dimension (FS-dim), {size} run", fontsize=11)
    fig.tight_layout()
    meta["runtime_s"] = timer()
    return common.finish(args.out, NAME, size, fig, arrays, meta)


if __name__ == "__main__":
    main()
