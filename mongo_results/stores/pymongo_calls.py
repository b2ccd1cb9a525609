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
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)

from ..core import commands as cmd
from ..errors import (
    AccessDeniedError,
    InvalidNamespaceError,
    InvalidUriError,
    MongoResultsError,
    OutcomeUnknownError,
    RejectedByServerError,
    StoreUnavailableError,
)

__all__ = [
    "CONFLICT_RETRIES",
    "DRIVER_ERRORS",
    "Call",
    "Qualified",
    "bulk_replies",
    "call_for",
    "is_transient",
    "resend_after",
    "translate",
    "write_request",
]

# What a driver call can raise: DocumentTooLarge is a BSON error, not a PyMongoError.
DRIVER_ERRORS = (PyMongoError, DocumentTooLarge)

# MongoDB's codes for a server shutting down, stepping down or out of reach: nothing was refused.
TRANSIENT_CODES = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError")
# FerretDB answers InternalError (1) with PostgreSQL's or its pool's message when its backend is gone
# (stopped, restarting, unreachable): the same code as a real bug, so the message tells them apart.
INTERNAL_ERROR = 1
BACKEND_GONE = (
    "terminating connection due to administrator command",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "failed to connect to",
    "connection refused",
    "connection reset by peer",
    "server closed the connection unexpectedly",
    "conn closed",
    "unexpected eof",
    "broken pipe",
    "context canceled",  # FerretDB stopping (SIGTERM) cancels the commands in flight
)


def sqlstate_code(state: str) -> int:
    """The error code DocumentDB answers for a PostgreSQL SQLSTATE: its five characters, six bits each."""
    return sum(((ord(ch) - ord("0")) & 0x3F) << (6 * i) for i, ch in enumerate(state))


# PostgreSQL's connection exceptions (class 08) as DocumentDB codes them: on a Citus cluster, the
# coordinator lost (or could not open) its connection to a worker. The write that met it was not
# refused; the worker is down for now.
CONNECTION_EXCEPTIONS = frozenset(sqlstate_code(state) for state in ("08001", "08003", "08004", "08006", "08P01"))
# The commands that change the store: failing transiently, they may have been applied.
_WRITES = (
    cmd.Insert,
    cmd.Upsert,
    cmd.Update,
    cmd.BulkWrite,
    cmd.Delete,
    cmd.FindAndDelete,
    cmd.Drop,
    cmd.EnsureIndexes,
    cmd.SetValidator,
    cmd.CreateCollection,
    cmd.PutFile,
    cmd.DeleteFile,
    cmd.EnableSharding,
    cmd.ShardCollection,
)


_OPTIONAL = (
    cmd.EnableSharding,
    cmd.ShardCollection,
    cmd.CreateCollection,
    cmd.SetValidator,
    cmd.EnsureIndexes,
)


def _same(reply: Any) -> Any:
    return reply


