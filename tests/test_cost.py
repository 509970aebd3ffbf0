"""The cost model (simdyn.cost): hand-counted FLOPs against XLA's count, memory per seed against
XLA's buffer assignment, and the automatic choice of path."""

import jax
import jax.numpy as jnp
import pytest

from simdyn import Config, DataConfig, ModelConfig, TrainConfig, default_hparams, make_train, preset
from simdyn.cost import (
    BACKENDS,
    applicable_backends,
    choose_backend,
    estimated_seconds,
    memory_per_seed,
    projected_rank,
    step_cost,
)
from simdyn.data import sample_training_set
from simdyn.moments import dense_moments, structured_moments
from simdyn.projected import projected_objective
from simdyn.train import full_objective, init_theta, resolve_backend


def _small(noise="basis", backend="auto", p=3, loss="joint"):
    # joint: the step computes all three products, which is what step_cost counts (SCL / UCL
    # skip one of them; see test_flop_count_bounds_the_static_weight_step).
    data = DataConfig(n=40, m=2, d=300, K=4, phi=(1.0,) * 4, noise=noise, n_test=20)
    train = TrainConfig(loss=loss, beta=0.7, steps=10, log_every=5, backend=backend, probe_every=-1)
    return Config(data, ModelConfig(p=p), train)


def _xla_step_cost(config: Config) -> dict:
    """XLA's count for ONE GD step: (setup + 2 steps) - (setup + 1 step), unoptimised HLO.

    The unoptimised module is used because it needs no compilation (fast) and counts every
    operation the code asks for; its FLOPs equal the optimised module's for these programs
    (checked by hand once: optimisation only fuses, it removes no arithmetic of the step).
    """
    ts = sample_training_set(jax.random.key(0), config.data, jnp.float32)
    theta = init_theta(
        jax.random.key(1), config.model.p, config.data.d, jnp.float32(1e-3), True, jnp.float32
    )

    def analysis(num_steps):
        def run(ts, theta):
            _, loss_and_grad = full_objective(config, ts, jnp.float32(0.7))
            for _ in range(num_steps):
                theta = theta - 0.05 * loss_and_grad(theta)[1]
            return theta

        out = jax.jit(run).lower(ts, theta).cost_analysis()
        return out[0] if isinstance(out, list) else out

    one, two = analysis(1), analysis(2)
    return {k: two[k] - one[k] for k in ("flops", "bytes accessed")}


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
def test_flop_count_matches_xla(noise, backend):
    cfg = _small(noise, backend)
    xla = _xla_step_cost(cfg)
    hand = step_cost(cfg, backend)
    assert hand.flops == pytest.approx(xla["flops"], rel=_FLOP_RTOL[backend])
    # Bytes: the unoptimised module materialises every intermediate, so it bounds the traffic
    # from above (10 % slack for what it shares between the two steps).
    assert hand.bytes <= 1.1 * xla["bytes accessed"]


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
        "projected": lambda: projected_objective(ts.points, ts.labels, cfg.data, jnp.float32(0.5))[
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
    assert choose_backend(preset("fig2a")) == "structured"
    assert choose_backend(preset("fig1")) == "structured"
    # Gaussian noise: every point is dense. N < D: projection (r = N) beats dense O(p D^2) and
    # the sample form (O(N p D) gathers); N > D: nothing to project, dense wins.
    gauss_small = preset("fig4a").replace(noise="gaussian", noise_placement="iid")
    assert projected_rank(gauss_small.data) == gauss_small.data.num_points
    assert choose_backend(gauss_small) == "projected"
    assert choose_backend(preset("fig2a").replace(noise="gaussian")) == "dense"
    # Sparse fig4 data: the per-point form touches only N (K + 2) numbers per step.
    assert choose_backend(preset("fig4a")) == "sample"


def test_structured_is_never_chosen_where_it_does_not_apply():
    cfg = preset("fig4a").replace(augmentation="imperfect", aug_noise_rank=1, aug_noise_scale=0.1)
    assert "structured" not in applicable_backends(cfg)
    assert choose_backend(cfg) in applicable_backends(cfg)


def test_resolve_backend_uses_the_cost_model_only_for_auto():
    cfg = preset("fig2a")
    assert resolve_backend(cfg) == choose_backend(cfg)
    assert resolve_backend(cfg.replace(backend="dense")) == "dense"
    assert resolve_backend(cfg.replace(batch_size=100)) == "sample"  # minibatch SGD


def test_estimated_seconds_is_monotone_in_every_count():
    cfg = _small()
    base = step_cost(cfg, "structured")
    t0 = estimated_seconds(base)
    for field in base._fields:
        assert estimated_seconds(base._replace(**{field: 2 * getattr(base, field)})) > t0
