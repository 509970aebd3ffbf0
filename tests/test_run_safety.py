"""Never lose a long run (issue 28): checks before computing, no silent overwrite, a clean and
resumable Ctrl-C / SIGTERM, result checksums, divergence in plain sight, the smaller defects.

The command line runs in-process (``main``) where it may, in a subprocess where a signal or a
fresh interpreter is the point. Tiny fig1 runs: seconds each.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simdyn import ConfigError, load, preset, save, simulate
from simdyn._src.cli import auto_checkpoint_dir, main
from simdyn._src.preflight import (
    HOST_COPIES,
    check_output_path,
    check_resources,
    format_bytes,
    remove_stale_temporaries,
    result_bytes_per_run,
)
from simdyn.summary import describe_origin, divergence_verdict

TINY = ["--set", "n=16", "--set", "d=40", "--set", "m=2", "--set", "n_test=16", "--steps", "4"]
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}


def _cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "simdyn", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- 1. check everything before computing ---------------------------------------------------
def test_unwritable_out_fails_at_once_without_computing(tmp_path):
    start = time.perf_counter()
    proc = _cli("simulate", "fig2a", "--seeds", "64", "--out", "/proc/r.nc", "--quiet")
    wall = time.perf_counter() - start
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert line.startswith("simdyn: error: invalid --out /proc/r.nc: cannot create a file in /proc")
    assert wall < 5, f"took {wall:.1f} s: was something computed first?"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_folder_is_refused_before_computing(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="cannot create a file in"):
            check_output_path(folder / "r.nc", overwrite=False)
    finally:
        folder.chmod(0o755)


def test_output_path_rules(tmp_path):
    target = tmp_path / "r.nc"
    assert check_output_path(target, overwrite=False) == target
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
    target.write_text("old result")
    with pytest.raises(ConfigError, match="the file exists; pass --overwrite"):
        check_output_path(target, overwrite=False)
    assert check_output_path(target, overwrite=True) == target
    with pytest.raises(ConfigError, match="it is a folder"):
        check_output_path(tmp_path, overwrite=True)
    with pytest.raises(ConfigError, match="does not exist"):
        check_output_path(tmp_path / "no" / "r.nc", overwrite=False)
    with pytest.raises(ConfigError, match="is not a folder"):
        check_output_path(target / "r.nc", overwrite=False)
    os.mkfifo(tmp_path / "fifo.nc")
    with pytest.raises(ConfigError, match="not a regular file"):
        check_output_path(tmp_path / "fifo.nc", overwrite=True)


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [
        tmp_path / f".r.nc.tmp-{dead.pid}",
        tmp_path / f".r.nc.part-{dead.pid}",
        tmp_path / f"..r.nc.part-{dead.pid}.tmp-{dead.pid}",
    ]
    live = tmp_path / f".r.nc.tmp-{os.getpid()}"  # a writer still running: kept
    other = tmp_path / f".q.nc.tmp-{dead.pid}"  # another file's: kept
    for p in [*stale, live, other]:
        p.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path / "r.nc")) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


SMALL = preset("fig1").replace(
    n=8, d=30, m=2, n_test=8, steps=6, log_every=2, probe_every=2, save_theta=True,
    dtype="float64",
)  # fmt: skip


@pytest.fixture(scope="module")
def small() -> xr.Dataset:
    """One small run (float64, Theta saved, three probe steps) shared by the tests below."""
    return simulate(SMALL, 3, chunk_size=3)


@pytest.mark.slow
def test_result_size_estimate_matches_a_real_result(small):
    stored = sum(v.nbytes for v in small.data_vars.values()) / 3
    estimate = result_bytes_per_run(SMALL)
    assert stored <= estimate <= stored + 8, (stored, estimate)  # ints counted at 8 bytes
    assert result_bytes_per_run(SMALL.replace(dtype="float32")) < estimate
    # Counted without listing the steps: an absurd step count is estimated at once.
    assert result_bytes_per_run(SMALL.replace(steps=10**12, log_every=1)) > 10**12


def test_resources_refused_with_estimate_and_a_count_that_fits():
    cfg = preset("fig2a")
    per = result_bytes_per_run(cfg)
    free = 1000 * per * HOST_COPIES + 123
    with pytest.raises(ConfigError) as err:
        check_resources(cfg, 5000, free_memory=free)
    msg = str(err.value)
    assert msg.startswith("invalid --seeds 5000: the run cannot finish here")
    assert format_bytes(5000 * per) in msg and format_bytes(free) in msg
    fit = int(re.search(r"use --seeds (\d+) or fewer", msg).group(1))
    assert check_resources(cfg, fit, free_memory=free) == fit * per
    with pytest.raises(ConfigError):
        check_resources(cfg, fit + 1, free_memory=free)
    # Disk: the file, and as much again for checkpoint chunks until it is saved.
    check_resources(cfg, 10, free_memory=10**15, free_disk=10 * per)
    with pytest.raises(ConfigError, match=r"of disk \(the file \+ its checkpoint chunks"):
        check_resources(cfg, 10, free_memory=10**15, free_disk=10 * per, checkpoint=True)
    # A sweep counts every grid point of a seed.
    with pytest.raises(ConfigError, match="use --seeds 5 or fewer"):
        check_resources(cfg, 10, free_memory=10**15, free_disk=10 * per, runs_per_seed=2)
    # An explicit chunk must fit the device; the largest that does is offered.
    with pytest.raises(ConfigError, match="invalid --chunk-size 64: .* use --chunk-size 10 or"):
        check_resources(
            cfg, 1, free_memory=10**15, chunk_size=64, per_chunk_bytes=100, free_device_memory=1050
        )


def test_absurd_seed_count_is_refused_with_an_estimate(tmp_path, capsys):
    out = tmp_path / "r.nc"
    code = main(["simulate", "fig1", "--seeds", "1000000000000", "--out", str(out), "--quiet"])
    assert code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "invalid --seeds 1000000000000: the run cannot finish here" in line
    assert re.search(r"result is about [\d.]+ PiB", line)
    assert re.search(r"use --seeds \d+ or fewer", line)
    assert list(tmp_path.iterdir()) == []
    # The library refuses the same count before allocating a seed list.
    with pytest.raises(ConfigError, match=r"invalid seeds=1000000000000: .* use seeds=\d+"):
        simulate(preset("fig1"), 10**12)


# --- 2. never overwrite without being asked --------------------------------------------------
@pytest.mark.slow
def test_existing_out_is_refused_before_computing_and_replaced_with_overwrite(tmp_path, capsys):
    out = tmp_path / "r.nc"
    out.write_bytes(b"a result that took a week")
    argv = ["simulate", "fig1", *TINY, "--seeds", "2", "--out", str(out), "--quiet"]
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 1  # refused before any compilation
    assert "pass --overwrite" in _one_error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"a result that took a week"
    assert main([*argv, "--overwrite"]) == 0
    assert load(out).sizes["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc"]  # no temporaries left


@pytest.mark.slow
def test_save_refuses_an_existing_file_unless_asked(small, tmp_path):
    out = tmp_path / "r.nc"
    out.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match="the file exists"):
        save(small, out)
    assert out.read_bytes() == b"keep me"
    save(small, out, overwrite=True)
    np.testing.assert_array_equal(load(out)["alignment"].values, small["alignment"].values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc"]


# --- 3. interruption is routine --------------------------------------------------------------
SIGNAL_SEEDS = 60  # more chunks than are done when the signal lands (it follows the first)
RUN = ["simulate", "fig1", *TINY, "--seeds", str(SIGNAL_SEEDS), "--chunk-size", "1"]


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "simdyn", *argv], stderr=subprocess.PIPE, text=True, env=ENV
    )


def _wait_for_chunk(proc: subprocess.Popen, folder: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(folder.glob("chunk_*.nc.sha256")):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no chunk written in time"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> xr.Dataset:
    """The run of RUN without interruption, float32 as a user gets it (a subprocess)."""
    out = tmp_path_factory.mktemp("reference") / "ref.nc"
    proc = _cli(*RUN, "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return load(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [
        (signal.SIGINT, 130, "interrupted"),
        pytest.param(signal.SIGTERM, 143, "terminated", marks=pytest.mark.slow),
    ],
)
def test_signal_ends_in_one_line_keeps_chunks_and_names_the_resume_command(
    tmp_path, uninterrupted, sig, code, word
):
    out = tmp_path / "r.nc"
    proc = _start([*RUN, "--out", str(out)])  # not --quiet: progress lines in a log
    folder = auto_checkpoint_dir(out)
    _wait_for_chunk(proc, folder)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if not ln.startswith("[simdyn] fig1 simulate:")]
    line = _one_error_line("\n".join(lines))
    match = re.fullmatch(
        rf"simdyn: {word}.*: (\d+) finished chunks? kept in (\S+); the same command resumes: "
        r"(simdyn simulate .*)",
        line,
    )
    assert match, line
    kept = int(match.group(1))
    assert Path(match.group(2)) == folder and kept == len(list(folder.glob("chunk_*.nc.sha256")))
    assert 1 <= kept < SIGNAL_SEEDS and not out.exists()
    # The printed command, run as printed, reuses the kept chunks ...
    resumed = _cli(*shlex.split(match.group(3))[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert f"reused {kept} of {SIGNAL_SEEDS} chunks" in resumed.stderr
    # ... finishes with the numbers of an uninterrupted run, and removes its checkpoint folder.
    for name in ("alignment", "loss", "probe_class", "probe_subclass", "diverged"):
        np.testing.assert_array_equal(load(out)[name].values, uninterrupted[name].values)
    assert not folder.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc"]


# --- 4. integrity ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_result(tmp_path_factory, small) -> Path:
    path = tmp_path_factory.mktemp("result") / "r.nc"
    save(small, path)
    return path


def _alter_alignment_bytes(src: Path, dst: Path) -> None:
    """Replace one stored alignment value by NaN in the file's bytes (a silent corruption)."""
    values = xr.load_dataset(src, engine="h5netcdf")["alignment"].values
    raw, target = src.read_bytes(), values.astype("<f8").tobytes()
    at = raw.find(target)
    assert at >= 0, "alignment not stored contiguously"
    cell = at + 8 * (values.size // 2)
    dst.write_bytes(raw[:cell] + np.array([np.nan], "<f8").tobytes() + raw[cell + 8 :])


@pytest.mark.slow
def test_a_corrupted_result_is_refused_by_load_and_show(small_result, tmp_path, capsys):
    bad = tmp_path / "bad.nc"
    _alter_alignment_bytes(small_result, bad)
    # Negative control: the bytes really changed a number and the file still reads.
    altered = xr.load_dataset(bad, engine="h5netcdf")["alignment"].values
    assert np.isnan(altered).sum() == 1
    with pytest.raises(ConfigError, match="is corrupted: its bytes do not match the SHA-256"):
        load(bad)
    assert main(["show", str(bad)]) == 2
    out = capsys.readouterr()
    assert "is corrupted" in _one_error_line(out.err) and "nan" not in out.out
    load(small_result)  # the original loads


def test_the_data_checksum_catches_what_the_file_trailer_no_longer_covers(small_result, tmp_path):
    """A file copied without its trailing bytes (or rewritten by another tool) keeps the
    data_sha256 attribute, and that alone refuses changed numbers."""
    from simdyn._src.simulation import TRAILER_SIZE

    raw = small_result.read_bytes()
    stripped = tmp_path / "stripped.nc"
    stripped.write_bytes(raw[:-TRAILER_SIZE])
    load(stripped)  # intact numbers: accepted without the trailer
    _alter_alignment_bytes(stripped, tmp_path / "bad.nc")
    with pytest.raises(ConfigError, match="is corrupted: its numbers do not match the checksum"):
        load(tmp_path / "bad.nc")


def test_result_without_checksum_loads_with_a_warning(small_result, tmp_path):
    ds = xr.load_dataset(small_result, engine="h5netcdf")
    del ds.attrs["data_sha256"]
    ds.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    with pytest.warns(UserWarning, match="no data_sha256 attribute"):
        load(tmp_path / "old.nc")


# --- 5. divergence in plain sight -------------------------------------------------------------
def _flags(diverged, grid: dict | None = None, lr: float = 0.5) -> xr.Dataset:
    diverged = np.asarray(diverged, bool)
    names = list(grid or {})
    dims = (*names, "seed")
    ds = xr.Dataset(
        {"diverged": (dims, diverged), "diverged_step": (dims, np.where(diverged, 7, -1))},
        coords={n: v for n, v in (grid or {}).items()},
    )
    ds.attrs["config"] = preset("fig1").replace(lr=lr).to_json()
    if names:
        ds.attrs["sweep"] = __import__("json").dumps(names)
    return ds


def test_divergence_verdicts():
    assert divergence_verdict(_flags([0, 1, 0, 1])) == ("", "")  # half: no warning
    level, msg = divergence_verdict(_flags([1, 1, 0, 1], lr=0.4))
    assert level == "warning" and "3 of 4 seeds diverged" in msg and "only the 1 that" in msg
    assert "--set lr=0.04" in msg
    level, msg = divergence_verdict(_flags([1, 1, 1], lr=5))
    assert level == "error" and "all 3 seeds diverged" in msg and "first at step 7" in msg
    assert "--set lr=0.5 (this run: lr=5)" in msg
    grid = {"lr": [0.1, 1.0, 10.0]}
    level, msg = divergence_verdict(_flags([[0, 0], [1, 0], [1, 1]], grid))
    assert level == "warning" and "at 1 grid point: lr=10 (2 of 2)" in msg
    assert "smaller lr values in --grid" in msg
    level, msg = divergence_verdict(_flags([[1, 1], [1, 1], [1, 1]], grid))
    assert level == "error" and "all 6 runs diverged" in msg


@pytest.mark.slow
def test_all_diverged_exits_3_with_a_hint_and_keeps_the_file(tmp_path, capsys):
    out = tmp_path / "d.nc"
    argv = ["simulate", "fig1", *TINY, "--seeds", "2", "--set", "lr=50", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 3
    captured = capsys.readouterr()
    assert "2 diverged and excluded, 0 summarised" in captured.out
    line = _one_error_line(captured.err)
    assert line.startswith("simdyn: error: all 2 seeds diverged") and "--set lr=5 " in line
    assert load(out)["diverged"].values.all()
    assert main(["show", str(out)]) == 0  # show reports, it does not fail
    assert "all 2 seeds diverged" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_with_mostly_diverged_point_warns_and_counts_per_point(tmp_path, capsys):
    out = tmp_path / "s.nc"
    argv = ["sweep", "fig1", *TINY, "--seeds", "2", "--grid", "lr=0.05,50", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    captured = capsys.readouterr()
    table = captured.out.split("peak of ||W v_j||")[0]  # the first block: final medians
    rows = [ln.split() for ln in table.splitlines() if ln.strip().startswith(("0.05", "50"))]
    assert [r[:2] for r in rows] == [["0.05", "0"], ["50", "2"]]
    assert "most seeds diverged at 1 grid point: lr=50 (2 of 2)" in _one_error_line(captured.err)


# --- 8. the smaller defects -------------------------------------------------------------------
@pytest.mark.slow
def test_show_names_the_preset_and_overrides(tmp_path, capsys):
    out = tmp_path / "r.nc"
    assert main(["simulate", "fig1", *TINY, "--seeds", "2", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "r.nc: preset fig1, --set n=16 --set d=40 --set m=2 --set n_test=16"
    # A file written from Python: the nearest preset and what differs from it.
    ds = load(out)
    del ds.attrs["preset"]
    assert describe_origin(ds).startswith("preset fig1 with ")
    assert "n=16" in describe_origin(ds) and "steps=4" in describe_origin(ds)


def test_grid_with_an_empty_value_is_refused(tmp_path, capsys):
    argv = ["sweep", "joint", "--grid", "beta=0.5,,0.7", "--out", str(tmp_path / "s.nc")]
    assert main(argv) == 2
    assert "an empty value between commas" in _one_error_line(capsys.readouterr().err)


def test_lr_range_is_written_as_it_is_checked():
    with pytest.raises(ConfigError) as err:
        preset("fig1").replace(lr=float("inf"))
    assert "(0.0, inf)" in str(err.value) or "finite" in str(err.value)
    with pytest.raises(ConfigError) as err:
        preset("fig1").replace(lr=-1.0)
    assert "(0.0, inf)" in str(err.value)


def test_unknown_set_field_suggests_the_nearest_names():
    with pytest.raises(ConfigError, match=r"unknown config field 'lrr'; did you mean 'lr'"):
        preset("fig1").replace(lrr=0.1)
    with pytest.raises(ConfigError, match=r"did you mean .*'batch_size'"):
        preset("fig1").replace(batchsize=8)


def test_presets_listing_abbreviates_long_phi(capsys):
    assert main(["presets"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    assert len(lines["fig4b"]) <= 160, lines["fig4b"]
    assert "(50 values)" in lines["fig4b"]


def test_plot_legend_names_the_bias_as_the_table_does():
    from simdyn._src.plots import feature_label

    assert feature_label(0) == "||b||" and feature_label(2) == "||W v2||"


# --- 7. sweeps answer questions ---------------------------------------------------------------
def _synthetic_sweep() -> tuple[xr.Dataset, np.ndarray, np.ndarray]:
    """A sweep over lr (3 points) x 4 seeds, 6 steps, features 0..2, whose run (g, s) has its
    feature-j peak (g + 1) * (s + 1) * (j + 1) placed at step index (g + s + j) % 6; run (2, 3)
    diverged."""
    steps = np.array([0, 2, 4, 6, 8, 10])
    g_n, s_n, f_n = 3, 4, 3
    align = np.full((g_n, s_n, len(steps), f_n), 0.01)
    peak = np.zeros((g_n, s_n, f_n))
    at = np.zeros((g_n, s_n, f_n))
    for g, s, j in np.ndindex(g_n, s_n, f_n):
        peak[g, s, j] = (g + 1) * (s + 1) * (j + 1)
        at[g, s, j] = steps[(g + s + j) % len(steps)]
        align[g, s, (g + s + j) % len(steps), j] = peak[g, s, j]
    diverged = np.zeros((g_n, s_n), bool)
    diverged[2, 3] = True
    align[2, 3, 3:] = np.nan
    ds = xr.Dataset(
        {
            "alignment": (("lr", "seed", "step", "feature"), align),
            "diverged": (("lr", "seed"), diverged),
            "loss": (("lr", "seed", "step"), np.zeros((g_n, s_n, len(steps)))),
        },
        coords={"lr": [0.01, 0.1, 1.0], "seed": np.arange(s_n), "step": steps,
                "feature": np.arange(f_n)},
    )  # fmt: skip
    ds.attrs["sweep"] = '["lr"]'
    peak[2, 3], at[2, 3] = np.nan, np.nan
    return ds, peak, at


def test_peak_and_time_to_peak_per_run():
    from simdyn.summary import peak_stats

    ds, peak, at = _synthetic_sweep()
    stats = peak_stats(ds)
    assert stats["peak"].dims == ("lr", "seed", "feature")
    np.testing.assert_array_equal(stats["peak"].values, peak)
    np.testing.assert_array_equal(stats["peak_step"].values, at)


def test_sweep_table_shows_median_peaks_and_steps():
    from simdyn.summary import format_sweep_summary

    ds, peak, at = _synthetic_sweep()
    text = format_sweep_summary(ds)
    assert "peak @ step" in text
    rows = [ln.split() for ln in text.splitlines()[-3:]]
    for g, row in enumerate(rows):
        for j in (1, 2):  # the table shows features j >= 1
            cell = row[1 + 3 * (j - 1) : 1 + 3 * j]
            assert float(cell[0]) == pytest.approx(np.nanmedian(peak[g, :, j]), rel=1e-3)
            assert float(cell[2]) == pytest.approx(np.nanmedian(at[g, :, j]), abs=0.5)


def test_show_plot_draws_a_sweep(tmp_path):
    from simdyn._src.plots import plot_result, sweep_bands

    ds, peak, at = _synthetic_sweep()
    field, x, bands = sweep_bands(ds)
    assert field == "lr" and x.tolist() == [0.01, 0.1, 1.0]
    np.testing.assert_allclose(bands["peak"][1], np.nanmedian(peak, axis=1))
    np.testing.assert_allclose(bands["peak_step"][0], np.nanquantile(at, 0.05, axis=1))
    png = plot_result(ds, tmp_path / "s.png", title="synthetic")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
