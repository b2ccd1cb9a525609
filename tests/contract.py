"""The contract of a store in plain Python: what every store must show, whatever the engine.

A result is a model under ``(id, namespace)``. The rules:

- ``set`` resolves the namespace (the argument, else the class's registration, else
  ``default``) and decides by the table of set behaviours, atomically per id and namespace.
- On a store with one keyspace (the file store: one file per id) an id held by another
  namespace is taken: every behaviour raises ``FileExistsError`` but KEEP_EXISTING (False).
- ``get`` looks in the named namespace or in all; several holders need ``model_class`` to
  pick one of its type, else ``ValueError``; none is ``FileNotFoundError``.
- ``exists``, ``list_ids`` (sorted, whole segments) and ``iter_results`` (by id, then
  namespace) see every namespace; ``delete`` removes the id from the named namespace or all.
- ``upgrade`` rewrites results stored as the new type that no longer load and those stored
  as the old types named; everything else is left alone and counted.
- "The same content" is the same value exactly: ``-0.0`` is not ``0.0``, ``Decimal("1.0")``
  not ``Decimal("1.00")``, ``3`` not ``3.0``, and a datetime keeps its microseconds and offset.
- A namespace that names another store's own collection (``<prefix><namespace>`` ending in
  ``_claims``, ``_gridfs.files`` or ``_gridfs.chunks``), or starts with ``_claims``/``_gridfs``,
  is refused by every call that names it (``ValueError``).
- Claims: one per id (whatever the namespace), live until its lease runs out on the store's
  clock. ``claim`` takes an id no live claim holds and no stored result (in the namespace
  named, else in any) fills; ``release`` frees only its own claim; ``claims`` lists the live ones.
- Failures: a ``with claim:`` block that raises counts one more failed attempt of its id; a
  claim whose cell failed ``max_attempts`` times is not given; a block that ends without an
  error forgets the failures its id had when claimed; ``reset_failures`` forgets them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from mongo_results import SetBehavior, canonical_id

Outcome = Any  # a value, or the exception class the store must raise

_OWN_TAILS = ("_claims", "_gridfs.files", "_gridfs.chunks")
_RESERVED = ("_claims", "_gridfs")


def exact(value: Any) -> Any:
    """A value as the contract compares it: equal only when identical (sign, scale, type, offset)."""
    if isinstance(value, BaseModel):
        return (type(value).__name__, exact(value.model_dump()))
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [exact(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    if isinstance(value, datetime):
        return ("datetime", value.isoformat())
    if isinstance(value, bytes):
        return ("bytes", value)
    if isinstance(value, BaseException):
        return (type(value).__name__,)
    return value


@dataclass
class Clock:
    """The store's clock, as the test sets it."""

    now: datetime

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Contract:
    """The results one store holds, and what each call must answer."""

    one_keyspace: bool
    labels_only: bool = False  # a results_manager-style backend: one result per id, the namespace a label
    results: dict[tuple[str, str], BaseModel] = field(default_factory=dict)  # (id, namespace) -> model
    prefix: str = ""  # the collection prefix: where its namespaces' collections are
    signed_zero: bool = True  # False: -0.0 is refused (FerretDB 1.x gives it back as 0.0)
    clock: Clock | None = None
    held_claims: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # id -> (owner, expires)
    failed: dict[str, int] = field(default_factory=dict)  # id -> failed attempts

    def refuses(self, namespace: str | None) -> bool:
        """Whether a call naming ``namespace`` is refused (it names another store's own collection)."""
        if namespace is None:
            return False
        if namespace.split(".", 1)[0] in _RESERVED:
            return True
        return bool(self.prefix) and (self.prefix + namespace).endswith(_OWN_TAILS)

    def storable(self, model: BaseModel) -> bool:
        return self.signed_zero or not any(
            isinstance(v, float) and v == 0 and math.copysign(1, v) < 0 for v in model.__dict__.values()
        )

    def held(self, rid: str) -> dict[str, BaseModel]:
        return {ns: model for (i, ns), model in self.results.items() if i == rid}

    def set(self, rid: str, model: BaseModel, behavior: SetBehavior, namespace: str) -> Outcome:
        held = self.held(rid)
        label = next(iter(held), None)
        if self.labels_only and label is not None:
            held = {namespace: held[label]}  # the one result of the id, whatever its label
        if self.one_keyspace and held and namespace not in held:
            return False if behavior is SetBehavior.KEEP_EXISTING else FileExistsError
        if not self.storable(model):
            return ValueError
        old = held.get(namespace)
        same = old is not None and exact(old) == exact(model)
        if old is None or behavior is SetBehavior.OVERWRITE:
            written = True
        elif behavior is SetBehavior.RAISE_IF_EXISTS:
            return FileExistsError
        elif behavior is SetBehavior.RAISE_IF_DIFFERENT:
            return True if same else FileExistsError
        elif behavior is SetBehavior.SKIP_IF_EXISTS:
            written = not same
        else:  # KEEP_EXISTING
            return False
        if written:
            if self.labels_only and label is not None:
                del self.results[rid, label]  # relabelled
            self.results[rid, namespace] = model
        return written

    def get(self, rid: str, model_class: type[BaseModel] | None, namespace: str | None) -> Outcome:
        held = {ns: m for ns, m in self.held(rid).items() if namespace is None or ns == namespace}
        if not held:
            return FileNotFoundError
        if len(held) > 1:
            same = [m for m in held.values() if model_class is not None and type(m) is model_class]
            if len(same) != 1:
                return ValueError
            held = {"": same[0]}
        [model] = held.values()
        if model_class is None or type(model) is model_class:
            return model
        try:
            return model_class.model_validate(model.model_dump())
        except ValidationError:
            return ValidationError

    def exists(self, rid: str) -> bool:
        return bool(self.held(rid))

    def under(self, prefix: str | None) -> list[tuple[str, str]]:
        """``(id, namespace)`` under a prefix by whole segments, by id then namespace."""
        p = canonical_id(prefix) if prefix else ""
        return sorted(k for k in self.results if not p or k[0] == p or k[0].startswith(p + "/"))

    def list_ids(self, prefix: str | None) -> list[str]:
        return sorted({rid for rid, _ in self.under(prefix)})

    def iter_results(self, prefix: str | None) -> list[tuple[str, BaseModel]]:
        return [(rid, self.results[rid, ns]) for rid, ns in self.under(prefix)]

    def find(self, prefix: str | None, at_least: int) -> list[tuple[str, BaseModel]]:
        """``find({"x": {"$gte": at_least}}, prefix)``: results whose ``x`` field is at least that."""
        return [(rid, m) for rid, m in self.iter_results(prefix) if getattr(m, "x", -1) >= at_least]

    def delete(self, rid: str, namespace: str | None) -> bool:
        gone = [k for k in self.results if k[0] == rid and (namespace is None or k[1] == namespace)]
        for key in gone:
            del self.results[key]
        return bool(gone)

    def clear(self) -> None:
        self.results.clear()
        self.held_claims.clear()
        self.failed.clear()

    # -- claims

    def _now(self) -> datetime:
        assert self.clock is not None, "claims need the test's clock"
        return self.clock.now

    def stored(self, rid: str, namespace: str | None) -> bool:
        return any(namespace is None or ns == namespace for ns in self.held(rid))

    def claim(self, rid: str, lease: float, namespace: str | None, owner: str, max_attempts: int | None = 3) -> bool:
        """Whether ``owner`` takes the claim on ``rid`` (and it is recorded)."""
        if max_attempts is not None and self.failed.get(rid, 0) >= max_attempts:
            return False
        now = self._now()
        held = self.held_claims.get(rid)
        if held is not None and held[1] > now:
            return False
        self.held_claims.pop(rid, None)  # an expired claim is removed by the taker
        if self.stored(rid, namespace):
            return False
        self.held_claims[rid] = (owner, now + timedelta(seconds=lease))
        return True

    def release(self, rid: str, owner: str) -> None:
        if self.held_claims.get(rid, ("", None))[0] == owner:
            del self.held_claims[rid]

    def finish(self, rid: str, owner: str, failed_before: int, error: bool) -> None:
        """The end of a ``with claim:`` block."""
        if error:
            self.failed[rid] = self.failed.get(rid, 0) + 1
        elif failed_before:
            self.failed.pop(rid, None)
        self.release(rid, owner)

    def failures(self, prefix: str | None) -> list[tuple[str, int]]:
        p = canonical_id(prefix) if prefix else ""
        return sorted((rid, n) for rid, n in self.failed.items() if not p or rid == p or rid.startswith(p + "/"))

    def reset(self, prefix: str | None) -> int:
        gone = self.failures(prefix)
        for rid, _ in gone:
            del self.failed[rid]
        return len(gone)

    def live(self, prefix: str | None) -> list[str]:
        p = canonical_id(prefix) if prefix else ""
        now = self._now()
        return sorted(
            rid
            for rid, (_, expires) in self.held_claims.items()
            if expires > now and (not p or rid == p or rid.startswith(p + "/"))
        )

    def upgrade(
        self,
        prefix: str | None,
        new: type[BaseModel],
        convert: Callable[[dict[str, Any]], BaseModel],
        old_types: Iterable[str],
    ) -> tuple[int, int, int, int]:
        """(upgraded, current, changed meanwhile, other types): nothing changes meanwhile here."""
        upgraded = current = other = 0
        old = set(old_types) - {new.__name__}
        for key in self.under(prefix):
            model = self.results[key]
            name = type(model).__name__
            if name in old:
                self.results[key] = convert(model.model_dump())
                upgraded += 1
            elif name == new.__name__:
                current += 1  # the machine stores only models that load into their own class
            else:
                other += 1
        return upgraded, current, 0, other
