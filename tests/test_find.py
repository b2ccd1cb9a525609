"""find(where=...): every store gives the same answers, checked on generated data and filters."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, create_model

from mongo_results import MongoBackend, MongoResultsError, ResultsManager, register_model
from mongo_results.core.commands import Command, Find
from mongo_results.core.filters import MAX_DEPTH
from mongo_results.errors import InvalidArgumentError

from .conftest import make_manager


class Color(str, Enum):
    RED = "red"
    BLUE = "blue"


class Sub(BaseModel):
    a: int
    label: str


class Row(BaseModel):
    i: int
    f: float
    d: Decimal
    s: str
    c: Color
    when: datetime
    opt: int | None
    tags: list[int]
    sub: Sub
    subs: list[Sub]


INTS = st.integers(0, 4)
DECIMALS = st.sampled_from([Decimal("0"), Decimal("0.5"), Decimal("1.50"), Decimal("2.5"), Decimal("-1")])
STRINGS = st.sampled_from(["a", "b", "ab", "B", ""])
TIMES = st.sampled_from([datetime(2026, 1, d, tzinfo=timezone.utc) for d in (1, 2, 3)])
SUBS = st.builds(Sub, a=INTS, label=STRINGS)
ROWS = st.builds(
    Row,
    i=INTS,
    f=st.sampled_from([0.0, 0.5, 1.0, -2.0]),
    d=DECIMALS,
    s=STRINGS,
    c=st.sampled_from(list(Color)),
    when=TIMES,
    opt=st.none() | INTS,
    tags=st.lists(INTS, max_size=3),
    sub=SUBS,
    subs=st.lists(SUBS, max_size=2),
)
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "i": INTS,
    "f": st.sampled_from([0.0, 0.5, 1, -2.0]),
    "d": DECIMALS,
    "s": STRINGS,
    "c": st.sampled_from(list(Color)),
    "when": TIMES,
    "opt": st.none() | INTS,
    "sub.a": INTS,
    "sub.label": STRINGS,
    "tags": INTS,
    "subs.a": INTS,
}
COMPARE = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from(sorted(SCALARS)))
    values = SCALARS[field]
    kind = draw(st.sampled_from(["plain", "compare", "in", "nin", "exists", "not", "elem", "size", "all", "odd"]))
    if kind == "plain":
        return {field: draw(values)}
    if kind == "compare":
        return {field: {draw(st.sampled_from(COMPARE)): draw(values)}}
    if kind in ("in", "nin"):
        return {field: {f"${kind}": draw(st.lists(values, min_size=1, max_size=3))}}
    if kind == "exists":
        return {field: {"$exists": draw(st.booleans())}}
    if kind == "not" and field not in ("subs.a", "tags"):  # see the README: $not through an empty array
        return {field: {"$not": {draw(st.sampled_from(COMPARE[2:])): draw(values)}}}
    if kind == "not":
        return {field: {"$ne": draw(values)}}
    if kind == "elem":
        return {"subs": {"$elemMatch": {"a": {"$gte": draw(INTS)}, "label": draw(STRINGS)}}}
    if kind == "size":
        return {"tags": {"$size": draw(st.integers(0, 3))}}
    if kind == "odd":
        return draw(odd_leaves())
    return {"tags": {"$all": draw(st.lists(INTS, min_size=1, max_size=2))}}


@st.composite
def odd_leaves(draw: st.DrawFn) -> dict[str, Any]:
    """Edge cases where stores used to part ways: each must give one answer, or one refusal, everywhere."""
    n, label = draw(INTS), draw(STRINGS)
    options: list[dict[str, Any]] = [
        {"subs": {"$elemMatch": {}}},
        {"tags": {"$elemMatch": {}}},
        {"subs": {"$elemMatch": {"$and": [{"a": n}, {"label": label}]}}},
        {"subs": {"$elemMatch": {"$or": [{"a": {"$in": [n, n + 1]}}, {"label": {"$not": {"$gt": label}}}]}}},
        {"subs": {"$elemMatch": {"a": n, "$gt": 0}}},
        {"tags": {"$elemMatch": {"$gte": n, "$lt": n + 2}}},
        {"tags": {"$size": draw(st.sampled_from([-1, 2.5, 2.0, "abc", True, 0, 1]))}},
        {"s": {"$not": draw(st.sampled_from(["abc", {}, {"$in": [label]}, re.compile(label)]))}},
        {"s": re.compile(label)},
        {"tags": {"$all": []}},
        {"s": {"$exists": draw(st.sampled_from(["no", 0, 1, None]))}},
        {"$and": []},
    ]
    return draw(st.sampled_from(options))


@st.composite
def deep(draw: st.DrawFn) -> dict[str, Any]:
    """A leaf under many one-element logical operators, around the depth limit (two levels each)."""
    where = draw(leaves())
    for _ in range(draw(st.sampled_from([1, 10, MAX_DEPTH // 2 - 2, MAX_DEPTH // 2 - 1, MAX_DEPTH // 2, 500]))):
        where = {draw(st.sampled_from(["$and", "$or", "$nor"])): [where]}
    return where


FILTERS = (
    st.recursive(
        leaves(),
        lambda inner: st.builds(
            lambda op, parts: {op: parts},
            st.sampled_from(["$and", "$or", "$nor"]),
            st.lists(inner, min_size=1, max_size=3),
        ),
        max_leaves=4,
    )
    | deep()
)
SORTS = st.lists(
    st.tuples(st.sampled_from(["i", "d", "s", "sub.a", "when"]), st.sampled_from([1, -1])),
    max_size=2,
    unique_by=lambda pair: pair[0],
)
counter = itertools.count()


@pytest.fixture
def stores(server_db: tuple[str, str], tmp_path: Path) -> Iterator[dict[str, ResultsManager]]:
    uri, name = server_db
    found = {
        "file": ResultsManager(tmp_path / "files"),
        "embedded": ResultsManager(f"mongomock://localhost/find_{name}"),
        "server": ResultsManager(backend=MongoBackend(uri, database=name)),
    }
    yield found
    for rm in found.values():
        rm.close()


# FIND_EXAMPLES: more examples, when the evaluator of the file and embedded stores changes.
@settings(
    max_examples=int(os.environ.get("FIND_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(ROWS, min_size=1, max_size=10), where=FILTERS, sort=SORTS, limit=st.none() | st.integers(1, 4))
def test_every_store_gives_the_same_answer(
    stores: dict[str, ResultsManager],
    rows: list[Row],
    where: dict[str, Any],
    sort: list[tuple[str, int]],
    limit: int | None,
) -> None:
    register_model(Row)
    prefix = f"ex{next(counter)}"
    answers = {}
    for kind, rm in stores.items():
        rm.set_many({f"{prefix}/{n:02d}": row for n, row in enumerate(rows)})
        answers[kind] = _answer(rm, where, prefix)
        answers[f"{kind} sorted"] = _answer(rm, where, prefix, sort=sort, limit=limit)
    assert answers["file"] == answers["embedded"] == answers["server"], (where, answers)
    expected_sorted = answers["server sorted"]
    assert answers["file sorted"] == answers["embedded sorted"] == expected_sorted, (where, sort, limit, answers)


def _answer(rm: ResultsManager, where: Any, prefix: str, **options: Any) -> list[str] | str:
    """The ids ``find`` gives, or the refusal's message."""
    try:
        return [rid for rid, _ in rm.find(where, prefix, Row, **options)]
    except InvalidArgumentError as exc:
        return f"refused: {exc}"


