import json

import pytest

import simdyn
from simdyn import Config, ConfigError, DataConfig, ModelConfig, TrainConfig, preset
from simdyn._src.presets import PRESETS
from simdyn.config import apply_overrides


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_valid_and_json_round_trip(name):
    cfg = preset(name)
    again = Config.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(again.to_json()) == json.loads(cfg.to_json())


def test_preset_settings_as_printed_in_paper():
    c = preset("fig1")
    assert (c.model.p, c.data.n, c.data.m, c.data.d, c.data.K) == (3, 1000, 5, 2000, 4)
    assert c.data.phi == (1.0, 1.0, 1.0, 1.0) and c.data.mu == 1.0 and c.data.sigma_xi == 2.0
    assert (c.model.sigma_0, c.train.lr, c.train.loss) == (0.001, 0.05, "scl")
    assert preset("fig2a").train.steps == 500 and preset("fig2b").model.p == 500
    assert preset("fig4a").data.K == preset("fig4a").model.p == 3
    assert preset("fig4b").data.K == preset("fig4b").model.p == 50
    assert preset("fig4a").data.phi[:2] == (0.8, 1.0) and preset("fig4a").data.mu == 0.0


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: ModelConfig(p=0), "model.p"),
        (lambda: DataConfig(K=2, phi=(1.0, 1.0)), "data.K"),
        (lambda: DataConfig(phi=(1.0, -1.0, 1.0, 1.0)), "data.phi[1]"),
        (lambda: DataConfig(phi=(1.0, 1.0)), "data.phi"),
        (lambda: DataConfig(d=3), "data.d"),
        (lambda: DataConfig(sigma_xi=-1.0), "data.sigma_xi"),
        (lambda: DataConfig(noise="laplace"), "data.noise"),
        (
            lambda: DataConfig(n=100, m=5, d=300, noise_placement="good_event"),
            "data.noise_placement",
        ),
        (
            lambda: DataConfig(augmentation="imperfect", m=2, aug_noise_rank=2),
            "data.aug_noise_rank",
        ),
        (lambda: DataConfig(augmentation="imperfect", aug_sigma_class=0.0), "data.aug_sigma_class"),
        (lambda: TrainConfig(beta=1.0), "train.beta"),
        (lambda: TrainConfig(beta=0.0), "train.beta"),
        (lambda: TrainConfig(lr=0.0), "train.lr"),
        (lambda: TrainConfig(lr=float("nan")), "train.lr"),
        (lambda: TrainConfig(steps=10, log_every=3), "train.log_every"),
        (lambda: TrainConfig(steps=10, log_every=2, probe_every=3), "train.probe_every"),
        (lambda: TrainConfig(optimizer="lbfgs"), "train.optimizer"),
        (lambda: TrainConfig(steps=0), "train.steps"),
        (
            lambda: Config(DataConfig(n=10), ModelConfig(), TrainConfig(batch_size=11)),
            "train.batch_size",
        ),
        (
            lambda: simdyn.objectives.validate(
                Config(
                    DataConfig(noise="gaussian"), ModelConfig(), TrainConfig(backend="structured")
                )
            ),
            "train.backend",
        ),
        (
            lambda: Config(DataConfig(n=10), ModelConfig(), TrainConfig(fresh_augmentations=True)),
            "train.fresh_augmentations",
        ),
    ],
)
def test_invalid_values_name_the_field(make, field):
    with pytest.raises(ConfigError) as err:
        make()
    assert field in str(err.value)


def test_overrides_unique_dotted_ambiguous_and_unknown():
    c = preset("fig1")
    c2 = apply_overrides(c, {"p": "5", "lr": "0.1", "train.beta": 0.3, "model.sigma_0": "0.01"})
    assert (c2.model.p, c2.train.lr, c2.train.beta, c2.model.sigma_0) == (5, 0.1, 0.3, 0.01)
    assert c2.data == c.data
    c3 = apply_overrides(c, {"K": "6"})  # phi follows K, repeating its last entry
    assert c3.data.K == 6 and c3.data.phi == (1.0,) * 6
    c4 = apply_overrides(c, {"phi": "0.5,1,1,1", "batch_size": "10", "fresh_augmentations": "1"})
    assert c4.data.phi == (0.5, 1.0, 1.0, 1.0) and c4.train.batch_size == 10
    assert c4.train.fresh_augmentations is True
    with pytest.raises(ConfigError, match="unknown config field 'q'"):
        apply_overrides(c, {"q": 1})
    with pytest.raises(ConfigError, match="model.p"):
        apply_overrides(c, {"p": "abc"})
    with pytest.raises(ConfigError, match="unknown config field 'data.p'"):
        apply_overrides(c, {"data.p": 1})


def test_from_dict_rejects_unknown_fields():
    d = preset("fig1").to_dict()
    d["model"]["width"] = 3
    with pytest.raises(ConfigError, match="width"):
        Config.from_dict(d)


def test_record_and_probe_steps():
    t = TrainConfig(steps=20, log_every=5, probe_every=10)
    assert t.record_steps == (0, 5, 10, 15, 20)
    assert t.probe_steps == (0, 10, 20)
    assert TrainConfig(steps=20, probe_every=0).probe_steps == (0, 20)
    assert TrainConfig(steps=20, probe_every=-1).probe_steps == ()
