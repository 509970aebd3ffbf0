"""Reliability: diverged seeds flagged and excluded, kill + resume, damaged checkpoints,
refused resumes, validation of CLI flags, deterministic mode. Tiny float64 config."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simdyn import Config, ConfigError, DataConfig, HyperParams, ModelConfig, TrainConfig, simulate
from simdyn._src.cli import main
from simdyn._src.sweep import sweep, sweep_configs
from simdyn.summary import format_summary, kept_seeds, mask_diverged, num_excluded

KEY = 3
CFG = Config(
    DataConfig(n=16, m=2, d=40, K=4, n_test=16),
    ModelConfig(p=3, sigma_0=0.1),
    TrainConfig(lr=0.05, steps=10, log_every=2, dtype="float64", probe_every=-1),
)
VARS = ("alignment", "loss", "diverged", "diverged_step")
SEEDS = 6


def _assert_same(a, b):
    for name in VARS:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted run, same layout as the checkpointed ones (chunk_size=1)."""
    return simulate(CFG, SEEDS, KEY, chunk_size=1)


# --- divergence -------------------------------------------------------------------------------
@pytest.mark.slow
def test_diverging_seeds_are_flagged_kept_and_excluded():
    big = 50.0  # lr 1000x the stable one: |Theta| explodes within the 10 steps
    lrs = np.array([0.05, big, 0.05, 0.05, big, 0.05])
    mixed = simulate(CFG, SEEDS, KEY, chunk_size=SEEDS, hparams=HyperParams(lrs, None, None))
    assert mixed.sizes["seed"] == SEEDS  # flagged seeds stay in the dataset
    assert mixed["diverged"].values.tolist() == [False, True, False, False, True, False]
    assert set(mixed["diverged_step"].sel(seed=[1, 4]).values) <= set(CFG.train.record_steps[1:])
    assert (mixed["diverged_step"].sel(seed=[0, 2, 3, 5]).values == -1).all()
    assert mixed.attrs["num_diverged"] == 2 and num_excluded(mixed) == 2
    # The others are bit-identical to a run without the diverging seeds (same program: per-seed
    # hparams, batch 6 with two padding seeds): a NaN in one seed never leaks into another.
    clean = simulate(
        CFG, [0, 2, 3, 5], KEY, chunk_size=SEEDS, hparams=HyperParams(np.full(4, 0.05), None, None)
    )
    _assert_same(kept_seeds(mixed), clean)
    # Every statistic of the summary excludes them and says so.
    text, clean_text = format_summary(mixed).splitlines(), format_summary(clean).splitlines()
    assert text[0] == "seeds: 6 run, 2 diverged and excluded, 4 summarised"
    assert text[1:] == clean_text[1:]
    # Negative control: without the flags the diverged values enter the statistics.
    unflagged = mixed.copy()
    unflagged["diverged"] = xr.zeros_like(mixed["diverged"])
    with np.errstate(invalid="ignore"):  # inf - inf inside the quantiles of diverged values
        assert format_summary(unflagged).splitlines()[1:] != clean_text[1:]
    masked = mask_diverged(mixed)
    assert np.isnan(masked["loss"].sel(seed=[1, 4]).values).all()
    np.testing.assert_array_equal(masked["loss"].sel(seed=0).values, mixed["loss"].sel(seed=0))


@pytest.mark.slow
def test_sweep_flags_diverging_grid_points_and_resumes(tmp_path):
    grid = {"lr": [0.05, 50.0]}
    ds = sweep(CFG, grid, 2, KEY, chunk_size=2, checkpoint_dir=tmp_path)
    assert ds["diverged"].sel(lr=50.0).values.all() and not ds["diverged"].sel(lr=0.05).any()
    assert kept_seeds(ds.sel(lr=0.05)).sizes["seed"] == 2
    with pytest.raises(ConfigError, match="select one grid point"):
        kept_seeds(ds)
    assert "4 runs, 2 diverged and excluded" in format_summary(ds)
    # An interrupted sweep (second chunk lost) resumes to the same numbers.
    chunks = sorted(tmp_path.glob("chunk_*.nc"))
    assert len(chunks) == 2
    chunks[1].unlink()
    again = sweep(CFG, grid, 2, KEY, chunk_size=2, checkpoint_dir=tmp_path)
    _assert_same(again, ds)
    with pytest.raises(ConfigError, match="grid"):
        sweep(CFG, {"lr": [0.05, 0.5]}, 2, KEY, chunk_size=2, checkpoint_dir=tmp_path)


