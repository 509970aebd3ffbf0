"""The confirmatory key follows the declared rules; the ledger keeps every confirmatory run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from simdyn.config import ConfigError
from simdyn.papers.which_features import claims, minloss
from simdyn.verify import cli as verify_cli
from simdyn.verify import ledger, registry
from simdyn.verify.registry import CLAIM_IDS

ROOT = Path(__file__).resolve().parents[1]


def _declare_minloss(monkeypatch, claim) -> None:
    """Make the registry see ``claim`` in MINLOSS's place in the first paper's CLAIMS."""
    swapped = tuple(claim if c is minloss.CLAIM else c for c in claims.CLAIMS)
    assert swapped != claims.CLAIMS
    monkeypatch.setattr(claims, "CLAIMS", swapped)
    registry._paper_declarations.cache_clear()


@pytest.fixture
def fresh_declarations():
    registry._paper_declarations.cache_clear()
    yield
    registry._paper_declarations.cache_clear()


def test_the_key_is_stable_and_moves_with_any_rule_threshold_or_design(
    monkeypatch, fresh_declarations
):
    fp = ledger.rules_fingerprint()
    assert fp == ledger.rules_fingerprint()  # deterministic
    key = ledger.confirmatory_key(fp)
    assert key == verify_cli.scale_key("full")
    assert key not in verify_cli.DEV_KEYS and key >= 1024 and key < 2**58
    assert key not in (verify_cli.SCALE_KEYS["quick"], verify_cli.SCALE_KEYS["small"])

    # a rule's decision text (its threshold) changes -> another fingerprint and key
    row = minloss.CLAIM.rows[0]
    rule = row.rules[0]
    sharper = dataclasses.replace(rule, decides=rule.decides.replace("tol", "tol / 2"))
    claim = dataclasses.replace(minloss.CLAIM, rows=(dataclasses.replace(row, rules=(sharper,)),))
    _declare_minloss(monkeypatch, claim)
    assert ledger.rules_fingerprint() != fp
    assert ledger.confirmatory_key(ledger.rules_fingerprint()) != key
    monkeypatch.undo()
    registry._paper_declarations.cache_clear()
    assert ledger.rules_fingerprint() == fp

    # a design changes -> another fingerprint
    design = minloss.DESIGNS["full"]
    bigger = dataclasses.replace(
        design, cc_train=dataclasses.replace(design.cc_train, seeds=design.cc_train.seeds + 1)
    )
    claim = dataclasses.replace(minloss.CLAIM, designs={**minloss.CLAIM.designs, "full": bigger})
    _declare_minloss(monkeypatch, claim)
    assert ledger.rules_fingerprint() != fp


def test_the_fingerprint_covers_every_claim():
    text = ledger.rules_text()
    for claim_id in CLAIM_IDS:
        assert f"{claim_id} (" in text


def _report(key: int, verdict: str) -> dict:
    return {
        "meta": {"key": key, "finished": "2026-12-07T00:00:00+00:00", "rules_commit": "abc"},
        "rows": [{"claim": "X", "verdict": verdict, "control_verdict": "fails"}],
    }


def test_append_pooled_and_refusals(tmp_path):
    path = tmp_path / "ledger.json"
    ledger.append(path, ledger.entry(_report(5000, "holds"), "f1"))
    ledger.append(path, ledger.entry(_report(6000, "fails"), "f2"))
    entries = ledger.load(path)
    assert [e["key"] for e in entries] == [5000, 6000]
    table = ledger.pooled(entries)
    assert "| X | holds/fails | fails/fails |" in table  # both outcomes kept, none hidden
    with pytest.raises(ConfigError, match="already holds"):
        ledger.append(path, ledger.entry(_report(5000, "holds"), "f1"))
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid ledger"):
        ledger.load(path)


def test_the_committed_ledger_keeps_every_earlier_confirmatory_run():
    entries = ledger.load(ROOT / "experiments" / "verify-full" / "ledger.json")
    keys = [e["key"] for e in entries]
    assert keys[:4] == [20261202, 20261203, 20261204, 20261205]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"quick": True}, "only a confirmatory run"),
        ({"quick": False, "claims": ["MINLOSS"]}, "only a confirmatory run"),
        ({"quick": False, "key": 7, "paper": "which-features"}, "derived from the rules"),
        ({"quick": False}, "one paper's confirmatory runs"),
        ({"quick": False, "paper": "all"}, "one paper's confirmatory runs"),
    ],
)
def test_ledger_is_refused_before_any_work_for_non_confirmatory_runs(tmp_path, extra, match):
    import argparse

    args = argparse.Namespace(ledger=str(tmp_path / "l.json"), out=str(tmp_path), **extra)
    with pytest.raises(ConfigError, match=match):
        verify_cli.run_verify(args)
    assert not (tmp_path / "report.json").exists()
