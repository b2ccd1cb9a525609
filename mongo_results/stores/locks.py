"""The file store's writer lock on every platform: ``flock`` on POSIX, ``msvcrt.locking`` on Windows.

Imported everywhere without failing: a platform with neither is told so when a file store is
opened (:func:`check_locking`), never at import, so MongoDB users there are not affected.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import UnsupportedPlatformError

__all__ = ["check_locking", "holding", "open_lock"]

Lock = tuple[Callable[[int], None], Callable[[int], None]]  # (take, give back) on an open descriptor


def _platform_lock() -> Lock | None:
    if sys.platform == "win32":
        try:
            import msvcrt
        except ImportError:  # pragma: no cover - every CPython on Windows has it
            return None

        def take(fd: int) -> None:
            # LK_LOCK gives up after ten one-second tries; a writer holds the lock for milliseconds,
            # so a waiter keeps asking, briefly, rather than fail a write.
            while True:
                try:
                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                    return
                except OSError:
                    time.sleep(0.005)

        def give(fd: int) -> None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

        return take, give
    try:
        import fcntl
    except ImportError:
        return None
    return (lambda fd: fcntl.flock(fd, fcntl.LOCK_EX)), (lambda fd: fcntl.flock(fd, fcntl.LOCK_UN))


_LOCK = _platform_lock()


def check_locking(where: str) -> None:
    """Refuse to open a file store where no file lock is available (before anything is written)."""
    if _LOCK is None:
        raise UnsupportedPlatformError(
            f"The file store at {where} needs a file lock (fcntl on Linux and macOS, msvcrt on Windows), "
            f"and this Python on {sys.platform} has neither. Use a mongodb:// or mongomock:// store here."
        )


def open_lock(path: str | os.PathLike[str]) -> int:
    """Open (creating it) the lock file at ``path``; OSError is the caller's to translate."""
    if _LOCK is None:  # no store could have been opened: check_locking refused it
        raise UnsupportedPlatformError(f"no file lock on {sys.platform}")
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextmanager
def holding(fd: int) -> Iterator[None]:
    """Hold the lock file opened as ``fd`` exclusively for the block; closes it after."""
    assert _LOCK is not None
    take, give = _LOCK
    try:
        take(fd)
        try:
            yield
        finally:
            give(fd)
    finally:
        os.close(fd)
