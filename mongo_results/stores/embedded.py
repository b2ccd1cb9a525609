"""The embedded store: mongomock in this process, running the PyMongo calls under one lock.

mongomock is imported here only, when a ``mongomock://`` store is opened.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import multiprocessing
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from pymongo.errors import DuplicateKeyError, PyMongoError

from ..core.commands import (
    BY_ID,
    BulkWrite,
    CollectionOptions,
    Command,
    CountDocuments,
    CreateCollection,
    DuplicateKey,
    Find,
    FindOne,
    Insert,
    ListCollections,
    Refused,
    ServerTime,
    Upsert,
    Written,
)
from ..errors import InvalidArgumentError
from .bson_query import evaluate, ordered
from .evaluation import matches, project, touches_data
from .pymongo_calls import call_for, driver_reply, error_reply

__all__ = ["embedded_lock", "execute_embedded", "in_child_process", "mock_client"]

_clients: dict[str, Any] = {}
_lock = threading.Lock()
_locks: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_forked = False


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


# multiprocessing names its workers' parent; a bare os.fork() leaves no trace but this hook,
# which Windows has no use for (no fork there) and does not have.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def in_child_process() -> bool:
    """Whether this process was forked (``os.fork``, multiprocessing) or spawned as a worker.

    An embedded store opened here is this process's own copy: the parent never sees it.
    """
    return _forked or multiprocessing.parent_process() is not None


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
        if isinstance(command, Upsert) and command.probe is not None:  # under the lock, as in one command
            reply = _bulk_one_by_one(target, BulkWrite(command.collection, (command,)))[0]
            if isinstance(reply, DuplicateKey):
                return DuplicateKey(probed=target.find_one(command.probe, {"_id": 1}) is not None)
            return reply
        if isinstance(command, (Find, FindOne, CountDocuments)):
            found = _by_id(target, command.filter)
            if found is not None:
                with contextlib.suppress(InvalidArgumentError):  # an operator only mongomock's find knows
                    return _reply(command, found)
        if isinstance(command, Find) and touches_data(command.filter):
            return _find_in_python(target, command)
        if isinstance(command, ServerTime):  # the store lives in this process: its clock is ours
            return datetime.now(timezone.utc)
        if isinstance(command, ListCollections):  # mongomock has no views, nor a filter on the type
            return sorted(db.list_collection_names())
        if isinstance(command, CollectionOptions):  # mongomock keeps no options (no validators)
            return (
                {"name": command.collection, "options": {}}
                if command.collection in db.list_collection_names()
                else None
            )
        if isinstance(command, CreateCollection):
            if command.collection in db.list_collection_names():
                return Refused(48, f"collection {command.collection} already exists")
            db.create_collection(command.collection)
            return Written(True)
        try:
            raw = getattr(target, call.method)(*call.args, **(call.kwargs or {}))
            return driver_reply(command, call, list(raw) if call.cursor else raw)
        except PyMongoError as exc:
            reply = error_reply(command, call, exc)
            if reply is None:
                raise
            return reply


def _by_id(collection: Any, query: Mapping[str, Any]) -> Iterator[dict[str, Any]] | None:
    """The documents matching a filter with an ``_id`` bound, in id order, looked up by id; None without one.

    mongomock's find examines every document of the collection, so each keyset page of a
    read and each get would cost the whole collection; its documents are kept in a dict by
    ``_id``, which answers an ``_id`` bound the way a server's index does.
    """
    cond = query.get("_id")
    store = getattr(getattr(collection, "_store", None), "_documents", None)
    if cond is None or not isinstance(store, dict):
        return None
    if isinstance(cond, str):
        ids: Iterable[Any] = [cond]
    elif isinstance(cond, Mapping) and isinstance(cond.get("$in"), list) and len(cond) == 1:
        ids = sorted({r for r in cond["$in"] if isinstance(r, str)})
    elif isinstance(cond, Mapping) and cond and set(cond) <= {"$gt", "$gte", "$lt"}:
        if not all(isinstance(v, str) for v in cond.values()):
            return None
        low, high = cond.get("$gt", cond.get("$gte", "")), cond.get("$lt")
        inside = [k for k in store if type(k) is str and k >= low and (high is None or k < high)]
        ids = sorted(inside)
    else:
        return None
    full = touches_data(query)
    return (
        doc
        for doc in map(store.get, ids)
        if doc is not None and (evaluate(query, doc) if full else matches(doc, query))
    )


def _reply(command: Find | FindOne | CountDocuments, found: Iterator[dict[str, Any]]) -> Any:
    if isinstance(command, CountDocuments):
        return sum(1 for _ in found)
    if isinstance(command, FindOne):
        first = next(found, None)
        return None if first is None else copy.deepcopy(project(first, command.projection))
    if command.sort and command.sort != BY_ID:
        docs = ordered(list(found), command.sort)
        found = iter(docs[: command.limit] if command.limit else docs)
    elif command.limit:
        found = itertools.islice(found, command.limit)  # in id order: the page ends at the limit
    # Copies, as mongomock's find gives: a caller's changes never reach the store.
    return [copy.deepcopy(project(doc, command.projection)) for doc in found]


def _find_in_python(collection: Any, command: Find) -> list[dict[str, Any]]:
    """A find over results' data: mongomock's own find cannot compare BSON decimals, its evaluator can."""
    bound = {"_id": command.filter["_id"]} if "_id" in command.filter else {}
    docs = [d for d in collection.find(bound) if evaluate(command.filter, d)]
    docs = ordered(docs, command.sort or (("_id", 1),))
    return [project(d, command.projection) for d in (docs[: command.limit] if command.limit else docs)]


def _bulk_one_by_one(collection: Any, command: BulkWrite) -> list[Any]:
    """Apply a bulk write one write at a time: mongomock's bulk_write predates PyMongo 4.9's request objects."""
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