@pytest.fixture(autouse=True)
def _rows() -> None:
    register_model(Row)


def test_find_on_every_manager_kind(rm: ResultsManager) -> None:
    for n in range(6):
        sub = Sub(a=n % 3, label="x")
        rm.set(
            f"q/{n}",
            Row(
                i=n,
                f=n / 2,
                d=Decimal(n) / 4,
                s="s",
                c=Color.RED,
                when=datetime(2026, 1, 1, tzinfo=timezone.utc),
                opt=None,
                tags=[n],
                sub=sub,
                subs=[],
            ),
        )
    assert [rid for rid, _ in rm.find({"i": {"$gte": 3}}, "q", Row)] == ["q/3", "q/4", "q/5"]
    assert [rid for rid, _ in rm.find({"d": {"$lt": Decimal("0.5")}}, "q", Row)] == ["q/0", "q/1"]
    top = [(rid, m.sub.a) for rid, m in rm.find(None, "q", Row, sort=[("sub.a", -1), ("i", 1)], limit=3)]
    assert top == [("q/2", 2), ("q/5", 2), ("q/1", 1)]
    assert [rid for rid, _ in rm.find({"tags": 4}, None, Row)] == ["q/4"]
    with pytest.raises(ValueError, match="Row has no field 'loss'"):
        list(rm.find({"loss": 1}, None, Row))
    with pytest.raises(ValueError, match="unknown operator '\\$regex'"):
        list(rm.find({"s": {"$regex": "s"}}, None, Row))
    with pytest.raises(ValueError, match="sort takes"):
        list(rm.find(None, "q", Row, sort=[("i", 2)]))
    with pytest.raises(ValueError, match="sort names 'i' twice"):
        list(rm.find(None, "q", Row, sort=[("i", 1), ("i", -1)]))


