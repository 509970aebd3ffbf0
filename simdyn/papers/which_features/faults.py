"""The catch matrix: faults planted in a COPY of simdyn's source, and the verifier run on each.

``simdyn verify --self-test`` injects broken simulators from outside the shared code (a step
factor, a hidden objective). This module plants faults INSIDE it: each :class:`Fault` is a named,
documented source mutation (a file of the package and exact ``old -> new`` text edits, kept in
the one declarative list :data:`FAULTS`), applied to a copy of the package in a temporary folder,
never to the working tree. The verifier then runs in a subprocess whose ``PYTHONPATH`` starts
with that copy (:func:`run_fault`), at a size given by the caller, and the rows' verdicts are
read back from its report.json. The broken simulators of
:mod:`simdyn.papers.which_features.simulators` are
faults too (kind ``simulator``): the same child runs them under ``simulators.use``.

A fault is CAUGHT by a row when the row holds on the unmutated copy (same claims, scale, seeds,
key) and fails under the fault, the self-test's rule (:func:`simdyn.verify.selftest.compare`).
A fault caught by no row is a defect of the verifier.

Why the list lives in the package (and not under experiments/): the faults name the package's
own lines, so a refactor that moves a mutated line must fail a test here (:func:`check_fault`,
tests/test_verify_faults.py), the child entry point must import the verifier's internals (small
scale, simulators), which the public-API rule forbids to experiment scripts, and the
architecture puts the self-test, which this extends, in the verifier framework.

Run it (the matrix committed under experiments/verify-catch/ came from this command)::

    python -m simdyn.papers.which_features.faults --out /tmp/catch --scale small \
        [--claims ...] [--faults ...]

Every function here is pure or writes only under the folder it is given; progress goes to the
``progress`` callback (the command line prints it to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2]  # the simdyn package folder being mutated


@dataclass(frozen=True)
class Fault:
    """One planted fault.

    name: short id. area: what it breaks (data, augmentation, SGD batching, ...). doc: the bug
    in words and why it is a realistic slip. file: path inside the package (``data.py``,
    ``objectives/sample.py``); edits: ``(old, new)`` exact texts, each ``old`` occurring exactly
    once in the file, ``{x}`` in ``new`` replaced by the fault's size (parametric faults).
    simulator: instead of edits, the name of a broken simulator of
    :mod:`simdyn.papers.which_features.simulators` (kind ``simulator``). size: the default size for
    ``{x}``.
    claims: the claims the matrix runs for this fault (every row its code path reaches; see
    :data:`TARGETS`); empty: the matrix's whole claim list.
    """

    name: str
    area: str
    doc: str
    file: str = ""
    edits: tuple[tuple[str, str], ...] = ()
    simulator: str = ""
    size: float | None = None
    claims: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "simulator" if self.simulator else "source"


def _src(name, area, doc, file, *edits, size=None, claims=()) -> Fault:
    return Fault(name, area, doc, file, tuple(edits), size=size, claims=tuple(claims))


# The parametric fault used for each row's smallest detected size: the optimiser's step size
# times x = 1 + delta, planted where the one training loop builds its optimiser.
STEP_FACTOR = _src(
    "step-factor",
    "optimiser",
    "the optimiser steps with x eta instead of eta (a learning-rate or loss-scale slip)",
    "_src/train.py",
    (
        "make_optimizer(t.optimizer, hp.lr, t.momentum)",
        "make_optimizer(t.optimizer, hp.lr * {x}, t.momentum)",
    ),
    size=1.1,
)

FAULTS: tuple[Fault, ...] = (
    STEP_FACTOR,
    _src(
        "data-phi1-x1.1",
        "data generation",
        "the class feature is drawn at 1.1 phi_1 (a feature-scale slip in u~)",
        "data.py",
        ("base.at[..., 1].set(labels.y * phi[0])", "base.at[..., 1].set(labels.y * phi[0] * 1.1)"),
    ),
    _src(
        "data-mu-x1.1",
        "data generation",
        "the subclass feature's mean shift is 1.1 mu",
        "data.py",
        ("labels.y_sub * phi[1] + cfg.mu)", "labels.y_sub * phi[1] + 1.1 * cfg.mu)"),
    ),
    _src(
        "noise-basis-x1.1",
        "basis noise",
        "basis noise entries have value 1.1 sigma_xi",
        "data.py",
        (
            "val = jnp.full(shape + (1,), cfg.sigma_xi, dtype)",
            "val = jnp.full(shape + (1,), 1.1 * cfg.sigma_xi, dtype)",
        ),
    ),
    _src(
        "noise-gaussian-x1.1",
        "Gaussian noise",
        "Gaussian noise has standard deviation 1.1 sigma_xi / sqrt(d)",
        "data.py",
        ("* (cfg.sigma_xi / cfg.d**0.5)", "* (1.1 * cfg.sigma_xi / cfg.d**0.5)"),
    ),
    _src(
        "noise-distinct-off-by-one",
        "basis noise (good event)",
        "good-event noise coordinates drawn from [K, d] instead of [K+1, d]: can hit feature v_K",
        "data.py",
        (
            "j = without_replacement(key, cfg.d - cfg.K, count) + cfg.K + 1",
            "j = without_replacement(key, cfg.d - cfg.K + 1, count) + cfg.K",
        ),
    ),
    _src(
        "noise-iid-off-by-one",
        "basis noise (i.i.d.)",
        "i.i.d. noise coordinates drawn from [2, d] instead of [1, d]: coordinate 1 (v_1) is "
        "never hit (an off-by-one lower bound)",
        "data.py",
        (
            "j = randint32(key, (count,), 1, cfg.d + 1)",
            "j = randint32(key, (count,), 2, cfg.d + 1)",
        ),
    ),
    _src(
        "aug-jitter-x1.1",
        "imperfect augmentation",
        "the imperfect augmentation's class jitter zeta' has std 1.1 aug_sigma_class",
        "data.py",
        (
            "jnp.asarray([cfg.aug_sigma_class, cfg.aug_sigma_sub], dtype)",
            "jnp.asarray([1.1 * cfg.aug_sigma_class, cfg.aug_sigma_sub], dtype)",
        ),
    ),
    _src(
        "aug-subspace-x1.1",
        "imperfect augmentation",
        "the imperfect augmentation's noise-subspace jitter has scale 1.1 aug_noise_scale",
        "data.py",
        ("cfg.aug_noise_scale * z", "1.1 * cfg.aug_noise_scale * z"),
    ),
    _src(
        "labels-balance-off-by-one",
        "label balancing",
        "balanced labels cycle over K - 3 irrelevant features instead of K - 2 (v_K never used)",
        "data.py",
        ("k = 3 + (combos // 8) % num_irr", "k = 3 + (combos // 8) % max(num_irr - 1, 1)"),
    ),
    _src(
        "labels-iid-off-by-one",
        "labels (i.i.d.)",
        "i.i.d. irrelevant-feature index drawn from [3, K - 1]: v_K never irrelevant",
        "data.py",
        (
            "k = randint32(jax.random.fold_in(kk, 3), (n,), 3, cfg.K + 1)",
            "k = randint32(jax.random.fold_in(kk, 3), (n,), 3, cfg.K)",
        ),
    ),
    _src(
        "sgd-never-reshuffled",
        "SGD batching",
        "every SGD step uses step 0's minibatch (the batch key never advances)",
        "_src/train.py",
        (
            "g = batch_grad(theta, step_key(keys.batch, step))",
            "g = batch_grad(theta, step_key(keys.batch, 0))",
        ),
    ),
    _src(
        "sgd-with-replacement",
        "SGD batching",
        "minibatch originals drawn with replacement (duplicates inside a batch)",
        "data.py",
        (
            "idx = without_replacement(jax.random.fold_in(key, 0), cfg.n, batch_size)",
            "idx = randint32(jax.random.fold_in(key, 0), (batch_size,), 0, cfg.n)",
        ),
    ),
    _src(
        "sgd-over-views",
        "SGD batching",
        "minibatches drawn over the m n views and mapped to their originals (two views of one "
        "original can both be drawn: batching over views instead of originals)",
        "data.py",
        (
            "idx = without_replacement(jax.random.fold_in(key, 0), cfg.n, batch_size)",
            "idx = without_replacement(jax.random.fold_in(key, 0), cfg.n * cfg.m, batch_size)"
            " // cfg.m",
        ),
    ),
    _src(
        "fresh-aug-frozen",
        "fresh augmentation",
        "the fresh-augmentation path draws its views from a fixed key (the same 'fresh' views "
        "at every step and for every seed)",
        "data.py",
        (
            "pts = augment(jax.random.fold_in(key, 1), originals,",
            "pts = augment(jax.random.fold_in(jax.random.key(1), 1), originals,",
        ),
    ),
    _src(
        "probe-same-points",
        "metrics and probes",
        "the linear probes are fit and scored on the same (first) half of the test points",
        "metrics.py",
        ("zf, ze = z[:half], z[half:]", "zf, ze = z[:half], z[:half]"),
        ("(jnp.sign(score) == y[half:])", "(jnp.sign(score) == y[:half])"),
        ("we = (y[half:] == c).astype(dtype)", "we = (y[:half] == c).astype(dtype)"),
        ("(jnp.sign(s) == ys[half:])", "(jnp.sign(s) == ys[:half])"),
    ),
    _src(
        "alignment-off-by-one",
        "metrics and probes",
        "feature alignment reads column j + 1 for feature j (an off-by-one feature index)",
        "metrics.py",
        (
            "jnp.linalg.norm(theta[:, : num_features + 1], axis=0)",
            "jnp.linalg.norm(theta[:, 1 : num_features + 2], axis=0)",
        ),
    ),
    _src(
        "grad-float32",
        "dtype",
        "the moment representations' gradient is rounded through float32 in a float64 run",
        "losses.py",
        (
            "return -4 * theta_p + 4 * tmt @ prods.theta_m",
            "return (-4 * theta_p + 4 * tmt @ prods.theta_m)"
            ".astype(jnp.float32).astype(theta.dtype)",
        ),
    ),
    _src(
        "seeds-collide",
        "seed streams",
        "seed i's key is fold_in(key, i // 2): consecutive seeds share every stream",
        "seeds.py",
        ("lambda i: jax.random.fold_in(key, i))", "lambda i: jax.random.fold_in(key, i // 2))"),
    ),
    _src(
        "beta-swapped",
        "beta wiring",
        "the joint loss's weight beta is applied to the UCL term (1 - beta to SCL)",
        "losses.py",
        (
            'if loss == "joint":\n        return beta',
            'if loss == "joint":\n        return 1 - beta',
        ),
    ),
    _src(
        "init-x1.1",
        "initialisation",
        "Theta_0 entries have std 1.1 sigma_0 / sqrt(d)",
        "initialization.py",
        (
            "* (sigma_0 / jnp.sqrt(jnp.asarray(d, dtype)))",
            "* (1.1 * sigma_0 / jnp.sqrt(jnp.asarray(d, dtype)))",
        ),
    ),
    _src(
        "structured-mplus-x1.1",
        "representation: structured",
        "the structured form's class means are scaled by sqrt(1.1 w_c): its M+ (the SCL "
        "product fig2a's default path uses) is 1.1x",
        "moments.py",
        (
            "class_means = means * jnp.sqrt(w)[:, None]",
            "class_means = means * jnp.sqrt(1.1 * w)[:, None]",
        ),
    ),
    _src(
        "structured-mtilde-x1.1",
        "representation: structured",
        "the structured form's M~ noise factors are 1.1 times too large (its M~ product)",
        "moments.py",
        (
            "orig_val = points.noise_val.reshape((n, m * s)) / m * scale_n",
            "orig_val = points.noise_val.reshape((n, m * s)) / m * scale_n * 1.1",
        ),
    ),
    _src(
        "structured-diag-x1.1",
        "representation: structured",
        "the structured form's arrow diagonal (the noise second moment in Theta M) is 1.1x",
        "moments.py",
        (
            "tm = theta * mom.diag[None, :] + theta_f @ mom.c",
            "tm = 1.1 * theta * mom.diag[None, :] + theta_f @ mom.c",
        ),
    ),
    _src(
        "dense-mtilde-n-minus-1",
        "representation: dense",
        "the dense M~ is normalised by n - 1 instead of n (an 'unbiased' slip)",
        "moments.py",
        ("m_tilde = xbar_i.T @ xbar_i / n\n", "m_tilde = xbar_i.T @ xbar_i / (n - 1)\n"),
    ),
    _src(
        "projected-rank-off-by-one",
        "representation: projected",
        "the projected basis keeps one coordinate fewer than the data span (r off by one)",
        "projected.py",
        ("r = min(dim, k1 + hit.shape[0])", "r = min(dim, k1 + hit.shape[0] - 1)"),
    ),
    _src(
        "projected-quartic-x1.1",
        "representation: projected",
        "the projected gradient's quartic term is 1.1x (gradient inconsistent with its loss)",
        "projected.py",
        ("grad = -4 * theta_p + 4 * tmt @ theta_m", "grad = -4 * theta_p + 4.4 * tmt @ theta_m"),
    ),
    _src(
        "sample-loss-x1.1",
        "representation: sample",
        "the sample form's loss (hence its autodiff gradient) is 1.1x",
        "objectives/sample.py",
        (
            "return sample_loss(embed(theta, self.points), self.y, self.beta)",
            "return 1.1 * sample_loss(embed(theta, self.points), self.y, self.beta)",
        ),
    ),
    *(
        Fault(f"sim:{name}", "broken simulator", doc, simulator=name)
        for name, doc in (
            ("step-x1.5", "GD/SGD step size 1.5 eta"),
            ("init-x-sqrt-d", "Theta_0 ~ N(0, sigma_0^2) instead of N(0, sigma_0^2 / d)"),
            ("grad-term-x1.1", "gradient's quartic term 10% too large, loss exact"),
            ("data-shared-noise", "augmentations reuse one noise draw per original"),
            ("fast-path-no-noise-P", "structured path drops the noise part of M+ and M~"),
            ("oracle-minimizer", "jumps to the closed-form min-norm minimizer"),
            ("corrupt-2%", "2% of seeds: instance noise x1/3, endpoint 1.1 Theta_T"),
        )
    ),
)


# The claims run for each fault: those whose designs reach the mutated code (a data fault: the
# rows that sample that setting; a representation fault: REPR and the rows resolving to it; an
# SGD fault: the rows with SGD). Running every claim for every fault costs ~6 min a fault on the
# shared 2-core machine; these subsets keep the 35 faults within ~40 min (README there).
TARGETS: dict[str, tuple[str, ...]] = {
    "step-factor": ("CC-train", "MINLOSS", "JOINT", "CC-early", "CC-unlearn", "GOOD-EVENT"),
    "data-phi1-x1.1": ("CC-minnorm", "FS-dim", "FS-aug", "JOINT", "GOOD-EVENT", "FS-tie"),
    "data-mu-x1.1": ("CC-exists", "CC-minnorm", "CC-early", "GOOD-EVENT"),
    "noise-basis-x1.1": ("CC-exists", "CC-minnorm", "FS-aug", "GOOD-EVENT"),
    "noise-gaussian-x1.1": ("REPR", "GOOD-EVENT"),
    "noise-distinct-off-by-one": ("CC-train", "CC-minnorm", "GOOD-EVENT"),
    "noise-iid-off-by-one": ("CC-train", "GOOD-EVENT", "REPR"),
    "aug-jitter-x1.1": ("FS-aug", "CC-minnorm", "GOOD-EVENT"),
    "aug-subspace-x1.1": ("FS-aug", "CC-minnorm", "GOOD-EVENT"),
    "labels-balance-off-by-one": ("CC-train", "CC-minnorm", "GOOD-EVENT"),
    "labels-iid-off-by-one": ("CC-train", "FS-aug", "GOOD-EVENT"),
    "sgd-never-reshuffled": ("JOINT", "SGD-OBJ", "CC-early", "GOOD-EVENT"),
    "sgd-with-replacement": ("JOINT", "SGD-OBJ", "CC-early", "GOOD-EVENT", "SGD-MIN"),
    "sgd-over-views": ("JOINT", "SGD-OBJ", "CC-early", "GOOD-EVENT"),
    "fresh-aug-frozen": ("FS-dim", "SGD-OBJ", "GOOD-EVENT"),
    "probe-same-points": ("CC-exists", "CC-early", "CC-probe-GD"),
    "alignment-off-by-one": ("MINLOSS", "JOINT", "REPR", "CC-early", "GOOD-EVENT"),
    "grad-float32": ("CC-train", "REPR", "GOOD-EVENT"),
    "seeds-collide": ("CC-train", "CC-minnorm", "GOOD-EVENT"),
    "beta-swapped": ("JOINT", "SGD-OBJ", "GOOD-EVENT", "SGD-MIN"),
    "init-x1.1": ("CC-train", "MINLOSS", "CC-early", "CC-unlearn", "GOOD-EVENT"),
    "structured-mplus-x1.1": ("CC-train", "REPR", "GOOD-EVENT"),
    "structured-mtilde-x1.1": ("CC-train", "REPR", "GOOD-EVENT"),
    "structured-diag-x1.1": ("CC-train", "REPR", "GOOD-EVENT"),
    "dense-mtilde-n-minus-1": ("REPR", "GOOD-EVENT"),
    "projected-rank-off-by-one": ("MINLOSS", "JOINT", "REPR", "GOOD-EVENT"),
    "projected-quartic-x1.1": ("MINLOSS", "JOINT", "REPR", "GOOD-EVENT"),
    "sample-loss-x1.1": ("REPR", "CC-early", "GOOD-EVENT"),
    "sim:step-x1.5": ("MINLOSS", "CC-train", "CC-early", "CC-unlearn", "GOOD-EVENT", "FIG6"),
    "sim:init-x-sqrt-d": ("MINLOSS", "CC-train", "CC-early", "CC-unlearn", "GOOD-EVENT"),
    "sim:grad-term-x1.1": ("CC-train", "MINLOSS", "GOOD-EVENT", "FIG6", "SGD-MIN"),
    "sim:data-shared-noise": ("CC-exists", "CC-minnorm", "GOOD-EVENT"),
    "sim:fast-path-no-noise-P": ("CC-train", "MINLOSS", "GOOD-EVENT"),
    "sim:oracle-minimizer": ("MINLOSS", "CC-early", "CC-unlearn", "GOOD-EVENT"),
    "sim:corrupt-2%": ("CC-train", "MINLOSS", "GOOD-EVENT"),
}


def targets(fault: Fault, claims: Sequence[str]) -> list[str]:
    """The claims of ``claims`` to run for ``fault``: those of its own list, else of
    :data:`TARGETS`; all of ``claims`` when none of them is a target."""
    own = fault.claims or TARGETS.get(fault.name, ())
    return [c for c in claims if c in own] or list(claims)


def by_name(name: str) -> Fault:
    """The fault called ``name`` (KeyError naming the known ones otherwise)."""
    for f in FAULTS:
        if f.name == name:
            return f
    raise KeyError(f"unknown fault {name!r}: one of {[f.name for f in FAULTS]}")


def mutated_text(text: str, fault: Fault, size: float | None = None) -> str:
    """``text`` with every edit of ``fault`` applied (``{x}`` -> the size).

    Raises ValueError when an edit's old text does not occur exactly once: a stale fault must
    not silently plant nothing.
    """
    x = fault.size if size is None else size
    for old, new in fault.edits:
        count = text.count(old)
        if count != 1:
            raise ValueError(f"fault {fault.name}: {old!r} occurs {count} times in {fault.file}")
        text = text.replace(old, new.replace("{x}", repr(x)) if x is not None else new)
    return text


def check_fault(fault: Fault, package: Path = PACKAGE) -> None:
    """Raise ValueError if ``fault`` no longer applies to ``package`` (source faults only)."""
    if fault.kind == "source":
        mutated_text((package / fault.file).read_text(), fault)


def planted_copy(
    fault: Fault | None, dest: Path, size: float | None = None, package: Path = PACKAGE
) -> Path:
    """Copy ``package`` (default: the working tree's simdyn) to ``dest/simdyn`` and plant
    ``fault`` there (None or a simulator fault: an unmutated copy). Returns the folder to put
    first on PYTHONPATH (``dest``). ``package`` is only read."""
    target = dest / "simdyn"
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if fault is not None and fault.kind == "source":
        path = target / fault.file
        path.write_text(mutated_text(path.read_text(), fault, size))
    return dest


@dataclass(frozen=True)
class RunResult:
    """One verify run of the child: each claim's outcomes (claim id -> its ClaimOutcome rows,
    unpickled from the child's outcomes.pkl), wall seconds, the child's exit code and output
    tail. Verdicts come from :func:`verdicts`, over a chosen set of claims."""

    outcomes: dict[str, list]
    seconds: float
    returncode: int
    tail: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.outcomes)


def run_fault(
    fault: Fault | None,
    claims: Sequence[str],
    scale: str,
    seeds: int | None,
    key: int,
    size: float | None = None,
    timeout: float = 3600.0,
    cache: Path | None = None,
    package: Path = PACKAGE,
) -> RunResult:
    """Plant ``fault`` in a temporary copy and run the verifier there in a subprocess.

    The child is ``python -m simdyn.papers.which_features.faults --child`` with the copy first on
    PYTHONPATH
    and the temporary folder as its working directory, so it imports the mutated package; it
    checks that it did (simdyn.__file__ inside the copy), writes report.json and pickles each
    claim's outcomes. ``cache``: a JAX persistent compilation cache shared by the children
    (programs the fault does not change compile once; a changed program has another key).
    ``package``: the source copied (the matrix passes one snapshot taken at its start, so edits
    to the working tree during a run do not leak into later faults).
    """
    with tempfile.TemporaryDirectory(prefix="simdyn-fault-") as tmp:
        root = planted_copy(fault, Path(tmp) / "src", size, package)
        out = Path(tmp) / "report"
        cmd = [
            sys.executable,
            "-m",
            "simdyn.papers.which_features.faults",
            "--child",
            "--out",
            str(out),
        ]
        cmd += ["--scale", scale, "--key", str(key), "--claims", ",".join(claims)]
        if seeds is not None:
            cmd += ["--seeds", str(seeds)]
        if fault is not None and fault.kind == "simulator":
            cmd += ["--simulator", fault.simulator]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        if cache is not None:
            env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
            env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
            env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
        start = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        seconds = time.perf_counter() - start
        saved = out / "outcomes.pkl"
        tail = (proc.stdout + proc.stderr)[-2000:]
        outcomes = pickle.loads(saved.read_bytes()) if saved.exists() else {}
    return RunResult(outcomes, seconds, proc.returncode, tail)


def verdicts(outcomes: dict[str, list], claims: Sequence[str]) -> dict[str, str]:
    """Row id -> verdict, Holm over the rows of ``claims`` (in that order)."""
    from simdyn.verify import report

    rows = report.evaluate([o for c in claims for o in outcomes[c]])
    return {r.outcome.claim: r.verdict for r in rows}


def merged(reference: RunResult, faulty: RunResult) -> dict[str, list]:
    """The fault's outcomes for the claims it ran, the reference's for the others.

    Why: the verdicts of a run are Holm-adjusted over all its rows, so a fault run on a subset
    of claims must be judged in the same family as the reference; claims the fault's code path
    does not reach (not run) keep the reference's outcomes. This can only under-count catches.
    """
    return {**reference.outcomes, **faulty.outcomes}


def caught_by(reference: dict[str, str], faulty: dict[str, str]) -> tuple[list[str], list[str]]:
    """(rows that hold on the reference and fail under the fault, rows that only became
    inconclusive), from row -> verdict maps: the self-test's rule."""
    held = [r for r, v in reference.items() if v == "holds"]
    fails = [r for r in held if faulty.get(r) == "fails"]
    weak = [r for r in held if faulty.get(r) == "inconclusive"]
    return fails, weak


@dataclass
class Matrix:
    """The catch matrix: the reference run (every claim), each fault's run (its claims), the
    verdicts in one Holm family (:func:`merged`), and the step-factor thresholds."""

    meta: dict
    claims: list[str]
    reference: RunResult
    results: dict[str, RunResult] = field(default_factory=dict)
    thresholds: dict[str, dict] = field(default_factory=dict)

    def reference_verdicts(self) -> dict[str, str]:
        return verdicts(self.reference.outcomes, self.claims)

    def fault_verdicts(self, name: str) -> dict[str, str]:
        result = self.results[name]
        if not result.ok:
            return {}
        return verdicts(merged(self.reference, result), self.claims)

    def caught(self, name: str) -> tuple[list[str], list[str]]:
        return caught_by(self.reference_verdicts(), self.fault_verdicts(name))

    def to_json(self) -> dict:
        ref = self.reference_verdicts()
        faults = []
        for f in FAULTS:
            if f.name not in self.results:
                continue
            r = self.results[f.name]
            fails, weak = self.caught(f.name)
            faults.append(
                {
                    "name": f.name,
                    "kind": f.kind,
                    "area": f.area,
                    "doc": f.doc,
                    "file": f.file,
                    "edits": [list(e) for e in f.edits],
                    "simulator": f.simulator,
                    "claims_run": list(r.outcomes),
                    "rows_run": [o.claim for c in r.outcomes for o in r.outcomes[c]],
                    "caught_by": fails,
                    "inconclusive": weak,
                    "verdicts": self.fault_verdicts(f.name),
                    "seconds": round(r.seconds, 1),
                    "returncode": r.returncode,
                    "error": "" if r.ok else r.tail,
                }
            )
        return {
            "meta": self.meta,
            "reference": {"verdicts": ref, "seconds": round(self.reference.seconds, 1)},
            "faults": faults,
            "smallest_detected_step_factor": self.thresholds,
        }


def to_markdown(data: dict) -> str:
    """The matrix as markdown: a rows x faults table (X caught, i inconclusive), then per fault
    the catching rows, then per row the smallest detected step-factor delta."""
    rows = list(data["reference"]["verdicts"])
    faults = data["faults"]
    meta = data["meta"]
    lines = [
        "# Catch matrix of planted faults",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date {meta['date']}, machine {meta['machine']}, wall {meta['wall_seconds']:.0f} s; "
        f"scale `{meta['scale']}`, seeds {meta['seeds']}, key {meta['key']}, claims "
        f"{', '.join(meta['claims'])}; code {meta['commit']}.",
        "",
        "A fault is caught by a row (X) when the row holds on the unmutated copy and fails "
        "under the fault; `i`: the row only became inconclusive; `.`: run, not caught (unchanged "
        "or not holding on the reference); blank: not run for this fault (its code path does "
        "not reach that claim; the reference's outcome stands in, in the same Holm family).",
        "",
        "Reference verdicts: "
        + ", ".join(f"{r} {v}" for r, v in data["reference"]["verdicts"].items()),
        "",
    ]
    head = "| fault | " + " | ".join(rows) + " | caught |"
    lines += [head, "|" + "---|" * (len(rows) + 2)]
    for f in faults:
        cells = [
            "X"
            if r in f["caught_by"]
            else "i"
            if r in f["inconclusive"]
            else "."
            if r in f["rows_run"]
            else " "
            for r in rows
        ]
        status = "yes" if f["caught_by"] else ("ERROR" if f["error"] else "**NO**")
        lines.append(f"| {f['name']} | " + " | ".join(cells) + f" | {status} |")
    lines += ["", "## Faults", ""]
    for f in faults:
        where = f"`{f['file']}`" if f["kind"] == "source" else f"simulator `{f['simulator']}`"
        lines.append(
            f"* **{f['name']}** ({f['area']}; {where}; {f['seconds']:.0f} s): {f['doc']}. "
            f"Caught by: {', '.join(f['caught_by']) or 'none'}."
        )
    per_row = {r: [f["name"] for f in faults if r in f["caught_by"]] for r in rows}
    lines += ["", "## Rows", "", "| row | reference | faults caught | smallest step delta |"]
    lines.append("|---|---|---|---|")
    for r in rows:
        th = data["smallest_detected_step_factor"].get(r, {})
        lines.append(
            f"| {r} | {data['reference']['verdicts'][r]} | {', '.join(per_row[r]) or '-'} | "
            f"{th.get('text', '-')} |"
        )
    return "\n".join(lines) + "\n"


def bisect_threshold(
    caught_at: Callable[[float], bool], lo: float, hi: float, steps: int
) -> tuple[float, float]:
    """Geometric bisection of the smallest delta a row catches, given it misses at ``lo`` and
    catches at ``hi`` (not checked). Returns the final (missed, caught) bracket."""
    for _ in range(steps):
        mid = (lo * hi) ** 0.5
        if caught_at(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi


# --------------------------------------------------------------------------------------------
# The child: run the verifier (the copy's) and write report.json
# --------------------------------------------------------------------------------------------


def _child(args: argparse.Namespace) -> int:
    """Run the claims at the scale in this process (the copy's package); write report.json and
    outcomes.pkl (claim id -> its ClaimOutcome rows) into ``args.out``."""
    import simdyn
    from simdyn.papers.which_features import simulators
    from simdyn.papers.which_features.runs import clear_memo
    from simdyn.verify import report
    from simdyn.verify.registry import resolve_claims, run_claim

    here = Path(simdyn.__file__).resolve()
    if Path.cwd().resolve() not in here.parents:
        raise RuntimeError(f"the child imported {here}, not the planted copy under {Path.cwd()}")
    simdyn.enable_x64()
    sim = simulators.by_name(args.simulator) if args.simulator else simulators.REFERENCE
    claims = resolve_claims(args.claims.split(","))
    start = time.perf_counter()
    outcomes: dict[str, list] = {}
    clear_memo()
    with simulators.use(sim):
        for claim in claims:
            outcomes[claim] = run_claim(claim, args.scale, args.key, args.seeds)
    rows = report.evaluate([o for c in claims for o in outcomes[c]])
    meta = {"scale": args.scale, "claims": claims, "key": args.key, "seeds_override": args.seeds}
    meta["wall_seconds"] = time.perf_counter() - start
    meta["simulator"] = sim.name
    out = Path(args.out)
    report.write(rows, meta, out)
    (out / "outcomes.pkl").write_bytes(pickle.dumps(outcomes))
    return 0


def main(
    argv: Sequence[str] | None = None, progress: Callable[[str], None] = lambda _: None
) -> int:
    """Command line: the catch matrix (writes OUT/matrix.json and OUT/matrix.md), or with
    ``--child`` one verify run inside a planted copy."""
    ap = argparse.ArgumentParser(
        prog="python -m simdyn.papers.which_features.faults", description=__doc__
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--simulator", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--scale", default="small", choices=("small", "quick", "full"))
    ap.add_argument("--claims", default="", help="comma-separated claim ids (default: all)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds override (default: the scale's)")
    ap.add_argument("--key", type=int, default=11, help="base key (default 11, the small key)")
    ap.add_argument("--faults", default="", help="comma-separated fault names (default: all)")
    ap.add_argument(
        "--targeted",
        action="store_true",
        help="run each fault's TARGETS claims only (the reference runs --claims)",
    )
    ap.add_argument(
        "--bisect",
        type=int,
        default=0,
        metavar="N",
        help="per row, N geometric bisection steps of the step-factor delta (default 0: none)",
    )
    ap.add_argument(
        "--bisect-claims", default="", help="claims whose rows are bisected (default: all)"
    )
    ap.add_argument(
        "--delta-lo", type=float, default=1e-3, help="smallest delta of the bisection (1e-3)"
    )
    ap.add_argument(
        "--child-timeout",
        type=float,
        default=3600.0,
        metavar="S",
        help="seconds one verify child may run before it counts as hung (default 3600; a "
        "full-size run of slow claims on a loaded machine needs more)",
    )
    args = ap.parse_args(argv)
    if args.child_timeout <= 0:
        ap.error(f"invalid --child-timeout {args.child_timeout}: must be > 0")
    if args.child:
        return _child(args)
    return _matrix(args, progress, argv)


def _claims(arg: str) -> list[str]:
    from simdyn.verify.registry import resolve_claims

    return resolve_claims(arg.split(",") if arg else None)


def code_state() -> str:
    """HEAD's short commit, plus the package's paths with uncommitted changes (if any)."""
    git = lambda *a: (
        subprocess.run(["git", *a], cwd=PACKAGE, capture_output=True, text=True, check=False).stdout
    )
    commit = git("rev-parse", "--short", "HEAD").strip()
    dirty = [line[3:] for line in git("status", "--porcelain", "--", ".").splitlines() if line]
    return commit + (" + uncommitted: " + ", ".join(dirty) if dirty else "")


def _matrix(args: argparse.Namespace, progress: Callable[[str], None], argv) -> int:
    claims = _claims(args.claims)
    chosen = [by_name(n) for n in args.faults.split(",")] if args.faults else list(FAULTS)
    for f in chosen:
        check_fault(f)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / ".jax-cache"
    start = time.perf_counter()
    args.code_state = code_state()  # taken with the snapshot, not after the reference run
    with tempfile.TemporaryDirectory(prefix="simdyn-snapshot-") as snap:
        snapshot = planted_copy(None, Path(snap)) / "simdyn"
        return _matrix_on(args, progress, argv, claims, chosen, out, cache, start, snapshot)


def _matrix_on(args, progress, argv, claims, chosen, out, cache, start, snapshot) -> int:
    """The matrix on one snapshot of the package (see :func:`_matrix`)."""
    import datetime
    import platform

    def run(fault, cl, size=None) -> RunResult:
        return run_fault(
            fault,
            cl,
            args.scale,
            args.seeds,
            args.key,
            size,
            cache=cache,
            package=snapshot,
            timeout=args.child_timeout,
        )

    progress("reference")
    reference = run(None, claims)
    if not reference.ok:
        raise RuntimeError("the reference run produced no report:\n" + reference.tail)
    meta = {
        "command": "python -m simdyn.papers.which_features.faults "
        + " ".join(argv or sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "scale": args.scale,
        "seeds": args.seeds if args.seeds is not None else "the scale's",
        "key": args.key,
        "claims": claims,
        "targeted": args.targeted,
        "commit": args.code_state,
    }
    matrix = Matrix(meta, claims, reference)
    for f in chosen:
        progress(f"fault {f.name}")
        cl = targets(f, claims) if args.targeted else claims
        matrix.results[f.name] = run(f, cl)
        fails, _ = matrix.caught(f.name)
        progress(f"  {matrix.results[f.name].seconds:.0f} s, caught by {fails or 'NONE'}")
        _write(matrix, out, start)
    for claim in _claims(args.bisect_claims) if args.bisect else []:
        _bisect(
            matrix,
            claim,
            args.bisect,
            lambda size, c=claim: run(STEP_FACTOR, [c], size),
            progress,
            args.delta_lo,
        )
        _write(matrix, out, start)
    _write(matrix, out, start)
    return 0


def _bisect(matrix: Matrix, claim: str, steps: int, run, progress, delta_lo: float = 1e-3) -> None:
    """For each row of ``claim`` that holds on the reference: geometric bisection of the
    smallest step-factor delta (x = 1 + delta) it catches, between ``delta_lo`` and DELTA_HI
    (both checked first: a row that catches ``delta_lo`` is reported as <= it), running that
    claim only (judged in the matrix's Holm family, :func:`merged`)."""
    ref = matrix.reference_verdicts()
    rows = [o.claim for o in matrix.reference.outcomes[claim] if ref[o.claim] == "holds"]
    memo: dict[float, dict[str, str]] = {}

    def verdicts_at(delta: float) -> dict[str, str]:
        if delta not in memo:
            progress(f"  bisect {claim}: delta {delta:.4g}")
            result = run(1.0 + delta)
            memo[delta] = verdicts(merged(matrix.reference, result), matrix.claims)
        return memo[delta]

    for row in rows:
        hit = lambda d, row=row: verdicts_at(d).get(row) == "fails"
        if not hit(DELTA_HI):
            matrix.thresholds[row] = {"text": f"not caught at delta {DELTA_HI:g}"}
            continue
        if hit(delta_lo):
            matrix.thresholds[row] = {"caught": delta_lo, "text": f"<= {delta_lo:.3g}"}
            continue
        lo, hi = bisect_threshold(hit, delta_lo, DELTA_HI, steps)
        matrix.thresholds[row] = {"missed": lo, "caught": hi, "text": f"{hi:.3g} (missed {lo:.3g})"}
        progress(f"  {row}: smallest caught delta {hi:.3g}")


DELTA_HI = 1.0  # the largest step-factor delta tried (x = 2)


def _write(matrix: Matrix, out: Path, start: float) -> None:
    matrix.meta["wall_seconds"] = time.perf_counter() - start
    data = matrix.to_json()
    (out / "matrix.json").write_text(json.dumps(data, indent=1))
    (out / "matrix.md").write_text(to_markdown(data))


if __name__ == "__main__":
    sys.exit(main(progress=lambda line: print(line, file=sys.stderr, flush=True)))
