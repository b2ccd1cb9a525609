"""Every MongoDB operation as a generator of driver commands, with no I/O.

An operation yields :class:`Command` values and receives each one's reply
(a ``DuplicateKeyError`` is thrown back into it instead). The sync and async
shells only execute commands, so both run the very same decisions:

    flow = Flow(ops.get("a/b", None, None))
    command = flow.start()
    while command is not None:
        command = flow.resume(*execute(command))
    return flow.result
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from ._core import (
    EMBEDDED,
    Engine,
    SetPlan,
    choose_document,
    load_model,
    namespaces_in,
    plan_encoded,
    plan_set,
    prefix_filter,
    validate_namespace,
)
from .behaviors import SetBehavior
from .encoding import encode_stored
from .ids import ResultId, canonical_id
from .validation import namespace_validator

__all__ = ["INDEXES", "Command", "Flow", "Operations"]

R = TypeVar("R")
log = logging.getLogger("mongo_results")
_said: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)


# Beside MongoDB's own unique ``_id`` index (one result per id and namespace, serving
# get, exists and list_ids): any-segment filters in Compass, such as {"path": "seed=3"}.
INDEXES = [IndexModel([("path", ASCENDING)], name="path_segments")]


@dataclass(frozen=True, slots=True)
class Command:
    """One driver call: ``method`` on a collection (or on the database when None)."""

    collection: str | None
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def returns_cursor(self) -> bool:
        return self.method == "find"


Operation = Generator[Command, Any, R]


class Flow(Generic[R]):
    """Steps an operation: hands out its commands and feeds it their replies."""

    def __init__(self, operation: Operation[R]) -> None:
        self._operation = operation
        self.result: R

    def _step(self, send: Any, error: BaseException | None) -> Command | None:
        try:
            return self._operation.throw(error) if error is not None else self._operation.send(send)
        except StopIteration as stop:
            self.result = stop.value
            return None

    def start(self) -> Command | None:
        """The first command, or None when the operation needs none."""
        return self._step(None, None)

    def resume(self, reply: Any, error: BaseException | None = None) -> Command | None:
        """Feed a reply (or a DuplicateKeyError); the next command, or None when done."""
        return self._step(reply, error)


class Operations:
    """The operations of one store over one connection, and what that connection has learnt."""

    def __init__(self, collection_prefix: str, *, engine: Engine | None = None, validation: str = "warn") -> None:
        self.prefix = collection_prefix
        self.validation = validation  # validationAction: "warn", "error", or "off" for no validator
        self.engine = engine  # asked of the server once per connection
        self.indexed: set[str] = set()  # namespaces whose indexes this connection has created

    def learn_engine(self) -> Operation[Engine]:
        """Ask the server what it is (once per connection)."""
        self.engine = Engine.from_build_info((yield Command(None, "command", ("buildInfo",))))
        return self.engine

    def _namespaces(self, namespace: str | None) -> Operation[list[str]]:
        if namespace is not None:
            return [validate_namespace(namespace)]
        names = yield Command(None, "list_collection_names")
        return namespaces_in(names, self.prefix)

    def _engine(self) -> Operation[Engine]:
        return self.engine if self.engine is not None else (yield from self.learn_engine())

    def _prepare(self, namespace: str, engine: Engine) -> Operation[None]:
        """Indexes (and the validator, where the engine has them) once per namespace and connection."""
        if namespace in self.indexed:
            return
        collection = self.prefix + namespace
        yield Command(collection, "create_indexes", (INDEXES,))
        if self.validation != "off":
            if engine.validators:
                command = {"collMod": collection, **namespace_validator(namespace), "validationAction": self.validation}
                yield Command(None, "command", (command,))
            elif engine.name != EMBEDDED.name:  # the embedded store has none by design
                _say_once(
                    f"{engine.name} {engine.version} does not enforce collection validators; {collection} has none"
                )
        self.indexed.add(namespace)

    def _write(self, plan: SetPlan, engine: Engine) -> Operation[bool]:
        yield from self._prepare(plan.namespace, engine)
        collection = self.prefix + plan.namespace
        for attempt in range(1, plan.attempts + 1):
            try:
                if plan.method == "insert_one":
                    yield Command(collection, "insert_one", (plan.document,))
                    return plan.outcome(duplicate=False, upserted=True)
                reply = yield Command(collection, plan.method, (plan.filter, plan.update), {"upsert": True})
                return plan.outcome(duplicate=False, upserted=reply.upserted_id is not None)
            except DuplicateKeyError:
                if attempt == plan.attempts:
                    return plan.outcome(duplicate=True, upserted=False)
        raise AssertionError("unreachable")  # pragma: no cover

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior,
        namespace: str | None,
        strict: bool,
        *,
        secrets: bool,
    ) -> Operation[bool]:
        """One atomic command per decision (SPEC §2.2); see SetPlan for reading the answer."""
        engine = yield from self._engine()
        plan = plan_set(result_id, data, behavior, namespace, strict, store_secrets=secrets, engine=engine)
        return (yield from self._write(plan, engine))

    def store(
        self, result_id: ResultId, model_type: str, data: Mapping[str, Any], behavior: SetBehavior, namespace: str
    ) -> Operation[bool]:
        """Like ``set`` for data already in stored form (an import): no model class needed."""
        engine = yield from self._engine()
        encoded = encode_stored(model_type, data, decimal128=engine.decimal128)
        return (yield from self._write(plan_encoded(result_id, encoded, behavior, namespace, engine=engine), engine))

    def documents(self, prefix: ResultId | None, namespace: str | None, *, with_data: bool) -> Operation[list[Any]]:
        """The stored documents under a prefix, sorted by id (envelopes only unless ``with_data``)."""
        query = prefix_filter(prefix)
        found: list[Any] = []
        for ns in (yield from self._namespaces(namespace)):
            found += yield Command(self.prefix + ns, "find", (query, None if with_data else {"data": 0}))
        return sorted(found, key=lambda d: (d["_id"], str(d.get("namespace"))))

    def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None, namespace: str | None
    ) -> Operation[BaseModel]:
        """The result, from every namespace unless one is named."""
        rid = canonical_id(result_id)
        found = []
        for ns in (yield from self._namespaces(namespace)):
            doc = yield Command(self.prefix + ns, "find_one", ({"_id": rid},))
            if doc is not None:
                found.append((ns, doc))
        return load_model(choose_document(rid, found, model_class), rid, model_class, namespace)

    def exists(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        """Whether any namespace (or the named one) holds the id."""
        rid = canonical_id(result_id)
        for ns in (yield from self._namespaces(namespace)):
            if (yield Command(self.prefix + ns, "find_one", ({"_id": rid}, {"_id": 1}))) is not None:
                return True
        return False

    def list_ids(self, prefix: ResultId | None, namespace: str | None) -> Operation[list[str]]:
        """Sorted ids under a prefix: one index-backed query per namespace."""
        query = prefix_filter(prefix)
        ids: set[str] = set()
        for ns in (yield from self._namespaces(namespace)):
            docs = yield Command(self.prefix + ns, "find", (query, {"_id": 1}))
            ids.update(doc["_id"] for doc in docs)
        return sorted(ids)

    def delete(self, result_id: ResultId, namespace: str | None) -> Operation[bool]:
        """Delete from every namespace (or the named one); whether anything was deleted."""
        rid = canonical_id(result_id)
        deleted = False
        for ns in (yield from self._namespaces(namespace)):
            reply = yield Command(self.prefix + ns, "delete_one", ({"_id": rid},))
            deleted = deleted or reply.deleted_count > 0
        return deleted

    def clear(self) -> Operation[None]:
        """Drop this store's collections, and only those."""
        for ns in (yield from self._namespaces(None)):
            yield Command(None, "drop_collection", (self.prefix + ns,))
        self.indexed.clear()
