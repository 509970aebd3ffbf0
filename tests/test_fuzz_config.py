"""Property-based checks of configuration handling (hypothesis, derandomized: reproducible).

* Any valid tiny config builds, survives JSON, and trains a few steps to finite values.
* Corrupting any one field with an out-of-range value raises ConfigError naming that field,
  both for Python values and for CLI-style ``--set`` strings.
* Hyper-parameters passed as arrays reuse ONE compiled program across many examples.
"""

import math

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from simdyn import HyperParams, objectives, simulate
from simdyn.config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig, apply_overrides
from simdyn.seeds import as_key

FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def tiny_configs(draw) -> Config:
    """Valid configs small enough to compile and run in seconds."""
    k = draw(st.integers(3, 5))
    n = draw(st.integers(2, 8))
    m = draw(st.integers(1, 3))
    augmentation = draw(st.sampled_from(["standard", "imperfect"]))
    noise = draw(st.sampled_from(["basis", "gaussian"]))
    d = draw(st.integers(k + 2, 24))
    rank = 0
    if augmentation == "imperfect" and noise == "basis":
        rank = draw(st.integers(0, m // 2))
    data = DataConfig(
        n=n,
        m=m,
        d=d,
        K=k,
        phi=tuple(draw(st.floats(0.0, 2.0)) for _ in range(k)),
        mu=draw(st.floats(-1.0, 1.0)),
        sigma_xi=draw(st.floats(0.1, 2.0)),
        noise=noise,
        sampling=draw(st.sampled_from(["iid", "balanced"])),
        augmentation=augmentation,
        aug_noise_rank=rank,
        aug_noise_scale=draw(st.floats(0.0, 0.5)),
        n_test=draw(st.integers(4, 12)),
    )
    steps = draw(st.integers(1, 4))
    batch = draw(st.one_of(st.none(), st.integers(1, n)))
    train = TrainConfig(
        loss=draw(st.sampled_from(["scl", "ucl", "joint"])),
        beta=draw(st.floats(0.05, 0.95)),
        optimizer=draw(st.sampled_from(["sgd", "momentum", "adam"])),
        lr=draw(st.floats(1e-3, 0.1)),
        steps=steps,
        log_every=draw(st.sampled_from([s for s in (1, 2, 4) if steps % s == 0])),
        batch_size=batch,
        fresh_augmentations=batch is not None and draw(st.booleans()),
        probe_every=draw(st.sampled_from([-1, 0])),
        dtype=draw(st.sampled_from(["float32", "float64"])),
    )
    model = ModelConfig(p=draw(st.integers(1, 4)), sigma_0=draw(st.floats(0.01, 1.0)))
    return Config(data, model, train)


@FAST
@given(tiny_configs())
def test_valid_configs_build_and_round_trip(cfg):
    again = Config.from_json(cfg.to_json())
    assert again == cfg
    assert Config.from_dict(cfg.to_dict()) == cfg


def _runs_finite(cfg: Config) -> None:
    ds = simulate(cfg, 2, key=1, chunk_size=2)
    for name in ("alignment", "loss", "probe_class", "probe_subclass"):
        assert np.isfinite(ds[name].values).all(), (name, cfg)
    assert not ds["diverged"].any(), cfg


@pytest.mark.slow
@settings(FAST, max_examples=3)
@given(tiny_configs())
def test_valid_configs_run_a_few_steps_without_nan(cfg):
    # Few examples: each config is its own XLA program (a compile each, ~5-15 s here); probes
    # off to halve the compile. The slow variant below covers more, probes included.
    _runs_finite(cfg.replace(probe_every=-1))


@pytest.mark.slow
@settings(FAST, max_examples=25)
@given(tiny_configs())
def test_many_valid_configs_run_without_nan(cfg):
    _runs_finite(cfg)


# Out-of-range values per field (whatever the rest of the config): (section, field, value).
INVALID = [
    ("data", "n", 0),
    ("data", "n", 2.5),
    ("data", "n", True),
    ("data", "m", 0),
    ("data", "K", 2),
    ("data", "mu", math.inf),
    ("data", "sigma_xi", -0.1),
    ("data", "sigma_xi", math.nan),
    ("data", "noise", "laplace"),
    ("data", "sampling", "stratified"),
    ("data", "noise_placement", "anywhere"),
    ("data", "augmentation", "crop"),
    ("data", "aug_noise_scale", -1.0),
    ("data", "n_test", 3),
    ("model", "p", 0),
    ("model", "sigma_0", -1e-3),
    ("model", "bias", 1),
    ("train", "loss", "nce"),
    ("train", "beta", 0.0),
    ("train", "beta", 1.0),
    ("train", "optimizer", "lbfgs"),
    ("train", "lr", 0.0),
    ("train", "lr", -0.1),
    ("train", "lr", math.inf),
    ("train", "momentum", 1.0),
    ("train", "steps", 0),
    ("train", "batch_size", 0),
    ("train", "probe_every", -2),
    ("train", "dtype", "float16"),
    ("train", "backend", "gpu"),
    ("train", "divergence_threshold", 0.0),
    ("train", "save_theta", 2),
]


@FAST
@given(tiny_configs(), st.sampled_from(INVALID))
def test_one_bad_field_raises_config_error_naming_it(cfg, bad):
    section, name, value = bad
    # train.backend's names and rules belong to the registry, which validates before any work.
    with pytest.raises(ConfigError, match=rf"invalid {section}\.{name}"):
        objectives.validate(apply_overrides(cfg, {f"{section}.{name}": value}))


@FAST
@given(tiny_configs(), st.data())
def test_config_dependent_ranges_name_the_field(cfg, data):
    """Values invalid only relative to other fields: d < K, log_every, batch_size > n, phi."""
    case = data.draw(st.sampled_from(["d", "log_every", "batch_size", "phi", "phi_len"]))
    if case == "d":
        over, field = {"data.d": cfg.data.K - 1}, "data.d"
    elif case == "log_every":
        over, field = {"train.log_every": cfg.train.steps + 1}, "train.log_every"
    elif case == "batch_size":
        over, field = {"train.batch_size": cfg.data.n + 1}, "train.batch_size"
    elif case == "phi":
        j = data.draw(st.integers(0, cfg.data.K - 1))
        phi = list(cfg.data.phi)
        phi[j] = -data.draw(st.floats(1e-6, 10.0))
        over, field = {"data.phi": tuple(phi)}, rf"data.phi\[{j}\]"
    else:
        over, field = {"data.phi": cfg.data.phi + (1.0,)}, "data.phi"
    with pytest.raises(ConfigError, match=rf"invalid {field}"):
        apply_overrides(cfg, over)


TEXT_INVALID = [
    ("n", "ten", "data.n"),
    ("lr", "fast", "train.lr"),
    ("lr", "-1", "train.lr"),
    ("p", "0", "model.p"),
    ("bias", "maybe", "model.bias"),
    ("phi", "1,a", "data.phi"),
    ("steps", "1e3", "train.steps"),
    ("dtype", "int8", "train.dtype"),
]


@FAST
@given(tiny_configs(), st.sampled_from(TEXT_INVALID))
def test_bad_set_strings_name_the_field(cfg, bad):
    name, text, field = bad
    with pytest.raises(ConfigError, match=rf"invalid {field}"):
        apply_overrides(cfg, {name: text})


KNOWN_FIELDS = {
    name
    for section, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))
    for field in cls.__dataclass_fields__
    for name in (field, f"{section}.{field}")
}


