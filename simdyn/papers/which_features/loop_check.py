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

The library's side is the verifier's own run (:func:`simdyn.papers.which_features.runs.run`, the
path of every
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
SEEDS = 3  # per loop; the near-miss control runs on the first seed of each
STEPS = 6
DATA, INIT, BATCH = 0, 1, 2  # simdyn.seeds' purposes, written out (the key protocol)
REFERENCE = "dense"  # the written-out GD gradient: the dense matrix form (the reference form)


def configs() -> dict[str, Config]:
    """Full-batch GD (``auto``, and the structured and projected forms by name; the projected
    one with distinct noise coordinates; ``auto`` on Gaussian noise), SGD
    with fixed views and SGD with fresh views (joint loss, float64)."""
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
        # Good-event placement: every noise coordinate distinct, so the projected basis is
        # exactly full (r = K + 1 + m n), the edge case of its rank.
        "gd-projected": Config(
            dataclasses.replace(data, noise_placement="good_event"),
            model,
            dataclasses.replace(train, backend="projected"),
        ),
        # ``gd`` runs the default data (i.i.d. labels, i.i.d. basis-noise placement); this runs
        # Gaussian noise the way users run it (auto: dense points, the projected dense basis).
        "gd-gaussian": Config(dataclasses.replace(data, noise="gaussian"), model, train),
        "sgd-fixed": Config(data, model, dataclasses.replace(train, batch_size=8)),
        "sgd-fresh": Config(
            data, model, dataclasses.replace(train, batch_size=8, fresh_augmentations=True)
        ),
    }


def written_out(
    config: Config, seed_key: jax.Array, lr_factor: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(Theta_T, recorded) of one seed, from the definitions in the module docs (eager,
    float64); recorded: what a run records at T, written out - the feature alignments
    ||Theta_T e_j|| (columns j = 0..K) and the dense form's loss L(Theta_T)."""
    from simdyn import objectives
    from simdyn.data import sample_training_set
    from simdyn.objectives.sample import minibatch_gradient

    t, dcfg, p = config.train, config.data, config.model.p
    keys = [jax.random.fold_in(seed_key, purpose) for purpose in (DATA, INIT, BATCH)]
    ts = sample_training_set(keys[0], dcfg, jnp.float64)
    beta = jnp.asarray(t.beta, jnp.float64)
    theta = jax.random.normal(keys[1], (p, dcfg.d + 1), jnp.float64)
    theta = theta * (config.model.sigma_0 / np.sqrt(dcfg.d))
    objective = objectives.get(REFERENCE).build(config, ts, beta)
    if t.full_batch:
        grad = lambda th, _: objective.loss_and_grad(th)[1]  # eager: 6 steps, no compile
    else:
        grad = minibatch_gradient(config, ts, beta)
    eta = t.lr * lr_factor
    for step in range(t.steps):
        theta = theta - eta * grad(theta, jax.random.fold_in(keys[2], step))
    final = np.asarray(theta)
    norms = np.sqrt(np.sum(final[:, : dcfg.K + 1] ** 2, axis=0))
    return final, np.append(norms, float(objective.loss(jnp.asarray(final))))


def measure(design: Any, key: int) -> dict[str, Any]:
    """Per config and seed: the verifier's run of it
    (:func:`simdyn.papers.which_features.runs.run`, the path
    every GD/SGD row takes, through the active simulator), the written-out Theta_T, and the
    near miss."""
    from simdyn.papers.which_features.runs import run

    out: dict[str, Any] = {}
    base = jax.random.key(key)
    for name, config in configs().items():
        runs = run(config, list(range(SEEDS)), key)
        rows = []
        for s in range(SEEDS):
            seed_key = jax.random.fold_in(base, s)
            ref, ref_rec = written_out(config, seed_key)
            near = written_out(config, seed_key, CONTROL_LR)[0] if s == 0 else None
            lib_rec = np.append(runs.alignment[s, -1], runs.loss[s, -1])
            rows.append((np.asarray(runs.theta[s]), ref, near, lib_rec, ref_rec))
        out[name] = rows
    return out


def _deviation(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.max(np.abs(b)))
    dev = float(np.max(np.abs(a - b))) / max(scale, np.finfo(float).tiny)
    return dev if np.isfinite(dev) else np.inf


def _test(name: str, lib: int, ref: int, what: str = "Theta_T"):
    def rule(design, units) -> TestResult:
        pairs = [(r[lib], r[ref]) for rows in units.values() for r in rows if r[ref] is not None]
        devs = np.array([_deviation(a, b) for a, b in pairs])
        return exact_test(
            name, devs <= TOL,
            statistic=f"max |{what} - written out| / max |written out|",
            rule=f"<= {TOL:g} on every unit (GD auto/structured/projected on i.i.d. data, "
            "Gaussian noise; SGD fixed and fresh views)",
            data={"deviation": devs},
        )  # fmt: skip

    return rule


def _describe(design, units) -> RowText:
    devs = [_deviation(r[0], r[1]) for rows in units.values() for r in rows]
    return RowText(
        summary=f"{len(devs)} units, {len(units)} loops",
        design=f"joint beta=0.3, n=16, m=2, d=60, p=3, {STEPS} steps; GD (i.i.d. labels and "
        f"basis-noise placement; Gaussian noise), SGD (batch 8, fixed and fresh views); {SEEDS} "
        f"seeds each; "
        f"largest deviation {max(devs):.1e}",
    )


ROW = Row(
    measure=measure,
    claim="LOOP",
    source="simdyn training loop (init, key protocol, (S)GD update, beta wiring)",
    control=f"the written-out run with eta x {CONTROL_LR:.6g} (a near miss): must fail",
    rules=(
        Rule("loop", f"Theta_T equals the written-out run within {TOL:g} (exact) on every "
             f"unit of {', '.join(configs())}",
             _test("loop", 0, 1)),
        Rule("recorded", f"the recorded alignments ||Theta_T v_j|| and loss at T equal those "
             f"written out from Theta_T within {TOL:g} (exact)",
             _test("recorded", 3, 4, "(alignment_T, loss_T)")),
    ),
    controls=(Rule("control:lr", "(near miss) against eta (1 + 1e-6)",
                   _test("control:lr", 0, 2)),),
    describe=_describe,
)  # fmt: skip
