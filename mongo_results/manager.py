"""The two managers: the ``results_manager`` API, written once, run synchronously or awaited.

Each public method of ``ResultsManager`` builds one of the core's operations and hands it
to ``_run`` (or ``_stream``); ``AsyncResultsManager`` takes the very same methods and awaits
their operations instead, so the two cannot drift apart. ``tests/test_layout.py`` holds every
public method to that shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, ParamSpec, TypedDict, overload

from pydantic import BaseModel
from typing_extensions import TypeVar, Unpack

from .admin import Admin, AsyncAdmin
from .core.behaviors import SetBehavior
from .core.claims import ClaimState, finish, live_claims, missing, release, renew, take, take_each
from .core.failures import failures as failed_cells
from .core.failures import reset as forget_failures
from .core.ids import ResultId
from .core.operations import Operation, Operations
from .core.runloop import run, run_async, stream, stream_async
from .core.tables import IdFields, Rows, frame, polars_frame, table
from .heartbeat import Heartbeat, heartbeat
from .shells import Awaited, awaitable, moved, streaming, tell
from .stores import AdaptedBackend, AsyncAdaptedBackend, AsyncExecutor, Executor, open_backend
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


def _executor(backend: Any, asynchronous: bool) -> Any:
    """A store runs the core's commands itself; a ``results_manager``-style backend is adapted."""
    if callable(getattr(backend, "_execute", None)) and hasattr(backend, "_operations"):
        return backend
    return AsyncAdaptedBackend(backend) if asynchronous else AdaptedBackend(backend)


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
        return self._executor._operations()  # type: ignore[no-any-return]

    def _handle(self, value: Any) -> Any:
        """What an operation returns, as the caller gets it: a claim comes bound to this manager."""
        return self._claim_type(self, value) if isinstance(value, ClaimState) else value

    _claim_type: Callable[[Any, ClaimState], Any]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend!r})"


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
    """The right to compute one result, from ``ResultsManager.claim`` or ``claim_each``.

    Use it as a ``with`` block around the work. While the block runs, a thread renews the
    lease every third of it, so a short lease suits long work: a worker that dies or stops
    holds the cell for one lease at most. Leaving the block lets the claim go; if the block
    raised an ``Exception``, the failure is recorded first (see
    [failures][mongo_results.ResultsManager.failures]) and the exception goes on unchanged.
    Outside a ``with`` block nothing renews it: ``renew`` by hand. Once ``renew`` answers False
    another worker may be computing the same result (the set behaviour then decides, as
    always). Made by the manager, not by users.

    Args:
        manager: the manager that took the claim; ``renew`` and ``release`` go through it.
        state: the claim as the core took it (id, namespace, owner, expiry, lease).
    """

    _beat: Heartbeat | None = None

    def renew(self, lease: float | timedelta | None = None) -> bool:
        """Extend the lease from now by ``lease`` (the claim's own when None).

        Args:
            lease: seconds or a timedelta, over 0 and at most a day; None renews by the claim's lease.

        Returns:
            False once the claim is lost: it ran out and another worker took it, or the result is stored.
        """
        manager: ResultsManager[Any] = self._manager
        return bool(manager._run(renew(manager._ops(), self._state, lease)))

    def release(self) -> None:
        """Let the claim go, so that another worker may take the id (if its result is not stored)."""
        manager: ResultsManager[Any] = self._manager
        manager._run(release(manager._ops(), self._state))

    def set(self, data: BaseModel, behavior: SetBehavior = SetBehavior.KEEP_EXISTING) -> bool:
        """Store the result this claim is for, under its id and namespace.

        The claim's namespace, or the model's registered one when the claim named none: where
        ``missing`` and ``claim`` look, so the sweep's loop never stores where it does not look.

        Args:
            data: The result, an instance of a registered pydantic model.
            behavior: What to do when a result is already stored (by default whatever is there stays).

        Returns:
            What [`set`][mongo_results.ResultsManager.set] returns.
        """
        manager: ResultsManager[Any] = self._manager
        return manager.set(self.result_id, data, behavior, self.namespace)

    def __enter__(self) -> Claim:
        self._beat = Heartbeat(self.renew, self._state.lease.total_seconds() / 3)
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        if self._beat is not None:
            self._beat.stop()
            self._beat = None
        manager: ResultsManager[Any] = self._manager
        manager._run(finish(manager._ops(), self._state, error))


