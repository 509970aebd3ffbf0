"""The experiment scripts: each runs end to end at its --tiny size and writes a PNG and data.

Every script's ``main(["--tiny", "--out", tmp])`` runs once per session (module fixture); the
tests check the files, the data shapes and finiteness, and a few statements whose maths is
reliable at the tiny sizes (each states where its threshold comes from). The shared GD engine
``experiments._common.gd_runs`` is tied to ``simdyn.simulate`` (its reference) exactly.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import jax
import jaxlib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # plain `pytest` puts tests/ first, not the repository root
    sys.path.insert(0, str(ROOT))

import simdyn  # noqa: E402
from experiments import (  # noqa: E402
    fig1_embeddings,
    fig2_alignment,
    fig4_phase,
    fig6_term_ratio,
    fs_aug,
    joint_beta_sweep,
    phase_cc_early,
    phase_fs_dim,
    phase_joint,
)
from experiments._common import alignment_observer, gd_runs, seed_band  # noqa: E402
from experiments.fig6_term_ratio import term_ratio_observer  # noqa: E402
from simdyn import ConfigError, preset, simulate, theory  # noqa: E402

SCRIPTS = {
    "fig1_embeddings": fig1_embeddings,
    "fig2_alignment": fig2_alignment,
    "fig4_phase": fig4_phase,
    "fig6_term_ratio": fig6_term_ratio,
    "fs_aug": fs_aug,
    "joint_beta_sweep": joint_beta_sweep,
    "phase_cc_early": phase_cc_early,
    "phase_fs_dim": phase_fs_dim,
    "phase_joint": phase_joint,
}


# Studies beyond the paper's figures: their tiny runs are in the slow tier (test-time budget of
# the default suite); `.ci/run` runs them explicitly, so CI runs every script's tiny size.
SLOW_SCRIPTS = {"fs_aug", "phase_cc_early", "phase_fs_dim", "phase_joint"}


class _TinyRuns(dict):
    """name -> (main's return, npz arrays, json meta), each script run once, on first use."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out

    def __missing__(self, name: str) -> tuple[dict, dict[str, np.ndarray], dict]:
        ret = SCRIPTS[name].main(["--tiny", "--out", str(self.out)])
        with np.load(self.out / "data" / f"{name}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads((self.out / "data" / f"{name}.json").read_text())
        self[name] = (ret, arrays, meta)
        return self[name]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> _TinyRuns:
    return _TinyRuns(tmp_path_factory.mktemp("experiments"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SCRIPTS else n for n in sorted(SCRIPTS)],
)
def test_script_writes_png_and_finite_data(outputs, name):
    ret, arrays, meta = outputs[name]
    png = ret["paths"].png
    assert png.name == f"{name}.png" and png.parent.name == "figures"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 5_000 < png.stat().st_size < 300_000
    assert meta["size"] == "tiny" and meta["runtime_s"] > 0
    assert arrays, "no data arrays written"
    for key, a in arrays.items():
        if a.dtype.kind == "f" and not key.endswith(("theorem", "_pred_nan")):
            assert np.all(np.isfinite(a)), f"{name}: {key} has non-finite values"


@pytest.mark.slow
def test_fig2_shapes_and_subclass_rises_then_falls(outputs):
    _, arrays, meta = outputs["fig2_alignment"]
    for tag, p in (("a", 3), ("b", 80)):  # panel b keeps p >= 70 (the issue-29 deadlock size)
        steps = arrays[f"{tag}_steps"]
        assert steps[0] == 0 and steps[-1] == 150
        assert arrays[f"{tag}_v2_band"].shape == (3, len(steps))
        assert arrays[f"{tag}_per_seed"].shape == (2, len(steps), 2)
        med = arrays[f"{tag}_v2_band"][1]
        peak = int(np.argmax(med))
        # CC-early (Thm 4.5, 1 + mu^2 = 2 > phi_1^2 = 1): v_2 rides on the fastest mode and grows
        # by orders of magnitude from its init scale sigma_0 sqrt(p/d) ~ 1e-4; the min-norm value
        # it converges to (Thm 4.7) is O(sigma_xi^2/(mn)) = 0.004. 10x and 1/2 are loose bounds.
        assert 0 < peak < len(med) - 1
        assert med[peak] > 10 * med[0]
        assert med[-1] < 0.5 * med[peak]
        assert meta["panels"]["ab".index(tag)]["config"]["model"]["p"] == p
        # probes on (steps 0, 50, 100, 150), accuracies in [0, 1]
        assert arrays[f"{tag}_probe_steps"].tolist() == [0, 50, 100, 150]
        for kind in ("class", "subclass"):
            band = arrays[f"{tag}_probe_{kind}_band"]
            assert band.shape == (3, 4) and np.all((band >= 0) & (band <= 1))
    crossing = meta["v2_crossing"]
    assert np.isfinite(crossing["measured_shift"]) and crossing["predicted_shift"] > 0


@pytest.mark.slow
def test_fig6_ratio_starts_huge_and_ends_at_stationarity(outputs):
    _, arrays, meta = outputs["fig6_term_ratio"]
    ratio = arrays["ratio_band"][1]
    # term2 is cubic in Theta ~ 1e-4 at init, so the ratio starts ~ 1/||Theta||^2 >> 100; at a
    # stationary point term1 + term2 = 0 (ratio 1), and late_change-level convergence (the v_2
    # band is flat at its min-norm value) leaves ||grad|| << ||term1||.
    assert ratio[0] > 100
    assert abs(ratio[-1] - 1.0) < 0.01
    assert arrays["v2_band"].shape == (3, 151)


@pytest.mark.slow
def test_fig1_embeddings_shapes_and_growth(outputs):
    _, arrays, _ = outputs["fig1_embeddings"]
    emb, align = arrays["embeddings"], arrays["alignment"]
    assert emb.shape == (4, 200, 3) and align.shape == (4, 5)
    assert list(arrays["epochs"]) == [0, 45, 60, 100]
    # Init entries ~ N(0, sigma_0^2/d): ||Theta_0 v_j|| ~ sigma_0 sqrt(p/d) ~ 1e-4 << 1e-3; by
    # epoch 100 the class feature is learnt (min-norm ||W v_1|| ~ 1/phi_1 = 1).
    assert np.all(align[0] < 1e-3)
    assert align[-1, 1] > 0.5


@pytest.mark.slow
def test_joint_matches_min_norm_prediction(outputs):
    _, arrays, meta = outputs["joint_beta_sweep"]
    final = arrays["final_v1_v2"]  # (B, S, 2)
    pred = arrays["pred"][:, 1:3]
    assert final.shape == (3, 2, 2) and list(arrays["betas"]) == [0.0, 0.5, 1.0]
    # beta = 0.5 (interior): balanced good-event instance, so the closed form is the instance's
    # exact min-norm value; GD from sigma_0 = 1e-3 ends within O(sigma_0 sqrt(p/d)) ~ 1e-4 of it
    # (kernel part frozen at init) once converged (late change ~1e-7 here): 2% is loose.
    np.testing.assert_allclose(final[1], np.broadcast_to(pred[1], final[1].shape), rtol=0.02)


@pytest.mark.slow
def test_fig4_suppression_step(outputs):
    _, arrays, meta = outputs["fig4_phase"]
    x, mean, pred = arrays["x"], arrays["a_band"][3], arrays["a_pred"]
    below = x < 0.64  # FS-dim threshold phi_1^2 for K = p = 3
    assert below.any() and (~below).any()
    np.testing.assert_allclose(mean[below], pred[below], rtol=0.02)
    # Above the threshold the min-norm value is 0 and GD keeps only the v_1 component that had
    # not grown when the p slots filled: relative size ~ (sigma_0 sqrt(p/d))^(1 - 0.64/x), at
    # most ~0.05 of 1/phi_1 on this grid; 0.1 / phi_1 bounds it.
    assert np.all(mean[~below] < 0.1 / 0.8)


@pytest.mark.slow
def test_phase_fs_dim_matches_boundary(outputs):
    _, arrays, meta = outputs["phase_fs_dim"]
    mean_scaled = arrays["mean_v1"] * 0.8  # ||W v_1|| phi_1
    sup = arrays["suppressed_pred"]
    assert mean_scaled.shape == sup.shape == (3, 2)
    assert sup.any() and (~sup).any()
    # Learnt: phi_1^2/(phi_1^2 + s) = 0.99; suppressed: residual below 0.1 (see test_fig4).
    assert np.all(mean_scaled[~sup] > 0.9)
    assert np.all(mean_scaled[sup] < 0.1)


@pytest.mark.slow
def test_phase_cc_early_condition_side(outputs):
    _, arrays, _ = outputs["phase_cc_early"]
    peak, cond, mu = arrays["peak_v2"], arrays["condition"], arrays["mu"]
    assert peak.shape == cond.shape == (2, 2)
    # Thm 4.5: where 1 + mu^2 > phi_1^2 (and sigma_0 sqrt(p/d) ~ 1e-4 is small) v_2 reaches
    # Omega(1); 0.1 is far above its init scale. mu = 0: v_2 is outside colsp(M+) except for
    # finite-sample label imbalance (class means carry ~1/sqrt(n) of y_sub), so it stays small.
    assert np.all(peak[cond & (mu[None, :] > 0)] > 0.1)
    assert np.all(peak[:, mu == 0] < 0.1)


@pytest.mark.slow
def test_phase_joint_close_to_prediction(outputs):
    _, arrays, meta = outputs["phase_joint"]
    assert arrays["median_v1_v2"].shape == arrays["pred_v1_v2"].shape == (2, 2, 2)
    # Normalised (x phi_j) values are O(1); balanced good event, converged: see test_joint.
    assert meta["max_abs_error_normalised"] < 0.05


@pytest.mark.slow
def test_fs_aug_standard_gd_reaches_instance_min_norm(outputs):
    _, arrays, meta = outputs["fs_aug"]
    assert list(arrays["p"]) == [2, 5]
    std, inst = arrays["standard_final_v1"], arrays["standard_instance"]
    assert std.shape == (2, 1) and inst.shape == (2, 1)
    # Standard augmentation, p = 5 >= n = 4 >= rank M~: the min-norm minimizer is unique
    # (M^+ M~ M^+) and GD converges to it up to O(sigma_0) (late change 0 here).
    np.testing.assert_allclose(std[1], inst[1], rtol=0.02)
    # Thm 5.4: the exact imperfect-augmentation min-norm value is 0 (round-off level).
    assert np.all(arrays["imperfect_instance"] < 1e-8)
    assert meta["imperfect"]["theorem_seed0"] == [0.0, 0.0]


# --------------------------------------------------------------------------------------------
# The GD engine of the scripts against its reference, simdyn.simulate
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gd_runs_matches_simulate_and_keeps_zero_rows():
    simdyn.enable_x64()
    # backend fixed so both sides use the same exact representation (auto may pick another).
    base = preset("fig2a").replace(n=100, d=300, steps=40, probe_every=-1, backend="structured")
    varied = base.replace(phi=(0.7, 1.2, 1.0, 0.5), mu=0.4, lr=0.04)  # data + lr traced per cell
    small_p = base.replace(p=2)
    rec = [0, 20, 40]
    runs = gd_runs([varied, small_p], 2, 5, rec, lambda theta, context: theta)
    thetas = runs.observed  # (2 configs, 2 seeds, 3 steps, p_max = 3, D)
    ds = simulate(varied, seeds=2, key=5)
    ref = ds["alignment"].sel(step=rec).values  # (2, 3, K+1)
    got = np.linalg.norm(thetas[0][..., : varied.data.K + 1], axis=-2)
    # Same data, init and update; float32 rounding of identical operations (XLA may fuse
    # differently): relative agreement to ~1e-6 of the largest value, 1e-4 is loose.
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())
    assert np.all(thetas[1][:, :, 2, :] == 0.0)  # row p = 2 of the p = 2 config stays exactly 0
    assert np.all(np.abs(thetas[1][:, -1, :2, :]).max(axis=-1) > 0)  # its live rows moved
    assert not runs.diverged.any()


# gd_runs' outputs on fixed keys, recorded from its earlier hand-written loop body (before it ran
# through make_train's extension points); _record_golden() writes the file again after a
# deliberate change of the numbers.
GOLDEN = ROOT / "tests" / "data" / "gd_runs_golden.npz"


def _golden_runs() -> dict[str, np.ndarray]:
    """Both moment forms, every cell field varied (phi, mu, lr, p, loss/beta, sigma_0), Theta
    itself and a moment observable (fig6's term ratio, which reads the (moments, beta) context)."""
    base = preset("fig2a").replace(n=40, d=60, steps=30, probe_every=-1, backend="structured")
    structured = [
        base,
        base.replace(phi=(0.7, 1.2, 1.0, 0.5), mu=0.4, lr=0.04),
        base.replace(p=2),
        base.replace(loss="joint", beta=0.3),
        base.replace(loss="ucl", sigma_0=0.01),
    ]
    runs = gd_runs(structured, [0, 3], 5, [0, 7, 30], lambda theta, context: theta)
    dense = base.replace(augmentation="imperfect", backend="dense", steps=20)
    cells = [dense, dense.replace(loss="joint", beta=0.6, p=2)]
    moments = gd_runs(cells, 2, 11, [0, 5, 20], term_ratio_observer(4))
    return {
        "structured_theta": runs.observed,  # (5 configs, 2 seeds, 3 steps, p_max, D)
        "structured_diverged": runs.diverged,
        "dense_ratio": moments.observed[0],  # (2, 2, 3)
        "dense_alignment": moments.observed[1],  # (2, 2, 3, K + 1)
        "dense_diverged": moments.diverged,
    }


def _build() -> dict[str, str]:
    """What decides float round-off: the JAX build and the CPU it compiles for."""
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "cpu": cpu}


