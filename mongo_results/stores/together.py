"""Commands sent at once (the core's ``Together``): threads for a sync client, tasks for an async one."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..core.commands import Command
from ..errors import MongoResultsError

__all__ = ["send_together", "send_together_async"]

_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _threads() -> ThreadPoolExecutor:
    """This process's senders: a pool made in the parent has no threads in a forked child."""
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=8, thread_name_prefix="mongo_results"))
        return _pool[1]


def _forget_in_child() -> None:
    global _lock, _pool
    _lock, _pool = threading.Lock(), None  # another thread may have held the lock as the parent forked


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_in_child)


def _first_error(outcomes: Sequence[Any]) -> None:
    """Raise the first command's error, once every command has answered (none is left running)."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def send_together(execute: Callable[[Command], Any], commands: Sequence[Command]) -> list[Any]:
    """Each command's reply: the first sent from this thread, the others from the pool's, all at once."""
    others: list[Future[Any]] = [_threads().submit(execute, c) for c in commands[1:]]
    outcomes: list[Any] = []
    try:
        outcomes.append(execute(commands[0]))
    except MongoResultsError as exc:
        outcomes.append(exc)
    for future in others:
        try:
            outcomes.append(future.result())
        except MongoResultsError as exc:
            outcomes.append(exc)
    _first_error(outcomes)
    return outcomes


async def send_together_async(execute: Callable[[Command], Awaitable[Any]], commands: Sequence[Command]) -> list[Any]:
    """:func:`send_together` for an async client: a task per command."""
    outcomes = await asyncio.gather(*(execute(c) for c in commands), return_exceptions=True)
    _first_error(outcomes)
    return outcomes
