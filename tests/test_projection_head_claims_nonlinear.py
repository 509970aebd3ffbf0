"""PH-nonlinear, PH-supervised and PH-reweight: the rules against an independent recursion, the
claims at the small scale (rows hold, controls fail), and one broken simulator per claim (the
fault makes a row fail).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from simdyn.papers.projection_head import claims_nonlinear as cn
from simdyn.papers.projection_head import nonlinear as nl
from simdyn.verify import report
from simdyn.verify.claim import describe_rules, evaluate

KEY = 5  # a development key


def _s(a, b):
    return max(a - b, 0.0) - max(-a - b, 0.0)


def _s_a(a, b):  # d s / d a
    return 1.0 if abs(a) > b else 0.0


def _s_b(a, b):  # d s / d b
    return -np.sign(a) if abs(a) > b else 0.0


def numpy_coordinate_gd(w1, w2, b1, b2, kind, eta, steps, log_every, train_b=True):
    """Coordinate 2 of the diagonal network under GD on L_2 = g^4 (quartic) or g^2, written out
    by hand (input 1). Returns (R, 4) rows (w1, w2, b1, b2) at the log steps."""
    rows = []
    for t in range(steps + 1):
        if t % log_every == 0:
            rows.append((w1, w2, b1, b2))
        h = _s(w1, b1)
        g = _s(w2 * h, b2)
        dl = 4 * g**3 if kind == "quartic" else 2 * g
        dg_dh = _s_a(w2 * h, b2) * w2
        grads = (
            dl * dg_dh * _s_a(w1, b1),
            dl * _s_a(w2 * h, b2) * h,
            dl * dg_dh * _s_b(w1, b1),
            dl * _s_b(w2 * h, b2),
        )
        w1, w2 = w1 - eta * grads[0], w2 - eta * grads[1]
        if train_b:
            b1, b2 = b1 - eta * grads[2], b2 - eta * grads[3]
    return np.array(rows)


def _coordinate_from_rows(rows: np.ndarray, b0: float) -> cn.Coordinate:
    w1, w2, b1, b2 = (rows[None, :, i] for i in range(4))
    h = np.maximum(np.abs(w1) - b1, 0)
    g = np.maximum(np.abs(w2) * h - b2, 0)
    return cn.Coordinate(np.array([b0]), np.abs(w2), np.abs(w1), b1, b2, h, g, np.array([True]))


@pytest.mark.parametrize("loss, kind", [("cl", "quartic"), ("sl", "quadratic")])
def test_the_engine_follows_the_hand_written_recursion_and_every_rule_holds_on_it(loss, kind):
    design = cn.DiagonalDesign(steps=400, log_every=50)
    run = cn.diagonal_run(design, loss)
    out = nl.simulate(run, 2, 3)
    p = out.params[:, :, :, :, cn.FEATURE]  # (S, R, 2, L)
    for s in range(2):
        w1, w2, b1, b2 = p[s, 0, 0, 0], p[s, 0, 0, 1], p[s, 0, 1, 0], p[s, 0, 1, 1]
        rows = numpy_coordinate_gd(w1, w2, b1, b2, kind, design.lr, design.steps, 50)
        np.testing.assert_allclose(rows[:, 0], p[s, :, 0, 0], rtol=1e-12)
        np.testing.assert_allclose(rows[:, 1], p[s, :, 0, 1], rtol=1e-12)
        np.testing.assert_allclose(rows[:, 2], p[s, :, 1, 0], rtol=1e-12)
        np.testing.assert_allclose(rows[:, 3], p[s, :, 1, 1], rtol=1e-12)
    c = cn.coordinate(out, np.full(2, run.b0))
    assert cn.monotone_passed(c).all()
    assert cn.head_off_passed(c, kind, design.lr, design.steps).all()
    assert cn.encoder_passed(c).all()
    assert np.all(cn.conserved_error(c) <= cn.conserved_bound(c, kind, design.lr, design.steps))


def test_the_decay_bound_is_valid_and_not_loose_on_a_long_recursion():
    # the quartic bound from K_T: g_T below it, within a factor 2 (K falls by < 2x)
    rows = numpy_coordinate_gd(0.9, 0.25, 0.1, 0.1, "quartic", 0.05, 3000, 3000)
    c = _coordinate_from_rows(rows, 0.1)
    log_bound = cn.head_bound(c, "quartic", 0.05, 3000)[0]
    assert np.log(c.g[0, -1]) <= log_bound < np.log(c.g[0, -1]) + np.log(2)
    assert cn.conserved_error(c)[0] <= cn.conserved_bound(c, "quartic", 0.05, 3000)[0]


def test_frozen_thresholds_break_the_conservation_law_and_a_rise_breaks_monotone():
    rows = numpy_coordinate_gd(0.9, 0.25, 0.1, 0.1, "quartic", 0.05, 2000, 100, train_b=False)
    c = _coordinate_from_rows(rows, 0.1)
    assert cn.conserved_error(c)[0] > 1e3 * cn.conserved_bound(c, "quartic", 0.05, 2000)[0]
    assert not cn.monotone_passed(c)[0]  # b never rises
    good = _coordinate_from_rows(
        numpy_coordinate_gd(0.9, 0.25, 0.1, 0.1, "quartic", 0.05, 200, 50), 0.1
    )
    bumped = good._replace(u=good.u.copy())
    bumped.u[0, 2] = bumped.u[0, 1] * (1 + 1e-12)
    assert cn.monotone_passed(good)[0] and not cn.monotone_passed(bumped)[0]


def test_the_designs_meet_the_scale_rules_and_the_rules_are_declared():
    for designs in (cn.DIAGONAL_DESIGNS, cn.REWEIGHT_DESIGNS):
        assert set(designs) == {"small", "quick", "full"}
        assert designs["full"].seeds >= 1000  # >= 1000 independent seeds per design point
    for claim in cn.CLAIMS:
        lines = describe_rules(claim)
        assert any("control" in line for line in lines)
        for row in claim.rows:
            assert row.rules and row.controls
    # the theorem's init conditions hold for every b0 of the designs (w2_low > 0)
    run = cn.diagonal_run(cn.DIAGONAL_DESIGNS["quick"])
    for b0 in cn.DIAGONAL_DESIGNS["quick"].b0s:
        p = nl.init_params(jax.random.key(1), run, b0)
        u, w1 = abs(float(p["w"][1][1])), abs(float(p["w"][0][1]))
        assert u <= np.sqrt(b0) and u * (w1 - b0) >= b0


# --- the claims at the small scale -----------------------------------------------------------


def _rows(claim, design=None):
    outcomes = evaluate(claim, claim.designs["small"] if design is None else design, KEY)
    return {r.outcome.claim: r for r in report.evaluate(outcomes)}


@pytest.fixture
def fresh_programs():
    """Forget the cached per-seed functions (a monkeypatched model needs new ones)."""
    nl._train_of.cache_clear()
    yield
    nl._train_of.cache_clear()


@pytest.mark.slow
@pytest.mark.parametrize("claim", cn.CLAIMS, ids=lambda c: c.id)
def test_every_row_holds_and_every_control_fails_at_the_small_scale(claim):
    rows = _rows(claim)
    assert len(rows) == len(claim.rows)
    for name, r in rows.items():
        assert r.verdict == "holds", (name, [(t.name, t.p_hold) for t in r.outcome.tests])
        assert r.control_verdict == "fails", (
            name,
            [(t.name, t.p_fail) for t in r.outcome.controls],
        )


@pytest.mark.slow
def test_a_sign_flip_instead_of_a_redraw_fails_ph_nonlinear(monkeypatch, fresh_programs):
    # the broken simulator: the positive pairs' sign agreement of a flip, (1 - 2 alpha)^2
    def flip_weights(run):
        return (1.0 - 2.0 * np.asarray(run.alpha)) ** 2

    monkeypatch.setattr(nl, "positive_weights", flip_weights)
    r = _rows(cn.CLAIM_NONLINEAR)["PH-nonlinear"]
    assert r.verdict == "fails"
    tests = {t.name: t for t in r.outcome.tests}
    assert tests["head-off"].failures == tests["head-off"].n_units


@pytest.mark.slow
def test_thresholds_that_are_not_trained_fail_ph_supervised(monkeypatch, fresh_programs):
    right = nl.trainable_mask

    def frozen_thresholds(run, params):
        mask = right(run, params)
        return {"w": mask["w"], "b": tuple(0 * b for b in mask["b"])}

    monkeypatch.setattr(nl, "trainable_mask", frozen_thresholds)
    rows = _rows(cn.CLAIM_SUPERVISED)
    for name in ("PH-supervised [SCL]", "PH-supervised [SL]"):
        assert rows[name].verdict == "fails", name
        tests = {t.name: t for t in rows[name].outcome.tests}
        assert tests["conserved"].failures > 0 and tests["monotone"].failures > 0


@pytest.mark.slow
def test_a_head_whose_kappa_is_not_applied_fails_ph_reweight(monkeypatch, fresh_programs):
    # the broken simulator: the fixed head is the identity whatever kappa says
    monkeypatch.setattr(nl, "head_scales", lambda kappa, p, dtype=None: np.ones(p))
    rows = _rows(cn.CLAIM_REWEIGHT)
    assert rows["PH-reweight [even]"].verdict == "fails"
    assert rows["PH-reweight [switch-off]"].verdict == "fails"
