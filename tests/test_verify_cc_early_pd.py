"""CC-early [p,d]: Thm 4.5's sqrt(d/p) dependence, with Fig. 2b's embedding size.

Known answers come from independent computations (a Monte-Carlo mean of the chi_p factor) and
from broken simulators whose effect on the crossing time is written out by hand.
"""

import dataclasses
import math

import numpy as np
import pytest

from simdyn.papers.which_features import cc_early, simulators
from simdyn.papers.which_features.runs import clear_memo
from simdyn.verify import report
from simdyn.verify.blas import blas_threads
from simdyn.verify.claim import evaluate


@pytest.mark.parametrize("p", [1, 3, 30, 500])
def test_log_amplitude_offset_is_the_mean_log_of_the_chi_factor(p):
    rng = np.random.default_rng(7)
    g = rng.standard_normal((20000, p))
    logs = np.log(np.linalg.norm(g, axis=1) / math.sqrt(p))
    se = logs.std() / math.sqrt(logs.size)
    assert abs(cc_early.log_amplitude_offset(p) - logs.mean()) <= 5 * se


# 32 seeds at each of 4 (p, d) points: 128 units, so the fraction rules decide after Holm; x spans
# 3.5 nats (a factor 32) and the p = 3 points carry the chi_3 scatter (~1.3 steps).
_DESIGN = dataclasses.replace(
    cc_early.DESIGNS["small"],
    pd_points=((3, 300), (3, 4800), (48, 300), (192, 300)),
    pd_seeds=32,
)


def _pd_row(sim: simulators.Simulator) -> report.RowResult:
    clear_memo()
    with simulators.use(sim), blas_threads(1):
        rows = report.evaluate(evaluate(cc_early.CLAIM, _DESIGN, 11))
    clear_memo()
    (row,) = [r for r in rows if r.outcome.claim == "CC-early [p,d]"]
    return row


def _verdicts(row: report.RowResult) -> dict[str, str]:
    return {t.name: v for t, v in zip(row.outcome.tests, row.sub_verdicts, strict=True)}


@pytest.mark.slow
def test_pd_row_holds_and_its_controls_fail():
    row = _pd_row(simulators.REFERENCE)
    assert row.verdict == "holds", _verdicts(row)
    assert row.control_verdict == "fails"


@pytest.mark.slow
def test_an_init_without_its_sqrt_p_growth_fails_the_pd_row():
    # Theta_0 entries ~ N(0, sigma_0^2 / (d p)): ||Theta_0 u_1|| no longer grows like sqrt(p),
    # so at p = 192 the crossing is ln(8)/ln(1 + 4 eta a_1) ~ 6 steps later than predicted.
    sim = simulators.Simulator(
        "init-without-sqrt-p",
        fault="Theta_0 scaled by 1/sqrt(p/3)",
        init_factor=lambda config: math.sqrt(3 / config.model.p),
    )
    row = _pd_row(sim)
    assert row.verdict == "fails", _verdicts(row)
    assert _verdicts(row)["time"] == "fails"


def test_the_p500_point_runs_in_memory_bounded_chunks(monkeypatch):
    from simdyn.papers.which_features import runs

    monkeypatch.setattr(runs, "available_memory", lambda: 16 * 2**30)
    design = cc_early.DESIGNS["full"]
    small = cc_early.config(cc_early.pd_design(design, 3, 500)).replace(probe_every=-1)
    large = cc_early.config(cc_early.pd_design(design, 500, 2000)).replace(probe_every=-1)
    assert runs.unit_chunk(small) == runs.UNIT_CHUNK
    chunk = runs.unit_chunk(large)
    # One chunk's seeds, counted generously, fit in a quarter of the (planted) free memory.
    assert 1 <= chunk < runs.UNIT_CHUNK
    assert chunk * runs.bytes_per_seed(large) <= 0.25 * 16 * 2**30
