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


def _block(module: str) -> str:
    """Any other module named by a marker: the whole module, with its heading."""
    options = "    options:\n      show_root_heading: true\n      show_submodules: false\n"
    return f"::: {module}\n{options}"


def _home(name: str) -> str:
    """The module that defines the public name ``simdyn.<name>``."""
    import importlib

    import simdyn

    module = getattr(getattr(simdyn, name), "__module__", None)
    if not isinstance(module, str) or not hasattr(importlib.import_module(module), name):
        module = simdyn._LAZY.get(name, "simdyn")  # a constant (PRESETS): its lazy-load home
    return module


def _module_block(module: str) -> str:
    """A public module's page section, leaving out the names documented on the simdyn page
    (one primary anchor per object)."""
    import simdyn

    mine = sorted(n for n in simdyn.__all__ if _home(n) == module)
    filters = ['"!^_[^_]"'] + ([f'"!^({"|".join(mine)})$"'] if mine else [])
    return (
        f"::: {module}\n"
        "    options:\n"
        "      show_root_heading: true\n"
        "      show_submodules: false\n"
        f"      filters: [{', '.join(filters)}]\n"
    )


def _name_block(name: str) -> str:
    """One public name, documented where it is defined (``simdyn.<module>.<name>``) and shown as
    ``simdyn.<name>``. simdyn loads most names lazily (PEP 562), which a ``::: simdyn`` block with
    a members list silently drops; addressing each name by its defining module does not."""
    return (
        f"::: {_home(name)}.{name}\n"
        "    options:\n"
        "      show_root_heading: true\n"
        "      show_root_full_path: false\n"
        f"      heading: simdyn.{name}\n"
    )


def render(markdown: str) -> str:
    """``markdown`` with every ``<!-- api: ... -->`` marker replaced by mkdocstrings blocks."""
    import simdyn

    def replace(match: re.Match) -> str:
        what = match.group(1)
        if what == "simdyn":
            return "\n".join(_name_block(name) for name in sorted(simdyn.__all__))
        if what == "public-modules":
            return "\n".join(_module_block(m) for m in simdyn.PUBLIC_MODULES)
        return _block(what)

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):  # mkdocs hook (signature fixed by mkdocs)
    """Fill in the API blocks on pages that carry markers (docs/api/)."""
    return render(markdown) if MARKER.search(markdown) else markdown
