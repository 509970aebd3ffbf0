"""The README's run_loop snippet runs as printed (issue 28: it used undefined names)."""

import re
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_run_loop_snippet_runs_and_gives_the_shape_it_states():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (code,) = [textwrap.dedent(b) for b in blocks if "simdyn.run_loop(" in b]
    *body, last = code.strip().splitlines()
    expr, _, comment = last.partition("#")
    namespace: dict = {}
    exec("\n".join(body), namespace)  # a NameError here is the defect this test guards
    value = eval(expr, namespace)
    assert str(tuple(value.shape)) == comment.strip()
