"""SGD-OBJ: what minibatch SGD converges to, the expected minibatch objective E_B[L_B].

simdyn's SGD forms its positive pairs and class means inside the batch, so its mean gradient is
the gradient of L_exp(Theta) = E_B[L_B(Theta)] (:mod:`simdyn._src.minibatch_objective`,
exact), not of the full loss. L_exp's minimizers are not the full loss's: on the JOINT
instance at beta = 0.25, batch 16 of 32, ||W v_1|| is 1.811 at L_exp's minimum against 1.882
at the full loss's, and L_exp has a flat set of minimizers along which v_2's slot can pass to
v_3, v_4 (the loss of v_2 that makes ``JOINT [SGD]`` fail at small beta is a drift inside
L_exp's minimizer set).

Design: the JOINT design's instance (:mod:`simdyn.papers.which_features.joint`, same data config,
its own seed
stream), beta = ``beta``, batch ``batch``; constant step sizes ``lrs`` for T = ``time`` / lr
steps each (the same gradient-flow time), ``seeds`` independent instances per step size. Per
unit, float64: the SGD endpoint Theta_T and the last-quarter mean of its recorded ||W_t v_1||;
Theta^ = full-batch GD on L_exp from Theta_T (step ``relax_lr``, 2 x ``relax_half`` steps, on
the instance's used coordinates: L_exp vanishes on the others), the minimizer of L_exp that
SGD's endpoint relaxes to; the full loss's closed-form min-norm minimizer and minimum.

Pre-registered sub-tests:

* ``v1-at-expected-minimum[lr]``, one per step size (FRACTION, exact binomial): the unit passes
  if |mean ||W v_1|| (SGD) - ||Theta^ v_1||| <= tol with tol = |w_full - w_exp| / 2, half the
  distance between the two objectives' predictions (the boundary that says which of the two
  SGD is at). Holds if P(pass) > PASS_FRACTION: a fraction because constant-step SGD's endpoint
  is random (it hovers around a minimizer of L_exp), and the row tests simdyn's own SGD, an
  extension the paper does not state.
* ``expected-gap-slope``: the slope of log(L_exp(Theta_T) - L_exp(Theta^)) on log lr, TOST inside
  1 +- SLOPE_MARGIN. Why 1: near a minimum, constant-step SGD's stationary law has covariance
  (lr/2) H^-1 Sigma_g + O(lr^2) on the curved directions (H the Hessian, Sigma_g the gradient
  noise covariance), so E[gap] = (1/2) Tr(H Cov) = (lr/4) Tr(Sigma_g) + O(lr^2); flat
  directions add nothing. SLOPE_MARGIN = 0.2 is the convention of the other exponent tests.

* ``relaxed-minimizer`` (EXACT: every valid unit, zero failures): the point Theta^ that SGD's
  endpoint relaxes to is a minimizer of L_exp at L_exp's minimum value, whether or not it kept
  v_2 (the README's explanation of ``JOINT [SGD]`` rests on this): (a) equal value:
  |L_exp(Theta^) - L_exp(Theta^_ref)| <= the two relaxations' second-half decreases (each bounds
  its remaining decrease, see below) + 64 eps (1 + |L|), where Theta^_ref is L_exp's minimizer
  reached from a different start, the full loss's min-norm minimizer (which keeps v_2); (b) a
  positive semi-definite Hessian: lambda_min(H(Theta^)) >= -tol_H. tol_H is derived from the
  relaxation itself: along a direction of curvature -lambda, GD with step eta multiplies a
  component by (1 + eta lambda) per step, so over the relaxation's 2 x relax_half steps any
  lambda >= ln(1/eps) / (eta 2 relax_half) (0.09 at the quick design) grows a round-off-sized
  component to O(1) and would have moved Theta^ off the saddle; smaller negative curvature
  could survive, so that is the resolution of the check.
  Hessians are exact (jax.hessian of L_exp on the instance's used coordinates, p r x p r).

Theta^ is relaxed when the loss decrease over the second half of its relaxation is at most
RELAX_RTOL of the gap (it bounds the remaining decrease of a linearly converging GD, so the gap
is then biased by < 1%, which moves a log-log slope over a factor 4 in lr by < 0.01 / ln 4). A
unit whose relaxation has not met this after 2 x ``relax_half`` steps relaxes on, its step count
doubling each round (the second half is then everything after the previous round), up to
MAX_RELAX_DOUBLINGS doublings: units inside L_exp's flat set of minimizers, halfway through
losing v_2, converge slowly (one such unit among 3000 needed 8000 steps at the full design).
The reference relaxation from the full min-norm point relaxes the same way. tol_H stays the one
of 2 x ``relax_half`` steps, the fewest any unit gets. A unit is invalid (and counts as a
failure) if SGD diverged or Theta^ is still not relaxed after the last doubling.

Negative controls (near misses, each must fail): ``control:v1-at-full-minimum[lr]``, the full
loss's min-norm ||W v_1|| as SGD's limit (4% away), same tolerance; ``control:full-gap-slope``,
the full loss's gap L(Theta_T) - L* against the same slope 1 (SGD's full-loss gap levels off at
L(argmin L_exp) - L* > 0 as lr -> 0); ``control:full-minimizer-value``, the full loss's min-norm
minimizer (not relaxed) taken as a minimizer of L_exp: its L_exp value within the same
tolerance of L_exp's minimum on every unit; ``control:psd-at-half-scale``, the Hessian check at
Theta^ / 2 (along the radial direction L_exp(c Theta^) has curvature -4A + 12 B c^2 with A = B
at the minimum, negative at c = 1/2): lambda_min >= -tol_H on every unit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simdyn import safe_linalg, theory
from simdyn._src.minibatch_objective import (
    ExpectedMinibatchObjective,
    expected_minibatch_grad,
    expected_minibatch_loss,
    expected_minibatch_objective,
)
from simdyn.config import Config
from simdyn.loop import Record, run_loop
from simdyn.papers.which_features import common, joint
from simdyn.papers.which_features.common import STREAMS
from simdyn.papers.which_features.instances import Compressed, alignment
from simdyn.papers.which_features.runs import run as run_sgd
from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo, Scale
from simdyn.verify.stats import TestResult, exact_test, fraction_test, slope_test

INFO = ClaimInfo(
    id="SGD-OBJ",
    source="simdyn extension (SGD): in-batch objective",
    statement="minibatch SGD converges to the minimizers of its expected minibatch objective "
    "E_B[L_B] (||W v_1|| at its minimum; gap ~ lr), not of the full loss",
    control="the full loss's minimizer and gap predicted for SGD: must fail",
)

PASS_FRACTION = 0.9
SLOPE_MARGIN = 0.2
RELAX_RTOL = 0.01
MAX_RELAX_DOUBLINGS = 4  # at most 2 x relax_half x 2^4 steps for a slow unit


@dataclass(frozen=True)
class Design:
    joint: joint.Design
    beta: float = 0.25
    batch: int = 16
    lrs: tuple[float, ...] = (0.05, 0.025, 0.0125)
    time: float = 50.0  # lr * T, the same for every step size
    seeds: int = 96
    relax_lr: float = 0.1
    relax_half: int = 2000


DESIGNS: dict[Scale, Design] = {
    "small": Design(joint.DESIGNS["small"], lrs=(0.05, 0.025), seeds=4, relax_half=1000),
    # quick: 64 per lr, so each per-lr fraction decides after Holm (0.9^64 = 1.2e-3).
    "quick": Design(joint.DESIGNS["quick"], seeds=64),
    "full": Design(joint.DESIGNS["quick"], seeds=1000),
}


def _pad(a, width: int, axes: tuple[int, ...]) -> np.ndarray:
    """``a`` zero-padded at the end of ``axes`` to ``width`` coordinates."""
    widths = [(0, 0)] * np.ndim(a)
    for ax in axes:
        widths[ax] = (0, width - np.shape(a)[ax])
    return np.pad(np.asarray(a), widths)


def _padded(objs: list[ExpectedMinibatchObjective], width: int) -> ExpectedMinibatchObjective:
    """Stack per-instance objectives on a common number of coordinates (zero columns are inert:
    L_exp and its gradient do not see coordinates no point uses)."""
    square = ("m", "p_exp", "m_plus_exp", "m_tilde")
    out = [
        o._replace(
            **{f: jnp.asarray(_pad(getattr(o, f), width, (0, 1))) for f in square},
            points=jnp.asarray(_pad(o.points, width, (2,))),
        )
        for o in objs
    ]
    return jax.tree.map(lambda *a: jnp.stack([jnp.asarray(x) for x in a]), *out)


def _relax_one(obj: ExpectedMinibatchObjective, theta, lr, half: int):
    """One unit: GD on L_exp for 2 x half steps; the loss before, halfway and after."""
    out = run_loop(
        theta,
        lambda th, _: expected_minibatch_grad(obj, th),
        optax.sgd(lr),
        steps=2 * half,
        record=Record(at=(0, half, 2 * half), final=True),
        loss=functools.partial(expected_minibatch_loss, obj),
    )
    return out.final, out.loss[0], out.loss[1], out.loss[2]


_relax = jax.jit(jax.vmap(_relax_one, in_axes=(0, 0, None, None)), static_argnums=3)


def relax_to_expected_minimum(
    obj: ExpectedMinibatchObjective, theta: np.ndarray, lr: float, half: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Full-batch GD on L_exp from each unit's theta, 2 x ``half`` steps (vmapped over units).

    obj: stacked objectives (leading unit axis U, coordinates r). theta: (U, p, r).
    Returns (theta^ (U, p, r), L_exp(theta), L_exp after ``half`` steps, L_exp(theta^)), numpy.
    """
    theta_hat, loss_start, loss_mid, loss_end = (
        np.asarray(a) for a in _relax(obj, jnp.asarray(theta, jnp.float64), lr, half)
    )
    return theta_hat, loss_start, loss_mid, loss_end


