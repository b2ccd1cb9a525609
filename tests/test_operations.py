"""The core's operations driven with canned replies: every decision, no server, no mongomock, no files."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import bson
import pytest
from pydantic import BaseModel

from mongo_results import MongoResultsError, ResultExistsError, ResultNotFoundError, SetBehavior
from mongo_results.core.commands import (
    EVERY,
    BuildInfo,
    BulkWrite,
    CollectionOptions,
    Command,
    Conflict,
    CountDocuments,
    CreateCollection,
    Delete,
    DeleteFile,
    Drop,
    DuplicateKey,
    EnsureIndexes,
    Find,
    FindOne,
    Insert,
    ListCollections,
    NoMatch,
    PutFile,
    Refused,
    SetValidator,
    ShardCollection,
    ShardKeyOf,
    Together,
    Update,
    Upsert,
    Written,
)
from mongo_results.core.encoding import encode_model
from mongo_results.core.operations import Operations
from mongo_results.core.profiles import EMBEDDED, FILES, EngineProfile
from mongo_results.core.runloop import run, stream
from mongo_results.core.validators import validator_command
from mongo_results.errors import (
    AmbiguousResultError,
    InvalidNamespaceError,
    SetManyInterruptedError,
    StoreUnavailableError,
)
from mongo_results.registry import MODELS

from .models import Metrics

T0 = datetime(2026, 5, 4, 3, 2, 1, tzinfo=timezone.utc)
A = Metrics(loss=1, accuracy=1)


def is_probe(command: Command) -> bool:
    """The query that proves a collection holds this store's results (or another store's)."""
    return isinstance(command, FindOne) and "namespace" in command.filter and "model_type" in command.filter


class Canned:
    """An executor that records each command and answers it with ``answer``.

    Ownership probes are answered "ours, and no other store's", shard-key reads "not
    sharded", and neither is recorded, unless
    ``probes`` is set: most tests are about what follows them.
    """

    def __init__(self, answer: Callable[[Command], Any], *, probes: bool = False) -> None:
        self.answer = answer
        self.probes = probes
        self.sent: list[Command] = []
        self.together: list[int] = []  # the size of each Together, its commands recorded in sent

    def __call__(self, command: Command) -> Any:
        if isinstance(command, Together):  # a server's executor sends them at once; here, in turn
            self.together.append(len(command.commands))
            return [self(c) for c in command.commands]
        if isinstance(command, ShardKeyOf) and not self.probes:
            return None  # not sharded: the read of the shard key before a collection's first write
        if is_probe(command) and not self.probes:
            assert isinstance(command, FindOne)
            mine = command.filter["namespace"] == command.collection.removeprefix("results.")
            return {"_id": "x"} if mine else None
        self.sent.append(command)
        return self.answer(command)

    def kinds(self) -> list[str]:
        return [type(c).__name__ for c in self.sent]


MONGODB = EngineProfile.from_build_info({"version": "8.0.4"})


def ops(engine: EngineProfile | None = MONGODB, **options: Any) -> Operations:
    clock = options.pop("clock", lambda: T0)
    return Operations("results.", models=MODELS, engine=engine, clock=clock, **options)


def doc(rid: str, ns: str = "default", loss: float = 1.0) -> dict[str, Any]:
    return {
        "_id": rid,
        "path": rid.split("/"),
        "model_type": "Metrics",
        "namespace": ns,
        "data": {"loss": loss, "accuracy": 1.0, "step": 0},
    }


def test_the_engine_is_asked_once_and_a_namespace_prepared_once() -> None:
    core = ops(engine=None)

    def answer(c: Command) -> Any:
        if isinstance(c, BuildInfo):
            return {"version": "8.0.4"}
        return None if isinstance(c, CollectionOptions) else Written(True)  # no such collection yet

    answers = Canned(answer)
    assert run(core.set("a", A, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answers)
    assert run(core.set("b", A, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answers)
    # A new collection gets its validator from create: both in MongoDB's readWrite role.
    assert answers.kinds() == ["BuildInfo", "CollectionOptions", "CreateCollection", "Insert", "Insert"]
    create = answers.sent[2]
    assert isinstance(create, CreateCollection) and set(create.options) == {"validator", "validationAction"}
    insert = answers.sent[-1]
    assert isinstance(insert, Insert) and insert.collection == "results.default"
    assert insert.document["created_at"] == insert.document["updated_at"] == T0  # the clock passed in


def test_an_existing_collection_with_its_validator_costs_one_read() -> None:
    core = ops()
    command, _ = validator_command("results.default", "default", "warn", MONGODB, MODELS)
    entry = {"options": {"validator": command["validator"], "validationAction": "warn"}}
    answers = Canned(lambda c: entry if isinstance(c, CollectionOptions) else Written(True))
    assert run(core.set("a", A, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answers)
    assert answers.kinds() == ["CollectionOptions", "Insert"]  # no collMod: it is in dbAdmin, not readWrite


def test_a_refused_collmod_is_one_note_and_the_write_goes_on() -> None:
    notes: list[str] = []
    core = ops(note=notes.append)
    entry = {"options": {"validator": {"$jsonSchema": {"bsonType": "object"}}, "validationAction": "warn"}}

    def answer(c: Command) -> Any:
        if isinstance(c, CollectionOptions):
            return entry
        if isinstance(c, SetValidator):
            return Refused(13, "not authorized on t to execute command { collMod: ... }")
        return Written(True)

    answers = Canned(answer)
    assert run(core.set("a", A, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answers)
    assert run(core.set("b", A, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answers)
    assert answers.kinds() == ["CollectionOptions", "SetValidator", "Insert", "Insert"]
    [note] = notes
    assert "collMod (in MongoDB's dbAdmin role, not in readWrite)" in note and "doctor --fix" in note


def test_no_validator_where_the_engine_has_none_or_it_is_off() -> None:
    for core in (ops(EngineProfile.from_build_info({"ferretdbVersion": "v1.24.2"})), ops(validation="off")):
        answers = Canned(lambda c: Written(True))
        run(core.set("a", A, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answers)
        assert not any(isinstance(c, SetValidator) for c in answers.sent)


def decide(
    core: Operations, rid: str, model: BaseModel, behavior: SetBehavior, replies: list[Any], expected: object
) -> Canned:
    """Run one set against these replies, check what it returned or raised; the commands it sent."""
    core.indexed.add("default")
    queue = list(replies)
    answers = Canned(lambda c: queue.pop(0))
    operation = core.set(rid, model, behavior, None, False, secrets=False)
    if expected is ResultExistsError:
        with pytest.raises(ResultExistsError):
            run(operation, answers)
    else:
        assert run(operation, answers) is expected
    assert not queue, "every reply was asked for"
    return answers


SAME = {"_id": "a", "digest": encode_model(A).digest}  # what a swap reads: the stored digest (and file)
OTHER = {"_id": "a", "digest": "0" * 32}
LARGE = {"_id": "a", "digest": "0" * 32, "gridfs": {"file_id": "F"}}


@pytest.mark.parametrize(
    ("behavior", "replies", "expected", "sent"),
    [
        (SetBehavior.RAISE_IF_EXISTS, [DuplicateKey()], ResultExistsError, "Insert"),
        (SetBehavior.KEEP_EXISTING, [DuplicateKey()], False, "Insert"),
        # A guarded write that meets the id reads what is there and swaps exactly that.
        (SetBehavior.SKIP_IF_EXISTS, [DuplicateKey(), SAME], False, "Upsert FindOne"),
        (SetBehavior.SKIP_IF_EXISTS, [DuplicateKey(), OTHER, Written(False)], True, "Upsert FindOne Update"),
        (SetBehavior.SKIP_IF_EXISTS, [DuplicateKey(), None, Written(True)], True, "Upsert FindOne Insert"),
        (SetBehavior.RAISE_IF_DIFFERENT, [DuplicateKey(), DuplicateKey()], ResultExistsError, "Upsert Upsert"),
        (SetBehavior.RAISE_IF_DIFFERENT, [Written(False)], True, "Upsert"),  # same content matched
        # The probe in the upsert's own command settles what the duplicate key means.
        (SetBehavior.SKIP_IF_EXISTS, [DuplicateKey(probed=True)], False, "Upsert"),
        (SetBehavior.RAISE_IF_DIFFERENT, [DuplicateKey(probed=True)], ResultExistsError, "Upsert"),
        (SetBehavior.OVERWRITE, [Written(False)], True, "Upsert"),
        # A result with a file in the way: replaced, then its file removed.
        (
            SetBehavior.OVERWRITE,
            [DuplicateKey(), LARGE, Written(False), True],
            True,
            "Upsert FindOne Update DeleteFile",
        ),
        # Changed between the read and the swap: read again.
        (
            SetBehavior.OVERWRITE,
            [DuplicateKey(), OTHER, NoMatch(), None, Written(True)],
            True,
            "Upsert FindOne Update FindOne Insert",
        ),
    ],
)
def test_replies_decide_set(behavior: SetBehavior, replies: list[Any], expected: object, sent: str) -> None:
    answers = decide(ops(), "a", A, behavior, replies, expected)
    assert answers.kinds() == sent.split()


def test_a_swap_pins_the_file_it_read() -> None:
    core = ops()
    core.indexed.add("default")
    queue: list[Any] = [DuplicateKey(), LARGE, Written(False), True]
    answers = Canned(lambda c: queue.pop(0))
    run(core.set("a", A, SetBehavior.OVERWRITE, None, False, secrets=False), answers)
    update = answers.sent[2]
    assert isinstance(update, Update)
    assert update.filter == {"_id": "a", "gridfs.file_id": "F"}  # OVERWRITE: whatever the content
    assert update.update[-1] == {"$project": {"gridfs": 0}}  # the new result is small: no file named
    removed = answers.sent[3]
    assert isinstance(removed, DeleteFile) and removed.file_id == "F"


def test_an_id_held_by_another_namespace_in_one_keyspace_is_named() -> None:
    core = ops(FILES)
    answers = Canned(lambda c: DuplicateKey("other"))
    with pytest.raises(ResultExistsError, match="namespace 'other'"):
        run(core.set("a", A, SetBehavior.OVERWRITE, None, False, secrets=False), answers)
    assert answers.kinds().count("Upsert") == 1  # not repeated as a lost race: the answer is final


def test_set_many_reads_each_bulk_reply_per_item() -> None:
    core = ops()
    core.indexed.add("default")
    answers = Canned(lambda c: [Written(True), DuplicateKey(), Refused(121, "bad document")])
    items = [("a", A), ("b", A), ("c", A), ("d", "not a model")]
    outcomes = run(core.set_many(items, SetBehavior.RAISE_IF_EXISTS, None, secrets=False), answers)  # type: ignore[arg-type]
    assert outcomes[0] is True
    assert isinstance(outcomes[1], ResultExistsError)
    assert isinstance(outcomes[2], ValueError) and "code 121" in str(outcomes[2])
    assert isinstance(outcomes[3], TypeError)  # refused before anything was sent
    assert answers.kinds() == ["BulkWrite"]


def test_set_many_interrupted_says_what_is_known() -> None:
    core = ops(EngineProfile(max_write_batch=2))
    core.indexed.add("default")

    def answer(command: Command) -> Any:
        if isinstance(command, BulkWrite) and command.writes[0].document["_id"] == "c":  # type: ignore[union-attr]
            raise StoreUnavailableError("gone")
        return [Written(True)] * 2

    items = [(rid, A) for rid in "abcdef"]
    with pytest.raises(SetManyInterruptedError) as info:
        run(core.set_many(items, SetBehavior.RAISE_IF_EXISTS, None, secrets=False), Canned(answer))
    assert info.value.outcomes[:2] == [True, True]
    assert info.value.unknown == [2, 3] and info.value.not_sent == [4, 5]


@pytest.mark.parametrize("behavior", [SetBehavior.RAISE_IF_EXISTS, SetBehavior.OVERWRITE, SetBehavior.SKIP_IF_EXISTS])
def test_a_write_rolled_back_for_another_transaction_is_sent_again(behavior: SetBehavior) -> None:
    """Under load the sharded cluster's PostgreSQL rolled back one of two writers ("deadlock detected")."""
    core = ops()
    core.indexed.add("default")
    queue: list[Any] = [Conflict("deadlock detected"), Conflict("deadlock detected"), Written(True)]
    answers = Canned(lambda c: queue.pop(0))
    assert run(core.set("a", A, behavior, None, False, secrets=False), answers) is True
    assert len(answers.sent) == 3 and len({repr(c) for c in answers.sent}) == 1  # the same write, again
    endless = Canned(lambda c: Conflict("deadlock detected"))
    with pytest.raises(MongoResultsError, match="rolled back 8 times"):
        run(core.set("b", A, behavior, None, False, secrets=False), endless)


