"""Driver errors to library errors, in one place for every shell."""

from __future__ import annotations

from types import TracebackType

from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    InvalidURI,
    OperationFailure,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)

from .errors import InvalidUriError, OutcomeUnknownError, RejectedByServerError, StoreUnavailableError

__all__ = ["DriverErrors"]


def _reason(exc: BaseException) -> str:
    text = str(exc).split(", Timeout:", 1)[0].split(", Topology Description:", 1)[0]
    return text[:300]


class DriverErrors:
    """Translates PyMongo errors raised in its block; DuplicateKeyError passes through as a signal.

    A plain class rather than a generator-based context manager: it wraps every call.
    """

    __slots__ = ("hosts", "timeout")

    def __init__(self, hosts: str, timeout: float | None) -> None:
        self.hosts, self.timeout = hosts, timeout

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None or isinstance(exc, DuplicateKeyError):
            return
        if isinstance(exc, (ServerSelectionTimeoutError, WaitQueueTimeoutError)):  # nothing was sent
            within = f" within {self.timeout:g} s" if self.timeout is not None else ""
            raise StoreUnavailableError(f"Cannot reach MongoDB at {self.hosts}{within}: {_reason(exc)}") from exc
        if isinstance(exc, ConnectionFailure):  # a command may have been sent and even applied
            raise OutcomeUnknownError(
                f"Lost the connection to MongoDB at {self.hosts} during a command ({_reason(exc)}): a write "
                "in it may have been applied; set again with SKIP_IF_EXISTS or RAISE_IF_DIFFERENT to be sure"
            ) from exc
        if isinstance(exc, ConfigurationError) and not isinstance(exc, InvalidURI) and "DNS" in str(exc):
            # mongodb+srv:// names are looked up in DNS when the client opens.
            raise StoreUnavailableError(f"Cannot reach MongoDB at {self.hosts}: {_reason(exc)}") from exc
        if isinstance(exc, ConfigurationError):
            raise InvalidUriError(f"Cannot use the MongoDB URI for {self.hosts}: {_reason(exc)}") from exc
        if isinstance(exc, DocumentTooLarge):
            raise RejectedByServerError(f"MongoDB at {self.hosts} refused an oversized document: {exc}") from exc
        if isinstance(exc, OperationFailure):
            details = exc.details or {}
            message = details.get("errmsg") or str(exc)
            raise RejectedByServerError(
                f"MongoDB at {self.hosts} refused the operation (code {exc.code}): {message}"
            ) from exc
