"""Fig. 1 of Xue et al. (2023): test embeddings during SCL training at epochs 0, 45, 60, 100.

Preset ``fig1`` (p = 3, n = 1000, m = 5, d = 2000, K = 4, phi = 1, mu = 1, sigma_xi = 2,
sigma_0 = 0.001, eta = 0.05, full-batch GD). Seed 0's Theta is kept at those epochs
(:func:`experiments._common.gd_runs`, the same GD as ``simulate``) and applied to seed 0's fresh
test set (``simdyn.data.embed``). Top row: the 3-D embeddings; bottom row: their projection on
the two leading principal axes of that epoch's embeddings. Colour = class y, marker = subclass
y_sub. Each panel's title gives ||W v_1||, ||W v_2|| at that epoch; the figure title gives the
min-norm SCL prediction (``theory.predicted_alignment_scl``, Thm 4.4/4.7: v_2 collapses to
O(sigma_xi^2/(mn))) that GD approaches much later (see fig2_alignment).

Run: ``python -m experiments.fig1_embeddings [--quick|--tiny] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import _common as common
from simdyn import preset, seed_test_set, theory
from simdyn.data import embed
from simdyn.metrics import feature_alignment

NAME = "fig1_embeddings"
EPOCHS = (0, 45, 60, 100)

# The paper's setting is cheap for one seed (p = 3); tiny shrinks the data for the tests.
SIZES = {
    "tiny": {"n": 200, "d": 400, "n_test": 200},
    "quick": {"n_test": 600},
    "full": {"n_test": 1000},
}


def main(argv: list[str] | None = None) -> dict:
    args, size, timer = common.start(__doc__, argv)
    config = preset("fig1").replace(**SIZES[size])
    dc = config.data
    seed = 0 if args.seeds is None else args.seeds - 1  # --seeds N shows seed N-1
    runs = common.gd_runs([config], [seed], args.key, EPOCHS, lambda theta, context: theta)
    thetas = runs.observed[0, 0]  # (4, p, D)
    test = seed_test_set(config, seed, args.key)
    emb = np.asarray(jax.jit(jax.vmap(embed, in_axes=(0, None)))(thetas, test.points))  # (4, N, p)
    align = np.stack([np.asarray(feature_alignment(jnp.asarray(th), dc.K)) for th in thetas])
    y, ysub = np.asarray(test.labels.y), np.asarray(test.labels.y_sub)
    pred = np.asarray(
        jax.jit(theory.predicted_alignment_scl)(
            dc.phi, dc.mu, dc.sigma_xi, dc.m, dc.n, config.model.p
        )
    )

    fig = plt.figure(figsize=(13, 6.4))
    colors = {1: "tab:red", -1: "tab:blue"}
    markers = {1: "o", -1: "^"}
    for col, epoch in enumerate(EPOCHS):
        z = emb[col]
        ax3 = fig.add_subplot(2, len(EPOCHS), col + 1, projection="3d")
        centred = z - z.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        z2 = centred @ vt[:2].T
        ax2 = fig.add_subplot(2, len(EPOCHS), len(EPOCHS) + col + 1)
        for c in (1, -1):
            for s in (1, -1):
                sel = (y == c) & (ysub == s)
                kw = dict(c=colors[c], marker=markers[s], s=7, alpha=0.6, lw=0)
                ax3.scatter(z[sel, 0], z[sel, 1], z[sel, 2], **kw)
                ax2.scatter(z2[sel, 0], z2[sel, 1], label=f"y={c:+d}, y_sub={s:+d}", **kw)
        ax3.set_title(
            f"epoch {epoch}\n||W v1|| = {align[col, 1]:.3g}, ||W v2|| = {align[col, 2]:.3g}",
            fontsize=9,
        )
        ax3.tick_params(labelsize=6)
        ax2.tick_params(labelsize=7)
        ax2.set_xlabel("PC 1", fontsize=8)
        ax2.set_ylabel("PC 2", fontsize=8)
    ax2.legend(fontsize=7, loc="best", markerscale=1.5)
    fig.suptitle(
        f"Fig. 1: SCL test embeddings (seed {seed}, p = 3, n = {dc.n}, d = {dc.d}; {size} run). "
        f"Min-norm prediction: ||W v1|| = {pred[1]:.3g}, ||W v2|| = {pred[2]:.2g}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    meta = {
        "size": size,
        "key": args.key,
        "seed": seed,
        "config": config,
        "epochs": list(EPOCHS),
        "alignment": align,
        "min_norm_formula": pred,
        "diverged": bool(runs.diverged[0, 0]),
        "runtime_s": timer(),
    }
    arrays = {"epochs": np.asarray(EPOCHS), "embeddings": emb, "y": y, "y_sub": ysub}
    arrays["alignment"] = align  # (4, K + 1)
    return common.finish(args.out, NAME, size, fig, arrays, meta)


if __name__ == "__main__":
    main()
