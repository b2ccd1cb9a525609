"""AsyncMongoBackend: runs the core's commands with PyMongo's ``AsyncMongoClient`` or Motor.

The embedded mongomock store runs them in-line: it is in memory, so nothing blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import pymongo

from ..core.commands import Command
from .clients import CLOSE_TIMEOUT
from .driver import DRIVER_ERRORS, call_for, driver_reply
from .embedded import execute_embedded, mock_client
from .mongo_store import MongoStore

__all__ = ["AsyncMongoBackend"]


class AsyncMongoBackend(MongoStore):
    """Results in MongoDB for asyncio code: the storage and behaviour of MongoBackend.

    ``target`` is a URI, an ``AsyncMongoClient``/``AsyncDatabase`` or a Motor
    client/database. A client built from a URI is opened per event loop, since
    a PyMongo async client cannot be shared between loops; ``close()`` closes
    the one of the running loop and those of loops that have ended.
    """

    _client_kinds = ("AsyncMongoClient", "AsyncIOMotorClient")

    def __init__(self, target: Any, **options: Any) -> None:
        super().__init__(target, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Per event loop, the client opened for it and the guard that closes it as the loop shuts down.
        self._opened: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
            weakref.WeakKeyDictionary()
        )
        self._unguarded: AsyncGenerator[None, None] | None = None

    def _stale(self) -> bool:
        if super()._stale():
            return True
        return self._uri is not None and not self.embedded and self._loop is not asyncio.get_running_loop()

    def _adopt(self, client: Any) -> None:
        super()._adopt(client)
        self._loop = None if self.embedded else asyncio.get_running_loop()

    def _connect(self) -> Any:
        assert self._uri is not None
        if self.embedded:
            return mock_client(self._uri)
        loop = asyncio.get_running_loop()
        for ended in [old for old in self._opened if old.is_closed()]:  # their shutdown closed the clients
            del self._opened[ended]
        client = self._opened.get(loop)
        if client is None:
            client = self._opened[loop] = pymongo.AsyncMongoClient(
                self._uri, **{"appname": "mongo_results", **self._client_options}
            )
            self._guards[loop] = self._unguarded = _closed_with_the_loop(client)
        return client

    async def execute(self, command: Command) -> Any:
        """Run one command; its reply."""
        db = self._guarded(self._database)
        lock = self._lock
        if lock is not None:
            return self._guarded(lambda: execute_embedded(db, command, lock))
        guard, self._unguarded = self._unguarded, None
        if guard is not None:
            await anext(guard)  # started in this loop, so the loop finalizes it before it closes
        call = call_for(command)
        try:
            pending = self._invoke(db, call)
            # Motor's and PyMongo's async cursors both take to_list(None) for "everything".
            return driver_reply(command, call, await pending.to_list(None) if call.cursor else await pending)
        except DRIVER_ERRORS as exc:
            return self._failed(command, call, exc)

    async def close(self) -> None:
        """Close the client this backend opened for the running loop (never one passed in).

        A client opened for a loop that was not closed this way is closed as that loop
        shuts down (``asyncio.run`` finalizes async generators before it closes the loop).
        """
        if self._uri is None or self.embedded:
            self._ops = None
            return
        loop = asyncio.get_running_loop()
        self._client = self._ops = self._db = None
        self._handles = {}
        self._opened.pop(loop, None)
        guard = self._guards.pop(loop, None)
        if guard is not None:
            await guard.aclose()


async def _closed_with_the_loop(client: Any) -> AsyncGenerator[None, None]:
    """Closes ``client`` when closed itself: by ``close()``, or by its loop's shutdown."""
    try:
        yield
    finally:
        with contextlib.suppress(Exception), pymongo.timeout(CLOSE_TIMEOUT):  # the server may be gone
            await client.close()
