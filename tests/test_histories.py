"""Readers while writers in other processes overwrite: every read is a value of the id's history.

Each writer records, per write, the value it stored and when the call began and ended (the
monotonic clock, which every process of the machine shares). A read is correct when each id
comes once, and its value was written by a call that began before the read ended and was not
overwritten by a call that began after it ended and ended before the read began.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mongo_results import MongoBackend, ResultsManager, SetBehavior, register_model

IDS = [f"h/{i}" for i in range(6)]
WRITES = 120  # per writer and id... in all: each writer goes round the ids this many times


class Value(BaseModel):
    version: int
    writer: int
    note: str


Write = tuple[str, int, int, int]  # id, version, began, ended (ns)


def _open(spec: tuple[str, str, str | None]) -> ResultsManager:
    kind, where, database = spec
    register_model(Value)
    if kind == "file":
        return ResultsManager(where)
    return ResultsManager(backend=MongoBackend(where, database=database))


def _write(spec: tuple[str, str, str | None], writer: int, out: Any) -> None:
    rm = _open(spec)
    log: list[Write] = []
    for k in range(WRITES):
        for rid in IDS:
            version = writer * 1_000_000 + k + 1
            began = time.monotonic_ns()
            rm.set(rid, Value(version=version, writer=writer, note="x" * (k % 7)), SetBehavior.OVERWRITE)
            log.append((rid, version, began, time.monotonic_ns()))
    rm.close()
    out.put(log)


def _stale(history: dict[str, list[Write]], rid: str, version: int, began: int, ended: int) -> str | None:
    writes = history[rid]
    mine = [w for w in writes if w[1] == version]
    if not mine:
        return f"{rid}: version {version} was never written"
    w = mine[0]
    if w[2] > ended:
        return f"{rid}: version {version} was read before its write began"
    newer = [v for v in writes if v[2] > w[3] and v[3] < began]
    if newer:
        return f"{rid}: version {version} was overwritten by {newer[0][1]} before the read began"
    return None


@pytest.mark.real_server
@pytest.mark.parametrize("kind", ["file", "server"])
def test_reads_while_writers_overwrite_return_each_id_once_from_its_history(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "file":
        spec: tuple[str, str, str | None] = ("file", str(tmp_path / "store"), None)
    else:
        uri, name = request.getfixturevalue("server_db")
        spec = ("server", uri, name)
    rm = _open(spec)
    history: dict[str, list[Write]] = {rid: [] for rid in IDS}
    for rid in IDS:
        began = time.monotonic_ns()
        rm.set(rid, Value(version=0, writer=-1, note=""), SetBehavior.OVERWRITE)
        history[rid].append((rid, 0, began, time.monotonic_ns()))
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    writers = [ctx.Process(target=_write, args=(spec, w, out)) for w in (1, 2)]
    for p in writers:
        p.start()

    reads: list[tuple[str, int, int, dict[str, int]]] = []  # what, began, ended, id -> version

    def read(what: str, call: Callable[[], list[tuple[str, int]]]) -> None:
        began = time.monotonic_ns()
        pairs = call()
        ended = time.monotonic_ns()
        ids = [rid for rid, _ in pairs]
        assert len(ids) == len(set(ids)), f"{what} gave an id twice: {sorted(ids)}"
        assert set(ids) == set(IDS), f"{what} missed ids: {sorted(set(IDS) - set(ids))}"
        reads.append((what, began, ended, dict(pairs)))

    def table() -> list[tuple[str, int]]:
        t = rm.to_arrow("h", Value)
        return list(zip(t.column("id").to_pylist(), t.column("version").to_pylist(), strict=True))

    deadline = time.monotonic() + 240
    done: list[list[Write]] = []
    while len(done) < len(writers):
        assert time.monotonic() < deadline, "the writers did not finish"
        read("iter_results", lambda: [(r, m.version) for r, m in rm.iter_results("h", Value, batch_size=2)])
        read("get", lambda: [(r, rm.get(r, Value).version) for r in IDS])
        read("list_ids", lambda: [(r, -1) for r in rm.list_ids("h")])
        if kind == "server":
            read("to_arrow", table)
        while not out.empty():
            done.append(out.get())
    for p in writers:
        p.join(30)
        assert p.exitcode == 0
    for log in done:
        for w in log:
            history[w[0]].append(w)
    problems = [
        f"{what}: {found}"
        for what, began, ended, values in reads
        for rid, version in values.items()
        if version >= 0 and (found := _stale(history, rid, version, began, ended)) is not None
    ]
    assert not problems, problems[:5]
    assert len(reads) >= 8, f"only {len(reads)} reads overlapped the writes"
    rm.close()


def test_the_checker_refuses_a_stale_or_unwritten_value() -> None:
    history: dict[str, list[Write]] = {"a": [("a", 1, 0, 10), ("a", 2, 20, 30), ("a", 3, 25, 50)]}
    assert _stale(history, "a", 1, 40, 60) is not None  # 2 was written between 1 and the read
    assert _stale(history, "a", 2, 40, 60) is None  # 3 is still being written: either may come
    assert _stale(history, "a", 3, 5, 15) is not None  # read before 3 was sent
    assert _stale(history, "a", 9, 40, 60) is not None
