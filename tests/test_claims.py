"""Sweeps that divide their work: missing(), claims on every store, races, killed workers, skewed clocks."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import inspect
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mongo_results import (
    AsyncClaim,
    AsyncResultsManager,
    Claim,
    MongoBackend,
    ResultsManager,
    SetBehavior,
    register_model,
)
from mongo_results.errors import InvalidArgumentError, InvalidNamespaceError

from .commands import CommandLog
from .models import Metrics

M = Metrics(loss=1, accuracy=1)


def done(rm: Any, value: object) -> Any:
    """``value``, awaited on the manager's loop when the manager is an async one (its claims are)."""
    return rm.loop.run_until_complete(value) if inspect.isawaitable(value) else value


def let_go(rm: Any, claim: Any) -> None:
    """Release a claim of either kind."""
    done(rm, claim.release())


def test_a_claim_is_held_until_released_and_none_while_the_result_is_stored(rm: ResultsManager) -> None:
    claim = rm.claim("s/1", lease=60)
    assert isinstance(claim, (Claim, AsyncClaim)) and claim.result_id == "s/1"
    assert claim.expires_at.tzinfo is not None and claim.owner.count(":") >= 2  # host:pid:random
    assert rm.claim("s/1") is None  # held
    assert [c["result_id"] for c in rm.claims("s")] == ["s/1"]
    let_go(rm, claim)
    again = rm.claim("s//1/")  # the same canonical id
    assert again is not None and again.owner != claim.owner
    rm.set("s/1", M)
    assert done(rm, again.renew()) is False  # the result is stored: the claim has served
    let_go(rm, again)
    assert rm.claim("s/1") is None  # stored: never claimable, whatever the claims say
    assert rm.claims() == []
    assert rm.delete("s/1")
    after = rm.claim("s/1", lease=timedelta(seconds=30))
    assert after is not None  # deleted and no claim left: the id can be claimed again
    assert done(rm, after.renew(120)) is True and after.expires_at > claim.expires_at


def test_missing_keeps_order_drops_repeats_and_looks_where_asked(rm: ResultsManager) -> None:
    register_model(Metrics)
    rm.set("m/2", M)
    rm.set("m/4", M, namespace="other")
    ids = ["m/1", "m/2", ["m", "3"], "m//1", "m/4", "m/3"]
    assert rm.missing(ids) == ["m/1", "m/3"]
    assert rm.missing(ids, namespace="default") == ["m/1", "m/3", "m/4"]
    assert rm.missing([f"big/{i}" for i in range(2500)])[-1] == "big/2499"  # three batches of ids
    rm.set_many([(f"c/{i:02d}", M) for i in range(30)])  # a range crowded with ids not asked for
    assert rm.missing(["c/29", "c/00", "c/99"]) == ["c/99"]
    with pytest.raises(ValueError, match="segment"):
        rm.missing(["ok", "a/../b"])


def test_claim_each_passes_over_stored_and_held_ids_and_a_with_block_lets_go(rm: ResultsManager) -> None:
    rm.set("g/2", M)
    held = rm.claim("g/3", lease=60)
    claims = list(rm.claim_each(["g/1", "g/2", "g/3", "g/4", "g/1"], lease=60, wait=False))
    assert [c.result_id for c in claims] == ["g/1", "g/4"]
    assert [c["result_id"] for c in rm.claims("g")] == ["g/1", "g/3", "g/4"]
    for claim in claims:
        if isinstance(claim, AsyncClaim):

            async def work(claim: AsyncClaim = claim) -> None:
                async with claim:
                    await rm.manager.set(claim.result_id, M)

            rm.loop.run_until_complete(work())
        else:
            with claim:
                rm.set(claim.result_id, M)
    assert held is not None
    let_go(rm, held)
    assert rm.claims("g") == [] and rm.missing(["g/1", "g/2", "g/3", "g/4"]) == ["g/3"]


