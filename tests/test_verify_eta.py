"""simdyn verify's ETA across claims (simdyn/verify/eta.py): weights, speed scaling, coverage."""

import pytest

from simdyn.verify.eta import TYPICAL_SECONDS, eta_seconds, format_eta
from simdyn.verify.registry import paper_claim_ids

CLAIM_IDS = paper_claim_ids("all")  # every registered paper's claims


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_every_claim_has_a_typical_time(scale):
    assert set(TYPICAL_SECONDS[scale]) == set(CLAIM_IDS)
    assert all(t > 0 for t in TYPICAL_SECONDS[scale].values())


def test_before_any_claim_the_estimate_is_the_reference_total():
    quick = TYPICAL_SECONDS["quick"]
    assert eta_seconds("quick", [], list(CLAIM_IDS), 0.0) == pytest.approx(sum(quick.values()))


def test_the_rest_is_scaled_by_this_runs_speed():
    # Twice as slow as the reference on the claims done: twice the reference on the rest.
    quick = TYPICAL_SECONDS["quick"]
    done, left = ["CC-train", "CC-exists"], ["SGD-OBJ", "MINLOSS"]
    elapsed = 2.0 * (quick["CC-train"] + quick["CC-exists"])
    want = 2.0 * (quick["SGD-OBJ"] + quick["MINLOSS"])
    assert eta_seconds("quick", done, left, elapsed) == pytest.approx(want)
    assert eta_seconds("quick", done + left, [], elapsed) == 0.0


def test_no_estimate_without_typical_times_and_the_format():
    assert eta_seconds("small", [], ["CC-train"], 0.0) is None
    assert eta_seconds("quick", [], ["NOT-A-CLAIM"], 0.0) is None
    assert format_eta(None) == ""
    assert format_eta(185.4) == ", ETA ~3:05"
