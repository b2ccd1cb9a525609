"""A manager's administrative calls, grouped as ``manager.admin``: the stored form, upgrades, checks.

The calls a sweep needs are the manager's own; these are for whoever looks after the store
(imports and exports, model upgrades, ``doctor``, sharding). Each builds one of the core's
operations and hands it to its manager, as the manager's own methods do, and
``AsyncAdmin`` derives its methods from ``Admin``'s the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from .core.behaviors import SetBehavior
from .core.doctor import Report, diagnose
from .core.ids import ResultId
from .core.operations import Operation, Operations, StoredRecord
from .core.profiles import EngineProfile
from .core.sharding import ShardReport, shard
from .core.upgrade import Upgraded, upgrade
from .registry import DEFAULT_NAMESPACE
from .shells import Awaited, awaitable, streaming

__all__ = ["Admin", "AsyncAdmin"]

R = TypeVar("R")


class _Manager(Protocol):
    """What the administrative calls need of their manager (a layer above: named, not imported)."""

    _executor: Any

    def _ops(self) -> Operations: ...
    def _run(self, operation: Operation[Any], /) -> Any: ...
    def _stream(self, operation: Operation[Any], /) -> Iterator[Any]: ...
    def _handle(self, value: Any, /) -> Any: ...


class _Bound:
    """What both admins hold: their manager, whose store's operations they build."""

    def __init__(self, manager: _Manager) -> None:
        self._manager = manager

    def _ops(self) -> Operations:
        return self._manager._ops()

    def __repr__(self) -> str:
        return f"{self._manager!r}.admin"