def test_an_overwrite_on_a_server_is_a_pipeline_of_literal_values() -> None:
    """A server's $set keeps a value equal as a number to the new one; a pipeline's $literal does not."""
    core = ops()
    core.indexed.add("default")
    answers = Canned(lambda c: Written(False))
    run(core.set("a", A, SetBehavior.OVERWRITE, None, False, secrets=False), answers)
    [upsert] = answers.sent
    assert isinstance(upsert, Upsert) and isinstance(upsert.update, list)
    stage, dropped = upsert.update
    assert dropped == {"$project": {"exact_times": 0}}  # no datetime a date cannot hold: none kept from before
    assert stage["$set"]["data"] == {"$literal": {"loss": 1.0, "accuracy": 1.0, "step": 0}}
    assert stage["$set"]["created_at"] == {"$ifNull": ["$created_at", T0]}  # kept when it exists


def test_exists_reuses_a_recent_listing_and_lists_again_before_not_found() -> None:
    clock = [0.0]
    core = ops(monotonic=lambda: clock[0])
    collections = ["results.default"]
    stored: dict[str, dict[str, Any]] = {}

    def answer(command: Command) -> Any:
        if isinstance(command, ListCollections):
            return list(collections)
        assert isinstance(command, FindOne)
        return stored.get(command.collection + "/" + command.filter["_id"])

    answers = Canned(answer)
    assert not run(core.exists("a", None), answers)
    assert answers.kinds() == ["ListCollections", "FindOne"]
    collections.append("results.new")  # another process writes into a new namespace
    stored["results.new/a"] = doc("a", "new")
    answers.sent.clear()
    assert run(core.exists("a", None), answers)
    assert answers.kinds() == ["FindOne", "ListCollections", "FindOne"]  # the old listing said nothing
    answers.sent.clear()
    assert run(core.get("a", Metrics, None), answers) == A
    assert answers.kinds() == ["ListCollections", "FindOne", "FindOne"]  # get lists every time
    assert answers.together == [3]  # at once with the reads of what it listed last
    clock[0] = 5.0  # the listing is old: listed again first
    answers.sent.clear()
    run(core.exists("a", None), answers)
    assert answers.kinds()[0] == "ListCollections"


