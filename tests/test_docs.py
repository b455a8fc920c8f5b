"""The README and docs/*.md: every relative link and image points at a file in the repository,
and every `dvc exp run -S` they show would be taken by DVC."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
SET_PARAM = re.compile(r"-S (\+?)([A-Za-z_][\w.]*)=")  # -S key=value, and -S +key=value


def relative_links(page):
    for target in LINK.findall(page.read_text()):
        if not re.match(r"[a-z][a-z0-9+.-]*:|#", target):  # skip https:, mailto:, #anchor
            yield target.split("#")[0]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    links = list(relative_links(page))
    missing = [t for t in links if not (page.parent / t).exists()]
    assert links and not missing, f"{page.name}: links to missing files: {missing}"


def in_params(params, key):
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_set_params_name_keys_as_dvc_takes_them(page):
    """DVC's -S overrides a key of params.yaml and refuses one it lacks unless written +key
    (which then adds it); the stages' own validation decides whether an added key is allowed."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    wrong = [
        f"-S {plus}{key}"
        for plus, key in SET_PARAM.findall(page.read_text())
        if in_params(params, key) == bool(plus)
    ]
    assert not wrong, (
        f"{page.name}: {wrong} (a key params.yaml lacks needs '+', one it has must not)"
    )
