"""The verdict table for a terminal: what ``simdyn verify`` prints (issue 28, item 6).

One line per row, at most ``width`` (100) columns: the claim, its paper source, the verdict and
one reason in plain words, then a legend of the verdict words and of the control. The full
table (estimates, intervals, adjusted p-values, power) and every sub-test stay in report.md
(:func:`simdyn.verify.report.to_markdown`); this module only prints.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from itertools import zip_longest

from simdyn.verify.report import RowResult

WIDTH = 100
HEADER = ("claim", "paper source", "verdict", "why, in plain words")

LEGEND = (
    ("holds", "the simulations agree with the claim at every design point tested."),
    ("fails", "they clearly contradict it somewhere; the reason says where."),
    ("inconclusive", "too few usable seeds to say either way; more seeds may decide."),
    (
        "control",
        "every row also runs its test on a deliberately wrong prediction, which must fail: that "
        "shows the test can catch an error. '(!)' marks a row whose control did not fail; its "
        "verdict cannot be trusted.",
    ),
    (
        "report.md",
        "the full table: estimates, 95% intervals, p-values corrected for testing many rows at "
        "once, power (how large a deviation the seeds could detect), and every sub-test.",
    ),
)


def plain_reason(row: RowResult) -> str:
    """One sentence on why a row got its verdict, without statistical terms.

    Args:
      row: an evaluated table row.

    Returns:
      e.g. "agrees at every design point (64 runs)", "contradicted at 2 of 50 instances",
      "too few usable seeds to decide: 12 of 40 runs diverged".
    """
    t = row.decisive
    runs = sum(x.n_units for x in row.outcome.tests)
    if row.verdict == "holds":
        text = f"agrees at every design point tested ({runs} checks)"
    elif row.verdict == "fails":
        if t.failures is not None and t.n_units:
            text = f"contradicted on {t.failures} of {t.n_units} instances"
        else:
            text = "contradicted"
        where = row.scope
        if where and where not in ("-", "all points"):
            text += f"; where: {where}"
    else:
        excluded = row.excluded
        if excluded:
            text = f"too few usable seeds to decide: {excluded} runs diverged or were excluded"
        else:
            text = f"not decided by {runs} checks: any deviation is within the seeds' noise"
    if not row.control_ok:
        text += "; CONTROL DID NOT FAIL: this verdict cannot be trusted"
    return text


def format_compact(rows: Sequence[RowResult], width: int = WIDTH) -> str:
    """The terminal table: claim, paper source, verdict, plain reason; cells wrap so that no
    line is longer than ``width``; a legend follows.

    Args:
      rows: evaluated rows (:func:`simdyn.verify.report.evaluate`).
      width: the line length limit.

    Returns:
      The text, every line at most ``width`` characters.
    """
    claim_w = max([len(HEADER[0]), *(len(r.outcome.claim) for r in rows)])
    claim_w = min(claim_w, 22)
    source_w, verdict_w = 24, len("inconclusive")
    reason_w = max(20, width - claim_w - source_w - verdict_w - 6)
    widths = (claim_w, source_w, verdict_w, reason_w)

    def line(cells: Sequence[str]) -> list[str]:
        wrapped = [textwrap.wrap(c, w) or [""] for c, w in zip(cells, widths, strict=True)]
        return [
            "  ".join(part.ljust(w) for part, w in zip(parts, widths, strict=True)).rstrip()
            for parts in zip_longest(*wrapped, fillvalue="")
        ]

    lines = line(HEADER)
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        verdict = r.verdict if r.control_ok else f"{r.verdict} (!)"
        lines += line((r.outcome.claim, r.outcome.source, verdict, plain_reason(r)))
    bad = [r.outcome.claim for r in rows if not r.control_ok]
    if bad:
        lines.append("")
        lines += textwrap.wrap(
            "!!! NEGATIVE CONTROL DID NOT FAIL for: " + ", ".join(bad) + " - these tests would "
            "not have caught a wrong prediction; their verdicts are not trustworthy.",
            width,
        )
    lines.append("")
    pad = max(len(word) for word, _ in LEGEND) + 2
    for word, meaning in LEGEND:
        lines += textwrap.wrap(
            meaning, width, initial_indent=f"{word}:".ljust(pad), subsequent_indent=" " * pad
        )
    return "\n".join(lines)
