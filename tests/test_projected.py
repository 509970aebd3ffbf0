"""Projected GD (simdyn.projected) against the dense matrix form and the structured form.

All in float64 (conftest enables x64). Instances are small and random, with N + K + 1 < D so the
projection really drops dimensions, and with noise coordinates that collide with the feature
block and with each other (asserted, so the test cannot silently lose that case).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simdyn import Config, DataConfig, ModelConfig, TrainConfig, default_hparams, make_train
from simdyn._src.reference_gd import reduced_gd
from simdyn._src.train import init_theta
from simdyn.cost import projected_rank
from simdyn.data import sample_training_set, to_dense
from simdyn.losses import matrix_gradient
from simdyn.moments import dense_moments
from simdyn.projected import (
    CoordinateBasis,
    DenseBasis,
    data_basis,
    project_points,
    projected_moments,
    reduce,
)
from simdyn.projected import (
    loss_and_grad as projected_loss_and_grad,
)
from simdyn.seeds import DATA, INIT

SEED_KEY = jax.random.fold_in(jax.random.key(11), 5)
F64 = jnp.float64


def _config(noise="basis", loss="joint", backend="projected", d=20, n=6, m=2, **data):
    dcfg = DataConfig(
        n=n,
        m=m,
        d=d,
        K=4,
        phi=(1.0, 1.2, 0.8, 0.6),
        mu=0.5,
        sigma_xi=1.5,
        noise=noise,
        n_test=40,
        **data,
    )
    train = TrainConfig(
        loss=loss,
        beta=0.4,
        lr=0.02,
        steps=40,
        log_every=4,
        dtype="float64",
        backend=backend,
        save_theta=True,
        probe_every=-1,
    )
    return Config(dcfg, ModelConfig(p=3, sigma_0=0.5), train)


@functools.cache
def _run(cfg):
    # Cached: several tests share a reference run, and compiling dominates their time.
    return jax.jit(make_train(cfg))(SEED_KEY, default_hparams(cfg))


def _training_set(cfg):
    return sample_training_set(jax.random.fold_in(SEED_KEY, DATA), cfg.data, F64)


def _assert_same_run(a, b):
    """Two representations' runs agree: float64, 40 steps from an O(1) init, so they differ
    only in summation order (alignment (R, K + 1), loss (R,), final theta (p, D))."""
    np.testing.assert_allclose(a.alignment, b.alignment, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10, atol=1e-12)


def _theta0(cfg):
    return init_theta(
        jax.random.fold_in(SEED_KEY, INIT),
        cfg.model.p,
        cfg.data.d,
        F64(cfg.model.sigma_0),
        True,
        F64,
    )


@pytest.mark.slow
def test_basis_instance_has_collisions_and_padding():
    # Precondition of the exactness tests below: some noise hits the feature block, some
    # coordinate is hit twice (so the basis needs padding), and r < D.
    cfg = _config()
    idx = np.asarray(_training_set(cfg).points.noise_idx).ravel()
    assert np.any(idx <= cfg.data.K), "no noise on a feature coordinate for this key"
    assert len(np.unique(idx)) < len(idx), "no repeated noise coordinate for this key"
    basis = data_basis(_training_set(cfg).points, cfg.data)
    assert isinstance(basis, CoordinateBasis)
    assert basis.coords.shape == (projected_rank(cfg.data),) and projected_rank(cfg.data) < 21
    assert not bool(jnp.all(basis.valid))


@pytest.mark.slow
def test_projected_equals_dense_and_structured_basis_noise():
    # The joint loss (beta = 0.4) exercises M, M+ and M~ at once; scl/ucl are its beta = 1, 0.
    loss = "joint"
    proj, dense, struct = (
        _run(_config(loss=loss, backend=b)) for b in ("projected", "dense", "structured")
    )
    for other in (dense, struct):
        _assert_same_run(proj, other)
    assert not bool(proj.diverged)


@pytest.mark.slow
def test_projected_equals_dense_gaussian_noise():
    cfg = _config(noise="gaussian", d=40)
    assert projected_rank(cfg.data) == cfg.data.num_points < cfg.data.d + 1
    _assert_same_run(_run(cfg), _run(cfg.replace(**{"train.backend": "dense"})))


@pytest.mark.slow
def test_projected_equals_dense_imperfect_augmentation():
    # Imperfect augmentation: the structured form does not apply, so auto may pick projected;
    # each point now carries 1 + aug_noise_rank noise coordinates, all in the coordinate basis.
    cfg = _config(
        augmentation="imperfect",
        aug_noise_rank=1,
        aug_noise_scale=0.3,
        aug_sigma_class=0.2,
        aug_sigma_sub=0.1,
    )
    assert cfg.data.noise_nnz == 2
    _assert_same_run(_run(cfg), _run(cfg.replace(**{"train.backend": "dense"})))


@pytest.mark.slow
def test_kernel_part_is_frozen():
    # Coordinate basis: the gradient's columns off the data's coordinates are exactly 0, so GD
    # never changes them (Theta - lr * 0 = Theta bit for bit).
    cfg = _config()
    ts = _training_set(cfg)
    obj = projected_moments(ts.points, ts.labels, cfg.data, F64(0.4))
    hit = np.unique(np.asarray(ts.points.noise_idx))
    off = np.setdiff1d(np.arange(cfg.data.K + 1, cfg.data.d + 1), hit)
    assert off.size > 0
    theta = jax.random.normal(jax.random.key(4), (3, cfg.data.d + 1), F64)
    g = np.asarray(projected_loss_and_grad(obj, theta)[1])
    assert np.all(g[:, off] == 0.0) and np.all(g[:, hit] != 0.0)
    # Through make_train: off-span columns end at their init (the init is recomputed outside
    # the compiled program, hence 1-ulp tolerance), the others moved.
    theta0, final = np.asarray(_theta0(cfg)), np.asarray(_run(cfg).theta)
    np.testing.assert_allclose(final[:, off], theta0[:, off], rtol=1e-15, atol=0)
    assert np.min(np.abs(final[:, hit] - theta0[:, hit])) > 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["basis", "gaussian"])
def test_projected_moments_are_u_t_m_u(noise):
    cfg = _config(noise=noise, d=40)
    ts = _training_set(cfg)
    beta = F64(0.4)
    obj = projected_moments(ts.points, ts.labels, cfg.data, beta)
    dense = dense_moments(ts.points, ts.labels, cfg.data.d)
    if isinstance(obj.basis, DenseBasis):
        u = np.asarray(obj.basis.u)
        np.testing.assert_allclose(u.T @ u, np.eye(u.shape[1]), atol=1e-12)
    else:
        u = np.zeros((cfg.data.d + 1, obj.basis.coords.shape[0]))
        valid = np.asarray(obj.basis.valid)
        u[np.asarray(obj.basis.coords)[valid], np.flatnonzero(valid)] = 1.0
    m, p_mat = np.asarray(dense.m), np.asarray(0.4 * dense.m_plus + 0.6 * dense.m_tilde)
    np.testing.assert_allclose(obj.m, u.T @ m @ u, atol=1e-12)
    np.testing.assert_allclose(obj.p_mat, u.T @ p_mat @ u, atol=1e-12)
    # U contains the data: M = U M_r U^T exactly (nothing of M is lost by the projection).
    np.testing.assert_allclose(u @ np.asarray(obj.m) @ u.T, m, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["basis", "gaussian"])
def test_gradient_rows_lie_in_the_data_span(noise):
    # The docstring's argument: G (I - U U^T) = 0 for ANY Theta, so the kernel part is frozen.
    cfg = _config(noise=noise, d=40)
    ts = _training_set(cfg)
    basis = data_basis(ts.points, cfg.data)
    mom = dense_moments(ts.points, ts.labels, cfg.data.d)
    theta = jax.random.normal(jax.random.key(3), (3, cfg.data.d + 1), F64)
    g = np.asarray(matrix_gradient(theta, mom.m, 0.4 * mom.m_plus + 0.6 * mom.m_tilde))
    x = np.asarray(to_dense(ts.points, cfg.data.d)).reshape(-1, cfg.data.d + 1)
    z = np.asarray(project_points(ts.points, basis, cfg.data.d)).reshape(x.shape[0], -1)
    lifted = np.asarray(reduce(jnp.asarray(g), basis))  # G U
    u_rows = np.linalg.lstsq(z, x, rcond=None)[0]  # Z = X U, so U^T = Z^+ X on the span
    np.testing.assert_allclose(lifted @ u_rows, g, atol=1e-10 * np.abs(g).max())


@pytest.mark.slow
def test_reduced_gd_reconstructs_alignments_and_keeps_padding_zero():
    for noise, d in (("basis", 20), ("gaussian", 40)):
        cfg = _config(noise=noise, d=d)
        ts = _training_set(cfg)
        obj = projected_moments(ts.points, ts.labels, cfg.data, F64(0.4))
        run = reduced_gd(obj, _theta0(cfg), F64(cfg.train.lr), 40, 4, cfg.data.K)
        dense = _run(cfg.replace(**{"train.backend": "dense"}))
        np.testing.assert_allclose(run.alignment, dense.alignment, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(run.loss, dense.loss, rtol=1e-10, atol=1e-12)
        if isinstance(obj.basis, CoordinateBasis):
            pad = ~np.asarray(obj.basis.valid)
            assert pad.any()
            assert np.all(np.asarray(run.theta_r)[:, pad] == 0.0)  # exactly, not approximately
            assert np.all(np.asarray(obj.m)[pad] == 0.0) and np.all(
                np.asarray(obj.p_mat)[pad] == 0.0
            )


@pytest.mark.slow
def test_negative_control_basis_missing_a_data_coordinate_is_wrong():
    # Drop one hit noise coordinate from U: the restricted GD is no longer the real GD, and the
    # comparison used above must notice (so the exactness tests can fail).
    cfg = _config()
    ts = _training_set(cfg)
    obj = projected_moments(ts.points, ts.labels, cfg.data, F64(0.4))
    valid = np.asarray(obj.basis.valid).copy()
    drop = int(np.flatnonzero(valid)[-1])  # a noise coordinate (after the feature block)
    valid[drop] = False
    broken = obj._replace(
        basis=CoordinateBasis(obj.basis.coords, jnp.asarray(valid)),
        m=obj.m.at[drop].set(0.0).at[:, drop].set(0.0),
        p_mat=obj.p_mat.at[drop].set(0.0).at[:, drop].set(0.0),
    )
    run = reduced_gd(broken, _theta0(cfg), F64(cfg.train.lr), 40, 4, cfg.data.K)
    dense = _run(cfg.replace(**{"train.backend": "dense"}))
    assert not np.allclose(run.loss, dense.loss, rtol=1e-6, atol=0)
