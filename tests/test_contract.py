"""Every store held to the contract (tests/contract.py) through random sequences of every call.

Several managers at once on one store: two connections to the same results, and on
MongoDB two more stores in the same database, whose collection prefixes nest in the first's
(``results.v2.``, and ``results._``, whose namespaces can spell the first's own collections).
Namespaces include ``.``, ``_`` and the reserved words; values include ones equal but not
identical (signed zeros, decimal scale, int and float, datetime precision and offset); claims
expire on a clock the test sets. After every step, everything a manager can observe equals
the contract. Budget per store: ``CONTRACT_EXAMPLES`` sequences (half for the async kinds,
two on the sharded cluster) of up to ``CONTRACT_STEPS`` steps (``make soak`` runs ten times more).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from pydantic import BaseModel, ValidationError

from mongo_results import (
    AsyncFileBackend,
    AsyncMongoBackend,
    AsyncResultsManager,
    FileBackend,
    MongoBackend,
    ResultsManager,
    SetBehavior,
    register_model,
)
from mongo_results.core.operations import Operations

from .conftest import SyncView, _db_for
from .contract import Clock, Contract, Outcome, exact
from .seed_backends import AsyncFileBackend as SeedAsyncFileBackend
from .seed_backends import FileBackend as SeedFileBackend

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "25"))
STEPS = int(os.environ.get("CONTRACT_STEPS", "30"))
LIMIT = 4096  # the document limit on the servers, lowered so a Big result goes through GridFS


class M1(BaseModel):
    x: int


class M2(BaseModel):
    y: str


class New(BaseModel):
    x: int
    z: int


class Big(BaseModel):
    x: int
    blob: bytes

    def __repr__(self) -> str:  # failures stay readable
        return f"Big(x={self.x}, blob={self.blob[:1]!r}*{len(self.blob)})"


class Num(BaseModel):
    """Values that compare equal without being the same."""

    f: float
    d: Decimal
    u: int | float
    t: datetime


def register() -> None:
    register_model(M1)
    register_model(New)
    register_model(Big)
    register_model(Num)
    register_model(M2, namespace="other")


INSTANT = datetime(2026, 11, 28, 4, 1, 0, 200000, tzinfo=timezone.utc)
TIMES = [INSTANT, INSTANT + timedelta(microseconds=1), INSTANT.astimezone(timezone(timedelta(hours=2)))]


SEGMENTS = os.environ.get("CONTRACT_SEGMENTS", "a,b,a-1,.w").split(",")
ids = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map("/".join)
prefixes = st.one_of(st.none(), st.just(""), ids)
# "claims" and "gridfs.files" spell the first store's own collections under the prefix "results._".
namespaces = st.sampled_from([None, "default", "other", "n.x", "_", "claims", "gridfs.files", "_claims"])
behaviors = st.sampled_from(list(SetBehavior))
models = st.one_of(
    st.builds(M1, x=st.integers(0, 3)),
    st.builds(M2, y=st.sampled_from(["p", "q"])),
    st.builds(New, x=st.integers(0, 3), z=st.integers(0, 1)),
    st.builds(Big, x=st.integers(0, 3), blob=st.sampled_from([1, 2]).map(lambda k: bytes([k]) * 6000)),
    st.builds(
        Num,
        f=st.sampled_from([0.0, -0.0]),
        d=st.sampled_from([Decimal("1.0"), Decimal("1.00")]),
        u=st.sampled_from([3, 3.0]),
        t=st.sampled_from(TIMES),
    ),
)
leases = st.sampled_from([10.0, 100.0])
attempts = st.sampled_from([None, 1, 3])
cells = st.sampled_from(["a", "b", "a/b"])  # few: claims and failures meet on the same cells


class Boom(RuntimeError):
    """A cell's work that fails."""


CLOCK = Clock(datetime(2030, 1, 1, tzinfo=timezone.utc))


def namespace_of(model: BaseModel, namespace: str | None) -> str:
    return namespace if namespace is not None else ("other" if isinstance(model, M2) else "default")


def outcome(call: Callable[[], Any]) -> Outcome:
    try:
        return call()
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        return exc


