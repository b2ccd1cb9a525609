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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bson import json_util

from ..encoding import JSON_OPTIONS, escape_key, map_keys
from ..errors import InvalidIdError

__all__ = ["FORMAT", "FileTree", "Unreadable"]

FORMAT = "mongo_results/1"
LOCK_NAME = ".mongo_results.lock"
SUFFIX = ".json"
TMP = ".tmp"  # a file being written: ".<16 hex digits>.tmp" beside its final name


class Unreadable(Exception):
    """A result file that is not JSON (truncated, or not ours)."""


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
        # A symbolic link inside the store (to a directory or to a file) must not lead outside it.
        if not self.inside(path):
            raise InvalidIdError(f"Result id {'/'.join(segs)!r} leads outside {self.root}")
        return path

    def inside(self, path: Path) -> bool:
        try:
            resolved = path.resolve()
        except (RuntimeError, OSError) as exc:  # a loop of symbolic links: RuntimeError before Python 3.13
            raise InvalidIdError(f"{path} is in a loop of symbolic links: it names no result") from exc
        return resolved.is_relative_to(self.root)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The store's one writer lock (readers never take it)."""
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
                envelope: dict[str, Any] = json_util.loads(text, json_options=JSON_OPTIONS)
                return envelope
        except (ValueError, RecursionError) as exc:
            raise Unreadable(f"{path} is not valid JSON ({str(exc)[:120]})") from exc
        if not isinstance(raw, dict):
            raise Unreadable(f"{path} holds a JSON {type(raw).__name__}, not a result")
        if isinstance(raw.get("data"), dict):
            raw["data"] = map_keys(raw["data"], escape_key)  # seed files hold raw keys
        return raw

    def write(self, path: Path, envelope: dict[str, Any]) -> None:
        """Replace ``path`` atomically (write a temporary file, fsync, rename)."""
        text = json_util.dumps({**envelope, "format": FORMAT}, json_options=JSON_OPTIONS, indent=2)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidIdError(f"{path.relative_to(self.root)} clashes with an existing result file") from exc
        tmp = path.with_name(f".{secrets.token_hex(8)}{TMP}")  # short: the final name may be 255 bytes
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except IsADirectoryError as exc:
            raise InvalidIdError(f"{path.relative_to(self.root)} clashes with a directory of other results") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self, path: Path) -> bool:
        """Remove a result file and the directories it leaves empty; whether it was there."""
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

    def results(self, under: str, after: str = "") -> Iterator[tuple[str, str]]:
        """``(id, file)`` of every result file in the directory of the id prefix ``under`` ("" for all)
        whose id sorts after ``after``.

        Names only, no ``Path`` per file: a keyset page lists the directory again, and the files
        before its bound are passed over without building anything.
        """
        top = self.root.joinpath(*under.split("/")) if under else self.root
        if under and (top.is_symlink() or not self.inside(top)):
            return
        yield from self._results(str(top), under, after)

    def _results(self, top: str, rid_prefix: str, after: str) -> Iterator[tuple[str, str]]:
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        prefix = rid_prefix + "/" if rid_prefix else ""
        for entry in entries:
            full = prefix + entry.name
            # A file's id and every id in a directory sort before its name followed by "0"
            # ("/" precedes "0"): the entries a page has gone past cost one comparison.
            if full + "0" <= after:
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._results(entry.path, full, after)
            elif full.endswith(SUFFIX) and not entry.name.startswith("."):
                rid = full[: -len(SUFFIX)]
                if rid > after and entry.is_file(follow_symlinks=False):
                    yield rid, entry.path

    def leftovers(self) -> list[Path]:
        """Temporary files of writers that were killed mid-write (never a visible result)."""
        return [Path(e.path) for e in self.files(self.root) if e.name.startswith(".") and e.name.endswith(TMP)]
