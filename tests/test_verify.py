"""``simdyn verify`` end to end at small size: moments reference, every claim, verdicts, CLI.

The claims run once per session (module fixture) at their ``small`` designs; several are sized so
that their verdicts are decidable on their own (Holm over one claim's rows), and for those the
claim must hold and its negative control must fail (the math makes both exact or far from the
thresholds there, see each assertion).
"""

import json

import jax
import numpy as np
import pytest

from simdyn.config import ConfigError, DataConfig
from simdyn.data import embed
from simdyn.moments import dense_moments
from simdyn.papers.which_features import minloss
from simdyn.papers.which_features.instances import (
    compressed_moments,
    embed_points,
    instance,
    sample_instances,
)
from simdyn.papers.which_features.runs import clear_memo
from simdyn.verify.registry import CLAIM_IDS, resolve_claims, run_claim, with_seeds
from simdyn.verify.report import evaluate

# --- the restricted ("compressed") moments against the dense reference ----------------------


@pytest.mark.parametrize(
    "data",
    [
        DataConfig(n=16, m=2, d=60, K=4, mu=1.0, sampling="balanced", noise_placement="good_event"),
        # i.i.d. noise on a small d: coordinates collide and hit the feature block.
        pytest.param(
            DataConfig(n=12, m=3, d=20, K=3, phi=(0.8, 1.0, 0.7), mu=0.5), marks=pytest.mark.slow
        ),
        pytest.param(
            DataConfig(
                n=6,
                m=4,
                d=50,
                K=5,
                augmentation="imperfect",
                aug_noise_rank=2,
                aug_noise_scale=0.3,
                phi=(1.0,) * 5,
            ),
            marks=pytest.mark.slow,
        ),
    ],
)
@pytest.mark.slow
def test_compressed_moments_equal_dense_moments(data):
    sets = sample_instances(data, [0, 1], key=3)
    for u in range(2):
        ts = instance(sets, u)
        c = compressed_moments(ts, data.K)
        dense = dense_moments(jax.tree.map(np.asarray, ts.points), ts.labels, data.d)
        for name, small in (("m", c.m), ("m_plus", c.m_plus), ("m_tilde", c.m_tilde)):
            full = np.asarray(getattr(dense, name))
            np.testing.assert_allclose(small, full[np.ix_(c.cols, c.cols)], atol=1e-12)
            # Nothing lives outside the kept coordinates.
            rest = np.setdiff1d(np.arange(data.d + 1), c.cols)
            assert np.abs(full[rest]).max(initial=0.0) == 0.0
        theta = np.random.default_rng(u).standard_normal((3, data.d + 1))
        np.testing.assert_allclose(
            embed_points(theta, ts.points), np.asarray(embed(theta, ts.points)), atol=1e-12
        )


@pytest.mark.slow
def test_instances_do_not_depend_on_the_sampling_chunk(monkeypatch):
    from simdyn.papers.which_features import instances

    data = DataConfig(n=8, m=2, d=40, K=3, phi=(1.0,) * 3, mu=0.0, noise_placement="iid")
    seeds = [5, 0, 9, 2, 7]
    default = jax.tree.leaves(sample_instances(data, seeds, key=4))
    monkeypatch.setattr(instances, "CHUNK", 2)  # three calls, the last one padded
    small = jax.tree.leaves(sample_instances(data, seeds, key=4))
    for a, b in zip(default, small, strict=True):
        np.testing.assert_array_equal(a, b)
    one = jax.tree.leaves(sample_instances(data, [9], key=4))  # a seed's draw alone
    for a, b in zip(default, one, strict=True):
        np.testing.assert_array_equal(a[2:3], b)


def test_claim_selection_and_seed_override_errors():
    assert resolve_claims(None) == list(CLAIM_IDS)
    assert resolve_claims(["minloss", "CC-train"]) == ["CC-train", "MINLOSS"]
    with pytest.raises(ConfigError, match="--claims"):
        resolve_claims(["CC-nope"])
    with pytest.raises(ConfigError, match="--seeds"):
        with_seeds(minloss.DESIGNS["small"], 1)
    d = with_seeds(minloss.DESIGNS["small"], 5)
    assert d.cc_train.seeds == 5 and d.fs_dim.gd_seeds == 5 and d.joint.seeds == 5


