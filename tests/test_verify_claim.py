"""The declarative claim framework: rules, rows, the one runner, and every claim's declaration."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from simdyn.papers.which_features.common import STREAMS
from simdyn.verify.claim import Claim, Row, RowText, Rule, describe_rules, evaluate
from simdyn.verify.common import SCALES, ClaimInfo
from simdyn.verify.registry import CLAIM_IDS, declaration
from simdyn.verify.stats import fraction_test

INFO = ClaimInfo(id="T", source="Thm 0", statement="s", control="c")


def _fraction(name: str, key: str):
    def evaluate(design, units):
        return fraction_test(name, units[key], 0.5, statistic="x", rule="r")

    return evaluate


def test_rule_templates_match_one_test_per_point_and_nothing_else():
    rule = Rule("scaling-mu{mu}", "d", lambda d, u: ())
    assert rule.matches("scaling-mu0.5") and rule.matches("scaling-mu2")
    assert not rule.matches("scaling-nu1") and not rule.matches("control:scaling-mu1")
    assert Rule("rank-2", "d", lambda d, u: ()).matches("rank-2")
    assert not Rule("rank-2", "d", lambda d, u: ()).matches("rank-3")
    assert not Rule("rank-2", "d", lambda d, u: ()).matches("rank-2b")  # the whole name


def test_a_rule_that_names_its_test_otherwise_is_an_error():
    rule = Rule("right", "d", _fraction("wrong", "a"))
    with pytest.raises(ValueError, match="'right' produced a test named 'wrong'"):
        rule.apply(None, {"a": np.ones(4, bool)})


def test_evaluate_measures_shared_units_once_and_assembles_rows():
    calls = []

    def measure(design, key):
        calls.append(key)
        return {"a": np.ones(50, bool), "b": np.zeros(50, bool)}

    def text(design, units):
        return RowText(summary="sum", design=f"n={design}", notes=("note",))

    spec = Claim(
        info=INFO,
        designs={"quick": 7},
        stream=STREAMS["CC-train"],
        rows=(
            Row(measure, (Rule("all", "d", _fraction("all", "a")),), (), text),
            Row(
                measure,
                (Rule("none", "d", _fraction("none", "b")),),
                (Rule("control:all", "d", _fraction("control:all", "a")),),
                text,
                variant="GD",
            ),
            Row(measure, (), (), text, claim="T-probe", source="Def 1", control=lambda d: f"c{d}"),
        ),
    )
    rows = evaluate(spec, 7, key=3)
    assert calls == [3 * 16 + STREAMS["CC-train"]]  # one measure, under the claim's stream
    assert [r.claim for r in rows] == ["T", "T [GD]", "T-probe"]
    assert [r.source for r in rows] == ["Thm 0", "Thm 0 (GD)", "Def 1"]
    assert [r.control for r in rows] == ["c", "c", "c7"]
    assert rows[0].tests[0].estimate == 1.0 and rows[1].tests[0].estimate == 0.0
    assert rows[1].controls[0].name == "control:all"
    assert rows[0].design == "n=7" and rows[0].notes == ("note",)


def test_a_design_check_runs_before_anything_is_measured():
    def check(design):
        raise ValueError("bad design")

    def measure(design, key):
        raise AssertionError("measured")

    spec = Claim(INFO, {}, (Row(measure, (), (), lambda d, u: RowText("", "")),), check=check)
    with pytest.raises(ValueError, match="bad design"):
        evaluate(spec, None, 0)


def test_sgd_rows_are_labelled_as_simdyn_extensions_not_as_the_papers_theorems():
    # The paper states no SGD theorem (THEORY.md section 4): a row of simdyn's SGD must say so.
    sources = {}
    for claim_id in CLAIM_IDS:
        spec = declaration(claim_id)
        for row in spec.rows:
            outcome = spec.info.outcome(
                variant=row.variant, claim=row.claim, source=row.source, design="", tests=(),
                controls=(),
            )  # fmt: skip
            sources[outcome.claim] = outcome.source
    sgd_rows = [c for c in sources if "SGD" in c]
    assert {"CC-early [SGD]", "FS-dim [SGD]", "JOINT [SGD]", "SGD-OBJ"} <= set(sgd_rows)
    for claim in sgd_rows:
        if claim == "CC-unlearn [SGD]":
            continue  # section 4.3's experiment itself states "same for SGD"
        assert sources[claim].startswith("simdyn extension (SGD)"), (claim, sources[claim])
    assert sources["JOINT [SGD]"] == "simdyn extension (SGD) of Thm 6.1"
    assert sources["JOINT [GD]"] == "Thm 6.1 (GD)"  # GD is the paper's own training
    assert not any("(SGD)" in src and not src.startswith("simdyn") for src in sources.values())


@pytest.mark.parametrize("claim_id", CLAIM_IDS)
def test_every_claim_is_declared_with_all_scales_rules_and_controls(claim_id):
    spec = declaration(claim_id)
    assert isinstance(spec, Claim) and spec.id == claim_id
    assert set(spec.designs) == set(SCALES)
    assert spec.stream is None or spec.stream in STREAMS.values()
    for row in spec.rows:
        assert row.rules and row.controls  # every verdict has a negative control
        assert all(c.name.startswith("control:") for c in row.controls)
        assert all(r.decides for r in (*row.rules, *row.controls))
    assert len(describe_rules(spec)) > len(spec.rows)


def test_every_test_of_the_committed_full_report_comes_from_a_declared_rule():
    path = Path(__file__).resolve().parents[1] / "experiments/verify-full/report.json.gz"
    report = json.loads(gzip.open(path).read())
    declared = {}
    for claim_id in CLAIM_IDS:
        spec = declaration(claim_id)
        for row in spec.rows:
            declared[spec.row_id(row)] = row
    for row in report["rows"]:
        spec = declared[row["claim"]]
        for kind, rules in (("tests", spec.rules), ("controls", spec.controls)):
            for test in row[kind]:
                assert any(r.matches(test["name"]) for r in rules), (row["claim"], test["name"])


def test_verify_rules_prints_the_declared_rules_without_running(capsys):
    from simdyn._src.cli import main

    assert main(["verify", "--rules", "--claims", "CC-minnorm,GOOD-EVENT"]) == 0
    out = capsys.readouterr().out
    assert "rule    collapse-mu0:" in out and "control control:scaling-of-v1:" in out
    assert "row CC-minnorm rate" in out and "good-event-implies" in out
    assert "CC-train" not in out  # only the chosen claims


def test_memoised_intermediates_are_per_simulator_and_cleared_with_the_runs():
    from simdyn.papers.which_features import simulators
    from simdyn.papers.which_features.runs import clear_memo

    calls = []

    @simulators.memoised
    def value(x):
        calls.append((simulators.active().name, x))
        return len(calls)

    assert value(1) == 1 and value(1) == 1  # shared between rows
    with simulators.use(simulators.by_name("step-x1.5")):
        assert value(1) == 2  # a broken simulator never sees the reference's value
    assert value(1) == 1
    clear_memo()
    assert value(1) == 3
