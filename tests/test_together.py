"""Reads without a namespace send the listing and the reads at once: one round trip, not two."""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from pymongo import MongoClient, monitoring

from mongo_results import AsyncMongoBackend, AsyncResultsManager, MongoBackend, ResultsManager
from mongo_results.core.commands import Command, FindOne, ListCollections
from mongo_results.errors import StoreUnavailableError
from mongo_results.stores.together import send_together, send_together_async

from .models import Metrics

A, B = Metrics(loss=1, accuracy=1), Metrics(loss=2, accuracy=2)
COMMANDS: list[Command] = [ListCollections(), FindOne("results.default", {"_id": "a"}), FindOne("results.x", {})]
DEADLINE = 30.0  # seconds; only a failing run waits this long


def test_each_command_is_sent_while_the_others_wait_for_their_replies() -> None:
    # Each waits for all three to have started: sent one after another, the first would wait alone.
    everyone = threading.Barrier(len(COMMANDS), timeout=DEADLINE)

    def execute(command: Command) -> Any:
        everyone.wait()
        return type(command).__name__

    assert send_together(execute, COMMANDS) == ["ListCollections", "FindOne", "FindOne"]


def test_an_error_is_raised_once_every_command_has_answered() -> None:
    answered: list[str] = []
    slow = threading.Event()

    def execute(command: Command) -> Any:
        if isinstance(command, ListCollections):
            raise StoreUnavailableError("gone")
        slow.wait(DEADLINE)  # still running when the listing has failed
        answered.append(command.collection if isinstance(command, FindOne) else "")
        return None

    threading.Timer(0.2, slow.set).start()
    with pytest.raises(StoreUnavailableError, match="gone"):
        send_together(execute, COMMANDS)
    assert sorted(answered) == ["results.default", "results.x"]


REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


def test_each_command_runs_in_the_callers_context() -> None:
    """``pymongo.timeout`` and a tracing id live in context variables: every command must see them."""
    REQUEST.set("req-42")
    assert send_together(lambda command: REQUEST.get(), COMMANDS) == ["req-42"] * 3


def test_a_command_that_hangs_holds_no_other_callers_commands() -> None:
    hung, release = threading.Event(), threading.Event()

    def stuck(command: Command) -> Any:
        if isinstance(command, FindOne):
            hung.set()
            release.wait(DEADLINE)
        return None

    first = threading.Thread(target=send_together, args=(stuck, COMMANDS * 4))
    first.start()
    answered: list[list[Any]] = []
    second = threading.Thread(target=lambda: answered.append(send_together(lambda command: 1, COMMANDS)))
    try:
        assert hung.wait(DEADLINE)
        second.start()
        second.join(DEADLINE / 3)  # a shared pool full of the first call's reads would hold it until release
        assert answered == [[1, 1, 1]]
    finally:
        release.set()
        first.join(DEADLINE)
        second.join(DEADLINE)


def test_where_no_thread_can_start_the_commands_go_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    sent: list[str] = []

    def execute(command: Command) -> int:
        sent.append(type(command).__name__)
        return len(sent)

    assert send_together(execute, COMMANDS) == [1, 2, 3]
    assert sent == ["ListCollections", "FindOne", "FindOne"]


def test_any_error_is_raised_after_every_command_has_answered() -> None:
    answered: list[Command] = []

    def execute(command: Command) -> Any:
        if command is COMMANDS[1]:
            raise KeyError("a bug, not a store's error")
        answered.append(command)
        return None

    with pytest.raises(KeyError, match="a bug"):
        send_together(execute, COMMANDS)
    assert len(answered) == 2


def test_async_commands_are_sent_at_once_and_errors_raised_after_all() -> None:
    async def main() -> None:
        started: list[asyncio.Event] = [asyncio.Event() for _ in COMMANDS]

        async def execute(command: Command) -> Any:
            started[COMMANDS.index(command)].set()
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), DEADLINE)
            if isinstance(command, FindOne) and command.collection == "results.x":
                raise StoreUnavailableError("x is gone")
            return type(command).__name__

        with pytest.raises(StoreUnavailableError, match="x is gone"):
            await send_together_async(execute, COMMANDS)
        assert all(e.is_set() for e in started)

    asyncio.run(main())


