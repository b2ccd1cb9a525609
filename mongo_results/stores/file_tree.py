"""The file store's tree: one JSON file per result, written atomically, read without locks, and its clock."""

from __future__ import annotations

import bisect
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bson import json_util
from bson.json_util import JSONMode, JSONOptions

from ..core.encoding import JSON_OPTIONS, escape_key, map_keys
from ..errors import InvalidIdError, MongoResultsError, StoreWriteError, UnreadableResultError
from .locks import holding, open_lock

__all__ = ["CLAIM_JSON", "FORMAT", "FileTree", "Unreadable", "disk_errors", "durable_replace"]

FORMAT = "mongo_results/1"
LOCK_NAME = ".mongo_results.lock"
CLOCK_NAME = ".mongo_results.clock"
CLAIMS_DIR = ".mongo_results.claims"
CLAIM_SUFFIX = ".claim"
FAILURES_DIR = ".mongo_results.failures"
FAILURE_SUFFIX = ".failure"
CLAIM_JSON = JSONOptions(json_mode=JSONMode.RELAXED, tz_aware=True)  # expiries compared with the clock's aware time
SUFFIX = ".json"
TMP = ".tmp"  # a file being written: ".<16 hex digits>.tmp" beside its final name


class Unreadable(Exception):
    """A result file that cannot be read as JSON text (not UTF-8, too deep, not an object)."""


def durable_replace(tmp: Path, path: Path, text: str) -> None:
    """Put ``text`` at ``path`` atomically and durably: written and synced, renamed, the directory synced.

    Without the last sync a power loss after the rename can leave the new name with no data.
    """
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if os.name == "posix":  # Windows cannot open a directory; NTFS journals the rename itself
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """The file store's one translation of the disk's errors: an ``OSError`` becomes ``StoreWriteError``.

    Around each disk call that can fail in a way the store answers for, and around each
    command as a whole: no raw ``OSError`` reaches a caller.
    """
    try:
        yield
    except MongoResultsError:
        raise  # translated already, nearer the call (StoreWriteError is an OSError too)
    except OSError as exc:
        raise StoreWriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc


