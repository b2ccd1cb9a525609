"""The two managers: the ``results_manager`` API, written once, run synchronously or awaited.

Each public method of :class:`ResultsManager` builds one of the core's operations and hands it
to ``_run`` (or ``_stream``); :class:`AsyncResultsManager` takes the very same methods and awaits
their operations instead, so the two cannot drift apart. ``tests/test_layout.py`` holds every
public method to that shape.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Generic, Literal, ParamSpec, TypedDict, overload

from pydantic import BaseModel
from typing_extensions import TypeVar, Unpack

from .core.behaviors import SetBehavior
from .core.claims import ClaimState, live_claims, missing, release, renew, take, take_each
from .core.commands import Note
from .core.drive import run, run_async, stream, stream_async
from .core.ids import ResultId
from .core.maintenance import Report, Upgraded, diagnose, upgrade
from .core.operations import Operation, Operations
from .core.profiles import EngineProfile
from .core.tables import frame
from .registry import DEFAULT_NAMESPACE
from .stores import AsyncExecutor, AsyncSeedBackend, Executor, SeedBackend, open_backend
from .terminal import ProgressBar

__all__ = ["AsyncClaim", "AsyncResultsManager", "Claim", "ResultsManager"]

T = TypeVar("T", bound=BaseModel, default=BaseModel)
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
P = ParamSpec("P")

# -- What both managers hold: the store, its executor, and the options every read shares.


OnError = Literal["raise", "skip"]
Where = Mapping[str, Any] | None
Skipped = list[tuple[str, Exception]]


class Query(TypedDict, total=False):
    """``find``'s options after its three positional ones."""

    namespace: str | None
    sort: Iterable[tuple[str, int]] | None
    limit: int | None
    on_error: OnError
    skipped: list[tuple[str, Exception]] | None


def tell(note: Note) -> None:
    """A note of the core's as a warning, attributed to the first caller outside this package."""
    frame, level = sys._getframe(0), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").partition(".")[0] == __package__:
        frame, level = frame.f_back, level + 1
    warnings.warn(note.message, note.category, stacklevel=level)


def _executor(backend: Any, asynchronous: bool) -> Any:
    """A store runs the core's commands itself; a ``results_manager``-style backend is adapted."""
    if callable(getattr(backend, "execute", None)) and hasattr(backend, "operations"):
        return backend
    return AsyncSeedBackend(backend) if asynchronous else SeedBackend(backend)


class ManagerBase(Generic[T]):
    """What both managers hold: the store and its executor."""

    _asynchronous = False
    _executor: Any

    def __init__(
        self,
        base_dir: str | Path | None = None,
        create_if_missing: bool = True,
        backend: Any = None,
        *,
        store_secrets: bool = False,
    ) -> None:
        if backend is None:
            backend = open_backend(
                base_dir, create_if_missing, asynchronous=self._asynchronous, store_secrets=store_secrets
            )
        self.backend = backend

    @property
    def backend(self) -> Any:
        """The store (or ``results_manager``-style backend) results go to; assign to switch storage."""
        return self._backend

    @backend.setter
    def backend(self, value: Any) -> None:
        self._backend = value
        self._executor = _executor(value, self._asynchronous)

    def _ops(self) -> Operations:
        return self._executor.operations()  # type: ignore[no-any-return]

    def _handle(self, value: Any) -> Any:
        """What an operation returns, as the caller gets it: a claim comes bound to this manager."""
        return self._claim_type(self, value) if isinstance(value, ClaimState) else value

    _claim_type: Callable[[Any, ClaimState], Any]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend!r})"


# -- The async manager's methods from the sync manager's: the same operation, awaited instead of run.


