"""What only asyncio code meets: event loops, forks, gather and cancellation."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import random
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mongo_results import AsyncMongoBackend, AsyncResultsManager, FileBackend, SetBehavior

from .models import Metrics

KINDS = ["async-mongomock", "async-server", "motor-server", "async-file"]


async def open_manager(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[AsyncResultsManager, Any]:
    """A fresh async manager of this kind, made inside the running loop, and what to close after it."""
    if kind == "async-file":
        return AsyncResultsManager(tmp_path / "store"), None
    if kind == "async-mongomock":
        return AsyncResultsManager(f"mongomock://localhost/a_{id(request)}"), None
    uri, name = request.getfixturevalue("server_db")
    if kind == "async-server":
        return AsyncResultsManager(backend=AsyncMongoBackend(uri, database=name)), None
    from motor.motor_asyncio import AsyncIOMotorClient

    motor: Any = AsyncIOMotorClient(uri)
    return AsyncResultsManager(backend=AsyncMongoBackend(motor[name])), motor


CASES = [
    (SetBehavior.RAISE_IF_EXISTS, {"True": 1, "exists": 19}),
    (SetBehavior.SKIP_IF_EXISTS, {"True": 1, "False": 19}),
    (SetBehavior.RAISE_IF_DIFFERENT, {"True": 20}),
    (SetBehavior.OVERWRITE, {"True": 20}),
    (SetBehavior.KEEP_EXISTING, {"True": 1, "False": 19}),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("behavior", "expected"), CASES, ids=lambda v: getattr(v, "name", ""))
def test_gather_of_400_sets(
    kind: str, behavior: SetBehavior, expected: dict[str, int], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """400 concurrent sets of identical content on 20 ids: the outcomes of a serial order."""

    async def main() -> list[tuple[str, str]]:
        rm, extra = await open_manager(kind, request, tmp_path)
        model = Metrics(loss=0.5, accuracy=0.5)

        async def one(rid: str) -> tuple[str, str]:
            try:
                return rid, str(await rm.set(rid, model, behavior))
            except FileExistsError:
                return rid, "exists"

        ids = [f"g/{i % 20}" for i in range(400)]
        random.Random(7).shuffle(ids)
        outcomes = await asyncio.gather(*(one(rid) for rid in ids))
        assert await rm.list_ids("g") == sorted({*ids})
        assert all([await rm.get(f"g/{i}", Metrics) == model for i in range(20)])
        await rm.close()
        if extra is not None:
            extra.close()
        return outcomes

    outcomes = asyncio.run(main())
    for i in range(20):
        assert Counter(o for rid, o in outcomes if rid == f"g/{i}") == Counter(expected)


# PyMongo's async pool can leave the socket of a cancelled operation to the garbage collector
# (PYTHON-5867, mongo-python-driver #2858); that warning is the driver's, not a leak of ours.
@pytest.mark.filterwarnings("ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
@pytest.mark.parametrize("kind", KINDS)
def test_cancelled_tasks_leave_no_partial_document(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    async def main() -> None:
        rm, extra = await open_manager(kind, request, tmp_path)
        await rm.set("warm", Metrics(loss=0, accuracy=0))
        tasks = [
            asyncio.create_task(rm.set(f"c/{i}", Metrics(loss=i, accuracy=i, step=i), SetBehavior.OVERWRITE))
            for i in range(200)
        ]
        rng = random.Random(3)
        for _ in range(5):  # cancel before they start and at several points of their flight
            for task in rng.sample(tasks, 30):
                task.cancel()
            await asyncio.sleep(0)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        assert 0 < cancelled < 200
        stored = await rm.list_ids("c")
        for rid in stored:  # whatever got stored is whole and valid
            i = int(rid.split("/")[1])
            assert await rm.get(rid, Metrics) == Metrics(loss=i, accuracy=i, step=i)
        completed = {f"c/{i}" for i, r in enumerate(results) if r is True}
        assert completed <= set(stored)
        await rm.close()
        if extra is not None:
            extra.close()

    asyncio.run(main())
    gc.collect()  # within this test, so the driver's socket warning is filtered here


def test_a_second_event_loop_gets_its_own_client(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    backend = AsyncMongoBackend(uri, database=name)
    rm = AsyncResultsManager(backend=backend)
    clients = []

    async def use(step: int) -> list[str]:
        await rm.set(f"loop/{step}", Metrics(loss=step, accuracy=0))
        clients.append(backend._client)
        ids = await rm.list_ids("loop")
        await rm.close()
        return ids

    assert asyncio.run(use(1)) == ["loop/1"]
    assert asyncio.run(use(2)) == ["loop/1", "loop/2"]
    assert clients[0] is not clients[1]


def async_worker(rm: AsyncResultsManager, i: int) -> bool:
    """Runs in a worker process: its own loop, its own client."""

    async def main() -> bool:
        written = await rm.set(f"fork/{i % 5}", Metrics(loss=0.1, accuracy=0.2), SetBehavior.SKIP_IF_EXISTS)
        await rm.close()
        return written

    return asyncio.run(main())


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_async_manager_in_worker_processes(server_db: tuple[str, str], method: str) -> None:
    uri, name = server_db
    rm = AsyncResultsManager(backend=AsyncMongoBackend(uri, database=name))
    assert asyncio.run(_prime(rm))  # the parent used it before forking
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context(method)) as pool:
        written = list(pool.map(async_worker, [rm] * 20, range(20)))
    assert sum(written) == 4  # fork/0 was stored by the parent; fork/1..4 once each

    async def check() -> list[str]:
        ids = await rm.list_ids("fork")
        await rm.close()
        return ids

    assert asyncio.run(check()) == [f"fork/{i}" for i in range(5)]


async def _prime(rm: AsyncResultsManager) -> bool:
    written = await rm.set("fork/0", Metrics(loss=0.1, accuracy=0.2))
    await rm.close()
    return written


def test_file_store_keeps_disk_io_off_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: set[int] = set()
    original = FileBackend._execute

    def recording(self: FileBackend, *args: Any, **kwargs: Any) -> Any:
        threads.add(threading.get_ident())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FileBackend, "_execute", recording)

    async def main() -> int:
        rm = AsyncResultsManager(tmp_path)
        await asyncio.gather(*(rm.set(f"f/{i}", Metrics(loss=i, accuracy=0)) for i in range(20)))
        assert len(await rm.list_ids("f")) == 20
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads and loop_thread not in threads
