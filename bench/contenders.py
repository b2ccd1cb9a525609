"""Everyone measured: the same six tasks, each written the way its library is meant to be used.

"find by field" is a range on one field each contender has an index on, declared the way
its library declares one; the file store has none (it reads every file).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from pymongo import AsyncMongoClient, MongoClient

from mongo_results import AsyncMongoBackend, AsyncResultsManager, MongoBackend, ResultsManager

from .datasets import Dataset

# Before each write round every contender's collection is emptied, not dropped: what is
# timed is writing into an existing collection, not creating one and its indexes.
TASKS = ["create one", "find by id", "list by prefix", "bulk create", "bulk read", "find by field"]
WRITES = {"create one", "bulk create"}


def _range(prefix: str) -> dict[str, Any]:
    return {"_id": {"$gte": prefix + "/", "$lt": prefix + "0"}}  # "0" sorts right after "/"


class Contender:
    """One library under test; ``run`` times one task over a whole dataset."""

    name = ""

    def prepare(self, ds: Dataset) -> None:
        """Untimed: turn the dataset into this library's model objects."""

    def reset(self, ds: Dataset) -> None:
        raise NotImplementedError

    def run(self, task: str, ds: Dataset) -> tuple[float, float, Any]:
        """Wall-clock seconds, this process's CPU seconds, and the task's answer."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SyncContender(Contender):
    def run(self, task: str, ds: Dataset) -> tuple[float, float, Any]:
        method: Callable[[Dataset], Any] = getattr(self, task.replace(" ", "_"))
        start, cpu = time.perf_counter(), time.process_time()
        out = method(ds)
        return time.perf_counter() - start, time.process_time() - cpu, out


class AsyncContender(Contender):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    async def _timed(self, method: Callable[[Dataset], Awaitable[Any]], ds: Dataset) -> tuple[float, float, Any]:
        start, cpu = time.perf_counter(), time.process_time()
        out = await method(ds)
        return time.perf_counter() - start, time.process_time() - cpu, out

    def run(self, task: str, ds: Dataset) -> tuple[float, float, Any]:
        return self.loop.run_until_complete(self._timed(getattr(self, task.replace(" ", "_")), ds))

    def reset(self, ds: Dataset) -> None:
        self.loop.run_until_complete(self.areset(ds))

    async def areset(self, ds: Dataset) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.loop.run_until_complete(self.aclose())

    async def aclose(self) -> None:
        raise NotImplementedError


class RawPyMongo(SyncContender):
    """The floor: model_dump/insert_one and find_one/model_validate, written by hand."""

    name = "PyMongo"

    def __init__(self, uri: str, database: str) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(uri)
        self.db = self.client[database]

    def reset(self, ds: Dataset) -> None:
        self.db[f"raw_{ds.kind}"].delete_many({})
        self.db[f"raw_{ds.kind}"].create_index(ds.field)

    def create_one(self, ds: Dataset) -> None:
        coll = self.db[f"raw_{ds.kind}"]
        for rid, model in ds.pairs:
            coll.insert_one({"_id": rid, **model.model_dump()})

    def bulk_create(self, ds: Dataset) -> None:
        self.db[f"raw_{ds.kind}"].insert_many([{"_id": rid, **m.model_dump()} for rid, m in ds.pairs], ordered=False)

    def find_by_id(self, ds: Dataset) -> list[BaseModel]:
        coll = self.db[f"raw_{ds.kind}"]
        return [ds.model.model_validate(coll.find_one({"_id": rid})) for rid in ds.ids]

    def bulk_read(self, ds: Dataset) -> list[BaseModel]:
        docs = {d["_id"]: d for d in self.db[f"raw_{ds.kind}"].find({"_id": {"$in": ds.ids}})}
        return [ds.model.model_validate(docs[rid]) for rid in ds.ids]

    def list_by_prefix(self, ds: Dataset) -> list[str]:
        coll = self.db[f"raw_{ds.kind}"]
        return [d["_id"] for p in ds.groups for d in coll.find(_range(p), {"_id": 1})]

    def find_by_field(self, ds: Dataset) -> list[BaseModel]:
        return [ds.model.model_validate(d) for d in self.db[f"raw_{ds.kind}"].find(ds.where).sort("_id")]

    def close(self) -> None:
        self.client.close()


class RawAsyncPyMongo(AsyncContender):
    """The async floor, with PyMongo's AsyncMongoClient."""

    name = "PyMongo async"

    def __init__(self, loop: asyncio.AbstractEventLoop, uri: str, database: str) -> None:
        super().__init__(loop)
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        self.db = self.client[database]

    async def areset(self, ds: Dataset) -> None:
        await self.db[f"araw_{ds.kind}"].delete_many({})
        await self.db[f"araw_{ds.kind}"].create_index(ds.field)

    async def create_one(self, ds: Dataset) -> None:
        coll = self.db[f"araw_{ds.kind}"]
        for rid, model in ds.pairs:
            await coll.insert_one({"_id": rid, **model.model_dump()})

    async def bulk_create(self, ds: Dataset) -> None:
        docs = [{"_id": rid, **m.model_dump()} for rid, m in ds.pairs]
        await self.db[f"araw_{ds.kind}"].insert_many(docs, ordered=False)

    async def find_by_id(self, ds: Dataset) -> list[BaseModel]:
        coll = self.db[f"araw_{ds.kind}"]
        return [ds.model.model_validate(await coll.find_one({"_id": rid})) for rid in ds.ids]

    async def bulk_read(self, ds: Dataset) -> list[BaseModel]:
        docs = {d["_id"]: d async for d in self.db[f"araw_{ds.kind}"].find({"_id": {"$in": ds.ids}})}
        return [ds.model.model_validate(docs[rid]) for rid in ds.ids]

    async def list_by_prefix(self, ds: Dataset) -> list[str]:
        coll = self.db[f"araw_{ds.kind}"]
        return [d["_id"] for p in ds.groups async for d in coll.find(_range(p), {"_id": 1})]

    async def find_by_field(self, ds: Dataset) -> list[BaseModel]:
        return [ds.model.model_validate(d) async for d in self.db[f"araw_{ds.kind}"].find(ds.where).sort("_id")]

    async def aclose(self) -> None:
        await self.client.close()