def same(actual: Outcome, expected: Outcome, what: str) -> None:
    if isinstance(expected, type) and issubclass(expected, BaseException):
        assert isinstance(actual, expected), f"{what}: expected {expected.__name__}, got {actual!r}"
        if expected is ValueError:
            assert not isinstance(actual, ValidationError), f"{what}: {actual!r}"
    else:
        assert exact(actual) == exact(expected), f"{what}: expected {expected!r}, got {actual!r}"


@dataclasses.dataclass
class Handle:
    """One manager, and the contract of the store it reaches.

    ``seed``: a ``results_manager``-style backend through ``backend=``. It has no namespaces
    of its own (an id is one result; the namespace is a label), stores JSON (no bytes), and
    only the seed's methods: calls that need a store raise TypeError.
    """

    name: str
    manager: ResultsManager
    contract: Contract
    seed: bool = False
    # On the sharded cluster: clear() drops the collections, so they are sharded again before use.
    after_clear: Callable[[], None] | None = None

    def clear(self) -> None:
        self.manager.clear()
        self.contract.clear()
        if self.after_clear is not None:
            self.after_clear()

    def namespace(self, namespace: str | None) -> str | None:
        return None if self.seed else namespace

    def takes(self, model: Any) -> bool:
        return not (self.seed and isinstance(model, (Big, Num)))  # the seed stores JSON: no bytes, no Decimal


