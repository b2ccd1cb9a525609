"""MongoBackend and AsyncMongoBackend: the core's commands on MongoDB (PyMongo, Motor).

Both share their target (URI, client or database), its connection state and pickling;
a client built from a URI is one per process (and per event loop for the async one).
A ``mongomock://`` target makes their embedded twins (``stores/embedded_backends.py``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import multiprocessing
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote

import pymongo
from gridfs import AsyncGridFSBucket, GridFSBucket
from pymongo import MongoClient
from pymongo.errors import ConfigurationError
from typing_extensions import Self

from ..core.commands import BuildInfo, Command, FindArrow, Together
from ..core.knowledge import Learned
from ..core.names import DEFAULT_COLLECTION_PREFIX, validate_collection_prefix
from ..core.operations import Operations
from ..core.profiles import EngineProfile
from ..errors import InvalidArgumentError, InvalidUriError, NotShareableError, WrongTypeError
from ..registry import MODELS
from .pymongo_calls import (
    CONFLICT_RETRIES,
    DRIVER_ERRORS,
    Call,
    call_for,
    driver_reply,
    error_reply,
    resend_after,
    translate,
)
from .pymongoarrow_pages import find_arrow, find_arrow_async
from .together import send_together, send_together_async

__all__ = [
    "AsyncMongoBackend",
    "CLOSE_TIMEOUT",
    "DEFAULT_DATABASE",
    "MOCK_SCHEME",
    "MongoBackend",
    "MongoStore",
    "URI_SCHEMES",
    "acquire",
    "bounded_close",
    "check_uri",
    "database_from_uri",
    "describe_hosts",
    "is_mock_uri",
    "is_uri",
    "release",
    "say_once",
]

# The driver's classes by name, so that neither Motor nor mongomock is imported to recognise them
# (their attribute access makes databases and collections of any name: no duck typing).
_CLIENTS = ("MongoClient", "AsyncMongoClient", "AsyncIOMotorClient")
_DATABASES = ("Database", "AsyncDatabase", "AsyncIOMotorDatabase")


@dataclass
class Connection:
    """A client as one process (or, for the async store, one event loop) uses it.

    Collection handles are cached here: building one costs microseconds per call.
    """

    client: Any
    database: Any
    pid: int
    handles: dict[str, Any] = field(default_factory=dict)


# What each process has learnt of each store it met, by target: shared by every manager of
# the process on that target, so a manager unpickled per task does not learn it again.
_learnt: dict[Hashable, Learned] = {}
_learnt_lock = threading.Lock()


def learned_for(key: Hashable) -> Learned:
    """The process's knowledge of the store ``key`` names (one object per process and target)."""
    with _learnt_lock:
        found = _learnt.get(key)
        if found is None:
            found = _learnt[key] = Learned()
        return found


def names_embedded(target: object) -> bool:
    """Whether a target is the embedded store: a ``mongomock://`` URI, or mongomock's client or database."""
    if isinstance(target, str):
        return is_mock_uri(target)
    return type(target).__module__.split(".", 1)[0] == "mongomock"  # without importing mongomock


