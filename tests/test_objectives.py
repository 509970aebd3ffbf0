"""The representations and their registry (simdyn.objectives): each one's hand-counted FLOPs
against XLA's count, memory per seed against XLA's buffer assignment, the automatic choice
(with the time model of simdyn.cost), the protocol every registered one implements, and
registering a new one."""

import jax
import jax.numpy as jnp
import pytest

import simdyn
from simdyn import (
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    TrainConfig,
    default_hparams,
    make_train,
    objectives,
    preset,
)
from simdyn.cost import estimated_seconds, projected_rank
from simdyn.data import sample_training_set
from simdyn.moments import dense_moments, structured_moments
from simdyn.projected import projected_moments

BACKENDS = objectives.names()


def step_cost(config, name):
    return objectives.get(name).step_cost(config)


def memory_per_seed(config, name):
    return objectives.get(name).memory_per_seed(config)


def _small(noise="basis", backend="auto", p=3, loss="joint"):
    # joint: the step computes all three products, which is what step_cost counts (SCL / UCL
    # skip one of them; see test_flop_count_bounds_the_static_weight_step).
    data = DataConfig(n=40, m=2, d=300, K=4, phi=(1.0,) * 4, noise=noise, n_test=20)
    train = TrainConfig(loss=loss, beta=0.7, steps=10, log_every=5, backend=backend, probe_every=-1)
    return Config(data, ModelConfig(p=p), train)


def _xla_step_cost(config: Config) -> dict:
    """XLA's count for ONE GD step of the representation the run resolves to."""
    return objectives.xla_step_cost(objectives.full_batch_name(config), config)


# Tolerances: dense, structured and projected are matrix products plus a few elementwise passes,
# all counted the way XLA counts them (2 per multiply-add, 1 per elementwise op): 3 %. The
# sample path is an autodiff graph whose broadcasts, selects and transposes the formula lumps
# into a per-point constant: 15 %.
_FLOP_RTOL = {"dense": 0.03, "structured": 0.03, "projected": 0.03, "sample": 0.15}


@pytest.mark.parametrize(
    "noise, backend",
    [
        ("basis", "dense"),
        ("basis", "structured"),
        ("basis", "projected"),
        ("basis", "sample"),
        ("gaussian", "dense"),
        ("gaussian", "projected"),
        ("gaussian", "sample"),
    ],
)
@pytest.mark.slow
def test_flop_count_matches_xla(noise, backend):
    cfg = _small(noise, backend)
    xla = _xla_step_cost(cfg)
    hand = step_cost(cfg, backend)
    assert hand.flops == pytest.approx(xla["flops"], rel=_FLOP_RTOL[backend])
    # Bytes: the unoptimised module materialises every intermediate, so it bounds the traffic
    # from above (10 % slack for what it shares between the two steps).
    assert hand.bytes <= 1.1 * xla["bytes accessed"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["structured", "dense"])
def test_flop_count_bounds_the_static_weight_step(backend):
    # SCL compiles no Theta M~ (train.full_objective), so XLA counts fewer FLOPs than step_cost,
    # which counts every product: the hand count is an upper bound there, and a strict one.
    cfg = _small("basis", backend, loss="scl")
    xla = _xla_step_cost(cfg)["flops"]
    assert xla < step_cost(cfg, backend).flops
    assert xla < _xla_step_cost(_small("basis", backend))["flops"]  # the joint step, all products


@pytest.mark.parametrize("noise", ["basis", "gaussian"])
def test_byte_count_covers_the_moments_it_must_read(noise):
    # Lower bound, independent of the formulas: every step reads the whole moment representation.
    cfg = _small(noise)
    ts = sample_training_set(jax.random.key(0), cfg.data, jnp.float32)
    builds = {
        "dense": lambda: dense_moments(ts.points, ts.labels, cfg.data.d),
        "projected": lambda: projected_moments(ts.points, ts.labels, cfg.data, jnp.float32(0.5))[
            1:
        ],
    }
    if noise == "basis":
        builds["structured"] = lambda: structured_moments(ts.points, ts.labels, cfg.data.d)
    for backend, build in builds.items():
        shapes = jax.eval_shape(build)
        nbytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes))
        assert step_cost(cfg, backend).bytes >= nbytes, backend


