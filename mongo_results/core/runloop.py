"""Running an operation with an executor: send each command, feed back its reply or its error.

The only code that differs between the sync and async managers is here, and it
is the loop itself: one ``await`` apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, TypeVar

from ..errors import MongoResultsError
from .commands import Batch, Command, Note, Operation, Wait

__all__ = ["run", "run_async", "stream", "stream_async"]

R = TypeVar("R")
Execute = Callable[[Command], Any]
AsyncExecute = Callable[[Command], Awaitable[Any]]
Notify = Callable[[Note], None]


class _Done(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


def _step(operation: Operation[Any], reply: Any, error: MongoResultsError | None) -> Command | Batch | Note | Wait:
    try:
        return operation.throw(error) if error is not None else operation.send(reply)
    except StopIteration as stop:
        raise _Done(stop.value) from None


def _ignore(note: Note) -> None:
    """No one to tell: a caller that speaks to the user passes its own ``notify``."""


def _next(operation: Operation[Any], reply: Any, error: MongoResultsError | None, notify: Notify) -> Any:
    """The operation's next command, batch or wait, its notes handed to ``notify`` on the way."""
    while True:
        step = _step(operation, reply, error)
        if not isinstance(step, Note):
            return step
        notify(step)
        reply, error = None, None


def stream(operation: Operation[Any], execute: Execute, notify: Notify = _ignore) -> Generator[Any, None, Any]:
    """Run ``operation``, yielding what it emits and handing its notes to ``notify``.

    Its result is the StopIteration value.
    """
    reply: Any = None
    error: MongoResultsError | None = None
    while True:
        try:
            step = _next(operation, reply, error, notify)
        except _Done as done:
            return done.value
        reply, error = None, None
        if isinstance(step, Batch):
            yield from step.items
        elif isinstance(step, Wait):
            time.sleep(step.seconds)
        else:
            try:
                reply = execute(step)
            except MongoResultsError as exc:  # the operation may know more (set_many's progress)
                error = exc


def run(operation: Operation[R], execute: Execute, notify: Notify = _ignore) -> R:
    """Run an operation that emits nothing; its result."""
    items = stream(operation, execute, notify)
    while True:
        try:
            next(items)
        except StopIteration as stop:
            result: R = stop.value
            return result


async def stream_async(
    operation: Operation[Any], execute: AsyncExecute, notify: Notify = _ignore, result: list[Any] | None = None
) -> AsyncIterator[Any]:
    """:func:`stream` with an awaitable executor; the operation's result is appended to ``result``."""
    reply: Any = None
    error: MongoResultsError | None = None
    while True:
        try:
            step = _next(operation, reply, error, notify)
        except _Done as done:
            if result is not None:
                result.append(done.value)
            return
        reply, error = None, None
        if isinstance(step, Batch):
            for item in step.items:
                yield item
        elif isinstance(step, Wait):
            await asyncio.sleep(step.seconds)
        else:
            try:
                reply = await execute(step)
            except MongoResultsError as exc:
                error = exc


async def run_async(operation: Operation[R], execute: AsyncExecute, notify: Notify = _ignore) -> R:
    """:func:`run` with an awaitable executor."""
    result: list[R] = []
    async for _ in stream_async(operation, execute, notify, result):
        pass
    return result[0]