def _record_golden() -> None:
    GOLDEN.parent.mkdir(exist_ok=True)
    build = {f"build_{k}": np.asarray(v) for k, v in _build().items()}
    np.savez_compressed(GOLDEN, **_golden_runs(), **build)


@pytest.mark.slow
def test_gd_runs_reproduces_its_recorded_outputs_bit_for_bit():
    # Same key, same numbers: on the JAX build and CPU that recorded them, bit for bit
    # (np.array_equal); elsewhere XLA may round differently, so to float32 round-off.
    simdyn.enable_x64()
    with np.load(GOLDEN) as z:
        want = {k: z[k] for k in z.files}
    recorded = {k.removeprefix("build_"): str(want.pop(k)) for k in list(want) if k[:6] == "build_"}
    got = _golden_runs()
    assert sorted(got) == sorted(want)
    for name, value in got.items():
        assert value.shape == want[name].shape and value.dtype == want[name].dtype, name
        if recorded == _build():
            assert np.array_equal(value, want[name]), name
        else:
            scale = np.abs(want[name]).max() if want[name].dtype.kind == "f" else 0
            np.testing.assert_allclose(value, want[name], rtol=1e-5, atol=1e-5 * scale)


def test_gd_runs_refuses_structural_differences():
    base = preset("fig2a").replace(n=100, d=300, steps=10)
    with pytest.raises(ConfigError, match="may differ only"):
        gd_runs([base, base.replace(n=50)], 1, 0, [0, 10], alignment_observer(4))
    with pytest.raises(ConfigError, match="record_steps"):
        gd_runs([base], 1, 0, [5, 3], alignment_observer(4))


