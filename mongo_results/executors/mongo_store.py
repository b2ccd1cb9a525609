"""What the sync and async MongoDB executors share: their target, names, connection state and pickling."""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import nullcontext
from typing import Any

from gridfs import AsyncGridFSBucket, GridFSBucket
from pymongo.errors import ConfigurationError
from typing_extensions import Self

from ..core.commands import Command
from ..core.engine import EMBEDDED
from ..core.names import DEFAULT_COLLECTION_PREFIX, validate_collection_prefix
from ..core.operations import Operations
from ..errors import InvalidArgumentError, NotShareableError, WrongProcessError, WrongTypeError
from ..notes import say_once
from .driver import DRIVER_ERRORS, Call, error_reply, translate
from .embedded import embedded_lock, in_child_process, is_embedded
from .targets import check_uri, database_from_uri, describe_hosts, is_mock_uri

__all__ = ["MongoStore"]

# The driver's classes by name, so that neither Motor nor mongomock is imported to recognise them
# (their attribute access makes databases and collections of any name: no duck typing).
_CLIENTS = ("MongoClient", "AsyncMongoClient", "AsyncIOMotorClient")
_DATABASES = ("Database", "AsyncDatabase", "AsyncIOMotorDatabase")


class MongoStore:
    """A store's target (URI, client or database) and the state of its current connection.

    A client passed in is used as it is and never closed here; one built from a
    URI is opened lazily in each process that uses the store.
    """

    _client_kinds: tuple[str, ...] = ()  # class names of the driver's clients this executor runs on

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
            raise InvalidArgumentError(f"validation must be 'warn', 'error' or 'off', not {validation!r}")
        self.validation = validation
        self.path_index = path_index
        self.collection_prefix = validate_collection_prefix(collection_prefix)
        self.store_secrets = store_secrets
        self._client_options = client_options
        self._uri: str | None = None
        self._client: Any = None
        self._ops: Operations | None = None
        self._db: Any = None
        self._handles: dict[str, Any] = {}  # driver collection handles by name: building one costs microseconds
        self._pid = os.getpid()
        if isinstance(target, str):
            check_uri(target)
            self._uri = target
            self.database_name = database or database_from_uri(target)
            self.hosts = describe_hosts(target)
            self.embedded = is_mock_uri(target)
        elif type(target).__name__ in _DATABASES:
            self._client = target.client
            self.database_name = database or target.name
            self.embedded = is_embedded(target)
            self.hosts = _client_hosts(target.client, self.embedded)
        elif type(target).__name__ in _CLIENTS:
            self._client = target
            self.database_name = database or _default_database(target)
            self.embedded = is_embedded(target)
            self.hosts = _client_hosts(target, self.embedded)
        else:
            kind = type(target).__name__
            raise WrongTypeError(f"{type(self).__name__} needs a URI, a client or a database, got {kind}")
        self._check_client()
        self._home = os.getpid()  # where an embedded store lives, and the only process that can use it
        if self.embedded and isinstance(target, str) and in_child_process():
            warnings.warn(
                f"{target.split('?', 1)[0]} is an embedded store in this forked or worker process's memory: what "
                "is written to it ends with this process and is never seen by its parent. Use a directory path "
                "or a mongodb:// URI to keep results across processes.",
                RuntimeWarning,
                stacklevel=4,
            )
        self._lock = embedded_lock(self._client) if self.embedded and self._client is not None else None
        self._open_lock = threading.Lock()

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> Self:
        """A backend for a ``mongodb://``, ``mongodb+srv://`` or ``mongomock://`` URI.

        Args:
            uri: the store's URI; its path names the database (default ``mongo_results``).
            **options: the constructor's keyword options (``database``, ``collection_prefix``,
                ``validation``...) and the client's options.

        Raises:
            TypeError: ``uri`` is not a string.
            ValueError: ``uri`` is not a supported store URI.
        """
        if not isinstance(uri, str):
            raise WrongTypeError(f"{cls.__name__}.from_uri needs a URI string, got {type(uri).__name__}")
        return cls(uri, **options)

    def _check_client(self) -> None:
        """Refuse a client of the other flavour (an async one given to the sync executor, and the reverse)."""
        if self._client is None or self.embedded:
            return
        name = type(self._client).__name__
        if name not in self._client_kinds:
            raise WrongTypeError(f"{type(self).__name__} cannot run on a {name}; use {' or '.join(self._client_kinds)}")

    def _connect(self) -> Any:
        """Open a client for this process (and event loop) from the URI."""
        raise NotImplementedError

    def _stale(self) -> bool:
        """Whether there is no client yet, or it belongs to another process."""
        return self._client is None or (self._uri is not None and self._pid != os.getpid())

    def _adopt(self, client: Any) -> None:
        self._client, self._pid, self._ops = client, os.getpid(), None
        self._db, self._handles = None, {}
        if self.embedded:
            self._lock = embedded_lock(client)

    def _client_key(self) -> tuple[str, str]:
        return self._uri or "", repr(sorted(self._client_options.items()))

    def _database(self) -> Any:
        if self.embedded and os.getpid() != self._home:
            raise WrongProcessError(
                f"This manager's embedded store (mongomock://{self.hosts}) lives in process {self._home}, "
                f"not in this one ({os.getpid()}): what is written here would be lost. Use a directory path "
                "or a mongodb:// URI with worker processes."
            )
        if self._stale():
            with self._open_lock:
                if self._stale():
                    # Driver clients are not fork-safe (nor shareable across event loops): each
                    # process (and loop) opens its own on first use.
                    try:
                        client = self._connect()
                    except ValueError as exc:  # PyMongo refuses some URIs (a port not a number) with ValueError
                        raise translate(exc, self.hosts, None) from exc
                    self._adopt(client)
        if self._db is None:
            # UUIDs are written as explicit Binary subtype 4, so the driver's default codec is right.
            with self._lock or nullcontext():  # mongomock makes a database's store on first touch
                self._db = self._client.get_database(self.database_name)
        return self._db

    def _invoke(self, db: Any, call: Call) -> Any:
        """Start a driver call on the database or one of its collections (handles are cached: each costs µs)."""
        target = db
        if call.collection is not None:
            key = f"gridfs:{call.collection}" if call.bucket else call.collection
            target = self._handles.get(key)
            if target is None:
                target = self._handles[key] = _bucket(db, call.collection) if call.bucket else db[call.collection]
        return getattr(target, call.method)(*call.args, **(call.kwargs or {}))

    def _failed(self, command: Command, call: Call, exc: Exception) -> Any:
        """The reply a driver error stands for (a duplicate key), or the library error it translates to."""
        reply = error_reply(command, call, exc)
        if reply is None:
            raise translate(exc, self.hosts, self._timeout(), command) from exc
        return reply

    def database(self) -> Any:
        """The driver's database this store uses (for inspection and repairs)."""
        return self._guarded(self._database)

    def operations(self) -> Operations:
        """The core's operations over the current connection (opening it if needed)."""
        if self._ops is None or self._stale():
            self._guarded(self._database)
            self._ops = Operations(
                self.collection_prefix,
                engine=EMBEDDED if self.embedded else None,
                validation=self.validation,
                path_index=self.path_index,
                note=say_once,
            )
        return self._ops

    def _timeout(self) -> float | None:
        """How long server selection waits: PyMongo lets timeoutMS, when set, replace serverSelectionTimeoutMS."""
        options = getattr(self._client, "options", None)
        selection: float | None = getattr(options, "server_selection_timeout", None)
        overall: float | None = getattr(options, "timeout", None)  # timeoutMS; 0 means none
        return overall or selection

    def _guarded(self, call: Any) -> Any:
        """``call()`` with driver errors translated (opening a client can fail: a bad URI, an SRV name)."""
        try:
            return call()
        except DRIVER_ERRORS as exc:
            raise translate(exc, self.hosts, self._timeout()) from exc

    def __getstate__(self) -> dict[str, Any]:
        if self._uri is None:
            raise NotShareableError(
                f"A {type(self).__name__} built from a client or database object cannot be pickled; "
                "build it from a URI to hand it to other processes"
            )
        if self.embedded:
            raise NotShareableError(
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

    @property
    def where(self) -> str:
        """The store, for people."""
        return f"connected to {self.hosts}, database {self.database_name!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hosts={self.hosts!r}, database={self.database_name!r})"


def _bucket(db: Any, name: str) -> Any:
    """The driver's GridFS bucket for this database's flavour: PyMongo's sync or async one, or Motor's."""
    kind = type(db).__name__
    if kind == "AsyncIOMotorDatabase":
        from motor.motor_asyncio import AsyncIOMotorGridFSBucket

        return AsyncIOMotorGridFSBucket(db, name)
    return AsyncGridFSBucket(db, name) if kind == "AsyncDatabase" else GridFSBucket(db, name)


def _default_database(client: Any) -> str:
    try:
        return str(client.get_default_database().name)
    except ConfigurationError:  # no database in the client's URI
        return "mongo_results"


def _client_hosts(client: Any, embedded: bool) -> str:
    if embedded:
        return "embedded mongomock"
    seeds = client.topology_description.server_descriptions()
    return ",".join(f"{host}:{port}" for host, port in seeds) or "the given client"
