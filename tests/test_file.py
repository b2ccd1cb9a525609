"""The file store: the seed's layout, its trees, and its limits."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mongo_results import CorruptResultError, FileBackend, InvalidIdError, ResultsManager, SetBehavior, register_model

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
        ResultsManager(tmp_path).set("x" * 252, Point(x=0, y=0))


def test_listing_keeps_to_the_store_as_get_does(tmp_path: Path) -> None:
    register_model(Metrics)
    outside = tmp_path / "elsewhere"
    write_seed_file(outside, "secret", Metrics(loss=9, accuracy=9))
    store = tmp_path / "store"
    rm = ResultsManager(store)
    rm.set("mine/1", Metrics(loss=1, accuracy=1))
    (store / "link").symlink_to(outside, target_is_directory=True)  # a directory link
    (store / "mine" / "alias.json").symlink_to(outside / "secret.json")  # a file link
    with pytest.raises(InvalidIdError, match="leads outside"):
        rm.get("link/secret")
    with pytest.raises(InvalidIdError, match="leads outside"):
        rm.get("mine/alias")
    assert rm.list_ids() == ["mine/1"]
    assert rm.list_ids("link") == [] and list(rm.iter_results("link")) == []
    assert [rid for rid, _ in rm.iter_results()] == ["mine/1"]
    with pytest.raises(InvalidIdError, match="leads outside"):
        rm.exists("link/secret")
    rm.clear()
    assert (outside / "secret.json").is_file()  # clear() never reaches through a link


def test_temporary_files_of_killed_writers_are_removed_and_never_read(tmp_path: Path) -> None:
    store = tmp_path / "store"
    writer = (
        "import sys\n"
        "from pydantic import BaseModel\n"
        "from mongo_results import ResultsManager, SetBehavior\n"
        "class Big(BaseModel):\n"
        "    values: list[float]\n"
        f"rm = ResultsManager({str(store)!r})\n"
        "big = Big(values=[float(i) for i in range(200_000)])\n"
        "print('ready', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    rm.set(f'big/{i % 3}', big, SetBehavior.OVERWRITE)\n"
        "    i += 1\n"
    )
    for _ in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", writer], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate()
        time.sleep(random.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()  # reaps it and closes its pipes
    backend = FileBackend(store)
    rm = ResultsManager(backend=backend)
    for rid in rm.list_ids():  # no torn result is ever visible
        assert len(rm.documents(rid)[0]["data"]["values"]) == 200_000
    leftovers = backend.leftovers()
    (store / "big" / ".0123456789abcdef.tmp").write_text('{"torn')  # at least one, whatever the timing
    assert len(backend.leftovers()) == len(leftovers) + 1
    rm.clear()
    assert backend.leftovers() == [] and rm.list_ids() == []


def test_a_corrupt_or_foreign_file_is_named_and_breaks_nothing_else(tmp_path: Path) -> None:
    register_model(Metrics)
    rm = ResultsManager(tmp_path)
    rm.set("runs/1", Metrics(loss=1, accuracy=1))
    rm.set("runs/3", Metrics(loss=3, accuracy=1))
    (tmp_path / "runs" / "2.json").write_text('{"model_type": "Metrics", "data": {"lo')  # truncated
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "config.json").write_text('{"verbose": true}')  # someone else's file
    with pytest.raises(CorruptResultError, match=r"^Stored data missing model type information: 'runs/2'") as info:
        rm.get("runs/2")
    assert "2.json" in str(info.value) and "not valid JSON" in str(info.value)
    assert rm.list_ids("runs") == ["runs/1", "runs/2", "runs/3"]  # listed, like a foreign document
    assert [rid for rid, _ in rm.iter_results()] == ["runs/1", "runs/3"]
    assert [d["_id"] for d in rm.documents()] == ["runs/1", "runs/3"]
    assert rm.get_many(["runs/1", "runs/3"], Metrics)[1].loss == 3
    report = str(rm.doctor())
    assert "2 .json file(s) are not results" in report and "runs/2" in report and "sub/config" in report
    assert rm.set("runs/2", Metrics(loss=2, accuracy=1), SetBehavior.OVERWRITE)  # overwriting repairs it
    assert rm.get("runs/2", Metrics).loss == 2
    rm.clear()
    assert rm.list_ids() == ["sub/config"] and (tmp_path / "sub" / "config.json").exists()


def test_an_unreadable_directory_in_the_store_is_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rm = ResultsManager(tmp_path)
    rm.set("a/1", Metrics(loss=1, accuracy=1))
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "x.json").write_text("{}")
    scandir = os.scandir

    def refusing(path: Any) -> Any:  # what a directory of another user gives (root reads everything)
        if Path(path).name == "private":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    assert rm.list_ids() == ["a/1"]
    assert [rid for rid, _ in rm.iter_results(None, Metrics)] == ["a/1"]
