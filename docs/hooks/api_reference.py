"""mkdocs hook: the API reference pages, generated from what simdyn declares public.

A page's ``<!-- api: simdyn -->`` marker becomes a mkdocstrings block for the module ``simdyn``
whose members are exactly ``simdyn.__all__``; ``<!-- api: public-modules -->`` becomes one
block per module of ``simdyn.PUBLIC_MODULES``. The lists are read when the site is built, so
a name added to (or dropped from) the public API shows up (or goes) without editing a page.
The docstrings themselves come from the code (Google style, rendered by mkdocstrings).
"""

from __future__ import annotations

import re

MARKER = re.compile(r"<!--\s*api:\s*([\w.-]+)\s*-->")


def _block(module: str, members: list[str] | None, heading: bool, inspect: bool = False) -> str:
    options = [
        "    options:",
        f"      show_root_heading: {str(heading).lower()}",
        "      show_submodules: false",
    ]
    if inspect:  # simdyn's names load lazily (PEP 562): found by importing, not by parsing
        options.append("      force_inspection: true")
    if members is not None:
        options.append(f"      members: [{', '.join(members)}]")
    return f"::: {module}\n" + "\n".join(options) + "\n"


def render(markdown: str) -> str:
    """``markdown`` with every ``<!-- api: ... -->`` marker replaced by mkdocstrings blocks."""
    import simdyn

    def replace(match: re.Match) -> str:
        what = match.group(1)
        if what == "simdyn":
            return _block("simdyn", sorted(simdyn.__all__), heading=False, inspect=True)
        if what == "public-modules":
            return "\n".join(_block(m, None, heading=True) for m in simdyn.PUBLIC_MODULES)
        return _block(what, None, heading=True)

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):  # mkdocs hook (signature fixed by mkdocs)
    """Fill in the API blocks on pages that carry markers (docs/api/)."""
    return render(markdown) if MARKER.search(markdown) else markdown
