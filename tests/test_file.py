"""The file store (SPEC §6): the seed's layout, its trees, and its limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mongo_results import FileBackend, InvalidIdError, ResultsManager, SetBehavior, register_model

from .models import Metrics, Point


def write_seed_file(base: Path, rid: str, model: Metrics, namespace: str = "default") -> None:
    """A result as results_manager's FileBackend writes it."""
    path = base.joinpath(*rid.split("/")).with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    envelope = {"model_type": type(model).__name__, "namespace": namespace, "data": model.model_dump()}
    path.write_text(json.dumps(envelope, indent=2))


def test_reads_a_results_manager_tree(tmp_path: Path) -> None:
    register_model(Metrics)
    m = Metrics(loss=0.5, accuracy=0.75, step=2)
    write_seed_file(tmp_path, "old/run/1", m)
    write_seed_file(tmp_path, "old/run/2", Metrics(loss=1, accuracy=0, step=0))
    rm = ResultsManager(tmp_path)
    assert rm.list_ids() == ["old/run/1", "old/run/2"]
    assert rm.get("old/run/1") == m
    assert rm.set("old/run/1", m, SetBehavior.SKIP_IF_EXISTS) is False  # same content recognised
    assert rm.set("old/run/1", m, SetBehavior.RAISE_IF_DIFFERENT) is True


def test_layout_on_disk(tmp_path: Path) -> None:
    ResultsManager(tmp_path).set("a/b/c", Point(x=1, y=2))
    stored = json.loads((tmp_path / "a" / "b" / "c.json").read_text())
    assert stored["model_type"] == "Point" and stored["namespace"] == "default"
    assert stored["data"] == {"x": 1.0, "y": 2.0}
    assert stored["format"] == "mongo_results/1"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ResultsManager(tmp_path / "absent", create_if_missing=False)
    ResultsManager(tmp_path / "made")
    assert (tmp_path / "made").is_dir()


def test_symlinks_cannot_lead_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = tmp_path / "store"
    store.mkdir()
    (store / "link").symlink_to(outside)
    rm = ResultsManager(store)
    with pytest.raises(InvalidIdError, match="outside"):
        rm.set("link/x", Point(x=1, y=1))
    assert list(outside.iterdir()) == []


def test_delete_prunes_empty_directories_and_clear_keeps_other_files(tmp_path: Path) -> None:
    rm = ResultsManager(tmp_path)
    rm.set("a/b/c", Point(x=1, y=1))
    rm.set("a/d", Point(x=1, y=1))
    assert rm.delete("a/b/c")
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a").is_dir()
    (tmp_path / "notes.txt").write_text("keep me")
    rm.clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mongo_results.lock", "notes.txt"]


def test_result_and_directory_with_one_name(tmp_path: Path) -> None:
    rm = ResultsManager(tmp_path)
    rm.set("a", Point(x=1, y=1))
    rm.set("a/b", Point(x=2, y=2))
    assert rm.list_ids() == ["a", "a/b"]
    assert rm.list_ids("a") == ["a", "a/b"]
    rm.set("x.json/y", Point(x=0, y=0))  # a directory named x.json
    with pytest.raises(InvalidIdError, match="clashes"):
        rm.set("x", Point(x=0, y=0))  # would be the file x.json
    assert rm.exists("x.json/y") and not rm.exists("x")


def test_segment_too_long_for_a_file_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidIdError, match="too long for a file name"):
        FileBackend(tmp_path).set("x" * 252, Point(x=0, y=0))