class AsyncClaim(_ClaimView):
    """[Claim][mongo_results.Claim] for asyncio code: await its `renew` and `release`, or use `async with`.

    Inside ``async with claim:`` a task renews the lease every third of it.

    Args:
        manager: the async manager that took the claim; ``renew`` and ``release`` go through it.
        state: the claim as the core took it (id, namespace, owner, expiry, lease).
    """

    _beat: asyncio.Task[None] | None = None

    async def renew(self, lease: float | timedelta | None = None) -> bool:
        """Extend the lease from now by ``lease`` (the claim's own when None).

        Args:
            lease: seconds or a timedelta, over 0 and at most a day; None renews by the claim's lease.

        Returns:
            False once the claim is lost: it ran out and another worker took it, or the result is stored.
        """
        manager: AsyncResultsManager[Any] = self._manager
        return bool(await run_async(renew(manager._ops(), self._state, lease), manager._executor._execute, tell))

    async def release(self) -> None:
        """Let the claim go, so that another worker may take the id (if its result is not stored)."""
        manager: AsyncResultsManager[Any] = self._manager
        await run_async(release(manager._ops(), self._state), manager._executor._execute, tell)

    async def set(self, data: BaseModel, behavior: SetBehavior = SetBehavior.KEEP_EXISTING) -> bool:
        """Store the result this claim is for, under its id and namespace, as [Claim.set][mongo_results.Claim.set].

        Args:
            data: The result, an instance of a registered pydantic model.
            behavior: What to do when a result is already stored (by default whatever is there stays).

        Returns:
            What ``set`` returns.
        """
        manager: AsyncResultsManager[Any] = self._manager
        return bool(await manager.set(self.result_id, data, behavior, self.namespace))

    async def __aenter__(self) -> AsyncClaim:
        self._beat = asyncio.get_running_loop().create_task(
            heartbeat(self.renew, self._state.lease.total_seconds() / 3)
        )
        return self

    async def __aexit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        manager: AsyncResultsManager[Any] = self._manager
        await run_async(finish(manager._ops(), self._state, error), manager._executor._execute, tell)


