"""Managers handed to worker processes (SPEC §2.1), under fork and spawn."""

from __future__ import annotations

import multiprocessing
import pickle
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import pytest

from mongo_results import MongoBackend, ResultsManager, SetBehavior

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
    assert clone.backend._client is rm.backend._client  # type: ignore[attr-defined]
    clone.close()
    assert rm.list_ids() == ["r"]  # the other reference keeps the shared client open
    rm.close()