class FileTree:
    """The files under one directory, never followed through a symbolic link out of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Each directory's entries in id order, with the modification time they were read at:
        # a read in pages lists a directory once, not once per page.
        self._listings: dict[str, tuple[int, list[str], list[tuple[str, Path, bool]]]] = {}

    def path(self, segs: tuple[str, ...] | list[str]) -> Path:
        """The file of a result id (its segments)."""
        name = segs[-1] + SUFFIX
        if len(name.encode("utf-8")) > 255:
            raise InvalidIdError(
                f"Result id segment {segs[-1]!r} is too long for a file name (250 UTF-8 bytes at most)"
            )
        path = self.root.joinpath(*segs[:-1], name)
        try:
            real = path.resolve()
        except (RuntimeError, OSError) as exc:  # a loop of symbolic links: RuntimeError before Python 3.13
            raise InvalidIdError(f"{path} is in a loop of symbolic links: it names no result") from exc
        # A symbolic link inside the store (to a directory or to a file) must not lead outside it.
        if not real.is_relative_to(self.root):
            raise InvalidIdError(f"Result id {'/'.join(segs)!r} leads outside {self.root}")
        return path

    def clock(self) -> datetime:
        """The time now on the machine that serves the directory.

        A file's modification time, set to "now" by the file system (on NFS, by the server), so
        that workers on machines whose clocks disagree read one clock. Where the directory is
        read-only (a viewer's mount), this machine's clock: such a process takes no claim.
        """
        path = self.root / CLOCK_NAME
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
            os.utime(path, None)
            return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        except OSError:  # a store this process may only read: it takes no claim, so its own clock does
            return datetime.now(timezone.utc)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The store's one writer lock (readers never take it)."""
        with disk_errors(self.root / LOCK_NAME):
            fd = open_lock(self.root / LOCK_NAME)
        with holding(fd):
            yield

    @staticmethod
    def read(path: Path) -> dict[str, Any] | None:
        """A file's envelope; None when there is no file, Unreadable when it is not a JSON object."""
        try:
            with disk_errors(path):  # a disk that fails is no broken result: the read fails, as it would on a server
                text = path.read_text(encoding="utf-8")
        except StoreWriteError as exc:
            if isinstance(exc.__cause__, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
                return None
            raise
        except UnicodeDecodeError as exc:
            raise Unreadable(f"cannot read {path}: {exc}") from exc
        try:
            raw = json.loads(text)
            if isinstance(raw, dict) and raw.get("format") == FORMAT:
                raw = None  # one parse in memory at a time
                envelope: dict[str, Any] = json_util.loads(text, json_options=JSON_OPTIONS)
                return envelope
        except json.JSONDecodeError as exc:
            raise UnreadableResultError(f"{path} is not valid JSON: {exc.msg}", exc.doc, exc.pos) from exc
        except (ValueError, RecursionError) as exc:
            raise Unreadable(f"{path} is not valid JSON ({str(exc)[:120]})") from exc
        if not isinstance(raw, dict):
            raise Unreadable(f"{path} holds a JSON {type(raw).__name__}, not a result")
        if isinstance(raw.get("data"), dict):
            raw["data"] = map_keys(raw["data"], escape_key)  # seed files hold raw keys
        return raw

    def write(self, path: Path, envelope: dict[str, Any]) -> None:
        """Replace ``path`` atomically (write a temporary file, fsync, rename); on failure nothing is left."""
        text = json_util.dumps({**envelope, "format": FORMAT}, json_options=JSON_OPTIONS, indent=2)
        tmp = path.with_name(f".{secrets.token_hex(8)}{TMP}")  # short: the final name may be 255 bytes
        try:
            with disk_errors(path):
                self._replace(path, tmp, text)
        except (InvalidIdError, StoreWriteError):
            with suppress(OSError):  # the disk that refused the write may refuse this too
                tmp.unlink(missing_ok=True)
                self.prune(path.parent)  # the directories made for it
            raise
        finally:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _replace(self, path: Path, tmp: Path, text: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidIdError(f"{path.relative_to(self.root)} clashes with an existing result file") from exc
        try:
            durable_replace(tmp, path, text)
        except IsADirectoryError as exc:
            raise InvalidIdError(f"{path.relative_to(self.root)} clashes with a directory of other results") from exc

    def remove(self, path: Path) -> bool:
        """Remove a result file and the directories it leaves empty; whether it was there."""
        with disk_errors(path):
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            self.prune(path.parent)
        return True

    def prune(self, directory: Path) -> None:
        """Remove ``directory`` and its parents while they are empty, up to the store's root."""
        while directory != self.root and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent

    def files(self, top: Path) -> Iterator[os.DirEntry[str]]:
        """Every file under ``top``, never through a symbolic link."""
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            return  # gone (removed meanwhile): nothing of the store's is there
        except OSError as exc:  # unreadable: an answer without it would be silently incomplete
            raise StoreWriteError(exc.errno, f"cannot list the store's directory: {exc.strerror}", str(top)) from exc
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from self.files(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield entry

    def results(self, low: str = "", high: str | None = None) -> Iterator[tuple[str, Path]]:
        """``(id, file)`` of the result files in id order, from ``low`` up to before ``high``.

        Only names are looked at, and only in the directories whose ids can be in that range,
        so a keyset page costs the files it returns, not the files before it.
        """
        return self._walk(self.root, "", low, high)

    def _walk(self, top: Path, prefix: str, low: str, high: str | None) -> Iterator[tuple[str, Path]]:
        keys, entries = self._listing(top, prefix)
        start = bisect.bisect_left(keys, low)  # what sorts before low is passed over without a look
        if start and entries[start - 1][2] and low.startswith(keys[start - 1]):
            start -= 1  # the directory that holds low itself
        for key, path, is_dir in entries[start:]:
            if high is not None and key >= high:
                return
            if not is_dir:
                if key >= low:
                    yield key, path
            elif key[:-1] + "0" > low:  # else every id in it sorts before low ("0" follows "/")
                yield from self._walk(path, key, low, high)

    def _listing(self, top: Path, prefix: str) -> tuple[list[str], list[tuple[str, Path, bool]]]:
        """A directory's result files and subdirectories as ``(id or "id/", path, is a directory)``, in id order.

        A directory sorts as "name/": every id in it falls between its neighbours' ids, so walking
        children in this order yields ids in order. The listing is kept while the directory's
        modification time stays what it was and is over two seconds old: a file system that keeps
        times to the second could otherwise hide a file added in the same second.
        """
        try:
            changed = os.stat(top).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            return [], []
        except OSError as exc:
            raise StoreWriteError(exc.errno, f"cannot list the store's directory: {exc.strerror}", str(top)) from exc
        kept = self._listings.get(str(top))
        if kept is not None and kept[0] == changed and time.time_ns() - changed > 2_000_000_000:
            return kept[1], kept[2]
        try:
            with os.scandir(top) as it:
                found = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return [], []  # removed meanwhile: nothing of the store's is there
        except OSError as exc:  # unreadable: an answer without it would be silently incomplete
            raise StoreWriteError(exc.errno, f"cannot list the store's directory: {exc.strerror}", str(top)) from exc
        entries: list[tuple[str, Path, bool]] = []
        for entry in found:
            if entry.is_dir(follow_symlinks=False):  # never through a link: no loop, nothing outside
                entries.append((prefix + entry.name + "/", Path(entry.path), True))
            elif len(entry.name) > len(SUFFIX) and entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
                entries.append((prefix + entry.name[: -len(SUFFIX)], Path(entry.path), False))  # not .tmp, the lock
        entries.sort(key=lambda e: e[0])
        keys = [e[0] for e in entries]
        if len(self._listings) > 10_000:  # a store of many small directories: keep memory bounded
            self._listings.clear()
        self._listings[str(top)] = (changed, keys, entries)
        return keys, entries

    def leftovers(self, remove: bool = False) -> list[Path]:
        """Temporary files of writers that were killed mid-write (never a visible result).

        ``remove`` deletes them: call it under the lock only, else a live writer's file could go.
        """
        found = [Path(e.path) for e in self.files(self.root) if e.name.startswith(".") and e.name.endswith(TMP)]
        for path in found if remove else ():
            with disk_errors(path):
                path.unlink(missing_ok=True)
        return found