@pytest.mark.parametrize("engine", [MONGODB, EMBEDDED])
def test_reads_without_a_namespace_send_the_listing_with_the_reads_of_the_last_one(engine: EngineProfile) -> None:
    collections = ["results.default", "results.gone"]
    stored = {"results.default/a": doc("a"), "results.gone/a": doc("a", "gone"), "results.new/a": doc("a", "new")}

    def answer(command: Command) -> Any:
        if isinstance(command, ListCollections):
            return list(collections)
        if isinstance(command, Find):
            found = stored.get(command.collection + "/a")
            return [{"_id": "a"}] if found else []
        assert isinstance(command, FindOne)
        return stored.get(command.collection + "/" + command.filter["_id"])

    core, answers = ops(engine), Canned(answer)
    assert run(core.list_ids(None, None), answers) == ["a"]  # nothing listed yet: the listing first
    assert answers.kinds() == ["ListCollections", "Find", "Find"] and answers.together == []
    collections[1:] = ["results.new"]  # since: "gone" dropped, "new" created by another process
    answers.sent.clear()
    with pytest.raises(AmbiguousResultError) as ambiguous:  # "default" and "new": what is there now
        run(core.get("a", None, None), answers)
    assert ambiguous.value.namespaces == ("default", "new")
    if engine is EMBEDDED:  # in this process: no round trip to save, each in turn
        assert answers.kinds() == ["ListCollections", "FindOne", "FindOne"] and answers.together == []
        return
    # The listing and the reads of "default" and "gone" at once; "new" read after; "gone" left out.
    assert answers.together == [3]
    assert [(type(c).__name__, getattr(c, "collection", None)) for c in answers.sent] == [
        ("ListCollections", None),
        ("FindOne", "results.default"),
        ("FindOne", "results.gone"),
        ("FindOne", "results.new"),
    ]
    answers.sent.clear()
    assert run(core.get("a", Metrics, "default"), answers) == A  # a named namespace: one read, no listing
    assert answers.kinds() == ["FindOne"] and answers.together == [3]


