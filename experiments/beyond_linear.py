"""Beyond the paper: do its predictions survive nonlinear encoders and InfoNCE / SupCon losses?

    python experiments/beyond_linear.py            # full: 16 seeds per run (~1 h on 2 CPU cores)
    python experiments/beyond_linear.py --quick    # smoke test: 3 seeds, shorter runs (minutes)

Reruns three of the paper's claims (THEORY.md section 6) with three encoders (the paper's linear
map, a two-layer ReLU MLP, a four-layer ReLU MLP) and two loss families (the paper's spectral
loss; InfoNCE / SupCon), every cell over many seeds, and decides each claim by an exact binomial
test of a per-seed criterion fixed below BEFORE the full run. Writes
``experiments/data/beyond_*`` (per-run trajectories as NetCDF, per-seed criteria as CSV, verdicts
as JSON), ``experiments/figures/beyond_*.png`` and ``docs/beyond_linear.md``.

PRE-REGISTERED DESIGN (fixed before the full run; a 3-4 seed pilot of the cells was seen while
choosing the instance sizes and the NCE variant, so the thresholds are not blind: every per-seed
value is saved and the report shows the verdicts for other thresholds too).

Alignment: a_j(t) = ||W_1,t v_j||, the norm of the FIRST layer's column j (j = 1..K features).
Scale-free share: rho_j(t) = a_j(t) / max_{k=1..K} a_k(t) (NCE losses do not fix the scale).

RHO_STAR = sqrt(1 - beta) phi_1 / (2 phi_2) = 0.177 with the JOINT instance's beta = 0.5,
phi_1 = 0.5, phi_2 = 1: half of the smallest feature share the theory predicts for a KEPT feature
in these instances (the min-norm joint solution has a_2 / a_1 = sqrt(1 - beta) phi_1 / phi_2 =
0.354); a suppressed / collapsed feature has share 0 in theory. A feature is "kept" iff
rho_j >= RHO_STAR, "suppressed" iff rho_j < RHO_STAR.

Per-seed criteria (T = last step):
* CC-unlearn (feature): rise and fall of v_2 under the supervised loss:
  exists t with a_2(t) >= RISE_FACTOR a_2(0) and rho_2(t) >= RHO_STAR (learnt: an order of
  magnitude above init, Thm 4.5's Omega(1)), and rho_2(T) < RHO_STAR (unlearnt at the end).
* CC-unlearn (probe): max_t subclass-probe accuracy >= PROBE_PEAK (learnt: Thm 4.3's 1 - o(1))
  and the final one <= PROBE_FINAL (lost at least half of its margin over chance 0.5).
* FS-dim: rho_1(T) < RHO_STAR under the unsupervised loss (v_1 suppressed).
* JOINT: rho_1(T) >= RHO_STAR and rho_2(T) >= RHO_STAR under the joint loss (both kept).

Verdict: k of n seeds (diverged seeds excluded from n and reported) meet the criterion; 95%
Clopper-Pearson interval [lo, hi] for P(criterion). The claim HOLDS if lo > 1/2 and its negative
control rejects the criterion (control's hi < 1/2); FAILS if hi < 1/2; otherwise INCONCLUSIVE
(also when the control does not reject: the criterion then does not discriminate).

Negative controls (same data and seeds, the setting where the theory predicts the opposite):
* CC-unlearn: the unsupervised loss (UCL / InfoNCE) on the same data: no class collapse.
* FS-dim: phi_3^2 = 0.3 < phi_1^2 (v_1 IS among the top p of L): v_1 learnt.
* JOINT: SCL / SupCon alone (collapses v_2) and UCL / InfoNCE alone (suppresses v_1).

Loss families: ``spectral`` = the paper's loss (beta = 1 SCL, 0 UCL, 0.5 joint); ``nce`` = SupCon
(Khosla et al. 2020, L_out) / InfoNCE with m = 2 views and their beta-mixture, temperature 0.5,
DOT-PRODUCT similarity. Why not cosine: with cosine similarity the loss is invariant to the scale
of W, so plain GD from the paper's small init (sigma_0 = 0.001) takes one huge first step (the
gradient scales like 1 / ||W||) and then freezes (the effective step scales like 1 / ||W||^2);
keeping GD, lr and init identical and changing only the loss isolates the loss's effect.
Encoders: first layer with the paper's init N(0, sigma_0^2 / d) (sigma_0 = 0.001), hidden width
64, He init for the other layers, no head, no output normalisation. lr 0.05 (the paper's) for the
linear map and the two-layer MLP; 0.01 for the four-layer MLP (at 0.05 its NCE runs diverged in
the pilot). Full-batch GD (the paper's "epoch") everywhere.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.stats import beta as beta_dist

from simdyn import Config, ContrastiveLoss, fig4_config, make_encoder, preset, simulate_generic

ROOT = Path(__file__).resolve().parent
# --- pre-registered constants (see the module docstring) ----------------------------------------
RHO_STAR = math.sqrt(1 - 0.5) * 0.5 / (2 * 1.0)  # 0.177
RISE_FACTOR = 10.0
PROBE_PEAK, PROBE_FINAL = 0.9, 0.75
CONFIDENCE = 0.95
SENSITIVITY_RHO = (0.1, 0.25)  # verdicts also reported at these thresholds (not used to decide)
TEMPERATURE = 0.5
ENCODERS = {"linear": (), "mlp2": (64,), "mlp4": (64, 64, 64)}
ENCODER_LR = {"linear": 0.05, "mlp2": 0.05, "mlp4": 0.01}
FAMILIES = ("spectral", "nce")


@dataclass(frozen=True)
class Run:
    claim: str
    role: str  # "claim" or "control:<name>"
    beta: float  # weight of the supervised term
    config: Config


def claim_runs(quick: bool) -> list[Run]:
    """The instances of the three claims and their negative controls."""
    cc_steps, long_steps = (300, 1000) if quick else (1000, 3000)
    # CC-unlearn: Fig. 1/2's data model (mu = 1, 1 + mu^2 > phi_1^2) at n = 200, m = 2, d = 300:
    # m n > d, so every test noise coordinate was seen in training and a collapsed subclass is
    # visible to the probe (with d >> m n tiny unseen-noise projections leave it separable).
    cc = preset("fig2a").replace(
        n=200, m=2, d=300, steps=cc_steps, log_every=5, probe_every=50, n_test=1000
    )
    fs = fig4_config(3, 96, 1.5).replace(steps=long_steps, log_every=10, probe_every=0)
    fs_control = fig4_config(3, 96, 0.3).replace(steps=long_steps, log_every=10, probe_every=0)
    joint = preset("joint").replace(steps=long_steps, log_every=10, probe_every=0)
    return [
        Run("CC-unlearn", "claim", 1.0, cc),
        Run("CC-unlearn", "control:unsupervised", 0.0, cc),
        Run("FS-dim", "claim", 0.0, fs),
        Run("FS-dim", "control:phi3^2=0.3", 0.0, fs_control),
        Run("JOINT", "claim", 0.5, joint),
        Run("JOINT", "control:supervised", 1.0, joint),
        Run("JOINT", "control:unsupervised", 0.0, joint),
    ]


# --- per-seed criteria --------------------------------------------------------------------------
def shares(alignment: np.ndarray) -> np.ndarray:
    """rho_j(t) = a_j / max_k a_k over features 1..K. alignment (..., K + 1) -> (..., K)."""
    a = alignment[..., 1:]
    return a / np.maximum(a.max(axis=-1, keepdims=True), np.finfo(a.dtype).tiny)


def criterion(claim: str, ds: xr.Dataset, rho_star: float) -> dict[str, np.ndarray]:
    """Per-seed booleans (and the values behind them) for one run's dataset."""
    align = ds.alignment.values  # (seed, step, K + 1)
    rho = shares(align)
    if claim == "CC-unlearn":
        a2 = align[:, :, 2]
        learnt = (a2 >= RISE_FACTOR * a2[:, :1]) & (rho[:, :, 1] >= rho_star)
        feature = learnt.any(axis=1) & (rho[:, -1, 1] < rho_star)
        probe = ds.probe_subclass.values
        probe_ok = (probe.max(axis=1) >= PROBE_PEAK) & (probe[:, -1] <= PROBE_FINAL)
        return {
            "feature": feature,
            "probe": probe_ok,
            "rho2_peak": np.where(learnt, rho[:, :, 1], 0.0).max(axis=1),
            "rho2_final": rho[:, -1, 1],
            "probe_peak": probe.max(axis=1),
            "probe_final": probe[:, -1],
        }
    if claim == "FS-dim":
        return {"feature": rho[:, -1, 0] < rho_star, "rho1_final": rho[:, -1, 0]}
    if claim == "JOINT":
        both = (rho[:, -1, 0] >= rho_star) & (rho[:, -1, 1] >= rho_star)
        return {"feature": both, "rho1_final": rho[:, -1, 0], "rho2_final": rho[:, -1, 1]}
    raise ValueError(claim)


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided binomial interval for k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    a = (1 - confidence) / 2
    lo = 0.0 if k == 0 else float(beta_dist.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta_dist.ppf(1 - a, k + 1, n - k))
    return lo, hi


