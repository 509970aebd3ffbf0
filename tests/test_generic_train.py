"""Generic training (simdyn._src.generic_train): MLPs and NCE losses, vmapped over seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simdyn import Config, ConfigError, DataConfig, ModelConfig, TrainConfig
from simdyn._src.generic_simulation import run_generic, simulate_generic
from simdyn._src.generic_train import ContrastiveLoss, make_generic_train
from simdyn.data import sample_test_set
from simdyn.encoders import make_encoder
from simdyn.metrics import probe_accuracy, probe_accuracy_from_embeddings

SMALL = Config(
    DataConfig(n=12, m=2, d=30, K=3, phi=(1.0, 1.0, 1.0), mu=1.0, sigma_xi=1.0, n_test=20),
    ModelConfig(p=3, sigma_0=0.5),
    # No probes (probe_every=-1) keeps the compiled programs small; the probes are compared with the
    # fast path in tests/test_encoders.py.
    TrainConfig(lr=0.02, steps=4, log_every=2, probe_every=-1, dtype="float64"),
)

# (normalize=True is covered by tests/test_encoders.py: here a point whose ReLUs are all dead
# embeds to exactly 0, where L2 normalisation has gradient 1/sqrt(eps) and the seed is flagged.)


def _trains_sanely(five):
    assert not np.any(five.diverged)
    assert np.all(np.isfinite(five.alignment)) and np.all(np.isfinite(five.loss))
    # Training moved the first layer and the seeds differ from each other.
    assert np.all(np.abs(five.alignment[:, -1] - five.alignment[:, 0]).max(axis=1) > 0)
    assert np.ptp(five.loss[:, -1]) > 0
    assert five.alignment.shape == (5, len(SMALL.train.record_steps), SMALL.data.K + 1)
    assert five.probe_class.shape == (5, 0)


@pytest.mark.slow
def test_two_layer_mlp_trains_and_seeds_are_independent_of_batching():
    enc = make_encoder(SMALL, (8,))
    loss = ContrastiveLoss("spectral", 1.0)
    two = run_generic(SMALL, enc, loss, [0, 1], key=3)
    five = run_generic(SMALL, enc, loss, [0, 1, 2, 3, 4], key=3)
    for field in two._fields:
        a, b = np.asarray(getattr(two, field)), np.asarray(getattr(five, field))[:2]
        np.testing.assert_array_equal(a, b, err_msg=field)
    _trains_sanely(five)  # also the negative control of test_divergence_is_flagged


@pytest.mark.slow
def test_deep_mlp_with_head_and_nce_minibatch_fresh_augmentations():
    """Deep MLP + projection head + joint NCE, minibatch SGD with fresh views: trains, and a
    seed's result does not depend on its position among the seeds or on the chunking."""
    cfg = SMALL.replace(batch_size=4, fresh_augmentations=True)
    enc = make_encoder(cfg, (8, 6), head=(5, 4))
    loss = ContrastiveLoss("nce", 0.5, 0.5)
    a = run_generic(cfg, enc, loss, [2, 5], key=1)
    b = run_generic(cfg, enc, loss, [5, 2, 7, 0], key=1, chunk_size=2)
    np.testing.assert_array_equal(a.alignment[0], b.alignment[1])
    np.testing.assert_array_equal(a.alignment[1], b.alignment[0])
    assert not np.any(b.diverged) and np.all(np.isfinite(b.loss))
    assert np.all(np.abs(b.alignment[:, -1] - b.alignment[:, 0]).max(axis=1) > 0)


@pytest.mark.slow
def test_divergence_is_flagged():
    cfg = SMALL.replace(lr=50.0, steps=20, log_every=10)
    traj = run_generic(cfg, make_encoder(cfg, (8,)), ContrastiveLoss("spectral", 0.0), 3)
    assert np.all(traj.diverged)
    assert np.all((traj.diverged_step > 0) & (traj.diverged_step <= 20))
    # Negative control: the default lr (test_two_layer_mlp_trains...) does not diverge.


def _numpy_probe(z, y, ys):
    """Reference probes: unregularised least squares on [1, z] (numpy), fit on the first half."""
    half = z.shape[0] // 2

    def fit_score(rows_fit, rows_eval, target):
        a = np.c_[np.ones(rows_fit.sum()), z[:half][rows_fit]]
        coef, *_ = np.linalg.lstsq(a, target[:half][rows_fit], rcond=None)
        e = np.c_[np.ones(rows_eval.sum()), z[half:][rows_eval]]
        return np.sign(e @ coef) == target[half:][rows_eval]

    all_fit, all_eval = np.ones(half, bool), np.ones(z.shape[0] - half, bool)
    class_acc = fit_score(all_fit, all_eval, y).mean()
    hits = [fit_score(y[:half] == c, y[half:] == c, ys) for c in (1, -1)]
    return class_acc, np.concatenate(hits).mean()


@pytest.mark.slow
def test_probe_from_embeddings_matches_numpy_least_squares():
    # The ridge in the probe is relative 1e-10 (float64): on well-conditioned embeddings its
    # predictions' signs equal plain least squares unless a score sits within ~1e-10 of 0.
    key = jax.random.key(4)
    test = sample_test_set(key, SMALL.data, n=200, dtype=jnp.float64)
    theta = jax.random.normal(jax.random.key(9), (3, SMALL.data.d + 1), jnp.float64)
    from simdyn.data import embed

    z = embed(theta, test.points)
    got = probe_accuracy_from_embeddings(z, test.labels)
    want = _numpy_probe(np.asarray(z), np.asarray(test.labels.y), np.asarray(test.labels.y_sub))
    assert float(got.class_acc) == pytest.approx(want[0], abs=1e-12)
    assert float(got.subclass_acc) == pytest.approx(want[1], abs=1e-12)
    # The linear-encoder entry point is the same probe on Theta x~.
    assert float(probe_accuracy(theta, test).class_acc) == float(got.class_acc)


@pytest.mark.slow
def test_simulate_generic_dataset():
    ds = simulate_generic(SMALL, make_encoder(SMALL), ContrastiveLoss("nce", 0.5), 2)
    assert ds.alignment.dims == ("seed", "step", "feature")
    assert ds.first_layer_norm.shape == (2, len(SMALL.train.record_steps))
    assert "encoder" in ds.attrs and "nce" in ds.attrs["loss"]
    assert ds.attrs["num_diverged"] == 0


def test_bad_inputs_raise_config_error():
    enc = make_encoder(SMALL, (8,))
    with pytest.raises(ConfigError, match="encoder.d"):
        make_generic_train(SMALL.replace(d=31), enc, ContrastiveLoss())
    with pytest.raises(ConfigError, match="param_dtype"):
        make_generic_train(SMALL.replace(dtype="float32"), enc, ContrastiveLoss())
    with pytest.raises(ConfigError, match="data.m"):
        make_generic_train(SMALL.replace(m=1), enc, ContrastiveLoss("nce"))
    with pytest.raises(ConfigError, match="family"):
        ContrastiveLoss("triplet")
    with pytest.raises(ConfigError, match="beta"):
        ContrastiveLoss("nce", 1.5)
    with pytest.raises(ConfigError, match="temperature"):
        ContrastiveLoss("nce", 0.5, 0.0)
    with pytest.raises(ConfigError, match="seeds"):
        run_generic(SMALL, enc, ContrastiveLoss(), [])
