"""The embedded store: mongomock in this process, running the PyMongo calls under one lock.

mongomock is imported here only, when a ``mongomock://`` store is opened.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import weakref
from typing import Any
from urllib.parse import urlsplit

from pymongo.errors import DuplicateKeyError, PyMongoError

from ..core.commands import BulkWrite, Command, DuplicateKey, Find, Insert, ListCollections, Written
from .driver import call_for, driver_reply, error_reply
from .matching import evaluate, ordered, project, touches_data

__all__ = ["embedded_lock", "execute_embedded", "in_child_process", "is_embedded", "mock_client"]

_clients: dict[str, Any] = {}
_lock = threading.Lock()
_locks: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_forked = False


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


# multiprocessing names its workers' parent; a bare os.fork() leaves no trace but this hook.
os.register_at_fork(after_in_child=_after_fork_in_child)


def in_child_process() -> bool:
    """Whether this process was forked (``os.fork``, multiprocessing) or spawned as a worker.

    An embedded store opened here is this process's own copy: the parent never sees it.
    """
    return _forked or multiprocessing.parent_process() is not None


def is_embedded(target: object) -> bool:
    """Whether a client or database object is mongomock's (without importing mongomock)."""
    return type(target).__module__.split(".", 1)[0] == "mongomock"


def mock_client(uri: str) -> Any:
    """The embedded mongomock client for this URI's host, shared within the process."""
    import mongomock

    key = urlsplit(uri).netloc.rpartition("@")[2] or "localhost"
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = mongomock.MongoClient()
        return client


def embedded_lock(client: Any) -> threading.RLock:
    """The one lock of an embedded client, shared by every manager on it.

    mongomock applies a command in several Python steps and does no locking, so
    each command runs under this lock: the store then gives a server's serial
    outcomes to threads, tasks, and sync and async managers on one store.
    """
    with _lock:
        lock = _locks.get(client)
        if lock is None:
            lock = _locks[client] = threading.RLock()
        return lock


def execute_embedded(db: Any, command: Command, lock: threading.RLock) -> Any:
    """Run one command on a mongomock database; the reply a server would give."""
    call = call_for(command)
    with lock:
        target = db if call.collection is None else db[call.collection]
        if isinstance(command, BulkWrite):
            return _bulk_one_by_one(target, command)
        if isinstance(command, Find) and touches_data(command.filter):
            return _find_in_python(target, command)
        if isinstance(command, ListCollections):  # mongomock has no views, nor a filter on the type
            return sorted(db.list_collection_names())
        try:
            raw = getattr(target, call.method)(*call.args, **(call.kwargs or {}))
            return driver_reply(command, call, list(raw) if call.cursor else raw)
        except PyMongoError as exc:
            reply = error_reply(command, call, exc)
            if reply is None:
                raise
            return reply


def _find_in_python(collection: Any, command: Find) -> list[dict[str, Any]]:
    """A find over results' data: mongomock's own find cannot compare BSON decimals, its evaluator can."""
    bound = {"_id": command.filter["_id"]} if "_id" in command.filter else {}
    docs = [d for d in collection.find(bound) if evaluate(command.filter, d)]
    docs = ordered(docs, command.sort or (("_id", 1),))
    return [project(d, command.projection) for d in (docs[: command.limit] if command.limit else docs)]


def _bulk_one_by_one(collection: Any, command: BulkWrite) -> list[Any]:
    """mongomock's bulk_write predates PyMongo 4.9's request objects: apply each write in turn."""
    replies: list[Any] = []
    for write in command.writes:
        try:
            if isinstance(write, Insert):
                collection.insert_one(write.document)
                replies.append(Written(True))
            else:
                method = "replace_one" if write.replace else "update_one"
                reply = getattr(collection, method)(write.filter, write.update, upsert=True)
                replies.append(Written(reply.upserted_id is not None))
        except DuplicateKeyError:
            replies.append(DuplicateKey())
    return replies
