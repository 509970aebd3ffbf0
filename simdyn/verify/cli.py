"""``simdyn verify``: run the selected claims, print the table, write report.json / report.md."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from simdyn.config import ConfigError

if TYPE_CHECKING:
    from simdyn.verify.common import Scale

# Registered base keys. The full scale has none: its confirmatory key is derived from the
# declared rules (simdyn.verify.ledger.confirmatory_key), so a rule change gets a fresh key by
# itself; no test and no development run uses it (tests use DEV_KEYS, all below 1024, which
# the derived key never is).
SCALE_KEYS: dict[str, int | None] = {"small": 11, "quick": 1, "full": None}
DEV_KEYS = (0, 2, 3, 11)
LEDGER = "experiments/verify-full/ledger.json"  # the committed ledger of confirmatory runs


def scale_key(scale: str, claim_ids: list[str] | None = None) -> int:
    """The registered base key of a scale; for ``full``, the key derived from the rules of
    ``claim_ids`` (default: the first paper's claims)."""
    key = SCALE_KEYS[scale]
    if key is None:
        from simdyn.verify.ledger import confirmatory_key, rules_fingerprint

        return confirmatory_key(rules_fingerprint(claim_ids))
    return key


def run_verify(args: argparse.Namespace) -> int:
    """Entry point called by ``simdyn._src.cli`` (args: claims, seeds, quick, out, key, self_test,
    list, rules, expect).

    Returns EXIT_OK (0) when every negative control failed as it must (whatever the claims'
    verdicts), EXIT_FAILED (1) when some control did not fail (the pipeline cannot be trusted);
    with ``--expect FILE``, EXIT_FAILED also when any row's verdict or controls' verdict deviates
    from FILE's (:mod:`simdyn.verify.expect`; each deviation is printed); with ``--self-test``,
    EXIT_OK when every broken simulator was caught and EXIT_FAILED otherwise. Bad input raises
    ConfigError (``simdyn._src.cli`` exits 2).
    """
    from simdyn.verify.parallel import parse_jobs
    from simdyn.verify.registry import (
        declaration,
        paper_claim_ids,
        paper_of,
        resolve_claims,
    )

    paper = getattr(args, "paper", None) or "all"  # default: every registered paper
    if getattr(args, "list", False):
        for claim in paper_claim_ids(paper):
            info = declaration(claim).info
            print(f"{claim:12s} {info.source}: {info.statement}")
        return 0
    if getattr(args, "rules", False):
        from simdyn.verify.claim import describe_rules

        for claim in resolve_claims(getattr(args, "claims", None), paper):
            print("\n".join(describe_rules(declaration(claim))))
        return 0
    import simdyn
    from simdyn.verify.registry import clear_caches

    simdyn.enable_x64()  # before anything is built: closed-form comparisons run in float64
    from simdyn.verify import compile_cache

    compile_cache.enable(compile_cache.cache_dir(getattr(args, "compile_cache", None)))
    claims = resolve_claims(getattr(args, "claims", None), paper)
    scale = "quick" if getattr(args, "quick", True) else "full"
    key = getattr(args, "key", None)
    key = scale_key(scale, paper_claim_ids(paper)) if key is None else int(key)
    if key < 0:
        raise ConfigError(f"invalid --key {key}: must be a non-negative integer")
    ledger_path = _check_ledger(args, scale, key, paper)  # before the run: refused in milliseconds
    seeds = getattr(args, "seeds", None)
    out = getattr(args, "out", "verify-report")
    expected = _load_expected(args)  # before the run: a bad file fails in well under a second

    reused: list[str] = []
    start = time.perf_counter()
    jobs = parse_jobs(getattr(args, "jobs", None))

    def run_all(paper: str | None = None, checkpoints: Path | None = None) -> list:
        """The selected claims' outcomes (only ``paper``'s claims when given)."""
        chosen = claims if paper is None else [c for c in claims if paper_of(c) == paper]
        return _run_claims(chosen, scale, key, seeds, reused, start, checkpoints, jobs=jobs)

    meta = _meta(scale, claims, key, seeds)
    meta["jobs"] = jobs  # not part of the checkpoint tag: outcomes do not depend on it
    if getattr(args, "self_test", False):
        return _self_test(run_all, meta, out, start, _declared_broken(paper))
    clear_caches()
    outcomes = run_all(checkpoints=_checkpoint_folder(out, meta))
    meta["wall_seconds"] = time.perf_counter() - start
    # Claims taken from an interrupted earlier run of the same code, scale and key (their own
    # seconds are in each row); wall_seconds counts this invocation only.
    meta["resumed_claims"] = reused
    meta["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    rows = _write_and_print(outcomes, meta, out, len(claims), key)
    clear_caches()
    if ledger_path is not None:
        _append_ledger(ledger_path, out, meta)
    code = EXIT_OK if all(r.control_ok for r in rows) else EXIT_FAILED
    if expected is not None:
        partial = bool(getattr(args, "claims", None))
        code = max(code, _check_expected(expected, rows, meta, partial))
    return code


EXIT_OK = 0  # every control failed (and, with --expect, every verdict as expected)
EXIT_FAILED = 1  # a control did not fail, or (--expect) a verdict deviated


def _check_ledger(args: argparse.Namespace, scale: str, key: int, paper: str) -> Path | None:
    """The ``--ledger`` file (None without it); ConfigError unless this is a confirmatory run:
    the full scale, all claims, no ``--seeds`` override and the key derived from the rules."""
    path = getattr(args, "ledger", None)
    if path is None:
        return None
    if getattr(args, "self_test", False):
        raise ConfigError("invalid --ledger with --self-test: the ledger holds confirmatory runs")
    if scale != "full" or getattr(args, "claims", None) or getattr(args, "seeds", None):
        raise ConfigError(
            "invalid --ledger: only a confirmatory run is kept there (--full, every claim, no "
            "--seeds override)"
        )
    from simdyn.verify.registry import PAPERS, paper_claim_ids

    if paper not in PAPERS:
        raise ConfigError(
            f"invalid --ledger with --paper {paper}: a ledger holds one paper's confirmatory "
            f"runs, so name it (--paper one of {list(PAPERS)})"
        )
    derived = scale_key("full", paper_claim_ids(paper))
    if key != derived:
        raise ConfigError(
            f"invalid --ledger with --key {key}: a confirmatory run uses the key derived from "
            f"the rules, {derived} (drop --key)"
        )
    from simdyn.verify import ledger

    ledger.load(path)  # readable before hours of work
    return Path(path)


def _append_ledger(path: Path, out: str, meta: dict) -> None:
    import json

    from simdyn.verify import ledger

    report = json.loads((Path(out) / "report.json").read_text())
    ledger.append(path, ledger.entry(report, meta["rules_fingerprint"]))
    print(f"ledger: appended the run with key {meta['key']} to {path}")


def _load_expected(args: argparse.Namespace) -> dict | None:
    """The ``--expect`` file's verdicts (None without it); ConfigError if unreadable or given
    with --self-test."""
    path = getattr(args, "expect", None)
    if path is None:
        return None
    if getattr(args, "self_test", False):
        raise ConfigError("invalid --expect with --self-test: it checks a verify run's verdicts")
    from simdyn.verify.expect import load

    return load(path)


def _check_expected(expected: dict, rows: list, meta: dict, partial: bool) -> int:
    """Print every deviation of ``rows`` from ``expected``; EXIT_FAILED if there is any."""
    from simdyn.verify.expect import deviations

    actual = [
        {"claim": r.outcome.claim, "verdict": r.verdict, "control_verdict": r.control_verdict}
        for r in rows
    ]
    found = deviations(expected, actual, meta, partial)
    if not found:
        print(f"--expect: all {len(actual)} rows as expected (verdicts and controls)")
        return EXIT_OK
    print(f"--expect: {len(found)} deviation(s) from the expected verdicts:")
    print("\n".join(f"  {line}" for line in found))
    return EXIT_FAILED


def _run_claims(
    claims: list[str],
    scale: str,
    key: int,
    seeds: int | None,
    reused: list[str],
    start: float,
    checkpoints: Path | None = None,
    jobs: int = 1,
) -> list:
    """Every claim's outcomes in declared order; a claim finished by an interrupted earlier run
    into the same ``checkpoints`` folder is reused (and named in ``reused``). With ``jobs`` > 1
    the others run in that many worker processes (:mod:`simdyn.verify.parallel`)."""
    from simdyn.verify import checkpoint
    from simdyn.verify.eta import eta_seconds, format_eta
    from simdyn.verify.registry import run_claim

    finished: dict[str, list] = {}
    for claim in claims:
        kept = checkpoint.load(checkpoints, claim) if checkpoints else None
        if kept is not None:
            finished[claim] = kept
            reused.append(claim)
            saved = checkpoint.path(checkpoints, claim)  # type: ignore[arg-type]
            print(f"[verify] {claim}: reused the finished result in {saved}", file=sys.stderr)
    left = [c for c in claims if c not in finished]

    def done(claim: str, rows: list, seconds: float) -> None:
        finished[claim] = rows
        print(
            f"[verify] {claim} done in {seconds:.1f} s ({len(finished)} of {len(claims)}, "
            f"{time.perf_counter() - start:.0f} s so far)",
            file=sys.stderr,
            flush=True,
        )

    if jobs > 1 and len(left) > 1:
        from simdyn.verify.parallel import run_parallel

        print(
            f"[verify] {len(left)} claims ({scale}) in up to {jobs} processes ...", file=sys.stderr
        )
        run_parallel(left, scale, key, seeds, jobs, done, checkpoints)
        return [row for claim in claims for row in finished[claim]]
    ran: list[str] = []
    spent = 0.0
    for i, claim in enumerate(left):
        t0 = time.perf_counter()
        # A seeds override changes every claim's size: no typical times then.
        eta = None if seeds is not None else eta_seconds(scale, ran, left[i:], spent)
        print(
            f"[verify] {claim} ({scale}, claim {i + 1} of {len(left)}, "
            f"{t0 - start:.0f} s so far{format_eta(eta)}) ...",
            file=sys.stderr,
            flush=True,
        )
        rows = run_claim(claim, cast("Scale", scale), key, seeds)
        if checkpoints is not None:  # (in worker processes, each worker saves its own)
            checkpoint.save(checkpoints, claim, rows)
        ran.append(claim)
        spent += time.perf_counter() - t0
        done(claim, rows, time.perf_counter() - t0)
    return [row for claim in claims for row in finished[claim]]


def _meta(scale: str, claims: list[str], key: int, seeds: int | None) -> dict:
    """The run's description in report.json (and the checkpoint folder's identity)."""
    import jax

    import simdyn

    return {
        "scale": scale,
        "claims": claims,
        "key": key,
        "seeds_override": seeds,
        "rules_commit": _rules_commit(),
        "rules_fingerprint": _fingerprint(claims),
        "simdyn_version": simdyn.__version__,
        "jax_version": jax.__version__,
        "platform": jax.default_backend(),
        "python": platform.python_version(),
    }


def _fingerprint(claims: list[str]) -> str:
    from simdyn.verify.ledger import rules_fingerprint

    return rules_fingerprint(claims)


def _write_and_print(outcomes: list, meta: dict, out, num_claims: int, key: int) -> list:
    """Evaluate the rules, write report.json, report.md and the figures, and print the compact
    terminal table with its legend (simdyn.verify.terminal; the full table and every sub-test
    are in report.md). Returns the rows."""
    from simdyn.verify import report, terminal
    from simdyn.verify.figures import write_figures

    rows = report.evaluate(outcomes)
    jpath, mpath = report.write(rows, meta, out)
    figures = write_figures(rows, out)
    print(terminal.format_compact(rows))  # the full table and details: report.md
    print(
        f"\n{num_claims} claims, {len(rows)} rows in {meta['wall_seconds']:.1f} s (key {key}); "
        f"wrote {jpath}, {mpath} (full table and details) and {len(figures)} figures"
    )
    return rows


def _declared_broken(paper: str | None) -> tuple:
    """The broken simulators of ``--paper`` (None: the default paper);
    ConfigError, before anything runs, if the selected papers declare none."""
    from simdyn.verify.registry import broken_simulators

    broken = broken_simulators(paper)
    if not broken:
        raise ConfigError(
            f"invalid --self-test with --paper {paper}: the paper declares no broken simulators "
            "(BROKEN in its claims module)"
        )
    return broken


def _self_test(run_all, meta: dict, out: str, start: float, broken: tuple) -> int:
    """Run the self-test against ``broken``, the selected papers' declared broken simulators
    (:func:`simdyn.verify.selftest.run_planted`), and write OUT/self-test.md."""
    from pathlib import Path

    from simdyn.verify import report, selftest

    reference, results = selftest.run_planted(
        run_all,
        broken,
        progress=lambda name: print(f"[self-test] simulator {name}", file=sys.stderr),
    )
    meta["wall_seconds"] = time.perf_counter() - start
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "self-test.md").write_text(
        f"# simdyn verify --self-test\n\nScale `{meta['scale']}`, key {meta['key']}, rules "
        f"commit {meta['rules_commit']}, wall {meta['wall_seconds']:.0f} s.\n\n"
        "Reference verdicts:\n\n```\n"
        + report.format_table(reference)
        + "\n```\n\n"
        + selftest.to_markdown(results)
    )
    print(report.format_table(reference))
    print()
    print(selftest.format_results(results))
    missed = [r.simulator for r in results if not r.caught]
    print(
        f"\n{len(results) - len(missed)} of {len(results)} broken simulators caught in "
        f"{meta['wall_seconds']:.0f} s; wrote {folder / 'self-test.md'}"
    )
    if missed:
        print("NOT CAUGHT (a defect of the verifier): " + ", ".join(missed))
    return 0 if not missed else 1


def _checkpoint_folder(out: str, meta: dict) -> Path | None:
    """Where finished claims are kept so an interrupted run resumes without redoing them.

    Keyed by scale, key, seed override and the code's commit; ``None`` (no resume) when the code
    has uncommitted changes or no commit is known, since then the rules may differ between runs.
    """
    code = _code_state()
    if code is None:
        return None
    tag = f"{meta['scale']}|{meta['key']}|{meta['seeds_override']}|{code}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:16]
    return Path(out) / ".checkpoints" / digest


def _git(folder: Path, *args: str) -> str | None:
    """stdout of ``git ARGS`` run in ``folder`` (stripped), or None outside a checkout."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _code_state() -> str | None:
    """HEAD's commit if the simdyn package has no uncommitted changes, else None."""
    here = Path(__file__).resolve().parents[1]
    commit, dirty = _git(here, "rev-parse", "HEAD"), _git(here, "status", "--porcelain", "--", ".")
    return commit if commit and dirty == "" else None


def _rules_commit() -> str:
    """The last git commit of the verify rules (the framework in simdyn/verify and the papers'
    claims in simdyn/papers), or 'unknown' outside a checkout."""
    here = Path(__file__).resolve().parents[1]
    commit = _git(here, "log", "-1", "--format=%H", "--", "verify", "papers")
    dirty = _git(here, "status", "--porcelain", "--", "verify", "papers")
    if not commit:
        return "unknown"
    return commit + (" (+uncommitted changes)" if dirty else "")
