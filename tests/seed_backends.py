"""Backends as the ``results_manager`` package writes them, for the adapter's tests.

The seed is not on PyPI. These follow its published backends: its own
``SetBehavior(Enum)`` (not a str enum: a plain string never equals a member),
a FileBackend of ``{"model_type", "namespace", "data"}`` JSON files whose ``set``
compares ``behavior == SetBehavior.X``, and an AsyncSqliteBackend whose methods
are coroutines. The registry stands in for ``results_manager.model_registry``.
No ``from __future__ import annotations``: like the seed, annotations are classes.
"""

import asyncio
import contextlib
import json
import shutil
import sqlite3
from enum import Enum
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel

from mongo_results.registry import (
    DEFAULT_NAMESPACE,
    find_model_in_all_namespaces,
    find_model_namespace,
    get_model_class,
)


class SetBehavior(Enum):
    """The seed's behaviours: same names and values as mongo_results.SetBehavior, another class."""

    RAISE_IF_EXISTS = "raise_if_exists"
    RAISE_IF_DIFFERENT = "raise_if_different"
    OVERWRITE = "overwrite"
    SKIP_IF_EXISTS = "skip_if_exists"


class StrSetBehavior(str, Enum):
    """A variant some users wrote: a str enum, still not equal to another class's members."""

    RAISE_IF_EXISTS = "raise_if_exists"
    RAISE_IF_DIFFERENT = "raise_if_different"
    OVERWRITE = "overwrite"
    SKIP_IF_EXISTS = "skip_if_exists"


def _namespace(data: BaseModel, namespace: Optional[str], strict: bool, result_id: Any) -> str:
    if namespace is not None:
        return namespace
    try:
        return find_model_namespace(type(data), strict=strict) or DEFAULT_NAMESPACE
    except ValueError as exc:
        raise ValueError(
            f"Cannot automatically determine namespace for {type(data).__name__} when saving to '{result_id}': {exc}"
        ) from exc


def _model(stored: dict, model_class: Optional[type[BaseModel]], namespace: Optional[str]) -> BaseModel:
    model_type = stored.get("model_type")
    if not model_type:
        raise ValueError("Stored data missing model type information")
    if model_class is None:
        lookup = namespace if namespace is not None else stored.get("namespace", DEFAULT_NAMESPACE)
        model_class = get_model_class(model_type, namespace=lookup)
        if model_class is None:
            matches = find_model_in_all_namespaces(model_type)
            if not matches:
                raise ValueError(f"Model type '{model_type}' is not registered in namespace '{lookup}'")
            model_class = matches[0][1]
    return model_class.model_validate(stored["data"])


