"""The public API against the last release (scripts/api_check.py): what users rely on stays."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import griffe
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import api_check  # type: ignore[import-not-found]  # noqa: E402


def _load(directory: Path) -> griffe.Module:
    module = griffe.load("mongo_results", search_paths=[directory], try_relative_path=False)
    assert isinstance(module, griffe.Module)
    return module


def test_nothing_exported_by_the_last_release_is_broken() -> None:
    assert api_check.breakages(api_check.load_baseline(), _load(ROOT)) == []


@pytest.mark.parametrize(
    ("module", "old", "new", "reported"),
    [
        ("manager.py", "        strict_namespace: bool = False,\n", "", "Parameter was removed"),
        (
            "manager.py",
            "        batch_size: int = 500,\n        id_fields: IdFields = False,\n    ) -> Any:",
            "        batch_size: int = 100,\n        id_fields: IdFields = False,\n    ) -> Any:",
            "default",
        ),
        ("__init__.py", '    "canonical_id",\n', "", "no longer exported"),
    ],
)
def test_a_removed_name_parameter_or_default_is_caught(
    tmp_path: Path, module: str, old: str, new: str, reported: str
) -> None:
    shutil.copytree(ROOT / "mongo_results", tmp_path / "mongo_results")
    path = tmp_path / "mongo_results" / module
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    found = api_check.breakages(api_check.load_baseline(), _load(tmp_path))
    assert any(reported.lower() in line.lower() for line in found), found


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        # claim_each's wait, new in 0.2.0
        (
            "        max_attempts: int | None = 3,\n        wait: bool = True,\n",
            "        max_attempts: int | None = 3,\n",
            "parameter was removed",
        ),
        # the 0.1 spelling of manager.admin.doctor, promised until 0.3
        ("    doctor = moved(Admin.doctor)\n", "", "public object was removed"),
    ],
)
def test_what_the_release_promised_is_kept(tmp_path: Path, old: str, new: str, reported: str) -> None:
    shutil.copytree(ROOT / "mongo_results", tmp_path / "mongo_results")
    path = tmp_path / "mongo_results" / "manager.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    found = api_check.breakages(api_check.load_baseline(), _load(tmp_path))
    assert any(reported in line.lower() for line in found), found