# --- every claim end to end at small size ---------------------------------------------------


class _Outcomes(dict):
    """claim -> its small-size rows, each claim run once, on first use."""

    def __missing__(self, claim: str):
        self[claim] = run_claim(claim, "small", key=0)
        return self[claim]


@pytest.fixture(scope="module")
def outcomes():
    clear_memo()
    yield _Outcomes()
    clear_memo()


# The default tier checks the claims the tests below use; the others' well-formedness is the
# slow tier's (and CI's `simdyn verify --quick --expect` runs every claim end to end).
DEFAULT_TIER_CLAIMS = {"CC-train", "CC-minnorm", "FS-dim", "MINLOSS"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "claim",
    [c if c in DEFAULT_TIER_CLAIMS else pytest.param(c, marks=pytest.mark.slow) for c in CLAIM_IDS],
)
def test_each_claim_runs_and_is_well_formed(outcomes, claim):
    rows = outcomes[claim]
    assert rows and rows[0].claim == claim
    for row in rows:
        assert row.tests and row.controls and row.design
        for t in row.tests + row.controls:
            assert 0.0 <= t.p_hold <= 1.0 and 0.0 <= t.p_fail <= 1.0
            assert t.n_units + t.n_excluded > 0
            json.dumps(t.data)  # the data behind the verdict is serialisable
        json.dumps(list(row.notes))
    for r in evaluate(rows):
        assert r.verdict in ("holds", "fails", "inconclusive")


@pytest.mark.slow
def test_minloss_every_small_unit_reaches_the_minimum_and_no_control_unit_does(outcomes):
    # GD reaches min_loss to ~1e-10 relative vs a control off by >= 1/p relative. The tests are
    # exact (every unit): count the failing units directly.
    (row,) = outcomes["MINLOSS"]
    assert [t.name for t in row.tests] == [f"gd-final-loss[{k}]" for k in ("scl", "ucl", "joint")]
    assert all(t.kind == "exact" and t.failures == 0 and t.n_units > 0 for t in row.tests)
    assert all(c.failures == c.n_units > 0 for c in row.controls)


@pytest.mark.slow
@pytest.mark.parametrize("claim", ["CC-train", "CC-minnorm", "FS-dim"])
def test_claim_holds_and_its_control_fails_at_small_size(outcomes, claim):
    # CC-train: r ~ 1e-5 (GD) / 1e-14 (exact) vs O(1) for UCL.
    # CC-minnorm, FS-dim (THEORY.md section 1 example): closed forms exact to ~1e-13 on
    # balanced good-event instances; controls ask for 0 where the value is ~1/phi_1.
    (main,) = evaluate(outcomes[claim][:1])
    assert main.verdict == "holds", [(t.name, t.estimate, t.p_hold) for t in main.outcome.tests]
    assert main.control_verdict == "fails"


@pytest.mark.slow
def test_fs_dim_small_values_match_the_theory_example(outcomes):
    # THEORY.md section 1: ||W v_1|| ~ 1.21 for phi_3^2 in {0.3, 0.6}, exactly 0 for {0.7, 1.5}.
    test = {t.name: t for t in outcomes["FS-dim"][0].tests}["prediction"]
    x = np.asarray(test.data["phi3_sq"])
    w = np.asarray(test.data["w_v1"])
    assert np.allclose(w[x < 0.65], 0.8 / (0.64 + 1 / 48), rtol=1e-9)
    assert np.all(w[x > 0.65] < 1e-9)


# --- the command line -----------------------------------------------------------------------