class FileBackend:
    """The seed's file backend: one JSON file per id under ``base_dir``."""

    def __init__(self, base_dir: Union[str, Path], create_if_missing: bool = True):
        self.base_dir = Path(base_dir)
        if not self.base_dir.exists():
            if not create_if_missing:
                raise FileNotFoundError(f"Base directory {self.base_dir} does not exist")
            self.base_dir.mkdir(parents=True)

    def _path(self, result_id: Union[str, list[str]]) -> Path:
        parts = [p for p in (result_id.split("/") if isinstance(result_id, str) else result_id) if p]
        if not parts:
            raise ValueError("Invalid result ID: empty ID")
        return self.base_dir.joinpath(*parts[:-1], f"{parts[-1]}.json")

    def set(
        self,
        result_id: Union[str, list[str]],
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: Optional[str] = None,
        strict_namespace: bool = False,
    ) -> bool:
        path = self._path(result_id)
        if path.exists():
            if behavior == SetBehavior.RAISE_IF_EXISTS:
                raise FileExistsError(f"Data already exists for ID: {result_id}")
            stored = json.loads(path.read_text())
            same = stored.get("model_type") == type(data).__name__ and stored.get("data") == data.model_dump()
            if behavior == SetBehavior.SKIP_IF_EXISTS and same:
                return False
            if behavior == SetBehavior.RAISE_IF_DIFFERENT and not same:
                raise FileExistsError(f"Different data already exists for ID: {result_id}")
        envelope = {
            "model_type": type(data).__name__,
            "namespace": _namespace(data, namespace, strict_namespace, result_id),
            "data": data.model_dump(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(envelope, indent=2))
        temp.replace(path)
        return True

    def get(
        self,
        result_id: Union[str, list[str]],
        model_class: Optional[type[BaseModel]] = None,
        namespace: Optional[str] = None,
    ) -> BaseModel:
        path = self._path(result_id)
        if not path.exists():
            raise FileNotFoundError(f"No result found for ID: {result_id}")
        return _model(json.loads(path.read_text()), model_class, namespace)

    def exists(self, result_id: Union[str, list[str]]) -> bool:
        return self._path(result_id).exists()

    def list_ids(self, prefix: Optional[Union[str, list[str]]] = None) -> list[str]:
        base = self.base_dir.joinpath(*(prefix.split("/") if isinstance(prefix, str) else prefix or []))
        if not base.exists():
            return []
        return [str(p.relative_to(self.base_dir).with_suffix("")) for p in base.rglob("*.json")]

    def delete(self, result_id: Union[str, list[str]]) -> bool:
        path = self._path(result_id)
        if not path.exists():
            return False
        path.unlink()
        return True

    def clear(self) -> None:
        if self.base_dir.exists():
            shutil.rmtree(self.base_dir)
            self.base_dir.mkdir(parents=True)


class AsyncFileBackend:
    """The seed's file backend with coroutine methods, as a user's async port of it would be."""

    def __init__(self, base_dir: Union[str, Path], create_if_missing: bool = True):
        self.files = FileBackend(base_dir, create_if_missing)

    async def set(
        self,
        result_id: Union[str, list[str]],
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: Optional[str] = None,
        strict_namespace: bool = False,
    ) -> bool:
        return self.files.set(result_id, data, behavior, namespace, strict_namespace)

    async def get(
        self,
        result_id: Union[str, list[str]],
        model_class: Optional[type[BaseModel]] = None,
        namespace: Optional[str] = None,
    ) -> BaseModel:
        return self.files.get(result_id, model_class, namespace)

    async def exists(self, result_id: Union[str, list[str]]) -> bool:
        return self.files.exists(result_id)

    async def list_ids(self, prefix: Optional[Union[str, list[str]]] = None) -> list[str]:
        return self.files.list_ids(prefix)

    async def delete(self, result_id: Union[str, list[str]]) -> bool:
        return self.files.delete(result_id)

    async def clear(self) -> None:
        self.files.clear()


class AsyncSqliteBackend:
    """The seed's async SQLite backend: every method a coroutine (sqlite3 in a thread, as aiosqlite does)."""

    def __init__(self, db_path: Union[str, Path]):
        self.db_path = Path(db_path)

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as conn, conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS results (id TEXT PRIMARY KEY, model_type TEXT NOT NULL, "
                "namespace TEXT NOT NULL, data TEXT NOT NULL)"
            )
            return conn.execute(sql, params).fetchall()

    async def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return await asyncio.to_thread(self._run, sql, params)

    @staticmethod
    def _id(result_id: Union[str, list[str]]) -> str:
        return result_id if isinstance(result_id, str) else "/".join(p for p in result_id if p)

    async def set(
        self,
        result_id: Union[str, list[str]],
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: Optional[str] = None,
        strict_namespace: bool = False,
    ) -> bool:
        rid = self._id(result_id)
        namespace = _namespace(data, namespace, strict_namespace, rid)
        rows = await self._query("SELECT model_type, data FROM results WHERE id = ?", (rid,))
        if rows:
            if behavior == SetBehavior.RAISE_IF_EXISTS:
                raise FileExistsError(f"Data already exists for ID: {rid}")
            model_type, stored = rows[0]
            if model_type == type(data).__name__:
                same = json.loads(stored) == data.model_dump()
                if behavior == SetBehavior.SKIP_IF_EXISTS and same:
                    return False
                if behavior == SetBehavior.RAISE_IF_DIFFERENT and not same:
                    raise FileExistsError(f"Different data already exists for ID: {rid}")
        await self._query(
            "INSERT OR REPLACE INTO results (id, model_type, namespace, data) VALUES (?, ?, ?, ?)",
            (rid, type(data).__name__, namespace, json.dumps(data.model_dump())),
        )
        return True

    async def get(
        self,
        result_id: Union[str, list[str]],
        model_class: Optional[type[BaseModel]] = None,
        namespace: Optional[str] = None,
    ) -> BaseModel:
        rid = self._id(result_id)
        rows = await self._query("SELECT model_type, namespace, data FROM results WHERE id = ?", (rid,))
        if not rows:
            raise FileNotFoundError(f"No result found for ID: {rid}")
        model_type, stored_namespace, data = rows[0]
        stored = {"model_type": model_type, "namespace": stored_namespace, "data": json.loads(data)}
        return _model(stored, model_class, namespace)

    async def exists(self, result_id: Union[str, list[str]]) -> bool:
        return bool(await self._query("SELECT 1 FROM results WHERE id = ?", (self._id(result_id),)))

    async def list_ids(self, prefix: Optional[Union[str, list[str]]] = None) -> list[str]:
        if prefix is None:
            rows = await self._query("SELECT id FROM results ORDER BY id")
        else:
            rows = await self._query("SELECT id FROM results WHERE id LIKE ? ORDER BY id", (f"{self._id(prefix)}%",))
        return [row[0] for row in rows]

    async def delete(self, result_id: Union[str, list[str]]) -> bool:
        rid = self._id(result_id)
        if not await self.exists(rid):
            return False
        await self._query("DELETE FROM results WHERE id = ?", (rid,))
        return True

    async def clear(self) -> None:
        await self._query("DELETE FROM results")


class MemoryBackend:
    """A user's backend in a dict that tells behaviours apart with ``is``; its ``set`` names no enum."""

    behaviors: Any = SetBehavior

    def __init__(self) -> None:
        self.stored: dict = {}

    def set(self, result_id, data, behavior, namespace=None, strict_namespace=False):
        if result_id in self.stored:
            if behavior is self.behaviors.RAISE_IF_EXISTS:
                raise FileExistsError(result_id)
            same = self.stored[result_id] == data
            if behavior is self.behaviors.SKIP_IF_EXISTS and same:
                return False
            if behavior is self.behaviors.RAISE_IF_DIFFERENT and not same:
                raise FileExistsError(result_id)
        self.stored[result_id] = data
        return True

    def get(self, result_id, model_class=None, namespace=None):
        if result_id not in self.stored:
            raise FileNotFoundError(result_id)
        return self.stored[result_id]

    def exists(self, result_id):
        return result_id in self.stored

    def list_ids(self, prefix=None):
        return [r for r in self.stored if prefix is None or r == prefix or r.startswith(prefix + "/")]

    def delete(self, result_id):
        return self.stored.pop(result_id, None) is not None

    def clear(self):
        self.stored.clear()


class StrMemoryBackend(MemoryBackend):
    """MemoryBackend on a str enum, named only by the annotation of its ``set``."""

    behaviors = StrSetBehavior

    def set(
        self,
        result_id: str,
        data: BaseModel,
        behavior: StrSetBehavior,
        namespace: Optional[str] = None,
        strict_namespace: bool = False,
    ) -> bool:
        return super().set(result_id, data, behavior, namespace, strict_namespace)  # type: ignore[no-any-return]
