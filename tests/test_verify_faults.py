"""The catch-matrix runner (simdyn.papers.which_features.faults): faults are planted in a copy
only, every
listed fault still applies to today's source, and one cheap fault is caught by its row."""

import hashlib
from pathlib import Path

import pytest

from simdyn.papers.which_features import faults
from simdyn.papers.which_features.faults import (
    FAULTS,
    Fault,
    RunResult,
    caught_by,
    mutated_text,
    planted_copy,
)


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_every_fault_still_applies_and_has_a_doc():
    # A refactor that moves a mutated line must fail here, not plant nothing.
    names = [f.name for f in FAULTS]
    assert len(names) == len(set(names))
    for f in FAULTS:
        faults.check_fault(f)
        assert f.doc and f.area
    source = [f for f in FAULTS if f.kind == "source"]
    assert len(FAULTS) >= 20 and len(source) >= len(FAULTS) / 2
    # At least one fault on each loss representation's own code path.
    areas = {f.area for f in source}
    for rep in ("structured", "dense", "projected", "sample"):
        assert f"representation: {rep}" in areas


def test_mutated_text_rejects_missing_and_repeated_old_text():
    fault = Fault("f", "a", "d", "x.py", (("a = 1", "a = {x}"),), size=1.5)
    assert mutated_text("a = 1\n", fault) == "a = 1.5\n"
    assert mutated_text("a = 1\n", fault, 2.0) == "a = 2.0\n"
    with pytest.raises(ValueError, match="occurs 0 times"):
        mutated_text("b = 1\n", fault)
    with pytest.raises(ValueError, match="occurs 2 times"):
        mutated_text("a = 1\na = 1\n", fault)


def test_planted_copy_changes_the_copy_only(tmp_path):
    before = _tree_digest(faults.PACKAGE)
    fault = faults.by_name("sample-loss-x1.1")
    root = planted_copy(fault, tmp_path)
    copied = (root / "simdyn" / fault.file).read_text()
    original = (faults.PACKAGE / fault.file).read_text()
    assert fault.edits[0][1] in copied and fault.edits[0][1] not in original
    assert _tree_digest(faults.PACKAGE) == before
    # Everything else is the package byte for byte.
    for path in faults.PACKAGE.rglob("*.py"):
        rel = path.relative_to(faults.PACKAGE)
        if "__pycache__" not in rel.parts and rel != Path(fault.file):
            assert (root / "simdyn" / rel).read_bytes() == path.read_bytes()


def test_caught_by_needs_a_row_that_holds_on_the_reference():
    ref = {"A": "holds", "B": "holds", "C": "fails", "D": "inconclusive"}
    bad = {"A": "fails", "B": "inconclusive", "C": "fails", "D": "fails"}
    assert caught_by(ref, bad) == (["A"], ["B"])
    assert caught_by(ref, ref) == ([], [])


def test_a_fault_run_on_some_claims_is_judged_with_the_reference_for_the_others():
    ref = RunResult({"A": ["a-ref"], "B": ["b-ref"]}, 1.0, 0)
    bad = RunResult({"B": ["b-bad"]}, 1.0, 0)
    assert faults.merged(ref, bad) == {"A": ["a-ref"], "B": ["b-bad"]}


@pytest.mark.slow  # a child verify run (~45 s); the fast tests above check the faults
def test_a_cheap_fault_is_caught_by_its_row_and_the_tree_stays_unchanged():
    # MINLOSS at the small scale (~1 s of claim work, ~20 s with the two child processes):
    # the reference holds, a 10% larger projected quartic term fails it (GD no longer reaches
    # the minimum loss the closed form gives).
    before = _tree_digest(faults.PACKAGE)
    fault = faults.by_name("projected-quartic-x1.1")
    ref = faults.run_fault(None, ["MINLOSS"], "small", None, 11)
    bad = faults.run_fault(fault, ["MINLOSS"], "small", None, 11)
    assert ref.ok and bad.ok, ref.tail + bad.tail
    ref_v, bad_v = (faults.verdicts(r.outcomes, ["MINLOSS"]) for r in (ref, bad))
    assert ref_v == {"MINLOSS": "holds"}
    assert caught_by(ref_v, bad_v)[0] == ["MINLOSS"]
    assert _tree_digest(faults.PACKAGE) == before


# --- the DATA row: the sampled instances against the config -----------------------------------


@pytest.fixture(scope="module")
def data_units():
    import simdyn
    from simdyn.papers.which_features import data_model
    from simdyn.papers.which_features.good_event import Design

    simdyn.enable_x64()
    return data_model.measure(Design(seeds=12), 5)


def _scaled(batch, setting_points: str, factor: float):
    pts = getattr(batch, setting_points)
    return batch._replace(**{setting_points: pts._replace(noise_val=pts.noise_val * factor)})


@pytest.mark.slow
def test_data_row_exact_checks_hold_on_the_reference_and_fail_on_a_corrupted_sample(data_units):
    from simdyn.papers.which_features import data_model

    rules = {r.name: r for r in data_model.ROW.rules}
    for name in ("features", "basis-noise", "balanced-labels", "distinct-instances", "minibatches"):
        (t,) = rules[name].apply(None, data_units)
        assert t.failures == 0, name
    # sigma_xi 1.1x on every instance of one setting: every instance fails basis-noise.
    bad = dict(data_units)
    bad["batches"] = dict(data_units["batches"])
    bad["batches"]["iid"] = _scaled(data_units["batches"]["iid"], "points", 1.1)
    (t,) = rules["basis-noise"].apply(None, bad)
    assert t.failures == data_units["instances"]
    # Two seeds sharing one instance: both fail distinct-instances.
    ge = data_units["batches"]["good-event"]
    dup = ge._replace(points=ge.points._replace(noise_idx=ge.points.noise_idx.copy()))
    dup.points.noise_idx[1] = dup.points.noise_idx[0]
    bad["batches"] = {**data_units["batches"], "good-event": dup}
    (t,) = rules["distinct-instances"].apply(None, bad)
    assert t.failures == 2


@pytest.mark.slow
def test_data_row_variance_ratio_is_near_one_and_a_1_1_scale_is_far(data_units):
    from simdyn.papers.which_features import data_model

    tests = data_model._variances(None, data_units)
    gauss = next(t for t in tests if t.name == "gaussian-noise")
    assert abs(gauss.estimate - 1) < 0.05
    bad = dict(data_units)
    bad["batches"] = {
        **data_units["batches"],
        "gaussian": _scaled(data_units["batches"]["gaussian"], "points", 1.1),
    }
    gauss_bad = next(t for t in data_model._variances(None, bad) if t.name == "gaussian-noise")
    assert gauss_bad.estimate == pytest.approx(1.21 * gauss.estimate)
    assert gauss_bad.p_fail < 1e-6


@pytest.mark.slow
def test_loop_row_matches_the_written_out_run_and_its_near_miss_fails():
    import simdyn
    from simdyn.papers.which_features import loop_check

    simdyn.enable_x64()
    units = loop_check.measure(None, 3)
    (t,) = loop_check.ROW.rules[0].apply(None, units)
    (c,) = loop_check.ROW.controls[0].apply(None, units)
    loops = len(loop_check.configs())  # 6: GD auto/structured/projected/Gaussian, 2 SGD
    assert loops == 6
    assert t.failures == 0 and t.n_units == loop_check.SEEDS * loops
    assert c.failures == c.n_units == loops