def verdict(claim_k: int, claim_n: int, controls: list[tuple[int, int]]) -> str:
    lo, hi = clopper_pearson(claim_k, claim_n)
    controls_reject = all(clopper_pearson(k, n)[1] < 0.5 for k, n in controls)
    if claim_n == 0:
        return "inconclusive (all diverged)"
    if hi < 0.5:
        return "fails"
    if lo > 0.5:
        return "holds" if controls_reject else "inconclusive (control not rejected)"
    return "inconclusive"


# --- running ------------------------------------------------------------------------------------
def run_cell(run: Run, encoder: str, family: str, seeds: int, key: int) -> xr.Dataset:
    cfg = run.config.replace(lr=ENCODER_LR[encoder])
    enc = make_encoder(cfg, ENCODERS[encoder])
    loss = ContrastiveLoss(family, run.beta, TEMPERATURE, cosine=False)
    return simulate_generic(cfg, enc, loss, seeds, key=key)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, shorter runs (smoke test)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per run (default 16; quick 3)")
    ap.add_argument("--key", type=int, default=2023, help="base PRNG key")
    ap.add_argument(
        "--out",
        type=Path,
        default=ROOT.parent / "runs" / "beyond_linear",
        help="folder holding data/ and figures/ (default: runs/beyond_linear, git-ignored; "
        "--out experiments rewrites the committed ones)",
    )
    ap.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="markdown report (default: docs/beyond_linear.md with --out experiments, "
        "else OUT/beyond_linear.md)",
    )
    ap.add_argument(
        "--exploratory-p2",
        action="store_true",
        help="only the exploratory (not pre-registered) FS-dim check at p = 2",
    )
    ap.add_argument(
        "--from-data",
        action="store_true",
        help="no training: rebuild verdicts, report and figures from the saved data/beyond_*.nc",
    )
    args = ap.parse_args(argv)
    if args.docs is None:
        committed = args.out.resolve() == ROOT.resolve()
        args.docs = (
            ROOT.parent / "docs" / "beyond_linear.md"
            if committed
            else args.out / "beyond_linear.md"
        )
    seeds = args.seeds or (3 if args.quick else 16)
    data_dir, fig_dir = args.out / "data", args.out / "figures"
    data_dir.mkdir(parents=True, exist_ok=True)
    fig_dir.mkdir(parents=True, exist_ok=True)

    start = time.time()
    runs = claim_runs(args.quick)
    if args.exploratory_p2:
        text = exploratory_p2(seeds, args.key, args.quick)
        (data_dir / "beyond_exploratory_p2.md").write_text(text)
        print(text)
        return 0
    if args.from_data:
        results = load_data(data_dir)
        old = json.loads((data_dir / "beyond_verdicts.json").read_text())["meta"]
        seeds = int(next(iter(results.values())).sizes["seed"])
        return report(results, runs, old["command"], seeds, old["key"], old["wall_s"], args)
    results: dict[tuple[str, str, str, str], xr.Dataset] = {}
    for run in runs:
        for family in FAMILIES:
            for encoder in ENCODERS:
                t0 = time.time()
                ds = run_cell(run, encoder, family, seeds, args.key)
                results[(run.claim, run.role, encoder, family)] = ds
                print(
                    f"[beyond] {run.claim:10s} {run.role:22s} {encoder:6s} {family:8s} "
                    f"{time.time() - t0:6.1f}s diverged={int(ds.diverged.sum())}",
                    file=sys.stderr,
                    flush=True,
                )
    wall = time.time() - start
    save_data(results, data_dir)
    command = "python experiments/beyond_linear.py" + (" --quick" if args.quick else "")
    if args.out.resolve() == ROOT.resolve():
        command += " --out experiments"  # the committed outputs are rewritten only when named
    if args.seeds is not None:
        command += f" --seeds {args.seeds}"
    return report(results, runs, command, seeds, args.key, wall, args)


