"""The first paper's claims, in THEORY.md order, for ``simdyn verify --paper which-features``.

``CLAIMS``: each claim module's declaration; ``BROKEN``: the verifier's broken simulators
(:data:`simdyn.papers.which_features.simulators.BROKEN`), each planted by
:func:`simdyn.papers.which_features.simulators.use`; ``clear_caches``: forgets memoised runs
(:func:`simdyn.papers.which_features.runs.clear_memo`), which the verifier calls between
sessions and between a self-test's simulators; ``SHARED_RUNS``: the claims that reuse each
other's memoised runs and compiled programs, which ``simdyn verify --jobs N`` keeps in one
process (:func:`simdyn.verify.registry.shared_run_groups`).
"""

from __future__ import annotations

import functools

from simdyn.papers.which_features import (
    cc_early,
    cc_exists,
    cc_minnorm,
    cc_probe_gd,
    cc_train,
    cc_unlearn,
    fig6,
    fs_aug,
    fs_dim,
    fs_tie,
    good_event,
    joint,
    minloss,
    representations,
    sgd_min,
    sgd_objective,
    simulators,
)
from simdyn.papers.which_features.runs import clear_memo
from simdyn.verify.broken import BrokenSimulator
from simdyn.verify.claim import Claim

CLAIMS: tuple[Claim, ...] = (
    cc_train.CLAIM,
    cc_exists.CLAIM,
    cc_minnorm.CLAIM,
    cc_early.CLAIM,
    cc_unlearn.CLAIM,
    fs_dim.CLAIM,
    fs_aug.CLAIM,
    joint.CLAIM,
    sgd_objective.CLAIM,
    minloss.CLAIM,
    good_event.CLAIM,
    representations.CLAIM,
    fig6.CLAIM,
    fs_tie.CLAIM,
    cc_probe_gd.CLAIM,
    sgd_min.CLAIM,
)

# A claim whose module imports another claim's module reads that claim's runs, designs or
# data (tests/test_verify_parallel.py checks each such pair is in one group here).
SHARED_RUNS: tuple[tuple[str, ...], ...] = (
    ("CC-early", "CC-unlearn", "CC-probe-GD"),
    ("CC-train", "FS-dim", "JOINT", "MINLOSS"),
    ("JOINT", "SGD-OBJ", "SGD-MIN"),
)

BROKEN: tuple[BrokenSimulator, ...] = tuple(
    BrokenSimulator(s.name, s.fault, functools.partial(simulators.use, s))
    for s in simulators.BROKEN
)


def clear_caches() -> None:
    """Forget every memoised run and intermediate of this paper's claims."""
    clear_memo()
