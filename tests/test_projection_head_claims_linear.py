"""The projection-head paper's linear claims (simdyn.papers.projection_head.claims_linear).

* Each claim at the "small" scale: every row holds and every control fails (report.evaluate's
  verdicts, Holm within the claim), and the designs' sizes follow the scale contract.
* The derivations the rules' tolerances rest on, checked on random matrices: (T1) the loss-gap
  bound on the Gram matrix, (T2) the imbalance bound on the encoder's weights, (T3) the drift
  bound of one GD step; the probe's SVM against scipy's; Cor. 3.7's predicates.
* Broken simulators (a head that is not trained, the sign-FLIP moments) make the relevant rows
  fail.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from scipy.optimize import minimize

import simdyn
from simdyn.config import ConfigError
from simdyn.papers.projection_head import claims_linear as cl
from simdyn.papers.projection_head import closed_forms as cf
from simdyn.papers.projection_head import linear
from simdyn.verify import report
from simdyn.verify.claim import describe_rules, evaluate

simdyn.enable_x64()

BY_ID = {c.id: c for c in cl.CLAIMS}


def _verdicts(claim, design, key: int = 0) -> list[report.RowResult]:
    return report.evaluate(evaluate(claim, design, key))


def _assert_holds(rows: list[report.RowResult]) -> None:
    for r in rows:
        detail = [(t.name, t.estimate, t.p_hold, t.p_fail) for t in r.outcome.tests]
        assert r.verdict == "holds", (r.outcome.claim, detail)
        assert r.control_verdict == "fails", (r.outcome.claim, r.outcome.controls)


def test_every_claim_has_the_three_scales_and_full_has_1000_units_per_point():
    assert [c.id for c in cl.CLAIMS] == [
        "PH-min-norm",
        "PH-balance",
        "PH-weights",
        "PH-sample-complexity",
        "PH-examples",
        "PH-depth",
    ]
    for claim in cl.CLAIMS:
        assert set(claim.designs) == {"small", "quick", "full"}
        full = claim.designs["full"]
        counts = [
            getattr(full, f.name)
            for f in dataclasses.fields(full)
            if f.name in ("seeds", "instances", "effect_seeds", "probe_seeds")
        ]
        assert counts and min(counts) >= 1000, (claim.id, counts)
        for row in claim.rows:
            assert row.controls, (claim.id, row.variant)
        assert describe_rules(claim)[0].startswith(claim.id)


def test_min_norm_small():
    _assert_holds(_verdicts(BY_ID["PH-min-norm"], cl.MIN_NORM_DESIGNS["small"]))


def test_examples_small():
    rows = _verdicts(BY_ID["PH-examples"], cl.EXAMPLES_DESIGNS["small"])
    _assert_holds(rows)
    # each case's near miss is decided by instances with Delta >= 0
    for c in rows[0].outcome.controls:
        assert c.failures > 0


@pytest.mark.slow  # compile-heavy; CI runs the slow tier too
def test_balance_small():
    _assert_holds(_verdicts(BY_ID["PH-balance"], cl.BALANCE_DESIGNS["small"]))


@pytest.mark.slow
def test_weights_small():
    rows = _verdicts(BY_ID["PH-weights"], cl.WEIGHTS_DESIGNS["small"])
    assert [r.outcome.claim for r in rows] == [
        "PH-weights",
        "PH-weights [leftover]",
        "PH-weights [learning time]",
    ]
    _assert_holds(rows)


@pytest.mark.slow
def test_sample_complexity_small():
    _assert_holds(_verdicts(BY_ID["PH-sample-complexity"], cl.SAMPLE_DESIGNS["small"]))


@pytest.mark.slow
def test_depth_small():
    _assert_holds(_verdicts(BY_ID["PH-depth"], cl.DEPTH_DESIGNS["small"]))


def test_balance_design_checks():
    bad = dataclasses.replace(cl.BALANCE_DESIGNS["small"], etas=(0.003, 0.01, 0.02))
    with pytest.raises(ConfigError, match="integers"):
        cl.check_balance(bad)
    with pytest.raises(ConfigError, match="3 distinct"):
        cl.check_balance(dataclasses.replace(bad, etas=(0.01, 0.02)))


# --------------------------------------------------------------------------------------------
# The derivations behind the tolerances
# --------------------------------------------------------------------------------------------


def _z_and_b(w, phi, alpha, sigma, p):
    fw = cf.feature_weights(phi, alpha, sigma, p)
    m, mp = cf.population_moments(phi, alpha, sigma)
    z = np.sqrt(m)[:, None] * (w.T @ w) * np.sqrt(m)[None, :]
    return fw, m, mp, z, np.diag(np.where(fw.kept, fw.beta, 0.0))


@pytest.mark.parametrize("seed", range(5))
def test_t1_the_loss_gap_bounds_the_distance_to_the_minimizer(seed):
    rng = np.random.default_rng(seed)
    d, p = 6, 3
    phi, alpha, sigma = rng.uniform(0.5, 1.5, d), rng.uniform(0, 0.8, d), 0.7
    w_star = cf.min_norm_end_to_end(phi, alpha, sigma, p)
    for scale in (1e-1, 1e-2, 1e-4):
        w = w_star + scale * rng.standard_normal((p, d))
        fw, m, mp, z, b_p = _z_and_b(w, phi, alpha, sigma, p)
        loss = -2 * np.sum(w**2 * mp) + np.sum(((w * m) @ w.T) ** 2)
        gap = loss - cl.loss_minimum(fw)
        assert gap >= -1e-12
        r = cl.gram_radius(gap, fw, m, w, cl.loss_roundoff(d, p, cl.loss_minimum(fw)))
        assert np.linalg.norm(z - b_p) <= r * (1 + 1e-9)
        # the loss identity L = ||Z - B||^2 - ||B||^2
        beta = fw.beta
        assert loss == pytest.approx(np.sum((z - np.diag(beta)) ** 2) - np.sum(beta**2), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_t2_the_imbalance_bounds_the_encoder_against_the_square_root(seed):
    """|(W1^T W1)_ii - ((W^T W)^(1/2))_ii| <= ||W1 W1^T - W2^T W2||_2 for ANY W1, W2."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        w1 = rng.standard_normal((3, 5)) * rng.uniform(0.1, 2)
        w2 = rng.standard_normal((3, 3)) * rng.uniform(0.1, 2)
        a = w1.T @ w1
        w = w2 @ w1
        evals, evecs = np.linalg.eigh(w.T @ w)
        h = (evecs * np.sqrt(np.maximum(evals, 0))) @ evecs.T
        delta = np.linalg.norm(w1 @ w1.T - w2.T @ w2, 2)
        assert np.all(np.abs(np.diag(a) - np.diag(h)) <= delta * (1 + 1e-9) + 1e-12)


