"""MongoBackend: runs the core's commands with PyMongo's ``MongoClient`` (or on the embedded store)."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

from ..core.commands import Command
from . import clients
from .driver import DRIVER_ERRORS, call_for, driver_reply
from .embedded import execute_embedded, mock_client
from .mongo_store import MongoStore

__all__ = ["MongoBackend"]


class MongoBackend(MongoStore):
    """Results in MongoDB: one collection per namespace, one document per result.

    ``target`` is a URI (``mongodb://``, ``mongodb+srv://``, ``mongomock://``), a
    ``MongoClient`` or a ``Database``. A client built from a URI is opened lazily,
    once per process, and shared by every backend of that process with the same
    URI and options.
    """

    _client_kinds = ("MongoClient",)

    def _connect(self) -> Any:
        uri = self._uri
        assert uri is not None
        if self.embedded:
            return mock_client(uri)
        options = {"appname": "mongo_results", **self._client_options}
        return clients.acquire(self._client_key(), lambda: MongoClient(uri, **options))

    def execute(self, command: Command) -> Any:
        """Run one command; its reply."""
        db = self._guarded(self._database)
        lock = self._lock
        if lock is not None:
            return self._guarded(lambda: execute_embedded(db, command, lock))
        call = call_for(command)
        try:
            raw = self._invoke(db, call)
            return driver_reply(command, call, list(raw) if call.cursor else raw)
        except DRIVER_ERRORS as exc:
            return self._failed(command, call, exc)

    def close(self) -> None:
        """Release the client this backend opened (never one that was passed in)."""
        if self._uri is None:
            return  # a client passed in stays open and in use
        if not self.embedded and not self._stale():
            clients.release(self._client_key())
        self._client = self._ops = self._db = None
        self._handles = {}
