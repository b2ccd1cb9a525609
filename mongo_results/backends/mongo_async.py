"""AsyncMongoBackend: the same operations over PyMongo's AsyncMongoClient or Motor.

A thin shell like :mod:`.mongo`: it opens clients (one per event loop) and awaits
the commands that :mod:`mongo_results._operations` yields. The embedded
mongomock store runs those commands in-line: it is in memory, so nothing blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pymongo
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .._clients import CLOSE_TIMEOUT
from .._core import Engine
from .._operations import Command, Emit, Flow, Operation, Progress
from .._targets import mock_client
from ..behaviors import SetBehavior
from ..errors import StoreUnavailableError
from ..ids import ResultId
from ._shell import MongoShell
from .mongo import execute

__all__ = ["AsyncMongoBackend"]

R = TypeVar("R")


def _motor_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    try:
        from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
    except ImportError:  # Motor is optional
        return (), ()
    return (AsyncIOMotorClient,), (AsyncIOMotorDatabase,)


async def _reply(call: Any, cursor: bool) -> Any:
    # Motor's and PyMongo's async cursors both take to_list(None) for "everything".
    return await call.to_list(None) if cursor else await call


class AsyncMongoBackend(MongoShell):
    """Results in MongoDB for asyncio code: the storage and behaviour of MongoBackend.

    ``target`` is a URI, an ``AsyncMongoClient``/``AsyncDatabase`` or a Motor
    client/database. A client passed in is used as it is and never closed here;
    one built from a URI is opened per event loop, since a PyMongo async client
    cannot be shared between loops.
    """

    def __init__(self, target: Any, **options: Any) -> None:
        super().__init__(target, **options)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client_types(self) -> tuple[type, ...]:
        return (AsyncMongoClient, *_motor_types()[0])

    def _database_types(self) -> tuple[type, ...]:
        return (AsyncDatabase, *_motor_types()[1])

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> AsyncMongoBackend:
        """Build a backend from a URI; the database is the URI's path (default ``mongo_results``)."""
        return cls(uri, **options)

    def _stale(self) -> bool:
        if super()._stale():
            return True
        return self._uri is not None and not self._mock and self._loop is not asyncio.get_running_loop()

    def _adopt(self, client: Any) -> None:
        super()._adopt(client)
        self._loop = None if self._mock else asyncio.get_running_loop()

    def _connect(self) -> Any:
        assert self._uri is not None
        if self._mock:
            return mock_client(self._uri)
        return AsyncMongoClient(self._uri, **{"appname": "mongo_results", **self._client_options})

    async def _execute(self, db: Any, command: Command) -> tuple[Any, BaseException | None]:
        target = self._target(db, command.collection)
        if self._mock:
            return execute(target, command, self._lock)
        try:
            return await _reply(
                getattr(target, command.method)(*command.driver_args(), **command.kwargs), command.returns_cursor
            ), None
        except (DuplicateKeyError, BulkWriteError) as exc:  # answers the operation reads, not failures
            return None, exc

    async def _drive(self, flow: Flow[Any]) -> AsyncIterator[Any]:
        with self._errors():  # opening a client can fail too (a bad URI, an SRV name that does not resolve)
            db = self._database()
            step = flow.start()
            while step is not None:
                if isinstance(step, Emit):
                    for item in step.items:
                        yield item
                    step = flow.resume(None)
                else:
                    step = flow.resume(*await self._execute(db, step))

    async def _run(self, operation: Operation[R]) -> R:
        flow = Flow(operation)
        async for _ in self._drive(flow):
            pass
        return flow.result

    async def engine(self) -> Engine:
        """The server's engine, asked once per connection."""
        ops = self._operations()
        if ops.engine is None:
            ops.engine = await self._run(ops.learn_engine())
        return ops.engine

    async def close(self) -> None:
        """Close the client this backend opened for the running loop (never one passed in)."""
        if self._uri is None:
            return  # a client passed in stays open and in use
        client, self._client, self._ops = self._client, None, None
        if not self._mock and client is not None and self._loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception), pymongo.timeout(CLOSE_TIMEOUT):  # the server may be gone
                await client.close()

    async def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """Store ``data`` under ``result_id``; one atomic server command (SPEC §2.2)."""
        op = self._operations().set(result_id, data, behavior, namespace, strict_namespace, secrets=self.store_secrets)
        return await self._run(op)

    async def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
    ) -> list[bool | BaseException]:
        """``set`` for many results; per item its return value or its exception."""
        progress = Progress()
        operation = self._operations().set_many(
            items, behavior, namespace, secrets=self.store_secrets, progress=progress
        )
        try:
            return await self._run(operation)
        except StoreUnavailableError as exc:
            raise progress.interrupted(exc) from exc

    async def get_many(
        self, result_ids: Sequence[ResultId], model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> list[BaseModel]:
        """``get`` for many ids, in their order (one query per namespace)."""
        return await self._run(self._operations().get_many(list(result_ids), model_class, namespace))

    async def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[tuple[str, BaseModel]]:
        """``(id, model)`` under a prefix, read page by page: memory stays flat."""
        # An async generator, so the client is chosen inside the loop that iterates.
        async for item in self._drive(
            Flow(self._operations().iter_results(prefix, model_class, namespace, batch_size))
        ):
            yield item

    async def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> BaseModel:
        """The stored result, validated into its model class."""
        return await self._run(self._operations().get(result_id, model_class, namespace))

    async def exists(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Whether any namespace (or the given one) holds ``result_id``."""
        return await self._run(self._operations().exists(result_id, namespace))

    async def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]:
        """Sorted ids under ``prefix`` (whole segments), one index-backed query per namespace."""
        return await self._run(self._operations().list_ids(prefix, namespace))

    async def delete(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Delete ``result_id`` from every namespace (or the given one); whether anything went."""
        return await self._run(self._operations().delete(result_id, namespace))

    async def clear(self) -> None:
        """Drop this backend's collections (those with its prefix), and nothing else."""
        await self._run(self._operations().clear())