@pytest.mark.slow
def test_sweep_configs_reuse_simulate_and_checkpoint_per_config(tmp_path, reference):
    out = sweep_configs({"base": CFG}, SEEDS, KEY, chunk_size=1, checkpoint_dir=tmp_path)
    _assert_same(out["base"], reference)
    assert (tmp_path / "base" / "manifest.json").exists()
    with pytest.raises(ConfigError, match="invalid config name"):
        sweep_configs({"../x": CFG}, SEEDS, KEY)


# --- interruption and resume ---------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import jax
    jax.config.update("jax_enable_x64", True)
    from simdyn import Config, simulate
    cfg = Config.from_json(sys.argv[1])

    def slow(done, total, elapsed):
        time.sleep(0.5)  # widen the gap between chunks so the kill lands mid-run

    simulate(cfg, int(sys.argv[3]), int(sys.argv[4]), chunk_size=1, checkpoint_dir=sys.argv[2],
             progress=slow)
    """
)


@pytest.mark.slow
def test_killed_run_resumes_bit_identically(tmp_path, reference, caplog):
    ckpt = tmp_path / "ckpt"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, CFG.to_json(), str(ckpt), str(SEEDS), str(KEY)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = ckpt / "chunk_00000000.nc.sha256"
    deadline = time.monotonic() + 240
    try:
        while not first.exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no chunk written in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done = sorted(p.name for p in ckpt.glob("chunk_*.nc"))
    assert 1 <= len(done) < SEEDS, done  # killed mid-way
    stamp = (ckpt / "chunk_00000000.nc").stat().st_mtime_ns
    verified = len(list(ckpt.glob("chunk_*.nc.sha256")))  # a chunk without its digest is redone
    with caplog.at_level(logging.INFO, logger="simdyn"):
        resumed = simulate(CFG, SEEDS, KEY, chunk_size=1, checkpoint_dir=ckpt)
    _assert_same(resumed, reference)
    # A resumed run says what it reused (through the logger; the CLI shows it on stderr).
    assert f"reused {verified} of {SEEDS} chunks" in caplog.text
    assert (ckpt / "chunk_00000000.nc").stat().st_mtime_ns == stamp  # reused, not recomputed
    assert len(list(ckpt.glob("chunk_*.nc"))) == SEEDS
    # Every chunk file records the environment it was computed in.
    chunk = xr.load_dataset(ckpt / "chunk_00000000.nc", engine="h5netcdf")
    for attr in ("jax_version", "jaxlib_version", "jax_enable_x64", "xla_flags", "simdyn_version"):
        assert attr in chunk.attrs
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["seeds"] == list(range(SEEDS)) and manifest["layout"]["chunk_size"] == 1
    assert manifest["config"] == json.loads(CFG.to_json())
    assert {"jax_version", "jaxlib_version", "simdyn_version"} <= set(manifest["versions"])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, reference):
    ckpt = tmp_path_factory.mktemp("finished") / "ckpt"
    ds = simulate(CFG, SEEDS, KEY, chunk_size=1, checkpoint_dir=ckpt)
    _assert_same(ds, reference)
    return ckpt


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-200:-100] = bytes(100)
    path.write_bytes(bytes(data))


def _drop_digest(path: Path) -> None:
    path.with_name(path.name + ".sha256").unlink()


def _foreign_chunk(path: Path) -> None:
    """A valid chunk file (and digest) from another run with the same file name."""
    other = path.parent.parent / "other"
    simulate(CFG, SEEDS, KEY + 1, chunk_size=1, checkpoint_dir=other)
    for suffix in ("", ".sha256"):
        shutil.copy(other / (path.name + suffix), path.parent / (path.name + suffix))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "checksum mismatch"),
        (_flip_bytes, "checksum mismatch"),
        (_drop_digest, "no checksum file"),
        (_foreign_chunk, "different run"),
    ],
)
@pytest.mark.slow
def test_damaged_chunk_is_detected_and_recomputed(finished, tmp_path, reference, damage, reason):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(finished, ckpt)
    target = ckpt / "chunk_00000002.nc"
    damage(target)
    with pytest.warns(UserWarning, match=reason):
        resumed = simulate(CFG, SEEDS, KEY, chunk_size=1, checkpoint_dir=ckpt)
    _assert_same(resumed, reference)
    # The recomputed chunk is valid again: a second resume uses everything silently.
    again = simulate(CFG, SEEDS, KEY, chunk_size=1, checkpoint_dir=ckpt)
    _assert_same(again, reference)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"config": CFG.replace(lr=0.06)}, "config.train.lr"),
        ({"key": KEY + 1}, "key"),
        ({"seeds": SEEDS + 1}, "seeds"),
        ({"chunk_size": 2}, "layout.chunk_size"),
        ({"hparams": HyperParams(None, None, 0.2)}, "hparams.sigma_0"),
    ],
)
def test_resume_with_a_different_run_is_refused(finished, change, field):
    args = {"config": CFG, "seeds": SEEDS, "key": KEY, "chunk_size": 1} | change
    with pytest.raises(ConfigError, match=rf"holds a different run \(differs in .*{field}"):
        simulate(args.pop("config"), args.pop("seeds"), checkpoint_dir=finished, **args)


def test_unreadable_manifest_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text("{truncated")
    with pytest.raises(ConfigError, match="unreadable manifest.json"):
        simulate(CFG, SEEDS, KEY, chunk_size=1, checkpoint_dir=tmp_path)


# --- the command line -----------------------------------------------------------------------
TINY = ["--set", "n=16", "--set", "d=40", "--set", "m=2", "--set", "n_test=16", "--steps", "4"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--devices", "0"], "invalid devices=0"),
        (["--devices", "999"], "invalid devices=999"),
        (["--chunk-size", "0"], "invalid --chunk-size 0"),
        (["--key", "-1"], "invalid --key -1"),
        (["--steps", "0"], "invalid train.steps=0"),
        (["--set", "lr=-1"], "invalid train.lr=-1.0"),
        (["--set", "lr"], "invalid --set 'lr'"),
        (["--coordinator", "localhost"], "give --coordinator, --num-processes and --process-id"),
        (
            ["--coordinator", "nohost", "--num-processes", "2", "--process-id", "0"],
            "invalid coordinator_address='nohost'",
        ),
        (
            ["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
            r"invalid process_id=2: must be in \[0, 1\]",
        ),
    ],
)
def test_cli_rejects_bad_flags_and_writes_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "r.nc"
    code = main(["simulate", "fig1", *TINY, "--out", str(out), "--quiet", *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("simdyn: error:")
    assert __import__("re").search(message, err), err
    assert list(tmp_path.iterdir()) == []


def test_cli_rejects_bad_paths_and_grids(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    cases = [
        (["simulate", "fig1", "--out", str(tmp_path)], "it is a folder"),
        (["simulate", "fig1", "--out", str(tmp_path / "no" / "r.nc")], "does not exist"),
        (
            [
                "simulate",
                "fig1",
                "--out",
                str(tmp_path / "r.nc"),
                "--resume",
                str(tmp_path / "afile"),
            ],
            "it is a file",
        ),
        (["sweep", "fig1", "--grid", "lr=0.1,x", "--out", str(tmp_path / "s.nc")], "numbers"),
        (["sweep", "fig1", "--grid", "lr=0.1,-2", "--out", str(tmp_path / "s.nc")], "grid lr"),
        (["sweep", "fig1", "--grid", "p=3,4", "--out", str(tmp_path / "s.nc")], r"\['p'\]"),
        (["sweep", "fig1", "--grid", "beta=0.5", "--out", str(tmp_path / "s.nc")], "loss='joint'"),
    ]
    for argv, message in cases:
        assert main([*argv, *TINY, "--quiet"]) == 2, argv
        err = capsys.readouterr().err
        assert __import__("re").search(message, err), (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.slow
def test_cli_resume_with_other_settings_is_refused(finished, tmp_path, capsys):
    argv = ["simulate", "fig1", *TINY, "--seeds", "6", "--resume", str(finished)]
    assert main([*argv, "--out", str(tmp_path / "r.nc"), "--quiet"]) == 2
    assert "holds a different run" in capsys.readouterr().err
    assert not (tmp_path / "r.nc").exists()


# --- deterministic mode -----------------------------------------------------------------------
@pytest.mark.slow
def test_enable_deterministic_sets_flag_before_start_and_refuses_after():
    script = textwrap.dedent(
        """
        import jax
        from simdyn.config import ConfigError
        from simdyn.distributed import enable_deterministic
        from simdyn._src.simulation import environment_attrs
        enable_deterministic()
        jax.devices()  # the backend starts with the flag
        assert "--xla_gpu_deterministic_ops=true" in environment_attrs()["xla_flags"]
        enable_deterministic()  # already on: a no-op
        import os
        os.environ["XLA_FLAGS"] = ""
        try:
            enable_deterministic()
        except ConfigError as err:
            print("refused:", err)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: enable_deterministic() must be called before JAX starts" in proc.stdout
