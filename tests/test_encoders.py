"""Encoders (simdyn.encoders): exactness against the fast linear path and dense references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simdyn import Config, ConfigError, DataConfig, ModelConfig, TrainConfig, default_hparams
from simdyn._src.generic_train import loss_for, make_generic_train
from simdyn._src.train import init_theta, make_train
from simdyn.data import sample_training_set, to_dense
from simdyn.encoders import first_layer, init_encoder, make_encoder

TINY = Config(
    DataConfig(n=16, m=2, d=40, K=4, phi=(1.0, 1.0, 1.0, 1.0), mu=1.0, sigma_xi=2.0, n_test=40),
    # sigma_0 = 0.5 so that 30 GD steps move Theta by O(1): a real dynamic, not a near-zero one.
    ModelConfig(p=3, sigma_0=0.5),
    TrainConfig(loss="scl", lr=0.05, steps=30, log_every=1, probe_every=10, dtype="float64"),
)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["scl", pytest.param("ucl", marks=pytest.mark.slow)])
def test_linear_encoder_matches_fast_path(loss):
    """Flax linear map + autodiff of the sample loss == closed-form gradient path (float64)."""
    cfg = TINY.replace(loss=loss)
    key = jax.random.fold_in(jax.random.key(7), 3)
    fast = jax.jit(make_train(cfg))(key, default_hparams(cfg))
    generic = jax.jit(make_generic_train(cfg, make_encoder(cfg), loss_for(cfg)))(key)
    # The dynamic is not trivial: alignments change by O(1) over the run.
    assert np.max(np.abs(fast.alignment[-1] - fast.alignment[0])) > 0.1
    scale = np.max(np.abs(fast.alignment))
    np.testing.assert_allclose(generic.alignment, fast.alignment, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(
        generic.loss, fast.loss, rtol=0, atol=1e-10 * np.max(np.abs(fast.loss))
    )
    np.testing.assert_array_equal(generic.probe_class, fast.probe_class)
    np.testing.assert_array_equal(generic.probe_subclass, fast.probe_subclass)
    assert not bool(generic.diverged)


@pytest.mark.slow
def test_linear_encoder_matches_fast_path_minibatch_fresh():
    """Minibatch SGD with fresh augmentations: same batches, same keys, same trajectory."""
    cfg = TINY.replace(
        **{"loss": "ucl", "batch_size": 5, "fresh_augmentations": True, "probe_every": -1}
    )
    key = jax.random.fold_in(jax.random.key(3), 11)
    fast = jax.jit(make_train(cfg))(key, default_hparams(cfg))
    generic = jax.jit(make_generic_train(cfg, make_encoder(cfg), loss_for(cfg)))(key)
    np.testing.assert_allclose(generic.alignment, fast.alignment, rtol=0, atol=1e-10)


@pytest.mark.slow
def test_first_layer_init_is_the_fast_paths_theta0_and_law():
    cfg = TINY
    key = jax.random.key(5)
    pts = sample_training_set(key, cfg.data, jnp.float64).points
    enc = make_encoder(cfg, (8,), head=(4,))
    params = init_encoder(enc, key, pts)
    theta0 = init_theta(key, 8, cfg.data.d, cfg.model.sigma_0, True, jnp.float64)
    np.testing.assert_array_equal(first_layer(params), theta0)
    # Law N(0, sigma_0^2 / d) for every entry, bias column included, on a wide layer: the sample
    # variance of N = 4096 * 41 entries has relative sd sqrt(2 / N) ~ 0.0035; allow 5 sd.
    wide = make_encoder(cfg.replace(p=4096))
    w = np.asarray(first_layer(init_encoder(wide, key, pts)))
    var = cfg.model.sigma_0**2 / cfg.data.d
    assert abs(w.var() / var - 1) < 5 * np.sqrt(2 / w.size)
    assert abs(w[:, 0].var() / var - 1) < 5 * np.sqrt(2 / w.shape[0])  # the bias column too
    assert abs(w.mean()) < 5 * np.sqrt(var / w.size)


def _dense_reference(params, x, widths, head, normalize):
    """Plain numpy forward pass on dense x~ (..., D)."""
    p = params["params"]
    h = x @ np.asarray(p["first"]["theta"]).T
    for i in range(1, len(widths)):
        layer = p[f"layer_{i}"]
        h = np.maximum(h, 0) @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"])
    z = h
    for i in range(len(head)):
        layer = p[f"head_{i}"]
        z = (z if i == 0 else np.maximum(z, 0)) @ np.asarray(layer["kernel"]) + np.asarray(
            layer["bias"]
        )
    if normalize:
        # The documented definition: eps inside the root (finite when all ReLUs are dead).
        z = z / np.sqrt(np.sum(z**2, axis=-1, keepdims=True) + 1e-12)
    return h, z


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["basis", "gaussian"])
@pytest.mark.parametrize(
    "hidden,head,normalize", [((), (), False), ((6,), (), False), ((6, 5), (7, 2), True)]
)
def test_sparse_encoder_equals_dense_reference(noise, hidden, head, normalize):
    cfg = TINY.replace(noise=noise)
    key = jax.random.key(1)
    ts = sample_training_set(key, cfg.data, jnp.float64)
    enc = make_encoder(cfg, hidden, head=head, normalize=normalize)
    params = init_encoder(enc, jax.random.key(2), ts.points)
    # Larger weights so the ReLUs see both signs with O(1) margins.
    params = jax.tree.map(lambda a: a * 30.0, params)
    out = enc.apply(params, ts.points)
    h_ref, z_ref = _dense_reference(
        params, np.asarray(to_dense(ts.points, cfg.data.d)), enc.widths, head, normalize
    )
    assert out.representation.shape == (16, 2, 3)
    np.testing.assert_allclose(out.representation, h_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.projection, z_ref, rtol=1e-12, atol=1e-12)
    if normalize:
        norms = np.linalg.norm(np.asarray(out.projection), axis=-1)
        alive = np.linalg.norm(z_ref, axis=-1) > 1e-3
        assert alive.sum() > 8  # most points have a live path
        np.testing.assert_allclose(norms[alive], 1.0, atol=1e-9)


@pytest.mark.slow
def test_bias_off_keeps_bias_column_zero():
    cfg = TINY.replace(
        **{"model.bias": False, "train.steps": 5, "probe_every": -1, "train.save_theta": True}
    )
    enc = make_encoder(cfg, (6,))
    traj = jax.jit(make_generic_train(cfg, enc, loss_for(cfg)))(jax.random.key(0))
    assert np.all(np.asarray(traj.theta)[:, 0] == 0.0)
    assert np.all(np.asarray(traj.alignment)[:, 0] == 0.0)
    assert np.any(np.asarray(traj.theta)[:, 1:] != 0.0)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"hidden": (0,)}, "hidden"),
        ({"hidden": (4, -1)}, "hidden"),
        ({"head": (2.5,)}, "head"),
        ({"hidden_init_scale": 0.0}, "hidden_init_scale"),
    ],
)
def test_bad_encoder_arguments_raise_config_error(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        make_encoder(TINY, **kwargs)
