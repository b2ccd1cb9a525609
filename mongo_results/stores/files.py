"""FileBackend: the core's commands run on a directory of JSON files, safe for many processes.

Every namespace lives in one tree (one file per id), laid out as ``base_dir/<segments>.json``,
written atomically and read without locks.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core import commands as cmd
from ..core.encoding import EXACT_TIMES, content_digest, exact_times
from ..core.names import CLAIMS, DEFAULT_COLLECTION_PREFIX, DEFAULT_NAMESPACE, FAILURES
from ..core.operations import Operations
from ..core.profiles import FILES
from ..errors import (
    MongoResultsError,
    NotAStoreError,
    StoreNotFoundError,
    StoreWriteError,
    UnreadableResultError,
)
from ..registry import MODELS
from .bson_query import evaluate, ordered
from .evaluation import apply_update, matches, project, touches_data
from .file_documents import DocumentFiles
from .file_tree import CLAIM_SUFFIX, CLAIMS_DIR, FAILURE_SUFFIX, FAILURES_DIR, FileTree, Unreadable, disk_errors
from .locks import check_locking

__all__ = ["AsyncFileBackend", "FileBackend"]

_ENVELOPE = ("model_type", "namespace", "data")


def _envelope(document: Mapping[str, Any]) -> dict[str, Any]:
    """What a result's file holds: the envelope, and the exact times when the data has some."""
    out = {k: document[k] for k in _ENVELOPE}
    if document.get(EXACT_TIMES):
        out[EXACT_TIMES] = document[EXACT_TIMES]
    return out


# A keyset page stops after files of about this many bytes, as a server's cursor batch stops at
# 16 MiB: large results are then read a few at a time, whatever the page size asked for.
PAGE_BYTES = 8 * 1024 * 1024


