"""Phase diagram of feature suppression by dimension (FS-dim, Thm 5.1) over (phi_K^2/(K-2), p).

UCL, mu = 0, K = 8, phi_1 = 0.8, phi_2 = 1 and the irrelevant features spread linearly up to
x = phi_K^2/(K-2): phi_k^2/(K-2) = x (k-2)/(K-2), k = 3..K, so the number of entries of
L = [1, phi_1^2, phi_2^2, phi_3^2/(K-2), ...] above phi_1^2 = 0.64 grows one by one with x and the
predicted boundary is a staircase: the min-norm minimizer suppresses v_1 (||W v_1|| = 0) iff
p <= #{entries of L above phi_1^2} (``theory.fs_dim_suppressed``), and learns it
(||W v_1|| = phi_1/(phi_1^2 + s) ~ 1/phi_1) otherwise. Colour: mean over seeds of
||W v_1|| phi_1 at the end of GD (1 = learnt, 0 = suppressed); red line: the predicted boundary.

Data: exactly balanced originals (n a multiple of 8 (K-2)), m = 2, sigma_xi = 1, good event,
sigma_0 = 0.001, eta = min(0.05, 0.1/a_max) (``_common.stable_lr``). All cells run in one
compiled program (``_common.gd_runs``: p varies through zero rows, which GD keeps at zero).
Run: ``python -m experiments.phase_fs_dim [--quick|--tiny] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import _common as common
from simdyn import Config, DataConfig, ModelConfig, TrainConfig, theory

NAME = "phase_fs_dim"
PHI_1, PHI_2 = 0.8, 1.0

# Per size: K, n, d, steps, number of x values, p values, seeds.
SIZES = {
    "tiny": (4, 16, 200, 800, 2, (2, 3, 4), 1),
    "quick": (8, 48, 1000, 2000, 6, tuple(range(1, 11)), 2),
    "full": (8, 96, 2000, 3000, 12, tuple(range(1, 11)), 4),
}


_suppressed = jax.jit(theory.fs_dim_suppressed, static_argnums=1)


def cell_config(K: int, n: int, d: int, steps: int, x: float, p: int) -> Config:
    """UCL config with phi_k^2/(K-2) = x (k-2)/(K-2) for the irrelevant features."""
    irr = tuple(float(np.sqrt(x * j)) for j in range(1, K - 1))  # as irrelevant_phi
    data = DataConfig(
        n=n,
        m=2,
        d=d,
        K=K,
        phi=(PHI_1, PHI_2) + irr,
        mu=0.0,
        sigma_xi=1.0,
        sampling="balanced",
        noise_placement="good_event",
    )
    s = data.sigma_xi**2 / data.num_points
    train = TrainConfig(
        loss="ucl",
        lr=common.stable_lr(max(1.0, x) + s),
        steps=steps,
        log_every=steps // 10,
        probe_every=-1,
    )
    return Config(data, ModelConfig(p=p, sigma_0=0.001), train)


def irrelevant_phi(K: int, x):
    """(phi_1, ..., phi_K) with phi_k^2/(K-2) = x (k-2)/(K-2), i.e. phi_k^2 = x (k-2)."""
    j = jnp.arange(1, K - 1, dtype=jnp.float64)
    return jnp.concatenate([jnp.asarray([PHI_1, PHI_2]), jnp.sqrt(x * j)])


def suppressed_up_to(K: int, xs: np.ndarray, p_max: int) -> np.ndarray:
    """Largest p with v_1 suppressed (``theory.fs_dim_suppressed``, monotone in p) at each x."""

    def at(x):
        phi = irrelevant_phi(K, x)
        return sum(theory.fs_dim_suppressed(phi, K, p).astype(jnp.int32) for p in range(1, p_max))

    return np.asarray(jax.jit(jax.vmap(at))(jnp.asarray(xs, jnp.float64)))


def main(argv: list[str] | None = None) -> dict:
    args, size, timer = common.start(__doc__, argv)
    K, n, d, steps, num_x, ps, default_seeds = SIZES[size]
    seeds = common.seed_count(args, default_seeds)
    xs = np.geomspace(1e-2, 1e1, num_x)
    configs = [cell_config(K, n, d, steps, float(x), p) for p in ps for x in xs]
    rec = np.asarray(configs[0].train.record_steps)
    runs = common.gd_runs(configs, seeds, args.key, rec, common.alignment_observer(K))
    v1 = runs.observed[:, :, :, 1]  # (C, S, R)
    bands = [common.seed_band(v1[c, :, -1], runs.diverged[c]) for c in range(len(configs))]
    shape = (len(ps), num_x)
    mean = np.array([b.mean for b in bands]).reshape(shape)
    change = np.array(
        [common.late_change(v1[c][~runs.diverged[c]]) for c in range(len(configs))]
    ).reshape(shape)
    suppressed = np.array([bool(_suppressed(c.data.phi, K, c.model.p)) for c in configs]).reshape(
        shape
    )
    fine = np.geomspace(1e-2, 1e1, 600)
    boundary = suppressed_up_to(K, fine, K + 3)
    n_div = int(runs.diverged.sum())

    fig, ax = plt.subplots(figsize=(7.5, 5))
    lx = np.log10(xs)
    step = lx[1] - lx[0] if len(lx) > 1 else 1.0
    xe = 10 ** np.concatenate([lx - step / 2, [lx[-1] + step / 2]])
    ye = np.concatenate([np.asarray(ps) - 0.5, [ps[-1] + 0.5]])
    im = ax.pcolormesh(xe, ye, mean * PHI_1, vmin=0, vmax=1.05, cmap="viridis")
    fig.colorbar(im, ax=ax, label="||W v_1|| phi_1 (mean over seeds)")
    for (ip, ix), v in np.ndenumerate(mean * PHI_1):
        mark = "x" if suppressed[ip, ix] else ""
        ax.text(
            xs[ix],
            ps[ip],
            f"{v:.2f}{mark}",
            ha="center",
            va="center",
            fontsize=6,
            color="k" if v > 0.6 else "w",
        )
    ax.step(fine, boundary + 0.5, where="post", color="red", lw=1.5, label="min-norm boundary")
    ax.set_xscale("log")
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel("phi_K^2 / (K - 2)   (phi_k^2/(K-2) = x (k-2)/(K-2))")
    ax.set_ylabel("embedding dimension p")
    div_txt = f", {n_div} diverged runs excl." if n_div else ""
    ax.set_title(
        f"FS-dim: UCL, K = {K}, phi_1 = {PHI_1}, n = {n}, d = {d}, {steps} steps, "
        f"{seeds} seeds{div_txt} ({size} run)\nbelow the red line the min-norm minimizer "
        "suppresses v_1 (cells marked x)",
        fontsize=8.5,
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    pred = np.where(suppressed, 0.0, 1.0)
    meta = {
        "size": size,
        "key": args.key,
        "seeds": seeds,
        "K": K,
        "n": n,
        "d": d,
        "steps": steps,
        "x": xs,
        "p": list(ps),
        "lr": [c.train.lr for c in configs[:num_x]],
        "diverged": n_div,
        "max_late_change": float(np.nanmax(change)),
        "cells_agreeing_with_prediction": int(
            np.sum(np.abs(mean * PHI_1 - pred * PHI_1**2 / (PHI_1**2 + 1 / (2 * n))) < 0.1)
        ),
        "cells": int(mean.size),
        "runtime_s": timer(),
    }
    arrays = {
        "x": xs,
        "p": np.asarray(ps),
        "mean_v1": mean,  # (P, X)
        "suppressed_pred": suppressed,
        "late_change": change,
        "boundary_x": fine,
        "boundary_p": boundary,
    }
    return common.finish(args.out, NAME, size, fig, arrays, meta)


if __name__ == "__main__":
    main()
