"""What the managers need of a store: the core's operations for it, and a way to run their commands."""

from __future__ import annotations

from typing import Any, Protocol

from ..core.commands import Command
from ..core.operations import Operations

__all__ = ["AsyncExecutor", "Executor"]


class Executor(Protocol):
    """Runs the core's commands on one store, synchronously."""

    store_secrets: bool

    def _operations(self) -> Operations:
        """The core's operations over the store's current connection."""
        ...

    def _execute(self, command: Command) -> Any:
        """Run one command; its reply (library errors only)."""
        ...

    def close(self) -> None: ...


class AsyncExecutor(Protocol):
    """Runs the core's commands on one store, for asyncio code."""

    store_secrets: bool

    def _operations(self) -> Operations:
        """The core's operations over the store's current connection."""
        ...

    async def _execute(self, command: Command) -> Any:
        """Run one command; its reply (library errors only)."""
        ...

    async def close(self) -> None: ...
