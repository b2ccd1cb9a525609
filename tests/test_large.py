"""Results over 16 MiB: the same API on every store; on MongoDB their largest fields live in GridFS."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pydantic import BaseModel
from pymongo import MongoClient

from mongo_results import (
    AsyncMongoBackend,
    AsyncResultsManager,
    MongoBackend,
    ResultExistsError,
    ResultNotFoundError,
    ResultsManager,
    SetBehavior,
    register_model,
)
from mongo_results.core.large import GRACE
from mongo_results.core.runloop import run
from mongo_results.errors import CorruptResultError, InvalidNamespaceError, SkippedResultsWarning

MIB = 1024 * 1024


class Scan(BaseModel):
    """A result with a few small fields and one large one (an image, a trace)."""

    name: str
    loss: float
    pixels: bytes
    tags: list[str] = []


def sized(name: str, pixels: bytes) -> Scan:
    """A result with these pixels (under 16 MiB: tests lower the limit to see GridFS at work)."""
    return Scan(name=name, loss=0.1, pixels=pixels, tags=["raw", name])


def scan(name: str, mib: int, fill: int = 1) -> Scan:
    return Scan(name=name, loss=0.1 * fill, pixels=bytes([fill]) * (mib * MIB), tags=["raw", name])


def test_a_result_of_20_mib_behaves_as_a_small_one(rm: ResultsManager, kind: str) -> None:
    register_model(Scan)
    mib = 20
    if kind.endswith("ferretdb1"):
        # FerretDB 1.x on SQLite takes 20 s over 20 MiB; its path is the same past a lowered limit
        # (GridFS beyond the store's largest document), and the servers keep the real 16 MiB one.
        engine = rm.admin.engine()  # asked first: an async store's operations belong to the loop that asked
        loop: Any = getattr(rm, "loop", None)  # the async manager's, driven by the suite

        async def in_the_loop() -> Any:
            return rm.backend._operations()

        ops = loop.run_until_complete(in_the_loop()) if loop is not None else rm.backend._operations()
        ops.engine = dataclasses.replace(engine, max_document=MIB)
        mib = 2
    big, other = scan("a", mib), scan("a", mib + 1, fill=2)
    assert rm.set("scans/a", big) is True
    assert ("gridfs" in rm.admin.documents("scans/a")[0]) is not kind.endswith(("file", "mongomock"))
    assert rm.exists("scans/a") and rm.list_ids("scans") == ["scans/a"]
    assert rm.get("scans/a", Scan) == big
    assert rm.get_many(["scans/a"]) == [big]
    assert [(i, m) for i, m in rm.iter_results("scans")] == [("scans/a", big)]
    assert [i for i, _ in rm.find({"loss": {"$lt": 0.15}, "tags": "raw"})] == ["scans/a"]  # its small fields
    # The large field is in GridFS on a server, out of find's sight; the other stores keep it in place.
    whole = kind.endswith(("file", "mongomock"))
    assert [i for i, _ in rm.find({"pixels": {"$exists": True}})] == (["scans/a"] if whole else [])
    # Every behaviour reads the digest of the whole content.
    with pytest.raises(ResultExistsError):
        rm.set("scans/a", big)
    assert rm.set("scans/a", big, behavior=SetBehavior.SKIP_IF_EXISTS) is False
    assert rm.set("scans/a", big, behavior=SetBehavior.RAISE_IF_DIFFERENT) is True
    with pytest.raises(ResultExistsError, match="Different data"):
        rm.set("scans/a", other, behavior=SetBehavior.RAISE_IF_DIFFERENT)
    assert rm.set("scans/a", other, behavior=SetBehavior.KEEP_EXISTING) is False
    assert rm.get("scans/a", Scan) == big
    assert rm.set("scans/a", other, behavior=SetBehavior.SKIP_IF_EXISTS) is True
    assert rm.get("scans/a", Scan) == other
    small = Scan(name="a", loss=0.5, pixels=b"tiny")
    assert rm.set("scans/a", small, behavior=SetBehavior.OVERWRITE) is True
    assert rm.get("scans/a", Scan) == small
    assert rm.set("scans/a", big, behavior=SetBehavior.OVERWRITE) is True
    assert rm.get("scans/a", Scan) == big
    assert rm.set_many({"scans/b": other, "scans/c": small}) == [True, True]
    assert rm.get_many(["scans/b", "scans/c", "scans/a"]) == [other, small, big]
    assert rm.delete("scans/a") is True
    assert not rm.exists("scans/a") and rm.delete("scans/a") is False
    with pytest.raises(ResultNotFoundError):
        rm.get("scans/a")
    assert rm.list_ids() == ["scans/b", "scans/c"]


# -- GridFS on the servers -------------------------------------------------------------------


def _manager(uri: str, name: str, limit: int | None = None) -> ResultsManager:
    """A manager on a server; ``limit`` lowers the 16 MiB limit so the GridFS path runs on small results."""
    rm: ResultsManager = ResultsManager(backend=MongoBackend(uri, database=name))
    if limit is not None:
        ops = rm.backend._operations()
        ops.engine = dataclasses.replace(rm.admin.engine(), max_document=limit)
    return rm


@pytest.fixture
def limited(either_db: tuple[str, str]) -> tuple[ResultsManager, str, str]:
    """A manager on either server whose limit is 64 KiB, so GridFS is at work on small results."""
    uri, name = either_db
    register_model(Scan)
    return _manager(uri, name, limit=64 * 1024), uri, name


def _after_grace(rm: ResultsManager) -> None:
    """Move the manager's clock past GRACE, as if the files it finds were written long ago."""
    ops = rm.backend._operations()
    later = ops.clock() + GRACE + timedelta(seconds=1)
    ops.clock = lambda: later


