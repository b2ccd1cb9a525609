"""What both managers hold: the store, its executor, and the options every read shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, Literal, TypedDict

from pydantic import BaseModel
from typing_extensions import TypeVar

from .core.operations import Operations
from .errors import InvalidArgumentError
from .executors import AsyncSeedBackend, SeedBackend, open_backend

__all__ = ["ManagerBase", "OnError", "Query", "Skipped", "Where", "skipping"]

T = TypeVar("T", bound=BaseModel, default=BaseModel)


OnError = Literal["raise", "skip"]
Where = Mapping[str, Any] | None
Skipped = list[tuple[str, Exception]]


class Query(TypedDict, total=False):
    """``find``'s options after its three positional ones."""

    namespace: str | None
    sort: Iterable[tuple[str, int]] | None
    limit: int | None
    on_error: OnError
    skipped: list[tuple[str, Exception]] | None


def skipping(on_error: str, skipped: Skipped | None) -> Skipped | None:
    """Where a read notes the results it leaves out: None to raise instead."""
    if on_error not in ("raise", "skip"):
        raise InvalidArgumentError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if on_error == "raise":
        return None
    return skipped if skipped is not None else []


def _executor(backend: Any, asynchronous: bool) -> Any:
    """A store runs the core's commands itself; a ``results_manager``-style backend is adapted."""
    if callable(getattr(backend, "execute", None)) and hasattr(backend, "operations"):
        return backend
    return AsyncSeedBackend(backend) if asynchronous else SeedBackend(backend)


class ManagerBase(Generic[T]):
    """What both managers hold: the store and its executor."""

    _asynchronous = False
    _executor: Any

    def __init__(
        self,
        base_dir: str | Path | None = None,
        create_if_missing: bool = True,
        backend: Any = None,
        *,
        store_secrets: bool = False,
    ) -> None:
        if backend is None:
            backend = open_backend(
                base_dir, create_if_missing, asynchronous=self._asynchronous, store_secrets=store_secrets
            )
        self.backend = backend

    @property
    def backend(self) -> Any:
        """The store (or ``results_manager``-style backend) results go to; assign to switch storage."""
        return self._backend

    @backend.setter
    def backend(self, value: Any) -> None:
        self._backend = value
        self._executor = _executor(value, self._asynchronous)

    def _ops(self) -> Operations:
        return self._executor.operations()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend!r})"