class ResultsManager(ManagerBase[T]):
    """Stores and retrieves pydantic results under path-like ids.

    Ids are strings (``"sweep/lr=0.1/seed=3"``) or sequences of segments; see
    [`canonical_id`][mongo_results.canonical_id]. Results live in namespaces (one collection each);
    a result's namespace follows from its model's registration unless ``namespace`` is given.

    Every call that reaches a server may also raise
    [`StoreUnavailableError`][mongo_results.errors.StoreUnavailableError] (a ``ConnectionError``): no
    server answered within the server-selection timeout; or its subclass
    [`OutcomeUnknownError`][mongo_results.errors.OutcomeUnknownError]: the connection was lost after a
    write was sent, so it may have been applied.

    Args:
        base_dir: A directory (the file store, created unless ``create_if_missing`` is False) or a
            ``mongodb://``, ``mongodb+srv://`` or ``mongomock://`` URI (MongoDB, or the embedded
            in-process store). Ignored when ``backend`` is given.
        create_if_missing: Whether to create the file store's directory when it does not exist.
        backend: A store object ([`MongoBackend`][mongo_results.MongoBackend] built from a client,
            [`FileBackend`][mongo_results.FileBackend] with options) or a subclass of
            [`ResultsBackend`][mongo_results.ResultsBackend]; overrides ``base_dir``.
        store_secrets: Whether pydantic ``SecretStr``/``SecretBytes`` values may be stored (in
            clear text); without it they are refused with ``UnsupportedTypeError``.

    Raises:
        InvalidArgumentError: Neither ``base_dir`` nor ``backend`` is given (a ``ValueError``).
        InvalidUriError: ``base_dir`` is a URI of an unsupported scheme or with options the
            driver refuses (a ``ValueError``).
        StoreNotFoundError: The directory is missing and ``create_if_missing`` is False
            (a ``FileNotFoundError``).
        NotAStoreError: ``base_dir`` is a path to a file (a ``NotADirectoryError``).
    """

    _executor: Executor
    _claim_type = Claim

    def _run(self, operation: Operation[R]) -> R:
        return self._handle(run(operation, self._executor._execute, tell))  # type: ignore[no-any-return]

    def _stream(self, operation: Operation[Any]) -> Iterator[Any]:
        return map(self._handle, stream(operation, self._executor._execute, tell))

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
    ) -> bool:
        """Store ``data`` under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            data: The result, an instance of a registered pydantic model.
            behavior: What to do when a result is already stored under the id; see
                [`SetBehavior`][mongo_results.SetBehavior].
            namespace: The namespace to store into; None takes the model's registered namespace.
            strict_namespace: Refuse to guess when the model is registered in several
                non-default namespaces and ``namespace`` is None.

        Returns:
            True if written; False if not written because ``SKIP_IF_EXISTS`` found the same
            content stored, or ``KEEP_EXISTING`` found any result stored.

        Raises:
            ResultExistsError: A result is stored (``RAISE_IF_EXISTS``) or a different one is
                (``RAISE_IF_DIFFERENT``); a ``FileExistsError``.
            InvalidIdError: The id breaks the id rules (a ``ValueError``).
            InvalidNamespaceError: The namespace cannot name a collection (a ``ValueError``).
            ModelConflictError: ``strict_namespace`` and the model is in several namespaces.
            WrongTypeError: ``data`` is not a pydantic model (a ``TypeError``).
            UnsupportedTypeError: A value of a type that cannot be stored, or a secret without
                ``store_secrets`` (a ``TypeError``).
            LossyValueError: A value that would not come back equal (a ``ValueError``).
            DocumentTooLargeError: The result is over the store's size limit (a ``ValueError``).
            RejectedByServerError: The server refused the document (a ``ValueError``).
            StoreWriteError: The file store's disk refused the write (an ``OSError``).
            OutcomeUnknownError: The connection was lost after the write was sent; retry with
                ``SKIP_IF_EXISTS`` or ``RAISE_IF_DIFFERENT``.
        """
        return self._run(self._ops().set(result_id, data, behavior, namespace, strict_namespace))

    @overload
    def get(self, result_id: ResultId, model_class: None = None, namespace: str | None = None) -> T: ...
    @overload
    def get(self, result_id: ResultId, model_class: type[M], namespace: str | None = None) -> M: ...
    def get(self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None) -> Any:
        """Read the result stored under ``result_id``, validated into its model class.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            model_class: The class to validate into; None takes the class registered under the
                stored model type. Given, it also chooses the namespace when ``namespace`` is None.
            namespace: The namespace to read from; None looks in every namespace.

        Returns:
            The result, an instance of ``model_class`` or of the registered class.

        Raises:
            ResultNotFoundError: Nothing is stored under the id (a ``FileNotFoundError``).
            AmbiguousResultError: Several namespaces hold the id and neither ``namespace`` nor
                ``model_class`` chooses one (a ``ValueError``).
            ModelNotRegisteredError: The stored model type is not registered (a ``ValueError``).
            InvalidIdError: The id breaks the id rules (a ``ValueError``).
            CorruptResultError: The stored document lacks its envelope, or its large-field file
                is gone (a ``ValueError``).
            pydantic.ValidationError: The stored data no longer fits the model; its title names
                the result id.
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
        """Store many results, in as few round trips as the store allows.

        Each item is decided as [`set`][mongo_results.ResultsManager.set] decides it; one item
        failing stops none of the others.

        Args:
            items: ``{id: result}`` or ``(id, result)`` pairs.
            behavior: What to do where a result is already stored; see
                [`SetBehavior`][mongo_results.SetBehavior].
            namespace: The namespace to store into; None takes each model's registered namespace.
            raise_errors: Raise the first item's exception (after every item is decided) instead
                of returning it in the list.

        Returns:
            Per item, in order, what ``set`` would return (True or False) or the exception it
            would raise.

        Raises:
            MongoResultsError: With ``raise_errors``, the first item's exception (for example
                ``ResultExistsError``).
            InvalidNamespaceError: ``namespace`` cannot name a collection (a ``ValueError``).
            SetManyInterruptedError: The store became unreachable midway; its ``outcomes``,
                ``unknown`` and ``not_sent`` say what is known per item.
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
        """Read the results under ``result_ids``: one query per namespace and batch, not one per id.

        Args:
            result_ids: The ids, each ``"a/b/c"`` or a sequence of segments.
            model_class: The class to validate into; None takes each stored model type's class.
            namespace: The namespace to read from; None looks in every namespace.
            on_error: ``"raise"`` raises on the first result that no longer loads; ``"skip"``
                leaves such results out and warns with their count
                ([`SkippedResultsWarning`][mongo_results.errors.SkippedResultsWarning]).
            skipped: A list that receives ``(id, error)`` for each result left out by ``"skip"``.

        Returns:
            The results, in the order of ``result_ids``.

        Raises:
            ResultNotFoundError: Some ids hold no result; the message names them
                (a ``FileNotFoundError``).
            AmbiguousResultError: An id is held in several namespaces and the call does not say
                which (a ``ValueError``).
            InvalidIdError: An id breaks the id rules (a ``ValueError``).
            ModelNotRegisteredError: With ``on_error="raise"``, a stored model type that is not
                registered (a ``ValueError``).
            pydantic.ValidationError: With ``on_error="raise"``, stored data that no longer fits
                its model.
            InvalidArgumentError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
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
        """Iterate over the results under ``prefix`` in id order, read in batches so memory stays flat.

        Args:
            prefix: Whole leading segments of the ids (``"sweep"`` matches ``"sweep/1"``, not
                ``"sweep2"``); None iterates over every result.
            model_class: Only results stored as this class, validated into it; None takes every
                result, each into its registered class.
            namespace: The namespace to read; None reads every namespace.
            batch_size: Results read per round trip.
            on_error: ``"raise"`` or ``"skip"``, as for
                [`get_many`][mongo_results.ResultsManager.get_many].
            skipped: A list that receives ``(id, error)`` for each result left out by ``"skip"``.

        Yields:
            ``(id, result)`` pairs, in id order.

        Raises:
            InvalidIdError: ``prefix`` breaks the id rules (a ``ValueError``).
            InvalidArgumentError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
            ModelNotRegisteredError: With ``on_error="raise"``, a stored model type that is not
                registered (a ``ValueError``).
            pydantic.ValidationError: With ``on_error="raise"``, stored data that no longer fits
                its model.
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
        """Iterate over the results whose fields match ``where``, in MongoDB's query language.

        ``where`` names the model's own fields, dotted into nested models and lists
        (``{"config.lr": {"$lt": 0.1}}``); its values are encoded as results are stored, so a
        ``datetime`` or a ``Decimal`` compares as it would in Python. The file store evaluates
        the same filters itself.

        Args:
            where: The filter on the results' fields; None matches every result.
            prefix: Only results whose ids start with these whole segments; None for all.
            model_class: Only results stored as this class, validated into it.
            **options: ``namespace`` (the namespace to search; None for all), ``sort``
                (``(field, 1 | -1)`` pairs; id order when None), ``limit`` (at most this many
                results), ``on_error`` and ``skipped`` (as for
                [`get_many`][mongo_results.ResultsManager.get_many]).

        Yields:
            ``(id, result)`` pairs, in id order or in ``sort`` order.

        Raises:
            InvalidArgumentError: ``where`` is not a filter the library knows (an unknown
                operator, a malformed condition), or ``limit`` or ``on_error`` has a value the
                call cannot use (a ``ValueError``).
            InvalidIdError: ``prefix`` breaks the id rules (a ``ValueError``).
            ModelNotRegisteredError: With ``on_error="raise"``, a stored model type that is not
                registered (a ``ValueError``).
            pydantic.ValidationError: With ``on_error="raise"``, stored data that no longer fits
                its model.
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
        id_fields: IdFields = False,
    ) -> Any:
        """Read results into a pandas DataFrame: one row per result, indexed by id.

        Each row is what ``model_dump()`` gives for the result, nested models' fields as dotted
        columns (``config.lr``), with the id as the index (so a field named ``id`` is a column).
        A class whose fields all have an exact Arrow type (see the type table) is read as the
        table of [`to_arrow`][mongo_results.ResultsManager.to_arrow] and converted, with the
        same values; any other class, or every stored type, is read through the models. Every
        store gives the same DataFrame. Progress bar on a terminal for large reads.

        Args:
            prefix: Only results whose ids start with these whole segments; None for all.
            model_class: Only results stored as this class; None for every model type.
            namespace: The namespace to read; None reads every namespace.
            where: A filter on the results' fields, as for
                [`find`][mongo_results.ResultsManager.find]; None for every result.
            batch_size: Results read per round trip (at least 1).
            id_fields: True makes a column of each ``key=value`` segment of the ids (``lr``,
                ``seed``), typed by its values (int, float, bool, else text), before the
                fields; a list takes the keys it names. A key that is also a field's column
                is an ``InvalidArgumentError``.

        Returns:
            A ``pandas.DataFrame`` indexed by id (empty when nothing matches).

        Raises:
            MissingExtraError: pandas or pyarrow (or PyMongoArrow for MongoDB) is not installed
                (an ``ImportError``).
            InvalidIdError: ``prefix`` breaks the id rules (a ``ValueError``).
            InvalidArgumentError: ``batch_size`` is below 1 (a ``ValueError``).
            pydantic.ValidationError: Stored data that no longer fits its model.
        """
        return self._run(
            frame(
                self._ops(),
                Rows(prefix, model_class, namespace, where, batch_size, ProgressBar("dataframe")),
                id_fields,
            )
        )

    def to_arrow(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        where: Where = None,
        *,
        batch_size: int = 500,
        id_column: str = "id",
        id_fields: IdFields = False,
    ) -> Any:
        """Read results into a ``pyarrow.Table``: one row per result, in id order.

        The columns are ``id`` (string), then the model's fields, nested models' as dotted
        columns (``config.lr``); their types come from the model (see the type table in the
        README). On MongoDB the pages are decoded by PyMongoArrow, and a result it cannot
        prove equal to what ``get`` gives is read through its model. An ``int`` beyond 64 bits
        has no Arrow type: it raises ``LossyValueError`` (``to_dataframe`` keeps it). Progress
        bar on a terminal.

        Args:
            prefix: Only results whose ids start with these whole segments; None for all.
            model_class: The class whose columns to read; None reads every stored model
                type through its registered class (the union of their columns).
            namespace: The namespace to read; None reads every namespace.
            where: A filter on the results' fields, as for
                [`find`][mongo_results.ResultsManager.find]; None for every result.
            batch_size: Results read per round trip where results are read one by one (at least 1).
            id_column: The name of the id column; another when a field (or an extra field) is named ``id``.
            id_fields: True makes a column of each ``key=value`` segment of the ids (``lr``,
                ``seed``) after the id column, typed by its values (int64, float64, bool, else
                string); a list takes the keys it names. A key that is also a field's column is
                an ``InvalidArgumentError``.

        Returns:
            A ``pyarrow.Table`` (with no rows when nothing matches).

        Raises:
            MissingExtraError: pyarrow, or PyMongoArrow for MongoDB, is not installed (an ``ImportError``).
            InvalidIdError: ``prefix`` breaks the id rules (a ``ValueError``).
            InvalidArgumentError: Without ``model_class``, two stored model types give one
                column two types; a field's column is named ``id_column``; ``batch_size`` is
                below 1 (a ``ValueError``).
            LossyValueError: An int beyond 64 bits in an ``int`` field (a ``ValueError``).
            pydantic.ValidationError: Stored data that no longer fits its model.
        """
        return self._run(
            table(
                self._ops(),
                Rows(prefix, model_class, namespace, where, batch_size, ProgressBar("arrow")),
                id_column,
                id_fields,
            )
        )

    def to_polars(
        self,
        prefix: ResultId | None = None,
        model_class: type[BaseModel] | None = None,
        namespace: str | None = None,
        where: Where = None,
        *,
        batch_size: int = 500,
        id_column: str = "id",
        id_fields: IdFields = False,
    ) -> Any:
        """Read results into a polars DataFrame: the table of [`to_arrow`][mongo_results.ResultsManager.to_arrow].

        Args:
            prefix: Only results whose ids start with these whole segments; None for all.
            model_class: The class whose columns to read; None for every stored model type.
            namespace: The namespace to read; None reads every namespace.
            where: A filter on the results' fields, as for
                [`find`][mongo_results.ResultsManager.find]; None for every result.
            batch_size: Results read per round trip where results are read one by one (at least 1).
            id_column: The name of the id column; another when a field (or an extra field) is named ``id``.
            id_fields: as for ``to_arrow``.

        Returns:
            A ``polars.DataFrame`` with the ``id`` column first.

        Raises:
            MissingExtraError: polars or pyarrow (or PyMongoArrow for MongoDB) is not installed.
            InvalidIdError: ``prefix`` breaks the id rules (a ``ValueError``).
            InvalidArgumentError: A field's column is named ``id_column``; ``batch_size`` is
                below 1 (a ``ValueError``).
            LossyValueError: An int beyond 64 bits in an ``int`` field (a ``ValueError``).
            pydantic.ValidationError: Stored data that no longer fits its model.
        """
        return self._run(
            polars_frame(
                self._ops(),
                Rows(prefix, model_class, namespace, where, batch_size, ProgressBar("polars")),
                id_column,
                id_fields,
            )
        )

    def exists(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Tell whether a result is stored under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            namespace: The namespace to look in; None looks in every namespace.

        Returns:
            True if a result is stored under the id.

        Raises:
            InvalidIdError: The id breaks the id rules (a ``ValueError``).
        """
        return self._run(self._ops().exists(result_id, namespace))

    def list_ids(self, prefix: ResultId | None = None, namespace: str | None = None) -> list[str]:
        """List the ids equal to or under ``prefix``, sorted.

        Args:
            prefix: Whole leading segments (``"sweep"`` lists ``"sweep"`` and ``"sweep/1"``, not
                ``"sweep2"``); None lists every id.
            namespace: The namespace to list; None lists every namespace.

        Returns:
            The canonical ids (``"a/b/c"``), sorted.

        Raises:
            InvalidIdError: ``prefix`` breaks the id rules (a ``ValueError``).
        """
        return self._run(self._ops().list_ids(prefix, namespace))

    def delete(self, result_id: ResultId, namespace: str | None = None) -> bool:
        """Delete the result stored under ``result_id``.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            namespace: The namespace to delete from; None deletes the id from every namespace.

        Returns:
            True if a result was deleted, False if none was stored.

        Raises:
            InvalidIdError: The id breaks the id rules (a ``ValueError``).
        """
        return self._run(self._ops().delete(result_id, namespace))

    def clear(self) -> None:
        """Delete every stored result, in every namespace.

        Documents and files that are not results are left alone.
        """
        return self._run(self._ops().clear())

    @property
    def admin(self) -> Admin:
        """The store's administration (stored form, upgrades, checks); see [`Admin`][mongo_results.admin.Admin]."""
        return Admin(self)

    # The v0.1 spellings of the administrative calls, now on ``admin``.
    documents = moved(Admin.documents)
    iter_documents = moved(Admin.iter_documents)
    store = moved(Admin.store)
    upgrade = moved(Admin.upgrade)
    engine = moved(Admin.engine)
    doctor = moved(Admin.doctor)
    shard = moved(Admin.shard)

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
        self,
        result_id: ResultId,
        lease: float | timedelta = 600.0,
        namespace: str | None = None,
        *,
        max_attempts: int | None = 3,
    ) -> Claim | None:
        """Take the right to compute ``result_id`` for ``lease`` seconds, atomically.

        Args:
            result_id: the result this worker would compute.
            lease: seconds (or a timedelta), over 0 and at most a day; inside ``with claim:`` it is
                renewed in the background, so it bounds how long a dead worker holds the cell.
            namespace: where the result would be stored; None looks for it in every namespace.
            max_attempts: a cell whose work has failed this many times (across every worker) is
                not offered again; None for no bound.

        Returns:
            A [Claim][mongo_results.Claim] (use it as a ``with`` block, or let it go with
            ``release()``), or None when the result is stored, another worker's claim on it is
            live, or it has failed ``max_attempts`` times.

        Raises:
            ValueError: a lease that is not a positive number of seconds up to a day, an invalid id
                or namespace, a ``max_attempts`` below 1 (before any I/O).
        """
        return self._run(take(self._ops(), result_id, lease, namespace, _worker(), max_attempts))  # type: ignore[no-any-return]

    def claim_each(
        self,
        result_ids: Iterable[ResultId],
        lease: float | timedelta = 600.0,
        namespace: str | None = None,
        *,
        max_attempts: int | None = 3,
        wait: bool = True,
    ) -> Iterator[Claim]:
        """A [Claim][mongo_results.Claim] for each id, in order, that this worker could take.

        Ids whose result is stored, or that failed ``max_attempts`` times, are passed over. Ids
        that other workers' live claims hold are looked at again when the earliest of those
        claims runs out (and at least every 5 s), until each is stored, failed for good or taken
        here: the loop ends when the sweep is done, and a dead worker's cell is taken soon after
        its lease. ``wait=False`` passes over held ids at once.

        Each claim is taken when the loop asks for the next one, so its lease starts with its work::

            for claim in rm.claim_each(grid, lease=60):
                with claim:
                    claim.set(compute(claim.result_id))

        Args:
            result_ids: the ids of the sweep.
            lease: as for ``claim``.
            namespace: as for ``claim``.
            max_attempts: as for ``claim``.
            wait: whether to wait for the cells other workers hold (see above).

        Yields:
            The claims this worker took, one when the loop asks for it.

        Raises:
            ValueError: as for ``claim``.
        """
        return self._stream(take_each(self._ops(), result_ids, lease, namespace, _worker(), max_attempts, wait))

    def failures(self, prefix: ResultId | None = None) -> list[dict[str, Any]]:
        """The cells whose work raised inside ``with claim:``, and has not succeeded since.

        Args:
            prefix: only cells equal to or under it (whole segments); None for all.

        Returns:
            One dict per cell, by id: ``result_id``, ``namespace``, ``error`` (the exception's
            type), ``message``, ``traceback`` (its last lines), ``owner`` (the worker of the last
            failure), ``attempts`` (failures so far, across every worker) and ``failed_at`` (aware UTC).
        """
        return self._run(failed_cells(self._ops(), prefix))

    def reset_failures(self, prefix: ResultId | None = None) -> int:
        """Forget the failures under ``prefix``, so that their cells are offered again.

        Args:
            prefix: only cells equal to or under it (whole segments); None for all.

        Returns:
            How many cells' failures were forgotten.
        """
        return self._run(forget_failures(self._ops(), prefix))

    def claims(self, prefix: ResultId | None = None) -> list[dict[str, Any]]:
        """The live claims under ``prefix``, for watching a sweep.

        Args:
            prefix: only claims on ids equal to or under it (whole segments); None for all.

        Returns:
            One dict per claim whose lease has not run out, by id: ``result_id``, ``namespace``,
            ``owner``, ``claimed_at``, ``expires_at`` (aware UTC) and ``expires_in`` (seconds).
        """
        return self._run(live_claims(self._ops(), prefix))

    def close(self) -> None:
        """Release the connections the store opened, if it holds any.

        A client passed in (``MongoBackend(client)``) stays open: its owner closes it.
        """
        # Not an operation: releasing clients is the store's own business, sync or awaited.
        self._executor.close()

    def __enter__(self) -> ResultsManager[T]:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()


