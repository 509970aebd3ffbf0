"""Training loop: every backend against an independent float64 GD recursion; SGD; Fig. 2 shape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simdyn import Config, DataConfig, ModelConfig, TrainConfig, default_hparams, make_train
from simdyn._src.train import init_theta
from simdyn.data import sample_training_set, to_dense
from simdyn.seeds import DATA, INIT

SEED_KEY = jax.random.fold_in(jax.random.key(7), 3)


def _small(noise="basis", loss="scl", backend="auto", **train):
    data = DataConfig(
        n=24, m=3, d=30, K=4, phi=(1.0, 1.2, 0.8, 0.6), mu=0.5, sigma_xi=1.5, noise=noise, n_test=40
    )
    t = dict(
        loss=loss,
        beta=0.4,
        lr=0.02,
        steps=40,
        log_every=4,
        dtype="float64",
        backend=backend,
        save_theta=True,
    )
    t.update(train)
    return Config(data, ModelConfig(p=3, sigma_0=0.5), TrainConfig(**t))


def _numpy_gd(cfg):
    """Independent reference: dense moments in numpy and the GD recursion in a Python loop."""
    ts = sample_training_set(jax.random.fold_in(SEED_KEY, DATA), cfg.data, jnp.float64)
    x = np.asarray(to_dense(ts.points, cfg.data.d))
    n, m, dim = x.shape
    flat = x.reshape(n * m, dim)
    big_m = flat.T @ flat / (n * m)
    xbar = x.mean(1)
    m_tilde = xbar.T @ xbar / n
    y = np.asarray(ts.labels.y)
    means = [xbar[y == c].mean(0) for c in (1, -1)]
    m_plus = 0.5 * sum(np.outer(v, v) for v in means)
    beta = {"scl": 1.0, "ucl": 0.0, "joint": cfg.train.beta}[cfg.train.loss]
    p_mat = beta * m_plus + (1 - beta) * m_tilde
    theta = np.asarray(
        init_theta(
            jax.random.fold_in(SEED_KEY, INIT),
            cfg.model.p,
            cfg.data.d,
            jnp.float64(cfg.model.sigma_0),
            True,
            jnp.float64,
        )
    )
    align, losses = [], []
    for t in range(cfg.train.steps + 1):
        if t % cfg.train.log_every == 0:
            tmt = theta @ big_m @ theta.T
            losses.append(-2 * np.trace(theta @ p_mat @ theta.T) + np.sum(tmt**2))
            align.append(np.linalg.norm(theta[:, : cfg.data.K + 1], axis=0))
        grad = -4 * theta @ p_mat + 4 * (theta @ big_m @ theta.T) @ (theta @ big_m)
        theta = theta - cfg.train.lr * grad
    return np.array(align), np.array(losses)


# Every loss on the default (structured) path; the joint loss (which uses both M+ and M~) on every
# other exact path; the remaining combinations add compile time, not coverage: slow.
_BACKEND_CASES = [("structured", loss) for loss in ("scl", "ucl", "joint")] + [
    (backend, "joint") for backend in ("dense", "projected", "sample")
]
_BACKEND_CASES += [
    pytest.param(backend, loss, marks=pytest.mark.slow)
    for backend in ("dense", "projected", "sample")
    for loss in ("scl", "ucl")
]


@pytest.mark.slow
@pytest.mark.parametrize("backend,loss", _BACKEND_CASES)
def test_gd_backends_match_numpy_reference(backend, loss):
    cfg = _small(loss=loss, backend=backend)
    traj = jax.jit(make_train(cfg))(SEED_KEY, default_hparams(cfg))
    align, losses = _numpy_gd(cfg)
    assert not bool(traj.diverged)
    # Float64 recursion; 40 steps from an O(1) init: agreement to ~1e-10 relative.
    np.testing.assert_allclose(traj.alignment, align, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(traj.loss, losses, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_gaussian_noise_dense_and_sample_agree():
    a = jax.jit(make_train(_small("gaussian", backend="dense")))(
        SEED_KEY, default_hparams(_small("gaussian"))
    )
    b = jax.jit(make_train(_small("gaussian", backend="sample")))(
        SEED_KEY, default_hparams(_small("gaussian"))
    )
    np.testing.assert_allclose(a.alignment, b.alignment, rtol=1e-9)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-9)


@pytest.mark.slow
def test_sgd_with_full_batch_of_originals_equals_gd():
    """batch_size = n with the fixed augmentations: the in-batch loss is the full loss."""
    gd = _small(loss="joint")
    sgd = _small(loss="joint", batch_size=24)
    a = jax.jit(make_train(gd))(SEED_KEY, default_hparams(gd))
    b = jax.jit(make_train(sgd))(SEED_KEY, default_hparams(sgd))
    np.testing.assert_allclose(b.alignment, a.alignment, rtol=1e-9)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_minibatch_sgd_differs_from_gd_and_stays_finite():
    cfg = _small(batch_size=6, fresh_augmentations=True)
    gd = _small()
    a = jax.jit(make_train(cfg))(SEED_KEY, default_hparams(cfg))
    b = jax.jit(make_train(gd))(SEED_KEY, default_hparams(gd))
    assert np.all(np.isfinite(a.alignment)) and not bool(a.diverged)
    assert not np.allclose(a.theta, b.theta)


@pytest.mark.slow
def test_bias_off_keeps_bias_column_zero():
    cfg = Config(_small().data, ModelConfig(p=3, sigma_0=0.5, bias=False), _small().train)
    traj = jax.jit(make_train(cfg))(SEED_KEY, default_hparams(cfg))
    np.testing.assert_array_equal(traj.alignment[:, 0], 0.0)
    assert np.all(traj.alignment[-1, 1:] > 0)


@pytest.mark.slow
def test_large_learning_rate_is_flagged_as_diverged():
    cfg = _small(lr=50.0)
    traj = jax.jit(make_train(cfg))(SEED_KEY, default_hparams(cfg))
    assert bool(traj.diverged)
    assert 0 < int(traj.diverged_step) <= cfg.train.steps


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", pytest.param("momentum", marks=pytest.mark.slow)])
def test_optax_optimizers_run(optimizer):
    cfg = _small(optimizer=optimizer, lr=0.01)
    traj = jax.jit(make_train(cfg))(SEED_KEY, default_hparams(cfg))
    assert np.all(np.isfinite(traj.loss)) and traj.loss[-1] < traj.loss[0]


@pytest.mark.slow
def test_fig2_shape_v2_rises_then_falls_v1_rises_and_stays():
    """Reduced Fig. 2a instance (same phi, mu, sigma_xi, eta, sigma_0 as the paper; smaller n, d).

    Thresholds from THEORY.md, not from a run:
    * Early phase (CC-early, 1 + mu^2 = 2 > phi_1^2 = 1): Theta grows along the top eigenvector
      l_1 = (v_0 + mu v_2)/sqrt(1 + mu^2) of M+ (eigenvalue a_1 ~ 2) at (1 + 4 eta a_1) = 1.4 per
      step, faster than the class mode (1.2 per step). Alone, that mode saturates where
      d/dc [-2 c^2 a_1 + c^4 (l_1^T M l_1)^2] = 0, c^2 = a_1 / (l_1^T M l_1)^2 with
      l_1^T M l_1 = (1 + 2 mu^2 + mu^2 (phi_2^2 + mu^2)) / (1 + mu^2) = 2.5, so c = 0.566 and
      ||W v_2|| = c mu / sqrt(1 + mu^2) = 0.40. We require a peak above half of that (0.2).
    * End (CC-minnorm, mu != 0): ||W v_2|| = O(sigma_xi / sqrt(mn)) = 2 / sqrt(1000) = 0.063:
      require the final value below that and below a quarter of the peak.
    * ||W v_1|| ends near 1/phi_1 = 1 (within 10%) and never falls back: its last value is
      within 10% of its maximum.
    """
    data = DataConfig(n=250, m=4, d=1000, K=4, phi=(1.0,) * 4, mu=1.0, sigma_xi=2.0, n_test=100)
    cfg = Config(
        data,
        ModelConfig(p=3, sigma_0=0.001),
        TrainConfig(loss="scl", lr=0.05, steps=300, log_every=2, probe_every=-1),
    )
    traj = jax.jit(jax.vmap(make_train(cfg), in_axes=(0, None)))(
        jax.vmap(lambda i: jax.random.fold_in(SEED_KEY, i))(jnp.arange(4)), default_hparams(cfg)
    )
    v1 = np.asarray(traj.alignment[..., 1])
    v2 = np.asarray(traj.alignment[..., 2])
    assert not np.any(traj.diverged)
    peak = v2.max(axis=1)
    assert np.all(peak > 0.2)
    assert np.all(v2[:, -1] < 2 / np.sqrt(1000)) and np.all(v2[:, -1] < peak / 4)
    assert np.all(np.argmax(v2, axis=1) < v2.shape[1] - 1)  # the peak is not at the end
    assert np.all(np.abs(v1[:, -1] - 1.0) < 0.1)
    assert np.all(v1[:, -1] > 0.9 * v1.max(axis=1))


@pytest.mark.slow
def test_seed_training_set_is_the_data_simulate_trains_on():
    # The recorded final loss of seed 3 must equal the matrix-form loss of the saved final Theta
    # on seed_training_set(config, 3, key); another seed's data gives a different value.
    import simdyn
    from simdyn.losses import matrix_loss
    from simdyn.moments import dense_moments

    cfg = Config(
        DataConfig(n=16, m=2, d=40, K=3, phi=(1.0, 1.0, 0.8), mu=0.5),
        ModelConfig(p=2, sigma_0=0.5),
        TrainConfig(
            lr=0.05, steps=6, log_every=3, probe_every=-1, dtype="float64", save_theta=True
        ),
    )
    ds = simdyn.simulate(cfg, seeds=[2, 3], key=11)
    theta = jnp.asarray(ds.theta.sel(seed=3).values)

    def loss_on(seed):
        ts = simdyn.seed_training_set(cfg, seed, key=11)
        mom = dense_moments(ts.points, ts.labels, cfg.data.d)
        return float(matrix_loss(theta, mom.m, mom.m_plus))

    recorded = float(ds.loss.sel(seed=3).isel(step=-1))
    assert loss_on(3) == pytest.approx(recorded, rel=1e-10)
    assert abs(loss_on(2) - recorded) > 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["structured", "dense"])
@pytest.mark.parametrize("loss", ["scl", "ucl"])
def test_static_loss_weight_skips_a_product_and_changes_nothing(backend, loss):
    # SCL / UCL compile only the product their fixed weight keeps (full_objective); the result
    # must equal the all-products computation with that weight traced (beta X + (1 - beta) Y is
    # X exactly; XLA may still fuse the two programs' sums differently: 1 ulp seen on the loss),
    # and the skipped product must really be absent (zeros), not computed.
    from simdyn._src.train import full_objective
    from simdyn.losses import STATIC_BETA, gradient_from_products, loss_from_products
    from simdyn.moments import dense_moments, products, structured_moments

    cfg = _small(loss=loss, backend=backend)
    ts = sample_training_set(jax.random.fold_in(SEED_KEY, DATA), cfg.data, jnp.float64)
    theta = jax.random.normal(jax.random.key(1), (3, cfg.data.d + 1), jnp.float64)
    build = structured_moments if backend == "structured" else dense_moments
    mom = build(ts.points, ts.labels, cfg.data.d)
    beta = jnp.asarray(STATIC_BETA[loss])  # traced weight, every product computed
    full = products(mom, theta)

    @jax.jit
    def traced(theta, beta):
        prods = products(mom, theta)
        return loss_from_products(theta, prods, beta), gradient_from_products(theta, prods, beta)

    want = traced(theta, beta)  # both jitted: eager and jitted XLA may round differently
    got = jax.jit(full_objective(cfg, ts, beta).loss_and_grad)(theta)
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want[0]), rtol=1e-15, atol=0)
    np.testing.assert_allclose(np.asarray(got[1]), np.asarray(want[1]), rtol=1e-14, atol=1e-14)
    kept = products(mom, theta, plus=loss == "scl", tilde=loss == "ucl")
    skipped = kept.theta_m_tilde if loss == "scl" else kept.theta_m_plus
    assert not np.any(np.asarray(skipped)) and np.any(np.asarray(full.theta_m_tilde))


@pytest.mark.slow
def test_hparams_beta_is_refused_for_a_static_loss():
    import simdyn
    from simdyn.config import ConfigError

    cfg = _small(loss="scl", steps=2, log_every=1)
    with pytest.raises(ConfigError, match="hparams.beta"):
        simdyn.simulate(cfg, 2, key=0, hparams=simdyn.HyperParams(None, 0.5, None))
    simdyn.simulate(cfg, 2, key=0, hparams=simdyn.HyperParams(None, 1.0, None))  # its own weight


@pytest.mark.slow
def test_scl_structured_step_compiles_no_m_tilde_gathers():
    # The point of the static weight: the SCL step's program has none of Theta M~'s gathers and
    # one scatter-add fewer than the joint step (which needs all three products).
    from simdyn._src.train import full_objective

    def primitives(loss):
        cfg = _small(loss=loss, backend="structured")
        ts = sample_training_set(jax.random.fold_in(SEED_KEY, DATA), cfg.data, jnp.float64)
        theta = jnp.zeros((3, cfg.data.d + 1), jnp.float64)
        jaxpr = jax.make_jaxpr(full_objective(cfg, ts, jnp.asarray(0.4)).loss_and_grad)(theta)
        return [e.primitive.name for e in jaxpr.jaxpr.eqns]

    scl, joint = primitives("scl"), primitives("joint")
    assert "gather" in joint and "gather" not in scl
    assert scl.count("scatter-add") < joint.count("scatter-add")


def test_both_trainers_refuse_float64_without_64bit_jax():
    # One check (training_dtype) for the fast path and the generic one: JAX in 32-bit mode
    # would silently train a float64 config in float32.
    from simdyn import ConfigError
    from simdyn._src.generic_train import loss_for, make_generic_train
    from simdyn.encoders import make_encoder

    cfg = _small()  # train.dtype = float64
    encoder = make_encoder(cfg)
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(ConfigError, match="64-bit JAX"):
            make_train(cfg)
        with pytest.raises(ConfigError, match="64-bit JAX"):
            make_generic_train(cfg, encoder, loss_for(cfg))
    finally:
        jax.config.update("jax_enable_x64", True)  # the session's mode (tests/conftest.py)
