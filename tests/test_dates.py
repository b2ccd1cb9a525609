"""Datetimes inside results: BSON dates that Compass filters and sorts, read back exactly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel
from pymongo import MongoClient

from mongo_results import MongoBackend, ResultsManager, SetBehavior, register_model

UTC = timezone.utc


@register_model
class Run(BaseModel):
    at: datetime
    steps: list[datetime] = []
    marks: dict[str, datetime] = {}


HELD = datetime(2026, 11, 28, 4, 1, 0, 200000, tzinfo=UTC)  # a date holds it whole
MICROS = datetime(2026, 11, 28, 4, 1, 0, 123456, tzinfo=UTC)
OFFSET = datetime(2026, 11, 28, 6, 1, 0, 500, tzinfo=timezone(timedelta(hours=2)))  # 04:01:00.0005Z
NAIVE = datetime(2026, 11, 28, 4, 1, 0, 999)
VALUES = {"held": HELD, "micros": MICROS, "offset": OFFSET, "naive": NAIVE}


def _run(v: datetime) -> Run:
    return Run(at=v, steps=[v, v + timedelta(microseconds=1)], marks={"a.b": v})


def _date(v: datetime) -> datetime:
    """What a BSON date holds of ``v``: UTC to the millisecond, naive as PyMongo reads it."""
    u = v.astimezone(UTC) if v.tzinfo else v
    return u.replace(tzinfo=None, microsecond=u.microsecond // 1000 * 1000)


def _exactly(got: datetime, want: datetime) -> bool:
    return got == want and got.utcoffset() == want.utcoffset() and (got.tzinfo is None) == (want.tzinfo is None)


def test_datetimes_are_stored_as_dates_and_read_back_exactly(rm: ResultsManager) -> None:
    for name, v in VALUES.items():
        rm.set(f"d/{name}", _run(v))
    docs = {d["_id"]: d for d in rm.admin.documents("d")}
    for name, v in VALUES.items():
        got = rm.get(f"d/{name}", Run)
        assert got == _run(v)
        assert _exactly(got.at, v) and _exactly(got.steps[1], v + timedelta(microseconds=1))
        assert _exactly(got.marks["a.b"], v)
        stored = docs[f"d/{name}"]
        assert stored["data"]["at"] == _date(v) and stored["data"]["steps"][0] == _date(v)
        # Only what a date cannot hold has its text beside it; one microsecond later is the same date.
        paths = {t["path"] for t in stored.get("exact_times", [])}
        assert paths == ({"steps.1"} if name == "held" else {"at", "steps.0", "steps.1", "marks.a%2Eb"})
        assert stored["data"]["steps"][1] == _date(v + timedelta(microseconds=1))


def test_find_compares_datetimes_as_instants(rm: ResultsManager) -> None:
    for name, v in VALUES.items():
        rm.set(f"d/{name}", _run(v))
    cut = datetime(2026, 11, 28, 4, 1, 0, 100000, tzinfo=UTC)
    after = sorted(rid for rid, _ in rm.find({"at": {"$gte": cut}}, "d", Run))
    assert after == ["d/held", "d/micros"]
    # An offset is an instant, not text: 06:01+02:00 is before 04:01:00.1Z.
    before = sorted(rid for rid, _ in rm.find({"at": {"$lt": cut}}, "d", Run))
    assert before == ["d/naive", "d/offset"]
    assert [rid for rid, _ in rm.find({"at": HELD}, "d", Run)] == ["d/held"]
    assert [rid for rid, _ in rm.find({"at": {"$ne": HELD}}, "d", Run, sort=[("at", -1)])] == [
        "d/micros",
        "d/naive",
        "d/offset",
    ]


def test_an_overwrite_keeps_no_exact_time_of_the_value_it_replaces(rm: ResultsManager) -> None:
    rm.set("o", _run(MICROS))
    assert rm.set("o", Run(at=HELD), SetBehavior.OVERWRITE)
    got = rm.get("o", Run)
    assert _exactly(got.at, HELD) and got.steps == []
    assert "exact_times" not in next(iter(rm.admin.documents("o")))
    assert rm.set("o", Run(at=OFFSET), SetBehavior.OVERWRITE)
    assert _exactly(rm.get("o", Run).at, OFFSET)


def test_results_stored_with_datetimes_as_text_read_match_and_keep_their_digest(rm: ResultsManager) -> None:
    # How versions before dates stored them: the ISO text.
    rm.admin.store("old", "Run", {"at": "2026-11-28T04:01:00.123456Z", "steps": [], "marks": {}})
    rm.set("new", Run(at=MICROS))
    assert _exactly(rm.get("old", Run).at, MICROS)
    assert sorted(rid for rid, _ in rm.find({"at": MICROS}, None, Run)) == ["new", "old"]
    assert sorted(rid for rid, _ in rm.find({"at": {"$gt": HELD - timedelta(seconds=1)}}, None, Run)) == [
        "new",
        "old",
    ]
    assert [rid for rid, _ in rm.find({"at": {"$ne": MICROS}}, None, Run)] == []
    # Same content in either form: the digest is taken over the text, so nothing differs.
    assert rm.set("old", Run(at=MICROS), SetBehavior.SKIP_IF_EXISTS) is False
    assert rm.set("old", Run(at=MICROS), SetBehavior.RAISE_IF_DIFFERENT) is True


def test_stored_form_copies_with_its_exact_times(rm: ResultsManager) -> None:
    rm.set("src", _run(OFFSET))
    doc = next(iter(rm.admin.documents("src")))
    rm.admin.store("copy", doc["model_type"], doc["data"], exact_times=doc.get("exact_times"))
    assert _exactly(rm.get("copy", Run).marks["a.b"], OFFSET)
    # Without them the dates alone come back, as UTC to the millisecond.
    rm.admin.store("dates", doc["model_type"], doc["data"])
    assert rm.get("dates", Run).at == OFFSET.replace(microsecond=0)


@pytest.mark.real_server
def test_compass_filters_and_sorts_the_dates(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    with ResultsManager(backend=MongoBackend(uri, database=name)) as rm:
        for n, v in VALUES.items():
            rm.set(f"d/{n}", _run(v))
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        results = client[name]["results.default"]
        # What a user types in Compass's filter bar: {"data.at": {$gte: ISODate("2026-11-28T04:01:00.100Z")}}
        found = results.find({"data.at": {"$gte": datetime(2026, 11, 28, 4, 1, 0, 100000)}}, {"_id": 1})
        assert sorted(d["_id"] for d in found) == ["d/held", "d/micros"]
        ordered = [d["_id"] for d in results.find({}, {"_id": 1}).sort([("data.at", -1), ("_id", 1)])]
        assert ordered == ["d/held", "d/micros", "d/naive", "d/offset"]
        assert results.count_documents({"data.steps": {"$type": "date"}}) == 4
    finally:
        client.close()


def test_tables_read_each_datetime_exactly_from_either_form(rm: ResultsManager) -> None:
    rm.set("t/held", Run(at=HELD))
    rm.set("t/micros", Run(at=MICROS))
    rm.set("t/offset", Run(at=OFFSET))
    rm.admin.store("t/text", "Run", {"at": "2026-11-28T04:01:00.123456Z", "steps": [], "marks": {}})
    table = rm.to_arrow("t", Run)
    assert table.column("id").to_pylist() == ["t/held", "t/micros", "t/offset", "t/text"]
    assert table.column("at").to_pylist() == [HELD, MICROS, OFFSET, MICROS]  # instants, in UTC
