"""The library's exceptions.

Every error derives from ``MongoResultsError`` and from the builtin that
``results_manager`` users already catch, so ``except FileExistsError`` keeps
working after a move to MongoDB.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = [
    "AccessDeniedError",
    "AmbiguousResultError",
    "CorruptResultError",
    "DocumentTooLargeError",
    "InvalidArgumentError",
    "InvalidIdError",
    "InvalidNamespaceError",
    "InvalidShardKeyError",
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
    "UnsupportedPlatformError",
    "UnsupportedTypeError",
    "UpgradeFailedError",
    "WrongProcessError",
    "WrongTypeError",
]


class MongoResultsError(Exception):
    """Root of every error raised by mongo_results.

    ``except MongoResultsError`` catches every error of the library and none of the
    driver's: those are translated into the errors below, chained with ``raise ... from``.
    """


class ResultExistsError(MongoResultsError, FileExistsError):
    """A result is already stored under this id.

    Raised by ``set``, ``set_many`` and ``store`` with ``RAISE_IF_EXISTS`` (any result stored)
    or ``RAISE_IF_DIFFERENT`` (a result with different content stored).

    Attributes:
        result_id: The canonical id.
        namespace: The namespace that holds it.
        different: True if the stored content differs, False if it is the same, None if it
            was not compared (``RAISE_IF_EXISTS`` needs no comparison).
    """

    def __init__(self, result_id: str, namespace: str, *, different: bool | None) -> None:
        self.result_id = result_id
        self.namespace = namespace
        self.different = different
        what = "Different data" if different else "Data"
        super().__init__(f"{what} already exists for ID: {result_id!r} (namespace {namespace!r})")


class ResultNotFoundError(MongoResultsError, FileNotFoundError):
    """No result is stored under this id.

    Raised by ``get`` and ``get_many`` (whose message names every missing id).

    Attributes:
        result_id: The canonical id (for ``get_many``, the first missing one).
        namespace: The namespace looked in, or None when every namespace was.
    """

    def __init__(self, result_id: str, namespace: str | None = None) -> None:
        self.result_id = result_id
        self.namespace = namespace
        where = f" in namespace {namespace!r}" if namespace is not None else ""
        super().__init__(f"No result found for ID: {result_id!r}{where}")


class InvalidArgumentError(MongoResultsError, ValueError):
    """An argument the library cannot use: an option's value, a behaviour, a filter, a record.

    Raised before anything is sent to the store, for example for ``on_error="ignore"``, a
    ``find`` filter with an unknown operator, or a manager built with neither ``base_dir``
    nor ``backend``.
    """


class WrongTypeError(MongoResultsError, TypeError):
    """An argument of a type the call does not take.

    For example ``set(id, {"x": 1})`` (a dict where a model is expected), ``convert`` of
    ``upgrade`` returning something other than the model, or a client of the other flavour
    (an async client given to ``MongoBackend``).
    """


class ModelConflictError(MongoResultsError, ValueError):
    """A model class that clashes with the one registered under its name, or is in several namespaces.

    Raised by ``register_model`` when a class of the same name but other fields or field
    types is registered in the namespace, and by ``find_model_namespace(strict=True)`` (and
    ``set(strict_namespace=True)``) when the class is in several non-default namespaces.
    """


class NotShareableError(MongoResultsError, TypeError):
    """A store that cannot be handed to another process.

    Raised when pickling a manager or store built from a client object (only a URI can be
    reopened elsewhere) or on the embedded ``mongomock://`` store (it lives in one process).
    """


class WrongProcessError(MongoResultsError, RuntimeError):
    """An embedded store used from a process other than the one it lives in.

    Raised in a forked worker that uses the parent's ``mongomock://`` store: what it wrote
    would stay in the worker's copy of the memory and be lost.
    """


class UnsupportedPlatformError(MongoResultsError, NotImplementedError):
    """A feature that this platform cannot give, said when the feature is used (never at import).

    Raised when a file store is opened on a Python with no file lock (neither ``fcntl`` nor
    ``msvcrt``); MongoDB and the embedded store work there.
    """


class NotAStoreError(MongoResultsError, NotADirectoryError):
    """A file store's path that exists and is not a directory.

    Raised by ``FileBackend`` (and a manager built from a path).
    """


class StoreNotFoundError(MongoResultsError, FileNotFoundError):
    """A file store's directory is missing and ``create_if_missing`` is False.

    Raised by ``FileBackend`` (and a manager built from a path).
    """


class InvalidIdError(MongoResultsError, ValueError):
    """A result id (or prefix) breaks the id rules.

    Raised before anything is sent: an id that is empty, not a string or sequence of
    strings, with a ``.`` or ``..`` segment or a NUL character, a segment over 255 UTF-8
    bytes, or over 1024 bytes in all (see [Result ids](../ids.md)).
    """


class InvalidNamespaceError(MongoResultsError, ValueError):
    """A namespace that cannot name a collection.

    Raised by writes and reads given such a namespace, before anything is sent: a namespace
    is 1-64 letters, digits, ``_``, ``-`` or ``.``, starting with a letter, digit or ``_``,
    not ending with ``.``, with no ``..``.
    """


class InvalidShardKeyError(MongoResultsError, ValueError):
    """A shard key that would let two shards each hold a result under one id.

    Raised by ``shard`` when asked for a key other than ``_id`` (ranged or hashed), and by
    writes (``set``, ``set_many``, ``store``, ``claim``) into a collection the server reports
    sharded on another key: there, ``RAISE_IF_EXISTS`` could succeed once per shard.
    """


class InvalidUriError(MongoResultsError, ValueError):
    """A store URI that cannot be used; the message never repeats its credentials.

    Raised for an unsupported scheme, options the driver refuses, or a user name or
    password with an unescaped ``@ : / ? #``.
    """


class AmbiguousResultError(MongoResultsError, ValueError):
    """An id is held in several namespaces and the call does not say which.

    Raised by ``get`` and ``get_many`` without ``namespace`` or ``model_class``.

    Attributes:
        result_id: The canonical id.
        namespaces: The namespaces that hold it.
    """

    def __init__(self, result_id: str, namespaces: Sequence[str]) -> None:
        self.result_id = result_id
        self.namespaces = tuple(namespaces)
        super().__init__(
            f"Result {result_id!r} exists in several namespaces: {', '.join(self.namespaces)}; "
            "pass namespace= or model_class= to choose one"
        )


class ModelNotRegisteredError(MongoResultsError, ValueError):
    """The stored model type is not registered in any namespace.

    Raised by reads without ``model_class`` (skipped with ``on_error="skip"``): register the
    model (``register_model``) in the reading process.
    """


class CorruptResultError(MongoResultsError, ValueError):
    """A stored result lacks its envelope (model type or data), or the GridFS file of its large fields.

    Raised by reads of such a result; ``mongo-results doctor`` lists results whose file is gone.
    """


class UnreadableResultError(CorruptResultError, json.JSONDecodeError):
    """A file store's result file that is not JSON (truncated, or not written by this library).

    Raised by reads of that file; the message names it.

    Attributes:
        pos: The offset in the file where decoding failed (from ``json.JSONDecodeError``).
        lineno: The line where decoding failed.
        colno: The column where decoding failed.
    """


class StoreWriteError(MongoResultsError, OSError):
    """The file store's disk refused a write (full, read-only, failing), or a read: that write stored nothing.

    Raised by writes to the file store (in ``set_many``, the outcome of the item concerned),
    and by reads that the disk failed (an unreadable file or directory).

    Attributes:
        errno: The operating system's error number, so ``errno.ENOSPC`` checks keep working.
        strerror: The operating system's message.
        filename: The file that could not be written.
    """


class UnsupportedTypeError(MongoResultsError, TypeError):
    """A value of a type the encoding refuses, or a secret without opt-in.

    Raised by writes: a type that cannot be stored faithfully, a model whose dump is not a
    dict, or a ``SecretStr``/``SecretBytes`` value without ``store_secrets=True``.
    """


class LossyValueError(MongoResultsError, ValueError):
    """A value that would not come back equal after storing it.

    Raised by writes, before anything is sent: a value that does not read back equal, a
    string that is not valid Unicode, or a value the store's engine cannot hold exactly.
    """


class DocumentTooLargeError(MongoResultsError, ValueError):
    """The encoded result exceeds the size the store can hold.

    Raised by writes, before anything is sent.

    Attributes:
        result_id: The canonical id.
        size: The encoded size, in bytes.
        limit: The limit it exceeds, in bytes.
    """

    def __init__(self, result_id: str, size: int, limit: int) -> None:
        self.result_id = result_id
        self.size = size
        self.limit = limit
        super().__init__(f"Result {result_id!r} encodes to {size:,} bytes, over the {limit:,}-byte document limit")


class RejectedByServerError(MongoResultsError, ValueError):
    """The server refused a document or command (for example a value its engine cannot hold).

    Raised by the call whose command was refused; the message carries the server's.
    """


class MissingExtraError(MongoResultsError, ImportError):
    """A feature needs an optional dependency that is not installed.

    Raised by ``to_dataframe`` without pandas; the message names the extra to install.
    """

    @classmethod
    def needing(cls, what: str, package: str, extra: str) -> MissingExtraError:
        """The error for a feature whose optional dependency is missing, saying how to install it.

        Args:
            what: The feature (``"to_polars"``).
            package: The package it needs (``"polars"``).
            extra: The extra that installs it (``"polars"``).

        Returns:
            The error, to raise.
        """
        return cls(
            f'{what} needs {package}: pip install "mongo-results[{extra}]" (from a clone: pip install ".[{extra}]")'
        )


class SkippedResultsWarning(UserWarning):
    """Reads with ``on_error="skip"`` left out stored results that no longer load.

    Warned once per read with the count; the ids and errors go to the ``skipped`` list
    when one is passed.
    """


class StoreUnavailableError(MongoResultsError, ConnectionError):
    """The store could not be reached within the configured timeout.

    Raised by any call that needs the server: no server within the server-selection
    timeout, a ``mongodb+srv://`` name that does not resolve, or a server that answers it
    is unavailable for now. The message names the hosts, never the password.
    """


class AccessDeniedError(MongoResultsError, PermissionError):
    """The server refused the credentials, or the user lacks a right the call needs.

    Raised on a wrong user name or password (authentication failed) and on a command the
    user's roles do not allow (MongoDB's code 13, Unauthorized). The message names the
    hosts and the user, never the password; "Credentials and rights" in the docs lists
    the rights each call needs.
    """


class OutcomeUnknownError(StoreUnavailableError):
    """The connection was lost after a command was sent: a write in it may or may not have been applied.

    Raised by the call that sent it, or for a write answered with a transient error.
    Retrying ``set`` with ``SKIP_IF_EXISTS`` or ``RAISE_IF_DIFFERENT`` is safe: the same
    content already stored answers False or True instead of raising.
    """


class SetManyInterruptedError(StoreUnavailableError):
    """The store became unreachable during ``set_many``; per item, what is known.

    Attributes:
        outcomes: Per item, what ``set`` returned or raised when that was decided, else None.
        unknown: Indexes of the items sent whose outcome is not known (they may be stored).
        not_sent: Indexes of the items never sent (they are not stored).
    """

    def __init__(self, message: str, outcomes: list[bool | BaseException | None], unknown: list[int]) -> None:
        super().__init__(message)
        self.outcomes = outcomes
        self.unknown = unknown
        self.not_sent = [i for i, o in enumerate(outcomes) if o is None and i not in set(unknown)]


class UpgradeFailedError(MongoResultsError, ValueError):
    """``upgrade``'s ``convert`` raised: the result it was converting, and how many were rewritten before.

    The results rewritten before it stay rewritten; fix ``convert`` and run ``upgrade`` again.
    The exception ``convert`` raised is the ``__cause__``.

    Attributes:
        result_id: The id of the result being converted.
        upgraded: How many results were rewritten before it.
    """

    def __init__(self, result_id: str, upgraded: int, cause: BaseException) -> None:
        self.result_id = result_id
        self.upgraded = upgraded
        super().__init__(
            f"convert failed for {result_id!r} ({type(cause).__name__}: {cause}); "
            f"{upgraded} result(s) were upgraded before it. Fix convert and run upgrade again."
        )
