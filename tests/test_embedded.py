"""The embedded store gives a server's serial outcomes to threads and tasks (one lock per embedded client)."""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from mongo_results import AsyncResultsManager, ResultExistsError, ResultsManager, SetBehavior, register_model

from .models import Metrics

THREADS, IDS, ROUNDS = 8, 300, 5


@pytest.fixture(autouse=True)
def _switch_threads_often() -> Iterator[None]:
    """Hand the GIL over every few microseconds, so threads interleave inside mongomock's commands."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def write_all(
    rm: ResultsManager, behavior: SetBehavior, writer: int, start: threading.Barrier
) -> list[tuple[str, str]]:
    """One writer's outcome for every id: 'True', 'False' or 'exists'."""
    model = Metrics(loss=0.5, accuracy=0.5, step=writer)  # each writer's content differs
    start.wait()
    out = []
    for i in range(IDS):
        try:
            out.append((f"t/{i}", str(rm.set(f"t/{i}", model, behavior))))
        except ResultExistsError:
            out.append((f"t/{i}", "exists"))
    return out


@pytest.mark.parametrize("behavior", [SetBehavior.RAISE_IF_EXISTS, SetBehavior.SKIP_IF_EXISTS])
def test_threads_with_managers_of_their_own_on_one_embedded_store(behavior: SetBehavior) -> None:
    uri = f"mongomock://localhost/threads_{uuid.uuid4().hex[:8]}"
    for _ in range(ROUNDS):
        managers = [ResultsManager(uri) for _ in range(THREADS)]  # one store, separate backends
        managers[0].clear()
        start = threading.Barrier(THREADS)
        results: list[list[tuple[str, str]]] = [[] for _ in range(THREADS)]

        def run(t: int) -> None:
            results[t] = write_all(managers[t], behavior, t, start)  # noqa: B023  # joined below

        threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        per_id: dict[str, Counter[str]] = defaultdict(Counter)
        for rid, outcome in (pair for r in results for pair in r):
            per_id[rid][outcome] += 1
        assert len(per_id) == IDS
        for rid, counts in per_id.items():
            if behavior is SetBehavior.RAISE_IF_EXISTS:
                assert counts == Counter({"True": 1, "exists": THREADS - 1}), (rid, counts)
            else:  # different content every time: each call writes; "False" (same content) is impossible
                assert counts == Counter({"True": THREADS}), (rid, counts)
        if behavior is SetBehavior.RAISE_IF_EXISTS:  # what is stored is the one winner's
            winners = {rid: t for t, r in enumerate(results) for rid, outcome in r if outcome == "True"}
            assert all(managers[0].get(rid, Metrics).step == winners[rid] for rid in per_id)