def awaitable(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """``method`` of ResultsManager, its operation awaited instead of run."""

    async def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        operation: Any = method(self, *args, **kwargs)  # AsyncResultsManager._run hands the operation back
        result: R = self._handle(await run_async(operation, self._executor.execute, tell))
        return result

    functools.update_wrapper(call, method)
    return call


def streaming(method: Callable[Concatenate[Any, P], Iterator[R]]) -> Callable[Concatenate[Any, P], AsyncIterator[R]]:
    """A streaming ``method`` of ResultsManager as an async iterator."""

    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        async def items() -> AsyncIterator[R]:
            # Built on first iteration, inside the loop that iterates: it chooses the client.
            async for item in stream_async(method(self, *args, **kwargs), self._executor.execute, tell):  # type: ignore[arg-type]
                yield self._handle(item)

        return items()

    functools.update_wrapper(call, method)
    return call


def _worker() -> str:
    """Who takes a claim: this machine and process (read at each claim: a forked worker is another)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _ClaimView:
    """What both kinds of claim show."""

    def __init__(self, manager: Any, state: ClaimState) -> None:
        self._manager, self._state = manager, state

    @property
    def result_id(self) -> str:
        """The canonical id of the result this claim is for."""
        return self._state.result_id

    @property
    def namespace(self) -> str | None:
        """The namespace the claim was taken in (None: the result is looked for in every namespace)."""
        return self._state.namespace

    @property
    def owner(self) -> str:
        """``host:pid:random``: the worker that holds the claim."""
        return self._state.owner

    @property
    def expires_at(self) -> datetime:
        """When the lease runs out, on the store's clock (aware UTC)."""
        return self._state.expires_at

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.result_id!r}, owner={self.owner!r}, expires_at={self.expires_at:%H:%M:%S})"


