"""The command line, run as a user would (subprocess: default float32, x64 off)."""

import subprocess
import sys

import xarray as xr

from simdyn import Config, load


def _run(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "simdyn.cli", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


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
