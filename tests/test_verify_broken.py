"""A paper's own broken simulators (simdyn.verify.broken) and ``simdyn verify --self-test
--paper NAME`` (simdyn.verify.selftest.run_planted), on a toy paper written into a temporary
folder: a fault the claim must catch, one it cannot, a paper that declares none; and the first
paper's self-test still takes its own path.
"""

from __future__ import annotations

import sys
import types

import pytest
from toy_paper_source import TOY, _write_toy

from simdyn.papers.which_features import simulators
from simdyn.verify import registry, selftest
from simdyn.verify.broken import BrokenSimulator, patched, planting


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Yields a function registering a toy paper from source; forgets them all afterwards."""
    names: list[str] = []

    def register(name: str, source: str = TOY) -> str:
        names.append(_write_toy(tmp_path, monkeypatch, name, source))
        return name

    yield register
    registry._paper_declarations.cache_clear()
    for name in names:
        sys.modules.pop(f"{name}.claims", None)
        sys.modules.pop(name, None)


def _verify(paper: str, out, *extra: str) -> int:
    from simdyn._src.cli import main

    return main(["verify", "--self-test", "--paper", paper, "--out", str(out), *extra])


# --- the framework -------------------------------------------------------------------------------


def test_patched_plants_and_restores_and_resets_on_both_sides():
    owner = types.SimpleNamespace(f="right", g=1)
    calls: list[tuple[str, int]] = []
    with patched([(owner, "f", "wrong"), (owner, "g", 2)], [lambda: calls.append((owner.f, 0))]):
        assert (owner.f, owner.g) == ("wrong", 2)
    assert (owner.f, owner.g) == ("right", 1)
    assert calls == [("right", 0), ("right", 0)]  # before planting and after restoring
    with pytest.raises(RuntimeError), patched([(owner, "f", "wrong")]):
        raise RuntimeError
    assert owner.f == "right"  # restored on error too


def test_planting_gives_a_fresh_context_manager_each_time():
    owner = types.SimpleNamespace(x=0)
    sim = BrokenSimulator("x1", "x is 1", planting((owner, "x", 1)))
    for _ in range(2):  # a generator context manager is single-use: plant() must make a new one
        with sim.plant():
            assert owner.x == 1
        assert owner.x == 0


def test_the_first_paper_s_broken_simulators_through_the_registry():
    sims = registry.broken_simulators("which-features")
    assert [s.name for s in sims] == [s.name for s in simulators.BROKEN]
    with sims[0].plant():
        assert simulators.active() is simulators.BROKEN[0]
    assert simulators.active() is simulators.REFERENCE


# --- the command line on a toy paper -------------------------------------------------------------


def test_a_toy_paper_s_fault_is_caught(toy, tmp_path, capsys):
    paper = toy("toy_broken")
    assert [s.name for s in registry.broken_simulators(paper)] == ["offset-0.5"]
    assert _verify(paper, tmp_path / "st") == 0
    out = capsys.readouterr().out
    assert "1 of 1 broken simulators caught" in out
    report = (tmp_path / "st" / "self-test.md").read_text()
    assert "| offset-0.5 | every draw 0.5 too large | yes | TOY-mean | - |" in report
    claims = sys.modules[f"{paper}.claims"]
    assert claims.OFFSET == 0.0  # the fault is gone after the self-test


def test_a_fault_no_row_catches_fails_the_self_test(toy, tmp_path, capsys):
    weak = TOY.replace('"offset-0.5", "every draw 0.5 too large"', '"offset-0.01", "0.01 off"')
    paper = toy("toy_weak", weak.replace('"OFFSET", 0.5', '"OFFSET", 0.01'))
    assert _verify(paper, tmp_path / "st") == 1
    out = capsys.readouterr().out
    assert "0 of 1 broken simulators caught" in out
    assert "NOT CAUGHT (a defect of the verifier): offset-0.01" in out


def test_a_paper_without_broken_simulators_is_a_clear_error(toy, tmp_path, capsys):
    paper = toy("toy_none", TOY.split("_HERE =")[0])
    assert _verify(paper, tmp_path / "st") == 2
    assert "declares no broken simulators" in capsys.readouterr().err
    assert not (tmp_path / "st").exists()  # refused before anything ran


def test_the_first_paper_self_tests_through_the_same_path_with_its_declared_simulators(
    monkeypatch, tmp_path
):
    # --paper which-features reaches run_planted with the paper's declared BROKEN (its
    # simulators wrapped as BrokenSimulators): no path of its own any more; the default (every
    # paper) with the first paper's, then the second paper's.
    seen: list[list[str]] = []

    def planted(run_all, broken, progress=None):
        seen.append([b.name for b in broken])
        return [], []

    monkeypatch.setattr(selftest, "run_planted", planted)
    for paper in (None, "which-features"):
        args = ["--paper", paper] if paper else []
        from simdyn._src.cli import main

        assert main(["verify", "--self-test", *args, "--out", str(tmp_path / "st")]) == 0
    from simdyn.papers.projection_head import broken as ph_broken

    expected = [s.name for s in simulators.BROKEN]
    every = expected + [s.name for s in ph_broken.BROKEN]
    assert seen == [every, expected] and len(expected) >= 6


def test_a_paper_s_broken_simulator_reruns_only_that_paper_s_claims(toy, tmp_path, monkeypatch):
    # A fault lives in one paper's modules: under it, the other papers' rows keep their
    # reference outcomes (each paper is its own Holm family), so their claims do not run again.
    monkeypatch.setattr(registry, "PAPERS", {})  # only the two toy papers below
    counted = TOY.replace(
        "def measure(design, key):\n",
        "CALLS = []\n\n\ndef measure(design, key):\n    CALLS.append(key)\n",
    )
    one = toy("toy_one", counted)
    two = toy("toy_two", counted.replace("TOY-mean", "TOY2-mean").replace("offset-0.5", "two-0.5"))
    assert _verify("all", tmp_path / "st") == 0
    report = (tmp_path / "st" / "self-test.md").read_text()
    assert "| offset-0.5 | every draw 0.5 too large | yes | TOY-mean | - |" in report
    assert "| two-0.5 | every draw 0.5 too large | yes | TOY2-mean | - |" in report
    for paper in (one, two):  # the reference run and its own simulator's run, not the other's
        assert len(sys.modules[f"{paper}.claims"].CALLS) == 2, paper
