"""What a storage backend provides to the managers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from ..behaviors import SetBehavior
from ..ids import ResultId

__all__ = ["AsyncResultsBackend", "ResultsBackend"]


@runtime_checkable
class ResultsBackend(Protocol):
    """The methods of ``results_manager``'s backends, with optional namespace filters."""

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool: ...

    def get(
        self,
        result_id: ResultId,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
    ) -> BaseModel: ...

    def exists(self, result_id: ResultId, namespace: str | None = None) -> bool: ...

    def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]: ...

    def delete(self, result_id: ResultId, namespace: str | None = None) -> bool: ...

    def clear(self) -> None: ...

    def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
    ) -> list[bool | BaseException]: ...

    def get_many(
        self, result_ids: Sequence[ResultId], model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> list[BaseModel]: ...

    def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        batch_size: int = 500,
    ) -> Iterator[tuple[str, BaseModel]]: ...


@runtime_checkable
class AsyncResultsBackend(Protocol):
    """The same methods, awaitable, for :class:`~mongo_results.AsyncResultsManager`."""

    async def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool: ...

    async def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> BaseModel: ...

    async def exists(self, result_id: ResultId, namespace: str | None = None) -> bool: ...

    async def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]: ...

    async def delete(self, result_id: ResultId, namespace: str | None = None) -> bool: ...

    async def clear(self) -> None: ...

    async def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
    ) -> list[bool | BaseException]: ...

    async def get_many(
        self, result_ids: Sequence[ResultId], model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> list[BaseModel]: ...

    def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[tuple[str, BaseModel]]: ...