def test_counts_scale_as_documented():
    # dense is quadratic in D, structured linear in D, projected independent of D (basis noise
    # apart from the final O(p D) update), sample linear in N.
    a, b = _small(), _small().replace(d=600)
    ratio = {k: step_cost(b, k).flops / step_cost(a, k).flops for k in BACKENDS}
    assert 3.5 < ratio["dense"] < 4.1
    assert 1.7 < ratio["structured"] < 2.1
    assert ratio["projected"] < 1.1
    big = _small().replace(n=80)
    assert step_cost(big, "sample").flops / step_cost(_small(), "sample").flops > 1.8


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["structured", pytest.param("projected", marks=pytest.mark.slow)]
)
def test_memory_per_seed_bounds_xla_buffer_assignment(backend):
    # Per-seed memory measured from XLA's buffer assignment of the real vmapped training
    # program: (bytes at 8 seeds - bytes at 4 seeds) / 4. The hand count is meant to be
    # generous (it sizes chunks): at least the measurement, at most 2.5 times it.
    cfg = _small(backend=backend)

    def total(num_seeds):
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(num_seeds))
        run = jax.jit(jax.vmap(make_train(cfg), in_axes=(0, None)))
        mem = run.lower(keys, default_hparams(cfg)).compile().memory_analysis()
        return mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes

    measured = (total(8) - total(4)) / 4
    hand = memory_per_seed(cfg, backend)
    assert measured <= hand <= 2.5 * measured


def test_memory_per_seed_orders_the_paths_at_fig2a():
    cfg = preset("fig2a")
    mem = {b: memory_per_seed(cfg, b) for b in BACKENDS}
    # dense holds three D x D matrices (48 MB in float32) and the dense data; structured never
    # forms anything D x D.
    assert mem["dense"] > 3 * (cfg.data.d + 1) ** 2 * 4
    assert mem["structured"] < mem["dense"] / 50


def test_choices_on_the_presets_and_gaussian_noise():
    # fig1/2: N = 5000 > D, projection cannot shrink anything; structured is the cheapest
    # (benchmarks/README.md measures it 3x faster than sample, 70x faster than dense/projected).
    assert objectives.choose(preset("fig2a")) == "structured"
    assert objectives.choose(preset("fig1")) == "structured"
    # Gaussian noise: every point is dense. N < D: projection (r = N) beats dense O(p D^2) and
    # the sample form (O(N p D) gathers); N > D: nothing to project, dense wins.
    gauss_small = preset("fig4a").replace(noise="gaussian", noise_placement="iid")
    assert projected_rank(gauss_small.data) == gauss_small.data.num_points
    assert objectives.choose(gauss_small) == "projected"
    assert objectives.choose(preset("fig2a").replace(noise="gaussian")) == "dense"
    # Sparse fig4 data: the per-point form touches only N (K + 2) numbers per step.
    assert objectives.choose(preset("fig4a")) == "sample"


def test_structured_is_never_chosen_where_it_does_not_apply():
    cfg = preset("fig4a").replace(augmentation="imperfect", aug_noise_rank=1, aug_noise_scale=0.1)
    assert "structured" not in objectives.applicable(cfg)
    assert objectives.choose(cfg) in objectives.applicable(cfg)


def test_resolve_uses_the_cost_model_only_for_auto():
    cfg = preset("fig2a")
    assert objectives.resolve(cfg) == objectives.choose(cfg)
    assert objectives.resolve(cfg.replace(backend="dense")) == "dense"
    assert objectives.resolve(cfg.replace(batch_size=100)) == "sample"  # minibatch SGD


def test_estimated_seconds_is_monotone_in_every_count():
    cfg = _small()
    base = step_cost(cfg, "structured")
    t0 = estimated_seconds(base)
    for field in base._fields:
        assert estimated_seconds(base._replace(**{field: 2 * getattr(base, field)})) > t0


# ------------------------------------------------------------------- the registry and protocol


@pytest.fixture(scope="module")
def x64():
    simdyn.enable_x64()


def _f64_small(noise="basis", loss="joint"):
    return _small(noise, loss=loss).replace(dtype="float64", n=12, d=40)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["joint", "scl", "ucl"])
def test_every_registered_representation_gives_the_same_loss_and_its_own_gradient(x64, loss):
    # Protocol: build -> a pytree objective whose loss_and_grad is (loss, autodiff of loss), and
    # all exact representations agree with each other (float64, one training set).
    cfg = _f64_small(loss=loss)
    ts = sample_training_set(jax.random.key(3), cfg.data, jnp.float64)
    theta = jax.random.normal(jax.random.key(4), (cfg.model.p, cfg.data.d + 1), jnp.float64)
    beta = jnp.asarray(0.7 if loss == "joint" else objectives.base.static_weight(cfg))
    losses = {}
    for name in objectives.applicable(cfg):
        obj = jax.jit(objectives.get(name).build, static_argnums=0)(cfg, ts, beta)
        value, grad = jax.jit(type(obj).loss_and_grad)(obj, theta)  # a pytree through jit
        auto = jax.jit(jax.grad(type(obj).loss, argnums=1))(obj, theta)
        assert float(jnp.linalg.norm(grad - auto) / jnp.linalg.norm(auto)) < 1e-12, name
        losses[name] = float(value)
    assert set(losses) == set(BACKENDS)
    ref = losses["dense"]
    assert all(abs(v - ref) <= 1e-12 * abs(ref) for v in losses.values()), losses


