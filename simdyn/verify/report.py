"""Verdicts across claims (Holm), the printed table, report.json and report.md.

Each row (a claim, or an extension such as its SGD version) combines its sub-tests with
:func:`simdyn.verify.stats.combine` (all must hold). The rows' p_hold values form one Holm family,
their p_fail values another, and the negative controls a third; verdicts come from the adjusted
p-values (:func:`simdyn.verify.stats.verdict`). A control that does not come out ``fails`` is
flagged loudly: its pipeline would not have caught a wrong prediction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from simdyn.verify.common import ClaimOutcome
from simdyn.verify.stats import (
    ALPHA,
    TestResult,
    Verdict,
    capped,
    combine,
    holm,
    verdict,
    with_power_after_holm,
)


@dataclass(frozen=True)
class RowResult:
    """A table row: the outcome, its combined and Holm-adjusted p-values and verdicts."""

    outcome: ClaimOutcome
    p_hold: float
    p_fail: float
    p_hold_adj: float
    p_fail_adj: float
    excluded: int
    verdict: Verdict
    control_p_fail_adj: float
    control_verdict: Verdict
    sub_verdicts: tuple[Verdict, ...] = ()

    @property
    def scope(self) -> str:
        """Where the claim holds: "all points" when the row holds; for a row that does not,
        the design points (the ``[...]`` labels of its sub-tests) whose sub-tests all hold,
        all fail, or are undecided. Sub-test verdicts come from one Holm family over every
        sub-test of the run, so a regime statement is itself corrected for multiplicity."""
        if self.verdict == "holds":
            return "all points"
        groups: dict[str, list[Verdict]] = {}
        row_wide = []  # sub-tests over all points that do not hold
        for t, v in zip(self.outcome.tests, self.sub_verdicts, strict=True):
            if "[" in t.name and t.name.endswith("]"):
                groups.setdefault(t.name[t.name.index("[") + 1 : -1], []).append(v)
            elif v != "holds":
                row_wide.append(f"{t.name} {v}")
        if not groups or row_wide:
            return "; ".join(row_wide) if row_wide else "-"
        status = {
            g: "holds" if all(v == "holds" for v in vs) else "fails" if "fails" in vs else
            "undecided"
            for g, vs in groups.items()
        }  # fmt: skip
        parts = []
        for word in ("holds", "fails", "undecided"):
            labels = [g for g, st in status.items() if st == word]
            if labels:
                parts.append(f"{word} at {', '.join(labels)}")
        return "; ".join(parts)

    @property
    def decisive(self) -> TestResult:
        """The sub-test that decides: the weakest (largest p_hold), or the failing one."""
        tests = self.outcome.tests
        if self.verdict == "fails":
            return min(tests, key=lambda t: t.p_fail)
        return max(tests, key=lambda t: t.p_hold)

    @property
    def control_ok(self) -> bool:
        return self.control_verdict == "fails"


def evaluate(outcomes: Sequence[ClaimOutcome], alpha: float = ALPHA) -> list[RowResult]:
    """Combine sub-tests per row, Holm-adjust, and decide every verdict.

    Each paper (:attr:`ClaimOutcome.paper`) is its own family of claims: a paper's verdicts are
    the same whether or not another paper ran beside it. Within a paper, one Holm family holds
    every verdict p-value: each row's p_hold and p_fail (so a row can neither hold nor fail by
    multiplicity luck). The negative controls form a second family (every control's p_hold and
    p_fail); a row's controls are OK only if every one of them fails on its own (one failing
    sub-control does not vouch for the others). Rows come back in the order of ``outcomes``.
    """
    families: dict[str, list[int]] = {}
    for i, o in enumerate(outcomes):
        families.setdefault(o.paper, []).append(i)
    rows: list[RowResult | None] = [None] * len(outcomes)
    for members in families.values():
        family = _evaluate_family([outcomes[i] for i in members], alpha)
        for i, row in zip(members, family, strict=True):
            rows[i] = row
    return [r for r in rows if r is not None]


def _evaluate_family(outcomes: Sequence[ClaimOutcome], alpha: float) -> list[RowResult]:
    """:func:`evaluate` for the rows of one paper."""
    outcomes = [_power_after_holm(o, 2 * len(outcomes), alpha) for o in outcomes]
    # The exclusion cap: a sub-test that dropped too many units is undecided inside its row.
    combined = [combine([capped(t) for t in o.tests]) for o in outcomes]
    adj_rows = holm([p for c in combined for p in c])
    adj_sub = holm([p for o in outcomes for t in o.tests for p in (t.p_hold, t.p_fail)])
    sub_pos = 0
    adj = holm([p for o in outcomes for t in o.controls for p in (t.p_hold, t.p_fail)])
    pos = 0
    rows = []
    for i, o in enumerate(outcomes):
        hold_adj, fail_adj = float(adj_rows[2 * i]), float(adj_rows[2 * i + 1])
        ctrl_verdicts, ctrl_fail = [], []
        for c in o.controls:
            ch, cf = float(adj[pos]), float(adj[pos + 1])
            pos += 2
            ctrl_verdicts.append(verdict(ch, cf, c.dropped_fraction, alpha))
            ctrl_fail.append(cf)
        subs = []
        for t in o.tests:
            sub_p = (float(adj_sub[sub_pos]), float(adj_sub[sub_pos + 1]))
            subs.append(verdict(*sub_p, t.dropped_fraction, alpha))
            sub_pos += 2
        if not ctrl_verdicts:
            control_verdict: Verdict = "inconclusive"
        elif all(v == "fails" for v in ctrl_verdicts):
            control_verdict = "fails"
        else:
            control_verdict = "holds" if "holds" in ctrl_verdicts else "inconclusive"
        rows.append(
            RowResult(
                outcome=o,
                p_hold=combined[i][0],
                p_fail=combined[i][1],
                p_hold_adj=hold_adj,
                p_fail_adj=fail_adj,
                excluded=sum(t.n_excluded for t in o.tests),
                verdict=verdict(hold_adj, fail_adj, 0.0, alpha),  # capped before combining
                control_p_fail_adj=max(ctrl_fail, default=1.0),
                control_verdict=control_verdict,
                sub_verdicts=tuple(subs),
            )
        )
    return rows


def _power_after_holm(o: ClaimOutcome, family: int, alpha: float) -> ClaimOutcome:
    """The outcome with each fraction sub-test's power stated at the worst-case level it faces:
    alpha / (k m), k the row's sub-tests (Bonferroni inside the row, :func:`combine`) and m the
    Holm family of the rows' p-values (2 per row)."""
    level = alpha / (max(len(o.tests), 1) * family)
    return replace(o, tests=tuple(with_power_after_holm(t, level) for t in o.tests))


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "nan"
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.1e}"
    return f"{x:.3g}"


