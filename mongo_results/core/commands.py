"""The core's own commands and replies: what an executor runs, and what it answers.

Commands name a collection (``<collection prefix><namespace>``) and carry
MongoDB filters and documents; they say nothing about the driver. Every
executor (PyMongo, its async client, Motor, the embedded store, the file
store) runs these same commands, so every store takes the same decisions.

Each command declares its reply (``Find(Asks[list[dict[str, Any]]])``) and the core sends
it with ``reply = yield from ask(command)``, so mypy checks what the core does with each
reply; ``tests/test_layout.py`` holds the core to that.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

__all__ = [
    "Asks",
    "BY_ID",
    "Batch",
    "BuildInfo",
    "BulkWrite",
    "CollectionOptions",
    "Command",
    "CountDocuments",
    "CreateCollection",
    "Delete",
    "DeleteFile",
    "Drop",
    "DuplicateKey",
    "EVERY",
    "EnableSharding",
    "EnsureIndexes",
    "Failed",
    "Find",
    "FindAndDelete",
    "FindArrow",
    "FindOne",
    "GetFile",
    "Index",
    "Insert",
    "Leftovers",
    "ListCollections",
    "ListIndexes",
    "NoMatch",
    "Note",
    "Operation",
    "PartialPage",
    "PutFile",
    "Refused",
    "ServerTime",
    "SetValidator",
    "ShardCollection",
    "ShardKeyOf",
    "Together",
    "Undecodable",
    "Update",
    "Upsert",
    "Write",
    "WriteReply",
    "Written",
    "ask",
]

Filter = Mapping[str, Any]
Reply = TypeVar("Reply", covariant=True)


class Asks(Generic[Reply]):
    """A command whose reply is a ``Reply``: ``yield from ask(command)`` is typed by it."""

    __slots__ = ()


# -- Replies


@dataclass(frozen=True, slots=True)
class Written:
    """A write was applied; ``upserted`` when it created the document."""

    upserted: bool


@dataclass(frozen=True, slots=True)
class NoMatch:
    """An update found no document its filter matches."""


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """The write met the unique ``_id`` index; ``namespace``, when known, is where the id is held.

    ``probed``: the upsert's ``probe`` matched the stored document, in the same command.
    """

    namespace: str | None = None
    probed: bool = False


@dataclass(frozen=True, slots=True)
class Conflict:
    """The write met another transaction (a deadlock, a write conflict) and was rolled back: send it again.

    Nothing of it was applied, unlike a lost connection's write.
    """

    message: str = ""


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A FindArrow page held a value its column's type cannot hold."""

    message: str = ""


@dataclass(frozen=True, slots=True)
class Refused:
    """The server refused one write of a bulk for another reason."""

    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Failed:
    """One write of a bulk failed with the error ``set`` raises for it (the file store's clash or disk error)."""

    error: Exception


WriteReply = Written | DuplicateKey | Conflict | Refused | Failed


# -- Commands

# A collection name that means every namespace at once, for stores that keep one result per
# id whatever its namespace (the file store): one query instead of one per namespace.
EVERY = "*"


@dataclass(frozen=True, slots=True)
class _OnCollection:
    """A command about one collection as a whole."""

    collection: str


@dataclass(frozen=True, slots=True)
class Index:
    """An index on one field (``direction`` 1 ascending, -1 descending)."""

    name: str
    field: str
    direction: int = 1


@dataclass(frozen=True, slots=True)
class Insert(Asks[Written | DuplicateKey | Conflict]):
    """Insert ``document``; answered by Written or DuplicateKey."""

    collection: str
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Upsert(Asks[Written | DuplicateKey | Conflict]):
    """Update the document ``filter`` matches, or insert one: update operators, or a whole document if ``replace``.

    Answered by Written (``upserted`` when it inserted) or DuplicateKey (the insert met
    an id that ``filter`` did not match). ``probe``: a filter matched in the same command,
    whose match makes a DuplicateKey ``probed`` (an answer, not a lost insert race).
    """

    collection: str
    filter: dict[str, Any]
    update: Any  # update operators, an update pipeline (a list), or the whole document if ``replace``
    replace: bool = False
    probe: dict[str, Any] | None = None


