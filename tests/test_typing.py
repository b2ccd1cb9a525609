"""What a type checker sees of the managers (checked by mypy in ``make test``; the bodies never run)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from pydantic import BaseModel
from typing_extensions import assert_type

from mongo_results import AsyncResultsManager, ResultsManager

from .models import Metrics


def _sync(rm: ResultsManager[BaseModel], typed: ResultsManager[Metrics]) -> None:
    assert_type(rm.get("a", Metrics), Metrics)
    assert_type(rm.get("a"), BaseModel)
    assert_type(typed.get("a"), Metrics)
    assert_type(rm.get_many(["a"], Metrics), list[Metrics])
    assert_type(typed.get_many(["a"]), list[Metrics])
    assert_type(rm.iter_results("a", Metrics), Iterator[tuple[str, Metrics]])
    assert_type(typed.iter_results(), Iterator[tuple[str, Metrics]])
    assert_type(rm.set("a", Metrics(loss=1, accuracy=1)), bool)
    assert_type(rm.find({"loss": {"$lt": 1}}, None, Metrics), Iterator[tuple[str, Metrics]])
    assert_type(typed.find(), Iterator[tuple[str, Metrics]])
    assert_type(rm.iter_results(model_class=Metrics), Iterator[tuple[str, Metrics]])  # by keyword alone
    assert_type(rm.find({"loss": 1}, model_class=Metrics), Iterator[tuple[str, Metrics]])


async def _async(arm: AsyncResultsManager[BaseModel]) -> None:
    assert_type(await arm.get("a", Metrics), Metrics)
    assert_type(await arm.get_many(["a"], Metrics), list[Metrics])
    assert_type(arm.iter_results("a", Metrics), AsyncIterator[tuple[str, Metrics]])
    assert_type(await arm.set("a", Metrics(loss=1, accuracy=1)), bool)
    assert_type(await arm.list_ids(), list[str])
    assert_type(arm.find({"loss": 1}, "a", Metrics), AsyncIterator[tuple[str, Metrics]])
    assert_type(arm.iter_results(model_class=Metrics), AsyncIterator[tuple[str, Metrics]])