class MongoStore:
    """A store's target (URI, client or database) and its connections.

    A client passed in is used as it is and never closed here; one built from a
    URI is opened lazily in each process that uses the store.
    """

    _client_kinds: tuple[str, ...] = ()  # class names of the driver's clients this executor runs on
    _engine: ClassVar[EngineProfile | None] = None  # None: asked of the server

    def __new__(cls, target: Any = None, *args: Any, **kwargs: Any) -> Self:
        """Make the embedded twin for the embedded store, as ``pathlib.Path`` makes a ``PosixPath``."""
        if names_embedded(target):
            from .embedded_backends import embedded_kind  # it subclasses this module's classes

            return super().__new__(embedded_kind(cls))
        return super().__new__(cls)

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
        self._given: Any = None  # a client passed in: used as it is, never closed here
        self._ops: Operations | None = None
        self._conn: Connection | None = None
        if isinstance(target, str):
            check_uri(target)
            self._uri = target
            self.database_name = database or database_from_uri(target)
            self._hosts = describe_hosts(target)
        elif type(target).__name__ in _DATABASES:
            self._given = target.client
            self.database_name = database or target.name
            self._hosts = self._hosts_of(target.client)
        elif type(target).__name__ in _CLIENTS:
            self._given = target
            self.database_name = database or _default_database(target)
            self._hosts = self._hosts_of(target)
        else:
            kind = type(target).__name__
            raise WrongTypeError(f"{type(self).__name__} needs a URI, a client or a database, got {kind}")
        self._check_client()
        self._open_lock = threading.Lock()
        self._own_learned = Learned()  # for a client passed in: nothing else shares it

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> Self:
        """Build a backend for a ``mongodb://``, ``mongodb+srv://`` or ``mongomock://`` URI.

        ``results_manager``'s spelling of the constructor with a URI.

        Args:
            uri: The store's URI; its path names the database (default ``mongo_results``).
            **options: The constructor's keyword options (``database``, ``collection_prefix``,
                ``validation``...) and the client's options.

        Returns:
            The backend; its client is opened on first use.

        Raises:
            WrongTypeError: ``uri`` is not a string (a ``TypeError``).
            InvalidUriError: ``uri`` is not a supported store URI (a ``ValueError``).
        """
        if not isinstance(uri, str):
            raise WrongTypeError(f"{cls.__name__}.from_uri needs a URI string, got {type(uri).__name__}")
        return cls(uri, **options)

    def _check_client(self) -> None:
        """Refuse a client of the other flavour (an async one given to the sync executor, and the reverse)."""
        if self._given is None:
            return
        name = type(self._given).__name__
        if name not in self._client_kinds:
            raise WrongTypeError(f"{type(self).__name__} cannot run on a {name}; use {' or '.join(self._client_kinds)}")

    def _connect(self) -> Any:
        """Open a client for this process (and event loop) from the URI."""
        raise NotImplementedError

    @property
    def _client(self) -> Any:
        """The client in use here (this process; for the async store, this event loop), if one is open."""
        conn = self._current()
        return None if conn is None else conn.client

    def _current(self) -> Connection | None:
        """This process's connection, if open (the async store keeps one per event loop)."""
        conn = self._conn
        return conn if conn is not None and (conn.pid == os.getpid() or self._uri is None) else None

    def _keep(self, conn: Connection) -> None:
        self._conn = conn

    def _client_key(self) -> tuple[str, str]:
        return self._uri or "", repr(sorted(self._client_options.items()))

    def _learned(self) -> Learned:
        """What this process knows of the store: shared with every store of the process on the same target."""
        if self._uri is None:
            return self._own_learned
        key = (*self._client_key(), self.database_name, self.collection_prefix, self.validation, self.path_index)
        return learned_for(key)

    def _hosts_of(self, client: Any) -> str:
        seeds = client.topology_description.server_descriptions()
        return ",".join(f"{host}:{port}" for host, port in seeds) or "the given client"

    def _connection(self) -> Connection:
        conn = self._current()
        if conn is not None:
            return conn
        with self._open_lock:
            conn = self._current()
            if conn is None:
                # Driver clients are not fork-safe (nor shareable across event loops): each
                # process (and loop) opens its own on first use.
                try:
                    client = self._given if self._given is not None else self._connect()
                except ValueError as exc:  # PyMongo refuses some URIs (a port not a number) with ValueError
                    raise translate(exc, self._hosts, None) from exc
                conn = self._attach(client)
                self._keep(conn)
        return conn

    def _attach(self, client: Any) -> Connection:
        # UUIDs are written as explicit Binary subtype 4, so the driver's default codec is right.
        return Connection(client, client.get_database(self.database_name), os.getpid())

    def _database(self) -> Any:
        return self._connection().database

    def _invoke(self, db: Any, call: Call) -> Any:
        """Start a driver call on the database or one of its collections (handles are cached: each costs µs)."""
        if call.database is not None:  # sharding's admin commands and config reads: rare, not cached
            target = db.client[call.database]
            target = target if call.collection is None else target[call.collection]
            args, kwargs = call.resolved(db.name)
            return getattr(target, call.method)(*args, **kwargs)
        target = db
        if call.collection is not None:
            handles = self._connection().handles
            key = f"gridfs:{call.collection}" if call.bucket else call.collection
            target = handles.get(key)
            if target is None:
                target = handles[key] = _bucket(db, call.collection) if call.bucket else db[call.collection]
        return getattr(target, call.method)(*call.args, **(call.kwargs or {}))

    def _collection(self, db: Any, name: str) -> Any:
        handles = self._connection().handles
        target = handles.get(name)
        if target is None:
            target = handles[name] = db[name]
        return target

    def _deployment(self, build_info: Any) -> dict[str, Any]:
        """``buildInfo`` with the driver's view of the deployment added (``topology``: ``Sharded`` behind mongos)."""
        client = self._client
        description = getattr(getattr(client, "delegate", client), "topology_description", None)  # Motor: delegate
        kind = getattr(description, "topology_type_name", None)
        return {**build_info, "topology": kind} if kind not in (None, "Unknown") else dict(build_info)

    def _failed(self, command: Command, call: Call, exc: Exception) -> Any:
        """The reply a driver error stands for (a duplicate key), or the library error it translates to."""
        reply = error_reply(command, call, exc)
        if reply is None:
            raise translate(exc, self._hosts, self._timeout(), command) from exc
        return reply

    def database(self) -> Any:
        """Give the driver's database this store uses, for inspection and repairs.

        Returns:
            PyMongo's ``Database`` (``AsyncDatabase``, or Motor's, for ``AsyncMongoBackend``),
            opening the client if needed.

        Raises:
            StoreUnavailableError: The client could not be opened (an SRV name that does
                not resolve).
        """
        return self._guarded(self._database)

    def _operations(self) -> Operations:
        """Give the core's operations over the current connection, for the managers.

        Returns:
            The operations, with the store's current options; the connection is opened if
            needed (once per process, and per event loop for ``AsyncMongoBackend``).

        Raises:
            StoreUnavailableError: The client could not be opened.
        """
        self._guarded(self._database)
        ops = self._ops
        if ops is None:
            ops = self._ops = Operations(
                self.collection_prefix,
                models=MODELS,
                where=self._where,
                engine=self._engine,
                validation=self.validation,
                path_index=self.path_index,
                note=say_once,
                learned=self._learned(),
            )
        ops.store_secrets = self.store_secrets  # an attribute users may change at any time
        return ops

    def _timeout(self) -> float | None:
        """How long server selection waits: PyMongo lets timeoutMS, when set, replace serverSelectionTimeoutMS."""
        options = getattr(self._client or self._given, "options", None)
        selection: float | None = getattr(options, "server_selection_timeout", None)
        overall: float | None = getattr(options, "timeout", None)  # timeoutMS; 0 means none
        return overall or selection

    def _guarded(self, call: Any) -> Any:
        """``call()`` with driver errors translated (opening a client can fail: a bad URI, an SRV name)."""
        try:
            return call()
        except DRIVER_ERRORS as exc:
            raise translate(exc, self._hosts, self._timeout()) from exc

    def __getstate__(self) -> dict[str, Any]:
        if self._uri is None:
            raise NotShareableError(
                f"A {type(self).__name__} built from a client or database object cannot be pickled; "
                "build it from a URI to hand it to other processes"
            )
        return {"uri": self._uri, **self._options(), "client_options": self._client_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.__init__(state.pop("uri"), **state.pop("client_options"), **state)  # type: ignore[misc]

    def _options(self) -> dict[str, Any]:
        """The constructor's keyword options this store was built with, but the client's."""
        return {
            "database": self.database_name,
            "collection_prefix": self.collection_prefix,
            "store_secrets": self.store_secrets,
            "validation": self.validation,
            "path_index": self.path_index,
        }

    @property
    def embedded(self) -> bool:
        """Whether this is the embedded store (``mongomock://``): in this process's memory, ended with it.

        Such a store cannot be handed to worker processes (``NotShareableError``).
        """
        return False

    @property
    def _where(self) -> str:
        """The store, for people: its hosts and database, never the password."""
        return f"connected to {self._hosts}, database {self.database_name!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hosts={self._hosts!r}, database={self.database_name!r})"


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


# -- Where a store lives: URI schemes, database names, safe host descriptions.
# Shared by every MongoDB executor; nothing here opens a connection.

DEFAULT_DATABASE = "mongo_results"
MOCK_SCHEME = "mongomock"
URI_SCHEMES = ("mongodb", "mongodb+srv", MOCK_SCHEME)


def _scheme(value: str) -> str | None:
    head, sep, _ = value.partition("://")
    return head.lower() if sep and head and "/" not in head else None


def is_uri(value: object) -> bool:
    """Whether ``value`` is a string with a ``scheme://`` (supported or not)."""
    return isinstance(value, str) and _scheme(value) is not None


def check_uri(uri: str) -> str:
    """Return the scheme of a supported URI; InvalidUriError (a ValueError) otherwise."""
    scheme = _scheme(uri)
    if scheme not in URI_SCHEMES:
        raise InvalidUriError(
            f"Unsupported store URI scheme {scheme!r}: use a directory path or a "
            "mongodb://, mongodb+srv:// or mongomock:// URI"
        )
    rest = uri.split("://", 1)[1]
    userinfo, at, _ = _authority(rest).rpartition("@")
    # An unescaped "/", "?" or "#" in a password ends the host part early, and the password
    # would then be taken for a host name: in messages, in repr(). Such a URI is refused.
    if (not at and "@" in rest) or "@" in userinfo or userinfo.count(":") > 1:
        raise InvalidUriError(
            "The store URI's user name or password holds an unescaped '@', ':', '/', '?' or '#': "
            "percent-escape them (urllib.parse.quote_plus). The URI is not repeated here."
        )
    return scheme


def is_mock_uri(uri: str) -> bool:
    """Whether the URI names the embedded in-process store."""
    return _scheme(uri) == MOCK_SCHEME


def _authority(rest: str) -> str:
    """``user:password@host1,host2`` of a URI after its ``scheme://``."""
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return rest[: min(ends)] if ends else rest


def database_from_uri(uri: str) -> str:
    """The database named by the URI's path, or ``mongo_results``."""
    rest = uri.split("://", 1)[1]
    _, slash, path = rest.partition("/")
    name = unquote(path.split("?", 1)[0]) if slash else ""
    return name or DEFAULT_DATABASE


def describe_hosts(uri: str) -> str:
    """The URI's hosts, for messages: never the user name or password."""
    return _authority(uri.split("://", 1)[1]).rpartition("@")[2] or "localhost"


# -- One driver client per process and URI, shared by every backend built from that URI.
# PyMongo clients own a connection pool and monitor threads; a worker that
# unpickles a manager per task must not open a client per task. Clients are
# reference-counted, forgotten (never closed) in a forked child, and closed at exit.

# Closing a client sends endSessions, which first waits for a server: when the server is gone,
# for the whole server-selection timeout (30 s by default). Closing never waits longer than this.
CLOSE_TIMEOUT = 2.0

_lock = threading.Lock()
_clients: dict[Hashable, list[Any]] = {}  # key -> [client, references]
_pid = os.getpid()


def _reset_after_fork() -> None:
    global _pid
    if _pid != os.getpid():
        _clients.clear()  # the parent's clients belong to the parent
        _pid = os.getpid()


def acquire(key: Hashable, open_client: Callable[[], Any]) -> Any:
    """The process's client for ``key``, opened by ``open_client`` on first use."""
    with _lock:
        _reset_after_fork()
        entry = _clients.get(key)
        if entry is None:
            entry = _clients[key] = [open_client(), 0]
        entry[1] += 1
        return entry[0]


def bounded_close(client: Any) -> None:
    """Close a sync client, waiting at most CLOSE_TIMEOUT for a server that may be gone."""
    with contextlib.suppress(Exception), pymongo.timeout(CLOSE_TIMEOUT):  # best effort: it is going away
        client.close()


def release(key: Hashable) -> None:
    """Drop one reference; the last one closes the client."""
    with _lock:
        _reset_after_fork()
        entry = _clients.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _clients[key]
            bounded_close(entry[0])


@atexit.register
def _close_all() -> None:
    with _lock:
        _reset_after_fork()
        for client, _ in _clients.values():
            bounded_close(client)
        _clients.clear()


# -- MongoBackend: runs the core's commands with PyMongo's ``MongoClient``.


class MongoBackend(MongoStore):
    """Results in MongoDB: one collection per namespace, one document per result.

    A client built from a URI is opened lazily, once per process, and shared by every
    backend of that process with the same URI and options; such a backend pickles as its
    URI and options, so worker processes open their own client. A client passed in is
    used as it is and never closed here.

    Args:
        target: A URI (``mongodb://``, ``mongodb+srv://``, or ``mongomock://`` for the
            embedded in-process store), a PyMongo ``MongoClient`` or a ``Database``.
        database: The database; None takes the URI's path, the client's default database,
            or ``mongo_results``.
        collection_prefix: Prefix of the collections' names (``results.<namespace>``).
        store_secrets: Whether pydantic ``SecretStr``/``SecretBytes`` values may be stored
            (in clear text); can be changed on the instance later.
        validation: The collections' validator: ``"warn"`` (the server logs documents that
            break it), ``"error"`` (the server refuses them) or ``"off"`` (none installed).
        path_index: Also index the ids' segments (``path``), for filters by segment; it
            slows writes.
        **client_options: Options for the client built from a URI (``serverSelectionTimeoutMS``,
            ``maxPoolSize``...), as PyMongo's ``MongoClient`` takes them.

    Raises:
        InvalidUriError: The URI is not a supported store URI (a ``ValueError``).
        InvalidArgumentError: ``validation`` is not ``"warn"``, ``"error"`` or ``"off"``.
        InvalidNamespaceError: ``collection_prefix`` cannot start a collection name.
        WrongTypeError: ``target`` is neither a URI, a client nor a database, or is an
            async client (a ``TypeError``).
    """

    _client_kinds = ("MongoClient",)

    def _connect(self) -> Any:
        uri = self._uri
        assert uri is not None
        options = {"appname": "mongo_results", **self._client_options}
        return acquire(self._client_key(), lambda: MongoClient(uri, **options))

    def _execute(self, command: Command) -> Any:
        """Run one of the core's commands on the database, for the managers.

        Args:
            command: The command, built by the core's operations.

        Returns:
            The command's reply (a duplicate key is a reply, not an error).

        Raises:
            StoreUnavailableError: No server answered within the timeout.
            OutcomeUnknownError: The connection was lost after the command was sent.
            RejectedByServerError: The server refused the document or command.
        """
        if isinstance(command, Together):
            return send_together(self._execute, command.commands)
        db = self._guarded(self._database)
        if isinstance(command, FindArrow):
            return self._guarded(lambda: find_arrow(self._collection(db, command.collection), command))
        call = call_for(command)
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                raw = self._invoke(db, call)
                reply = driver_reply(command, call, list(raw) if call.cursor else raw)
                break
            except DRIVER_ERRORS as exc:
                undo = resend_after(command, exc) if attempt < CONFLICT_RETRIES else None
                if undo is None:
                    return self._failed(command, call, exc)
                for step in undo:  # what a rolled-back upload left behind
                    with contextlib.suppress(*DRIVER_ERRORS):
                        self._invoke(db, step)
        return self._deployment(reply) if isinstance(command, BuildInfo) else reply

    def close(self) -> None:
        """Release the client this backend opened (never one that was passed in)."""
        if self._uri is None:
            return  # a client passed in stays open and in use
        if self._current() is not None:
            release(self._client_key())
        self._conn = None


# -- AsyncMongoBackend: runs the core's commands with PyMongo's ``AsyncMongoClient`` or Motor.


class AsyncMongoBackend(MongoStore):
    """Results in MongoDB for asyncio code: the storage and behaviour of [`MongoBackend`][mongo_results.MongoBackend].

    A client built from a URI (PyMongo's ``AsyncMongoClient``) is opened per event loop,
    since an async client cannot be shared between loops; ``close()`` closes the one of the
    running loop, and each other is closed as its loop shuts down.

    Args:
        target: A URI (``mongodb://``, ``mongodb+srv://``, ``mongomock://``), an
            ``AsyncMongoClient``/``AsyncDatabase``, or a Motor client or database.
        **options: ``MongoBackend``'s keyword options (``database``, ``collection_prefix``,
            ``store_secrets``, ``validation``, ``path_index``) and the client's options.

    Raises:
        InvalidUriError: The URI is not a supported store URI (a ``ValueError``).
        InvalidArgumentError: ``validation`` is not ``"warn"``, ``"error"`` or ``"off"``.
        InvalidNamespaceError: ``collection_prefix`` cannot start a collection name.
        WrongTypeError: ``target`` is neither a URI, a client nor a database, or is a sync
            client (a ``TypeError``).
    """

    _client_kinds = ("AsyncMongoClient", "AsyncIOMotorClient")

    def __init__(self, target: Any, **options: Any) -> None:
        super().__init__(target, **options)
        # Per event loop: the connection opened for it, and the guard that closes its client as the
        # loop shuts down (started on the loop's first command, so that the loop finalizes it).
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Connection] = weakref.WeakKeyDictionary()
        self._guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
            weakref.WeakKeyDictionary()
        )
        self._unguarded: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
            weakref.WeakKeyDictionary()
        )

    def _per_loop(self) -> bool:
        return self._uri is not None

    def _current(self) -> Connection | None:
        if not self._per_loop():
            return super()._current()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nothing is open for it
            return None
        conn = self._by_loop.get(loop)
        return conn if conn is not None and conn.pid == os.getpid() else None

    def _keep(self, conn: Connection) -> None:
        if not self._per_loop():
            super()._keep(conn)
            return
        self._by_loop[asyncio.get_running_loop()] = conn

    def _connect(self) -> Any:
        assert self._uri is not None
        loop = asyncio.get_running_loop()
        client = pymongo.AsyncMongoClient(self._uri, **{"appname": "mongo_results", **self._client_options})
        self._guards[loop] = self._unguarded[loop] = _closed_with_the_loop(client)
        return client

    async def _execute(self, command: Command) -> Any:
        """``MongoBackend._execute``, awaited: the same reply and errors."""
        if isinstance(command, Together):
            return await send_together_async(self._execute, command.commands)
        db = self._guarded(self._database)
        if self._unguarded:
            guard = self._unguarded.pop(asyncio.get_running_loop(), None)
            if guard is not None:
                await anext(guard)  # started in this loop, so the loop finalizes it before it closes
        if isinstance(command, FindArrow):
            try:
                return await find_arrow_async(self._collection(db, command.collection), command)
            except DRIVER_ERRORS as exc:
                raise translate(exc, self._hosts, self._timeout(), command) from exc
        call = call_for(command)
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                pending = self._invoke(db, call)
                # Motor's and PyMongo's async cursors both take to_list(None) for "everything".
                reply = driver_reply(command, call, await pending.to_list(None) if call.cursor else await pending)
                break
            except DRIVER_ERRORS as exc:
                undo = resend_after(command, exc) if attempt < CONFLICT_RETRIES else None
                if undo is None:
                    return self._failed(command, call, exc)
                for step in undo:  # what a rolled-back upload left behind
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await self._invoke(db, step)
        return self._deployment(reply) if isinstance(command, BuildInfo) else reply

    async def close(self) -> None:
        """Close the client this backend opened for the running loop (never one passed in).

        A client opened for a loop that was not closed this way is closed as that loop
        shuts down (``asyncio.run`` finalizes async generators before it closes the loop).
        """
        if not self._per_loop():
            return
        loop = asyncio.get_running_loop()
        self._by_loop.pop(loop, None)
        self._unguarded.pop(loop, None)
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


# -- Notes to the user (an engine without validators): a warning once per process that runs the sweep.

log = logging.getLogger("mongo_results")
_SAID: set[str] = set()  # the notes this process has given (a process's own business: the environment is the user's)


def say_once(message: str) -> None:
    """Log ``message`` once per process: a warning in the process that runs the sweep, INFO in its workers.

    Worker processes (those with a parent in ``multiprocessing``) meet the same notes as the
    process that started them, which says them as warnings; theirs stay at INFO level, so a
    pool of workers does not repeat one warning per worker.
    """
    if message in _SAID:
        return
    _SAID.add(message)
    log.log(logging.INFO if multiprocessing.parent_process() is not None else logging.WARNING, message)
