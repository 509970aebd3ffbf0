"""Deep linear encoders with a head on the population loss, through the core loop and engine.

References: an independent NumPy GD recursion (the slow path), the per-seed loop, another
chunking, and Thm 3.5's closed-form layer weights at convergence.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from simdyn.config import ConfigError
from simdyn.papers.projection_head import closed_forms as cf
from simdyn.papers.projection_head import linear
from simdyn.seeds import as_key, streams

RUN = linear.LinearRun(
    phi=(1.0, 0.9, 0.7, 0.5),
    alpha=(0.0, 0.2, 0.4, 1.0),
    sigma=0.3,
    p=2,
    sigma_0=0.05,
    lr=0.05,
    steps=400,
    log_every=20,
    balanced_init=True,
)


def _numpy_gd(params: tuple[np.ndarray, ...], run: linear.LinearRun) -> list[float]:
    """Plain two-layer GD on the population loss, written out (losses at the log steps)."""
    m, mp = cf.population_moments(run.phi, run.alpha, run.sigma)
    w1, w2 = (np.array(a, np.float64) for a in params)
    losses = []
    for t in range(run.steps + 1):
        w = w2 @ w1
        if t % run.log_every == 0:
            losses.append(-2 * np.sum(w**2 * mp) + np.sum(((w * m) @ w.T) ** 2))
        g = -4.0 * w * mp + 4.0 * (w * m) @ w.T @ (w * m)
        w1, w2 = w1 - run.lr * w2.T @ g, w2 - run.lr * g @ w1.T
    return losses


@pytest.mark.slow
def test_the_loop_matches_an_independent_numpy_recursion():
    key = jax.random.fold_in(as_key(7), 0)
    params0 = linear.init_params(streams(key).init, RUN)
    ours = jax.jit(linear.make_train(RUN))(key, None)
    np.testing.assert_allclose(np.asarray(ours.loss), _numpy_gd(params0, RUN), rtol=1e-10)


@pytest.mark.slow
def test_seeds_do_not_depend_on_chunking_and_match_the_per_seed_loop():
    a = linear.simulate(RUN, seeds=5, key=7, chunk_size=2)
    b = linear.simulate(RUN, seeds=5, key=7, chunk_size=5)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    train = jax.jit(linear.make_train(RUN))
    for i in range(5):
        one = train(jax.random.fold_in(as_key(7), i), None)
        np.testing.assert_allclose(a.weights[i], np.asarray(one.weights), rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_balanced_init_and_convergence_to_thm_3_5():
    # init entries ~0.1: every kept feature escapes its saddle well within 4000 steps
    change = {"steps": 4000, "log_every": 4000, "sigma_0": 0.2}
    run = linear.LinearRun(**{**RUN.__dict__, **change})
    out = linear.simulate(run, seeds=4, key=1)
    fw = cf.feature_weights(run.phi, run.alpha, run.sigma, run.p)
    assert np.all(out.imbalance[:, 0] < 1e-12)  # balanced at step 0
    head = out.weights[:, -1, 1]  # (S, d) after the head, at the end
    enc = out.weights[:, -1, 0]
    np.testing.assert_allclose(
        head[:, fw.kept], np.broadcast_to(fw.weights[1][fw.kept], (4, 2)), rtol=1e-8
    )
    # the encoder follows gamma_i up to the imbalance GD accumulated (PH-balance)
    gap = np.max(out.imbalance[:, -1])
    assert np.all(np.abs(enc[:, fw.kept] - fw.weights[0][fw.kept]) <= gap)
    assert not out.diverged.any()


def test_the_orthogonal_init_has_every_singular_value_sigma_0_and_is_balanced_for_p_le_d():
    run = linear.LinearRun(**{**RUN.__dict__, "init": "orthogonal", "balanced_init": False})
    w1, w2 = linear.init_params(jax.random.key(3), run)
    np.testing.assert_allclose(np.linalg.svd(w1, compute_uv=False), RUN.sigma_0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(w2 @ w2.T), RUN.sigma_0**2 * np.eye(2), atol=1e-15)
    np.testing.assert_allclose(np.asarray(w1 @ w1.T), np.asarray(w2.T @ w2), atol=1e-15)


@pytest.mark.slow
def test_momentum_and_three_layers_run():
    run = linear.LinearRun(**{**RUN.__dict__, "layers": 3, "momentum": 0.9, "lr": 0.01})
    out = linear.simulate(run, seeds=2, key=0)
    assert out.weights.shape == (2, RUN.steps // RUN.log_every + 1, 3, 4)
    assert out.imbalance.shape[-1] == 2 and np.all(np.isfinite(out.loss))


@pytest.mark.slow
def test_a_sweep_is_one_program_and_equals_separate_runs():
    """simulate_sweep traces the per-point settings; each point's seeds equal a plain simulate
    of that point with the same global run indices (fold_in(key, r)) (to round-off: a traced
    step size is not folded into the constants)."""
    points = [{"balanced_init": True}, {"sigma_0": 0.2, "lr": 0.02, "balanced_init": False}]
    sweep = linear.simulate_sweep(RUN, points, seeds=2, key=7)
    for i, point in enumerate(points):
        alone = linear.simulate(linear.LinearRun(**{**RUN.__dict__, **point}), seeds=4, key=7)
        rows = slice(2 * i, 2 * i + 2)
        for x, y in zip(jax.tree.leaves(alone), jax.tree.leaves(sweep), strict=True):
            np.testing.assert_allclose(x[rows], y[rows], rtol=1e-12, atol=1e-300)
    # the drift observable is ||D(t) - D(0)||_F of the recorded parameters
    key = jax.random.fold_in(as_key(7), 3)
    params0 = linear.init_params(
        streams(key).init, linear.LinearRun(**{**RUN.__dict__, **points[1]})
    )
    d0 = linear.imbalance_matrices(params0)[0]
    inits = linear.sweep_init_params(RUN, points, seeds=2, key=7)
    np.testing.assert_allclose(inits[0][3], np.asarray(params0[0]), rtol=1e-14)
    np.testing.assert_allclose(sweep.weights[:, 0, 0], np.linalg.norm(inits[0], axis=1), rtol=1e-12)
    d_end = linear.imbalance_matrices(tuple(f[3] for f in sweep.final))[0]
    assert sweep.drift[3, -1, 0] == pytest.approx(float(np.linalg.norm(d_end - d0)), rel=1e-12)
    assert sweep.drift[3, 0, 0] == 0.0
    # Thm 3.4's discrete form: the drift never exceeds the path energy eta^2 sum ||grad||^2
    assert np.all(sweep.drift[..., 0] <= sweep.energy * (1 + 1e-12))
    assert sweep.energy[3, -1] > sweep.drift[3, -1, 0] > 0


def test_log_at_and_sweep_fields_are_checked():
    run = linear.LinearRun(**{**RUN.__dict__, "log_at": (0, 5, 400)})
    assert run.log_steps.tolist() == [0, 5, 400]
    with pytest.raises(ConfigError, match="log_at"):
        linear.LinearRun(**{**RUN.__dict__, "log_at": (0, 500)})
    with pytest.raises(ConfigError, match="sweep field"):
        linear.simulate_sweep(RUN, [{"p": 3}], seeds=1)
    with pytest.raises(ConfigError, match="init"):
        linear.LinearRun(**{**RUN.__dict__, "init": "uniform"})
    with pytest.raises(ConfigError, match="d="):
        linear.simulate_sweep(RUN, [{"phi": (1.0,), "alpha": (0.0,)}], seeds=1)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"alpha": (0.0, 2.0, 0.0, 0.0)}, "alpha"),
        ({"layers": 1}, "layers"),
        ({"lr": 0.0}, "lr"),
        ({"log_every": 7}, "log_every"),
        ({"momentum": 1.0}, "momentum"),
    ],
)
def test_bad_settings_name_the_parameter(change, match):
    with pytest.raises(ConfigError, match=match):
        linear.LinearRun(**{**RUN.__dict__, **change})