def report(results, runs, command: str, seeds: int, key: int, wall: float, args) -> int:
    """Verdicts (JSON, CSV), the markdown report and the figures from the runs' datasets."""
    data_dir, fig_dir = args.out / "data", args.out / "figures"
    table, per_seed = evaluate(results, runs)
    write_per_seed(per_seed, data_dir / "beyond_per_seed.csv")
    meta = {
        "command": command,
        "seeds": seeds,
        "key": key,
        "wall_s": round(wall, 1),
        "rho_star": RHO_STAR,
    }
    (data_dir / "beyond_verdicts.json").write_text(
        json.dumps({"meta": meta, "table": table}, indent=1)
    )
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    previous = args.docs.read_text() if args.docs.exists() else ""
    args.docs.write_text(render_markdown(table, meta, previous))
    plot_all(results, runs, fig_dir)
    print(f"[beyond] done in {wall:.0f}s; wrote {args.docs}", file=sys.stderr)
    return 0


def exploratory_p2(seeds: int, key: int, quick: bool) -> str:
    """EXPLORATORY, not pre-registered: the FS-dim instances with p = 2 < number of features.

    InfoNCE keeps v_1 at p = K = 3; is that because it has room for every feature (it needs no
    output dimension for the constant direction, the spectral loss does)? At p = 2 it must
    squeeze three features into two dimensions. Markdown table of the share of v_1 at the end.
    """
    lines = [
        "Exploratory (not pre-registered): FS-dim instances with p = 2, unsupervised losses, "
        f"{seeds} seeds, key {key}. Command: `python experiments/beyond_linear.py "
        f"--exploratory-p2{' --quick' if quick else ''}`.",
        "",
        "| phi_3^2 | loss | encoder | seeds with rho_1 < rho* | median (rho_1, rho_2, rho_3) |",
        "|---|---|---|---|---|",
    ]
    steps = 1000 if quick else 3000
    for phi3_sq in (1.5, 0.3):
        base = fig4_config(3, 96, phi3_sq).replace(p=2, steps=steps, log_every=10, probe_every=-1)
        for family in FAMILIES:
            for encoder, hidden in ENCODERS.items():
                cfg = base.replace(lr=ENCODER_LR[encoder])
                loss = ContrastiveLoss(family, 0.0, TEMPERATURE, cosine=False)
                ds = simulate_generic(cfg, make_encoder(cfg, hidden), loss, seeds, key=key)
                rho = shares(ds.alignment.values[:, -1])[_alive(ds)]
                med = ", ".join(f"{v:.3f}" for v in np.median(rho, axis=0))
                div = f" ({int(ds.diverged.sum())} diverged)" if ds.diverged.any() else ""
                lines.append(
                    f"| {phi3_sq} | {LOSS_NAMES[(family, 0.0)]} | {encoder} | "
                    f"{int(np.sum(rho[:, 0] < RHO_STAR))}/{len(rho)}{div} | ({med}) |"
                )
    return "\n".join(lines) + "\n"


