"""Driver errors to library errors, in one place for every shell."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pymongo.errors import ConnectionFailure, DocumentTooLarge, DuplicateKeyError, OperationFailure

from .errors import RejectedByServerError, StoreUnavailableError

__all__ = ["driver_errors"]


def _reason(exc: Exception) -> str:
    text = str(exc).split(", Timeout:", 1)[0].split(", Topology Description:", 1)[0]
    return text[:300]


@contextmanager
def driver_errors(hosts: str, timeout: float | None) -> Iterator[None]:
    """Translate PyMongo errors raised in the block; DuplicateKeyError passes through as a signal."""
    try:
        yield
    except DuplicateKeyError:
        raise
    except ConnectionFailure as exc:
        within = f" within {timeout:g} s" if timeout is not None else ""
        raise StoreUnavailableError(f"Cannot reach MongoDB at {hosts}{within}: {_reason(exc)}") from exc
    except DocumentTooLarge as exc:
        raise RejectedByServerError(f"MongoDB at {hosts} refused an oversized document: {exc}") from exc
    except OperationFailure as exc:
        details = exc.details or {}
        message = details.get("errmsg") or str(exc)
        raise RejectedByServerError(f"MongoDB at {hosts} refused the operation (code {exc.code}): {message}") from exc
