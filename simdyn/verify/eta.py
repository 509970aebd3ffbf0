"""How long the rest of a ``simdyn verify`` run will take, from each claim's typical time.

Claims differ by two orders of magnitude in cost (CC-unlearn ~1 s, CC-early ~20 min at full
size), so the estimate weights the claims still to run by their typical seconds and scales them
by this run's own speed so far (seconds spent / typical seconds of the claims done here). Before
any claim is done it is the reference machine's figure itself.
"""

from __future__ import annotations

from collections.abc import Sequence

# Seconds per claim on the reference machine (the project's 2-core CPU), one process: quick
# from one `simdyn verify --quick --paper all` run, full from the committed confirmatory runs
# of each paper; each figure's run, date and load are in verify_claim_seconds.md under
# benchmarks/results/.
TYPICAL_SECONDS: dict[str, dict[str, float]] = {
    "quick": {
        "CC-train": 16.2,
        "CC-exists": 15.3,
        "CC-minnorm": 4.6,
        "CC-early": 69.6,
        "CC-unlearn": 1.3,  # reads CC-early's memoised runs (one process)
        "FS-dim": 31.0,
        "FS-aug": 12.6,
        "JOINT": 15.7,
        "SGD-OBJ": 66.2,
        "MINLOSS": 9.6,  # reads CC-train's, FS-dim's and JOINT's runs
        "GOOD-EVENT": 81.5,
        "REPR": 32.4,
        "FIG6": 9.9,
        "FS-tie": 1.6,
        "CC-probe-GD": 14.8,
        "SGD-MIN": 7.3,  # reads SGD-OBJ's runs
        "PH-min-norm": 7.9,
        "PH-balance": 4.0,
        "PH-weights": 17.7,
        "PH-sample-complexity": 8.4,
        "PH-examples": 1.0,
        "PH-depth": 7.7,
        "PH-nonlinear": 7.7,
        "PH-supervised": 12.0,
        "PH-reweight": 2.5,
    },
    "full": {
        "CC-train": 71.1,
        "CC-exists": 78.6,
        "CC-minnorm": 88.8,
        "CC-early": 1374.4,
        "CC-unlearn": 39.2,
        "FS-dim": 125.1,
        "FS-aug": 61.4,
        "JOINT": 168.9,
        "SGD-OBJ": 928.2,
        "MINLOSS": 78.8,
        "GOOD-EVENT": 80.1,
        "REPR": 37.8,
        "FIG6": 21.5,
        "FS-tie": 11.5,
        "CC-probe-GD": 25.1,
        "SGD-MIN": 125.9,
        "PH-min-norm": 24.7,
        "PH-balance": 8.8,
        "PH-weights": 72.6,
        "PH-sample-complexity": 39.8,
        "PH-examples": 2.0,
        "PH-depth": 10.6,
        "PH-nonlinear": 11.0,
        "PH-supervised": 18.7,
        "PH-reweight": 4.0,
    },
}


def eta_seconds(
    scale: str, done: Sequence[str], left: Sequence[str], elapsed: float
) -> float | None:
    """Estimated seconds for the claims in ``left``, having spent ``elapsed`` on ``done``.

    Returns None where no typical times exist (the ``small`` scale, an unknown claim).
    """
    typical = TYPICAL_SECONDS.get(scale)
    if typical is None or any(c not in typical for c in (*done, *left)):
        return None
    done_typical = sum(typical[c] for c in done)
    speed = elapsed / done_typical if done_typical > 0 else 1.0
    return speed * sum(typical[c] for c in left)


def format_eta(seconds: float | None) -> str:
    """``", ETA ~3:05"`` (minutes:seconds), or "" without an estimate."""
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f", ETA ~{minutes}:{secs:02d}"
