"""The verdict table for a terminal (issue 28, item 6): at most 100 columns, claim, source,
verdict and a plain reason per row, a legend of the verdict words, the full table elsewhere."""

import numpy as np

from simdyn.verify import report
from simdyn.verify.common import ClaimOutcome
from simdyn.verify.stats import exact_test
from simdyn.verify.terminal import LEGEND, format_compact


def _exact(failing: int, n: int = 50, name: str = "t"):
    return exact_test(name, np.arange(n) >= failing, statistic="s", rule="r")


def _rows():
    long_source = "simdyn extension (SGD) of Thm 6.1, Rem 5.2 and App. C, G (probability)"
    return report.evaluate(
        [
            ClaimOutcome("OK", "Prop 4.2", "d", (_exact(0),), (_exact(50),), "c"),
            ClaimOutcome("BROKEN", long_source, "d", (_exact(2),), (_exact(50),), "c"),
            ClaimOutcome("NOCONTROL", "Thm 4.3", "d", (_exact(0),), (_exact(0),), "c"),
        ]
    )


def test_compact_table_fits_100_columns_and_says_why_in_plain_words():
    rows = _rows()
    assert [r.verdict for r in rows] == ["holds", "fails", "holds"]
    text = format_compact(rows)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    full = report.format_table(rows)
    assert max(len(line) for line in full.splitlines()) > 100  # the control: the old table
    by_claim = {ln.split()[0]: ln for ln in lines if ln.split() and ln.split()[0].isupper()}
    assert "holds" in by_claim["OK"] and "agrees at every design point" in by_claim["OK"]
    broken = "\n".join(lines[lines.index(by_claim["BROKEN"]) :][:3])
    assert "fails" in broken and "contradicted on 2 of 50 instances" in broken
    assert "holds (!)" in by_claim["NOCONTROL"]
    assert "NEGATIVE CONTROL DID NOT FAIL for: NOCONTROL" in text
    for word, _ in LEGEND[:3]:
        assert any(ln.startswith(f"{word}:") for ln in lines), word
    assert "report.md" in text and "p_adj" not in text and "P(pass)" not in text


def test_narrow_terminal_still_fits():
    assert max(len(ln) for ln in format_compact(_rows(), width=80).splitlines()) <= 80
