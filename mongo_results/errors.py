"""The library's exceptions.

Every error derives from :class:`MongoResultsError` and from the builtin that
``results_manager`` users already catch, so ``except FileExistsError`` keeps
working after a move to MongoDB.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = [
    "AmbiguousResultError",
    "CorruptResultError",
    "DocumentTooLargeError",
    "InvalidArgumentError",
    "InvalidIdError",
    "InvalidNamespaceError",
    "InvalidUriError",
    "LossyValueError",
    "MissingExtraError",
    "ModelConflictError",
    "ModelNotRegisteredError",
    "MongoResultsError",
    "NotAStoreError",
    "NotShareableError",
    "OutcomeUnknownError",
    "RejectedByServerError",
    "ResultExistsError",
    "ResultNotFoundError",
    "StoreNotFoundError",
    "SetManyInterruptedError",
    "SkippedResultsWarning",
    "StoreUnavailableError",
    "StoreWriteError",
    "UnreadableResultError",
    "UnsupportedTypeError",
    "UpgradeFailedError",
    "WrongProcessError",
    "WrongTypeError",
]


class MongoResultsError(Exception):
    """Root of every error raised by mongo_results."""


class ResultExistsError(MongoResultsError, FileExistsError):
    """A result is already stored under this id (RAISE_IF_EXISTS/RAISE_IF_DIFFERENT)."""

    def __init__(self, result_id: str, namespace: str, *, different: bool | None) -> None:
        self.result_id = result_id
        self.namespace = namespace
        self.different = different
        what = "Different data" if different else "Data"
        super().__init__(f"{what} already exists for ID: {result_id!r} (namespace {namespace!r})")


class ResultNotFoundError(MongoResultsError, FileNotFoundError):
    """No result is stored under this id."""

    def __init__(self, result_id: str, namespace: str | None = None) -> None:
        self.result_id = result_id
        self.namespace = namespace
        where = f" in namespace {namespace!r}" if namespace is not None else ""
        super().__init__(f"No result found for ID: {result_id!r}{where}")


class InvalidArgumentError(MongoResultsError, ValueError):
    """An argument the library cannot use (an option's value, a behaviour, a record)."""


class WrongTypeError(MongoResultsError, TypeError):
    """An argument of a type the call does not take (a dict where a model is expected)."""


class ModelConflictError(MongoResultsError, ValueError):
    """A model class that clashes with the one registered under its name, or is in several namespaces."""


class NotShareableError(MongoResultsError, TypeError):
    """A store that cannot be handed to another process (pickled)."""


class WrongProcessError(MongoResultsError, RuntimeError):
    """An embedded store used from a process other than the one it lives in: its results would be lost."""


class NotAStoreError(MongoResultsError, NotADirectoryError):
    """A file store's path that exists and is not a directory."""


class StoreNotFoundError(MongoResultsError, FileNotFoundError):
    """A file store's directory is missing and ``create_if_missing`` is False."""


class InvalidIdError(MongoResultsError, ValueError):
    """A result id (or prefix) breaks the id rules."""


class InvalidNamespaceError(MongoResultsError, ValueError):
    """A namespace that cannot name a collection."""


class InvalidUriError(MongoResultsError, ValueError):
    """A store URI that cannot be used; the message never repeats its credentials."""


class AmbiguousResultError(MongoResultsError, ValueError):
    """An id is held in several namespaces and the call does not say which."""

    def __init__(self, result_id: str, namespaces: Sequence[str]) -> None:
        self.result_id = result_id
        self.namespaces = tuple(namespaces)
        super().__init__(
            f"Result {result_id!r} exists in several namespaces: {', '.join(self.namespaces)}; "
            "pass namespace= or model_class= to choose one"
        )


class ModelNotRegisteredError(MongoResultsError, ValueError):
    """The stored model type is not registered in any namespace."""


class CorruptResultError(MongoResultsError, ValueError):
    """A stored result lacks its envelope (model type or data), or the GridFS file that holds its large fields."""


class UnreadableResultError(CorruptResultError, json.JSONDecodeError):
    """A file store's result file that is not JSON (truncated, or not ours): ``.pos``, ``.lineno`` say where."""


class StoreWriteError(MongoResultsError, OSError):
    """The file store's disk refused a write (full, read-only, failing): that write stored nothing.

    Built like OSError (``errno``, ``strerror``, ``filename``), so ``errno.ENOSPC`` checks keep working.
    """


class UnsupportedTypeError(MongoResultsError, TypeError):
    """A value of a type the encoding refuses (or a secret without opt-in)."""


class LossyValueError(MongoResultsError, ValueError):
    """A value that would not come back equal after storing it."""


class DocumentTooLargeError(MongoResultsError, ValueError):
    """The encoded document exceeds MongoDB's 16 MiB limit."""

    def __init__(self, result_id: str, size: int, limit: int) -> None:
        self.result_id = result_id
        self.size = size
        self.limit = limit
        super().__init__(f"Result {result_id!r} encodes to {size:,} bytes, over the {limit:,}-byte document limit")


class RejectedByServerError(MongoResultsError, ValueError):
    """The server refused a document or command (for example a value its engine cannot hold)."""


class MissingExtraError(MongoResultsError, ImportError):
    """A feature needs an optional dependency that is not installed (pandas for DataFrames)."""


class SkippedResultsWarning(UserWarning):
    """Reads with ``on_error="skip"`` left out stored results that no longer load."""


class StoreUnavailableError(MongoResultsError, ConnectionError):
    """The store could not be reached within the configured timeout."""


class OutcomeUnknownError(StoreUnavailableError):
    """The connection was lost after a command was sent: a write in it may or may not have been applied.

    Retrying ``set`` with ``SKIP_IF_EXISTS`` or ``RAISE_IF_DIFFERENT`` is safe: the same content
    already stored answers False or True instead of raising.
    """


class SetManyInterruptedError(StoreUnavailableError):
    """The store became unreachable during ``set_many``; per item, what is known.

    ``outcomes[i]`` is what ``set`` returned or raised for item ``i`` when that was decided, and
    None otherwise; ``unknown`` lists the items sent whose outcome is not known (they may be
    stored); ``not_sent`` the items never sent (they are not stored).
    """

    def __init__(self, message: str, outcomes: list[bool | BaseException | None], unknown: list[int]) -> None:
        super().__init__(message)
        self.outcomes = outcomes
        self.unknown = unknown
        self.not_sent = [i for i, o in enumerate(outcomes) if o is None and i not in set(unknown)]


class UpgradeFailedError(MongoResultsError, ValueError):
    """``upgrade``'s ``convert`` raised: the result it was converting, and how many were rewritten before.

    The results rewritten before it stay rewritten; fix ``convert`` and run ``upgrade`` again.
    """

    def __init__(self, result_id: str, upgraded: int, cause: BaseException) -> None:
        self.result_id = result_id
        self.upgraded = upgraded
        super().__init__(
            f"convert failed for {result_id!r} ({type(cause).__name__}: {cause}); "
            f"{upgraded} result(s) were upgraded before it. Fix convert and run upgrade again."
        )
