"""The shells around the core: an operation run, awaited or streamed, its notes told as warnings.

``ResultsManager`` runs each operation it builds; ``AsyncResultsManager`` takes the very
same methods through ``awaitable`` and ``streaming`` and awaits their operations instead.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from typing_extensions import deprecated

from .core.commands import Note
from .core.runloop import run_async, stream_async

__all__ = ["Awaited", "awaitable", "moved", "streaming", "tell"]

R = TypeVar("R")
P = ParamSpec("P")


def tell(note: Note) -> None:
    """A note of the core's as a warning, attributed to the first caller outside this package."""
    frame, level = sys._getframe(0), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").partition(".")[0] == __package__:
        frame, level = frame.f_back, level + 1
    warnings.warn(note.message, note.category, stacklevel=level)


def awaitable(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """``method`` of ResultsManager, its operation awaited instead of run."""

    async def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        operation: Any = method(self, *args, **kwargs)  # AsyncResultsManager._run hands the operation back
        result: R = self._handle(await run_async(operation, self._executor._execute, tell))
        return result

    functools.update_wrapper(call, method)
    return call


def streaming(method: Callable[Concatenate[Any, P], Iterator[R]]) -> Callable[Concatenate[Any, P], AsyncIterator[R]]:
    """A streaming ``method`` of ResultsManager as an async iterator."""

    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        async def items() -> AsyncIterator[R]:
            # Built on first iteration, inside the loop that iterates: it chooses the client.
            async for item in stream_async(method(self, *args, **kwargs), self._executor._execute, tell):  # type: ignore[arg-type]
                yield self._handle(item)

        return items()

    functools.update_wrapper(call, method)
    return call


class Awaited:
    """An async shell's ``_run`` and ``_stream``: they hand the operation back, for ``awaitable`` to await."""

    def _run(self, operation: R) -> R:
        return operation

    _stream = _run


def moved(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """A manager's v0.1 spelling of ``manager.admin.<name>``: it still works, with a ``DeprecationWarning``."""
    name = method.__name__

    @deprecated(f"manager.{name}() is manager.admin.{name}() since 0.2; the old spelling goes in 0.3")
    @functools.wraps(method)
    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = getattr(self.admin, name)(*args, **kwargs)
        return result

    return call