def test_a_claim_in_a_namespace_looks_for_the_result_there(rm: ResultsManager) -> None:
    rm.set("n/1", M, namespace="config")
    assert rm.claim("n/1") is None  # stored in some namespace
    claim = rm.claim("n/1", namespace="metrics")
    assert claim is not None and claim.namespace == "metrics"
    assert rm.claim("n/1", namespace="metrics") is None  # held in that namespace
    let_go(rm, claim)


def test_renew_refuses_a_lease_too_long_for_a_timedelta(rm: ResultsManager) -> None:
    """Before: 1e300 or 10**30 seconds raised a raw OverflowError."""
    claim = rm.claim("long", lease=60)
    assert claim is not None
    for lease in (1e300, 10**30):
        with pytest.raises(InvalidArgumentError, match="at most a day"):
            done(rm, claim.renew(lease))
    let_go(rm, claim)


def test_one_string_is_not_taken_for_a_list_of_ids(rm: ResultsManager) -> None:
    """Before: claim_each("ab") claimed "a" and "b"."""
    for call in (lambda: list(rm.claim_each("ab")), lambda: rm.missing("ab"), lambda: rm.get_many("ab")):
        with pytest.raises(InvalidArgumentError, match="not the string 'ab'"):
            call()
    assert rm.claims() == []


def test_clear_ends_the_stores_claims(rm: ResultsManager) -> None:
    """Before: a dead run's claims outlived clear() and blocked its cells for up to a day."""
    rm.set("done", M)
    assert rm.claim("busy", lease=3600) is not None
    rm.clear()
    assert rm.claims() == [] and rm.list_ids() == []
    again = rm.claim("busy")
    assert again is not None
    let_go(rm, again)


