"""Library code reports through logging or a callback, never print (issue 26); the command
line shows the library's log lines on stderr exactly as it printed them before."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from simdyn._src import cli

PACKAGE = Path(__file__).resolve().parents[1] / "simdyn"
# Modules whose job is to print: the command lines and verify's terminal formatting.
PRINTING_MODULES = {"_src/cli.py", "verify/cli.py", "verify/terminal.py"}


def _prints_outside_entry_points(path: Path) -> list[int]:
    """Lines calling print() outside ``main(...)`` and ``if __name__ == "__main__":``."""
    tree = ast.parse(path.read_text())
    allowed: set[int] = set()
    for node in ast.walk(tree):
        entry = isinstance(node, ast.FunctionDef) and node.name == "main"
        entry |= (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__"
        )
        if entry:
            end = node.end_lineno or node.lineno
            allowed.update(range(node.lineno, end + 1))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
        and node.lineno not in allowed
    ]


def test_library_modules_never_print():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in PRINTING_MODULES:
            continue
        lines = _prints_outside_entry_points(path)
        if lines:
            found[rel] = lines
    assert not found, f"print() in library code (use a logger or a callback): {found}"


def test_cli_shows_library_log_lines_plainly_and_only_while_a_command_runs(capsys):
    log = logging.getLogger("simdyn.engine")
    handlers = list(logging.getLogger("simdyn").handlers)
    for _ in range(2):  # repeated in-process calls never print a line twice
        with cli._log_to_stderr():
            log.info("[simdyn] resumed from %s: reused %d of %d chunks", "ckpt", 2, 3)
            log.debug("not shown")
        assert capsys.readouterr().err == "[simdyn] resumed from ckpt: reused 2 of 3 chunks\n"
    assert logging.getLogger("simdyn").handlers == handlers
    log.info("outside a command: not on stderr")
    assert "outside a command" not in capsys.readouterr().err