class StoreMachine(RuleBasedStateMachine):
    handles: list[Handle]  # set by the factory below

    def __init__(self) -> None:
        super().__init__()
        register()
        self.taken = []
        for handle in self.handles:
            handle.contract.clock = CLOCK
            handle.clear()

    def pick(self, index: int) -> Handle:
        return self.handles[index % len(self.handles)]

    @rule(h=st.integers(0, 4), rid=ids, model=models, behavior=behaviors, namespace=namespaces)
    def set(self, h: int, rid: str, model: BaseModel, behavior: SetBehavior, namespace: str | None) -> None:
        handle = self.pick(h)
        namespace = handle.namespace(namespace)
        if not handle.takes(model):
            return
        if handle.contract.refuses(namespace_of(model, namespace)):
            same(outcome(lambda: handle.manager.set(rid, model, behavior, namespace=namespace)), ValueError, "set")
            return
        expected = handle.contract.set(rid, model, behavior, namespace_of(model, namespace))
        actual = outcome(lambda: handle.manager.set(rid, model, behavior, namespace=namespace))
        same(actual, expected, f"{handle.name}.set({rid!r}, {model!r}, {behavior.name}, {namespace!r})")

    @rule(
        h=st.integers(0, 4),
        items=st.dictionaries(ids, models, max_size=4),
        bad=st.sampled_from([None, ("a/../b", M1(x=0)), ("c", {"x": 1})]),
        behavior=behaviors,
        namespace=namespaces,
    )
    def set_many(
        self, h: int, items: dict[str, BaseModel], bad: Any, behavior: SetBehavior, namespace: str | None
    ) -> None:
        handle = self.pick(h)
        namespace = handle.namespace(namespace)
        pairs: list[tuple[str, Any]] = [(rid, model) for rid, model in items.items() if handle.takes(model)]
        if bad is not None:
            pairs.insert(len(pairs) // 2, bad)
        actual = handle.manager.set_many(pairs, behavior, namespace)
        assert len(actual) == len(pairs)
        for (rid, model), got in zip(pairs, actual, strict=True):
            if (rid, model) == bad or handle.contract.refuses(namespace_of(model, namespace)):
                assert isinstance(got, (ValueError, TypeError)), f"{handle.name}.set_many: {rid!r} gave {got!r}"
                continue
            expected = handle.contract.set(rid, model, behavior, namespace_of(model, namespace))
            same(got, expected, f"{handle.name}.set_many item {rid!r} {behavior.name} {namespace!r}")

    @rule(h=st.integers(0, 4), rid=ids, cls=st.sampled_from([None, M1, M2, New]), namespace=namespaces)
    def get(self, h: int, rid: str, cls: type[BaseModel] | None, namespace: str | None) -> None:
        handle = self.pick(h)
        namespace = handle.namespace(namespace)
        expected = ValueError if handle.contract.refuses(namespace) else handle.contract.get(rid, cls, namespace)
        same(outcome(lambda: handle.manager.get(rid, cls, namespace)), expected, f"{handle.name}.get({rid!r})")

    @rule(h=st.integers(0, 4), rids=st.lists(ids, min_size=1, max_size=3))
    def get_many(self, h: int, rids: list[str]) -> None:
        handle = self.pick(h)
        expected = [handle.contract.get(rid, None, None) for rid in rids]
        failure = next((e for e in expected if isinstance(e, type)), None)
        actual = outcome(lambda: handle.manager.get_many(rids))
        if failure is FileNotFoundError:
            same(actual, FileNotFoundError, f"{handle.name}.get_many({rids!r})")
        elif failure is None:
            same(actual, expected, f"{handle.name}.get_many({rids!r})")
        else:  # several namespaces hold an id: ambiguous, unless an id is also missing
            assert isinstance(actual, (ValueError, FileNotFoundError)), actual

    @rule(h=st.integers(0, 4), rid=ids)
    def exists(self, h: int, rid: str) -> None:
        handle = self.pick(h)
        same(handle.manager.exists(rid), handle.contract.exists(rid), f"{handle.name}.exists({rid!r})")

    @rule(h=st.integers(0, 4), prefix=prefixes)
    def list_ids(self, h: int, prefix: str | None) -> None:
        handle = self.pick(h)
        same(handle.manager.list_ids(prefix), handle.contract.list_ids(prefix), f"{handle.name}.list_ids({prefix!r})")

    @rule(h=st.integers(0, 4), prefix=prefixes, batch=st.sampled_from([1, 2, 500]))
    def iter_results(self, h: int, prefix: str | None, batch: int) -> None:
        handle = self.pick(h)
        actual = list(handle.manager.iter_results(prefix, batch_size=batch))
        same(actual, handle.contract.iter_results(prefix), f"{handle.name}.iter_results({prefix!r}, {batch})")

    @rule(h=st.integers(0, 4), prefix=prefixes, at_least=st.integers(0, 4))
    def find(self, h: int, prefix: str | None, at_least: int) -> None:
        handle = self.pick(h)
        if handle.seed:
            with pytest.raises(TypeError, match="needs a store"):
                list(handle.manager.find({"x": {"$gte": at_least}}, prefix))
            return
        actual = list(handle.manager.find({"x": {"$gte": at_least}}, prefix))
        same(actual, handle.contract.find(prefix, at_least), f"{handle.name}.find(x >= {at_least}, {prefix!r})")

    @rule(h=st.integers(0, 4), rid=ids, namespace=namespaces)
    def delete(self, h: int, rid: str, namespace: str | None) -> None:
        handle = self.pick(h)
        namespace = handle.namespace(namespace)
        expected = ValueError if handle.contract.refuses(namespace) else handle.contract.delete(rid, namespace)
        same(outcome(lambda: handle.manager.delete(rid, namespace)), expected, f"{handle.name}.delete({rid!r})")

    @rule(h=st.integers(0, 4))
    def clear(self, h: int) -> None:
        self.pick(h).clear()

    @rule(h=st.integers(0, 4), prefix=prefixes)
    def upgrade(self, h: int, prefix: str | None) -> None:
        handle = self.pick(h)

        def convert(old: dict[str, Any]) -> New:
            return New(x=old["x"], z=0)

        if handle.seed:
            with pytest.raises(TypeError, match="needs a store"):
                handle.manager.admin.upgrade(prefix, New, convert, old_types=["M1"])
            return
        expected = handle.contract.upgrade(prefix, New, convert, ["M1"])
        done = handle.manager.admin.upgrade(prefix, New, convert, old_types=["M1"])
        actual = (done.upgraded, done.current, done.changed_meanwhile, done.other_types)
        same(actual, expected, f"{handle.name}.upgrade({prefix!r})")

    # -- claims, on the clock the test sets (Operations.server_now answers CLOCK.now)

    taken: list[tuple[Handle, Any, str, int]]  # the manager, the claim, its owner, its id's failures when taken

    def _claims_of(self, handle: Handle) -> bool:
        """Whether ``handle`` can claim; a results_manager-style backend says it needs a store."""
        if handle.seed:
            with pytest.raises(TypeError, match="needs a store"):
                handle.manager.claim("a", 10.0)
            return False
        return True

    @rule(h=st.integers(0, 4), rid=cells, lease=leases, namespace=namespaces, bound=attempts)
    def claim(self, h: int, rid: str, lease: float, namespace: str | None, bound: int | None) -> None:
        handle = self.pick(h)
        if not self._claims_of(handle):
            return
        if handle.contract.refuses(namespace):
            same(outcome(lambda: handle.manager.claim(rid, lease, namespace)), ValueError, "claim")
            return
        owner = uuid.uuid4().hex
        failed = handle.contract.failed.get(rid, 0)
        expected = handle.contract.claim(rid, lease, namespace, owner, bound)
        got = handle.manager.claim(rid, lease, namespace, max_attempts=bound)
        assert (got is not None) is expected, f"{handle.name}.claim({rid!r}, {namespace!r}, {bound}): {got!r}"
        if got is not None:
            assert got.result_id == rid
            self.taken.append((handle, got, owner, failed))

    @rule(h=st.integers(0, 4), rids=st.lists(cells, max_size=4), lease=leases, namespace=namespaces, bound=attempts)
    def claim_each(self, h: int, rids: list[str], lease: float, namespace: str | None, bound: int | None) -> None:
        handle = self.pick(h)
        if not self._claims_of(handle) or handle.contract.refuses(namespace):
            return
        contract = handle.contract
        owners = {rid: uuid.uuid4().hex for rid in rids}
        failed = {rid: contract.failed.get(rid, 0) for rid in rids}
        expected = [
            rid
            for rid in dict.fromkeys(rids)
            if not contract.stored(rid, namespace) and contract.claim(rid, lease, namespace, owners[rid], bound)
        ]
        got = list(handle.manager.claim_each(rids, lease, namespace, max_attempts=bound, wait=False))
        same([c.result_id for c in got], expected, f"{handle.name}.claim_each({rids!r}, {namespace!r}, {bound})")
        self.taken.extend((handle, c, owners[c.result_id], failed[c.result_id]) for c in got)

    def _finish(self, handle: Handle, claim: Any, error: bool) -> None:
        """Leave a ``with claim:`` block, raising or not."""

        def body() -> None:
            if error:
                raise Boom(claim.result_id)

        view: Any = handle.manager

        async def block() -> None:
            async with claim:
                body()

        def run() -> None:
            if isinstance(view, SyncView):
                view.loop.run_until_complete(block())
                return
            with claim:
                body()

        try:
            run()
        except Boom:
            assert error, "the block's own exception goes on unchanged"
        else:
            assert not error, "the block's exception was swallowed"

    @rule(i=st.integers(0, 50), how=st.sampled_from(["release", "done", "fail"]))
    def release(self, i: int, how: str) -> None:
        if not self.taken:
            return
        handle, claim, owner, failed = self.taken.pop(i % len(self.taken))
        if how == "release":
            released = claim.release()
            if isinstance(handle.manager, SyncView):  # an AsyncClaim's release is a coroutine
                handle.manager.loop.run_until_complete(released)
            handle.contract.release(claim.result_id, owner)
        else:
            self._finish(handle, claim, how == "fail")
            handle.contract.finish(claim.result_id, owner, failed, how == "fail")

    @rule(
        h=st.integers(0, 4),
        rid=cells,
        namespace=namespaces,
        bound=attempts,
        outcomes=st.lists(st.booleans(), min_size=1, max_size=3),
    )
    def compute(self, h: int, rid: str, namespace: str | None, bound: int | None, outcomes: list[bool]) -> None:
        """A worker's attempts at a cell, each from claim to the end of its ``with`` block, which fails or not."""
        handle = self.pick(h)
        if not self._claims_of(handle) or handle.contract.refuses(namespace):
            return
        for fails in outcomes:
            owner = uuid.uuid4().hex
            failed = handle.contract.failed.get(rid, 0)
            expected = handle.contract.claim(rid, 10.0, namespace, owner, bound)
            got = handle.manager.claim(rid, 10.0, namespace, max_attempts=bound)
            assert (got is not None) is expected, f"{handle.name}.claim({rid!r}, {namespace!r}, {bound}): {got!r}"
            if got is not None:
                self._finish(handle, got, fails)
                handle.contract.finish(rid, owner, failed, fails)

    @rule(h=st.integers(0, 4), prefix=prefixes)
    def failures(self, h: int, prefix: str | None) -> None:
        handle = self.pick(h)
        if not self._claims_of(handle):
            return
        got = [(f["result_id"], f["attempts"]) for f in handle.manager.failures(prefix)]
        same(got, handle.contract.failures(prefix), f"{handle.name}.failures({prefix!r})")

    @rule(h=st.integers(0, 4), prefix=prefixes)
    def reset_failures(self, h: int, prefix: str | None) -> None:
        handle = self.pick(h)
        if not self._claims_of(handle):
            return
        same(handle.manager.reset_failures(prefix), handle.contract.reset(prefix), f"{handle.name}.reset_failures")

    @rule(seconds=st.sampled_from([5.0, 50.0, 200.0]))
    def pass_time(self, seconds: float) -> None:
        CLOCK.advance(seconds)

    @rule(h=st.integers(0, 4), prefix=prefixes)
    def claims(self, h: int, prefix: str | None) -> None:
        handle = self.pick(h)
        if not self._claims_of(handle):
            return
        got = [c["result_id"] for c in handle.manager.claims(prefix)]
        same(got, handle.contract.live(prefix), f"{handle.name}.claims({prefix!r})")

    @rule(h=st.integers(0, 4), prefix=prefixes)
    def to_arrow(self, h: int, prefix: str | None) -> None:
        handle = self.pick(h)
        if handle.seed:
            with pytest.raises(TypeError, match="needs a store"):
                handle.manager.to_arrow(prefix, M1, namespace="default")
            return
        under = handle.contract.under(prefix)
        rows = [(rid, handle.contract.get(rid, M1, "default")) for rid, ns in under if ns == "default"]
        fails = any(m is ValidationError for _, m in rows)
        try:
            table = handle.manager.to_arrow(prefix, M1, namespace="default")
        except ValidationError:
            assert fails, f"{handle.name}.to_arrow({prefix!r}) raised, expected {rows!r}"
            return
        assert not fails, f"{handle.name}.to_arrow({prefix!r}) read what does not validate: {rows!r}"
        got = list(zip(table.column("id").to_pylist(), table.column("x").to_pylist(), strict=True))
        same(got, [(rid, m.x) for rid, m in rows], f"{handle.name}.to_arrow({prefix!r})")

    @invariant()
    def everything_observable_matches(self) -> None:
        for handle in self.handles:
            same(handle.manager.list_ids(), handle.contract.list_ids(None), f"{handle.name}.list_ids()")
        seen: set[int] = set()
        for handle in self.handles:  # the whole content, once per store
            if id(handle.contract) not in seen:
                seen.add(id(handle.contract))
                actual = list(handle.manager.iter_results())
                same(actual, handle.contract.iter_results(None), f"{handle.name}.iter_results()")
                if not handle.seed:
                    failed = [(f["result_id"], f["attempts"]) for f in handle.manager.failures()]
                    same(failed, handle.contract.failures(None), f"{handle.name}.failures()")


def limited(manager: ResultsManager) -> ResultsManager:
    """The manager with the servers' document limit lowered, so Big results go through GridFS."""
    engine = manager.admin.engine()  # asked first: an async store's operations belong to the loop that asked
    manager.backend._operations().engine = dataclasses.replace(engine, max_document=LIMIT)
    register()
    manager.set("limited", Big(x=0, blob=b"\x01" * 6000), SetBehavior.OVERWRITE)
    assert "gridfs" in manager.admin.documents("limited")[0], "the lowered limit is in force"
    manager.delete("limited")
    return manager


def handles_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Handle]]:
    """Two managers on one store (two connections), and on MongoDB two stores whose prefixes nest in it."""
    if kind in ("file", "async-file"):
        contract = Contract(one_keyspace=True)
        if kind == "file":
            made = [ResultsManager(tmp_path / "files"), ResultsManager(backend=FileBackend(tmp_path / "files"))]
        else:
            made = [
                _async(lambda: AsyncResultsManager(tmp_path / "files")),
                _async(lambda: AsyncResultsManager(backend=AsyncFileBackend(tmp_path / "files"))),
            ]
        yield [Handle("files", made[0], contract), Handle("files2", made[1], contract), seed_handle(kind, tmp_path)]
        return
    if kind.endswith("mongomock"):
        uri, name = f"mongomock://localhost/c_{uuid.uuid4().hex[:8]}", None
    else:
        uri, name = request.getfixturevalue(_db_for(kind))
    zeros = not kind.endswith("ferretdb1")  # FerretDB 1.x refuses -0.0 (it would come back as 0.0)
    outer, nested, under = (Contract(one_keyspace=False, prefix=p, signed_zero=zeros) for p in PREFIXES)
    made = [_manager(kind, uri, name, p) for p in ("results.", *PREFIXES)]
    handles = [
        Handle("outer", made[0], outer),
        Handle("outer2", made[1], outer),
        Handle("nested", made[2], nested),
        Handle("under", made[3], under),
        seed_handle(kind, tmp_path),
    ]
    if kind.endswith("sharded"):
        for handle in (handles[0], handles[2], handles[3]):
            handle.after_clear = functools.partial(_shard_all, handle.manager)
    yield handles
    for handle in handles:
        handle.manager.clear()
        close = getattr(handle.manager, "shutdown", None) or handle.manager.close
        close()


