"""``simdyn verify --expect FILE`` and the verify exit codes, on synthetic rows (no training).

``registry.run_claim`` is replaced by a function that returns hand-made rows, so the command
runs end to end (report, figures, verdicts, exit code) in about a second.
"""

import json

import numpy as np
import pytest

from simdyn._src.cli import main
from simdyn.verify import expect
from simdyn.verify.common import ClaimOutcome
from simdyn.verify.stats import exact_test


def _test(name: str, failing: int):
    return exact_test(name, np.arange(50) >= failing, statistic="s", rule="r")


def _rows(claim_failing: int = 0, control_failing: int = 50) -> list[ClaimOutcome]:
    """Two rows of claim CC-train: 'CC-train' (holds with no failing instance) and 'CC-train
    [X]' (fails when ``claim_failing`` > 0); controls fail unless ``control_failing`` is 0."""
    ok = ClaimOutcome("CC-train", "src", "d", (_test("a", 0),), (_test("c", 50),), "ctrl")
    other = ClaimOutcome(
        "CC-train [X]",
        "src",
        "d",
        (_test("b", claim_failing),),
        (_test("c", control_failing),),
        "ctrl",
    )
    return [ok, other]


@pytest.fixture
def fake_claims(monkeypatch):
    import simdyn.verify.registry as registry
    from simdyn.verify import cli

    state = {"rows": _rows()}
    monkeypatch.setattr(registry, "run_claim", lambda *a, **k: state["rows"])
    # The synthetic rows change between calls into one --out: no resume from checkpoints (a
    # clean checkout would reuse the previous call's finished claim).
    monkeypatch.setattr(cli, "_code_state", lambda: None)
    return state


def _expected(tmp_path, rows) -> str:
    path = tmp_path / "expected.json"
    path.write_text(json.dumps({"scale": "quick", "key": 1, "rows": rows}))
    return str(path)


HOLDS = {"claim": "CC-train", "verdict": "holds", "control_verdict": "fails"}
HOLDS_X = {"claim": "CC-train [X]", "verdict": "holds", "control_verdict": "fails"}


def _verify(tmp_path, *extra: str) -> int:
    return main(["verify", "--claims", "CC-train", "--out", str(tmp_path / "rep"), *extra])


def test_expect_exits_0_when_every_verdict_matches(tmp_path, fake_claims, capsys):
    assert _verify(tmp_path, "--expect", _expected(tmp_path, [HOLDS, HOLDS_X])) == 0
    assert "all 2 rows as expected" in capsys.readouterr().out


def test_expect_exits_1_and_names_the_rows_that_deviate(tmp_path, fake_claims, capsys):
    fake_claims["rows"] = _rows(claim_failing=1)  # one failing instance: the row fails
    assert _verify(tmp_path, "--expect", _expected(tmp_path, [HOLDS, HOLDS_X])) == 1
    out = capsys.readouterr().out
    assert "CC-train [X]: verdict fails, expected holds" in out
    assert "CC-train: verdict" not in out  # the matching row is not listed


def test_expect_flags_a_control_verdict_and_a_row_missing_from_the_file(tmp_path, fake_claims):
    wrong_control = dict(HOLDS_X, control_verdict="holds")
    assert _verify(tmp_path, "--expect", _expected(tmp_path, [HOLDS, wrong_control])) == 1
    assert _verify(tmp_path, "--expect", _expected(tmp_path, [HOLDS])) == 1


def test_expect_accepts_a_whole_report_json(tmp_path, fake_claims):
    assert _verify(tmp_path) == 0
    report = tmp_path / "rep" / "report.json"
    assert _verify(tmp_path, "--expect", str(report)) == 0
    fake_claims["rows"] = _rows(claim_failing=3)
    assert _verify(tmp_path, "--expect", str(report)) == 1


def test_without_expect_a_control_that_does_not_fail_exits_1(tmp_path, fake_claims, capsys):
    fake_claims["rows"] = _rows(claim_failing=1)  # a failing claim is a finding: exit 0
    assert _verify(tmp_path) == 0
    fake_claims["rows"] = _rows(control_failing=0)  # a control that holds: exit 1
    assert _verify(tmp_path) == 1
    assert "NEGATIVE CONTROL DID NOT FAIL" in capsys.readouterr().out


def test_bad_expect_files_are_bad_input_before_anything_runs(tmp_path, fake_claims, capsys):
    fake_claims["rows"] = None  # running a claim would crash: the file must be refused first
    assert _verify(tmp_path, "--expect", str(tmp_path / "missing.json")) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert _verify(tmp_path, "--expect", str(bad)) == 2
    bad.write_text(json.dumps({"rows": [{"claim": "CC-train"}]}))
    assert _verify(tmp_path, "--expect", str(bad)) == 2
    assert "--expect" in capsys.readouterr().err


def test_deviations_in_scale_key_and_rows_not_run():
    want = {"scale": "quick", "key": 1, "rows": [HOLDS, HOLDS_X]}
    got = [HOLDS]
    assert expect.deviations(want, got, {"scale": "quick", "key": 1}, partial=True) == []
    assert expect.deviations(want, got, {"scale": "quick", "key": 1}) == [
        "CC-train [X]: expected but not run"
    ]
    assert expect.deviations(want, [HOLDS, HOLDS_X], {"scale": "full", "key": 1}) == [
        "scale: expected 'quick', ran 'full'"
    ]
    seeded = dict(want, seeds_override=None)
    assert expect.deviations(seeded, [HOLDS, HOLDS_X], {"scale": "quick", "key": 1}) == []
    assert expect.deviations(
        seeded, [HOLDS, HOLDS_X], {"scale": "quick", "key": 1, "seeds_override": 8}
    ) == ["seeds_override: expected None, ran 8"]


def test_from_report_round_trips_through_the_module_entry_point(tmp_path, capsys):
    report = {
        "meta": {"scale": "quick", "key": 1, "rules_commit": "abc"},
        "rows": [dict(HOLDS, scope="all points", tests=[])],
    }
    src, dst = tmp_path / "report.json", tmp_path / "quick.json"
    src.write_text(json.dumps(report))
    assert expect.main([str(src), str(dst)]) == 0
    assert json.loads(dst.read_text()) == {
        "scale": "quick",
        "key": 1,
        "seeds_override": None,
        "rules_commit": "abc",
        "rows": [HOLDS],
    }
