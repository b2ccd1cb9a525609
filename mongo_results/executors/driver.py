"""Core commands as PyMongo calls and driver replies as core replies; driver errors translated here only.

Shared by every executor that speaks PyMongo's API: ``MongoClient``,
``AsyncMongoClient``, Motor and the embedded mongomock store.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gridfs.errors import CorruptGridFile, NoFile
from pymongo import IndexModel, InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    InvalidName,
    InvalidURI,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)

from ..core import commands as cmd
from ..errors import (
    InvalidNamespaceError,
    InvalidUriError,
    MongoResultsError,
    OutcomeUnknownError,
    RejectedByServerError,
    StoreUnavailableError,
)

__all__ = ["DRIVER_ERRORS", "Call", "bulk_replies", "call_for", "translate", "write_request"]

# What a driver call can raise: DocumentTooLarge is a BSON error, not a PyMongoError.
DRIVER_ERRORS = (PyMongoError, DocumentTooLarge)


def _same(reply: Any) -> Any:
    return reply


@dataclass(frozen=True, slots=True)
class Call:
    """One driver call: ``method`` of the database (``collection`` None) or a collection, and its reading."""

    collection: str | None
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None
    finish: Callable[[Any], Any] = _same
    cursor: bool = False  # the method returns a cursor, read to the end
    duplicates: bool = False  # a DuplicateKeyError is the answer DuplicateKey
    bucket: bool = False  # ``collection`` names a GridFS bucket, and ``method`` is the bucket's


def write_request(write: cmd.Write) -> Any:
    """A write as a PyMongo bulk request object."""
    if isinstance(write, cmd.Insert):
        return InsertOne(write.document)
    if write.replace:
        return ReplaceOne(write.filter, write.update, upsert=True)
    return UpdateOne(write.filter, write.update, upsert=True)


def _written(reply: Any) -> cmd.Written:
    return cmd.Written(upserted=reply.upserted_id is not None)


def _matched(reply: Any) -> cmd.Written | cmd.NoMatch:
    return cmd.Written(False) if reply.matched_count else cmd.NoMatch()


def _first_options(reply: Any) -> dict[str, Any]:
    batch = reply.get("cursor", {}).get("firstBatch", [])
    return dict(batch[0].get("options", {})) if batch else {}


def call_for(command: cmd.Command) -> Call:
    """The driver call that runs ``command``."""
    match command:
        case cmd.Insert(collection, document):
            return Call(collection, "insert_one", (document,), finish=lambda _: cmd.Written(True), duplicates=True)
        case cmd.Upsert(collection, filt, update, replace):
            method = "replace_one" if replace else "update_one"
            return Call(collection, method, (filt, update), {"upsert": True}, _written, duplicates=True)
        case cmd.Update(collection, filt, update, replace):
            return Call(collection, "replace_one" if replace else "update_one", (filt, update), finish=_matched)
        case cmd.Find(collection, filt, projection, sort, limit):
            options = {"sort": list(sort)} if sort else {}
            return Call(collection, "find", (filt, projection), {**options, "limit": limit}, cursor=True)
        case cmd.FindOne(collection, filt, projection):
            return Call(collection, "find_one", (filt, projection))
        case cmd.CountDocuments(collection, filt):
            return Call(collection, "count_documents", (filt,))
        case cmd.Delete(collection, filt, many):
            return Call(collection, "delete_many" if many else "delete_one", (filt,), finish=lambda r: r.deleted_count)
        case cmd.Drop(collection):
            return Call(None, "drop_collection", (collection,), finish=lambda _: None)
        case cmd.ListCollections():
            return Call(None, "list_collection_names", finish=list)
        case cmd.BuildInfo():
            return Call(None, "command", ("buildInfo",))
        case cmd.EnsureIndexes(collection, indexes):
            models = [IndexModel([(i.field, i.direction)], name=i.name) for i in indexes]
            return Call(collection, "create_indexes", (models,), finish=lambda _: None)
        case cmd.ListIndexes(collection):
            return Call(collection, "index_information", finish=lambda info: sorted(info))
        case cmd.SetValidator(_, command_document):
            return Call(None, "command", (dict(command_document),), finish=lambda _: None)
        case cmd.ReadValidator(collection):
            return Call(None, "command", ("listCollections",), {"filter": {"name": collection}}, _first_options)
        case cmd.PutFile(bucket, file_id, filename, content, metadata):
            args = (file_id, filename, content)
            kwargs = {"metadata": dict(metadata)}
            return Call(bucket, "upload_from_stream_with_id", args, kwargs, lambda _: cmd.Written(True), bucket=True)
        case cmd.GetFile(bucket, file_id):
            sink = io.BytesIO()
            return Call(bucket, "download_to_stream", (file_id, sink), finish=lambda _: sink.getvalue(), bucket=True)
        case cmd.DeleteFile(bucket, file_id):
            return Call(bucket, "delete", (file_id,), finish=lambda _: True, bucket=True)
        case cmd.BulkWrite(collection, writes):
            requests = [write_request(w) for w in writes]
            return Call(collection, "bulk_write", (requests,), {"ordered": False})
    raise TypeError(f"not a command: {command!r}")  # pragma: no cover


def bulk_replies(
    writes: tuple[cmd.Write, ...], upserted: set[int], errors: Mapping[int, Mapping[str, Any]]
) -> list[Any]:
    """One reply per write of a bulk, from the indexes the server upserted and its per-write errors."""
    out: list[Any] = []
    for i, write in enumerate(writes):
        error = errors.get(i)
        if error is None:
            out.append(cmd.Written(isinstance(write, cmd.Insert) or i in upserted))
        elif error.get("code") == 11000:
            out.append(cmd.DuplicateKey())
        else:
            out.append(cmd.Refused(error.get("code"), str(error.get("errmsg"))))
    return out


def driver_reply(command: cmd.Command, call: Call, raw: Any) -> Any:
    """The core's reply from what the driver answered."""
    if isinstance(command, cmd.BulkWrite):
        return bulk_replies(command.writes, set(raw.upserted_ids or {}), {})
    return call.finish(raw)


