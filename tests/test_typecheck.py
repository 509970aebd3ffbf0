"""The package type-checks clean: ``python -m mypy`` with pyproject.toml's [tool.mypy] settings.

simdyn ships a ``py.typed`` marker, so its annotations are a promise to its users' type
checkers; this test keeps them true. Slow tier: mypy takes a while on a cold cache (mypy is
in the test extras).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_marker_is_shipped():
    assert (ROOT / "simdyn" / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mypy_reports_no_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=590,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
