"""FileBackend: the core's commands run on a directory of JSON files, safe for many processes.

Every namespace lives in one tree (one file per id), laid out as ``base_dir/<segments>.json``,
written atomically and read without locks.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bson import json_util
from bson.json_util import JSONMode, JSONOptions

from ..core import commands as cmd
from ..core.claims import MAX_LEASE
from ..core.encoding import EXACT_TIMES, JSON_OPTIONS, content_digest, escape_key, exact_times, map_keys
from ..core.names import CLAIMS, DEFAULT_COLLECTION_PREFIX, DEFAULT_NAMESPACE, FAILURES
from ..core.operations import Operations
from ..core.profiles import FILES
from ..errors import (
    InvalidIdError,
    MongoResultsError,
    NotAStoreError,
    StoreNotFoundError,
    StoreWriteError,
    UnreadableResultError,
)
from ..registry import MODELS
from .locks import check_locking, holding, open_lock
from .matching import apply_update, evaluate, matches, ordered, project, touches_data

__all__ = ["AsyncFileBackend", "FORMAT", "FileBackend", "FileTree", "Unreadable"]

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
            self.base_dir.mkdir(parents=True, exist_ok=True)
        elif not self.base_dir.is_dir():
            raise NotAStoreError(f"{self.base_dir} is not a directory")
        self.tree = FileTree(self.base_dir.resolve())
        self.collection_prefix = DEFAULT_COLLECTION_PREFIX
        self._ops = Operations(self.collection_prefix, models=MODELS, engine=FILES, validation="off", where=repr(self))
        self.claims = DocumentFiles(self.tree, self.collection_prefix + CLAIMS, CLAIMS_DIR, CLAIM_SUFFIX, "expires_at")
        self.failures = DocumentFiles(
            self.tree, self.collection_prefix + FAILURES, FAILURES_DIR, FAILURE_SUFFIX, "failed_at"
        )

    def operations(self) -> Operations:
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
            envelope = self.tree.read(path)
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
                path = self.tree.path(rid.split("/"))
                if path.is_file():  # a name decides alone (list_ids, missing): it must name a file
                    yield rid, path
            return
        low = cond.get("$gte", cond.get("$gt")) if isinstance(cond, Mapping) else None
        high = cond.get("$lt") if isinstance(cond, Mapping) else None
        if isinstance(cond, Mapping) and isinstance(cond.get("$lte"), str):
            high = cond["$lte"] + "\x00"  # the first string after it: ids up to and including it
        yield from self.tree.results(low if isinstance(low, str) else "", high if isinstance(high, str) else None)

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
        path = self.tree.path(rid.split("/"))
        return path, self._document(rid, path)[0]

    # -- commands -----------------------------------------------------------------------

    def _write(self, write: cmd.Write) -> cmd.Written | cmd.DuplicateKey:
        namespace = write.collection[len(self.collection_prefix) :]
        if isinstance(write, cmd.Insert):
            path, existing = self._holder(write.document["_id"])
            if existing is not None:
                return cmd.DuplicateKey(existing.get("namespace"))
            self.tree.write(path, _envelope(write.document))
            return cmd.Written(True)
        rid = write.filter["_id"]
        path, existing = self._holder(rid)
        if (
            existing is not None
            and existing.get("namespace", namespace) == namespace
            and matches(existing, write.filter)
        ):
            new = write.update if write.replace else apply_update(existing, write.update, inserting=False)
            self.tree.write(path, _envelope(new))
            return cmd.Written(False)
        if existing is not None:
            held = existing.get("namespace", namespace)
            probed = held == namespace and write.probe is not None and matches(existing, write.probe)
            return cmd.DuplicateKey(held, probed)
        base = {k: v for k, v in write.filter.items() if not isinstance(v, Mapping)}
        new = write.update if write.replace else apply_update(base, write.update, inserting=True)
        self.tree.write(path, _envelope(new))
        return cmd.Written(True)

    def _bulk(self, writes: tuple[cmd.Write, ...]) -> list[cmd.WriteReply]:
        """Each write decided on its own, as a server's unordered bulk write: one failing stops none."""
        try:
            with self.tree.locked():
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
        self.tree.write(self.tree.path(found[0]["path"]), _envelope(new))
        return cmd.Written(False)

    def _delete(self, collection: str, query: Mapping[str, Any], many: bool) -> int:
        count = 0
        for doc in self._find(collection, query, limit=0 if many else 1):
            count += self.tree.remove(self.tree.path(doc["path"]))
        return count

    def execute(self, command: cmd.Command) -> Any:
        """Run one of the core's commands on the files, for the managers.

        Args:
            command: The command, built by the core's operations.

        Returns:
            The command's reply, shaped as a MongoDB server's.

        Raises:
            StoreWriteError: The disk refused a write (an ``OSError``).
            InvalidIdError: An id whose file would leave the store's directory.
        """
        collection = getattr(command, "collection", None)
        if collection == self.claims.collection:
            return self.claims.execute(command)
        if collection == self.failures.collection:
            return self.failures.execute(command)
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
                with self.tree.locked():
                    return self._write(command)
            case cmd.Update(collection, query, update, replace):
                with self.tree.locked():
                    return self._update(collection, query, update, replace)
            case cmd.BulkWrite(_, writes):
                return self._bulk(writes)
            case cmd.Delete(collection, query, many):
                with self.tree.locked():
                    return self._delete(collection, query, many)
            case cmd.FindAndDelete(collection, query, projection):
                with self.tree.locked():
                    docs = self._find(collection, query, limit=1)
                    for doc in docs:
                        self.tree.remove(self.tree.path(doc["path"]))
                return project(docs[0], projection) if docs else None
            case cmd.Drop(collection):
                with self.tree.locked():
                    self._delete(collection, {}, True)
                    self.tree.leftovers(remove=True)
                return None
            case cmd.Leftovers(remove):
                return [p.relative_to(self.tree.root).as_posix() for p in self._leftovers(remove)]
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
                return self.tree.clock()
        raise TypeError(f"not a command: {command!r}")  # pragma: no cover

    def leftovers(self) -> list[Path]:
        """List the temporary files of writers that were killed mid-write.

        They are never read as results, but they take space; ``doctor`` reports them.

        Returns:
            The files' paths.
        """
        return self._leftovers(remove=False)

    def remove_leftovers(self) -> int:
        """Remove the temporary files of killed writers, under the writers' lock.

        Returns:
            How many files were removed.
        """
        return len(self._leftovers(remove=True))

    def _leftovers(self, remove: bool) -> list[Path]:
        if not remove:
            return self.tree.leftovers()
        with self.tree.locked():  # no writer is between its temporary file and its rename
            return self.tree.leftovers(remove=True)

    def __getstate__(self) -> dict[str, Any]:
        return {"base_dir": self.base_dir, "store_secrets": self.store_secrets}  # what a worker needs to open it

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["base_dir"], store_secrets=state["store_secrets"])  # type: ignore[misc]

    @property
    def where(self) -> str:
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


