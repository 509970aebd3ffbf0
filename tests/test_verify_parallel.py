"""``simdyn verify --jobs N`` (simdyn.verify.parallel): claims in worker processes.

* Fast: ``--jobs`` is validated with an error naming the flag; ``auto`` is the CPU's cores
  (capped) on the CPU; claims are handed out longest-first; :func:`broken.planted` names the
  planted simulator only inside its block.
* Slow: the same claims with ``--jobs 2`` and ``--jobs 1`` write the same report.json, field by
  field (two papers' claims, so both papers' modules load in the workers), the second run
  loading the first's compiled programs from ``--compile-cache``; a broken simulator
  planted in this process is planted in the workers too (a row that holds on the reference fails
  in the workers, with the numbers of the same fault run in this process).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import simdyn
from simdyn.config import ConfigError
from simdyn.verify import broken, compare, parallel, report

simdyn.enable_x64()


@pytest.mark.parametrize("bad", ["0", "-2", "x", "1.5", 0, True])
def test_bad_jobs_are_a_clear_error(bad):
    with pytest.raises(ConfigError, match="--jobs"):
        parallel.parse_jobs(bad)


def test_jobs_are_a_positive_integer_or_auto(monkeypatch):
    assert parallel.parse_jobs("3") == 3 and parallel.parse_jobs(1) == 1
    # tests/conftest.py makes auto one process for the rest of the suite; the real rule:
    real = parallel.default_jobs.__wrapped__
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 16)
    assert real() == parallel.MAX_AUTO_JOBS  # on the CPU, capped
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: None)
    assert real() == 1
    monkeypatch.setattr("jax.default_backend", lambda: "gpu")
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 16)
    assert real() == 1  # processes would share the accelerator


def test_groups_are_handed_out_longest_first():
    from simdyn.verify.eta import TYPICAL_SECONDS

    quick = TYPICAL_SECONDS["quick"]
    groups = [("CC-unlearn",), ("SGD-OBJ", "SGD-MIN"), ("unknown",), ("FS-aug",)]
    ordered = parallel.order_by_cost(groups, "quick")
    assert ordered[-1] == ("unknown",) and sorted(ordered) == sorted(groups)
    cost = [sum(quick[c] for c in g) for g in ordered[:-1]]
    assert cost == sorted(cost, reverse=True)


def test_claims_that_share_runs_are_grouped_in_declared_order():
    from simdyn.verify.registry import paper_claim_ids, shared_run_groups

    ids = paper_claim_ids("all")
    groups = shared_run_groups(ids)
    assert sorted(c for g in groups for c in g) == sorted(ids)  # a partition
    of = {c: g for g in groups for c in g}
    # overlapping declared groups merge (JOINT is in two)
    assert of["CC-train"] == of["SGD-MIN"] == of["MINLOSS"]
    assert of["CC-early"] == of["CC-unlearn"] != of["CC-train"]
    assert of["PH-balance"] == ("PH-balance",)
    for g in groups:
        assert list(g) == [c for c in ids if c in g]
    # a selection keeps only the selected claims of a group
    assert shared_run_groups(["CC-unlearn", "FS-aug", "MINLOSS", "JOINT"]) == [
        ("CC-unlearn",),
        ("FS-aug",),
        ("MINLOSS", "JOINT"),
    ]


def test_a_claim_that_imports_another_claims_module_is_in_its_group():
    # What a claim can reuse from another is what it imports of it: each such pair must run
    # in one worker, or the worker recomputes (and recompiles) the other claim's runs.
    import ast
    import importlib
    from pathlib import Path

    from simdyn.papers.which_features import claims
    from simdyn.verify.registry import shared_run_groups

    package = "simdyn.papers.which_features"
    module_of = {c.info.id: None for c in claims.CLAIMS}
    for path in Path(claims.__file__).parent.glob("*.py"):
        module = importlib.import_module(f"{package}.{path.stem}")
        claim = getattr(module, "CLAIM", None)
        if claim is not None:
            module_of[claim.info.id] = path
    claim_of_stem = {p.stem: c for c, p in module_of.items() if p is not None}
    of = {c: g for g in shared_run_groups(list(module_of)) for c in g}
    pairs = []
    for claim, path in module_of.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == package:
                pairs += [(claim, claim_of_stem[a.name]) for a in node.names
                          if a.name in claim_of_stem]  # fmt: skip
    assert ("CC-unlearn", "CC-early") in pairs and ("SGD-MIN", "SGD-OBJ") in pairs
    for claim, other in pairs:
        assert of[claim] == of[other], (claim, other)


def test_planted_names_the_simulator_only_inside_its_block():
    import contextlib

    entered: list[str] = []

    @contextlib.contextmanager
    def plant():
        entered.append("in")
        yield

    sim = broken.BrokenSimulator("toy-fault", "nothing", plant)
    assert broken.active_name() is None
    with broken.planted(sim):
        assert broken.active_name() == "toy-fault" and entered == ["in"]
    assert broken.active_name() is None


def _report(tmp_path, name, jobs, cache):
    from simdyn._src.cli import main

    out = tmp_path / name
    claims = "CC-unlearn,FS-tie,PH-examples"
    argv = ["verify", "--claims", claims, "--jobs", str(jobs), "--compile-cache", str(cache)]
    assert main([*argv, "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def test_the_compile_cache_folder_is_auto_none_or_a_path(monkeypatch, tmp_path):
    from simdyn.verify import compile_cache

    real = compile_cache.cache_dir.__wrapped__  # tests/conftest.py turns the default off
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert real("auto") == real(None) == tmp_path / "simdyn" / "xla"
    assert real("none") is None and real("/x/y") == Path("/x/y")


@pytest.fixture
def restore_compile_cache():
    """The cache is a process-wide JAX setting: leave it as it was for the later tests."""
    import jax

    before = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", before)
    from jax._src import compilation_cache  # no public reset: forget the opened cache

    compilation_cache.reset_cache()


@pytest.mark.slow
def test_two_processes_write_the_report_of_one(tmp_path, restore_compile_cache):
    cache = tmp_path / "xla"
    one = _report(tmp_path, "one", 1, cache)
    cached = sorted(p.name for p in cache.iterdir())
    assert cached  # the first run kept its compiled programs
    two = _report(tmp_path, "two", 2, cache)  # its workers read them
    assert (one["meta"]["jobs"], two["meta"]["jobs"]) == (1, 2)
    assert [r["claim"] for r in two["rows"]] == [r["claim"] for r in one["rows"]]
    assert len(one["rows"]) >= 3
    assert compare.differences(one, two) == []


@pytest.mark.slow
def test_a_planted_simulator_is_planted_in_the_workers(tmp_path):
    from simdyn.papers.projection_head import broken as ph_broken
    from simdyn.verify.registry import clear_caches, run_claim

    sim = {b.name: b for b in ph_broken.BROKEN}["head-untrained"]
    claims = ["PH-balance", "PH-examples"]

    def written(outcomes, name):
        rows = report.evaluate(outcomes)
        report.write(rows, {}, tmp_path / name)
        return rows, json.loads((tmp_path / name / "report.json").read_text())

    reference, _ = written([o for c in claims for o in run_claim(c, "quick", 1)], "ref")
    clear_caches()
    with broken.planted(sim):
        here = [o for c in claims for o in run_claim(c, "quick", 1)]
        there = parallel.run_parallel(claims, "quick", 1, None, 2, lambda *_: None)
    clear_caches()
    _, here_json = written(here, "here")
    there_rows, there_json = written([o for c in claims for o in there[c]], "there")
    assert compare.differences(here_json, there_json) == []
    held = {r.outcome.claim for r in reference if r.verdict == "holds"}
    assert "PH-balance" in held
    assert any(r.outcome.claim == "PH-balance" and r.verdict == "fails" for r in there_rows)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_stops_the_workers_at_once(tmp_path, signum, code):
    # A worker inside a compilation sees its interrupt only when the compilation ends, and a
    # SIGTERM to the parent alone never reaches it: the parent stops the workers itself, and
    # the whole process group is gone within seconds.
    import os
    import signal
    import subprocess
    import sys
    import time

    argv = [sys.executable, "-m", "simdyn", "verify", "--claims", "CC-early,FS-tie,PH-balance"]
    argv += ["--jobs", "2", "--compile-cache", "none", "--out", str(tmp_path / "v")]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # the workers have started
        if "processes ..." in line:
            break
    time.sleep(8)  # inside their first claims
    if signum == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    else:
        os.kill(proc.pid, signal.SIGTERM)  # `kill PID` reaches the parent only
    start = time.perf_counter()
    assert proc.wait(timeout=60) == code
    assert time.perf_counter() - start < 15
    for _ in range(50):  # no worker is left in the process group (a zombie is reaped soon)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("a process of the interrupted run is still alive after 10 s")
