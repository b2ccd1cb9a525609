"""The base classes ``results_manager`` users subclass to write their own backend, and the stores.

A subclass of ``ResultsBackend`` (or ``AsyncResultsBackend``, its methods
coroutines) is passed as ``backend=`` and runs through the adapter: ``set`` receives
members of this library's ``SetBehavior``, only the seed's four
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
    """A storage backend with ``results_manager``'s methods and signatures.

    Subclass it and pass an instance as ``ResultsManager(backend=...)``: the manager's other
    methods (``get_many``, ``iter_results``, ``find``...) are built on these six. ``set``
    receives only ``RAISE_IF_EXISTS``, ``RAISE_IF_DIFFERENT``, ``OVERWRITE`` and
    ``SKIP_IF_EXISTS`` (``KEEP_EXISTING`` arrives as ``RAISE_IF_EXISTS``, a
    ``FileExistsError`` then meaning "kept").
    """

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

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            data: The result, an instance of a registered pydantic model.
            behavior: What to do when a result is already stored under the id.
            namespace: The namespace to store into; None takes the model's registered namespace.
            strict_namespace: Refuse to guess when the model is registered in several
                non-default namespaces and ``namespace`` is None.

        Returns:
            True if written, False if skipped (``SKIP_IF_EXISTS`` with the same content stored).

        Raises:
            FileExistsError: A result exists (``RAISE_IF_EXISTS``) or differs (``RAISE_IF_DIFFERENT``).
        """

    @abstractmethod
    def get(self, result_id: ResultId, model_class: type[T] | None = None, namespace: str | None = None) -> T:
        """Read the result stored under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            model_class: The class to validate into; None takes the registered class.
            namespace: The namespace to read from; None looks in every namespace.

        Returns:
            The result, validated into its model class.

        Raises:
            FileNotFoundError: Nothing is stored under the id.
            ValueError: The model type is not registered.
        """

    @abstractmethod
    def exists(self, result_id: ResultId) -> bool:
        """Tell whether a result is stored under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.

        Returns:
            True if a result is stored under the id.
        """

    @abstractmethod
    def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """List the ids under ``prefix``.

        Args:
            prefix: Whole leading segments of the ids; None lists every id.

        Returns:
            The ids, sorted.
        """

    @abstractmethod
    def delete(self, result_id: ResultId) -> bool:
        """Delete the result stored under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.

        Returns:
            True if a result was deleted, False if none was found.
        """

    @abstractmethod
    def clear(self) -> None:
        """Delete every stored result."""


class AsyncResultsBackend(Generic[T], ABC):
    """[`ResultsBackend`][mongo_results.ResultsBackend] with coroutine methods, for `AsyncResultsManager`.

    Subclass it and pass an instance as ``AsyncResultsManager(backend=...)``; each method is
    awaited and does what the same method of ``ResultsBackend`` does.
    """

    @abstractmethod
    async def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """Store ``data`` under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            data: The result, an instance of a registered pydantic model.
            behavior: What to do when a result is already stored under the id.
            namespace: The namespace to store into; None takes the model's registered namespace.
            strict_namespace: Refuse to guess when the model is registered in several
                non-default namespaces and ``namespace`` is None.

        Returns:
            True if written, False if skipped (``SKIP_IF_EXISTS`` with the same content stored).

        Raises:
            FileExistsError: A result exists (``RAISE_IF_EXISTS``) or differs (``RAISE_IF_DIFFERENT``).
        """

    @abstractmethod
    async def get(self, result_id: ResultId, model_class: type[T] | None = None, namespace: str | None = None) -> T:
        """Read the result stored under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            model_class: The class to validate into; None takes the registered class.
            namespace: The namespace to read from; None looks in every namespace.

        Returns:
            The result, validated into its model class.

        Raises:
            FileNotFoundError: Nothing is stored under the id.
            ValueError: The model type is not registered.
        """

    @abstractmethod
    async def exists(self, result_id: ResultId) -> bool:
        """Tell whether a result is stored under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.

        Returns:
            True if a result is stored under the id.
        """

    @abstractmethod
    async def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """List the ids under ``prefix``.

        Args:
            prefix: Whole leading segments of the ids; None lists every id.

        Returns:
            The ids, sorted.
        """

    @abstractmethod
    async def delete(self, result_id: ResultId) -> bool:
        """Delete the result stored under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.

        Returns:
            True if a result was deleted, False if none was found.
        """

    @abstractmethod
    async def clear(self) -> None:
        """Delete every stored result."""
