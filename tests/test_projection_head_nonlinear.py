"""Nonlinear encoders with a head (projection-head paper): the coordinate form against exact
enumeration and against the sample form's expectation, the per-seed function against the
engine, input validation, masks and the probe.

Monte-Carlo tolerance: the sample losses are unbiased U-statistics (module docs of
nonlinear.py), so over R independent draws their mean estimates the population loss with
standard error sd / sqrt(R) (sd: the draws' own standard deviation). A check passes within
Z = 5 standard errors: a false failure is a < 1e-6 event per compared number (normal
approximation; R >= 4000 draws of a bounded statistic).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simdyn.config import ConfigError
from simdyn.papers.projection_head import linear
from simdyn.papers.projection_head import nonlinear as nl
from simdyn.seeds import as_key

Z = 5.0
R = 4000


def _params(run: nl.NonlinearRun, seed: int = 5) -> dict:
    return nl.init_params(jax.random.key(seed), run)


def _f(run, params, x):
    return np.asarray(nl.layer_outputs(run, params, jnp.asarray(x, jnp.float64))[-1])


def _nondegenerate(run: nl.NonlinearRun, x) -> dict:
    """The first init (seeds 5, 6, ...) whose output has >= 2 non-zero coordinates at x."""
    for seed in range(5, 50):
        params = _params(run, seed)
        if np.count_nonzero(_f(run, params, x)) >= 2:
            return params
    raise AssertionError("no non-degenerate init")


def test_soft_threshold_is_odd_a_dead_zone_and_the_identity_at_zero():
    a = jnp.linspace(-2, 2, 41)
    np.testing.assert_array_equal(nl.soft_threshold(a, 0.0), a)
    np.testing.assert_array_equal(nl.soft_threshold(-a, 0.5), -nl.soft_threshold(a, 0.5))
    inside = jnp.abs(a) <= 0.5
    assert np.all(np.asarray(nl.soft_threshold(a, 0.5))[np.asarray(inside)] == 0)
    np.testing.assert_allclose(nl.soft_threshold(jnp.array(1.5), 0.5), 1.0)


# --- Lemma A.4: the coordinate form is the exact expectation (sigma = 0, by enumeration) -------


def _cl_exact(run: nl.NonlinearRun, params) -> float:
    """-2 E f(x+1)^T f(x+2) + E (f(u)^T f(v))^2 by enumerating every sign pattern."""
    phi, alpha = np.asarray(run.phi), np.asarray(run.alpha)
    keep = 1 - alpha / 2 if run.augmentation == "redraw" else 1 - alpha
    d = phi.size
    patterns = np.array(list(itertools.product([-1.0, 1.0], repeat=d)))
    out = {tuple(s): _f(run, params, s * phi) for s in patterns}
    pos = 0.0
    for s, s1, s2 in itertools.product(patterns, repeat=3):
        p1 = np.prod(np.where(s1 == s, keep, 1 - keep))
        p2 = np.prod(np.where(s2 == s, keep, 1 - keep))
        pos += 0.5**d * p1 * p2 * out[tuple(s1)] @ out[tuple(s2)]
    neg = np.mean(
        [(out[tuple(u)] @ out[tuple(v)]) ** 2 for u, v in itertools.product(patterns, repeat=2)]
    )
    return -2 * pos + neg


def _supervised_exact(run: nl.NonlinearRun, params) -> float:
    scale = nl.coordinate_inputs(run)
    patterns = np.array(list(itertools.product([-1.0, 1.0], repeat=run.d)))
    f = {tuple(s): _f(run, params, s * scale) for s in patterns}
    if run.loss == "sl":
        return float(np.mean([(f[tuple(s)].sum() - s[0]) ** 2 for s in patterns]))
    shared = 1 if run.scl_positives == "class" else 2
    pairs = [
        (s, t) for s, t in itertools.product(patterns, repeat=2) if np.all(s[:shared] == t[:shared])
    ]
    pos = np.mean([f[tuple(s)] @ f[tuple(t)] for s, t in pairs])
    neg = np.mean(
        [(f[tuple(s)] @ f[tuple(t)]) ** 2 for s, t in itertools.product(patterns, repeat=2)]
    )
    return -2 * pos + neg


GAUSS = dict(init="gaussian", sigma_0=1.0, b_init=0.05)


@pytest.mark.parametrize(
    "kw",
    [
        dict(phi=(1.0, 0.7, 1.3), alpha=(0.0, 0.5, 1.0)),
        dict(phi=(1.0, 0.7, 1.3), alpha=(0.2, 0.5, 1.0), augmentation="flip"),
        dict(phi=(1.0, 0.7, 1.3), alpha=(0.2, 0.5, 1.0), layers=3),
    ],
)
def test_coordinate_form_of_the_spectral_loss_is_its_exact_expectation(kw):
    run = nl.NonlinearRun(**GAUSS, **kw)
    params = _nondegenerate(run, run.phi)
    exact = _cl_exact(run, params)
    np.testing.assert_allclose(
        float(nl.coordinate_loss(run, params)), exact, rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize(
    "kw", [dict(loss="scl"), dict(loss="scl", scl_positives="subclass"), dict(loss="sl")]
)
def test_coordinate_form_of_the_supervised_losses_is_their_exact_expectation(kw):
    run = nl.NonlinearRun(**GAUSS, d_supervised=4, rest_scale=0.3, **kw)
    params = _nondegenerate(run, nl.coordinate_inputs(run))
    exact = _supervised_exact(run, params)
    np.testing.assert_allclose(
        float(nl.coordinate_loss(run, params)), exact, rtol=1e-12, atol=1e-14
    )


def test_the_theorem_init_meets_thm_3_8_conditions_on_every_coordinate():
    run = nl.NonlinearRun(b0=0.1, d_supervised=6, loss="scl", same_sign=True)
    for seed in range(20):
        p = _params(run, seed)
        u, w1 = np.abs(np.asarray(p["w"][1])), np.abs(np.asarray(p["w"][0]))
        assert np.all(u <= np.sqrt(0.1)) and np.all(u * (w1 - 0.1) >= 0.1)
        assert np.all(np.asarray(p["w"][0]) * np.asarray(p["w"][1]) > 0)  # same_sign
        assert np.all(np.asarray(p["b"][0]) == 0.1) and np.all(np.asarray(p["b"][1]) == 0.1)


# --- the sample form is unbiased: Monte Carlo against the exact forms ---------------------------


def _draws(run: nl.NonlinearRun, params, fn):
    keys = jax.random.split(jax.random.key(11), R)
    return jax.jit(jax.vmap(lambda k: fn(nl.draw(run, k, run.n, False))))(keys)


def _check_mean(draws, exact):
    draws = np.asarray(draws, np.float64)
    mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(mean - exact) <= Z * se + 1e-15), (mean, exact, se)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kw",
    [
        dict(phi=(1.0, 0.7, 1.3), alpha=(0.0, 0.5, 1.0)),
        dict(phi=(1.0, 0.7, 1.3), alpha=(0.2, 0.5, 1.0), augmentation="flip", m=3),
        dict(loss="scl"),
        dict(loss="scl", scl_positives="subclass"),
        dict(loss="sl"),
    ],
)
def test_the_sample_loss_and_gradient_average_to_the_coordinate_form(kw):
    run = nl.NonlinearRun(**GAUSS, form="sample", n=8, **kw)
    params = _params(run)
    exact = jax.value_and_grad(lambda th: nl.coordinate_loss(run, th))(params)
    draws = _draws(
        run, params, lambda b: jax.value_and_grad(lambda th: nl.batch_loss(run, th, b))(params)
    )
    for e, dr in zip(jax.tree.leaves(exact), jax.tree.leaves(draws), strict=True):
        _check_mean(dr, np.asarray(e))


def test_the_reweight_sample_loss_averages_to_the_linear_population_loss_with_noise():
    # sigma > 0 and a linear encoder: the exact moments of the linear model apply
    run = nl.NonlinearRun(
        model="reweight",
        form="sample",
        phi=(1.0, 0.8, 0.6),
        alpha=(0.0, 0.5, 1.0),
        sigma=0.3,
        p=3,
        kappa=1.7,
        sigma_0=1.0,
        n=8,
    )
    params = _params(run)
    exact = float(nl.population_loss(run, params))
    head = jnp.diag(nl.head_scales(1.7, 3))
    m, mp = nl.population_moments(run)
    direct = linear.population_loss((params["w"][0], head), jnp.asarray(m), jnp.asarray(mp))
    assert exact == pytest.approx(float(direct), rel=1e-14)
    _check_mean(_draws(run, params, lambda b: nl.batch_loss(run, params, b)), exact)


def test_the_reweight_head_divides_dimension_k_by_kappa_to_the_k():
    run = nl.NonlinearRun(
        model="reweight", form="sample", phi=(1.0,) * 3, alpha=(0.0,) * 3, p=4, kappa=3.0
    )
    params = _params(run)
    x = jnp.ones((2, 3))
    f1, f2 = nl.layer_outputs(run, params, x)
    np.testing.assert_allclose(f2, f1 / 3.0 ** np.arange(4), rtol=1e-15)


# --- the engine: per-seed function == vmapped program, bit for bit -----------------------------


def _compare_with_engine(run: nl.NonlinearRun, seeds: int = 3):
    out = nl.simulate(run, seeds, 7, chunk_size=2)
    train = jax.jit(nl.make_train(run))
    for i in range(seeds):
        one = train(jax.random.fold_in(as_key(7), i), None)
        for name, a, b in zip(one._fields, one, out, strict=True):
            np.testing.assert_array_equal(np.asarray(a), b[i], err_msg=name)
    return out


def test_per_seed_function_equals_the_engine_bit_for_bit_diagonal():
    out = _compare_with_engine(nl.NonlinearRun(steps=40, log_every=10))
    assert out.params.shape == (3, 5, 2, 2, 2) and out.weights.shape == (3, 5, 2, 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "run",
    [
        nl.NonlinearRun(model="dense", form="sample", data="finite", phi=(1.0, 0.8, 0.6),
                        alpha=(0.0, 0.5, 1.0), sigma=0.1, p=4, n=12, m=2, batch=6, momentum=0.9,
                        steps=20, log_every=5, b_init=0.01, sigma_0=0.5,
                        probe=nl.Probe(phihat=(1.0, 1.0, 1.0), j_star=0, n_train=6, n_test=20)),
        nl.NonlinearRun(loss="scl", form="sample", data="fresh", n=16, steps=20, log_every=5,
                        weight_decay=0.01),
        nl.NonlinearRun(model="reweight", form="sample", data="fresh", encoder="srelu",
                        phi=(1.0, 0.8, 0.6), alpha=(0.0, 0.5, 1.0), sigma=0.1, p=3, n=8,
                        steps=20, log_every=5, kappa=2.0),
    ],
)  # fmt: skip
def test_per_seed_function_equals_the_engine_bit_for_bit_sample_forms(run):
    out = _compare_with_engine(run)
    if run.probe is not None:
        assert out.probe.shape == (3, 2, 2)  # probes at 0 and T, one per layer
    b = nl.simulate(run, 3, 7, chunk_size=3)
    for x, y in zip(out, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow  # compile-heavy; CI runs the slow tier too
def test_per_run_b0_is_traced_and_matches_a_run_with_that_b0():
    run = nl.NonlinearRun(steps=20, log_every=10)
    a = nl.simulate(run, np.array([3, 4]), 1, b0=np.array([0.1, 0.2]))
    b = nl.simulate(nl.NonlinearRun(steps=20, log_every=10, b0=0.2), np.array([4]), 1, b0=0.2)
    np.testing.assert_allclose(a.params[1], b.params[0], rtol=1e-15)
    assert np.all(a.params[0, 0, 1] == 0.1)


# --- masks ------------------------------------------------------------------------------------


@pytest.mark.slow  # compile-heavy; CI runs the slow tier too
def test_frozen_thresholds_and_a_frozen_head_do_not_move():
    for change, frozen in (
        ({"train_thresholds": False}, ("b", 0)),
        ({"train_head": False}, ("w", 1)),
    ):
        run = nl.NonlinearRun(steps=30, log_every=30, weight_decay=0.01, **change)
        out = nl.simulate(run, 2, 3)
        kind, layer = frozen
        idx = 0 if kind == "w" else 1
        np.testing.assert_array_equal(out.params[:, 0, idx, layer], out.params[:, -1, idx, layer])
        assert np.any(out.params[:, 0, 0, 0] != out.params[:, -1, 0, 0])  # w_1 trains


# --- probe ------------------------------------------------------------------------------------


def test_the_probe_reads_a_clean_feature_and_not_an_empty_representation():
    key = jax.random.key(0)
    y = jnp.where(jax.random.bernoulli(key, 0.5, (400,)), 1.0, -1.0)
    reps = jnp.stack([y, jax.random.normal(jax.random.key(1), (400,))], axis=1)
    acc = nl.probe_accuracy(reps[:20], y[:20], reps[20:], y[20:], 1e-6)
    assert float(acc) == 1.0
    zero = jnp.zeros_like(reps)
    assert 0.3 < float(nl.probe_accuracy(zero[:20], y[:20], zero[20:], y[20:], 1e-6)) < 0.7


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(model="conv"), "model"),
        (dict(loss="nce"), "loss"),
        (dict(alpha=(0.0,)), "alpha"),
        (dict(alpha=(0.0, 1.5)), "alpha"),
        (dict(phi=(1.0, float("nan"))), "phi"),
        (dict(loss="scl", d_supervised=1), "d_supervised"),
        (dict(n=1), "n"),
        (dict(m=1), "m"),
        (dict(layers=0), "layers"),
        (dict(steps=10, log_every=3), "log_every"),
        (dict(lr=0.0), "lr"),
        (dict(sigma=-1.0), "sigma"),
        (dict(momentum=1.0), "momentum"),
        (dict(kappa=0.5), "kappa"),
        (dict(w2_low=0.0), "w2_low"),
        (dict(batch=4), "batch"),
        (dict(form="sample", data="finite", n=8, batch=9), "batch"),
        (dict(model="dense"), "form"),
        (dict(sigma=0.1), "sigma"),
        (dict(loss="scl", form="sample", data="finite", n=6), "n"),
        (dict(layers=3), "layers"),
        (dict(model="reweight", layers=3, form="sample"), "layers"),
        (dict(model="reweight", train_head=False), "train_head"),
        (dict(augmentation="swap"), "augmentation"),
        (dict(dtype="float16"), "dtype"),
        (dict(probe=nl.Probe(phihat=(1.0, 1.0), every=3), steps=20, log_every=10), "probe.every"),
    ],
)
def test_invalid_settings_name_the_parameter(kw, name):
    with pytest.raises(ConfigError, match=f"invalid {name}"):
        nl.NonlinearRun(**kw)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(task="other"), "Probe.task"),
        (dict(phihat=()), "Probe.phihat"),
        (dict(phihat=(1.0,), j_star=1), "Probe.j_star"),
        (dict(phihat=(1.0,), n_train=1), "Probe.n_train"),
        (dict(phihat=(1.0,), noise=-1.0), "Probe.noise"),
    ],
)
def test_invalid_probes_name_the_parameter(kw, name):
    with pytest.raises(ConfigError, match=f"invalid {name}"):
        nl.Probe(**kw)


def test_invalid_simulate_arguments():
    run = nl.NonlinearRun(steps=10, log_every=10)
    with pytest.raises(ConfigError, match="invalid seeds"):
        nl.simulate(run, 0)
    with pytest.raises(ConfigError, match="invalid seeds"):
        nl.simulate(run, np.array([1, 1]))
    with pytest.raises(ConfigError, match="invalid b0"):
        nl.simulate(run, 2, b0=np.array([0.1, -0.1]))
    with pytest.raises(ConfigError, match="invalid kappa"):
        nl.simulate(run, 2, kappa=0.5)
    with pytest.raises(ConfigError, match="invalid chunk_size"):
        nl.simulate(run, 2, chunk_size=0)
