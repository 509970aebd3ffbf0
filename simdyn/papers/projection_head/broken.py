"""The projection-head paper's broken simulators, for ``simdyn verify --self-test --paper
projection-head``.

Each :class:`~simdyn.verify.broken.BrokenSimulator` plants one near miss, a bug a real
implementation of this paper could ship, by replacing functions of
:mod:`~simdyn.papers.projection_head.linear`, :mod:`~simdyn.papers.projection_head.nonlinear`
or :mod:`~simdyn.papers.projection_head.data` for the duration of a ``with`` block. The claims
keep predicting with :mod:`~simdyn.papers.projection_head.closed_forms` (Def. 3.2's moments, the
trained head and thresholds), so only the simulator is wrong. The compiled per-run programs are
forgotten on entry and on exit (``_train_of.cache_clear``): neither side reuses the other's.

* ``head-untrained``: the optimiser updates the encoder (layer 1) only; every head layer keeps
  its init (linear: no gradient reaches W_2..W_L; nonlinear: the head's weights and thresholds
  are masked out).
* ``augment-sign-flip``: the augmentation FLIPS a sign with probability alpha instead of
  re-drawing it (the appendix's reading): the sampler, the nonlinear coordinate weights c_i and
  the linear M+ all become those of a flip, (1 - 2 alpha)^2 phi^2.
* ``thresholds-frozen``: the symmetrized-ReLU thresholds are not trained (they stay at b0).
* ``eta-head-x1.1``: in the linear models the head layers step with 1.1 eta, the encoder with
  eta (a second parameter group with its own step size); the recorded loss is exact.
* ``moments-alpha-power-1``: positive pairs taken as (x, A(x)), an original with ONE
  augmentation, instead of two augmentations: M+ = (1 - alpha) phi^2 in the population moments
  (linear M+, nonlinear c_i), where Def. 3.2 gives (1 - alpha)^2 phi^2.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike

from simdyn.papers.projection_head import closed_forms as cf
from simdyn.papers.projection_head import data as phdata
from simdyn.papers.projection_head import linear
from simdyn.papers.projection_head import nonlinear as nl
from simdyn.verify.broken import BrokenSimulator, planting

Array = jax.Array

# The reference functions the faults wrap, taken at import (before any fault is planted).
_MASK = nl.trainable_mask
_WEIGHTS = nl.positive_weights
HEAD_LR_FACTOR = 1.1  # eta-head-x1.1: the head's step size relative to the encoder's


def reset_programs() -> None:
    """Forget the compiled per-run functions of the linear and nonlinear models."""
    linear._train_of.cache_clear()
    nl._train_of.cache_clear()


def _end_to_end(params: tuple[Array, ...], head: Any) -> Array:
    """W = head(W_L) ... head(W_2) W_1: ``head`` maps each head layer before it is applied."""
    w = params[0]
    for layer in params[1:]:
        w = head(layer) @ w
    return w


def _spectral(w: Array, m: Array, m_plus: Array) -> Array:
    """-2 Tr(W M+ W^T) + ||W M W^T||_F^2 (linear.population_loss's formula)."""
    return -2.0 * (w**2 * m_plus).sum() + (((w * m) @ w.T) ** 2).sum()


def untrained_head_loss(params: tuple[Array, ...], m: Array, m_plus: Array) -> Array:
    """The linear loss with no gradient into the head layers (same value)."""
    return _spectral(_end_to_end(params, jax.lax.stop_gradient), m, m_plus)


def scaled_head_loss(params: tuple[Array, ...], m: Array, m_plus: Array) -> Array:
    """The linear loss whose gradient in every head layer is HEAD_LR_FACTOR times the true one
    (the value is exactly the true loss): GD then steps the head with HEAD_LR_FACTOR eta."""

    def head(layer: Array) -> Array:
        return layer + (HEAD_LR_FACTOR - 1.0) * (layer - jax.lax.stop_gradient(layer))

    return _spectral(_end_to_end(params, head), m, m_plus)


def encoder_only_mask(run: nl.NonlinearRun, params: dict) -> dict:
    """nonlinear.trainable_mask with every layer after the first frozen (weights, thresholds)."""
    mask = _MASK(run, params)
    return {key: tuple(a if i == 0 else 0 * a for i, a in enumerate(mask[key])) for key in mask}


def frozen_thresholds_mask(run: nl.NonlinearRun, params: dict) -> dict:
    """nonlinear.trainable_mask with no threshold trained."""
    mask = _MASK(run, params)
    return {"w": mask["w"], "b": tuple(0 * b for b in mask["b"])}


def flip_weights(run: nl.NonlinearRun) -> np.ndarray:
    """nonlinear.positive_weights with a re-draw read as a flip: (1 - 2 alpha)^2."""
    if run.loss == "cl":
        return (1.0 - 2.0 * np.asarray(run.alpha)) ** 2
    return _WEIGHTS(run)


def flip_moments(phi: ArrayLike, alpha: ArrayLike, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """closed_forms.population_moments of a sign flip: M+ = (1 - 2 alpha)^2 phi^2."""
    m, _ = cf.population_moments(phi, alpha, sigma)
    return m, (1.0 - 2.0 * np.asarray(alpha)) ** 2 * np.asarray(phi) ** 2


def single_view_weights(run: nl.NonlinearRun) -> np.ndarray:
    """nonlinear.positive_weights for pairs (x, A(x)): 1 - alpha (a flip: 1 - 2 alpha)."""
    if run.loss == "cl":
        a = np.asarray(run.alpha)
        return 1.0 - a if run.augmentation == "redraw" else 1.0 - 2.0 * a
    return _WEIGHTS(run)


def single_view_moments(
    phi: ArrayLike, alpha: ArrayLike, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """closed_forms.population_moments for pairs (x, A(x)): M+ = (1 - alpha) phi^2."""
    m, _ = cf.population_moments(phi, alpha, sigma)
    return m, (1.0 - np.asarray(alpha)) * np.asarray(phi) ** 2


_RESET = (reset_programs,)

BROKEN: tuple[BrokenSimulator, ...] = (
    BrokenSimulator(
        "head-untrained",
        "only the encoder is trained: every head layer keeps its init",
        planting(
            (linear, "population_loss", untrained_head_loss),
            (nl, "trainable_mask", encoder_only_mask),
            reset=_RESET,
        ),
    ),
    BrokenSimulator(
        "augment-sign-flip",
        "the augmentation flips a sign w.p. alpha instead of re-drawing it",
        planting(
            (phdata, "augment", phdata.augment_flip),
            (nl, "positive_weights", flip_weights),
            (linear, "population_moments", flip_moments),
            reset=_RESET,
        ),
    ),
    BrokenSimulator(
        "thresholds-frozen",
        "the symmetrized-ReLU thresholds are not trained",
        planting((nl, "trainable_mask", frozen_thresholds_mask), reset=_RESET),
    ),
    BrokenSimulator(
        "eta-head-x1.1",
        f"linear models: the head layers step with {HEAD_LR_FACTOR} eta, the encoder with eta",
        planting((linear, "population_loss", scaled_head_loss), reset=_RESET),
    ),
    BrokenSimulator(
        "moments-alpha-power-1",
        "positives (x, A(x)): M+ = (1 - alpha) phi^2 instead of (1 - alpha)^2 phi^2",
        planting(
            (nl, "positive_weights", single_view_weights),
            (linear, "population_moments", single_view_moments),
            reset=_RESET,
        ),
    ),
)
