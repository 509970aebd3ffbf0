"""Fig. 2 of Xue et al. (2023): ||W_t v_1|| and ||W_t v_2|| against epoch, SCL, p = 3 and p = 500.

Full-batch GD (one step = one paper "epoch") on the Fig. 1 setting (presets ``fig2a``, ``fig2b``),
seed bands (median + 5-95%) with two closed-form overlays:

* min-norm SCL minimizer (Thm 4.4/4.7), horizontal lines: the good-event formula
  ``theory.predicted_alignment_scl`` and the exact min-norm minimizer of seed 0's sampled
  instance (``theory.min_norm_minimizer`` on its dense M+, M; the paper's setting has
  m n = 5000 > d = 2000, so the good event cannot hold and the formula is only approximate);
* early growth (Thm 4.5, linear regime Theta_t = Theta_0 (I + 4 eta M+)^t): with init entries
  N(0, sigma_0^2/d), E||Theta_t v_j||^2 = sigma_0^2 (p/d) (1 + c_j^2 ((1 + 4 eta a)^{2t} - 1)),
  a the M+ eigenvalue whose eigenvector carries v_j with weight c_j: v_2 rides on a_1 = 1 + mu^2
  + s with c = mu/sqrt(a_1), v_1 on a_2 = phi_1^2 + s with c = phi_1/sqrt(a_2) (s =
  sigma_xi^2/(mn)). Drawn while it is below 0.3 (the cubic term is negligible there).

Probes are on (the paper's setting, as ``simdyn simulate fig2a/fig2b`` runs it): the bottom row
shows the linear-probe accuracies on fresh test data, class and subclass-within-class.

The early phase also predicts how the embedding size moves the rise of ||W v_2||: the init
amplitude sigma_0 sqrt(p/d) grows by sqrt(500/3) from p = 3 to p = 500, so a level x is crossed
earlier by ln(sqrt(500/3)) / ln(1 + 4 eta a_1) steps. The script measures each panel's crossing
step of the median ||W v_2|| at CROSS_LEVEL (inside the linear regime) and records the measured
and predicted shifts in its JSON.

Run: ``python -m experiments.fig2_alignment [--quick|--tiny] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import simdyn
from experiments import _common as common
from simdyn import preset, simulate, theory

NAME = "fig2_alignment"

# Per size: (preset, overrides, seeds, chunk_size) for each panel. The p = 500 step is dominated
# by p x p x D products (Theta M Theta^T), about 1e9 flops per step per seed, so its panel has
# fewer seeds on a CPU. The tiny size keeps p >= 70 in panel b: the size whose batched probe
# solves deadlocked jaxlib's CPU pool (docs/reliability.md).
SIZES = {
    "tiny": [
        ("fig2a", {"n": 200, "d": 400, "steps": 150, "probe_every": 50}, 2, None),
        ("fig2b", {"n": 200, "d": 400, "steps": 150, "p": 80, "probe_every": 50}, 2, None),
    ],
    "quick": [
        ("fig2a", {"probe_every": 10}, 8, None),
        ("fig2b", {"steps": 200, "log_every": 2, "probe_every": 10}, 2, None),
    ],
    "full": [
        ("fig2a", {"probe_every": 5}, 64, None),
        ("fig2b", {"probe_every": 5}, 16, None),
    ],
}
CROSS_LEVEL = 0.05  # ||W v_2|| level for the crossing-step comparison (early growth < 0.3 there)


def crossing_step(steps: np.ndarray, values: np.ndarray, level: float) -> float:
    """First step where ``values`` (R,) reach ``level``, linearly interpolated in log(value)
    between log steps; NaN if never reached."""
    above = np.nonzero(values >= level)[0]
    if not len(above) or above[0] == 0:
        return float("nan")
    i = int(above[0])
    lo, hi = np.log(values[i - 1]), np.log(values[i])
    frac = (np.log(level) - lo) / (hi - lo) if hi > lo else 1.0
    return float(steps[i - 1] + frac * (steps[i] - steps[i - 1]))


def early_growth(config: simdyn.Config, steps: np.ndarray) -> dict[str, np.ndarray]:
    """sqrt(E||Theta_t v_j||^2) in the linear regime for j = 1, 2 (see the module docstring)."""
    dc, mc, tc = config.data, config.model, config.train
    a1, a2 = jax.jit(theory.scl_plus_eigenvalues)(dc.mu, dc.phi[0], dc.sigma_xi, dc.m, dc.n)
    init2 = mc.sigma_0**2 * mc.p / dc.d
    out = {}
    for name, a, c in (("v1", a2, dc.phi[0] / jnp.sqrt(a2)), ("v2", a1, dc.mu / jnp.sqrt(a1))):
        g2 = jax.jit(theory.early_growth_factor)(tc.lr, a, 2 * jnp.asarray(steps, jnp.float64))
        out[name] = np.sqrt(init2 * (1.0 + c**2 * (np.asarray(g2) - 1.0)))
    return out


def run_panel(name: str, overrides: dict, seeds: int, chunk: int | None, key: int) -> dict:
    config = preset(name).replace(**overrides)
    dc, mc = config.data, config.model
    ds = simulate(config, seeds=seeds, key=key, chunk_size=chunk)

    steps = ds["step"].values
    align = ds["alignment"].values  # (S, R, K+1)
    div = ds["diverged"].values
    bands = {j: common.seed_band(align[:, :, j], div) for j in (1, 2)}
    probe_steps = ds["probe_step"].values
    probes = {k: common.seed_band(ds[f"probe_{k}"].values, div) for k in ("class", "subclass")}
    formula = np.asarray(
        jax.jit(theory.predicted_alignment_scl)(dc.phi, dc.mu, dc.sigma_xi, dc.m, dc.n, mc.p)
    )
    instance = common.instance_min_norm_alignment(config, key, 0, beta=1.0)
    return {
        "config": config,
        "steps": steps,
        "bands": bands,
        "per_seed": align[:, :, 1:3],
        "diverged": div,
        "formula": formula,
        "instance": instance,
        "growth": early_growth(config, steps),
        "probe_steps": probe_steps,
        "probes": probes,
        "cross_v2": crossing_step(steps, bands[2].median, CROSS_LEVEL),
    }


def predicted_shift(config_a: simdyn.Config, config_b: simdyn.Config) -> float:
    """Steps by which panel b's ||W v_2|| crosses a level earlier than panel a's in the linear
    regime: ln(sqrt(p_b/p_a)) / ln(1 + 4 eta a_1) (same data, lr and d)."""
    dc = config_a.data
    a1, _ = jax.jit(theory.scl_plus_eigenvalues)(dc.mu, dc.phi[0], dc.sigma_xi, dc.m, dc.n)
    growth = float(jax.jit(theory.early_growth_factor)(config_a.train.lr, a1, 1.0))
    return float(np.log(np.sqrt(config_b.model.p / config_a.model.p)) / np.log(growth))


def draw_probes(ax, panel: dict) -> None:
    x = np.maximum(panel["probe_steps"], 1)  # step 0 drawn at 1 on the log axis
    for kind, color in (("class", common.C_V1), ("subclass", common.C_V2)):
        b = panel["probes"][kind]
        common.plot_band(ax, x, b, color, kind)
    ax.axhline(0.5, color="gray", lw=0.6, ls=":")
    ax.set_ylim(0.4, 1.02)
    ax.set_xscale("log")
    ax.set_xlim(1, panel["steps"][-1])
    ax.set_xlabel("epoch (full-batch GD step)")


def draw(ax, panel: dict, log_y: bool) -> None:
    steps, cfg = panel["steps"], panel["config"]
    x = steps[1:]  # log epoch axis: step 0 (init) is not drawable
    for j, color in ((1, common.C_V1), (2, common.C_V2)):
        b = panel["bands"][j]
        sub = type(b)(b.lo[1:], b.median[1:], b.hi[1:], b.mean[1:], b.kept, b.diverged)
        common.plot_band(ax, x, sub, color, f"||W v{j}||")
        ax.axhline(panel["formula"][j], color=color, ls=":", lw=1.2)
        ax.axhline(panel["instance"][j], color=common.C_THEORY, ls="--", lw=0.8, alpha=0.7)
        if log_y:
            g = panel["growth"][f"v{j}"][1:]
            ok = g < 0.3
            ax.plot(x[ok], g[ok], color=color, ls="-.", lw=1.2)
    ax.set_xscale("log")
    ax.set_xlim(1, steps[-1])
    if log_y:
        ax.set_yscale("log")
        lo = min(float(np.nanmin(panel["bands"][j].lo[1:])) for j in (1, 2))
        ax.set_ylim(max(lo / 3, 1e-7), 3)
    ax.set_xlabel("epoch (full-batch GD step)")
    b = panel["bands"][1]
    count = f"{b.kept} seed{'s' if b.kept != 1 else ''}"
    count += f", {b.diverged} diverged excl." if b.diverged else ""
    ax.set_title(
        f"SCL, p = {cfg.model.p}, n = {cfg.data.n}, d = {cfg.data.d} ({count})", fontsize=9
    )


def main(argv: list[str] | None = None) -> dict:
    args, size, timer = common.start(__doc__, argv)
    panels = [
        run_panel(name, over, common.seed_count(args, seeds), chunk, args.key)
        for name, over, seeds, chunk in SIZES[size]
    ]
    fig, axes = plt.subplots(3, 2, figsize=(10, 9.6), sharex="col")
    for col, panel in enumerate(panels):
        draw(axes[0, col], panel, log_y=False)
        draw(axes[1, col], panel, log_y=True)
        draw_probes(axes[2, col], panel)
        axes[1, col].axhline(CROSS_LEVEL, color="gray", lw=0.6)
        for row in (0, 1):
            axes[row, col].set_xlabel("")
    axes[0, 0].set_ylabel("||W_t v_j|| (linear)")
    axes[1, 0].set_ylabel("||W_t v_j|| (log)")
    axes[2, 0].set_ylabel("probe accuracy (test)")
    axes[2, 0].legend(
        [plt.Line2D([], [], color=common.C_V1), plt.Line2D([], [], color=common.C_V2)],
        ["class", "subclass | class"],
        fontsize=7.5,
        loc="lower right",
    )
    # One shared legend; the seed counts differ per panel, so they are in each panel's title
    # (the legend used to carry the p = 3 panel's count for both).
    handles, _ = axes[1, 0].get_legend_handles_labels()
    labels = [f"||W v{j}|| (median, 5-95% over seeds)" for j in (1, 2)]
    handles += [
        plt.Line2D([], [], color="gray", ls=":"),
        plt.Line2D([], [], color=common.C_THEORY, ls="--", alpha=0.7),
        plt.Line2D([], [], color="gray", ls="-."),
    ]
    labels += [
        "min-norm, good-event formula",
        "min-norm, exact for seed 0's instance",
        "early growth sigma_0 sqrt(p/d)(1+4 eta a)^t",
    ]
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7.5, frameon=False)
    fig.suptitle(f"Fig. 2: feature alignment during SCL training ({size} run)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))

    arrays, meta = {}, {"size": size, "key": args.key, "panels": []}
    measured = panels[0]["cross_v2"] - panels[1]["cross_v2"]
    meta["v2_crossing"] = {
        "level": CROSS_LEVEL,
        "median_crossing_step": [panel["cross_v2"] for panel in panels],
        "measured_shift": measured,
        "predicted_shift": predicted_shift(panels[0]["config"], panels[1]["config"]),
    }
    for tag, panel in zip("ab", panels, strict=True):
        arrays[f"{tag}_steps"] = panel["steps"]
        for j in (1, 2):
            b = panel["bands"][j]
            arrays[f"{tag}_v{j}_band"] = np.stack([b.lo, b.median, b.hi])  # (3, R)
        arrays[f"{tag}_per_seed"] = panel["per_seed"]  # (S, R, 2): v1, v2
        arrays[f"{tag}_growth"] = np.stack([panel["growth"]["v1"], panel["growth"]["v2"]])
        arrays[f"{tag}_probe_steps"] = panel["probe_steps"]
        for kind in ("class", "subclass"):
            b = panel["probes"][kind]
            arrays[f"{tag}_probe_{kind}_band"] = np.stack([b.lo, b.median, b.hi])
        med2 = panel["bands"][2].median
        meta["panels"].append(
            {
                "config": panel["config"],
                "seeds": int(panel["per_seed"].shape[0]),
                "diverged": int(panel["diverged"].sum()),
                "min_norm_formula": panel["formula"],
                "min_norm_instance_seed0": panel["instance"],
                "median_v2_peak": float(np.nanmax(med2)),
                "median_v2_peak_step": int(panel["steps"][int(np.nanargmax(med2))]),
                "median_final": [float(panel["bands"][j].median[-1]) for j in (1, 2)],
            }
        )
    meta["runtime_s"] = timer()
    return common.finish(args.out, NAME, size, fig, arrays, meta)


if __name__ == "__main__":
    main()
