"""The time model of one full-batch GD step per seed, shared by every exact representation.

Every count is per seed and per GD step (Theta <- Theta - lr G), for the code as written in
:mod:`simdyn.moments`, :mod:`simdyn.projected` and :mod:`simdyn.losses`; recording (loss,
alignments every ``log_every`` steps) is not included. A multiply-add is 2 FLOPs. Notation:
p rows of Theta, D = d + 1, k1 = K + 1, n originals, m augmentations, N = m n points, s noise
entries per point (1 basis, d Gaussian), q = m s noise entries per original, r the projected
rank (:func:`projected_rank`), w bytes per float.

Each representation in :mod:`simdyn.objectives` states its own counts (``step_cost`` and
``memory_per_seed``; the formulas are in each module's docstring), and ``auto`` takes the one
with the lowest modelled time (:func:`simdyn.objectives.choose`).

The counts are checked against XLA's own ``cost_analysis`` in tests/test_objectives.py.

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

from simdyn.config import DataConfig


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


def projected_rank(data: DataConfig) -> int:
    """Static r of the projected form: the size of its basis U (D x r).

    Sparse noise: r_max = min(D, K + 1 + N s) (feature block + every noise coordinate hit,
    padded); Gaussian noise: min(D, N) (QR of the dense data).
    """
    dim = data.d + 1
    if data.noise == "gaussian":
        return min(dim, data.num_points)
    return min(dim, data.K + 1 + data.num_points * data.noise_nnz)


def estimated_seconds(cost: StepCost, machine: Machine = DEFAULT_MACHINE) -> float:
    """Modelled seconds of one seed-step (see the module docstring)."""
    return (
        cost.flops / machine.flops_per_s
        + cost.bytes / machine.bytes_per_s
        + cost.indexed * machine.seconds_per_indexed
    )
