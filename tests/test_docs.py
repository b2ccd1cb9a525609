"""The manual's Python blocks (docs/*.md) run as a user would paste them, each on its own.

A ```python or ```py block runs alone in a fresh directory, with warnings as errors, like the
README's (tests/test_readme.py). A comment on the line before the block changes that:

- ``<!-- needs-server -->``: it runs against the test server (the ``server_uri`` fixture), with
  ``mongodb://localhost:27017`` replaced by the server's URI; databases it creates are dropped.
- ``<!-- no-run: reason -->``: it is not run; the reason is required.

Other blocks (console, text, json) are shown, not run.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pymongo import MongoClient

from .test_readme import run_script

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# A block may be indented (inside a list item); its mark, if any, is on the line before it.
BLOCK = re.compile(
    r"^(?:[ \t]*<!-- (needs-server|no-run: .+?) -->\n)?([ \t]*)```(?:python|py)\n(.*?)^\2```$", flags=re.S | re.M
)
FENCE = re.compile(r"^\s*```(?:python|py)\s*$", flags=re.M)
MARK = re.compile(r"<!-- (needs-server|no-run[^>]*) -->")


def blocks(kind: str | None) -> list[pytest.ParameterSet]:
    """``(page:line, code)`` of every block whose mark is ``kind`` (None: no mark)."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        for m in BLOCK.finditer(text):
            mark = m.group(1)
            if (mark.split(":")[0] if mark else None) == kind:
                where = f"{page.relative_to(DOCS)}:{text.count(chr(10), 0, m.start(3)) + 1}"
                found.append(pytest.param(textwrap.dedent(m.group(3)), id=where))
    return found


def test_every_python_block_is_found() -> None:
    """No block escapes the tests (an indented fence, a mark with a typo, a no-run without reason)."""
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        assert len(FENCE.findall(text)) == len(BLOCK.findall(text)), f"{page.name}: a python block the tests miss"
        for mark in MARK.findall(text):
            assert mark == "needs-server" or re.fullmatch(r"no-run: \S.*", mark), f"{page.name}: <!-- {mark} -->"
    assert len(blocks(None)) >= 14


@pytest.mark.parametrize("code", blocks(None))
def test_block_runs_on_its_own(code: str, tmp_path: Path) -> None:
    proc = run_script(code, tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("code", blocks("needs-server"))
def test_block_runs_against_the_server(code: str, server_uri: str, tmp_path: Path) -> None:
    base = server_uri.split("?")[0].rstrip("/")
    client: MongoClient[dict[str, object]]
    with MongoClient(base) as client:
        before = set(client.list_database_names())
        try:
            proc = run_script(code.replace("mongodb://localhost:27017", base), tmp_path)
            assert proc.returncode == 0, proc.stderr
        finally:
            for name in set(client.list_database_names()) - before:
                client.drop_database(name)
