"""The command line, run as a user would (subprocess: default float32, x64 off)."""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simdyn import Config, load
from simdyn._src.cli import build_parser


def _run(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "simdyn", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow
def test_simulate_writes_labelled_dataset_and_summary(tmp_path):
    out = tmp_path / "f.nc"
    proc = _run(
        "simulate",
        "fig2a",
        "--seeds",
        "3",
        "--steps",
        "20",
        "--set",
        "n=40",
        "--set",
        "d=120",
        "--set",
        "model.p=4",
        "--set",
        "lr=0.04",
        "--out",
        str(out),
        "--quiet",
    )
    assert "median [5%, 95%]" in proc.stdout and "||W v2||" in proc.stdout
    ds = load(out)
    assert dict(ds.sizes) == {"seed": 3, "step": 21, "feature": 5, "probe_step": 2}
    cfg = Config.from_json(ds.attrs["config"])
    assert (cfg.data.n, cfg.data.d, cfg.model.p, cfg.train.lr, cfg.train.steps) == (
        40,
        120,
        4,
        0.04,
        20,
    )
    assert ds["alignment"].dtype == "float32"  # float32 by default
    assert ds.attrs["jax_enable_x64"] == 0 and "jax_version" in ds.attrs
    shown = _run("show", str(out))
    assert "seeds: 3 run, 0 diverged" in shown.stdout
    assert isinstance(xr.load_dataset(out, engine="h5netcdf"), xr.Dataset)


def test_bad_override_names_the_field_and_writes_nothing(tmp_path):
    out = tmp_path / "bad.nc"
    proc = _run("simulate", "fig1", "--set", "beta=1.5", "--out", str(out), check=False)
    assert proc.returncode == 2
    assert "train.beta" in proc.stderr and "(0.0, 1.0)" in proc.stderr
    assert not out.exists()
    proc = _run("simulate", "fig1", "--set", "nope=1", "--out", str(out), check=False)
    assert proc.returncode == 2 and "nope" in proc.stderr
    proc = _run("simulate", "fig1", "--seeds", "0", "--out", str(out), check=False)
    assert proc.returncode == 2 and "--seeds" in proc.stderr


def test_presets_listing():
    proc = _run("presets")
    for name in ("fig1", "fig2a", "fig2b", "fig4a", "fig4b", "fig6", "joint"):
        assert name in proc.stdout


# --------------------------------------------------------------------------------------------
# Help, fast answers, error paths, plots, and the no-clobber rule of the experiment scripts
# --------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("simulate", "sweep", "show", "presets", "verify")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_has_help_with_default_or_required():
    subs = _subparsers()
    assert set(SUBCOMMANDS) <= set(subs)
    for name, sp in subs.items():
        assert sp.description, f"{name} has no description"
        for action in sp._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest}: no help line"
            if action.option_strings and action.dest != "list":
                text = action.help.lower()
                assert "default" in text or "required" in text or "give with" in text, (
                    f"{name} {action.option_strings}: help names no default: {action.help!r}"
                )


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_every_subcommand_mentions_defaults(command):
    proc = _run(command, "--help")
    assert "usage: simdyn " + command in proc.stdout
    assert "default" in proc.stdout
    if command == "verify":
        for flag in ("--quick", "--full", "--claims", "--seeds", "--key", "--out", "--list"):
            assert flag in proc.stdout
        assert "--self-test" in proc.stdout and "verify-report" in proc.stdout
    if command == "simulate":
        assert "(default: 16)" in proc.stdout  # --seeds


def test_top_level_help_is_a_description_not_a_docstring():
    proc = _run("--help")
    assert "argument parsing and printing only" not in proc.stdout
    for command in SUBCOMMANDS:
        assert command in proc.stdout
    assert "docs/" in proc.stdout


def test_cli_import_pulls_in_no_jax():
    code = "import sys, simdyn._src.cli; sys.exit(int('jax' in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, "importing simdyn._src.cli imports JAX: --help would be slow"