def test_to_dataframe_on_every_manager_kind(rm: ResultsManager) -> None:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for n in range(4):
        rm.set(
            f"df/{n}",
            Row(
                i=n,
                f=n / 2,
                d=Decimal(n),
                s="s",
                c=Color.BLUE,
                when=when,
                opt=None,
                tags=[n],
                sub=Sub(a=n, label="x"),
                subs=[],
            ),
        )
    table = rm.to_dataframe("df", Row)
    assert list(table.index) == ["df/0", "df/1", "df/2", "df/3"] and table.index.name == "id"
    assert {"i", "f", "d", "sub.a", "sub.label", "tags"} <= set(table.columns)  # nested models flattened with dots
    assert table.loc["df/2", "sub.a"] == 2 and table.loc["df/3", "d"] == Decimal(3)
    picked = rm.to_dataframe("df", Row, where={"i": {"$gte": 2}}, batch_size=1)
    assert list(picked.index) == ["df/2", "df/3"]
    assert rm.to_dataframe("nothing", Row).empty


def test_declared_field_indexes_are_created_and_used_by_find(server_db: tuple[str, str]) -> None:
    from pydantic import BaseModel as Base

    uri, name = server_db

    class Scored(Base):
        loss: float
        sub: Sub

    register_model(Scored, namespace="scored", indexes=["loss", ("sub.a", -1)])
    rm = ResultsManager(backend=MongoBackend(uri, database=name))
    rm.set_many({f"s/{n:03d}": Scored(loss=n / 100, sub=Sub(a=n % 7, label="x")) for n in range(300)})
    db = rm.backend.database()
    assert {"data.loss_1", "data.sub.a_-1"} <= set(db["results.scored"].index_information())
    assert [rid for rid, _ in rm.find({"loss": {"$lt": 0.02}}, "s", Scored)] == ["s/000", "s/001"]
    plan = str(db["results.scored"].find({"data.loss": {"$lt": 0.02}}).explain())
    assert "data.loss_1" in plan  # the server's plan names the index
    report = str(rm.admin.doctor())
    assert "ok: index data.loss_1" in report and "ok: index data.sub.a_-1" in report
    rm.close()
    with pytest.raises(ValueError, match="an index is a field name"):
        register_model(Scored, namespace="bad", indexes=[("loss", 2)])


def _row(n: int, s: str = "a", tags: list[int] | None = None, subs: list[Sub] | None = None) -> Row:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sub = Sub(a=n, label="x")
    return Row(
        i=n, f=0.0, d=Decimal(n), s=s, c=Color.RED, when=when, opt=None, tags=tags or [], sub=sub, subs=subs or []
    )


