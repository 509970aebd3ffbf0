"""Phase diagram of early subclass learning (CC-early, Thm 4.5) over (mu, phi_1), SCL.

The Fig. 1 setting (K = 4, p = 3, phi_2 = phi_3 = phi_4 = 1, sigma_xi = 2, sigma_0 = 0.001,
full-batch GD) with the subclass mean mu and the class strength phi_1 varied. Colour: the peak
over the run of the median (over seeds) ||W_t v_2|| (log scale). Thm 4.5: if 1 + mu^2 > phi_1^2
(``theory.cc_early_condition``; the line 1 + mu^2 = phi_1^2 is drawn) and sigma_0 sqrt(p/d) is
small, GD reaches ||W_t v_2|| = Omega(1) early, because the top eigenvector of M+ (eigenvalue
a_1 = 1 + mu^2 + s, bias + mu v_2) carries v_2 with weight mu/sqrt(a_1) and grows first. It is a
SUFFICIENT condition: the paper claims nothing on the other side, so this maps the region instead
of asserting; with mu = 0, v_2 has no component in colsp(M+) and stays at its init scale.

Step size eta = min(0.05, 0.1/a_max), a_max = max(a_1, a_2) (``_common.stable_lr``); all cells
run in one compiled program (``_common.gd_runs``, the same GD as ``simulate``).
Run: ``python -m experiments.phase_cc_early [--quick|--tiny] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import jax
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from experiments import _common as common
from simdyn import Config, preset, theory

NAME = "phase_cc_early"

# Per size: fig1 overrides, mu values, phi_1 values, seeds.
SIZES = {
    "tiny": ({"n": 200, "d": 400, "steps": 120}, (0.0, 1.0), (0.5, 1.5), 1),
    "quick": (
        {"n": 400, "d": 1000, "steps": 200},
        (0.0, 0.5, 1.0, 1.5, 2.0),
        (0.25, 0.75, 1.25, 1.75, 2.25),
        1,
    ),
    "full": (
        {"steps": 400},
        tuple(np.round(np.linspace(0.0, 2.0, 9), 3)),
        tuple(np.round(np.linspace(0.25, 2.25, 9), 3)),
        3,
    ),
}


_condition = jax.jit(theory.cc_early_condition)


def cell_config(base: Config, mu: float, phi_1: float) -> Config:
    dc = base.data
    s = dc.sigma_xi**2 / dc.num_points
    a1, a2 = 1.0 + mu**2 + s, phi_1**2 + s
    return base.replace(
        mu=float(mu), phi=(float(phi_1),) + dc.phi[1:], lr=common.stable_lr(max(a1, a2))
    )


def main(argv: list[str] | None = None) -> dict:
    args, size, timer = common.start(__doc__, argv)
    overrides, mus, phis, default_seeds = SIZES[size]
    seeds = common.seed_count(args, default_seeds)
    base = preset("fig1").replace(probe_every=-1, **overrides)
    configs = [cell_config(base, mu, phi) for phi in phis for mu in mus]
    rec = np.arange(base.train.steps + 1)
    runs = common.gd_runs(configs, seeds, args.key, rec, common.alignment_observer(base.data.K))
    v2 = runs.observed[:, :, :, 2]  # (C, S, T)
    shape = (len(phis), len(mus))
    med = np.stack([common.seed_band(v2[c], runs.diverged[c]).median for c in range(len(configs))])
    peak = np.nanmax(med, axis=1).reshape(shape)
    peak_step = rec[np.nanargmax(med, axis=1)].reshape(shape)
    final = med[:, -1].reshape(shape)
    cond = np.array([bool(_condition(c.data.mu, c.data.phi[0])) for c in configs]).reshape(shape)
    n_div = int(runs.diverged.sum())

    fig, ax = plt.subplots(figsize=(7.2, 5.2))
    mus_a, phis_a = np.asarray(mus), np.asarray(phis)

    def edges(v):
        h = (v[1] - v[0]) / 2 if len(v) > 1 else 0.5
        return np.concatenate([v - h, [v[-1] + h]])

    im = ax.pcolormesh(
        edges(mus_a),
        edges(phis_a),
        np.maximum(peak, 1e-6),
        norm=LogNorm(vmin=1e-5, vmax=2.0),
        cmap="magma",
    )
    fig.colorbar(im, ax=ax, label="peak over t of median ||W_t v_2||")
    for (i, j), v in np.ndenumerate(peak):
        ax.text(mus_a[j], phis_a[i], f"{v:.2g}", ha="center", va="center", fontsize=6.5, color="k")
    fm = np.linspace(edges(mus_a)[0], edges(mus_a)[-1], 300)
    fp = np.linspace(edges(phis_a)[0], edges(phis_a)[-1], 300)
    grid = np.asarray(_condition(fm[None, :], fp[:, None]), float)  # (300, 300)
    ax.contour(fm, fp, grid, levels=[0.5], colors="lime", linewidths=1.5)
    ax.plot([], [], color="lime", label="1 + mu^2 = phi_1^2 (Thm 4.5: early v_2 below)")
    ax.set_xlabel("mu (subclass mean)")
    ax.set_ylabel("phi_1 (class strength)")
    div_txt = f", {n_div} diverged runs excl." if n_div else ""
    dc = base.data
    ax.set_title(
        f"CC-early: SCL, p = {base.model.p}, n = {dc.n}, d = {dc.d}, {base.train.steps} steps, "
        f"{seeds} seeds{div_txt} ({size} run)",
        fontsize=8.5,
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    meta = {
        **common.run_meta(size, args.key, seeds, base),
        "mu": list(mus),
        "phi_1": list(phis),
        "lr": [c.train.lr for c in configs],
        "diverged": n_div,
        "min_peak_where_condition_holds": float(np.min(peak[cond])) if cond.any() else None,
        "max_peak_where_condition_fails": float(np.max(peak[~cond])) if (~cond).any() else None,
        "runtime_s": timer(),
    }
    arrays = {
        "mu": mus_a,
        "phi_1": phis_a,
        "peak_v2": peak,  # (F, M)
        "peak_step": peak_step,
        "final_v2": final,
        "condition": cond,
    }
    return common.finish(args.out, NAME, size, fig, arrays, meta)


if __name__ == "__main__":
    main()
