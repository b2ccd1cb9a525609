"""One driver client per process and URI, shared by every backend built from that URI.

PyMongo clients own a connection pool and monitor threads; a worker that
unpickles a manager per task must not open a client per task. Clients are
reference-counted, forgotten (never closed) in a forked child, and closed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Callable, Hashable
from typing import Any

import pymongo

__all__ = ["CLOSE_TIMEOUT", "acquire", "bounded_close", "release"]

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