Write = Insert | Upsert


@dataclass(frozen=True, slots=True)
class Update(Asks[Written | NoMatch | Conflict]):
    """Update (or, with ``replace``, replace) the one document ``filter`` matches, never inserting.

    Answered by Written or NoMatch.
    """

    collection: str
    filter: dict[str, Any]
    update: Any  # update operators, an update pipeline (a list), or the whole document if ``replace``
    replace: bool = False


@dataclass(frozen=True, slots=True)
class BulkWrite(Asks[list[WriteReply]]):
    """Unordered writes to one collection; answered by one reply per write, in order."""

    collection: str
    writes: tuple[Write, ...]


@dataclass(frozen=True, slots=True)
class Find(Asks[list[dict[str, Any]]]):
    """The documents ``filter`` matches, in ``sort`` order (``(field, 1 | -1)`` pairs), at most ``limit`` (0: all).

    ``page``: a keyset page in id order, which a store may answer with a PartialPage.
    """

    collection: str
    filter: Filter
    projection: Mapping[str, int] | None = None
    sort: tuple[tuple[str, int], ...] = ()
    limit: int = 0
    page: bool = False


class PartialPage(list[dict[str, Any]]):
    """A page cut short of its limit to bound memory, as a server cuts a cursor's batch: more may follow."""


BY_ID: tuple[tuple[str, int], ...] = (("_id", 1),)


@dataclass(frozen=True, slots=True)
class FindArrow(Asks[Any]):
    """A keyset page in id order of what ``filter`` matches, at most ``limit``, as a ``pyarrow.Table`` of ``schema``.

    Only for stores whose engine has ``arrow_decoder``; answered by the table, or by
    Undecodable when a value is not of its column's type.
    """

    collection: str
    filter: Filter
    schema: Any
    limit: int


@dataclass(frozen=True, slots=True)
class FindOne(Asks[dict[str, Any] | None]):
    """One document ``filter`` matches, or None."""

    collection: str
    filter: Filter
    projection: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class CountDocuments(Asks[int]):
    """How many documents ``filter`` matches."""

    collection: str
    filter: Filter


@dataclass(frozen=True, slots=True)
class Delete(Asks[int]):
    """Delete the document (or, with ``many``, every document) ``filter`` matches; answered by the count."""

    collection: str
    filter: Filter
    many: bool = False


@dataclass(frozen=True, slots=True)
class FindAndDelete(Asks[dict[str, Any] | None]):
    """Delete the one document ``filter`` matches; answered by it (its ``projection``) or None."""

    collection: str
    filter: Filter
    projection: Mapping[str, int] | None = None


class Drop(_OnCollection, Asks[None]):
    """Drop a collection."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ListCollections(Asks[list[str]]):
    """The names of the database's collections."""


@dataclass(frozen=True, slots=True)
class BuildInfo(Asks[Mapping[str, Any]]):
    """The server's ``buildInfo`` document (an empty one where there is no server)."""


@dataclass(frozen=True, slots=True)
class ServerTime(Asks[datetime]):
    """The store's clock now (naive or aware UTC).

    The server's where there is one, so that every worker decides a claim's expiry by the same clock.
    """


@dataclass(frozen=True, slots=True)
class EnsureIndexes(Asks[Refused | None]):
    """Create the indexes that do not exist yet (and the collection with them); answered by None, or Refused."""

    collection: str
    indexes: tuple[Index, ...]


