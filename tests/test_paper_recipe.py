"""The recipe of docs/papers.md: a third paper plugs in with one registration line.

A toy paper (a package written into a temporary folder, never imported by the core) declares
one claim - the sample mean of N(mu, 1) draws is mu - with a near-miss control (mu + 0.5), and
is registered by adding one entry to ``registry.PAPERS``. The verifier's selection, rules
listing, running and the command line then serve it without any other edit.
"""

import sys
import textwrap

import pytest

import simdyn
from simdyn.verify import registry

TOY = '''
"""A toy paper: the mean of N(mu, 1) draws."""
from dataclasses import dataclass

import jax
import numpy as np

from simdyn.verify.claim import Claim, Row, RowText, Rule
from simdyn.verify.common import ClaimInfo
from simdyn.verify.stats import mean_test


@dataclass(frozen=True)
class Design:
    mu: float = 1.0
    seeds: int = 1600


def measure(design, key):
    base = jax.random.key(key)
    one = lambda s: jax.random.normal(jax.random.fold_in(base, s))
    return design.mu + np.asarray(jax.vmap(one)(jax.numpy.arange(design.seeds)))


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
'''


@pytest.fixture
def toy_paper(tmp_path, monkeypatch):
    pkg = tmp_path / "toy_paper"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "claims.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    # The one registration line of the recipe.
    monkeypatch.setitem(registry.PAPERS, "toy", "toy_paper.claims")
    registry._paper_declarations.cache_clear()
    yield "toy"
    registry._paper_declarations.cache_clear()
    sys.modules.pop("toy_paper.claims", None)
    sys.modules.pop("toy_paper", None)


def test_a_registered_paper_is_selected_and_run(toy_paper):
    assert registry.resolve_claims(None, toy_paper) == ["TOY-mean"]
    assert registry.paper_of("TOY-mean") == toy_paper
    simdyn.enable_x64()
    (row,) = registry.run_claim("TOY-mean", "quick", key=3)
    (test,) = row.tests
    (control,) = row.controls
    # 1600 draws: se 0.025, the margin 0.2 is 8 se, so p < 1e-4 unless the mean is > 4.3 se
    # off (probability 2e-5); the control's center is 20 se away.
    assert test.p_hold < 1e-4 and control.p_fail < 1e-4


def test_the_command_line_serves_it(toy_paper, capsys):
    from simdyn._src.cli import main

    assert main(["verify", "--paper", toy_paper, "--list"]) == 0
    assert "TOY-mean" in capsys.readouterr().out


def test_an_unregistered_paper_is_a_clear_error():
    with pytest.raises(simdyn.ConfigError, match="--paper 'nope'.*which-features"):
        registry.resolve_claims(None, "nope")


def test_the_core_never_imports_a_paper():
    # The first paper's selection does not import any other paper's claims.
    registry._paper_declarations.cache_clear()
    before = set(sys.modules)
    registry.resolve_claims(None)
    assert not any(m.startswith("simdyn.papers") for m in set(sys.modules) - before)