def test_get_in_several_namespaces_is_ambiguous_unless_the_class_says() -> None:
    answers = Canned(lambda c: ["results.x", "results.y"] if isinstance(c, ListCollections) else doc("a"))
    with pytest.raises(AmbiguousResultError):
        run(ops().get("a", None, None), answers)
    with pytest.raises(ResultNotFoundError):
        run(ops().get("a", None, None), Canned(lambda c: [] if isinstance(c, ListCollections) else None))


def test_iter_results_merges_namespaces_in_id_order_page_by_page() -> None:
    stored = {
        "results.x": [doc(f"r/{i}", "x") for i in (1, 4, 5, 8)],
        "results.y": [doc(f"r/{i}", "y") for i in (2, 3, 6, 7, 9)],
    }

    def answer(command: Command) -> Any:
        if isinstance(command, ListCollections):
            return list(stored)
        assert isinstance(command, Find) and command.sort == (("_id", 1),) and command.limit == 2
        after = command.filter["_id"].get("$gt", "")
        return [d for d in stored[command.collection] if d["_id"] > after][:2]

    answers = Canned(answer)
    ids = [rid for rid, _ in stream(ops().iter_results("r", Metrics, None, 2), answers)]
    assert ids == [f"r/{i}" for i in range(1, 10)]
    assert answers.kinds().count("Find") == 6  # two ids a page, one short page per namespace


