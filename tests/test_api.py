"""The public API: doctests, the one loop's Record spec, the seed engine on the generic path, and
the rule that experiments and benchmarks import only the public API."""

from __future__ import annotations

import ast
import doctest
import importlib
import re
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simdyn
from simdyn import ConfigError, Record, run_loop

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "name",
    [
        "simdyn",
        "simdyn.loop",
        "simdyn.seeds",
        "simdyn.objectives",
        "simdyn.engine",
        "simdyn.verify.ledger",
        "simdyn.verify.compare",
        "simdyn.papers.projection_head.closed_forms",
    ],
)
@pytest.mark.slow
def test_doctests_pass(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_the_core_imports_no_paper():
    """simdyn/papers/ plugs into the core; nothing outside it imports a paper package."""
    offenders = []
    for path in sorted((ROOT / "simdyn").rglob("*.py")):
        if "papers" in path.relative_to(ROOT / "simdyn").parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and "simdyn.papers" in stripped:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {stripped}")
    assert not offenders, offenders


# What a paper's claims are written against: the verifier framework (declarations, the
# statistics, the scales and claim info, the broken-simulator declaration of --self-test), public
# to paper packages though not to users' scripts.
VERIFIER_FRAMEWORK = (
    "simdyn.verify.claim",
    "simdyn.verify.stats",
    "simdyn.verify.common",
    "simdyn.verify.broken",
)


# The first paper's private reach, module by module. Its training path (trainer, in-batch SGD
# objective, representations) is still the core's own private code, which its verifier must run
# because it is what `simdyn simulate` runs; and its catch-matrix runner (faults) drives the
# verifier itself. This list may only shrink: anything not on it fails the test below.
FIRST_PAPER_PRIVATE = {
    "fig6.py": {"simdyn._src.train"},
    "loop_check.py": {"simdyn.objectives.sample"},
    "runs.py": {"simdyn._src.progress", "simdyn._src.train"},
    "sgd_min.py": {"simdyn._src.minibatch_objective"},
    "sgd_objective.py": {"simdyn._src.minibatch_objective"},
    "simulators.py": {"simdyn._src.train"},
    "faults.py": {"simdyn.verify", "simdyn.verify.registry", "simdyn.__file__"},
}


def test_paper_packages_use_only_the_public_core():
    """A paper plugs into the core through its public API and the verifier framework, never
    the core's private modules (the first paper: only its listed exceptions)."""
    allowed = ("simdyn.papers", *VERIFIER_FRAMEWORK)
    offenders = []
    for path in sorted((ROOT / "simdyn" / "papers").rglob("*.py")):
        excused = FIRST_PAPER_PRIVATE.get(path.name, set()) if path.parent.name == (
            "which_features") else set()  # fmt: skip
        offenders += [f"{path.name}: {v}" for v in public_api_violations(path.read_text())
                      if not v.startswith(allowed) and v not in excused]  # fmt: skip
    assert not offenders, offenders
    # And the check bites: a paper reaching into the verifier's internals is flagged.
    assert public_api_violations("from simdyn.verify.registry import run_claim\n")


def test_internal_modules_are_private_by_name():
    # The internal modules live in simdyn._src: `from simdyn import simulation` is an error, and
    # the public function keeps its name.
    for internal in ("simulation", "train", "cli", "sweep_module_that_never_existed"):
        with pytest.raises(ImportError):
            exec(f"from simdyn import {internal}", {})
    assert callable(simdyn.simulate) and callable(simdyn.sweep)
    assert not isinstance(simdyn.sweep, types.ModuleType)


PUBLIC_NAMES = set(simdyn.__all__) | {"__version__", "PUBLIC_MODULES"}
PUBLIC_NAMES |= {m.split(".")[1] for m in simdyn.PUBLIC_MODULES}


def _module_public(module: str) -> set[str]:
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    return set(names) if names is not None else {n for n in vars(mod) if not n.startswith("_")}


def _paper_public(module: str) -> bool:
    """A module of a paper package (simdyn.papers.<paper>[.<module>]) that is not private."""
    parts = module.split(".")
    return parts[:2] == ["simdyn", "papers"] and not any(p.startswith("_") for p in parts)


def public_api_violations(source: str) -> list[str]:
    """What ``source`` (Python) uses of simdyn beyond its public API: a module outside
    simdyn / PUBLIC_MODULES, a name that module does not export, or simdyn.<attr> not public."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "simdyn"
        ):
            if node.module == "simdyn":
                found += [f"simdyn.{a.name}" for a in node.names if a.name not in PUBLIC_NAMES]
            elif node.module in simdyn.PUBLIC_MODULES:
                public = _module_public(node.module)
                found += [f"{node.module}.{a.name}" for a in node.names if a.name not in public]
            elif _paper_public(node.module):
                # A paper package's modules are its public surface (docs/papers.md): scripts
                # may use them, but not its private (underscore) modules or names.
                found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            else:
                found.append(node.module)
        if isinstance(node, ast.Import):
            found += [
                a.name
                for a in node.names
                if a.name.split(".")[0] == "simdyn"
                and a.name != "simdyn"
                and a.name not in simdyn.PUBLIC_MODULES
            ]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "simdyn" and node.attr not in PUBLIC_NAMES:
                found.append(f"simdyn.{node.attr}")
    return found


def test_the_public_api_checker_catches_internal_uses():
    assert public_api_violations("from simdyn import simulation") == ["simdyn.simulation"]
    assert public_api_violations("from simdyn._src.train import make_train") == [
        "simdyn._src.train"
    ]
    assert public_api_violations("from simdyn.seeds import _fold") == ["simdyn.seeds._fold"]
    assert public_api_violations("import simdyn\nsimdyn._src") == ["simdyn._src"]
    assert public_api_violations("from simdyn import simulate, theory\nimport simdyn.loop") == []
    # A paper's modules are public to scripts; its private modules and names are not.
    assert public_api_violations("from simdyn.papers.projection_head import linear") == []
    assert public_api_violations("from simdyn.papers.projection_head._claims_common import x") == [
        "simdyn.papers.projection_head._claims_common"
    ]
    assert public_api_violations("from simdyn.papers.projection_head.linear import _f") == [
        "simdyn.papers.projection_head.linear._f"
    ]


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "experiments").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py")),
    ids=lambda p: p.name,
)
def test_scripts_use_only_the_public_api(path):
    assert public_api_violations(path.read_text()) == []


@pytest.mark.parametrize(
    "path", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name
)
def test_docs_code_uses_only_the_public_api(path):
    for block in _python_blocks(path.read_text()):
        code = "\n".join(
            line.removeprefix(">>> ").removeprefix("... ") for line in block.splitlines()
        )
        try:
            ast.parse(code)
        except SyntaxError:
            continue  # a fragment or output, not a program
        assert public_api_violations(code) == [], block


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "records nothing"),
        ({"every": 2, "at": (0, 2)}, "not both"),
        ({"every": 0}, "Record.every"),
        ({"at": (3, 1)}, "Record.at"),
        ({"probes": {"x": lambda p, c: p}}, "go together"),
        ({"every": 2, "probe_every": 3, "probes": {"x": lambda p, c: p}}, "multiple of every"),
        ({"every": 2, "observables": {"x": 1}}, "observables"),
        ({"loss": True, "final": True}, "need log steps"),
    ],
)
def test_record_rejects_empty_or_inconsistent_specs(kwargs, message):
    kwargs = {"loss": False} | kwargs
    with pytest.raises(ConfigError, match=message):
        Record(**kwargs)


def _quadratic_run(record: Record, steps: int = 6, lr: float = 0.25, x0=(1.0, -2.0)):
    return run_loop(
        jnp.asarray(x0),
        lambda x, t: 2 * x,
        optax.sgd(lr),
        steps=steps,
        record=record,
        loss=lambda x: jnp.sum(x**2),
        divergence_threshold=1e3,
    )


def test_loop_every_and_at_schedules_agree_with_the_closed_form():
    # GD on |x|^2 with lr 0.25: x_t = x_0 / 2^t exactly in binary floating point.
    obs = {"x": lambda x, ctx: x}
    a = _quadratic_run(Record(every=2, observables=obs, final=True))
    b = _quadratic_run(Record(at=(0, 2, 4, 6), observables=obs, final=True))
    expect = np.asarray([1.0, -2.0])[None] / 2.0 ** np.asarray([0, 2, 4, 6])[:, None]
    np.testing.assert_array_equal(np.asarray(a.observed["x"]), expect)
    np.testing.assert_array_equal(np.asarray(b.observed["x"]), expect)
    np.testing.assert_array_equal(np.asarray(a.loss), (expect**2).sum(1))
    np.testing.assert_array_equal(np.asarray(a.final), expect[-1])
    assert not bool(a.diverged) and int(a.diverged_step) == -1


def test_loop_probes_run_on_their_own_schedule_with_the_context():
    out = run_loop(
        jnp.ones(2),
        lambda x, t: jnp.zeros(2),
        optax.sgd(0.1),
        steps=8,
        record=Record(every=2, probe_every=4, probes={"c": lambda x, ctx: ctx * jnp.sum(x)}),
        loss=lambda x: jnp.sum(x),
        context=jnp.asarray(3.0),
    )
    assert out.loss.shape == (5,)
    np.testing.assert_array_equal(np.asarray(out.probed["c"]), [6.0, 6.0, 6.0])


def test_loop_flags_divergence_at_the_first_log_step_past_the_threshold():
    # lr 1.5 on |x|^2: x_t = (-2)^t x_0, so |x| first exceeds 1e3 at t = 10 (1024).
    out = _quadratic_run(Record(every=2), steps=14, lr=1.5, x0=(1.0, 0.0))
    assert bool(out.diverged) and int(out.diverged_step) == 10


def test_loop_final_only_checks_divergence_at_the_end():
    out = _quadratic_run(Record(loss=False, final=True), steps=14, lr=1.5, x0=(1.0, 0.0))
    assert out.loss.shape == (0,) and out.observed == {}
    assert bool(out.diverged) and int(out.diverged_step) == 14
    np.testing.assert_array_equal(np.asarray(out.final), [(-2.0) ** 14, 0.0])


def test_loop_is_vmappable_over_seeds():
    run = jax.jit(jax.vmap(lambda x0: _quadratic_run(Record(every=3), x0=x0).loss))
    losses = run(jnp.asarray([[1.0, 0.0], [0.0, 2.0]]))
    np.testing.assert_array_equal(
        np.asarray(losses), [[1.0, 1 / 64, 1 / 4096], [4.0, 4 / 64, 4 / 4096]]
    )


@pytest.mark.slow
def test_generic_path_resumes_from_checkpoints_with_identical_results(tmp_path):
    cfg = simdyn.preset("fig2a").replace(
        n=16, d=32, steps=4, log_every=2, probe_every=-1, batch_size=8
    )
    enc, loss = simdyn.make_encoder(cfg), simdyn.ContrastiveLoss("spectral", 1.0)
    plain = simdyn.run_generic(cfg, enc, loss, [0, 1, 2], key=2)
    first = simdyn.run_generic(
        cfg, enc, loss, [0, 1, 2], key=2, chunk_size=2, checkpoint_dir=tmp_path
    )
    assert len(list(tmp_path.glob("chunk_*.nc"))) == 2
    seen = []
    again = simdyn.run_generic(
        cfg,
        enc,
        loss,
        [0, 1, 2],
        key=2,
        chunk_size=2,
        checkpoint_dir=tmp_path,
        progress=lambda done, total, s: seen.append(done),
    )
    assert seen == [2, 3]
    for a, b, c in zip(plain, first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, c)
    with pytest.raises(ConfigError, match="different run"):
        simdyn.run_generic(cfg, enc, loss, [0, 1, 2], key=3, chunk_size=2, checkpoint_dir=tmp_path)
