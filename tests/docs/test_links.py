"""Every relative link in README.md and docs/*.md reaches a file, and its anchor a heading.

Anchors are GitHub's heading slugs. Image links are left out here: the dashboard's
screenshot, docs/images/dashboard.png, is made by the browser tests, and the images'
own test checks them. Links to other sites are not followed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.monitoring._servers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(!?)\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", flags=re.DOTALL)


def without_code(markdown: str) -> str:
    """The text outside fenced blocks and code spans, where links are links."""
    prose, in_fence = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if not in_fence:
            prose.append(line)
    return CODE_SPAN.sub("", "\n".join(prose))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of every heading of a Markdown page, repeated ones numbered."""
    seen: dict[str, int] = {}
    found = set()
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_fence or match is None:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> Iterator[tuple[str, bool]]:
    """Each link target on ``page``, and whether it is an image."""
    for match in LINK.finditer(without_code(page.read_text(encoding="utf-8"))):
        yield match.group(2), match.group(1) == "!"


def relative(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_relative_links_reach_a_file_and_a_heading(page: Path) -> None:
    broken = []
    for target, image in links(page):
        if image or not relative(target):
            continue  # images: see the module's docstring
        path, _, anchor = target.partition("#")
        destination = (page.parent / unquote(path)).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no file {destination}")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_the_readme_links_every_docs_page() -> None:
    linked = {
        (REPO / target.partition("#")[0]).resolve()
        for target, image in links(REPO / "README.md")
        if not image and relative(target)
    }
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"README.md links no docs/ page {unlinked}"


def test_the_link_reader_sees_links_and_headings_as_github_does() -> None:
    text = "[a](x.md#b) `[not](y.md)` ![img](i.png)\n```\n[no](z.md)\n```\n"
    assert [m.group(2) for m in LINK.finditer(without_code(text))] == ["x.md#b", "i.png"]
    assert slug("Back-tests: `/v1/backtests`") == "back-tests-v1backtests"
    assert slug("`GET /healthz`, `GET /readyz`") == "get-healthz-get-readyz"
    assert slug("TensorFlow Serving's REST API") == "tensorflow-servings-rest-api"