class Claim(_ClaimView):
    """The right to compute one result, from :meth:`ResultsManager.claim` or ``claim_each``.

    Hold it while computing and store the result; leaving a ``with`` block lets it go. If the
    work outlasts the lease, :meth:`renew` it; once ``renew`` answers False another worker
    may be computing the same result (the set behaviour then decides, as always).
    """

    def renew(self, lease: float | timedelta | None = None) -> bool:
        """Extend the lease from now by ``lease`` (the claim's own when None).

        Returns:
            False once the claim is lost: it ran out and another worker took it, or the result is stored.
        """
        manager: ResultsManager[Any] = self._manager
        return bool(manager._run(renew(manager._ops(), self._state, lease)))

    def release(self) -> None:
        """Let the claim go, so that another worker may take the id (if its result is not stored)."""
        manager: ResultsManager[Any] = self._manager
        manager._run(release(manager._ops(), self._state))

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class AsyncClaim(_ClaimView):
    """:class:`Claim` for asyncio code: ``await claim.renew()``, ``await claim.release()``, ``async with claim``."""

    async def renew(self, lease: float | timedelta | None = None) -> bool:
        """See :meth:`Claim.renew`."""
        manager: AsyncResultsManager[Any] = self._manager
        return bool(await run_async(renew(manager._ops(), self._state, lease), manager._executor.execute, tell))

    async def release(self) -> None:
        """See :meth:`Claim.release`."""
        manager: AsyncResultsManager[Any] = self._manager
        await run_async(release(manager._ops(), self._state), manager._executor.execute, tell)

    async def __aenter__(self) -> AsyncClaim:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class ResultsManager(ManagerBase[T]):
    """Stores and retrieves pydantic results under path-like ids.

    ``base_dir`` is a directory (the file store) or a ``mongodb://``,
    ``mongodb+srv://`` or ``mongomock://`` URI; ``backend`` overrides both: a
    store object (``MongoBackend(client)``) or a ``results_manager``-style backend.
    """

    _executor: Executor
    _claim_type = Claim

    def _run(self, operation: Operation[R]) -> R:
        return self._handle(run(operation, self._executor.execute, tell))  # type: ignore[no-any-return]

    def _stream(self, operation: Operation[Any]) -> Iterator[Any]:
        return map(self._handle, stream(operation, self._executor.execute, tell))

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """Store ``data`` under ``result_id``.

        Returns:
            True if written, False if skipped (SKIP_IF_EXISTS with the same content stored).

        Raises:
            FileExistsError: a result exists (RAISE_IF_EXISTS) or differs (RAISE_IF_DIFFERENT).
            ValueError: an invalid id or namespace, or a value that cannot be stored faithfully.
        """
        return self._run(self._ops().set(result_id, data, behavior, namespace, strict_namespace))

    @overload
    def get(self, result_id: ResultId, model_class: None = None, namespace: str | None = None) -> T: ...
    @overload
    def get(self, result_id: ResultId, model_class: type[M], namespace: str | None = None) -> M: ...
    def get(self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None) -> Any:
        """The result stored under ``result_id``, validated into its model class.

        Raises:
            FileNotFoundError: nothing is stored under the id.
            ValueError: the model type is not registered, or several namespaces hold the id.
            pydantic.ValidationError: the stored data no longer fits the model.
        """
        return self._run(self._ops().get(result_id, model_class, namespace))

    def set_many(
        self,
        items: Mapping[str, BaseModel] | Iterable[tuple[ResultId, BaseModel]],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        *,
        raise_errors: bool = False,
    ) -> list[bool | BaseException]:
        """``set`` for many results, in as few round trips as the store allows.

        Returns, per item, what ``set`` would return or the exception it would raise;
        ``raise_errors=True`` raises the first exception instead (the others are stored).
        """
        return self._run(self._ops().set_many(items, behavior, namespace, raise_errors=raise_errors))

    @overload
    def get_many(
        self,
        result_ids: Sequence[ResultId],
        model_class: None = None,
        namespace: str | None = None,
        *,
        on_error: OnError = "raise",
        skipped: Skipped | None = None,
    ) -> list[T]: ...
    @overload
    def get_many(
        self,
        result_ids: Sequence[ResultId],
        model_class: type[M],
        namespace: str | None = None,
        *,
        on_error: OnError = "raise",
        skipped: Skipped | None = None,
    ) -> list[M]: ...
    def get_many(
        self,
        result_ids: Sequence[ResultId],
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        *,
        on_error: OnError = "raise",
        skipped: Skipped | None = None,
    ) -> list[Any]:
        """The results under ``result_ids``, in order; FileNotFoundError names the ids that are missing.

        ``on_error="skip"`` leaves out results that no longer load (the model changed, the type
        is not registered), warns with their count, and appends ``(id, error)`` to ``skipped``.
        """
        return self._run(self._ops().get_many(result_ids, model_class, namespace, on_error=on_error, skipped=skipped))

    @overload
    def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: None = None,
        namespace: str | None = None,
        batch_size: int = 500,
        *,
        on_error: OnError = "raise",
        skipped: Skipped | None = None,
    ) -> Iterator[tuple[str, T]]: ...
    @overload
    def iter_results(
        self,
        prefix: ResultId | None,
        model_class: type[M],
        namespace: str | None = None,
        batch_size: int = 500,
        *,
        on_error: OnError = "raise",
        skipped: Skipped | None = None,
    ) -> Iterator[tuple[str, M]]: ...
    @overload
    def iter_results(
        self,
        prefix: ResultId | None = None,
        *,
        model_class: type[M],
        namespace: str | None = None,
        batch_size: int = 500,
        on_error: OnError = "raise",
        skipped: Skipped | None = None,
    ) -> Iterator[tuple[str, M]]: ...
    def iter_results(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        batch_size: int = 500,
        *,
        on_error: OnError = "raise",
        skipped: Skipped | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """``(id, result)`` under ``prefix`` in id order, read in batches so memory stays flat.

        ``on_error`` and ``skipped`` as for :meth:`get_many`.
        """
        return self._stream(
            self._ops().iter_results(prefix, model_class, namespace, batch_size, on_error=on_error, skipped=skipped)
        )

    @overload
    def find(
        self, where: Where = None, prefix: ResultId | None = None, model_class: None = None, **options: Unpack[Query]
    ) -> Iterator[tuple[str, T]]: ...
    @overload
    def find(
        self, where: Where, prefix: ResultId | None, model_class: type[M], **options: Unpack[Query]
    ) -> Iterator[tuple[str, M]]: ...
    @overload
    def find(
        self, where: Where = None, prefix: ResultId | None = None, *, model_class: type[M], **options: Unpack[Query]
    ) -> Iterator[tuple[str, M]]: ...
    def find(
        self,
        where: Where = None,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        **options: Unpack[Query],
    ) -> Iterator[tuple[str, Any]]:
        """``(id, result)`` of the results whose fields match ``where`` (MongoDB's query language).

        ``where`` names the model's own fields (dotted into nested models and lists); values
        are encoded as stored. In id order unless ``sort`` gives ``(field, 1 | -1)`` pairs.
        """
        return self._stream(self._ops().find(where, prefix, model_class, **options))

    def to_dataframe(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        where: Where = None,
        *,
        batch_size: int = 500,
    ) -> Any:
        """A pandas DataFrame: one row per result, indexed by id, with the model's fields as columns.

        Nested models become dotted columns (``config.lr``), as ``pandas.json_normalize`` makes them;
        read page by page, with a progress bar on a terminal for large reads.
        """
        return self._run(
            frame(self._ops(), prefix, model_class, namespace, where, batch_size, ProgressBar("dataframe"))
        )

    def exists(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Whether a result is stored under ``result_id``."""
        return self._run(self._ops().exists(result_id, namespace))

    def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]:
        """Sorted ids equal to or under ``prefix`` (whole segments); all ids when None."""
        return self._run(self._ops().list_ids(prefix, namespace))

    def delete(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Delete a result; True if one was deleted."""
        return self._run(self._ops().delete(result_id, namespace))

    def clear(self) -> None:
        """Delete every stored result (documents and files that are not results are left alone)."""
        return self._run(self._ops().clear())

    def documents(
        self, prefix: ResultId | None = None, namespace: str | None = None, *, with_data: bool = True
    ) -> list[dict[str, Any]]:
        """The stored documents (envelope and encoded data) under a prefix, sorted by id: for inspection."""
        return self._run(self._ops().documents(prefix, namespace, with_data=with_data))

    def iter_documents(
        self,
        prefix: ResultId | None = None,
        namespace: str | None = None,
        *,
        with_data: bool = True,
        batch_size: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """:meth:`documents` read page by page, for stores too large to hold in memory."""
        return self._stream(self._ops().iter_documents(prefix, namespace, batch_size, with_data=with_data))

    def store(
        self,
        result_id: ResultId,
        model_type: str,
        data: Mapping[str, Any],
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> bool:
        """Store data already in stored form (an export or a file tree) with ``set``'s semantics."""
        return self._run(self._ops().store(result_id, model_type, data, behavior, namespace))

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
        """Rewrite results under ``prefix`` into ``model_class`` as ``convert(old data)``.

        Only results stored as ``model_class`` (by its name) that no longer load into it, and
        results stored as one of ``old_types``, are rewritten; results of other model types
        are left alone and counted in ``other_types``. Results that load are left alone, so it
        can run again after an interruption; each rewrite is atomic and skips a result written
        meanwhile (see the README's "When a model changes").

        Raises:
            UpgradeFailedError: ``convert`` raised (a ValueError naming the result and the count done).
            WrongTypeError: ``convert`` returned something other than a ``model_class``.
        """
        return self._run(upgrade(self._ops(), prefix, model_class, convert, namespace, batch_size, old_types=old_types))

    def engine(self) -> EngineProfile:
        """What the store is and can hold (asked of the server once per connection)."""
        return self._run(self._ops().learn_engine())

    def doctor(self, fix: bool = False) -> Report:
        """Check the store's namespaces, indexes and validators; ``fix`` creates what is missing."""
        return self._run(diagnose(self._ops(), fix=fix))

    def missing(self, result_ids: Iterable[ResultId], namespace: str | None = None) -> list[str]:
        """The ids that have no stored result: what a sweep has left to compute.

        Args:
            result_ids: the ids of the sweep (strings or segment lists).
            namespace: look in this namespace only; None looks in every namespace.

        Returns:
            The canonical ids, in the order given and without repeats, that are not stored:
            one query per namespace and 1,000 ids.

        Raises:
            ValueError: an invalid id or namespace (before any I/O).
        """
        return self._run(missing(self._ops(), result_ids, namespace))

    def claim(
        self, result_id: ResultId, lease: float | timedelta = 600.0, namespace: str | None = None
    ) -> Claim | None:
        """Take the right to compute ``result_id`` for ``lease`` seconds, atomically.

        Args:
            result_id: the result this worker would compute.
            lease: seconds (or a timedelta), over 0 and at most a day; renew a claim to hold it longer.
            namespace: where the result would be stored; None looks for it in every namespace.

        Returns:
            A :class:`Claim` (let it go with ``release()`` or a ``with`` block), or None when the
            result is stored or another worker's claim on it is live.

        Raises:
            ValueError: a lease that is not a positive number of seconds up to a day, an invalid id
                or namespace (before any I/O).
        """
        return self._run(take(self._ops(), result_id, lease, namespace, _worker()))  # type: ignore[no-any-return]

    def claim_each(
        self, result_ids: Iterable[ResultId], lease: float | timedelta = 600.0, namespace: str | None = None
    ) -> Iterator[Claim]:
        """A :class:`Claim` for each id, in order, that this worker could take; stored or held ids are passed over.

        Each claim is taken when the loop asks for the next one, so its lease starts with its work::

            for claim in rm.claim_each(grid, lease=3600):
                with claim:
                    rm.set(claim.result_id, compute(claim.result_id))

        Args:
            result_ids: the ids of the sweep.
            lease: as for :meth:`claim`.
            namespace: as for :meth:`claim`.

        Raises:
            ValueError: as for :meth:`claim`.
        """
        return self._stream(take_each(self._ops(), result_ids, lease, namespace, _worker()))

    def claims(self, prefix: ResultId | None = None) -> list[dict[str, Any]]:
        """The live claims under ``prefix`` (by id): ``result_id``, ``namespace``, ``owner``, ``expires_at``
        and ``expires_in`` (seconds), for watching a sweep."""
        return self._run(live_claims(self._ops(), prefix))

    def close(self) -> None:
        """Release the connections the store opened, if it holds any."""
        # Not an operation: releasing clients is the store's own business, sync or awaited.
        self._executor.close()

    def __enter__(self) -> ResultsManager[T]:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()


class AsyncResultsManager(ManagerBase[T]):
    """:class:`ResultsManager` for asyncio code: the same constructor, every method awaitable.

    A ``mongodb://`` URI uses PyMongo's ``AsyncMongoClient`` (one per event loop);
    ``backend=AsyncMongoBackend(motor_client)`` uses Motor; ``mongomock://`` is the
    embedded store; a path is the file store, its disk I/O kept off the event loop.
    """

    _asynchronous = True
    _executor: AsyncExecutor
    _claim_type = AsyncClaim

    def _run(self, operation: Operation[R]) -> Operation[R]:
        return operation  # awaited by the method's wrapper

    _stream = _run

    set = awaitable(ResultsManager.set)
    set_many = awaitable(ResultsManager.set_many)
    exists = awaitable(ResultsManager.exists)
    list_ids = awaitable(ResultsManager.list_ids)
    delete = awaitable(ResultsManager.delete)
    clear = awaitable(ResultsManager.clear)
    documents = awaitable(ResultsManager.documents)
    store = awaitable(ResultsManager.store)
    engine = awaitable(ResultsManager.engine)
    doctor = awaitable(ResultsManager.doctor)
    upgrade = awaitable(ResultsManager.upgrade)
    get_many = awaitable(ResultsManager.get_many)
    iter_results = streaming(ResultsManager.iter_results)
    iter_documents = streaming(ResultsManager.iter_documents)
    find = streaming(ResultsManager.find)
    to_dataframe = awaitable(ResultsManager.to_dataframe)
    missing = awaitable(ResultsManager.missing)
    claims = awaitable(ResultsManager.claims)

    async def claim(
        self, result_id: ResultId, lease: float | timedelta = 600.0, namespace: str | None = None
    ) -> AsyncClaim | None:
        """See :meth:`ResultsManager.claim`; the claim's ``renew`` and ``release`` are awaited."""
        operation = take(self._ops(), result_id, lease, namespace, _worker())
        return self._handle(await run_async(operation, self._executor.execute, tell))  # type: ignore[no-any-return]

    def claim_each(
        self, result_ids: Iterable[ResultId], lease: float | timedelta = 600.0, namespace: str | None = None
    ) -> AsyncIterator[AsyncClaim]:
        """See :meth:`ResultsManager.claim_each`: ``async for claim in arm.claim_each(...)``, ``async with claim``."""

        async def claims() -> AsyncIterator[AsyncClaim]:
            operation = take_each(self._ops(), result_ids, lease, namespace, _worker())
            async for state in stream_async(operation, self._executor.execute, tell):
                yield self._handle(state)

        return claims()

    @overload
    async def get(self, result_id: ResultId, model_class: None = None, namespace: str | None = None) -> T: ...
    @overload
    async def get(self, result_id: ResultId, model_class: type[M], namespace: str | None = None) -> M: ...
    async def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> Any:
        """See :meth:`ResultsManager.get`."""
        # Written out, not derived: a wrapper typed by ParamSpec would lose the overload that
        # returns the manager's own T (``await arm.get(id)`` would be Any to a type checker).
        return await run_async(self._ops().get(result_id, model_class, namespace), self._executor.execute, tell)

    async def close(self) -> None:
        """Close the clients the store opened (those of this event loop, and of loops that have ended)."""
        await self._executor.close()

    async def __aenter__(self) -> AsyncResultsManager[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
