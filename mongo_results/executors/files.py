"""FileBackend: the core's commands run on a directory of JSON files, safe for many processes.

Every namespace lives in one tree (one file per id), so the store's engine
profile says ``one_keyspace``: the core reads all namespaces with one query
and a write meets an id held by another namespace. Writers decide under one
``fcntl`` lock per store and replace files atomically; readers never block.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core import commands as cmd
from ..core.engine import FILES
from ..core.names import DEFAULT_COLLECTION_PREFIX
from ..core.operations import Operations
from ..encoding import content_digest
from ..errors import NotAStoreError, StoreNotFoundError
from ..registry import DEFAULT_NAMESPACE
from .file_tree import FileTree, Unreadable
from .matching import apply_update, evaluate, matches, ordered, project, touches_data

__all__ = ["AsyncFileBackend", "FileBackend"]

_ENVELOPE = ("model_type", "namespace", "data")


class FileBackend:
    """Results as JSON files under ``base_dir``."""

    def __init__(
        self, base_dir: str | os.PathLike[str], create_if_missing: bool = True, *, store_secrets: bool = False
    ) -> None:
        self.base_dir = Path(base_dir)
        self.store_secrets = store_secrets
        if not self.base_dir.exists():
            if not create_if_missing:
                raise StoreNotFoundError(f"Base directory {self.base_dir} does not exist")
            self.base_dir.mkdir(parents=True, exist_ok=True)
        elif not self.base_dir.is_dir():
            raise NotAStoreError(f"{self.base_dir} is not a directory")
        self.tree = FileTree(self.base_dir.resolve())
        self.collection_prefix = DEFAULT_COLLECTION_PREFIX
        self._ops = Operations(self.collection_prefix, engine=FILES, validation="off")

    def operations(self) -> Operations:
        """The core's operations over this store."""
        return self._ops

    # -- documents ----------------------------------------------------------------------

    def _document(self, rid: str, path: Path) -> dict[str, Any] | None:
        """The file as a result document shaped like MongoDB's; None when there is no file.

        A file that is not a result (not JSON, or no envelope) is a document with only its
        id and path, as a foreign document in a collection: listed, never read as a result.
        """
        try:
            envelope = self.tree.read(path)
        except Unreadable as exc:
            return {"_id": rid, "path": rid.split("/"), "source": str(exc)}
        if envelope is None:
            return None
        try:
            changed = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(tzinfo=None)
        except FileNotFoundError:
            return None
        doc: dict[str, Any] = {"_id": rid, "path": rid.split("/")}
        model_type, data = envelope.get("model_type"), envelope.get("data")
        if not (isinstance(model_type, str) and model_type and isinstance(data, dict)):
            doc["source"] = f"{path} holds no result envelope"
        else:
            doc.update(
                model_type=model_type,
                namespace=envelope.get("namespace") or DEFAULT_NAMESPACE,
                data=data,
                digest=content_digest(model_type, data),
                created_at=changed,  # a file keeps only its modification time
                updated_at=changed,
            )
        return doc

    def _candidates(self, query: Mapping[str, Any]) -> Iterator[tuple[str, Path | str]]:
        """The files that can match a filter, from its ``_id`` condition (the store's only index)."""
        cond = query.get("_id")
        if isinstance(cond, str):
            yield cond, self.tree.path(cond.split("/"))
            return
        if isinstance(cond, Mapping) and isinstance(cond.get("$in"), list):
            for rid in sorted({r for r in cond["$in"] if isinstance(r, str)}):
                yield rid, self.tree.path(rid.split("/"))
            return
        low = cond.get("$gte", cond.get("$gt")) if isinstance(cond, Mapping) else None
        high = cond.get("$lt") if isinstance(cond, Mapping) else None
        under = ""
        if isinstance(low, str) and isinstance(high, str):
            common = os.path.commonprefix([low, high])  # noqa: RUF071 (ids compare as strings)
            under = common.rpartition("/")[0]  # the directory every id between the bounds is in
        after = cond.get("$gt", "") if isinstance(cond, Mapping) else ""
        yield from self.tree.results(under, after if isinstance(after, str) else "")

    def _find(
        self, collection: str, query: Mapping[str, Any], projection: Mapping[str, Any] | None = None, limit: int = 0
    ) -> list[dict[str, Any]]:
        """The matching documents in id order; with ``limit``, the first ``limit`` of them."""
        namespace = None if collection == cmd.EVERY else collection[len(self.collection_prefix) :]
        by_id = {"_id": query["_id"]} if "_id" in query else {}
        # Ids alone across every namespace (list_ids) are answered from file names.
        by_name = namespace is None and _about_ids(query) and set(projection or {"data": 0}) <= {"_id"}
        full = touches_data(query)  # a find(): any filter over the data
        found = []
        for rid, path in sorted(self._candidates(query)):
            if not matches({"_id": rid}, query if by_name else by_id):
                continue  # decided by name, without reading the file
            if by_name:
                found.append({"_id": rid})
                continue
            doc = self._document(rid, Path(path))
            # A file without a namespace (not a result) is in every collection, as on a server
            # a foreign document is in the collection it was put in.
            in_scope = namespace is None or (doc is not None and doc.get("namespace", namespace) == namespace)
            if doc is not None and in_scope and (evaluate(query, doc) if full else matches(doc, query)):
                found.append(doc)
                if len(found) == limit:  # a keyset page: reading the files after it would be thrown away
                    break
        return found

    def _holder(self, rid: str) -> tuple[Path, dict[str, Any] | None]:
        path = self.tree.path(rid.split("/"))
        return path, self._document(rid, path)

    # -- commands -----------------------------------------------------------------------

    def _write(self, write: cmd.Write) -> cmd.Written | cmd.DuplicateKey:
        namespace = write.collection[len(self.collection_prefix) :]
        if isinstance(write, cmd.Insert):
            path, existing = self._holder(write.document["_id"])
            if existing is not None:
                return cmd.DuplicateKey(existing.get("namespace"))
            self.tree.write(path, {k: write.document[k] for k in _ENVELOPE})
            return cmd.Written(True)
        rid = write.filter["_id"]
        path, existing = self._holder(rid)
        if (
            existing is not None
            and existing.get("namespace", namespace) == namespace
            and matches(existing, write.filter)
        ):
            new = write.update if write.replace else apply_update(existing, write.update, inserting=False)
            self.tree.write(path, {k: new[k] for k in _ENVELOPE})
            return cmd.Written(False)
        if existing is not None:
            return cmd.DuplicateKey(existing.get("namespace"))
        base = {k: v for k, v in write.filter.items() if not isinstance(v, Mapping)}
        new = write.update if write.replace else apply_update(base, write.update, inserting=True)
        self.tree.write(path, {k: new[k] for k in _ENVELOPE})
        return cmd.Written(True)

    def _update(self, collection: str, query: Mapping[str, Any], update: Mapping[str, Any], replace: bool) -> Any:
        found = self._find(collection, query)
        if not found:
            return cmd.NoMatch()
        new = update if replace else apply_update(found[0], update, inserting=False)
        self.tree.write(self.tree.path(found[0]["path"]), {k: new[k] for k in _ENVELOPE})
        return cmd.Written(False)

    def _delete(self, collection: str, query: Mapping[str, Any], many: bool) -> int:
        found = self._find(collection, query)
        count = 0
        for doc in found if many else found[:1]:
            count += self.tree.remove(self.tree.path(doc["path"]))
        return count

    def execute(self, command: cmd.Command) -> Any:
        """Run one command; its reply."""
        match command:
            case cmd.Find(collection, query, projection, sort, limit):
                by_id = not sort or sort == cmd.BY_ID  # files come in id order
                docs = self._find(collection, query, projection, limit if by_id else 0)
                docs = docs if by_id else ordered(docs, sort)
                return [project(d, projection) for d in (docs[:limit] if limit else docs)]
            case cmd.FindOne(collection, query, projection):
                docs = self._find(collection, query)
                return project(docs[0], projection) if docs else None
            case cmd.CountDocuments(collection, query):
                return len(self._find(collection, query))
            case cmd.Insert() | cmd.Upsert():
                with self.tree.locked():
                    return self._write(command)
            case cmd.Update(collection, query, update, replace):
                with self.tree.locked():
                    return self._update(collection, query, update, replace)
            case cmd.BulkWrite(_, writes):
                with self.tree.locked():
                    return [self._write(w) for w in writes]
            case cmd.Delete(collection, query, many):
                with self.tree.locked():
                    return self._delete(collection, query, many)
            case cmd.Drop(collection):
                with self.tree.locked():
                    self._delete(collection, {}, True)
                    for path in self.tree.leftovers():
                        path.unlink(missing_ok=True)
                return None
            case cmd.ListCollections():
                found = {d["namespace"] for d in self._find(cmd.EVERY, {}) if "namespace" in d}
                return sorted(self.collection_prefix + ns for ns in found)
            case cmd.ListIndexes():
                return ["_id_"]
            case cmd.ReadValidator():
                return {}
            case cmd.BuildInfo() | cmd.EnsureIndexes() | cmd.SetValidator():
                return {} if isinstance(command, cmd.BuildInfo) else None
        raise TypeError(f"not a command: {command!r}")  # pragma: no cover

    def leftovers(self) -> list[Path]:
        """Temporary files of writers that were killed mid-write (never a visible result)."""
        return self.tree.leftovers()

    def remove_leftovers(self) -> int:
        """Remove the temporary files of killed writers; under the store's lock, so none is in use."""
        with self.tree.locked():
            found = self.tree.leftovers()
            for path in found:
                path.unlink(missing_ok=True)
        return len(found)

    def __getstate__(self) -> dict[str, Any]:
        return {"base_dir": self.base_dir, "store_secrets": self.store_secrets}  # what a worker needs to open it

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["base_dir"], store_secrets=state["store_secrets"])  # type: ignore[misc]

    @property
    def where(self) -> str:
        """The store, for people."""
        return f"file store at {self.base_dir}"

    def close(self) -> None:
        """Nothing to release: files are opened per call."""

    def __repr__(self) -> str:
        return f"FileBackend({str(self.base_dir)!r})"


def _about_ids(query: Mapping[str, Any]) -> bool:
    """Whether a filter looks at ``_id`` only."""
    return all(
        key == "_id" or (key in ("$and", "$or", "$nor") and all(_about_ids(q) for q in value))
        for key, value in query.items()
    )


class AsyncFileBackend:
    """A :class:`FileBackend` whose commands run in threads, so the event loop never waits on disk."""

    def __init__(self, base_dir: str | os.PathLike[str], create_if_missing: bool = True, **options: Any) -> None:
        self.files = FileBackend(base_dir, create_if_missing, **options)

    @property
    def store_secrets(self) -> bool:
        return self.files.store_secrets

    @store_secrets.setter
    def store_secrets(self, value: bool) -> None:
        self.files.store_secrets = value

    def operations(self) -> Operations:
        """The core's operations over this store."""
        return self.files.operations()

    async def execute(self, command: cmd.Command) -> Any:
        """Run one command on a worker thread; its reply."""
        return await asyncio.to_thread(self.files.execute, command)

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"AsyncFileBackend({str(self.files.base_dir)!r})"
