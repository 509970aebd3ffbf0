"""mkdocs hook: images kept outside docs/ (the committed figures) appear on the site as well.

A docs page links a figure the way GitHub shows it, relative to the page:
``![...](../experiments/figures/fig2_alignment.png)``. mkdocs only knows files under docs/, so
this hook adds each such linked file (not markdown: a page outside docs/ is named by its path
instead) to the site under ``_repo/<its path in the repository>`` and rewrites the link to it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

LINK = re.compile(r"(\]\()([^)\s#]+)")
PREFIX = "_repo"


def _outside_target(page_uri: str, link: str, docs: Path, root: Path) -> str | None:
    """The repository path a relative link of page ``page_uri`` points to outside docs/."""
    if "://" in link or link.startswith(("/", "#")) or link.endswith(".md"):
        return None
    target = (docs / posixpath.dirname(page_uri) / link).resolve()
    if docs in target.parents or root not in target.parents or not target.is_file():
        return None
    return target.relative_to(root).as_posix()


def _links(config) -> tuple[Path, Path]:
    docs = Path(config["docs_dir"]).resolve()
    return docs, docs.parent


def on_files(files, config):  # mkdocs hook
    """Add every non-markdown file outside docs/ that a docs page links to."""
    docs, root = _links(config)
    wanted = set()
    for page in docs.rglob("*.md"):
        uri = page.relative_to(docs).as_posix()
        for _, link in LINK.findall(page.read_text(encoding="utf-8")):
            found = _outside_target(uri, link, docs, root)
            if found:
                wanted.add(found)
    for path in sorted(wanted):
        files.append(File.generated(config, f"{PREFIX}/{path}", abs_src_path=str(root / path)))
    return files


def on_page_markdown(markdown, page, config, files):  # mkdocs hook
    """Point links to files outside docs/ at their copies under ``_repo/``."""
    docs, root = _links(config)
    uri = page.file.src_uri

    def rewrite(match: re.Match) -> str:
        found = _outside_target(uri, match.group(2), docs, root)
        if not found:
            return match.group(0)
        up = "../" * uri.count("/")
        return f"{match.group(1)}{up}{PREFIX}/{found}"

    return LINK.sub(rewrite, markdown)