def relax_until_relaxed(
    obj: ExpectedMinibatchObjective, theta: np.ndarray, lr: float, half: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`relax_to_expected_minimum`, then, for the units not yet relaxed (second-half
    decrease > RELAX_RTOL of the decrease so far), GD on from where they stopped for as many
    steps again, up to MAX_RELAX_DOUBLINGS times (module docs).

    Returns (theta^, L_exp(theta), L_exp at half the unit's step count, L_exp(theta^), the
    unit's step count (U,)), numpy.
    """
    hat, start, mid, end = (np.array(a) for a in relax_to_expected_minimum(obj, theta, lr, half))
    steps = np.full(start.shape, 2 * half)
    for _ in range(MAX_RELAX_DOUBLINGS):
        slow = np.flatnonzero(np.abs(mid - end) > RELAX_RTOL * np.abs(start - end))
        if slow.size == 0:
            break
        part = jax.tree.map(lambda a, slow=slow: a[slow], obj)
        # S more steps after S: the old end is the new middle.
        hat[slow], mid[slow], _, end[slow] = relax_to_expected_minimum(part, hat[slow], lr, half)
        steps[slow] *= 2
        half *= 2
    return hat, start, mid, end, steps


HESSIAN_CHUNK = 64  # units whose (p r, p r) Hessians are formed at once


def _hessian_eigenvalues_one(obj: ExpectedMinibatchObjective, theta) -> jax.Array:
    size = theta.size
    hess = jax.hessian(lambda th: expected_minibatch_loss(obj, th))(theta)
    return safe_linalg.eigh(hess.reshape(size, size))[0]  # per matrix under vmap on the CPU


_hessian_eigenvalues = jax.jit(jax.vmap(_hessian_eigenvalues_one))


def hessian_eigenvalues(obj: ExpectedMinibatchObjective, theta: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) of each unit's exact Hessian of L_exp at theta (U, p, r):
    (U, p r), formed HESSIAN_CHUNK units at a time."""
    out = []
    for lo in range(0, theta.shape[0], HESSIAN_CHUNK):
        part = jax.tree.map(lambda a, lo=lo: a[lo : lo + HESSIAN_CHUNK], obj)
        out.append(
            np.asarray(_hessian_eigenvalues(part, jnp.asarray(theta[lo : lo + HESSIAN_CHUNK])))
        )
    return np.concatenate(out)


def hessian_tolerance(design: Design) -> float:
    """tol_H = ln(1/eps) / (relax_lr x 2 relax_half) (module docs): the smallest negative
    curvature that the relaxation's GD would have left from round-off-sized components."""
    eps = np.finfo(np.float64).eps
    return math.log(1 / eps) / (design.relax_lr * 2 * design.relax_half)


def sgd_config(design: Design, lr: float) -> Config:
    """The SGD config of one step size (T = time / lr steps, final Theta saved).

    Args:
        design: the SGD-OBJ design. lr: the step size.

    Returns:
        The config :func:`simdyn.papers.which_features.runs.run` trains (memoised: a claim that
        trains the
        same config, seeds and key, such as SGD-MIN, reuses the runs).
    """
    jd = dataclasses.replace(design.joint, lr=lr, steps=int(round(design.time / lr)))
    cfg = joint.config(jd, design.batch)
    return dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, save_theta=True, log_every=max(1, jd.steps // 20)),
    )


def _units(design: Design, key: int, lr: float, seeds: list[int]):
    """One step size's SGD units and their per-unit statistics (dict of (U,) arrays)."""
    jd = dataclasses.replace(design.joint, lr=lr, steps=int(round(design.time / lr)))
    runs = run_sgd(sgd_config(design, lr), seeds, key, beta=np.full(len(seeds), design.beta))
    K = len(design.joint.phi)
    comps: list[Compressed] = list(common.unit_moments(joint.data_config(jd), seeds, key, K))
    width = max(c.cols.size for c in comps)
    objs = [expected_minibatch_objective(c.x, c.y, design.batch, design.beta) for c in comps]
    theta_t = np.stack([_pad(runs.theta[u][:, c.cols], width, (1,)) for u, c in enumerate(comps)])
    hat, l_end, l_mid, l_hat, relax_steps = relax_until_relaxed(
        _padded(objs, width), theta_t, design.relax_lr, design.relax_half
    )
    w_full, gap_full, mn_factor = [], [], []
    for u, c in enumerate(comps):
        P = design.beta * c.m_plus + (1 - design.beta) * c.m_tilde
        factor = theory.min_norm_minimizer(P, c.m, jd.p).factor
        mn_factor.append(_pad(factor, width, (1,)))
        w_full.append(alignment(factor, K)[1])
        l_t = float(theory.loss_value(theta_t[u][:, : c.cols.size], P, c.m))
        gap_full.append(l_t - theory.min_loss(P, c.m, jd.p))
    gap = l_end - l_hat
    # L_exp's minimum reached from another start (the full loss's min-norm point keeps v_2).
    _, l_mn, l_mid_ref, l_ref, _ = relax_until_relaxed(
        _padded(objs, width), np.stack(mn_factor), design.relax_lr, design.relax_half
    )
    eps = np.finfo(np.float64).eps
    value_tol = np.abs(l_mid - l_hat) + np.abs(l_mid_ref - l_ref) + 64 * eps * (1 + np.abs(l_ref))
    eigs = hessian_eigenvalues(_padded(objs, width), hat)
    half_eigs = hessian_eigenvalues(_padded(objs, width), hat / 2)
    return {
        "w_sgd": common.last_quarter_mean(runs.alignment, 1),
        "w_exp": np.linalg.norm(hat[:, :, 1], axis=1),
        "w2_sgd": common.last_quarter_mean(runs.alignment, 2),
        "w2_exp": np.linalg.norm(hat[:, :, 2], axis=1),
        "w_full": np.asarray(w_full),
        "gap": gap,
        "gap_full": np.asarray(gap_full),
        "relaxed": np.abs(l_mid - l_hat) <= RELAX_RTOL * np.abs(gap),
        "relax_steps": relax_steps,
        "value_gap": l_hat - l_ref,
        "full_value_gap": l_mn - l_ref,
        "value_tol": value_tol,
        "hess_min": eigs[:, 0],
        "hess_min_half": half_eigs[:, 0],
        "diverged": runs.diverged,
        "lr": np.full(len(seeds), lr),
    }


def _v1_test(
    name: str,
    passed: np.ndarray,
    lr: float,
    target: str,
    u: dict[str, np.ndarray],
    valid: np.ndarray,
) -> TestResult:
    """SGD's last-quarter ||W v_1|| at one step size against ``target``'s value."""
    return fraction_test(
        f"{name}[lr={lr:g}]",
        passed,
        PASS_FRACTION,
        valid=valid,
        scope=u["lr"] == lr,
        statistic=f"last-quarter mean ||W v_1|| of SGD against {target}",
        rule=f"pass if within |w_full - w_exp| / 2 of it; holds if P(pass) > {PASS_FRACTION}",
        data={"lr": u["lr"], "w_sgd": u["w_sgd"], "w_exp": u["w_exp"], "w_full": u["w_full"]},
    )


def _gap_slope(
    name: str, gap: np.ndarray, what: str, u: dict[str, np.ndarray], valid: np.ndarray
) -> TestResult:
    """The slope of log(gap) on log lr, TOST inside 1 +- SLOPE_MARGIN."""
    return slope_test(
        name,
        u["lr"],
        gap,
        1 - SLOPE_MARGIN,
        1 + SLOPE_MARGIN,
        valid=valid,
        statistic=f"slope of log({what}) on log lr at the SGD endpoint",
        rule=f"gap ~ lr (stationary SGD): holds if the slope is significantly inside "
        f"1 +- {SLOPE_MARGIN:g}",
    )


def _valid(u: dict[str, np.ndarray]) -> np.ndarray:
    """Units that count: SGD did not diverge and its endpoint relaxed to L_exp's minimum."""
    return ~u["diverged"] & u["relaxed"] & np.isfinite(u["w_sgd"]) & np.isfinite(u["gap"])


def _v1_tests(
    design: Design, u: dict[str, np.ndarray], name: str, w_target: str, target: str
) -> list[TestResult]:
    """One ``_v1_test`` per step size: SGD's ||W v_1|| near ``u[w_target]``, the tolerance half
    the distance between the two objectives' predictions."""
    tol = np.abs(u["w_full"] - u["w_exp"]) / 2
    near = np.abs(u["w_sgd"] - u[w_target]) <= tol
    return [_v1_test(name, near, lr, target, u, _valid(u)) for lr in design.lrs]


def _at_expected_minimum(design: Design, u: dict[str, np.ndarray]) -> list[TestResult]:
    return _v1_tests(design, u, "v1-at-expected-minimum", "w_exp", "L_exp's minimizer")


def _expected_gap_slope(design: Design, u: dict[str, np.ndarray]) -> TestResult:
    return _gap_slope("expected-gap-slope", u["gap"], "L_exp(Theta_T) - min L_exp", u, _valid(u))


def _at_full_minimum(design: Design, u: dict[str, np.ndarray]) -> list[TestResult]:
    return _v1_tests(design, u, "control:v1-at-full-minimum", "w_full", "the full loss's min-norm")


def _full_gap_slope(design: Design, u: dict[str, np.ndarray]) -> TestResult:
    return _gap_slope("control:full-gap-slope", u["gap_full"], "L(Theta_T) - min L", u, _valid(u))


def _relaxed_minimizer(design: Design, u: dict[str, np.ndarray]) -> TestResult:
    ok = (np.abs(u["value_gap"]) <= u["value_tol"]) & (u["hess_min"] >= -hessian_tolerance(design))
    return exact_test(
        "relaxed-minimizer",
        ok,
        valid=_valid(u),
        statistic="L_exp(Theta^) - min L_exp (min from the full min-norm start) and "
        "lambda_min of L_exp's Hessian at Theta^",
        rule="pass if |value gap| <= derived tol and lambda_min >= -tol_H; holds iff every "
        f"valid unit passes ({_VALID})",
        data={"value_gap": u["value_gap"], "hess_min": u["hess_min"], "w2_exp": u["w2_exp"]},
    )


def _full_minimizer_value(design: Design, u: dict[str, np.ndarray]) -> TestResult:
    return exact_test(
        "control:full-minimizer-value",
        np.abs(u["full_value_gap"]) <= u["value_tol"],
        valid=_valid(u),
        statistic="L_exp at the full loss's min-norm minimizer - min L_exp",
        rule="(wrong) pass if within the same tolerance; holds iff every valid unit passes",
    )


def _psd_at_half_scale(design: Design, u: dict[str, np.ndarray]) -> TestResult:
    return exact_test(
        "control:psd-at-half-scale",
        u["hess_min_half"] >= -hessian_tolerance(design),
        valid=_valid(u),
        statistic="lambda_min of L_exp's Hessian at Theta^ / 2",
        rule="(wrong) pass if >= -tol_H; holds iff every valid unit passes",
    )


def _notes(design: Design, u: dict[str, np.ndarray]) -> str:
    """Medians per lr, how often v_2 was lost, and the invalid units."""
    lr = u["lr"]
    lost = 0.5 * np.sqrt(1 - design.beta) / design.joint.phi[1]
    return (
        "median per lr (||W v_1|| SGD, at min L_exp, at the full min-norm; L_exp gap; full-loss "
        "gap): "
        + "; ".join(
            f"{x:g}: ({np.median(u['w_sgd'][lr == x]):.4f}, {np.median(u['w_exp'][lr == x]):.4f}, "
            f"{np.median(u['w_full'][lr == x]):.4f}; {np.median(u['gap'][lr == x]):.3g}; "
            f"{np.median(u['gap_full'][lr == x]):.3g})"
            for x in design.lrs
        )
        + "; fraction with v_2 lost (||W v_2|| < half its joint target) at the SGD endpoint / "
        f"at its relaxed L_exp minimizer: {np.mean(u['w2_sgd'] < lost):.2f} / "
        f"{np.mean(u['w2_exp'] < lost):.2f} (L_exp's minimizers include points without v_2: "
        "SGD drifts inside that set, see JOINT [SGD])"
        + f"; relaxed-minimizer: max |value gap| {np.max(np.abs(u['value_gap'])):.2g} (tol "
        f"{np.min(u['value_tol']):.2g}-{np.max(u['value_tol']):.2g}), min lambda_min "
        f"{np.min(u['hess_min']):.2g} (tol_H {hessian_tolerance(design):.2g}; at Theta^ / 2: "
        f"median {np.median(u['hess_min_half']):.2g}); the full min-norm point's value gap: "
        "median "
        f"{np.median(u['full_value_gap']):.2g}"
        + f"; units relaxed longer than {2 * design.relax_half} steps: "
        f"{int((u['relax_steps'] > 2 * design.relax_half).sum())} (most: "
        f"{int(np.max(u['relax_steps']))})"
        + f"; units not relaxed: {int((~u['relaxed']).sum())}, diverged: "
        f"{int(u['diverged'].sum())}"
    )


def check(design: Design) -> None:
    """Raise ConfigError if the JOINT instance is outside Thm 6.1's conditions."""
    joint.check_conditions(design.joint)


def measure(design: Design, key: int) -> dict[str, np.ndarray]:
    """Every step size's units (disjoint seeds), concatenated: dict of (U,) arrays (``_units``
    is looked up at call time: tests plant known units through it)."""
    groups = common.units_seeds(len(design.lrs), design.seeds)
    parts = [_units(design, key, lr, seeds) for lr, seeds in zip(design.lrs, groups, strict=True)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def describe(design: Design, u: dict[str, np.ndarray]) -> RowText:
    jd = design.joint
    return RowText(
        summary=f"joint SGD batch {design.batch}, lr sweep, {u['lr'].size} units",
        design=(
            f"JOINT instance (K={len(jd.phi)} p={jd.p} phi={jd.phi} n={jd.n} m={jd.m} "
            f"d={jd.d}), beta={design.beta:g}, SGD batch {design.batch} float64 "
            f"sigma_0={jd.sigma_0:g}, lr in {design.lrs} for T = {design.time:g}/lr steps, "
            f"{design.seeds} seeds/lr; L_exp minimum by GD (eta={design.relax_lr:g}, "
            f"{2 * design.relax_half} steps) from each endpoint"
        ),
        notes=(_notes(design, u),),
    )


_NEAR = "within |w_full - w_exp| / 2"
_VALID = (
    f"diverged units and units not relaxed after {MAX_RELAX_DOUBLINGS} doublings of the "
    "relaxation count as failures"
)

CLAIM = Claim(
    info=INFO,
    designs=DESIGNS,
    stream=STREAMS["SGD-OBJ"],
    check=check,
    rows=(
        Row(
            measure=measure,
            rules=(
                Rule(
                    "v1-at-expected-minimum[lr={lr}]",
                    f"each lr: SGD's last-quarter ||W v_1|| {_NEAR} of L_exp's minimizer's on "
                    f"a fraction > {PASS_FRACTION} ({_VALID})",
                    _at_expected_minimum,
                ),
                Rule(
                    "expected-gap-slope",
                    "slope of log(L_exp(Theta_T) - min L_exp) on log lr significantly inside "
                    f"1 +- {SLOPE_MARGIN:g}",
                    _expected_gap_slope,
                ),
                Rule(
                    "relaxed-minimizer",
                    "every relaxed endpoint Theta^ (with or without v_2) is at L_exp's minimum "
                    "value (vs a relaxation from the full min-norm point, derived tol) with "
                    "lambda_min(Hessian) >= -tol_H = ln(1/eps) / (relax_lr 2 relax_half); a "
                    "relaxation not relaxed after 2 relax_half steps doubles, up to "
                    f"{MAX_RELAX_DOUBLINGS} times ({_VALID})",
                    _relaxed_minimizer,
                ),
            ),
            controls=(
                Rule(
                    "control:v1-at-full-minimum[lr={lr}]",
                    f"(wrong) SGD's ||W v_1|| {_NEAR} of the full loss's min-norm minimizer's",
                    _at_full_minimum,
                ),
                Rule(
                    "control:full-gap-slope",
                    f"(wrong) slope of log(L(Theta_T) - min L) on log lr inside "
                    f"1 +- {SLOPE_MARGIN:g}",
                    _full_gap_slope,
                ),
                Rule(
                    "control:full-minimizer-value",
                    "(wrong) the full loss's min-norm minimizer at L_exp's minimum value",
                    _full_minimizer_value,
                ),
                Rule(
                    "control:psd-at-half-scale",
                    "(wrong) the Hessian check at Theta^ / 2",
                    _psd_at_half_scale,
                ),
            ),
            describe=describe,
        ),
    ),
)