PREFIXES = ("results.", "results.v2.", "results._")  # the stores of one database


def _shard_all(manager: ResultsManager) -> None:
    """Every namespace the machine writes to sharded on _id (with the GridFS chunks and the claims)."""
    for namespace in ("default", "other", "n.x"):
        assert manager.admin.shard(namespace=namespace).problems == 0


def seed_handle(kind: str, tmp_path: Path) -> Handle:
    """A results_manager-style backend through backend=: the seed's file backend, its methods plain or coroutines.

    (The seed's AsyncSqliteBackend is not used here: its RAISE_IF_DIFFERENT and SKIP_IF_EXISTS compare
    data only when the model type is the same, and overwrite a result of another type, which the
    contract's table does not; the adapter passes the decision to the backend, as results_manager did.)
    """
    contract = Contract(one_keyspace=True, labels_only=True)
    if kind.startswith("async"):
        manager = _async(lambda: AsyncResultsManager(backend=SeedAsyncFileBackend(tmp_path / "seed")))
        return Handle("seed-async", manager, contract, seed=True)
    return Handle("seed-files", ResultsManager(backend=SeedFileBackend(tmp_path / "seed")), contract, seed=True)


def _manager(kind: str, uri: str, database: str | None, prefix: str) -> ResultsManager:
    if not kind.startswith("async"):
        manager = ResultsManager(backend=MongoBackend(uri, database=database, collection_prefix=prefix))
        return manager if kind == "mongomock" else limited(manager)
    return _async(
        lambda: AsyncResultsManager(backend=AsyncMongoBackend(uri, database=database, collection_prefix=prefix))
    )