class AsyncResultsManager(Awaited, ManagerBase[T]):
    """[`ResultsManager`][mongo_results.ResultsManager] for asyncio code: every method awaitable.

    A ``mongodb://`` URI uses PyMongo's ``AsyncMongoClient`` (one per event loop);
    ``backend=AsyncMongoBackend(motor_client)`` uses Motor; ``mongomock://`` is the
    embedded store; a path is the file store, its disk I/O kept off the event loop.
    ``iter_results``, ``iter_documents`` and ``find`` return async iterators
    (``async for``); every other method is a coroutine. Parameters, results and errors
    are those of the same method of ``ResultsManager``.

    Args:
        base_dir: A directory (the file store) or a ``mongodb://``, ``mongodb+srv://`` or
            ``mongomock://`` URI. Ignored when ``backend`` is given.
        create_if_missing: Whether to create the file store's directory when it does not exist.
        backend: A store object ([`AsyncMongoBackend`][mongo_results.AsyncMongoBackend] built from
            a client, [`AsyncFileBackend`][mongo_results.AsyncFileBackend] with options) or a
            subclass of [`AsyncResultsBackend`][mongo_results.AsyncResultsBackend]; overrides
            ``base_dir``.
        store_secrets: Whether pydantic ``SecretStr``/``SecretBytes`` values may be stored.

    Raises:
        InvalidArgumentError: Neither ``base_dir`` nor ``backend`` is given (a ``ValueError``).
        InvalidUriError: ``base_dir`` is a URI that cannot be used (a ``ValueError``).
        StoreNotFoundError: The directory is missing and ``create_if_missing`` is False.
        NotAStoreError: ``base_dir`` is a path to a file (a ``NotADirectoryError``).
    """

    _asynchronous = True
    _executor: AsyncExecutor
    _claim_type = AsyncClaim

    set = awaitable(ResultsManager.set)
    set_many = awaitable(ResultsManager.set_many)
    exists = awaitable(ResultsManager.exists)
    list_ids = awaitable(ResultsManager.list_ids)
    delete = awaitable(ResultsManager.delete)
    clear = awaitable(ResultsManager.clear)
    get_many = awaitable(ResultsManager.get_many)
    iter_results = streaming(ResultsManager.iter_results)
    find = streaming(ResultsManager.find)
    to_arrow = awaitable(ResultsManager.to_arrow)
    to_polars = awaitable(ResultsManager.to_polars)
    to_dataframe = awaitable(ResultsManager.to_dataframe)
    missing = awaitable(ResultsManager.missing)
    claims = awaitable(ResultsManager.claims)
    failures = awaitable(ResultsManager.failures)
    reset_failures = awaitable(ResultsManager.reset_failures)

    @property
    def admin(self) -> AsyncAdmin:
        """The store's administration, awaited; see [`AsyncAdmin`][mongo_results.admin.AsyncAdmin]."""
        return AsyncAdmin(self)

    documents = moved(AsyncAdmin.documents)
    iter_documents = moved(AsyncAdmin.iter_documents)
    store = moved(AsyncAdmin.store)
    upgrade = moved(AsyncAdmin.upgrade)
    engine = moved(AsyncAdmin.engine)
    doctor = moved(AsyncAdmin.doctor)
    shard = moved(AsyncAdmin.shard)

    async def claim(
        self,
        result_id: ResultId,
        lease: float | timedelta = 600.0,
        namespace: str | None = None,
        *,
        max_attempts: int | None = 3,
    ) -> AsyncClaim | None:
        """Take the right to compute ``result_id`` for ``lease`` seconds, atomically.

        Args:
            result_id: the result this worker would compute.
            lease: as for [ResultsManager.claim][mongo_results.ResultsManager.claim].
            namespace: where the result would be stored; None looks for it in every namespace.
            max_attempts: as for ``ResultsManager.claim``.

        Returns:
            An [AsyncClaim][mongo_results.AsyncClaim] (use it as ``async with claim``, or let it go
            with ``await claim.release()``), or None when the result is stored, another worker's
            claim is live, or it has failed ``max_attempts`` times.

        Raises:
            ValueError: as for ``ResultsManager.claim`` (before any I/O).
        """
        operation = take(self._ops(), result_id, lease, namespace, _worker(), max_attempts)
        return self._handle(await run_async(operation, self._executor._execute, tell))  # type: ignore[no-any-return]

    def claim_each(
        self,
        result_ids: Iterable[ResultId],
        lease: float | timedelta = 600.0,
        namespace: str | None = None,
        *,
        max_attempts: int | None = 3,
        wait: bool = True,
    ) -> AsyncIterator[AsyncClaim]:
        """An [AsyncClaim][mongo_results.AsyncClaim] for each id, in order, that this worker could take.

        ``async for claim in arm.claim_each(grid): async with claim: ...``; which ids are passed
        over, and when held ones are looked at again, as for
        [ResultsManager.claim_each][mongo_results.ResultsManager.claim_each].

        Args:
            result_ids: the ids of the sweep.
            lease: as for ``claim``.
            namespace: as for ``claim``.
            max_attempts: as for ``claim``.
            wait: whether to wait for the cells other workers hold.

        Yields:
            The claims this worker took, one when the loop asks for it.

        Raises:
            ValueError: as for ``claim`` (when the iteration starts).
        """

        async def claims() -> AsyncIterator[AsyncClaim]:
            operation = take_each(self._ops(), result_ids, lease, namespace, _worker(), max_attempts, wait)
            async for state in stream_async(operation, self._executor._execute, tell):
                yield self._handle(state)

        return claims()

    @overload
    async def get(self, result_id: ResultId, model_class: None = None, namespace: str | None = None) -> T: ...
    @overload
    async def get(self, result_id: ResultId, model_class: type[M], namespace: str | None = None) -> M: ...
    async def get(
        self, result_id: ResultId, model_class: type[BaseModel] | None = None, namespace: str | None = None
    ) -> Any:
        """Read the result stored under ``result_id``, validated into its model class.

        Args:
            result_id: The id, ``"a/b/c"`` or a sequence of segments.
            model_class: The class to validate into; None takes the class registered under the
                stored model type. Given, it also chooses the namespace when ``namespace`` is None.
            namespace: The namespace to read from; None looks in every namespace.

        Returns:
            The result, an instance of ``model_class`` or of the registered class.

        Raises:
            ResultNotFoundError: Nothing is stored under the id (a ``FileNotFoundError``).
            AmbiguousResultError: Several namespaces hold the id and neither ``namespace`` nor
                ``model_class`` chooses one (a ``ValueError``).
            ModelNotRegisteredError: The stored model type is not registered (a ``ValueError``).
            InvalidIdError: The id breaks the id rules (a ``ValueError``).
            CorruptResultError: The stored document lacks its envelope, or its large-field file
                is gone (a ``ValueError``).
            pydantic.ValidationError: The stored data no longer fits the model; its title names
                the result id.
        """
        # Written out, not derived: a wrapper typed by ParamSpec would lose the overload that
        # returns the manager's own T (``await arm.get(id)`` would be Any to a type checker).
        return await run_async(self._ops().get(result_id, model_class, namespace), self._executor._execute, tell)

    async def close(self) -> None:
        """Close the clients the store opened: those of this event loop, and of loops that have ended.

        A client passed in (``AsyncMongoBackend(client)``) stays open: its owner closes it.
        """
        await self._executor.close()

    async def __aenter__(self) -> AsyncResultsManager[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
