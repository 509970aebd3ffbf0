"""Fuzzing that keeps the command line and the result files safe (issue 28, item 9).

* The command line, driven with random arguments (hypothesis, derandomized): never a
  traceback, a documented exit status, a one-line error, never a partial or temporary file,
  and an existing result is never replaced without --overwrite. The computation itself is
  replaced by canned results so that each example costs milliseconds; everything around it
  (parsing, config, pre-flight checks, saving, summaries) is the real code.
* The loader, given corrupted copies of a result file: a ConfigError or exactly the original
  numbers, never another exception and never changed numbers.
* A run killed (SIGKILL) at random moments and restarted until it finishes gives a result
  bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simdyn import ConfigError, load, preset, save, simulate
from simdyn._src.cli import auto_checkpoint_dir, main
from simdyn._src.sweep import sweep

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CFG = preset("fig1").replace(n=8, d=30, m=2, n_test=8, steps=4, dtype="float64")
EXIT_CODES = {0, 2, 3}
VARS = ("alignment", "loss", "probe_class", "probe_subclass", "diverged", "diverged_step")


@pytest.fixture(scope="module")
def canned():
    """A real simulate and sweep result of CFG: what the faked computation returns."""
    return simulate(CFG, 2, chunk_size=2), sweep(CFG, {"lr": [0.05, 0.1]}, 2, chunk_size=4)


# --- the command line ------------------------------------------------------------------------
_NUMBERS = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(["0", "1", "1000000000000", "1e3", "-0", "nan", "inf", "", "x", "2.5"]),
)
_FIELDS = st.sampled_from(["p", "lr", "n", "d", "steps", "beta", "phi", "K", "lrr", "x", ""])
_VALUES = st.one_of(_NUMBERS, st.sampled_from(["0.5,,1", "1,2,3", "true", "none", "=", "1e400"]))
_JUNK = st.text(alphabet="ab-=,.0 /", max_size=8)


@st.composite
def _argv(draw, folder: str) -> list[str]:
    """Random argument lists over simulate, sweep, show and presets, paths in ``folder``."""
    paths = st.sampled_from(
        [
            f"{folder}/new.nc",
            f"{folder}/existing.nc",
            folder,
            f"{folder}/no/r.nc",
            "/proc/r.nc",
            f"{folder}/garbage.nc",
        ]
    )
    command = draw(st.sampled_from(["simulate", "sweep", "show", "presets", "bogus"]))
    argv = [command]
    if command in ("simulate", "sweep"):
        argv.append(draw(st.sampled_from(["fig1", "joint", "fig4b", "nope"])))
        flags = {
            "--seeds": _NUMBERS,
            "--steps": _NUMBERS,
            "--key": _NUMBERS,
            "--chunk-size": _NUMBERS,
            "--devices": _NUMBERS,
            "--resume": st.sampled_from([f"{folder}/ckpt", f"{folder}/garbage.nc"]),
            "--out": paths,
        }
        for flag in draw(st.lists(st.sampled_from(sorted(flags)), max_size=5)):
            argv += [flag, draw(flags[flag])]
        for _ in range(draw(st.integers(0, 3))):
            argv += ["--set", f"{draw(_FIELDS)}={draw(_VALUES)}"]
        if command == "sweep" or draw(st.booleans()):
            for _ in range(draw(st.integers(0, 2))):
                name = draw(st.sampled_from(["lr", "beta", "sigma_0", "p"]))
                argv += ["--grid", f"{name}={draw(_VALUES)}"]
        argv += draw(st.lists(st.sampled_from(["--overwrite", "--quiet"]), max_size=2))
    elif command == "show":
        argv.append(draw(paths))
        if draw(st.booleans()):
            argv += ["--plot", draw(st.sampled_from([f"{folder}/a.png", "/proc/a.png", folder]))]
    elif command == "presets" and draw(st.booleans()):
        argv.append("--json")
    if draw(st.booleans()):
        argv.insert(draw(st.integers(1, len(argv))), draw(_JUNK))
    return argv


@pytest.mark.slow
@given(data=st.data())
@FUZZ
def test_cli_fuzz_never_a_traceback_nor_a_partial_file(canned, monkeypatch, data):
    import simdyn._src.simulation
    import simdyn._src.sweep

    monkeypatch.setattr(simdyn._src.simulation, "simulate", lambda *a, **k: canned[0].copy())
    monkeypatch.setattr(simdyn._src.sweep, "sweep", lambda *a, **k: canned[1].copy())
    with tempfile.TemporaryDirectory() as folder:
        existing = Path(folder) / "existing.nc"
        save(canned[0], existing)
        before = existing.read_bytes()
        (Path(folder) / "garbage.nc").write_text("not a result")
        argv = data.draw(_argv(folder))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse: usage errors (2) and --help (0)
                code = exit_.code
        text = err.getvalue()
        assert "Traceback" not in text, (argv, text)
        assert code in EXIT_CODES, (argv, code, text)
        if code == 2 and text.startswith("simdyn: error:"):
            assert len(text.strip().splitlines()) == 1, (argv, text)
        names = sorted(p.name for p in Path(folder).iterdir())
        assert not [n for n in names if n.startswith(".")], (argv, names)  # no temporaries
        for p in Path(folder).glob("*.nc"):
            if p.name != "garbage.nc":
                load(p)  # every result file there is complete and intact
        if "--overwrite" not in argv or f"{folder}/existing.nc" not in argv:
            assert existing.read_bytes() == before, argv


# --- the loader ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def result_bytes(canned, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("loader") / "r.nc"
    save(canned[1], path)  # a sweep: the richer file (grid coordinates and attributes)
    return path.read_bytes()


@st.composite
def _corruptions(draw, size: int):
    kind = draw(st.sampled_from(["flip", "overwrite", "truncate", "zero", "append"]))
    at = draw(st.integers(0, size - 1))
    if kind == "flip":
        return kind, at, draw(st.integers(1, 255))
    if kind in ("overwrite", "zero"):
        return kind, at, draw(st.integers(1, 64))
    return kind, at, 0


def _corrupt(raw: bytes, kind: str, at: int, arg: int, rng: random.Random) -> bytes:
    data = bytearray(raw)
    if kind == "flip":
        data[at] ^= arg
    elif kind == "overwrite":
        data[at : at + arg] = bytes(rng.randrange(256) for _ in range(len(data[at : at + arg])))
    elif kind == "zero":
        data[at : at + arg] = bytes(len(data[at : at + arg]))
    elif kind == "truncate":
        del data[at:]
    else:
        data += bytes(rng.randrange(256) for _ in range(64))
    return bytes(data)


@pytest.mark.slow
@given(data=st.data())
@FUZZ
def test_loader_fuzz_corrupted_files_are_refused_or_unchanged(canned, result_bytes, data):
    kind, at, arg = data.draw(_corruptions(len(result_bytes)))
    rng = random.Random(at * 257 + arg)
    corrupted = _corrupt(result_bytes, kind, at, arg, rng)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.nc"
        path.write_bytes(corrupted)
        try:
            ds = load(path)
        except ConfigError:
            return  # refused with a message: the point
        for name in VARS:  # accepted: then its numbers are exactly the original ones
            np.testing.assert_array_equal(ds[name].values, canned[1][name].values, err_msg=name)
        assert ds.attrs["config"] == canned[1].attrs["config"]


@pytest.mark.slow
def test_loader_fuzz_control_corruption_is_caught_at_all():
    """Negative control of the property: without the checksum some corruption is silent."""
    raw = io.BytesIO()
    ds = simulate(CFG, 2, chunk_size=2)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.nc"
        save(ds, path)
        raw = path.read_bytes()
        values = ds["alignment"].values.astype("<f8").tobytes()
        at = raw.find(values)
        assert at >= 0
        path.write_bytes(raw[:at] + b"\x7f" * 8 + raw[at + 8 :])
        with pytest.raises(ConfigError, match="corrupted"):
            load(path)


# --- SIGKILL at random moments, then resume --------------------------------------------------
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}
KILL_RUN = [
    "simulate", "fig1", "--set", "n=16", "--set", "d=40", "--set", "m=2", "--set", "n_test=16",
    "--steps", "4", "--seeds", "30", "--chunk-size", "1", "--quiet",
]  # fmt: skip


def _cli(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "simdyn", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    ref = tmp_path / "ref.nc"
    start = time.monotonic()
    proc = _cli([*KILL_RUN, "--out", str(ref)])
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    full = time.monotonic() - start  # a whole run: start-up, compile, chunks, save
    out = tmp_path / "r.nc"
    rng = random.Random(20261207)
    kills = 0
    for _ in range(8):  # kills at uniform moments of a whole run (start-up, chunks, saving)
        if kills == 2:
            break
        proc = _cli([*KILL_RUN, "--out", str(out)])
        try:
            proc.wait(timeout=rng.uniform(0.2, 0.95) * full)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if out.exists():  # finished before its kill: complete and right too; start again
            for name in VARS:
                np.testing.assert_array_equal(load(out)[name].values, load(ref)[name].values)
            out.unlink()
    assert kills >= 2, "the runs finished before their kills: the test checked nothing"
    proc = _cli([*KILL_RUN, "--out", str(out)])  # the run that finishes
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    got, want = load(out), load(ref)
    for name in VARS:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    # The checkpoint folder is removed after the result is saved; a kill in between (a few
    # milliseconds) leaves it behind, complete and harmless. Nothing else is left.
    left = {p.name for p in tmp_path.iterdir()} - {auto_checkpoint_dir(out).name}
    assert sorted(left) == ["r.nc", "ref.nc"]