def test_one_keyspace_stores_are_read_with_one_query() -> None:
    answers = Canned(lambda c: [doc("a/1", "x"), doc("a/2", "y")])
    assert run(ops(FILES).list_ids("a", None), answers) == ["a/1", "a/2"]
    assert [(type(c).__name__, getattr(c, "collection", None)) for c in answers.sent] == [("Find", EVERY)]


def test_clear_drops_only_collections_with_nothing_foreign() -> None:
    def answer(command: Command) -> Any:
        if isinstance(command, ListCollections):
            return ["results.mine", "results.shared", "other"]
        if isinstance(command, FindOne):
            return {"_id": 1} if command.collection == "results.shared" else None
        return 0

    answers = Canned(answer)
    run(ops().clear(), answers)
    done = [(type(c).__name__, getattr(c, "collection", None)) for c in answers.sent if isinstance(c, (Drop, Delete))]
    # ... and the claims end with the results.
    assert done == [
        ("Drop", "results.mine"),
        ("Delete", "results.shared"),
        ("Delete", "results._claims"),
        ("Delete", "results._failures"),
    ]


def test_indexes_are_asked_for_once_per_namespace_and_path_index_on_request() -> None:
    answers = Canned(lambda c: Written(True))
    core = ops(path_index=True)
    for rid in ("a", "b"):
        run(core.set(rid, A, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answers)
    [ensure] = [c for c in answers.sent if isinstance(c, EnsureIndexes)]
    assert [i.name for i in ensure.indexes] == ["path_segments"]  # _id_ every collection has


def test_set_many_one_command_per_update_stops_at_the_first_unreachable_store() -> None:
    core = ops(EngineProfile.from_build_info({"ferretdbVersion": "v1.24.2"}))  # no per-item bulk update replies
    core.indexed.add("default")

    def answer(command: Command) -> Any:
        if isinstance(command, Upsert) and command.filter["_id"] == "b":
            raise StoreUnavailableError("gone")
        return Written(True)

    answers = Canned(answer)
    with pytest.raises(SetManyInterruptedError) as info:
        run(core.set_many([(r, A) for r in "abcd"], SetBehavior.OVERWRITE, None, secrets=False), answers)
    assert info.value.outcomes[0] is True and info.value.unknown == [1] and info.value.not_sent == [2, 3]
    assert len(answers.sent) == 2  # nothing more is sent to a store that is gone


def test_upgrade_leaves_a_result_written_meanwhile() -> None:
    from pydantic import BaseModel

    from mongo_results.core.commands import NoMatch, Update
    from mongo_results.core.upgrade import upgrade

    class New(BaseModel):
        loss: float
        epochs: int

    stored = [doc("u/1") | {"digest": "d1"}, doc("u/2") | {"digest": "d2"}]

    def answer(command: Command) -> Any:
        if isinstance(command, ListCollections):
            return ["results.default"]
        if isinstance(command, CountDocuments):
            return 0  # no other model type under the prefix
        if isinstance(command, Find):
            return stored if "$gte" in command.filter["_id"] else []
        assert isinstance(command, Update) and command.filter["digest"] in ("d1", "d2")
        return NoMatch() if command.filter["_id"] == "u/2" else Written(False)  # u/2 changed since it was read

    answers = Canned(answer)
    convert = lambda old: New(loss=old["loss"], epochs=1)  # noqa: E731
    done = run(upgrade(ops(), "u", New, convert, None, 10, secrets=False, old_types=["Metrics"]), answers)
    assert (done.upgraded, done.current, done.changed_meanwhile) == (1, 0, 1)
    [first, _] = [c for c in answers.sent if isinstance(c, Update)]
    assert first.replace and first.update["model_type"] == "New" and first.update["updated_at"] == T0


# -- results over the engine's document limit (lowered here to 4 KiB) -------------------------


class Trace(BaseModel):
    name: str
    points: list[float]


LIMITED = dataclasses.replace(MONGODB, max_document=4096)
TRACE = Trace(name="t", points=[float(i) for i in range(2000)])


@pytest.mark.parametrize(
    ("behavior", "replies", "expected", "sent"),
    [
        (SetBehavior.RAISE_IF_EXISTS, [Written(True), Written(True)], True, "PutFile Insert"),
        # Nothing stored: the file just written goes.
        (
            SetBehavior.RAISE_IF_EXISTS,
            [Written(True), DuplicateKey(), True],
            ResultExistsError,
            "PutFile Insert DeleteFile",
        ),
        (SetBehavior.KEEP_EXISTING, [Written(True), DuplicateKey(), True], False, "PutFile Insert DeleteFile"),
        (SetBehavior.RAISE_IF_DIFFERENT, [Written(True), Written(False), True], True, "PutFile Upsert DeleteFile"),
        # A write that may replace a result reads which file it has first.
        (SetBehavior.OVERWRITE, [Written(True), None, Written(True)], True, "PutFile FindOne Insert"),
        (
            SetBehavior.OVERWRITE,
            [Written(True), LARGE, Written(False), True],
            True,
            "PutFile FindOne Update DeleteFile",
        ),
    ],
)
def test_a_large_result_is_written_file_first(
    behavior: SetBehavior, replies: list[Any], expected: object, sent: str
) -> None:
    answers = decide(ops(LIMITED), "t", TRACE, behavior, replies, expected)
    assert answers.kinds() == sent.split()
    put = answers.sent[0]
    assert isinstance(put, PutFile) and bson.decode(put.content) == {"points": TRACE.points}
    write = answers.sent[-1] if "DeleteFile" not in sent else answers.sent[-2]
    document = getattr(write, "document", None) or getattr(write, "update", {})
    if isinstance(write, Insert):
        assert document["data"] == {"name": "t"} and document["gridfs"]["file_id"] == put.file_id
    deleted = [c.file_id for c in answers.sent if isinstance(c, DeleteFile)]
    assert deleted == (
        [] if "DeleteFile" not in sent else ["F"] if behavior is SetBehavior.OVERWRITE else [put.file_id]
    )


def test_a_large_result_is_read_with_its_file_and_again_if_it_was_replaced() -> None:
    core = ops(LIMITED)
    stored = {"_id": "t", "path": ["t"], "model_type": "Trace", "namespace": "default", "data": {"name": "t"}}
    first = {**stored, "gridfs": {"file_id": "F1", "fields": ["points"]}}
    second = {**stored, "gridfs": {"file_id": "F2", "fields": ["points"]}}
    content = bson.encode({"points": TRACE.points})
    queue: list[Any] = [["results.default"], first, NoMatch(), second, content]
    answers = Canned(lambda c: queue.pop(0))
    assert run(core.get("t", Trace, None), answers) == TRACE
    assert answers.kinds() == ["ListCollections", "FindOne", "GetFile", "FindOne", "GetFile"]


def test_delete_removes_the_file_of_the_version_it_deleted() -> None:
    core = ops(LIMITED)
    queue: list[Any] = [["results.default"], LARGE, True]
    answers = Canned(lambda c: queue.pop(0))
    assert run(core.delete("a", None), answers) is True
    # The deleted document names its file: one command finds and deletes it, whatever raced with it.
    assert answers.kinds() == ["ListCollections", "FindAndDelete", "DeleteFile"]
    removed = answers.sent[2]
    assert isinstance(removed, DeleteFile) and removed.file_id == "F"


def test_delete_of_nothing_is_one_command() -> None:
    core = ops(LIMITED)
    answers = Canned(lambda c: None)
    assert run(core.delete("a", "default"), answers) is False
    assert answers.kinds() == ["FindAndDelete"]


def test_set_many_writes_large_results_alone_and_small_ones_in_bulk() -> None:
    core = ops(LIMITED)
    core.indexed.add("default")
    answers = Canned(lambda c: [Written(True)] if isinstance(c, BulkWrite) else Written(True))
    small = Trace(name="s", points=[1.0])
    assert run(core.set_many({"t": TRACE, "s": small}, SetBehavior.RAISE_IF_EXISTS, None, secrets=False), answers) == [
        True,
        True,
    ]
    assert answers.kinds() == ["PutFile", "Insert", "BulkWrite"]


def test_stores_without_a_limit_keep_large_results_whole() -> None:
    core = ops(FILES)
    answers = Canned(lambda c: Written(True))
    run(core.set("t", TRACE, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answers)
    assert answers.kinds() == ["Insert"]
    insert = answers.sent[-1]
    assert isinstance(insert, Insert) and insert.document["data"]["points"] == TRACE.points


def test_a_large_result_that_loses_every_race_removes_its_file() -> None:
    core = ops(LIMITED)
    core.indexed.add("default")
    # Each swap reads a version that another writer replaces before the update lands.
    answers = Canned(
        lambda c: LARGE if isinstance(c, FindOne) else NoMatch() if isinstance(c, Update) else Written(True)
    )
    with pytest.raises(MongoResultsError, match="kept losing races"):
        run(core.set("t", TRACE, SetBehavior.OVERWRITE, None, False, secrets=False), answers)
    put = answers.sent[0]
    assert isinstance(put, PutFile)
    assert answers.kinds()[-1] == "DeleteFile" and answers.sent[-1].file_id == put.file_id  # type: ignore[union-attr]


def test_a_collection_is_a_namespace_only_once_one_of_its_results_names_it() -> None:
    holds = {"results.runs": "runs", "results.v2.default": "default"}  # the second: a nested store's

    def answer(command: Command) -> Any:
        if isinstance(command, ListCollections):
            return ["results.runs", "results.v2.default", "results.empty"]
        if isinstance(command, FindOne) and is_probe(command):
            held, named = holds.get(command.collection), command.filter["namespace"]
            other = isinstance(named, dict)  # {"$ne": ns}: a result of another namespace, before a first write
            found = held is not None and (held != named["$ne"] if other else held == named)
            return {"_id": "r", "namespace": held} if found else None
        return []

    core = ops()
    answers = Canned(answer, probes=True)
    assert run(core.namespaces(), answers) == ["runs"]
    assert sum(map(is_probe, answers.sent)) == 3
    answers.sent.clear()
    assert run(core.namespaces(), answers) == ["runs"]
    assert sum(map(is_probe, answers.sent)) == 2  # "runs" is proven for this connection; the others are asked again
    with pytest.raises(InvalidNamespaceError, match="another store"):
        run(core.set("a", A, SetBehavior.OVERWRITE, "v2.default", False, secrets=False), answers)
    assert not any(isinstance(c, (Upsert, EnsureIndexes)) for c in answers.sent)  # nothing written


# -- Sharding: which key for which collection, refused keys, and writes into a collection sharded wrongly.


def _sharding_answers(keys: dict[str, dict[str, Any]], refuse_ranged: bool) -> Canned:
    def answer(command: Command) -> Any:
        if isinstance(command, ShardKeyOf):
            return keys.get(command.collection)
        if isinstance(command, ShardCollection):
            ranged = all(v != "hashed" for _, v in command.key)
            if ranged and refuse_ranged:
                return Refused(1, "only shard keys that use hashed are supported")
            keys[command.collection] = dict(command.key)
            return Written(True)
        if isinstance(command, FindOne):
            return {"_id": "x"}
        if isinstance(command, ListCollections):
            return ["results.default"]
        return Written(True)

    return Canned(answer, probes=True)


@pytest.mark.parametrize("refuse_ranged", [False, True])
def test_shard_takes_id_ranged_where_supported_else_hashed_and_is_a_no_op_the_second_time(refuse_ranged: bool) -> None:
    from mongo_results.core.sharding import shard

    keys: dict[str, dict[str, Any]] = {}
    answers = _sharding_answers(keys, refuse_ranged)
    report = run(shard(ops(), None), answers)
    if refuse_ranged:
        assert report.keys == {
            "results.default": {"_id": "hashed"},
            "results._gridfs.chunks": {"files_id": "hashed"},
            "results._claims": {"_id": "hashed"},
        }
    else:
        assert report.keys == {
            "results.default": {"_id": 1},
            "results._gridfs.chunks": {"files_id": 1, "n": 1},
            "results._claims": {"_id": 1},
        }
        [chunks] = [c for c in answers.sent if isinstance(c, ShardCollection) and "chunks" in c.collection]
        assert chunks.unique  # the unique {files_id, n} index GridFS relies on
    assert report.problems == 0
    answers.sent.clear()
    again = run(shard(ops(), None), answers)
    assert again.keys == report.keys and "already sharded" in str(again)
    assert not any(isinstance(c, ShardCollection) for c in answers.sent)


def test_shard_refuses_a_key_that_is_not_id_before_any_io() -> None:
    from mongo_results.core.sharding import shard
    from mongo_results.errors import InvalidShardKeyError

    answers = Canned(lambda c: pytest.fail(f"sent {c}"))
    for key in ({"digest": "hashed"}, {"_id": 1, "namespace": 1}, {"path": 1}, "_id"):
        with pytest.raises(InvalidShardKeyError, match=r"two shards could each hold|a mapping") as info:
            run(shard(ops(), None, key), answers)
        assert isinstance(info.value, ValueError)


def test_shard_reports_a_collection_sharded_on_another_key_and_leaves_it() -> None:
    from mongo_results.core.sharding import shard

    keys: dict[str, dict[str, Any]] = {"results.default": {"digest": "hashed"}}
    report = run(shard(ops(), None), _sharding_answers(keys, True))
    assert report.problems == 1 and 'results.default: problem: sharded on {digest: "hashed"}' in str(report)
    assert keys["results.default"] == {"digest": "hashed"}


def test_shard_on_a_server_without_sharding_has_nothing_to_do() -> None:
    from mongo_results.core.commands import EnableSharding
    from mongo_results.core.sharding import shard

    answers = Canned(
        lambda c: Refused(59, "no such command: 'enableSharding'") if isinstance(c, EnableSharding) else None
    )
    report = run(shard(ops(), None), answers)
    assert report.problems == 0 and "not a sharded cluster" in str(report) and answers.kinds() == ["EnableSharding"]
    for engine in (FILES, EngineProfile.from_build_info({"ferretdbVersion": "v1.24.2"})):
        answers = Canned(lambda c: pytest.fail(f"sent {c}"))
        assert "nothing to shard" in str(run(shard(ops(engine), None), answers))


@pytest.mark.parametrize("key", [{"_id": 1}, {"_id": "hashed"}, {"namespace": 1}, {"digest": "hashed"}])
def test_a_write_into_a_collection_sharded_on_another_key_is_refused_before_sending(key: dict[str, Any]) -> None:
    from mongo_results.errors import InvalidShardKeyError

    def answer(command: Command) -> Any:
        if isinstance(command, ShardKeyOf):
            return key
        return None if isinstance(command, FindOne) else Written(True)  # no other store's results there

    answers = Canned(answer, probes=True)
    core = ops()

    def act() -> Any:
        return run(core.set("a", A, SetBehavior.RAISE_IF_EXISTS, None, False, secrets=False), answers)

    if key in ({"_id": 1}, {"_id": "hashed"}):
        assert act() is True
    else:
        with pytest.raises(InvalidShardKeyError, match="RAISE_IF_EXISTS could succeed twice"):
            act()
        assert not any(isinstance(c, (Insert, EnsureIndexes)) for c in answers.sent)