# --- evaluation ---------------------------------------------------------------------------------
LOSS_NAMES = {
    ("spectral", 1.0): "SCL",
    ("spectral", 0.0): "UCL",
    ("spectral", 0.5): "joint spectral",
    ("nce", 1.0): "SupCon",
    ("nce", 0.0): "InfoNCE",
    ("nce", 0.5): "joint SupCon+InfoNCE",
}
CRITERIA = {"CC-unlearn": ("feature", "probe"), "FS-dim": ("feature",), "JOINT": ("feature",)}


def _count(ds: xr.Dataset, ok: np.ndarray) -> tuple[int, int]:
    alive = ~ds.diverged.values.astype(bool)
    return int(np.sum(ok & alive)), int(np.sum(alive))


def _median(values: np.ndarray, ds: xr.Dataset) -> float:
    alive = ~ds.diverged.values.astype(bool)
    return float(np.median(values[alive])) if alive.any() else float("nan")


def evaluate(results, runs: list[Run]) -> tuple[list[dict], list[dict]]:
    """The verdict table (one row per claim x criterion x encoder x family) and per-seed rows."""
    table, per_seed = [], []
    claims = dict.fromkeys(r.claim for r in runs)
    for claim in claims:
        claim_run = next(r for r in runs if r.claim == claim and r.role == "claim")
        control_runs = [r for r in runs if r.claim == claim and r.role != "claim"]
        for crit in CRITERIA[claim]:
            for family in FAMILIES:
                for encoder in ENCODERS:
                    ds = results[(claim, "claim", encoder, family)]
                    vals = criterion(claim, ds, RHO_STAR)
                    k, n = _count(ds, vals[crit])
                    lo, hi = clopper_pearson(k, n)
                    controls, control_text = [], []
                    for cr in control_runs:
                        cds = results[(claim, cr.role, encoder, family)]
                        ck, cn = _count(cds, criterion(claim, cds, RHO_STAR)[crit])
                        controls.append((ck, cn))
                        control_text.append(
                            f"{LOSS_NAMES[(family, cr.beta)]}"
                            f"{'' if 'phi3' not in cr.role else ' phi3^2=0.3'}: {ck}/{cn}"
                        )
                    sensitivity = {}
                    if crit == "feature":
                        for rs in SENSITIVITY_RHO:
                            kk, nn = _count(ds, criterion(claim, ds, rs)[crit])
                            cc = [
                                _count(
                                    results[(claim, cr.role, encoder, family)],
                                    criterion(
                                        claim, results[(claim, cr.role, encoder, family)], rs
                                    )[crit],
                                )
                                for cr in control_runs
                            ]
                            sensitivity[f"{rs:g}"] = verdict(kk, nn, cc)
                    medians = {
                        name: _median(v, ds)
                        for name, v in vals.items()
                        if v.dtype != bool and (crit == "feature") != name.startswith("probe")
                    }
                    table.append(
                        {
                            "claim": claim,
                            "criterion": crit,
                            "encoder": encoder,
                            "family": family,
                            "loss": LOSS_NAMES[(family, claim_run.beta)],
                            "k": k,
                            "n": n,
                            "ci_lo": lo,
                            "ci_hi": hi,
                            "diverged": int(ds.diverged.sum()),
                            "controls": "; ".join(control_text),
                            "medians": medians,
                            "verdict": verdict(k, n, controls),
                            "sensitivity": sensitivity,
                        }
                    )
        for run in [claim_run] + control_runs:
            for family in FAMILIES:
                for encoder in ENCODERS:
                    ds = results[(claim, run.role, encoder, family)]
                    vals = criterion(claim, ds, RHO_STAR)
                    for i, seed in enumerate(ds.seed.values):
                        row = {
                            "claim": claim,
                            "role": run.role,
                            "encoder": encoder,
                            "family": family,
                            "loss": LOSS_NAMES[(family, run.beta)],
                            "seed": int(seed),
                            "diverged": bool(ds.diverged.values[i]),
                        }
                        row.update({name: _scalar(v[i]) for name, v in vals.items()})
                        per_seed.append(row)
    return table, per_seed


