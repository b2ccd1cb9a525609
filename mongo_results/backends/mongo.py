"""MongoBackend: results in MongoDB through PyMongo (or the embedded mongomock store).

A thin shell: every decision is made by :mod:`mongo_results._operations`;
this module opens clients and executes the commands those operations yield.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from pydantic import BaseModel
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from .. import _clients
from .._core import Engine
from .._operations import Command, Flow, Operation
from .._targets import mock_client
from ..behaviors import SetBehavior
from ..ids import ResultId
from ..registry import DEFAULT_NAMESPACE
from ._shell import MongoShell

__all__ = ["MongoBackend", "execute"]

R = TypeVar("R")
Doc = dict[str, Any]


def execute(database: Any, command: Command, lock: AbstractContextManager[Any]) -> tuple[Any, BaseException | None]:
    """Run one command on a PyMongo or mongomock database: (reply, DuplicateKeyError or None)."""
    target = database if command.collection is None else database[command.collection]
    try:
        with lock:
            reply = getattr(target, command.method)(*command.args, **command.kwargs)
            return (list(reply) if command.returns_cursor else reply), None
    except DuplicateKeyError as exc:
        return None, exc


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

    def _run(self, operation: Operation[R]) -> R:
        db = self._database()
        flow = Flow(operation)
        with self._errors():
            command = flow.start()
            while command is not None:
                command = flow.resume(*execute(db, command, self._lock))
        return flow.result

    def database(self) -> Database[Doc]:
        """The PyMongo database this backend stores in (for inspection and repairs)."""
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
            _clients.release(self._client_key(), lambda client: client.close())
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
