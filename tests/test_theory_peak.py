"""theory.predicted_peak: the one-call peak of ||W_t v_j|| and its step (issue 28, item 7),
tied to the population closed forms and to simdyn.simulate's seeds."""

import numpy as np
import pytest

from simdyn import ConfigError, preset, simulate, theory
from simdyn.summary import peak_stats


def test_population_moments_are_the_closed_forms():
    d = preset("fig2a").replace(mu=0.7, phi=(0.9, 1.1, 1.2, 0.8)).data
    P, Q = theory.population_scl_moments(d)
    s = float(theory.noise_level(d.sigma_xi, d.m, d.n))
    F = np.asarray(theory.feature_second_moment(np.asarray(d.phi), d.mu))  # x64: conftest
    np.testing.assert_allclose(Q, F + s * np.eye(d.K + 1), rtol=1e-14, atol=1e-16)
    a_1, a_2 = theory.scl_plus_eigenvalues(d.mu, d.phi[0], d.sigma_xi, d.m, d.n)
    top = np.sort(np.linalg.eigvalsh(P))[::-1][:3]
    np.testing.assert_allclose(top, [float(a_1) - s, float(a_2) - s, 0.0], atol=1e-12)


@pytest.mark.slow
def test_prediction_matches_the_simulated_seeds():
    cfg = preset("fig2a").replace(lr=0.1, steps=40, probe_every=-1)
    pred = theory.predicted_peak(cfg)
    assert np.isnan(pred.peak[1]) and np.isfinite(pred.peak[2])  # v_1 grows through mode 2
    stats = peak_stats(simulate(cfg, 8, chunk_size=8))
    peak = float(stats["peak"].sel(feature=2).median())
    step = float(stats["peak_step"].sel(feature=2).median())
    assert peak == pytest.approx(pred.peak[2], rel=0.05)
    assert abs(step - pred.step[2]) <= 2
    # Control: with mu = 0 the path never reaches v_2, and neither do the seeds.
    flat = cfg.replace(mu=0.0)
    assert np.isnan(theory.predicted_peak(flat).peak[2])
    low = float(peak_stats(simulate(flat, 8, chunk_size=8))["peak"].sel(feature=2).median())
    assert low < 0.1 * pred.peak[2]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"loss": "ucl"}, "train.loss"), ({"batch_size": 8}, "batch_size"),
     ({"optimizer": "adam"}, "optimizer"), ({"bias": False}, "model.bias")],
)  # fmt: skip
def test_outside_its_setting_it_refuses(change, field):
    with pytest.raises(ConfigError, match=field):
        theory.predicted_peak(preset("fig2a").replace(**change))


def test_sweep_plot_overlays_the_prediction_only_where_it_applies():
    import xarray as xr

    from simdyn._src.plots import sweep_theory

    cfg = preset("fig2a")
    ds = xr.Dataset(coords={"lr": [0.02, 0.05]})
    ds.attrs.update(config=cfg.to_json(), sweep='["lr"]')
    got = sweep_theory(ds)
    np.testing.assert_array_equal(got["peak"][1], theory.predicted_peak(cfg.replace(lr=0.05)).peak)
    ds.attrs["config"] = preset("joint").to_json()
    assert sweep_theory(ds) is None