def _settled(uri: str, name: str) -> None:
    """Wait until the server has finished what a killed writer had sent: its chunks stop arriving.

    A server runs a command to its end after its client is gone, so chunks of an upload can
    land after the kill, and after a doctor that looked before them.
    """
    deadline = time.monotonic() + 60
    before = _files(uri, name)
    while time.monotonic() < deadline:
        time.sleep(0.25)  # polled: two looks alike this far apart end it
        now = _files(uri, name)
        if now == before:
            return
        before = now
    raise AssertionError("the killed writer's chunks kept arriving for a minute")


def _files(uri: str, name: str) -> tuple[int, int]:
    """How many GridFS files and chunks the store holds."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    with client:
        db = client[name]
        return db["results._gridfs.files"].count_documents({}), db["results._gridfs.chunks"].count_documents({})


def test_the_stored_form_in_compass(either_db: tuple[str, str]) -> None:
    uri, name = either_db
    rm = _manager(uri, name)
    register_model(Scan)
    rm.set("scans/a", scan("a", 20))
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    with client:
        db = client[name]
        doc = db["results.default"].find_one({"_id": "scans/a"})
        assert doc is not None
        # The small fields stay in the document; the large one is in GridFS, named by the document.
        assert doc["data"] == {"name": "a", "loss": 0.1, "tags": ["raw", "a"]}
        assert doc["gridfs"]["fields"] == ["pixels"] and doc["gridfs"]["length"] > 20 * MIB
        file = db["results._gridfs.files"].find_one({"_id": doc["gridfs"]["file_id"]})
        assert file is not None and file["filename"] == "scans/a" and file["length"] == doc["gridfs"]["length"]
        assert file["metadata"] == {
            "result": "scans/a",
            "namespace": "default",
            "digest": doc["digest"],
            "fields": ["pixels"],
        }
    assert run(rm.backend._operations().namespaces(), rm.backend._execute) == ["default"]  # not the bucket
    # find sees the fields kept in the document (as the README says), not those in the file.
    assert [i for i, _ in rm.find({"tags": "raw"}, model_class=Scan)] == ["scans/a"]
    assert list(rm.find({"pixels": {"$exists": True}}, model_class=Scan)) == []
    with pytest.raises(InvalidNamespaceError, match="_gridfs"):
        rm.set("x", scan("x", 0), namespace="_gridfs.files")
    rm.clear()
    assert _files(uri, name) == (0, 0)


def test_overwrite_and_delete_remove_the_old_file(limited: tuple[ResultsManager, str, str]) -> None:
    rm, uri, name = limited
    rm.set("s", sized("s", b"1" * 300_000))
    assert _files(uri, name) == (1, 2)
    rm.set("s", sized("s", b"2" * 600_000), behavior=SetBehavior.OVERWRITE)
    assert _files(uri, name) == (1, 3)
    rm.set("s", scan("s", 0), behavior=SetBehavior.SKIP_IF_EXISTS)  # small over large
    assert _files(uri, name) == (0, 0)
    rm.set("s", sized("s", b"3" * 300_000), behavior=SetBehavior.SKIP_IF_EXISTS)
    assert rm.set_many({"s": scan("s", 0)}, behavior=SetBehavior.OVERWRITE) == [True]  # in bulk too
    assert _files(uri, name) == (0, 0)
    rm.set("s", sized("s", b"4" * 300_000), behavior=SetBehavior.OVERWRITE)
    rm.set("t", sized("t", b"5" * 300_000))
    assert rm.delete("s") and _files(uri, name) == (1, 2)
    # A write that stores nothing leaves no file behind.
    with pytest.raises(ResultExistsError):
        rm.set("t", sized("t", b"6" * 300_000))
    assert rm.set("t", sized("t", b"5" * 300_000), behavior=SetBehavior.RAISE_IF_DIFFERENT)
    assert _files(uri, name) == (1, 2)
    assert "problem:" not in str(rm.admin.doctor())


def test_a_crash_between_the_file_and_the_document_leaves_no_result(limited: tuple[ResultsManager, str, str]) -> None:
    rm, uri, name = limited
    ops = rm.backend._operations()
    # The writer stops right after its file is written (the process died there).
    operation = ops.set(
        "s",
        sized("s", b"x" * 300_000),
        SetBehavior.RAISE_IF_EXISTS,
        None,
        False,
        secrets=False,
    )
    step = next(operation)
    while type(step).__name__ != "PutFile":
        step = operation.send(rm.backend._execute(step))
    rm.backend._execute(step)
    operation.close()
    assert _files(uri, name) == (1, 2)
    assert not rm.exists("s") and rm.list_ids() == []
    with pytest.raises(ResultNotFoundError):
        rm.get("s")
    # An upload cut short leaves chunks with no files document.
    stray = ObjectId.from_datetime(ops.clock() - 2 * GRACE)
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    with client:
        client[name]["results._gridfs.chunks"].insert_one({"files_id": stray, "n": 0, "data": b"partial"})
    report = str(rm.admin.doctor())
    assert "1 file(s) no result names yet: writes in progress, left alone" in report  # the young orphan
    assert "problem: 0 file(s) no result names and 1 incomplete upload(s)" in report
    _after_grace(rm)
    assert "problem: 1 file(s) no result names and 1 incomplete upload(s)" in str(rm.admin.doctor())
    assert "fixed: removed 1 file(s) no result names and 1 incomplete upload(s)" in str(rm.admin.doctor(fix=True))
    assert _files(uri, name) == (0, 0)
    assert "problem:" not in str(rm.admin.doctor())


def test_a_result_that_lost_its_file_is_reported_not_half_read(limited: tuple[ResultsManager, str, str]) -> None:
    rm, uri, name = limited
    rm.set("a", sized("a", b"a" * 300_000))
    rm.set("b", scan("b", 0))
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    with client:
        client[name]["results._gridfs.files"].delete_many({})
    with pytest.raises(CorruptResultError, match="lost the GridFS file that holds its fields pixels"):
        rm.get("a")
    with pytest.warns(SkippedResultsWarning, match="1 stored result"):
        assert [i for i, _ in rm.iter_results(on_error="skip")] == ["b"]
    report = str(rm.admin.doctor())
    assert "1 result(s) lost their file" in report and "    a" in report


def test_concurrent_writers_and_readers_see_whole_results_and_leave_no_file(either_db: tuple[str, str]) -> None:
    uri, name = either_db
    register_model(Scan)
    versions = [sized("s", bytes([i]) * (300_000 if i % 2 else 10)) for i in range(6)]
    _manager(uri, name, limit=64 * 1024).set("s", versions[0])
    errors: list[BaseException] = []
    seen: set[bytes] = set()
    stop = threading.Event()

    def write(k: int) -> None:
        rm = _manager(uri, name, limit=64 * 1024)
        for round in range(6):
            behavior = (SetBehavior.OVERWRITE, SetBehavior.SKIP_IF_EXISTS)[round % 2]
            try:
                rm.set("s", versions[(k + round) % len(versions)], behavior=behavior)
            except BaseException as exc:
                errors.append(exc)

    def read() -> None:
        rm = _manager(uri, name, limit=64 * 1024)
        while not stop.is_set():
            try:
                got = rm.get("s", Scan)
            except BaseException as exc:
                errors.append(exc)
                return
            assert got in versions, "a mix of two versions"
            seen.add(got.pixels[:1])

    writers = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert not errors, errors
    rm = _manager(uri, name)
    stored = rm.get("s", Scan)
    assert stored in versions
    large = len(stored.pixels) > 64 * 1024
    if rm.admin.engine().version.startswith("v1."):
        # FerretDB 1.x applies a filtered update without isolation: two writers can both replace
        # the version they read, and the loser's file is left unnamed (never a result without its
        # file). doctor --fix removes it; the reference server needs no fixing.
        _after_grace(rm)
        rm.admin.doctor(fix=True)
    assert _files(uri, name)[0] == int(large)  # exactly the file the result names, or none
    assert "problem:" not in str(rm.admin.doctor())


def test_upgrade_rewrites_a_large_result_and_removes_its_old_file(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    rm = _manager(uri, name, limit=64 * 1024)
    register_model(Scan)
    rm.set("a", sized("a", b"a" * 300_000))

    class Scan2(BaseModel):
        name: str
        loss: float
        pixels: bytes
        tags: list[str] = []
        units: str  # a required field added after results were stored

    register_model(Scan2)
    done = rm.admin.upgrade(None, Scan2, lambda old: Scan2(**old, units="mm"), old_types=["Scan"])
    assert done.upgraded == 1
    assert rm.get("a", Scan2).units == "mm" and rm.get("a", Scan2).pixels == b"a" * 300_000
    assert _files(uri, name) == (1, 2)  # the new file only
    assert "problem:" not in str(rm.admin.doctor())


def test_a_writer_killed_mid_upload_leaves_no_half_result(server_db: tuple[str, str], tmp_path: Path) -> None:
    uri, name = server_db
    script = tmp_path / "writer.py"
    script.write_text(
        f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from mongo_results import MongoBackend, ResultsManager, SetBehavior
from tests.test_large import scan
rm = ResultsManager(backend=MongoBackend({uri!r}, database={name!r}))
for i in range(100):
    rm.set(f"s/{{i % 3}}", scan("s", 40, fill=i % 250), behavior=SetBehavior.OVERWRITE)
"""
    )
    writer = subprocess.Popen([sys.executable, str(script)])
    # PyMongo writes a file's chunks in one insert, then its files document, then the result's
    # document follows: the kill lands anywhere among them, or between two sets.
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    with client:
        chunks = client[name]["results._gridfs.chunks"]
        deadline = time.monotonic() + 120
        while chunks.count_documents({}) == 0 and time.monotonic() < deadline:  # its first file is written
            time.sleep(0.01)
    time.sleep(random.Random(332).uniform(0.0, 3.0))  # where among the writes the kill lands: one seed
    assert writer.poll() is None, "the writer ended before it was killed"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    _settled(uri, name)
    rm = _manager(uri, name)
    register_model(Scan)
    for rid, model in rm.iter_results(model_class=Scan):
        assert model.pixels == bytes([model.pixels[0]]) * (40 * MIB), rid  # whole, never half
    _after_grace(rm)
    rm.admin.doctor(fix=True)
    named = len(rm.list_ids())
    assert _files(uri, name)[0] == named
    assert "problem:" not in str(rm.admin.doctor())


def test_async_clients_use_their_own_gridfs(server_db: tuple[str, str]) -> None:
    import asyncio

    from motor.motor_asyncio import AsyncIOMotorClient

    uri, name = server_db
    register_model(Scan)
    big = scan("a", 20)

    async def main() -> None:
        motor: Any = AsyncIOMotorClient(uri)
        for rm in (
            AsyncResultsManager(backend=AsyncMongoBackend(uri, database=name)),
            AsyncResultsManager(backend=AsyncMongoBackend(motor[name])),
        ):
            await rm.set("a", big, behavior=SetBehavior.OVERWRITE)
            assert await rm.get("a", Scan) == big
            assert await rm.delete("a")
            await rm.close()
        motor.close()

    asyncio.run(main())
    assert _files(uri, name) == (0, 0)