def _estimate(t: TestResult) -> str:
    if t.kind == "exact":
        return f"{t.failures} of {t.n_units} fail"
    text = f"{_num(t.estimate)} [{_num(t.ci[0])}, {_num(t.ci[1])}]"
    return text if t.failures is None else f"{text}, {t.failures} of {t.n_units} fail"


def _p(x: float) -> str:
    return "<1e-99" if x < 1e-99 else (f"{x:.1e}" if x < 1e-3 else f"{x:.3f}")


HEADER = (
    "claim",
    "source",
    "design",
    "decisive sub-test",
    "estimate [95% CI]",
    "threshold",
    "p_adj",
    "excl",
    "power (decisive test)",
    "verdict",
    "scope",
    "control",
)


def table_rows(rows: Sequence[RowResult]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for r in rows:
        t = r.decisive
        p_adj = r.p_fail_adj if r.verdict == "fails" else r.p_hold_adj
        ctrl = r.control_verdict if r.control_ok else f"{r.control_verdict.upper()} (!)"
        out.append(
            (
                r.outcome.claim,
                r.outcome.source,
                r.outcome.summary or r.outcome.design[:40],
                f"{t.name} ({len(r.outcome.tests)} sub-tests)",
                _estimate(t),
                t.threshold,
                _p(p_adj),
                str(r.excluded),
                t.power or "-",
                r.verdict,
                r.scope,
                ctrl,
            )
        )
    return out


def format_table(rows: Sequence[RowResult]) -> str:
    """Fixed-width text table (what ``simdyn verify`` prints)."""
    body = [HEADER, *table_rows(rows)]
    widths = [max(len(row[j]) for row in body) for j in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    bad = [r.outcome.claim for r in rows if not r.control_ok]
    if bad:
        lines.append("")
        lines.append(
            "!!! NEGATIVE CONTROL DID NOT FAIL for: " + ", ".join(bad) + " - these pipelines "
            "would not have caught a wrong prediction; their verdicts are not trustworthy."
        )
    return "\n".join(lines)


def format_details(rows: Sequence[RowResult]) -> str:
    """Per row: design, every sub-test and control with estimate, CI, threshold, raw p, notes."""
    lines = []
    for r in rows:
        o = r.outcome
        lines.append(
            f"[{o.claim}] {o.source} - verdict {r.verdict}, control {r.control_verdict}"
            f" ({o.seconds:.1f} s)"
        )
        lines.append(f"  design: {o.design}")
        for kind, tests in (("test", o.tests), ("control", o.controls)):
            for t in tests:
                lines.append(
                    f"  {kind:7s} {t.name}: {_estimate(t)} vs {t.threshold}; p_hold "
                    f"{_p(t.p_hold)}, p_fail {_p(t.p_fail)}; n={t.n_units}, excluded "
                    f"{t.n_excluded}; power: {t.power or 'n/a'}"
                )
                lines.append(f"          statistic: {t.statistic}; rule: {t.rule}")
        for note in o.notes:
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def _test_json(t: TestResult) -> dict[str, Any]:
    d = asdict(t)
    d["ci"] = list(t.ci)
    return d


def to_json(rows: Sequence[RowResult], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "alpha": ALPHA,
        "rows": [
            {
                "claim": r.outcome.claim,
                "source": r.outcome.source,
                "design": r.outcome.design,
                "summary": r.outcome.summary,
                "verdict": r.verdict,
                "scope": r.scope,
                "sub_verdicts": list(r.sub_verdicts),
                "p_hold": r.p_hold,
                "p_fail": r.p_fail,
                "p_hold_holm": r.p_hold_adj,
                "p_fail_holm": r.p_fail_adj,
                "excluded_units": r.excluded,
                "control": r.outcome.control,
                "control_verdict": r.control_verdict,
                "control_p_fail_holm": r.control_p_fail_adj,
                "control_ok": r.control_ok,
                "seconds": r.outcome.seconds,
                "notes": list(r.outcome.notes),
                "extra": r.outcome.extra,
                "paper": r.outcome.paper,
                "tests": [_test_json(t) for t in r.outcome.tests],
                "controls": [_test_json(t) for t in r.outcome.controls],
            }
            for r in rows
        ],
    }


def to_markdown(rows: Sequence[RowResult], meta: dict[str, Any]) -> str:
    head = "| " + " | ".join(HEADER) + " |"
    sep = "|" + "|".join("---" for _ in HEADER) + "|"
    body = [
        "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table_rows(rows)
    ]
    lines = [
        "# simdyn verify report",
        "",
        f"Scale `{meta.get('scale')}`, key {meta.get('key')}, wall time "
        f"{meta.get('wall_seconds', float('nan')):.1f} s, alpha = {ALPHA} (Holm over the rows).",
        "",
        head,
        sep,
        *body,
        "",
        "Verdicts: `holds` if the Holm-adjusted p-value of 'the claim is false' is <= alpha, "
        "`fails` if that of 'the claim is true' is, `inconclusive` otherwise (too small to "
        "decide). Exact sub-tests (statements exact on their event) hold only with zero "
        "failing instances and report the count; fraction tests are kept for probabilistic "
        "statements, their power stated at the worst-case Holm-adjusted alpha. One Holm family "
        "holds every row's p_hold and p_fail, a second one the controls'; diverged and "
        "never-crossing units count as failures in fraction and exact tests, and a slope or "
        "mean sub-test that dropped more than 10% of its units is undecided. Every negative "
        "control of a row must `fail` on its own.",
        "",
        "## Details",
        "",
        "```",
        format_details(rows),
        "```",
    ]
    return "\n".join(lines) + "\n"


def write(rows: Sequence[RowResult], meta: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write report.json and report.md into folder ``out`` (created if missing)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    jpath, mpath = folder / "report.json", folder / "report.md"
    payload = _finite(to_json(rows, meta))
    jpath.write_text(json.dumps(payload, indent=1, allow_nan=False, default=_default))
    mpath.write_text(to_markdown(rows, meta))
    return jpath, mpath


def _finite(obj: Any) -> Any:
    """Replace non-finite floats by None (strict JSON) throughout a nested structure."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _finite(obj.tolist())
    return obj


def _default(obj: Any) -> Any:
    """JSON fallback for numpy scalars and arrays."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
