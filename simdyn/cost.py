"""Cost model of one full-batch GD step per seed for each exact path, and the automatic choice.

Every count is per seed and per GD step (Theta <- Theta - lr G), for the code as written in
:mod:`simdyn.moments`, :mod:`simdyn.projected` and :mod:`simdyn.losses`; recording (loss,
alignments every ``log_every`` steps) is not included. A multiply-add is 2 FLOPs. Notation:
p rows of Theta, D = d + 1, k1 = K + 1, n originals, m augmentations, N = m n points, s noise
entries per point (1 basis, d Gaussian), q = m s noise entries per original, r the projected
rank (:func:`projected_rank`), w bytes per float.

dense (three (p x D)(D x D) products Theta M, Theta M+, Theta M~, then
  G = -4 Theta P + 4 (Theta M Theta^T)(Theta M)):
    flops   = 6 p D^2 + 4 p^2 D + 8 p D
    bytes   = w (3 D^2 + 14 p D)        (the three moment matrices dominate)
    indexed = 0
structured (arrow M: 2 products with the (k1, D) coupling, the diagonal, a (k1 x k1) block;
  rank-2 M+; sparse M~ = a gather and a scatter-add of p n q entries; then G):
    flops   = p D (18 + 4 k1) + 4 p^2 D + 2 p k1^2 + 2 p k1 + 4 p n (k1 + q)
    bytes   = w ((k1 + 3) D + n (k1 + q)) + 4 n q + w (20 p D + 4 p n q)
    indexed = 2 p n q
projected (two (p x r)(r x r) products, G_r, then lift to (p, D) and update; coordinate basis:
  a gather and a scatter of p r entries; QR basis (Gaussian): two (p x D)(D x r) products):
    flops   = 4 p r^2 + 4 p^2 r + 5 p r + 2 p D              (+ 4 p D r with a QR basis)
    bytes   = w (2 r^2 + 10 p r + 4 p D)                      (+ w 2 D r with a QR basis)
    indexed = 2 p r                                           (0 with a QR basis)
sample (autodiff of the per-point loss: embed N points (k1 + s non-zeros each), the (p x p)
  second moment, per-original and per-class means; the backward pass roughly doubles the
  forward work and scatters the noise columns' gradient back):
    flops   = N p (4 k1 + 7 s + 6 p + 6) + 12 n p + 2 p D    (7 s: multiply-add forward,
              multiply and scatter-add backward, and the bounds masks of the gather)
    bytes   = w (N (k1 + s) + 12 N p + 6 N s p + 8 p D) + 4 N s
    indexed = 2 N s p

The counts are checked against XLA's own ``cost_analysis`` in tests/test_cost.py.

Time model (a roofline-like sum, deliberately simple):

    seconds = flops / flops_per_s + bytes / bytes_per_s + indexed * seconds_per_indexed

``indexed`` counts elements moved by gathers and scatter-adds with data-dependent indices: XLA's
CPU backend runs them element by element, so they cost far more than their byte count. The
:data:`DEFAULT_MACHINE` constants were measured by ``benchmarks/run.py`` (matmul peak, streaming
bandwidth, vmapped gather/scatter) on the development machine (2-core AMD EPYC, shared and
loaded): absolute estimates are rough (small per-seed working sets live in cache, so the
bandwidth term overestimates them), what matters is the RANKING of the paths, which the
benchmark checks against measured times.
"""

from __future__ import annotations

from typing import NamedTuple

from simdyn.config import Config, DataConfig, supports_structured

BACKENDS = ("structured", "projected", "sample", "dense")


class StepCost(NamedTuple):
    """Work of one GD step of one seed: FLOPs, bytes moved, elements gathered/scattered."""

    flops: float
    bytes: float
    indexed: float


class Machine(NamedTuple):
    """Throughputs of the time model (see the module docstring)."""

    flops_per_s: float
    bytes_per_s: float
    seconds_per_indexed: float


# Measured with benchmarks/run.py on the development machine (see benchmarks/README.md):
# XLA float32 matmul peak, streaming bandwidth of a vmapped elementwise op, and the mean of a
# vmapped gather's and scatter-add's time per element.
DEFAULT_MACHINE = Machine(flops_per_s=8.0e10, bytes_per_s=4.0e9, seconds_per_indexed=4.0e-9)


def _itemsize(config: Config) -> int:
    return 8 if config.train.dtype == "float64" else 4


def projected_rank(data: DataConfig) -> int:
    """Static r of the projected form: the size of its basis U (D x r).

    Sparse noise: r_max = min(D, K + 1 + N s) (feature block + every noise coordinate hit,
    padded); Gaussian noise: min(D, N) (QR of the dense data).
    """
    dim = data.d + 1
    if data.noise == "gaussian":
        return min(dim, data.num_points)
    return min(dim, data.K + 1 + data.num_points * data.noise_nnz)