def _async(make: Callable[[], AsyncResultsManager]) -> ResultsManager:
    async def opened() -> AsyncResultsManager:
        return make()

    view: Any = SyncView(opened)
    return view  # type: ignore[no-any-return]


KINDS = [
    "file",
    "mongomock",
    "server",
    "ferretdb1",
    "sharded",
    "async-file",
    "async-mongomock",
    "async-server",
    "async-ferretdb1",
]


def _store_clock(self: Operations) -> Any:
    return CLOCK.now
    yield  # an operation that sends nothing


@pytest.mark.parametrize("kind", KINDS)
def test_every_store_keeps_the_contract(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the library's defaults: every manager sees at once what the others wrote.
    monkeypatch.setattr(Operations, "server_now", _store_clock)
    for handles in handles_for(kind, request, tmp_path):
        machine = type(f"StoreMachine[{kind}]", (StoreMachine,), {"handles": handles})
        run_state_machine_as_test(
            machine,
            settings=settings(
                # Each example shards its collections again on the cluster (clear() drops them, and
                # Citus creates each distributed table anew): ~20 s per example there, so fewer.
                # The async kinds run the same operations through another driver path: half the sequences.
                max_examples=max(2, EXAMPLES // 12) if kind == "sharded" else EXAMPLES // (2 if "-" in kind else 1),
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            ),
        )
