"""A toy paper for the tests of the paper registry (test_paper_recipe, test_verify_broken):
its source, written into a temporary folder and registered by the recipe's one line."""

from __future__ import annotations

import textwrap

from simdyn.verify import registry

TOY = '''
"""A toy paper: the mean of N(mu, 1) draws, and two broken simulators."""
import sys
from dataclasses import dataclass

import jax
import numpy as np

from simdyn.verify.broken import BrokenSimulator, planting
from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo
from simdyn.verify.stats import mean_test

OFFSET = 0.0  # what the simulator adds to every draw (the reference: nothing)


@dataclass(frozen=True)
class Design:
    mu: float = 1.0
    seeds: int = 1600


def measure(design, key):
    base = jax.random.key(key)
    one = lambda s: jax.random.normal(jax.random.fold_in(base, s))
    return design.mu + OFFSET + np.asarray(jax.vmap(one)(jax.numpy.arange(design.seeds)))


def _mean(center):
    def rule(design, x):
        name = "mean" if center == 0 else "control:mean+0.5"
        return mean_test(name, x, design.mu + center - 0.2, design.mu + center + 0.2,
                         statistic="sample mean", rule="TOST inside mu +- 0.2")
    return rule


CLAIMS = (
    Claim(
        info=ClaimInfo("TOY-mean", "toy", "the mean of N(mu, 1) is mu", "mu + 0.5: must fail"),
        designs={"small": Design(), "quick": Design(), "full": Design(seeds=1000)},
        rows=(Row(measure=measure, rules=(Rule("mean", "TOST", _mean(0.0)),),
                  controls=(Rule("control:mean+0.5", "TOST", _mean(0.5)),),
                  describe=lambda d, x: RowText("toy", f"mu={d.mu}")),),
    ),
)

_HERE = sys.modules[__name__]
BROKEN = (
    BrokenSimulator("offset-0.5", "every draw 0.5 too large", planting((_HERE, "OFFSET", 0.5))),
)
'''


def _write_toy(tmp_path, monkeypatch, name: str, source: str) -> str:
    """Write a toy paper package ``name`` and register it (the recipe's one line)."""
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "claims.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.PAPERS, name, f"{name}.claims")
    registry._paper_declarations.cache_clear()
    return name
