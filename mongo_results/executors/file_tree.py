"""The file store's layout: ``base_dir/<segments>.json``, written atomically, read without locks.

A file holds ``{"model_type", "namespace", "data"}``, so trees written by
``results_manager`` are read as they are. Files written here add ``"format"``
and store data in MongoDB Extended JSON (relaxed), which keeps bytes, UUIDs,
decimals and non-finite floats exact.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bson import json_util

from ..encoding import JSON_OPTIONS, escape_key, map_keys
from ..errors import InvalidIdError, StoreWriteError, UnreadableResultError

__all__ = ["FORMAT", "FileTree", "Unreadable"]

FORMAT = "mongo_results/1"
LOCK_NAME = ".mongo_results.lock"
SUFFIX = ".json"
TMP = ".tmp"  # a file being written: ".<16 hex digits>.tmp" beside its final name


class Unreadable(Exception):
    """A result file that cannot be read as JSON text (not UTF-8, too deep, or the disk failed)."""


@contextmanager
def _disk(path: Path) -> Iterator[None]:
    """The store's one translation of the disk's errors: a write that failed is a library error."""
    try:
        yield
    except OSError as exc:
        raise StoreWriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc


class FileTree:
    """The files under one directory, never followed through a symbolic link out of it."""

    def __init__(self, root: Path) -> None:
        self.root = root

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

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The store's one writer lock (readers never take it)."""
        with _disk(self.root / LOCK_NAME):
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def read(path: Path) -> dict[str, Any] | None:
        """A file's envelope; None when there is no file, Unreadable when it is not a JSON object."""
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as exc:
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
            with _disk(path):
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
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except IsADirectoryError as exc:
            raise InvalidIdError(f"{path.relative_to(self.root)} clashes with a directory of other results") from exc

    def remove(self, path: Path) -> bool:
        """Remove a result file and the directories it leaves empty; whether it was there."""
        with _disk(path):
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            self.prune(path.parent)
        return True

    def prune(self, directory: Path) -> None:
        while directory != self.root and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent

    def files(self, top: Path) -> Iterator[os.DirEntry[str]]:
        """Every file under ``top``, never through a symbolic link."""
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return  # gone, or not ours to read: nothing of the store's is there
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
        try:
            with os.scandir(top) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return  # gone, or not ours to read: nothing of the store's is there
        # A directory sorts as "name/": every id in it falls between its neighbours' ids,
        # so walking children in this order yields ids in order.
        keyed: list[tuple[str, os.DirEntry[str]]] = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):  # never through a link: no loop, nothing outside
                keyed.append((prefix + entry.name + "/", entry))
            elif len(entry.name) > len(SUFFIX) and entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
                keyed.append((prefix + entry.name[: -len(SUFFIX)], entry))  # temporary files and the lock end otherwise
        for key, entry in sorted(keyed, key=lambda k: k[0]):
            if high is not None and key >= high:
                return
            if not key.endswith("/"):
                if key >= low:
                    yield key, Path(entry.path)
            elif key[:-1] + "0" > low:  # else every id in it sorts before low ("0" follows "/")
                yield from self._walk(Path(entry.path), key, low, high)

    def leftovers(self, remove: bool = False) -> list[Path]:
        """Temporary files of writers that were killed mid-write (never a visible result); ``remove``
        them (under the lock only: else a live writer's file could go)."""
        found = [Path(e.path) for e in self.files(self.root) if e.name.startswith(".") and e.name.endswith(TMP)]
        for path in found if remove else ():
            with _disk(path):
                path.unlink(missing_ok=True)
        return found
