"""The same full-batch GD step written outside simdyn: PyTorch (torch.func.vmap) and NumPy.

Each peer runs EXACTLY simdyn's algorithm on the moments simdyn built (so the work and the
FLOP count are the same, and the final Theta is checked against simdyn's):

* dense matrix form: Theta M, Theta M+, Theta M~ (three (p x D)(D x D) products), then
  G = -4 (beta Theta M+ + (1 - beta) Theta M~) + 4 (Theta M Theta^T)(Theta M);
* structured form: the arrow M, rank-2 M+ and sparse M~ of simdyn.moments.structured_products;
  ``structured-scl`` (torch only): the same with the static SCL weight, so no M~ product (what
  simdyn compiles for loss='scl').

Theta <- Theta - lr G, repeated ``steps`` times. PyTorch is imported lazily: it is a benchmark
peer only (``pip install torch``), never a simdyn dependency.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# --------------------------------------------------------------------------- NumPy, per seed


def numpy_dense_gd(mom: tuple, theta: np.ndarray, beta: float, lr: float, steps: int):
    """One seed: mom = (M, M+, M~) each (D, D); theta (p, D)."""
    m, m_plus, m_tilde = mom
    for _ in range(steps):
        tm, tmp, tmt_ = theta @ m, theta @ m_plus, theta @ m_tilde
        grad = -4 * (beta * tmp + (1 - beta) * tmt_) + 4 * (tm @ theta.T) @ tm
        theta = theta - lr * grad
    return theta


def numpy_structured_gd(mom: tuple, theta: np.ndarray, beta: float, lr: float, steps: int):
    """One seed: mom = StructuredMoments fields (a, c, diag, class_means, of, oi, ov)."""
    a, c, diag, cm, of, oi, ov = mom
    p, dim = theta.shape
    k1 = a.shape[0]
    flat_idx = oi.reshape(-1)
    # Scatter-add of the M~ product as ONE bincount over (row, coordinate) pairs.
    rows_idx = (np.arange(p)[:, None] * dim + flat_idx[None, :]).reshape(-1)
    for _ in range(steps):
        tf = theta[:, :k1]
        tm = theta * diag + tf @ c
        tm[:, :k1] += tf @ a + theta @ c.T
        tmp = (theta @ cm.T) @ cm
        proj = tf @ of.T + np.einsum("prt,rt->pr", theta[:, oi], ov)
        contrib = (proj[:, :, None] * ov[None]).reshape(p, -1)
        tmt_ = np.bincount(rows_idx, contrib.reshape(-1), minlength=p * dim).reshape(p, dim)
        tmt_[:, :k1] += proj @ of
        grad = -4 * (beta * tmp + (1 - beta) * tmt_) + 4 * (tm @ theta.T) @ tm
        theta = theta - lr * grad
    return theta


def numpy_loop(kind: str) -> Callable:
    """Per-seed Python loop over seeds: moments (S, ...) and theta (S, p, D) as numpy arrays."""
    one = numpy_dense_gd if kind == "dense" else numpy_structured_gd

    def run(mom: tuple, theta: np.ndarray, beta: float, lr: float, steps: int) -> np.ndarray:
        return np.stack(
            [one(tuple(x[i] for x in mom), theta[i], beta, lr, steps) for i in range(len(theta))]
        )

    return run


# --------------------------------------------------------------------------- PyTorch, vmap


def torch_vmap(kind: str) -> Callable:
    """A torch.func.vmap GD over seeds; returns run(mom tensors, theta, beta, lr, steps).

    The structured form's gather and scatter-add run OUTSIDE vmap on flat buffers with
    precomputed linear indices (index_select / index_add_ on 1-D tensors): on CPU, vmap's
    batching rules for advanced indexing and index_add were 5-30x slower per element in a
    micro-benchmark on this machine. Everything else is per-seed code under vmap.
    """
    import torch
    from torch.func import vmap

    def dense_grad(m, m_plus, m_tilde, theta, beta):
        tm, tmp, tmt_ = theta @ m, theta @ m_plus, theta @ m_tilde
        return -4 * (beta * tmp + (1 - beta) * tmt_) + 4 * (tm @ theta.T) @ tm

    def structured_parts(a, c, diag, cm, of, ov, cols, theta, beta):
        """Per seed: cols = Theta[:, oi] (p, n, q). Returns (dense part of G, proj (p, n))."""
        dim = theta.shape[1]
        k1 = a.shape[0]
        tf = theta[:, :k1]
        pad = (0, dim - k1)
        tm = theta * diag + tf @ c + torch.nn.functional.pad(tf @ a + theta @ c.T, pad)
        tmp = (theta @ cm.T) @ cm
        proj = tf @ of.T + torch.einsum("prt,rt->pr", cols, ov)
        tmt_feat = torch.nn.functional.pad(proj @ of, pad)
        part = -4 * (beta * tmp + (1 - beta) * tmt_feat) + 4 * (tm @ theta.T) @ tm
        return part, proj

    def run_dense(mom: tuple, theta, beta: float, lr: float, steps: int):
        grad = vmap(lambda *args: dense_grad(*args, beta))
        with torch.inference_mode():
            for _ in range(steps):
                theta = theta - lr * grad(*mom, theta)
        return theta

    def scl_grad(a, c, diag, cm, theta):
        """Static SCL weight (beta = 1): no Theta M~ at all, as simdyn's loss='scl' step."""
        dim = theta.shape[1]
        k1 = a.shape[0]
        tf = theta[:, :k1]
        pad = (0, dim - k1)
        tm = theta * diag + tf @ c + torch.nn.functional.pad(tf @ a + theta @ c.T, pad)
        return -4 * (theta @ cm.T) @ cm + 4 * (tm @ theta.T) @ tm

    def run_structured_scl(mom: tuple, theta, beta: float, lr: float, steps: int):
        a, c, diag, cm = mom[:4]
        grad = vmap(scl_grad)
        with torch.inference_mode():
            for _ in range(steps):
                theta = theta - lr * grad(a, c, diag, cm, theta)
        return theta

    def run_structured(mom: tuple, theta, beta: float, lr: float, steps: int):
        a, c, diag, cm, of, oi, ov = mom
        seeds, p, dim = theta.shape
        _, n, q = oi.shape
        # Flat index of Theta[s, row, oi[s, i, t]] for every (s, row, i, t): computed once.
        lin = (
            torch.arange(seeds)[:, None, None] * (p * dim)
            + torch.arange(p)[None, :, None] * dim
            + oi.reshape(seeds, 1, n * q)
        ).reshape(-1)
        parts = vmap(lambda *args: structured_parts(*args, beta))
        with torch.inference_mode():
            for _ in range(steps):
                cols = theta.reshape(-1).index_select(0, lin).reshape(seeds, p, n, q)
                part, proj = parts(a, c, diag, cm, of, ov, cols, theta)
                contrib = (proj[..., None] * ov[:, None]).reshape(-1)  # (S, p, n, q)
                tmt_noise = torch.zeros(seeds * p * dim).index_add_(0, lin, contrib)
                grad = part - 4 * (1 - beta) * tmt_noise.reshape(seeds, p, dim)
                theta = theta - lr * grad
        return theta

    return {"dense": run_dense, "structured": run_structured, "structured-scl": run_structured_scl}[
        kind
    ]


def to_torch(arrays: tuple) -> tuple:
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in arrays)
