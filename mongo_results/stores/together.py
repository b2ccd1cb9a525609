"""Commands sent at once (the core's ``Together``): threads for a sync client, tasks for an async one."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..core.commands import Command

__all__ = ["send_together", "send_together_async"]


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _replies(outcomes: Sequence[Any]) -> list[Any]:
    """The replies, once every command has answered; else the first error (one that is not a cancellation first)."""
    errors = [o.error for o in outcomes if isinstance(o, _Failed)]
    if errors:
        raise next((e for e in errors if isinstance(e, Exception)), errors[0])
    return list(outcomes)


def send_together(execute: Callable[[Command], Any], commands: Sequence[Command]) -> list[Any]:
    """Each command's reply: the first sent from this thread, each other from a thread of its own, all at once.

    A thread per command, not a shared pool: a server that stops answering holds no other
    store's reads, the caller's context (``pymongo.timeout``, a tracing id) goes with each
    command, and nothing is left for the interpreter to wait for at exit (the threads are
    daemons). Where no thread can start (the interpreter is shutting down) the rest are sent
    in turn from here.
    """
    outcomes: list[Any] = [None] * len(commands)

    def send(i: int, context: contextvars.Context) -> None:
        try:
            outcomes[i] = context.run(execute, commands[i])
        except BaseException as exc:  # handed to the caller, which raises it
            outcomes[i] = _Failed(exc)

    threads: list[threading.Thread] = []
    for i in range(1, len(commands)):
        thread = threading.Thread(
            target=send, args=(i, contextvars.copy_context()), name="mongo_results-together", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            break
        threads.append(thread)
    try:
        outcomes[0] = execute(commands[0])
    except Exception as exc:  # a KeyboardInterrupt goes at once; the others end on their own
        outcomes[0] = _Failed(exc)
    for thread in threads:
        thread.join()
    for i in range(len(threads) + 1, len(commands)):
        send(i, contextvars.copy_context())
    return _replies(outcomes)


async def send_together_async(execute: Callable[[Command], Awaitable[Any]], commands: Sequence[Command]) -> list[Any]:
    """:func:`send_together` for an async client: a task per command."""
    outcomes = await asyncio.gather(*(execute(c) for c in commands), return_exceptions=True)
    return _replies([_Failed(o) if isinstance(o, BaseException) else o for o in outcomes])