class Admin(_Bound):
    """``manager.admin``: the administrative calls on a manager's store.

    Args:
        manager: The manager whose store they act on.
    """

    def _run(self, operation: Operation[R]) -> R:
        result: R = self._manager._run(operation)
        return result

    def _stream(self, operation: Operation[Any]) -> Iterator[Any]:
        return self._manager._stream(operation)

    def documents(
        self, prefix: ResultId | None = None, namespace: str | None = None, *, with_data: bool = True
    ) -> list[dict[str, Any]]:
        """Read the stored documents (envelope and encoded data) under ``prefix``, for inspection.

        Args:
            prefix: Whole leading segments of the ids; None for every result.
            namespace: The namespace to read; None reads every namespace.
            with_data: Include each document's encoded ``data``; False reads the envelopes only.

        Returns:
            The documents as stored (``_id``, ``model_type``, ``namespace``, ``data``...), sorted
            by id.

        Raises:
            InvalidIdError: ``prefix`` breaks the id rules (a ``ValueError``).
        """
        return self._run(self._ops().documents(prefix, namespace, with_data=with_data))

    def iter_documents(
        self,
        prefix: ResultId | None = None,
        namespace: str | None = None,
        *,
        with_data: bool = True,
        batch_size: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Iterate over the stored documents under ``prefix``, read page by page.

        [`documents`][mongo_results.admin.Admin.documents] for stores too large to hold in memory.

        Args:
            prefix: Whole leading segments of the ids; None for every result.
            namespace: The namespace to read; None reads every namespace.
            with_data: Include each document's encoded ``data``; False reads the envelopes only.
            batch_size: Documents read per round trip.

        Yields:
            The documents as stored, in id order.

        Raises:
            InvalidIdError: ``prefix`` breaks the id rules (a ``ValueError``).
        """
        return self._stream(self._ops().iter_documents(prefix, namespace, batch_size, with_data=with_data))

    def store(
        self,
        result_id: ResultId,
        model_type: str,
        data: Mapping[str, Any],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        exact_times: Sequence[Mapping[str, str]] | None = None,
    ) -> bool:
        """Store data already in stored form (an export, a file tree) with ``set``'s semantics.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            model_type: The model's name, as stored (need not be registered).
            data: The encoded data, as [`documents`][mongo_results.admin.Admin.documents]
                returns it.
            behavior: What to do when a result is already stored under the id.
            namespace: The namespace to store into.
            created_at: The creation time to keep (an export's), for a result this call creates;
                None for now. The file store keeps a file's modification time only.
            updated_at: The update time to keep; None for now.
            exact_times: The document's ``exact_times``, the text of each datetime in ``data``
                that a BSON date does not hold (see [Storage](../storage.md#storage-in-mongodb)).

        Returns:
            True if written, False if skipped, as for [`set`][mongo_results.ResultsManager.set].

        Raises:
            ResultExistsError: As for ``set`` (a ``FileExistsError``).
            InvalidIdError: The id breaks the id rules (a ``ValueError``).
            InvalidNamespaceError: The namespace cannot name a collection (a ``ValueError``).
            DocumentTooLargeError: The result is over the store's size limit (a ``ValueError``).
        """
        return self._run(
            self._ops().store(
                result_id,
                model_type,
                data,
                behavior,
                namespace,
                created_at=created_at,
                updated_at=updated_at,
                times=exact_times,
            )
        )

    def _store_many(self, records: Sequence[StoredRecord], behavior: SetBehavior) -> list[bool | BaseException]:
        """``store`` for many records in bulk writes (the command line's import)."""
        return self._run(self._ops().store_many(records, behavior))

    def upgrade(
        self,
        prefix: ResultId | None,
        model_class: type[BaseModel],
        convert: Callable[[dict[str, Any]], BaseModel],
        namespace: str | None = None,
        *,
        batch_size: int = 500,
        old_types: Iterable[str] = (),
    ) -> Upgraded:
        """Rewrite the results under ``prefix`` into ``model_class`` as ``convert(old data)``.

        Only results stored as ``model_class`` (by its name) that no longer load into it, and
        results stored as one of ``old_types``, are rewritten; results of other model types
        are left alone and counted in ``other_types``. Results that load are left alone, so it
        can run again after an interruption; each rewrite is atomic and skips a result written
        meanwhile (see [When a model changes](../changed-models.md)).

        Args:
            prefix: Whole leading segments of the ids to upgrade; None for every result.
            model_class: The model's current class; rewritten results are stored as it.
            convert: Takes a result's stored data (a dict, as decoded) and returns a
                ``model_class`` instance.
            namespace: The namespace to upgrade; None upgrades every namespace.
            batch_size: Results read per round trip.
            old_types: Former model type names (a renamed class) whose results are rewritten too.

        Returns:
            The counts of what was done; see ``Upgraded``.

        Raises:
            UpgradeFailedError: ``convert`` raised; names the result and how many were rewritten
                before it (a ``ValueError``).
            WrongTypeError: ``convert`` returned something other than a ``model_class`` instance.
            InvalidArgumentError: ``old_types`` is not a list of names.
            InvalidIdError: ``prefix`` breaks the id rules (a ``ValueError``).
        """
        return self._run(upgrade(self._ops(), prefix, model_class, convert, namespace, batch_size, old_types=old_types))

    def engine(self) -> EngineProfile:
        """Describe the store's engine and what it can hold, asked of the server once per connection.

        Returns:
            The engine's profile: its name and version (MongoDB, FerretDB, the embedded or the
            file store) and the features it supports.
        """
        return self._run(self._ops().learn_engine())

    def doctor(self, fix: bool = False) -> Report:
        """Check the store's namespaces, indexes, validators and large-result files.

        Args:
            fix: Create the missing indexes and validators and remove leftovers (files of
                killed writers, orphaned large-result files); False only reports.

        Returns:
            One line per check and the number of problems left; ``str()`` of it is the report.
        """
        return self._run(diagnose(self._ops(), fix=fix))

    def shard(self, namespace: str | None = None, key: Mapping[str, Any] | None = None) -> ShardReport:
        """Shard the store's collections on a sharded cluster, on keys that keep every id unique.

        Each namespace collection on ``_id``, the GridFS chunks of results over 16 MiB on their
        file id, the claims on their id: ranged where the server supports it, hashed where it
        supports only hashed keys. A collection already sharded on such a key is left as it is;
        one sharded on another key is reported as a problem and never changed. On a server that
        is not a sharded cluster, and on the file and embedded stores, there is nothing to shard
        and the report says so.

        Args:
            namespace: Also shard this namespace's collection, creating it if it does not exist yet
                (a namespace created later is sharded by calling ``shard`` again).
            key: The results' shard key: ``{"_id": 1}`` (ranged) or ``{"_id": "hashed"}``; None
                for ranged where the server supports it, else hashed.

        Returns:
            One line per collection, the key each is sharded on, and the number of problems left;
            ``str()`` of it is the report.

        Raises:
            InvalidShardKeyError: ``key`` is not ``_id``: two shards could each hold a result under
                one id (a ``ValueError``), before any I/O.
            InvalidNamespaceError: ``namespace`` is invalid (a ``ValueError``).
        """
        return self._run(shard(self._ops(), namespace, key))


class AsyncAdmin(Awaited, _Bound):
    """``manager.admin`` of an [`AsyncResultsManager`][mongo_results.AsyncResultsManager]: ``Admin``'s calls, awaited.

    ``iter_documents`` returns an async iterator (``async for``); every other method is a
    coroutine. Parameters, results and errors are those of the same method of ``Admin``.

    Args:
        manager: The manager whose store they act on.
    """

    @property
    def _executor(self) -> Any:
        return self._manager._executor

    def _handle(self, value: Any) -> Any:
        return self._manager._handle(value)

    documents = awaitable(Admin.documents)
    iter_documents = streaming(Admin.iter_documents)
    store = awaitable(Admin.store)
    upgrade = awaitable(Admin.upgrade)
    engine = awaitable(Admin.engine)
    doctor = awaitable(Admin.doctor)
    shard = awaitable(Admin.shard)
