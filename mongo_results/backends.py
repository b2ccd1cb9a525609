"""The base classes ``results_manager`` users subclass to write their own backend, and the stores.

A subclass of :class:`ResultsBackend` (or :class:`AsyncResultsBackend`, its methods
coroutines) is passed as ``backend=`` and runs through the adapter: ``set`` receives
members of this library's :class:`~mongo_results.SetBehavior`, only the seed's four
(KEEP_EXISTING arrives as RAISE_IF_EXISTS, a FileExistsError then meaning "kept").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic

from pydantic import BaseModel
from typing_extensions import TypeVar

from .core.behaviors import SetBehavior
from .core.ids import ResultId
from .stores import AsyncFileBackend, AsyncMongoBackend, FileBackend, MongoBackend

__all__ = [
    "AsyncFileBackend",
    "AsyncMongoBackend",
    "AsyncResultsBackend",
    "FileBackend",
    "MongoBackend",
    "ResultsBackend",
    "SetBehavior",
]

T = TypeVar("T", bound=BaseModel, default=BaseModel)


class ResultsBackend(Generic[T], ABC):
    """A storage backend with ``results_manager``'s methods and signatures."""

    @abstractmethod
    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """Store ``data`` under ``result_id``.

        Returns:
            True if written, False if skipped.

        Raises:
            FileExistsError: a result exists (RAISE_IF_EXISTS) or differs (RAISE_IF_DIFFERENT).
        """

    @abstractmethod
    def get(self, result_id: ResultId, model_class: type[T] | None = None, namespace: str | None = None) -> T:
        """The result stored under ``result_id``.

        Raises:
            FileNotFoundError: nothing is stored under the id.
            ValueError: the model type is not registered.
        """

    @abstractmethod
    def exists(self, result_id: ResultId) -> bool:
        """Whether a result is stored under ``result_id``."""

    @abstractmethod
    def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """The ids under ``prefix`` (all when None)."""

    @abstractmethod
    def delete(self, result_id: ResultId) -> bool:
        """Delete a result; True if one was deleted, False if none was found."""

    @abstractmethod
    def clear(self) -> None:
        """Delete every stored result."""


class AsyncResultsBackend(Generic[T], ABC):
    """:class:`ResultsBackend` with coroutine methods, for :class:`~mongo_results.AsyncResultsManager`."""

    @abstractmethod
    async def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """See :meth:`ResultsBackend.set`."""

    @abstractmethod
    async def get(self, result_id: ResultId, model_class: type[T] | None = None, namespace: str | None = None) -> T:
        """See :meth:`ResultsBackend.get`."""

    @abstractmethod
    async def exists(self, result_id: ResultId) -> bool:
        """See :meth:`ResultsBackend.exists`."""

    @abstractmethod
    async def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """See :meth:`ResultsBackend.list_ids`."""

    @abstractmethod
    async def delete(self, result_id: ResultId) -> bool:
        """See :meth:`ResultsBackend.delete`."""

    @abstractmethod
    async def clear(self) -> None:
        """See :meth:`ResultsBackend.clear`."""
