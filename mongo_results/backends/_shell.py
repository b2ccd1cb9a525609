"""What the sync and async MongoDB backends share: their target, names, state and pickling."""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import mongomock
from pymongo.errors import ConfigurationError

from .._core import DEFAULT_COLLECTION_PREFIX, EMBEDDED, validate_collection_prefix
from .._operations import Operations
from .._targets import check_uri, database_from_uri, describe_hosts, embedded_lock, is_mock_uri
from .._translate import DriverErrors

__all__ = ["MongoShell"]


class MongoShell:
    """Holds a store's target (URI, client or database) and the state of its current connection."""

    def _client_types(self) -> tuple[type, ...]:
        raise NotImplementedError

    def _database_types(self) -> tuple[type, ...]:
        raise NotImplementedError

    def __init__(
        self,
        target: Any,
        *,
        database: str | None = None,
        collection_prefix: str = DEFAULT_COLLECTION_PREFIX,
        store_secrets: bool = False,
        validation: str = "warn",
        path_index: bool = False,
        **client_options: Any,
    ) -> None:
        if validation not in ("warn", "error", "off"):
            raise ValueError(f"validation must be 'warn', 'error' or 'off', not {validation!r}")
        self.validation = validation
        self.path_index = path_index
        self.collection_prefix = validate_collection_prefix(collection_prefix)
        self.store_secrets = store_secrets
        self._client_options = client_options
        self._uri: str | None = None
        self._client: Any = None
        self._ops: Operations | None = None
        self._db: Any = None
        self._collections: dict[str, Any] = {}  # driver handles by name: building one costs microseconds
        self._pid = os.getpid()
        if isinstance(target, str):
            check_uri(target)
            self._uri = target
            self.database_name = database or database_from_uri(target)
            self.hosts = describe_hosts(target)
            self._mock = is_mock_uri(target)
        elif isinstance(target, (*self._database_types(), mongomock.Database)):
            db: Any = target
            self._client = db.client
            self.database_name = database or db.name
            self.hosts = _client_hosts(db.client)
            self._mock = isinstance(target, mongomock.Database)
        elif isinstance(target, (*self._client_types(), mongomock.MongoClient)):
            self._client = target
            self.database_name = database or _default_database(target)
            self.hosts = _client_hosts(target)
            self._mock = isinstance(target, mongomock.MongoClient)
        else:
            raise TypeError(f"{type(self).__name__} needs a URI, a client or a database, got {type(target).__name__}")
        # Each command on the embedded store runs under its client's one lock (see embedded_lock).
        self._lock: AbstractContextManager[Any] = nullcontext()
        if self._mock and self._client is not None:
            self._lock = embedded_lock(self._client)
        self._open_lock = threading.Lock()

    def _connect(self) -> Any:
        """Open a client for this process (and event loop) from the URI."""
        raise NotImplementedError

    def _stale(self) -> bool:
        """Whether there is no client yet, or it belongs to another process."""
        return self._client is None or (self._uri is not None and self._pid != os.getpid())

    def _adopt(self, client: Any) -> None:
        self._client, self._pid, self._ops = client, os.getpid(), None
        self._db, self._collections = None, {}
        if self._mock:
            self._lock = embedded_lock(client)

    def _client_key(self) -> tuple[str, str]:
        return self._uri or "", repr(sorted(self._client_options.items()))

    def _database(self) -> Any:
        if self._stale():
            with self._open_lock:
                if self._stale():
                    # Driver clients are not fork-safe (nor shareable across event loops): each
                    # process (and loop) opens its own on first use.
                    self._adopt(self._connect())
        if self._db is None:
            # UUIDs are written as explicit Binary subtype 4, so the driver's default codec is right.
            with self._lock:  # mongomock makes a database's (and a collection's) store on first touch
                self._db = self._client.get_database(self.database_name)
        return self._db

    def _target(self, db: Any, collection: str | None) -> Any:
        """The database (``collection`` None) or one of its collections, as a driver handle."""
        if collection is None:
            return db
        found = self._collections.get(collection)
        if found is None:
            with self._lock:
                found = self._collections[collection] = db[collection]
        return found

    def _operations(self) -> Operations:
        """The operations over the current connection (opening it if needed)."""
        if self._ops is None or self._stale():
            with self._errors():  # opening a client can fail (a bad URI, an SRV name that does not resolve)
                self._database()
            engine = EMBEDDED if self._mock else None
            self._ops = Operations(
                self.collection_prefix, engine=engine, validation=self.validation, path_index=self.path_index
            )
        return self._ops

    def _errors(self) -> DriverErrors:
        timeout = getattr(getattr(self._client, "options", None), "server_selection_timeout", None)
        return DriverErrors(self.hosts, timeout)

    def __getstate__(self) -> dict[str, Any]:
        if self._uri is None:
            raise TypeError(
                f"A {type(self).__name__} built from a client or database object cannot be pickled; "
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
            "validation": self.validation,
            "path_index": self.path_index,
            "client_options": self._client_options,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["uri"],
            database=state["database"],
            collection_prefix=state["collection_prefix"],
            store_secrets=state["store_secrets"],
            validation=state["validation"],
            path_index=state["path_index"],
            **state["client_options"],
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hosts={self.hosts!r}, database={self.database_name!r})"


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
