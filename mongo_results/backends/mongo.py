"""MongoBackend: results in MongoDB through PyMongo (or the embedded mongomock store)."""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import mongomock
from pydantic import BaseModel
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConfigurationError, DuplicateKeyError

from .. import _clients
from .._core import (
    DEFAULT_COLLECTION_PREFIX,
    EMBEDDED,
    Engine,
    SetPlan,
    choose_document,
    load_model,
    namespaces_in,
    plan_set,
    prefix_filter,
    validate_collection_prefix,
    validate_namespace,
)
from .._targets import check_uri, database_from_uri, describe_hosts, is_mock_uri, mock_client
from .._translate import driver_errors
from ..behaviors import SetBehavior
from ..ids import ResultId, canonical_id
from .indexes import INDEXES

__all__ = ["MongoBackend"]

Doc = dict[str, Any]


class MongoBackend:
    """Results in MongoDB: one collection per namespace, one document per result.

    ``target`` is a URI (``mongodb://``, ``mongodb+srv://``, ``mongomock://``), a
    ``MongoClient`` or a ``Database``. A client passed in is used as it is and
    never closed here; one built from a URI is opened lazily, once per process.
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
        self._pid = os.getpid()
        self._ensured: set[str] = set()
        self._engine: Engine | None = None
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
        # mongomock applies an update in several Python steps; one lock makes each command atomic.
        self._guard: AbstractContextManager[Any] = threading.RLock() if self._mock else nullcontext()

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> MongoBackend:
        """Build a backend from a URI; the database is the URI's path (default ``mongo_results``)."""
        return cls(uri, **options)

    # -- connection -------------------------------------------------------------------

    def _database(self) -> Database[Doc]:
        if self._client is None or (self._uri is not None and self._pid != os.getpid()):
            with self._open_lock:
                if self._client is None or self._pid != os.getpid():
                    # A client opened in another process is never reused here: PyMongo clients
                    # are not fork-safe, so each process opens its own on first use.
                    self._client = self._connect()
                    self._pid = os.getpid()
                    self._ensured = set()
                    self._engine = None
        # UUIDs are written as explicit Binary subtype 4, so the driver's default codec is right.
        db: Database[Doc] = self._client.get_database(self.database_name)
        return db

    def _client_key(self) -> tuple[str, str]:
        return self._uri or "", repr(sorted(self._client_options.items()))

    def _connect(self) -> Any:
        uri = self._uri
        assert uri is not None
        if self._mock:
            return mock_client(uri)
        options = {"appname": "mongo_results", **self._client_options}
        return _clients.acquire(self._client_key(), lambda: MongoClient(uri, **options))

    def _errors(self) -> AbstractContextManager[None]:
        self._database()  # opens the client (no I/O), so its timeout is known for messages
        timeout = getattr(getattr(self._client, "options", None), "server_selection_timeout", None)
        return driver_errors(self.hosts, timeout)

    def engine(self) -> Engine:
        """The server's engine, asked once per client."""
        db = self._database()
        if self._engine is None:
            self._engine = EMBEDDED if self._mock else Engine.from_build_info(db.client.admin.command("buildInfo"))
        return self._engine

    def _collection(self, namespace: str) -> Collection[Doc]:
        return self._database()[self.collection_prefix + namespace]

    def _writable(self, namespace: str) -> Collection[Doc]:
        coll = self._collection(namespace)
        if coll.name not in self._ensured:
            coll.create_indexes(INDEXES)
            self._ensured.add(coll.name)
        return coll

    def _namespaces(self, namespace: str | None) -> list[str]:
        if namespace is not None:
            return [validate_namespace(namespace)]
        return namespaces_in(self._database().list_collection_names(), self.collection_prefix)

    def close(self) -> None:
        """Close the client this backend opened (never one that was passed in)."""
        if self._uri is not None and self._client is not None and not self._mock and self._pid == os.getpid():
            _clients.release(self._client_key(), lambda client: client.close())
        self._client = None

    # -- operations -------------------------------------------------------------------

    def _run(self, plan: SetPlan) -> bool:
        coll = self._writable(plan.namespace)
        for attempt in range(1, plan.attempts + 1):
            try:
                if plan.filter is None:
                    coll.insert_one(plan.document)
                    return plan.outcome(duplicate=False, upserted=True)
                assert plan.update is not None
                res = coll.update_one(plan.filter, plan.update, upsert=True)
                return plan.outcome(duplicate=False, upserted=res.upserted_id is not None)
            except DuplicateKeyError:
                if attempt == plan.attempts:
                    return plan.outcome(duplicate=True, upserted=False)
        raise AssertionError("unreachable")  # pragma: no cover

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """Store ``data`` under ``result_id``; one atomic server command (SPEC §2.2)."""
        with self._guard, self._errors():
            plan = plan_set(
                result_id,
                data,
                behavior,
                namespace,
                strict_namespace,
                store_secrets=self.store_secrets,
                engine=self.engine(),
            )
            return self._run(plan)

    def get(
        self,
        result_id: ResultId,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
    ) -> BaseModel:
        """The stored result, validated into its model class."""
        rid = canonical_id(result_id)
        with self._guard, self._errors():
            found = [
                (ns, doc)
                for ns in self._namespaces(namespace)
                if (doc := self._collection(ns).find_one({"_id": rid})) is not None
            ]
        return load_model(choose_document(rid, found, model_class), rid, model_class, namespace)

    def exists(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Whether any namespace (or the given one) holds ``result_id``."""
        rid = canonical_id(result_id)
        with self._guard, self._errors():
            return any(
                self._collection(ns).find_one({"_id": rid}, {"_id": 1}) is not None
                for ns in self._namespaces(namespace)
            )

    def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]:
        """Sorted ids under ``prefix`` (whole segments), one index-backed query per namespace."""
        query = prefix_filter(prefix)
        ids: set[str] = set()
        with self._guard, self._errors():
            for ns in self._namespaces(namespace):
                ids.update(doc["_id"] for doc in self._collection(ns).find(query, {"_id": 1}))
        return sorted(ids)

    def delete(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Delete ``result_id`` from every namespace (or the given one); whether anything went."""
        rid = canonical_id(result_id)
        with self._guard, self._errors():
            counts = [self._collection(ns).delete_one({"_id": rid}).deleted_count for ns in self._namespaces(namespace)]
        return any(counts)

    def clear(self) -> None:
        """Drop this backend's collections (those with its prefix), and nothing else."""
        with self._guard, self._errors():
            db = self._database()
            for ns in self._namespaces(None):
                db.drop_collection(self.collection_prefix + ns)
            self._ensured.clear()

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
