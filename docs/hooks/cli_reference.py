"""mkdocs hook: the command line reference, generated from simdyn's argument parser.

``docs/cli.md`` holds the prose; each ``<!-- cli-help: NAME -->`` marker in it is replaced, when
the site is built, by the ``--help`` text of ``simdyn NAME`` (``simdyn`` itself for the top
level) as :func:`simdyn._src.cli.build_parser` prints it. Nothing is copied by hand, so the page
cannot drift from the program. ``tests/test_docs.py`` imports this module.
"""

from __future__ import annotations

import argparse
import os
import re

MARKER = re.compile(r"<!--\s*cli-help:\s*([\w-]+)\s*-->")
WIDTH = "100"  # columns argparse formats the help to (independent of the build's terminal)


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """``{"simdyn": top-level parser, "simulate": its subparser, ...}`` in the parser's order."""
    from simdyn._src.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parser = build_parser()
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    found = {"simdyn": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def subcommands() -> list[str]:
    """The names of ``simdyn``'s subcommands, as the parser defines them."""
    return [name for name in _parsers() if name != "simdyn"]


def help_text(name: str) -> str:
    """The ``--help`` text of ``simdyn NAME`` (``"simdyn"``: the top level)."""
    parsers = _parsers()
    if name not in parsers:
        raise KeyError(f"no such command {name!r}; the parser has {sorted(parsers)}")
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parsers[name].format_help().rstrip()
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def render(markdown: str) -> str:
    """``markdown`` with every ``<!-- cli-help: NAME -->`` marker replaced by a help block."""
    return MARKER.sub(lambda m: f"```text\n{help_text(m.group(1))}\n```", markdown)


def reference() -> str:
    """Every command's help as one markdown text, top level first."""
    return "\n\n".join(
        f"## {'simdyn' if name == 'simdyn' else 'simdyn ' + name}\n\n"
        f"```text\n{help_text(name)}\n```"
        for name in _parsers()
    )


def on_page_markdown(markdown, page, config, files):  # mkdocs hook (signature fixed by mkdocs)
    """Fill in the generated help on pages that carry markers (docs/cli.md)."""
    if not MARKER.search(markdown):
        return markdown
    return render(markdown)