class HoldsTheListing(monitoring.CommandListener):
    """Holds each listCollections until a find of the same call has started (or the deadline passes).

    Sent one after the other, the listing would wait alone until the deadline; sent together,
    the find goes from another thread, whichever of the two the threads reach first.
    """

    def __init__(self) -> None:
        self.find_started = threading.Event()
        self.listings = self.overlapped = 0

    def call(self) -> None:
        """A new call: the finds of an earlier one do not count."""
        self.find_started.clear()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.find_started.set()
        elif event.command_name == "listCollections":
            self.listings += 1
            self.overlapped += self.find_started.wait(DEADLINE)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def stores(either_db: tuple[str, str]) -> Iterator[tuple[ResultsManager, ResultsManager, HoldsTheListing]]:
    """A manager whose listings are held, and another on the same store that writes meanwhile."""
    uri, name = either_db
    held = HoldsTheListing()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, event_listeners=[held])
    rm = ResultsManager(backend=MongoBackend(client, database=name))
    other = ResultsManager(backend=MongoBackend(uri, database=name))
    yield rm, other, held
    other.close()
    client.close()


def test_a_read_without_a_namespace_sends_its_listing_with_the_reads(
    stores: tuple[ResultsManager, ResultsManager, HoldsTheListing],
) -> None:
    rm, other, held = stores
    other.set("r/1", A)
    other.set("r/2", B, namespace="second")
    held.find_started.set()  # the first listing is sent alone: nothing was listed before it
    assert rm.list_ids("r") == ["r/1", "r/2"]
    held.overlapped = held.listings = 0
    held.call()
    assert rm.get("r/2", Metrics) == B
    held.call()
    assert rm.list_ids("r") == ["r/1", "r/2"]
    other.set("r/3", A, namespace="third")  # created since the last listing: read after it
    held.call()
    assert rm.list_ids("r") == ["r/1", "r/2", "r/3"]
    held.call()
    assert rm.get("r/3", Metrics) == A
    assert (held.listings, held.overlapped) == (4, 4)


def test_a_forked_child_reads_without_a_namespace_after_its_parent_did(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    rm = ResultsManager(backend=MongoBackend(uri, database=name))
    rm.set("f/1", A)
    for _ in range(2):  # the second sends together: the parent's sender threads exist
        assert rm.get("f/1", Metrics) == A
    ctx = multiprocessing.get_context("fork")
    answers = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(rm, answers))
    child.start()
    child.join(DEADLINE)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the child hung sending together"
    assert answers.get(timeout=DEADLINE) == (["f/1"], 1.0)
    rm.close()


def _read_in_child(rm: ResultsManager, answers: Any) -> None:
    answers.put((rm.list_ids("f"), rm.get("f/1", Metrics).loss))


def test_async_reads_without_a_namespace_on_the_server(server_db: tuple[str, str]) -> None:
    uri, name = server_db

    async def main() -> None:
        arm = AsyncResultsManager(backend=AsyncMongoBackend(uri, database=name))
        await arm.set("r/1", A)
        await arm.set("r/2", B, namespace="second")
        for _ in range(2):
            assert await arm.list_ids("r") == ["r/1", "r/2"]
            assert await arm.get("r/2", Metrics) == B
        await arm.close()

    asyncio.run(main())


class SlowFinds(monitoring.CommandListener):
    """A server slow to answer finds: each find starts half a second late."""

    slow = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.slow and event.command_name == "find":
            threading.Event().wait(0.5)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_pymongo_timeout_bounds_the_reads_sent_at_once(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    slow = SlowFinds()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, event_listeners=[slow])
    rm = ResultsManager(backend=MongoBackend(client, database=name))
    rm.set("r", A)
    assert rm.get("r", Metrics) == A  # listed: the next get sends its listing and its read at once
    slow.slow = True
    with pytest.raises(StoreUnavailableError, match="timeoutMS: 200"), pymongo.timeout(0.2):
        rm.get("r", Metrics)
    client.close()
