"""How long the rest of a ``simdyn verify`` run will take, from each claim's typical time.

Claims differ by two orders of magnitude in cost (CC-unlearn ~1 s, CC-early ~20 min at full
size), so the estimate weights the claims still to run by their typical seconds and scales them
by this run's own speed so far (seconds spent / typical seconds of the claims done here). Before
any claim is done it is the reference machine's figure itself.
"""

from __future__ import annotations

from collections.abc import Sequence

# Seconds per claim on the reference machine (the project's 2-core CPU): quick from a
# `simdyn verify --quick --key 1` run, full from the committed confirmatory run
# (experiments/verify-full); each figure's run, date and load are in verify_claim_seconds.md
# under benchmarks/results/.
TYPICAL_SECONDS: dict[str, dict[str, float]] = {
    "quick": {
        "CC-train": 13.9,
        "CC-exists": 12.7,
        "CC-minnorm": 3.6,
        "CC-early": 29.4,
        "CC-unlearn": 1.4,
        "FS-dim": 27.1,
        "FS-aug": 11.3,
        "JOINT": 15.4,
        "SGD-OBJ": 33.0,
        "MINLOSS": 6.8,
        "GOOD-EVENT": 24.8,  # its quick design (both sizes, 14 points), alone
        "REPR": 58.5,  # its own run under load ~6 (compile-dominated: 10 simulate programs)
        "FIG6": 28.0,  # `simdyn verify --quick --claims FIG6`, load ~6.6 on 2 cores
        "FS-tie": 9.8,  # `simdyn verify --quick --claims FS-tie`, load ~8.4
        "CC-probe-GD": 33.6,  # --quick --claims CC-probe-GD, load ~8.4 (2 compiles)
        "SGD-MIN": 45.2,  # --quick --claims SGD-MIN alone, load ~9 (SGD memoised after SGD-OBJ)
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
