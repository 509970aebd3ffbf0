"""FS-aug (Thm 5.4): feature suppression by imperfect augmentation, ||W v_1|| against p, UCL.

Instance in the spirit of K = omega(n^2): n originals, K - 2 = 8 n^2 irrelevant features and
i.i.d. labels, so each original almost surely carries its own irrelevant feature (the JSON
counts the seeds where two originals share one: birthday probability ~ n^2/(2 (K-2)) ~ 6%).
phi_1 = 0.8, phi_2 = phi_k = 1, mu = 0, m = 2, sigma_xi = 1. Inside an instance each present
irrelevant feature has second moment phi_k^2/n, below phi_1^2, so with the standard augmentation
v_1 is among the top entries once p >= 3 (bias and v_2 come first); the instance's own
correlations (i.i.d. labels, n small) move its min-norm value away from 1/phi_1, which the exact
instance prediction below accounts for.

* standard augmentation A (fresh noise per augmentation, good event): with p >= rank M~ = n the
  min-norm minimizer is M^+ M~ M^+ and learns v_1 (``theory.fs_aug_prediction``, exact for the
  instance's feature second moment F^: e_1^T F^ (F^ + sI)^-2 F^ e_1, ~ 1/phi_1).
* imperfect augmentation A' (Def. 5.3; ``augmentation="imperfect"``: class and subclass
  coordinates jittered with std 0.3, the original noise xi kept, rank(Sigma_xi) = 0): the
  min-norm minimizer has ||W v_1|| = 0 however large p is.

Overlays: the theorem's prediction (standard: p >= n only; imperfect: 0) and, for every p, the
exact min-norm minimizer of the sampled instances (``theory.min_norm_minimizer`` on the dense
M~, M; median over the seeds evaluated). GD: all p of one augmentation run in one compiled
program (``_common.gd_runs``: p varies through zero rows; the imperfect case uses the dense
D x D moments, which is what makes it the expensive half).
Run: ``python -m experiments.fs_aug [--quick|--tiny] [--out DIR]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): find the package
    import _repo_root  # noqa: F401

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import _common as common
from simdyn import Config, DataConfig, ModelConfig, TrainConfig, seed_training_set, theory

NAME = "fs_aug"
PHI_1, PHI_2, PHI_K = 0.8, 1.0, 1.0
# A' jitter: larger than simdyn's default 0.1 because GD unlearns v_1 at a rate set by the jitter
# variance (the gap that makes v_1 lose against the instance directions), ~ 8 eta (1 - 1/m) s'^2
# per step: 0.1 would need ~10^4 steps, 0.3 a few hundred per e-fold.
JITTER = 0.3

# Per size: n, d, steps, p values, seeds, seeds for the exact instance predictions.
SIZES = {
    "tiny": (4, 200, 1000, (2, 5), 1, 1),
    "quick": (6, 600, 2500, (1, 2, 3, 6, 8), 2, 2),
    "full": (8, 1000, 4000, (1, 2, 3, 4, 6, 8, 10, 12), 3, 3),
}


def make_config(n: int, d: int, steps: int, p: int, augmentation: str) -> Config:
    K = 2 + 8 * n * n
    data = DataConfig(
        n=n,
        m=2,
        d=d,
        K=K,
        phi=(PHI_1, PHI_2) + (PHI_K,) * (K - 2),
        mu=0.0,
        sigma_xi=1.0,
        sampling="iid",
        noise_placement="good_event" if augmentation == "standard" else "iid",
        augmentation=augmentation,
        aug_sigma_class=JITTER,
        aug_sigma_sub=JITTER,
    )
    train = TrainConfig(loss="ucl", lr=0.05, steps=steps, log_every=steps // 10, probe_every=-1)
    return Config(data, ModelConfig(p=p, sigma_0=0.001), train)


def feature_moment(config: Config, key: int, seed: int) -> np.ndarray:
    """F^ = Phi^T Phi / N over the training points' feature blocks, (K+1, K+1)."""
    f = np.asarray(seed_training_set(config, seed, key).points.features, np.float64)
    flat = f.reshape(-1, f.shape[-1])
    return flat.T @ flat / flat.shape[0]


def shared_feature(config: Config, key: int, seed: int) -> bool:
    """Whether two originals of the seed share their irrelevant feature."""
    k = np.asarray(seed_training_set(config, seed, key).labels.k)
    return len(np.unique(k)) < len(k)