def _scalar(x) -> float | bool:
    return bool(x) if isinstance(x, np.bool_ | bool) else float(x)


def write_per_seed(rows: list[dict], path: Path) -> None:
    names = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        w.writerows(rows)


def save_data(results, data_dir: Path) -> None:
    """One NetCDF per claim: the runs stacked along ``run`` (coords role, encoder, family)."""
    by_claim: dict[str, list] = {}
    for (claim, role, encoder, family), ds in results.items():
        by_claim.setdefault(claim, []).append((role, encoder, family, ds))
    for claim, items in by_claim.items():
        parts, attrs = [], []
        for *_, ds in items:
            attrs.append({k: ds.attrs[k] for k in ("config", "encoder", "loss")})
            bare = ds.copy()
            bare.attrs = {}
            parts.append(bare)
        stacked = xr.concat(parts, dim="run")
        stacked = stacked.assign_coords(
            role=("run", [i[0] for i in items]),
            encoder=("run", [i[1] for i in items]),
            family=("run", [i[2] for i in items]),
        )
        stacked.attrs = {"runs": json.dumps(attrs)}
        name = claim.lower().replace("-", "_")
        stacked.to_netcdf(data_dir / f"beyond_{name}.nc", engine="h5netcdf")


def load_data(data_dir: Path) -> dict:
    """Inverse of :func:`save_data`: {(claim, role, encoder, family): Dataset}."""
    results = {}
    for claim in CRITERIA:
        name = claim.lower().replace("-", "_")
        stacked = xr.load_dataset(data_dir / f"beyond_{name}.nc", engine="h5netcdf")
        for i in range(stacked.sizes["run"]):
            ds = stacked.isel(run=i)
            key = (claim, str(ds.role.values), str(ds.encoder.values), str(ds.family.values))
            results[key] = ds.drop_vars(["role", "encoder", "family"])
    return results


