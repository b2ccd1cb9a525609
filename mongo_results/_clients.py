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

__all__ = ["acquire", "release"]

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


def release(key: Hashable, close: Callable[[Any], None]) -> None:
    """Drop one reference; the last one closes the client."""
    with _lock:
        _reset_after_fork()
        entry = _clients.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _clients[key]
            close(entry[0])


@atexit.register
def _close_all() -> None:
    with _lock:
        _reset_after_fork()
        for client, _ in _clients.values():
            with contextlib.suppress(Exception):  # best effort at interpreter exit
                client.close()
        _clients.clear()
