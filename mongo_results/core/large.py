"""Results over 16 MiB: their largest fields in a GridFS file, named by the result's document.

The file is written first and the document that names it last, in one atomic
write: a reader sees the whole result or none of it. The document keeps the
other fields in ``data`` (``find`` and Compass see them) and says in ``gridfs``
which fields are in the file. A file no document names (a writer stopped
between the two writes, or before removing a file it replaced) is an orphan:
``doctor`` lists it and ``doctor --fix`` removes it once it is older than any
write in progress could be.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import bson
from bson import ObjectId

from ..errors import DocumentTooLargeError
from .commands import Command, Delete, DeleteFile, Drop, FindAndDelete, FindOne, GetFile, NoMatch, PutFile, ask
from .encoding import CODEC_OPTIONS, EncodedModel
from .names import GRIDFS
from .profiles import EngineProfile

__all__ = [
    "BUCKET",
    "GRACE",
    "INLINE_SHARE",
    "Spill",
    "bucket",
    "by_file",
    "delete_one",
    "discard",
    "drop_bucket",
    "file_of",
    "file_state",
    "filled",
    "orphaned",
    "put",
    "spill",
]

BUCKET = GRIDFS  # one bucket per store, never a namespace
INLINE_SHARE = 16  # a large result's document keeps its smaller fields, up to 1/16 of the limit (1 MiB)
GRACE = timedelta(minutes=10)  # an unnamed file younger than this may be a write in progress
_READS = 3  # a file replaced (or a result rewritten) while being read: read the document again, this many times
Steps = Generator[Command, Any, Any]


@dataclass(frozen=True, slots=True)
class Spill:
    """The fields of one result that go to a GridFS file, encoded."""

    file_id: ObjectId
    content: bytes
    fields: tuple[str, ...]


def bucket(prefix: str) -> str:
    """The store's GridFS bucket name."""
    return prefix + BUCKET


def spill(result_id: str, document: dict[str, Any], encoded: EncodedModel, limit: int | None) -> Spill | None:
    """Move the largest fields of a document over ``limit`` to a file (``document`` is changed in place)."""
    # The data size is exact for the data; encode the whole document only near the limit.
    if limit is None or encoded.size + 8 * len(result_id) + 4096 < limit:
        return None
    size = len(bson.encode(document, codec_options=CODEC_OPTIONS))
    if size <= limit:
        return None
    data = encoded.data
    sizes = {key: len(bson.encode({key: value}, codec_options=CODEC_OPTIONS)) for key, value in data.items()}
    moved: dict[str, Any] = {}
    for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if size <= limit // INLINE_SHARE:
            break
        moved[key] = data[key]
        size -= sizes[key]
    try:
        content = bson.encode(moved, codec_options=CODEC_OPTIONS)
    except (OverflowError, bson.InvalidDocument) as exc:  # BSON lengths are 32-bit: 2 GiB at most
        raise DocumentTooLargeError(result_id, encoded.size, 2**31 - 1) from exc
    file_id = ObjectId()
    document["data"] = {key: value for key, value in data.items() if key not in moved}
    document["gridfs"] = {"file_id": file_id, "fields": list(moved), "length": len(content)}
    return Spill(file_id, content, tuple(moved))


def put(prefix: str, result_id: str, namespace: str, digest: str, spilled: Spill) -> PutFile:
    """The command that writes a spill's file, labelled with the result it belongs to."""
    metadata = {"result": result_id, "namespace": namespace, "digest": digest, "fields": list(spilled.fields)}
    return PutFile(bucket(prefix), spilled.file_id, result_id, spilled.content, metadata)


def file_of(document: Mapping[str, Any] | None) -> Any:
    """The id of the GridFS file a stored document names, or None."""
    ref = document.get("gridfs") if document is not None else None
    return ref.get("file_id") if isinstance(ref, Mapping) else None


def file_state(document: Mapping[str, Any] | None) -> dict[str, Any]:
    """A filter term that holds while a document still names the same file (or none)."""
    file_id = file_of(document)
    return {"gridfs": {"$exists": False}} if file_id is None else {"gridfs.file_id": file_id}


def discard(prefix: str, file_id: Any) -> Steps:
    """Delete a file nothing names any more (an operation; a missing file is fine)."""
    if file_id is not None:
        yield from ask(DeleteFile(bucket(prefix), file_id))


def filled(prefix: str, documents: Sequence[Mapping[str, Any]]) -> Steps:
    """An operation: the documents with the fields kept in files put back into ``data``.

    A document deleted while it was read is left out; one whose file is gone
    comes back with ``data`` None, for the loader to report as corrupt.
    """
    out = []
    for doc in documents:
        if file_of(doc) is not None and isinstance(doc.get("data"), Mapping):
            doc = yield from _with_file(prefix, doc)
            if doc is None:
                continue
        out.append(doc)
    return out


def _with_file(prefix: str, doc: Mapping[str, Any]) -> Steps:
    for _ in range(_READS):
        file_id = file_of(doc)
        if file_id is None:
            return doc  # rewritten as a small result meanwhile
        content = yield from ask(GetFile(bucket(prefix), file_id))
        if not isinstance(content, NoMatch):
            return {**doc, "data": {**doc["data"], **bson.decode(content, codec_options=CODEC_OPTIONS)}}
        # Overwritten or deleted since the document was read (its old file goes last): read it again.
        again = yield from ask(FindOne(prefix + str(doc.get("namespace")), {"_id": doc["_id"]}))
        if again is None:
            return None
        if file_of(again) == file_id:
            break
        doc = again
    return {**doc, "data": None}


def by_file(documents: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Documents in runs that each hold at most one result with a file, in order."""
    runs: list[list[dict[str, Any]]] = [[]]
    for doc in documents:
        if file_of(doc) is not None and any(file_of(d) is not None for d in runs[-1]):
            runs.append([])
        runs[-1].append(doc)
    return [run for run in runs if run]


def delete_one(prefix: str, collection: str, result_id: str, engine: EngineProfile) -> Steps:
    """An operation: delete a result and then its file; answered by the count deleted (0 or 1)."""
    if engine.max_document is None:  # no result here can have a file
        return (yield from ask(Delete(collection, {"_id": result_id})))
    # The deleted document itself names its file: one command, whatever raced with it.
    fields = {"gridfs": 1} if engine.find_and_modify_fields else None
    deleted = yield from ask(FindAndDelete(collection, {"_id": result_id}, fields))
    if deleted is None:
        return 0
    yield from discard(prefix, file_of(deleted))
    return 1


def drop_bucket(prefix: str, collections: list[str]) -> Steps:
    """An operation: drop the store's GridFS bucket, if it has one."""
    for suffix in (".files", ".chunks"):
        if bucket(prefix) + suffix in collections:
            yield from ask(Drop(bucket(prefix) + suffix))


def orphaned(file_ids: set[Any], named: set[Any], now: datetime) -> tuple[list[Any], int]:
    """Files no document names that are older than GRACE, and how many younger ones were left alone."""
    unnamed = sorted(file_ids - named, key=str)
    old = [f for f in unnamed if not isinstance(f, ObjectId) or now - f.generation_time > GRACE]
    return old, len(unnamed) - len(old)
