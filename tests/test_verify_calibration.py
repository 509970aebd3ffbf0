"""Null calibration's bookkeeping: key parsing, resumption, the false-fail judgement."""

from __future__ import annotations

import json

import pytest

from simdyn import ConfigError
from simdyn.verify import calibration


def _key_file(folder, key, verdicts):
    rows = [
        {"claim": c, "verdict": v, "control_verdict": "fails", "sub_tests": [], "sub_verdicts": []}
        for c, v in verdicts.items()
    ]
    data = {"key": key, "scale": "quick", "seconds": 1.0, "rows": rows}
    (folder / f"key-{key}.json").write_text(json.dumps(data))


def test_parse_keys_ranges_lists_and_bad_input():
    assert calibration.parse_keys("3-5,9,4") == [3, 4, 5, 9]
    for bad in ("", "-1", "x"):
        with pytest.raises((ConfigError, ValueError)):
            calibration.parse_keys(bad)


def test_one_false_fail_in_twenty_is_within_alpha_and_two_are_a_defect(tmp_path):
    for key in range(20):
        _key_file(tmp_path, key, {"A": "fails" if key == 0 else "holds", "B": "holds"})
    table, ok = calibration.summarize(tmp_path, set())
    assert ok and "| A | 19 | 0 | 1 [" in table
    _key_file(tmp_path, 1, {"A": "fails", "B": "holds"})
    table, ok = calibration.summarize(tmp_path, set())
    assert not ok and "defect" in table
    # A row the confirmatory run found to fail is a finding, never a false fail.
    table, ok = calibration.summarize(tmp_path, {"A"})
    assert ok and "a finding" in table


def test_finished_keys_are_not_run_again(tmp_path, monkeypatch):
    _key_file(tmp_path, 7, {"A": "holds"})
    ran = []
    monkeypatch.setattr(
        calibration,
        "run_key",
        lambda key, scale, claims: ran.append(key) or {"key": key, "scale": scale,
                                                        "seconds": 0.0, "rows": []},
    )  # fmt: skip
    calibration.calibrate([7, 8], "quick", tmp_path, claims=["FS-tie"])
    assert ran == [8] and (tmp_path / "key-8.json").exists()
    assert not list(tmp_path.glob("*.tmp"))
