"""AsyncFileBackend: the file store for asyncio code, its blocking I/O on worker threads."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from pydantic import BaseModel

from ..behaviors import SetBehavior
from ..ids import ResultId
from .file import FileBackend

__all__ = ["AsyncFileBackend"]


class AsyncFileBackend:
    """A :class:`FileBackend` whose calls run in threads, so the event loop never waits on disk."""

    def __init__(self, base_dir: str | os.PathLike[str], create_if_missing: bool = True, **options: Any) -> None:
        self.files = FileBackend(base_dir, create_if_missing, **options)

    @property
    def store_secrets(self) -> bool:
        return self.files.store_secrets

    @store_secrets.setter
    def store_secrets(self, value: bool) -> None:
        self.files.store_secrets = value

    async def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """See :meth:`FileBackend.set`."""
        return await asyncio.to_thread(self.files.set, result_id, data, behavior, namespace, strict_namespace)

    async def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
    ) -> list[bool | BaseException]:
        """See :meth:`FileBackend.set_many`."""
        return await asyncio.to_thread(self.files.set_many, items, behavior, namespace)

    async def get_many(
        self, result_ids: Sequence[ResultId], model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> list[BaseModel]:
        """See :meth:`FileBackend.get_many`."""
        return await asyncio.to_thread(self.files.get_many, result_ids, model_class, namespace)

    async def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[tuple[str, BaseModel]]:
        """See :meth:`FileBackend.iter_results`; each batch is read on a worker thread."""
        results = self.files.iter_results(prefix, model_class, namespace)
        while batch := await asyncio.to_thread(lambda: list(islice(results, batch_size))):
            for item in batch:
                yield item

    async def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> BaseModel:
        """See :meth:`FileBackend.get`."""
        return await asyncio.to_thread(self.files.get, result_id, model_class, namespace)

    async def exists(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """See :meth:`FileBackend.exists`."""
        return await asyncio.to_thread(self.files.exists, result_id, namespace)

    async def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]:
        """See :meth:`FileBackend.list_ids`."""
        return await asyncio.to_thread(self.files.list_ids, prefix, namespace)

    async def delete(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """See :meth:`FileBackend.delete`."""
        return await asyncio.to_thread(self.files.delete, result_id, namespace)

    async def clear(self) -> None:
        """See :meth:`FileBackend.clear`."""
        await asyncio.to_thread(self.files.clear)

    def __repr__(self) -> str:
        return f"AsyncFileBackend({str(self.files.base_dir)!r})"
