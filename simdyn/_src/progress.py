"""Progress reporting for long runs: a tqdm bar on a terminal, plain lines in a log.

``simulate``/``sweep`` accept ``progress=callback(done, total, elapsed_s)``; :func:`progress_bar`
builds such a callback. On a terminal it is a tqdm bar (count, rate, ETA); when stderr is not a
terminal (a log file, CI, ``nohup``) it writes one plain line per update, never a carriage
return, so a log stays readable. No JAX here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

Callback = Callable[[int, int, float], None]


def _fmt_eta(done: int, total: int, elapsed: float) -> str:
    if done <= 0 or elapsed <= 0:
        return "?"
    left = elapsed / done * (total - done)
    return f"{left:.0f}s"


def progress_bar(
    desc: str, unit: str = "seeds", stream: TextIO | None = None, tty: bool | None = None
) -> Callback:
    """A ``callback(done, total, elapsed_s)`` that shows progress of ``total`` ``unit``.

    tty: force the bar (True) or plain lines (False); default: ``stream.isatty()``. The bar
    closes itself when done == total.
    """
    stream = sys.stderr if stream is None else stream
    if tty is None:
        tty = bool(getattr(stream, "isatty", lambda: False)())
    state: dict = {"bar": None}

    def plain(done: int, total: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else float("nan")
        stream.write(
            f"[simdyn] {desc}: {done}/{total} {unit}, {elapsed:.1f} s, {rate:.2f} {unit}/s, "
            f"ETA {_fmt_eta(done, total, elapsed)}\n"
        )
        stream.flush()

    def bar(done: int, total: int, elapsed: float) -> None:
        from tqdm import tqdm

        if state["bar"] is None:
            state["bar"] = tqdm(total=total, desc=f"[simdyn] {desc}", unit=f" {unit}", file=stream)
        b = state["bar"]
        b.update(done - b.n)
        if done >= total:
            b.close()
            state["bar"] = None

    return bar if tty else plain