@pytest.mark.slow
def test_objectives_build_under_vmap_as_pytrees(x64):
    cfg = _f64_small()
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(3))
    theta = jnp.ones((cfg.model.p, cfg.data.d + 1), jnp.float64) * 0.01
    for name in BACKENDS:

        def build(key, name=name):
            ts = sample_training_set(key, cfg.data, jnp.float64)
            return objectives.get(name).build(cfg, ts, jnp.asarray(0.7))

        stacked = jax.jit(jax.vmap(build))(keys)
        per_seed = jax.jit(jax.vmap(lambda obj: obj.loss(theta)))(stacked)
        one = jax.jit(lambda k: build(k).loss(theta))(keys[1])
        assert per_seed.shape == (3,) and abs(float(per_seed[1] - one)) <= 1e-12 * abs(float(one))


def test_registry_names_errors_and_config_validation():
    assert BACKENDS == ("structured", "projected", "sample", "dense")
    assert "encoder" in objectives.REGISTRY and "encoder" not in BACKENDS
    with pytest.raises(ValueError, match="invalid backend='nope'"):
        objectives.get("nope")
    with pytest.raises(ConfigError, match="train.backend"):
        objectives.validate(_small(backend="encoder"))  # a model form is no train.backend
    with pytest.raises(ConfigError, match="train.backend='structured'.*not exact"):
        objectives.validate(_small(backend="structured", noise="gaussian"))
    with pytest.raises(ConfigError, match="train.backend='dense'.*minibatch SGD"):
        objectives.validate(_small(backend="dense").replace(batch_size=4))
    for name in ("auto", "sample"):
        sgd = _small(backend=name).replace(batch_size=4)
        assert objectives.validate(sgd).train.backend == name
    for name in BACKENDS:
        rep = objectives.get(name)
        assert rep.name == name
        assert rep.step_cost(_small()).flops > 0 and rep.memory_per_seed(_small()) > 0


@pytest.mark.slow
def test_a_new_representation_is_one_module_and_one_registry_line(monkeypatch, tmp_path, x64):
    # The README's extension story, run: a module defining a class with the protocol's
    # classmethods, one REGISTRY entry; config validation, simulate and auto all see it.
    import sys

    (tmp_path / "halved_dense.py").write_text(
        "from simdyn.objectives.dense import DenseObjective\n"
        "from simdyn.objectives.base import pytree_dataclass\n"
        "@pytree_dataclass(data=('moments', 'beta'), meta=('weight',))\n"
        "class HalvedDense(DenseObjective):\n"
        "    name = 'halved-dense'\n"
        "    @classmethod\n"
        "    def step_cost(cls, config):\n"
        "        c = DenseObjective.step_cost(config)\n"
        "        return c._replace(flops=0.0, bytes=0.0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(objectives.REGISTRY, "halved-dense", "halved_dense:HalvedDense")
    try:
        cfg = _f64_small().replace(steps=4, log_every=2)
        assert objectives.choose(cfg) == "halved-dense"  # its modelled cost is the lowest
        got = simdyn.simulate(cfg.replace(backend="halved-dense"), 2, key=5)
        want = simdyn.simulate(cfg.replace(backend="dense"), 2, key=5)
        assert got.attrs["backend"] == "halved-dense"
        assert (got["alignment"].values == want["alignment"].values).all()
    finally:
        sys.modules.pop("halved_dense", None)


@pytest.mark.slow
def test_encoder_representation_states_its_cost_and_matches_the_linear_form(x64):
    from simdyn.encoders import first_layer, init_encoder, make_encoder
    from simdyn.losses import sample_loss

    cfg = _f64_small()
    enc = make_encoder(cfg)  # the paper's linear map: loss = the linear form's at W_1 = Theta
    rep = objectives.get("encoder")(enc, lambda z, y: sample_loss(z, y, 0.7))
    assert rep.applies(cfg) and not rep.applies(cfg.replace(d=41))
    ts = sample_training_set(jax.random.key(3), cfg.data, jnp.float64)
    params = init_encoder(enc, jax.random.key(4), ts.points)
    theta = first_layer(params)
    value, _ = rep.build(cfg, ts).loss_and_grad(params)
    linear = objectives.get("dense").build(cfg, ts, jnp.asarray(0.7)).loss(theta)
    assert abs(float(value - linear)) <= 1e-12 * abs(float(linear))
    cost = rep.step_cost(cfg)
    assert cost.flops > 0 and rep.memory_per_seed(cfg) > 0
