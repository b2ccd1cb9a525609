"""A real network between the library and the reference server: Toxiproxy in between.

Latency, a connection reset in the middle of ``set_many``, a server that stops answering
(a blackhole), and replies cut short or delivered in pieces. Each test says what the user
sees: the right outcomes, one clear error, nothing that waits past the timeout in force.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import bson
import pytest
from pymongo import MongoClient, uri_parser

from mongo_results import MongoBackend, ResultsManager, SetBehavior, register_model
from mongo_results.errors import OutcomeUnknownError, SetManyInterruptedError, StoreUnavailableError

from .commands import CommandLog
from .conftest import running
from .models import Metrics
from .toxiproxy import Toxiproxy

pytestmark = pytest.mark.real_server


@pytest.fixture(autouse=True)
def _metrics() -> None:
    register_model(Metrics)


@pytest.fixture(scope="module")
def proxy(server_uri: str) -> Iterator[tuple[Toxiproxy, int]]:
    """Toxiproxy in front of the reference server: (the proxy server, the port its proxy listens on)."""
    host, port = uri_parser.parse_uri(server_uri)["nodelist"][0]
    for toxiproxy in running(Toxiproxy, "Toxiproxy"):
        yield toxiproxy, toxiproxy.proxy("mongo", f"{host}:{port}")


@pytest.fixture
def through(proxy: tuple[Toxiproxy, int], server_db: tuple[str, str]) -> Iterator[tuple[Toxiproxy, str, str]]:
    """(toxiproxy, the URI through the proxy, a fresh database); every toxic removed afterwards."""
    toxiproxy, listen = proxy
    _, name = server_db
    yield toxiproxy, f"mongodb://127.0.0.1:{listen}/?directConnection=true", name
    toxiproxy.reset()


def test_every_behaviour_at_20_ms_and_a_set_is_one_round_trip(through: tuple[Toxiproxy, str, str]) -> None:
    toxiproxy, uri, name = through
    toxiproxy.add_toxic("mongo", "latency", "downstream", latency=20)
    log = CommandLog()
    with ResultsManager(backend=MongoBackend(uri, database=name, event_listeners=[log])) as rm:
        one, other = Metrics(loss=1, accuracy=1), Metrics(loss=2, accuracy=2)
        assert rm.set("a", one)
        log.take()
        for behavior, data, answer in [
            (SetBehavior.SKIP_IF_EXISTS, one, False),
            (SetBehavior.RAISE_IF_DIFFERENT, one, True),
            (SetBehavior.OVERWRITE, other, True),
            (SetBehavior.SKIP_IF_EXISTS, one, True),
            (SetBehavior.KEEP_EXISTING, other, False),
        ]:
            assert rm.set("a", data, behavior) is answer
            assert len(log.take()) == 1  # one command: one round trip at 20 ms
        with pytest.raises(FileExistsError):
            rm.set("a", other, SetBehavior.RAISE_IF_DIFFERENT)
        assert len(log.take()) == 1
        assert rm.get("a", namespace="default") == one and len(log.take()) == 1
        assert rm.set_many({f"b/{i}": one for i in range(50)}) == [True] * 50
        assert rm.list_ids("b") == [f"b/{i}" for i in sorted(range(50), key=str)]
        assert rm.missing(["a", "b/1", "c"]) == ["c"]
        claim = rm.claim("c", lease=60)
        assert claim is not None and rm.claim("c") is None
        claim.release()
        assert rm.delete("a") and not rm.exists("a")


def _bulk_bytes(uri: str, batch: dict[str, Metrics]) -> int:
    """What the bulk write of these items weighs on the wire, measured by sending it elsewhere."""
    log = CommandLog()
    with ResultsManager(backend=MongoBackend(uri, database="t_weigh", event_listeners=[log])) as rm:
        rm.set_many(batch)
        rm.clear()
    [insert] = [c for c in log.commands() if "insert" in c]
    return len(bson.encode(insert))


def test_a_connection_reset_in_the_middle_of_set_many(
    through: tuple[Toxiproxy, str, str], server_db: tuple[str, str]
) -> None:
    """Items reported stored are stored, items never sent are not, and the retry stores each exactly once."""
    toxiproxy, uri, name = through
    direct = server_db[0]
    items = {f"r/{i:05d}": Metrics(loss=i, accuracy=i / 3000, step=i) for i in range(3000)}  # three bulks
    first = dict(list(items.items())[:1000])
    with ResultsManager(backend=MongoBackend(uri, database=name, maxPoolSize=1)) as rm:
        rm.set("warm", Metrics(loss=0, accuracy=0))  # the collection prepared, the one connection open
        # The connection is cut part of the way into the second bulk's message.
        toxiproxy.add_toxic("mongo", "limit_data", "upstream", bytes=int(_bulk_bytes(direct, first) * 1.5))
        with pytest.raises(SetManyInterruptedError) as caught:
            rm.set_many(items)
        toxiproxy.reset()
        error = caught.value
        keys = list(items)
        stored_said = [keys[i] for i, o in enumerate(error.outcomes) if o is True]
        assert len(stored_said) == 1000 and error.unknown and error.not_sent
        assert not set(error.unknown) & set(error.not_sent)
        on_server = set(rm.list_ids("r"))
        assert set(stored_said) <= on_server
        assert not {keys[i] for i in error.not_sent} & on_server
        again = rm.set_many(items, SetBehavior.RAISE_IF_DIFFERENT)  # the exact retry: same content is True
        assert again == [True] * 3000
        assert rm.list_ids("r") == keys
        assert rm.get_many(keys) == list(items.values())


def test_a_blackhole_raises_within_the_timeout_in_force(through: tuple[Toxiproxy, str, str]) -> None:
    """A server that stops answering mid-connection: one error naming the timeout, then recovery."""
    toxiproxy, uri, name = through
    with ResultsManager(backend=MongoBackend(uri, database=name, timeoutMS=1500)) as rm:
        rm.set("a", Metrics(loss=1, accuracy=1))
        toxiproxy.add_toxic("mongo", "timeout", "downstream", timeout=0)
        with pytest.raises(StoreUnavailableError) as read:
            rm.get("a", namespace="default")
        assert "timeoutMS: 1500" in str(read.value) and not isinstance(read.value, OutcomeUnknownError)
        with pytest.raises(OutcomeUnknownError) as write:
            rm.set("b", Metrics(loss=1, accuracy=1))
        assert "timeoutMS: 1500" in str(write.value) and "SKIP_IF_EXISTS" in str(write.value)
        toxiproxy.reset()
        applied = rm.exists("b")  # the timed-out write may have been applied: the retry writes only if not
        assert rm.set("b", Metrics(loss=1, accuracy=1), SetBehavior.SKIP_IF_EXISTS) is not applied
        assert rm.get("b", namespace="default") == Metrics(loss=1, accuracy=1)


def test_a_reply_cut_short(through: tuple[Toxiproxy, str, str]) -> None:
    toxiproxy, uri, name = through
    with ResultsManager(backend=MongoBackend(uri, database=name, serverSelectionTimeoutMS=2000)) as rm:
        rm.set_many({f"c/{i}": Metrics(loss=i, accuracy=0) for i in range(200)})
        toxiproxy.add_toxic("mongo", "limit_data", "downstream", bytes=100)
        with pytest.raises(StoreUnavailableError) as caught:
            list(rm.iter_results("c"))
        assert "127.0.0.1" in str(caught.value)
        toxiproxy.reset()
        assert len(list(rm.iter_results("c"))) == 200


def test_replies_in_small_pieces_change_nothing(through: tuple[Toxiproxy, str, str]) -> None:
    """TCP may deliver a reply in many segments: the driver reassembles, the outcomes are the same."""
    toxiproxy, uri, name = through
    toxiproxy.add_toxic("mongo", "slicer", "downstream", average_size=64, size_variation=32, delay=0)
    with ResultsManager(backend=MongoBackend(uri, database=name)) as rm:
        items = {f"s/{i}": Metrics(loss=i, accuracy=0, step=i) for i in range(300)}
        assert rm.set_many(items) == [True] * 300
        assert dict(rm.iter_results("s", batch_size=70)) == dict(sorted(items.items()))
        assert Counter(rm.set_many(items, SetBehavior.SKIP_IF_EXISTS)) == Counter({False: 300})
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri) as client:
        assert client[name]["results.default"].count_documents({}) == 300
