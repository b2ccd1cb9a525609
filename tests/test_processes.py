"""Managers handed to worker processes, under fork and spawn."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import uuid
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import pytest

from mongo_results import MongoBackend, ResultsManager, SetBehavior
from mongo_results.stores.mongo import say_once

from .models import Metrics


def store_one(rm: ResultsManager, rid: str, step: int) -> tuple[bool, list[str]]:
    """Runs in a worker: SKIP_IF_EXISTS one result, reporting any warning raised meanwhile."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = rm.set(rid, Metrics(loss=step / 10, accuracy=0.5, step=step), SetBehavior.SKIP_IF_EXISTS)
    return written, [str(w.message) for w in caught]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_store_through_a_shared_manager(shared_store: ResultsManager, method: str) -> None:
    shared = shared_store
    shared.set("warmup", Metrics(loss=0, accuracy=0))  # the parent has an open connection before forking
    ids = [f"sweep/{i % 12}" for i in range(36)]  # each id three times, identical content
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=4, mp_context=ctx) as pool:
        results = list(pool.map(store_one, [shared] * len(ids), ids, [int(r.split("/")[1]) for r in ids]))
    assert [w for _, ws in results for w in ws] == []  # no "MongoClient opened before fork"
    written = Counter(rid for rid, (ok, _) in zip(ids, results, strict=True) if ok)
    assert written == Counter({f"sweep/{i}": 1 for i in range(12)})  # exactly one writer per id
    assert shared.list_ids("sweep") == sorted({*ids})
    assert shared.get("sweep/5", Metrics) == Metrics(loss=0.5, accuracy=0.5, step=5)
    shared.close()


def test_one_client_per_process(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    rm = ResultsManager(backend=MongoBackend(uri, database=name, validation="error", path_index=True))
    rm.set("r", Metrics(loss=1, accuracy=1))
    clone = pickle.loads(pickle.dumps(rm))
    assert clone.backend._client is None
    assert clone.backend.validation == "error" and clone.backend.path_index
    assert clone.list_ids() == ["r"]
    assert clone.backend._client is rm.backend._client
    clone.close()
    assert rm.list_ids() == ["r"]  # the other reference keeps the shared client open
    rm.close()


def write_elsewhere(rm: ResultsManager) -> None:
    """Runs in another process: a result in a namespace the parent has not seen yet."""
    rm.set("late/1", Metrics(loss=0.25, accuracy=1, step=7), namespace="created-later")


def test_a_namespace_another_process_just_created_is_found_at_once(shared_store: ResultsManager) -> None:
    shared_store.set("early/1", Metrics(loss=0, accuracy=0), namespace="first")
    assert not shared_store.exists("late/1")  # the parent's listing of namespaces is now fresh
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(write_elsewhere, shared_store).result()
    # Within the listing's second: never a false "not found".
    assert shared_store.exists("late/1")
    assert shared_store.get("late/1", Metrics).step == 7
    assert shared_store.get_many(["late/1"], Metrics)[0].step == 7
    shared_store.close()


def open_embedded_in_a_worker(uri: str) -> list[str]:
    """Runs in a worker: opening an embedded store there."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ResultsManager(uri)
    return [str(w.message) for w in caught]


def use_inherited(rm: ResultsManager) -> str:
    """Runs in a forked worker with the parent's manager: the embedded store is not there."""
    try:
        rm.set("lost", Metrics(loss=1, accuracy=1))
    except RuntimeError as exc:
        return type(exc).__name__
    return "written"


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_the_embedded_store_is_never_silently_lost_in_a_worker(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        [warning] = pool.submit(open_embedded_in_a_worker, "mongomock://localhost/lost").result()
    assert "worker" in warning and "directory path or a mongodb:// URI" in warning


def test_a_raw_fork_warns_when_it_opens_an_embedded_store() -> None:
    uri = f"mongomock://localhost/raw_{uuid.uuid4().hex[:8]}"
    assert open_embedded_in_a_worker(uri) == []  # the parent's own store
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once, before any of pytest's teardown runs in it
        try:
            os.close(read)
            os.write(write, json.dumps(open_embedded_in_a_worker(uri)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        said: list[str] = json.loads(answer.read())
    assert os.waitpid(pid, 0)[1] == 0
    [warning] = [w for w in said if "embedded store" in w]
    assert "forked" in warning and "never seen by its parent" in warning
    assert open_embedded_in_a_worker(uri) == []  # the parent still does not warn


def test_a_forked_worker_cannot_write_into_its_parents_embedded_store() -> None:
    global INHERITED
    INHERITED = ResultsManager("mongomock://localhost/inherited")
    INHERITED.set("here", Metrics(loss=1, accuracy=1))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        assert pool.submit(_use_module_level).result() == "WrongProcessError"
    assert INHERITED.list_ids() == ["here"]


INHERITED: ResultsManager | None = None


def _use_module_level() -> str:
    assert INHERITED is not None
    return use_inherited(INHERITED)


def note_in_a_worker(message: str) -> list[tuple[int, str]]:
    """Runs in a worker: which records a note gives there."""
    records: list[tuple[int, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append((record.levelno, record.getMessage()))

    logger = logging.getLogger("mongo_results")
    logger.addHandler(Keep())
    logger.setLevel(logging.DEBUG)
    say_once(message)
    return records


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_note_is_a_warning_once_in_the_sweep_and_info_in_its_workers(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    said = f"parent note {uuid.uuid4().hex}"
    with caplog.at_level(logging.WARNING, "mongo_results"):
        say_once(said)
        say_once(said)
    assert [r.getMessage() for r in caplog.records] == [said]
    before = dict(os.environ)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as pool:
        # A worker says it at INFO, once (a forked one knows it was said): the sweep's process warned.
        first = [] if method == "fork" else [(logging.INFO, said)]
        assert pool.submit(note_in_a_worker, said).result() == first
        assert pool.submit(note_in_a_worker, said).result() == []
    assert dict(os.environ) == before  # the environment is the user's: nothing written there
