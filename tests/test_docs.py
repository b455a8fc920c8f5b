"""The README and docs/*.md: every relative link and image points at a file in the repository."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")     # [text](target) and ![alt](target)


def relative_links(page):
    for target in LINK.findall(page.read_text()):
        if not re.match(r"[a-z][a-z0-9+.-]*:|#", target):     # skip https:, mailto:, #anchor
            yield target.split("#")[0]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    links = list(relative_links(page))
    missing = [t for t in links if not (page.parent / t).exists()]
    assert links and not missing, f"{page.name}: links to missing files: {missing}"