@dataclass(frozen=True, slots=True)
class Qualified:
    """An argument naming the store's database (``collection`` None) or one of its collections as ``db.coll``.

    Sharding commands run on ``admin`` and ``config``, and name what they act on with the database
    in front; the executor knows the database's name, the command does not.
    """

    collection: str | None = None

    def name(self, database: str) -> str:
        return database if self.collection is None else f"{database}.{self.collection}"


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
    database: str | None = None  # another database of the client (``admin``, ``config``) instead of the store's

    def resolved(self, database: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments, with each Qualified name (also one level inside a dict) spelt out for ``database``."""

        def spelt(value: Any) -> Any:
            if isinstance(value, Qualified):
                return value.name(database)
            if isinstance(value, dict):
                return {k: v.name(database) if isinstance(v, Qualified) else v for k, v in value.items()}
            return value

        return tuple(spelt(a) for a in self.args), {k: spelt(v) for k, v in (self.kwargs or {}).items()}


def write_request(write: cmd.Write) -> Any:
    """A write as a PyMongo bulk request object."""
    if isinstance(write, cmd.Insert):
        return InsertOne(write.document)
    if write.replace:
        return ReplaceOne(write.filter, write.update, upsert=True)
    return UpdateOne(write.filter, write.update, upsert=True)


# An update that never applies without upsert: the probe statement only counts its match.
_NO_CHANGE = {"$setOnInsert": {"digest": None}}


def _upserted_first(reply: Any) -> cmd.Written:
    return cmd.Written(upserted=0 in (reply.upserted_ids or {}))


def _written(reply: Any) -> cmd.Written:
    return cmd.Written(upserted=reply.upserted_id is not None)


def _matched(reply: Any) -> cmd.Written | cmd.NoMatch:
    return cmd.Written(False) if reply.matched_count else cmd.NoMatch()


def _applied(_: Any) -> cmd.Written:
    return cmd.Written(True)


def _first_entry(reply: Any) -> dict[str, Any] | None:
    batch = reply.get("cursor", {}).get("firstBatch", [])
    return dict(batch[0]) if batch else None


def _shard_key(entry: Any) -> dict[str, Any] | None:
    return dict(entry["key"]) if isinstance(entry, Mapping) and isinstance(entry.get("key"), Mapping) else None


def call_for(command: cmd.Command) -> Call:
    """The driver call that runs ``command``."""
    match command:
        case cmd.Insert(collection, document):
            return Call(collection, "insert_one", (document,), finish=lambda _: cmd.Written(True), duplicates=True)
        case cmd.Upsert(collection, filt, update, replace, probe) if probe is not None:
            # One update command of two statements: the upsert, and the probe, which changes nothing.
            requests = [write_request(command), UpdateOne(probe, _NO_CHANGE)]
            return Call(collection, "bulk_write", (requests,), {"ordered": False}, _upserted_first)
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
        case cmd.FindAndDelete(collection, filt, projection):
            return Call(collection, "find_one_and_delete", (filt,), {"projection": projection})
        case cmd.Drop(collection):
            return Call(None, "drop_collection", (collection,), finish=lambda _: None)
        case cmd.ListCollections():
            # Views and time series are never a store's: only plain collections are listed.
            return Call(None, "list_collection_names", (), {"filter": {"type": "collection"}}, finish=list)
        case cmd.ServerTime():
            return Call(None, "command", ("hello",), finish=lambda reply: reply["localTime"])
        case cmd.BuildInfo():
            return Call(None, "command", ("buildInfo",))
        case cmd.EnsureIndexes(collection, indexes):
            models = [IndexModel([(i.field, i.direction)], name=i.name) for i in indexes]
            return Call(collection, "create_indexes", (models,), finish=lambda _: None)
        case cmd.ListIndexes(collection):
            return Call(collection, "index_information", finish=lambda info: sorted(info))
        case cmd.SetValidator(_, command_document):
            return Call(None, "command", (dict(command_document),), finish=lambda _: None)
        case cmd.CollectionOptions(collection):
            return Call(None, "command", ("listCollections",), {"filter": {"name": collection}}, _first_entry)
        case cmd.CreateCollection(collection, options):
            # The command itself: the driver's create_collection asks listCollections first.
            return Call(None, "command", ({"create": collection, **options},), finish=_applied)
        case cmd.PutFile(bucket, file_id, filename, content, metadata):
            args = (file_id, filename, content)
            kwargs = {"metadata": dict(metadata)}
            return Call(bucket, "upload_from_stream_with_id", args, kwargs, lambda _: cmd.Written(True), bucket=True)
        case cmd.GetFile(bucket, file_id):
            sink = io.BytesIO()
            return Call(bucket, "download_to_stream", (file_id, sink), finish=lambda _: sink.getvalue(), bucket=True)
        case cmd.DeleteFile(bucket, file_id):
            return Call(bucket, "delete", (file_id,), finish=lambda _: True, bucket=True)
        case cmd.EnableSharding():
            return Call(None, "command", ("enableSharding", Qualified()), finish=_applied, database="admin")
        case cmd.ShardCollection(collection, key, unique):
            shard_options: dict[str, Any] = {"key": dict(key), **({"unique": True} if unique else {})}
            shard_args = ("shardCollection", Qualified(collection))
            return Call(None, "command", shard_args, shard_options, _applied, database="admin")
        case cmd.ShardKeyOf(collection):
            # config.collections is where a sharded cluster records each collection's key (MongoDB and
            # DocumentDB alike); a dropped collection's entry may linger there, marked.
            where = {"_id": Qualified(collection), "dropped": {"$ne": True}}
            return Call("collections", "find_one", (where,), finish=_shard_key, database="config")
        case cmd.BulkWrite(collection, writes):
            requests = [write_request(w) for w in writes]
            return Call(collection, "bulk_write", (requests,), {"ordered": False})
    raise TypeError(f"not a command: {command!r}")  # pragma: no cover


WRITE_CONFLICT = 112
# PostgreSQL (DocumentDB, Citus) rolls back one of two transactions that wait on each other, and
# answers InternalError (1) with its message: the write was not applied, and may be sent again.
ROLLED_BACK = ("deadlock detected", "could not serialize access", "write conflict")


def _conflict(code: Any, message: Any) -> bool:
    """Whether an error says the write was rolled back for another transaction's sake (nothing applied)."""
    return code == WRITE_CONFLICT or any(marker in str(message or "").lower() for marker in ROLLED_BACK)


CONFLICT_RETRIES = 8  # sends of a command the server keeps rolling back for other transactions
_DECIDED_BY_THE_CORE = (cmd.Insert, cmd.Upsert, cmd.Update, cmd.BulkWrite)  # answered Conflict, see error_reply


def resend_after(command: cmd.Command, exc: BaseException) -> list[Call] | None:
    """The calls that undo what ``command`` left before it was rolled back, when it may simply be sent again.

    None when it may not: another error, or a write whose reply the core reads (a Conflict).
    A GridFS upload rolled back partway has its chunks so far removed first.
    """
    if not isinstance(exc, OperationFailure) or isinstance(command, _DECIDED_BY_THE_CORE):
        return None
    details = exc.details or {}
    if not _conflict(exc.code, details.get("errmsg") or str(exc)):
        return None
    if isinstance(command, cmd.PutFile):
        return [call_for(cmd.DeleteFile(command.bucket, command.file_id))]
    return []


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
        elif _conflict(error.get("code"), error.get("errmsg")):
            out.append(cmd.Conflict(str(error.get("errmsg"))))
        else:
            out.append(cmd.Refused(error.get("code"), str(error.get("errmsg"))))
    return out


def driver_reply(command: cmd.Command, call: Call, raw: Any) -> Any:
    """The core's reply from what the driver answered."""
    if isinstance(command, cmd.BulkWrite):
        return bulk_replies(command.writes, set(raw.upserted_ids or {}), {})
    return call.finish(raw)


def _transient(code: Any, message: Any, labels: Any = ()) -> bool:
    if (
        code in TRANSIENT_CODES
        or code in CONNECTION_EXCEPTIONS
        or any(label in TRANSIENT_LABELS for label in labels or ())
    ):
        return True
    text = str(message or "").lower()
    return code == INTERNAL_ERROR and any(marker in text for marker in BACKEND_GONE)


def is_transient(exc: BaseException) -> bool:
    """Whether a server's error says it is unavailable for now (shutting down, its backend gone), not a refusal."""
    if not isinstance(exc, OperationFailure):
        return False
    details = exc.details or {}
    if _transient(exc.code, details.get("errmsg") or str(exc), details.get("errorLabels")) or any(
        exc.has_error_label(label) for label in TRANSIENT_LABELS
    ):
        return True
    if isinstance(exc, BulkWriteError):  # a bulk's per-write errors: one cut short stops the whole bulk
        return any(_transient(e.get("code"), e.get("errmsg")) for e in details.get("writeErrors", []))
    return False


def error_reply(command: cmd.Command, call: Call, exc: Exception) -> Any:
    """The reply an error stands for (a duplicate key, a bulk's per-write errors), or None for a failure."""
    if is_transient(exc):
        return None
    if isinstance(command, (cmd.Insert, cmd.Upsert, cmd.Update)) and isinstance(exc, OperationFailure):
        details = exc.details or {}
        first = (details.get("writeErrors") or [{}])[0]  # an upsert with its probe is a bulk of two
        if _conflict(first.get("code", exc.code), first.get("errmsg") or details.get("errmsg") or str(exc)):
            return cmd.Conflict(str(first.get("errmsg") or details.get("errmsg") or exc)[:300])
    if isinstance(command, cmd.BulkWrite) and isinstance(exc, BulkWriteError):
        upserted = {u["index"] for u in exc.details.get("upserted", [])}
        errors = {e["index"]: e for e in exc.details.get("writeErrors", [])}
        return bulk_replies(command.writes, upserted, errors)
    # Optional steps (sharding, a validator, indexes, creating a collection) a server may refuse,
    # for one because the user's role lacks the right: an answer the core decides about.
    if isinstance(command, _OPTIONAL) and isinstance(exc, OperationFailure) and exc.code != AUTHENTICATION_FAILED:
        return cmd.Refused(exc.code, " ".join(str((exc.details or {}).get("errmsg") or exc).split())[:300])
    if isinstance(command, cmd.ShardKeyOf) and isinstance(exc, OperationFailure):
        return cmd.NoMatch()  # config unreadable (no right to read it): the server does not say
    if isinstance(command, cmd.Upsert) and isinstance(exc, BulkWriteError):  # the upsert and its probe
        first = next((e for e in exc.details.get("writeErrors", []) if e.get("index") == 0), None)
        if first is not None and first.get("code") == 11000:  # the probe met nothing else to fail on
            return cmd.DuplicateKey(probed=exc.details.get("nMatched", 0) > 0)
        return None
    if call.duplicates and isinstance(exc, DuplicateKeyError):
        return cmd.DuplicateKey()
    if isinstance(command, cmd.GetFile) and isinstance(exc, (NoFile, CorruptGridFile)):
        return cmd.NoMatch()  # deleted, or being deleted: its chunks go after its files document
    if isinstance(command, cmd.DeleteFile) and isinstance(exc, NoFile):
        return False
    return None


AUTHENTICATION_FAILED = 18
UNAUTHORIZED = 13


def _access_denied(exc: OperationFailure, hosts: str, command: cmd.Command | None) -> str:
    if exc.code == AUTHENTICATION_FAILED:
        return (
            f"MongoDB at {hosts} refused the credentials (authentication failed): check the URI's user name, "
            "password and authSource (the password is not shown here)"
        )
    what = type(command).__name__ if command is not None else "the command"
    message = " ".join(str((exc.details or {}).get("errmsg") or exc).split())[:300]
    return (
        f"MongoDB at {hosts}: the user's roles do not allow {what} (code 13: {message}); the docs' "
        "'Credentials and rights' page lists the rights each call needs"
    )


def _tls_cause(exc: BaseException) -> str:
    """The TLS reason for a server that could not be selected, said first: it is buried in the topology."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "TLS: the server's certificate is not trusted (pass tlsCAFile=<the CA that signed it>); "
    if "CERTIFICATE_REQUIRED" in text:
        return "TLS: the server asks for a client certificate (tlsCertificateKeyFile=...); "
    return ""


def _reason(exc: BaseException) -> str:
    text = str(exc).split(", Timeout:", 1)[0].split(", Topology Description:", 1)[0]
    return text[:300]


def translate(
    exc: BaseException, hosts: str, timeout: float | None, command: cmd.Command | None = None
) -> MongoResultsError:
    """The library error for a driver error (the caller raises it ``from exc``); ``command``: the one that failed."""
    if isinstance(exc, (ServerSelectionTimeoutError, WaitQueueTimeoutError)):  # nothing was sent
        within = f" within {timeout:g} s" if timeout is not None else ""
        return StoreUnavailableError(f"Cannot reach MongoDB at {hosts}{within}: {_tls_cause(exc)}{_reason(exc)}")
    if isinstance(exc, ConnectionFailure):  # a command may have been sent and even applied
        what = "got no answer in time" if isinstance(exc, NetworkTimeout) else "lost the connection"
        if command is not None and not isinstance(command, _WRITES):  # a read: nothing to be unsure of
            return StoreUnavailableError(f"MongoDB at {hosts} {what} during a read ({_reason(exc)})")
        return OutcomeUnknownError(
            f"MongoDB at {hosts} {what} during a command ({_reason(exc)}): a write "
            "in it may have been applied; set again with SKIP_IF_EXISTS or RAISE_IF_DIFFERENT to be sure"
        )
    if isinstance(exc, ConfigurationError) and not isinstance(exc, InvalidURI) and "DNS" in str(exc):
        # mongodb+srv:// names are looked up in DNS when the client opens.
        return StoreUnavailableError(f"Cannot reach MongoDB at {hosts}: {_reason(exc)}")
    if isinstance(exc, (ConfigurationError, InvalidURI, ValueError)):  # PyMongo refuses a bad port with ValueError
        return InvalidUriError(f"Cannot use the MongoDB URI for {hosts}: {_reason(exc)}")
    if isinstance(exc, InvalidName):
        return InvalidNamespaceError(f"MongoDB at {hosts} refused a name: {_reason(exc)}")
    if isinstance(exc, DocumentTooLarge):
        return RejectedByServerError(f"MongoDB at {hosts} refused an oversized document: {exc}")
    if isinstance(exc, OperationFailure) and exc.code in (AUTHENTICATION_FAILED, UNAUTHORIZED):
        return AccessDeniedError(_access_denied(exc, hosts, command))
    if isinstance(exc, OperationFailure):
        details = exc.details or {}
        first = (details.get("writeErrors") or [{}])[0]  # a bulk's (an upsert with its probe): the first error
        message = " ".join(str(details.get("errmsg") or first.get("errmsg") or exc).split())[:300]
        if is_transient(exc) and isinstance(command, _WRITES):
            return OutcomeUnknownError(
                f"MongoDB at {hosts} is unavailable for now (code {exc.code}: {message}): a write sent to it "
                "may have been applied; set again with SKIP_IF_EXISTS or RAISE_IF_DIFFERENT to be sure"
            )
        if is_transient(exc):
            return StoreUnavailableError(f"MongoDB at {hosts} is unavailable for now (code {exc.code}: {message})")
        code = first.get("code", exc.code)
        return RejectedByServerError(f"MongoDB at {hosts} refused the operation (code {code}): {message}")
    return MongoResultsError(f"MongoDB at {hosts}: {type(exc).__name__}: {_reason(exc)}")
