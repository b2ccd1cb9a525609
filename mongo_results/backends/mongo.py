"""MongoBackend: results in MongoDB through PyMongo (or the embedded mongomock store).

A thin shell: every decision is made by :mod:`mongo_results._operations`;
this module opens clients and executes the commands those operations yield.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from types import SimpleNamespace
from typing import Any, TypeVar

import mongomock
from pydantic import BaseModel
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .. import _clients
from .._core import Engine
from .._operations import Command, Emit, Flow, Operation, Progress
from .._targets import mock_client
from ..behaviors import SetBehavior
from ..errors import StoreUnavailableError
from ..ids import ResultId
from ..registry import DEFAULT_NAMESPACE
from ._shell import MongoShell

__all__ = ["MongoBackend", "execute"]

R = TypeVar("R")
Doc = dict[str, Any]


def execute(target: Any, command: Command, lock: AbstractContextManager[Any]) -> tuple[Any, BaseException | None]:
    """Run one command on a PyMongo or mongomock database or collection: (reply, DuplicateKeyError or None)."""
    try:
        with lock:
            if command.method == "bulk_write" and isinstance(target, mongomock.Collection):
                return _bulk_one_by_one(target, command.args[0]), None
            reply = getattr(target, command.method)(*command.driver_args(), **command.kwargs)
            return (list(reply) if command.returns_cursor else reply), None
    except (DuplicateKeyError, BulkWriteError) as exc:  # answers the operation reads, not failures
        return None, exc


def _bulk_one_by_one(collection: Any, requests: list[tuple[str, tuple[Any, ...]]]) -> Any:
    """mongomock's bulk_write predates PyMongo 4.9's requests: apply them in turn, answer as a driver would."""
    upserted: dict[int, Any] = {}
    errors = []
    for index, (method, args) in enumerate(requests):
        try:
            if method == "insert_one":
                collection.insert_one(*args)
                upserted[index] = args[0]["_id"]
            else:
                reply = getattr(collection, method)(*args, upsert=True)
                if reply.upserted_id is not None:
                    upserted[index] = reply.upserted_id
        except DuplicateKeyError as exc:
            errors.append({"index": index, "code": 11000, "errmsg": str(exc)})
    if errors:
        raise BulkWriteError({"writeErrors": errors, "upserted": [{"index": i, "_id": v} for i, v in upserted.items()]})
    return SimpleNamespace(upserted_ids=upserted)


class MongoBackend(MongoShell):
    """Results in MongoDB: one collection per namespace, one document per result.

    ``target`` is a URI (``mongodb://``, ``mongodb+srv://``, ``mongomock://``), a
    ``MongoClient`` or a ``Database``. A client passed in is used as it is and
    never closed here; one built from a URI is opened lazily, once per process,
    and shared by every backend of that process with the same URI and options.
    """

    def __init__(self, target: str | MongoClient[Doc] | Database[Doc], **options: Any) -> None:
        super().__init__(target, **options)

    def _client_types(self) -> tuple[type, ...]:
        return (MongoClient,)

    def _database_types(self) -> tuple[type, ...]:
        return (Database,)

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> MongoBackend:
        """Build a backend from a URI; the database is the URI's path (default ``mongo_results``)."""
        return cls(uri, **options)

    def _connect(self) -> Any:
        uri = self._uri
        assert uri is not None
        if self._mock:
            return mock_client(uri)
        options = {"appname": "mongo_results", **self._client_options}
        return _clients.acquire(self._client_key(), lambda: MongoClient(uri, **options))

    def _drive(self, flow: Flow[Any]) -> Iterator[Any]:
        with self._errors():  # opening a client can fail too (a bad URI, an SRV name that does not resolve)
            db = self._database()
            step = flow.start()
            while step is not None:
                if isinstance(step, Emit):
                    yield from step.items
                    step = flow.resume(None)
                else:
                    step = flow.resume(*execute(self._target(db, step.collection), step, self._lock))

    def _run(self, operation: Operation[R]) -> R:
        flow = Flow(operation)
        for _ in self._drive(flow):
            pass
        return flow.result

    def database(self) -> Database[Doc]:
        """The PyMongo database this backend stores in (for inspection and repairs)."""
        with self._errors():
            db: Database[Doc] = self._database()
        return db

    def engine(self) -> Engine:
        """The server's engine, asked once per connection."""
        ops = self._operations()
        if ops.engine is None:
            ops.engine = self._run(ops.learn_engine())
        return ops.engine

    def close(self) -> None:
        """Release the client this backend opened (never one that was passed in)."""
        if self._uri is None:
            return  # a client passed in stays open and in use
        if not self._mock and not self._stale():
            _clients.release(self._client_key())
        self._client = self._ops = None

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """Store ``data`` under ``result_id``; one atomic server command (SPEC §2.2)."""
        op = self._operations().set(result_id, data, behavior, namespace, strict_namespace, secrets=self.store_secrets)
        return self._run(op)

    def set_many(
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
            return self._run(operation)
        except StoreUnavailableError as exc:
            raise progress.interrupted(exc) from exc

    def get_many(
        self, result_ids: Sequence[ResultId], model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> list[BaseModel]:
        """``get`` for many ids, in their order (one query per namespace)."""
        return self._run(self._operations().get_many(list(result_ids), model_class, namespace))

    def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        batch_size: int = 500,
    ) -> Iterator[tuple[str, BaseModel]]:
        """``(id, model)`` under a prefix, read page by page: memory stays flat."""
        return self._drive(Flow(self._operations().iter_results(prefix, model_class, namespace, batch_size)))

    def store(
        self,
        result_id: ResultId,
        model_type: str,
        data: Mapping[str, Any],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> bool:
        """Store data already in stored form (an export or a file tree) with ``set``'s semantics."""
        return self._run(self._operations().store(result_id, model_type, data, behavior, namespace))

    def documents(
        self, prefix: ResultId | None = None, namespace: str | None = None, *, with_data: bool = True
    ) -> list[dict[str, Any]]:
        """The stored documents (envelope and encoded data) under a prefix, sorted by id."""
        return self._run(self._operations().documents(prefix, namespace, with_data=with_data))

    def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> BaseModel:
        """The stored result, validated into its model class."""
        return self._run(self._operations().get(result_id, model_class, namespace))

    def exists(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Whether any namespace (or the given one) holds ``result_id``."""
        return self._run(self._operations().exists(result_id, namespace))

    def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]:
        """Sorted ids under ``prefix`` (whole segments), one index-backed query per namespace."""
        return self._run(self._operations().list_ids(prefix, namespace))

    def delete(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Delete ``result_id`` from every namespace (or the given one); whether anything went."""
        return self._run(self._operations().delete(result_id, namespace))

    def clear(self) -> None:
        """Drop this backend's collections (those with its prefix), and nothing else."""
        self._run(self._operations().clear())
