"""MongoBackend: results in MongoDB through PyMongo (or the embedded mongomock store).

A thin shell: every decision is made by :mod:`mongo_results._operations`;
this module opens clients and executes the commands those operations yield.
"""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import mongomock
from pydantic import BaseModel
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import ConfigurationError, DuplicateKeyError

from .. import _clients
from .._core import DEFAULT_COLLECTION_PREFIX, EMBEDDED, Engine, validate_collection_prefix
from .._operations import Command, Flow, Operation, Operations
from .._targets import check_uri, database_from_uri, describe_hosts, is_mock_uri, mock_client
from .._translate import driver_errors
from ..behaviors import SetBehavior
from ..ids import ResultId

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


class MongoBackend:
    """Results in MongoDB: one collection per namespace, one document per result.

    ``target`` is a URI (``mongodb://``, ``mongodb+srv://``, ``mongomock://``), a
    ``MongoClient`` or a ``Database``. A client passed in is used as it is and
    never closed here; one built from a URI is opened lazily, once per process,
    and shared by every backend of that process with the same URI and options.
    """

    def __init__(
        self,
        target: str | MongoClient[Doc] | Database[Doc],
        *,
        database: str | None = None,
        collection_prefix: str = DEFAULT_COLLECTION_PREFIX,
        store_secrets: bool = False,
        **client_options: Any,
    ) -> None:
        self.collection_prefix = validate_collection_prefix(collection_prefix)
        self.store_secrets = store_secrets
        self._client_options = client_options
        self._uri: str | None = None
        self._client: Any = None
        self._ops: Operations | None = None
        self._pid = os.getpid()
        self._open_lock = threading.Lock()
        if isinstance(target, str):
            check_uri(target)
            self._uri = target
            self.database_name = database or database_from_uri(target)
            self.hosts = describe_hosts(target)
            self._mock = is_mock_uri(target)
        elif isinstance(target, (Database, mongomock.Database)):
            self._client = target.client
            self.database_name = database or target.name
            self.hosts = _client_hosts(target.client)
            self._mock = isinstance(target, mongomock.Database)
        elif isinstance(target, (MongoClient, mongomock.MongoClient)):
            self._client = target
            self.database_name = database or _default_database(target)
            self.hosts = _client_hosts(target)
            self._mock = isinstance(target, mongomock.MongoClient)
        else:
            raise TypeError(f"MongoBackend needs a URI, a MongoClient or a Database, got {type(target).__name__}")
        # mongomock applies a command in several Python steps; a lock makes each one atomic.
        self._lock: AbstractContextManager[Any] = threading.RLock() if self._mock else nullcontext()

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> MongoBackend:
        """Build a backend from a URI; the database is the URI's path (default ``mongo_results``)."""
        return cls(uri, **options)

    # -- connection -------------------------------------------------------------------

    def _client_key(self) -> tuple[str, str]:
        return self._uri or "", repr(sorted(self._client_options.items()))

    def _database(self) -> Database[Doc]:
        if self._client is None or (self._uri is not None and self._pid != os.getpid()):
            with self._open_lock:
                if self._client is None or self._pid != os.getpid():
                    # A client opened in another process is never reused here: PyMongo clients
                    # are not fork-safe, so each process opens its own on first use.
                    self._client = self._connect()
                    self._pid = os.getpid()
                    self._ops = None
        # UUIDs are written as explicit Binary subtype 4, so the driver's default codec is right.
        db: Database[Doc] = self._client.get_database(self.database_name)
        return db

    def _connect(self) -> Any:
        uri = self._uri
        assert uri is not None
        if self._mock:
            return mock_client(uri)
        options = {"appname": "mongo_results", **self._client_options}
        return _clients.acquire(self._client_key(), lambda: MongoClient(uri, **options))

    def _operations(self) -> Operations:
        self._database()
        if self._ops is None:
            engine = EMBEDDED if self._mock else None
            self._ops = Operations(self.collection_prefix, engine=engine)
        return self._ops

    def engine(self) -> Engine:
        """The server's engine, asked once per connection."""
        ops = self._operations()
        if ops.engine is None:
            with self._errors():
                ops.engine = Engine.from_build_info(self._database().command("buildInfo"))
        return ops.engine

    def _errors(self) -> AbstractContextManager[None]:
        self._database()  # opens the client (no I/O), so its timeout is known for messages
        timeout = getattr(getattr(self._client, "options", None), "server_selection_timeout", None)
        return driver_errors(self.hosts, timeout)

    def _run(self, operation: Operation[R]) -> R:
        flow = Flow(operation)
        with self._errors():
            db = self._database()
            command = flow.start()
            while command is not None:
                command = flow.resume(*execute(db, command, self._lock))
        return flow.result

    def close(self) -> None:
        """Release the client this backend opened (never one that was passed in)."""
        if self._uri is not None and self._client is not None and not self._mock and self._pid == os.getpid():
            _clients.release(self._client_key(), lambda client: client.close())
        self._client = None
        self._ops = None

    # -- operations -------------------------------------------------------------------

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """Store ``data`` under ``result_id``; one atomic server command (SPEC §2.2)."""
        ops = self._operations()
        return self._run(
            ops.set(result_id, data, behavior, namespace, strict_namespace, store_secrets=self.store_secrets)
        )

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

    # -- processes --------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        if self._uri is None:
            raise TypeError(
                "A MongoBackend built from a client or database object cannot be pickled; "
                "build it from a URI to hand it to other processes"
            )
        if self._mock:
            raise TypeError(
                "The embedded mongomock:// store lives inside one process and cannot be shared; "
                "use a mongodb:// URI or a directory path with worker processes"
            )
        return {
            "uri": self._uri,
            "database": self.database_name,
            "collection_prefix": self.collection_prefix,
            "store_secrets": self.store_secrets,
            "client_options": self._client_options,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["uri"],
            database=state["database"],
            collection_prefix=state["collection_prefix"],
            store_secrets=state["store_secrets"],
            **state["client_options"],
        )

    def __repr__(self) -> str:
        return f"MongoBackend(hosts={self.hosts!r}, database={self.database_name!r})"


def _default_database(client: Any) -> str:
    try:
        return str(client.get_default_database().name)
    except ConfigurationError:  # no database in the client's URI
        return "mongo_results"


def _client_hosts(client: Any) -> str:
    if isinstance(client, mongomock.MongoClient):
        return "embedded mongomock"
    seeds = client.topology_description.server_descriptions()
    return ",".join(f"{host}:{port}" for host, port in seeds) or "the given client"
