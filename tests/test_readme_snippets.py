"""The documented run_loop snippet runs as printed (issue 28: it used undefined names).

It lives in docs/guide.md since the README became a front page; any README.md or docs/ page
that carries it is checked.
"""

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_run_loop_snippet_runs_and_gives_the_shape_it_states():
    text = "\n".join(page.read_text() for page in PAGES)
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    (code,) = [textwrap.dedent(b) for b in blocks if "simdyn.run_loop(" in b]
    *body, last = code.strip().splitlines()
    expr, _, comment = last.partition("#")
    namespace: dict = {}
    exec("\n".join(body), namespace)  # a NameError here is the defect this test guards
    value = eval(expr, namespace)
    assert str(tuple(value.shape)) == comment.strip()
