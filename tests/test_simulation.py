"""simulate(): vmapped chunks against a per-seed loop, chunk-size invariance, reproducibility,
save/load, argument validation. Tiny float64 configs; every program compiles once per file."""

import jax
import numpy as np
import pytest
import xarray as xr

from simdyn import (
    Config,
    ConfigError,
    DataConfig,
    HyperParams,
    ModelConfig,
    TrainConfig,
    default_hparams,
    load,
    make_train,
    save,
    simulate,
)
from simdyn.data import sample_training_set
from simdyn.seeds import DATA, as_key, seed_keys

KEY = 11
CFG = Config(
    DataConfig(n=16, m=2, d=40, K=4, phi=(1.0, 1.2, 0.8, 0.6), n_test=16),
    ModelConfig(p=3, sigma_0=0.1),
    TrainConfig(lr=0.05, steps=10, log_every=2, dtype="float64", save_theta=True),
)
FLOAT_VARS = ("alignment", "loss", "probe_class", "probe_subclass", "theta")

# Tolerance where two layouts may run different XLA programs (batch 5 vs 2 vs unbatched): the
# same arithmetic in float64 but possibly another summation order in the dot products. One
# reordered sum of N <= 2 m n = 64 terms changes a result by at most N u = 64 * 1.1e-16 = 7e-15
# relative; 10 GD steps compose ~10 such errors and, in the escape phase, amplify them by at
# most (1 + lr * ||grad of the update||)^T, ~(1 + 0.05 * 4 * 1.5^2)^10 < 10 (the moments of
# this config have norm < 1.5^2 up to a factor 4 from the loss). So 1e-12 relative, plus 1e-14
# absolute for values that are ~0, bounds rounding; a wrong seed, key or padding mix-up moves
# values by O(1) (see the negative control below).
RTOL, ATOL = 1e-12, 1e-14


def _assert_close(a: xr.Dataset, b: xr.Dataset, rtol=RTOL, atol=ATOL):
    for name in FLOAT_VARS:
        np.testing.assert_allclose(
            a[name].values, b[name].values, rtol=rtol, atol=atol, err_msg=name
        )
    np.testing.assert_array_equal(a["diverged"].values, b["diverged"].values)
    np.testing.assert_array_equal(a["diverged_step"].values, b["diverged_step"].values)


def _assert_identical_values(a: xr.Dataset, b: xr.Dataset):
    for name in (*FLOAT_VARS, "diverged", "diverged_step"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.fixture(scope="module")
def run5():
    return simulate(CFG, 5, KEY, chunk_size=5)


@pytest.mark.slow
def test_dataset_layout_and_attrs(run5):
    assert dict(run5.sizes) == {
        "seed": 5,
        "step": 6,
        "feature": 5,
        "probe_step": 2,
        "row": 3,
        "col": 41,
    }
    assert list(run5["seed"].values) == [0, 1, 2, 3, 4]
    assert list(run5["step"].values) == [0, 2, 4, 6, 8, 10]
    assert run5["diverged"].dtype == bool and not run5["diverged"].any()
    for attr in ("jax_version", "jaxlib_version", "jax_enable_x64", "xla_flags", "key"):
        assert attr in run5.attrs
    assert (run5.attrs["chunk_size"], run5.attrs["devices"], run5.attrs["process_count"]) == (
        5,
        1,
        1,
    )
    assert Config.from_json(run5.attrs["config"]) == CFG


@pytest.mark.slow
def test_vmapped_chunk_equals_per_seed_loop(run5):
    """Each seed trained alone through jit(make_train(cfg)) == its row of the vmapped chunk."""
    one = jax.jit(make_train(CFG))
    base = as_key(KEY)
    for i in range(5):
        traj = one(jax.random.fold_in(base, i), default_hparams(CFG))
        row = run5.sel(seed=i)
        for name in FLOAT_VARS:
            np.testing.assert_allclose(
                row[name].values, np.asarray(getattr(traj, name)), rtol=RTOL, atol=ATOL
            )
        assert bool(row["diverged"]) == bool(traj.diverged)


@pytest.mark.slow
def test_chunk_size_changes_no_random_input():
    """Seed i's key, and so its training set, is bit-identical in any chunk and any padding."""
    base = as_key(KEY)
    whole = np.asarray(jax.random.key_data(seed_keys(base, np.arange(7))))
    pieces = [np.arange(0, 3), np.arange(3, 6), np.array([6, 7, 8])]  # last one padded
    split = np.concatenate([np.asarray(jax.random.key_data(seed_keys(base, p))) for p in pieces])[
        :7
    ]
    np.testing.assert_array_equal(whole, split)
    sample = jax.vmap(lambda k: sample_training_set(jax.random.fold_in(k, DATA), CFG.data))
    batched = sample(seed_keys(base, np.arange(4)))
    for i in range(4):
        alone = sample_training_set(jax.random.fold_in(jax.random.fold_in(base, i), DATA), CFG.data)
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(batched), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[i])


