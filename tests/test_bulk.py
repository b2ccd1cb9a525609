"""set_many, get_many and iter_results: the meaning of set and get, for many results at once."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import BaseModel

from mongo_results import ResultExistsError, ResultsManager, SetBehavior, register_model
from mongo_results.errors import LossyValueError

from .models import Metrics
from .test_behaviour import TABLE

A = Metrics(loss=0.25, accuracy=0.9, step=1)
B = Metrics(loss=0.5, accuracy=0.8, step=2)


@pytest.fixture(autouse=True)
def _models() -> None:
    register_model(Metrics)


@pytest.mark.parametrize("behavior", list(SetBehavior))
def test_set_many_follows_the_table_per_item(rm: ResultsManager, behavior: SetBehavior) -> None:
    rm.set("b/same", A)
    rm.set("b/different", A)
    items = [("b/nothing", A), ("b/same", A), ("b/different", B)]
    outcomes = rm.set_many(items, behavior)
    for (rid, new), outcome in zip(items, outcomes, strict=True):
        expected, after = TABLE[behavior][rid.split("/")[1]]
        if expected is FileExistsError:
            assert isinstance(outcome, ResultExistsError) and outcome.result_id == rid
        else:
            assert outcome is expected
        assert rm.get(rid) == (new if after == "new" else A)


def test_bad_items_fail_alone(rm: ResultsManager) -> None:
    from datetime import datetime
    from typing import Union

    class Ambiguous(BaseModel):
        when: Union[str, datetime]

    items = [("ok/1", A), ("bad/../id", A), ("ok/2", Ambiguous(when=datetime(2026, 1, 1))), ("ok/3", B)]
    outcomes = rm.set_many(items)
    assert outcomes[0] is True and outcomes[3] is True
    assert isinstance(outcomes[1], ValueError) and isinstance(outcomes[2], LossyValueError)
    assert rm.list_ids() == ["ok/1", "ok/3"]
    with pytest.raises(FileExistsError):
        rm.set_many({"ok/1": A, "ok/4": B}, raise_errors=True)
    assert rm.get("ok/4") == B  # the others are still stored


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [
        (SetBehavior.SKIP_IF_EXISTS, [True, False, False, False]),
        (SetBehavior.RAISE_IF_EXISTS, [True, "x", "x", "x"]),
        (SetBehavior.KEEP_EXISTING, [True, False, False, False]),
    ],
)
def test_one_id_many_times_in_one_call(rm: ResultsManager, behavior: SetBehavior, expected: list[object]) -> None:
    outcomes = rm.set_many([("same/id", A)] * 4, behavior)
    summary = Counter(o if isinstance(o, bool) else "x" for o in outcomes)
    assert summary == Counter(expected)  # one writer wins, as in some serial order
    assert rm.get("same/id") == A


def test_get_many_in_order_and_missing(rm: ResultsManager) -> None:
    rm.set_many({f"g/{i}": Metrics(loss=i, accuracy=0, step=i) for i in range(30)})
    got = rm.get_many([f"g/{i}" for i in reversed(range(30))], Metrics)
    assert [m.step for m in got] == list(reversed(range(30)))
    with pytest.raises(FileNotFoundError, match="g/99"):
        rm.get_many(["g/1", "g/99", "g/98"])


def test_iter_results_pages_through_a_prefix(rm: ResultsManager) -> None:
    rm.set_many({f"it/{i:04d}": Metrics(loss=i, accuracy=0, step=i) for i in range(250)})
    rm.set("itx/0", A)
    seen = list(rm.iter_results("it", Metrics, batch_size=40))
    assert [rid for rid, _ in seen] == [f"it/{i:04d}" for i in range(250)]
    assert all(m.step == int(rid.split("/")[1]) for rid, m in seen)
    assert [rid for rid, _ in rm.iter_results("itx")] == ["itx/0"]
    everything = [rid for rid, _ in rm.iter_results(batch_size=40)]  # no prefix: pages over every id
    assert everything == [*(f"it/{i:04d}" for i in range(250)), "itx/0"]