class Manager(SyncContender):
    """mongo_results' ResultsManager over MongoDB or the file store."""

    def __init__(self, name: str, make: Callable[[str], ResultsManager[Any]], cleanup: Callable[[], None]) -> None:
        self.name, self._make, self._cleanup = name, make, cleanup
        self.managers: dict[str, ResultsManager[Any]] = {}

    def prepare(self, ds: Dataset) -> None:
        self.managers[ds.kind] = self._make(ds.kind)

    def reset(self, ds: Dataset) -> None:
        rm = self.managers[ds.kind]
        for rid in rm.list_ids():
            rm.delete(rid)

    def create_one(self, ds: Dataset) -> None:
        rm = self.managers[ds.kind]
        for rid, model in ds.pairs:
            rm.set(rid, model)

    def bulk_create(self, ds: Dataset) -> None:
        self.managers[ds.kind].set_many(ds.pairs, raise_errors=True)

    def find_by_id(self, ds: Dataset) -> list[BaseModel]:
        rm = self.managers[ds.kind]
        return [rm.get(rid, ds.model) for rid in ds.ids]

    def bulk_read(self, ds: Dataset) -> list[BaseModel]:
        return self.managers[ds.kind].get_many(ds.ids, ds.model)

    def list_by_prefix(self, ds: Dataset) -> list[str]:
        rm = self.managers[ds.kind]
        return [rid for p in ds.groups for rid in rm.list_ids(p)]

    def find_by_field(self, ds: Dataset) -> list[BaseModel]:
        return [m for _, m in self.managers[ds.kind].find(ds.where, None, ds.model)]

    def close(self) -> None:
        for rm in self.managers.values():
            rm.clear()
            rm.close()
        self._cleanup()


