"""LOOP (simdyn's training loop): ``make_train`` performs the documented update from the
documented init, written out here from the CONFIG.

Every GD/SGD row predicts from the config's nominal settings, but several of them read back the
simulator's own initialisation (``init_theta``) or compare the loop only with itself at another
size, so a slip in the loop's wiring that scales the step, the init or the SCL weight, or that
feeds SGD the same minibatch at every step, can hide inside their tolerances. This row
re-implements one seed's run step by step from the definitions and requires the library's
compiled run to end at the same Theta to round-off, on EVERY unit (an exact statement):

* the key protocol (simdyn.seeds, written out): seed key k_s = fold_in(key, s); its streams
  fold_in(k_s, 0) data, 1 init, 2 batch; the minibatch of step t uses fold_in(batch key, t);
* Theta_0 = sigma_0 / sqrt(d) N(0, I) drawn from the init key (float64, shape (p, d + 1));
* plain (S)GD, Theta_{t+1} = Theta_t - eta g_t with eta = train.lr and the joint loss's SCL
  weight beta = train.beta, g_t the full-batch gradient of the DENSE matrix form (the reference
  form, -4 Theta P + 4 (Theta M Theta^T)(Theta M) with D x D moments) or the in-batch gradient
  of step t's minibatch (:func:`simdyn.objectives.sample.minibatch_gradient`, fixed or fresh
  views).

The library's side is the verifier's own run (:func:`simdyn.verify.runs.run`, the path of every
GD/SGD row, through the active simulator) of full-batch GD with ``backend`` auto, structured and
projected (the joint loss, so M+ and M~ both enter), and of SGD. So beyond the wiring the GD
points also pin each representation to the dense form (as REPR does for its own designs).

Tolerance TOL (relative, max |Theta - Theta_ref| / max |Theta_ref|): the compiled run and the
eager written-out loop (and two exact representations) differ only in the order of
floating-point operations, at most ~N eps_64 per step relatively (N = m n points, eps_64 =
2.2e-16), so T N eps_64 ~ 4e-14 after T = 6 steps at N = 32 (measured: 4e-16); TOL = 1e-9 keeps
a wide margin while a step size off by 1e-6 moves Theta_T by ~7e-7 relatively (the near-miss
control, measured 6e-7 to 9e-7).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from simdyn.config import Config, DataConfig, ModelConfig, TrainConfig
from simdyn.verify.claim import Row, RowText, Rule
from simdyn.verify.stats import TestResult, exact_test

TOL = 1e-9
CONTROL_LR = 1.0 + 1e-6  # the near miss: the written-out run with eta (1 + 1e-6)
SEEDS = 3
STEPS = 6
DATA, INIT, BATCH = 0, 1, 2  # simdyn.seeds' purposes, written out (the key protocol)
REFERENCE = "dense"  # the written-out GD gradient: the dense matrix form (the reference form)


def configs() -> dict[str, Config]:
    """Full-batch GD (``auto``, and the structured and projected forms by name), SGD with
    fixed views and SGD with fresh views (joint loss, float64)."""
    data = DataConfig(
        n=16, m=2, d=60, K=4, phi=(1.0, 0.8, 0.6, 0.7), mu=0.5, sigma_xi=0.9, n_test=4
    )
    model = ModelConfig(p=3, sigma_0=0.5)
    train = TrainConfig(
        loss="joint", beta=0.3, lr=0.05, steps=STEPS, log_every=STEPS, probe_every=-1,
        dtype="float64", save_theta=True,
    )  # fmt: skip
    gd = Config(data, model, train)
    return {
        "gd": gd,
        "gd-structured": gd.replace(backend="structured"),
        "gd-projected": gd.replace(backend="projected"),
        "sgd-fixed": Config(data, model, dataclasses.replace(train, batch_size=8)),
        "sgd-fresh": Config(
            data, model, dataclasses.replace(train, batch_size=8, fresh_augmentations=True)
        ),
    }


def written_out(config: Config, seed_key: jax.Array, lr_factor: float = 1.0) -> np.ndarray:
    """Theta_T of one seed, from the definitions in the module docs (eager, float64)."""
    from simdyn import objectives
    from simdyn.data import sample_training_set
    from simdyn.objectives.sample import minibatch_gradient

    t, dcfg, p = config.train, config.data, config.model.p
    keys = [jax.random.fold_in(seed_key, purpose) for purpose in (DATA, INIT, BATCH)]
    ts = sample_training_set(keys[0], dcfg, jnp.float64)
    beta = jnp.asarray(t.beta, jnp.float64)
    theta = jax.random.normal(keys[1], (p, dcfg.d + 1), jnp.float64)
    theta = theta * (config.model.sigma_0 / np.sqrt(dcfg.d))
    if t.full_batch:
        objective = objectives.get(REFERENCE).build(config, ts, beta)
        grad = jax.jit(lambda th, _: objective.loss_and_grad(th)[1])
    else:
        grad = jax.jit(minibatch_gradient(config, ts, beta))
    eta = t.lr * lr_factor
    for step in range(t.steps):
        theta = theta - eta * grad(theta, jax.random.fold_in(keys[2], step))
    return np.asarray(theta)


def measure(design: Any, key: int) -> dict[str, Any]:
    """Per config and seed: the verifier's run of it (:func:`simdyn.verify.runs.run`, the path
    every GD/SGD row takes, through the active simulator), the written-out Theta_T, and the
    near miss."""
    from simdyn.verify.runs import run

    out: dict[str, Any] = {}
    base = jax.random.key(key)
    for name, config in configs().items():
        thetas = run(config, list(range(SEEDS)), key).theta
        rows = []
        for s in range(SEEDS):
            seed_key = jax.random.fold_in(base, s)
            lib = np.asarray(thetas[s])
            rows.append(
                (lib, written_out(config, seed_key), written_out(config, seed_key, CONTROL_LR))
            )
        out[name] = rows
    return out


def _deviation(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.max(np.abs(b)))
    dev = float(np.max(np.abs(a - b))) / max(scale, np.finfo(float).tiny)
    return dev if np.isfinite(dev) else np.inf


def _test(name: str, which: int):
    def rule(design, units) -> TestResult:
        devs = np.array([_deviation(r[0], r[which]) for rows in units.values() for r in rows])
        return exact_test(
            name, devs <= TOL,
            statistic="max |Theta_T - Theta_T(written out)| / max |Theta_T(written out)|",
            rule=f"<= {TOL:g} on every unit (GD, SGD fixed views, SGD fresh views)",
            data={"deviation": devs},
        )  # fmt: skip

    return rule


def _describe(design, units) -> RowText:
    devs = [_deviation(r[0], r[1]) for rows in units.values() for r in rows]
    return RowText(
        summary=f"{len(devs)} units, 3 loops",
        design=f"joint beta=0.3, n=16, m=2, d=60, p=3, {STEPS} steps; GD, SGD (batch 8, fixed "
        f"and fresh views); {SEEDS} seeds each; largest deviation {max(devs):.1e}",
    )


ROW = Row(
    measure=measure,
    claim="LOOP",
    source="simdyn training loop (init, key protocol, (S)GD update, beta wiring)",
    control=f"the written-out run with eta x {CONTROL_LR:.6g} (a near miss): must fail",
    rules=(Rule("loop", f"Theta_T equals the written-out run within {TOL:g} (exact)", _test(
        "loop", 1)),),
    controls=(Rule("control:lr", "(near miss) against eta (1 + 1e-6)", _test("control:lr", 2)),),
    describe=_describe,
)  # fmt: skip
