"""Where a store lives: URI schemes, database names, safe host descriptions.

Shared by the sync and async shells; nothing here opens a connection except
the embedded mongomock store, which lives in this process.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import InvalidUriError

__all__ = [
    "DEFAULT_DATABASE",
    "MOCK_SCHEME",
    "URI_SCHEMES",
    "database_from_uri",
    "describe_hosts",
    "embedded_lock",
    "is_mock_uri",
    "is_uri",
    "mock_client",
]

DEFAULT_DATABASE = "mongo_results"
MOCK_SCHEME = "mongomock"
URI_SCHEMES = ("mongodb", "mongodb+srv", MOCK_SCHEME)

_mock_clients: dict[str, Any] = {}
_mock_lock = threading.Lock()
_embedded_locks: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


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


def mock_client(uri: str) -> Any:
    """The embedded mongomock client for this URI's host, shared within the process."""
    import mongomock  # imported here: only the embedded store needs it

    key = urlsplit(uri).netloc.rpartition("@")[2] or "localhost"
    with _mock_lock:
        client = _mock_clients.get(key)
        if client is None:
            client = _mock_clients[key] = mongomock.MongoClient()
        return client


def embedded_lock(client: Any) -> threading.RLock:
    """The one lock of an embedded client, shared by every backend and manager on it.

    mongomock applies a command in several Python steps and does no locking, so
    each command runs under this lock: the store then gives a server's serial
    outcomes to threads, tasks, and sync and async managers on one store.
    """
    with _mock_lock:
        lock = _embedded_locks.get(client)
        if lock is None:
            lock = _embedded_locks[client] = threading.RLock()
        return lock
