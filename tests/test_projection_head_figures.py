"""experiments/projection_head_figures.py: the second paper's Figs 1, 2 (left) and 5.

Fast tier (one module fixture, ~15 s): ``fig5 --quick`` with 2 seeds into a temporary folder
while an audit hook records every file the process opens for writing; the tests check the files,
the Fig. 5 curves against the formula written out here (not read from the script: the stated
setting falls monotonically, the reconstruction is U-shaped with its best layer falling with
c_j*), the trained 12-layer networks against it, that nothing was written outside ``--out``, and
the three trained figures' closed-form overlays against Thm 3.5 written out here (no training).
Slow tier: the ``--quick`` run of each trained figure (one compile each, ~10 s), the same write
audit, and its plotted closed form against ``closed_forms`` and the written-out Thm 3.5.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # plain `pytest` puts tests/ first, not the repository root
    sys.path.insert(0, str(ROOT))

from experiments import projection_head_figures as phf  # noqa: E402
from simdyn.config import ConfigError  # noqa: E402
from simdyn.papers.projection_head import closed_forms as cf  # noqa: E402

_WRITES: list[str] = []
_AUDIT = {"on": False}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _hook(event: str, args: tuple) -> None:
    """Record paths opened for writing, and created or moved, while the fixture runs."""
    if not _AUDIT["on"]:
        return
    if event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
        mode, flags = args[1], args[2]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writing:
            _WRITES.append(os.fsdecode(args[0]))
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove") and args:
        _WRITES.append(os.fsdecode(args[0]))


sys.addaudithook(_hook)  # hooks cannot be removed: this one acts only while _AUDIT["on"]


def _audited_run(argv: list[str]) -> tuple[dict, list[str]]:
    """phf.main(argv) with the audit hook on: (its result, the paths it wrote)."""
    _WRITES.clear()
    _AUDIT["on"] = True
    try:
        result = phf.main(argv)
    finally:
        _AUDIT["on"] = False
    return result, list(_WRITES)


def _assert_wrote_only(out: Path, writes: list[str], names: list[str]) -> None:
    """Exactly NAME.png and NAME.json per name under out, and no write inside the repository
    outside out (bytecode caches aside)."""
    files = sorted(f"{n}.{ext}" for n in names for ext in ("json", "png"))
    assert sorted(p.name for p in out.iterdir()) == files
    for name in names:
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert writes, "the audit hook saw no write at all: it is not working"
    root = ROOT.resolve()
    for path in writes:
        p = Path(path).resolve()
        if "__pycache__" in p.parts:
            continue
        under_out = p == out.resolve() or out.resolve() in p.parents
        inside_repo = p == root or root in p.parents
        assert under_out or not inside_repo, f"wrote {p} inside the repository"
    seen = {Path(w).resolve() for w in writes} & {p.resolve() for p in out.iterdir()}
    assert len(seen) == len(files)  # the hook did see every output


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("ph_figures")
    result, writes = _audited_run(
        ["fig5", "--quick", "--seeds", "2", "--key", "3", "--out", str(out)]
    )
    return out, result, writes


def _load(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def _thm35(phi, alpha, sigma, p):
    """Thm 3.5 written out: gamma_i = sqrt((1 - alpha_i) phi_i / (phi_i^2 + sigma^2)) on the top
    min(d, p) features by beta_i = (1 - alpha_i)^2 phi_i^2 / (phi_i^2 + sigma^2) with beta > 0,
    encoder gamma, head gamma^2, each normalised by its largest value."""
    phi, alpha = np.asarray(phi, float), np.asarray(alpha, float)
    beta = (1 - alpha) ** 2 * phi**2 / (phi**2 + sigma**2)
    kept = np.zeros(phi.size, bool)
    kept[np.argsort(-beta, kind="stable")[: min(phi.size, p)]] = True
    kept &= beta > 0
    gamma = np.where(kept, np.sqrt((1 - alpha) * phi / (phi**2 + sigma**2)), 0.0)
    return np.stack([gamma / gamma.max(), gamma**2 / (gamma**2).max()])


@pytest.mark.slow
def test_fig5_writes_its_two_files_and_nothing_outside_out(quick):
    out, _, writes = quick
    _assert_wrote_only(out, writes, ["fig5"])


def test_closed_form_overlays_are_thm35_without_training():
    left = phf.closed_form("fig1-left")
    np.testing.assert_allclose(
        left, _thm35((1.0,) * 5, (0, 0.25, 0.5, 0.75, 1), 0.01, 20), rtol=1e-12
    )
    assert left[0][4] == 0 and left[1][4] == 0  # the destroyed feature: dropped by both layers
    assert np.all(left[0][1:4] > left[1][1:4])  # the encoder is the more even layer
    phi = [3.2 / 2**i for i in range(1, 10)]
    right = phf.closed_form("fig1-right")
    np.testing.assert_allclose(right, _thm35(phi, [0.0] * 9, 0.1, 20), rtol=1e-12)
    assert int(np.argmax(right[1])) == 4  # the peak is at phi = sigma = 0.1
    supervised = phf.closed_form("fig2-left")
    np.testing.assert_array_equal(supervised, [[1, 0, 0, 0, 0], [1, 0, 0, 0, 0]])


def _as_written(c_star: float, layers: int = 12) -> np.ndarray:
    c = np.array([0.4] * 8 + [c_star, 0.6])
    ph = np.array([1.0] * 9 + [0.1])
    l = np.arange(1, layers + 1)[:, None]
    return np.sum((c / c_star) ** (2 * l / layers) * ph**2, axis=1)


def _reconstructed(c_star: float, layers: int = 12) -> np.ndarray:
    c = np.array([0.4] * 8 + [c_star, 0.6])
    ph = np.array([0.5] * 8 + [1.0, 0.1])
    l = np.arange(1, layers + 1)[:, None]
    return np.sum((c / c_star) ** (2 * l) * ph**2, axis=1)


def test_fig5_curves_are_the_formula_as_written_falls_and_the_reconstruction_is_u_shaped(quick):
    out, _, _ = quick
    js = _load(out, "fig5")
    assert js["c_stars"] == [0.45, 0.5, 0.55, 0.6]
    argmins = []
    for k, c in enumerate(js["c_stars"]):
        written = _as_written(c)
        np.testing.assert_allclose(js["as_written"]["formula"][k], written, rtol=1e-12)
        assert np.all(np.diff(written) < 0) and written[-1] > 4  # falls, never near 1
        recon = _reconstructed(c)
        np.testing.assert_allclose(js["reconstructed"]["curves"][k], recon, rtol=1e-12)
        i = int(np.argmin(recon))
        argmins.append(i + 1)
        assert np.all(np.diff(recon[: i + 1]) < 0) and np.all(np.diff(recon[i:]) > 0)
        if c < 0.6:  # U-shaped: the minimum is interior and the curve rises after it
            assert 0 < i < 11 and recon[-1] > recon[i] * 1.01
        else:
            assert i == 11  # the largest c_j*: the last layer is best
    assert argmins == js["reconstructed"]["argmin_layer"]
    assert argmins == sorted(argmins) and argmins[0] < argmins[-1]  # best layer falls with c_j*
    # trained 12-layer linear networks from a balanced init follow the formula as written (to
    # 2e-6 relative after --quick's 200 steps; the full 1000 steps reach round-off)
    for k, t in enumerate(js["as_written"]["trained"]):
        np.testing.assert_allclose(t["c_of_the_data"], [0.4] * 8 + [js["c_stars"][k], 0.6])
        np.testing.assert_allclose(t["median"], _as_written(js["c_stars"][k]), rtol=1e-5)
        assert t["diverged"] == 0 and t["max_abs_deviation_from_formula"] < 1e-4


def test_invalid_seeds_and_figure_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="seeds"):
        phf.main(["fig5", "--quick", "--seeds", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        phf.main(["fig3", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


_SETTINGS = {  # (phi, alpha, sigma) of the linear model whose Thm 3.5 weights are overlaid
    "fig1-left": ((1.0,) * 5, (0.0, 0.25, 0.5, 0.75, 1.0), 0.01),
    "fig1-right": (tuple(3.2 / 2**i for i in range(1, 10)), (0.0,) * 9, 0.1),
    "fig2-left": ((1.0, 1.0, 1e-3, 1e-3, 1e-3), (0.0, 1.0, 1.0, 1.0, 1.0), 0.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fig1-left", "fig1-right", "fig2-left"])
def test_trained_figure_quick_run(tmp_path, name):
    _, writes = _audited_run(
        [name, "--quick", "--seeds", "2", "--key", "3", "--out", str(tmp_path)]
    )
    _assert_wrote_only(tmp_path, writes, [name])
    js = _load(tmp_path, name)
    phi, alpha, sigma = _SETTINGS[name]
    fw = cf.feature_weights(phi, alpha, sigma, 20)
    np.testing.assert_allclose(js["closed_form"], fw.weights / fw.weights.max(1, keepdims=True))
    np.testing.assert_allclose(js["closed_form"], _thm35(phi, alpha, sigma, 20), rtol=1e-12)
    med, lo, hi = (np.array(js[k]) for k in ("median", "q10", "q90"))
    assert med.shape == (2, len(phi)) and np.all(np.isfinite(med))
    assert np.all(lo <= med + 1e-12) and np.all(med <= hi + 1e-12)
    assert np.all(med <= 1 + 1e-6) and np.all(med >= 0)
    assert js["seeds"] == 2 and js["key"] == 3 and js["diverged"] == 0
    assert js["setting"]["model"] == "dense" and js["setting"]["momentum"] == 0.9
    assert js["variants"] == []  # --quick trains none
