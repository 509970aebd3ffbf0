"""REPR (simdyn's own exactness): every exact representation of the loss trains the same GD path.

Not a claim of the paper: the precondition of every GD row. simdyn has four exact full-batch
representations of the same objective (``structured``, ``dense``, ``projected``, ``sample``:
:mod:`simdyn.objectives`), and ``backend="auto"`` picks one per config; the other claims' designs
run whichever their config resolves to. This row runs, through :func:`simdyn.simulate` (the path
``simdyn simulate`` takes: config, ``auto`` resolution, the seed engine), every representation
that applies to each design point, on the same seeds, and requires every unit's trajectory to
agree with the dense matrix form (the reference: ``Tr(-2 T^T T P + T^T T M T^T T M)`` written
out) to round-off, on EVERY unit: an exact statement, zero failures allowed. A fault in any
representation (its gradient, one of its moment products, its loss) moves that
representation's trajectory away from the others and fails the row.

Design points (float64, full-batch GD, the library defaults for sampling: i.i.d. labels and
noise placement):

* ``scl-basis``: SCL, basis noise, mu = 1 (the CC setting) - all four representations apply;
* ``joint-gaussian``: joint loss (beta = 0.5), Gaussian noise, unequal phi - ``projected``,
  ``sample`` and ``dense`` apply (the structured form needs basis noise).

Pre-registered statistic per unit and representation R: the largest relative deviation over
the recorded steps, ``e = max_t ||a_R(t) - a_ref(t)|| / ||a_ref(t)||`` with a(t) the vector of
feature alignments ||Theta_t v_j|| (j = 0..K) and ``|L_R(t) - L_ref(t)| / |L_ref(t)|`` for the
loss. Derivation of the tolerance TOL: one step's gradient is a sum of at most N = m n point
terms in every representation, so two representations' gradients differ by at most about
N eps_64 relatively (eps_64 = 2.2e-16: 1e-12 at N = 10^4); GD's relative errors are not
amplified faster than the trajectory itself in the escape phase (the error follows the same
linear growth) and contract once the modes saturate, so after T <= 10^3 steps they stay below
T N eps_64 ~ 1e-9. TOL = 1e-7 keeps a factor 100 of margin; a fault changes a trajectory by
far more (a 1e-4 relative change of the step size moves a 150-step trajectory by ~1e-3, the
near-miss control).

Also pre-registered: ``auto`` is wired - the run with ``backend="auto"`` is bit-identical to
the run with the representation :func:`simdyn.objectives.choose` names (tolerance 0).

Negative control (a near miss): the reference run with the step size off by one part in 10^4
(``lr (1 + 1e-4)``, same seeds) must fail the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simdyn import objectives
from simdyn.config import Config, DataConfig, ModelConfig, TrainConfig
from simdyn.papers.which_features.common import STREAMS
from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo, Scale
from simdyn.verify.stats import TestResult, deterministic_test

INFO = ClaimInfo(
    id="REPR",
    source="simdyn (exactness of its loss representations)",
    statement=(
        "every exact representation that applies to a config (structured, dense, projected, "
        "sample) trains the same GD trajectory to round-off, and auto picks one of them"
    ),
    control="the dense reference with lr x (1 + 1e-4) (a near miss): must fail",
)

REFERENCE = "dense"
TOL = 1e-7  # relative trajectory deviation (module docs: T N eps_64 ~ 1e-9, factor 100 margin)
CONTROL_LR_FACTOR = 1.0 + 1e-4


@dataclass(frozen=True)
class Point:
    """One design point: a name and its config (float64, full-batch GD)."""

    name: str
    config: Config


@dataclass(frozen=True)
class Design:
    points: tuple[Point, ...]
    seeds: int


def _points(steps: int) -> tuple[Point, ...]:
    # No probes: the trajectories are compared, and a probe adds compile time to every run.
    common: dict[str, Any] = {"steps": steps, "log_every": 5, "probe_every": -1, "dtype": "float64"}
    train = TrainConfig(loss="scl", lr=0.05, **common)
    scl = Config(
        DataConfig(n=24, m=2, d=300, K=4, phi=(1.0, 1.0, 1.0, 1.0), mu=1.0, sigma_xi=1.0),
        ModelConfig(p=3, sigma_0=0.01),
        train,
    )
    joint_train = TrainConfig(loss="joint", beta=0.5, lr=0.05, **common)
    joint = Config(
        DataConfig(
            n=16, m=2, d=120, K=4, phi=(0.8, 1.0, 1.2, 0.6), mu=0.5, sigma_xi=1.0, noise="gaussian"
        ),
        ModelConfig(p=4, sigma_0=0.01),
        joint_train,
    )
    return (Point("scl-basis", scl), Point("joint-gaussian", joint))


DESIGNS: dict[Scale, Design] = {
    "small": Design(_points(100), seeds=3),
    "quick": Design(_points(150), seeds=8),
    "full": Design(_points(300), seeds=64),
}


def _simulate(config: Config, seeds: int, key: int, lr: float | None = None):
    import jax.numpy as jnp

    from simdyn import default_hparams, simulate

    # lr replaced, beta and sigma_0 the config's (what HyperParams(lr, None, None) means)
    hp = (
        None
        if lr is None
        else default_hparams(config)._replace(lr=jnp.asarray(lr, config.train.dtype))
    )
    ds = simulate(config, seeds=seeds, key=key, hparams=hp, chunk_size=seeds, devices=1)
    return (
        np.asarray(ds["alignment"].values, float),
        np.asarray(ds["loss"].values, float),
        np.asarray(ds["diverged"].values, bool),
    )


def deviation(ours, reference) -> np.ndarray:
    """Per unit: the largest relative deviation of (alignment, loss) trajectories (module docs).
    Non-finite or diverged trajectories give inf."""
    a, loss, div = ours
    a_ref, loss_ref, div_ref = reference
    tiny = np.finfo(float).tiny
    align = np.linalg.norm(a - a_ref, axis=-1) / np.maximum(np.linalg.norm(a_ref, axis=-1), tiny)
    lossdev = np.abs(loss - loss_ref) / np.maximum(np.abs(loss_ref), tiny)
    e = np.maximum(np.max(align, axis=1), np.max(lossdev, axis=1))
    return np.where(np.isfinite(e) & ~div & ~div_ref, e, np.inf)


def measure(design: Design, key: int) -> dict:
    """Per point: every applicable representation's deviation from the reference per unit, the
    auto run's deviation from the representation auto names, and the near-miss control's."""
    out = {}
    for point in design.points:
        cfg = point.config
        names = objectives.applicable(cfg)
        runs = {n: _simulate(cfg.replace(backend=n), design.seeds, key) for n in names}
        ref = runs[REFERENCE]
        chosen = objectives.choose(cfg)
        auto = _simulate(cfg.replace(backend="auto"), design.seeds, key)
        near = _simulate(
            cfg.replace(backend=REFERENCE),
            design.seeds,
            key,
            lr=cfg.train.lr * CONTROL_LR_FACTOR,
        )
        out[point.name] = {
            "names": names,
            "chosen": chosen,
            "dev": {n: deviation(runs[n], ref) for n in names},
            "auto": max(
                float(np.max(np.abs(auto[0] - runs[chosen][0]))),
                float(np.max(np.abs(auto[1] - runs[chosen][1]))),
            ),
            "control": {n: deviation(runs[n], near) for n in names if n != REFERENCE},
        }
    return out


def _same_path(kind: str):
    def evaluate(design: Design, units: dict) -> list[TestResult]:
        tests = []
        for point in design.points:
            u = units[point.name]
            devs = u[kind]
            errors = np.concatenate([devs[n] for n in devs])
            label = "control:lr-off-1e-4" if kind == "control" else "same-trajectory"
            tests.append(
                deterministic_test(
                    f"{label}[{point.name}]",
                    errors,
                    TOL,
                    statistic="max relative deviation of the alignment and loss trajectories "
                    f"from the {REFERENCE} form, over every unit and representation",
                    rule=f"every unit of every representation within {TOL:g} (zero failures)",
                    data={n: devs[n] for n in devs},
                )
            )
        return tests

    return evaluate


def _auto_wired(design: Design, units: dict) -> list[TestResult]:
    return [
        deterministic_test(
            f"auto-is-{units[p.name]['chosen']}[{p.name}]",
            np.asarray([units[p.name]["auto"]]),
            0.0,
            statistic="max |auto run - run of the representation auto chooses|",
            rule="bit-identical (tolerance 0)",
        )
        for p in design.points
    ]


def describe(design: Design, units: dict) -> RowText:
    parts = [
        f"{p.name}: {', '.join(units[p.name]['names'])} (auto: {units[p.name]['chosen']})"
        for p in design.points
    ]
    worst = max(
        float(np.max(np.concatenate(list(units[p.name]["dev"].values())))) for p in design.points
    )
    return RowText(
        summary=f"{len(design.points)} configs x all representations, {design.seeds} seeds each",
        design=(
            f"simdyn.simulate, float64 GD, {design.seeds} seeds per point, i.i.d. sampling; "
            + "; ".join(parts)
        ),
        notes=(f"largest relative deviation from the {REFERENCE} form: {worst:.1e}",),
    )


CLAIM = Claim(
    info=INFO,
    designs=DESIGNS,
    stream=STREAMS["REPR"],
    rows=(
        Row(
            measure=measure,
            rules=(
                Rule(
                    "same-trajectory[{point}]",
                    f"per point: every applicable representation's alignment and loss "
                    f"trajectories within {TOL:g} (relative) of the {REFERENCE} form on every "
                    "unit; zero failures",
                    _same_path("dev"),
                ),
                Rule(
                    "auto-is-{choice}",
                    "per point: the backend='auto' run is bit-identical to the run of the "
                    "representation objectives.choose names",
                    _auto_wired,
                ),
            ),
            controls=(
                Rule(
                    "control:lr-off-1e-4[{point}]",
                    "(near miss) the same rule against the dense form run with lr x (1 + 1e-4)",
                    _same_path("control"),
                ),
            ),
            describe=describe,
        ),
    ),
)