def test_claims_on_a_file_store_this_process_may_only_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: reading the store's clock wrote a file, so claims and progress failed on a read-only store."""
    rm = ResultsManager(tmp_path / "store")
    claim = rm.claim("a/1", lease=60)
    assert claim is not None
    opened = os.open

    def read_only(path: Any, flags: int, *args: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return opened(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    viewer = ResultsManager(tmp_path / "store")
    assert [c["result_id"] for c in viewer.claims()] == ["a/1"]
    assert viewer.missing(["a/1", "a/2"]) == ["a/1", "a/2"]


class Elsewhere(BaseModel):
    x: int


def test_a_claim_stores_its_result_where_the_sweep_looks(rm: ResultsManager) -> None:
    """Before: claiming in one namespace and storing a model registered in another recomputed every cell."""
    register_model(Elsewhere, namespace="elsewhere")
    claim = rm.claim("grid/1", namespace="grid")
    assert claim is not None
    assert done(rm, claim.set(Elsewhere(x=1))) is True  # in "grid", the claim's namespace
    assert done(rm, claim.set(Elsewhere(x=2))) is False  # KEEP_EXISTING: what is stored stays
    let_go(rm, claim)
    assert rm.missing(["grid/1"], namespace="grid") == [] and rm.claim("grid/1", namespace="grid") is None
    assert rm.get("grid/1", Elsewhere, namespace="grid") == Elsewhere(x=1)
    free = rm.claim("grid/2")  # no namespace: the model's own
    assert free is not None
    assert done(rm, free.set(Elsewhere(x=3)))
    let_go(rm, free)
    assert rm.list_ids(namespace="elsewhere") == ["grid/2"]


def test_one_cell_has_one_claim_whatever_namespace_each_worker_names(rm: ResultsManager) -> None:
    """Before: claim(id) and claim(id, namespace=...) took two keys, and two workers both held the cell."""
    first = rm.claim("cell/1")
    assert first is not None
    assert rm.claim("cell/1", namespace="grid") is None
    [second] = list(rm.claim_each(["cell/1", "cell/2"], namespace="grid", wait=False))
    assert second.result_id == "cell/2"
    let_go(rm, first)
    let_go(rm, second)
    taken = rm.claim("cell/1", namespace="grid")
    assert taken is not None and rm.claim("cell/1") is None
    let_go(rm, taken)


@pytest.mark.parametrize(
    "lease",
    [0, -1, 0.0, float("nan"), float("inf"), "60", True, None, 86_401, timedelta(days=2), timedelta(0), 1e300, 10**30],
)
def test_a_bad_lease_is_a_value_error_before_any_io(lease: Any) -> None:
    rm = ResultsManager("mongodb://127.0.0.1:9/none?serverSelectionTimeoutMS=50")  # nothing listens there
    with pytest.raises(ValueError, match="lease") as info:
        rm.claim("a", lease=lease)
    assert isinstance(info.value, InvalidArgumentError)
    with pytest.raises(ValueError, match="lease"):
        next(iter(rm.claim_each(["a"], lease=lease)))
    with pytest.raises(ValueError, match="namespace"):
        rm.claim("a", namespace="bad name")


def test_a_lost_claim_says_so_and_the_late_set_is_decided_as_usual(shared_store: ResultsManager) -> None:
    rm = shared_store
    first = rm.claim("late/1", lease=0.3)
    assert first is not None
    deadline = time.monotonic() + 30
    while rm.claims("late"):  # its lease runs out ...
        assert time.monotonic() < deadline, "the lease did not run out"
        time.sleep(0.02)
    second = rm.claim("late/1", lease=60)  # ... and another worker takes the id
    assert second is not None and second.owner != first.owner
    assert first.renew() is False
    first.release()  # lets go of nothing: the claim is the other worker's
    assert [c["owner"] for c in rm.claims("late")] == [second.owner]
    rm.set("late/1", Metrics(loss=2, accuracy=1))  # the second worker's result
    assert rm.set("late/1", Metrics(loss=1, accuracy=1), SetBehavior.KEEP_EXISTING) is False  # nothing lost
    assert rm.get("late/1", Metrics).loss == 2
    second.release()


def test_machines_whose_clocks_disagree_never_both_hold_a_claim(shared_store: ResultsManager, tmp_path: Path) -> None:
    rm = shared_store
    ahead = make_manager_like(rm, tmp_path)
    ops = ahead.backend._operations()
    real = ops.clock
    ops.clock = lambda: real() + timedelta(minutes=10)  # this machine's clock is ten minutes fast
    behind_claim = rm.claim("skew/1", lease=60)
    assert behind_claim is not None
    assert ahead.claim("skew/1", lease=60) is None  # by its own clock the claim ran out; by the store's, not
    ahead_claim = ahead.claim("skew/2", lease=60)
    assert ahead_claim is not None
    assert abs(ahead_claim.expires_at - behind_claim.expires_at) < timedelta(seconds=5)  # one clock
    assert rm.claim("skew/2") is None
    behind_claim.release()
    ahead_claim.release()


def test_a_step_of_the_wall_clock_never_hands_a_live_claim_to_another_worker(
    shared_store: ResultsManager, tmp_path: Path
) -> None:
    """Before: the store's time was ours plus an offset, so a step of ours within the minute deleted live claims."""
    rm = shared_store
    other = make_manager_like(rm, tmp_path)
    ops = other.backend._operations()
    held = rm.claim("step/1", lease=600)
    assert held is not None
    assert other.claim("step/2", lease=60) is not None  # the store's clock measured: the minute starts
    real = ops.clock
    ops.clock = lambda: real() + timedelta(hours=1)  # NTP, or a resumed VM, steps this machine's clock
    assert other.claim("step/1", lease=600) is None  # still live by the store's clock
    assert [c["result_id"] for c in other.claims("step")] == ["step/1", "step/2"]
    held.release()


def make_manager_like(rm: ResultsManager, tmp_path: Path) -> ResultsManager:
    """A second manager (another connection) on the same store as ``rm``."""
    backend = rm.backend
    if hasattr(backend, "base_dir"):
        return ResultsManager(backend.base_dir)
    return ResultsManager(backend=type(backend)(backend._uri, database=backend.database_name))


# -- several processes ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sweep:
    target: str  # a directory or a URI
    database: str | None
    ids: list[str]
    out: str  # a directory: one file per worker lists what it computed
    lease: float = 60.0
    hold: float = 0.0  # seconds each computation takes


def _manager(sweep: Sweep, asynchronous: bool = False) -> Any:
    from mongo_results import AsyncMongoBackend, MongoBackend

    if sweep.database is None:
        return (AsyncResultsManager if asynchronous else ResultsManager)(sweep.target)
    if asynchronous:
        return AsyncResultsManager(backend=AsyncMongoBackend(sweep.target, database=sweep.database))
    return ResultsManager(backend=MongoBackend(sweep.target, database=sweep.database))


def _work(sweep: Sweep, name: str) -> None:
    register_model(Metrics)
    rm = _manager(sweep)
    with open(os.path.join(sweep.out, name), "a") as log:
        for claim in rm.claim_each(sweep.ids, lease=sweep.lease):
            with claim:
                log.write(claim.result_id + "\n")
                log.flush()
                time.sleep(sweep.hold)
                rm.set(claim.result_id, Metrics(loss=1, accuracy=0), SetBehavior.KEEP_EXISTING)


def _work_async(sweep: Sweep, name: str) -> None:
    async def main() -> None:
        register_model(Metrics)
        arm = _manager(sweep, asynchronous=True)
        with open(os.path.join(sweep.out, name), "a") as log:
            async for claim in arm.claim_each(sweep.ids, lease=sweep.lease):
                async with claim:
                    log.write(claim.result_id + "\n")
                    log.flush()
                    await arm.set(claim.result_id, Metrics(loss=1, accuracy=0), SetBehavior.KEEP_EXISTING)
        await arm.close()

    asyncio.run(main())


def _target(rm: ResultsManager) -> tuple[str, str | None]:
    backend = rm.backend
    if hasattr(backend, "base_dir"):
        return str(backend.base_dir), None
    return backend._uri, backend.database_name


def _computed(out: Path) -> list[str]:
    return [line for path in sorted(out.iterdir()) for line in path.read_text().splitlines()]


def test_six_processes_compute_every_id_exactly_once(shared_store: ResultsManager, tmp_path: Path) -> None:
    target, database = _target(shared_store)
    out = tmp_path / "computed"
    out.mkdir()
    sweep = Sweep(target, database, [f"grid/{i:03d}" for i in range(120)], str(out), hold=0.005)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_work_async if i % 2 else _work, args=(sweep, f"w{i}")) for i in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
        assert w.exitcode == 0
    computed = _computed(out)
    assert sorted(computed) == sweep.ids  # every id once: none twice, none left
    assert shared_store.missing(sweep.ids) == []
    assert len([p for p in out.iterdir() if p.read_text()]) > 1  # the work was shared
    assert shared_store.claims("grid") == []


def test_a_killed_workers_ids_are_taken_after_its_lease_and_its_results_kept(
    shared_store: ResultsManager, tmp_path: Path
) -> None:
    target, database = _target(shared_store)
    out = tmp_path / "computed"
    out.mkdir()
    ids = [f"kill/{i:02d}" for i in range(12)]
    slow = Sweep(target, database, ids, str(out), lease=2.0, hold=0.4)
    ctx = multiprocessing.get_context("spawn")
    victim = ctx.Process(target=_work, args=(slow, "victim"))
    victim.start()
    deadline = time.monotonic() + 120
    while len(_lines(out / "victim")) < 3 and time.monotonic() < deadline:  # two stored, one in hand
        time.sleep(0.05)
    os.kill(victim.pid or 0, signal.SIGKILL)
    victim.join()
    started = _lines(out / "victim")
    stored_by_victim = [rid for rid in started if shared_store.exists(rid)]
    held = [c["result_id"] for c in shared_store.claims("kill")]
    assert held and set(held) <= set(started)  # its claim is left behind, live until the lease runs out
    assert rm_claim_is_none(shared_store, held[0])
    rest = Sweep(target, database, ids, str(out))  # its loop waits for the dead worker's lease to run out
    _work(rest, "survivor")
    survivor = _lines(out / "survivor")
    assert set(held) <= set(survivor)  # the dead worker's ids were taken
    assert not set(stored_by_victim) & set(survivor)  # nothing it stored is computed again
    assert sorted(set(stored_by_victim) | set(survivor)) == ids and shared_store.missing(ids) == []


def rm_claim_is_none(rm: ResultsManager, rid: str) -> bool:
    return rm.claim(rid) is None


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_claims_add_no_command_to_set_get_exists_or_list_ids(tmp_path: Path) -> None:
    from mongo_results.core.commands import Command

    sent: list[Command] = []
    rm = ResultsManager("mongomock://localhost/claims_commands")
    execute = rm.backend._execute

    def counting(command: Command) -> Any:
        sent.append(command)
        return execute(command)

    register_model(Metrics)
    rm.set("warm", M)
    rm.backend._execute = counting

    def calls() -> list[str]:
        sent.clear()
        rm.set("c/1", M, SetBehavior.OVERWRITE, namespace="default")
        rm.get("c/1", namespace="default")
        rm.exists("c/1", namespace="default")
        rm.list_ids("c", namespace="default")
        return [type(c).__name__ for c in sent]

    before = calls()
    claim = rm.claim("c/2")
    assert claim is not None
    assert calls() == before
    claim.release()
    rm.clear()


def test_the_claims_live_beside_the_results_never_as_a_namespace(tmp_path: Path) -> None:
    rm = ResultsManager("mongomock://localhost/claims_shape")
    claim = rm.claim("x/1", lease=60)
    assert claim is not None
    db = rm.backend._database()
    assert "results._claims" in db.list_collection_names()
    doc = db["results._claims"].find_one()
    assert doc["_id"] == "x/1" and doc["owner"] == claim.owner and isinstance(doc["expires_at"], datetime)
    assert rm.list_ids() == [] and "_claims" not in str(rm.admin.doctor())
    with pytest.raises(ValueError, match="claims"):
        rm.set("y", M, namespace="_claims")
    claim.release()
    rm.clear()


def test_the_file_stores_claims_are_files_beside_the_results(tmp_path: Path) -> None:
    rm = ResultsManager(tmp_path / "store")
    claim = rm.claim("x/1", lease=60)
    assert claim is not None
    [path] = (tmp_path / "store" / ".mongo_results.claims").iterdir()
    assert claim.owner in path.read_text()
    assert rm.list_ids() == [] and rm.claims()[0]["expires_at"].tzinfo == timezone.utc
    claim.release()  # kept a minute, marked finished: a taker's claim says so in the same command
    assert '"finished": true' in path.read_text() and rm.claims() == []
    again = rm.claim("x/1", lease=60)  # nothing stored: the mark says nothing, and goes
    assert again is not None and [p.name for p in path.parent.iterdir()] == [path.name]
    assert again.owner in path.read_text() and "finished" not in path.read_text()


@pytest.mark.parametrize("content", ["", '{"_id": "cell/1", "owner": "w", "exp'])
def test_a_claim_file_cut_short_by_a_crash_holds_its_id_for_a_day_then_expires(tmp_path: Path, content: str) -> None:
    """Before: a raw JSONDecodeError from claim, claims() and the CLI, doctor said nothing, and the id was lost."""
    rm = ResultsManager(tmp_path / "store")
    taken = rm.claim("cell/1", lease=60)  # the claim file's name for this id
    assert taken is not None
    [path] = (tmp_path / "store" / ".mongo_results.claims").iterdir()
    path.write_text(content)  # what a rename without fsync leaves after a power loss
    assert rm.claim("cell/1") is None  # it may be a live claim: held for the longest lease
    assert [c.result_id for c in rm.claim_each(["cell/1", "cell/2"], wait=False)] == ["cell/2"]
    assert [c["result_id"] for c in rm.claims()] == ["cell/2"]
    assert not taken.renew()  # its holder learns it is no longer its own
    report = rm.admin.doctor()
    assert report.problems == 1 and "1 unreadable claim file(s)" in str(report)
    listed = run_cli(tmp_path / "store", "claims")
    assert listed.returncode == 0 and "cell/2" in listed.stdout and not listed.stderr
    progress = run_cli(tmp_path / "store", "progress", "cell", "--expect", "2")  # 1: the sweep is not done
    assert progress.returncode == 1 and "0/2 stored" in progress.stdout and not progress.stderr
    day_ago = time.time() - 86_401
    os.utime(path, (day_ago, day_ago))
    again = rm.claim("cell/1")  # a day later it counts as expired
    assert again is not None
    again.release()
    path.write_text(content)
    fixed = rm.admin.doctor(fix=True)
    assert fixed.problems == 0 and "fixed: removed 1 unreadable claim file(s)" in str(fixed)
    assert rm.claim("cell/1") is not None


def test_claim_files_and_their_directory_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    rm = ResultsManager(tmp_path / "store")
    assert rm.claim("x", lease=60) is not None
    assert synced == ["file", "directory"]


def run_cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONGO_RESULTS_URI": str(store)}
    return subprocess.run([sys.executable, "-m", "mongo_results", *args], env=env, capture_output=True, text=True)


def test_an_async_manager_awaits_its_claims(server_db: tuple[str, str]) -> None:
    from mongo_results import AsyncMongoBackend

    uri, name = server_db

    async def main() -> None:
        arm = AsyncResultsManager(backend=AsyncMongoBackend(uri, database=name))
        claim = await arm.claim("a/1", lease=60)
        assert isinstance(claim, AsyncClaim) and await arm.claim("a/1") is None
        assert await claim.renew(30) is True
        async with claim:
            await arm.set("a/1", M)
        assert await arm.missing(["a/1", "a/2"]) == ["a/2"]
        assert [c.result_id async for c in arm.claim_each(["a/1", "a/2"])] == ["a/2"]
        await arm.close()

    asyncio.run(main())


def test_a_claim_naming_a_namespace_the_store_cannot_have_leaves_nothing_behind() -> None:
    # Under the prefix "results._", namespace "claims" would be "results._claims": another store's claims.
    register_model(Metrics)
    rm = ResultsManager(
        backend=MongoBackend(f"mongomock://localhost/c_{uuid.uuid4().hex[:8]}", collection_prefix="results._")
    )
    with pytest.raises(InvalidNamespaceError):
        rm.claim("a", 10, namespace="claims")
    with pytest.raises(InvalidNamespaceError):
        list(rm.claim_each(["a", "b"], 10, namespace="claims"))
    assert rm.claims() == []
    claim = rm.claim("a", 10)
    assert claim is not None


def _beside(rm: ResultsManager) -> ResultsManager:
    """Another worker's manager on the same store."""
    target, database = _target(rm)
    if database is None:
        return ResultsManager(target)
    return ResultsManager(backend=MongoBackend(target, database=database))


def test_a_cell_another_worker_finished_after_the_look_is_passed_over(shared_store: ResultsManager) -> None:
    rm, other = shared_store, _beside(shared_store)
    cells = rm.claim_each(["c/0", "c/1", "c/2"], lease=60, wait=False)
    first = next(cells)  # the look for stored results covered all three
    assert first.result_id == "c/0"
    taken = other.claim("c/1", lease=60)
    assert taken is not None
    with taken:
        other.set("c/1", M)  # a plain set inside the block, as 0.1 code does
    with first:
        first.set(M)
    [last] = list(cells)
    assert last.result_id == "c/2"  # c/1 was finished since the look: not claimed again
    last.release()
    assert rm.missing(["c/0", "c/1", "c/2"]) == ["c/2"] and rm.claims() == [] and other.claims() == []
    other.close()


def test_a_result_stored_without_a_claim_is_passed_over_once_the_look_is_a_second_old(
    shared_store: ResultsManager,
) -> None:
    rm, other = shared_store, _beside(shared_store)
    now = [0.0]
    rm._ops().monotonic = lambda: now[0]  # the look's age, on the clock claim_each reads
    cells = rm.claim_each(["d/0", "d/1"], lease=60, wait=False)
    first = next(cells)
    other.set("d/1", M)  # no claim: no mark either
    now[0] += 2.0  # the look is two seconds old
    with first:
        first.set(M)
    assert list(cells) == []  # looked again before claiming d/1
    other.close()


def test_a_finished_mark_whose_result_is_gone_holds_nothing(shared_store: ResultsManager) -> None:
    rm = shared_store
    for claim in rm.claim_each(["f/0"], lease=60):
        with claim:
            claim.set(M)
    assert rm.delete("f/0")
    [back] = list(rm.claim_each(["f/0"], lease=60, wait=False))
    assert back.result_id == "f/0"  # its result deleted: the mark held nothing
    back.release()
    again = rm.claim("f/1", lease=60)
    assert again is not None
    with again:
        pass  # finished without storing anything
    assert again.renew() is False  # let go: a finished mark is renewed by no one
    assert rm.claim("f/1", lease=60) is not None


def test_a_claimed_cell_costs_three_round_trips_and_the_looks_are_shared(server_db: tuple[str, str]) -> None:
    uri, name = server_db
    log = CommandLog()
    rm = ResultsManager(backend=MongoBackend(uri, database=name, event_listeners=[log]))
    for claim in rm.claim_each(["warm/0"], lease=60):  # the store's collections and engine known
        with claim:
            claim.set(M)
    log.take()
    for claim in rm.claim_each([f"e/{i}" for i in range(5)], lease=60):
        with claim:
            claim.set(M)
    sent = log.take()
    # Once a call, the finished marks that have served go; the look (the namespaces, stored
    # results, failures); then per cell the claim's upsert, the result's insert and the release.
    assert sent == ["delete", "listCollections", "find", "find"] + ["update", "insert", "update"] * 5, sent
    rm.close()


def test_a_mark_let_go_is_removed_only_by_whoever_read_it(shared_store: ResultsManager) -> None:
    """C reads a stale mark; before C removes it, B takes the cell, stores it and lets go: C must not take it."""
    from mongo_results.core.commands import Delete

    register_model(Metrics)
    a, b, c = shared_store, _beside(shared_store), _beside(shared_store)
    first = a.claim("cell/1", lease=60)
    assert first is not None
    with first:
        pass  # let go, nothing stored: the mark says nothing
    executor = c.backend
    own = executor._execute

    def b_slips_in(command: Any) -> Any:
        if isinstance(command, Delete) and "finished" in command.filter and not b_done:
            b_done.append(True)
            taken = b.claim("cell/1", lease=60)
            assert taken is not None
            with taken:
                taken.set(Metrics(loss=2, accuracy=0))
        return own(command)

    b_done: list[bool] = []
    executor._execute = b_slips_in
    assert c.claim("cell/1", lease=60) is None and b_done  # B's result is stored: nothing to take
    assert a.get("cell/1", Metrics).loss == 2
    b.close()
    c.close()


def test_a_cell_that_failed_after_the_look_is_not_offered_past_its_attempts(shared_store: ResultsManager) -> None:
    rm, other = shared_store, _beside(shared_store)
    cells = rm.claim_each(["m/0", "m/1"], lease=60, max_attempts=1, wait=False)
    first = next(cells)  # the look counted no failure of m/1
    failing = other.claim("m/1", lease=60, max_attempts=1)
    assert failing is not None
    with pytest.raises(ZeroDivisionError), failing:
        1 / 0  # noqa: B018
    with first:
        first.set(M)
    assert list(cells) == []  # m/1 has failed once: its one attempt is spent
    assert [f["result_id"] for f in rm.failures()] == ["m/1"] and rm.claims() == []
    other.close()
