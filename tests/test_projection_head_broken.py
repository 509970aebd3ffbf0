"""The projection-head paper's broken simulators (simdyn.papers.projection_head.broken).

* Fast: each fault does what it says (the loss keeps its value while the head's gradient is
  zero or 1.1x; the sampler and the moments become a flip's; the masks freeze what they name),
  and planting it leaves the paper's modules exactly as they were.
* Slow: each fault is caught at the small scale by the self-test's rule
  (:func:`simdyn.verify.selftest.compare`): a row of its target claim that holds on the
  reference fails under it; and ``simdyn verify --self-test --paper projection-head`` catches
  every fault with the quick designs replaced by small ones.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simdyn
from simdyn.papers.projection_head import broken as bk
from simdyn.papers.projection_head import claims as phc
from simdyn.papers.projection_head import closed_forms as cf
from simdyn.papers.projection_head import data as phdata
from simdyn.papers.projection_head import linear
from simdyn.papers.projection_head import nonlinear as nl
from simdyn.verify import registry, report, selftest
from simdyn.verify.claim import evaluate

simdyn.enable_x64()

KEY = 11  # the small scale's registered key (simdyn.verify.cli.SCALE_KEYS)
BY_NAME = {b.name: b for b in bk.BROKEN}
BY_ID = {c.id: c for c in phc.CLAIMS}

# Each fault's target claim at the small scale, and the row of it that must catch the fault.
TARGETS = {
    "head-untrained": ("PH-balance", "PH-balance"),
    "augment-sign-flip": ("PH-nonlinear", "PH-nonlinear"),
    "thresholds-frozen": ("PH-nonlinear", "PH-nonlinear"),
    "eta-head-x1.1": ("PH-balance", "PH-balance"),
    "moments-alpha-power-1": ("PH-reweight", "PH-reweight [even]"),
}
PATCHED = (
    (linear, "population_loss"),
    (linear, "population_moments"),
    (nl, "trainable_mask"),
    (nl, "positive_weights"),
    (phdata, "augment"),
)


def test_the_paper_declares_its_broken_simulators_and_each_has_a_target():
    assert len(bk.BROKEN) >= 4 and set(BY_NAME) == set(TARGETS)
    registered = registry.broken_simulators("projection-head")
    assert [dataclasses.replace(b, paper=None) for b in registered] == list(bk.BROKEN)
    assert {b.paper for b in registered} == {"projection-head"}  # the self-test's scope
    assert phc.BROKEN is bk.BROKEN
    names = [s.name for s in registry.broken_simulators("all")]
    assert names[-len(bk.BROKEN) :] == [b.name for b in bk.BROKEN]  # after the first paper's
    for b in bk.BROKEN:
        assert b.fault and TARGETS[b.name][0] in BY_ID


@pytest.mark.parametrize("name", list(BY_NAME))
def test_planting_a_fault_leaves_the_paper_as_it_was(name):
    before = [getattr(owner, attr) for owner, attr in PATCHED]
    linear._train_of(linear.LinearRun(phi=(1.0,), alpha=(0.0,), sigma=0.1, p=1))  # cached
    with BY_NAME[name].plant():
        changed = [getattr(o, a) is not b for (o, a), b in zip(PATCHED, before, strict=True)]
        assert any(changed)
        assert linear._train_of.cache_info().currsize == 0  # the fault compiles its own
    assert [getattr(owner, attr) for owner, attr in PATCHED] == before
    assert linear._train_of.cache_info().currsize == 0  # and the reference does too
    assert nl._train_of.cache_info().currsize == 0


def _linear_params(seed: int = 0, layers: int = 3):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.standard_normal((3, 4 if i == 0 else 3))) for i in range(layers))


def test_the_head_faults_keep_the_loss_and_change_only_the_head_s_gradient():
    params = _linear_params()
    m, mp = cf.population_moments([1.0, 0.8, 0.6, 0.4], [0.0, 0.2, 0.4, 0.6], 0.3)
    m, mp = jnp.asarray(m), jnp.asarray(mp)
    right = linear.population_loss(params, m, mp)
    g = jax.grad(linear.population_loss)(params, m, mp)
    for loss, factor in ((bk.untrained_head_loss, 0.0), (bk.scaled_head_loss, bk.HEAD_LR_FACTOR)):
        assert float(loss(params, m, mp)) == pytest.approx(float(right), rel=1e-13)
        g_bad = jax.grad(loss)(params, m, mp)
        np.testing.assert_allclose(g_bad[0], g[0], rtol=1e-12)  # the encoder's gradient
        for a, b in zip(g_bad[1:], g[1:], strict=True):
            np.testing.assert_allclose(a, factor * b, rtol=1e-12, atol=1e-14)


def test_the_flip_sampler_and_moments_are_a_flip_s():
    phi, alpha, sigma = np.array([1.0, 0.8, 0.5]), np.array([0.1, 0.3, 0.45]), 0.2
    x = phdata.sample_inputs(jax.random.key(0), 200_000, phi, jnp.float64)

    def pair_moment() -> np.ndarray:
        pairs = phdata.positive_pairs(jax.random.key(1), x, alpha, sigma)
        return np.asarray(jnp.mean(pairs.first * pairs.second, axis=0))

    right = cf.population_moments(phi, alpha, sigma)[1]
    flip = (1 - 2 * alpha) ** 2 * phi**2
    np.testing.assert_allclose(pair_moment(), right, atol=0.01)
    with BY_NAME["augment-sign-flip"].plant():
        np.testing.assert_allclose(pair_moment(), flip, atol=0.01)  # the sampler flips
        np.testing.assert_allclose(linear.population_moments(phi, alpha, sigma)[1], flip)
        run = nl.NonlinearRun(alpha=(0.0, 1.0))
        np.testing.assert_allclose(nl.positive_weights(run), [1.0, 1.0])  # feature 2 kept
    np.testing.assert_allclose(nl.positive_weights(nl.NonlinearRun(alpha=(0.0, 1.0))), [1, 0])
    with BY_NAME["moments-alpha-power-1"].plant():
        np.testing.assert_allclose(linear.population_moments(phi, alpha, sigma)[1],
                                   (1 - alpha) * phi**2)  # fmt: skip
        reweight = nl.NonlinearRun(model="reweight", alpha=(0.0, 0.2, 0.4), phi=(1.0,) * 3)
        np.testing.assert_allclose(nl.positive_weights(reweight), [1.0, 0.8, 0.6])


def test_the_mask_faults_freeze_what_they_name():
    run = nl.NonlinearRun()
    params = nl.init_params(jax.random.key(0), run)
    right = nl.trainable_mask(run, params)
    assert all(float(jnp.min(a)) == 1.0 for a in right["w"] + right["b"])
    head = bk.encoder_only_mask(run, params)
    assert [float(jnp.max(a)) for a in head["w"] + head["b"]] == [1.0, 0.0, 1.0, 0.0]
    frozen = bk.frozen_thresholds_mask(run, params)
    assert [float(jnp.max(a)) for a in frozen["w"] + frozen["b"]] == [1.0, 1.0, 0.0, 0.0]


# --- caught at the small scale -------------------------------------------------------------------


_REFERENCE: dict[str, list[report.RowResult]] = {}


def _rows(claim_id: str) -> list[report.RowResult]:
    claim = BY_ID[claim_id]
    return report.evaluate(evaluate(claim, claim.designs["small"], KEY))


def _reference(claim_id: str) -> list[report.RowResult]:
    if claim_id not in _REFERENCE:
        _REFERENCE[claim_id] = _rows(claim_id)
    return _REFERENCE[claim_id]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TARGETS))
def test_each_fault_is_caught_by_its_target_claim_at_the_small_scale(name):
    claim_id, row = TARGETS[name]
    reference = _reference(claim_id)
    assert all(r.verdict == "holds" for r in reference), [(r.outcome.claim, r.verdict)
                                                          for r in reference]  # fmt: skip
    with BY_NAME[name].plant():
        broken = _rows(claim_id)
    caught, _ = selftest.compare(reference, broken)
    assert row in caught, [(r.outcome.claim, r.verdict) for r in broken]


@pytest.mark.slow
def test_the_command_line_catches_every_fault(monkeypatch, tmp_path, capsys):
    from simdyn._src.cli import main

    claims = sorted({claim_id for claim_id, _ in TARGETS.values()})
    for claim_id in claims:
        designs = BY_ID[claim_id].designs
        monkeypatch.setitem(designs, "quick", designs["small"])
    out = tmp_path / "st"
    argv = ["verify", "--self-test", "--paper", "projection-head", "--claims", ",".join(claims)]
    assert main([*argv, "--key", str(KEY), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{len(bk.BROKEN)} of {len(bk.BROKEN)} broken simulators caught" in text
    md = (out / "self-test.md").read_text()
    for name, (_, row) in TARGETS.items():
        line = next(x for x in md.splitlines() if x.startswith(f"| {name} |"))
        assert "| yes |" in line and row in line, line
