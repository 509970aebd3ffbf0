"""The report comparison that shows a refactor changed no result: it must see a change in any
recorded number, even in the last bit, and ignore only timings and provenance."""

import gzip
import json

import numpy as np

from simdyn.verify.compare import differences, load, main


def _report(p_hold: float = 0.125, unit: float = 1.0) -> dict:
    return {
        "meta": {"key": 7, "wall_seconds": 1.0, "rules_commit": "abc", "finished": "t0"},
        "rows": [
            {
                "claim": "X",
                "seconds": 2.0,
                "p_hold": p_hold,
                "tests": [{"name": "t", "estimate": float("nan"), "data": {"u": [0.5, unit]}}],
            }
        ],
    }


def test_identical_reports_differ_only_in_timings_and_provenance():
    b = _report()
    b["meta"].update(wall_seconds=99.0, rules_commit="def", finished="t1")
    b["rows"][0]["seconds"] = 50.0
    assert differences(_report(), b) == []  # NaN estimates compare equal too


def test_a_one_ulp_change_in_a_unit_and_a_changed_p_value_are_both_found():
    nudged = float(np.nextafter(1.0, 2.0))
    found = differences(_report(), _report(p_hold=0.25, unit=nudged))
    assert len(found) == 2
    assert found[0].startswith("rows[0].p_hold")
    assert found[1].startswith("rows[0].tests[0].data.u[1]")


def test_missing_fields_and_lengths_and_types_count():
    b = _report()
    del b["rows"][0]["p_hold"]
    b["rows"][0]["tests"][0]["data"]["u"].append(2.0)
    assert len(differences(_report(), b)) == 2
    assert differences({"n": 1}, {"n": 1.0}) == ["n: 1 != 1.0"]


def test_command_line_reads_plain_and_gzipped_reports(tmp_path, capsys):
    plain, packed = tmp_path / "a.json", tmp_path / "b.json.gz"
    plain.write_text(json.dumps(_report()))
    with gzip.open(packed, "wt") as f:
        json.dump(_report(p_hold=0.5), f)
    assert load(packed)["rows"][0]["p_hold"] == 0.5
    assert main([str(plain), str(plain)]) == 0
    assert main([str(plain), str(packed)]) == 1
    assert "1 differing fields" in capsys.readouterr().out