def test_seed_band_excludes_diverged_and_nonfinite():
    vals = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0], [100.0, 100.0]])
    b = seed_band(vals, diverged=np.array([False, False, False, True]))
    assert b.kept == 2 and b.diverged == 2  # seed 1 non-finite, seed 3 flagged
    np.testing.assert_allclose(b.median, [3.0, 4.0])
    np.testing.assert_allclose(b.mean, [3.0, 4.0])


def test_early_growth_formula_matches_theory():
    # fig2's overlay at t = 0 is the init scale sigma_0 sqrt(p/d) (independent derivation) and
    # grows like (1 + 4 eta a_1)^t once the mode dominates.
    cfg = preset("fig2a")
    g = fig2_alignment.early_growth(cfg, np.array([0, 200]))
    np.testing.assert_allclose(g["v2"][0], 0.001 * np.sqrt(3 / 2000), rtol=1e-12)
    a1, _ = theory.scl_plus_eigenvalues(1.0, 1.0, 2.0, 5, 1000)
    c2 = 1.0 / float(a1)  # (mu/sqrt(a1))^2
    want = 0.001 * np.sqrt(3 / 2000) * np.sqrt(c2) * (1 + 4 * 0.05 * float(a1)) ** 200
    np.testing.assert_allclose(g["v2"][1], want, rtol=1e-6)
