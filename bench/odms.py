"""Beanie and ODMantic, on the same models (subclassed into each ODM's document type)."""

from __future__ import annotations

import asyncio
from typing import Any

import odmantic
import pymongo
from beanie import Document, init_beanie
from beanie.operators import In
from motor.motor_asyncio import AsyncIOMotorClient
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient

from .contenders import AsyncContender, _range
from .datasets import Dataset


class _IdOnly(BaseModel):
    id: str = Field(alias="_id")


class BeanieContender(AsyncContender):
    name = "Beanie"

    def __init__(self, loop: asyncio.AbstractEventLoop, uri: str, database: str) -> None:
        super().__init__(loop)
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        self.database = database
        self.classes: dict[str, Any] = {}
        self.documents: dict[str, list[Any]] = {}

    def prepare(self, ds: Dataset) -> None:
        class Doc(Document, ds.model):  # type: ignore[misc,name-defined]
            id: str  # type: ignore[assignment]

            class Settings:
                name = f"beanie_{ds.kind}"
                indexes = [ds.field]  # noqa: RUF012 - Beanie reads a plain list

        self.classes[ds.kind] = cls = Doc
        self.loop.run_until_complete(init_beanie(database=self.client[self.database], document_models=[cls]))
        self.documents[ds.kind] = [cls(id=rid, **m.model_dump()) for rid, m in ds.pairs]

    async def areset(self, ds: Dataset) -> None:
        await self.classes[ds.kind].get_pymongo_collection().delete_many({})

    async def create_one(self, ds: Dataset) -> None:
        for doc in self.documents[ds.kind]:
            await doc.insert()

    async def bulk_create(self, ds: Dataset) -> None:
        await self.classes[ds.kind].insert_many(self.documents[ds.kind])

    async def find_by_id(self, ds: Dataset) -> list[Any]:
        cls = self.classes[ds.kind]
        return [await cls.get(rid) for rid in ds.ids]

    async def bulk_read(self, ds: Dataset) -> list[Any]:
        cls = self.classes[ds.kind]
        found = {d.id: d for d in await cls.find(In(cls.id, ds.ids)).to_list()}
        return [found[rid] for rid in ds.ids]

    async def list_by_prefix(self, ds: Dataset) -> list[str]:
        cls = self.classes[ds.kind]
        return [d.id for p in ds.groups for d in await cls.find(_range(p)).project(_IdOnly).to_list()]

    async def find_by_field(self, ds: Dataset) -> list[Any]:
        return await self.classes[ds.kind].find(ds.where).sort("_id").to_list()  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        for cls in self.classes.values():
            await cls.get_pymongo_collection().drop()
        await self.client.close()


class ODManticContender(AsyncContender):
    """ODMantic (over Motor). It has no projections, so listing ids reads whole documents."""

    name = "ODMantic"

    def __init__(self, loop: asyncio.AbstractEventLoop, uri: str, database: str) -> None:
        super().__init__(loop)
        self.client: Any = AsyncIOMotorClient(uri)
        self.engine = odmantic.AIOEngine(client=self.client, database=database)
        self.classes: dict[str, Any] = {}
        self.documents: dict[str, list[Any]] = {}

    def prepare(self, ds: Dataset) -> None:
        fields = {name: info.annotation for name, info in ds.model.model_fields.items()}
        namespace = {
            "__module__": __name__,
            "__annotations__": {"id": str, **fields},
            "id": odmantic.Field(primary_field=True),
            "model_config": {
                "collection": f"odmantic_{ds.kind}",
                "indexes": lambda: [pymongo.IndexModel(ds.field)],
            },
        }
        cls: Any = type(f"ODMantic_{ds.kind}", (odmantic.Model,), namespace)
        self.classes[ds.kind] = cls
        self.loop.run_until_complete(self.engine.configure_database([cls]))

    async def areset(self, ds: Dataset) -> None:
        cls = self.classes[ds.kind]
        await self.engine.get_collection(cls).delete_many({})
        # ODMantic saves only fields changed since the last save: fresh objects, or a re-save writes nothing.
        self.documents[ds.kind] = [cls(id=rid, **dict(m)) for rid, m in ds.pairs]

    async def create_one(self, ds: Dataset) -> None:
        for doc in self.documents[ds.kind]:
            await self.engine.save(doc)

    async def bulk_create(self, ds: Dataset) -> None:
        await self.engine.save_all(self.documents[ds.kind])

    async def find_by_id(self, ds: Dataset) -> list[Any]:
        cls = self.classes[ds.kind]
        return [await self.engine.find_one(cls, cls.id == rid) for rid in ds.ids]

    async def bulk_read(self, ds: Dataset) -> list[Any]:
        cls = self.classes[ds.kind]
        found = {d.id: d for d in await self.engine.find(cls, odmantic.query.in_(cls.id, ds.ids))}
        return [found[rid] for rid in ds.ids]

    async def list_by_prefix(self, ds: Dataset) -> list[str]:
        cls = self.classes[ds.kind]
        return [d.id for p in ds.groups for d in await self.engine.find(cls, _range(p))]

    async def find_by_field(self, ds: Dataset) -> list[Any]:
        cls = self.classes[ds.kind]
        return list(await self.engine.find(cls, ds.where, sort=cls.id))

    async def aclose(self) -> None:
        for cls in self.classes.values():
            await self.engine.get_collection(cls).drop()
        self.client.close()