class ListIndexes(_OnCollection, Asks[list[str]]):
    """The names of a collection's indexes."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SetValidator(Asks[Refused | None]):
    """Install a collection validator: ``command`` is the whole ``collMod``; answered by None, or Refused."""

    collection: str
    command: Mapping[str, Any]


class CollectionOptions(_OnCollection, Asks[dict[str, Any] | None]):
    """A collection's ``listCollections`` entry (``options``, ``info``), or None when it does not exist.

    One command in MongoDB's ``readWrite`` role that says whether the collection exists, which
    validator it has, and, on DocumentDB, the key it is sharded on (``info.shardKey``).
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class CreateCollection(Asks[Written | Refused]):
    """Create a collection with ``options`` (its validator); answered by Written, or Refused (48: it exists)."""

    collection: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PutFile(Asks[Written]):
    """Write ``content`` as the GridFS file ``file_id`` of ``bucket`` (chunks first, its files document last)."""

    bucket: str
    file_id: Any
    filename: str
    content: bytes
    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _OnFile:
    """A command about one GridFS file."""

    bucket: str
    file_id: Any


class GetFile(_OnFile, Asks[bytes | NoMatch]):
    """The content of a GridFS file; NoMatch when it is missing or incomplete (being deleted)."""

    __slots__ = ()


class DeleteFile(_OnFile, Asks[bool]):
    """Delete a GridFS file and its chunks; answered by whether it was there."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Leftovers(Asks[list[str]]):
    """The temporary files of writers killed mid-write (removed first with ``remove``).

    For stores that write through them (``EngineProfile.temp_files``); answered by their names.
    """

    remove: bool = False


@dataclass(frozen=True, slots=True)
class EnableSharding(Asks[Written | Refused]):
    """Let the store's database hold sharded collections; answered by Written, or Refused where there is no sharding."""


@dataclass(frozen=True, slots=True)
class ShardCollection(Asks[Written | Refused]):
    """Shard a collection on ``key`` (``(field, 1 | "hashed")`` pairs); answered by Written or Refused.

    ``unique``: the shard key's index enforces uniqueness (ranged keys only).
    """

    collection: str
    key: tuple[tuple[str, Any], ...]
    unique: bool = False


class ShardKeyOf(_OnCollection, Asks[dict[str, Any] | NoMatch | None]):
    """The key a collection is sharded on, as a dict.

    None when it is not sharded, NoMatch when the server does not say.
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Together(Asks[list[Any]]):
    """Reads sent at once, each on a connection of its own; their replies, in order.

    A call that must list the namespaces before it reads sends the listing and the reads of the
    collections it last saw together: one round trip instead of two. Sent only to a store whose
    profile says ``together``; any error is raised once every command has answered.
    """

    commands: tuple[Command, ...]


Command = (
    Insert
    | Upsert
    | Update
    | BulkWrite
    | Find
    | FindArrow
    | FindOne
    | CountDocuments
    | Delete
    | FindAndDelete
    | Drop
    | ListCollections
    | BuildInfo
    | ServerTime
    | EnsureIndexes
    | ListIndexes
    | SetValidator
    | CollectionOptions
    | CreateCollection
    | PutFile
    | GetFile
    | DeleteFile
    | Leftovers
    | EnableSharding
    | ShardCollection
    | ShardKeyOf
    | Together
)


@dataclass(frozen=True, slots=True)
class Batch:
    """Not a command: items an operation hands to its caller as it streams."""

    items: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Note:
    """Not a command: what the user should be told, as a warning of ``category``; the caller tells it."""

    message: str
    category: type[Warning]


@dataclass(frozen=True, slots=True)
class Wait:
    """Not a command: the run loop sleeps ``seconds`` (``asyncio.sleep`` in async code) before going on."""

    seconds: float


R = TypeVar("R")
# An operation yields commands (and batches when it streams, notes to tell, waits), is sent each reply, returns R.
Operation = Generator["Command | Batch | Note | Wait", Any, R]


def ask(command: Asks[R]) -> Generator[Command, Any, R]:
    """Send ``command`` to the executor; its reply, of the type the command declares."""
    reply: R = yield cast(Command, command)
    return reply