def mongo_results_sync(uri: str, database: str) -> Manager:
    def make(kind: str) -> ResultsManager[Any]:
        return ResultsManager(backend=MongoBackend(uri, database=database, collection_prefix=f"mr_{kind}."))

    return Manager("mongo_results", make, lambda: None)


class NamedManager(Manager):
    """The same reads naming the namespace, as the hand-written contenders name their collection.

    Without it a read lists the namespaces too (a namespace created a moment ago must not be
    missed): this column shows what that listing costs.
    """

    def create_one(self, ds: Dataset) -> None:
        rm = self.managers[ds.kind]
        for rid, model in ds.pairs:
            rm.set(rid, model, namespace=ds.kind)

    def bulk_create(self, ds: Dataset) -> None:
        self.managers[ds.kind].set_many(ds.pairs, namespace=ds.kind, raise_errors=True)

    def find_by_id(self, ds: Dataset) -> list[BaseModel]:
        rm = self.managers[ds.kind]
        return [rm.get(rid, ds.model, namespace=ds.kind) for rid in ds.ids]

    def bulk_read(self, ds: Dataset) -> list[BaseModel]:
        return self.managers[ds.kind].get_many(ds.ids, ds.model, namespace=ds.kind)

    def list_by_prefix(self, ds: Dataset) -> list[str]:
        rm = self.managers[ds.kind]
        return [rid for p in ds.groups for rid in rm.list_ids(p, namespace=ds.kind)]

    def find_by_field(self, ds: Dataset) -> list[BaseModel]:
        return [m for _, m in self.managers[ds.kind].find(ds.where, None, ds.model, namespace=ds.kind)]


def mongo_results_named(uri: str, database: str) -> Manager:
    def make(kind: str) -> ResultsManager[Any]:
        return ResultsManager(backend=MongoBackend(uri, database=database, collection_prefix=f"mrn_{kind}."))

    return NamedManager("mongo_results, namespace named", make, lambda: None)


def file_store() -> Manager:
    root = tempfile.mkdtemp(prefix="mongo-results-bench-")
    return Manager("file store", lambda kind: ResultsManager(f"{root}/{kind}"), lambda: shutil.rmtree(root))


class AsyncManager(AsyncContender):
    """mongo_results' AsyncResultsManager over AsyncMongoClient."""

    name = "mongo_results async"

    def __init__(self, loop: asyncio.AbstractEventLoop, uri: str, database: str) -> None:
        super().__init__(loop)
        self.uri, self.database = uri, database
        self.managers: dict[str, AsyncResultsManager[Any]] = {}

    def prepare(self, ds: Dataset) -> None:
        backend = AsyncMongoBackend(self.uri, database=self.database, collection_prefix=f"amr_{ds.kind}.")
        self.managers[ds.kind] = AsyncResultsManager(backend=backend)

    async def areset(self, ds: Dataset) -> None:
        rm = self.managers[ds.kind]
        for rid in await rm.list_ids():
            await rm.delete(rid)

    async def create_one(self, ds: Dataset) -> None:
        rm = self.managers[ds.kind]
        for rid, model in ds.pairs:
            await rm.set(rid, model)

    async def bulk_create(self, ds: Dataset) -> None:
        await self.managers[ds.kind].set_many(ds.pairs, raise_errors=True)

    async def find_by_id(self, ds: Dataset) -> list[BaseModel]:
        rm = self.managers[ds.kind]
        return [await rm.get(rid, ds.model) for rid in ds.ids]

    async def bulk_read(self, ds: Dataset) -> list[BaseModel]:
        return await self.managers[ds.kind].get_many(ds.ids, ds.model)

    async def list_by_prefix(self, ds: Dataset) -> list[str]:
        rm = self.managers[ds.kind]
        return [rid for p in ds.groups for rid in await rm.list_ids(p)]

    async def find_by_field(self, ds: Dataset) -> list[BaseModel]:
        return [m async for _, m in self.managers[ds.kind].find(ds.where, None, ds.model)]

    async def aclose(self) -> None:
        for rm in self.managers.values():
            await rm.clear()
            await rm.close()
