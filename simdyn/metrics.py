"""Metrics computed from Theta and data: feature alignments and linear-probe accuracies."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from simdyn import safe_linalg
from simdyn.data import Labels, TestSet, embed

Array = jax.Array


def feature_alignment(theta: Array, num_features: int) -> Array:
    """||Theta v_j|| for j = 0 (bias) .. K. theta: (p, D). Returns (K + 1,).

    Feature v_j is x~ coordinate j, so this is the norm of column j; j = 0 gives ||b||.
    """
    return jnp.linalg.norm(theta[:, : num_features + 1], axis=0)


def _fit_predict(z_fit: Array, t_fit: Array, w_fit: Array, z_eval: Array) -> Array:
    """Weighted ridge least squares on [1, z] with +-1 targets; returns eval scores.

    The ridge is relative to the embeddings' scale, so a probe on tiny (near-init) embeddings
    is as well-posed as one on trained ones.
    """
    ones = jnp.ones(z_fit.shape[:-1] + (1,), z_fit.dtype)
    a = jnp.concatenate([ones, z_fit], axis=-1)
    aw = a * w_fit[:, None]
    gram = aw.T @ a
    scale = jnp.trace(gram) / gram.shape[0] + jnp.finfo(z_fit.dtype).tiny
    eps = 1e-6 if z_fit.dtype == jnp.float32 else 1e-10
    # safe_linalg: a batched LAPACK solve under vmap can deadlock XLA's CPU pool (issue 29).
    coef = safe_linalg.solve(
        gram + eps * scale * jnp.eye(gram.shape[0], dtype=gram.dtype), aw.T @ t_fit
    )
    ones_e = jnp.ones(z_eval.shape[:-1] + (1,), z_eval.dtype)
    return jnp.concatenate([ones_e, z_eval], axis=-1) @ coef


class ProbeAccuracy(NamedTuple):
    """Accuracy of linear probes on held-out test embeddings: class, and subclass given class."""

    class_acc: Array
    subclass_acc: Array


def probe_accuracy_from_embeddings(z: Array, labels: Labels) -> ProbeAccuracy:
    """Linear-probe accuracies of test embeddings z (n_test, p) with their ``labels``.

    Probes are fit on the first half and scored on the second. Subclass-within-class: one probe
    per class, each fit and scored on that class's points only; the two accuracies are averaged
    weighted by the scored points per class. Any encoder's embeddings can be probed this way.
    """
    half = z.shape[0] // 2
    zf, ze = z[:half], z[half:]
    dtype = z.dtype
    y = labels.y.astype(dtype)
    ys = labels.y_sub.astype(dtype)
    score = _fit_predict(zf, y[:half], jnp.ones((half,), dtype), ze)
    class_acc = jnp.mean((jnp.sign(score) == y[half:]).astype(dtype))
    correct: float | Array = 0.0
    total: float | Array = 0.0
    for c in (1.0, -1.0):
        wf = (y[:half] == c).astype(dtype)
        we = (y[half:] == c).astype(dtype)
        s = _fit_predict(zf, ys[:half], wf, ze)
        correct = correct + jnp.sum(we * (jnp.sign(s) == ys[half:]))
        total = total + jnp.sum(we)
    return ProbeAccuracy(class_acc, correct / jnp.maximum(total, 1.0))


def probe_accuracy(theta: Array, test: TestSet) -> ProbeAccuracy:
    """Linear-probe accuracies of the linear encoder theta (p, D) on ``test``."""
    return probe_accuracy_from_embeddings(embed(theta, test.points), test.labels)
