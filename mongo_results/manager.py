"""ResultsManager: the ``results_manager`` API over any backend."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, overload

from pydantic import BaseModel
from typing_extensions import TypeVar

from ._targets import check_uri, is_uri
from .backends.base import AsyncResultsBackend, ResultsBackend
from .backends.file import FileBackend
from .backends.file_async import AsyncFileBackend
from .backends.mongo import MongoBackend
from .backends.mongo_async import AsyncMongoBackend
from .behaviors import SetBehavior
from .ids import ResultId

__all__ = ["AsyncResultsManager", "ResultsManager", "open_backend"]

T = TypeVar("T", bound=BaseModel, default=BaseModel)
M = TypeVar("M", bound=BaseModel)


def open_backend(
    base_dir: str | Path | None, create_if_missing: bool = True, *, asynchronous: bool = False, **options: Any
) -> Any:
    """The backend a ``base_dir`` names: a URI gives a MongoDB backend, a path a file store."""
    if is_uri(base_dir):
        assert isinstance(base_dir, str)
        check_uri(base_dir)
        return (AsyncMongoBackend if asynchronous else MongoBackend)(base_dir, **options)
    if isinstance(base_dir, (str, os.PathLike)):
        return (AsyncFileBackend if asynchronous else FileBackend)(base_dir, create_if_missing, **options)
    raise ValueError("Must provide either base_dir or backend")


def _outcomes(outcomes: list[bool | BaseException], raise_errors: bool) -> list[bool | BaseException]:
    if raise_errors:
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
    return outcomes


class ResultsManager(Generic[T]):
    """Stores and retrieves pydantic results under path-like ids.

    ``base_dir`` is a directory (the file store) or a ``mongodb://``,
    ``mongodb+srv://`` or ``mongomock://`` URI; ``backend`` overrides both.
    Assigning ``manager.backend`` switches storage without touching other code.
    """

    def __init__(
        self,
        base_dir: str | Path | None = None,
        create_if_missing: bool = True,
        backend: ResultsBackend | None = None,
        *,
        store_secrets: bool = False,
    ) -> None:
        if backend is not None:
            self.backend: ResultsBackend = backend
        else:
            self.backend = open_backend(base_dir, create_if_missing, store_secrets=store_secrets)

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
            True if written, False if skipped (SKIP_IF_EXISTS with the same content stored).

        Raises:
            FileExistsError: a result exists (RAISE_IF_EXISTS) or differs (RAISE_IF_DIFFERENT).
            ValueError: an invalid id or namespace, or a value that cannot be stored faithfully.
        """
        return self.backend.set(result_id, data, behavior, namespace, strict_namespace)

    @overload
    def get(self, result_id: ResultId, model_class: None = None, namespace: str | None = None) -> T: ...
    @overload
    def get(self, result_id: ResultId, model_class: type[M], namespace: str | None = None) -> M: ...

    def get(self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None) -> Any:
        """The result stored under ``result_id``, validated into its model class.

        Raises:
            FileNotFoundError: nothing is stored under the id.
            ValueError: the model type is not registered, or several namespaces hold the id.
            pydantic.ValidationError: the stored data no longer fits the model.
        """
        return self.backend.get(result_id, model_class, namespace)

    def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        *,
        raise_errors: bool = False,
    ) -> list[bool | BaseException]:
        """``set`` for many results, in as few round trips as the store allows.

        Returns, per item, what ``set`` would return or the exception it would raise;
        ``raise_errors=True`` raises the first exception instead (the others are stored).
        """
        return _outcomes(self.backend.set_many(items, behavior, namespace), raise_errors)

    def get_many(
        self, result_ids: Sequence[ResultId], model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> list[Any]:
        """The results under ``result_ids``, in order; FileNotFoundError names the ids that are missing."""
        return self.backend.get_many(result_ids, model_class, namespace)

    def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        batch_size: int = 500,
    ) -> Iterator[tuple[str, Any]]:
        """``(id, result)`` under ``prefix`` in id order, read in batches so memory stays flat."""
        return self.backend.iter_results(prefix, model_class, namespace, batch_size)

    def exists(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Whether a result is stored under ``result_id``."""
        return self.backend.exists(result_id, namespace)

    def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]:
        """Sorted ids equal to or under ``prefix`` (whole segments); all ids when None."""
        return self.backend.list_ids(prefix, namespace)

    def delete(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Delete a result; True if one was deleted."""
        return self.backend.delete(result_id, namespace)

    def clear(self) -> None:
        """Delete every stored result."""
        self.backend.clear()

    def close(self) -> None:
        """Release the backend's connections, if it holds any."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ResultsManager[T]:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultsManager({self.backend!r})"


class AsyncResultsManager(Generic[T]):
    """:class:`ResultsManager` for asyncio code: the same constructor, every method awaitable.

    A ``mongodb://`` URI uses PyMongo's ``AsyncMongoClient`` (one per event loop);
    ``backend=AsyncMongoBackend(motor_client)`` uses Motor; ``mongomock://`` is the
    embedded store; a path is the file store, its disk I/O kept off the event loop.
    """

    def __init__(
        self,
        base_dir: str | Path | None = None,
        create_if_missing: bool = True,
        backend: AsyncResultsBackend | None = None,
        *,
        store_secrets: bool = False,
    ) -> None:
        if backend is not None:
            self.backend: AsyncResultsBackend = backend
        else:
            self.backend = open_backend(base_dir, create_if_missing, asynchronous=True, store_secrets=store_secrets)

    async def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """See :meth:`ResultsManager.set`."""
        return await self.backend.set(result_id, data, behavior, namespace, strict_namespace)

    @overload
    async def get(self, result_id: ResultId, model_class: None = None, namespace: str | None = None) -> T: ...
    @overload
    async def get(self, result_id: ResultId, model_class: type[M], namespace: str | None = None) -> M: ...

    async def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> Any:
        """See :meth:`ResultsManager.get`."""
        return await self.backend.get(result_id, model_class, namespace)

    async def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        *,
        raise_errors: bool = False,
    ) -> list[bool | BaseException]:
        """See :meth:`ResultsManager.set_many`."""
        return _outcomes(await self.backend.set_many(items, behavior, namespace), raise_errors)

    async def get_many(
        self, result_ids: Sequence[ResultId], model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> list[Any]:
        """See :meth:`ResultsManager.get_many`."""
        return await self.backend.get_many(result_ids, model_class, namespace)

    def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[tuple[str, Any]]:
        """See :meth:`ResultsManager.iter_results`; an async iterator."""
        return self.backend.iter_results(prefix, model_class, namespace, batch_size)

    async def exists(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """See :meth:`ResultsManager.exists`."""
        return await self.backend.exists(result_id, namespace)

    async def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]:
        """See :meth:`ResultsManager.list_ids`."""
        return await self.backend.list_ids(prefix, namespace)

    async def delete(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """See :meth:`ResultsManager.delete`."""
        return await self.backend.delete(result_id, namespace)

    async def clear(self) -> None:
        """See :meth:`ResultsManager.clear`."""
        await self.backend.clear()

    async def close(self) -> None:
        """Close the client the backend opened for this event loop, if any."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> AsyncResultsManager[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncResultsManager({self.backend!r})"