def error_reply(command: cmd.Command, call: Call, exc: Exception) -> Any:
    """The reply an error stands for (a duplicate key, a bulk's per-write errors), or None for a failure."""
    if isinstance(command, cmd.BulkWrite) and isinstance(exc, BulkWriteError):
        upserted = {u["index"] for u in exc.details.get("upserted", [])}
        errors = {e["index"]: e for e in exc.details.get("writeErrors", [])}
        return bulk_replies(command.writes, upserted, errors)
    if call.duplicates and isinstance(exc, DuplicateKeyError):
        return cmd.DuplicateKey()
    if isinstance(command, cmd.GetFile) and isinstance(exc, (NoFile, CorruptGridFile)):
        return cmd.NoMatch()  # deleted, or being deleted: its chunks go after its files document
    if isinstance(command, cmd.DeleteFile) and isinstance(exc, NoFile):
        return False
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).split(", Timeout:", 1)[0].split(", Topology Description:", 1)[0]
    return text[:300]


def translate(exc: BaseException, hosts: str, timeout: float | None) -> MongoResultsError:
    """The library error for a driver error (the caller raises it ``from exc``)."""
    if isinstance(exc, (ServerSelectionTimeoutError, WaitQueueTimeoutError)):  # nothing was sent
        within = f" within {timeout:g} s" if timeout is not None else ""
        return StoreUnavailableError(f"Cannot reach MongoDB at {hosts}{within}: {_reason(exc)}")
    if isinstance(exc, ConnectionFailure):  # a command may have been sent and even applied
        return OutcomeUnknownError(
            f"Lost the connection to MongoDB at {hosts} during a command ({_reason(exc)}): a write "
            "in it may have been applied; set again with SKIP_IF_EXISTS or RAISE_IF_DIFFERENT to be sure"
        )
    if isinstance(exc, ConfigurationError) and not isinstance(exc, InvalidURI) and "DNS" in str(exc):
        # mongodb+srv:// names are looked up in DNS when the client opens.
        return StoreUnavailableError(f"Cannot reach MongoDB at {hosts}: {_reason(exc)}")
    if isinstance(exc, (ConfigurationError, InvalidURI)):
        return InvalidUriError(f"Cannot use the MongoDB URI for {hosts}: {_reason(exc)}")
    if isinstance(exc, InvalidName):
        return InvalidNamespaceError(f"MongoDB at {hosts} refused a name: {_reason(exc)}")
    if isinstance(exc, DocumentTooLarge):
        return RejectedByServerError(f"MongoDB at {hosts} refused an oversized document: {exc}")
    if isinstance(exc, OperationFailure):
        message = (exc.details or {}).get("errmsg") or str(exc)
        return RejectedByServerError(f"MongoDB at {hosts} refused the operation (code {exc.code}): {message}")
    return MongoResultsError(f"MongoDB at {hosts}: {type(exc).__name__}: {_reason(exc)}")