class FileBackend:
    """Results as JSON files under ``base_dir``: one file per id, safe for many processes.

    ``base_dir/<segments>.json`` holds each result; writes are atomic (a temporary file
    renamed into place) under one lock, reads take no lock. Trees written by
    ``results_manager`` are read as they are. Pickles as its path, so worker processes
    reopen the same directory.

    Args:
        base_dir: The store's directory.
        create_if_missing: Create the directory (and its parents) when it does not exist.
        store_secrets: Whether pydantic ``SecretStr``/``SecretBytes`` values may be stored
            (in clear text); can be changed on the instance later.

    Raises:
        StoreNotFoundError: The directory is missing and ``create_if_missing`` is False
            (a ``FileNotFoundError``).
        NotAStoreError: ``base_dir`` exists and is not a directory (a ``NotADirectoryError``).
        StoreWriteError: The directory could not be created (an ``OSError``).
    """

    def __init__(
        self, base_dir: str | os.PathLike[str], create_if_missing: bool = True, *, store_secrets: bool = False
    ) -> None:
        self.base_dir = Path(base_dir)
        self.store_secrets = store_secrets
        check_locking(str(self.base_dir))
        if not self.base_dir.exists():
            if not create_if_missing:
                raise StoreNotFoundError(f"Base directory {self.base_dir} does not exist")
            with disk_errors(self.base_dir):
                self.base_dir.mkdir(parents=True, exist_ok=True)
        elif not self.base_dir.is_dir():
            raise NotAStoreError(f"{self.base_dir} is not a directory")
        self._tree = FileTree(self.base_dir.resolve())
        self.collection_prefix = DEFAULT_COLLECTION_PREFIX
        self._ops = Operations(self.collection_prefix, models=MODELS, engine=FILES, validation="off", where=repr(self))
        self._claims = DocumentFiles(
            self._tree, self.collection_prefix + CLAIMS, CLAIMS_DIR, CLAIM_SUFFIX, "expires_at"
        )
        self._failures = DocumentFiles(
            self._tree, self.collection_prefix + FAILURES, FAILURES_DIR, FAILURE_SUFFIX, "failed_at"
        )

    def _operations(self) -> Operations:
        """Give the core's operations over this store, for the managers.

        Returns:
            The operations, with the store's current ``store_secrets``.
        """
        self._ops.store_secrets = self.store_secrets  # an attribute users may change at any time
        return self._ops

    # -- documents ----------------------------------------------------------------------

    def _document(self, rid: str, path: Path) -> tuple[dict[str, Any] | None, int]:
        """The file as a result document shaped like MongoDB's (None when there is no file), and its size.

        A file that is not a result (not JSON, or no envelope) is a document with only its
        id and path, as a foreign document in a collection: listed, never read as a result.
        """
        try:
            envelope = self._tree.read(path)
        except (Unreadable, UnreadableResultError) as exc:
            unread: dict[str, Any] = {"_id": rid, "path": rid.split("/"), "source": str(exc)}
            if isinstance(exc, UnreadableResultError):  # what get raises: where the file stops being JSON
                unread["error"] = UnreadableResultError(f"Stored result {rid!r}: {exc.msg}", exc.doc, exc.pos)
            return unread, 0
        if envelope is None:
            return None, 0
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None, 0
        changed = datetime.fromtimestamp(stat.st_mtime, timezone.utc).replace(tzinfo=None)
        doc: dict[str, Any] = {"_id": rid, "path": rid.split("/")}
        model_type, data = envelope.get("model_type"), envelope.get("data")
        if not (isinstance(model_type, str) and model_type and isinstance(data, dict)):
            doc["source"] = f"{path} holds no result envelope"
        else:
            times = envelope.get(EXACT_TIMES)
            doc.update(
                model_type=model_type,
                namespace=envelope.get("namespace") or DEFAULT_NAMESPACE,
                data=data,
                digest=content_digest(model_type, data, exact_times(times)),
                created_at=changed,  # a file keeps only its modification time
                updated_at=changed,
            )
            if times is not None:
                doc[EXACT_TIMES] = times
        return doc, stat.st_size

    def _candidates(self, query: Mapping[str, Any]) -> Iterator[tuple[str, Path]]:
        """The files that can match a filter in id order, from its ``_id`` condition (the store's only index)."""
        cond = query.get("_id")
        if isinstance(cond, str) or (isinstance(cond, Mapping) and isinstance(cond.get("$in"), list)):
            named = [cond] if isinstance(cond, str) else sorted({r for r in cond["$in"] if isinstance(r, str)})
            for rid in named:
                path = self._tree.path(rid.split("/"))
                if path.is_file():  # a name decides alone (list_ids, missing): it must name a file
                    yield rid, path
            return
        low = cond.get("$gte", cond.get("$gt")) if isinstance(cond, Mapping) else None
        high = cond.get("$lt") if isinstance(cond, Mapping) else None
        if isinstance(cond, Mapping) and isinstance(cond.get("$lte"), str):
            high = cond["$lte"] + "\x00"  # the first string after it: ids up to and including it
        yield from self._tree.results(low if isinstance(low, str) else "", high if isinstance(high, str) else None)

    def _find(
        self,
        collection: str,
        query: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
        limit: int = 0,
        page: bool = False,
    ) -> list[dict[str, Any]]:
        """The documents in id order; ``limit`` stops the walk (the files after are not read)."""
        namespace = None if collection == cmd.EVERY else collection[len(self.collection_prefix) :]
        by_id = {"_id": query["_id"]} if "_id" in query else {}
        # Ids alone across every namespace (list_ids) are answered from file names.
        by_name = namespace is None and _about_ids(query) and set(projection or {"data": 0}) <= {"_id"}
        full = touches_data(query)  # a find(): any filter over the data
        found: list[dict[str, Any]] = []
        read = 0
        for rid, path in self._candidates(query):
            if limit and len(found) >= limit:
                break
            if page and read >= PAGE_BYTES:
                return cmd.PartialPage(found)
            if not matches({"_id": rid}, query if by_name else by_id):
                continue  # decided by name, without reading the file
            if by_name:
                found.append({"_id": rid})
                continue
            doc, size = self._document(rid, path)
            # A file without a namespace (not a result) is in every collection, as on a server
            # a foreign document is in the collection it was put in.
            in_scope = namespace is None or (doc is not None and doc.get("namespace", namespace) == namespace)
            if doc is not None and in_scope and (evaluate(query, doc) if full else matches(doc, query)):
                found.append(doc)
                read += size
        return found

    def _holder(self, rid: str) -> tuple[Path, dict[str, Any] | None]:
        path = self._tree.path(rid.split("/"))
        return path, self._document(rid, path)[0]

    # -- commands -----------------------------------------------------------------------

    def _write(self, write: cmd.Write) -> cmd.Written | cmd.DuplicateKey:
        namespace = write.collection[len(self.collection_prefix) :]
        if isinstance(write, cmd.Insert):
            path, existing = self._holder(write.document["_id"])
            if existing is not None:
                return cmd.DuplicateKey(existing.get("namespace"))
            self._tree.write(path, _envelope(write.document))
            return cmd.Written(True)
        rid = write.filter["_id"]
        path, existing = self._holder(rid)
        if (
            existing is not None
            and existing.get("namespace", namespace) == namespace
            and matches(existing, write.filter)
        ):
            new = write.update if write.replace else apply_update(existing, write.update, inserting=False)
            self._tree.write(path, _envelope(new))
            return cmd.Written(False)
        if existing is not None:
            held = existing.get("namespace", namespace)
            probed = held == namespace and write.probe is not None and matches(existing, write.probe)
            return cmd.DuplicateKey(held, probed)
        base = {k: v for k, v in write.filter.items() if not isinstance(v, Mapping)}
        new = write.update if write.replace else apply_update(base, write.update, inserting=True)
        self._tree.write(path, _envelope(new))
        return cmd.Written(True)

    def _bulk(self, writes: tuple[cmd.Write, ...]) -> list[cmd.WriteReply]:
        """Each write decided on its own, as a server's unordered bulk write: one failing stops none."""
        try:
            with self._tree.locked():
                return [self._attempt(w) for w in writes]
        except StoreWriteError as exc:  # the lock itself could not be taken: nothing was written
            return [cmd.Failed(exc)] * len(writes)

    def _attempt(self, write: cmd.Write) -> cmd.WriteReply:
        try:
            return self._write(write)
        except MongoResultsError as exc:  # a clash with another result's file or directory, or the disk
            return cmd.Failed(exc)

    def _update(self, collection: str, query: Mapping[str, Any], update: Mapping[str, Any], replace: bool) -> Any:
        found = self._find(collection, query, limit=1)
        if not found:
            return cmd.NoMatch()
        new = update if replace else apply_update(found[0], update, inserting=False)
        self._tree.write(self._tree.path(found[0]["path"]), _envelope(new))
        return cmd.Written(False)

    def _delete(self, collection: str, query: Mapping[str, Any], many: bool) -> int:
        count = 0
        for doc in self._find(collection, query, limit=0 if many else 1):
            count += self._tree.remove(self._tree.path(doc["path"]))
        return count

    def _execute(self, command: cmd.Command) -> Any:
        """Run one of the core's commands on the files, for the managers.

        Args:
            command: The command, built by the core's operations.

        Returns:
            The command's reply, shaped as a MongoDB server's.

        Raises:
            StoreWriteError: The disk refused a read or a write (an ``OSError``).
            InvalidIdError: An id whose file would leave the store's directory.
        """
        with disk_errors(self.base_dir):
            return self._dispatch(command)

    def _dispatch(self, command: cmd.Command) -> Any:
        collection = getattr(command, "collection", None)
        if collection == self._claims.collection:
            return self._claims.execute(command)
        if collection == self._failures.collection:
            return self._failures.execute(command)
        match command:
            case cmd.Find(collection, query, projection, sort, limit, page):
                if sort and sort != cmd.BY_ID:
                    docs = ordered(self._find(collection, query, projection), sort)[: limit or None]
                else:  # files come in id order: the walk stops at the limit
                    docs = self._find(collection, query, projection, limit, page)
                projected = [project(d, projection) for d in docs]
                return cmd.PartialPage(projected) if isinstance(docs, cmd.PartialPage) else projected
            case cmd.FindOne(collection, query, projection):
                docs = self._find(collection, query, limit=1)
                return project(docs[0], projection) if docs else None
            case cmd.CountDocuments(collection, query):
                return len(self._find(collection, query))
            case cmd.Insert() | cmd.Upsert():
                with self._tree.locked():
                    return self._write(command)
            case cmd.Update(collection, query, update, replace):
                with self._tree.locked():
                    return self._update(collection, query, update, replace)
            case cmd.BulkWrite(_, writes):
                return self._bulk(writes)
            case cmd.Delete(collection, query, many):
                with self._tree.locked():
                    return self._delete(collection, query, many)
            case cmd.FindAndDelete(collection, query, projection):
                with self._tree.locked():
                    docs = self._find(collection, query, limit=1)
                    for doc in docs:
                        self._tree.remove(self._tree.path(doc["path"]))
                return project(docs[0], projection) if docs else None
            case cmd.Drop(collection):
                with self._tree.locked():
                    self._delete(collection, {}, True)
                    self._tree.leftovers(remove=True)
                return None
            case cmd.Leftovers(remove):
                return [p.relative_to(self._tree.root).as_posix() for p in self._leftovers(remove)]
            case cmd.ListCollections():
                found = {d["namespace"] for d in self._find(cmd.EVERY, {}) if "namespace" in d}
                return sorted(self.collection_prefix + ns for ns in found)
            case cmd.ListIndexes():
                return ["_id_"]
            case cmd.CollectionOptions():
                return {"options": {}}
            case cmd.BuildInfo() | cmd.EnsureIndexes() | cmd.SetValidator() | cmd.CreateCollection():
                return {} if isinstance(command, cmd.BuildInfo) else None
            case cmd.ServerTime():
                return self._tree.clock()
        raise TypeError(f"not a command: {command!r}")  # pragma: no cover

    def _leftovers(self, remove: bool) -> list[Path]:
        if not remove:
            return self._tree.leftovers()
        with self._tree.locked():  # no writer is between its temporary file and its rename
            return self._tree.leftovers(remove=True)

    def __getstate__(self) -> dict[str, Any]:
        return {"base_dir": self.base_dir, "store_secrets": self.store_secrets}  # what a worker needs to open it

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["base_dir"], store_secrets=state["store_secrets"])  # type: ignore[misc]

    @property
    def _where(self) -> str:
        """The store, for people: ``file store at <base_dir>``."""
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
    """A [`FileBackend`][mongo_results.FileBackend] for asyncio code: its commands run in threads.

    The event loop never waits on disk. Storage and behaviour are ``FileBackend``'s.

    Args:
        base_dir: The store's directory.
        create_if_missing: Create the directory (and its parents) when it does not exist.
        **options: ``FileBackend``'s keyword options (``store_secrets``).

    Raises:
        StoreNotFoundError: The directory is missing and ``create_if_missing`` is False
            (a ``FileNotFoundError``).
        NotAStoreError: ``base_dir`` exists and is not a directory (a ``NotADirectoryError``).
        StoreWriteError: The directory could not be created (an ``OSError``).
    """

    def __init__(self, base_dir: str | os.PathLike[str], create_if_missing: bool = True, **options: Any) -> None:
        self._files = FileBackend(base_dir, create_if_missing, **options)

    @property
    def store_secrets(self) -> bool:
        """Whether pydantic secret values may be stored (in clear text); assignable."""
        return self._files.store_secrets

    @store_secrets.setter
    def store_secrets(self, value: bool) -> None:
        self._files.store_secrets = value

    def _operations(self) -> Operations:
        """Give the core's operations over this store, for the managers.

        Returns:
            The operations, with the store's current ``store_secrets``.
        """
        ops = self._files._operations()
        ops.where = repr(self)
        return ops

    async def _execute(self, command: cmd.Command) -> Any:
        """Run one of the core's commands on a worker thread, for the managers.

        Args:
            command: The command, built by the core's operations.

        Returns:
            The command's reply, as ``FileBackend._execute`` gives it.

        Raises:
            StoreWriteError: The disk refused a write (an ``OSError``).
        """
        return await asyncio.to_thread(self._files._execute, command)

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"AsyncFileBackend({str(self._files.base_dir)!r})"


# -- The file store's layout: ``base_dir/<segments>.json``, written atomically, read without locks.
# A file holds ``{"model_type", "namespace", "data"}``, so trees written by
# ``results_manager`` are read as they are. Files written here add ``"format"``
# and store data in MongoDB Extended JSON (relaxed), which keeps bytes, UUIDs,
# decimals and non-finite floats exact.
