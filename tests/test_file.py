"""The file store: the seed's layout, its trees, and its limits."""

from __future__ import annotations

import errno
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

from mongo_results import FileBackend, MongoResultsError, ResultsManager, SetBehavior, register_model
from mongo_results.cli import main
from mongo_results.errors import CorruptResultError, InvalidIdError, StoreWriteError, UnreadableResultError
from mongo_results.stores.file_tree import FileTree

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
    rng = random.Random(154)  # the kill points, the same in every run
    for _ in range(8):  # each disk call failing in turn is test_a_disk_that_fails_at_any_call's
        proc = subprocess.Popen(
            [sys.executable, "-c", writer], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate()
        time.sleep(rng.uniform(0.05, 0.4))  # into the write: where the kill lands
        proc.send_signal(signal.SIGKILL)
        proc.communicate()  # reaps it and closes its pipes
    backend = FileBackend(store)
    rm = ResultsManager(backend=backend)
    for rid in rm.list_ids():  # no torn result is ever visible
        assert len(rm.admin.documents(rid)[0]["data"]["values"]) == 200_000
    leftovers = backend._leftovers(remove=False)
    (store / "big").mkdir(exist_ok=True)  # on a busy machine no writer may have got this far
    (store / "big" / ".0123456789abcdef.tmp").write_text('{"torn')  # at least one, whatever the timing
    assert len(backend._leftovers(remove=False)) == len(leftovers) + 1
    rm.clear()
    assert backend._leftovers(remove=False) == [] and rm.list_ids() == []


def test_a_corrupt_or_foreign_file_is_named_and_breaks_nothing_else(tmp_path: Path) -> None:
    register_model(Metrics)
    rm = ResultsManager(tmp_path)
    rm.set("runs/1", Metrics(loss=1, accuracy=1))
    rm.set("runs/3", Metrics(loss=3, accuracy=1))
    (tmp_path / "runs" / "2.json").write_text('{"model_type": "Metrics", "data": {"lo')  # truncated
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "config.json").write_text('{"verbose": true}')  # someone else's file
    with pytest.raises(json.JSONDecodeError) as info:  # what results_manager raised, and a library error
        rm.get("runs/2")
    assert isinstance(info.value, UnreadableResultError) and isinstance(info.value, CorruptResultError)
    assert str(info.value).startswith("Stored result 'runs/2': ") and "runs/2.json is not valid JSON" in str(info.value)
    assert (info.value.lineno, info.value.pos) == (1, 35) and "line 1 column 36 (char 35)" in str(info.value)
    with pytest.raises(CorruptResultError, match=r"^Stored data missing model type information: 'sub/config'"):
        rm.get("sub/config")  # JSON, but not a result
    assert rm.list_ids("runs") == ["runs/1", "runs/2", "runs/3"]  # listed, like a foreign document
    assert [rid for rid, _ in rm.iter_results()] == ["runs/1", "runs/3"]
    assert [d["_id"] for d in rm.admin.documents()] == ["runs/1", "runs/3"]
    assert rm.get_many(["runs/1", "runs/3"], Metrics)[1].loss == 3
    report = str(rm.admin.doctor())
    assert "2 .json file(s) are not results" in report and "runs/2" in report and "sub/config" in report
    assert rm.set("runs/2", Metrics(loss=2, accuracy=1), SetBehavior.OVERWRITE)  # overwriting repairs it
    assert rm.get("runs/2", Metrics).loss == 2
    rm.clear()
    assert rm.list_ids() == ["sub/config"] and (tmp_path / "sub" / "config.json").exists()


def test_an_unreadable_directory_is_an_error_not_a_shorter_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: it was passed over, so list_ids could leave results out with no error."""
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
    for read in (rm.list_ids, lambda: list(rm.iter_results(None, Metrics))):
        with pytest.raises(StoreWriteError, match="cannot list the store's directory: Permission denied") as caught:
            read()
        assert isinstance(caught.value, OSError) and "private" in str(caught.value)


def test_a_read_in_pages_lists_each_directory_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: every page listed and sorted the whole directory again (64,000 results: 60 s against 18 s)."""
    rm = ResultsManager(tmp_path)
    rm.set_many({f"sweep/{i:05d}": Metrics(loss=i, accuracy=0) for i in range(2_000)})
    old = time.time() - 60  # a sweep written a while ago: the directory's time says it has not changed since
    os.utime(tmp_path / "sweep", (old, old))
    listed: list[str] = []
    scandir = os.scandir

    def counting(path: Any) -> Any:
        listed.append(Path(path).name)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counting)
    assert len(list(rm.iter_results("sweep", Metrics, batch_size=50))) == 2_000  # 40 pages
    assert listed.count("sweep") == 1
    assert rm.list_ids("sweep")[-1] == "sweep/01999" and listed.count("sweep") == 1  # still as listed
    rm.set("sweep/02000", Metrics(loss=0, accuracy=0))  # the directory changed: listed again
    assert rm.list_ids("sweep")[-1] == "sweep/02000" and listed.count("sweep") == 2