def applicable_backends(config: Config) -> tuple[str, ...]:
    """Exact full-batch paths for this config: structured needs one basis-noise entry per point."""
    return tuple(b for b in BACKENDS if b != "structured" or supports_structured(config.data))


def step_cost(config: Config, backend: str) -> StepCost:
    """Hand-counted work of one full-batch GD step of one seed (formulas in the module doc).

    Counts all three products (the joint loss). For loss='scl' / 'ucl' the compiled step skips
    Theta M~ / Theta M+ (train.full_objective), so this is an upper bound there; the automatic
    backend choice is left on this count so that committed runs keep their backends.
    """
    data, p = config.data, config.model.p
    w = _itemsize(config)
    dim, k1, n, big_n, s = data.d + 1, data.K + 1, data.n, data.num_points, data.noise_nnz
    q = data.m * s
    if backend == "dense":
        return StepCost(
            6 * p * dim**2 + 4 * p**2 * dim + 8 * p * dim, w * (3 * dim**2 + 14 * p * dim), 0.0
        )
    if backend == "structured":
        flops = (
            p * dim * (18 + 4 * k1) + 4 * p**2 * dim + 2 * p * k1**2 + 2 * p * k1
        ) + 4 * p * n * (k1 + q)
        nbytes = (
            w * ((k1 + 3) * dim + n * (k1 + q)) + 4 * n * q + w * (20 * p * dim + 4 * p * n * q)
        )
        return StepCost(flops, nbytes, 2 * p * n * q)
    if backend == "projected":
        r = projected_rank(data)
        flops = 4 * p * r**2 + 4 * p**2 * r + 5 * p * r + 2 * p * dim
        nbytes = w * (2 * r**2 + 10 * p * r + 4 * p * dim)
        if data.noise == "gaussian":
            return StepCost(flops + 4 * p * dim * r, nbytes + w * 2 * dim * r, 0.0)
        return StepCost(flops, nbytes, 2 * p * r)
    if backend == "sample":
        flops = big_n * p * (4 * k1 + 7 * s + 6 * p + 6) + 12 * n * p + 2 * p * dim
        nbytes = (
            w * (big_n * (k1 + s) + 12 * big_n * p + 6 * big_n * s * p + 8 * p * dim)
            + 4 * big_n * s
        )
        return StepCost(flops, nbytes, 2 * big_n * s * p)
    raise ValueError(f"invalid backend={backend!r}: must be one of {BACKENDS}")


def estimated_seconds(cost: StepCost, machine: Machine = DEFAULT_MACHINE) -> float:
    """Modelled seconds of one seed-step (see the module docstring)."""
    return (
        cost.flops / machine.flops_per_s
        + cost.bytes / machine.bytes_per_s
        + cost.indexed * machine.seconds_per_indexed
    )


def choose_backend(config: Config, machine: Machine = DEFAULT_MACHINE) -> str:
    """The applicable exact full-batch path with the lowest modelled time per seed-step.

    Ties go to the earlier entry of :data:`BACKENDS`.
    """
    options = applicable_backends(config)
    return min(options, key=lambda b: estimated_seconds(step_cost(config, b), machine))


def memory_per_seed(config: Config, backend: str) -> int:
    """Bytes one seed holds at the peak of the vmapped program (hand count, generous).

    Common: the training and test points and Theta with its gradient, optimiser slot and
    product temporaries (8 p D). Per path, the moments and the build-time temporaries:
    dense keeps 3 D^2 and forms the dense (N, D) data while building; structured keeps
    (k1 + 4) D + n (k1 + 2 q); projected keeps 2 r^2 (M_r, P_r) and forms the projected data
    (N, r) about three times while building (plus the dense data and U for a QR basis);
    sample keeps about 12 N p activations and 3 N s p gathered noise columns.
    """
    data, t, p = config.data, config.train, config.model.p
    w = _itemsize(config)
    dim, k1, n, big_n, s = data.d + 1, data.K + 1, data.n, data.num_points, data.noise_nnz
    points = (big_n + data.n + data.n_test) * (k1 + 2 * s)
    common = points + 8 * p * dim + len(t.record_steps) * (k1 + 1)
    if backend == "dense":
        extra = 3 * dim**2 + big_n * dim
    elif backend == "structured":
        extra = (k1 + 4) * dim + n * (k1 + 2 * data.m * s) + 2 * p * n * data.m * s
    elif backend == "projected":
        r = projected_rank(data)
        extra = 2 * r**2 + 3 * big_n * r + r
        if data.noise == "gaussian":
            extra += big_n * dim + 2 * dim * r
    elif backend == "sample":
        extra = 12 * big_n * p + 3 * big_n * s * p
    else:
        raise ValueError(f"invalid backend={backend!r}: must be one of {BACKENDS}")
    return int(w * (common + extra))
