"""Practitioners' contrastive losses: InfoNCE / SimCLR NT-Xent, SupCon, and their joint mix.

All take the embeddings of the m augmentations ("views") of n originals, ``z`` (n, m, p), and
anchor every one of the N = n m views. With s_ab = z_a . z_b / tau (cosines when ``cosine``):

    l(a) = -1/|P(a)| sum_{q in P(a)} log( exp(s_aq) / sum_{b != a} exp(s_ab) )

* SupCon (Khosla et al. 2020, eq. 2, L_out): P(a) = the other views with a's class label.
* InfoNCE / NT-Xent (SimCLR): P(a) = the other views of a's original. With m = 2 there is one
  positive and this is exactly SimCLR's NT-Xent; with m > 2 it is the multi-positive form
  (SupCon L_out with the original's index as the label).
* joint: beta * SupCon + (1 - beta) * InfoNCE (beta = weight of the supervised term, as in the
  spectral joint loss).

Each loss is the MEAN of l(a) over the N anchors (Khosla et al. write the sum; the mean only
rescales the learning rate and makes the value independent of the batch size). Every anchor has
at least m - 1 >= 1 positives, so m >= 2 is required. Everything is jit/vmap/grad-safe: the self
pair is removed by masking, never by -inf arithmetic that could leak NaN into gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from simdyn.config import ConfigError

Array = jax.Array


def _views(z: Array, cosine: bool) -> Array:
    """(n, m, p) -> (N, p), optionally projected on the unit sphere."""
    n, m, p = z.shape
    if m < 2:
        raise ConfigError(f"invalid m={m}: contrastive NCE losses need m >= 2 views per original")
    flat = z.reshape((n * m, p))
    if cosine:
        flat = flat * jax.lax.rsqrt(jnp.sum(flat**2, axis=-1, keepdims=True) + 1e-12)
    return flat


def _log_prob(flat: Array, temperature: float | Array) -> Array:
    """(N, N) log softmax of s_ab over b != a (the diagonal entries are finite but unused)."""
    logits = flat @ flat.T / temperature
    self_pair = jnp.eye(flat.shape[0], dtype=bool)
    denom = jax.nn.logsumexp(jnp.where(self_pair, -jnp.inf, logits), axis=-1, keepdims=True)
    return logits - denom


def _multi_positive(log_prob: Array, groups: Array) -> Array:
    """Mean over anchors of -mean_{q in P(a)} log_prob[a, q]; P(a) = same group, q != a."""
    same = groups[:, None] == groups[None, :]
    positive = same & ~jnp.eye(groups.shape[0], dtype=bool)
    count = jnp.sum(positive, axis=-1)
    per_anchor = -jnp.sum(jnp.where(positive, log_prob, 0.0), axis=-1) / jnp.maximum(count, 1)
    has_pos = (count > 0).astype(log_prob.dtype)
    return jnp.sum(per_anchor * has_pos) / jnp.maximum(jnp.sum(has_pos), 1.0)


def _groups(z: Array, y: Array) -> tuple[Array, Array]:
    """Per-view original index and class label, both (N,)."""
    n, m, _ = z.shape
    return jnp.repeat(jnp.arange(n), m), jnp.repeat(y, m)


def info_nce(z: Array, temperature: float | Array = 0.5, cosine: bool = True) -> Array:
    """InfoNCE / NT-Xent over views of the same original. z: (n, m, p), m >= 2. Returns ()."""
    originals, _ = _groups(z, jnp.zeros(z.shape[0], jnp.int32))
    return _multi_positive(_log_prob(_views(z, cosine), temperature), originals)


def supcon(z: Array, y: Array, temperature: float | Array = 0.5, cosine: bool = True) -> Array:
    """SupCon L_out over views of the same class. z: (n, m, p), y: (n,). Returns ()."""
    _, classes = _groups(z, y)
    return _multi_positive(_log_prob(_views(z, cosine), temperature), classes)


def joint_nce(
    z: Array,
    y: Array,
    beta: float | Array,
    temperature: float | Array = 0.5,
    cosine: bool = True,
) -> Array:
    """beta * SupCon + (1 - beta) * InfoNCE, sharing one similarity matrix. Returns ()."""
    originals, classes = _groups(z, y)
    log_prob = _log_prob(_views(z, cosine), temperature)
    return beta * _multi_positive(log_prob, classes) + (1 - beta) * _multi_positive(
        log_prob, originals
    )