# --- figures ------------------------------------------------------------------------------------
def _band(ax, x, y, label, color):
    med = np.nanmedian(y, axis=0)
    lo, hi = np.nanpercentile(y, [25, 75], axis=0)
    ax.plot(x, med, color=color, label=label)
    ax.fill_between(x, lo, hi, color=color, alpha=0.25, linewidth=0)


def _grid(title: str, sharex: bool = True):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(FAMILIES), len(ENCODERS), figsize=(12, 6.5), sharex=sharex, squeeze=False
    )
    fig.suptitle(title)
    for i, family in enumerate(FAMILIES):
        for j, encoder in enumerate(ENCODERS):
            axes[i, j].set_title(f"{encoder}, {family}", fontsize=10)
    return fig, axes, plt


def _finish(fig, plt, path: Path, step_axes=()) -> None:
    """Label ``step_axes`` (a time plot's bottom row) with the step, lay out, write the PNG
    (dpi 110) and close the figure."""
    for ax in step_axes:
        ax.set_xlabel("GD step + 1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _alive(ds: xr.Dataset) -> np.ndarray:
    return ~ds.diverged.values.astype(bool)


def plot_all(results, runs: list[Run], fig_dir: Path) -> None:
    colors = {"claim": "C3", "control": "C0", "control2": "C2"}

    # CC-unlearn: rho_2(t) and the subclass probe.
    for what, fname in (("rho2", "beyond_cc_unlearn.png"), ("probe", "beyond_cc_probe.png")):
        title = (
            "CC-unlearn: share of v_2 in the first layer, rho_2 = a_2 / max_k a_k"
            if what == "rho2"
            else "CC-unlearn: subclass linear-probe accuracy (within class)"
        )
        fig, axes, plt = _grid(title + " (median, IQR)")
        for i, family in enumerate(FAMILIES):
            for j, encoder in enumerate(ENCODERS):
                ax = axes[i, j]
                for role, color in (("claim", colors["claim"]), ("control:unsupervised", "C0")):
                    ds = results[("CC-unlearn", role, encoder, family)]
                    beta = 1.0 if role == "claim" else 0.0
                    label = LOSS_NAMES[(family, beta)]
                    if what == "rho2":
                        y = shares(ds.alignment.values)[:, :, 1][_alive(ds)]
                        _band(ax, ds.step.values + 1, y, label, color)
                        ax.axhline(RHO_STAR, color="k", lw=0.7, ls="--")
                    else:
                        y = ds.probe_subclass.values[_alive(ds)]
                        _band(ax, ds.probe_step.values + 1, y, label, color)
                        ax.axhline(PROBE_PEAK, color="k", lw=0.7, ls="--")
                        ax.axhline(PROBE_FINAL, color="k", lw=0.7, ls=":")
                ax.set_xscale("log")
                ax.legend(fontsize=8)
        _finish(fig, plt, fig_dir / fname, step_axes=axes[-1])

    # FS-dim: rho_1(t), suppressed instance vs control.
    fig, axes, plt = _grid("FS-dim: share of v_1 under UCL / InfoNCE, rho_1 (median, IQR)")
    for i, family in enumerate(FAMILIES):
        for j, encoder in enumerate(ENCODERS):
            ax = axes[i, j]
            for role, color, label in (
                ("claim", colors["claim"], "phi_3^2 = 1.5 (theory: suppressed)"),
                ("control:phi3^2=0.3", "C0", "phi_3^2 = 0.3 (theory: learnt)"),
            ):
                ds = results[("FS-dim", role, encoder, family)]
                y = shares(ds.alignment.values)[:, :, 0][_alive(ds)]
                _band(ax, ds.step.values + 1, y, label, color)
            ax.axhline(RHO_STAR, color="k", lw=0.7, ls="--")
            ax.set_xscale("log")
            ax.legend(fontsize=8)
    _finish(fig, plt, fig_dir / "beyond_fs_dim.png", step_axes=axes[-1])

    # JOINT: final shares of v_1 and v_2 per seed, for joint / supervised / unsupervised.
    fig, axes, plt = _grid("JOINT: final shares rho_1 (o) and rho_2 (x) per seed", sharex=False)
    roles = (("claim", 0.5), ("control:supervised", 1.0), ("control:unsupervised", 0.0))
    for i, family in enumerate(FAMILIES):
        for j, encoder in enumerate(ENCODERS):
            ax = axes[i, j]
            for r, (role, _) in enumerate(roles):
                ds = results[("JOINT", role, encoder, family)]
                rho = shares(ds.alignment.values)[:, -1][_alive(ds)]
                jitter = np.linspace(-0.12, 0.12, len(rho))
                ax.plot(r - 0.15 + jitter, rho[:, 0], "o", ms=4, color="C1", alpha=0.7)
                ax.plot(r + 0.15 + jitter, rho[:, 1], "x", ms=4, color="C4", alpha=0.7)
            ax.axhline(RHO_STAR, color="k", lw=0.7, ls="--")
            ax.set_xticks(range(3), [LOSS_NAMES[(family, b)] for _, b in roles], fontsize=7)
            ax.set_ylim(-0.05, 1.05)
    _finish(fig, plt, fig_dir / "beyond_joint.png")


# --- report -------------------------------------------------------------------------------------
NOTES_MARKER = "<!-- notes: everything below this line is kept when the script reruns -->"

DESIGN_TEXT = f"""## Design (pre-registered; details in the script's docstring)

* Encoders (flax.linen, `simdyn.encoders`): `linear` = the paper's map Theta x~ (bias folded in);
  `mlp2` = ReLU MLP with one hidden layer of 64; `mlp4` = three hidden layers of 64. The first
  layer always has the paper's init N(0, sigma_0^2/d), sigma_0 = 0.001; the other layers He init.
  Full-batch GD, lr {ENCODER_LR["linear"]} (linear, mlp2) and {ENCODER_LR["mlp4"]} (mlp4).
* Losses: `spectral` = the paper's (SCL beta = 1, UCL beta = 0, joint beta = 0.5); `nce` = SupCon
  (Khosla et al. 2020, L_out) / InfoNCE (SimCLR NT-Xent with m = 2 views) / 0.5 SupCon + 0.5
  InfoNCE, temperature {TEMPERATURE}, dot-product similarity (cosine similarity makes the loss
  scale-invariant, and plain GD from the paper's small init then degenerates: one huge step,
  then a vanishing effective step size).
* Measured: a_j = norm of the FIRST layer's column j; share rho_j = a_j / max_k a_k
  (scale-free). Kept iff rho_j >= rho* = sqrt(1 - beta) phi_1 / (2 phi_2) = {RHO_STAR:.3f}, half
  the smallest kept share the theory predicts here (JOINT: a_2/a_1 = 0.354).
* CC-unlearn: Fig. 1 data (phi = 1, mu = 1, sigma_xi = 2, p = 3) at n = 200, m = 2, d = 300
  (m n > d: every test noise coordinate is trained, so the probe can see a collapse). Feature
  criterion: a_2 rises to >= {RISE_FACTOR:g} x its init with share >= rho*, and ends with
  share < rho*.
  Probe criterion: subclass probe peaks >= {PROBE_PEAK} and ends <= {PROBE_FINAL}. Control: the
  unsupervised loss on the same data.
* FS-dim: the fig4a preset (K = p = 3, phi_1 = 0.8, phi_2 = 1, balanced, good event), phi_3^2 =
  1.5 (v_1 not among the top p of L: suppressed in theory); criterion rho_1 < rho* at the end
  under UCL / InfoNCE. Control: phi_3^2 = 0.3 (v_1 among the top p: learnt).
* JOINT: the `joint` preset (K = p = 4, phi_1 = 0.5, beta = 0.5); criterion rho_1 >= rho* and
  rho_2 >= rho* at the end. Controls: the supervised and the unsupervised loss alone.
* Verdict per cell: 95% Clopper-Pearson interval of P(criterion) over seeds (diverged seeds
  excluded and counted); holds if lo > 1/2 and every control's hi < 1/2; fails if hi < 1/2;
  otherwise inconclusive (including "control not rejected": the criterion does not
  discriminate there).
"""


def render_markdown(table: list[dict], meta: dict, previous: str = "") -> str:
    """The report; hand-written notes after NOTES_MARKER in ``previous`` are kept."""
    lines = [
        "# Beyond the paper: nonlinear encoders and InfoNCE / SupCon",
        "",
        "Regenerate (this file above the notes marker, the figures and the data) with:",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"Last run: {meta['seeds']} seeds per run, base key {meta['key']}, wall time "
        f"{meta['wall_s']:.0f} s (2 shared CPU cores). Per-seed values: "
        "`experiments/data/beyond_per_seed.csv`; verdicts: "
        "`experiments/data/beyond_verdicts.json`; trajectories: `experiments/data/beyond_*.nc`; "
        "figures: `experiments/figures/beyond_*.png`.",
        "",
        DESIGN_TEXT,
        "## Results",
        "",
        "| claim | criterion | encoder | loss | seeds meeting it | 95% CI | negative controls "
        "(seeds meeting it) | medians | verdict | at rho* = 0.1 / 0.25 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        med = ", ".join(f"{k} {v:.3g}" for k, v in row["medians"].items())
        sens = " / ".join(row["sensitivity"].values()) if row["sensitivity"] else "-"
        div = f" ({row['diverged']} diverged)" if row["diverged"] else ""
        lines.append(
            f"| {row['claim']} | {row['criterion']} | {row['encoder']} | {row['loss']} | "
            f"{row['k']}/{row['n']}{div} | [{row['ci_lo']:.2f}, {row['ci_hi']:.2f}] | "
            f"{row['controls']} | {med} | **{row['verdict']}** | {sens} |"
        )
    notes = previous.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in previous else "\n"
    lines += ["", NOTES_MARKER]
    return "\n".join(lines) + notes


if __name__ == "__main__":
    sys.exit(main())