def test_set_many_gives_each_item_its_outcome_when_one_clashes(tmp_path: Path) -> None:
    rm = ResultsManager(tmp_path)
    rm.set("x", Point(x=0, y=0))  # the file x.json: "x.json/y" would need a directory of that name
    outcomes = rm.set_many([("p/1", Point(x=1, y=1)), ("x.json/y", Point(x=2, y=2)), ("p/2", Point(x=3, y=3))])
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], InvalidIdError) and "clashes" in str(outcomes[1])
    assert rm.list_ids() == ["p/1", "p/2", "x"]
    with pytest.raises(InvalidIdError, match="clashes"):
        rm.set_many([("p/3", Point(x=3, y=3)), ("x.json/y", Point(x=2, y=2))], raise_errors=True)
    assert rm.exists("p/3")


def test_a_full_disk_is_a_library_error_and_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FileBackend(tmp_path)
    rm = ResultsManager(backend=backend)
    replace = os.replace

    def full(src: Any, dst: Any) -> None:
        if "/full/" in str(dst):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StoreWriteError) as info:
        rm.set("full/deep/1", Point(x=1, y=1))
    assert isinstance(info.value, OSError) and isinstance(info.value, MongoResultsError)
    assert info.value.errno == errno.ENOSPC and str(info.value.filename).endswith("1.json")
    assert (
        not (tmp_path / "full").exists() and backend._leftovers(remove=False) == []
    )  # no temporary file, no directory
    outcomes = rm.set_many([("a/1", Point(x=1, y=1)), ("full/2", Point(x=2, y=2)), ("a/3", Point(x=3, y=3))])
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], StoreWriteError) and outcomes[1].errno == errno.ENOSPC
    assert rm.list_ids() == ["a/1", "a/3"] and backend._leftovers(remove=False) == []


def test_ids_that_start_with_a_dot_are_results_and_the_store_own_files_are_not(tmp_path: Path) -> None:
    register_model(Point)
    backend = FileBackend(tmp_path)
    rm = ResultsManager(backend=backend)
    rm.set("runs/.warmup", Point(x=1, y=1))
    rm.set(".hidden/x", Point(x=2, y=2))
    assert (tmp_path / "runs" / ".warmup.json").is_file()
    (tmp_path / "runs" / ".0123456789abcdef.tmp").write_text('{"torn')  # a killed writer's
    (tmp_path / "runs" / ".json").write_text("{}")  # no name: never an id
    assert rm.list_ids() == [".hidden/x", "runs/.warmup"]  # nor the lock file, nor the temporary file
    assert [rid for rid, _ in rm.iter_results()] == [".hidden/x", "runs/.warmup"]
    rm.clear()
    assert rm.list_ids() == [] and not (tmp_path / "runs" / ".warmup.json").exists()
    assert backend._leftovers(remove=False) == []


@pytest.mark.parametrize("count", [1000, 3000])
def test_reading_results_reads_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    register_model(Point)
    rm = ResultsManager(tmp_path)
    rm.set_many([(f"grid/{i % 7}/{i:05d}", Point(x=i, y=0)) for i in range(count)])
    reads: list[Path] = []
    read = FileTree.read

    def counting(path: Path) -> Any:
        reads.append(path)
        return read(path)

    monkeypatch.setattr(FileTree, "read", staticmethod(counting))
    assert sum(1 for _ in rm.iter_results(batch_size=100)) == count
    assert len(reads) <= count + 5  # before: each page read every file after it (82,000 for 4,000 results)
    reads.clear()
    assert len(rm.list_ids()) == count and len(rm.list_ids("grid/3")) == len(range(3, count, 7))
    assert reads == []  # ids come from file names
    assert len(list(rm.find({"x": {"$gte": 0}}, model_class=Point, limit=5))) == 5
    assert len(reads) == 5
    reads.clear()
    assert len(list(rm.find({"x": {"$lt": 10}}, model_class=Point))) == 10
    assert len(reads) <= count + 5


def test_doctor_from_python_reports_and_removes_temporary_files(tmp_path: Path) -> None:
    rm = ResultsManager(tmp_path)
    rm.set("a/1", Point(x=1, y=1))
    (tmp_path / "a" / ".0123456789abcdef.tmp").write_text('{"torn')
    report = rm.admin.doctor()
    assert report.problems == 1 and "problem: 1 temporary file(s) of writers killed mid-write" in str(report)
    fixed = rm.admin.doctor(fix=True)
    assert fixed.problems == 0 and "fixed: removed 1 temporary file(s)" in str(fixed)
    assert not (tmp_path / "a" / ".0123456789abcdef.tmp").exists() and rm.admin.doctor().problems == 0


