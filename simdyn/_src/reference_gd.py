"""Plain GD runs that serve as references: the reduced-state GD of the projected form and the
deterministic GD on SGD's expected in-batch objective.

They live here, at the trainer layer, because they run the training loop
(:func:`simdyn.loop.run_loop`): the representations they use (:mod:`simdyn.projected`,
:mod:`simdyn._src.minibatch_objective`) only state losses and gradients and never import the loop.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from simdyn._src.minibatch_objective import (
    ExpectedMinibatchObjective,
    expected_minibatch_grad,
    expected_minibatch_loss,
)
from simdyn.loop import Record, run_loop
from simdyn.projected import ProjectedMoments, feature_alignment, reduce, reduced_loss_and_grad

Array = jax.Array


class ReducedRun(NamedTuple):
    """GD run entirely in the reduced coordinates. R = steps // record_every + 1.

    theta_r: (p, r) final Theta_r.
    alignment: (R, K + 1) ||Theta_t v_j|| at steps 0, record_every, ..., steps.
    loss: (R,) the training loss at those steps.
    """

    theta_r: Array
    alignment: Array
    loss: Array


def reduced_gd(
    obj: ProjectedMoments,
    theta0: Array,
    lr: Array,
    steps: int,
    record_every: int,
    num_features: int,
) -> ReducedRun:
    """Plain GD Theta_r <- Theta_r - lr G_r for ``steps`` steps (a multiple of record_every).

    The state is Theta_r (p, r) only: each step is O(p r^2); the frozen Theta_0 (I - U U^T) is
    used for the alignments alone.
    """

    theta_r0 = reduce(theta0, obj.basis)
    out = run_loop(
        theta_r0,
        lambda theta_r, _: reduced_loss_and_grad(obj, theta_r)[1],
        optax.sgd(lr),
        steps=steps,
        record=Record(
            every=record_every,
            observables={
                "alignment": lambda th, _: feature_alignment(th, theta0, obj.basis, num_features)
            },
            final=True,
        ),
        loss=lambda theta_r: reduced_loss_and_grad(obj, theta_r)[0],
    )
    assert out.final is not None  # Record(final=True)
    return ReducedRun(out.final, out.observed["alignment"], out.loss)


class ExpectedMinimizer(NamedTuple):
    """Result of :func:`expected_objective_minimizer`.

    theta: (p, D) final iterate. loss: () L_exp there. grad_norm: () ||grad L_exp||_F there.
    """

    theta: Array
    loss: Array
    grad_norm: Array


def expected_objective_minimizer(
    obj: ExpectedMinibatchObjective, theta0: Array, lr: float, steps: int
) -> ExpectedMinimizer:
    """The point that SGD's expected dynamics converge to: deterministic float64 GD on L_exp,
    Theta <- Theta - lr grad L_exp(Theta), for ``steps`` steps from ``theta0`` (p, D).

    E_B[grad L_B] = grad L_exp, so with a small step size simdyn's SGD follows this GD path up
    to O(lr) noise. There is no Lemma-B.2 closed form (:func:`simdyn.theory.min_norm_minimizer`)
    for L_exp: the variance term c (1/n) sum_i Tr(A (G_i - M) A (G_i - M)) is a quartic in
    Theta that is not of the form Tr(A Q A Q), so the minimizer is only computed numerically
    (check ``grad_norm``). As for the full loss, Theta's component on ker M stays at theta0.
    """

    @jax.jit
    def run(theta):
        out = run_loop(
            theta,
            lambda th, _: expected_minibatch_grad(obj, th),
            optax.sgd(lr),
            steps=steps,
            record=Record(loss=False, final=True),
        )
        return out.final

    theta = run(jnp.asarray(theta0, jnp.float64))
    grad = expected_minibatch_grad(obj, theta)
    return ExpectedMinimizer(theta, expected_minibatch_loss(obj, theta), jnp.linalg.norm(grad))
