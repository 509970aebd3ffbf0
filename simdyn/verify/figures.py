"""One figure per claim next to the report: every sub-test and control, estimate and interval
against its threshold, so a reader sees how far each verdict is from its rule."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from simdyn.verify.report import RowResult
from simdyn.verify.stats import TestResult


def _threshold_values(t: TestResult) -> list[float]:
    """The numbers in a threshold text ("> 0.9", "in [a, b]", "<= 1e-6")."""
    out = []
    for tok in re.findall(r"-?(?:\d+\.?\d*|\.\d+)(?:e-?\d+)?|-?inf", t.threshold):
        try:
            v = float(tok)
        except ValueError:
            continue
        if math.isfinite(v):
            out.append(v)
    return out


def claim_figure(row: RowResult, path: Path) -> Path:
    """Horizontal interval plot of one row's sub-tests (blue) and controls (red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(t, "test") for t in row.outcome.tests] + [(t, "ctrl") for t in row.outcome.controls]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(items) + 1.4))
    for i, (t, kind) in enumerate(items):
        color = "tab:blue" if kind == "test" else "tab:red"
        lo, hi = t.ci
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [i, i], color=color, lw=2)
        if math.isfinite(t.estimate):
            ax.plot([t.estimate], [i], "o", color=color)
        for v in _threshold_values(t):
            ax.plot([v], [i], "|", color="k", ms=12)
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels([t.name[:48] for t, _ in items], fontsize=7)
    ax.invert_yaxis()
    ax.set_title(
        f"{row.outcome.claim}: {row.verdict} (controls {row.control_verdict}); "
        "blue tests, red controls, | thresholds",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_figures(rows: Sequence[RowResult], folder: str | Path) -> list[Path]:
    """claim-<id>.png per row into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for r in rows:
        safe = re.sub(r"[^A-Za-z0-9]+", "-", r.outcome.claim).strip("-").lower()
        out.append(claim_figure(r, folder / f"claim-{safe}.png"))
    return out