@pytest.mark.slow
def test_chunk_size_changes_results_only_by_rounding(run5):
    chunked = simulate(CFG, 5, KEY, chunk_size=2)  # calls of 2, 2 and 1 + 1 padding seed
    assert chunked.attrs["chunk_size"] == 2
    _assert_close(run5, chunked)
    # Negative control: a different key gives O(1) differences, far outside the tolerance.
    other = simulate(CFG, 5, KEY + 1, chunk_size=5)
    with pytest.raises(AssertionError):
        _assert_close(run5, other, rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_explicit_seed_list_matches_count(run5):
    sub = simulate(CFG, [4, 1], KEY, chunk_size=5)  # padded to the same program (batch 5)
    assert list(sub["seed"].values) == [4, 1]
    _assert_identical_values(sub, run5.sel(seed=[4, 1]))


@pytest.mark.slow
def test_same_layout_twice_is_bit_identical(run5):
    again = simulate(CFG, 5, KEY, chunk_size=5)
    _assert_identical_values(run5, again)


def test_save_load_round_trip(run5, tmp_path):
    path = tmp_path / "r.nc"
    save(run5, path)
    back = load(path)
    assert len(back.attrs.pop("data_sha256")) == 64  # the checksum load verified
    xr.testing.assert_identical(run5, back)
    assert back["alignment"].dtype == np.float64 and back["diverged"].dtype == bool
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seeds": 0}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"seeds": [-1]}, "seeds"),
        ({"seeds": True}, "seeds"),
        ({"key": -3}, "key"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 2.5}, "chunk_size"),
        ({"devices": 0}, "devices"),
        ({"devices": 10_000}, "devices"),
        ({"hparams": HyperParams(np.ones(3), None, None)}, "hparams.lr"),
        ({"hparams": HyperParams(-1.0, None, None)}, "hparams.lr"),
        ({"hparams": HyperParams(None, 2.0, None)}, "hparams.beta"),
        ({"hparams": HyperParams(None, None, float("nan"))}, "hparams.sigma_0"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs, field):
    args = {"seeds": 5, "key": KEY} | kwargs
    seeds = args.pop("seeds")
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        simulate(CFG, seeds, **args)


@pytest.mark.slow
def test_load_rejects_non_results(tmp_path, run5):
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file at all")
    with pytest.raises(ConfigError, match="not a readable result file"):
        load(junk)
    save(run5, tmp_path / "ok.nc")
    data = (tmp_path / "ok.nc").read_bytes()
    (tmp_path / "trunc.nc").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="not a readable result file"):
        load(tmp_path / "trunc.nc")
    no_cfg = run5.copy()
    no_cfg.attrs = {}
    save(no_cfg, tmp_path / "nocfg.nc")
    with pytest.raises(ConfigError, match="no config attribute"):
        load(tmp_path / "nocfg.nc")
    wrong = run5.isel(step=slice(0, 3))
    save(wrong, tmp_path / "wrong.nc")
    with pytest.raises(ConfigError, match="dimension step"):
        load(tmp_path / "wrong.nc")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.nc")


def test_auto_chunk_is_capped_on_cpu_and_by_memory(monkeypatch):
    import importlib

    from simdyn import preset

    sim = importlib.import_module("simdyn.chunking")

    assert jax.default_backend() == "cpu"  # the test suite runs on the CPU
    cfg = preset("fig2a")
    per_seed = sim.bytes_per_seed(cfg)
    # Plenty of memory: the CPU cap decides; few seeds: the seed count does.
    monkeypatch.setattr(sim, "available_memory", lambda: 10**6 * per_seed)
    assert sim.auto_chunk_size(cfg, 1024) == sim.cpu_chunk_cap(cfg) <= sim.CPU_MAX_CHUNK
    assert sim.auto_chunk_size(cfg, 5) == 5
    # Memory for 40 seeds at the default quarter: 10 per chunk; never below 1.
    monkeypatch.setattr(sim, "available_memory", lambda: 40 * per_seed)
    assert sim.auto_chunk_size(cfg, 1024) == 10
    monkeypatch.setattr(sim, "available_memory", lambda: 0)
    assert sim.auto_chunk_size(cfg, 1024) == 1


def test_cpu_chunk_cap_keeps_the_chunk_in_the_last_level_cache(monkeypatch):
    import importlib

    from simdyn import objectives, preset

    sim = importlib.import_module("simdyn.chunking")
    cfg = preset("fig2a")
    per = objectives.get(objectives.resolve(cfg)).memory_per_seed(cfg)
    assert sim.last_level_cache_bytes() > 0

    def cache_for(seeds: float) -> None:  # a cache whose budget holds this many seeds
        monkeypatch.setattr(sim, "last_level_cache_bytes", lambda: int(seeds * per / 0.5))

    assert sim.CPU_CACHE_FRACTION == 0.5
    cache_for(40.5)
    assert sim.cpu_chunk_cap(cfg) == 40
    cache_for(sim.CACHE_MIN_CHUNK + 0.5)
    assert sim.cpu_chunk_cap(cfg) == sim.CACHE_MIN_CHUNK
    cache_for(10_000)  # a huge cache: the CPU cap
    assert sim.cpu_chunk_cap(cfg) == sim.CPU_MAX_CHUNK
    cache_for(sim.CACHE_MIN_CHUNK - 0.5)  # too few fit: not cache-resident, the CPU cap stands
    assert sim.cpu_chunk_cap(cfg) == sim.CPU_MAX_CHUNK