class Counting:
    """A store that records the commands it is sent."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.sent = inner, list[Command]()
        self.store_secrets = inner.store_secrets

    def _operations(self) -> Any:
        return self.inner._operations()

    def _execute(self, command: Command) -> Any:
        self.sent.append(command)
        return self.inner._execute(command)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(params=["file", "mongomock", "server", "ferretdb1"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResultsManager]:
    """A manager on each sync store, its backend counting commands; three results stored under "q"."""
    manager = make_manager(str(request.param), request, tmp_path)
    for n in range(3):
        manager.set(f"q/{n}", _row(n, "abc"[n], subs=[Sub(a=a, label="x") for a in range(n)]))  # 0, 1, 2 documents
    manager.backend = Counting(manager.backend)
    yield manager
    if request.param == "mongomock":
        manager.clear()
    manager.close()


def _nested(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    where = leaf
    for _ in range(levels):
        where = {"$and": [where]}
    return where


ODD: dict[str, tuple[Any, list[str] | str]] = {
    "1,000-deep $and": (_nested(1000, {"i": 1}), "nested over 100 levels"),
    "$and at the depth limit": (_nested(MAX_DEPTH // 2 - 1, {"i": {"$eq": 1}}), ["q/1"]),
    "$and one level over it": (_nested(MAX_DEPTH // 2 - 1, {"i": {"$in": [1]}}), "nested over 100 levels"),
    "empty $elemMatch on documents": ({"subs": {"$elemMatch": {}}}, "\\$elemMatch takes a non-empty"),
    "empty $elemMatch on numbers": ({"tags": {"$elemMatch": {}}}, "\\$elemMatch takes a non-empty"),
    "$elemMatch of a number": ({"subs": {"$elemMatch": 1}}, "\\$elemMatch takes a non-empty"),
    "$elemMatch mixing fields and operators": ({"subs": {"$elemMatch": {"a": 1, "$gt": 0}}}, "mixes operators"),
    "$elemMatch of a field": ({"subs": {"$elemMatch": {"a": 1}}}, ["q/2"]),
    "$size -1": ({"subs": {"$size": -1}}, "\\$size takes a count"),
    "$size 2.5": ({"subs": {"$size": 2.5}}, "\\$size takes a count"),
    "$size 'abc'": ({"subs": {"$size": "abc"}}, "\\$size takes a count"),
    "$size True": ({"subs": {"$size": True}}, "\\$size takes a count"),
    "$size 0": ({"subs": {"$size": 0}}, ["q/0"]),
    "a compiled regex": ({"s": re.compile("^a")}, "regular expressions"),
    "a regex in $in": ({"s": {"$in": [re.compile("^a")]}}, "regular expressions"),
    "$not of a regex": ({"s": {"$not": re.compile("^a")}}, "regular expressions"),
    "$regex": ({"s": {"$regex": "^a"}}, "unknown operator '\\$regex'"),
    "$not of a string": ({"s": {"$not": "abc"}}, "\\$not takes a document of operators"),
    "$not of nothing": ({"s": {"$not": {}}}, "\\$not takes a document of operators"),
    "$not of operators": ({"s": {"$not": {"$in": ["a", "b"]}}}, ["q/2"]),
    "a 17 MiB value": ({"s": "x" * (17 << 20)}, "over the 16,777,216-byte limit"),
    "$in of a string": ({"s": {"$in": "abc"}}, "\\$in takes a list"),
    "$all of a number": ({"tags": {"$all": 1}}, "\\$all takes a list"),
    "$all of nothing": ({"tags": {"$all": []}}, "\\$all takes a non-empty list"),
    "$exists 'no'": ({"s": {"$exists": "no"}}, "\\$exists takes True or False"),
    "$exists 0": ({"s": {"$exists": 0}}, []),
    "$and of nothing": ({"$and": []}, "\\$and takes a non-empty list"),
    "operators mixed with fields": ({"sub": {"$eq": 1, "a": 1}}, "mixes operators"),
}


# FerretDB 1.24 answers nothing to these, without an error: refused there, after learning the engine.
ON_FERRETDB1 = {"$elemMatch of a field": "answers nothing to \\$elemMatch of fields"}


@pytest.mark.parametrize("case", list(ODD))
def test_odd_filters_get_one_answer_or_one_refusal_on_every_store(
    store: ResultsManager, case: str, request: pytest.FixtureRequest
) -> None:
    where, expected = ODD[case]
    sent = store.backend.sent
    if request.node.callspec.params["store"] == "ferretdb1" and case in ON_FERRETDB1:
        with pytest.raises(InvalidArgumentError, match=ON_FERRETDB1[case]):
            list(store.find(where, "q", Row))
        assert not any(isinstance(c, Find) for c in sent)
    elif isinstance(expected, list):
        assert [rid for rid, _ in store.find(where, "q", Row)] == expected
    else:
        with pytest.raises(InvalidArgumentError, match=expected):
            list(store.find(where, "q", Row))
        assert sent == []  # refused before any command


def test_limit_zero_sends_nothing_and_a_negative_limit_is_refused(store: ResultsManager) -> None:
    sent = store.backend.sent
    assert list(store.find(None, "q", Row, limit=0)) == []
    assert list(store.find({"i": {"$gte": 1}}, "q", Row, sort=[("i", -1)], limit=0)) == []
    assert sent == []
    with pytest.raises(InvalidArgumentError, match="\\$not takes"):  # arguments are still checked
        list(store.find({"s": {"$not": "abc"}}, "q", Row, limit=0))
    with pytest.raises(InvalidArgumentError, match="limit is a count"):
        list(store.find(None, "q", Row, limit=-1))
    with pytest.raises(InvalidArgumentError, match="limit is a count"):
        list(store.find(None, "q", Row, limit=True))
    assert sent == []
    assert [rid for rid, _ in store.find(None, "q", Row, sort=[("i", -1)], limit=1)] == ["q/2"]
    assert any(isinstance(c, Find) for c in sent)


def test_limit_zero_sends_no_find_to_the_server(server_db: tuple[str, str]) -> None:
    from pymongo import MongoClient, monitoring

    class Listener(monitoring.CommandListener):
        def __init__(self) -> None:
            self.names: list[str] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            self.names.append(event.command_name)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    uri, name = server_db
    listener = Listener()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, event_listeners=[listener])
    rm = ResultsManager(backend=MongoBackend(client[name]))
    rm.set("q/0", _row(0, tags=[1]))
    listener.names.clear()
    assert list(rm.find({"i": 0}, "q", Row, limit=0)) == []
    assert "find" not in listener.names
    assert [rid for rid, _ in rm.find({"i": 0}, "q", Row, limit=1)] == ["q/0"]
    assert "find" in listener.names
    rm.close()
    client.close()


@pytest.mark.parametrize("kind", ["file", "mongomock", "server", "ferretdb1"])
def test_a_filter_a_store_refuses_is_a_library_error(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """What the core's checks would have stopped, sent anyway: a library error, never the driver's."""
    rm = make_manager(kind, request, tmp_path)
    rm.set("q/0", _row(0, tags=[1]))
    backend = rm.backend
    collection = "results.default"
    refused: list[dict[str, Any]] = [
        {"data.s": {"$not": "abc"}},
        {"data.s": {"$bogus": 1}},
        {"data.tags": {"$size": -1}},
        {"data.tags": {"$in": 1}},
    ]
    for bad in refused:
        with pytest.raises(MongoResultsError) as caught:
            backend._execute(Find(collection, {"_id": {"$gte": ""}, **bad}))
        assert isinstance(caught.value, ValueError), (bad, caught.value)
    if kind in ("server", "ferretdb1"):  # the driver refuses it before sending: DocumentTooLarge, not a PyMongoError
        with pytest.raises(MongoResultsError, match="oversized"):
            backend._execute(Find(collection, {"data.s": "x" * (17 << 20)}))
    if kind == "mongomock":
        rm.clear()


class Inner(BaseModel):
    b: int


def test_to_dataframe_never_merges_two_keys_into_one_column(rm: ResultsManager) -> None:
    class Keyed(BaseModel):
        d: dict[str, Any]
        inner: Inner

    Dotted = create_model("Dotted", **{"a.b": (int, ...), "a": (Inner, ...)})  # type: ignore[call-overload]
    rm.set("keys/1", Keyed(d={"a.b": 1, "a": {"b": 2}}, inner=Inner(b=3)))
    table = rm.to_dataframe("keys", Keyed)
    assert list(table.columns) == ["d", "inner.b"]  # a dict field is one column; nested models are dotted
    assert table.loc["keys/1", "d"] == {"a.b": 1, "a": {"b": 2}}
    rm.set("dots/1", Dotted(**{"a.b": 1, "a": Inner(b=2)}))
    table = rm.to_dataframe("dots", Dotted)
    assert table.loc["dots/1"].to_dict() == {"a%2Eb": 1, "a.b": 2}  # a dot in a field name is escaped


@pytest.mark.parametrize("kind", ["file", "mongomock"])
def test_to_dataframe_reads_each_result_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mongomock.collection

    from mongo_results.stores import embedded, file_tree

    from .conftest import make_manager

    examined = [0]

    def counted(function: Any) -> Any:
        def count(*args: Any, **kwargs: Any) -> Any:
            examined[0] += 1
            return function(*args, **kwargs)

        return count

    # What a page costs: the files it reads, or the documents the embedded store's filter looks at.
    monkeypatch.setattr(file_tree.FileTree, "read", staticmethod(counted(file_tree.FileTree.read)))
    for module, name in [(embedded, "matches"), (embedded, "evaluate"), (mongomock.collection, "filter_applies")]:
        monkeypatch.setattr(module, name, counted(getattr(module, name)))
    rm = make_manager(kind, request, tmp_path)
    count = 400
    rm.set_many([(f"lin/{i:04d}", Inner(b=i)) for i in range(count)])
    examined[0] = 0
    table = rm.to_dataframe("lin", Inner, batch_size=20)  # 20 pages
    assert len(table) == count and table["b"].tolist() == list(range(count))
    # A count, then each result once; a page that went over the whole store cost 20 times more.
    assert examined[0] <= 3 * count
    rm.close()