@FAST
@given(st.text(min_size=1, max_size=12))
def test_unknown_fields_are_refused(name):
    assume(name not in KNOWN_FIELDS)
    with pytest.raises(ConfigError, match="field"):
        apply_overrides(Config(), {name: "1"})


# --- hyper-parameters: many examples, one compiled program -----------------------------------
HP_CFG = Config(
    DataConfig(n=6, m=2, d=12, K=3, phi=(1.0, 1.0, 1.0), n_test=8),
    ModelConfig(p=2, sigma_0=0.1),
    TrainConfig(loss="joint", lr=0.05, steps=3, dtype="float64", probe_every=-1),
)


@pytest.mark.slow
@settings(FAST, max_examples=25)
@given(
    lr=st.lists(st.floats(1e-4, 0.2), min_size=3, max_size=3),
    beta=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
    sigma_0=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
)
def test_valid_hparams_share_one_program_and_flag_divergence(lr, beta, sigma_0):
    # A large lr with a large init can genuinely blow up the quartic loss (lr=0.125 with
    # sigma_0=1 does within 3 steps), so the property is not "always finite" but: every seed
    # is either finite and unflagged, or flagged with the step at which it went bad.
    hp = HyperParams(np.array(lr), np.array(beta), np.array(sigma_0))
    ds = simulate(HP_CFG, 3, key=2, chunk_size=3, hparams=hp)
    diverged = ds["diverged"].values
    np.testing.assert_array_equal(ds["diverged_step"].values >= 0, diverged)
    ok = ~diverged
    assert np.isfinite(ds["alignment"].values[ok]).all()
    assert np.isfinite(ds["loss"].values[ok]).all()
    np.testing.assert_array_equal(ds["lr"].values, lr)


@pytest.mark.slow
@pytest.mark.parametrize("sigma_0", [0.0, 0.1])
def test_small_hparams_never_diverge(sigma_0):
    # With ||Theta_0|| ~ sigma_0 small the cubic term of the gradient is negligible over 3
    # steps and lr <= 0.2 keeps the linear growth factor (1 + 4 lr ||M+||) modest, so no seed
    # may be flagged: guards against a divergence check that fires spuriously.
    hp = HyperParams(np.array([1e-4, 0.05, 0.2]), np.array([0.0, 0.5, 1.0]), np.full(3, sigma_0))
    ds = simulate(HP_CFG, 3, key=2, chunk_size=3, hparams=hp)
    assert not ds["diverged"].any()
    assert np.isfinite(ds["alignment"].values).all()


@pytest.mark.slow  # compile-heavy; CI runs the slow tier too
def test_the_failing_ci_example_is_flagged_not_averaged():
    # The example that failed CI (hypothesis 6.170.17): the sigma_0=1 seed blows up and must be
    # flagged; its neighbours with sigma_0=0 sit at the stationary point Theta=0 and must not.
    hp = HyperParams(np.full(3, 0.125), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    ds = simulate(HP_CFG, 3, key=2, chunk_size=3, hparams=hp)
    np.testing.assert_array_equal(ds["diverged"].values, [False, True, False])


ALLOWED_HP = {"lr": lambda v: v > 0, "beta": lambda v: 0 <= v <= 1, "sigma_0": lambda v: v >= 0}


@FAST
@given(field=st.sampled_from(sorted(ALLOWED_HP)), value=st.floats())
def test_invalid_hparams_name_the_field(field, value):
    assume(not (math.isfinite(value) and ALLOWED_HP[field](value)))
    hp = HyperParams(None, None, None)._replace(**{field: value})
    with pytest.raises(ConfigError, match=rf"invalid hparams\.{field}"):
        simulate(HP_CFG, 3, key=2, chunk_size=3, hparams=hp)


def test_keys_are_validated():
    for bad in (-1, 2**63, True):
        with pytest.raises(ConfigError, match="invalid key"):
            as_key(bad)
    assert jax.random.key_data(as_key(7)).shape == (2,)