def test_typo_exits_2_without_importing_jax():
    # Speed is measured, not timed here: what makes a typo fast is that argparse answers before
    # any JAX import (test_cli_import_pulls_in_no_jax); this checks the answer itself.
    proc = _run("simulat", "fig2a", check=False)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "folder", "garbage"])
def test_show_bad_file_is_one_line_exit_2(tmp_path, kind):
    path = {"missing": tmp_path / "nope.nc", "folder": tmp_path}.get(kind, tmp_path / "bad.nc")
    if kind == "garbage":
        path.write_text("not a netCDF file\n")
    proc = _run("show", str(path), check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simdyn: error:"), proc.stderr
    assert str(path) in lines[0]


def test_show_plot_bad_target_is_one_line_exit_2(tmp_path):
    out = tmp_path / "r.nc"
    out.write_text("x")
    proc = _run("show", str(out), "--plot", str(tmp_path / "no" / "f.png"), check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "does not exist" in proc.stderr


def test_plot_alignment_writes_png_with_bands(tmp_path):
    from simdyn._src.plots import alignment_bands, plot_alignment

    rng = np.random.default_rng(0)
    steps = np.arange(0, 11)
    align = rng.uniform(0, 1, (5, steps.size, 3))
    align[4] = np.nan  # a diverged seed: excluded, not averaged in
    ds = xr.Dataset(
        {
            "alignment": (("seed", "step", "feature"), align),
            "diverged": (("seed",), np.array([0, 0, 0, 0, 1], bool)),
        },
        coords={"seed": np.arange(5), "step": steps, "feature": np.arange(3)},
    )
    _, bands, kept, diverged = alignment_bands(ds)
    assert (kept, diverged) == (4, 1)
    np.testing.assert_allclose(bands[1], np.median(align[:4], axis=0))
    png = plot_alignment(ds, tmp_path / "a.png", title="synthetic")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.slow
def test_show_plot_of_a_real_run_writes_png(tmp_path):
    out = tmp_path / "r.nc"
    _run(
        "simulate", "fig2a", "--seeds", "2", "--steps", "5", "--set", "n=20", "--set", "d=60",
        "--set", "model.p=2", "--out", str(out), "--quiet",
    )  # fmt: skip
    png = tmp_path / "r.png"
    proc = _run("show", str(out), "--plot", str(png))
    assert f"wrote {png}" in proc.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"
    # The dashed levels are the SCL min-norm closed form of the run's own config.
    from simdyn import theory
    from simdyn._src.plots import closed_form_levels

    ds = load(out)
    d = Config.from_json(ds.attrs["config"]).data
    expect = theory.predicted_alignment_scl(d.phi, d.mu, d.sigma_xi, d.m, d.n, 2)
    np.testing.assert_allclose(closed_form_levels(ds), expect, rtol=1e-12)
    assert closed_form_levels(ds.assign_attrs(config="")) is None


def _tracked_changes(under: str) -> set[str]:
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", under],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(proc.stdout.splitlines())


def test_experiment_default_output_is_git_ignored_runs_folder():
    from experiments import _common

    args = _common.make_parser("x").parse_args([])
    assert args.out is None  # resolved by finish() to default_out(NAME)
    target = _common.default_out("fig1_embeddings")
    assert target.relative_to(REPO).parts[0] == "runs"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(target / "figures" / "fig1_embeddings.png")], cwd=REPO
    )
    assert ignored.returncode == 0, "runs/ is not git-ignored"
    ignored = subprocess.run(["git", "check-ignore", "-q", "verify-report/report.md"], cwd=REPO)
    assert ignored.returncode == 0, "verify-report/ is not git-ignored"


@pytest.mark.slow
def test_experiment_script_by_path_leaves_the_repository_alone(tmp_path):
    """~15 s: the smallest script run by path (not -m) writes only under --out."""
    before = _tracked_changes("experiments"), _tracked_changes("docs")
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "fig1_embeddings.py"), "--tiny", "--out",
         str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "figures" / "fig1_embeddings.png").exists()
    assert (tmp_path / "data" / "fig1_embeddings.json").exists()
    assert (_tracked_changes("experiments"), _tracked_changes("docs")) == before
