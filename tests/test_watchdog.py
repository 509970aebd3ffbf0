"""The chunk watchdog: a stalled chunk ends the run with a clear message, finished chunks kept."""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import jax
import numpy as np
import pytest

from simdyn.config import ConfigError
from simdyn.engine import StalledChunkError, Watchdog, run_seeds
from simdyn.seeds import as_key


class Out(NamedTuple):
    x: np.ndarray  # (G,)


_uniform = jax.jit(jax.vmap(lambda k: jax.random.uniform(k, dtype=np.float32)))
EMPTY = Out(x=np.zeros((0,), np.float32))
FAST = Watchdog(floor_s=1.0, factor=2.0, window_s=0.3)


def _program(stall_at_call: int | None, release: threading.Event, calls: list[int]):
    def program(keys, hparams):
        calls.append(len(calls))
        if stall_at_call is not None and len(calls) - 1 == stall_at_call:
            release.wait()  # blocks at 0% CPU, as the LAPACK deadlock did
        return Out(x=_uniform(keys))

    return lambda devices: program


def _run(program_for, tmp_path, watchdog=FAST):
    return run_seeds(
        program_for,
        as_key(0),
        np.arange(6),
        None,
        False,
        empty=EMPTY,
        chunk_size=2,
        devices=1,
        checkpoint_dir=tmp_path / "ckpt",
        identity={"test": "watchdog"},
        watchdog=watchdog,
    )


def test_a_stalled_chunk_ends_the_run_and_resume_keeps_finished_chunks(tmp_path):
    release, calls = threading.Event(), []
    start = time.monotonic()
    with pytest.raises(StalledChunkError) as info:
        _run(_program(1, release, calls), tmp_path)
    waited = time.monotonic() - start
    release.set()  # let the abandoned thread finish
    msg = str(info.value)
    assert "chunk 2 of 3" in msg and "runs 2..3 of 6" in msg, msg
    assert "idle" in msg and "estimate was" in msg and "deadline" in msg, msg
    assert str(tmp_path / "ckpt") in msg and "resume" in msg, msg
    # It gave up soon after the 1 s floor, not never.
    assert 1.0 <= waited < 15.0, waited
    finished = sorted(p.name for p in (tmp_path / "ckpt").glob("chunk_*.nc"))
    assert finished == ["chunk_00000000.nc"]

    # Resume: the finished chunk is reused, the rest computed, and the result equals a clean run.
    calls2: list[int] = []
    resumed, _ = _run(_program(None, threading.Event(), calls2), tmp_path)
    assert len(calls2) == 2  # chunks 2 and 3 only
    clean, _ = _run(_program(None, threading.Event(), []), tmp_path / "clean")
    np.testing.assert_array_equal(resumed.x, clean.x)


@pytest.mark.slow
def test_a_busy_chunk_is_not_a_stall_until_the_hard_limit(tmp_path):
    """A chunk that computes past its deadline is given hard_factor deadlines, then ended."""

    def spin(keys, hparams):
        end = time.monotonic() + 60.0
        while time.monotonic() < end:  # burns CPU: slow, not deadlocked
            pass
        return Out(x=_uniform(keys))

    dog = Watchdog(floor_s=0.5, factor=1.0, window_s=0.2, hard_factor=4.0)
    start = time.monotonic()
    with pytest.raises(StalledChunkError, match="still running"):
        _run(lambda devices: spin, tmp_path, dog)
    waited = time.monotonic() - start
    assert 2.0 <= waited < 20.0, waited  # not at the 0.5 s deadline: at 4 deadlines


def test_errors_in_a_chunk_propagate_unchanged(tmp_path):
    def broken(keys, hparams):
        raise ZeroDivisionError("inside the chunk")

    with pytest.raises(ZeroDivisionError, match="inside the chunk"):
        _run(lambda devices: broken, tmp_path)


def test_deadline_and_validation():
    dog = Watchdog(floor_s=10.0, factor=5.0)
    assert dog.deadline(None) == 10.0
    assert dog.deadline(1.0) == 10.0
    assert dog.deadline(3.0) == 15.0
    for bad in ({"floor_s": 0.0}, {"factor": -1.0}, {"first_estimate_s": float("nan")}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Watchdog(**bad)


def test_the_command_line_exits_at_once_with_code_4_and_the_resume_line(
    tmp_path, monkeypatch, capsys
):
    """simdyn simulate: a StalledChunkError prints the message and the resume command, and the
    process ends through os._exit (a normal exit could wait on the stuck thread)."""
    from simdyn._src import cli, simulation
    from simdyn.engine import StalledChunkError

    def stalled(*args, **kwargs):
        raise StalledChunkError("chunk 2 of 3 (runs 2..3 of 6) made no progress: idle")

    exits = []

    def fake_exit(code):
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(simulation, "simulate", stalled)
    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    out = tmp_path / "r.nc"
    with pytest.raises(SystemExit):
        cli.main(["simulate", "fig2a", "--seeds", "2", "--steps", "4", "--out", str(out)])
    assert exits == [cli.EXIT_STALLED] and cli.EXIT_STALLED == 4
    assert not out.exists()
    err = capsys.readouterr().err
    assert "made no progress" in err and "simdyn simulate fig2a" in err, err