@pytest.mark.slow
def test_cli_verify_writes_reports(tmp_path, monkeypatch, capsys):
    from simdyn._src.cli import main
    from simdyn.papers.which_features import cc_train

    # The CLI path of `--quick` end to end on the small design (the quick one trains for a
    # minute; the plumbing is the same).
    monkeypatch.setitem(cc_train.DESIGNS, "quick", cc_train.DESIGNS["small"])
    out = tmp_path / "rep"
    code = main(["verify", "--quick", "--claims", "CC-train", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["claim"] for r in report["rows"]] == ["CC-train"]
    row = report["rows"][0]
    assert row["verdict"] == "holds" and row["control_verdict"] == "fails"
    assert row["scope"] == "all points"
    assert row["tests"][0]["data"]["r"]
    md = (out / "report.md").read_text()
    assert "| CC-train |" in md and "holds" in md
    assert (out / "claim-cc-train.png").read_bytes()[:4] == b"\x89PNG"  # one figure per claim
    assert "CC-train" in capsys.readouterr().out


def test_cli_rejects_unknown_claim(tmp_path, capsys):
    from simdyn._src.cli import main

    assert main(["verify", "--claims", "NOPE", "--out", str(tmp_path)]) == 2
    assert "--claims" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_in_chunks_match_one_call(monkeypatch):
    """verify.runs splits units into equal chunks (last one padded): a unit's trajectory must not
    depend on the chunking (same keys; padding copies dropped)."""
    from simdyn.papers.which_features import cc_early, runs

    design = cc_early.DESIGNS["small"]
    cfg = cc_early.config(design)
    seeds, sig = [3, 1, 4, 1, 5], [1e-1, 1e-2, 1e-3, 1e-1, 1e-5]
    clear_memo()
    whole = runs.run(cfg, seeds, 0, sigma_0=sig)
    clear_memo()
    monkeypatch.setattr(runs, "UNIT_CHUNK", 2)
    parts = runs.run(cfg, seeds, 0, sigma_0=sig)
    clear_memo()
    assert parts.alignment.shape == whole.alignment.shape == (5, len(parts.steps), design.K + 1)
    np.testing.assert_allclose(parts.alignment, whole.alignment, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(parts.diverged, whole.diverged)
    np.testing.assert_array_equal(parts.seeds, whole.seeds)


@pytest.mark.slow
def test_interrupted_verify_resumes_finished_claims(tmp_path, monkeypatch, capsys):
    from simdyn._src.cli import main
    from simdyn.papers.which_features import cc_train, fs_aug
    from simdyn.verify import cli

    monkeypatch.setitem(cc_train.DESIGNS, "quick", cc_train.DESIGNS["small"])
    monkeypatch.setitem(fs_aug.DESIGNS, "quick", fs_aug.DESIGNS["small"])
    monkeypatch.setattr(cli, "_code_state", lambda: "0123abcd")  # a clean checkout
    out = tmp_path / "rep"
    args = ["verify", "--quick", "--claims", "CC-train,FS-aug", "--out", str(out)]
    calls = []

    def crash_on_fs_aug(claim, *a, **k):
        calls.append(claim)
        if claim == "FS-aug":
            raise KeyboardInterrupt  # the run is killed during the second claim
        return real(claim, *a, **k)

    import simdyn.verify.registry as registry

    real = registry.run_claim
    monkeypatch.setattr(registry, "run_claim", crash_on_fs_aug)
    # simdyn._src.cli turns Ctrl-C into exit status 130 (docs/cli.md), with the finished claim kept.
    assert main(args) == 130
    assert not (out / "report.json").exists()
    monkeypatch.setattr(
        registry, "run_claim", lambda c, *a, **k: (calls.append(c), real(c, *a, **k))[1]
    )
    capsys.readouterr()
    assert main(args) == 0
    assert calls == ["CC-train", "FS-aug", "FS-aug"]  # CC-train was not run again
    assert "CC-train: reused the finished result" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["resumed_claims"] == ["CC-train"]
    assert [r["claim"] for r in report["rows"]][:1] == ["CC-train"]
    # Uncommitted code: nothing is kept, so nothing can be reused by a run of other rules.
    monkeypatch.setattr(cli, "_code_state", lambda: None)
    assert cli._checkpoint_folder(str(out), report["meta"]) is None
