"""What the store behind a manager can hold, and refusing what it cannot before sending."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LossyValueError
from .encoding import EncodedModel

__all__ = ["EMBEDDED", "FILES", "EngineProfile", "check_engine"]


@dataclass(frozen=True, slots=True)
class EngineProfile:
    """What the server behind a store can hold, read once from ``buildInfo``.

    The FerretDB profiles are what the suite measured on FerretDB 1.24 (SQLite)
    and 2.5 (PostgreSQL + DocumentDB); see the README's engine table.
    """

    name: str = "mongodb"
    version: str = ""
    decimal128: bool = True
    # FerretDB 1.x refuses ±inf and drops the connection on NaN; it refuses arrays in arrays.
    non_finite: bool = True
    nested_arrays: bool = True
    signed_zero: bool = True  # FerretDB 1.x stores -0.0 as 0.0
    # FerretDB 1.24's $set skips an embedded document whose values equal the old one's in
    # order, whatever its keys ({"a": 1} -> {"b": 1} is "unchanged"); replace_one is exact.
    faithful_set: bool = True
    # Update pipelines ($literal values written as encoded): DocumentDB's $set keeps a stored value
    # that compares equal to the new one (1.0 for 1.00, 0.0 for -0.0, 3 for 3.0); a pipeline does not.
    pipeline_updates: bool = True
    validators: bool = True  # collection validators (collMod); FerretDB 1.x does not enforce them
    # FerretDB 1.24 answers nothing for $elemMatch of fields ({"$elemMatch": {"a": 1}}), without an error.
    elem_match_fields: bool = True
    elem_match_not: bool = True  # FerretDB 1.24 refuses $not inside $elemMatch ("not implemented yet")
    # $jsonSchema keywords the engine evaluates (None: all of MongoDB's). DocumentDB accepts a
    # validator with others, then refuses every write with "Unknown $jsonSchema keyword".
    schema_keywords: frozenset[str] | None = None
    max_validator_bytes: int | None = None  # DocumentDB refuses a validator over 10 KB
    # FerretDB 1.24 answers a multi-statement update that meets any error without n, nModified
    # or upserted, so per-item outcomes of bulk updates cannot be known there (inserts are fine).
    bulk_updates: bool = True
    # FerretDB 1.24 refuses findAndModify's projection ("fields"): the whole document comes back.
    find_and_modify_fields: bool = True
    max_write_batch: int = 100_000  # FerretDB 2.5 advertises 100,000 and refuses over 25,000
    # The file store keeps one result per id, whatever its namespace: every namespace is
    # read with one query (collection EVERY) and a write meets an id held in another one.
    one_keyspace: bool = False
    # A server refuses documents over 16 MiB: larger results keep their largest fields in GridFS.
    max_document: int | None = 16 * 1024 * 1024
    # Writes go through temporary files, which a writer killed mid-write leaves (doctor names them).
    temp_files: bool = False
    # Pages can be decoded into Arrow by the driver's side (PyMongoArrow): servers, not the embedded or file store.
    arrow_decoder: bool = True
    # A server that may be a sharded cluster: its collections' shard keys are read before writing,
    # since a key other than _id lets two shards each hold one id. FerretDB 1.x has no sharding.
    sharding: bool = True
    # DocumentDB names a collection's shard key in listCollections (info.shardKey); MongoDB only
    # in config.collections, which a user with the readWrite role cannot read.
    shard_key_listed: bool = False
    # The executor sends Together's commands at once (a server: a connection each); the embedded
    # and file stores run in this process and have no round trip to save.
    together: bool = True

    @property
    def label(self) -> str:
        """The engine for people: ``MongoDB 8.0.4``, ``FerretDB v2.5.0``."""
        names = {"ferretdb": "FerretDB", "mongomock": "the embedded mongomock store", "files": "the file store"}
        return names.get(self.name, "MongoDB") + (f" {self.version}" if self.version else "")

    @classmethod
    def from_build_info(cls, info: Mapping[str, Any]) -> EngineProfile:
        """FerretDB 1.x adds ``ferretdbVersion`` to buildInfo, FerretDB 2.x ``ferretdb.version``."""
        v1 = info.get("ferretdbVersion")
        if v1:
            return cls(
                "ferretdb",
                str(v1),
                decimal128=False,
                non_finite=False,
                nested_arrays=False,
                signed_zero=False,
                faithful_set=False,
                pipeline_updates=False,
                validators=False,
                bulk_updates=False,
                elem_match_fields=False,
                sharding=False,
                find_and_modify_fields=False,
                elem_match_not=False,
            )
        v2 = info.get("ferretdb")
        if isinstance(v2, Mapping):
            return cls(
                "ferretdb",
                str(v2.get("version", "")),
                schema_keywords=frozenset({"bsonType", "properties", "items"}),
                max_validator_bytes=10 * 1024,
                max_write_batch=25_000,
                shard_key_listed=True,
            )
        # The executor adds the driver's view of the deployment: only behind mongos can a
        # collection be sharded (unknown: assume it can).
        return cls("mongodb", str(info.get("version", "")), sharding=info.get("topology") in (None, "Sharded"))


EMBEDDED = EngineProfile(
    "mongomock",
    validators=False,
    max_document=None,
    arrow_decoder=False,
    sharding=False,
    pipeline_updates=False,
    together=False,
)
FILES = EngineProfile(
    "files",
    validators=False,
    one_keyspace=True,
    max_document=None,
    temp_files=True,
    arrow_decoder=False,
    sharding=False,
    pipeline_updates=False,
    together=False,
)


def _engine_refusal(value: Any, path: str, engine: EngineProfile, in_array: bool = False) -> str | None:
    """Why the engine would refuse (or drop the connection over) this encoded value, if it would."""
    if isinstance(value, float):
        if not (engine.non_finite or math.isfinite(value)):
            return f"{path}: {value} (±inf and NaN)"
        if not engine.signed_zero and value == 0 and math.copysign(1.0, value) < 0:
            return f"{path}: -0.0 (it would come back as 0.0)"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _engine_refusal(v, f"{path}.{k}" if path else k, engine)
            if found:
                return found
    elif isinstance(value, list):
        if in_array and not engine.nested_arrays:
            return f"{path}: an array inside an array"
        for i, v in enumerate(value):
            found = _engine_refusal(v, f"{path}[{i}]", engine, True)
            if found:
                return found
    return None


def check_engine(result_id: str, encoded: EncodedModel, engine: EngineProfile) -> None:
    """Refuse, before sending, a value this engine cannot store (FerretDB 1.x)."""
    if engine.non_finite and engine.nested_arrays and engine.signed_zero:
        return
    found = _engine_refusal(encoded.data, "", engine)
    if found:
        raise LossyValueError(f"{engine.label} cannot store field {found} of {result_id!r}; MongoDB can")
