"""The recipe of docs/papers.md: a third paper plugs in with one registration line.

A toy paper (a package written into a temporary folder, never imported by the core) declares
one claim - the sample mean of N(mu, 1) draws is mu - with a near-miss control (mu + 0.5), and
is registered by adding one entry to ``registry.PAPERS``. The verifier's selection, rules
listing, running and the command line then serve it without any other edit.
"""

import sys

import pytest
from toy_paper_source import TOY, _write_toy

import simdyn
from simdyn.verify import registry


@pytest.fixture
def toy_paper(tmp_path, monkeypatch):
    name = _write_toy(tmp_path, monkeypatch, "toy", TOY)  # the one registration line
    yield name
    registry._paper_declarations.cache_clear()
    sys.modules.pop(f"{name}.claims", None)
    sys.modules.pop(name, None)


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
