"""EmbeddedBackend and AsyncEmbeddedBackend: the MongoDB backends' twins for ``mongomock://``.

``MongoBackend(target)`` gives one when the target is the embedded store, as
``pathlib.Path`` gives a ``PosixPath``. The store lives in this process: no
server to ask, nothing to pickle or fork, every command run in-line under the
store's one lock, and one client for every event loop.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any, TypeVar, cast

from ..core.commands import Command
from ..core.profiles import EMBEDDED
from ..errors import InvalidUriError, NotShareableError, WrongProcessError
from .embedded import embedded_lock, execute_embedded, in_child_process, mock_client
from .mongo import AsyncMongoBackend, Connection, MongoBackend, MongoStore, names_embedded

__all__ = ["AsyncEmbeddedBackend", "EmbeddedBackend", "embedded_kind"]


S = TypeVar("S", bound=MongoStore)


_twins: dict[type[MongoStore], type[MongoStore]] = {}
_twins_lock = threading.Lock()


def embedded_kind(kind: type[S]) -> type[S]:
    """The embedded twin of a MongoDB backend class: a subclass of both it and the embedded backend.

    A user's subclass of ``MongoBackend`` keeps its own methods on the embedded store too.
    """
    if issubclass(kind, _Embedded):
        return kind
    base = AsyncEmbeddedBackend if issubclass(kind, AsyncMongoBackend) else EmbeddedBackend
    if kind in (MongoBackend, AsyncMongoBackend):
        return cast("type[S]", base)
    with _twins_lock:
        twin = _twins.get(kind)
        if twin is None:
            twin = _twins[kind] = type(f"Embedded{kind.__name__}", (base, kind), {"__module__": kind.__module__})
        return cast("type[S]", twin)


class _Embedded(MongoStore):
    """What the sync and async embedded backends share: the store is this process's memory."""

    _engine = EMBEDDED
    _lock: threading.RLock | None

    def __init__(self, target: Any, **options: Any) -> None:
        if not names_embedded(target):
            raise InvalidUriError(
                f"{type(self).__name__} is the embedded store: it needs a mongomock:// URI or mongomock's "
                "client or database; MongoBackend(target) chooses the store a target names"
            )
        super().__init__(target, **options)
        self._home = os.getpid()  # the only process that can use the store
        self._lock = embedded_lock(self._given) if self._given is not None else None
        if isinstance(target, str) and in_child_process():
            warnings.warn(
                f"{target.split('?', 1)[0]} is an embedded store in this forked or worker process's memory: what "
                "is written to it ends with this process and is never seen by its parent. Use a directory path "
                "or a mongodb:// URI to keep results across processes.",
                RuntimeWarning,
                stacklevel=5,
            )

    def _check_client(self) -> None:
        return  # mongomock's client serves sync and async managers alike

    def _hosts_of(self, client: Any) -> str:
        return "embedded mongomock"

    def _connect(self) -> Any:
        assert self._uri is not None
        return mock_client(self._uri)

    def _connection(self) -> Connection:
        if os.getpid() != self._home:
            raise WrongProcessError(
                f"This manager's embedded store (mongomock://{self._hosts}) lives in process {self._home}, "
                f"not in this one ({os.getpid()}): what is written here would be lost. Use a directory path "
                "or a mongodb:// URI with worker processes."
            )
        return super()._connection()

    def _attach(self, client: Any) -> Connection:
        self._lock = lock = embedded_lock(client)
        with lock:  # mongomock makes a database's store on first touch
            return super()._attach(client)

    def _run_here(self, command: Command) -> Any:
        db = self._guarded(self._database)
        lock = self._lock
        assert lock is not None  # set as the connection opened
        return self._guarded(lambda: execute_embedded(db, command, lock))

    def __copy__(self) -> Any:
        """Another backend on the same in-process store (a deep copy is the same: the store is not copied)."""
        target = self._uri if self._uri is not None else self._given
        return type(self)(target, **self._options(), **self._client_options)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self.__copy__()

    def __getstate__(self) -> dict[str, Any]:
        raise NotShareableError(
            "The embedded mongomock:// store lives inside one process and cannot be shared; "
            "use a mongodb:// URI or a directory path with worker processes"
        )

    @property
    def embedded(self) -> bool:
        """Always True: this store is in this process's memory, and ends with it."""
        return True

    def __repr__(self) -> str:  # not a server: say so, it ends with this process
        return f"{type(self).__name__}(embedded mongomock store, database={self.database_name!r})"


class EmbeddedBackend(_Embedded, MongoBackend):
    """``MongoBackend`` on the embedded store (``mongomock://``, or mongomock's client or database)."""

    def _execute(self, command: Command) -> Any:
        return self._run_here(command)

    def close(self) -> None:
        """Forget the connection; the store stays, in this process, for every manager on it."""
        self._conn = None


class AsyncEmbeddedBackend(_Embedded, AsyncMongoBackend):
    """``AsyncMongoBackend`` on the embedded store: commands run in-line, since nothing blocks."""

    def _per_loop(self) -> bool:
        return False  # one mongomock client serves every event loop

    async def _execute(self, command: Command) -> Any:
        return self._run_here(command)