def test_symbolic_link_loops_are_never_followed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    register_model(Point)
    rm = ResultsManager(tmp_path)
    rm.set("runs/1", Point(x=1, y=1))
    (tmp_path / "loop").symlink_to(".")
    (tmp_path / "runs" / "a").symlink_to("b")
    (tmp_path / "runs" / "b").symlink_to("a")
    (tmp_path / "runs" / "c.json").symlink_to("c.json")
    assert rm.list_ids() == ["runs/1"] and [rid for rid, _ in rm.iter_results()] == ["runs/1"]
    assert rm.list_ids("runs/a") == [] and len(rm.admin.documents()) == 1
    with pytest.raises(InvalidIdError, match="loop of symbolic links"):
        rm.get("runs/a/x")
    with pytest.raises(InvalidIdError, match="loop of symbolic links"):
        rm.set("runs/a/x", Point(x=1, y=1))
    assert main(["--uri", str(tmp_path), "ls"]) == 0
    out, err = capsys.readouterr()
    assert "runs/1" in out and "Traceback" not in err
    rm.clear()
    assert rm.list_ids() == [] and (tmp_path / "loop").is_symlink()


EXPORT_PEAK = """
import io, sys, tracemalloc
from mongo_results.cli import main

class Discard(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)

tracemalloc.start()
assert main(["--uri", sys.argv[1], "export"], out=Discard()) == 0
print(tracemalloc.get_traced_memory()[1])
"""


def test_export_of_a_file_store_streams(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Blob(BaseModel):
        text: str

    rm = ResultsManager(tmp_path)
    for i in range(200):
        rm.set(f"big/{i:03d}", Blob(text=chr(97 + i % 26) * (1 << 20)))
    total = sum(p.stat().st_size for p in (tmp_path / "big").iterdir())
    run = subprocess.run([sys.executable, "-c", EXPORT_PEAK, str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "exported 200 results" in run.stderr
    assert int(run.stdout) < total / 4  # before: more than the whole store (1.1 times it)


class FailingDisk:
    """Makes the ``nth`` disk call of the file store's modules fail with EIO (0: none), counting them all."""

    PATH_METHODS = ("read_text", "mkdir", "unlink", "stat", "iterdir", "rmdir", "is_dir", "is_file", "exists")
    OS_FUNCTIONS = ("open", "close", "fsync", "replace", "scandir", "stat", "utime", "lseek")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from mongo_results.stores import file_documents, file_tree, files, locks

        self.calls, self.nth, self.armed = 0, 0, False
        for name in self.PATH_METHODS:
            monkeypatch.setattr(Path, name, self._failing(getattr(Path, name)))
        shim = type("os", (), {})()
        for name in dir(os):
            setattr(shim, name, getattr(os, name))
        for name in self.OS_FUNCTIONS:
            setattr(shim, name, self._failing(getattr(os, name)))
        for module in (file_tree, file_documents, files, locks):
            monkeypatch.setattr(module, "os", shim, raising=False)
        monkeypatch.setattr(file_tree, "open", self._failing(open), raising=False)

    def _failing(self, call: Any) -> Any:
        def failing(*args: Any, **kwargs: Any) -> Any:
            if self.armed:
                self.calls += 1
                if self.calls == self.nth:
                    raise OSError(errno.EIO, "injected: input/output error")
            return call(*args, **kwargs)

        return failing


def _claim_and_release(rm: ResultsManager, rid: str) -> None:
    claim = rm.claim(rid, lease=60)
    if claim is not None:
        claim.release()


def _every_kind_of_call(rm: ResultsManager) -> list[BaseException]:
    """A sweep's calls on a file store; what each raised."""
    raised: list[BaseException] = []
    calls = [
        lambda: rm.set("s/1", Metrics(loss=1, accuracy=0.5)),
        lambda: rm.set("s/1", Metrics(loss=2, accuracy=0.5), SetBehavior.OVERWRITE),
        lambda: rm.set_many([(f"s/{i}", Metrics(loss=i, accuracy=0.5)) for i in range(2, 5)]),
        lambda: rm.get("s/1", Metrics),
        lambda: rm.list_ids("s"),
        lambda: list(rm.iter_results("s")),
        lambda: list(rm.find({"loss": {"$gte": 2}})),
        lambda: rm.missing(["s/1", "s/9"]),
        lambda: rm.delete("s/2"),
        lambda: _claim_and_release(rm, "s/9"),
        lambda: rm.failures(),
        lambda: rm.admin.doctor(),
    ]
    for call in calls:
        try:
            call()
        except Exception as exc:
            raised.append(exc)
    return raised


def test_a_disk_that_fails_at_any_call_raises_only_library_errors_and_leaves_the_store_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_model(Metrics)
    disk = FailingDisk(monkeypatch)
    disk.armed = True
    _every_kind_of_call(ResultsManager(tmp_path / "count"))  # counts the disk calls of the whole sweep
    total, disk.armed = disk.calls, False
    assert total > 50, total
    for nth in range(1, total + 1):
        store = tmp_path / f"at-{nth}"
        rm = ResultsManager(store)
        disk.calls, disk.nth, disk.armed = 0, nth, True
        raised = _every_kind_of_call(rm)
        disk.armed = False
        leaked = [e for e in raised if not isinstance(e, MongoResultsError)]
        assert not leaked, f"disk call {nth} of {total}: {leaked[0]!r}"
        assert all(isinstance(e, OSError) for e in raised if "injected" in str(e)), raised
        # What was written is whole: every listed result reads back.
        again = ResultsManager(store)
        again.admin.doctor(fix=True)
        for rid in again.list_ids():
            again.get(rid, Metrics)
