"""The async manager's methods from the sync manager's: the same operation, awaited instead of run."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from .core.drive import run_async, stream_async

__all__ = ["awaitable", "streaming"]

R = TypeVar("R")
P = ParamSpec("P")


def awaitable(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """``method`` of ResultsManager, its operation awaited instead of run."""

    async def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        operation: Any = method(self, *args, **kwargs)  # AsyncResultsManager._run hands the operation back
        result: R = await run_async(operation, self._executor.execute)
        return result

    functools.update_wrapper(call, method)
    return call


def streaming(method: Callable[Concatenate[Any, P], Iterator[R]]) -> Callable[Concatenate[Any, P], AsyncIterator[R]]:
    """A streaming ``method`` of ResultsManager as an async iterator."""

    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        async def items() -> AsyncIterator[R]:
            # Built on first iteration, inside the loop that iterates: it chooses the client.
            async for item in stream_async(method(self, *args, **kwargs), self._executor.execute):  # type: ignore[arg-type]
                yield item

        return items()

    functools.update_wrapper(call, method)
    return call