def test_a_sync_and_an_async_manager_on_one_embedded_store_under_threads_and_gather() -> None:
    uri = f"mongomock://localhost/mixed_{uuid.uuid4().hex[:8]}"
    sync = ResultsManager(uri)
    start = threading.Barrier(3)
    outcomes: list[tuple[str, str]] = []

    def sync_writer(writer: int) -> None:
        outcomes.extend(write_all(sync, SetBehavior.RAISE_IF_EXISTS, writer, start))

    async def async_writers() -> None:
        rm = AsyncResultsManager(uri)

        async def one(i: int) -> tuple[str, str]:
            try:
                return f"t/{i}", str(await rm.set(f"t/{i}", Metrics(loss=0.5, accuracy=0.5, step=99)))
            except ResultExistsError:
                return f"t/{i}", "exists"

        await asyncio.to_thread(start.wait)
        outcomes.extend(await asyncio.gather(*(one(i) for i in range(IDS))))
        await rm.close()

    threads = [threading.Thread(target=sync_writer, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    asyncio.run(async_writers())
    for t in threads:
        t.join()
    per_id = Counter(rid for rid, outcome in outcomes if outcome == "True")
    assert per_id == Counter({f"t/{i}": 1 for i in range(IDS)})  # exactly one writer wins each id
    assert len(outcomes) == 3 * IDS
    sync.clear()


def test_a_read_by_id_looks_the_id_up_and_scans_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded store reads mongomock's documents by id (they are kept in a dict by ``_id``).

    That dict is mongomock's own: a release that changes it leaves every answer the same (the
    store falls back to mongomock's find, which scans the collection) but makes each keyset
    page cost the whole collection. This test fails then, so the change is seen.
    """
    import mongomock.collection

    register_model(Metrics)
    rm = ResultsManager(f"mongomock://localhost/t_{uuid.uuid4().hex[:12]}")
    rm.set_many([(f"r/{i:03d}", Metrics(loss=i, accuracy=0.5)) for i in range(200)])
    scans = 0
    find = mongomock.collection.Collection.find

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal scans
        scans += 1
        return find(self, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "find", counted)
    assert rm.get("r/007", Metrics).loss == 7
    assert [rid for rid, _ in rm.iter_results("r", batch_size=50)][-1] == "r/199"
    assert rm.exists("r/150") and not rm.exists("r/999")
    assert scans == 0


def test_a_mongomock_target_makes_the_embedded_twin_of_the_class_asked_for() -> None:
    import mongomock

    from mongo_results import AsyncMongoBackend, MongoBackend
    from mongo_results.stores.embedded_backends import AsyncEmbeddedBackend, EmbeddedBackend

    client: Any = mongomock.MongoClient()
    for target, database in (
        ("mongomock://localhost/twins", "twins"),
        (client, "mongo_results"),
        (client.twins, "twins"),
    ):
        sync, asynchronous = MongoBackend(target), AsyncMongoBackend(target)
        assert type(sync) is EmbeddedBackend and isinstance(sync, MongoBackend)
        assert type(asynchronous) is AsyncEmbeddedBackend and isinstance(asynchronous, AsyncMongoBackend)
        assert sync.embedded and asynchronous.embedded
        assert "embedded mongomock store" in repr(sync)
        assert sync.database_name == asynchronous.database_name == database
    server = MongoBackend("mongodb://127.0.0.1:1/twins")  # never connects: opened on first use
    assert type(server) is MongoBackend and not server.embedded
    assert type(EmbeddedBackend("mongomock://localhost/twins")) is EmbeddedBackend


def test_the_server_backends_hold_nothing_of_the_embedded_store() -> None:
    """What differs for the embedded store lives in its twin classes, not in branches of the server's."""
    import mongo_results.stores.mongo as server_module

    source = inspect.getsource(server_module)
    for name in ("mock_client", "execute_embedded", "embedded_lock", "WrongProcessError", "EMBEDDED", "self._embedded"):
        assert name not in source, name


def test_a_subclass_of_mongobackend_keeps_its_methods_on_the_embedded_store() -> None:
    from mongo_results import MongoBackend
    from mongo_results.stores.embedded_backends import EmbeddedBackend

    class Audited(MongoBackend):
        def audit(self) -> str:
            return f"audited {self.database_name}"

    embedded = Audited("mongomock://localhost/audited")
    assert isinstance(embedded, Audited) and isinstance(embedded, EmbeddedBackend) and embedded.embedded
    assert embedded.audit() == "audited audited"
    assert type(Audited("mongomock://localhost/other")) is type(embedded)  # one twin class per subclass
    rm = ResultsManager(backend=embedded)
    register_model(Metrics)
    rm.set("a", Metrics(loss=1, accuracy=1))
    assert rm.list_ids() == ["a"]


def test_the_embedded_backend_refuses_a_server_and_copies_share_the_store() -> None:
    import copy

    from mongo_results import MongoBackend
    from mongo_results.errors import InvalidUriError
    from mongo_results.stores.embedded_backends import EmbeddedBackend

    with pytest.raises(InvalidUriError, match="needs a mongomock:// URI"):
        EmbeddedBackend("mongodb://127.0.0.1:1/x")
    original = MongoBackend("mongomock://localhost/copied", collection_prefix="c.")
    register_model(Metrics)
    ResultsManager(backend=original).set("a", Metrics(loss=1, accuracy=1))
    for twin in (copy.copy(original), copy.deepcopy(original)):
        assert type(twin) is type(original) and twin.collection_prefix == "c."
        assert ResultsManager(backend=twin).list_ids() == ["a"]  # the same in-process store
