"""Concurrent writers on the same ids get the outcomes of some serial order.

8 worker processes with 4 threads each, 32 callers, start together (a barrier all of
them wait at) and each calls ``set`` once on every id. The outcomes are then checked
against what a serial order allows, and every stored document against what some
writer wrote.
"""

from __future__ import annotations

import multiprocessing
import threading
import traceback
from collections import Counter
from typing import Any

import pytest

from mongo_results import ResultsManager, SetBehavior

from .models import Metrics
from .servers import citus_tasks

PROCESSES, THREADS, IDS = 8, 4, 12


def caller(rm: ResultsManager, behavior: SetBehavior, same: bool, writer: int, start: Any) -> list[tuple[str, str]]:
    """One thread's calls: (id, outcome) with outcome 'True', 'False' or 'exists'."""
    model = Metrics(loss=0.5, accuracy=0.5, step=0 if same else writer)
    start.wait(60)  # every caller of every process is here: they go together
    out = []
    for i in range(IDS):
        rid = f"race/{i}"
        try:
            out.append((rid, str(rm.set(rid, model, behavior))))
        except FileExistsError:
            out.append((rid, "exists"))
    return out


def worker(rm: ResultsManager, behavior: SetBehavior, same: bool, process: int, start: Any, results: Any) -> None:
    """Runs in a worker process: THREADS callers at once; their outcomes, or the error, go to ``results``."""
    try:
        outcomes: list[list[tuple[str, str]]] = [[] for _ in range(THREADS)]

        def run(t: int) -> None:
            outcomes[t] = caller(rm, behavior, same, process * THREADS + t, start)

        threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rm.close()
        results.put([pair for r in outcomes for pair in r])
    except BaseException:
        results.put(traceback.format_exc())


# behaviour, identical content? -> expected outcome counts per id among 32 callers
CASES = [
    (SetBehavior.RAISE_IF_EXISTS, True, {"True": 1, "exists": 31}),
    (SetBehavior.RAISE_IF_EXISTS, False, {"True": 1, "exists": 31}),
    (SetBehavior.SKIP_IF_EXISTS, True, {"True": 1, "False": 31}),
    (SetBehavior.SKIP_IF_EXISTS, False, {"True": 32}),
    (SetBehavior.RAISE_IF_DIFFERENT, True, {"True": 32}),
    (SetBehavior.RAISE_IF_DIFFERENT, False, {"True": 1, "exists": 31}),
    (SetBehavior.OVERWRITE, True, {"True": 32}),
    (SetBehavior.OVERWRITE, False, {"True": 32}),
    (SetBehavior.KEEP_EXISTING, True, {"True": 1, "False": 31}),
    (SetBehavior.KEEP_EXISTING, False, {"True": 1, "False": 31}),
]


# On the sharded cluster, each behaviour once, where its writers contend (the other cases differ
# only in the content compared, decided the same way on one shard as on one server).
ON_SHARDS = {
    (SetBehavior.RAISE_IF_EXISTS, False),
    (SetBehavior.SKIP_IF_EXISTS, True),
    (SetBehavior.RAISE_IF_DIFFERENT, False),
    (SetBehavior.OVERWRITE, False),
    (SetBehavior.KEEP_EXISTING, False),
}


def _name(value: object) -> str:
    return getattr(value, "name", str(value))


@pytest.mark.parametrize("shared_store", ["file", "server", "ferretdb1"], indirect=True)
@pytest.mark.parametrize(("behavior", "same", "expected"), CASES, ids=_name)
def test_racing_writers(
    shared_store: ResultsManager, behavior: SetBehavior, same: bool, expected: dict[str, int]
) -> None:
    race(shared_store, behavior, same, expected, sharded=False)


@pytest.mark.parametrize("shared_store", ["sharded"], indirect=True)
@pytest.mark.parametrize(("behavior", "same", "expected"), [c for c in CASES if (c[0], c[1]) in ON_SHARDS], ids=_name)
def test_racing_writers_on_shards(
    shared_store: ResultsManager, behavior: SetBehavior, same: bool, expected: dict[str, int]
) -> None:
    race(shared_store, behavior, same, expected, sharded=True)


def race(
    shared_store: ResultsManager, behavior: SetBehavior, same: bool, expected: dict[str, int], *, sharded: bool
) -> None:
    # Forked: the barrier and the queue are inherited; each process opens its own client.
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(PROCESSES * THREADS), context.Queue()
    processes = [
        context.Process(target=worker, args=(shared_store, behavior, same, p, start, results)) for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    replies = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    errors = [r for r in replies if isinstance(r, str)]
    assert not errors, errors[0]
    outcomes = [pair for reply in replies for pair in reply]
    assert len(outcomes) == PROCESSES * THREADS * IDS
    for i in range(IDS):
        counts = Counter(o for rid, o in outcomes if rid == f"race/{i}")
        assert counts == Counter(expected), f"race/{i}: {counts}"
    assert shared_store.list_ids("race") == sorted(f"race/{i}" for i in range(IDS))
    writers = {0} if same else set(range(PROCESSES * THREADS))
    for i in range(IDS):
        got = shared_store.get(f"race/{i}", Metrics)  # present and valid
        assert got.step in writers and got.loss == 0.5 and got.accuracy == 0.5
    if sharded:  # the ids were spread over both workers, each id's writers on the one shard that holds it
        db = shared_store.backend.database()
        nodes = set()
        for i in range(IDS):
            tasks, where = citus_tasks(
                db.command("explain", {"find": "results.default", "filter": {"_id": f"race/{i}"}})
            )
            assert tasks == 1 and len(where) == 1
            nodes |= where
        assert len(nodes) == 2, nodes
    shared_store.close()