def test_t3_one_gd_step_moves_the_imbalance_by_the_product_of_the_steps():
    rng = np.random.default_rng(0)
    m, mp = cf.population_moments([1.0, 0.7, 0.4], [0.0, 0.3, 0.6], 0.5)
    w1, w2 = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    eta = 0.01
    w = w2 @ w1
    g = -4.0 * w * mp + 4.0 * (w * m) @ w.T @ (w * m)
    d1, d2 = -eta * w2.T @ g, -eta * g @ w1.T
    n1, n2 = w1 + d1, w2 + d2
    moved = (n1 @ n1.T - n2.T @ n2) - (w1 @ w1.T - w2.T @ w2)
    np.testing.assert_allclose(moved, d1 @ d1.T - d2.T @ d2, atol=1e-14)
    assert np.linalg.norm(moved) <= np.sum(d1**2) + np.sum(d2**2)


@pytest.mark.parametrize("seed", range(3))
def test_the_probe_svm_is_scipys_hard_margin_svm(seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((6, 4, 3))
    y = np.sign(z[..., 0] + 0.3)
    v, ok = cl.svm_hard_margin(z, y, sweeps=3000)
    for u in range(6):
        cons = {"type": "ineq", "fun": lambda x, u=u: y[u] * (z[u] @ x) - 1.0}
        res = minimize(
            lambda x: x @ x, np.ones(3), constraints=[cons], method="SLSQP", options={"ftol": 1e-14}
        )
        if res.success and ok[u]:
            np.testing.assert_allclose(v[u], res.x, atol=1e-5)
    assert ok.mean() >= 0.5


def test_probe_errors_on_the_closed_form_representation_favour_the_smaller_r():
    """Diagonal representations with the closed-form weights of the probe's Delta < 0 setting:
    the encoder (smaller r) has the smaller few-shot error on average."""
    design = cl.SAMPLE_DESIGNS["small"]
    phi, alpha, sigma, j = design.probe_neg
    fw = cf.feature_weights(phi, alpha, sigma, design.p)
    maps = [np.broadcast_to(np.diag(fw.weights[i]), (400, 6, 6)) for i in range(2)]
    err, ok = cl.probe_errors(maps, np.ones(6), j, 3, np.random.default_rng(0), 300)
    assert ok.all()
    r = cf.sample_complexity(fw.weights, np.ones(6), j)
    assert r[0] < r[1] and err[0].mean() < err[1].mean()


def test_cor_3_7_predicates_and_near_misses():
    rng = np.random.default_rng(5)
    for case in cl.CASES:
        ex = cf.corollary_example(case, rng, d=6)
        assert cl.meets_case(case, ex)
        near = cl.near_miss(case, ex, 0.95)
        assert not cl.meets_case(case, near)
    # case 1 with j* the smallest alpha: every other gamma is smaller, so Delta > 0
    ex = cf.corollary_example(1, rng, d=5)
    near = cl.near_miss(1, ex, 0.95)
    assert cf.delta(near.phi, near.alpha, near.sigma, near.p, near.phihat, near.j_star) > 0


def test_fig5_as_stated_is_monotone_and_far_from_the_figure():
    for c_star in (0.45, 0.5, 0.55, 0.6):
        r = cl.fig5_curves(c_star)
        assert np.all(np.diff(r) < 0) and r[0] > 8.4 and r[-1] > 4


def test_streams_differ_by_claim_and_key():
    a = cl.stream_rng("PH-min-norm", 0).random()
    assert a != cl.stream_rng("PH-examples", 0).random()
    assert a != cl.stream_rng("PH-min-norm", 1).random()
    assert a == cl.stream_rng("PH-min-norm", 0).random()
    with pytest.raises(ConfigError, match="key"):
        cl.stream_key("PH-balance", -1)


# --------------------------------------------------------------------------------------------
# Broken simulators
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_programs():
    """Compiled programs are cached per run shape: clear them around a fault."""
    linear._train_of.cache_clear()
    yield
    linear._train_of.cache_clear()


def _untrained_head_loss(params, m, m_plus):
    w = params[0]
    for layer in params[1:]:
        w = jax.lax.stop_gradient(layer) @ w
    return -2.0 * (w**2 * m_plus).sum() + (((w * m) @ w.T) ** 2).sum()


def _row(rows, name):
    return next(r for r in rows if r.outcome.claim == name)


TINY_WEIGHTS = dataclasses.replace(
    cl.WEIGHTS_DESIGNS["small"],
    seeds=8,
    steps=2000,
    effect_seeds=4,
    sigmas=(0.1, 0.2),
    scales=(0.5,),
    scale_sigma=0.1,
    effect_steps=1000,
)


@pytest.mark.slow
def test_a_head_that_is_not_trained_fails_the_balance_and_weights_rows(monkeypatch, fresh_programs):
    monkeypatch.setattr(linear, "population_loss", _untrained_head_loss)
    balance = _verdicts(BY_ID["PH-balance"], cl.BALANCE_DESIGNS["small"])
    assert balance[0].verdict == "fails"
    drift = next(t for t in balance[0].outcome.tests if t.name == "drift-bound")
    assert drift.failures > 0
    rows = _verdicts(BY_ID["PH-weights"], TINY_WEIGHTS)
    weights = _row(rows, "PH-weights")
    assert weights.verdict != "holds"
    encoder = [t for t in weights.outcome.tests if t.name.startswith("encoder[")]
    assert any(t.failures for t in encoder) or not any(t.n_units for t in encoder)


@pytest.mark.slow
def test_the_sign_flip_augmentation_fails_the_weights_row(monkeypatch, fresh_programs):
    def flip_moments(phi, alpha, sigma):
        m, _ = cf.population_moments(phi, alpha, sigma)
        return m, (1 - 2 * np.asarray(alpha)) ** 2 * np.asarray(phi) ** 2

    monkeypatch.setattr(linear, "population_moments", flip_moments)
    rows = _verdicts(BY_ID["PH-weights"], TINY_WEIGHTS)
    weights = _row(rows, "PH-weights")
    assert weights.verdict == "fails"
    # the runs converge to the flip moments' minimum, not Def. 3.2's: no run reaches L*
    conv = next(t for t in weights.outcome.tests if t.name == "converges[balanced]")
    assert conv.estimate == 0.0
