"""The file store's claims and failures: one JSON document per file, changed under the store's lock."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bson import json_util

from ..core import commands as cmd
from ..core.claims import MAX_LEASE
from .evaluation import apply_update, matches, project
from .file_tree import CLAIM_JSON, TMP, FileTree, disk_errors, durable_replace

__all__ = ["DocumentFiles"]


class DocumentFiles:
    """A small collection of a file store (the claims, the failures): a JSON file per document.

    Each decision is taken under the store's lock. The shared directory is the store: a file
    is written atomically (temporary file, rename) and read without the lock; a claim's expiry
    is read on the clock of the machine that serves the directory (:meth:`FileTree.clock`).
    """

    def __init__(self, tree: FileTree, collection: str, directory: str, suffix: str, stamp: str) -> None:
        self._tree, self.collection = tree, collection
        self.directory = tree.root / directory
        self.suffix = suffix
        self.stamp = stamp  # the date field every readable document has: expires_at, failed_at

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:40] + self.suffix)

    def _read(self, path: Path, key: str | None = None) -> dict[str, Any] | None:
        """The document in ``path``; None when there is none.

        A claim file that is not a claim (empty or cut short by a crash before its data reached
        the disk) holds its id for the longest lease after it was written, then counts as
        expired: no one can renew it, and doctor reports and removes it. A failure file cut
        short is no record: the next failure of that cell writes it anew.
        """
        with disk_errors(path):
            try:
                text = path.read_text(encoding="utf-8")
                changed = path.stat().st_mtime
            except FileNotFoundError:
                return None  # no claim
        try:
            claim: dict[str, Any] = json_util.loads(text, json_options=CLAIM_JSON)
            if isinstance(claim, dict) and isinstance(claim.get(self.stamp), datetime):
                return claim
        except ValueError:  # not JSON: json.JSONDecodeError, or bson's own for a bad $date
            pass
        if self.stamp != "expires_at":
            return None
        written = datetime.fromtimestamp(changed, timezone.utc)
        return {
            "_id": key,
            "result_id": None,
            "owner": None,
            "unreadable": str(path),
            "expires_at": written + MAX_LEASE,
        }

    def _candidates(self, query: Mapping[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
        key = query.get("_id")
        if isinstance(key, str):
            found = [(self._path(key), self._read(self._path(key), key))]
        else:
            try:
                paths = sorted(p for p in self.directory.iterdir() if p.name.endswith(self.suffix))
            except FileNotFoundError:
                return []
            found = [(path, self._read(path)) for path in paths]
        return [(path, doc) for path, doc in found if doc is not None and matches(doc, query)]

    def _write(self, path: Path, document: Mapping[str, Any]) -> None:
        text = json_util.dumps(document, json_options=CLAIM_JSON)
        tmp = path.with_name(f".{secrets.token_hex(8)}{TMP}")
        try:
            with disk_errors(path):
                path.parent.mkdir(exist_ok=True)
                durable_replace(tmp, path, text)
        finally:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)

    def execute(self, command: cmd.Command) -> Any:
        """Run one of the collection's commands; its reply, as a server's would be."""
        match command:
            case cmd.Upsert(_, query, update, replace, probe):
                with self._tree.locked():
                    for path, doc in self._candidates(query)[:1]:
                        self._write(path, update if replace else apply_update(doc, update, inserting=False))
                        return cmd.Written(False)
                    path = self._path(query["_id"])
                    existing = self._read(path)
                    if existing is not None:
                        return cmd.DuplicateKey(None, probe is not None and matches(existing, probe))
                    base = {k: v for k, v in query.items() if not isinstance(v, Mapping)}
                    self._write(path, update if replace else apply_update(base, update, inserting=True))
                    return cmd.Written(True)
            case cmd.Insert(_, document):
                with self._tree.locked():
                    path = self._path(document["_id"])
                    if self._read(path) is not None:
                        return cmd.DuplicateKey(None)
                    self._write(path, document)
                    return cmd.Written(True)
            case cmd.Update(_, query, update, _):
                with self._tree.locked():
                    for path, doc in self._candidates(query)[:1]:
                        self._write(path, apply_update(doc, update, inserting=False))
                        return cmd.Written(False)
                    return cmd.NoMatch()
            case cmd.Delete(_, query, many):
                with self._tree.locked():
                    found = self._candidates(query)
                    for path, _ in found if many else found[:1]:
                        with disk_errors(path):
                            path.unlink(missing_ok=True)
                    return len(found if many else found[:1])
            case cmd.Find(_, query, projection):
                return [project(doc, projection) for _, doc in self._candidates(query)]
            case cmd.FindOne(_, query, projection):
                return next((project(doc, projection) for _, doc in self._candidates(query)), None)
        raise TypeError(f"not a command on {self.collection}: {command!r}")  # pragma: no cover
