"""``shard``: the store's collections sharded on keys that keep every id unique across shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .commands import (
    EnableSharding,
    Refused,
    ShardCollection,
    ShardKeyOf,
    ask,
)
from .large import bucket
from .names import CLAIMS, validate_namespace
from .operations import Operation, Operations
from .shard_keys import CHUNKS, RESULTS, KeyRule, describe, preferred_keys

__all__ = ["ShardReport", "shard"]


# Why a store cannot be sharded, by engine: the truthful answer where there is nothing to shard.
_UNSHARDABLE = {
    "files": "the file store is one directory, on one machine or one shared file system",
    "mongomock": "the embedded store lives in this process's memory",
}
COMMAND_NOT_FOUND = 59
# The server shards on hashed keys only (DocumentDB): the same field, hashed, is tried next.
_HASHED_ONLY = "hashed"


@dataclass
class ShardReport:
    """What ``shard`` did: one line per collection, the key each is sharded on now, and problems left.

    ``str(report)`` is the report as ``mongo-results shard`` prints it.

    Attributes:
        lines: One line per collection (``sharded on``, ``already sharded on``, ``problem:``, ``note:``).
        keys: The shard key of each collection sharded now, by collection name.
        problems: How many collections are left unsharded or sharded on a key that breaks uniqueness.
    """

    lines: list[str] = field(default_factory=list)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: int = 0

    def __str__(self) -> str:
        found = "done" if not self.problems else f"{self.problems} problem(s) left"
        return "\n".join([*self.lines, found])


def shard(ops: Operations, namespace: str | None, key: Any = None) -> Operation[ShardReport]:
    """Shard the results collections on ``_id``, the GridFS chunks on their file id and the claims on their id.

    Every namespace collection of the store, and ``namespace`` (created when it does not exist
    yet). A collection already sharded on a right key is left as it is; one sharded on another
    key is reported, never changed. ``key`` None tries ranged keys first and hashed ones where
    the server supports only those.
    """
    ranged, hashed = preferred_keys(key)
    if namespace is not None:
        validate_namespace(namespace)
    engine = yield from ops.learn_engine()
    report = ShardReport([f"{ops.where}: {engine.label}"])
    if not engine.sharding:
        why = _UNSHARDABLE.get(engine.name, f"{engine.label} has no sharding")
        report.lines.append(f"  nothing to shard: {why}")
        return report
    answer = yield from ask(EnableSharding())
    if isinstance(answer, Refused):
        if answer.code == COMMAND_NOT_FOUND:
            report.lines.append("  nothing to shard: the server is not a sharded cluster (it has no enableSharding)")
        else:
            report.problems += 1
            report.lines.append(f"  problem: the server refused enableSharding (code {answer.code}): {answer.message}")
        return report
    names = yield from ops.namespaces()
    if namespace is not None and namespace not in names:
        names = sorted([*names, namespace])
    if not names:
        report.lines.append(
            "  note: no namespace collections yet; shard again after the first write, or name one with --namespace"
        )
    targets = [(ops.prefix + ns, RESULTS) for ns in names]
    targets += [(bucket(ops.prefix) + ".chunks", CHUNKS), (ops.prefix + CLAIMS, RESULTS)]
    for collection, rule in targets:
        yield from _shard_one(collection, rule, ranged, hashed, report)
    ops.keys_checked.clear()  # read again before the next write
    return report


def _shard_one(collection: str, rule: KeyRule, ranged: bool, hashed: bool, report: ShardReport) -> Operation[None]:
    found = yield from ask(ShardKeyOf(collection))
    if isinstance(found, dict):
        if rule.keeps_unique(found):
            report.keys[collection] = found
            report.lines.append(f"{collection}: already sharded on {describe(found)}")
        else:
            report.problems += 1
            report.lines.append(
                f"{collection}: problem: sharded on {describe(found)}, which lets two shards each hold "
                f"one id; left as it is (reshard it on {describe(rule.ranged)} or {describe(rule.hashed)})"
            )
        return
    tries = [(k, u) for k, u, wanted in ((rule.ranged, rule.unique, ranged), (rule.hashed, False, hashed)) if wanted]
    refused: Refused | None = None
    for index, (wanted_key, unique) in enumerate(tries):
        answer = yield from ask(ShardCollection(collection, wanted_key, unique))
        if not isinstance(answer, Refused):
            report.keys[collection] = dict(wanted_key)
            after = f" (the server refused {describe(rule.ranged)}: {refused.message})" if refused is not None else ""
            report.lines.append(f"{collection}: sharded on {describe(wanted_key)}{after}")
            return
        refused = answer
        if _HASHED_ONLY not in answer.message.lower() or index == len(tries) - 1:
            break
    assert refused is not None
    report.problems += 1
    report.lines.append(
        f"{collection}: problem: the server refused to shard it (code {refused.code}): {refused.message}"
    )