class DocumentFiles:
    """A small collection of a file store (the claims, the failures): a JSON file per document.

    Each decision is taken under the store's lock. The shared directory is the store: a file
    is written atomically (temporary file, rename) and read without the lock; a claim's expiry
    is read on the clock of the machine that serves the directory (:meth:`FileTree.clock`).
    """

    def __init__(self, tree: FileTree, collection: str, directory: str, suffix: str, stamp: str) -> None:
        self.tree, self.collection = tree, collection
        self.directory = tree.root / directory
        self.suffix = suffix
        self.stamp = stamp  # the date field every readable document has: expires_at, failed_at

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:40] + self.suffix)

    def _read(self, path: Path, key: str | None = None) -> dict[str, Any] | None:
        """The document in ``path``; None when there is none.

        A claim file that is not a claim (empty or cut short by a crash before its data reached
        the disk) holds its id for the longest lease after it was written, then counts as
        expired: no one can renew it, and doctor reports and removes it. A failure file cut
        short is no record: the next failure of that cell writes it anew.
        """
        with _disk(path):
            try:
                text = path.read_text(encoding="utf-8")
                changed = path.stat().st_mtime
            except FileNotFoundError:
                return None  # no claim
        try:
            claim: dict[str, Any] = json_util.loads(text, json_options=CLAIM_JSON)
            if isinstance(claim, dict) and isinstance(claim.get(self.stamp), datetime):
                return claim
        except ValueError:  # not JSON: json.JSONDecodeError, or bson's own for a bad $date
            pass
        if self.stamp != "expires_at":
            return None
        written = datetime.fromtimestamp(changed, timezone.utc)
        return {
            "_id": key,
            "result_id": None,
            "owner": None,
            "unreadable": str(path),
            "expires_at": written + MAX_LEASE,
        }

    def _candidates(self, query: Mapping[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
        key = query.get("_id")
        if isinstance(key, str):
            found = [(self._path(key), self._read(self._path(key), key))]
        else:
            try:
                paths = sorted(p for p in self.directory.iterdir() if p.name.endswith(self.suffix))
            except FileNotFoundError:
                return []
            found = [(path, self._read(path)) for path in paths]
        return [(path, doc) for path, doc in found if doc is not None and matches(doc, query)]

    def _write(self, path: Path, document: Mapping[str, Any]) -> None:
        text = json_util.dumps(document, json_options=CLAIM_JSON)
        tmp = path.with_name(f".{secrets.token_hex(8)}{TMP}")
        try:
            with _disk(path):
                path.parent.mkdir(exist_ok=True)
                durable_replace(tmp, path, text)
        finally:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)

    def execute(self, command: cmd.Command) -> Any:
        """Run one of the collection's commands; its reply, as a server's would be."""
        match command:
            case cmd.Upsert(_, query, update, replace, _):
                with self.tree.locked():
                    for path, doc in self._candidates(query)[:1]:
                        self._write(path, update if replace else apply_update(doc, update, inserting=False))
                        return cmd.Written(False)
                    path = self._path(query["_id"])
                    if self._read(path) is not None:
                        return cmd.DuplicateKey(None)
                    base = {k: v for k, v in query.items() if not isinstance(v, Mapping)}
                    self._write(path, update if replace else apply_update(base, update, inserting=True))
                    return cmd.Written(True)
            case cmd.Insert(_, document):
                with self.tree.locked():
                    path = self._path(document["_id"])
                    if self._read(path) is not None:
                        return cmd.DuplicateKey(None)
                    self._write(path, document)
                    return cmd.Written(True)
            case cmd.Update(_, query, update, _):
                with self.tree.locked():
                    for path, doc in self._candidates(query)[:1]:
                        self._write(path, apply_update(doc, update, inserting=False))
                        return cmd.Written(False)
                    return cmd.NoMatch()
            case cmd.Delete(_, query, many):
                with self.tree.locked():
                    found = self._candidates(query)
                    for path, _ in found if many else found[:1]:
                        with _disk(path):
                            path.unlink(missing_ok=True)
                    return len(found if many else found[:1])
            case cmd.Find(_, query, projection):
                return [project(doc, projection) for _, doc in self._candidates(query)]
            case cmd.FindOne(_, query, projection):
                return next((project(doc, projection) for _, doc in self._candidates(query)), None)
        raise TypeError(f"not a command on {self.collection}: {command!r}")  # pragma: no cover


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
    """

    def __init__(self, base_dir: str | os.PathLike[str], create_if_missing: bool = True, **options: Any) -> None:
        self.files = FileBackend(base_dir, create_if_missing, **options)

    @property
    def store_secrets(self) -> bool:
        """Whether pydantic secret values may be stored (in clear text); assignable."""
        return self.files.store_secrets

    @store_secrets.setter
    def store_secrets(self, value: bool) -> None:
        self.files.store_secrets = value

    def operations(self) -> Operations:
        """Give the core's operations over this store, for the managers.

        Returns:
            The operations, with the store's current ``store_secrets``.
        """
        ops = self.files.operations()
        ops.where = repr(self)
        return ops

    async def execute(self, command: cmd.Command) -> Any:
        """Run one of the core's commands on a worker thread, for the managers.

        Args:
            command: The command, built by the core's operations.

        Returns:
            The command's reply, as ``FileBackend.execute`` gives it.

        Raises:
            StoreWriteError: The disk refused a write (an ``OSError``).
        """
        return await asyncio.to_thread(self.files.execute, command)

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"AsyncFileBackend({str(self.files.base_dir)!r})"


# -- The file store's layout: ``base_dir/<segments>.json``, written atomically, read without locks.
# A file holds ``{"model_type", "namespace", "data"}``, so trees written by
# ``results_manager`` are read as they are. Files written here add ``"format"``
# and store data in MongoDB Extended JSON (relaxed), which keeps bytes, UUIDs,
# decimals and non-finite floats exact.

FORMAT = "mongo_results/1"
LOCK_NAME = ".mongo_results.lock"
CLOCK_NAME = ".mongo_results.clock"
CLAIMS_DIR = ".mongo_results.claims"
CLAIM_SUFFIX = ".claim"
FAILURES_DIR = ".mongo_results.failures"
FAILURE_SUFFIX = ".failure"
CLAIM_JSON = JSONOptions(json_mode=JSONMode.RELAXED, tz_aware=True)  # expiries compared with the clock's aware time
SUFFIX = ".json"
TMP = ".tmp"  # a file being written: ".<16 hex digits>.tmp" beside its final name


class Unreadable(Exception):
    """A result file that cannot be read as JSON text (not UTF-8, too deep, or the disk failed)."""


def durable_replace(tmp: Path, path: Path, text: str) -> None:
    """Put ``text`` at ``path`` atomically and durably: written and synced, renamed, the directory synced.

    Without the last sync a power loss after the rename can leave the new name with no data.
    """
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if os.name == "posix":  # Windows cannot open a directory; NTFS journals the rename itself
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def _disk(path: Path) -> Iterator[None]:
    """The store's one translation of the disk's errors: a write that failed is a library error."""
    try:
        yield
    except OSError as exc:
        raise StoreWriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc


class FileTree:
    """The files under one directory, never followed through a symbolic link out of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Each directory's entries in id order, with the modification time they were read at:
        # a read in pages lists a directory once, not once per page.
        self._listings: dict[str, tuple[int, list[str], list[tuple[str, Path, bool]]]] = {}

    def path(self, segs: tuple[str, ...] | list[str]) -> Path:
        """The file of a result id (its segments)."""
        name = segs[-1] + SUFFIX
        if len(name.encode("utf-8")) > 255:
            raise InvalidIdError(
                f"Result id segment {segs[-1]!r} is too long for a file name (250 UTF-8 bytes at most)"
            )
        path = self.root.joinpath(*segs[:-1], name)
        try:
            real = path.resolve()
        except (RuntimeError, OSError) as exc:  # a loop of symbolic links: RuntimeError before Python 3.13
            raise InvalidIdError(f"{path} is in a loop of symbolic links: it names no result") from exc
        # A symbolic link inside the store (to a directory or to a file) must not lead outside it.
        if not real.is_relative_to(self.root):
            raise InvalidIdError(f"Result id {'/'.join(segs)!r} leads outside {self.root}")
        return path

    def clock(self) -> datetime:
        """The time now on the machine that serves the directory.

        A file's modification time, set to "now" by the file system (on NFS, by the server), so
        that workers on machines whose clocks disagree read one clock. Where the directory is
        read-only (a viewer's mount), this machine's clock: such a process takes no claim.
        """
        path = self.root / CLOCK_NAME
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
            os.utime(path, None)
            return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        except OSError:  # a store this process may only read: it takes no claim, so its own clock does
            return datetime.now(timezone.utc)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The store's one writer lock (readers never take it)."""
        with _disk(self.root / LOCK_NAME):
            fd = open_lock(self.root / LOCK_NAME)
        with holding(fd):
            yield

    @staticmethod
    def read(path: Path) -> dict[str, Any] | None:
        """A file's envelope; None when there is no file, Unreadable when it is not a JSON object."""
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise Unreadable(f"cannot read {path}: {exc}") from exc
        try:
            raw = json.loads(text)
            if isinstance(raw, dict) and raw.get("format") == FORMAT:
                raw = None  # one parse in memory at a time
                envelope: dict[str, Any] = json_util.loads(text, json_options=JSON_OPTIONS)
                return envelope
        except json.JSONDecodeError as exc:
            raise UnreadableResultError(f"{path} is not valid JSON: {exc.msg}", exc.doc, exc.pos) from exc
        except (ValueError, RecursionError) as exc:
            raise Unreadable(f"{path} is not valid JSON ({str(exc)[:120]})") from exc
        if not isinstance(raw, dict):
            raise Unreadable(f"{path} holds a JSON {type(raw).__name__}, not a result")
        if isinstance(raw.get("data"), dict):
            raw["data"] = map_keys(raw["data"], escape_key)  # seed files hold raw keys
        return raw

    def write(self, path: Path, envelope: dict[str, Any]) -> None:
        """Replace ``path`` atomically (write a temporary file, fsync, rename); on failure nothing is left."""
        text = json_util.dumps({**envelope, "format": FORMAT}, json_options=JSON_OPTIONS, indent=2)
        tmp = path.with_name(f".{secrets.token_hex(8)}{TMP}")  # short: the final name may be 255 bytes
        try:
            with _disk(path):
                self._replace(path, tmp, text)
        except (InvalidIdError, StoreWriteError):
            with suppress(OSError):  # the disk that refused the write may refuse this too
                tmp.unlink(missing_ok=True)
                self.prune(path.parent)  # the directories made for it
            raise
        finally:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _replace(self, path: Path, tmp: Path, text: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidIdError(f"{path.relative_to(self.root)} clashes with an existing result file") from exc
        try:
            durable_replace(tmp, path, text)
        except IsADirectoryError as exc:
            raise InvalidIdError(f"{path.relative_to(self.root)} clashes with a directory of other results") from exc

    def remove(self, path: Path) -> bool:
        """Remove a result file and the directories it leaves empty; whether it was there."""
        with _disk(path):
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            self.prune(path.parent)
        return True

    def prune(self, directory: Path) -> None:
        """Remove ``directory`` and its parents while they are empty, up to the store's root."""
        while directory != self.root and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent

    def files(self, top: Path) -> Iterator[os.DirEntry[str]]:
        """Every file under ``top``, never through a symbolic link."""
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            return  # gone (removed meanwhile): nothing of the store's is there
        except OSError as exc:  # unreadable: an answer without it would be silently incomplete
            raise StoreWriteError(exc.errno, f"cannot list the store's directory: {exc.strerror}", str(top)) from exc
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from self.files(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield entry

    def results(self, low: str = "", high: str | None = None) -> Iterator[tuple[str, Path]]:
        """``(id, file)`` of the result files in id order, from ``low`` up to before ``high``.

        Only names are looked at, and only in the directories whose ids can be in that range,
        so a keyset page costs the files it returns, not the files before it.
        """
        return self._walk(self.root, "", low, high)

    def _walk(self, top: Path, prefix: str, low: str, high: str | None) -> Iterator[tuple[str, Path]]:
        keys, entries = self._listing(top, prefix)
        start = bisect.bisect_left(keys, low)  # what sorts before low is passed over without a look
        if start and entries[start - 1][2] and low.startswith(keys[start - 1]):
            start -= 1  # the directory that holds low itself
        for key, path, is_dir in entries[start:]:
            if high is not None and key >= high:
                return
            if not is_dir:
                if key >= low:
                    yield key, path
            elif key[:-1] + "0" > low:  # else every id in it sorts before low ("0" follows "/")
                yield from self._walk(path, key, low, high)

    def _listing(self, top: Path, prefix: str) -> tuple[list[str], list[tuple[str, Path, bool]]]:
        """A directory's result files and subdirectories as ``(id or "id/", path, is a directory)``, in id order.

        A directory sorts as "name/": every id in it falls between its neighbours' ids, so walking
        children in this order yields ids in order. The listing is kept while the directory's
        modification time stays what it was and is over two seconds old: a file system that keeps
        times to the second could otherwise hide a file added in the same second.
        """
        try:
            changed = os.stat(top).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            return [], []
        except OSError as exc:
            raise StoreWriteError(exc.errno, f"cannot list the store's directory: {exc.strerror}", str(top)) from exc
        kept = self._listings.get(str(top))
        if kept is not None and kept[0] == changed and time.time_ns() - changed > 2_000_000_000:
            return kept[1], kept[2]
        try:
            with os.scandir(top) as it:
                found = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return [], []  # removed meanwhile: nothing of the store's is there
        except OSError as exc:  # unreadable: an answer without it would be silently incomplete
            raise StoreWriteError(exc.errno, f"cannot list the store's directory: {exc.strerror}", str(top)) from exc
        entries: list[tuple[str, Path, bool]] = []
        for entry in found:
            if entry.is_dir(follow_symlinks=False):  # never through a link: no loop, nothing outside
                entries.append((prefix + entry.name + "/", Path(entry.path), True))
            elif len(entry.name) > len(SUFFIX) and entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
                entries.append((prefix + entry.name[: -len(SUFFIX)], Path(entry.path), False))  # not .tmp, the lock
        entries.sort(key=lambda e: e[0])
        keys = [e[0] for e in entries]
        if len(self._listings) > 10_000:  # a store of many small directories: keep memory bounded
            self._listings.clear()
        self._listings[str(top)] = (changed, keys, entries)
        return keys, entries

    def leftovers(self, remove: bool = False) -> list[Path]:
        """Temporary files of writers that were killed mid-write (never a visible result).

        ``remove`` deletes them: call it under the lock only, else a live writer's file could go.
        """
        found = [Path(e.path) for e in self.files(self.root) if e.name.startswith(".") and e.name.endswith(TMP)]
        for path in found if remove else ():
            with _disk(path):
                path.unlink(missing_ok=True)
        return found
