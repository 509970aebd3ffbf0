"""FS-aug's standard-augmentation prediction is anchored to the config, not to the sample.

A sampler that scales the class feature by 1.1 (a data-generation slip that the sampled points
carry into the trained/closed-form side) must fail ``standard-learnt``: the prediction is
evaluated at the feature moment written out from the config and the instance's labels.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from simdyn.data import sample_training_set
from simdyn.papers.which_features import fs_aug, simulators
from simdyn.papers.which_features.runs import clear_memo
from simdyn.verify.blas import blas_threads
from simdyn.verify.claim import evaluate


def _phi1_sampler(data_key, data, dtype):
    ts = sample_training_set(data_key, data, dtype)
    scale = lambda f: f.at[..., 1].multiply(1.1)
    return ts._replace(
        points=ts.points._replace(features=scale(ts.points.features)),
        originals=ts.originals._replace(features=scale(ts.originals.features)),
    )


def _standard_learnt(sim: simulators.Simulator):
    design = dataclasses.replace(fs_aug.DESIGNS["small"], ranks=(0,))
    clear_memo()
    with simulators.use(sim), blas_threads(1):
        (row,) = evaluate(fs_aug.CLAIM, design, 5)
    clear_memo()
    (test,) = [t for t in row.tests if t.name == "standard-learnt"]
    return test


@pytest.mark.slow  # ~5 s each: closed forms at the small design
def test_standard_learnt_holds_on_the_reference():
    test = _standard_learnt(simulators.REFERENCE)
    assert test.failures == 0 and test.n_units == fs_aug.DESIGNS["small"].seeds


@pytest.mark.slow
def test_standard_learnt_catches_a_scaled_class_feature():
    sim = simulators.Simulator("phi1-x1.1", fault="v_1 feature x 1.1", sampler=_phi1_sampler)
    test = _standard_learnt(sim)
    # Every instance is off (a sampled-moment prediction would follow the fault).
    assert test.failures == test.n_units
    w, pred = np.asarray(test.data["w_v1"]), np.asarray(test.data["predicted"])
    assert np.all(np.abs(w / pred - 1) > 1e-3)  # far beyond the 1e-9 round-off tol
    assert jnp.isfinite(jnp.asarray(w)).all()
