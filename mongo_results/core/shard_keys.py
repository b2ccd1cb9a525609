"""Which shard key each of a store's collections takes, and whether a key found in place keeps ids unique.

A sharded cluster enforces a unique index across shards only when the index holds the shard
key. ``_id`` is a result's id, so the results and the claims are sharded on ``_id`` alone:
with any other key, two shards could each accept the same id, and ``RAISE_IF_EXISTS`` would
succeed once per shard. A GridFS chunk is unique by ``(files_id, n)``, so the chunks are
sharded on their file id, which keeps every chunk of a file on one shard.

Ranged keys keep an id prefix in one range of chunks, as MongoDB documents; a server that
shards only on hashed keys (DocumentDB) gets the hashed form of the same field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidShardKeyError

__all__ = ["RESULTS", "CHUNKS", "KeyRule", "describe", "preferred_keys", "refusal"]

Key = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class KeyRule:
    """The shard keys one kind of collection may take: ``ranged`` first, ``hashed`` where only hashed is."""

    what: str
    ranged: Key
    hashed: Key
    unique: bool  # the ranged key's index must be unique (it is the collection's uniqueness)
    accepted: tuple[Key, ...]

    def keeps_unique(self, key: Mapping[str, Any]) -> bool:
        """Whether a collection sharded on ``key`` still holds one document per id."""
        return tuple(key.items()) in self.accepted


RESULTS = KeyRule(
    "results",
    ranged=(("_id", 1),),
    hashed=(("_id", "hashed"),),
    unique=False,  # the _id index is unique already
    accepted=((("_id", 1),), (("_id", "hashed"),)),
)
CHUNKS = KeyRule(
    "GridFS chunks",
    ranged=(("files_id", 1), ("n", 1)),
    hashed=(("files_id", "hashed"),),
    # PyMongo creates the unique {files_id, n} index only where no index has that key: sharding
    # an empty collection creates one, so it has to be the unique one.
    unique=True,
    accepted=((("files_id", 1), ("n", 1)), (("files_id", 1),), (("files_id", "hashed"),)),
)


def describe(key: Mapping[str, Any] | Key) -> str:
    """A shard key as MongoDB's shell writes it: ``{_id: "hashed"}``, ``{files_id: 1, n: 1}``."""
    pairs = key.items() if isinstance(key, Mapping) else key
    return "{" + ", ".join(f'{k}: "{v}"' if isinstance(v, str) else f"{k}: {v}" for k, v in pairs) + "}"


def refusal(found: Mapping[str, Any], collection: str) -> InvalidShardKeyError:
    """The error for writing into a results or claims collection sharded on another key than ``_id``."""
    return InvalidShardKeyError(
        f"{collection!r} is sharded on {describe(found)}, not on _id: two shards could each accept a result "
        f"under one id, so RAISE_IF_EXISTS could succeed twice. Nothing was written. Reshard it on _id "
        f'(reshardCollection with key {{_id: 1}}, or {{_id: "hashed"}} where only hashed keys are supported)'
    )


def preferred_keys(key: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """Which forms to try for a requested results key: ``(ranged, hashed)``; refuses a key that is not ``_id``.

    None tries ranged, then hashed where the server supports only hashed keys.
    """
    if key is None:
        return True, True
    if not isinstance(key, Mapping):
        raise InvalidShardKeyError(f'A shard key is a mapping such as {{"_id": 1}}, not {key!r}')
    pairs = tuple(key.items())
    if pairs == RESULTS.ranged:
        return True, False
    if pairs == RESULTS.hashed:
        return False, True
    raise InvalidShardKeyError(
        f"Cannot shard the results on {describe(pairs)}: a sharded cluster keeps _id unique across shards "
        "only when _id is the shard key, so with any other key two shards could each hold a result under "
        'one id. Use {"_id": 1} (ranged: an id prefix stays in one range of chunks) or {"_id": "hashed"}'
    )