def run_aug(n, d, steps, ps, seeds, pred_seeds, augmentation, key) -> dict:
    configs = [make_config(n, d, steps, p, augmentation) for p in ps]
    base = configs[0]
    rec = np.asarray(base.train.record_steps)
    runs = common.gd_runs(configs, seeds, key, rec, common.alignment_observer(base.data.K))
    v1 = runs.observed[:, :, :, 1]  # (P, S, R)
    bands = [common.seed_band(v1[i, :, -1], runs.diverged[i]) for i in range(len(ps))]
    change = [common.late_change(v1[i][~runs.diverged[i]]) for i in range(len(ps))]
    dc = base.data
    theorem = np.array(
        [
            float(
                jax.jit(theory.fs_aug_prediction)(
                    feature_moment(base, key, 0),
                    dc.sigma_xi,
                    dc.m,
                    dc.n,
                    p,
                    imperfect=augmentation == "imperfect",
                )
            )
            for p in ps
        ]
    )
    instance = np.array(
        [
            [common.instance_min_norm_alignment(c, key, s, beta=0.0)[1] for s in range(pred_seeds)]
            for c in configs
        ]
    )  # (P, pred_seeds)
    return {
        "configs": configs,
        "final_v1": v1[:, :, -1],
        "bands": bands,
        "late_change": np.asarray(change),
        "diverged": runs.diverged,
        "theorem_seed0": theorem,
        "instance": instance,
        "shared": [shared_feature(base, key, s) for s in range(seeds)],
    }


def main(argv: list[str] | None = None) -> dict:
    args, size, timer = common.start(__doc__, argv)
    n, d, steps, ps, default_seeds, pred_seeds = SIZES[size]
    seeds = common.seed_count(args, default_seeds)
    pred_seeds = min(pred_seeds, seeds)
    res = {
        aug: run_aug(n, d, steps, ps, seeds, pred_seeds, aug, args.key)
        for aug in ("standard", "imperfect")
    }
    ps_a = np.asarray(ps)

    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    colors = {"standard": "tab:blue", "imperfect": "tab:red"}
    for aug, r in res.items():
        med = np.array([b.median for b in r["bands"]])
        lo = np.array([b.lo for b in r["bands"]])
        hi = np.array([b.hi for b in r["bands"]])
        n_div = int(r["diverged"].sum())
        label = f"GD, {aug} aug. (median, 5-95%, {seeds} seeds"
        label += f", {n_div} diverged excl.)" if n_div else ")"
        ax.fill_between(ps_a, lo, hi, color=colors[aug], alpha=0.2, lw=0)
        ax.plot(ps_a, med, "o-", color=colors[aug], label=label)
        ax.plot(
            ps_a,
            np.median(r["instance"], axis=1),
            "D",
            mfc="none",
            ms=9,
            color=colors[aug],
            label=f"exact instance min-norm, {aug} (median of {pred_seeds} seeds)",
        )
        ax.plot(ps_a, r["theorem_seed0"], "--", color=colors[aug], lw=1.2)
    ax.plot([], [], "--", color=common.C_THEORY, label="Thm 5.4 (standard: p >= n only)")
    ax.axvline(n, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("embedding dimension p  (dotted: p = n = rank M~)")
    ax.set_ylabel("||W v_1|| at the end of GD")
    shared = sum(res["standard"]["shared"])
    K = 2 + 8 * n * n
    ax.set_title(
        f"FS-aug: UCL, n = {n}, m = 2, K = {K}, d = {d}, phi_1 = {PHI_1}, phi_k = {PHI_K}, "
        f"{steps} steps ({size} run)\nseeds where two originals share a feature: "
        f"{shared}/{seeds}",
        fontsize=8.5,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    meta = {"size": size, "key": args.key, "seeds": seeds, "p": list(ps), "runtime_s": None}
    arrays = {"p": ps_a}
    for aug, r in res.items():
        meta[aug] = {
            "config_p1": r["configs"][0],
            "median_v1": [b.median for b in r["bands"]],
            "theorem_seed0": r["theorem_seed0"],
            "instance_min_norm": r["instance"],
            "late_change": r["late_change"],
            "diverged": int(r["diverged"].sum()),
            "seeds_with_shared_feature": int(sum(r["shared"])),
        }
        arrays[f"{aug}_final_v1"] = r["final_v1"]  # (P, S)
        arrays[f"{aug}_instance"] = r["instance"]  # (P, pred_seeds)
        arrays[f"{aug}_theorem"] = r["theorem_seed0"]  # (P,)
    meta["runtime_s"] = timer()
    return common.finish(args.out, NAME, size, fig, arrays, meta)


if __name__ == "__main__":
    main()
